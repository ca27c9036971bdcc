//! Every `null` in an answer is one the spec declares (`nullable: true`):
//! strict generated clients and schemathesis' response check refused
//! `User.name`, `User.referredBy`, `AdminUser.lockedUntil`/`lastLoginAt`
//! and `Session.userAgent` when the spec called them plain strings.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// The schema `GET /openapi.json` documents for a `200` of `method path`.
fn ok_schema<'a>(spec: &'a Value, method: &str, path: &str) -> &'a Value {
    let schema = &spec["paths"][path][method]["responses"]["200"]["content"]["application/json; charset=utf-8"]
        ["schema"];
    assert!(schema.is_object(), "no 200 schema for {method} {path}");
    schema
}

/// Follows a `$ref` into `components/schemas`.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().expect("a name");
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Walks `value` along `schema`; names each `null` the schema does not allow
/// in `undeclared`, and counts the allowed ones in `declared`.
fn check_nulls(
    spec: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    undeclared: &mut Vec<String>,
    declared: &mut Vec<String>,
) {
    let schema = resolve(spec, schema);
    match value {
        Value::Null if schema["nullable"] == json!(true) => declared.push(at.to_owned()),
        Value::Null => undeclared.push(at.to_owned()),
        Value::Object(fields) => {
            for (name, field) in fields {
                let property = &schema["properties"][name];
                assert!(property.is_object(), "{at}.{name} is not in the spec");
                check_nulls(
                    spec,
                    property,
                    field,
                    &format!("{at}.{name}"),
                    undeclared,
                    declared,
                );
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_nulls(
                    spec,
                    &schema["items"],
                    item,
                    &format!("{at}[{i}]"),
                    undeclared,
                    declared,
                );
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_null_in_an_answer_is_declared_nullable_in_the_spec() {
    let app = spawn_app().await;
    let spec = expect_json(app.get("/openapi.json").await, StatusCode::OK).await;
    // No name, no referrer, no User-Agent: the fields that answer `null`.
    let (token, _) = app.logged_in_user("plain@example.com").await;
    // Signed up, never activated nor logged in: no lockout, no last login.
    expect_json(app.signup("new@example.com").await, StatusCode::CREATED).await;
    let admin = app.admin_token("boss@example.com").await;
    let list = app
        .api
        .list_accounts(&admin, "?search=new@")
        .await
        .expect(StatusCode::OK);
    let new_id = str_field(&list["users"][0], "userId");

    let answers = [
        ("get", "/users/me", app.api.me(&token).await),
        (
            "patch",
            "/users/me",
            app.api.update_me(&token, &json!({"name": null})).await,
        ),
        ("get", "/users/me/sessions", app.api.sessions(&token).await),
        (
            "get",
            "/admin/users",
            app.api.list_accounts(&admin, "").await,
        ),
        (
            "get",
            "/admin/users/{userId}",
            app.api.get_account(&admin, &new_id).await,
        ),
        (
            "patch",
            "/admin/users/{userId}",
            app.api
                .update_account(&admin, &new_id, &json!({"locked": false}))
                .await,
        ),
    ];

    let (mut undeclared, mut declared) = (Vec::new(), Vec::new());
    for (method, path, resp) in answers {
        let body = resp.expect(StatusCode::OK);
        let schema = ok_schema(&spec, method, path);
        check_nulls(
            &spec,
            schema,
            &body,
            &format!("{method} {path}"),
            &mut undeclared,
            &mut declared,
        );
    }

    assert!(
        undeclared.is_empty(),
        "nulls the spec does not allow: {undeclared:?}"
    );
    for expected in [
        "get /users/me.user.name",
        "get /users/me.user.referredBy",
        "patch /users/me.user.name",
        "get /users/me/sessions.sessions[0].userAgent",
        "get /admin/users/{userId}.user.lockedUntil",
        "get /admin/users/{userId}.user.lastLoginAt",
    ] {
        assert!(
            declared.iter().any(|at| at == expected),
            "expected a null at {expected}; saw nulls at {declared:?}"
        );
    }
}
