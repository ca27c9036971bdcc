//! What every request leaves behind: a request id (logged and returned as
//! `X-Request-Id`), a route label with bounded cardinality, one log line,
//! and its metrics.

use std::collections::HashMap;
use std::fmt;

use poem::http::{HeaderMap, HeaderValue};
use poem_openapi::OperationId;

use super::allowed_methods::AllowedMethods;

/// The header that carries the request id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest request id taken from a client or proxy.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The id that ties a request's log lines to its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Keeps a well-formed id a reverse proxy (or client) sent, so both logs
    /// can be joined; anything else gets a new UUID. Only `[A-Za-z0-9._:-]`
    /// is kept, so an id can never forge or break a log line.
    pub fn from_headers(headers: &HeaderMap) -> RequestId {
        headers
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_well_formed(id))
            .map(|id| RequestId(id.to_owned()))
            .unwrap_or_else(RequestId::generate)
    }

    /// A new id (UUID v7: sortable by time).
    pub fn generate() -> RequestId {
        RequestId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as a header value.
    pub fn header_value(&self) -> Option<HeaderValue> {
        HeaderValue::from_str(&self.0).ok()
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The route label of requests that matched no route (404s): one label for
/// all of them, so scanners cannot blow up the number of time series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Routes served outside the OpenAPI document, each its own label.
const FIXED_ROUTES: [&str; 1] = ["/openapi.json"];

/// Names the route template of a request (`/users/me/sessions/{sessionId}`,
/// never the raw path), for metrics and the log line.
pub struct RouteNames {
    by_operation: HashMap<String, String>,
}

impl RouteNames {
    /// Reads `operationId → path template` from the OpenAPI document.
    pub fn from_spec(spec: &str) -> RouteNames {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let mut by_operation = HashMap::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                for op in ops.as_object().into_iter().flat_map(|o| o.values()) {
                    if let Some(id) = op["operationId"].as_str() {
                        by_operation.insert(id.to_owned(), path.clone());
                    }
                }
            }
        }
        RouteNames { by_operation }
    }

    /// The template of the operation that answered, else of the documented
    /// path the request matched (a `405`), else a fixed route, else
    /// [`UNMATCHED_ROUTE`].
    pub fn route<'a>(
        &'a self,
        operation: Option<&OperationId>,
        path: &str,
        allowed: &'a AllowedMethods,
    ) -> &'a str {
        if let Some(template) = operation.and_then(|op| self.by_operation.get(op.0)) {
            return template;
        }
        if let Some(template) = allowed.template_for(path) {
            return template;
        }
        if path == "/docs" || path.starts_with("/docs/") {
            return "/docs";
        }
        FIXED_ROUTES
            .into_iter()
            .find(|fixed| *fixed == path)
            .unwrap_or(UNMATCHED_ROUTE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_and_names() -> (AllowedMethods, RouteNames) {
        let spec = r#"{"paths": {
            "/users/me/sessions": {"get": {"operationId": "listSessions"}},
            "/users/me/sessions/{sessionId}": {"delete": {"operationId": "revokeSession"}}
        }}"#;
        (AllowedMethods::from_spec(spec), RouteNames::from_spec(spec))
    }

    #[test]
    fn an_answered_operation_is_labelled_with_its_path_template() {
        let (allowed, names) = allowed_and_names();
        let op = OperationId("revokeSession");
        assert_eq!(
            names.route(Some(&op), "/users/me/sessions/0192-abc", &allowed),
            "/users/me/sessions/{sessionId}"
        );
    }

    #[test]
    fn a_wrong_method_on_a_documented_path_is_labelled_with_its_template() {
        let (allowed, names) = allowed_and_names();
        assert_eq!(
            names.route(None, "/users/me/sessions/42", &allowed),
            "/users/me/sessions/{sessionId}"
        );
    }

    #[test]
    fn unknown_paths_share_one_label() {
        let (allowed, names) = allowed_and_names();
        for path in ["/wp-login.php", "/users/me/sessions/1/2", "/"] {
            assert_eq!(names.route(None, path, &allowed), UNMATCHED_ROUTE, "{path}");
        }
        assert_eq!(names.route(None, "/docs/index.css", &allowed), "/docs");
        assert_eq!(
            names.route(None, "/openapi.json", &allowed),
            "/openapi.json"
        );
    }

    #[test]
    fn a_well_formed_incoming_request_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(RequestId::from_headers(&headers).as_str(), "abc-123_x.y:z");
    }

    #[test]
    fn a_malformed_or_overlong_request_id_is_replaced() {
        for bad in ["a b", "x\"y", "", &"a".repeat(129)] {
            let mut headers = HeaderMap::new();
            headers.insert(
                REQUEST_ID_HEADER,
                HeaderValue::from_str(bad).expect("header value"),
            );
            let id = RequestId::from_headers(&headers);
            assert_ne!(id.as_str(), bad);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok(), "{id}");
        }
    }
}
