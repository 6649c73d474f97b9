//! Rate limits on users' writes through a real `turnstile serve`: per user (set by the
//! environment) and per client IP (set by flags), each answered 429 `rate_limited` with
//! Retry-After, changing nothing. The per-user cap on writes in flight is tested through
//! the router in the ingest crate's tests/limits.rs (an edge without processors holds
//! writes in flight deterministically; a whole stack decides them too fast).
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

use common::{client, create_campaign, run_turnstile, temp_dir, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// (status, Retry-After in seconds, body) of a claim.
async fn claim(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    user: &str,
) -> (StatusCode, Option<u64>, Value) {
    let response = client
        .post(server.url("/v1/campaigns/flash/claims"))
        .header("Idempotency-Key", key)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap())
}

/// Asserts a 429 `rate_limited` in the stable shape with Retry-After ≥ 1; its message.
fn rate_limited(answer: (StatusCode, Option<u64>, Value)) -> String {
    let (status, retry_after, body) = answer;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["status"], 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    body["error"]["message"].as_str().unwrap().to_string()
}

async fn flash(client: &reqwest::Client, server: &Server) {
    let spec = json!({"capacity": 100, "time_zone": "UTC", "valid_days": 1, "title": "Flash"});
    create_campaign(client, server, "flash", spec).await;
}

#[tokio::test]
async fn a_user_over_the_rate_is_refused_and_others_are_served() {
    let (_dir, data) = temp_dir();
    // One write every 5 s, bursts of 3; from the environment, as in a deployment.
    let env = [
        ("TURNSTILE_USER_RATE", "0.2"),
        ("TURNSTILE_USER_BURST", "3"),
    ];
    let server = Server::start_with_env(&data, &[], &env, "warn", Stdio::inherit());
    let client = client();
    flash(&client, &server).await;

    // Ann's burst: three claims are decided (one coupon, then her per-user limit).
    for key in ["ann-1", "ann-2", "ann-3"] {
        let (status, _, body) = claim(&client, &server, key, "ann").await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    }
    // The fourth within the second is refused, naming the per-user limit.
    let message = rate_limited(claim(&client, &server, "ann-4", "ann").await);
    assert!(message.contains("per-user"), "{message}");
    assert!(message.contains("ann"), "{message}");
    // Another user is still served.
    let (status, _, body) = claim(&client, &server, "bob-1", "bob").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The refused claim changed nothing: no such request, and only two coupons issued.
    let response = client
        .get(server.url("/v1/campaigns/flash/requests/ann-4"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let campaign: Value = common::get_json(&client, &server.url("/v1/campaigns/flash")).await;
    assert_eq!(campaign["issued"], 2, "{campaign}");
}

#[tokio::test]
async fn writes_from_one_ip_over_its_rate_are_refused() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &["--ip-rate", "0.2", "--ip-burst", "2"]);
    let client = client();
    // Creates are the operator's, not users' writes: not limited.
    flash(&client, &server).await;

    for (key, user) in [("u1", "user-1"), ("u2", "user-2")] {
        let (status, _, body) = claim(&client, &server, key, user).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A third user from the same address is refused: the limit is the IP's.
    let message = rate_limited(claim(&client, &server, "u3", "user-3").await);
    assert!(message.contains("IP address"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
    // Reads are not limited.
    let campaign: Value = common::get_json(&client, &server.url("/v1/campaigns/flash")).await;
    assert_eq!(campaign["issued"], 2, "{campaign}");
}

#[test]
fn a_zero_burst_is_refused_at_start() {
    let (_dir, data) = temp_dir();
    let data = data.to_str().unwrap();
    let (ok, output) = run_turnstile(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--user-rate",
        "5",
        "--user-burst",
        "0",
    ]);
    assert!(!ok, "{output}");
    assert!(
        output.contains("--user-burst must be at least 1"),
        "{output}"
    );
}

/// Header limits are hyper's defaults (`axum::serve` does not expose its HTTP/1 settings):
/// at most 100 headers, and a head of at most about 400 KB. Beyond, hyper answers 431
/// itself (an empty body, not the error shape) and nothing reaches the handlers.
#[tokio::test]
async fn too_many_headers_are_refused_by_the_http_server() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    let mut request = client
        .post(server.url("/v1/campaigns/flash/claims"))
        .header("Idempotency-Key", "many-headers")
        .json(&json!({ "user_id": "ann" }));
    for i in 0..120 {
        request = request.header(format!("x-filler-{i}"), "x");
    }
    let response = request.send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    // The server still serves.
    let response = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
