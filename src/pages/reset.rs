//! `/reset-password?token=…`: the page behind the link in the password reset
//! email. `GET` shows a form for the new password; posting it spends the
//! token and sets the password.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use serde::Deserialize;

use super::html::{self, Page};
use super::{failure_page, fixable};
use crate::domain::accounts;
use crate::domain::password::{MAX_LEN, MIN_LEN};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The token from the link.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ResetLink {
    token: String,
}

/// The posted form (missing fields are empty).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResetFields {
    token: String,
    new_password: String,
    confirm_password: String,
}

/// Shows the new-password form; spends nothing.
#[handler]
pub async fn show(Query(link): Query<ResetLink>) -> Page {
    form_page(StatusCode::OK, &link.token, None)
}

/// Sets the new password with the posted token.
#[handler]
pub async fn submit(state: Data<&Arc<AppState>>, Form(fields): Form<ResetFields>) -> Page {
    let result = accounts::reset_password(
        &state,
        &fields.token,
        &fields.new_password,
        &fields.confirm_password,
    )
    .await;
    match result {
        Ok(()) => Page {
            status: StatusCode::OK,
            title: "Password changed",
            body: html::success(
                "Your password has been changed and every session was signed out. \
                 Log in with your new password.",
            ),
        },
        Err(err) if err.code() == ErrorCode::InvalidToken => {
            // Retyping passwords cannot fix the token: ask for another one.
            form_page(err.status(), "", Some(Problem::Token(&problem_text(&err))))
        }
        Err(err) if fixable(&err) => form_page(
            err.status(),
            &fields.token,
            Some(Problem::Password(&problem_text(&err))),
        ),
        Err(err) => failure_page(&err),
    }
}

/// What to tell the person, in words rather than field names.
fn problem_text(err: &ApiError) -> String {
    if err.code() == ErrorCode::InvalidToken {
        return "This reset link is invalid, has expired or was already used. Ask for a new \
                one, or paste the token from your latest reset email."
            .to_owned();
    }
    match err.fields() {
        Some(fields) if fields.contains_key("newPassword") => {
            format!("The new password {}.", fields["newPassword"])
        }
        Some(fields) if fields.contains_key("confirmPassword") => {
            "The two passwords do not match.".to_owned()
        }
        _ => err.message().to_owned(),
    }
}

/// What was wrong with the last submission, and which field it concerns.
enum Problem<'a> {
    Token(&'a str),
    Password(&'a str),
}

/// The form, with the token hidden when the link carried one; passwords are
/// never echoed back.
fn form_page(status: StatusCode, token: &str, problem: Option<Problem<'_>>) -> Page {
    let token = token.trim();
    let mut body = String::new();
    if let Some(Problem::Token(text) | Problem::Password(text)) = problem {
        body.push_str(&html::problem("problem", text));
    }
    body.push_str("<form method=\"post\" action=\"reset-password\">");
    if token.is_empty() {
        let described = if matches!(problem, Some(Problem::Token(_))) {
            " aria-invalid=\"true\" aria-describedby=\"token-hint problem\""
        } else {
            " aria-describedby=\"token-hint\""
        };
        body.push_str(&format!(
            "<label for=\"token\">Reset token</label>\
             <input id=\"token\" name=\"token\" autocomplete=\"off\" maxlength=\"256\" \
             required{described}>\
             <p id=\"token-hint\" class=\"hint\">The token from the password reset email.</p>"
        ));
    } else {
        body.push_str(&html::hidden("token", token));
    }
    let described = if matches!(problem, Some(Problem::Password(_))) {
        " aria-invalid=\"true\" aria-describedby=\"password-hint problem\""
    } else {
        " aria-describedby=\"password-hint\""
    };
    body.push_str(&format!(
        "<label for=\"new-password\">New password</label>\
         <input id=\"new-password\" name=\"newPassword\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"{MIN_LEN}\" maxlength=\"{MAX_LEN}\" required{described}>\
         <p id=\"password-hint\" class=\"hint\">{MIN_LEN} to {MAX_LEN} characters; not a common \
         password and not your email address.</p>\
         <label for=\"confirm-password\">Confirm new password</label>\
         <input id=\"confirm-password\" name=\"confirmPassword\" type=\"password\" \
         autocomplete=\"new-password\" minlength=\"{MIN_LEN}\" maxlength=\"{MAX_LEN}\" required>\
         <button type=\"submit\">Set new password</button></form>"
    ));
    Page {
        status,
        title: "Choose a new password",
        body,
    }
}
