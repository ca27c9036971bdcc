//! One typed configuration, read from flags, environment variables and `.env`,
//! validated once at start-up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

use crate::domain::passkey::RelyingParty;
use crate::domain::secret::Secret;
use crate::http::rate_limits::TrustedProxies;

/// How often housekeeping (pruning limiter state, failed-login counts,
/// ended sessions and finished emails) runs.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(60);

/// How long a keep-alive connection with nothing in flight stays open.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Every setting of the server. Each flag has a matching `SESAME_*` variable.
///
/// Mark every secret (or anything that can hold one, like a URL with a
/// password) `hide_env_values = true`: `--help` and `sesame check-config`
/// rely on it to keep the value out of their output.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SESAME_BIND", default_value = "127.0.0.1:5000")]
    pub bind: SocketAddr,
    /// Database URL: `sqlite://FILE` (created with its schema on first start) or
    /// `postgres://USER:PASSWORD@HOST:5432/DB` (PostgreSQL 13 or newer; the schema is
    /// created on first start; several instances may share it).
    #[arg(
        long,
        env = "SESAME_DATABASE_URL",
        default_value = "sqlite://sesame.db",
        hide_env_values = true
    )]
    pub database_url: String,
    /// Public base URL of this server; also the JWT `iss`.
    #[arg(
        long,
        env = "SESAME_PUBLIC_URL",
        default_value = "http://localhost:5000"
    )]
    pub public_url: String,
    /// Base URL for links in emails (`/verify`, `/reset-password`); defaults to the public URL.
    #[arg(long, env = "SESAME_APP_URL")]
    pub app_url: Option<String>,
    /// SMTP server, e.g. `smtps://user:pass@smtp.example.com:465` or `smtp://127.0.0.1:1025`.
    /// Credentials go only over TLS (`smtps://` or `?tls=required`) or to loopback.
    /// Without it, emails are written to the log. Environment or `.env` only
    /// (it can hold a password): never a flag.
    #[arg(long, env = "SESAME_SMTP_URL", hide_env_values = true, hide = true)]
    pub smtp_url: Option<String>,
    /// A file holding SESAME_SMTP_URL (e.g. a systemd credential or a Docker secret).
    #[arg(long, env = "SESAME_SMTP_URL_FILE")]
    pub smtp_url_file: Option<PathBuf>,
    /// Longest an SMTP step (connecting, the greeting, each command, sending
    /// the message) may take before the attempt fails and is retried, in seconds.
    #[arg(long, env = "SESAME_SMTP_TIMEOUT_SECS", default_value_t = 30)]
    pub smtp_timeout_secs: u64,
    /// Sender address of emails.
    #[arg(
        long,
        env = "SESAME_MAIL_FROM",
        default_value = "sesame <no-reply@localhost>"
    )]
    pub mail_from: String,
    /// Shared secret: switches access tokens from EdDSA to HS256.
    /// Environment or `.env` only: never a flag.
    #[arg(long, env = "SESAME_JWT_SECRET", hide_env_values = true, hide = true)]
    pub jwt_secret: Option<String>,
    /// A file holding SESAME_JWT_SECRET, the shared secret that switches
    /// access tokens from EdDSA to HS256 (set one of the two; never a flag).
    #[arg(long, env = "SESAME_JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// JWT `aud` claim.
    #[arg(long, env = "SESAME_JWT_AUDIENCE", default_value = "sesame")]
    pub jwt_audience: String,
    /// Clock leeway in seconds when checking `exp` and `nbf`.
    #[arg(long, env = "SESAME_JWT_LEEWAY_SECS", default_value_t = 0)]
    pub jwt_leeway_secs: u64,
    /// Access token lifetime in seconds.
    #[arg(long, env = "SESAME_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    pub access_token_ttl_secs: u64,
    /// Refresh token (session) lifetime in seconds.
    #[arg(long, env = "SESAME_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 24 * 3600)]
    pub refresh_token_ttl_secs: u64,
    /// Seconds during which a spent refresh token still gets a fresh pair (two tabs refreshing at once).
    #[arg(long, env = "SESAME_REFRESH_REUSE_GRACE_SECS", default_value_t = 10)]
    pub refresh_reuse_grace_secs: u64,
    /// Lifetime of verification codes and reset tokens, in seconds.
    #[arg(long, env = "SESAME_CODE_TTL_SECS", default_value_t = 900)]
    pub code_ttl_secs: u64,
    /// Wrong codes of one kind (verification, email change) allowed per
    /// address per 24 h; then every such code for it is refused and none is sent.
    #[arg(long, env = "SESAME_CODE_MAX_FAILURES_PER_DAY", default_value_t = 20)]
    pub code_max_failures_per_day: u32,
    /// The name authenticator apps show for sesame's TOTP codes (the issuer
    /// of the `otpauth://` URI); default: SESAME_WEBAUTHN_RP_NAME.
    #[arg(long, env = "SESAME_TOTP_ISSUER")]
    pub totp_issuer: Option<String>,
    /// The name of this service that passkey prompts and authenticator apps show.
    #[arg(long, env = "SESAME_WEBAUTHN_RP_NAME", default_value = "sesame")]
    pub webauthn_rp_name: String,
    /// How long the link that undoes an email change (sent to the old address) works, in seconds.
    #[arg(long, env = "SESAME_EMAIL_REVERT_TTL_SECS", default_value_t = 7 * 24 * 3600)]
    pub email_revert_ttl_secs: u64,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "SESAME_ARGON2_MEMORY_KIB", default_value_t = 19456)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "SESAME_ARGON2_ITERATIONS", default_value_t = 2)]
    pub argon2_iterations: u32,
    /// argon2id lanes.
    #[arg(long, env = "SESAME_ARGON2_PARALLELISM", default_value_t = 1)]
    pub argon2_parallelism: u32,
    /// How many password hashes may run at once (default: number of CPUs).
    #[arg(long, env = "SESAME_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "SESAME_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Requests per IP per window on each anonymous auth endpoint; 0 turns it off.
    #[arg(long, env = "SESAME_IP_RATE_LIMIT", default_value_t = 20)]
    pub ip_rate_limit: u32,
    /// The window of SESAME_IP_RATE_LIMIT, in seconds.
    #[arg(long, env = "SESAME_IP_RATE_WINDOW_SECS", default_value_t = 60)]
    pub ip_rate_window_secs: u64,
    /// Proxies (comma-separated IPs/CIDRs) whose X-Forwarded-For names the client.
    #[arg(long, env = "SESAME_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Rate limits count IPv6 clients by network: the first this many bits
    /// of the address (IPv4 clients count by address).
    #[arg(long, env = "SESAME_IPV6_PREFIX_LEN", default_value_t = 64)]
    pub ipv6_prefix_len: u8,
    /// Seconds a request's head (request line and headers) may take to
    /// arrive, from its first byte; then the connection is closed.
    #[arg(long, env = "SESAME_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Seconds a request's body may take to arrive, after its head; then
    /// the connection is closed.
    #[arg(long, env = "SESAME_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Address serving `GET /metrics` (e.g. `127.0.0.1:9100`); unset: no
    /// metrics. Never served on SESAME_BIND.
    #[arg(long, env = "SESAME_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
    /// Consecutive failed logins from one network (an IPv4 address, an IPv6
    /// network of SESAME_IPV6_PREFIX_LEN bits) before the account is locked
    /// for that network.
    #[arg(long, env = "SESAME_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u32,
    /// Failed logins from all networks within one lockout window before the
    /// account is locked everywhere (and its owner emailed).
    #[arg(long, env = "SESAME_LOGIN_MAX_FAILURES_ALL", default_value_t = 100)]
    pub login_max_failures_all: u32,
    /// How long a locked account stays locked, in seconds.
    #[arg(long, env = "SESAME_LOGIN_LOCKOUT_SECS", default_value_t = 900)]
    pub login_lockout_secs: u64,
    /// Least time between two emails of one kind to one address, in seconds.
    #[arg(long, env = "SESAME_EMAIL_MIN_INTERVAL_SECS", default_value_t = 60)]
    pub email_min_interval_secs: u64,
    /// How long ended sessions and sent (or given-up) emails are kept
    /// before housekeeping deletes them, in seconds.
    #[arg(long, env = "SESAME_RETENTION_SECS", default_value_t = 30 * 24 * 3600)]
    pub retention_secs: u64,
    /// Origins (comma-separated) allowed to call the API from a browser; empty: CORS off.
    #[arg(long, env = "SESAME_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Answer `202` without revealing whether a signup address is taken.
    #[arg(long, env = "SESAME_SIGNUP_CONCEALS_EXISTING", default_value_t = false)]
    pub signup_conceals_existing: bool,
    /// The relying party ID passkeys are bound to: a domain name, the
    /// origins' host or a parent of it (default: the host of SESAME_APP_URL).
    /// Changing it later makes every registered passkey unusable.
    #[arg(long, env = "SESAME_WEBAUTHN_RP_ID")]
    pub webauthn_rp_id: Option<String>,
    /// Origins (comma-separated) whose pages may use passkeys, e.g.
    /// `https://app.example.com` (default: the origin of SESAME_APP_URL).
    #[arg(long, env = "SESAME_WEBAUTHN_ORIGINS", default_value = "")]
    pub webauthn_origins: String,
    /// Log format: `pretty` or `json`.
    #[arg(long, env = "SESAME_LOG_FORMAT", default_value = "pretty")]
    pub log_format: String,
    /// First delay before retrying a failed email, in milliseconds; doubles per attempt.
    #[arg(long, env = "SESAME_OUTBOX_RETRY_BASE_MS", default_value_t = 1000)]
    pub outbox_retry_base_ms: u64,
    /// Longest delay between two delivery attempts of one email, in milliseconds.
    #[arg(long, env = "SESAME_OUTBOX_RETRY_MAX_MS", default_value_t = 300_000)]
    pub outbox_retry_max_ms: u64,
    /// How long a write waits for a database lock held by another process
    /// before it fails (answered `503 STORAGE_UNAVAILABLE`), in milliseconds.
    #[arg(long, env = "SESAME_DB_BUSY_TIMEOUT_MS", default_value_t = 10_000)]
    pub db_busy_timeout_ms: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests and the email being sent
    /// may take to finish before the process exits anyway, in seconds.
    #[arg(long, env = "SESAME_SHUTDOWN_TIMEOUT_SECS", default_value_t = 10)]
    pub shutdown_timeout_secs: u64,
}

