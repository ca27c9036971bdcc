//! The signed-in user's sessions: list them, end one, log out.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::bearer::BearerAuth;
use super::me::{AuthErrors, AuthInputErrors};
use super::shared::{ApiTags, MessageResponse, State};
use crate::error_responses;
use crate::flows::sessions::{self, SessionSummary};

/// Sessions of the signed-in user.
pub struct SessionsApi;

/// One login: a device or browser where the account is signed in.
#[derive(Object)]
#[oai(rename_all = "camelCase", rename = "Session")]
pub struct SessionView {
    /// Id of the session (the `sid` claim of its access tokens).
    pub session_id: String,
    /// When the login happened.
    pub created_at: DateTime<Utc>,
    /// When the session was last used (a request or a refresh), to the minute.
    pub last_used_at: DateTime<Utc>,
    /// `User-Agent` of the login request; `null` if it sent none.
    #[oai(nullable)]
    pub user_agent: Option<String>,
    /// IP address the login came from; `null` if it was not known.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// Whether this is the session of the access token that asked.
    pub current: bool,
}

impl From<SessionSummary> for SessionView {
    fn from(s: SessionSummary) -> Self {
        SessionView {
            session_id: s.session.id,
            created_at: s.session.created_at,
            last_used_at: s.session.last_used_at,
            user_agent: s.session.user_agent,
            ip: s.session.ip,
            current: s.current,
        }
    }
}

/// The live sessions of the account.
#[derive(Object)]
pub struct SessionsResponse {
    /// Always `true`.
    pub success: bool,
    /// Sessions that are neither logged out, revoked nor expired, newest first.
    pub sessions: Vec<SessionView>,
}

/// Options of `POST /users/logout`.
#[derive(Object)]
pub struct LogoutBody {
    /// End every session of the account, not only this one.
    #[oai(default)]
    pub all: bool,
}

error_responses!(
    /// Errors of ending one session.
    RevokeSessionErrors {
        401 => "`UNAUTHORIZED` (missing, invalid or revoked token) or `TOKEN_EXPIRED`.",
        404 => "`NOT_FOUND`: no live session of yours has this id.",
        500 => "`INTERNAL_ERROR`.",
    }
);

#[OpenApi(tag = "ApiTags::Me")]
impl SessionsApi {
    /// My sessions
    ///
    /// Every live session of the account, newest first, with where it came
    /// from and which one is this one.
    #[oai(
        path = "/users/me/sessions",
        method = "get",
        operation_id = "listSessions"
    )]
    async fn list(
        &self,
        state: State<'_>,
        auth: BearerAuth,
    ) -> Result<Json<SessionsResponse>, AuthErrors> {
        let sessions = sessions::list(&state, &auth.0).await?;
        Ok(Json(SessionsResponse {
            success: true,
            sessions: sessions.into_iter().map(SessionView::from).collect(),
        }))
    }

    /// End a session
    ///
    /// Logs one of your sessions out (this one included): its access tokens
    /// stop working on the very next request, its refresh tokens at once.
    #[oai(
        path = "/users/me/sessions/:sessionId",
        method = "delete",
        operation_id = "revokeSession"
    )]
    async fn revoke(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        /// Id of the session, from `GET /users/me/sessions`.
        #[oai(name = "sessionId")]
        session_id: Path<String>,
    ) -> Result<Json<MessageResponse>, RevokeSessionErrors> {
        sessions::end(&state, &auth.0, &session_id).await?;
        Ok(Json(MessageResponse::new("Session ended.")))
    }

    /// Log out (tutorial style)
    ///
    /// Ends the current session: its access and refresh tokens stop working at once.
    #[oai(path = "/users/logout", method = "get", operation_id = "logoutGet")]
    async fn logout_get(
        &self,
        state: State<'_>,
        auth: BearerAuth,
    ) -> Result<Json<MessageResponse>, AuthErrors> {
        sessions::logout(&state, &auth.0, false).await?;
        Ok(Json(MessageResponse::new("Logged out.")))
    }

    /// Log out
    ///
    /// Ends the current session, or with `{"all": true}` every session of the
    /// account. The body is optional.
    #[oai(path = "/users/logout", method = "post", operation_id = "logout")]
    async fn logout_post(
        &self,
        state: State<'_>,
        auth: BearerAuth,
        body: Json<Option<LogoutBody>>,
    ) -> Result<Json<MessageResponse>, AuthInputErrors> {
        let all = body.0.is_some_and(|b| b.all);
        sessions::logout(&state, &auth.0, all).await?;
        let message = if all {
            "Logged out of every session."
        } else {
            "Logged out."
        };
        Ok(Json(MessageResponse::new(message)))
    }
}
