//! Which methods each path accepts, read from the OpenAPI document (for the
//! `Allow` header of `405`s and the route label of requests no handler took).

use poem::http::Method;

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
