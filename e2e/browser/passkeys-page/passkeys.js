// Passkeys with sesame, in a browser: every ceremony is sesame's `…/start`
// (its `publicKey` options, in their JSON form) → `navigator.credentials`
// → sesame's `…/finish` (the credential, in its JSON form). Copy what you
// need; docs/api.md ("Passkeys") says what each endpoint checks.
//
// The client is openapi-fetch typed with the types openapi-typescript
// generates from sesame's openapi.json (scripts/test generates them into
// target/e2e/generated/typescript/schema.d.ts).

import createClient from "openapi-fetch";

/** @typedef {import("../../../target/e2e/generated/typescript/schema").paths} paths */

const api = new URLSearchParams(location.search).get("api") ?? location.origin;
/** @type {import("openapi-fetch").Client<paths>} */
export const client = createClient({ baseUrl: api });

/** The Authorization header for a signed-in call. */
export const bearer = (accessToken) => ({ Authorization: `Bearer ${accessToken}` });

/** Adds a passkey to the signed-in account (the password again, and a TOTP `code` if TOTP is on). */
export async function registerPasskey(accessToken, { password, code, name = "This browser" }) {
  const start = await client.POST("/users/me/passkeys/register/start", {
    body: { password, code },
    headers: bearer(accessToken),
  });
  if (!start.data) return failed("register/start", start);
  // JSON options → the browser's options (base64url → ArrayBuffer).
  const credential = /** @type {PublicKeyCredential} */ (
    await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(/** @type {any} */ (start.data.publicKey)),
    })
  );
  // The browser's credential → JSON (ArrayBuffer → base64url).
  const finish = await client.POST("/users/me/passkeys/register/finish", {
    body: { challengeId: start.data.challengeId, credential: credential.toJSON(), name },
    headers: bearer(accessToken),
  });
  if (!finish.data) return failed("register/finish", finish);
  show(`Passkey added: ${finish.data.passkey.name} (${finish.data.passkey.passkeyId})`);
  return { status: finish.response.status, passkey: finish.data.passkey };
}

/** Logs in with a passkey alone. Without `email`, the browser offers any passkey of this site. */
export async function loginWithPasskey(email) {
  const start = await client.POST("/users/login/passkey/start", { body: email ? { email } : {} });
  if (!start.data) return failed("login/passkey/start", start);
  const credential = /** @type {PublicKeyCredential} */ (
    await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(/** @type {any} */ (start.data.publicKey)),
    })
  );
  const finish = await client.POST("/users/login/passkey/finish", {
    body: { challengeId: start.data.challengeId, credential: credential.toJSON() },
  });
  if (!finish.data) return failed("login/passkey/finish", finish);
  show("Logged in with a passkey");
  return { status: finish.response.status, tokens: finish.data };
}

/**
 * Logs in with the password; when sesame answers 403 MFA_REQUIRED with
 * "passkey" among the `methods`, a passkey is the second step.
 */
export async function loginWithPasswordThenPasskey(email, password) {
  const login = await client.POST("/users/login", { body: { email, password } });
  if (login.data) return { status: login.response.status, tokens: login.data };
  const mfaToken = login.error?.mfaToken;
  if (login.error?.code !== "MFA_REQUIRED" || !mfaToken || !login.error.methods?.includes("passkey")) {
    return failed("login", login);
  }
  show(`Password accepted; second step needed, one of: ${login.error.methods.join(", ")}`);
  const start = await client.POST("/users/login/mfa/passkey/start", { body: { mfaToken } });
  if (!start.data) return failed("login/mfa/passkey/start", start);
  const credential = /** @type {PublicKeyCredential} */ (
    await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(/** @type {any} */ (start.data.publicKey)),
    })
  );
  const finish = await client.POST("/users/login/mfa", { body: { mfaToken, credential: credential.toJSON() } });
  if (!finish.data) return failed("login/mfa", finish);
  show("Logged in with the password and a passkey");
  return { status: finish.response.status, methods: login.error.methods, tokens: finish.data };
}

/** Removes a passkey (the password again, and a TOTP `code` if TOTP is on). */
export async function deletePasskey(accessToken, passkeyId, { password, code }) {
  const res = await client.DELETE("/users/me/passkeys/{passkeyId}", {
    params: { path: { passkeyId } },
    body: { password, code },
    headers: bearer(accessToken),
  });
  if (res.error) return failed("delete passkey", res);
  show(`Passkey removed: ${passkeyId}`);
  return { status: res.response.status };
}

/** A line in the page's log (what the screenshots show). */
export function show(text, className = "") {
  const item = document.createElement("li");
  item.textContent = text;
  item.className = className;
  /** @type {HTMLElement} */ (document.getElementById("log")).append(item);
}

/** Shows sesame's error ({error, code, message}) and hands it back. */
function failed(step, { response, error }) {
  show(`${step}: ${response.status} ${error?.code}: ${error?.message}`, "error");
  return { status: response.status, error };
}

/** @type {HTMLElement} */ (document.getElementById("origin")).textContent = location.origin;
/** @type {HTMLElement} */ (document.getElementById("api")).textContent = api;
// For the browser test (and the devtools console).
/** @type {any} */ (window).sesame = { client, bearer, registerPasskey, loginWithPasskey, loginWithPasswordThenPasskey, deletePasskey, show };
