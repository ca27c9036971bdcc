//! Housekeeping deletes what ended longer ago than `SESAME_RETENTION_SECS`
//! while the server runs, and nothing that is still in use.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn ended_sessions_and_sent_emails_are_deleted_after_the_retention_live_ones_stay() {
    let app = spawn_app_with(|c| {
        c.retention = Duration::from_secs(1);
        c.housekeeping_interval = Duration::from_millis(100);
    })
    .await;
    let (access, _) = app.logged_in_user("ann@example.com").await;
    let ended = str_field(&app.login("ann@example.com").await, "accessToken");
    expect_json(app.api.logout(&ended, None).await, StatusCode::OK).await;

    eventually(
        "the ended session and the sent email are deleted",
        || async {
            let sessions = app.db().count("SELECT COUNT(*) FROM sessions", &[]).await;
            let emails = app.db().count("SELECT COUNT(*) FROM outbox", &[]).await;
            (sessions == 1 && emails == 0).then_some(())
        },
    )
    .await;
    assert_eq!(
        app.db()
            .count(
                "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL",
                &[]
            )
            .await,
        1,
        "the live session stays"
    );
    expect_json(app.api.me(&access).await, StatusCode::OK).await;
}
