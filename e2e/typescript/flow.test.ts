// The whole flow through a TypeScript client generated from the committed
// openapi.json (openapi-typescript types + openapi-fetch), against a live
// server. scripts/test generates the types, type-checks this file against
// them and runs it: a renamed schema or operation fails the type check.

import assert from "node:assert/strict";
import { test } from "node:test";

import createClient from "openapi-fetch";
import { TOTP, URI } from "otpauth";

import type { components, operations, paths } from "../../target/e2e/generated/typescript/schema.js";

type ApiError = components["schemas"]["ApiError"];
type User = components["schemas"]["User"];
type TokenResponse = components["schemas"]["TokenResponse"];
type SignupBody = operations["signup"]["requestBody"]["content"]["application/json; charset=utf-8"];
type TotpEnrolment = components["schemas"]["TotpEnrolment"];

const baseUrl = required("SESAME_URL");
const mailboxUrl = required("MAILBOX_URL");
const PASSWORD = "correct horse battery staple";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through e2e/lib/with-stack.mjs`);
  return value;
}

/** The 6-digit code in the `nth` email to `address`, as the user reads it. */
async function codeFromEmail(address: string, nth: number): Promise<string> {
  const res = await fetch(`${mailboxUrl}/messages?to=${encodeURIComponent(address)}&min=${nth}`);
  const messages = (await res.json()) as { text: string }[];
  const match = messages[nth - 1]?.text.match(/verification code is:\s*(\d{6})/);
  if (!match?.[1]) throw new Error(`no verification code in email ${nth} to ${address}`);
  return match[1];
}

const client = createClient<paths>({ baseUrl });
const bearer = (token: string) => ({ headers: { Authorization: `Bearer ${token}` } });

async function signup(body: SignupBody): Promise<{ userId: string; referralCode: string }> {
  const { data, error, response } = await client.POST("/users/signup", { body });
  assert.equal(response.status, 201, JSON.stringify(error));
  assert.ok(data && "userId" in data, "201 carries the new account");
  return { userId: data.userId, referralCode: data.referralCode };
}

test("signup → activate → login → me → referred → refresh → logout with the generated TypeScript client", async () => {
  const email = `ts-${Date.now()}@example.com`;
  const friend = `ts-friend-${Date.now()}@example.com`;
  const account = await signup({ email, password: PASSWORD, confirmPassword: PASSWORD, name: "Type Script" });

  const code = await codeFromEmail(email, 1);
  const activated = await client.PATCH("/users/activate", { body: { email, code } });
  assert.equal(activated.data?.message, "Account activated.", JSON.stringify(activated.error));

  const wrong = await client.POST("/users/login", { body: { email, password: "not the password" } });
  const refused: ApiError | undefined = wrong.error;
  assert.equal(wrong.response.status, 401);
  assert.equal(refused?.code, "INVALID_CREDENTIALS");

  const login = await client.POST("/users/login", { body: { email, password: PASSWORD } });
  const tokens: TokenResponse | undefined = login.data;
  assert.ok(tokens, JSON.stringify(login.error));
  assert.equal(tokens.tokenType, "Bearer");

  const me = await client.GET("/users/me", bearer(tokens.accessToken));
  const user: User | undefined = me.data?.user;
  assert.equal(user?.userId, account.userId);
  assert.equal(user?.email, email);
  assert.equal(user?.active, true);

  await signup({ email: friend, password: PASSWORD, confirmPassword: PASSWORD, referrer: account.referralCode });
  const referred = await client.GET("/users/referred", {
    ...bearer(tokens.accessToken),
    params: { query: { limit: 10 } },
  });
  assert.equal(referred.data?.total, 1, JSON.stringify(referred.error));
  assert.equal(referred.data?.accounts[0]?.email, `t***@example.com`);
  assert.equal(referred.data?.accounts[0]?.active, false);

  const refreshed = await client.POST("/users/token/refresh", { body: { refreshToken: tokens.refreshToken } });
  assert.ok(refreshed.data, JSON.stringify(refreshed.error));
  assert.notEqual(refreshed.data.refreshToken, tokens.refreshToken, "the refresh token rotates");
  const access = refreshed.data.accessToken;
  assert.equal((await client.GET("/users/me", bearer(access))).response.status, 200);

  const logout = await client.POST("/users/logout", { ...bearer(access), body: { all: false } });
  assert.equal(logout.data?.success, true, JSON.stringify(logout.error));
  const after = await client.GET("/users/me", bearer(access));
  assert.equal(after.response.status, 401);
  assert.equal(after.error?.code, "UNAUTHORIZED");
});

/** The payload of a JWT (not verified: the server did that). */
function claims(jwt: string): { amr?: string[] } {
  const payload = jwt.split(".")[1];
  assert.ok(payload, "the access token is a JWT");
  return JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { amr?: string[] };
}

/** The 30 s step a timestamp (ms) falls in, as RFC 6238 counts. */
const stepOf = (ms: number) => Math.floor(ms / 30_000);

test("TOTP: enrol, confirm, log in with a code, replay refused, log in with a recovery code", async () => {
  const email = `ts-mfa-${Date.now()}@example.com`;
  await signup({ email, password: PASSWORD, confirmPassword: PASSWORD });
  await client.PATCH("/users/activate", { body: { email, code: await codeFromEmail(email, 1) } });
  const first = await client.POST("/users/login", { body: { email, password: PASSWORD } });
  assert.ok(first.data, JSON.stringify(first.error));
  const session = bearer(first.data.accessToken);
  assert.deepEqual(claims(first.data.accessToken).amr, ["pwd"]);

  const wrongPassword = await client.POST("/users/me/mfa/totp", { ...session, body: { password: "not the password" } });
  assert.equal(wrongPassword.response.status, 401);
  assert.equal(wrongPassword.error?.code, "INVALID_CREDENTIALS");

  const started = await client.POST("/users/me/mfa/totp", { ...session, body: { password: PASSWORD } });
  assert.equal(started.response.status, 201, JSON.stringify(started.error));
  const enrolment: TotpEnrolment | undefined = started.data;
  assert.ok(enrolment);
  assert.match(enrolment.secret, /^[A-Z2-7]{32}$/, "160 bits in base32, no padding");
  // What an authenticator app does: read the QR code's URI.
  const app = URI.parse(enrolment.otpauthUri);
  assert.ok(app instanceof TOTP, enrolment.otpauthUri);
  assert.equal(app.secret.base32, enrolment.secret);
  assert.equal(app.label, email);
  assert.deepEqual([app.algorithm, app.digits, app.period], ["SHA1", 6, 30]);

  // A code is accepted once per account and only for a later step than the
  // last one accepted. Confirming spends the step the app shows now; the
  // login below uses the next step's code, which the server accepts (one
  // step of skew) whether or not a step boundary passes in between. No
  // waiting for the clock.
  const now = Date.now();
  const confirmStep = stepOf(now);
  const wrongCode = await client.PATCH("/users/me/mfa/totp", {
    ...session,
    body: { code: app.generate({ timestamp: now - 5 * 60_000 }) },
  });
  assert.equal(wrongCode.response.status, 400, "a code from 5 minutes ago is refused");
  assert.equal(wrongCode.error?.code, "INVALID_CODE");
  const appCode = app.generate({ timestamp: now });
  const confirmed = await client.PATCH("/users/me/mfa/totp", { ...session, body: { code: appCode } });
  assert.equal(confirmed.response.status, 200, JSON.stringify(confirmed.error));
  const recoveryCodes = confirmed.data?.recoveryCodes ?? [];
  assert.equal(recoveryCodes.length, 10);
  assert.equal(new Set(recoveryCodes).size, 10);
  for (const code of recoveryCodes) assert.match(code, /^[0-9A-Za-z]{4}(-[0-9A-Za-z]{4}){3}$/);

  const again = await client.POST("/users/me/mfa/totp", { ...session, body: { password: PASSWORD } });
  assert.equal(again.response.status, 409);
  assert.equal(again.error?.code, "MFA_ALREADY_ENABLED");

  const me = await client.GET("/users/me", session);
  assert.deepEqual(me.data?.user.mfa, { totp: true, recoveryCodesLeft: 10, passkeys: 0 });

  // The password alone no longer logs in: the answer names the next step.
  const password = await client.POST("/users/login", { body: { email, password: PASSWORD } });
  assert.equal(password.response.status, 403);
  assert.equal(password.data, undefined, "no tokens before the second factor");
  const challenge: ApiError | undefined = password.error;
  assert.equal(challenge?.code, "MFA_REQUIRED");
  assert.deepEqual(challenge?.methods?.slice().sort(), ["recovery", "totp"]);
  const mfaToken = challenge?.mfaToken;
  assert.ok(mfaToken);

  const nextStepCode = app.generate({ timestamp: (confirmStep + 1) * 30_000 });
  const mfa = await client.POST("/users/login/mfa", { body: { mfaToken, code: nextStepCode } });
  assert.equal(mfa.response.status, 200, JSON.stringify(mfa.error));
  const withTotp: TokenResponse | undefined = mfa.data;
  assert.ok(withTotp);
  assert.deepEqual(claims(withTotp.accessToken).amr?.slice().sort(), ["mfa", "otp", "pwd"]);
  assert.equal((await client.GET("/users/me", bearer(withTotp.accessToken))).response.status, 200);

  const used = await client.POST("/users/login/mfa", { body: { mfaToken, code: recoveryCodes[0] ?? "" } });
  assert.equal(used.response.status, 401, "an mfaToken finishes one login");
  assert.equal(used.error?.code, "INVALID_TOKEN");

  // Second login: the same TOTP code again is a replay; a recovery code
  // finishes the same step.
  const second = await client.POST("/users/login", { body: { email, password: PASSWORD } });
  assert.equal(second.error?.code, "MFA_REQUIRED");
  const secondToken = second.error?.mfaToken ?? "";
  const replay = await client.POST("/users/login/mfa", { body: { mfaToken: secondToken, code: nextStepCode } });
  assert.equal(replay.response.status, 400);
  assert.equal(replay.error?.code, "INVALID_CODE");
  const recoveryCode = recoveryCodes[0] ?? "";
  const recovered = await client.POST("/users/login/mfa", { body: { mfaToken: secondToken, code: recoveryCode } });
  assert.equal(recovered.response.status, 200, JSON.stringify(recovered.error));
  assert.deepEqual(claims(recovered.data?.accessToken ?? "").amr?.slice().sort(), ["mfa", "pwd"]);

  // A recovery code is single use.
  const third = await client.POST("/users/login", { body: { email, password: PASSWORD } });
  const reused = await client.POST("/users/login/mfa", {
    body: { mfaToken: third.error?.mfaToken ?? "", code: recoveryCodes[0] ?? "" },
  });
  assert.equal(reused.error?.code, "INVALID_CODE");

  const after = await client.GET("/users/me", bearer(recovered.data?.accessToken ?? ""));
  assert.deepEqual(after.data?.user.mfa, { totp: true, recoveryCodesLeft: 9, passkeys: 0 });
});
