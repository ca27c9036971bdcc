//! The one error type. Every failure from every layer becomes an [`ApiError`]
//! and is answered as `{error: true, code, message}` with the right status.

use std::collections::BTreeMap;
use std::fmt;

use poem::http::StatusCode;
use poem::http::header;
use poem::{IntoResponse, Response};
use poem_openapi::{Enum, Object};

use crate::domain::password::Busy;

/// Stable identifiers clients can switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    ValidationFailed,
    InvalidReferralCode,
    EmailInUse,
    InvalidCode,
    AlreadyActive,
    InvalidCredentials,
    /// A passkey being registered could not be verified (or its challenge
    /// is unknown, used or expired).
    InvalidCredential,
    EmailNotVerified,
    AccountDisabled,
    AccountLocked,
    InvalidToken,
    Unauthorized,
    TokenExpired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    /// The database cannot take writes right now (disk full, I/O error,
    /// read-only file, a lock held too long): retry after `Retry-After`.
    StorageUnavailable,
    /// More password checks wait than the server can run in about a
    /// second: retry after `Retry-After`.
    Busy,
    /// The password was right; the account needs its second factor:
    /// finish with `POST /users/login/mfa` and the `mfaToken` of the answer.
    MfaRequired,
    /// The account's second factor is on already.
    MfaAlreadyEnabled,
    /// No second factor is waiting to be confirmed.
    MfaNotPending,
    /// The account has no second factor to change.
    MfaNotEnabled,
    /// The account has a second factor: this change needs a `code` too.
    MfaCodeRequired,
    InternalError,
}

impl ErrorCode {
    /// The HTTP status every occurrence of this code is answered with.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            ValidationFailed | InvalidReferralCode | InvalidCode | InvalidToken
            | MfaCodeRequired | InvalidCredential => StatusCode::BAD_REQUEST,
            EmailInUse | AlreadyActive | MfaAlreadyEnabled | MfaNotPending | MfaNotEnabled => {
                StatusCode::CONFLICT
            }
            InvalidCredentials | Unauthorized | TokenExpired => StatusCode::UNAUTHORIZED,
            EmailNotVerified | AccountDisabled | Forbidden | MfaRequired => StatusCode::FORBIDDEN,
            AccountLocked | RateLimited => StatusCode::TOO_MANY_REQUESTS,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceUnavailable | StorageUnavailable | Busy => StatusCode::SERVICE_UNAVAILABLE,
            InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The error body of every failed request: `code` is a stable,
/// machine-readable [`ErrorCode`] to switch on.
///
/// Named `ApiError` in the spec: a plain `Error` would shadow the built-in
/// error types of the languages clients are generated in.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ApiError")]
pub struct ErrorBody {
    /// Always `true`.
    pub error: bool,
    // A plain `//` comment on purpose: a doc comment here would wrap the
    // `$ref` in `allOf` with a description, which generators turn into a
    // duplicate model or drop (openapi-python-client removed the whole schema).
    pub code: ErrorCode,
    /// Human-readable explanation; never contains secrets or internals.
    pub message: String,
    /// Per-field validation messages, when the request body was invalid.
    #[oai(skip_serializing_if_is_none)]
    pub fields: Option<BTreeMap<String, String>>,
    /// Only with `MFA_REQUIRED`: the token that finishes this login at
    /// `POST /users/login/mfa` (single use, valid 5 minutes).
    #[oai(skip_serializing_if_is_none, rename = "mfaToken")]
    pub mfa_token: Option<String>,
    /// Only with `MFA_REQUIRED`: the second factors the account can use
    /// (`totp`, `recovery`, `passkey`).
    #[oai(skip_serializing_if_is_none)]
    pub methods: Option<Vec<String>>,
}

/// A failure to answer: a client error with its code, or an internal one
/// whose cause is logged and never sent.
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    fields: Option<BTreeMap<String, String>>,
    retry_after_secs: Option<u64>,
    allow: Option<String>,
    /// The `mfaToken` and `methods` of an `MFA_REQUIRED` answer.
    second_step: Option<(String, Vec<String>)>,
    internal: Option<anyhow::Error>,
}

