//! The Redis edge state against a real Redis (127.0.0.1:6379, or
//! `TURNSTILE_TEST_REDIS_URL`): two edges (each an `OutcomeFeed` fed by its own
//! subscriber) and one processor-side publisher in one test process. Every test has its
//! own random namespace, so the tests run in parallel on one server; its keys are
//! deleted when it ends. A missing Redis fails the tests with how to start it.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{TimeZone, Utc};
use tokio::sync::watch;
use tower::ServiceExt;
use turnstile_edge_state::{
    GateAnswer, Keys, Publisher, PublisherHandle, RedisConfig, RedisGate, SubscriberHandle,
    START_REDIS_HINT,
};
use turnstile_ingest::shared_state::RedisEdgeState;
use turnstile_ingest::{CommandLog, Edge, EdgeConfig, OutcomeFeed};
use turnstile_journal::{BatchCommit, Journal, JournalLocation};
use turnstile_log::{EmbeddedLog, EmbeddedLogConfig};
use turnstile_processors::runtime::{BatchRange, Decided, DecisionListener};
use turnstile_schemas::{
    CampaignSpec, CommandKind, Coupon, Decision, LogPosition, Outcome, Rejection,
};

/// How long anything in these tests may take to travel through Redis.
const DELIVERY_MS_MAX: u64 = 5_000;

fn redis_url() -> String {
    std::env::var("TURNSTILE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace of its own on the test Redis, emptied when dropped (also after a panic).
struct Namespace {
    config: RedisConfig,
}

impl Namespace {
    /// Fails the test, saying how to start Redis, when it is not reachable.
    fn new() -> Self {
        let url = redis_url();
        let reachable = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(e) = reachable {
            panic!(
                "Redis is not reachable at {url}: {e}. {START_REDIS_HINT} \
                 (scripts/test.sh does), or point TURNSTILE_TEST_REDIS_URL at a server"
            );
        }
        let namespace = format!("turnstile-test-{:016x}", rand::random::<u64>());
        let config = RedisConfig {
            read_block_ms: 200,
            backoff_ms_min: 20,
            backoff_ms_max: 200,
            ..RedisConfig::new(url).with_namespace(namespace)
        };
        Namespace { config }
    }

    fn keys(&self) -> Keys {
        Keys::new(&self.config.namespace)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.config.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let Ok(mut connection) =
            redis::Client::open(self.config.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let pattern = format!("{}:*", self.config.namespace);
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut connection)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut connection);
        }
    }
}

/// One edge: its feed, fed from Redis by its own subscriber, and its gate.
struct TestEdge {
    feed: Arc<OutcomeFeed>,
    gate: RedisGate,
    subscriber: SubscriberHandle,
}

/// Everything one test runs, stopped when dropped.
struct Fixture {
    ns: Namespace,
    publisher: PublisherHandle,
    edges: Vec<TestEdge>,
    journal: Journal,
    _dir: tempfile::TempDir,
    _shutdown: watch::Sender<bool>,
}

async fn fixture(edges: usize) -> Fixture {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (publisher, service) = Publisher::build(&ns.config).await.unwrap();
    tokio::spawn(service.run(shutdown_rx.clone()));
    let mut started = Vec::new();
    for _ in 0..edges {
        let state = RedisEdgeState::connect(&ns.config).await.unwrap();
        let feed = Arc::new(OutcomeFeed::new(vec![], vec![]));
        let edge = TestEdge {
            feed: feed.clone(),
            gate: state.gate(),
            subscriber: state.subscriber(),
        };
        tokio::spawn(state.run(feed, journal.clone(), shutdown_rx.clone()));
        started.push(edge);
    }
    Fixture {
        ns,
        publisher,
        edges: started,
        journal,
        _dir: dir,
        _shutdown: shutdown,
    }
}

fn time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
}

fn spec(capacity: u32) -> CampaignSpec {
    CampaignSpec {
        title: "drop".into(),
        capacity,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: "Asia/Seoul".into(),
        valid_days: 0,
        locale: None,
    }
}

