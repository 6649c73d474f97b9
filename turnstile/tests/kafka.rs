//! The production shape on real servers: two `turnstile serve` processes share a Kafka
//! topic (the tansu broker) and a PostgreSQL journal. Their processors split the
//! partitions through the consumer group; when one stops, the other takes everything over
//! from the journal's offsets. Every request is decided once and no coupon is oversold.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{client, temp_dir, PostgresSchema, Server, Tansu};
use serde_json::{json, Value};

const CAPACITY: u64 = 30;

/// Claims for users `users` over `edges` in turn; returns each request's answer: its
/// status and whether it was refused by the edge's sold-out gate (never logged).
async fn claim(
    http: &reqwest::Client,
    edges: &[&Server],
    users: std::ops::Range<u32>,
) -> HashMap<String, (u16, bool)> {
    let mut answers = HashMap::new();
    for user in users {
        let edge = edges[user as usize % edges.len()];
        let key = format!("claim-{user}");
        let response = http
            .post(edge.url("/v1/campaigns/drop/claims"))
            .header("Idempotency-Key", &key)
            .json(&json!({ "user_id": format!("user-{user}") }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        let gated = status == 409 && body["error"]["outcome"].is_null();
        answers.insert(key, (status, gated));
    }
    answers
}

/// Waits (bounded) until the request is decided; returns its outcome.
async fn decided(http: &reqwest::Client, edge: &Server, key: &str) -> Value {
    let url = edge.url(&format!("/v1/campaigns/drop/requests/{key}"));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = common::get_json(http, &url).await;
        if status["status"] == "decided" {
            return status["outcome"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{key} not decided in 120 s: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_topic_and_a_journal_and_hand_over_cleanly() {
    let broker = Tansu::start();
    let schema = PostgresSchema::new();
    let topic = format!("commands-{}", schema.name);
    let group = format!("processors-{}", schema.name);
    let args: Vec<&str> = [
        &schema.journal_args()[..],
        &["--kafka-brokers", &broker.brokers, "--kafka-topic", &topic],
        &[
            "--kafka-group",
            &group,
            "--kafka-session-timeout-ms",
            "6000",
            "--partitions",
            "4",
            "--wait-budget-ms",
            "300",
        ],
    ]
    .concat();
    let (_dir_a, data_a) = temp_dir();
    let (_dir_b, data_b) = temp_dir();
    let http = client();
    let a = Server::start(&data_a, &args);
    let b = Server::start(&data_b, &args);

    // The group forms in seconds: the create may be answered 202 and decided later.
    let created = http
        .post(a.url("/v1/campaigns"))
        .header("Idempotency-Key", "create-drop")
        .json(&json!({"campaign_id": "drop", "capacity": CAPACITY, "time_zone": "UTC"}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(created.status().as_u16(), 201 | 202),
        "{created:?}"
    );
    let outcome = decided(&http, &b, "create-drop").await;
    assert_eq!(
        outcome["decision"]["status"], "campaign_created",
        "{outcome}"
    );

    let mut answers = claim(&http, &[&a, &b], 0..60).await;
    // A leaves gracefully; B's processors take its partitions over.
    a.terminate();
    answers.extend(claim(&http, &[&b], 60..90).await);

    let mut coupons = HashSet::new();
    for (key, (status, gated)) in &answers {
        assert!(
            matches!(status, 201 | 202 | 409),
            "{key}: answered {status}"
        );
        if *gated {
            // Shed by the sold-out gate: never on the log, so never in the journal.
            let url = b.url(&format!("/v1/campaigns/drop/requests/{key}"));
            let status = common::get_json(&http, &url).await;
            assert_eq!(
                status["error"]["code"], "unknown_request",
                "{key}: {status}"
            );
            continue;
        }
        let outcome = decided(&http, &b, key).await;
        match outcome["decision"]["status"].as_str().unwrap() {
            "coupon_granted" => {
                assert_ne!(*status, 409, "{key} was refused, yet granted: {outcome}");
                let coupon = outcome["decision"]["coupon"]["coupon_id"].as_str().unwrap();
                assert!(coupons.insert(coupon.to_string()), "{coupon} granted twice");
            }
            "rejected" => assert_ne!(*status, 201, "{key} was told it won: {outcome}"),
            other => panic!("{key}: unexpected decision {other}"),
        }
    }
    assert_eq!(
        coupons.len() as u64,
        CAPACITY,
        "every coupon granted once, none more"
    );
    // (The edges' own issued counts are not compared: each counts what its processors
    // committed plus what it read when it learned the campaign; shared counts come with
    // the Redis edge state.)
    b.terminate();
}
