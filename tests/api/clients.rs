//! The spec reads well in generated clients: what openapi-typescript and
//! openapi-python-client make of it is checked by `scripts/test`; these are
//! the shapes that made them produce awkward or missing names.

use serde_json::Value;

fn spec() -> Value {
    let text = sesame::api::service("http://localhost:5000").spec();
    serde_json::from_str(&text).expect("the spec is JSON")
}

/// Every object in the document, with its JSON pointer.
fn walk<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((at.clone(), value));
            for (key, child) in map {
                walk(child, format!("{at}/{key}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn no_schema_is_a_composition_that_generators_turn_into_duplicate_models() {
    // A described `$ref` becomes `allOf: [{$ref}, {description}]`: the Python
    // generator dropped the error schema over it and made `MeResponseUser`.
    let spec = spec();
    let mut objects = Vec::new();
    walk(&spec, String::new(), &mut objects);
    let composed: Vec<&String> = objects
        .iter()
        .filter(|(_, v)| {
            ["allOf", "oneOf", "anyOf"]
                .iter()
                .any(|k| v.get(k).is_some())
        })
        .map(|(at, _)| at)
        .collect();
    assert!(composed.is_empty(), "compositions at {composed:?}");
}

#[test]
fn every_body_and_response_is_a_named_schema() {
    // Inline schemas get names made from the path: `PostUsersSignupResponse200`.
    let spec = spec();
    let mut inline = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let mut contents: Vec<(String, &Value)> = Vec::new();
            if let Some(content) = op["requestBody"]["content"].as_object() {
                contents.extend(content.values().map(|c| ("request".to_owned(), c)));
            }
            for (status, resp) in op["responses"].as_object().expect("responses") {
                if let Some(content) = resp["content"].as_object() {
                    contents.extend(content.values().map(|c| (status.clone(), c)));
                }
            }
            for (what, content) in contents {
                if content["schema"]["$ref"].as_str().is_none() {
                    inline.push(format!("{method} {path} {what}"));
                }
            }
        }
    }
    assert!(inline.is_empty(), "inline schemas: {inline:?}");
}

#[test]
fn nested_objects_are_named_schemas_too() {
    let spec = spec();
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    let mut inline = Vec::new();
    for (name, schema) in schemas {
        for (property, def) in schema["properties"].as_object().into_iter().flatten() {
            let def = if def["type"] == "array" {
                &def["items"]
            } else {
                def
            };
            // Maps (`additionalProperties`) are plain dictionaries in clients.
            if def["type"] == "object" && def.get("additionalProperties").is_none() {
                inline.push(format!("{name}.{property}"));
            }
        }
    }
    assert!(inline.is_empty(), "inline objects: {inline:?}");
}

#[test]
fn schema_names_are_pascal_case_and_shadow_no_built_in_type() {
    let spec = spec();
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    // `Error` shadows JavaScript's `Error` (and generators rename it `ModelError`).
    const BUILT_IN: [&str; 5] = ["Error", "Object", "Date", "Response", "Exception"];
    for name in schemas.keys() {
        assert!(
            name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "schema name {name:?} is not PascalCase"
        );
        assert!(!BUILT_IN.contains(&name.as_str()), "schema name {name:?}");
    }
}

#[test]
fn operation_ids_are_camel_case_verbs_not_paths() {
    let spec = spec();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for (method, op) in ops.as_object().expect("operations") {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {path}: operationId {id:?} is not camelCase"
            );
            assert!(
                !id.to_lowercase().contains("users"),
                "{method} {path}: operationId {id:?} repeats the path"
            );
        }
    }
}
