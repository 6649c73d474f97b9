//! The per-user cap on writes in flight, through the router of an edge with no processor:
//! every write waits its whole wait budget for a decision that never comes, so the writes
//! in flight are exactly the ones sent — a deterministic way to fill a user's slots.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use tower::ServiceExt;
use turnstile_ingest::limits::LimitsConfig;
use turnstile_ingest::{CommandLog, Edge, EdgeConfig, OutcomeFeed};
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::{EmbeddedLog, EmbeddedLogConfig};

const WAIT_BUDGET_MS: u64 = 1_500;

fn hold(user: &str, key: &str, prefer_wait: Option<u64>) -> Request<Body> {
    let mut request = Request::post("/v1/events/gala/holds")
        .header("content-type", "application/json")
        .header("idempotency-key", key);
    if let Some(seconds) = prefer_wait {
        request = request.header("prefer", format!("wait={seconds}"));
    }
    request
        .body(Body::from(format!(
            r#"{{"user_id":"{user}","seat_ids":["A-1-1"]}}"#
        )))
        .unwrap()
}

async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, retry_after, String::from_utf8_lossy(&body).into())
}

#[tokio::test]
async fn a_users_write_beyond_the_in_flight_cap_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"), 1)).unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    let feed = Arc::new(OutcomeFeed::new(vec![], vec![]));
    let config = EdgeConfig {
        wait_budget_ms: WAIT_BUDGET_MS,
        limits: LimitsConfig {
            user_in_flight_max: 2,
            ..LimitsConfig::default()
        },
        ..EdgeConfig::default()
    };
    let router = turnstile_ingest::api::router(Edge::new(
        config,
        CommandLog::Embedded(log),
        journal,
        feed.clone(),
    ));

    // Two holds of ann's, each waiting its whole budget: her two slots are taken.
    let held: Vec<_> = ["held-1", "held-2"]
        .into_iter()
        .map(|key| {
            let router = router.clone();
            tokio::spawn(async move { send(&router, hold("ann", key, None)).await })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(feed.is_pending("gala", "held-1") && feed.is_pending("gala", "held-2")) {
        assert!(Instant::now() < deadline, "the held writes never went out");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // Her third is refused at once, in the stable shape, with Retry-After.
    let started = Instant::now();
    let (status, retry_after, body) = send(&router, hold("ann", "third", None)).await;
    assert!(started.elapsed() < Duration::from_millis(WAIT_BUDGET_MS / 2));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "too_many_in_flight", "{body}");
    assert_eq!(error["error"]["status"], 429);
    // It was never written: nothing is pending under its key.
    assert!(!feed.is_pending("gala", "third"));
    let status_url = Request::get("/v1/events/gala/requests/third")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, status_url).await.0, StatusCode::NOT_FOUND);

    // Another user is not affected.
    let (status, _, body) = send(&router, hold("bob", "bobs", Some(0))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Answered (202: no processor here), the held writes free their slots.
    for held in held {
        let (status, _, body) = held.await.unwrap();
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, _, body) = send(&router, hold("ann", "after", Some(0))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}
