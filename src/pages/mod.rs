//! Small built-in pages for the links in emails: `/verify` (activate an
//! account), `/reset-password` (choose a new password) and `/revert-email`
//! (undo an email change from the old address).
//!
//! Mail scanners follow links, so a `GET` only shows a page; the page's form
//! posts back to the same path, and only that `POST` spends the code or
//! token, through the same domain functions as the JSON API. No scripts, no
//! external assets: the forms work in any browser, with or without
//! JavaScript. These routes are not part of the OpenAPI document.

pub mod failure;
pub mod html;
pub mod reset;
pub mod revert;
pub mod verify;

use poem::{Route, get};

/// The page paths with the methods each accepts (for the `Allow` header of `405`s).
pub const PATHS: [(&str, &str); 3] = [
    ("/verify", "GET, HEAD, POST"),
    ("/reset-password", "GET, HEAD, POST"),
    ("/revert-email", "GET, HEAD, POST"),
];

/// Adds the pages to a route table.
pub fn mount(route: Route) -> Route {
    route
        .at("/verify", get(verify::show).post(verify::submit))
        .at("/reset-password", get(reset::show).post(reset::submit))
        .at("/revert-email", get(revert::show).post(revert::submit))
}
