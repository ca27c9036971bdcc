// The whole flow through a TypeScript client generated from the committed
// openapi.json (openapi-typescript types + openapi-fetch), against a live
// server. scripts/test generates the types, type-checks this file against
// them and runs it: a renamed schema or operation fails the type check.

import assert from "node:assert/strict";
import { test } from "node:test";

import createClient from "openapi-fetch";

import type { components, operations, paths } from "../../target/e2e/generated/typescript/schema.js";

type ApiError = components["schemas"]["ApiError"];
type User = components["schemas"]["User"];
type TokenResponse = components["schemas"]["TokenResponse"];
type SignupBody = operations["signup"]["requestBody"]["content"]["application/json; charset=utf-8"];

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
