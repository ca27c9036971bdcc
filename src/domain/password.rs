//! Passwords: the policy a new password must meet, and argon2id hashing run
//! off the async runtime on a bounded number of threads (see [`super::hashing`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;

use super::email::EmailAddress;
use super::hashing::{self, HashThreads, Sizing};
pub use super::hashing::{Busy, Place, QueueStats};
use super::secret::Secret;
use crate::config::Argon2Params;

/// Shortest and longest accepted password, in characters.
pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// A password that met the policy; only ever hashed.
#[derive(Debug, Clone)]
pub struct NewPassword(Secret<String>);

impl NewPassword {
    /// Checks the policy; the error tells the user why the password is refused.
    pub fn parse(raw: &str, email: &EmailAddress) -> Result<NewPassword, String> {
        let len = raw.chars().count();
        if len < MIN_LEN {
            return Err(format!("must be at least {MIN_LEN} characters"));
        }
        if len > MAX_LEN {
            return Err(format!("must be at most {MAX_LEN} characters"));
        }
        if raw.contains('\0') {
            return Err("must not contain NUL characters".to_owned());
        }
        let lower = raw.to_lowercase();
        if lower == email.as_str() {
            return Err("must not be your email address".to_owned());
        }
        // zxcvbn estimates guesses against common passwords, names, words,
        // keyboard patterns, dates and the user's own email. Score 2 (10^6 or
        // more guesses) refuses all of those yet accepts 8 random characters
        // (score 3 needs over 10^8 guesses, which no 8-character password
        // reaches in zxcvbn's model); argon2id makes each guess expensive.
        let (local, domain) = email
            .as_str()
            .split_once('@')
            .unwrap_or((email.as_str(), ""));
        let estimate = zxcvbn::zxcvbn(raw, &[email.as_str(), local, domain]);
        if estimate.score() < zxcvbn::Score::Two {
            return Err(weakness(estimate.feedback()));
        }
        Ok(NewPassword(Secret::new(raw.to_owned())))
    }

    /// Wraps a password that is already in use (re-hashing it with new
    /// parameters), skipping the policy that applies to new ones.
    pub fn unchecked(raw: &str) -> NewPassword {
        NewPassword(Secret::new(raw.to_owned()))
    }

