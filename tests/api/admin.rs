//! The admin API: who may use it, listing and reading users, and what each
//! change does to the account.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// Applies a change and returns the user it answers with.
async fn updated(app: &TestApp, user_id: &str, body: Value, token: &str) -> Value {
    let resp = app.api.update_account(token, user_id, &body).await;
    let body = expect_json(resp, StatusCode::OK).await;
    assert_eq!(body["success"], json!(true), "{body}");
    body["user"].clone()
}

fn emails(page: &Value) -> Vec<String> {
    page["users"]
        .as_array()
        .expect("users is an array")
        .iter()
        .map(|u| str_field(u, "email"))
        .collect()
}

/// An activated user with a session: (user id, access, refresh).
async fn member(app: &TestApp, email: &str) -> (String, String, String) {
    let signup = app.activated_user(email).await;
    let (access, refresh_token) = app.another_session(email).await;
    (str_field(&signup, "userId"), access, refresh_token)
}

#[tokio::test]
async fn an_admin_lists_users_oldest_first_with_search_and_paging() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    for email in ["ann@example.org", "bob@example.com", "cat@example.org"] {
        app.activated_user(email).await;
    }

    let all = expect_json(app.api.list_accounts(&admin, "").await, StatusCode::OK).await;
    assert_eq!(all["total"], json!(4), "{all}");
    assert_eq!(
        emails(&all),
        [
            "boss@example.com",
            "ann@example.org",
            "bob@example.com",
            "cat@example.org"
        ]
    );
    let found = expect_json(
        app.api.list_accounts(&admin, "?search=EXAMPLE.ORG").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["total"], json!(2), "{found}");
    assert_eq!(emails(&found), ["ann@example.org", "cat@example.org"]);
    let page = expect_json(
        app.api.list_accounts(&admin, "?limit=2&offset=1").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["total"], json!(4), "{page}");
    assert_eq!(emails(&page), ["ann@example.org", "bob@example.com"]);
    let none = expect_json(
        app.api.list_accounts(&admin, "?search=%25").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        none["total"],
        json!(0),
        "`%` is a plain character, not a wildcard: {none}"
    );
    for bad in ["?limit=0", "?limit=201", "?offset=-1", "?limit=ten"] {
        let resp = app.api.list_accounts(&admin, bad).await;
        expect_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
    }
}

/// The emails a search finds, in order.
async fn found(app: &TestApp, admin: &str, search: &str) -> Vec<String> {
    let query = format!("?search={}", urlencoding(search));
    let page = expect_json(app.api.list_accounts(admin, &query).await, StatusCode::OK).await;
    let emails = emails(&page);
    assert_eq!(page["total"], json!(emails.len()), "{page}");
    emails
}

/// `s` as a query value.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The search reads an index (a trigram index on either backend) that
/// triggers or PostgreSQL keep in step with every new, changed and deleted
/// address; searches of 1 or 2 characters (no trigram) match any part of
/// the address too.
#[tokio::test]
async fn the_search_index_follows_new_changed_and_deleted_addresses() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    for email in ["ann_lee@example.org", "annex@example.net", "bq@example.org"] {
        app.activated_user(email).await;
    }
    let (cat, access, _) = member(&app, "cat@example.com").await;

    assert_eq!(
        found(&app, &admin, "nn").await,
        ["ann_lee@example.org", "annex@example.net"],
        "2 characters: any part"
    );
    assert_eq!(
        found(&app, &admin, "an").await,
        ["ann_lee@example.org", "annex@example.net"]
    );
    assert_eq!(
        found(&app, &admin, "c").await,
        ["boss@example.com", "cat@example.com"]
    );
    assert_eq!(
        found(&app, &admin, "nne").await,
        ["annex@example.net"],
        "3: a substring"
    );
    assert_eq!(found(&app, &admin, "n_l").await, ["ann_lee@example.org"]);
    assert_eq!(
        found(&app, &admin, "n%l").await,
        Vec::<String>::new(),
        "`%` is plain"
    );
    assert_eq!(
        found(&app, &admin, "nnl").await,
        Vec::<String>::new(),
        "`_` is plain"
    );
    assert_eq!(
        found(&app, &admin, "n\"l").await,
        Vec::<String>::new(),
        "a quote is plain too"
    );
    assert_eq!(
        found(&app, &admin, "@example.org").await,
        ["ann_lee@example.org", "bq@example.org"]
    );

    // A changed address is found by its new name only.
    let code = {
        let resp = app
            .api
            .request_email_change(&access, "kit@example.com", PASSWORD)
            .await;
        expect_json(resp, StatusCode::ACCEPTED).await;
        app.code_from_mail("kit@example.com", 1).await
    };
    expect_json(
        app.api.confirm_email_change(&access, &code).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found(&app, &admin, "cat@").await, Vec::<String>::new());
    assert_eq!(found(&app, &admin, "kit@").await, ["kit@example.com"]);

    // A deleted one is no longer found.
    expect_json(app.api.delete_account(&admin, &cat).await, StatusCode::OK).await;
    assert_eq!(found(&app, &admin, "kit@").await, Vec::<String>::new());
    assert_eq!(
        found(&app, &admin, "example.com").await,
        ["boss@example.com"]
    );
}

