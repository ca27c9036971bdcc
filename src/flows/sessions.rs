//! Session flows: login, refresh, authentication of access tokens, the
//! session list, logout.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ipnet::IpNet;

use super::password_check::{PasswordCheck, check_login_password, take_back, unknown_address_key};
use super::refusal::{FlowResult, Refusal};
use super::signup;
use crate::domain::claims::TokenError;
use crate::domain::codes::OpaqueToken;
use crate::domain::email::EmailAddress;
use crate::domain::mfa::{MFA_TOKEN_TTL, SignInMethod, amr_claim};
use crate::domain::password::{NewPassword, Verdict};
use crate::domain::session::Session;
use crate::domain::user::{Role, User};
use crate::state::AppState;
use crate::store::fault::fault_of;
use crate::store::lockout::{LoginSubject, RightAttempt};
use crate::store::sessions::{NewSession, RefreshOutcome};

/// How stale a session's `last_used_at` may get before a request records its
/// use: at most one write per session per interval, not one per request.
const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::seconds(60);

/// A fresh access/refresh token pair.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: OpaqueToken,
    pub expires_in: u64,
}

/// Where a login came from, kept with its session.
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The network failed logins are counted under (see `ClientIp::network`).
    pub network: IpNet,
}

/// Who is calling, as proven by a valid access token of a live session.
#[derive(Debug, Clone)]
pub struct Principal {
    pub session_id: String,
    /// The account as the database had it when the request was
    /// authenticated: its role is the role now, not the token's `role` claim.
    pub user: User,
}

impl Principal {
    /// The caller's user id.
    pub fn user_id(&self) -> &str {
        &self.user.id
    }
}

/// One of a user's live sessions.
pub struct SessionSummary {
    pub session: Session,
    /// Whether it is the session of the access token that asked.
    pub current: bool,
}

/// Checks a password and opens a session; with a second factor on, answers
/// [`Refusal::MfaRequired`] with the token of the login's second step.
///
/// With `SESAME_SIGNUP_CONCEALS_EXISTING`, the right password of an account
/// not yet verified answers like a wrong one (and counts like one): a
/// different answer would tell whoever just signed up with that address
/// whether it was free. The owner gets the verification code again instead.
pub async fn login(
    state: &Arc<AppState>,
    email: &str,
    password: &str,
    client: ClientInfo,
) -> FlowResult<TokenPair> {
    // Every path below costs the same: one lookup, one counted attempt, one
    // hash and its settling, whether or not the address has an account (a
    // malformed address is simply an unknown one).
    let address = EmailAddress::parse(email);
    let user = match &address {
        Ok(address) => state.store.user_by_email(address).await?,
        Err(_) => None,
    };
    let unknown_key = unknown_address_key(address.as_ref().map_or(email, |a| a.as_str()));
    let concealed =
        state.config.signup_conceals_existing && user.as_ref().is_some_and(|u| !u.active);
    let check = PasswordCheck {
        subject: match &user {
            Some(user) => LoginSubject::Account(&user.id),
            None => LoginSubject::Unknown(&unknown_key),
        },
        network: client.network,
        stored: user.as_ref().map(|u| u.password_hash.as_str()),
        // A disabled account is counted but not told: it cannot log in anyway.
        owner: user.as_ref().filter(|u| !u.disabled).map(|u| &u.email),
        right_counts: !concealed,
        right_clears: !user.as_ref().is_some_and(|u| u.mfa.totp),
    };
    // A right password's attempt comes back still counted (only for an
    // account, so not on the first refusal below): the session's
    // transaction takes it back, and every other end takes it back first.
    let (verdict, counted) = check_login_password(state, check, password, true).await?;
    let user = match (user, verdict) {
        (Some(user), Verdict::Correct | Verdict::CorrectNeedsRehash) => user,
        _ => return Err(Refusal::InvalidCredentials),
    };
    let network = client.network.to_string();
    let right = counted.map(|counted| RightAttempt {
        user_id: &user.id,
        network: &network,
        counted,
    });
    let refusal = if user.disabled {
        Some(Refusal::AccountDisabled)
    } else if !user.active {
        Some(Refusal::EmailNotVerified)
    } else {
        None
    };
    if concealed || refusal.is_some() || user.mfa.totp {
        take_back(state, right).await?;
    }
    if concealed {
        resend_code_later(state, user);
        return Err(Refusal::InvalidCredentials);
    }
    if let Some(refusal) = refusal {
        return Err(refusal);
    }
    if verdict == Verdict::CorrectNeedsRehash {
        upgrade_hash(state, &user.id, password).await;
    }
    if user.mfa.totp {
        return Err(second_step(state, &user).await?);
    }
    open_session_after(state, &user, &client, SignInMethod::Password, right).await
}