    /// The password text, for hashing.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// Says why a password is weak, from zxcvbn's feedback.
fn weakness(feedback: Option<&zxcvbn::feedback::Feedback>) -> String {
    let mut message = "is too easy to guess".to_owned();
    if let Some(feedback) = feedback {
        if let Some(warning) = feedback.warning() {
            message.push_str(&format!(
                ": {}",
                warning.to_string().trim_end_matches('.').to_lowercase()
            ));
        }
        if let Some(suggestion) = feedback.suggestions().first() {
            message.push_str(&format!(
                ". {}",
                suggestion.to_string().trim_end_matches('.')
            ));
        }
    }
    message
}

/// How much hashing work may wait: about this long for all the threads.
const QUEUE_WORK: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords on `limit` dedicated threads (the
/// concurrency limit): at most `limit` hashes run at once, the others wait
/// in line, and hashing memory stays within `limit` × the argon2 memory.
/// The line holds what the threads run in about a second ([`QUEUE_WORK`]);
/// beyond that, a hash is refused as [`Busy`] instead of queued.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    threads: Arc<HashThreads>,
    /// A hash of a random password, verified when the account does not
    /// exist so unknown-email logins cost the same as wrong passwords.
    dummy_hash: Arc<String>,
}

impl PasswordHasher {
    /// Starts the hashing threads; computes the dummy hash once (one hash
    /// at start-up, in memory that is freed again, so an idle server keeps
    /// no hashing memory). That hash is timed: the queue holds as many
    /// hashes as `limit` threads run in [`QUEUE_WORK`] at that cost at
    /// first, then at the running average of the hashes it runs.
    pub async fn new(params: Argon2Params, limit: usize) -> anyhow::Result<PasswordHasher> {
        let dummy = super::codes::OpaqueToken::generate();
        let started = Instant::now();
        let dummy_hash = hash_blocking(params, dummy.expose().to_owned()).await?;
        let sizing = Sizing::Work {
            work: QUEUE_WORK,
            first: started.elapsed(),
        };
        let threads = HashThreads::start(limit, &argon2_params(params)?, sizing)?;
        tracing::debug!(
            cost_ms = started.elapsed().as_millis() as u64,
            capacity = threads.stats().capacity,
            "password hashing queue sized"
        );
        Ok(PasswordHasher {
            params,
            threads: Arc::new(threads),
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Takes a place in the hashing queue for a hash to come, or [`Busy`]
    /// when the queue is full. Take it before the work that leads to the
    /// hash, so a refused request has done nothing.
    pub fn reserve(&self) -> Result<Place, Busy> {
        self.threads.reserve()
    }

    /// [`Busy`] when the hashing queue is full now: a refusal that costs
    /// nothing, before the work a hash needs.
    pub fn refuse_if_full(&self) -> Result<(), Busy> {
        self.threads.refuse_if_full()
    }

    /// Holds a request refused as [`Busy`] until a place in the queue is
    /// given back, or for `at_most` (its `Retry-After`). A client that
    /// retries at once, whatever `Retry-After` says, then retries at the
    /// pace places free up; answered at once, such clients' refusals took
    /// the core the hashes need (at 64 connections on one core, thousands
    /// a second, and successful logins fell to a third of what the hashing
    /// thread can do). The hold costs no CPU, and no place: the request is
    /// still refused, never queued.
    pub async fn hold_refusal(&self, at_most: Duration) {
        self.threads.place_freed(at_most).await;
    }

    /// The hashing queue's counters (hashes run, skipped, refused; its size).
    pub fn stats(&self) -> QueueStats {
        self.threads.stats()
    }

    /// Hashes a new password into a PHC string; [`Busy`] (inside the error)
    /// when the queue is full.
    pub async fn hash(&self, password: &NewPassword) -> anyhow::Result<String> {
        let place = self.reserve()?;
        self.hash_in(place, password).await
    }

    /// Hashes a new password in a place already taken.
    pub async fn hash_in(&self, place: Place, password: &NewPassword) -> anyhow::Result<String> {
        let params = argon2_params(self.params)?;
        let password = password.clone();
        self.threads
            .run(place, move |memory| {
                hashing::hash_in(memory, &params, password.expose().as_bytes())
            })
            .await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when
    /// there is no account, so both cases take the same time; [`Busy`]
    /// (inside the error) when the queue is full.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verdict> {
        let place = self.reserve()?;
        self.verify_in(place, password, stored).await
    }

    /// [`PasswordHasher::verify`] in a place already taken.
    pub async fn verify_in(
        &self,
        place: Place,
        password: &str,
        stored: Option<&str>,
    ) -> anyhow::Result<Verdict> {
        let exists = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy_hash).to_owned();
        let password = Secret::new(password.to_owned());
        let params = self.params;
        self.threads
            .run(place, move |memory| {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Verdict::Wrong;
                };
                let ok = hashing::verify_in(memory, &parsed, password.expose().as_bytes());
                match (ok && exists, needs_rehash(&parsed, params)) {
                    (false, _) => Verdict::Wrong,
                    (true, false) => Verdict::Correct,
                    (true, true) => Verdict::CorrectNeedsRehash,
                }
            })
            .await
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Wrong,
    Correct,
    /// Correct, but hashed with other parameters than the configured ones.
    CorrectNeedsRehash,
}

fn argon2_params(p: Argon2Params) -> anyhow::Result<Params> {
    Params::new(p.memory_kib, p.iterations, p.parallelism, None)
        .map_err(|e| anyhow::anyhow!("SESAME_ARGON2_* parameters are invalid: {e}"))
}

fn needs_rehash(hash: &PasswordHash<'_>, p: Argon2Params) -> bool {
    let Ok(current) = Params::try_from(hash) else {
        return true;
    };
    hash.algorithm.as_str() != "argon2id"
        || current.m_cost() != p.memory_kib
        || current.t_cost() != p.iterations
        || current.p_cost() != p.parallelism
}

async fn hash_blocking(params: Argon2Params, password: String) -> anyhow::Result<String> {
    let password = Secret::new(password);
    let params = argon2_params(params)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .context("password hashing task failed")?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> EmailAddress {
        EmailAddress::parse("sam@example.com").unwrap()
    }

    #[test]
    fn policy_explains_refusals() {
        assert!(
            NewPassword::parse("short", &email())
                .unwrap_err()
                .contains("at least 8")
        );
        assert!(
            NewPassword::parse(&"x".repeat(129), &email())
                .unwrap_err()
                .contains("at most")
        );
        for weak in ["Password123", "aaaaaaaaaa", "qwertyuiop"] {
            let why = NewPassword::parse(weak, &email()).unwrap_err();
            assert!(why.starts_with("is too easy to guess"), "{weak}: {why}");
        }
        let why = NewPassword::parse("password1", &email()).unwrap_err();
        assert!(why.contains("common"), "{why}");
        assert!(
            NewPassword::parse("SAM@example.com", &email())
                .unwrap_err()
                .contains("email")
        );
        assert!(NewPassword::parse("correct horse battery", &email()).is_ok());
    }

    #[tokio::test]
    async fn verifies_and_flags_old_parameters() {
        let cheap = Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = PasswordHasher::new(cheap, 2).await.unwrap();
        let pw = NewPassword::parse("correct horse battery", &email()).unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(
            hasher.verify(pw.expose(), Some(&hash)).await.unwrap(),
            Verdict::Correct
        );
        assert_eq!(
            hasher.verify("wrong password", Some(&hash)).await.unwrap(),
            Verdict::Wrong
        );
        assert_eq!(
            hasher.verify(pw.expose(), None).await.unwrap(),
            Verdict::Wrong
        );
        let stronger = Argon2Params {
            memory_kib: 2048,
            ..cheap
        };
        let upgraded = PasswordHasher::new(stronger, 2).await.unwrap();
        assert_eq!(
            upgraded.verify(pw.expose(), Some(&hash)).await.unwrap(),
            Verdict::CorrectNeedsRehash
        );
    }
}