/// How outgoing email is delivered.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// Write emails to the log (the default for trying sesame out).
    Log,
    /// Send through this SMTP URL (credentials inside are secret).
    Smtp(Secret<String>),
}

/// How access tokens are signed.
#[derive(Debug, Clone)]
pub enum JwtSigning {
    /// Ed25519 keys kept in the database, published in the JWKS.
    EdDsa,
    /// HS256 with a shared secret.
    Hs256(Secret<String>),
}

/// The validated configuration the application runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub database_url: String,
    pub public_url: String,
    pub app_url: String,
    pub mail: MailTransport,
    /// Longest one SMTP step may take.
    pub smtp_timeout: Duration,
    pub mail_from: String,
    pub jwt: JwtSigning,
    pub jwt_audience: String,
    pub jwt_leeway: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub code_ttl: Duration,
    /// Wrong codes of one kind allowed per address per 24 h.
    pub code_max_failures_per_day: u32,
    /// Lifetime of the link that undoes an email change.
    pub email_revert_ttl: Duration,
    /// The issuer of `otpauth://` URIs (SESAME_TOTP_ISSUER, else SESAME_WEBAUTHN_RP_NAME).
    pub totp_issuer: String,
    /// The service name passkey prompts show (SESAME_WEBAUTHN_RP_NAME).
    pub webauthn_rp_name: String,
    pub argon2: Argon2Params,
    pub hash_concurrency: usize,
    pub max_body_bytes: usize,
    pub signup_conceals_existing: bool,
    /// Requests per IP per `ip_rate_window` on each anonymous auth endpoint (0: off).
    pub ip_rate_limit: u32,
    pub ip_rate_window: Duration,
    pub trusted_proxies: TrustedProxies,
    /// IPv6 clients are rate-limited by this prefix of their address.
    pub ipv6_prefix_len: u8,
    /// How long a request's head may take to arrive.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive.
    pub body_timeout: Duration,
    /// How long a keep-alive connection may sit idle (not a setting: a
    /// minute; tests shorten it).
    pub idle_timeout: Duration,
    /// Where `GET /metrics` is served; `None`: nowhere.
    pub metrics_bind: Option<SocketAddr>,
    pub login_max_failures: u32,
    pub login_max_failures_all: u32,
    pub login_lockout: Duration,
    pub email_min_interval: Duration,
    /// How long ended sessions and finished emails are kept.
    pub retention: Duration,
    /// How often housekeeping runs (not a setting: a minute; tests shorten it).
    pub housekeeping_interval: Duration,
    /// Browser origins allowed by CORS; empty means CORS is off.
    pub cors_origins: Vec<String>,
    pub outbox_retry_base: Duration,
    pub outbox_retry_max: Duration,
    pub shutdown_timeout: Duration,
    /// How long a write waits for another process's lock.
    pub db_busy_timeout: Duration,
    /// The relying party of passkeys; `None` (passkeys off) when neither
    /// SESAME_WEBAUTHN_RP_ID is set nor SESAME_APP_URL has a domain name
    /// (WebAuthn refuses IP addresses).
    pub passkeys: Option<RelyingParty>,
}

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl ServeArgs {
    /// Checks every setting and builds the [`Config`]; errors name the setting.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let public_url = normalize_base_url(&self.public_url)
            .context("SESAME_PUBLIC_URL is not a valid http(s) URL")?;
        let app_url = match &self.app_url {
            Some(url) => {
                normalize_base_url(url).context("SESAME_APP_URL is not a valid http(s) URL")?
            }
            None => public_url.clone(),
        };
        let smtp_url = secret_setting(
            self.smtp_url,
            self.smtp_url_file.as_deref(),
            "SESAME_SMTP_URL",
        )?;
        let mail = match smtp_url.filter(|u| !u.trim().is_empty()) {
            None => MailTransport::Log,
            Some(url) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|_| anyhow::anyhow!("SESAME_SMTP_URL is not a valid URL"))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    bail!(
                        "SESAME_SMTP_URL must start with smtp:// or smtps://, not {}://",
                        parsed.scheme()
                    );
                }
                refuse_plain_text_credentials(&parsed)?;
                MailTransport::Smtp(Secret::new(url))
            }
        };
        let jwt_secret = secret_setting(
            self.jwt_secret,
            self.jwt_secret_file.as_deref(),
            "SESAME_JWT_SECRET",
        )?;
        let jwt = match jwt_secret.filter(|s| !s.is_empty()) {
            None => JwtSigning::EdDsa,
            Some(secret) if secret.len() < 32 => {
                bail!("SESAME_JWT_SECRET must be at least 32 characters long")
            }
            Some(secret) => JwtSigning::Hs256(Secret::new(secret)),
        };
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            bail!("SESAME_LOG_FORMAT must be `pretty` or `json`");
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            bail!(
                "SESAME_ACCESS_TOKEN_TTL_SECS and SESAME_REFRESH_TOKEN_TTL_SECS must be positive"
            );
        }
        if self.smtp_timeout_secs == 0 {
            bail!("SESAME_SMTP_TIMEOUT_SECS must be positive");
        }
        if self.code_ttl_secs == 0 {
            bail!("SESAME_CODE_TTL_SECS must be positive");
        }
        if self.code_max_failures_per_day == 0 {
            bail!("SESAME_CODE_MAX_FAILURES_PER_DAY must be positive");
        }
        if self.email_revert_ttl_secs == 0 {
            bail!("SESAME_EMAIL_REVERT_TTL_SECS must be positive");
        }
        let totp_issuer = self
            .totp_issuer
            .map(|issuer| issuer.trim().to_owned())
            .filter(|issuer| !issuer.is_empty())
            .unwrap_or_else(|| self.webauthn_rp_name.trim().to_owned());
        if totp_issuer.is_empty() || totp_issuer.contains(':') {
            bail!(
                "SESAME_TOTP_ISSUER (or SESAME_WEBAUTHN_RP_NAME) must be a non-empty name \
                 without `:` (authenticator apps split the label at the colon)"
            );
        }
        let argon2 = Argon2Params {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        };
        argon2::Params::new(
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("SESAME_ARGON2_* parameters are invalid: {e}"))?;
        let hash_concurrency = self
            .hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1);
        let trusted_proxies = TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| anyhow::anyhow!("SESAME_TRUSTED_PROXIES: {e}"))?;
        let cors_origins = self
            .cors_origins
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect::<Vec<_>>();
        for origin in &cors_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                bail!(
                    "SESAME_CORS_ORIGINS: `{origin}` is not an origin like https://app.example.com"
                );
            }
        }
        if self.ip_rate_window_secs == 0 {
            bail!("SESAME_IP_RATE_WINDOW_SECS must be positive");
        }
        if !(1..=128).contains(&self.ipv6_prefix_len) {
            bail!("SESAME_IPV6_PREFIX_LEN must be between 1 and 128");
        }
        if self.header_timeout_secs == 0 || self.body_timeout_secs == 0 {
            bail!("SESAME_HEADER_TIMEOUT_SECS and SESAME_BODY_TIMEOUT_SECS must be positive");
        }
        if self.metrics_bind == Some(self.bind) && self.bind.port() != 0 {
            bail!("SESAME_METRICS_BIND must differ from SESAME_BIND: metrics are never public");
        }
        if self.login_max_failures == 0 {
            bail!("SESAME_LOGIN_MAX_FAILURES must be positive");
        }
        if self.login_max_failures_all < self.login_max_failures {
            bail!("SESAME_LOGIN_MAX_FAILURES_ALL must be at least SESAME_LOGIN_MAX_FAILURES");
        }
        let passkeys = relying_party(
            self.webauthn_rp_id.as_deref(),
            &self.webauthn_origins,
            &self.webauthn_rp_name,
            &app_url,
        )?;
        if self.retention_secs < self.email_min_interval_secs {
            // The email throttle reads the outbox rows of that interval.
            bail!("SESAME_RETENTION_SECS must be at least SESAME_EMAIL_MIN_INTERVAL_SECS");
        }
        Ok(Config {
            bind: self.bind,
            database_url: self.database_url,
            public_url,
            app_url,
            mail,
            smtp_timeout: Duration::from_secs(self.smtp_timeout_secs),
            mail_from: self.mail_from,
            jwt,
            jwt_audience: self.jwt_audience,
            jwt_leeway: Duration::from_secs(self.jwt_leeway_secs),
            access_token_ttl: Duration::from_secs(self.access_token_ttl_secs),
            refresh_token_ttl: Duration::from_secs(self.refresh_token_ttl_secs),
            refresh_reuse_grace: Duration::from_secs(self.refresh_reuse_grace_secs),
            code_ttl: Duration::from_secs(self.code_ttl_secs),
            code_max_failures_per_day: self.code_max_failures_per_day,
            email_revert_ttl: Duration::from_secs(self.email_revert_ttl_secs),
            totp_issuer,
            webauthn_rp_name: self.webauthn_rp_name,
            argon2,
            hash_concurrency,
            max_body_bytes: self.max_body_bytes,
            signup_conceals_existing: self.signup_conceals_existing,
            ip_rate_limit: self.ip_rate_limit,
            ip_rate_window: Duration::from_secs(self.ip_rate_window_secs),
            trusted_proxies,
            ipv6_prefix_len: self.ipv6_prefix_len,
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            idle_timeout: IDLE_TIMEOUT,
            metrics_bind: self.metrics_bind,
            login_max_failures: self.login_max_failures,
            login_max_failures_all: self.login_max_failures_all,
            login_lockout: Duration::from_secs(self.login_lockout_secs),
            email_min_interval: Duration::from_secs(self.email_min_interval_secs),
            retention: Duration::from_secs(self.retention_secs),
            housekeeping_interval: HOUSEKEEPING_INTERVAL,
            cors_origins,
            outbox_retry_base: Duration::from_millis(self.outbox_retry_base_ms.max(1)),
            outbox_retry_max: Duration::from_millis(self.outbox_retry_max_ms.max(1)),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout_secs),
            db_busy_timeout: Duration::from_millis(self.db_busy_timeout_ms),
            passkeys,
        })
    }
}

