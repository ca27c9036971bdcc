//! One integration-test binary: every test starts the real server on port 0
//! with its own database and a real SMTP listener. The database is a SQLite
//! file, or with `SESAME_TEST_DATABASE=postgres` a fresh PostgreSQL database
//! (`support::backend`; `scripts/test` runs the suite both ways).

mod support;

mod account;
mod activation;
mod admin;
mod admin_cli;
mod chaos;
mod cli;
mod clients;
mod copy;
mod crash;
mod email_revert;
mod faults;
mod front_door;
mod hardening_codes;
mod hardening_edge;
mod hardening_login;
mod headers;
mod health;
mod hostile;
mod housekeeping;
mod limits;
mod lockout;
mod mfa;
mod multi_instance;
mod my_sessions;
mod nullability;
mod observability;
mod outbox;
mod pages;
mod passkeys;
mod password;
mod pg_restart;
mod referrals;
mod sessions;
mod shutdown;
mod signup;
mod smoke;
mod startup;
mod tokens;
mod transport;
