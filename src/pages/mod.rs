//! Small built-in pages for the links in emails: `/verify` (activate an
//! account) and `/reset-password` (choose a new password).
//!
//! Mail scanners follow links, so a `GET` only shows a page; the page's form
//! posts back to the same path, and only that `POST` spends the code or
//! token, through the same domain functions as the JSON API. No scripts, no
//! external assets: the forms work in any browser, with or without
//! JavaScript. These routes are not part of the OpenAPI document.

pub mod html;
pub mod reset;
pub mod verify;

use poem::http::StatusCode;
use poem::{Route, get};

use crate::http::error::{ApiError, ErrorCode};
use html::Page;

/// The page paths with the methods each accepts (for the `Allow` header of `405`s).
pub const PATHS: [(&str, &str); 2] = [
    ("/verify", "GET, HEAD, POST"),
    ("/reset-password", "GET, HEAD, POST"),
];

/// Adds the pages to a route table.
pub fn mount(route: Route) -> Route {
    route
        .at("/verify", get(verify::show).post(verify::submit))
        .at("/reset-password", get(reset::show).post(reset::submit))
}

/// The page for a failure the person cannot fix by editing the form
/// (internal errors, rate limits); internal causes are logged, not shown.
pub fn failure_page(err: &ApiError) -> Page {
    err.log_cause();
    let message = match err.code() {
        ErrorCode::InternalError => "Something went wrong on our side. Please try again later.",
        _ => err.message(),
    };
    Page {
        status: err.status(),
        title: "Something went wrong",
        body: html::problem("problem", message),
    }
}

/// Whether the person can fix this error by changing what they typed.
fn fixable(err: &ApiError) -> bool {
    err.status() == StatusCode::BAD_REQUEST
}
