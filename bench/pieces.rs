//! Criterion micro-benchmarks of the pieces a request is made of: argon2id
//! hash and verify (default parameters), JWT sign and verify, one-time code
//! and token generation and hashing, and the session lookup behind every
//! authenticated request.
//!
//!     cargo bench --bench pieces            # all of them
//!     cargo bench --bench pieces -- jwt     # only those whose name has "jwt"
//!
//! The load benchmark (`bench/load.py`) measures whole requests; these say
//! where their time goes.

use std::time::Duration;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sesame::config::Config;
use sesame::domain::codes::{OpaqueToken, VerificationCode};
use sesame::domain::email::EmailAddress;
use sesame::domain::password::{NewPassword, PasswordHasher};
use sesame::domain::referral::ReferralCode;
use sesame::domain::tokens::{Ed25519Key, Keyring};
use sesame::mail::templates;
use sesame::store::Store;
use sesame::store::sessions::NewSession;
use sesame::store::users::{CodePurpose, NewCode, NewUser};

const PASSWORD: &str = "correct horse battery staple";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// argon2id with the default (OWASP) parameters, as configured out of the box.
fn passwords(c: &mut Criterion) {
    let rt = runtime();
    let params = Config::defaults().argon2;
    let hasher = rt.block_on(PasswordHasher::new(params, 1)).expect("hasher");
    let password = NewPassword::unchecked(PASSWORD);
    let stored = rt.block_on(hasher.hash(&password)).expect("hash");
    let mut group = c.benchmark_group("argon2id_default");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("hash", |b| {
        b.to_async(&rt).iter(|| hasher.hash(&password));
    });
    group.bench_function("verify", |b| {
        b.to_async(&rt)
            .iter(|| hasher.verify(PASSWORD, Some(stored.as_str())));
    });
    group.finish();
}

/// Access tokens: EdDSA (the default) and HS256.
fn jwt(c: &mut Criterion) {
    let eddsa = Keyring::eddsa(
        &[Ed25519Key::generate().expect("key")],
        "http://localhost:5000",
        "sesame",
        Duration::ZERO,
        Duration::from_secs(900),
    )
    .expect("keyring");
    let hs256 = Keyring::hs256(
        b"0123456789abcdef0123456789abcdef",
        "http://localhost:5000",
        "sesame",
        Duration::ZERO,
    );
    let ttl = Duration::from_secs(900);
    let user = uuid::Uuid::now_v7().to_string();
    let session = uuid::Uuid::now_v7().to_string();
    for (name, keys) in [("eddsa", &eddsa), ("hs256", &hs256)] {
        let token = keys.issue(&user, &session, "user", ttl).expect("token");
        c.bench_function(&format!("jwt_{name}_sign"), |b| {
            b.iter(|| keys.issue(&user, &session, "user", ttl));
        });
        // The full check, as a token's first request pays it ...
        c.bench_function(&format!("jwt_{name}_verify"), |b| {
            b.iter(|| {
                keys.verify_signature(&token, chrono::Utc::now())
                    .expect("valid")
            });
        });
        // ... and every later request, which finds the verdict remembered.
        c.bench_function(&format!("jwt_{name}_verify_remembered"), |b| {
            b.iter(|| keys.verify(&token).expect("valid"));
        });
    }
}

/// One-time secrets: generation from the OS CSPRNG and the stored hash.
fn secrets(c: &mut Criterion) {
    c.bench_function("verification_code_generate", |b| {
        b.iter(VerificationCode::generate)
    });
    let code = VerificationCode::generate();
    c.bench_function("verification_code_hash", |b| {
        b.iter(|| code.hash_for("0192a7c4-0000-7000-8000-000000000000"))
    });
    c.bench_function("opaque_token_generate", |b| b.iter(OpaqueToken::generate));
    let token = OpaqueToken::generate();
    c.bench_function("opaque_token_hash", |b| b.iter(|| token.hash()));
    c.bench_function("opaque_token_parse", |b| {
        b.iter(|| OpaqueToken::parse(token.expose()))
    });
    c.bench_function("referral_code_generate", |b| b.iter(ReferralCode::generate));
}

/// The database read behind every authenticated request, on a WAL file
/// database in a temporary directory.
fn session_lookup(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt.block_on(Store::open(&url)).expect("store");
    let user_id = uuid::Uuid::now_v7().to_string();
    let session_id = uuid::Uuid::now_v7().to_string();
    rt.block_on(async {
        let email = &EmailAddress::parse("bench@example.com").map_err(anyhow::Error::msg)?;
        let code_hash = VerificationCode::generate().hash_for(&user_id);
        let mail = templates::verification(
            "http://localhost:5000",
            email,
            "123456",
            Duration::from_secs(900),
        );
        store
            .insert_user(
                &NewUser {
                    id: &user_id,
                    email,
                    password_hash: "not-a-hash",
                    name: None,
                    referral_code: ReferralCode::generate().as_str(),
                    referred_by: None,
                },
                &NewCode {
                    purpose: CodePurpose::Activation,
                    hash: &code_hash,
                    expires_at: Utc::now() + Duration::from_secs(900),
                },
                &mail,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        store
            .create_session(&NewSession {
                id: &session_id,
                user_id: &user_id,
                user_agent: Some("bench"),
                ip: Some("127.0.0.1"),
                expires_at: Utc::now() + Duration::from_secs(3600),
                refresh_hash: &OpaqueToken::generate().hash(),
            })
            .await
    })
    .expect("seed the database");
    c.bench_function("live_session", |b| {
        b.to_async(&rt)
            .iter(|| store.live_session(&session_id, &user_id));
    });
    c.bench_function("user_by_id", |b| {
        b.to_async(&rt).iter(|| store.user_by_id(&user_id));
    });
    c.bench_function("create_session", |b| {
        b.to_async(&rt).iter_batched(
            || (uuid::Uuid::now_v7().to_string(), OpaqueToken::generate()),
            |(id, refresh)| {
                let store = &store;
                let user_id = &user_id;
                async move {
                    store
                        .create_session(&NewSession {
                            id: &id,
                            user_id,
                            user_agent: None,
                            ip: None,
                            expires_at: Utc::now() + Duration::from_secs(3600),
                            refresh_hash: &refresh.hash(),
                        })
                        .await
                }
            },
            BatchSize::SmallInput,
        );
    });
    rt.block_on(store.close());
}

criterion_group!(benches, jwt, secrets, session_lookup, passwords);
criterion_main!(benches);
