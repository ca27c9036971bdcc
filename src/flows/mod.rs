//! The workflows: signup, activation, login, sessions, profile, email
//! change and its revert, administration and the signing keys in use.

pub mod admin;
pub mod email_change;
pub mod email_revert;
pub mod password_check;
pub mod password_reset;
pub mod profile;
pub mod refusal;
pub mod sessions;
pub mod signing;
pub mod signup;
