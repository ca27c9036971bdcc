//! Transport-level rules shared by every route: the body size limit, the
//! error body for failures raised outside handlers, and response headers.

use poem::http::{HeaderValue, Method, header};
use poem::{Body, Request, Response};
use tokio::io::AsyncReadExt;

use crate::error::{ApiError, ErrorCode};

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

/// Headers every response carries.
pub fn add_security_headers(resp: &mut Response) {
    let headers = resp.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
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
    routes: Vec<(Vec<String>, String)>,
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
                routes.push((segments(path), methods.join(", ")));
            }
        }
        AllowedMethods { routes }
    }

    /// Adds a path that is not in the OpenAPI document (the HTML pages).
    pub fn add(&mut self, path: &str, methods: &str) {
        self.routes.push((segments(path), methods.to_owned()));
    }

    /// The `Allow` value for a request path, if it matches a documented path.
    pub fn for_path(&self, path: &str) -> Option<String> {
        let wanted = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == wanted.len()
                    && template
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t.starts_with('{') || t == w)
            })
            .map(|(_, methods)| methods.clone())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}
