//! Every check of a password (login, deleting the account, changing its
//! password or address, the second-factor endpoints) goes through
//! [`check_password`], and every check of a second-factor code through
//! [`check_code`], in this order:
//!
//! 1. the lock, and the attempt counted as a failure, in one transaction:
//!    a locked subject is answered `429 ACCOUNT_LOCKED` without hashing, so
//!    48 parallel guesses from one network get at most
//!    `SESAME_LOGIN_MAX_FAILURES` hashes, and the others never touch the
//!    hashing queue;
//! 2. a place in the hashing queue, or `503 BUSY` (the count is taken back;
//!    a queue already full before step 1 refuses before it, writing nothing);
//! 3. the hash;
//! 4. the attempt settled: a right password takes its count back (a login
//!    that opens a session does so in the session's transaction), a wrong
//!    one keeps it (and the failure that locks the account everywhere
//!    emails the owner).

use chrono::Utc;
use ipnet::IpNet;

use super::refusal::{FlowResult, Refusal};
use crate::domain::email::EmailAddress;
use crate::domain::password::Verdict;
use crate::mail::templates;
use crate::state::AppState;
use crate::store::lockout::{
    CheckAdmission, Counted, LoginLimits, LoginSubject, RightAttempt, Settled,
};

/// A password to check, and whose it is.
pub struct PasswordCheck<'a> {
    /// Whose failures count: an account, or an address without one.
    pub subject: LoginSubject<'a>,
    /// The client's network (see `ClientIp::network`).
    pub network: IpNet,
    /// The stored hash; `None` for an address without an account (a dummy
    /// hash is checked instead, at the same cost).
    pub stored: Option<&'a str>,
    /// The address to tell when the account gets locked everywhere; `None`
    /// for an unknown address or a disabled account.
    pub owner: Option<&'a EmailAddress>,
    /// Whether a right password counts as a success (clearing the count).
    /// `false` where a right password must answer like a wrong one.
    pub right_counts: bool,
    /// Whether a right password also forgets the network's earlier
    /// failures. `false` for an account with a second factor: its password
    /// is only half the proof, and a right one must not wipe the count of
    /// wrong codes before it (else each new login would bring new guesses).
    pub right_clears: bool,
}

/// Checks `password` under the lockout (see the module's steps) and returns
/// the hash's verdict.
pub async fn check_password(
    state: &AppState,
    check: PasswordCheck<'_>,
    password: &str,
) -> FlowResult<Verdict> {
    // Nothing is left to settle without `defer_right`.
    Ok(check_login_password(state, check, password, false).await?.0)
}

/// [`check_password`] for a login, which with `defer_right` leaves step 4
/// of an account's right password that clears to the caller: the counted
/// attempt comes back, for the transaction that opens the session to take
/// back (`Store::create_session_with_amr`) — one commit instead of two. A
/// login that opens no session must [`take_back`] it.
pub async fn check_login_password(
    state: &AppState,
    check: PasswordCheck<'_>,
    password: &str,
    defer_right: bool,
) -> FlowResult<(Verdict, Option<Counted>)> {
    let network = check.network.to_string();
    // A full queue refuses before the attempt is counted: shedding must be
    // cheap. (Counted first, every refusal cost two write transactions, and
    // clients retrying their 503s at once took the core from the hashing:
    // bench/load.py's login at 64 connections on one core got 39% of the
    // hash ceiling.)
    state.hasher.refuse_if_full().map_err(anyhow::Error::from)?;
    let counted = admit(state, check.subject, &network).await?;
    let place = match state.hasher.reserve() {
        Ok(place) => place,
        Err(busy) => {
            state
                .store
                .settle_password_check(check.subject, &network, counted, Settled::NotChecked, None)
                .await?;
            return Err(anyhow::Error::from(busy).into());
        }
    };
    let verdict = state
        .hasher
        .verify_in(place, password, check.stored)
        .await?;
    let settled = match check.right_counts && verdict != Verdict::Wrong {
        true if check.right_clears => Settled::Right,
        // Only this attempt is taken back; earlier failures stay.
        true => Settled::NotChecked,
        false => Settled::Wrong,
    };
    let account = matches!(check.subject, LoginSubject::Account(_));
    if defer_right && account && settled == Settled::Right {
        return Ok((verdict, Some(counted)));
    }
    settle(
        state,
        check.subject,
        &network,
        counted,
        settled,
        check.owner,
    )
    .await?;
    Ok((verdict, None))
}