/// The answer to a right password on an account with a second factor: a
/// token for the login's second step (`POST /users/login/mfa`), no session.
async fn second_step(state: &AppState, user: &User) -> FlowResult<Refusal> {
    let token = OpaqueToken::generate();
    state
        .store
        .create_mfa_challenge(&token.hash(), &user.id, Utc::now() + MFA_TOKEN_TTL)
        .await?;
    let mut methods = vec!["totp"];
    if user.mfa.recovery_codes_left > 0 {
        methods.push("recovery");
    }
    if user.mfa.passkeys > 0 {
        methods.push("passkey");
    }
    Ok(Refusal::MfaRequired {
        mfa_token: token.expose().to_owned(),
        methods,
    })
}

/// Opens a session for a user who proved who they are with `method`.
pub(super) async fn open_session(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    method: SignInMethod,
) -> FlowResult<TokenPair> {
    open_session_after(state, user, client, method, None).await
}

/// [`open_session`] after a right password whose counted attempt the
/// session's transaction takes back (see `check_login_password`).
async fn open_session_after(
    state: &AppState,
    user: &User,
    client: &ClientInfo,
    method: SignInMethod,
    right: Option<RightAttempt<'_>>,
) -> FlowResult<TokenPair> {
    let session_id = uuid::Uuid::now_v7().to_string();
    let refresh_token = OpaqueToken::generate();
    let refresh_hash = refresh_token.hash();
    let created = state
        .store
        .create_session_with_amr(
            &NewSession {
                id: &session_id,
                user_id: &user.id,
                user_agent: client.user_agent.as_deref(),
                ip: client.ip.as_deref(),
                expires_at: Utc::now() + state.config.refresh_token_ttl,
                refresh_hash: &refresh_hash,
            },
            method.amr(),
            right.as_ref(),
        )
        .await;
    if let Err(error) = created {
        // The transaction took nothing back: a right password must not
        // stay counted as a failure.
        if let Err(refusal) = take_back(state, right).await {
            tracing::warn!(?refusal, "taking a right password's attempt back failed");
        }
        return Err(error.into());
    }
    issue_pair(
        state,
        &user.id,
        &session_id,
        user.role,
        method.amr(),
        refresh_token,
    )
    .await
}

/// Sends the verification code again (throttled like a resend), after the
/// answer: its write must not make this answer slower than a wrong
/// password's.
fn resend_code_later(state: &Arc<AppState>, user: User) {
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(refusal) = signup::resend_code(&state, &user).await {
            tracing::warn!(?refusal, "sending the verification code again failed");
        }
    });
}

/// Rotates a refresh token into a new pair for the same session.
pub async fn refresh(state: &AppState, presented: &str) -> FlowResult<TokenPair> {
    let presented = OpaqueToken::parse(presented).ok_or(Refusal::InvalidRefreshToken)?;
    let successor = OpaqueToken::generate();
    let outcome = state
        .store
        .rotate_refresh_token(
            &presented.hash(),
            &successor.hash(),
            state.config.refresh_reuse_grace,
        )
        .await?;
    match outcome {
        RefreshOutcome::Rotated {
            session_id,
            user_id,
            role,
            amr,
        } => issue_pair(state, &user_id, &session_id, role, &amr, successor).await,
        RefreshOutcome::ReuseDetected => {
            tracing::warn!("spent refresh token presented again; session revoked");
            Err(Refusal::InvalidRefreshToken)
        }
        RefreshOutcome::Invalid => Err(Refusal::InvalidRefreshToken),
    }
}

