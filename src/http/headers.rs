//! Transport-level rules shared by every route: the body size limit, the
//! error body for failures raised outside handlers, and response headers.

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poem::http::{HeaderValue, Method, header};
use poem::middleware::Cors;
use poem::{Body, Request, Response};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::http::error::{ApiError, ErrorCode};
use crate::http::rate_limits::{ClientIp, TrustedProxies};

/// Refuses bodies over `max` bytes with `413` before reading them whole:
/// by `Content-Length` when given, else by reading at most `max + 1` bytes
/// of a chunked body.
///
/// A request with no body and no `Content-Type` is treated as an empty JSON
/// body: an optional body may be left out (`curl -X POST` on logout), and a
/// missing required one is a `400` naming what is missing, not a `415`.
pub async fn limit_body(mut req: Request, max: usize) -> poem::Result<Request> {
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let empty = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_none_or(|len| len.as_bytes() == b"0");
    if empty && !chunked && !req.headers().contains_key(header::CONTENT_TYPE) {
        req.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let too_large = || {
        poem::Error::from(ApiError::new(
            ErrorCode::PayloadTooLarge,
            "Request body too large",
        ))
    };
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        let len: u64 = len
            .to_str()
            .ok()
            .and_then(|l| l.parse().ok())
            .ok_or_else(|| {
                poem::Error::from(ApiError::new(
                    ErrorCode::ValidationFailed,
                    "Invalid Content-Length",
                ))
            })?;
        return if len > max as u64 {
            Err(too_large())
        } else {
            Ok(req)
        };
    }
    if chunked {
        let mut buf = Vec::new();
        let mut reader = req.take_body().into_async_read().take(max as u64 + 1);
        reader.read_to_end(&mut buf).await.map_err(|_| {
            poem::Error::from(ApiError::new(
                ErrorCode::ValidationFailed,
                "Could not read the request body",
            ))
        })?;
        if buf.len() > max {
            return Err(too_large());
        }
        req.set_body(Body::from(buf));
    }
    Ok(req)
}

/// Renders any error as the contract's body.
pub fn error_response(err: poem::Error, path: &str, allowed: &AllowedMethods) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    let mut api_err = ApiError::from_poem(&err);
    if api_err.code() == ErrorCode::MethodNotAllowed {
        if let Some(methods) = allowed.for_path(path) {
            api_err = api_err.with_allow(methods);
        }
    }
    poem::Error::from(api_err).into_response()
}

/// Renders an error raised outside the pipeline (by CORS) in the contract's shape.
pub fn bare_error_response(err: poem::Error) -> Response {
    let mut resp = poem::Error::from(ApiError::from_poem(&err)).into_response();
    add_security_headers(&mut resp, None);
    resp
}

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
            .expose_headers([
                header::RETRY_AFTER.as_str(),
                crate::http::telemetry::REQUEST_ID_HEADER,
            ])
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

/// The methods each documented path accepts, for the `Allow` header of `405`s.
pub struct AllowedMethods {
    /// (path template, its segments, the `Allow` value)
    routes: Vec<(String, Vec<String>, String)>,
}

impl AllowedMethods {
    /// Reads paths and methods from the OpenAPI document.
    pub fn from_spec(spec: &str) -> AllowedMethods {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                let mut methods: Vec<String> = ops
                    .as_object()
                    .map(|o| {
                        o.keys()
                            .filter_map(|m| m.to_uppercase().parse::<Method>().ok())
                            .map(|m| m.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                routes.push((path.clone(), segments(path), methods.join(", ")));
            }
        }
        AllowedMethods { routes }
    }

    /// Adds a route served outside the OpenAPI document.
    pub fn with_route(mut self, path: &str, methods: &str) -> AllowedMethods {
        self.routes
            .push((path.to_owned(), segments(path), methods.to_owned()));
        self
    }

    /// The `Allow` value for a request path, if it matches a documented path.
    pub fn for_path(&self, path: &str) -> Option<String> {
        self.matching(path).map(|(_, _, methods)| methods.clone())
    }

    /// The documented path template a request path matches, if any.
    pub fn template_for(&self, path: &str) -> Option<&str> {
        self.matching(path)
            .map(|(template, _, _)| template.as_str())
    }

    fn matching(&self, path: &str) -> Option<&(String, Vec<String>, String)> {
        let wanted = segments(path);
        self.routes.iter().find(|(_, template, _)| {
            template.len() == wanted.len()
                && template
                    .iter()
                    .zip(&wanted)
                    .all(|(t, w)| t.starts_with('{') || t == w)
        })
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
