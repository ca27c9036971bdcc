// Passkeys in a real browser: Chromium with the DevTools virtual
// authenticator (CTAP2, built in, resident keys, user verification) on the
// example page e2e/browser/passkeys-page/, which calls sesame through the
// generated TypeScript client (openapi-fetch).
//
// WebAuthn refuses IP addresses as RP IDs, so this file starts its own
// sesame (not the suite's) with RP ID `localhost`, and serves the page from
// http://localhost:PORT (a secure context). The page calls sesame at
// http://127.0.0.1:PORT across origins, so CORS allows the page's origins.
// A second origin, http://other.localhost:PORT (Chromium resolves
// *.localhost to the loopback), is a valid WebAuthn origin for sesame too:
// the test of a credential made for another RP ID uses it.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import http from "node:http";
import path from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { URI } from "otpauth";

import { codeIn, nthMessageTo } from "../lib/mailbox.mjs";
import { WAIT_MS, startStack } from "../lib/stack.mjs";
import { TIMEOUT_MS, launch, newPage, screenshotPath } from "./browser.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const PASSWORD = "correct horse battery staple";
const FILES = {
  "/": [path.join(here, "passkeys-page/index.html"), "text/html; charset=utf-8"],
  "/passkeys.js": [path.join(here, "passkeys-page/passkeys.js"), "text/javascript; charset=utf-8"],
  "/vendor/openapi-fetch/index.mjs": [
    path.join(here, "../node_modules/openapi-fetch/dist/index.mjs"),
    "text/javascript; charset=utf-8",
  ],
};

let browser;
let pages;
let stack;
let pageOrigin;
let otherOrigin;

/** Serves the example page and openapi-fetch's ESM build on a free loopback port. */
async function servePage() {
  const server = http.createServer(async (req, res) => {
    const file = FILES[new URL(req.url, "http://page").pathname];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file[1] });
    res.end(await readFile(file[0]));
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  return server;
}

before(async () => {
  pages = await servePage();
  const port = pages.address().port;
  pageOrigin = `http://localhost:${port}`;
  otherOrigin = `http://other.localhost:${port}`;
  stack = await startStack({
    name: "passkeys",
    env: {
      SESAME_WEBAUTHN_RP_ID: "localhost",
      SESAME_WEBAUTHN_ORIGINS: `${pageOrigin},${otherOrigin}`,
      SESAME_CORS_ORIGINS: `${pageOrigin},${otherOrigin}`,
    },
  });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stack?.stop();
  await new Promise((resolve) => (pages ? pages.close(resolve) : resolve()));
});

