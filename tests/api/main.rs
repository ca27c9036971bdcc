//! One integration-test binary: every test starts the real server on port 0
//! with its own SQLite file and a real SMTP listener.

mod authed;
mod helpers;
mod smtp;

mod account;
mod activation;
mod admin;
mod cli;
mod health;
mod my_sessions;
mod outbox;
mod password;
mod referrals;
mod sessions;
mod signup;
mod smoke;
mod tokens;
mod transport;
