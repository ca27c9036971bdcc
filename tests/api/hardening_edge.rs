//! The transport and operations half of the second hardening round: each
//! test performs the attack against the real server and checks the answer
//! the contract gives instead.

use reqwest::StatusCode;
use tempfile::TempDir;

use crate::support::process::{Finished, Server, run, sesame};
use crate::support::{Api, PASSWORD, Signup, WAIT, eventually, expect_json, spawn_app, str_field};

/// A stranger can type anyone's address and any words as a name; the email
/// that then lands in the owner's mailbox must not carry those words.
#[tokio::test]
async fn the_verification_email_does_not_carry_the_name_typed_at_signup() {
    let app = spawn_app().await;
    let words = "Call +1 555 0100 to claim your prize";
    let form = Signup::new("owner@example.com").name(words);
    expect_json(app.api.signup(&form).await, StatusCode::CREATED).await;
    let resent = app.api.resend_activation("owner@example.com").await;
    assert!(resent.status.is_success(), "{}", resent.text);

    for nth in [1, 2] {
        let mail = app
            .mail
            .wait_for_mail_to("owner@example.com", nth, WAIT)
            .await;
        let text = mail.text_body();
        let html = mail.html_body().unwrap_or_default();
        assert!(text.contains("Welcome to sesame!"), "{text}");
        for body in [&text, &html, &mail.data] {
            assert!(
                !body.contains("prize"),
                "the typed name reached the email: {body}"
            );
            assert!(
                !body.contains("555"),
                "the typed name reached the email: {body}"
            );
        }
    }
}

/// Runs `sesame ARGS` with `SESAME_SMTP_URL=url` in a fresh directory.
async fn with_smtp_url(url: &str, args: &[&str]) -> Finished {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_SMTP_URL", url).args(args);
    run(cmd).await
}

/// `smtp://user:pass@remote` would send the password and every reset link
/// unencrypted: `serve` and `check-config` refuse it, naming the setting,
/// never the password.
#[tokio::test]
async fn smtp_credentials_in_plain_text_to_another_host_are_refused_at_start() {
    let url = "smtp://apikey:pl41n-t3xt-pass@smtp.example.com:587";
    for args in [&["check-config"][..], &["serve"][..]] {
        let out = with_smtp_url(url, args).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}{}",
            out.stdout,
            out.stderr
        );
        let stderr = out.stderr.trim();
        assert!(stderr.starts_with("sesame: "), "{stderr}");
        assert!(
            stderr.contains("SESAME_SMTP_URL"),
            "names the setting: {stderr}"
        );
        assert!(
            stderr.contains("tls=required"),
            "says how to fix it: {stderr}"
        );
        for output in [&out.stdout, &out.stderr] {
            assert!(!output.contains("pl41n-t3xt-pass"), "{output}");
            assert!(!output.contains("apikey"), "{output}");
        }
    }
    // A plain-text relay without credentials stays allowed (nothing secret
    // to leak but the mail itself, as any MTA-to-MTA hop).
    let out = with_smtp_url("smtp://smtp.example.com:25", &["check-config"]).await;
    assert!(out.status.success(), "{}", out.stderr);
}

/// The ways credentials stay private: TLS from the start, STARTTLS
/// required, or a relay on this machine.
#[tokio::test]
async fn smtp_credentials_over_tls_or_to_loopback_are_accepted() {
    for url in [
        "smtps://apikey:s3cret-pass@smtp.example.com:465",
        "smtp://apikey:s3cret-pass@smtp.example.com:587?tls=required",
        "smtp://apikey:s3cret-pass@127.0.0.1:1025",
        "smtp://apikey:s3cret-pass@localhost:1025",
        "smtp://apikey:s3cret-pass@[::1]:1025",
    ] {
        let out = with_smtp_url(url, &["check-config"]).await;
        assert!(out.status.success(), "{url}: {}", out.stderr);
        assert!(!out.stdout.contains("s3cret-pass"), "{}", out.stdout);
    }
    // And the server itself starts with one of them.
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = sesame(dir.path());
    cmd.env(
        "SESAME_SMTP_URL",
        "smtp://apikey:s3cret-pass@smtp.example.com:587?tls=required",
    )
    .arg("serve");
    let mut server = Server::start(cmd).await;
    server.terminate().await;
    server.wait().await;
    assert!(
        !server.output().contains("s3cret-pass"),
        "{}",
        server.output()
    );
}

