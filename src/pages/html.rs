//! The one layout of the built-in pages, HTML escaping, and the headers
//! every page carries: a strict Content-Security-Policy that allows exactly
//! the page's own stylesheet, no caching, and no referrer (page URLs carry
//! codes and tokens).

use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The pages' only stylesheet, inlined and allowed by its hash.
pub const STYLE: &str = "\
body{margin:0;padding:2rem 1rem;font-family:system-ui,-apple-system,\"Segoe UI\",sans-serif;\
line-height:1.5;color:#111827;background:#f9fafb}\
main{max-width:28rem;margin:0 auto;padding:1.5rem;background:#fff;border:1px solid #d1d5db;border-radius:8px}\
h1{font-size:1.5rem;margin:0 0 1rem}\
label{display:block;font-weight:600;margin-top:1rem}\
input{display:block;box-sizing:border-box;width:100%;margin-top:.25rem;padding:.5rem;font:inherit;\
border:1px solid #6b7280;border-radius:4px}\
input[aria-invalid=true]{border-color:#b91c1c}\
button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit;font-weight:600;color:#fff;\
background:#1d4ed8;border:0;border-radius:4px;cursor:pointer}\
button:hover{background:#1e40af}\
:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}\
.hint{margin:.25rem 0 0;font-size:.9rem;color:#4b5563}\
.alert{margin:0 0 1rem;padding:.75rem 1rem;border:1px solid;border-radius:4px}\
.alert p{margin:0}\
.error{color:#7f1d1d;background:#fef2f2;border-color:#b91c1c}\
.ok{color:#14532d;background:#f0fdf4;border-color:#15803d}";

/// `default-src 'none'`: no scripts, frames, images or connections; the
/// inline stylesheet by hash; forms may post only to this origin.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'"
    )
});

/// The Content-Security-Policy of every page.
pub fn content_security_policy() -> &'static str {
    &CSP
}

/// A page to answer with.
pub struct Page {
    pub status: StatusCode,
    pub title: &'static str,
    /// Markup inside `<main>`, after the `<h1>`; built with [`escape`].
    pub body: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let html = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\">\
             <title>{title} · sesame</title><style>{STYLE}</style></head>\
             <body><main><h1>{title}</h1>{body}</main></body></html>\n",
            title = escape(self.title),
            body = self.body,
        );
        let mut resp = Response::builder()
            .status(self.status)
            .content_type("text/html; charset=utf-8")
            .body(html);
        let headers = resp.headers_mut();
        if let Ok(csp) = HeaderValue::from_str(content_security_policy()) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        resp
    }
}

pub use crate::html::escape;

/// A success notice, announced politely by screen readers.
pub fn success(text: &str) -> String {
    format!(
        "<div class=\"alert ok\" role=\"status\"><p>{}</p></div>",
        escape(text)
    )
}

/// A problem to fix, announced at once by screen readers.
pub fn problem(id: &str, text: &str) -> String {
    format!(
        "<div class=\"alert error\" role=\"alert\" id=\"{}\"><p>{}</p></div>",
        escape(id),
        escape(text)
    )
}

/// A hidden form field.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attribute_breakouts() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;"
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_stylesheet() {
        let expected = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(content_security_policy().contains(&format!("'sha256-{expected}'")));
        assert!(content_security_policy().starts_with("default-src 'none';"));
        assert!(!content_security_policy().contains("unsafe"));
    }
}
