//! The command line: the `sesame` command tree (this file) and each
//! command ([`commands`]: serve, migrate, openapi, backup, copy, check-config;
//! [`admin`]: `admin create`, `admin reset-mfa`, `keys rotate`).

pub mod admin;
pub mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::ServeArgs;

/// sesame: user authentication in one binary.
#[derive(Parser)]
#[command(version, about, long_about = commands::LONG_ABOUT, after_long_help = commands::EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default). Stops gracefully on SIGTERM or Ctrl-C.
    Serve,
    /// Create or upgrade the database (SESAME_DATABASE_URL), then exit.
    ///
    /// `sesame serve` does this too on every start; run it on its own to
    /// upgrade before starting, or to check that the database opens.
    Migrate,
    /// Print the OpenAPI document (the same as GET /openapi.json).
    Openapi,
    /// Write a consistent copy of the database to PATH, also while the server runs.
    ///
    /// PATH must not exist yet. The copy is self-contained (no -wal file)
    /// and checked before it is put in place. The database is neither
    /// created nor migrated. To restore: stop sesame, replace the database
    /// file with the copy, delete the `-wal` and `-shm` files beside it,
    /// start sesame.
    Backup {
        /// Where to write the copy (a new file).
        path: PathBuf,
    },
    /// Copy every row of the SQLite database into an empty PostgreSQL database.
    ///
    /// Reads SESAME_DATABASE_URL (SQLite, never changed) and writes the
    /// database named by --to, after applying sesame's migrations to it, in
    /// one transaction: users, sessions, signing keys, codes, outbox,
    /// counters. Tokens issued before keep working once sesame runs on the
    /// target. Refuses a target that holds any user. Stop sesame first:
    /// what it writes after the copy started stays behind.
    Copy {
        /// The PostgreSQL database to fill, e.g. postgres://sesame@db.example.com:5432/sesame.
        /// Its password goes in PGPASSWORD or ~/.pgpass, or the whole URL in
        /// SESAME_COPY_TO: the command line is visible to every local user.
        #[arg(long, env = "SESAME_COPY_TO", value_name = "POSTGRES_URL")]
        to: String,
    },
    /// Check the settings and print the ones in effect, secrets redacted.
    ///
    /// Exits 1 with a message naming the setting when one is invalid.
    CheckConfig,
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
    /// Turn off the second factor (TOTP and recovery codes) of an account
    /// whose owner lost the device; the owner is emailed.
    ResetMfa {
        /// Email address of the account.
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new Ed25519 signing key; running servers switch to it without a
    /// restart, and tokens signed by the previous key verify until they expire.
    Rotate,
}

/// Runs the command line: parses it, runs the command, and turns any
/// failure into one line on stderr and exit status 1.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let command = commands::with_global_settings(Cli::command());
    let matches = command.clone().get_matches();
    let parsed = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(parsed, &command, &matches)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

async fn run(cli: Cli, command: &clap::Command, matches: &ArgMatches) -> anyhow::Result<()> {
    crate::config::refuse_secret_flags(matches)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => commands::serve(cli.serve).await,
        Command::Migrate => commands::migrate(cli.serve).await,
        Command::Openapi => commands::openapi(cli.serve),
        Command::Backup { path } => commands::backup(cli.serve, &path).await,
        Command::Copy { to } => {
            let on_command_line = matches
                .subcommand_matches("copy")
                .and_then(|m| m.value_source("to"))
                == Some(ValueSource::CommandLine);
            commands::copy(cli.serve, &to, on_command_line).await
        }
        Command::CheckConfig => {
            cli.serve.clone().into_config()?;
            println!("{}", commands::check_config(cli.serve, command, matches));
            Ok(())
        }
        Command::Admin(AdminCommand::Create { email, .. }) => {
            let config = cli.serve.into_config()?;
            let password = admin::read_password_from_stdin()?;
            admin::create_admin(&config.database_url, config.argon2, &email, &password).await
        }
        Command::Admin(AdminCommand::ResetMfa { email }) => {
            let config = cli.serve.into_config()?;
            admin::reset_mfa(&config, &email).await
        }
        Command::Keys(KeysCommand::Rotate) => {
            let config = cli.serve.into_config()?;
            admin::rotate_keys(&config).await
        }
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("sesame: {}", commands::one_line(err));
    ExitCode::FAILURE
}