fn outcome(campaign: &str, request: &str, offset: u64, decision: Decision) -> Arc<Outcome> {
    let (user, command) = match &decision {
        Decision::CampaignCreated { .. } => ("operator".to_string(), CommandKind::CreateCampaign),
        _ => (format!("user-{request}"), CommandKind::Claim),
    };
    Arc::new(Outcome {
        request_id: request.into(),
        resource_id: campaign.into(),
        user_id: user,
        command,
        position: LogPosition {
            partition: 0,
            offset,
        },
        decided_at: time(),
        decision,
    })
}

fn created(campaign: &str, offset: u64, capacity: u32) -> Arc<Outcome> {
    let decision = Decision::CampaignCreated {
        spec: spec(capacity),
    };
    outcome(campaign, &format!("create-{campaign}"), offset, decision)
}

fn granted(campaign: &str, request: &str, offset: u64, sequence: u32) -> Arc<Outcome> {
    let decision = Decision::CouponGranted {
        coupon: Coupon {
            coupon_id: format!("{campaign}-{sequence}"),
            campaign_id: campaign.into(),
            user_id: format!("user-{request}"),
            issued_at: time(),
            expires_at: time() + chrono::Duration::hours(15),
        },
    };
    outcome(campaign, request, offset, decision)
}

fn sold_out(campaign: &str, request: &str, offset: u64) -> Arc<Outcome> {
    let decision = Decision::Rejected {
        reason: Rejection::SoldOut,
    };
    outcome(campaign, request, offset, decision)
}

/// Tells the publisher, as a processor would after committing, that offsets
/// `from_offset..from_offset + outcomes.len()` of partition 0 decided `outcomes`.
fn commit(publisher: &PublisherHandle, from_offset: u64, outcomes: &[Arc<Outcome>]) {
    let decided: Vec<Decided> = outcomes
        .iter()
        .map(|outcome| Decided {
            outcome: outcome.clone(),
            delivery: outcome.position,
        })
        .collect();
    let range = BatchRange {
        partition: 0,
        from_offset,
        next_offset: from_offset + outcomes.len() as u64,
    };
    publisher.committed_range(range, &decided);
}

/// Waits until `condition` holds, failing the test after `DELIVERY_MS_MAX`.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(DELIVERY_MS_MAX);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the publisher has published `batches` batches in all.
async fn published(publisher: &PublisherHandle, batches: u64) {
    eventually("the publisher", || publisher.batches_published() >= batches).await;
    assert_eq!(publisher.batches_dropped(), 0);
}

#[tokio::test]
async fn a_caller_waiting_on_edge_b_is_answered_when_another_process_decides() {
    let f = fixture(2).await;
    let waiting_on_b = f.edges[1].feed.wait_for("spring", "claim-1");
    commit(&f.publisher, 0, &[created("spring", 0, 10)]);
    commit(&f.publisher, 1, &[granted("spring", "claim-1", 1, 1)]);

    let decided = tokio::time::timeout(Duration::from_millis(DELIVERY_MS_MAX), waiting_on_b)
        .await
        .expect("edge B hears the decision")
        .unwrap();
    assert!(decided.is_first());
    assert_eq!(decided.outcome.request_id, "claim-1");
    assert!(matches!(
        decided.outcome.decision,
        Decision::CouponGranted { .. }
    ));
    // Both edges' catalogs learned the campaign and its one coupon.
    for edge in &f.edges {
        eventually("the catalog", || {
            edge.feed
                .campaign("spring")
                .is_some_and(|c| c.issued() == 1)
        })
        .await;
    }
}

#[tokio::test]
async fn an_outcome_heard_twice_counts_once() {
    // A publisher retry may put a batch on the stream twice.
    let f = fixture(1).await;
    commit(&f.publisher, 0, &[created("twice", 0, 3)]);
    let grant = [granted("twice", "claim-1", 1, 1)];
    commit(&f.publisher, 1, &grant);
    commit(&f.publisher, 1, &grant);
    published(&f.publisher, 3).await;
    let edge = &f.edges[0];
    eventually("all three entries", || {
        edge.subscriber.status().delivered == 3
    })
    .await;
    assert_eq!(edge.feed.campaign("twice").unwrap().issued(), 1);
    let mut redis = f.ns.connection();
    let keys = f.ns.keys();
    let (issued, decided, members): (u32, u32, u32) = redis::pipe()
        .hget(keys.campaign("twice"), "issued")
        .hget(keys.campaign("twice"), "decided")
        .scard(keys.decided("twice"))
        .query(&mut redis)
        .unwrap();
    assert_eq!((issued, decided, members), (1, 2, 2));
}

