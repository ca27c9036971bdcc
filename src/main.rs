//! The `sesame` binary: parse the command line, set up logging, run.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sesame::app::Application;
use sesame::config::ServeArgs;
use tracing_subscriber::EnvFilter;

/// sesame — user authentication in one binary.
///
/// Run `sesame` to serve on 127.0.0.1:5000 with a `sesame.db` SQLite file in
/// the working directory (created on first start). Every flag can also be set
/// as a SESAME_* environment variable or in a `.env` file.
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (the same as GET /openapi.json).
    Openapi,
    /// Manage administrator accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Manage the JWT signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an active admin account (the password is read from standard input).
    Create {
        /// Email address of the new admin.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: never pass it as an argument).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new Ed25519 signing key; running servers switch to it without a
    /// restart, and tokens signed by the previous key verify until they expire.
    Rotate,
}

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let log_format = cli.serve.log_format.clone();
    let config = cli.serve.into_config()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            let spec = sesame::api::service(&config.public_url).spec();
            std::io::stdout().write_all(spec.as_bytes())?;
            std::io::stdout().write_all(b"\n")?;
            Ok(())
        }
        Command::Migrate => {
            init_logging(&log_format);
            sesame::store::Store::open(&config.database_url)
                .await?
                .close()
                .await;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Admin(AdminCommand::Create { email, .. }) => {
            let password = sesame::admin_cli::read_password_from_stdin()?;
            sesame::admin_cli::create_admin(&config.database_url, config.argon2, &email, &password)
                .await
        }
        Command::Keys(KeysCommand::Rotate) => {
            if matches!(config.jwt, sesame::config::JwtSigning::Hs256(_)) {
                anyhow::bail!(
                    "SESAME_JWT_SECRET is set: tokens are signed with that shared secret, not \
                     with stored keys; to rotate, change the secret"
                );
            }
            sesame::admin_cli::rotate_keys(&config.database_url).await
        }
        Command::Serve => {
            init_logging(&log_format);
            Application::start(config).await?.run_until_signal().await
        }
    }
}

fn init_logging(format: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("sesame: {message}");
    ExitCode::FAILURE
}
