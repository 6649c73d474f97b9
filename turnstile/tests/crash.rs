//! kill -9 under load: `turnstile serve` is SIGKILLed at random moments while concurrent
//! clients claim, restarted, and finally audited. Nothing acknowledged may be lost: every
//! request that got a 2xx has exactly one outcome, a 201/200 grant is still that grant,
//! a 202 was decided after all, no campaign is oversold, nobody holds two coupons, and the
//! mailbox holds exactly one message per coupon.
//!
//! Run on the embedded default (SQLite journal) and with a PostgreSQL journal.
//! Rounds: 20 (SQLite) and 8 (Postgres) by default; `TURNSTILE_CRASH_ROUNDS=200` for a
//! longer run of both.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, create_campaign, temp_dir, PostgresSchema, Server};
use rand::Rng;
use serde_json::{json, Value};

const CAMPAIGN: &str = "crash";
/// Large enough that grants keep flowing in every round (a sold-out campaign is answered
/// by the edge's gate without a log write, which would leave the crash path untested).
const CAPACITY: u64 = 50_000;
const USERS: u64 = 60_000;
const CLIENTS: usize = 24;

/// What a client was told for one request.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
}

/// Every answer given, per Idempotency-Key, in no particular order (concurrent clients
/// may send the same key at once).
type Answers = Arc<Mutex<HashMap<String, Vec<Answer>>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    kill_rounds(rounds_or(20), &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_a_postgres_journal_loses_nothing_acknowledged() {
    let schema = PostgresSchema::new();
    kill_rounds(rounds_or(8), &schema.journal_args()).await;
}

fn rounds_or(default: usize) -> usize {
    std::env::var("TURNSTILE_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

/// `rounds` of claims under fire and a SIGKILL, then the checks. `journal_args` are added to
/// every `turnstile serve` and `turnstile audit`.
async fn kill_rounds(rounds: usize, journal_args: &[&str]) {
    let (_dir, data) = temp_dir();
    let http = client();
    let answers: Answers = Arc::default();
    let mut rng = rand::thread_rng();

    let mut rounds_with_new_grants = 0;
    let mut issued_before = 0;
    for round in 0..rounds {
        let server = Server::start(
            &data,
            &[journal_args, &["--wait-budget-ms", "1000"]].concat(),
        );
        if round == 0 {
            create_campaign(
                &http,
                &server,
                CAMPAIGN,
                json!({"capacity": CAPACITY, "time_zone": "Asia/Seoul"}),
            )
            .await;
        }
        let issued = issued_count(&http, &server).await;
        assert!(
            issued >= issued_before,
            "round {round}: issued went from {issued_before} down to {issued}"
        );
        if issued > issued_before {
            rounds_with_new_grants += 1;
        }
        issued_before = issued;
        let url = server.url(&format!("/v1/campaigns/{CAMPAIGN}/claims"));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(claim_until_refused(
                    http.clone(),
                    url.clone(),
                    answers.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(30..400))).await;
        server.kill();
        for client in clients {
            client.await.unwrap();
        }
    }

    // Recover once more and check every acknowledged answer against the journal.
    let server = Server::start(&data, journal_args);
    if issued_count(&http, &server).await > issued_before {
        rounds_with_new_grants += 1;
    }
    assert!(
        rounds_with_new_grants * 2 >= rounds,
        "only {rounds_with_new_grants} of {rounds} rounds granted anything: the kills hit an idle server"
    );
    let answers = answers.lock().unwrap().clone();
    let mut acknowledged = 0;
    for (key, given) in &answers {
        let status: Value = common::get_json(
            &http,
            &server.url(&format!("/v1/campaigns/{CAMPAIGN}/requests/{key}")),
        )
        .await;
        let grants: Vec<&Answer> = given
            .iter()
            .filter(|a| matches!(a.status, 200 | 201))
            .collect();
        assert!(
            given.iter().filter(|a| a.status == 201).count() <= 1,
            "{key} was answered 201 more than once: {given:?}"
        );
        if let Some(grant) = grants.first() {
            assert!(
                grants.iter().all(|g| g.body == grant.body),
                "{key} got different outcomes: {given:?}"
            );
            assert!(
                given.iter().all(|a| a.status != 409),
                "{key} was granted, yet refused too: {given:?}"
            );
        }
        for answer in given {
            match answer.status {
                200 | 201 => {
                    acknowledged += 1;
                    assert_eq!(
                        status["status"], "decided",
                        "acknowledged {key} is not decided: {status}"
                    );
                    assert_eq!(
                        status["outcome"], answer.body,
                        "{key}: the journal disagrees with the answer given"
                    );
                }
                202 => {
                    acknowledged += 1;
                    assert_eq!(
                        status["status"], "decided",
                        "accepted {key} was never decided: {status}"
                    );
                }
                409 if answer.body["error"]["outcome"].is_object() => {
                    assert_eq!(status["outcome"], answer.body["error"]["outcome"], "{key}");
                }
                _ => {}
            }
        }
    }
    assert!(
        acknowledged > 0,
        "no request was acknowledged in {rounds} rounds: the test proved nothing"
    );
    let campaign: Value =
        common::get_json(&http, &server.url(&format!("/v1/campaigns/{CAMPAIGN}"))).await;
    let issued = campaign["issued"].as_u64().unwrap();
    assert!(issued <= CAPACITY, "{campaign}");
    // Effects once (invariant 7): the mailbox sink, killed with everything else, ends
    // with exactly one message per granted coupon.
    let messages = wait_for_messages(&data.join("mailbox"), issued).await;
    assert_eq!(messages, issued, "{messages} messages for {issued} coupons");
    // The archive sink, killed as often, catches up with the outbox; the audit then
    // cross-checks its table against the journal coupon by coupon.
    common::wait_for_sinks(&data, journal_args, &["archive"]).await;
    server.kill();

    let (passed, report) = common::audit(&data, journal_args);
    assert!(passed, "{report}");
    assert!(
        report.contains(&format!(
            "archive: caught up; all {issued} coupons match the journal"
        )),
        "{report}"
    );
    eprintln!("{rounds} kill -9 rounds ({rounds_with_new_grants} granting), {acknowledged} acknowledged requests, campaign {campaign}\n{report}");
}

/// Waits (bounded) until the mailbox holds `expected` messages; returns how many it holds.
async fn wait_for_messages(mailbox: &std::path::Path, expected: u64) -> u64 {
    let count = || {
        std::fs::read_dir(mailbox)
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .unwrap()
                            .path()
                            .extension()
                            .is_some_and(|x| x == "eml")
                    })
                    .count() as u64
            })
            .unwrap_or(0)
    };
    for _ in 0..200 {
        if count() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    count()
}

async fn issued_count(http: &reqwest::Client, server: &Server) -> u64 {
    let campaign: Value =
        common::get_json(http, &server.url(&format!("/v1/campaigns/{CAMPAIGN}"))).await;
    campaign["issued"].as_u64().unwrap()
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
            (
                user,
                if second {
                    format!("key-{user}-b")
                } else {
                    format!("key-{user}")
                },
            )
        };
        let response = http
            .post(&url)
            .header("Idempotency-Key", &key)
            .json(&json!({"user_id": format!("user-{user}")}))
            .send()
            .await;
        let Ok(response) = response else { return };
        let status = response.status().as_u16();
        let Ok(body) = response.json::<Value>().await else {
            return;
        };
        assert!(
            matches!(status, 200 | 201 | 202 | 409),
            "unexpected answer {status} for {key}: {body}"
        );
        answers
            .lock()
            .unwrap()
            .entry(key)
            .or_default()
            .push(Answer { status, body });
    }
}
