//! `/revert-email?token=…`: the page behind the link in the notice a
//! confirmed email change sends to the old address. `GET` shows a button;
//! pressing it posts the form, which undoes the change.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use serde::Deserialize;

use super::failure::failure_page;
use super::html::{self, Page};
use crate::flows::email_revert;
use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The token of the link and of the form (missing: empty).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct RevertFields {
    token: String,
}

/// Shows the button; spends nothing.
#[handler]
pub async fn show(Query(fields): Query<RevertFields>) -> Page {
    if fields.token.trim().is_empty() {
        return invalid_page(StatusCode::BAD_REQUEST);
    }
    let mut body = String::from(
        "<p>Press the button to undo the change of your sesame account's email address. \
         This address goes back on the account, everyone signed in to it is signed out, \
         and the current password stops working: we email this address a link to choose \
         a new one.</p>",
    );
    body.push_str("<form method=\"post\" action=\"revert-email\">");
    body.push_str(&html::hidden("token", fields.token.trim()));
    body.push_str("<button type=\"submit\">Undo the change</button></form>");
    Page {
        status: StatusCode::OK,
        title: "Undo the email change",
        body,
    }
}

/// Undoes the change with the posted token.
#[handler]
pub async fn submit(state: Data<&Arc<AppState>>, Form(fields): Form<RevertFields>) -> Page {
    match email_revert::revert(&state, &fields.token)
        .await
        .map_err(ApiError::from)
    {
        Ok(()) => Page {
            status: StatusCode::OK,
            title: "Email change undone",
            body: html::success(
                "Your old email address is back on your account and everyone was signed \
                 out. Check this address for a link to choose a new password.",
            ),
        },
        Err(err) if err.code() == ErrorCode::InvalidToken => invalid_page(err.status()),
        Err(err) => failure_page(&err),
    }
}

/// The link cannot work (no token, unknown, used or expired).
fn invalid_page(status: StatusCode) -> Page {
    Page {
        status,
        title: "Undo the email change",
        body: html::problem(
            "problem",
            "This link is invalid, has expired or was already used. If your account's \
             address was changed without you, ask for a password reset on the new \
             address if you can, or contact the administrator.",
        ),
    }
}