#[tokio::test]
async fn once_sold_out_every_edge_sheds_new_keys_and_replays_decided_ones_from_redis() {
    let f = fixture(2).await;
    commit(&f.publisher, 0, &[created("flash", 0, 2)]);
    commit(
        &f.publisher,
        1,
        &[
            granted("flash", "winner-1", 1, 1),
            granted("flash", "winner-2", 2, 2),
            sold_out("flash", "late", 3),
        ],
    );
    published(&f.publisher, 2).await;
    for edge in &f.edges {
        eventually("sold out", || {
            edge.feed.campaign("flash").is_some_and(|c| c.sold_out())
        })
        .await;
        assert_eq!(
            edge.gate.check("flash", "never-sent").await.unwrap(),
            GateAnswer::NeverDecided
        );
        let GateAnswer::Recorded(outcome) = edge.gate.check("flash", "winner-2").await.unwrap()
        else {
            panic!("a winner's key is answered from the replay cache");
        };
        assert_eq!(*outcome, *granted("flash", "winner-2", 2, 2));
        let GateAnswer::Recorded(outcome) = edge.gate.check("flash", "late").await.unwrap() else {
            panic!("a rejected key is answered from the replay cache");
        };
        assert_eq!(*outcome, *sold_out("flash", "late", 3));
    }

    // The same through HTTP, on an edge whose journal is closed: any journal read would
    // answer 503, so these answers came from the gate alone.
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"), 1)).unwrap();
    f.journal.close().await;
    let edge = &f.edges[1];
    let http = Edge::new(
        EdgeConfig::default(),
        CommandLog::Embedded(log),
        f.journal.clone(),
        edge.feed.clone(),
    )
    .with_redis_gate(edge.gate.clone());
    let router = turnstile_ingest::api::router(http);
    let claim = |key: &str, user: &str| {
        Request::post("/v1/campaigns/flash/claims")
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(format!(r#"{{"user_id":"{user}"}}"#)))
            .unwrap()
    };
    let response = router
        .clone()
        .oneshot(claim("never-sent", "someone"))
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("sold_out"));

    let response = router
        .clone()
        .oneshot(claim("winner-1", "user-winner-1"))
        .await
        .unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let replayed: Outcome = serde_json::from_slice(&body).unwrap();
    assert_eq!(replayed, *granted("flash", "winner-1", 1, 1));

    // A key reused by someone else is still refused, not answered with the winner's coupon.
    let response = router.oneshot(claim("winner-1", "mallory")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_gate_stops_trusting_redis_when_it_may_not_know_everything() {
    let f = fixture(1).await;
    let gate = &f.edges[0].gate;
    let keys = f.ns.keys();
    let mut redis = f.ns.connection();

    // Sold out in the catalog of an edge before Redis knows: Redis must not answer.
    commit(&f.publisher, 0, &[created("gap", 0, 1)]);
    published(&f.publisher, 1).await;
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::Unknown
    );

    commit(&f.publisher, 1, &[granted("gap", "winner", 1, 1)]);
    published(&f.publisher, 2).await;
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::NeverDecided
    );

    // The decided set expired or was evicted on its own: its size no longer matches.
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(keys.decided("gap"))
        .query(&mut redis)
        .unwrap();
    let _: () = redis::cmd("SREM")
        .arg(keys.decided("gap"))
        .arg(&members[0])
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::Unknown
    );
    let _: () = redis::cmd("SADD")
        .arg(keys.decided("gap"))
        .arg(&members[0])
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::NeverDecided
    );

    // The hash was lost and recreated by a later batch: no creation, no trust.
    let _: () = redis::cmd("HDEL")
        .arg(keys.campaign("gap"))
        .arg("capacity")
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::Unknown
    );
    let _: () = redis::cmd("HSET")
        .arg(keys.campaign("gap"))
        .arg("capacity")
        .arg(1)
        .query(&mut redis)
        .unwrap();
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::NeverDecided
    );

    // A batch was committed but never published (offsets 2..4): the partition has a hole,
    // and nothing later makes Redis trustworthy for it again.
    commit(&f.publisher, 4, &[sold_out("gap", "after-the-hole", 4)]);
    published(&f.publisher, 3).await;
    assert_eq!(
        gate.check("gap", "anyone").await.unwrap(),
        GateAnswer::Unknown
    );
    let gap: u8 = redis::cmd("HGET")
        .arg(keys.partition(0))
        .arg("gap")
        .query(&mut redis)
        .unwrap();
    assert_eq!(gap, 1);
}

