//! The HTTP API through a real `turnstile serve`: the happy paths, idempotent replays,
//! and every bad-input case answered with its status and the stable JSON error shape —
//! after which the process still serves.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;

use common::{client, create_campaign, temp_dir, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn post(
    client: &reqwest::Client,
    url: String,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, json)
}

/// A bad request: (what it is, URL, Idempotency-Key, body, expected status, expected code).
type BadInput<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    String,
    StatusCode,
    &'a str,
);

/// Asserts the stable error shape and returns the code.
fn error_code(status: StatusCode, body: &Value) -> String {
    let error = &body["error"];
    assert_eq!(
        error["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{body}"
    );
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn claims_replays_redeems_and_lookups() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    create_campaign(
        &client,
        &server,
        "spring",
        json!({"capacity": 2, "time_zone": "Asia/Seoul", "valid_days": 1, "title": "Spring"}),
    )
    .await;
    let claims = server.url("/v1/campaigns/spring/claims");

    let (status, first) = post(
        &client,
        claims.clone(),
        Some("k-alice"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let coupon_id = first["decision"]["coupon"]["coupon_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(coupon_id, "spring-1");

    // A retry with the same key gets the same outcome, as 200.
    let (status, replay) = post(
        &client,
        claims.clone(),
        Some("k-alice"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replay, first);

    // The same key for another user is refused, not answered with alice's coupon.
    let (status, body) = post(
        &client,
        claims.clone(),
        Some("k-alice"),
        r#"{"user_id":"mallory"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(status, &body), "idempotency_key_reused");

    // One per user.
    let (status, body) = post(
        &client,
        claims.clone(),
        Some("k-alice-2"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(status, &body), "user_limit_reached");
    assert_eq!(
        body["error"]["outcome"]["decision"]["reason"],
        "user_limit_reached"
    );

    let (status, _) = post(
        &client,
        claims.clone(),
        Some("k-bob"),
        r#"{"user_id":"bob"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    // Sold out: decided by the processor or shed by the gate, the answer is the same.
    for user in ["carol", "dave", "erin"] {
        let (status, body) = post(
            &client,
            claims.clone(),
            Some(&format!("k-{user}")),
            &format!(r#"{{"user_id":"{user}"}}"#),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(error_code(status, &body), "sold_out");
    }
    // After the sell-out, the winner's retry still sees the win.
    let (status, replay) = post(
        &client,
        claims.clone(),
        Some("k-alice"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replay, first);

    let campaign: Value = common::get_json(&client, &server.url("/v1/campaigns/spring")).await;
    assert_eq!(campaign["issued"], 2);
    assert_eq!(campaign["remaining"], 0);
    assert_eq!(campaign["sold_out"], true);

    // Status of a decided request.
    let status: Value = common::get_json(
        &client,
        &server.url("/v1/campaigns/spring/requests/k-alice"),
    )
    .await;
    assert_eq!(status["status"], "decided");
    assert_eq!(status["outcome"], first);

    // A non-canonical spelling of a real coupon id names no coupon (and stops nothing).
    let (status, body) = post(
        &client,
        server.url("/v1/campaigns/spring/coupons/spring-01/redeem"),
        Some("r-01"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(status, &body), "coupon_not_found");

    // Redeem: not the holder, then the holder, then again.
    let redeem = server.url(&format!("/v1/campaigns/spring/coupons/{coupon_id}/redeem"));
    let (status, body) = post(
        &client,
        redeem.clone(),
        Some("r-bob"),
        r#"{"user_id":"bob"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(status, &body), "not_coupon_holder");
    let (status, body) = post(
        &client,
        redeem.clone(),
        Some("r-alice"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"]["status"], "coupon_redeemed");
    let (status, body) = post(
        &client,
        redeem.clone(),
        Some("r-alice-2"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(status, &body), "already_redeemed");
    let (status, body) = post(
        &client,
        server.url("/v1/campaigns/spring/coupons/spring-99/redeem"),
        Some("r-x"),
        r#"{"user_id":"alice"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(status, &body), "coupon_not_found");

    // The winner's notification, from the mailbox sink, with the local expiry.
    let position = &first["position"];
    let message_path = data.join("mailbox").join(format!(
        "{}-{}.eml",
        position["partition"], position["offset"]
    ));
    let mut message = String::new();
    for _ in 0..100 {
        if let Ok(text) = std::fs::read_to_string(&message_path) {
            message = text;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (head, body) = message.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("To: alice@example.invalid\r\n"),
        "{message:?}"
    );
    let outcome_id = format!("{}-{}", position["partition"], position["offset"]);
    assert!(
        head.contains(&format!("X-Turnstile-Outcome-Id: {outcome_id}\r\n")),
        "{message:?}"
    );
    let body = base64::engine::general_purpose::STANDARD
        .decode(body.replace("\r\n", ""))
        .unwrap();
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains("your coupon spring-1 for \"Spring"),
        "{body:?}"
    );
    assert!(body.contains("00:00 KST (Asia/Seoul)"), "{body:?}");

    // The user's coupons, with expiry in UTC and in the campaign's local time.
    let mine: Value = common::get_json(&client, &server.url("/v1/users/alice/coupons")).await;
    let coupon = &mine["coupons"][0];
    assert_eq!(coupon["coupon_id"], coupon_id.as_str());
    assert_eq!(coupon["state"], "redeemed");
    assert_eq!(coupon["time_zone"], "Asia/Seoul");
    assert!(
        coupon["expires_at"].as_str().unwrap().ends_with('Z'),
        "{coupon}"
    );
    assert!(
        coupon["expires_at_local"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00+09:00"),
        "{coupon}"
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_the_edge_keeps_serving() {
    let (_dir, data) = temp_dir();
    let mut server = Server::start(&data, &["--wait-budget-ms", "5000"]);
    let client = client();
    create_campaign(
        &client,
        &server,
        "c1",
        json!({"capacity": 5, "time_zone": "Asia/Tokyo"}),
    )
    .await;
    let claims = server.url("/v1/campaigns/c1/claims");

    // The oversized body is 20 KiB against the 16 KiB limit: small enough to be fully
    // written before the edge answers 413 and closes, so the client reads the answer
    // rather than a reset (the edge does not drain oversized bodies).
    let cases: Vec<BadInput> = vec![
        ("malformed JSON", claims.clone(), Some("b1"), r#"{"user_id": "#.into(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("missing key", claims.clone(), None, r#"{"user_id":"u"}"#.into(), StatusCode::BAD_REQUEST, "missing_idempotency_key"),
        ("key with a space", claims.clone(), Some("bad key"), r#"{"user_id":"u"}"#.into(), StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
        ("a timer's key", claims.clone(), Some("timer:expire:c1-1"), r#"{"user_id":"u"}"#.into(), StatusCode::BAD_REQUEST, "invalid_idempotency_key"),
        ("unknown campaign", server.url("/v1/campaigns/nope/claims"), Some("b2"), r#"{"user_id":"u"}"#.into(), StatusCode::NOT_FOUND, "unknown_campaign"),
        ("oversized body", claims.clone(), Some("b3"), format!(r#"{{"user_id":"{}"}}"#, "x".repeat(20 * 1024)), StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ("missing user_id", claims.clone(), Some("b4"), r#"{}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("unknown field", claims.clone(), Some("b5"), r#"{"user_id":"u","extra":1}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        ("empty user_id", claims.clone(), Some("b6"), r#"{"user_id":""}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_user_id"),
        ("overlong user_id", claims.clone(), Some("b7"), format!(r#"{{"user_id":"{}"}}"#, "u".repeat(200)), StatusCode::UNPROCESSABLE_ENTITY, "invalid_user_id"),
        ("unknown time zone", server.url("/v1/campaigns"), Some("b8"), r#"{"campaign_id":"c2","capacity":1,"time_zone":"Mars/Olympus"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_campaign"),
        ("zero capacity", server.url("/v1/campaigns"), Some("b9"), r#"{"campaign_id":"c3","capacity":0,"time_zone":"UTC"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_campaign"),
        ("closes before opens", server.url("/v1/campaigns"), Some("b10"), r#"{"campaign_id":"c4","capacity":1,"time_zone":"UTC","opens_at":"2026-01-02T00:00:00Z","closes_at":"2026-01-01T00:00:00Z"}"#.into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_campaign"),
        ("different spec for an existing campaign", server.url("/v1/campaigns"), Some("b11"), r#"{"campaign_id":"c1","capacity":6,"time_zone":"Asia/Tokyo"}"#.into(), StatusCode::CONFLICT, "campaign_exists"),
        ("unknown route", server.url("/v1/nothing"), Some("b12"), "{}".into(), StatusCode::NOT_FOUND, "no_such_route"),
    ];
    for (name, url, key, body, expected_status, expected_code) in cases {
        let (status, json) = post(&client, url, key, &body).await;
        assert_eq!(status, expected_status, "{name}: {json}");
        assert_eq!(error_code(status, &json), expected_code, "{name}");
    }
    let response = client
        .post(&claims)
        .header("Idempotency-Key", "b13")
        .body(r#"{"user_id":"u"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let response = client
        .get(server.url("/v1/campaigns/c1/requests/never-sent"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Nothing above reached the log as a claim: the campaign is untouched.
    let campaign: Value = common::get_json(&client, &server.url("/v1/campaigns/c1")).await;
    assert_eq!(campaign["issued"], 0, "{campaign}");
    // And the edge still serves.
    assert!(server.is_running());
    let (status, _) = post(&client, claims.clone(), Some("good"), r#"{"user_id":"u"}"#).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_zero_wait_budget_answers_202_with_a_status_url_that_resolves() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    create_campaign(
        &client,
        &server,
        "later",
        json!({"capacity": 3, "time_zone": "America/New_York"}),
    )
    .await;
    let response = client
        .post(server.url("/v1/campaigns/later/claims"))
        .header("Idempotency-Key", "slow-1")
        .header("Prefer", "wait=0")
        .json(&json!({"user_id": "zoe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, "/v1/campaigns/later/requests/slow-1");
    let mut decided = Value::Null;
    for _ in 0..100 {
        let status: Value = common::get_json(&client, &server.url(&location)).await;
        if status["status"] == "decided" {
            decided = status;
            break;
        }
        assert_eq!(status["status"], "pending");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        decided["outcome"]["decision"]["status"], "coupon_granted",
        "{decided}"
    );
}

#[tokio::test]
async fn a_restart_keeps_every_decision_and_the_audit_passes() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    create_campaign(
        &client,
        &server,
        "keep",
        json!({"capacity": 10, "time_zone": "UTC"}),
    )
    .await;
    let (status, first) = post(
        &client,
        server.url("/v1/campaigns/keep/claims"),
        Some("a"),
        r#"{"user_id":"a"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    server.kill();

    let server = Server::start(&data, &[]);
    let (status, replay) = post(
        &client,
        server.url("/v1/campaigns/keep/claims"),
        Some("a"),
        r#"{"user_id":"a"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replay, first);
    let (status, second) = post(
        &client,
        server.url("/v1/campaigns/keep/claims"),
        Some("b"),
        r#"{"user_id":"b"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["decision"]["coupon"]["coupon_id"], "keep-2");
    let (passed, report) = common::audit(&data, &[]);
    assert!(passed, "{report}");
}