/** The example page at `origin`, with a virtual authenticator attached to it. */
async function openPage(origin = pageOrigin) {
  const { context, page, complaints } = await newPage(browser);
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${origin}/?api=${encodeURIComponent(stack.baseUrl)}`);
  await page.waitForFunction(() => window.sesame !== undefined);
  return { context, page, complaints, cdp, authenticatorId };
}

/** A new active account, signed in with its password (all through the page's client). */
async function signedInUser(page, label) {
  const email = `${label}-${Date.now()}@example.com`;
  const signup = await page.evaluate(
    ({ email, password }) =>
      sesame.client
        .POST("/users/signup", { body: { email, password, confirmPassword: password } })
        .then((r) => r.response.status),
    { email, password: PASSWORD },
  );
  assert.equal(signup, 201);
  const code = codeIn(await nthMessageTo(stack.mailboxUrl, email, 1));
  const activate = await page.evaluate(
    ({ email, code }) =>
      sesame.client.PATCH("/users/activate", { body: { email, code } }).then((r) => r.response.status),
    { email, code },
  );
  assert.equal(activate, 200);
  const login = await page.evaluate(
    ({ email, password }) =>
      sesame.client.POST("/users/login", { body: { email, password } }).then((r) => ({
        status: r.response.status,
        tokens: r.data,
      })),
    { email, password: PASSWORD },
  );
  assert.equal(login.status, 200);
  await page.evaluate((email) => sesame.show(`Signed up, activated and logged in with a password as ${email}`), email);
  return { email, accessToken: login.tokens.accessToken };
}

/** The `amr` claim of an access token (not verified here: the server did that). */
function amr(accessToken) {
  return JSON.parse(Buffer.from(accessToken.split(".")[1], "base64url").toString("utf8")).amr.slice().sort();
}

async function getMe(page, accessToken) {
  return page.evaluate(
    (token) =>
      sesame.client.GET("/users/me", { headers: sesame.bearer(token) }).then((r) => ({
        status: r.response.status,
        body: r.data ?? r.error,
      })),
    accessToken,
  );
}

/** Waits until sesame's log says why it refused a credential `times` times. */
async function refusalsLogged(reason, times) {
  const deadline = Date.now() + WAIT_MS;
  let count = 0;
  while (Date.now() < deadline) {
    count = (await readFile(stack.logPath, "utf8")).split(reason).length - 1;
    if (count >= times) return count;
    await sleep(100); // the log is piped to its file asynchronously
  }
  return count;
}

async function shot(page, name) {
  await page.screenshot({ path: screenshotPath(name), fullPage: true, timeout: TIMEOUT_MS });
}

test("a passkey is added, logs in alone, serves as the second factor, and is removed", async () => {
  const { context, page, complaints, cdp, authenticatorId } = await openPage();
  const { email, accessToken } = await signedInUser(page, "passkey");

  // 1. Add a passkey after a password login.
  const added = await page.evaluate(
    ({ token, password }) => sesame.registerPasskey(token, { password, name: "Virtual authenticator" }),
    { token: accessToken, password: PASSWORD },
  );
  assert.equal(added.status, 201, JSON.stringify(added));
  const passkeyId = added.passkey.passkeyId;
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1, "the authenticator holds the new passkey");
  assert.equal(credentials[0].rpId, "localhost");
  assert.equal(credentials[0].isResidentCredential, true, "a discoverable credential");
  const me = await getMe(page, accessToken);
  assert.equal(me.body.user.mfa.passkeys, 1);
  await shot(page, "passkey-1-registered");

  // 2. Log out; the old token stops working.
  const logout = await page.evaluate(
    (token) => sesame.client.POST("/users/logout", { body: {}, headers: sesame.bearer(token) }).then((r) => r.response.status),
    accessToken,
  );
  assert.equal(logout, 200);
  assert.equal((await getMe(page, accessToken)).status, 401);
  await page.evaluate(() => sesame.show("Logged out"));
  await shot(page, "passkey-2-logged-out");

  // 3. Log in with the passkey alone, without typing an address.
  const passkeyLogin = await page.evaluate(() => sesame.loginWithPasskey());
  assert.equal(passkeyLogin.status, 200, JSON.stringify(passkeyLogin));
  assert.deepEqual(amr(passkeyLogin.tokens.accessToken), ["hwk", "mfa"]);
  const meByPasskey = await getMe(page, passkeyLogin.tokens.accessToken);
  assert.equal(meByPasskey.body.user.email, email);
  await shot(page, "passkey-3-passkey-login");

  // 4. Turn TOTP on (the app's codes computed here, as an authenticator app would).
  let token = passkeyLogin.tokens.accessToken;
  const enrol = await page.evaluate(
    ({ token, password }) =>
      sesame.client.POST("/users/me/mfa/totp", { body: { password }, headers: sesame.bearer(token) }).then((r) => ({
        status: r.response.status,
        body: r.data ?? r.error,
      })),
    { token, password: PASSWORD },
  );
  assert.equal(enrol.status, 201, JSON.stringify(enrol.body));
  const app = URI.parse(enrol.body.otpauthUri);
  const confirmedAt = Date.now();
  const confirmStep = Math.floor(confirmedAt / 30_000);
  const confirm = await page.evaluate(
    ({ token, code }) =>
      sesame.client.PATCH("/users/me/mfa/totp", { body: { code }, headers: sesame.bearer(token) }).then((r) => r.response.status),
    { token, code: app.generate({ timestamp: confirmedAt }) },
  );
  assert.equal(confirm, 200);
  await page.evaluate(() => sesame.show("TOTP turned on"));

  // 5. The password alone is not enough now; the passkey is the second step.
  const mfaLogin = await page.evaluate(
    ({ email, password }) => sesame.loginWithPasswordThenPasskey(email, password),
    { email, password: PASSWORD },
  );
  assert.equal(mfaLogin.status, 200, JSON.stringify(mfaLogin));
  assert.deepEqual(mfaLogin.methods.slice().sort(), ["passkey", "recovery", "totp"]);
  const secondStepAmr = amr(mfaLogin.tokens.accessToken);
  assert.ok(secondStepAmr.includes("pwd") && secondStepAmr.includes("hwk"), `amr ${secondStepAmr}`);
  await shot(page, "passkey-4-second-factor");

  // 6. Remove the passkey (password and a code: step-up). A code is
  // accepted once, for a later step than the last accepted: the confirm's
  // step is spent, so use the next one (within the server's one step of skew).
  token = mfaLogin.tokens.accessToken;
  const step = Math.max(Math.floor(Date.now() / 30_000), confirmStep + 1);
  const removed = await page.evaluate(
    ({ token, passkeyId, password, code }) => sesame.deletePasskey(token, passkeyId, { password, code }),
    { token, passkeyId, password: PASSWORD, code: app.generate({ timestamp: step * 30_000 }) },
  );
  assert.equal(removed.status, 200, JSON.stringify(removed));
  assert.equal((await getMe(page, token)).body.user.mfa.passkeys, 0);
  // It stops working at once, though the authenticator still holds it.
  const afterRemoval = await page.evaluate(() => sesame.loginWithPasskey());
  assert.equal(afterRemoval.status, 401, JSON.stringify(afterRemoval));
  assert.equal(afterRemoval.error.code, "INVALID_CREDENTIALS");
  await shot(page, "passkey-5-removed");

  // No script error, no CORS or WebAuthn complaint (4xx answers are asserted above).
  assert.deepEqual(complaints, []);
  await context.close();
});

test("a credential made for another RP ID is refused, at registration and at login", async () => {
  // On http://other.localhost the browser lets a page use the RP ID
  // `other.localhost`; sesame's is `localhost`. The origin is one sesame
  // accepts, the challenge is fresh: only the RP ID (its hash in the
  // authenticator data) is wrong.
  const other = await openPage(otherOrigin);
  const { accessToken } = await signedInUser(other.page, "rpid");
  const registration = await other.page.evaluate(
    async ({ token, password }) => {
      const start = await sesame.client.POST("/users/me/passkeys/register/start", {
        body: { password },
        headers: sesame.bearer(token),
      });
      const publicKey = { ...start.data.publicKey, rp: { ...start.data.publicKey.rp, id: "other.localhost" } };
      const credential = await navigator.credentials.create({
        publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey),
      });
      const finish = await sesame.client.POST("/users/me/passkeys/register/finish", {
        body: { challengeId: start.data.challengeId, credential: credential.toJSON() },
        headers: sesame.bearer(token),
      });
      sesame.show(`A passkey made for RP ID other.localhost: ${finish.response.status} ${finish.error?.code}`, "error");
      return { status: finish.response.status, body: finish.data ?? finish.error };
    },
    { token: accessToken, password: PASSWORD },
  );
  assert.equal(registration.status, 400, JSON.stringify(registration.body));
  assert.equal(registration.body.code, "INVALID_CREDENTIAL");
  const { credentials: made } = await other.cdp.send("WebAuthn.getCredentials", { authenticatorId: other.authenticatorId });
  assert.equal(made.length, 1, "the browser did make the credential");
  assert.equal(made[0].rpId, "other.localhost");
  await shot(other.page, "passkey-6-other-rp-id-registration-refused");

  // At login: a passkey registered properly on http://localhost, its key
  // copied into an authenticator under the RP ID `other.localhost` (with a
  // higher counter, so the counter is not what is refused), signs in from
  // http://other.localhost.
  const home = await openPage(pageOrigin);
  const user = await signedInUser(home.page, "rpid-login");
  const added = await home.page.evaluate(
    ({ token, password }) => sesame.registerPasskey(token, { password }),
    { token: user.accessToken, password: PASSWORD },
  );
  assert.equal(added.status, 201, JSON.stringify(added));
  const { credentials } = await home.cdp.send("WebAuthn.getCredentials", { authenticatorId: home.authenticatorId });
  const [key] = credentials;
  const copy = await openPage(otherOrigin);
  await copy.cdp.send("WebAuthn.addCredential", {
    authenticatorId: copy.authenticatorId,
    credential: { ...key, rpId: "other.localhost", signCount: key.signCount + 100 },
  });
  const login = await copy.page.evaluate(async (email) => {
    const start = await sesame.client.POST("/users/login/passkey/start", { body: { email } });
    const publicKey = { ...start.data.publicKey, rpId: "other.localhost" };
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey),
    });
    const finish = await sesame.client.POST("/users/login/passkey/finish", {
      body: { challengeId: start.data.challengeId, credential: credential.toJSON() },
    });
    sesame.show(`The same key under RP ID other.localhost: ${finish.response.status} ${finish.error?.code}`, "error");
    return { status: finish.response.status, body: finish.data ?? finish.error, id: credential.id };
  }, user.email);
  // The browser answered with the registered passkey's id, signed by its key.
  assert.equal(login.id, Buffer.from(key.credentialId, "base64").toString("base64url"));
  assert.equal(login.status, 401, JSON.stringify(login.body));
  assert.equal(login.body.code, "INVALID_CREDENTIALS");
  await shot(copy.page, "passkey-7-other-rp-id-login-refused");

  // Both refusals were for the RP ID hash, not the origin or the challenge.
  assert.equal(await refusalsLogged("relying party id hash does not match", 2), 2);

  // The same key under the right RP ID still works: only the RP ID was wrong.
  const control = await home.page.evaluate((email) => sesame.loginWithPasskey(email), user.email);
  assert.equal(control.status, 200, JSON.stringify(control));

  for (const { context } of [other, home, copy]) await context.close();
});