/// A search pages like the list: the page is chosen among the matches
/// only (oldest first), the total counts every match, and each user on a
/// later page comes with their own admin view (referrer, disabled).
#[tokio::test]
async fn a_search_pages_through_its_matches_and_totals_all_of_them() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@team.example.com").await;
    let ann = app.activated_user("ann@team.example.org").await;
    app.activated_user("bob@example.org").await;
    let cy = app
        .signup_referred("cy@team.example.org", &str_field(&ann, "referralCode"))
        .await;
    app.activated_user("dee@team.example.org").await;
    app.activated_user("eve@example.org").await;
    let fay = app.activated_user("fay@team.example.org").await;
    updated(
        &app,
        &str_field(&fay, "userId"),
        json!({"disabled": true}),
        &admin,
    )
    .await;

    for (search, total) in [("team.example.org", 4), ("m.", 5)] {
        let query = format!("?search={search}&limit=2&offset=2");
        let page = expect_json(app.api.list_accounts(&admin, &query).await, StatusCode::OK).await;
        assert_eq!(page["total"], json!(total), "{search}: {page}");
        let tail: &[&str] = if total == 4 {
            &["dee@team.example.org", "fay@team.example.org"]
        } else {
            &["cy@team.example.org", "dee@team.example.org"]
        };
        assert_eq!(emails(&page), tail, "{search}: {page}");
    }
    let page = expect_json(
        app.api
            .list_accounts(&admin, "?search=team.example.org&limit=3&offset=1")
            .await,
        StatusCode::OK,
    )
    .await;
    let users = page["users"].as_array().expect("users is an array");
    assert_eq!(users.len(), 3, "{page}");
    assert_eq!(users[0]["userId"], cy["userId"], "{page}");
    assert_eq!(users[0]["referredBy"], ann["referralCode"], "{page}");
    assert_eq!(users[0]["active"], json!(false), "not activated: {page}");
    assert_eq!(users[1]["referredBy"], Value::Null, "{page}");
    assert_eq!(users[1]["disabled"], json!(false), "{page}");
    assert_eq!(users[2]["userId"], fay["userId"], "{page}");
    assert_eq!(users[2]["disabled"], json!(true), "{page}");

    let beyond = expect_json(
        app.api
            .list_accounts(&admin, "?search=team.example.org&offset=4")
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(beyond["total"], json!(4), "past the last match: {beyond}");
    assert_eq!(emails(&beyond), Vec::<String>::new());
}

