//! The request pipeline: body limit, request ids, rate limits, CORS,
//! security headers, and the error type every failure is answered with.

pub mod error;
pub mod headers;
pub mod rate_limits;
pub mod telemetry;
