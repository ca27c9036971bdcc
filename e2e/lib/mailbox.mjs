// Reads the email a test user received, as the user would: the code in the
// text, the links in it.

import { WAIT_MS } from "./stack.mjs";

/** The `nth` (1-based) message to `address`, waiting for it to arrive. */
export async function nthMessageTo(mailboxUrl, address, nth = 1) {
  const url = `${mailboxUrl}/messages?to=${encodeURIComponent(address)}&min=${nth}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS + 5_000) });
  if (!res.ok) throw new Error(`mailbox answered ${res.status}`);
  const messages = await res.json();
  if (messages.length < nth) {
    throw new Error(`expected ${nth} email(s) to ${address} within ${WAIT_MS} ms, got ${messages.length}`);
  }
  return messages[nth - 1];
}

/** The 6-digit verification code in an email's text. */
export function codeIn(message) {
  const match = message.text.match(/verification code is:\s*(\d{6})/);
  if (!match) throw new Error(`no verification code in: ${message.text}`);
  return match[1];
}

/** The first link in an email's text whose path is `path`. */
export function linkIn(message, path) {
  for (const candidate of message.text.match(/https?:\/\/\S+/g) ?? []) {
    const url = new URL(candidate);
    if (url.pathname === path) return url;
  }
  throw new Error(`no ${path} link in: ${message.text}`);
}
