//! The `sesame` subcommands. `cli/mod.rs` parses the command line; the
//! commands run here, and every failure comes back as one error whose
//! message names the setting to fix.

use std::io::{IsTerminal, Write};
use std::path::Path;

use clap::ArgMatches;
use clap::parser::ValueSource;
use tracing_subscriber::EnvFilter;

use crate::app::Application;
use crate::config::{JwtSigning, MailTransport, ServeArgs};
use crate::store::Store;

/// What `sesame --help` says before the options.
pub const LONG_ABOUT: &str = "\
sesame: user authentication in one binary.

Run `sesame` (the same as `sesame serve`) to serve on http://127.0.0.1:5000,
with Swagger UI at /docs and a `sesame.db` SQLite file in the working
directory, created with its schema on first start.

Every setting below is also an environment variable (shown as [env: ...]),
and can be written in a `.env` file in the working directory. Settings may
come before or after the subcommand. `sesame check-config` shows the ones in
effect.";

/// What `sesame --help` says after the options.
pub const EXAMPLES: &str = "\
Examples:
  sesame                                     serve with the defaults
  sesame check-config                        show the settings in effect, secrets redacted
  SESAME_SMTP_URL=smtps://USER:PASS@smtp.example.com:465 sesame
                                             serve and send real email
  sesame migrate --database-url sqlite:///var/lib/sesame/sesame.db
                                             create or upgrade the database, then exit
  sesame backup /var/backups/sesame.db       copy the database, also while serving
  PGPASSWORD=... sesame copy --to postgres://sesame@db.example.com/sesame
                                             move everything to PostgreSQL (stop sesame first)
  sesame openapi > openapi.json              write the API description

Running in production (systemd, reverse proxy, backups, upgrades):
see docs/deployment.md.";

/// Makes every setting usable after a subcommand too (`sesame backup X
/// --database-url Y`) and groups them under one heading in `--help`.
pub fn with_global_settings(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        if arg.get_env().is_some() {
            arg.global(true).help_heading("Settings")
        } else {
            arg
        }
    })
}

/// `sesame serve`: runs until SIGTERM/SIGINT, then shuts down gracefully.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let log_format = args.log_format.clone();
    let config = args.into_config()?;
    init_logging(&log_format);
    Application::start(config).await?.run_until_signal().await
}

/// `sesame migrate`: creates or upgrades the database, then exits.
pub async fn migrate(args: ServeArgs) -> anyhow::Result<()> {
    let log_format = args.log_format.clone();
    let config = args.into_config()?;
    init_logging(&log_format);
    Store::open(&config.database_url).await?.close().await;
    tracing::info!("migrations applied");
    Ok(())
}

