//! Passkeys: adding one to a signed-in account (after the password),
//! listing and removing them, and logging in with one alone.
//!
//! Each ceremony is started here, kept in the database for
//! [`CHALLENGE_TTL`], and finished at most once (taking it deletes it),
//! on any instance. Ceremony checks are webauthn-rs's (see
//! [`crate::domain::passkey`]).

use chrono::Utc;
use ipnet::IpNet;
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PublicKeyCredential, RegisterPublicKeyCredential};

use super::profile::confirm_password;
use super::refusal::{FlowResult, Refusal};
use super::second_factor::{check_step_up, require_code};
use super::sessions::{ClientInfo, Principal, TokenPair, open_session};
use crate::domain::email::EmailAddress;
use crate::domain::passkey::{
    CHALLENGE_TTL, Ceremony, CeremonyError, PasskeyInfo, RelyingParty, decoy_credential_ids,
    passkey_name, passkey_sign_in,
};
use crate::domain::user::User;
use crate::mail::notices;
use crate::state::AppState;
use crate::store::passkeys::{NewChallenge, NewPasskey, StoredPasskey, TakenChallenge};

/// The purposes a kept ceremony is taken for.
const REGISTER: &str = "register";
const LOGIN: &str = "login";

/// A started ceremony: its id, and the options for the authenticator
/// (`publicKey` of `navigator.credentials.create()` or `.get()`, binary
/// fields base64url).
pub struct Started {
    pub challenge_id: String,
    pub public_key: Value,
}

/// Starts adding a passkey to the caller's account, after checking the
/// password (like a login: locked networks are refused before any hash)
/// and, with a second factor on, `code` (step-up).
pub async fn start_registration(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    code: Option<&str>,
) -> FlowResult<Started> {
    let rp = relying_party(state)?;
    let user = &principal.user;
    let code = require_code(user, code)?;
    confirm_password(state, user, network, password).await?;
    check_step_up(state, user, network, code).await?;
    let existing = passkeys_of(state, &user.id).await?;
    let existing: Vec<Passkey> = existing.into_iter().map(|(_, p)| p).collect();
    let (options, ceremony) = rp.start_registration(
        user_handle(user)?,
        user.email.as_str(),
        display_name(user),
        &existing,
    )?;
    let challenge_id = keep(state, Some(&user.id), REGISTER, &ceremony).await?;
    started(challenge_id, &options.public_key)
}

/// Finishes adding a passkey: checks the new credential against the
/// ceremony the caller started, stores it and emails the owner.
pub async fn finish_registration(
    state: &AppState,
    principal: &Principal,
    challenge_id: &str,
    credential: Value,
    name: Option<&str>,
) -> FlowResult<PasskeyInfo> {
    let rp = relying_party(state)?;
    let name = passkey_name(name).map_err(|problem| Refusal::invalid_field("name", problem))?;
    let user = &principal.user;
    let taken = take(state, challenge_id, REGISTER)
        .await?
        .filter(|c| c.user_id.as_deref() == Some(user.id.as_str()))
        .ok_or(Refusal::InvalidPasskey)?;
    let Ceremony::Register(ceremony) = ceremony_of(&taken)? else {
        return Err(Refusal::InvalidPasskey);
    };
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| Refusal::InvalidPasskey)?;
    let passkey = rp
        .finish_registration(&credential, &ceremony)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey registration was refused");
            Refusal::InvalidPasskey
        })?;
    let info = PasskeyInfo {
        id: Uuid::now_v7().to_string(),
        name,
        created_at: Utc::now(),
        last_used_at: None,
    };
    let serialized = serde_json::to_string(&passkey)
        .map_err(|e| anyhow::anyhow!("serializing a passkey failed: {e}"))?;
    let notice = notices::passkey_added(&state.config.app_url, &user.email);
    let stored = state
        .store
        .insert_passkey(
            &NewPasskey {
                id: &info.id,
                user_id: &user.id,
                credential_id: passkey.cred_id(),
                credential: &serialized,
                name: &info.name,
                sign_count: 0,
                created_at: info.created_at,
            },
            &notice,
        )
        .await?;
    if !stored {
        // The authenticator was asked not to make a second credential for
        // this account; one that did, or a credential of another account,
        // is not taken.
        return Err(Refusal::InvalidPasskey);
    }
    state.wake_mailer();
    Ok(info)
}

/// The caller's passkeys, oldest first.
pub async fn list(state: &AppState, principal: &Principal) -> FlowResult<Vec<PasskeyInfo>> {
    let stored = state.store.passkeys_of(principal.user_id()).await?;
    Ok(stored.into_iter().map(info_of).collect())
}

