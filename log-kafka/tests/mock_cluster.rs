//! The Kafka log backend against librdkafka's in-process mock cluster: real Kafka protocol
//! over loopback sockets, no server to install.
//!
//! Every test makes its own mock cluster and its own topic and group names, so tests are
//! independent whether they run in one process or many.
//!
//! Known limits of the mock met here (each is also noted at its test):
//! - it does not implement the CreateTopics admin request, so topics are created with
//!   `MockCluster::create_topic`, and `ensure_topic`'s creation path can only be shown to
//!   fail cleanly;
//! - its group coordinator waits `group.initial.rebalance.delay.ms` (3 s, not settable
//!   through rdkafka's safe API) before forming a new group, and expires a member that
//!   waits in JoinGroup longer than its session timeout, so the group tests need a
//!   session timeout above 3 s, and each rebalance takes about that long.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use turnstile_log::partition_for;
use turnstile_log_kafka::{
    ensure_topic, Error, GroupEvent, GroupHandle, KafkaAppender, KafkaGroupMember, KafkaLogConfig,
    KafkaPartitionReader, KafkaRecord, Record, TopicSetup,
};

type Mock = MockCluster<'static, DefaultProducerContext>;

/// A name no other test (in this process or another) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A one-broker mock cluster with a fresh topic of `partitions` partitions, and a config
/// for it with short timeouts so failures show quickly.
///
/// For debugging a test: `RUST_LOG` sets what is logged (librdkafka's own log lines come
/// through the `librdkafka` target) and `RDKAFKA_DEBUG` turns on librdkafka's debug
/// contexts (e.g. `RDKAFKA_DEBUG=cgrp,fetch`); run with `--no-capture` to see them.
fn mock(partitions: u32) -> (Mock, KafkaLogConfig) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let cluster = MockCluster::new(1).unwrap();
    let topic = unique("commands");
    cluster
        .create_topic(&topic, i32::try_from(partitions).unwrap(), 1)
        .unwrap();
    let mut config = KafkaLogConfig::new(cluster.bootstrap_servers(), topic, partitions);
    config.group_id = unique("processors");
    config.client_id = unique("test");
    config.linger_ms = 1;
    config.delivery_timeout_ms = 5_000;
    config.request_timeout_ms = 5_000;
    // Above the mock's 3 s initial rebalance delay: the mock expires a member waiting in
    // JoinGroup after one session timeout (a real broker bounds that wait by the
    // rebalance timeout instead), so a shorter session never forms a group. The mock
    // waits this long minus 1 s for members to rejoin on each rebalance.
    config.session_timeout_ms = 4_000;
    config.heartbeat_interval_ms = 300;
    if let Ok(debug) = std::env::var("RDKAFKA_DEBUG") {
        config.librdkafka.push(("debug".into(), debug));
    }
    (cluster, config)
}

fn payload(partition: u32, n: u64) -> Vec<u8> {
    format!("p{partition}-n{n}").into_bytes()
}

/// Reads from `from` until `count` records arrived (or 10 s passed).
async fn read_exactly(
    reader: &mut KafkaPartitionReader,
    from: u64,
    count: usize,
) -> Vec<KafkaRecord> {
    let started = Instant::now();
    let mut records: Vec<KafkaRecord> = Vec::new();
    while records.len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} of {count} records arrived",
            records.len()
        );
        let next = from + records.len() as u64;
        let batch = reader
            .read(next, count - records.len(), 1_000)
            .await
            .unwrap();
        records.extend(batch);
    }
    records
}

#[tokio::test]
async fn appends_get_dense_offsets_per_partition_and_read_back_in_order_from_any_offset() {
    let partitions = 3;
    let per_partition = 30u64;
    let (_cluster, config) = mock(partitions);
    let appender = KafkaAppender::new(&config).unwrap();

    // One task per partition, concurrently: single appends, then a batch.
    let mut tasks = Vec::new();
    for partition in 0..partitions {
        let appender = appender.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for n in 0..per_partition / 2 {
                offsets.push(appender.append(partition, payload(partition, n)).await?);
            }
            let batch = (per_partition / 2..per_partition)
                .map(|n| Record::new(partition, payload(partition, n)))
                .collect();
            offsets.extend(appender.append_batch(batch).await?);
            Ok::<_, Error>(offsets)
        }));
    }
    for task in tasks {
        let offsets = task.await.unwrap().unwrap();
        assert_eq!(offsets, (0..per_partition).collect::<Vec<_>>());
    }

    for partition in 0..partitions {
        for from in [0, 1, per_partition / 2, per_partition - 1] {
            let mut reader = KafkaPartitionReader::open(&config, partition, from).unwrap();
            let count = usize::try_from(per_partition - from).unwrap();
            let records = read_exactly(&mut reader, from, count).await;
            for (record, offset) in records.iter().zip(from..) {
                assert_eq!(record.offset, offset);
                assert_eq!(record.payload, payload(partition, offset));
            }
            // Nothing more: a read at the end waits, then returns nothing.
            let more = reader.read(per_partition, 10, 100).await.unwrap();
            assert!(more.is_empty(), "records past the end: {more:?}");
            reader.close().await;
        }
    }
}