/// `sesame openapi`: prints the document `GET /openapi.json` serves.
pub fn openapi(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let spec = crate::api::service(&config.public_url).spec();
    let mut out = std::io::stdout().lock();
    out.write_all(spec.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// `sesame backup PATH`: a consistent copy of the database. Needs only
/// `SESAME_DATABASE_URL`, so a backup works even while another setting is
/// broken.
pub async fn backup(args: ServeArgs, dest: &Path) -> anyhow::Result<()> {
    if crate::store::is_postgres_url(&args.database_url) {
        anyhow::bail!(
            "sesame backup copies a SQLite file; on PostgreSQL use pg_dump (for example \
             `pg_dump --format=custom --file=sesame.dump \"$SESAME_DATABASE_URL\"`), which \
             takes a consistent snapshot while sesame serves"
        );
    }
    let bytes = crate::store::backup::backup(&args.database_url, dest).await?;
    println!("backup written to {} ({bytes} bytes)", dest.display());
    Ok(())
}

/// `sesame copy --to postgres://…`: every row of the configured SQLite
/// database into an empty PostgreSQL one, with a count per table. Needs only
/// `SESAME_DATABASE_URL`, as `backup` does. A password in a `--to` given on
/// the command line is refused: `ps` shows it to every local user.
pub async fn copy(args: ServeArgs, to: &str, on_command_line: bool) -> anyhow::Result<()> {
    let has_password = url::Url::parse(to).is_ok_and(|url| url.password().is_some());
    if on_command_line && has_password {
        anyhow::bail!(
            "--to with a password is not accepted: command-line flags are visible to every \
             local user (ps). Put the password in PGPASSWORD or ~/.pgpass, or the whole URL \
             in SESAME_COPY_TO"
        );
    }
    println!(
        "copying {} into {}",
        redact(&args.database_url, false),
        redact(to, false)
    );
    let started = std::time::Instant::now();
    let mut last = started;
    let counts = crate::store::copy::copy(&args.database_url, to, |copied| {
        let took = last.elapsed().as_secs_f64();
        last = std::time::Instant::now();
        println!(
            "{:<20} {:>10} rows  {took:>6.1} s",
            copied.table, copied.rows
        );
    })
    .await?;
    let total: u64 = counts.iter().map(|c| c.rows).sum();
    println!(
        "copied {total} rows in {:.1} s; start sesame with SESAME_DATABASE_URL set to the \
         PostgreSQL URL",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `sesame check-config`: validates the settings and prints the ones in
/// effect, with where each came from; secrets are redacted.
pub fn check_config(args: ServeArgs, cmd: &clap::Command, matches: &ArgMatches) -> String {
    let mut lines = vec![format!(
        "# sesame {}: the configuration is valid. Secrets are redacted.",
        env!("CARGO_PKG_VERSION")
    )];
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let id = arg.get_id().as_str();
        let value = matches.get_raw(id).map(|values| {
            values
                .map(|v| v.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(",")
        });
        let secret = arg.is_hide_env_values_set() || looks_secret(id);
        let source = match matches.value_source(id) {
            Some(ValueSource::DefaultValue) => "default",
            Some(ValueSource::EnvVariable) => "from the environment or .env",
            Some(ValueSource::CommandLine) => "from the command line",
            _ => "not set",
        };
        let shown = value.map(|v| redact(&v, secret)).unwrap_or_default();
        lines.push(format!("{env}={}  # {source}", quote(&shown)));
    }
    lines.extend(effective(args));
    lines.join("\n")
}

/// What the settings add up to, for the settings whose meaning depends on others.
fn effective(args: ServeArgs) -> Vec<String> {
    let Ok(config) = args.into_config() else {
        return Vec::new();
    };
    let mail = match &config.mail {
        MailTransport::Log => "written to the log (SESAME_SMTP_URL is not set)".to_owned(),
        MailTransport::Smtp(url) => match url::Url::parse(url.expose()) {
            Ok(u) => format!(
                "sent through {}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or("?"),
                u.port()
                    .map_or_else(|| "default port".into(), |p| p.to_string())
            ),
            Err(_) => "sent through SMTP".to_owned(),
        },
    };
    let signing = match &config.jwt {
        JwtSigning::EdDsa => "EdDSA (Ed25519), key kept in the database",
        JwtSigning::Hs256(_) => "HS256 with SESAME_JWT_SECRET",
    };
    vec![
        "# In effect:".to_owned(),
        format!(
            "#   links in emails: {}/verify, {}/reset-password",
            config.app_url, config.app_url
        ),
        format!("#   email: {mail}"),
        format!("#   access tokens: {signing}"),
        format!("#   password hashes at once: {}", config.hash_concurrency),
        match &config.passkeys {
            Some(rp) => format!("#   passkeys: RP ID {}", rp.rp_id()),
            None => {
                "#   passkeys: off (set SESAME_WEBAUTHN_RP_ID: SESAME_APP_URL has no domain name)"
                    .to_owned()
            }
        },
    ]
}

/// Whether a setting's name says it holds a secret.
fn looks_secret(id: &str) -> bool {
    id.contains("secret") || id.contains("password")
}

const REDACTED: &str = "REDACTED";

/// Hides credentials: a secret setting is shown only as a URL's scheme,
/// host and port (user and password redacted), or not at all; any other
/// URL loses its password.
fn redact(value: &str, secret: bool) -> String {
    if value.is_empty() {
        return String::new();
    }
    match url::Url::parse(value) {
        Ok(mut url) if url.has_host() => {
            let hide_user = secret && !url.username().is_empty();
            if url.password().is_none() && !hide_user {
                return value.to_owned();
            }
            let _ = url.set_password(Some(REDACTED));
            if hide_user {
                let _ = url.set_username(REDACTED);
            }
            url.to_string()
        }
        _ if secret => REDACTED.to_owned(),
        _ => value.to_owned(),
    }
}

/// Quotes a value for a `.env` file or a systemd `EnvironmentFile` when needed.
fn quote(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.:/@,+%=[]*".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Logs to stdout, `pretty` for people or `json` (one object per line) for
/// log collectors; levels from `RUST_LOG` (default `info`).
pub fn init_logging(format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    // Colors only for a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    // `try_init`: a second call (or a test harness's subscriber) is not an error.
    let _ = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Turns an error into the one line `sesame: …` printed on stderr.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_url_keeps_only_scheme_host_and_port() {
        assert_eq!(
            redact("smtps://apikey:hunter2@smtp.example.com:465", true),
            "smtps://REDACTED:REDACTED@smtp.example.com:465"
        );
    }

    #[test]
    fn a_plain_secret_is_redacted_whole() {
        assert_eq!(redact("a-very-long-shared-secret", true), REDACTED);
    }

    #[test]
    fn any_url_loses_its_password() {
        assert_eq!(
            redact("https://user:pw@example.com/", false),
            "https://user:REDACTED@example.com/"
        );
        assert_eq!(
            redact("http://localhost:5000", false),
            "http://localhost:5000"
        );
    }

    #[test]
    fn values_with_spaces_are_quoted() {
        assert_eq!(
            quote("sesame <no-reply@localhost>"),
            "\"sesame <no-reply@localhost>\""
        );
        assert_eq!(quote("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
