//! sesame: a user-authentication server in one binary, with SQLite inside.
//!
//! Data flows one way: `http → api → flows → domain`, with `flows →
//! store/mail`. `domain/` knows neither HTTP nor SQL; a workflow in
//! `flows/` refuses with its own [`flows::refusal::Refusal`], which `api/`
//! turns into an [`http::error::ApiError`]; all SQL is in `store/`.
//!
//! - [`cli`]: the command tree of the `sesame` binary and each command (serve,
//!   migrate, openapi, backup, check-config, `admin create`, `keys rotate`).
//! - [`config`]: the typed configuration (flags, `SESAME_*` variables, `.env`).
//! - [`app`]: builds and runs the service; binds port 0 in tests; housekeeping; graceful stop.
//! - [`http`]: the request pipeline (body limit, request ids, rate limits, CORS,
//!   security headers), `ApiError` → status + `{error, code, message}`, and the route table.
//! - [`api`]: poem-openapi resources, one file each; thin handlers, the Swagger documentation.
//! - [`pages`]: the small HTML pages behind the links in emails (`/verify`, `/reset-password`).
//! - [`flows`]: the workflows (signup, activation, login, sessions, profile, email
//!   change, passkeys, administration, signing keys); they take and return domain types.
//! - [`domain`]: valid-by-construction types and pure rules (`User`, `Role`,
//!   `EmailAddress`, passwords, codes, tokens, referral codes, the passkey
//!   relying party); no HTTP, no SQL.
//! - [`store`]: every SQL statement, behind named functions; transactions.
//! - [`mail`]: email templates, transports and the outbox worker.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`, one per app;
//!   renders the numbers it is given.
//! - [`state`]: what handlers and workflows share.
//! - [`html`]: HTML escaping for the pages and emails.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod flows;
pub mod html;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod pages;
pub mod state;
pub mod store;
