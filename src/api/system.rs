//! Liveness, readiness, the tutorial's ping, the JWKS, and `GET /`.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::shared::{ApiTags, State};
use crate::error_responses;
use crate::http::error::ApiError;

/// Health and key publication.
pub struct SystemApi;

/// The tutorial's health answer.
#[derive(Object)]
pub struct PingResponse {
    /// Always `false`.
    pub error: bool,
    /// `Server is healthy`.
    pub message: String,
}

/// A health check result.
#[derive(Object)]
pub struct HealthStatus {
    /// `ok`, or `unavailable` when a dependency is down.
    pub status: String,
}

/// Readiness: can this instance serve requests?
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// The database answers and takes writes.
    #[oai(status = 200)]
    Ready(Json<HealthStatus>),
    /// The database does not answer, or cannot take writes (disk full, I/O
    /// error, read-only file, a lock held too long).
    #[oai(status = 503)]
    NotReady(Json<HealthStatus>),
}

/// Where `GET /` sends a browser.
#[derive(ApiResponse)]
pub enum HomeResponse {
    /// Swagger UI, at `Location`.
    #[oai(status = 303)]
    SeeOther(#[oai(header = "Location")] String),
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Object)]
pub struct Jwks {
    /// Public keys that verify access tokens; empty when HS256 is configured.
    pub keys: Vec<serde_json::Value>,
}

error_responses!(
    /// Errors of endpoints that take no input.
    ServerErrors {
        500 => "`INTERNAL_ERROR`: the database did not answer.",
    }
);

#[OpenApi(tag = "ApiTags::System")]
impl SystemApi {
    /// Is the server up?
    ///
    /// Kept from the original tutorial: answers `{"error": false, "message": "Server is healthy"}`.
    #[oai(path = "/ping", method = "get", operation_id = "ping")]
    async fn ping(&self) -> Json<PingResponse> {
        Json(PingResponse {
            error: false,
            message: "Server is healthy".into(),
        })
    }

    /// The server's address, opened in a browser: a newcomer's first click
    /// lands on Swagger UI, which links the spec. Not an API operation, so
    /// hidden from the spec. (A route beside the API's would not do: the
    /// API, nested at `/`, catches `/` itself.)
    #[oai(path = "/", method = "get", hidden)]
    async fn home(&self) -> HomeResponse {
        HomeResponse::SeeOther("/docs".to_owned())
    }

    /// Liveness probe
    ///
    /// 200 while the process serves HTTP.
    #[oai(path = "/health/live", method = "get", operation_id = "healthLive")]
    async fn live(&self) -> Json<HealthStatus> {
        Json(HealthStatus {
            status: "ok".into(),
        })
    }

    /// Readiness probe
    ///
    /// 200 when the database answers and takes writes, 503 otherwise; back
    /// to 200 by itself once a fault has passed.
    #[oai(path = "/health/ready", method = "get", operation_id = "healthReady")]
    async fn ready(&self, state: State<'_>) -> ReadyResponse {
        match state.store.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(HealthStatus {
                status: "ok".into(),
            })),
            Err(e) => {
                // A write fault was logged once when it began; a probe
                // every few seconds must not repeat it.
                if state.store.fault().is_none() {
                    tracing::warn!(error = format!("{e:#}"), "readiness check failed");
                }
                ReadyResponse::NotReady(Json(HealthStatus {
                    status: "unavailable".into(),
                }))
            }
        }
    }

    /// Public signing keys (JWKS)
    ///
    /// The Ed25519 keys that verify access tokens, with their `kid`s. Other
    /// services can verify sesame's tokens offline with these. After
    /// `sesame keys rotate` both the new key and the previous one are listed
    /// until every token signed by the previous one has expired.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, state: State<'_>) -> Result<Json<Jwks>, ServerErrors> {
        let keys = state
            .keys
            .jwks(&state.store)
            .await
            .map_err(ApiError::from)?;
        Ok(Json(Jwks { keys }))
    }
}
