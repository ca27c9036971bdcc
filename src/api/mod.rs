//! The HTTP surface: one `#[OpenApi]` impl per resource, thin handlers that
//! extract, call the domain, and map the answer. The doc comments here are
//! the Swagger page.

pub mod admin;
pub mod auth;
pub mod bearer;
pub mod credentials;
pub mod me;
pub mod mfa;
pub mod refusal;
pub mod sessions;
pub mod shared;
pub mod system;
pub mod text;

use poem_openapi::OpenApiService;

pub use shared::{ApiTags, MessageResponse, State};

/// Every resource of the API, combined.
pub type Apis = (
    system::SystemApi,
    auth::AuthApi,
    me::MeApi,
    credentials::AccountApi,
    mfa::MfaApi,
    mfa::MfaLoginApi,
    sessions::SessionsApi,
    admin::AdminApi,
);

/// The API with its metadata; `server_url` is where Swagger UI sends requests.
/// Handlers read the shared [`AppState`] from request data, so the spec can
/// be built without a database (`sesame openapi`).
pub fn service(server_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            system::SystemApi,
            auth::AuthApi,
            me::MeApi,
            credentials::AccountApi,
            mfa::MfaApi,
            mfa::MfaLoginApi,
            sessions::SessionsApi,
            admin::AdminApi,
        ),
        "sesame",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "User authentication in one binary: email/password accounts with emailed \
         verification codes, JWT access tokens with rotating refresh tokens, password \
         reset, two-factor authentication (TOTP and recovery codes), referrals, self-service \
         account management and administration.\n\n\
         Every error answers `{error: true, code, message}`; `code` is stable, and each \
         operation lists its error statuses. To call the endpoints that need a session: \
         log in, copy `accessToken`, press **Authorize** and paste it.",
    )
    .server(server_url)
}
