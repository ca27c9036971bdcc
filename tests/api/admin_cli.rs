//! The operator's commands, run as real processes against a test database
//! (shared with an in-process server where the test needs one):
//! `sesame admin create` and `sesame keys rotate`.

use std::process::Stdio;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sesame::app::Application;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;

use crate::support::process::{self, Finished};
use crate::support::*;

/// Runs the `sesame` binary with `args` and `stdin` piped in, from an empty
/// directory with a clean environment (see [`crate::support::process::sesame`]).
async fn sesame(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Finished {
    let cwd = TempDir::new().expect("temp dir");
    let mut cmd = process::sesame(cwd.path());
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the sesame binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    // A process that refuses its arguments may exit before reading stdin.
    let _ = input.write_all(stdin.as_bytes()).await;
    drop(input);
    let output = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("sesame finishes in time")
        .expect("sesame runs");
    Finished {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn admin_create(database_url: &str, email: &str, password: &str) -> Finished {
    let args = [
        "--database-url",
        database_url,
        "admin",
        "create",
        "--email",
        email,
        "--password-stdin",
    ];
    sesame(&args, &format!("{password}\n"), &[]).await
}

async fn keys_rotate(database_url: &str) -> Finished {
    sesame(&["--database-url", database_url, "keys", "rotate"], "", &[]).await
}

fn assert_success(run: &Finished) {
    assert!(
        run.status.success(),
        "sesame failed ({}): {}",
        run.status,
        run.stderr
    );
}

fn assert_failure(run: &Finished, message: &str) {
    assert!(
        !run.status.success(),
        "sesame should have failed; stdout: {}",
        run.stdout
    );
    assert!(
        run.stderr.contains(message),
        "stderr lacks {message:?}: {}",
        run.stderr
    );
}

/// A database that no server runs on: (its directory, its URL).
fn fresh_database() -> (TempDir, String) {
    let dir = TempDir::new().expect("temp dir");
    let url = process::database_url(dir.path());
    (dir, url)
}

async fn users_in(database_url: &str) -> i64 {
    let db = TestDb::at(database_url);
    db.count("SELECT COUNT(*) FROM users", &[]).await
}

/// The `kid` in an access token's header.
fn kid_of(access: &str) -> String {
    let header = access.split('.').next().expect("a JWT");
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url"))
        .expect("JSON header");
    str_field(&header, "kid")
}

async fn published_kids(app_address: &str, client: &reqwest::Client) -> Vec<String> {
    let resp = client
        .get(format!("{app_address}/.well-known/jwks.json"))
        .send()
        .await
        .expect("request reaches the server");
    let jwks = expect_json(resp, StatusCode::OK).await;
    jwks["keys"]
        .as_array()
        .expect("keys is an array")
        .iter()
        .map(|k| str_field(k, "kid"))
        .collect()
}

// ---------------------------------------------------------------- admin create

#[tokio::test]
async fn admin_create_makes_an_active_admin_who_can_use_the_admin_api() {
    let app = spawn_app().await;

    let run = admin_create(&app.config.database_url, "Boss@Example.com", PASSWORD).await;

    assert_success(&run);
    assert!(run.stdout.contains("boss@example.com"), "{}", run.stdout);
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    let access = str_field(&app.login("boss@example.com").await, "accessToken");
    let me = app.me(&access).await;
    assert_eq!(
        (me["role"].clone(), me["active"].clone()),
        (json!("admin"), json!(true)),
        "{me}"
    );
    expect_json(app.api.list_accounts(&access, "").await, StatusCode::OK).await;
}

#[tokio::test]
async fn admin_create_refuses_a_weak_password_with_a_clear_message() {
    let (_dir, url) = fresh_database();

    let run = admin_create(&url, "boss@example.com", "password").await;

    assert_failure(&run, "too easy to guess");
    assert_failure(
        &admin_create(&url, "boss@example.com", "short").await,
        "at least 8 characters",
    );
    assert_eq!(users_in(&url).await, 0);
}

#[tokio::test]
async fn admin_create_refuses_a_taken_or_malformed_email() {
    let app = spawn_app().await;
    let (access, _) = app.logged_in_user("sam@example.com").await;

    let taken = admin_create(&app.config.database_url, "SAM@example.com", PASSWORD).await;
    assert_failure(&taken, "already exists");
    let malformed = admin_create(&app.config.database_url, "not-an-email", PASSWORD).await;
    assert_failure(&malformed, "--email");

    assert_eq!(
        app.me(&access).await["role"],
        json!("user"),
        "the existing account is untouched"
    );
}

#[tokio::test]
async fn admin_create_reads_the_password_only_from_stdin() {
    let (dir, url) = fresh_database();

    let without_flag = sesame(
        &[
            "--database-url",
            &url,
            "admin",
            "create",
            "--email",
            "boss@example.com",
        ],
        PASSWORD,
        &[],
    )
    .await;
    assert_failure(&without_flag, "--password-stdin");
    let empty = admin_create(&url, "boss@example.com", "").await;
    assert_failure(&empty, "no password");

    assert!(!database_made_in(dir.path()).await, "nothing was written");
}

// ---------------------------------------------------------------- keys rotate

#[tokio::test]
async fn after_keys_rotate_new_tokens_use_the_new_key_and_old_ones_keep_working() {
    let app = spawn_app().await;
    let (before, before_refresh) = app.logged_in_user("sam@example.com").await;
    let old_kid = kid_of(&before);
    assert_eq!(
        published_kids(&app.address, &app.client).await,
        std::slice::from_ref(&old_kid)
    );

    let run = keys_rotate(&app.config.database_url).await;

    assert_success(&run);
    // The running server picks the key up without a restart.
    let (after, _) = app.another_session("sam@example.com").await;
    let new_kid = kid_of(&after);
    assert_ne!(new_kid, old_kid);
    assert!(run.stdout.contains(&new_kid), "{}", run.stdout);
    assert_eq!(
        published_kids(&app.address, &app.client).await,
        [old_kid.clone(), new_kid.clone()]
    );
    app.me(&before).await;
    app.me(&after).await;
    let refreshed = expect_json(app.api.refresh(&before_refresh).await, StatusCode::OK).await;
    assert_eq!(kid_of(&str_field(&refreshed, "accessToken")), new_kid);
    // And after a restart, both still verify.
    let app = app.restart_with(|_| {}).await;
    app.me(&before).await;
    app.me(&after).await;
    assert_eq!(
        published_kids(&app.address, &app.client).await,
        [old_kid, new_kid]
    );
}

#[tokio::test]
async fn a_server_verifies_a_token_signed_with_a_key_it_had_not_loaded_yet() {
    let app = spawn_app().await;
    let (before, _) = app.logged_in_user("sam@example.com").await;
    // A second instance on the same database, started before the rotation.
    let other = Application::start(app.config.clone())
        .await
        .expect("second instance starts");
    let other_address = format!("http://127.0.0.1:{}", other.port());
    assert_success(&keys_rotate(&app.config.database_url).await);

    // The first instance signs with the new key; the second meets it in a token.
    let (access, _) = app.another_session("sam@example.com").await;
    let resp = app
        .client
        .get(format!("{other_address}/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("request reaches the second instance");

    assert_ne!(kid_of(&access), kid_of(&before), "signed with the new key");
    expect_json(resp, StatusCode::OK).await;
    assert!(
        published_kids(&other_address, &app.client)
            .await
            .contains(&kid_of(&access))
    );
    other.stop().await.expect("second instance stops");
}

#[tokio::test]
async fn keys_rotate_refuses_when_tokens_are_signed_with_a_shared_secret() {
    let (_dir, url) = fresh_database();
    let secret = [(
        "SESAME_JWT_SECRET",
        "a shared secret that is long enough for HS256 signing",
    )];

    let run = sesame(&["--database-url", &url, "keys", "rotate"], "", &secret).await;

    assert_failure(&run, "SESAME_JWT_SECRET");
}