#[tokio::test]
async fn a_reader_repositions_forward_and_backward_on_request() {
    let (_cluster, config) = mock(1);
    let appender = KafkaAppender::new(&config).unwrap();
    let batch = (0..20).map(|n| Record::new(0, payload(0, n))).collect();
    appender.append_batch(batch).await.unwrap();

    let mut reader = KafkaPartitionReader::open(&config, 0, 0).unwrap();
    let offsets = |records: &[KafkaRecord]| records.iter().map(|r| r.offset).collect::<Vec<_>>();

    assert_eq!(
        offsets(&read_exactly(&mut reader, 0, 5).await),
        [0, 1, 2, 3, 4]
    );
    // Continuing where the last read stopped.
    assert_eq!(offsets(&read_exactly(&mut reader, 5, 3).await), [5, 6, 7]);
    // Into the middle, skipping records already prefetched.
    assert_eq!(
        offsets(&read_exactly(&mut reader, 12, 3).await),
        [12, 13, 14]
    );
    // Back to earlier records, discarding the prefetched ones after them.
    assert_eq!(offsets(&read_exactly(&mut reader, 2, 3).await), [2, 3, 4]);
    // A read of at most N returns at most N.
    let records = reader.read(5, 4, 1_000).await.unwrap();
    assert!(!records.is_empty() && records.len() <= 4);
    assert_eq!(records[0].offset, 5);
}

#[tokio::test]
async fn end_offset_is_the_partitions_high_watermark() {
    let (_cluster, config) = mock(2);
    let appender = KafkaAppender::new(&config).unwrap();
    let reader0 = KafkaPartitionReader::open(&config, 0, 0).unwrap();
    let reader1 = KafkaPartitionReader::open(&config, 1, 0).unwrap();
    assert_eq!(reader0.end_offset().await.unwrap(), 0);

    for n in 0..7 {
        appender.append(0, payload(0, n)).await.unwrap();
    }
    assert_eq!(reader0.end_offset().await.unwrap(), 7);
    assert_eq!(reader1.end_offset().await.unwrap(), 0);
}

#[tokio::test]
async fn keys_place_like_the_embedded_log_and_headers_round_trip() {
    let partitions = 4;
    let (_cluster, config) = mock(partitions);
    let appender = KafkaAppender::new(&config).unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let resource = "campaign-7";
    let record = Record::for_resource(resource, partitions, b"claim".to_vec())
        .with_traceparent(Some(traceparent.to_string()));
    let partition = partition_for(resource, partitions);
    assert_eq!(record.partition, partition);
    assert_eq!(record.key.as_deref(), Some(resource));
    let traced = appender.append_record(record).await.unwrap();
    let untraced = appender
        .append(partition, b"no trace".to_vec())
        .await
        .unwrap();

    let mut reader = KafkaPartitionReader::open(&config, partition, traced).unwrap();
    let records = read_exactly(&mut reader, traced, 2).await;
    assert_eq!(records[0].traceparent(), Some(traceparent));
    assert_eq!(
        records[0].header("traceparent"),
        Some(traceparent.as_bytes())
    );
    assert_eq!(records[0].payload.as_ref(), b"claim");
    assert_eq!(records[1].offset, untraced);
    assert!(records[1].headers.is_empty());
    assert_eq!(records[1].traceparent(), None);

    let log_record = records[0].clone().into_log_record();
    assert_eq!(log_record.offset, traced);
    assert_eq!(log_record.payload.as_ref(), b"claim");
}

