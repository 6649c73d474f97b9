//! The production shape on real servers: two `turnstile serve` processes share a Kafka
//! topic (the tansu broker) and a PostgreSQL journal. Their processors split the
//! partitions through the consumer group; when one stops, or freezes and wakes up as a
//! zombie, the other takes everything over from the journal's offsets. Every request is
//! decided once and no coupon is oversold.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Stdio;
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
    let urls: Vec<String> = edges.iter().map(|edge| edge.url("")).collect();
    let answers = claim_at(http, &urls, users).await;
    for (key, (status, _)) in &answers {
        assert_ne!(*status, UNANSWERED, "{key}: the edge did not answer");
    }
    answers
}

/// The status recorded for a claim whose edge did not answer (it was killed).
const UNANSWERED: u16 = 0;

/// [`claim`] against edge base URLs, recording [`UNANSWERED`] where an edge is down.
async fn claim_at(
    http: &reqwest::Client,
    edges: &[String],
    users: std::ops::Range<u32>,
) -> HashMap<String, (u16, bool)> {
    let mut answers = HashMap::new();
    for user in users {
        let edge = &edges[user as usize % edges.len()];
        let key = format!("claim-{user}");
        let sent = http
            .post(format!("{edge}/v1/campaigns/drop/claims"))
            .header("Idempotency-Key", &key)
            .json(&json!({ "user_id": format!("user-{user}") }))
            .send()
            .await;
        let answer = match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.json::<Value>().await {
                    Ok(body) => (status, status == 409 && body["error"]["outcome"].is_null()),
                    Err(_) => (UNANSWERED, false),
                }
            }
            Err(_) => (UNANSWERED, false),
        };
        answers.insert(key, answer);
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

/// A broker, a journal schema, and the `turnstile serve` arguments that share them.
struct Shared {
    _broker: Tansu,
    _schema: PostgresSchema,
    /// Where the log and the journal are: what `serve` and `audit` both take.
    log_args: Vec<String>,
    /// What only `serve` takes.
    serve_args: Vec<String>,
}

impl Shared {
    fn new() -> Shared {
        let broker = Tansu::start();
        let schema = PostgresSchema::new();
        let log_args = [
            &schema.journal_args()[..],
            &["--kafka-brokers", &broker.brokers],
            &["--kafka-topic", &format!("commands-{}", schema.name)],
            &["--partitions", "4"],
        ]
        .concat()
        .into_iter()
        .map(str::to_string)
        .collect();
        let serve_args = [
            &["--kafka-group", &format!("processors-{}", schema.name)][..],
            // Short sessions so a frozen process loses its partitions in seconds; a short
            // wait budget so claims made while the group rebalances answer 202 at once.
            &[
                "--kafka-session-timeout-ms",
                "6000",
                "--wait-budget-ms",
                "300",
            ],
        ]
        .concat()
        .into_iter()
        .map(str::to_string)
        .collect();
        Shared {
            _broker: broker,
            _schema: schema,
            log_args,
            serve_args,
        }
    }

    /// The arguments of `turnstile serve`.
    fn args(&self) -> Vec<&str> {
        self.log_args
            .iter()
            .chain(&self.serve_args)
            .map(String::as_str)
            .collect()
    }

    /// `turnstile audit` of the topic against the journal: asserts it passes.
    fn assert_audit_passes(&self) {
        let args: Vec<&str> = ["audit"]
            .into_iter()
            .chain(self.log_args.iter().map(String::as_str))
            .collect();
        let (passed, report) = common::run_turnstile(&args);
        assert!(passed, "{report}");
        assert!(report.contains("byte for byte"), "{report}");
    }
}

/// Creates the campaign through `edge` and waits until some process decided it.
async fn create_drop(http: &reqwest::Client, edge: &Server) {
    // The group forms in seconds: the create may be answered 202 and decided later.
    let created = http
        .post(edge.url("/v1/campaigns"))
        .header("Idempotency-Key", "create-drop")
        .json(&json!({"campaign_id": "drop", "capacity": CAPACITY, "time_zone": "UTC"}))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(created.status().as_u16(), 201 | 202),
        "{created:?}"
    );
    let outcome = decided(http, edge, "create-drop").await;
    assert_eq!(
        outcome["decision"]["status"], "campaign_created",
        "{outcome}"
    );
}

