// Debian's Chromium driven by playwright-core (Playwright's own browser
// download does not work here), with the flags that keep it quiet on a
// closed network. Playwright gives every launch a fresh user-data-dir.

import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Where the screenshots of final states go (a CI artifact). */
export const SCREENSHOTS = path.join(repoRoot, "target/e2e/screenshots");

/** Generous: CI has two cores shared with other work. */
export const TIMEOUT_MS = 30_000;

export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/test does)`);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A page that records what the browser complained about (CSP violations, script errors). */
export async function newPage(browser, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...contextOptions });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = await context.newPage();
  const complaints = [];
  page.on("console", (msg) => {
    // A page answered with 4xx is reported too; that status is asserted where it matters.
    const status = /^Failed to load resource: the server responded with a status of 4\d\d/;
    if (msg.type() === "error" && !status.test(msg.text())) complaints.push(msg.text());
  });
  page.on("pageerror", (err) => complaints.push(String(err)));
  return { context, page, complaints };
}

export function screenshotPath(name) {
  return path.join(SCREENSHOTS, `${name}.png`);
}

/** The base URL of the server under test and of its mailbox (set by with-stack.mjs). */
export function stackUrls() {
  const baseUrl = process.env.SESAME_URL;
  const mailboxUrl = process.env.MAILBOX_URL;
  if (!baseUrl || !mailboxUrl) {
    throw new Error("SESAME_URL and MAILBOX_URL are not set: run through e2e/lib/with-stack.mjs");
  }
  return { baseUrl, mailboxUrl };
}