#[tokio::test]
async fn a_read_at_the_end_waits_for_the_next_record() {
    let (_cluster, config) = mock(1);
    let appender = KafkaAppender::new(&config).unwrap();
    let mut reader = KafkaPartitionReader::open(&config, 0, 0).unwrap();

    let started = Instant::now();
    assert!(reader.read(0, 10, 200).await.unwrap().is_empty());
    assert!(started.elapsed() >= Duration::from_millis(200));

    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        appender.append(0, b"late".to_vec()).await.unwrap()
    });
    let started = Instant::now();
    let records = reader.read(0, 10, 5_000).await.unwrap();
    assert_eq!(later.await.unwrap(), 0);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload.as_ref(), b"late");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the read returned only after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_read_past_the_end_fails_instead_of_jumping() {
    let (_cluster, config) = mock(1);
    let appender = KafkaAppender::new(&config).unwrap();
    for n in 0..3 {
        appender.append(0, payload(0, n)).await.unwrap();
    }
    // As if the journal had decided up to offset 10 but the log holds only 3 records.
    let mut reader = KafkaPartitionReader::open(&config, 0, 10).unwrap();
    let error = reader.read(10, 10, 5_000).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::OffsetOutOfRange {
                partition: 0,
                offset: 10,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retriable());
    // The same reader still reads a valid position afterwards.
    let records = read_exactly(&mut reader, 1, 2).await;
    assert_eq!(records[0].offset, 1);
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_append_within_the_delivery_timeout() {
    let (cluster, mut config) = mock(1);
    config.delivery_timeout_ms = 1_500;
    // Reconnect soon after the broker returns (librdkafka backs off up to 10 s).
    config
        .librdkafka
        .push(("reconnect.backoff.max.ms".into(), "200".into()));
    let appender = KafkaAppender::new(&config).unwrap();
    assert_eq!(appender.append(0, b"before".to_vec()).await.unwrap(), 0);

    cluster.broker_down(1).unwrap();
    let started = Instant::now();
    let error = appender.append(0, b"during".to_vec()).await.unwrap_err();
    let waited = started.elapsed();
    assert!(error.is_retriable(), "{error:?}");
    assert!(
        waited < Duration::from_millis(1_500 + 2_000),
        "the failure took {waited:?}"
    );

    // Once the broker is back the same producer recovers (after librdkafka's reconnect
    // backoff, so a few attempts may time out too), and the failed record was not
    // written: offsets stay dense.
    cluster.broker_up(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let offset = loop {
        match appender.append(0, b"after".to_vec()).await {
            Ok(offset) => break offset,
            Err(e) if e.is_retriable() && Instant::now() < deadline => continue,
            Err(e) => panic!("the producer did not recover: {e:?}"),
        }
    };
    let mut reader = KafkaPartitionReader::open(&config, 0, 0).unwrap();
    let records = read_exactly(&mut reader, 0, usize::try_from(offset + 1).unwrap()).await;
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_ref()).collect();
    assert_eq!(payloads.first(), Some(&&b"before"[..]));
    assert_eq!(payloads.last(), Some(&&b"after"[..]));
    assert!(!payloads.contains(&&b"during"[..]), "{payloads:?}");
}

#[tokio::test]
async fn retriable_produce_errors_are_retried_without_duplicates() {
    let (cluster, config) = mock(1);
    let appender = KafkaAppender::new(&config).unwrap();
    assert_eq!(appender.append(0, b"first".to_vec()).await.unwrap(), 0);

    // The next three produce requests fail as if replicas were missing; librdkafka's
    // idempotent retries must land the record exactly once.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
    );
    assert_eq!(appender.append(0, b"second".to_vec()).await.unwrap(), 1);
    assert_eq!(appender.append(0, b"third".to_vec()).await.unwrap(), 2);

    let mut reader = KafkaPartitionReader::open(&config, 0, 0).unwrap();
    let records = read_exactly(&mut reader, 0, 3).await;
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_ref()).collect();
    assert_eq!(payloads, [&b"first"[..], b"second", b"third"]);
    assert!(reader.read(3, 10, 300).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_permanent_produce_error_surfaces_promptly() {
    let (cluster, config) = mock(1);
    let appender = KafkaAppender::new(&config).unwrap();
    assert_eq!(appender.append(0, b"first".to_vec()).await.unwrap(), 0);

    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let started = Instant::now();
    let error = appender.append(0, b"refused".to_vec()).await.unwrap_err();
    assert!(!error.is_retriable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(config.delivery_timeout_ms),
        "a permanent error should not wait for the delivery timeout"
    );
}

#[tokio::test]
async fn invalid_appends_are_refused_before_reaching_kafka() {
    let (_cluster, config) = mock(2);
    let appender = KafkaAppender::new(&config).unwrap();
    let error = appender.append(2, b"x".to_vec()).await.unwrap_err();
    assert!(matches!(
        error,
        Error::UnknownPartition {
            partition: 2,
            partitions: 2
        }
    ));
    let too_large = vec![0u8; turnstile_log::RECORD_PAYLOAD_BYTES_MAX + 1];
    let error = appender.append(0, too_large).await.unwrap_err();
    assert!(matches!(error, Error::RecordTooLarge { .. }), "{error:?}");
    assert!(!error.is_retriable());

    // The largest payload the embedded log accepts is accepted here too.
    let largest = vec![7u8; turnstile_log::RECORD_PAYLOAD_BYTES_MAX];
    assert_eq!(appender.append(0, largest).await.unwrap(), 0);

    assert!(matches!(
        KafkaPartitionReader::open(&config, 5, 0).unwrap_err(),
        Error::UnknownPartition { .. }
    ));
}

#[tokio::test]
async fn ensure_topic_accepts_a_matching_topic_and_refuses_a_different_partition_count() {
    let (_cluster, config) = mock(4);
    assert_eq!(ensure_topic(&config).await.unwrap(), TopicSetup::Existed);

    let mut wrong = config.clone();
    wrong.partitions = 8;
    let error = ensure_topic(&wrong).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::PartitionCountMismatch {
                existing: 4,
                configured: 8,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.is_retriable());
}

/// MockCluster limit: the mock broker does not implement CreateTopics (it does not
/// advertise the API, and librdkafka's admin request then waits for a broker that does),
/// so the creation path cannot succeed here; it needs a real broker (tansu, in the
/// end-to-end suite). What this test can show: a missing topic is detected (the metadata
/// lookup does not auto-create it with the broker's default partition count), and the
/// unanswered creation ends after `request_timeout_ms` as a retriable error, not a hang.
#[tokio::test]
async fn ensure_topic_on_the_mock_reports_that_creation_is_unsupported() {
    let (cluster, mut config) = mock(1);
    config.topic = unique("missing");
    config.request_timeout_ms = 1_000;
    let started = Instant::now();
    let error = ensure_topic(&config).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Kafka {
                op: "creating the topic",
                source: KafkaError::AdminOp(RDKafkaErrorCode::OperationTimedOut)
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retriable());
    assert!(
        started.elapsed() < Duration::from_millis(config.request_timeout_ms + 2_000),
        "took {:?}",
        started.elapsed()
    );
    // The lookup did not create the topic behind our back: a producer-side metadata
    // request would have, with the mock's default partition count.
    cluster.create_topic(&config.topic, 3, 1).unwrap();
    assert!(matches!(
        ensure_topic(&config).await.unwrap_err(),
        Error::PartitionCountMismatch { existing: 3, .. }
    ));
}

/// A group member under test: its events, its handle, its shutdown and its task.
struct Member {
    events: mpsc::Receiver<GroupEvent>,
    held: BTreeSet<u32>,
    revoked: Vec<u32>,
    handle: GroupHandle,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<Result<(), Error>>>,
}

impl Drop for Member {
    /// A failing test must not leave the member serving a dropped mock cluster forever
    /// (the runtime waits for its blocking thread).
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Member {
    fn start(config: &KafkaLogConfig, name: &str) -> Member {
        let mut config = config.clone();
        config.client_id = format!("{}-{name}", config.client_id);
        let (member, events) = KafkaGroupMember::new(&config).unwrap();
        let handle = member.handle();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(member.run(shutdown_rx));
        Member {
            events,
            held: BTreeSet::new(),
            revoked: Vec::new(),
            handle,
            shutdown,
            task: Some(task),
        }
    }

    fn apply(&mut self, event: GroupEvent) {
        match event {
            GroupEvent::Assigned(partitions) => {
                for partition in partitions {
                    assert!(self.held.insert(partition), "assigned {partition} twice");
                }
            }
            GroupEvent::Revoked(partitions) => {
                for partition in partitions {
                    assert!(
                        self.held.remove(&partition),
                        "revoked {partition}, which was not held"
                    );
                    self.revoked.push(partition);
                }
            }
        }
    }

    /// Leaves the group: applies events until the channel closes, then checks that `run`
    /// ended cleanly.
    async fn leave(&mut self) {
        self.shutdown.send(true).unwrap();
        self.until(|_| false).await;
        let task = self.task.take().unwrap();
        task.await.unwrap().unwrap();
    }

    /// Applies events until `done` holds, for at most 20 s. Returns false if the channel
    /// closed first.
    async fn until(&mut self, done: impl Fn(&Member) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => self.apply(event),
                Ok(None) => return done(self),
                Err(_) => panic!("timed out; holding {:?}", self.held),
            }
        }
        true
    }
}