/// Removes one of the caller's passkeys after checking the password (and,
/// with a second factor on, `code`), and emails the owner; `404` if the
/// caller has no such passkey.
pub async fn delete(
    state: &AppState,
    principal: &Principal,
    network: IpNet,
    password: &str,
    code: Option<&str>,
    passkey_id: &str,
) -> FlowResult<()> {
    let user = &principal.user;
    let code = require_code(user, code)?;
    confirm_password(state, user, network, password).await?;
    check_step_up(state, user, network, code).await?;
    let notice = notices::passkey_removed(&state.config.app_url, &user.email);
    if !state
        .store
        .delete_passkey(&user.id, passkey_id, &notice)
        .await?
    {
        return Err(Refusal::NotFound("No such passkey"));
    }
    state.wake_mailer();
    Ok(())
}

/// Starts a login with a passkey. Without an address, any passkey of this
/// relying party may answer; with one, its passkeys are offered, and an
/// address without passkeys (or without an account) gets decoys: the same
/// shape, the same ids each time, so the answer tells nothing.
pub async fn start_login(state: &AppState, email: Option<&str>) -> FlowResult<Started> {
    let rp = relying_party(state)?;
    let (offered, user_id, decoy) = match email {
        None => (None, None, false),
        Some(raw) => match offered_credentials(state, raw).await? {
            Offered::Passkeys { user_id, ids } => (Some(ids), Some(user_id), false),
            Offered::Decoys(ids) => (Some(ids), None, true),
        },
    };
    let (options, login) = rp.start_login(offered)?;
    let ceremony = if decoy {
        Ceremony::Decoy
    } else {
        Ceremony::Login(login)
    };
    let challenge_id = keep(state, user_id.as_deref(), LOGIN, &ceremony).await?;
    started(challenge_id, &options.public_key)
}

/// Finishes a login with a passkey: the credential must answer the
/// ceremony (see [`check_assertion`]); then a session opens like a
/// password login's.
pub async fn finish_login(
    state: &AppState,
    challenge_id: &str,
    credential: Value,
    client: ClientInfo,
) -> FlowResult<TokenPair> {
    let taken = take(state, challenge_id, LOGIN)
        .await?
        .ok_or(Refusal::InvalidCredentials)?;
    let (stored, user_verified) =
        check_assertion(state, &taken, credential, || Refusal::InvalidCredentials).await?;
    let user = state
        .store
        .user_by_id(&stored.user_id)
        .await?
        .ok_or(Refusal::InvalidCredentials)?;
    if user.disabled {
        return Err(Refusal::AccountDisabled);
    }
    if !user.active {
        return Err(Refusal::EmailNotVerified);
    }
    open_session(state, &user, &client, passkey_sign_in(user_verified)).await
}

/// Checks an assertion against a taken login ceremony: the credential must
/// be a stored passkey (of the account the ceremony is for, if any; else of
/// the account its user handle names), verified by webauthn-rs against the
/// passkey as stored now, with a counter that moved forward (else the owner
/// is emailed). Records the use; the passkey and whether the user was
/// verified. Every refusal is `refused()`.
pub(super) async fn check_assertion(
    state: &AppState,
    taken: &TakenChallenge,
    credential: Value,
    refused: fn() -> Refusal,
) -> FlowResult<(StoredPasskey, bool)> {
    let rp = relying_party(state)?;
    let Ceremony::Login(ceremony) = ceremony_of(taken)? else {
        return Err(refused());
    };
    let credential: PublicKeyCredential =
        serde_json::from_value(credential).map_err(|_| refused())?;
    let stored = state
        .store
        .passkey_by_credential_id(&credential.raw_id)
        .await?
        .ok_or_else(refused)?;
    let named_account = taken
        .user_id
        .as_deref()
        .is_none_or(|id| id == stored.user_id);
    let handle = rp.user_handle_of(&credential);
    let handle_matches = handle.is_none_or(|h| h.to_string() == stored.user_id);
    // A discoverable login has only the authenticator's word for the account.
    let handle_required = taken.user_id.is_some() || handle.is_some();
    if !named_account || !handle_matches || !handle_required {
        return Err(refused());
    }
    let passkey = passkey_of(&stored)?;
    let asserted = match rp.finish_login(&credential, ceremony, &passkey) {
        Ok(asserted) => asserted,
        Err(CeremonyError::Refused) => return Err(refused()),
        Err(CeremonyError::CounterRegressed) => {
            warn_owner_of_a_clone(state, &stored).await?;
            return Err(refused());
        }
    };
    let updated = serde_json::to_string(&asserted.updated(passkey))
        .map_err(|e| anyhow::anyhow!("serializing a passkey failed: {e}"))?;
    state
        .store
        .record_passkey_use(&stored.id, &updated, asserted.counter)
        .await?;
    Ok((stored, asserted.user_verified))
}

/// What a login for an address offers.
enum Offered {
    Passkeys { user_id: String, ids: Vec<Vec<u8>> },
    Decoys(Vec<Vec<u8>>),
}

