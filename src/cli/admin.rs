//! The operator's commands: `sesame admin create`, `sesame admin reset-mfa`
//! and `sesame keys rotate`.
//! Plain functions over the database, so the command tree only parses and calls.

use std::io::Read;

use anyhow::Context;

use crate::config::{Argon2Params, Config, JwtSigning};
use crate::domain::email::EmailAddress;
use crate::domain::password::PasswordHasher;
use crate::domain::tokens::Ed25519Key;
use crate::flows::{admin, mfa};
use crate::store::Store;

/// Creates an active admin with this email and password, hashed with these
/// argon2id parameters (a server configured otherwise re-hashes it at the
/// first login); prints its id.
pub async fn create_admin(
    database_url: &str,
    params: Argon2Params,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    let store = Store::open(database_url).await?;
    let result = async {
        let hasher = PasswordHasher::new(params, 1).await?;
        admin::create_admin(&store, &hasher, email, password).await
    }
    .await;
    store.close().await;
    let id = result?;
    println!(
        "admin {} created (user id {id})",
        email.trim().to_lowercase()
    );
    Ok(())
}

/// Turns off the second factor of the account with this email (its owner
/// lost the device and the recovery codes); the owner is emailed (by a
/// running server's outbox). Says whether there was one to turn off.
pub async fn reset_mfa(config: &Config, email: &str) -> anyhow::Result<()> {
    let address =
        EmailAddress::parse(email).map_err(|problem| anyhow::anyhow!("--email {problem}"))?;
    let store = Store::open(&config.database_url).await?;
    let result = async {
        let user = store
            .user_by_email(&address)
            .await?
            .with_context(|| format!("no account has the email {address}"))?;
        mfa::reset(&store, &config.app_url, &user).await
    }
    .await;
    store.close().await;
    if result? {
        println!("two-factor authentication turned off for {address}; the owner is emailed");
    } else {
        println!("{address} had no two-factor authentication on; nothing changed");
    }
    Ok(())
}

/// Adds a new signing key; prints its `kid`. Running servers sign with it
/// from their next login or refresh; tokens signed by the previous key keep
/// verifying (and it stays in the JWKS) until they expire. Refused when
/// `SESAME_JWT_SECRET` is set: stored keys are not used then.
pub async fn rotate_keys(config: &Config) -> anyhow::Result<()> {
    if matches!(config.jwt, JwtSigning::Hs256(_)) {
        anyhow::bail!(
            "SESAME_JWT_SECRET is set: tokens are signed with that shared secret, not with \
             stored keys; to rotate, change the secret"
        );
    }
    let store = Store::open(&config.database_url).await?;
    let result = async {
        // On a new database this first makes the initial key, so the
        // rotation below is a real one.
        store.signing_keys().await?;
        let key = Ed25519Key::generate()?;
        store.add_signing_key(&key).await?;
        anyhow::Ok(key.kid)
    }
    .await;
    store.close().await;
    let kid = result?;
    println!(
        "new signing key {kid}: new tokens are signed with it from the next login or refresh; \
         tokens signed by the previous key stay valid until they expire"
    );
    Ok(())
}

/// Reads a password from standard input: everything up to the end, without
/// the final line break (`echo pw | sesame …` and `sesame … < file` both work).
pub fn read_password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let password = input
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&input);
    if password.is_empty() {
        anyhow::bail!(
            "no password on standard input (pipe it in: `echo … | sesame admin create …`)"
        );
    }
    Ok(password.to_owned())
}
