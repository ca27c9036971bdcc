//! `/verify?email=…&code=…`: the page behind the link in the verification
//! email. `GET` shows a button; pressing it posts the form, which activates
//! the account.

use std::sync::Arc;

use poem::handler;
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use serde::Deserialize;

use super::failure::{failure_page, fixable};
use super::html::{self, Page, escape};
use crate::flows::signup;
use crate::http::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// The fields of the link and of the form (missing ones are empty).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct VerifyFields {
    email: String,
    code: String,
}

/// Shows the confirmation button; spends nothing.
#[handler]
pub async fn show(Query(fields): Query<VerifyFields>) -> Page {
    form_page(StatusCode::OK, &fields.email, &fields.code, None)
}

/// Activates the account with the posted email and code.
#[handler]
pub async fn submit(state: Data<&Arc<AppState>>, Form(fields): Form<VerifyFields>) -> Page {
    let result = signup::activate(&state, &fields.email, &fields.code).await;
    match result.map_err(ApiError::from) {
        Ok(()) => Page {
            status: StatusCode::OK,
            title: "Email address confirmed",
            body: html::success("Your account is active. You can now log in."),
        },
        Err(err) if err.code() == ErrorCode::AlreadyActive => Page {
            status: err.status(),
            title: "Already confirmed",
            body: html::success("This account is already active. You can log in."),
        },
        Err(err) if fixable(&err) => form_page(
            err.status(),
            &fields.email,
            "",
            Some(
                "This code is wrong or has expired. Enter the code from your latest \
                 verification email; after five wrong tries, ask for a new code.",
            ),
        ),
        Err(err) => failure_page(&err),
    }
}

/// The button alone when the link carried both fields; otherwise a form to
/// type them, with `problem` above it.
fn form_page(status: StatusCode, email: &str, code: &str, problem: Option<&str>) -> Page {
    let email = email.trim();
    let code = code.trim();
    let mut body = String::new();
    if let Some(problem) = problem {
        body.push_str(&html::problem("problem", problem));
    }
    body.push_str("<form method=\"post\" action=\"verify\">");
    if problem.is_none() && !email.is_empty() && !code.is_empty() {
        body.push_str(&format!(
            "<p>Press the button to activate the sesame account of <strong>{}</strong>.</p>{}{}",
            escape(email),
            html::hidden("email", email),
            html::hidden("code", code),
        ));
    } else {
        let invalid = if problem.is_some() {
            " aria-invalid=\"true\" aria-describedby=\"code-hint problem\""
        } else {
            " aria-describedby=\"code-hint\""
        };
        body.push_str(&format!(
            "<label for=\"email\">Email address</label>\
             <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" \
             maxlength=\"320\" required value=\"{email}\">\
             <label for=\"code\">Verification code</label>\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{{6}}\" maxlength=\"6\" required value=\"{code}\"{invalid}>\
             <p id=\"code-hint\" class=\"hint\">The 6 digits from the verification email.</p>",
            email = escape(email),
            code = escape(code),
        ));
    }
    body.push_str("<button type=\"submit\">Activate my account</button></form>");
    Page {
        status,
        title: "Confirm your email address",
        body,
    }
}
