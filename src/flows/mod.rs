//! The workflows: signup, activation, login, sessions, profile, email
//! change and its revert, the second factor, administration and the
//! signing keys in use.

pub mod admin;
pub mod email_change;
pub mod email_revert;
pub mod mfa;
pub mod password_check;
pub mod password_reset;
pub mod profile;
pub mod refusal;
pub mod second_factor;
pub mod sessions;
pub mod signing;
pub mod signup;
