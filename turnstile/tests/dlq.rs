//! Poison records on the log are dead-lettered, listed and replayed with `turnstile dlq`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{client, create_campaign, temp_dir, Server};
use serde_json::{json, Value};
use turnstile_log::{partition_for, EmbeddedLog, EmbeddedLogConfig};
use turnstile_schemas::{Command as LogCommand, CouponCommand, Envelope, ENVELOPE_VERSION};

const PARTITIONS: u32 = 4;

/// Runs `turnstile dlq ARGS` against `server`: (succeeded, stdout + stderr).
fn dlq(server: &Server, args: &[&str]) -> (bool, String) {
    common::run_turnstile(&[&["dlq", "--target", &server.url("")], args].concat())
}

fn listed(server: &Server) -> Vec<Value> {
    let (ok, text) = dlq(server, &["list", "--json"]);
    assert!(ok, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    body["dead_letters"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_are_listed_and_replayed() {
    let (_dir, data) = temp_dir();
    let http = client();
    let partitions = PARTITIONS.to_string();
    let server = Server::start(&data, &["--partitions", &partitions]);
    create_campaign(
        &http,
        &server,
        "drop",
        json!({"capacity": 10, "time_zone": "UTC"}),
    )
    .await;
    server.kill();

    // Two poison records, written straight onto the log while the server is down: bytes
    // that are no envelope, and a valid claim on a partition its campaign does not own.
    let home = partition_for("drop", PARTITIONS);
    let elsewhere = (home + 1) % PARTITIONS;
    let claim = Envelope {
        v: ENVELOPE_VERSION,
        request_id: "misrouted".into(),
        resource_id: "drop".into(),
        user_id: "alice".into(),
        submitted_at: Utc::now(),
        traceparent: None,
        command: LogCommand::Coupon(CouponCommand::Claim),
    };
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(data.join("log"), PARTITIONS)).unwrap();
    let garbage_offset = log.append(home, b"{not json\xff".to_vec()).await.unwrap();
    let misrouted_offset = log.append(elsewhere, claim.to_log_bytes()).await.unwrap();
    log.close().await.unwrap();

    let server = Server::start(&data, &["--partitions", &partitions]);
    let letters = listed(&server);
    assert_eq!(letters.len(), 2, "{letters:?}");
    let garbage = letters.iter().find(|l| l["partition"] == home).unwrap();
    assert_eq!(garbage["offset"], garbage_offset);
    assert!(garbage["reason"]
        .as_str()
        .unwrap()
        .contains("not a valid envelope"));
    assert!(
        garbage["payload"]["hex"].is_string(),
        "non-UTF-8 bytes are shown as hex"
    );
    let misrouted = letters
        .iter()
        .find(|l| l["partition"] == elsewhere)
        .unwrap();
    assert_eq!(misrouted["offset"], misrouted_offset);
    assert!(misrouted["reason"]
        .as_str()
        .unwrap()
        .contains("belongs to partition"));
    let (ok, table) = dlq(&server, &["list"]);
    assert!(ok && table.contains("2 dead letters"), "{table}");

    // Replaying the misrouted claim sends it to its campaign's partition, where it wins.
    let (ok, text) = dlq(
        &server,
        &[
            "replay",
            "--partition",
            &elsewhere.to_string(),
            "--offset",
            &misrouted_offset.to_string(),
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("appended at partition {home}")),
        "{text}"
    );
    let status_url = server.url("/v1/campaigns/drop/requests/misrouted");
    let mut status = Value::Null;
    for _ in 0..100 {
        status = common::get_json(&http, &status_url).await;
        if status["status"] == "decided" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        status["outcome"]["decision"]["status"], "coupon_granted",
        "{status}"
    );
    assert_eq!(status["outcome"]["position"]["partition"], home, "{status}");

    // Replaying the garbage dead-letters it again, at its new offset; nothing else changes.
    let (ok, text) = dlq(
        &server,
        &[
            "replay",
            "--partition",
            &home.to_string(),
            "--offset",
            &garbage_offset.to_string(),
        ],
    );
    assert!(ok, "{text}");
    let mut letters = listed(&server);
    for _ in 0..100 {
        if letters.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        letters = listed(&server);
    }
    assert_eq!(letters.len(), 3, "{letters:?}");

    // A record that was never dead-lettered is refused with a clear message.
    let (ok, text) = dlq(
        &server,
        &["replay", "--partition", "0", "--offset", "999999"],
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("no dead letter at partition 0, offset 999999"),
        "{text}"
    );
    let response = http
        .post(server.url("/v1/admin/dead-letters/x/1/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["code"].is_string(), "{body}");

    server.kill();
    let (passed, report) = common::audit(&data, &[]);
    assert!(passed, "{report}");
}
