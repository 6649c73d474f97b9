//! `turnstile audit` is only worth something if it fails on a broken journal: each test
//! damages a real journal the way a bug would and expects a failing verdict naming it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{client, create_campaign, temp_dir, Server};
use serde_json::json;

/// A data directory with a campaign and three granted claims, and an event with one hold,
/// served and then killed.
async fn served_data_dir(data: &Path) {
    let server = Server::start(data, &[]);
    let http = client();
    create_campaign(
        &http,
        &server,
        "audited",
        json!({"capacity": 10, "time_zone": "UTC"}),
    )
    .await;
    for user in ["a", "b", "c"] {
        let response = http
            .post(server.url("/v1/campaigns/audited/claims"))
            .header("Idempotency-Key", format!("k-{user}"))
            .json(&json!({"user_id": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let event = json!({"event_id": "gala", "starts_at": "2027-01-01T19:00:00Z",
        "sections": [{"section_id": "A", "price_tier": {"name": "all", "price_minor": 10},
                      "rows": [{"row_id": "1", "seats": 5}]}]});
    for (path, key, body) in [
        ("/v1/events", "create-gala", event),
        (
            "/v1/events/gala/holds",
            "hold-a",
            json!({"user_id": "a", "best": {"count": 2}}),
        ),
    ] {
        let response = http
            .post(server.url(path))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{path}");
    }
    common::wait_for_sinks(data, &[], &["archive", "mailbox"]).await;
    server.kill();
}

async fn tamper(data: &Path, sql: &str) {
    let url = format!("sqlite://{}", data.join("journal.sqlite").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let changed = sqlx::raw_sql(sql)
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    assert!(changed > 0, "the tampering changed nothing: {sql}");
    pool.close().await;
}

async fn assert_audit_catches(sql: &str, expected: &str) {
    let (_dir, data) = temp_dir();
    served_data_dir(&data).await;
    let (passed, report) = common::audit(&data, &[]);
    assert!(passed, "the untouched journal must pass: {report}");
    tamper(&data, sql).await;
    let (passed, report) = common::audit(&data, &[]);
    assert!(
        !passed,
        "audit passed a tampered journal ({sql}):\n{report}"
    );
    assert!(
        report.contains(expected),
        "expected {expected:?} in:\n{report}"
    );
}

#[tokio::test]
async fn an_altered_outcome_fails_the_replay() {
    assert_audit_catches(
        "UPDATE outcomes SET body = replace(body, 'audited-1', 'audited-9') WHERE request_id = 'k-a'",
        "replay decided",
    )
    .await;
}

#[tokio::test]
async fn a_second_coupon_for_one_user_breaks_the_limit() {
    assert_audit_catches(
        "INSERT INTO coupons (coupon_id, campaign_id, user_id, request_id, issued_at, expires_at)
         VALUES ('audited-x', 'audited', 'a', 'forged', '2026-01-01T00:00:00.000Z', '2026-01-02T00:00:00.000Z')",
        "to user \"a\"",
    )
    .await;
}

#[tokio::test]
async fn a_lost_outcome_is_found() {
    assert_audit_catches(
        "DELETE FROM outcomes WHERE request_id = 'k-b'",
        "has no outcome",
    )
    .await;
}

#[tokio::test]
async fn an_archive_row_in_the_wrong_state_is_found() {
    assert_audit_catches(
        "UPDATE archive_coupons SET state = 'redeemed' WHERE coupon_id = 'audited-1'",
        "coupon \"audited-1\" is active in the journal but redeemed in the archive",
    )
    .await;
}

#[tokio::test]
async fn an_archived_hold_in_the_wrong_state_is_found() {
    assert_audit_catches(
        "UPDATE archive_records SET state = 'sold' WHERE record_id = 'gala-h1'",
        "archive: \"gala-h1\" of \"gala\" is active in the journal but sold in the archive",
    )
    .await;
}

#[tokio::test]
async fn a_notification_missing_from_the_ledger_is_found() {
    assert_audit_catches(
        "DELETE FROM deliveries WHERE log_offset = (SELECT min(log_offset) FROM deliveries)",
        "1 notifiable outcomes carried past without a delivery ledger row",
    )
    .await;
}
