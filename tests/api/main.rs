//! One integration-test binary: every test starts the real server on port 0
//! with its own SQLite file and a real SMTP listener.

mod helpers;
mod smtp;

mod activation;
mod clients;
mod health;
mod outbox;
mod pages;
mod password;
mod referrals;
mod sessions;
mod signup;
mod smoke;
mod tokens;
mod transport;
