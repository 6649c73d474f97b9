//! kill -9 of `turnstile serve --notifier ses` while it delivers, against moto's SES.
//! Claims flow, the process is SIGKILLed at random moments (several rounds), restarted,
//! and at the end: every granted coupon got its message; every extra message carries the
//! outcome id (and Message-ID) of an earlier one, a recognisable duplicate; there are at
//! most rounds × sends_in_flight_max of them; and the ledger shows every one `sent`.
//!
//! Rounds: 6 by default, `TURNSTILE_NOTIFIER_CRASH_ROUNDS` for more.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use common::moto::Moto;
use common::{client, create_campaign, temp_dir, Server};
use rand::Rng;
use serde_json::{json, Value};

const CAMPAIGN: &str = "ny";
const FROM: &str = "drops@shop.example";
const SENDS_IN_FLIGHT_MAX: usize = 4;
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_delivery_sends_every_message_and_only_recognisable_duplicates() {
    let rounds: usize = std::env::var("TURNSTILE_NOTIFIER_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(6);
    let moto = Moto::start();
    let http = client();
    verify_identity(&http, &moto).await;
    let (_dir, data) = temp_dir();
    let env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let in_flight = SENDS_IN_FLIGHT_MAX.to_string();
    let args = [
        "--notifier",
        "ses",
        "--ses-from",
        FROM,
        "--recipient-domain",
        "shop.example",
        "--sends-in-flight-max",
        &in_flight,
        "--partitions",
        "2",
    ];
    let start = || Server::start_with_env(&data, &args, &env, "warn", Stdio::inherit());
    let mut rng = rand::thread_rng();
    let mut users = 0u64;
    for round in 0..rounds {
        let server = start();
        if round == 0 {
            let spec = json!({"capacity": 100_000, "time_zone": "America/New_York",
                              "title": "Spring drop", "locale": "en"});
            create_campaign(&http, &server, CAMPAIGN, spec).await;
        }
        let url = server.url(&format!("/v1/campaigns/{CAMPAIGN}/claims"));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| tokio::spawn(claim_until_refused(http.clone(), url.clone(), round, c)))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(200..900))).await;
        server.kill();
        for c in clients {
            users += c.await.unwrap();
        }
    }

    // Restart and let the notifier catch up: the ledger says when every one is sent.
    let server = start();
    let campaign: Value =
        common::get_json(&http, &server.url(&format!("/v1/campaigns/{CAMPAIGN}"))).await;
    let issued = campaign["issued"].as_u64().unwrap();
    assert!(
        issued > 0,
        "no coupon was granted in {rounds} rounds ({users} claims)"
    );
    let status = wait_until_sent(&data, issued).await;
    server.kill();

    let sent = moto.sent_raw().await;
    let mut first_seen: HashMap<String, String> = HashMap::new();
    let mut coupons = BTreeSet::new();
    let mut duplicates = 0;
    for message in &sent {
        let (head, body) = decode(&message.raw_data);
        let outcome_id = header(&head, "X-Turnstile-Outcome-Id").unwrap().to_string();
        let message_id = header(&head, "Message-ID").unwrap().to_string();
        assert_eq!(message_id, format!("<{outcome_id}.ses@turnstile>"));
        assert!(body.contains("(America/New_York), that is"), "{body}");
        match first_seen.get(&outcome_id) {
            Some(first) => {
                // A duplicate: the same message, recognisable by its outcome id.
                assert_eq!(
                    first, &message.raw_data,
                    "a resend differs from the first send"
                );
                duplicates += 1;
            }
            None => {
                let coupon = body
                    .split("your coupon ")
                    .nth(1)
                    .and_then(|rest| rest.split(' ').next())
                    .unwrap()
                    .to_string();
                assert!(
                    coupons.insert(coupon.clone()),
                    "{coupon} was told of twice under different outcomes"
                );
                first_seen.insert(outcome_id, message.raw_data.clone());
            }
        }
    }
    let expected: BTreeSet<String> = (1..=issued).map(|n| format!("{CAMPAIGN}-{n}")).collect();
    assert_eq!(
        coupons, expected,
        "every granted coupon gets exactly one distinct message"
    );
    let bound = rounds * SENDS_IN_FLIGHT_MAX;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates after {rounds} kills: more than rounds × sends_in_flight_max = {bound}"
    );
    eprintln!(
        "{rounds} kill -9 rounds, {issued} coupons, {} messages at moto, {duplicates} recognisable duplicates (bound {bound})\n{status}",
        sent.len()
    );
}

/// Claims for fresh users until the server stops answering; returns how many it sent.
async fn claim_until_refused(
    http: reqwest::Client,
    url: String,
    round: usize,
    client: usize,
) -> u64 {
    let mut n = 0;
    loop {
        let user = format!("u{round}-{client}-{n}");
        let response = http
            .post(&url)
            .header("Idempotency-Key", format!("key-{user}"))
            .json(&json!({ "user_id": user }))
            .send()
            .await;
        if response.is_err() {
            return n;
        }
        n += 1;
    }
}

/// Creates the sender identity in moto's SES (v2 REST: `POST /v2/email/identities`).
async fn verify_identity(http: &reqwest::Client, moto: &Moto) {
    let response = http
        .post(format!("{}/v2/email/identities", moto.url))
        .header(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ses/aws4_request, SignedHeaders=host, Signature=0",
        )
        .json(&json!({ "EmailIdentity": FROM }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "CreateEmailIdentity: {status} {}",
        response.text().await.unwrap()
    );
}

/// Waits (bounded) until `turnstile sinks status --json` shows `expected` sent, none
/// sending or failed; returns the last status printed.
async fn wait_until_sent(data: &std::path::Path, expected: u64) -> String {
    let data = data.to_str().unwrap();
    let mut last = String::new();
    for _ in 0..600 {
        let (ok, out) = common::run_turnstile(&["sinks", "--data-dir", data, "status", "--json"]);
        assert!(ok, "{out}");
        let status: Value = serde_json::from_str(&out).unwrap();
        let ses = status
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["sink"] == "ses");
        if let Some(ses) = ses {
            let total = |field: &str| -> u64 {
                ses["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p[field].as_u64().unwrap())
                    .sum()
            };
            if total("sent") == expected && total("sending") == 0 && total("backlog_outcomes") == 0
            {
                assert_eq!(total("failed"), 0, "{out}");
                let (_, table) = common::run_turnstile(&["sinks", "--data-dir", data, "status"]);
                return table;
            }
        }
        last = out;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the ledger never showed {expected} sent: {last}");
}

fn decode(mime: &str) -> (String, String) {
    let base64 = base64::engine::general_purpose::STANDARD;
    let (head, body) = mime.split_once("\r\n\r\n").unwrap();
    let body = String::from_utf8(base64.decode(body.replace("\r\n", "")).unwrap()).unwrap();
    (head.to_string(), body)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}
