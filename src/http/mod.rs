//! The request pipeline: connections and their timeouts, body limit,
//! request ids, rate limits, CORS, security headers, the error type every
//! failure is answered with (`ApiError` → status + `{error, code, message}`),
//! and the route table.

pub mod allowed_methods;
pub mod body;
pub mod bounded_store;
pub mod error;
pub mod headers;
pub mod pipeline;
pub mod rate_limits;
pub mod routes;
pub mod server;
pub mod telemetry;
