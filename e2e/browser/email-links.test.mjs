// The links in emails, followed in a browser: the verification link's page
// activates the account with one press of its button, the reset link's page
// sets a new password. JavaScript is off: the pages are plain forms.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { codeIn, linkIn, nthMessageTo } from "../lib/mailbox.mjs";
import { launch, newPage, screenshotPath, stackUrls } from "./browser.mjs";

const { baseUrl, mailboxUrl } = stackUrls();
const PASSWORD = "correct horse battery staple";
const NEW_PASSWORD = "a new and longer passphrase";
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

async function api(method, path, body) {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function signup(email) {
  const res = await api("POST", "/users/signup", { email, password: PASSWORD, confirmPassword: PASSWORD });
  assert.equal(res.status, 201, JSON.stringify(res.body));
}

const login = (email, password) => api("POST", "/users/login", { email, password });

/** Fails on anything the browser refused or choked on (a CSP violation, a script error). */
function assertNoComplaints(complaints) {
  assert.deepEqual(complaints, [], "the browser reported problems on the page");
}

test("the verification link shows a button, and pressing it activates the account", async () => {
  const email = `link-${Date.now()}@example.com`;
  await signup(email);
  const link = linkIn(await nthMessageTo(mailboxUrl, email, 1), "/verify");
  assert.equal(link.origin, baseUrl, "links point at SESAME_APP_URL, by default the public URL");

  const { context, page, complaints } = await newPage(browser, { javaScriptEnabled: false });
  const response = await page.goto(link.href);
  assert.equal(response.status(), 200);
  const headers = response.headers();
  assert.match(headers["content-security-policy"], /default-src 'none'/);
  assert.equal(headers["referrer-policy"], "no-referrer");
  assert.equal(headers["cache-control"], "no-store");
  await page.getByRole("heading", { name: "Confirm your email address" }).waitFor();
  assert.match(await page.locator("main").innerText(), new RegExp(email.replace(/[.]/g, "\\.")));

  // Opening the link spent nothing: the account is still waiting.
  const before = await login(email, PASSWORD);
  assert.equal(before.status, 403, JSON.stringify(before.body));
  assert.equal(before.body.code, "EMAIL_NOT_VERIFIED");

  await page.getByRole("button", { name: "Activate my account" }).click();
  await page.getByRole("heading", { name: "Email address confirmed" }).waitFor();
  assert.match(await page.getByRole("status").innerText(), /Your account is active/);
  await page.screenshot({ path: screenshotPath("verify-link-activated") });
  assertNoComplaints(complaints);

  const afterwards = await login(email, PASSWORD);
  assert.equal(afterwards.status, 200, JSON.stringify(afterwards.body));
  await context.close();
});

test("the reset link shows a form that refuses a weak password, then sets a good one", async () => {
  const email = `reset-${Date.now()}@example.com`;
  await signup(email);
  const code = codeIn(await nthMessageTo(mailboxUrl, email, 1));
  assert.equal((await api("PATCH", "/users/activate", { email, code })).status, 200);
  assert.equal((await api("PATCH", "/users/forgot", { email })).status, 200);
  const link = linkIn(await nthMessageTo(mailboxUrl, email, 2), "/reset-password");
  assert.equal(link.origin, baseUrl);

  const { context, page, complaints } = await newPage(browser, { javaScriptEnabled: false });
  await page.goto(link.href);
  await page.getByRole("heading", { name: "Choose a new password" }).waitFor();

  // A common password: the policy's message, and the form again.
  await page.getByLabel("New password", { exact: true }).fill("password123");
  await page.getByLabel("Confirm new password").fill("password123");
  await page.getByRole("button", { name: "Set new password" }).click();
  const problem = page.getByRole("alert");
  await problem.waitFor();
  const said = await problem.innerText();
  assert.ok(
    said.startsWith("The new password is too easy to guess"),
    `the policy's message is shown: ${said}`,
  );
  await page.screenshot({ path: screenshotPath("reset-link-policy-message") });

  // The refused attempt did not spend the token: the same form works now.
  await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  await page.getByLabel("Confirm new password").fill(NEW_PASSWORD);
  await page.getByRole("button", { name: "Set new password" }).click();
  await page.getByRole("heading", { name: "Password changed" }).waitFor();
  assert.match(await page.getByRole("status").innerText(), /Log in with your new password/);
  await page.screenshot({ path: screenshotPath("reset-link-password-changed") });
  assertNoComplaints(complaints);

  const withNew = await login(email, NEW_PASSWORD);
  assert.equal(withNew.status, 200, JSON.stringify(withNew.body));
  const withOld = await login(email, PASSWORD);
  assert.equal(withOld.status, 401, JSON.stringify(withOld.body));
  await context.close();
});