#[tokio::test]
async fn the_admin_view_is_the_user_plus_disabled_lockout_and_last_login() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let signup = app.activated_user("sam@example.com").await;
    let user_id = str_field(&signup, "userId");

    let before = expect_json(app.api.get_account(&admin, &user_id).await, StatusCode::OK).await;
    let user = &before["user"];
    assert_eq!(user["userId"], json!(user_id), "{before}");
    assert_eq!(user["email"], json!("sam@example.com"), "{before}");
    assert_eq!(user["role"], json!("user"), "{before}");
    assert_eq!(user["active"], json!(true), "{before}");
    assert_eq!(user["referralCode"], signup["referralCode"], "{before}");
    assert_eq!(user["disabled"], json!(false), "{before}");
    assert_eq!(user["lockedUntil"], Value::Null, "{before}");
    assert_eq!(user["lastLoginAt"], Value::Null, "{before}");
    assert!(user.get("passwordHash").is_none(), "{before}");

    app.login("sam@example.com").await;

    let after = expect_json(app.api.get_account(&admin, &user_id).await, StatusCode::OK).await;
    assert!(after["user"]["lastLoginAt"].is_string(), "{after}");
}

#[tokio::test]
async fn users_who_are_not_admins_are_forbidden_everywhere() {
    let app = spawn_app().await;
    let (user_id, access, _) = member(&app, "sam@example.com").await;

    for resp in [
        app.api.list_accounts(&access, "").await,
        app.api.get_account(&access, &user_id).await,
        app.api
            .update_account(&access, &user_id, &json!({"role": "admin"}))
            .await,
        app.api.delete_account(&access, &user_id).await,
    ] {
        expect_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    assert_eq!(app.me(&access).await["role"], json!("user"));
}

#[tokio::test]
async fn the_admin_endpoints_need_a_token() {
    let app = spawn_app().await;

    let resp = app.get("/admin/users").await;

    expect_error(resp, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn an_unknown_user_is_not_found() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let nobody = uuid::Uuid::now_v7().to_string();

    for resp in [
        app.api.get_account(&admin, &nobody).await,
        app.api
            .update_account(&admin, &nobody, &json!({"disabled": true}))
            .await,
        app.api.delete_account(&admin, &nobody).await,
    ] {
        expect_error(resp, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
}

#[tokio::test]
async fn disabling_a_user_ends_every_session_at_once_and_blocks_login() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, first, first_refresh) = member(&app, "sam@example.com").await;
    let (second, _) = app.another_session("sam@example.com").await;

    let user = updated(&app, &user_id, json!({"disabled": true}), &admin).await;

    assert_eq!(user["disabled"], json!(true), "{user}");
    app.expect_token_refused(&first).await;
    app.expect_token_refused(&second).await;
    app.expect_refresh_refused(&first_refresh).await;
    let login = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(login, StatusCode::FORBIDDEN, "ACCOUNT_DISABLED").await;

    let user = updated(&app, &user_id, json!({"disabled": false}), &admin).await;

    assert_eq!(user["disabled"], json!(false), "{user}");
    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    // Enabling again does not bring the ended sessions back.
    app.expect_refresh_refused(&first_refresh).await;
}

#[tokio::test]
async fn a_promotion_and_a_demotion_count_from_the_next_request_of_the_same_token() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, access, _) = member(&app, "sam@example.com").await;

    let user = updated(&app, &user_id, json!({"role": "admin"}), &admin).await;
    assert_eq!(user["role"], json!("admin"), "{user}");
    expect_json(app.api.list_accounts(&access, "").await, StatusCode::OK).await;

    updated(&app, &user_id, json!({"role": "user"}), &admin).await;
    expect_error(
        app.api.list_accounts(&access, "").await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_access_at_once() {
    let app = spawn_app().await;
    let boss = app.admin_token("boss@example.com").await;
    let deputy = app.admin_token("deputy@example.com").await;
    let deputy_id = str_field(&app.me(&deputy).await, "userId");
    expect_json(app.api.list_accounts(&deputy, "").await, StatusCode::OK).await;

    updated(&app, &deputy_id, json!({"role": "user"}), &boss).await;

    expect_error(
        app.api.list_accounts(&deputy, "").await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    assert_eq!(app.me(&deputy).await["role"], json!("user"));
}

#[tokio::test]
async fn bad_changes_are_refused_with_validation_failed() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, _, _) = member(&app, "sam@example.com").await;

    for body in [
        json!({"role": "root"}),
        json!({"disabled": "yes"}),
        json!({"active": 1}),
        json!({"locked": true}),
    ] {
        let resp = app
            .api
            .update_account(&admin, &user_id, &body.clone())
            .await;
        let error = expect_error(resp, StatusCode::BAD_REQUEST, "VALIDATION_FAILED").await;
        assert!(
            !error.to_string().contains("root"),
            "the value is not echoed: {error}"
        );
    }
    let unchanged = expect_json(app.api.get_account(&admin, &user_id).await, StatusCode::OK).await;
    assert_eq!(unchanged["user"]["role"], json!("user"), "{unchanged}");
    assert_eq!(unchanged["user"]["disabled"], json!(false), "{unchanged}");
}

#[tokio::test]
async fn locked_false_ends_a_lockout_and_resets_the_failure_count() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, _, _) = member(&app, "sam@example.com").await;
    for _ in 0..app.config.login_max_failures {
        app.api.login("sam@example.com", "not my password").await;
    }
    let resp = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(resp, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
    let locked = expect_json(app.api.get_account(&admin, &user_id).await, StatusCode::OK).await;
    let until = chrono::DateTime::parse_from_rfc3339(&str_field(&locked["user"], "lockedUntil"))
        .expect("lockedUntil is RFC 3339");
    assert!(until > chrono::Utc::now(), "{locked}");

    let user = updated(&app, &user_id, json!({"locked": false}), &admin).await;

    assert_eq!(user["lockedUntil"], Value::Null, "{user}");
    // The count starts again from zero: one more wrong password does not lock
    // the account again, and the right one works at once.
    let wrong = app.api.login("sam@example.com", "not my password").await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn an_empty_change_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, _, _) = member(&app, "sam@example.com").await;
    let before = expect_json(app.api.get_account(&admin, &user_id).await, StatusCode::OK).await;

    let user = updated(&app, &user_id, json!({}), &admin).await;

    assert_eq!(user, before["user"]);
}