/// Step 4 of a right password that [`check_login_password`] left to a
/// login which opens no session after all.
pub async fn take_back(state: &AppState, right: Option<RightAttempt<'_>>) -> FlowResult<()> {
    if let Some(right) = right {
        let subject = LoginSubject::Account(right.user_id);
        state
            .store
            .settle_password_check(subject, right.network, right.counted, Settled::Right, None)
            .await?;
    }
    Ok(())
}

/// Checks a second-factor code under the same lockout as passwords: a
/// locked subject is refused before `check` runs, the attempt is counted
/// before it, a right code takes its count back and a wrong one keeps it.
/// So guesses at codes lock the account for the guesser's network as wrong
/// passwords do, and count towards the lock everywhere. `check` answers
/// whether the code was right.
pub async fn check_code(
    state: &AppState,
    subject: LoginSubject<'_>,
    network: IpNet,
    owner: Option<&EmailAddress>,
    check: impl std::future::Future<Output = FlowResult<bool>>,
) -> FlowResult<bool> {
    let network = network.to_string();
    let counted = admit(state, subject, &network).await?;
    let right = match check.await {
        Ok(right) => right,
        Err(refusal) => {
            state
                .store
                .settle_password_check(subject, &network, counted, Settled::NotChecked, None)
                .await?;
            return Err(refusal);
        }
    };
    let settled = if right {
        Settled::Right
    } else {
        Settled::Wrong
    };
    settle(state, subject, &network, counted, settled, owner).await?;
    Ok(right)
}

fn limits(state: &AppState) -> LoginLimits {
    LoginLimits {
        per_network: state.config.login_max_failures,
        all_networks: state.config.login_max_failures_all,
        lockout: state.config.login_lockout,
    }
}

/// Step 1: the lock, and the attempt counted as a failure.
async fn admit(state: &AppState, subject: LoginSubject<'_>, network: &str) -> FlowResult<Counted> {
    match state
        .store
        .begin_password_check(subject, network, limits(state))
        .await?
    {
        CheckAdmission::Locked(until) => Err(locked(until)),
        CheckAdmission::Counted(counted) => Ok(counted),
    }
}

/// Step 4: a right answer takes its count back, a wrong one keeps it (and
/// the failure that locks the account everywhere emails the owner).
async fn settle(
    state: &AppState,
    subject: LoginSubject<'_>,
    network: &str,
    counted: Counted,
    settled: Settled,
    owner: Option<&EmailAddress>,
) -> FlowResult<()> {
    let right = settled != Settled::Wrong;
    let lockout = state.config.login_lockout;
    let notice = owner
        .filter(|_| !right && counted.locks_everywhere)
        .map(|email| templates::account_locked(&state.config.app_url, email, lockout));
    state
        .store
        .settle_password_check(subject, network, counted, settled, notice.as_ref())
        .await?;
    if notice.is_some() {
        tracing::warn!("account locked everywhere after repeated failed password checks");
        state.wake_mailer();
    }
    Ok(())
}

/// The refusal of a locked account, with the wait in whole seconds.
fn locked(until: chrono::DateTime<Utc>) -> Refusal {
    // Rounded up: a client that waits as long as told must get in.
    let millis = (until - Utc::now()).num_milliseconds().max(1) as u64;
    Refusal::AccountLocked {
        retry_after_secs: millis.div_ceil(1000),
    }
}

/// The key failed logins to an address without an account are counted
/// under: a hash of the address (hex), so the table holds no addresses.
pub fn unknown_address_key(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("login:{}", address.trim().to_lowercase()));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
