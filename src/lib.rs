//! sesame: a user-authentication server in one binary, with SQLite inside.
//!
//! Data flows one way: `api → domain → store/mail`.
//!
//! - [`cli`]: the `sesame` subcommands (serve, migrate, openapi, backup, check-config).
//! - [`config`]: the typed configuration (flags, `SESAME_*` variables, `.env`).
//! - [`app`]: builds and runs the service; binds port 0 in tests; graceful stop.
//! - [`html`]: HTML escaping for the pages and emails.
//! - [`http`]: transport rules for every route (body limit, error body, headers).
//! - [`limits`]: per-IP rate limits and the client IP behind trusted proxies.
//! - [`telemetry`]: request ids, route labels, the per-request log line.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`, one per app.
//! - [`error`]: the one error type and its `{error, code, message}` body.
//! - [`api`]: poem-openapi resources; thin handlers, the Swagger documentation.
//! - [`pages`]: the small HTML pages behind the links in emails (`/verify`, `/reset-password`).
//! - [`domain`]: valid-by-construction types and the account/session flows.
//! - [`store`]: every SQL statement, behind named functions; transactions.
//! - [`mail`]: email templates, transports and the outbox worker.
//! - [`state`]: what handlers share.
//! - [`admin_cli`]: the operator's commands (`sesame admin create`, `sesame keys rotate`).

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