/// Verifies an access token and that its session is still live.
///
/// Cost per request: the signature check in memory, then one read by primary
/// key (session joined with its user) that answers revoked, expired and
/// disabled, and reads the current role. No cache: a revocation, a disabled
/// account or a demotion counts from the very next request, on every
/// instance sharing the database. `last_used_at` is written at most once a
/// minute per session.
pub async fn authenticate(state: &AppState, access_token: &str) -> FlowResult<Principal> {
    let claims = state
        .keys
        .verify(&state.store, access_token)
        .await?
        .map_err(|e| match e {
            TokenError::Expired => Refusal::AccessTokenExpired,
            TokenError::Invalid | TokenError::UnknownKey => Refusal::NotAuthenticated,
        })?;
    let Some(session) = state.store.live_session(&claims.sid, &claims.sub).await? else {
        return Err(Refusal::SessionEnded);
    };
    record_use(state, &claims.sid, session.last_used_at).await;
    Ok(Principal {
        session_id: claims.sid.clone(),
        user: session.user,
    })
}

/// The caller's live sessions, newest first, marking the current one.
pub async fn list(state: &AppState, principal: &Principal) -> FlowResult<Vec<SessionSummary>> {
    let sessions = state.store.live_sessions(principal.user_id()).await?;
    Ok(sessions
        .into_iter()
        .map(|session| SessionSummary {
            current: session.id == principal.session_id,
            session,
        })
        .collect())
}

/// Ends one of the caller's sessions (the current one included); `404` if
/// it is not a live session of theirs.
pub async fn end(state: &AppState, principal: &Principal, session_id: &str) -> FlowResult<()> {
    if state
        .store
        .revoke_session(session_id, principal.user_id())
        .await?
    {
        Ok(())
    } else {
        Err(Refusal::NotFound("No such session"))
    }
}

/// Ends the caller's session, or every session of the user with `all`.
pub async fn logout(state: &AppState, principal: &Principal, all: bool) -> FlowResult<()> {
    if all {
        state.store.revoke_all_sessions(principal.user_id()).await?;
    } else {
        state
            .store
            .revoke_session(&principal.session_id, principal.user_id())
            .await?;
    }
    Ok(())
}

async fn issue_pair(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    role: Role,
    amr: &str,
    refresh_token: OpaqueToken,
) -> FlowResult<TokenPair> {
    let ttl = state.config.access_token_ttl;
    let keys = state.keys.for_signing(&state.store).await?;
    let access_token =
        keys.issue_with_amr(user_id, session_id, role.as_str(), &amr_claim(amr), ttl)?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        expires_in: ttl.as_secs(),
    })
}

/// Moves a session's `last_used_at` forward if it is older than the
/// resolution. Best effort: a failure is logged and the request goes on.
async fn record_use(state: &AppState, session_id: &str, last_used_at: DateTime<Utc>) {
    let stale_before = Utc::now() - LAST_USED_RESOLUTION;
    if last_used_at >= stale_before {
        return;
    }
    if let Err(e) = state.store.touch_session(session_id, stale_before).await {
        // A storage fault is logged once by the store, not on every request.
        if fault_of(&e).is_none() {
            tracing::warn!(error = format!("{e:#}"), "recording a session's use failed");
        }
    }
}

/// Re-hashes a password with the current argon2 parameters. A failure here
/// must not fail the login, so it is only logged.
async fn upgrade_hash(state: &AppState, user_id: &str, password: &str) {
    let result = async {
        // An old password may predate today's policy; it is re-hashed as it is.
        let password = NewPassword::unchecked(password);
        let hash = state.hasher.hash(&password).await?;
        state.store.update_password_hash(user_id, &hash).await
    }
    .await;
    if let Err(e) = result {
        // A storage fault is logged once by the store, not on every login.
        if fault_of(&e).is_none() {
            tracing::warn!(error = format!("{e:#}"), "upgrading a password hash failed");
        }
    }
}