impl Config {
    /// The defaults, as `sesame` with nothing configured would run (tests start from here).
    pub fn defaults() -> Config {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            args: ServeArgs,
        }
        // Parse an empty command line without reading the environment, so
        // tests are not affected by a developer's SESAME_* variables.
        let mut cmd = <Defaults as clap::CommandFactory>::command();
        cmd = cmd.mut_args(|a| a.env(None::<&str>));
        let matches = cmd.get_matches_from(["sesame"]);
        let parsed = <Defaults as clap::FromArgMatches>::from_arg_matches(&matches)
            .expect("defaults always parse");
        parsed.args.into_config().expect("defaults are valid")
    }
}

/// The settings that hold secrets: read from the environment, `.env` or
/// their `…_FILE`, never from the command line.
const SECRET_SETTINGS: &[(&str, &str)] = &[
    ("jwt_secret", "SESAME_JWT_SECRET"),
    ("smtp_url", "SESAME_SMTP_URL"),
];

/// Refuses a secret given as a command-line flag: the process list shows
/// every process's arguments to every local user.
pub fn refuse_secret_flags(matches: &ArgMatches) -> anyhow::Result<()> {
    for (id, env) in SECRET_SETTINGS {
        if matches.value_source(id) == Some(ValueSource::CommandLine) {
            bail!(
                "--{} is not accepted: command-line flags are visible to every local user \
                 (ps). Set {env} in the environment or .env, or name a file holding it \
                 with {env}_FILE",
                id.replace('_', "-")
            );
        }
    }
    // A PostgreSQL URL may carry its password: the same rule, for the
    // password only (a SQLite path on the command line is fine).
    if matches.value_source("database_url") == Some(ValueSource::CommandLine) {
        let with_password = matches
            .get_one::<String>("database_url")
            .and_then(|u| url::Url::parse(u).ok())
            .is_some_and(|u| u.password().is_some());
        if with_password {
            bail!(
                "--database-url with a password is not accepted: command-line flags are \
                 visible to every local user (ps). Set SESAME_DATABASE_URL in the environment \
                 or .env, or leave the password out of the URL and use PGPASSWORD or ~/.pgpass"
            );
        }
    }
    Ok(())
}

