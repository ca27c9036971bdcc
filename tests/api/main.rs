//! One integration-test binary: every test starts the real server on port 0
//! with its own SQLite file and a real SMTP listener.

mod helpers;
mod process;
mod smtp;

mod activation;
mod cli;
mod crash;
mod headers;
mod health;
mod hostile;
mod limits;
mod lockout;
mod observability;
mod outbox;
mod password;
mod referrals;
mod sessions;
mod shutdown;
mod signup;
mod smoke;
mod startup;
mod tokens;
mod transport;
