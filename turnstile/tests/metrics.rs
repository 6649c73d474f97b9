//! `GET /metrics` through a real `turnstile serve`: after a campaign, granted claims, a
//! refused one and a sold-out burst, every metric family is there with plausible values,
//! and no label holds a raw id from a path.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{client, create_campaign, temp_dir, Server};
use serde_json::{json, Value};

/// One sample line: the metric's name, its labels, its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition format (the subset the edge writes: no timestamps).
fn parse(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, mut rest) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
            None => (series, ""),
        };
        let mut labels = BTreeMap::new();
        while !rest.is_empty() {
            let (key, after) = rest.split_once("=\"").unwrap();
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().unwrap() {
                    (_, '\\') => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (i, '"') => break i,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.to_string(), value);
            rest = after[end + 1..].trim_start_matches(',');
        }
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include every pair of `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

async fn scrape(client: &reqwest::Client, server: &Server) -> (String, Vec<Sample>) {
    let response = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let samples = parse(&text);
    (text, samples)
}

async fn claim(client: &reqwest::Client, server: &Server, user: &str) -> (u16, Value) {
    let response = client
        .post(server.url("/v1/campaigns/metrics-camp-7/claims"))
        .header("Idempotency-Key", format!("key-{user}"))
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn metrics_cover_requests_decisions_batches_and_lag() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    create_campaign(
        &client,
        &server,
        "metrics-camp-7",
        json!({"capacity": 3, "per_user_limit": 1, "time_zone": "UTC", "valid_days": 1}),
    )
    .await;

    // Two granted one by one, then the same user again: refused by the processor.
    assert_eq!(claim(&client, &server, "user-a").await.0, 201);
    assert_eq!(claim(&client, &server, "user-b").await.0, 201);
    let again = client
        .post(server.url("/v1/campaigns/metrics-camp-7/claims"))
        .header("Idempotency-Key", "key-user-a-again")
        .json(&json!({ "user_id": "user-a" }))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 409);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["error"]["code"], "user_limit_reached", "{again}");

    // A burst for the last coupon: one wins; the others are sold out, decided by a
    // processor (the answer carries the outcome) or refused at the edge's sold-out gate.
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (client, url) = (client.clone(), server.url(""));
        burst.spawn(async move {
            let response = client
                .post(format!("{url}/v1/campaigns/metrics-camp-7/claims"))
                .header("Idempotency-Key", format!("burst-{i}"))
                .json(&json!({ "user_id": format!("burst-user-{i}") }))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let (mut granted, mut decided_sold_out) = (2, 0);
    while let Some(answer) = burst.join_next().await {
        let (status, body) = answer.unwrap();
        match status {
            201 => granted += 1,
            409 => {
                assert_eq!(body["error"]["code"], "sold_out", "{body}");
                if body["error"]["outcome"].is_object() {
                    decided_sold_out += 1;
                }
            }
            _ => panic!("{status} {body}"),
        }
    }
    assert_eq!(granted, 3);
    // The burst's losers that passed the edge's gate before the winner's commit closed it
    // were decided by a processor (usually all 15); the rest were refused by the gate
    // without a decision. The metric must count exactly the decided ones, however many:
    // requiring any would make the test depend on timing (a decided rejection is already
    // certain above: `user_limit_reached`).
    // The edge's sold-out gate, asked once the campaign is known to be sold out: no
    // decision.
    let (status, gated) = claim(&client, &server, "late-user").await;
    assert_eq!(status, 409, "{gated}");
    // A path no route serves.
    let missing = client
        .get(server.url("/v1/no-such-thing/abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    // The processors have caught up once every partition's lag is 0.
    let mut scraped = scrape(&client, &server).await;
    for _ in 0..50 {
        let lags: Vec<f64> = scraped
            .1
            .iter()
            .filter(|s| s.name == "turnstile_consumer_lag_records")
            .map(|s| s.value)
            .collect();
        if !lags.is_empty() && lags.iter().all(|lag| *lag == 0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        scraped = scrape(&client, &server).await;
    }
    let (text, samples) = scraped;

    // Every family is announced.
    for (name, kind) in [
        ("turnstile_http_requests_total", "counter"),
        ("turnstile_http_request_duration_seconds", "histogram"),
        ("turnstile_decisions_total", "counter"),
        ("turnstile_batch_records", "histogram"),
        ("turnstile_batch_commit_seconds", "histogram"),
        ("turnstile_consumer_lag_records", "gauge"),
        ("turnstile_inventory_remaining", "gauge"),
        ("turnstile_sink_backlog_outcomes", "gauge"),
    ] {
        assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "{text}");
        assert!(text.contains(&format!("# HELP {name} ")), "{text}");
    }

    // Requests: by route template, method and status.
    let claims_route = "/v1/campaigns/{campaign_id}/claims";
    let requests = |status: &str| {
        total(
            &samples,
            "turnstile_http_requests_total",
            &[
                ("route", claims_route),
                ("method", "POST"),
                ("status", status),
            ],
        )
    };
    assert_eq!(requests("201"), 3.0, "{text}");
    assert_eq!(requests("409"), 1.0 + 15.0 + 1.0, "{text}");
    assert_eq!(
        total(
            &samples,
            "turnstile_http_requests_total",
            &[("route", "/v1/campaigns"), ("status", "201")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            "turnstile_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        1.0,
        "{text}"
    );
    let claims_timed = [("route", claims_route), ("method", "POST")];
    assert_eq!(
        total(
            &samples,
            "turnstile_http_request_duration_seconds_count",
            &claims_timed
        ),
        20.0,
        "{text}"
    );
    assert_eq!(
        total(
            &samples,
            "turnstile_http_request_duration_seconds_bucket",
            &[("route", claims_route), ("method", "POST"), ("le", "+Inf")]
        ),
        20.0,
        "{text}"
    );
    let seconds = total(
        &samples,
        "turnstile_http_request_duration_seconds_sum",
        &claims_timed,
    );
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");

    // Decisions: by domain and status, first deliveries only.
    let decisions = |status: &str| {
        total(
            &samples,
            "turnstile_decisions_total",
            &[("domain", "coupon"), ("status", status)],
        )
    };
    assert_eq!(decisions("campaign_created"), 1.0, "{text}");
    assert_eq!(decisions("coupon_granted"), 3.0, "{text}");
    assert_eq!(decisions("user_limit_reached"), 1.0, "{text}");
    assert_eq!(decisions("sold_out"), f64::from(decided_sold_out), "{text}");
    // Every record that reached the log was decided in some batch.
    let logged = 1.0 + 3.0 + 1.0 + f64::from(decided_sold_out);
    assert_eq!(
        total(&samples, "turnstile_batch_records_sum", &[]),
        logged,
        "{text}"
    );
    let batches = total(&samples, "turnstile_batch_records_count", &[]);
    assert!((1.0..=logged).contains(&batches), "{text}");
    assert_eq!(
        total(&samples, "turnstile_batch_commit_seconds_count", &[]),
        batches,
        "{text}"
    );
    let commit_seconds = total(&samples, "turnstile_batch_commit_seconds_sum", &[]);
    assert!(commit_seconds > 0.0 && commit_seconds < 60.0, "{text}");

    // Lag: one gauge per partition, all 0 now.
    let lags: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "turnstile_consumer_lag_records")
        .collect();
    assert!(!lags.is_empty(), "{text}");
    assert!(lags.iter().all(|s| s.value == 0.0), "{text}");
    assert!(
        lags.iter()
            .all(|s| s.labels["partition"].parse::<u32>().is_ok()),
        "{text}"
    );

    // Inventory: the sold-out campaign has none left.
    let inventory: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == "turnstile_inventory_remaining")
        .collect();
    assert_eq!(inventory.len(), 1, "{text}");
    assert_eq!(inventory[0].labels["resource"], "metrics-camp-7", "{text}");
    assert_eq!(inventory[0].value, 0.0, "{text}");
    // Sink backlog: never negative, one gauge per sink that has recorded progress.
    assert!(
        samples
            .iter()
            .filter(|s| s.name == "turnstile_sink_backlog_outcomes")
            .all(|s| s.value >= 0.0 && !s.labels["sink"].is_empty()),
        "{text}"
    );

    // No label holds a request's ids: users and keys appear nowhere, and the campaign only
    // as the resource of its inventory gauge.
    for id in ["user-a", "burst-", "late-user", "abc123"] {
        assert!(!text.contains(id), "{id} in\n{text}");
    }
    assert_eq!(text.matches("metrics-camp-7").count(), 1, "{text}");
}