/// Every answer given is the request's one outcome in the journal, and each coupon was
/// granted once; returns the coupons granted to answered requests. A claim that got no
/// answer was promised nothing and is not checked.
async fn check_answers(
    http: &reqwest::Client,
    edge: &Server,
    answers: &HashMap<String, (u16, bool)>,
) -> HashSet<String> {
    let mut coupons = HashSet::new();
    for (key, (status, gated)) in answers {
        if *status == UNANSWERED {
            continue;
        }
        assert!(
            matches!(status, 201 | 202 | 409),
            "{key}: answered {status}"
        );
        if *gated {
            // Shed by the sold-out gate: never on the log, so never in the journal.
            let url = edge.url(&format!("/v1/campaigns/drop/requests/{key}"));
            let status = common::get_json(http, &url).await;
            assert_eq!(
                status["error"]["code"], "unknown_request",
                "{key}: {status}"
            );
            continue;
        }
        let outcome = decided(http, edge, key).await;
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
    coupons
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_a_topic_and_a_journal_and_hand_over_cleanly() {
    let shared = Shared::new();
    let (_dir_a, data_a) = temp_dir();
    let (_dir_b, data_b) = temp_dir();
    let http = client();
    let a = Server::start(&data_a, &shared.args());
    let b = Server::start(&data_b, &shared.args());
    create_drop(&http, &b).await;

    let mut answers = claim(&http, &[&a, &b], 0..60).await;
    // A leaves gracefully; B's processors take its partitions over.
    a.terminate();
    answers.extend(claim(&http, &[&b], 60..90).await);
    let coupons = check_answers(&http, &b, &answers).await;
    shared.assert_audit_passes();
    // (The edges' own issued counts are not compared: each counts what its processors
    // committed plus what it read when it learned the campaign; shared counts come with
    // the Redis edge state.)
    assert_eq!(
        coupons.len() as u64,
        CAPACITY,
        "every coupon granted once, none more"
    );
    b.terminate();
}

/// The zombie case (invariant 8): A freezes (SIGSTOP) holding partitions, the group gives
/// them to B, claims keep coming; then A wakes (SIGCONT) still believing it owns them and
/// tries to commit what it decides from its stale state. The journal fences it: nothing
/// it decided after waking is committed or answered, and the invariants hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_processor_that_wakes_up_is_fenced() {
    let shared = Shared::new();
    let (dir_a, data_a) = temp_dir();
    let (_dir_b, data_b) = temp_dir();
    let log_a: PathBuf = dir_a.path().join("a.log");
    let http = client();
    let a = Server::start_logging(
        &data_a,
        &shared.args(),
        "info",
        Stdio::from(std::fs::File::create(&log_a).unwrap()),
    );
    create_drop(&http, &a).await;
    let b = Server::start(&data_b, &shared.args());
    let mut answers = claim(&http, &[&a, &b], 0..30).await;
    // Wait until the group has given some of A's partitions to B.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log_a)
        .unwrap()
        .contains("partitions revoked")
    {
        assert!(Instant::now() < deadline, "B never joined the group");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    a.signal("STOP");
    // Claims on every partition while A is frozen: B decides them once the group has
    // given it A's partitions (after A's session times out).
    answers.extend(claim(&http, &[&b], 30..60).await);
    for key in answers.keys().filter(|k| !answers[*k].1) {
        decided(&http, &b, key).await;
    }
    a.signal("CONT");
    // A's processors wake with records B already decided in front of them.
    answers.extend(claim(&http, &[&a, &b], 60..90).await);
    let coupons = check_answers(&http, &b, &answers).await;
    // (The edges' own issued counts are not compared: each counts what its processors
    // committed plus what it read when it learned the campaign; shared counts come with
    // the Redis edge state.)
    assert_eq!(
        coupons.len() as u64,
        CAPACITY,
        "every coupon granted once, none more"
    );
    a.terminate();
    b.terminate();
    let log = std::fs::read_to_string(&log_a).unwrap();
    // The zombie did try: it decided records B had decided, and its commit was refused.
    // (Its group membership learns of the loss only at its next heartbeat, seconds after
    // its processors have read and tried to commit what queued up while it was frozen.)
    assert!(
        log.contains("is fenced"),
        "A never tried to commit after waking, so fencing was not exercised:\n{log}"
    );
}

/// kill -9 under load, on the production shape: in each round claims flow through both
/// processes while one of them is SIGKILLed at a random moment and restarted on its data
/// directory. Every answered claim has its one outcome, and no coupon is granted twice
/// or beyond capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_either_process_loses_nothing_acknowledged() {
    use rand::Rng;
    let shared = Shared::new();
    let dirs = [temp_dir(), temp_dir()];
    let http = client();
    let mut servers: Vec<Server> = dirs
        .iter()
        .map(|(_, data)| Server::start(data, &shared.args()))
        .collect();
    create_drop(&http, &servers[0]).await;
    let mut answers = HashMap::new();
    let mut rng = rand::thread_rng();
    const ROUNDS: u32 = 3;
    const CLAIMS_PER_ROUND: u32 = 40;
    for round in 0..ROUNDS {
        let urls: Vec<String> = servers.iter().map(|s| s.url("")).collect();
        let users = round * CLAIMS_PER_ROUND..(round + 1) * CLAIMS_PER_ROUND;
        let claims = tokio::spawn({
            let http = http.clone();
            async move { claim_at(&http, &urls, users).await }
        });
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..1500))).await;
        let victim = rng.gen_range(0..servers.len());
        servers.remove(victim).kill();
        answers.extend(claims.await.unwrap());
        servers.insert(victim, Server::start(&dirs[victim].1, &shared.args()));
    }
    let answered = answers.values().filter(|(s, _)| *s != UNANSWERED).count();
    assert!(
        answered > 0,
        "no claim was answered: the test proved nothing"
    );
    let answered_coupons = check_answers(&http, &servers[0], &answers).await;
    assert!(
        !answered_coupons.is_empty(),
        "nothing was granted in {ROUNDS} rounds"
    );
    // No oversell counts every grant in the journal, answered or not.
    let mut granted = HashSet::new();
    for key in answers.keys() {
        let url = servers[0].url(&format!("/v1/campaigns/drop/requests/{key}"));
        let status = common::get_json(&http, &url).await;
        if status["outcome"]["decision"]["status"] == "coupon_granted" {
            let coupon = status["outcome"]["decision"]["coupon"]["coupon_id"].to_string();
            assert!(granted.insert(coupon), "{key}: a coupon granted twice");
        }
    }
    assert!(
        granted.len() as u64 <= CAPACITY,
        "oversold: {} grants",
        granted.len()
    );
    shared.assert_audit_passes();
    for server in servers {
        server.terminate();
    }
}
