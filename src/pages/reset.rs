//! `/reset-password?token=…`: the page behind the link in the password reset
//! email. `GET` shows a form for the new password; posting it spends the
//! token and sets the password. Without a token (the link in the "someone
//! tried to sign up" email, or an expired link) the page offers to email a
//! new reset link instead.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use serde::Deserialize;

use super::failure::{failure_page, fixable};
use super::html::{self, Page};
use crate::domain::password::{MAX_LEN, MIN_LEN};
use crate::flows::password_reset;
use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The token from the link.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ResetLink {
    token: String,
}

/// The posted form: a token with the new password, or only an email
/// address to send a reset link to (missing fields are empty).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResetFields {
    token: String,
    new_password: String,
    confirm_password: String,
    email: String,
}

/// Shows the new-password form (without a token, the request form); spends nothing.
#[handler]
pub async fn show(Query(link): Query<ResetLink>) -> Page {
    if link.token.trim().is_empty() {
        return request_page(StatusCode::OK, None);
    }
    form_page(StatusCode::OK, &link.token, None)
}

/// Sets the new password with the posted token, or emails a reset link.
#[handler]
pub async fn submit(state: Data<&Arc<AppState>>, Form(fields): Form<ResetFields>) -> Page {
    if fields.token.trim().is_empty() && !fields.email.trim().is_empty() {
        return request_link(&state, &fields.email).await;
    }
    let result = password_reset::reset_password(
        &state,
        &fields.token,
        &fields.new_password,
        &fields.confirm_password,
    )
    .await;
    match result.map_err(ApiError::from) {
        Ok(()) => Page {
            status: StatusCode::OK,
            title: "Password changed",
            body: html::success(
                "Your password has been changed and every session was signed out. \
                 Log in with your new password.",
            ),
        },
        Err(err) if err.code() == ErrorCode::InvalidToken => {
            // Retyping passwords cannot fix the token: offer a new link.
            request_page(err.status(), Some(&problem_text(&err)))
        }
        Err(err) if fixable(&err) => {
            form_page(err.status(), &fields.token, Some(&problem_text(&err)))
        }
        Err(err) => failure_page(&err),
    }
}

/// What to tell the person, in words rather than field names.
fn problem_text(err: &ApiError) -> String {
    if err.code() == ErrorCode::InvalidToken {
        return "This reset link is invalid, has expired or was already used. Enter your \
                email address to get a new one."
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

/// The new-password form with the token hidden in it; passwords are never
/// echoed back.
fn form_page(status: StatusCode, token: &str, problem: Option<&str>) -> Page {
    let mut body = String::new();
    let mut described = " aria-describedby=\"password-hint\"";
    if let Some(problem) = problem {
        body.push_str(&html::problem("problem", problem));
        described = " aria-invalid=\"true\" aria-describedby=\"password-hint problem\"";
    }
    body.push_str("<form method=\"post\" action=\"reset-password\">");
    body.push_str(&html::hidden("token", token.trim()));
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

/// Emails a reset link; answers alike whether or not the account exists.
async fn request_link(state: &AppState, email: &str) -> Page {
    match password_reset::forgot_password(state, email)
        .await
        .map_err(ApiError::from)
    {
        Ok(()) => Page {
            status: StatusCode::OK,
            title: "Check your email",
            body: html::success(&format!(
                "If that address has a sesame account, a link to choose a new password is on \
                 its way. It works for {} minutes.",
                state.config.code_ttl.as_secs().div_ceil(60)
            )),
        },
        Err(err) if fixable(&err) => request_page(
            err.status(),
            Some("That does not look like an email address."),
        ),
        Err(err) => failure_page(&err),
    }
}

/// The form that asks for an email address to send a reset link to.
fn request_page(status: StatusCode, problem: Option<&str>) -> Page {
    let mut body = String::new();
    let mut described = "";
    if let Some(problem) = problem {
        body.push_str(&html::problem("problem", problem));
        described = " aria-describedby=\"problem\"";
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"reset-password\">\
         <label for=\"email\">Email address</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" \
         maxlength=\"320\" required{described}>\
         <button type=\"submit\">Email me a reset link</button></form>"
    ));
    Page {
        status,
        title: "Reset your password",
        body,
    }
}