#[tokio::test]
async fn two_members_split_the_partitions_and_the_survivor_takes_them_all() {
    let partitions = 4;
    let all: BTreeSet<u32> = (0..partitions).collect();
    let (_cluster, config) = mock(partitions);

    let mut a = Member::start(&config, "a");
    a.until(|m| m.held == all).await;
    assert_eq!(a.handle.assigned(), all.iter().copied().collect::<Vec<_>>());

    let mut b = Member::start(&config, "b");
    // Apply both members' events until the partitions are split between them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let split = !a.held.is_empty()
            && !b.held.is_empty()
            && a.held.is_disjoint(&b.held)
            && a.held.union(&b.held).copied().collect::<BTreeSet<_>>() == all;
        if split {
            break;
        }
        tokio::select! {
            Some(event) = a.events.recv() => a.apply(event),
            Some(event) = b.events.recv() => b.apply(event),
            () = tokio::time::sleep_until(deadline) => {
                panic!("no split: a holds {:?}, b holds {:?}", a.held, b.held)
            }
        }
    }
    // Cooperative rebalancing: A gave up only what B took.
    let b_share = b.held.clone();
    assert_eq!(a.revoked.iter().copied().collect::<BTreeSet<_>>(), b_share);

    // B leaves: it sees its partitions revoked and its channel close; A gets them.
    b.leave().await;
    assert!(b.held.is_empty(), "b still holds {:?}", b.held);
    assert!(b_share.iter().all(|p| b.revoked.contains(p)));

    a.until(|m| m.held == all).await;
    assert_eq!(a.handle.assigned(), all.iter().copied().collect::<Vec<_>>());

    a.leave().await;
    assert!(a.held.is_empty());
}