/// The credentials offered to an address: its passkeys, or decoys.
async fn offered_credentials(state: &AppState, raw: &str) -> FlowResult<Offered> {
    let address = EmailAddress::parse(raw).ok();
    let user = match &address {
        Some(address) => state.store.user_by_email(address).await?,
        None => None,
    };
    if let Some(user) = user {
        let passkeys = passkeys_of(state, &user.id).await?;
        if !passkeys.is_empty() {
            let ids = passkeys.iter().map(|(_, p)| p.cred_id().clone()).collect();
            return Ok(Offered::Passkeys {
                user_id: user.id,
                ids,
            });
        }
    }
    let key = state.store.passkey_decoy_key().await?;
    let normalized = address.as_ref().map_or(raw, |a| a.as_str());
    Ok(Offered::Decoys(decoy_credential_ids(&key, normalized)?))
}

/// Queues the notice that a passkey's counter went backwards (throttled
/// like every notice of its kind).
async fn warn_owner_of_a_clone(state: &AppState, stored: &StoredPasskey) -> FlowResult<()> {
    tracing::warn!(
        passkey = %stored.id,
        "a passkey login was refused: its signature counter went backwards (cloned key?)"
    );
    let Some(owner) = state.store.user_by_id(&stored.user_id).await? else {
        return Ok(());
    };
    let notice = notices::passkey_counter_regressed(&state.config.app_url, &owner.email);
    if state
        .store
        .queue_email(Some(&owner.id), &notice, state.config.email_min_interval)
        .await?
    {
        state.wake_mailer();
    }
    Ok(())
}

pub(super) fn relying_party(state: &AppState) -> FlowResult<&RelyingParty> {
    state.config.passkeys.as_ref().ok_or(Refusal::PasskeysOff)
}

/// The user handle authenticators keep for an account: its id (random, no
/// personal data).
fn user_handle(user: &User) -> FlowResult<Uuid> {
    Uuid::parse_str(&user.id)
        .map_err(|e| anyhow::anyhow!("a user id that is not a UUID: {e}").into())
}

/// The name authenticators show for the account.
fn display_name(user: &User) -> &str {
    user.name.as_deref().unwrap_or(user.email.as_str())
}

pub(super) async fn passkeys_of(
    state: &AppState,
    user_id: &str,
) -> FlowResult<Vec<(StoredPasskey, Passkey)>> {
    let stored = state.store.passkeys_of(user_id).await?;
    stored
        .into_iter()
        .map(|s| {
            let passkey = passkey_of(&s)?;
            Ok((s, passkey))
        })
        .collect()
}

fn passkey_of(stored: &StoredPasskey) -> FlowResult<Passkey> {
    serde_json::from_str(&stored.credential)
        .map_err(|e| anyhow::anyhow!("a stored passkey does not parse: {e}").into())
}

fn info_of(stored: StoredPasskey) -> PasskeyInfo {
    PasskeyInfo {
        id: stored.id,
        name: stored.name,
        created_at: stored.created_at,
        last_used_at: stored.last_used_at,
    }
}

/// Keeps a started ceremony; its id.
async fn keep(
    state: &AppState,
    user_id: Option<&str>,
    purpose: &str,
    ceremony: &Ceremony,
) -> FlowResult<String> {
    let id = Uuid::new_v4().to_string();
    keep_as(state, &id, user_id, purpose, ceremony).await?;
    Ok(id)
}

/// Keeps a started ceremony under `id`.
pub(super) async fn keep_as(
    state: &AppState,
    id: &str,
    user_id: Option<&str>,
    purpose: &str,
    ceremony: &Ceremony,
) -> FlowResult<()> {
    let serialized = serde_json::to_string(ceremony)
        .map_err(|e| anyhow::anyhow!("serializing a ceremony failed: {e}"))?;
    state
        .store
        .insert_challenge(&NewChallenge {
            id,
            user_id,
            purpose,
            state: &serialized,
            expires_at: Utc::now() + CHALLENGE_TTL,
        })
        .await?;
    Ok(())
}

/// Takes (spends) a kept ceremony; `None` if unknown, spent or expired.
pub(super) async fn take(
    state: &AppState,
    challenge_id: &str,
    purpose: &str,
) -> FlowResult<Option<TakenChallenge>> {
    let taken = state.store.take_challenge(challenge_id, purpose).await?;
    Ok(taken.filter(|c| c.expires_at > Utc::now()))
}

fn ceremony_of(taken: &TakenChallenge) -> FlowResult<Ceremony> {
    serde_json::from_str(&taken.state)
        .map_err(|e| anyhow::anyhow!("a kept ceremony does not parse: {e}").into())
}

pub(super) fn started(
    challenge_id: String,
    public_key: &impl serde::Serialize,
) -> FlowResult<Started> {
    let public_key = serde_json::to_value(public_key)
        .map_err(|e| anyhow::anyhow!("serializing WebAuthn options failed: {e}"))?;
    Ok(Started {
        challenge_id,
        public_key,
    })
}
