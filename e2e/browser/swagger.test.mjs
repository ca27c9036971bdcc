// The whole first session of a new user, done in Swagger UI by clicking:
// sign up with "Try it out", read the code from the email, activate, log in,
// press "Authorize" with the token, and ask who I am. Then a second factor:
// enrol an authenticator (its codes computed here with otpauth, as the app
// would), and log in with the password and a code.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { URI } from "otpauth";

import { codeIn, nthMessageTo } from "../lib/mailbox.mjs";
import { TIMEOUT_MS, launch, newPage, screenshotPath, stackUrls } from "./browser.mjs";

const { baseUrl, mailboxUrl } = stackUrls();
const PASSWORD = "correct horse battery staple";
let browser;

before(async () => {
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** Expands an operation and presses "Try it out". */
async function openOperation(page, tag, operationId) {
  const op = page.locator(`#operations-${tag}-${operationId}`);
  await op.locator(".opblock-summary").click();
  await op.getByRole("button", { name: "Try it out" }).click();
  return op;
}

/** Types the body (if any), presses "Execute", reads the status and body shown. */
async function execute(op, body) {
  if (body !== undefined) {
    await op.locator("textarea.body-param__text").fill(JSON.stringify(body, null, 2));
  }
  await op.getByRole("button", { name: "Execute" }).click();
  const response = op.locator(".live-responses-table tbody .response").first();
  await response.waitFor();
  const status = Number(await response.locator(".response-col_status").innerText());
  const shown = await response.locator(".highlight-code pre").first().innerText();
  // "Clear" empties the result, so a second "Execute" is read fresh.
  await op.getByRole("button", { name: "Clear" }).click();
  await response.waitFor({ state: "detached" });
  return { status, body: JSON.parse(shown) };
}

async function tryItOut(page, tag, operationId, body) {
  return execute(await openOperation(page, tag, operationId), body);
}

/** Presses "Authorize" and pastes the access token, as the README says to. */
async function authorize(page, accessToken) {
  await page.locator(".auth-wrapper button.authorize").click();
  const dialog = page.locator(".modal-ux");
  await dialog.getByRole("textbox").fill(accessToken);
  await dialog.getByRole("button", { name: "Apply credentials" }).click();
  await dialog.getByRole("button", { name: "Remove authorization" }).waitFor();
  await dialog.getByRole("button", { name: "Close" }).click();
  await dialog.waitFor({ state: "detached" });
}

/** The `amr` claim of an access token (not verified: the server did that). */
function amr(accessToken) {
  return JSON.parse(Buffer.from(accessToken.split(".")[1], "base64url").toString("utf8")).amr;
}

test("a new user signs up, activates, logs in and calls /users/me from Swagger UI", async () => {
  const email = `swagger-${Date.now()}@example.com`;
  const { context, page } = await newPage(browser);
  await page.goto(`${baseUrl}/docs`);
  await page.locator(".info .title").filter({ hasText: "sesame" }).waitFor();

  const signup = await tryItOut(page, "Auth", "signup", {
    email,
    password: PASSWORD,
    confirmPassword: PASSWORD,
    name: "Swagger Sam",
  });
  assert.equal(signup.status, 201, JSON.stringify(signup.body));
  assert.match(signup.body.userId, /^[0-9a-f-]{36}$/);

  const code = codeIn(await nthMessageTo(mailboxUrl, email, 1));
  const activate = await tryItOut(page, "Auth", "activate", { email, code });
  assert.equal(activate.status, 200, JSON.stringify(activate.body));
  assert.equal(activate.body.message, "Account activated.");

  const login = await tryItOut(page, "Auth", "login", { email, password: PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.equal(login.body.tokenType, "Bearer");
  const accessToken = login.body.accessToken;
  assert.ok(accessToken.split(".").length === 3, "the access token is a JWT");

  // Without authorizing, /users/me is refused: the button is what makes it work.
  const meOp = await openOperation(page, "Me", "getMe");
  const anonymous = await execute(meOp);
  assert.equal(anonymous.status, 401, JSON.stringify(anonymous.body));
  assert.equal(anonymous.body.code, "UNAUTHORIZED");

  await authorize(page, accessToken);

  await meOp.getByRole("button", { name: "Execute" }).click();
  const response = meOp.locator(".live-responses-table tbody .response").first();
  await response.waitFor();
  const status = Number(await response.locator(".response-col_status").innerText());
  const me = JSON.parse(await response.locator(".highlight-code pre").first().innerText());
  assert.equal(status, 200, JSON.stringify(me));
  assert.equal(me.user.email, email);
  assert.equal(me.user.name, "Swagger Sam");
  assert.equal(me.user.active, true);

  await response.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshotPath("swagger-ui-users-me"), timeout: TIMEOUT_MS });
  await context.close();
});

test("a user turns on TOTP and logs in with a code, all from Swagger UI", async () => {
  const email = `swagger-mfa-${Date.now()}@example.com`;
  const { context, page } = await newPage(browser);
  await page.goto(`${baseUrl}/docs`);
  await page.locator(".info .title").filter({ hasText: "sesame" }).waitFor();

  const signup = await tryItOut(page, "Auth", "signup", { email, password: PASSWORD, confirmPassword: PASSWORD });
  assert.equal(signup.status, 201, JSON.stringify(signup.body));
  const code = codeIn(await nthMessageTo(mailboxUrl, email, 1));
  const activate = await tryItOut(page, "Auth", "activate", { email, code });
  assert.equal(activate.status, 200, JSON.stringify(activate.body));
  const loginOp = await openOperation(page, "Auth", "login");
  const login = await execute(loginOp, { email, password: PASSWORD });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  await authorize(page, login.body.accessToken);

  const enrol = await tryItOut(page, "Mfa", "startTotpEnrolment", { password: PASSWORD });
  assert.equal(enrol.status, 201, JSON.stringify(enrol.body));
  // What the authenticator app does with the QR code of `otpauthUri`.
  const app = URI.parse(enrol.body.otpauthUri);
  assert.equal(app.secret.base32, enrol.body.secret);

  // A code is accepted once per account, and only for a later step than the
  // last one accepted: confirming spends the current step, so the login
  // below uses the next step's code (within the server's one step of skew,
  // whether or not a 30 s boundary passes in between; no waiting).
  const now = Date.now();
  const confirmStep = Math.floor(now / 30_000);
  const confirm = await tryItOut(page, "Mfa", "confirmTotpEnrolment", { code: app.generate({ timestamp: now }) });
  assert.equal(confirm.status, 200, JSON.stringify(confirm.body));
  assert.equal(confirm.body.recoveryCodes.length, 10);

  const password = await execute(loginOp, { email, password: PASSWORD });
  assert.equal(password.status, 403, JSON.stringify(password.body));
  assert.equal(password.body.code, "MFA_REQUIRED");
  assert.deepEqual(password.body.methods.slice().sort(), ["recovery", "totp"]);
  assert.equal(password.body.accessToken, undefined);

  const nextStepCode = app.generate({ timestamp: (confirmStep + 1) * 30_000 });
  const mfaOp = await openOperation(page, "Auth", "loginMfa");
  const secondStep = { mfaToken: password.body.mfaToken, code: nextStepCode };
  await mfaOp.locator("textarea.body-param__text").fill(JSON.stringify(secondStep, null, 2));
  await mfaOp.getByRole("button", { name: "Execute" }).click();
  const response = mfaOp.locator(".live-responses-table tbody .response").first();
  await response.waitFor();
  const status = Number(await response.locator(".response-col_status").innerText());
  const tokens = JSON.parse(await response.locator(".highlight-code pre").first().innerText());
  assert.equal(status, 200, JSON.stringify(tokens));
  assert.equal(tokens.tokenType, "Bearer");
  assert.deepEqual(amr(tokens.accessToken).slice().sort(), ["mfa", "otp", "pwd"]);

  await response.scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshotPath("swagger-ui-login-mfa"), timeout: TIMEOUT_MS });
  await context.close();
});