/// Shorthand for results whose error is an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A client error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status: code.status(),
            message: message.into(),
            fields: None,
            retry_after_secs: None,
            allow: None,
            second_step: None,
            internal: None,
        }
    }

    /// `403 MFA_REQUIRED`, carrying the token of the login's second step
    /// and the methods the account can finish it with.
    pub fn mfa_required(mfa_token: String, methods: Vec<String>) -> Self {
        let mut err = Self::new(
            ErrorCode::MfaRequired,
            "The password was right; finish logging in with a code from your authenticator \
             app (or a recovery code) at POST /users/login/mfa",
        );
        err.second_step = Some((mfa_token, methods));
        err
    }

    /// `400 VALIDATION_FAILED` naming one field.
    pub fn invalid_field(field: &str, problem: impl Into<String>) -> Self {
        let problem = problem.into();
        let mut err = Self::new(ErrorCode::ValidationFailed, format!("{field} {problem}"));
        err.fields = Some(BTreeMap::from([(field.to_owned(), problem)]));
        err
    }

    /// `400 VALIDATION_FAILED` with one message per field.
    pub fn validation(fields: BTreeMap<String, String>) -> Self {
        let summary = fields
            .iter()
            .map(|(field, problem)| format!("{field} {problem}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut err = Self::new(ErrorCode::ValidationFailed, summary);
        err.fields = Some(fields);
        err
    }

    /// `401 UNAUTHORIZED`.
    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "Missing or invalid access token")
    }

    /// `503 BUSY`: the password hashing queue is full; the client may
    /// retry in a second (the queue holds about a second of work). The
    /// pipeline holds this answer until a place frees or that second
    /// passes (see `PasswordHasher::hold_refusal`).
    pub fn busy() -> Self {
        Self::new(
            ErrorCode::Busy,
            "The server is busy checking passwords; try again in a moment",
        )
        .with_retry_after(BUSY_RETRY_AFTER.as_secs())
    }

    /// `500`; the cause is logged, the client sees a generic message. A
    /// fault of the storage is `503 STORAGE_UNAVAILABLE` with `Retry-After`
    /// instead: the store logs it once, not once per request.
    pub fn internal(cause: anyhow::Error) -> Self {
        if cause.downcast_ref::<Busy>().is_some() {
            return Self::busy();
        }
        if crate::store::fault::fault_of(&cause).is_some() {
            tracing::debug!(
                error = format!("{cause:#}"),
                "request refused: storage fault"
            );
            return Self::new(
                ErrorCode::StorageUnavailable,
                "The database cannot take this change right now; nothing was changed. \
                 Try again in a few seconds",
            )
            .with_retry_after(crate::store::fault::RETRY_AFTER_SECS);
        }
        let mut err = Self::new(ErrorCode::InternalError, "Internal server error");
        err.internal = Some(cause);
        err
    }

    /// Answers with another status than the code's usual one (the contract
    /// answers `INVALID_TOKEN` with `401` on refresh but `400` on reset).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds a `Retry-After` header (seconds).
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// Adds an `Allow` header (for `405`).
    pub fn with_allow(mut self, methods: String) -> Self {
        self.allow = Some(methods);
        self
    }

    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message a person may read; never internals.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Per-field problems of a validation error (field name → problem).
    pub fn fields(&self) -> Option<&BTreeMap<String, String>> {
        self.fields.as_ref()
    }

    /// Logs the cause of an internal error, once, where it is answered.
    pub fn log_cause(&self) {
        if let Some(cause) = &self.internal {
            tracing::error!(error = format!("{cause:#}"), "request failed");
        }
    }

    /// Maps an error raised by poem or poem-openapi (routing, extractors,
    /// payload parsing) to the contract's codes.
    pub fn from_poem(err: &poem::Error) -> Self {
        let status = err.status();
        let code = match status {
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ErrorCode::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => ErrorCode::ServiceUnavailable,
            s if s.is_client_error() => ErrorCode::ValidationFailed,
            _ => return Self::internal(anyhow::anyhow!("{err}")),
        };
        let message = match code {
            ErrorCode::NotFound => "No such route".to_owned(),
            ErrorCode::MethodNotAllowed => "Method not allowed on this route".to_owned(),
            ErrorCode::UnsupportedMediaType => {
                "Expected a JSON body with `Content-Type: application/json`".to_owned()
            }
            ErrorCode::PayloadTooLarge => "Request body too large".to_owned(),
            ErrorCode::Unauthorized => "Missing or invalid access token".to_owned(),
            ErrorCode::Forbidden => "Not allowed (for CORS: this origin is not allowed)".to_owned(),
            _ => describe_parse_error(&err.to_string()),
        };
        Self::new(code, message)
    }
}

