//! Response headers every route shares (security headers, CORS, the Swagger
//! page's Content-Security-Policy) and the client IP behind trusted proxies.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, Method, header};
use poem::middleware::Cors;
use poem::{Request, Response};
use sha2::{Digest, Sha256};

use super::rate_limits::{ClientIp, TrustedProxies};
use super::telemetry::REQUEST_ID_HEADER;

/// The client IP of a request (see [`TrustedProxies::client_ip`]).
pub fn client_ip(req: &Request, proxies: &TrustedProxies) -> ClientIp {
    let peer = req
        .remote_addr()
        .as_socket_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    // A proxy may add its own header line instead of appending to the
    // client's: all lines together, in order, are the chain.
    let lines: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let forwarded = (!lines.is_empty()).then(|| lines.join(","));
    ClientIp(proxies.client_ip(peer, forwarded.as_deref()))
}

/// CORS for the allow-listed origins; `None` (off) when there are none.
pub fn cors(origins: &[String]) -> Option<Cors> {
    if origins.is_empty() {
        return None;
    }
    Some(
        Cors::new()
            .allow_origins(origins.iter().map(String::as_str))
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            // Not CORS-safelisted, so a browser app could not read them
            // otherwise: when to retry after a `429`, and the id to quote
            // when reporting a problem.
            .expose_headers([header::RETRY_AFTER.as_str(), REQUEST_ID_HEADER])
            .allow_credentials(false)
            .max_age(600),
    )
}

/// The Content-Security-Policy of the Swagger UI page: its inline scripts are
/// allowed by hash, nothing is loaded from elsewhere, and "Try it out" may
/// only call this server.
pub fn docs_csp(html: &str, public_url: &str) -> String {
    let hashes: Vec<String> = inline_scripts(html)
        .map(|script| {
            format!(
                "'sha256-{}'",
                STANDARD.encode(Sha256::digest(script.as_bytes()))
            )
        })
        .collect();
    let api_origin = url::Url::parse(public_url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; \
         font-src 'self' data:; connect-src 'self' {api_origin}; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        hashes.join(" ")
    )
}

/// The contents of the `<script>` elements of a page, in order. A script's
/// content ends at the first `</script>`, as in the HTML parser.
fn inline_scripts(html: &str) -> impl Iterator<Item = &str> {
    let mut rest = html;
    std::iter::from_fn(move || {
        let open = rest.find("<script")?;
        let body_start = open + rest[open..].find('>')? + 1;
        let len = rest[body_start..].find("</script>")?;
        let script = &rest[body_start..body_start + len];
        rest = &rest[body_start + len..];
        Some(script)
    })
}

/// Headers every response carries; `csp` replaces the default policy.
pub fn add_security_headers(resp: &mut Response, csp: Option<&str>) {
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let policy = csp.unwrap_or("default-src 'none'; frame-ancestors 'none'");
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        if let Ok(value) = HeaderValue::from_str(policy) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    // API answers can carry tokens and codes: never cache them.
    if is_json && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
