//! kill -9 under load: `turnstile serve` is SIGKILLed at random moments while concurrent
//! clients claim coupons, hold and confirm seats (holds lapse through the expiry
//! scheduler), book, cancel and wait for tables, and bid on lots; it is restarted, and
//! finally audited. Nothing acknowledged may be lost: every request that got a 2xx has
//! exactly one outcome, a 201/200 answer is still that outcome, a 202 was decided after
//! all, every refusal that carried an outcome is that outcome, no campaign is oversold,
//! nobody holds two coupons, the mailbox holds exactly one message per coupon, and the
//! audit (which re-checks every domain's invariants from the journal) passes.
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

/// Every answer given, per request (its status URL), in no particular order (concurrent
/// clients may send the same key at once).
type Answers = Arc<Mutex<HashMap<String, Vec<Answer>>>>;

/// The seated event, venue and lots the mixed workload uses.
const EVENT: &str = "arena";
const VENUE: &str = "bistro";
const LOTS: [&str; 3] = ["lamp", "clock", "vase"];

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
            create_other_domains(&http, &server).await;
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
        let mut clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(claim_until_refused(
                    http.clone(),
                    url.clone(),
                    answers.clone(),
                ))
            })
            .collect();
        for client in 0..OTHER_DOMAIN_CLIENTS {
            let base = server.url("");
            clients.push(tokio::spawn(other_domains_until_refused(
                http.clone(),
                base,
                answers.clone(),
                client,
            )));
        }
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
    let mut acknowledged_by_collection: HashMap<&str, u64> = HashMap::new();
    for (key, given) in &answers {
        let collection = key.split('/').nth(2).unwrap();
        let statuses = given
            .iter()
            .filter(|a| (200..300).contains(&a.status))
            .count();
        *acknowledged_by_collection.entry(collection).or_default() += statuses as u64;
        let status: Value = common::get_json(&http, &server.url(key)).await;
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
                400..500 if answer.body["error"]["outcome"].is_object() => {
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
    for collection in ["campaigns", "events", "venues", "lots"] {
        assert!(
            acknowledged_by_collection
                .get(collection)
                .copied()
                .unwrap_or(0)
                > 0,
            "no {collection} request was acknowledged: {acknowledged_by_collection:?}"
        );
    }
    let campaign: Value =
        common::get_json(&http, &server.url(&format!("/v1/campaigns/{CAMPAIGN}"))).await;
    let issued = campaign["issued"].as_u64().unwrap();
    assert!(issued <= CAPACITY, "{campaign}");
    // Effects once (invariant 7): the mailbox sink, killed with everything else, ends
    // with exactly one "coupon issued" message per granted coupon.
    let messages = wait_for_messages(&data.join("mailbox"), issued).await;
    assert_eq!(
        messages, issued,
        "{messages} coupon messages for {issued} coupons"
    );
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
    assert!(
        report.contains("holds, bookings and lots match the journal"),
        "{report}"
    );
    eprintln!("{rounds} kill -9 rounds ({rounds_with_new_grants} granting), {acknowledged} acknowledged requests {acknowledged_by_collection:?}, campaign {campaign}\n{report}");
}

/// Waits (bounded) until the mailbox holds `expected` "coupon issued" messages (the other
/// domains' messages beside them are not counted); returns how many it holds.
async fn wait_for_messages(mailbox: &std::path::Path, expected: u64) -> u64 {
    let count = || {
        std::fs::read_dir(mailbox)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .filter(|path| path.extension().is_some_and(|x| x == "eml"))
                    .filter(|path| {
                        std::fs::read_to_string(path)
                            .is_ok_and(|m| m.contains("\r\nX-Turnstile-Kind: coupon_issued\r\n"))
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
        let status_url = format!("/v1/campaigns/{CAMPAIGN}/requests/{key}");
        answers
            .lock()
            .unwrap()
            .entry(status_url)
            .or_default()
            .push(Answer { status, body });
    }
}

/// Clients of the seats, venue and auction APIs, next to the claimers.
const OTHER_DOMAIN_CLIENTS: u64 = 6;

async fn create_other_domains(http: &reqwest::Client, server: &Server) {
    let rows: Vec<Value> = (1..=20)
        .map(|r| json!({"row_id": r.to_string(), "seats": 50}))
        .collect();
    let event = json!({
        "event_id": EVENT, "title": "Arena", "starts_at": "2027-06-01T18:00:00Z",
        "hold_ttl_seconds": 1,
        "sections": [
            {"section_id": "A", "price_tier": {"name": "floor", "price_minor": 9000}, "rows": rows},
            {"section_id": "B", "price_tier": {"name": "stand", "price_minor": 4000}, "rows": rows}
        ]
    });
    let venue = json!({
        "venue_id": VENUE, "title": "Bistro", "time_zone": "Asia/Seoul", "party_size_max": 6,
        "offer_ttl_seconds": 1,
        "slots": [{"start": "18:00", "duration_minutes": 90, "capacity_covers": 12},
                  {"start": "20:00", "duration_minutes": 90, "capacity_covers": 12}]
    });
    let ends_at = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut creates = vec![("/v1/events", EVENT, event), ("/v1/venues", VENUE, venue)];
    for lot in LOTS {
        creates.push((
            "/v1/lots",
            lot,
            json!({
                "lot_id": lot, "ends_at": ends_at, "opening_price": 100, "increment": 10,
                "currency": "KRW"
            }),
        ));
    }
    for (path, id, body) in creates {
        let response = http
            .post(server.url(path))
            .header("Idempotency-Key", format!("create-{id}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 201,
            "{path}: {status} {}",
            response.text().await.unwrap()
        );
    }
}

/// Holds (most confirmed, the rest left to lapse), bookings (some cancelled, a full slot
/// joined as a waitlist) and bids, for random users, until the server stops answering.
async fn other_domains_until_refused(
    http: reqwest::Client,
    base: String,
    answers: Answers,
    client: u64,
) {
    let mut sequence = 0_u64;
    loop {
        sequence += 1;
        let user = {
            let mut rng = rand::thread_rng();
            rng.gen_range(0..USERS)
        };
        let tag = format!("{client}-{sequence}");
        let (collection, resource, path, key, body) = match sequence % 3 {
            0 => (
                "events",
                EVENT,
                "holds".to_string(),
                format!("hold-{user}"),
                json!({"user_id": format!("user-{user}"), "best": {"count": 1 + user % 4}}),
            ),
            1 => {
                let day = 1 + user % 20;
                let date = (chrono::Utc::now() + chrono::Duration::days(day as i64)).date_naive();
                let start = if user % 2 == 0 { "18:00" } else { "20:00" };
                (
                    "venues",
                    VENUE,
                    "bookings".to_string(),
                    format!("book-{user}"),
                    json!({"user_id": format!("user-{user}"), "slot": format!("{date}T{start}"),
                        "party_size": 1 + user % 6}),
                )
            }
            _ => {
                let lot = LOTS[(user % 3) as usize];
                (
                    "lots",
                    lot,
                    "bids".to_string(),
                    format!("bid-{tag}"),
                    json!({"user_id": format!("user-{user}"), "max_amount": 100 + sequence * 10 + user % 1000}),
                )
            }
        };
        let Some(answer) = send(
            &http, &base, collection, resource, &path, &key, &body, &answers,
        )
        .await
        else {
            return;
        };
        // Follow-ups: confirm two holds in three (the rest lapse), cancel one booking in
        // four (which offers the covers to the waitlist), wait for a full slot.
        let decision = &answer.body["decision"];
        let refusal = &answer.body["error"]["code"];
        let user_only = json!({"user_id": format!("user-{user}")});
        let follow_up = if decision["status"] == "seats_held" && user % 3 != 0 {
            let hold = decision["hold_id"].as_str().unwrap();
            Some((
                "events",
                EVENT,
                format!("holds/{hold}/confirm"),
                format!("confirm-{hold}"),
                user_only,
            ))
        } else if decision["status"] == "table_booked" && user % 4 == 0 {
            let booking = decision["booking_id"].as_str().unwrap();
            Some((
                "venues",
                VENUE,
                format!("bookings/{booking}/cancel"),
                format!("cancel-{booking}"),
                user_only,
            ))
        } else if refusal == "slot_full" {
            Some((
                "venues",
                VENUE,
                "waitlist".to_string(),
                format!("wait-{user}"),
                body,
            ))
        } else {
            None
        };
        if let Some((collection, resource, path, key, body)) = follow_up {
            if send(
                &http, &base, collection, resource, &path, &key, &body, &answers,
            )
            .await
            .is_none()
            {
                return;
            }
        }
    }
}

/// Sends one write and records its answer under its status URL; `None` once the server is
/// gone.
#[allow(clippy::too_many_arguments)]
async fn send(
    http: &reqwest::Client,
    base: &str,
    collection: &str,
    resource: &str,
    path: &str,
    key: &str,
    body: &Value,
    answers: &Answers,
) -> Option<Answer> {
    let response = http
        .post(format!("{base}/v1/{collection}/{resource}/{path}"))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.ok()?;
    assert!(
        (200..500).contains(&status) && status != 400 && status != 404,
        "unexpected answer {status} for {key}: {body}"
    );
    let answer = Answer { status, body };
    answers
        .lock()
        .unwrap()
        .entry(format!("/v1/{collection}/{resource}/requests/{key}"))
        .or_default()
        .push(answer.clone());
    Some(answer)
}
