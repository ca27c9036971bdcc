//! What the test modules share: a running app ([`app`]), the typed API
//! client ([`client`]), accounts in given states ([`accounts`]), a
//! software passkey authenticator ([`authenticator`]), the backend the
//! suite runs on, SQLite or PostgreSQL ([`backend`]), several instances
//! on one PostgreSQL database ([`cluster`]), the test database
//! ([`database`]), the captured mail ([`mailbox`]) and the
//! `sesame` binary as a process ([`process`]).

pub mod accounts;
pub mod app;
pub mod authenticator;
pub mod backend;
pub mod client;
pub mod cluster;
pub mod database;
pub mod mailbox;
pub mod process;

pub use accounts::session_id_of;
pub use app::*;
pub use backend::{on_postgres, sqlite_only};
pub use client::{Answer, Api, IntoAnswer, Signup};
pub use database::{TestDb, database_made_in};
pub use mailbox::{
    CapturedMail, MailServer, find_query_param, find_six_digit_code, reusable_socket,
};