/// A secret from its variable or from the file its `…_FILE` variable names
/// (one final line break dropped), never both. Errors name the setting and
/// the file, never the secret.
fn secret_setting(
    value: Option<String>,
    file: Option<&Path>,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(value);
    };
    if value.as_deref().is_some_and(|v| !v.is_empty()) {
        bail!("{name} and {name}_FILE are both set; set only one");
    }
    let contents = std::fs::read_to_string(path)
        .with_context(|| format!("{name}_FILE: cannot read {}", path.display()))?;
    let secret = contents
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&contents);
    if secret.is_empty() {
        bail!("{name}_FILE: {} is empty", path.display());
    }
    Ok(Some(secret.to_owned()))
}

/// Refuses an `smtp://` URL that would send a user name or password (and
/// then every code and link) unencrypted to another machine: only
/// `smtps://`, `?tls=required` (STARTTLS or nothing) or a loopback relay may
/// carry credentials. The error names the host, never the credentials.
fn refuse_plain_text_credentials(url: &url::Url) -> anyhow::Result<()> {
    let has_credentials = !url.username().is_empty() || url.password().is_some();
    let tls_required = url.scheme() == "smtps"
        || url
            .query_pairs()
            .any(|(key, value)| key == "tls" && value == "required");
    // `smtp` is not a special scheme to the URL parser: an IPv4 address
    // comes back as a domain name.
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => {
            name.eq_ignore_ascii_case("localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if has_credentials && !tls_required && !loopback {
        bail!(
            "SESAME_SMTP_URL: refusing to send SMTP credentials unencrypted to {}; use \
             smtps://…:465, or add ?tls=required to require STARTTLS",
            url.host_str().unwrap_or("the relay")
        );
    }
    Ok(())
}

/// The relying party of passkeys from its settings, defaulting to the
/// host and origin of the app URL. An RP ID or origin that is set and
/// invalid stops the start (naming the setting); an app URL on an IP
/// address without an RP ID set only turns passkeys off.
fn relying_party(
    rp_id: Option<&str>,
    origins: &str,
    rp_name: &str,
    app_url: &str,
) -> anyhow::Result<Option<RelyingParty>> {
    let app = url::Url::parse(app_url).context("SESAME_APP_URL is not a valid URL")?;
    let origins = origins
        .split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            url::Url::parse(o)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
                .with_context(|| {
                    format!("SESAME_WEBAUTHN_ORIGINS: `{o}` is not an origin like https://app.example.com")
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let origins = if origins.is_empty() {
        vec![app.clone()]
    } else {
        origins
    };
    let rp_id = match rp_id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => id.to_owned(),
        None => match app.domain() {
            Some(host) => host.to_owned(),
            None => return Ok(None),
        },
    };
    RelyingParty::new(&rp_id, &origins, rp_name)
        .map(Some)
        .context("SESAME_WEBAUTHN_RP_ID and SESAME_WEBAUTHN_ORIGINS do not fit together")
}

/// Parses an http(s) base URL and drops any trailing slash.
fn normalize_base_url(raw: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(raw.trim())?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("scheme must be http or https");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}
