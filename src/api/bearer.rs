//! Bearer authentication as an OpenAPI security scheme, so Swagger UI's
//! "Authorize" button sets it once for every operation that needs it.

use std::sync::Arc;

use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::flows::sessions::{self, Principal};
use crate::http::error::ApiError;
use crate::state::AppState;

/// An access token from `POST /users/login`, sent as `Authorization: Bearer <token>`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub struct BearerAuth(pub Principal);

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;
    Ok(sessions::authenticate(state, &bearer.token)
        .await
        .map_err(ApiError::from)?)
}
