//! How the pages answer a failure: fixable ones go back to the form, the
//! rest get a page of their own.

use poem::http::StatusCode;

use super::html::{self, Page};
use crate::http::error::{ApiError, ErrorCode};

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
pub fn fixable(err: &ApiError) -> bool {
    err.status() == StatusCode::BAD_REQUEST
}