#[tokio::test]
async fn the_subscriber_survives_client_kill_and_misses_nothing() {
    let f = fixture(2).await;
    commit(&f.publisher, 0, &[created("kill", 0, 1_000)]);
    let mut redis = f.ns.connection();
    let name = f.ns.keys().subscriber_client_name();
    let batches = 40_u64;
    let per_batch = 5_u64;
    let mut waiting = Vec::new();
    for batch in 0..batches {
        let from_offset = 1 + batch * per_batch;
        let outcomes: Vec<_> = (0..per_batch)
            .map(|i| {
                let offset = from_offset + i;
                let request = format!("claim-{offset}");
                waiting.push(f.edges[1].feed.wait_for("kill", &request));
                granted("kill", &request, offset, offset as u32)
            })
            .collect();
        commit(&f.publisher, from_offset, &outcomes);
        if batch % 8 == 0 {
            // Kill every subscriber connection of this namespace (both edges').
            let killed = kill_clients_named(&mut redis, &name);
            assert!(killed > 0, "found no subscriber connection named {name}");
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for (i, receiver) in waiting.into_iter().enumerate() {
        let decided = tokio::time::timeout(Duration::from_millis(DELIVERY_MS_MAX), receiver)
            .await
            .unwrap_or_else(|_| panic!("the answer to claim {i} was lost"))
            .unwrap();
        assert_eq!(decided.outcome.position.offset, i as u64 + 1);
    }
    for edge in &f.edges {
        eventually("every grant", || {
            edge.feed
                .campaign("kill")
                .is_some_and(|c| c.issued() == 200)
        })
        .await;
        let status = edge.subscriber.status();
        assert!(status.reconnects >= 1, "{status:?}");
        assert_eq!(status.gaps, 0, "{status:?}");
    }
}

#[tokio::test]
async fn a_subscriber_that_missed_trimmed_entries_reloads_its_catalog_from_the_journal() {
    let ns = Namespace::new();
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    let (publisher, service) = Publisher::build(&ns.config).await.unwrap();
    let (_shutdown, shutdown_rx) = watch::channel(false);
    tokio::spawn(service.run(shutdown_rx.clone()));
    // Connected, not yet reading: the edge is "away" while this happens.
    let state = RedisEdgeState::connect(&ns.config).await.unwrap();
    let subscriber = state.subscriber();
    let create = created("missed", 0, 5);
    let lease = journal.acquire(0).await.unwrap();
    journal
        .commit(&BatchCommit {
            partition: 0,
            epoch: lease.epoch,
            from_offset: 0,
            next_offset: 1,
            outcomes: vec![create.clone()],
            ..BatchCommit::default()
        })
        .await
        .unwrap();
    commit(&publisher, 0, &[create]);
    published(&publisher, 1).await;
    let mut redis = ns.connection();
    let _: () = redis::cmd("XTRIM")
        .arg(ns.keys().outcomes())
        .arg("MAXLEN")
        .arg(0)
        .query(&mut redis)
        .unwrap();
    kill_clients_named(&mut redis, &ns.keys().subscriber_client_name());

    let feed = Arc::new(OutcomeFeed::new(vec![], vec![]));
    tokio::spawn(state.run(feed.clone(), journal.clone(), shutdown_rx));
    eventually("the gap", || subscriber.status().gaps == 1).await;
    eventually("the reloaded catalog", || feed.campaign("missed").is_some()).await;
}

/// `CLIENT KILL`s every connection named `name`; how many.
fn kill_clients_named(redis: &mut redis::Connection, name: &str) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(redis).unwrap();
    let ids: Vec<String> = list
        .lines()
        .filter(|line| line.split(' ').any(|field| field == format!("name={name}")))
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .map(str::to_string)
        })
        .collect();
    for id in &ids {
        let _: Result<(), _> = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query(redis);
    }
    ids.len()
}