#[tokio::test]
async fn lag_offsets_are_committed_through_the_member() {
    let (_cluster, config) = mock(2);
    let mut a = Member::start(&config, "a");
    a.until(|m| m.held.len() == 2).await;

    a.handle.commit_offset(0, 7);
    a.handle.commit_offset(1, 3);
    a.handle.commit_offset(1, 4); // the latest request per partition wins

    // What a lag tool sees: the group's committed offsets, read by a client outside the
    // group. (rdkafka 0.39 does not report the results of asynchronous commits back to
    // the member, fede1024/rust-rdkafka#856, so the stored offsets are the evidence.)
    let outsider: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
        .set("group.id", &config.group_id)
        .create()
        .unwrap();
    let topic = config.topic.clone();
    let (committed, refused) = tokio::task::spawn_blocking(move || {
        let mut list = TopicPartitionList::new();
        list.add_partition(&topic, 0);
        list.add_partition(&topic, 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        let committed = loop {
            let committed = outsider
                .committed_offsets(list.clone(), Duration::from_secs(5))
                .unwrap();
            let offsets: Vec<Offset> = committed.elements().iter().map(|e| e.offset()).collect();
            if offsets == [Offset::Offset(7), Offset::Offset(4)] || Instant::now() > deadline {
                break offsets;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        // Why commits go through the member: a client outside the group's current
        // generation may not commit for a group with live members (Kafka answers
        // UNKNOWN_MEMBER_ID, and so does the mock).
        let mut attempt = TopicPartitionList::new();
        attempt
            .add_partition_offset(&topic, 0, Offset::Offset(99))
            .unwrap();
        let refused = outsider.commit(&attempt, CommitMode::Sync);
        (committed, refused)
    })
    .await
    .unwrap();
    assert_eq!(committed, [Offset::Offset(7), Offset::Offset(4)]);
    assert!(refused.is_err(), "an outsider's commit was accepted");

    a.leave().await;
}