#[tokio::test]
async fn active_false_sends_the_account_back_to_email_verification() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, _, _) = member(&app, "sam@example.com").await;

    let user = updated(&app, &user_id, json!({"active": false}), &admin).await;

    assert_eq!(user["active"], json!(false), "{user}");
    let login = app.api.login("sam@example.com", PASSWORD).await;
    expect_error(login, StatusCode::FORBIDDEN, "EMAIL_NOT_VERIFIED").await;
    updated(&app, &user_id, json!({"active": true}), &admin).await;
    expect_json(
        app.api.login("sam@example.com", PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_removes_it_and_kills_its_tokens() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let (user_id, access, refresh_token) = member(&app, "sam@example.com").await;

    let body = expect_json(
        app.api.delete_account(&admin, &user_id).await,
        StatusCode::OK,
    )
    .await;

    assert_eq!(body["success"], json!(true), "{body}");
    app.expect_token_refused(&access).await;
    app.expect_refresh_refused(&refresh_token).await;
    expect_error(
        app.api.get_account(&admin, &user_id).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    expect_json(app.signup("sam@example.com").await, StatusCode::CREATED).await;
}

#[tokio::test]
async fn admins_cannot_disable_demote_or_delete_themselves() {
    let app = spawn_app().await;
    let admin = app.admin_token("boss@example.com").await;
    let my_id = str_field(&app.me(&admin).await, "userId");

    for resp in [
        app.api
            .update_account(&admin, &my_id, &json!({"disabled": true}))
            .await,
        app.api
            .update_account(&admin, &my_id, &json!({"role": "user"}))
            .await,
        app.api.delete_account(&admin, &my_id).await,
    ] {
        expect_error(resp, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    }
    expect_json(app.api.list_accounts(&admin, "").await, StatusCode::OK).await;
}
