//! Processors on Kafka (librdkafka's in-process mock cluster) with a SQLite journal: a
//! group member decides its assigned partitions from the journal's offsets, and when two
//! more members join and the first leaves while claims flow, the work spreads over the
//! members, every request is still decided exactly once and each hand-over bumps the
//! partition's epoch (docs/production.md, rules 4–8).
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::partition_for;
use turnstile_log_kafka::{KafkaAppender, KafkaLogConfig};
use turnstile_processors::kafka_group::run_group_member;
use turnstile_processors::runtime::{Decided, DecisionListener, Error, ProcessorConfig};
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Decision, Envelope, ENVELOPE_VERSION,
};

const PARTITIONS: u32 = 4;
/// One campaign on each of the 4 partitions, so every member that holds a partition has
/// claims to decide.
const CAMPAIGNS: [&str; 4] = ["left", "north", "west", "east"];
const CAPACITY: u32 = 25;

/// Counts the records a member decided.
#[derive(Default)]
struct Count(AtomicU64);

impl DecisionListener for Count {
    fn committed(&self, decided: &[Decided]) {
        self.0.fetch_add(decided.len() as u64, Ordering::Relaxed);
    }
}

impl Count {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn envelope(resource: &str, request: &str, user: &str, command: CouponCommand) -> Vec<u8> {
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: request.into(),
        resource_id: resource.into(),
        user_id: user.into(),
        submitted_at: Utc::now(),
        traceparent: None,
        command: Command::Coupon(command),
    }
    .to_log_bytes()
}

/// Appends `claims` claims on every campaign, numbered from `first`; a tenth of them are
/// sent twice, as a client retrying after a lost answer would.
async fn append_claims(appender: &KafkaAppender, first: u32, claims: u32) {
    for campaign in CAMPAIGNS {
        let partition = partition_for(campaign, PARTITIONS);
        for i in first..first + claims {
            let claim = envelope(
                campaign,
                &format!("claim-{i}"),
                &format!("user-{i}"),
                CouponCommand::Claim,
            );
            appender.append(partition, claim.clone()).await.unwrap();
            if i % 10 == 0 {
                appender.append(partition, claim).await.unwrap();
            }
        }
    }
}

/// A running group member: how to stop it, its task, and what it decided.
struct Member {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
    decided: Arc<Count>,
}

fn start_member(config: &KafkaLogConfig, journal: &Journal) -> Member {
    let (stop, stop_rx) = watch::channel(false);
    let decided = Arc::new(Count::default());
    let task = tokio::spawn(run_group_member(
        config.clone(),
        journal.clone(),
        decided.clone(),
        ProcessorConfig::default(),
        stop_rx,
    ));
    Member {
        stop,
        task,
        decided,
    }
}

impl Member {
    async fn leave(self) -> u64 {
        self.stop.send(true).unwrap();
        self.task.await.unwrap().unwrap();
        self.decided.get()
    }
}

/// Waits (bounded) until every campaign has `requests` decided requests in the journal.
async fn wait_until_decided(journal: &Journal, requests: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let decided = journal.decided_requests().await.unwrap();
        let done = CAMPAIGNS.iter().all(|campaign| {
            decided
                .iter()
                .filter(|(resource, _)| resource == campaign)
                .count()
                >= requests
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not decided within 60 s: {} requests in the journal",
            decided.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_and_leave_and_every_request_is_decided_once() {
    let cluster = MockCluster::<'static, DefaultProducerContext>::new(1).unwrap();
    let topic = unique("commands");
    cluster.create_topic(&topic, PARTITIONS as i32, 1).unwrap();
    let mut config = KafkaLogConfig::new(cluster.bootstrap_servers(), topic, PARTITIONS);
    config.group_id = unique("processors");
    config.linger_ms = 1;
    // The mock forms a group only after 3 s and expires members waiting longer than a
    // session, so sessions must be longer than that (see log-kafka's tests).
    config.session_timeout_ms = 4_000;
    config.heartbeat_interval_ms = 300;
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    let appender = KafkaAppender::new(&config).unwrap();
    for campaign in CAMPAIGNS {
        let spec = CampaignSpec {
            title: String::new(),
            capacity: CAPACITY,
            per_user_limit: 1,
            opens_at: None,
            closes_at: None,
            time_zone: "Asia/Seoul".into(),
            valid_days: 0,
            locale: None,
        };
        let create = envelope(
            campaign,
            "create",
            "operator",
            CouponCommand::CreateCampaign { spec },
        );
        appender
            .append(partition_for(campaign, PARTITIONS), create)
            .await
            .unwrap();
    }

    // One member: it is assigned every partition and decides from offset 0.
    append_claims(&appender, 0, 20).await;
    let a = start_member(&config, &journal);
    wait_until_decided(&journal, 1 + 20).await;
    let epochs_alone: Vec<u64> = journal
        .partitions()
        .await
        .unwrap()
        .iter()
        .map(|l| l.epoch)
        .collect();

    // Two more members join while claims flow: the group spreads the partitions, each
    // moved one is taken again in the journal, and claims keep being decided.
    let b = start_member(&config, &journal);
    let c = start_member(&config, &journal);
    append_claims(&appender, 20, 20).await;
    wait_until_decided(&journal, 1 + 40).await;

    // The first leaves: the other two take its partitions over from the journal's offsets.
    a.leave().await;
    append_claims(&appender, 40, 20).await;
    wait_until_decided(&journal, 1 + 60).await;
    let decided_by_b = b.leave().await;
    let decided_by_c = c.leave().await;
    assert!(
        decided_by_b > 0 && decided_by_c > 0,
        "the work did not spread: B decided {decided_by_b}, C {decided_by_c}"
    );

    let leases = journal.partitions().await.unwrap();
    let moved = leases
        .iter()
        .zip(&epochs_alone)
        .filter(|(lease, before)| lease.epoch > **before)
        .count();
    assert!(
        moved >= 1,
        "no partition changed hands: {leases:?} (epochs alone: {epochs_alone:?})"
    );
    for campaign in CAMPAIGNS {
        let partition = partition_for(campaign, PARTITIONS);
        let outcomes = journal.load_outcomes(partition).await.unwrap();
        let ours: Vec<_> = outcomes
            .iter()
            .filter(|o| o.resource_id == campaign)
            .collect();
        let requests: HashSet<&str> = ours.iter().map(|o| o.request_id.as_str()).collect();
        assert_eq!(
            requests.len(),
            ours.len(),
            "{campaign}: a request decided twice"
        );
        assert_eq!(ours.len(), 1 + 60, "{campaign}: every request decided");
        let grants = ours
            .iter()
            .filter(|o| matches!(o.decision, Decision::CouponGranted { .. }))
            .count();
        assert_eq!(
            grants, CAPACITY as usize,
            "{campaign}: no oversell, no undersell"
        );
    }
}