/// Turns poem-openapi's parse errors into a message a person can act on,
/// without the value that was sent: poem-openapi's type errors quote it
/// (`Expected input type "X", found <value>`), and it may be a password.
fn describe_parse_error(raw: &str) -> String {
    let trimmed = raw
        .strip_prefix("parse request payload error: ")
        .unwrap_or(raw);
    // Everything after `", found ` is the value (and the value may itself
    // contain any text), so the message is cut there.
    let message = match trimmed.find("\", found ") {
        Some(at) => format!("{}\", found a value of another type", &trimmed[..at]),
        None => trimmed.to_owned(),
    };
    format!("Invalid request: {message}")
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code)
            .field("message", &self.message)
            .field("internal", &self.internal)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<anyhow::Error> for ApiError {
    fn from(cause: anyhow::Error) -> Self {
        Self::internal(cause)
    }
}

/// What a `503 BUSY` tells the client to wait, and the longest the
/// pipeline holds that answer.
pub const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        // The full cause chain is logged once, here; the client sees none of it.
        self.log_cause();
        let body = ErrorBody {
            error: true,
            code: self.code,
            message: self.message.clone(),
            fields: self.fields.clone(),
            mfa_token: self.second_step.as_ref().map(|(token, _)| token.clone()),
            methods: self
                .second_step
                .as_ref()
                .map(|(_, methods)| methods.clone()),
        };
        let mut resp = poem_openapi::payload::Json(body)
            .with_status(self.status)
            .into_response();
        let headers = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("static"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, secs.into());
        }
        if let Some(allow) = self.allow.as_deref().and_then(|a| a.parse().ok()) {
            headers.insert(header::ALLOW, allow);
        }
        headers.insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
        resp
    }
}

/// Declares an error response type for a group of operations: the statuses
/// listed are the ones documented in the spec, each with the `Error` schema.
#[macro_export]
macro_rules! error_responses {
    ($(#[$meta:meta])* $name:ident { $($status:literal => $desc:literal),+ $(,)? }) => {
        $(#[$meta])*
        pub struct $name(pub $crate::http::error::ApiError);

        impl From<$crate::http::error::ApiError> for $name {
            fn from(err: $crate::http::error::ApiError) -> Self { $name(err) }
        }

        impl From<$crate::flows::refusal::Refusal> for $name {
            fn from(refusal: $crate::flows::refusal::Refusal) -> Self {
                $name($crate::http::error::ApiError::from(refusal))
            }
        }

        impl From<$name> for poem::Error {
            fn from(err: $name) -> poem::Error { poem::Error::from(err.0) }
        }

        impl poem_openapi::ApiResponse for $name {
            fn meta() -> poem_openapi::registry::MetaResponses {
                $crate::http::error::error_meta(&[$(($status, $desc)),+])
            }
            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$crate::http::error::ErrorBody as poem_openapi::types::Type>::register(registry);
            }
        }
    };
}

/// Builds the spec entries for a list of error statuses.
pub fn error_meta(statuses: &[(u16, &'static str)]) -> poem_openapi::registry::MetaResponses {
    use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses};
    use poem_openapi::types::Type;
    // Whatever can fail inside (`500`) can meet a storage fault (`503`).
    // (A list that names `503` itself says both.)
    let storage = (statuses.iter().any(|&(status, _)| status == 500)
        && !statuses.iter().any(|&(status, _)| status == 503))
    .then_some((
        503,
        "`STORAGE_UNAVAILABLE`: the database cannot take writes right now (disk full, \
             I/O error, read-only file, a lock held too long); nothing was changed. Retry \
             after `Retry-After` seconds.",
    ));
    let responses = statuses
        .iter()
        .copied()
        .chain(storage)
        .map(|(status, description)| {
            let mut headers = Vec::new();
            if status == 401 {
                headers.push(MetaHeader {
                    name: "WWW-Authenticate".into(),
                    description: Some("Always `Bearer`.".into()),
                    required: true,
                    deprecated: false,
                    schema: String::schema_ref(),
                });
            }
            if status == 429 || status == 503 {
                headers.push(MetaHeader {
                    name: "Retry-After".into(),
                    description: Some("Seconds to wait before trying again.".into()),
                    required: true,
                    deprecated: false,
                    schema: u64::schema_ref(),
                });
            }
            MetaResponse {
                description,
                status: Some(status),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "application/json; charset=utf-8",
                    schema: ErrorBody::schema_ref(),
                }],
                headers,
            }
        })
        .collect();
    MetaResponses { responses }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_lose_the_value_that_was_sent() {
        let raw = r#"parse request payload error: failed to parse "SignupBody": Expected input type "SignupBody", found "hunter2 secret". (occurred while parsing "SignupBody")"#;
        let message = describe_parse_error(raw);
        assert!(!message.contains("hunter2"), "{message}");
        assert!(
            message.ends_with("found a value of another type"),
            "{message}"
        );
    }
}