/// A secret typed as a flag is visible to every local user in the process
/// list: sesame refuses it, says where it goes instead, and prints none of it.
#[tokio::test]
async fn secrets_given_as_command_line_flags_are_refused() {
    let dir = TempDir::new().expect("temp dir");
    for (flag, value, setting) in [
        (
            "--jwt-secret",
            "flag-secret-that-is-long-enough-0123456789",
            "SESAME_JWT_SECRET",
        ),
        (
            "--smtp-url",
            "smtps://u:flag-pass-0123@smtp.example.com:465",
            "SESAME_SMTP_URL",
        ),
    ] {
        for args in [vec![flag, value], vec!["check-config", flag, value]] {
            let mut cmd = sesame(dir.path());
            cmd.args(&args);
            let out = run(cmd).await;
            assert_eq!(out.status.code(), Some(1), "{args:?}: {}", out.stderr);
            let stderr = out.stderr.trim();
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.contains(flag), "names the flag: {stderr}");
            assert!(stderr.contains(&format!("{setting}_FILE")), "{stderr}");
            assert!(!stderr.contains(value), "{stderr}");
            assert!(!out.stdout.contains(value), "{}", out.stdout);
        }
    }
    assert!(!dir.path().join("sesame.db").exists(), "nothing started");
}

/// `SESAME_JWT_SECRET_FILE` and `SESAME_SMTP_URL_FILE` name files holding
/// the secrets (as systemd credentials and Docker secrets are mounted).
#[tokio::test]
async fn secrets_are_read_from_the_files_their_file_settings_name() {
    let dir = TempDir::new().expect("temp dir");
    let secret = "file-secret-that-is-long-enough-0123456789";
    let jwt_file = dir.path().join("jwt_secret");
    std::fs::write(&jwt_file, format!("{secret}\n")).expect("write secret");
    let smtp_file = dir.path().join("smtp_url");
    std::fs::write(
        &smtp_file,
        "smtps://u:file-pass-0123@smtp.example.com:465\n",
    )
    .expect("write url");

    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file)
        .env("SESAME_SMTP_URL_FILE", &smtp_file)
        .arg("check-config");
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("HS256"),
        "the secret was read: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("sent through smtps://smtp.example.com:465"),
        "the SMTP URL was read: {}",
        out.stdout
    );
    assert!(!out.stdout.contains(secret) && !out.stdout.contains("file-pass-0123"));

    // The server signs with the secret from the file: a token it issues
    // verifies with that secret (HS256), and only with it.
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file).arg("serve");
    let mut server = Server::start(cmd).await;
    let token = issued_access_token(&server).await;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["sesame"]);
    validation.validate_exp = true;
    let decoded = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    );
    assert!(decoded.is_ok(), "{decoded:?}");
    server.terminate().await;
    server.wait().await;

    // A missing file is named; both the variable and its file is an error.
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", dir.path().join("missing"))
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr.contains("SESAME_JWT_SECRET_FILE"),
        "{}",
        out.stderr
    );
    let mut cmd = sesame(dir.path());
    cmd.env("SESAME_JWT_SECRET_FILE", &jwt_file)
        .env("SESAME_JWT_SECRET", secret)
        .arg("check-config");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("only one"), "{}", out.stderr);
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
}

/// Signs up, activates with the code the log transport printed, and logs in
/// on a server run as a process; returns the access token.
async fn issued_access_token(server: &Server) -> String {
    let api = Api::new(&server.address);
    let email = "file-secret@example.com";
    api.signup(&Signup::new(email))
        .await
        .expect(StatusCode::CREATED);
    let marker = "verification code is: ";
    let code = eventually("the verification email in the log", || async {
        let output = server.output();
        let at = output.find(marker)? + marker.len();
        output.get(at..at + 6).map(str::to_owned)
    })
    .await;
    api.activate(email, &code).await.expect(StatusCode::OK);
    let tokens = api.login(email, PASSWORD).await.expect(StatusCode::OK);
    str_field(&tokens, "accessToken")
}

/// The permission bits of a file.
#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The database holds the signing key and password hashes: it, its -wal
/// and -shm files, and a backup of it are readable by their owner only,
/// whatever the umask.
#[cfg(unix)]
#[tokio::test]
async fn the_database_its_wal_and_a_backup_are_readable_by_their_owner_only() {
    let app = spawn_app().await;
    app.activated_user("private@example.com").await;
    let db = crate::support::db_path(&app.dir);
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }

    let backups = app.dir.path().join("backups");
    std::fs::create_dir(&backups).expect("backup dir");
    let backup = backups.join("sesame-backup.db");
    let mut cmd = sesame(app.dir.path());
    cmd.arg("backup").arg(&backup);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(mode(&backup), 0o600);
    let left: Vec<_> = std::fs::read_dir(&backups)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("sesame-backup.db")],
        "no temporary file left"
    );
}
