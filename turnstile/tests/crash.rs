//! kill -9 under load: `turnstile serve` is SIGKILLed at random moments while concurrent
//! clients claim, restarted, and finally audited. Nothing acknowledged may be lost: every
//! request that got a 2xx has exactly one outcome, a 201/200 grant is still that grant,
//! a 202 was decided after all, no campaign is oversold and nobody holds two coupons.
//!
//! Rounds: 20 by default; `TURNSTILE_CRASH_ROUNDS=200` for a longer run.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, create_campaign, temp_dir, Server};
use rand::Rng;
use serde_json::{json, Value};

const CAMPAIGN: &str = "crash";
const CAPACITY: u64 = 400;
const USERS: u64 = 1_500;
const CLIENTS: usize = 24;

/// What a client was told for one key (the last 2xx/409 answer).
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
}

type Answers = Arc<Mutex<HashMap<String, Answer>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("TURNSTILE_CRASH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
    let (_dir, data) = temp_dir();
    let http = client();
    let answers: Answers = Arc::default();
    let mut rng = rand::thread_rng();

    for round in 0..rounds {
        let server = Server::start(&data, &["--wait-budget-ms", "1000"]);
        if round == 0 {
            create_campaign(&http, &server, CAMPAIGN, json!({"capacity": CAPACITY, "time_zone": "Asia/Seoul"})).await;
        }
        let url = server.url(&format!("/v1/campaigns/{CAMPAIGN}/claims"));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| tokio::spawn(claim_until_refused(http.clone(), url.clone(), answers.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..400))).await;
        server.kill();
        for client in clients {
            client.await.unwrap();
        }
    }

    // Recover once more and check every acknowledged answer against the journal.
    let server = Server::start(&data, &[]);
    let answers = answers.lock().unwrap().clone();
    let mut acknowledged = 0;
    for (key, answer) in &answers {
        let status: Value = http
            .get(server.url(&format!("/v1/campaigns/{CAMPAIGN}/requests/{key}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match answer.status {
            200 | 201 => {
                acknowledged += 1;
                assert_eq!(status["status"], "decided", "acknowledged {key} is not decided: {status}");
                assert_eq!(status["outcome"], answer.body, "{key}: the journal disagrees with the answer given");
            }
            202 => {
                acknowledged += 1;
                assert_eq!(status["status"], "decided", "accepted {key} was never decided: {status}");
            }
            409 if answer.body["error"]["outcome"].is_object() => {
                assert_eq!(status["outcome"], answer.body["error"]["outcome"], "{key}");
            }
            _ => {}
        }
    }
    assert!(acknowledged > 0, "no request was acknowledged in {rounds} rounds: the test proved nothing");
    let campaign: Value = http.get(server.url(&format!("/v1/campaigns/{CAMPAIGN}"))).send().await.unwrap().json().await.unwrap();
    assert!(campaign["issued"].as_u64().unwrap() <= CAPACITY, "{campaign}");
    server.kill();

    let (passed, report) = common::audit(&data);
    assert!(passed, "{report}");
    eprintln!("{rounds} kill -9 rounds, {acknowledged} acknowledged requests, campaign {campaign}\n{report}");
}

/// Claims for random users until the server stops answering (it was killed). Each user
/// has one key, so claiming a user twice is a retry; every 7th user also tries a second
/// key, which the per-user limit must refuse.
async fn claim_until_refused(http: reqwest::Client, url: String, answers: Answers) {
    loop {
        let (user, key) = {
            let mut rng = rand::thread_rng();
            let user = rng.gen_range(0..USERS);
            let second = user % 7 == 0 && rng.gen_bool(0.5);
            (user, if second { format!("key-{user}-b") } else { format!("key-{user}") })
        };
        let response = http
            .post(&url)
            .header("Idempotency-Key", &key)
            .json(&json!({"user_id": format!("user-{user}")}))
            .send()
            .await;
        let Ok(response) = response else { return };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<Value>().await else { return };
        assert!(
            matches!(status, 200 | 201 | 202 | 409),
            "unexpected answer {status} for {key}: {body}"
        );
        let answer = Answer { status, body };
        let mut answers = answers.lock().unwrap();
        if let Some(earlier) = answers.get(&key) {
            if matches!(earlier.status, 200 | 201) {
                // A retry of a grant must replay the same outcome.
                assert_eq!(answer.status, 200, "retry of granted {key} answered {answer:?}");
                assert_eq!(answer.body, earlier.body, "retry of granted {key} changed its outcome");
            }
        }
        if answer.status != 202 || !answers.contains_key(&key) {
            answers.insert(key, answer);
        }
    }
}
