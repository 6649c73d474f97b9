//! [`KafkaLogConfig`]: everything the appender, readers, group members and topic setup
//! need to know, and the librdkafka properties derived from it.

use rdkafka::config::ClientConfig;

use crate::Error;

/// How long the broker may hold a reader's fetch waiting for more records.
const READER_FETCH_WAIT_MS: u64 = 5;

/// Default of [`KafkaLogConfig::linger_ms`].
pub const LINGER_MS_DEFAULT: u64 = 5;
/// Default of [`KafkaLogConfig::produce_batch_records_max`] (librdkafka's own default).
pub const PRODUCE_BATCH_RECORDS_MAX_DEFAULT: u32 = 10_000;
/// Default of [`KafkaLogConfig::produce_batch_bytes_max`] (librdkafka's own default).
pub const PRODUCE_BATCH_BYTES_MAX_DEFAULT: u32 = 1_000_000;
/// Default of [`KafkaLogConfig::produce_queue_records_max`] (librdkafka's own default).
pub const PRODUCE_QUEUE_RECORDS_MAX_DEFAULT: u32 = 100_000;
/// Default of [`KafkaLogConfig::produce_queue_bytes_max`] (128 MiB; librdkafka's is 1 GiB).
pub const PRODUCE_QUEUE_BYTES_MAX_DEFAULT: u64 = 128 << 20;
/// Default of [`KafkaLogConfig::delivery_timeout_ms`].
pub const DELIVERY_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default of [`KafkaLogConfig::fetch_queue_bytes_max`] (16 MiB; librdkafka's is 64 MiB).
pub const FETCH_QUEUE_BYTES_MAX_DEFAULT: u64 = 16 << 20;
/// Default of [`KafkaLogConfig::request_timeout_ms`].
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default of [`KafkaLogConfig::session_timeout_ms`] (librdkafka's own default).
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 45_000;
/// Default of [`KafkaLogConfig::heartbeat_interval_ms`] (librdkafka's own default).
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 3_000;

/// Room for a record's key, headers and framing on top of its payload, in bytes. The
/// producer's and the topic's message size limits are set to the payload limit plus this,
/// so that every payload the embedded log accepts is accepted here too.
pub const RECORD_OVERHEAD_BYTES_MAX: usize = 64 << 10;

/// Largest record librdkafka and the topic are told to accept, in bytes.
pub(crate) const MESSAGE_BYTES_MAX: usize =
    turnstile_log::RECORD_PAYLOAD_BYTES_MAX + RECORD_OVERHEAD_BYTES_MAX;

/// How to reach the commands topic and how to batch against it.
///
/// One config serves every client of this crate: [`crate::KafkaAppender`] (the edge),
/// [`crate::KafkaPartitionReader`] and [`crate::KafkaGroupMember`] (the processors) and
/// [`crate::ensure_topic`] (setup). Each derives its own librdkafka properties from it.
#[derive(Debug, Clone)]
pub struct KafkaLogConfig {
    /// Bootstrap brokers, `host:port` separated by commas (librdkafka's
    /// `bootstrap.servers`). One reachable broker is enough to discover the rest.
    pub brokers: String,
    /// The commands topic: every command of every resource goes here.
    pub topic: String,
    /// The topic's partition count, 1..=[`turnstile_log::PARTITIONS_MAX`]. Resources are
    /// placed with `turnstile_log::partition_for(resource_id, partitions)`, so this count
    /// is part of the data: it must equal the topic's real count (checked by
    /// [`crate::ensure_topic`]) and must never change for an existing topic.
    pub partitions: u32,
    /// Replicas per partition when [`crate::ensure_topic`] creates the topic. Production
    /// wants 3 (with the brokers' `min.insync.replicas` at 2, since appends use
    /// `acks=all`); a single test broker needs 1.
    pub replication_factor: u16,
    /// Prefix of every client's `client.id` (suffixed with `-appender`, `-reader-<p>`,
    /// `-member`, `-admin`), so broker logs and quotas can tell the roles apart.
    pub client_id: String,
    /// The consumer group of the processors. Membership in it decides which process owns
    /// which partition; its committed offsets exist only for lag display.
    pub group_id: String,
    /// How long the producer waits for more records before sending a batch. A few
    /// milliseconds turn many concurrent appends into one produce request; each append's
    /// latency grows by at most this much.
    pub linger_ms: u64,
    /// Most records in one produce batch (librdkafka's `batch.num.messages`).
    pub produce_batch_records_max: u32,
    /// Most bytes in one produce batch (librdkafka's `batch.size`).
    pub produce_batch_bytes_max: u32,
    /// Most records waiting in the producer's local queue, unacknowledged
    /// (`queue.buffering.max.messages`). A full queue makes appends wait, up to
    /// `delivery_timeout_ms`: backpressure instead of memory growth.
    pub produce_queue_records_max: u32,
    /// Most bytes waiting in the producer's local queue (`queue.buffering.max.kbytes`,
    /// rounded up to whole KiB).
    pub produce_queue_bytes_max: u64,
    /// How long an append may take, from the call to the broker's acknowledgement,
    /// including librdkafka's own retries (`message.timeout.ms`). After it the append fails
    /// with a retriable error: the record may or may not have been written, and the
    /// caller's retry with the same request id is deduplicated by the processor.
    pub delivery_timeout_ms: u64,
    /// Most bytes a partition reader prefetches ahead of its caller
    /// (`queued.max.messages.kbytes`, rounded up to whole KiB).
    pub fetch_queue_bytes_max: u64,
    /// Limit on one metadata, watermark or admin request, and on waiting for a created
    /// topic to become usable.
    pub request_timeout_ms: u64,
    /// A group member that sends no heartbeat for this long is considered dead and its
    /// partitions are given to the others (`session.timeout.ms`). This bounds how long a
    /// crashed processor's partitions stay unowned.
    pub session_timeout_ms: u64,
    /// How often a group member heartbeats (`heartbeat.interval.ms`); well below
    /// `session_timeout_ms`, typically a third of it or less.
    pub heartbeat_interval_ms: u64,
    /// Further librdkafka properties, applied last to every client (e.g. `debug`,
    /// `socket.keepalive.enable`). They can override the ones above, which is the point
    /// and the danger: overriding `enable.idempotence`, `acks` or `auto.offset.reset`
    /// breaks this crate's guarantees. This build of librdkafka has no TLS and no SASL.
    pub librdkafka: Vec<(String, String)>,
}

impl KafkaLogConfig {
    /// A config with the default limits, client id `turnstile` and group
    /// `turnstile-processors`.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>, partitions: u32) -> Self {
        KafkaLogConfig {
            brokers: brokers.into(),
            topic: topic.into(),
            partitions,
            replication_factor: 1,
            client_id: "turnstile".to_string(),
            group_id: "turnstile-processors".to_string(),
            linger_ms: LINGER_MS_DEFAULT,
            produce_batch_records_max: PRODUCE_BATCH_RECORDS_MAX_DEFAULT,
            produce_batch_bytes_max: PRODUCE_BATCH_BYTES_MAX_DEFAULT,
            produce_queue_records_max: PRODUCE_QUEUE_RECORDS_MAX_DEFAULT,
            produce_queue_bytes_max: PRODUCE_QUEUE_BYTES_MAX_DEFAULT,
            delivery_timeout_ms: DELIVERY_TIMEOUT_MS_DEFAULT,
            fetch_queue_bytes_max: FETCH_QUEUE_BYTES_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            session_timeout_ms: SESSION_TIMEOUT_MS_DEFAULT,
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            librdkafka: Vec::new(),
        }
    }

    /// Checks the ranges librdkafka and this crate need; called by every constructor.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Err(Error::InvalidConfig { reason });
        if self.brokers.trim().is_empty() {
            return invalid("brokers is empty; give at least one host:port".to_string());
        }
        if self.topic.is_empty() || self.topic.len() > 249 {
            return invalid(format!(
                "topic {:?} must be 1 to 249 characters long",
                self.topic
            ));
        }
        if self.partitions == 0 || self.partitions > turnstile_log::PARTITIONS_MAX {
            return invalid(format!(
                "partitions is {}; it must be between 1 and {}",
                self.partitions,
                turnstile_log::PARTITIONS_MAX
            ));
        }
        if self.replication_factor == 0 {
            return invalid("replication_factor must be at least 1".to_string());
        }
        if self.group_id.is_empty() {
            return invalid("group_id is empty".to_string());
        }
        if self.delivery_timeout_ms == 0 || self.linger_ms >= self.delivery_timeout_ms {
            return invalid(format!(
                "linger_ms ({}) must be below delivery_timeout_ms ({}), which must not be 0",
                self.linger_ms, self.delivery_timeout_ms
            ));
        }
        let ranges: [(&str, u64, u64, u64); 8] = [
            ("linger_ms", self.linger_ms, 0, 900_000),
            (
                "produce_batch_records_max",
                self.produce_batch_records_max.into(),
                1,
                1_000_000,
            ),
            (
                "produce_batch_bytes_max",
                self.produce_batch_bytes_max.into(),
                1,
                i32::MAX as u64,
            ),
            (
                "produce_queue_records_max",
                self.produce_queue_records_max.into(),
                1,
                i32::MAX as u64,
            ),
            (
                "produce_queue_bytes_max",
                self.produce_queue_bytes_max,
                1,
                (i32::MAX as u64) << 10,
            ),
            (
                "delivery_timeout_ms",
                self.delivery_timeout_ms,
                1,
                i32::MAX as u64,
            ),
            (
                "fetch_queue_bytes_max",
                self.fetch_queue_bytes_max,
                1,
                2_097_151 << 10,
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                1,
                i32::MAX as u64,
            ),
        ];
        for (name, value, min, max) in ranges {
            if value < min || value > max {
                return invalid(format!(
                    "{name} is {value}; it must be between {min} and {max}"
                ));
            }
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms >= self.session_timeout_ms
        {
            return invalid(format!(
                "heartbeat_interval_ms ({}) must be above 0 and below session_timeout_ms ({})",
                self.heartbeat_interval_ms, self.session_timeout_ms
            ));
        }
        if self.session_timeout_ms > 3_600_000 {
            return invalid(format!(
                "session_timeout_ms is {}; it must be at most 3600000",
                self.session_timeout_ms
            ));
        }
        Ok(())
    }

    /// Properties every client shares; `role` names the client in `client.id`.
    fn base(&self, role: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}-{role}", self.client_id));
        config
    }

    /// Applies [`KafkaLogConfig::librdkafka`], last so that it can override.
    fn finish(&self, mut config: ClientConfig) -> ClientConfig {
        for (key, value) in &self.librdkafka {
            config.set(key, value);
        }
        config
    }

    /// The appender's producer.
    pub(crate) fn producer_config(&self) -> ClientConfig {
        let mut config = self.base("appender");
        config
            // Idempotence makes librdkafka's retries safe (no duplicates, no reordering
            // within a partition) and implies acks=all and a bounded number of requests
            // in flight. acks=all is spelled out because it is what "acknowledged" means
            // here: every in-sync replica has the record.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger_ms.to_string())
            .set(
                "batch.num.messages",
                self.produce_batch_records_max.to_string(),
            )
            .set("batch.size", self.produce_batch_bytes_max.to_string())
            .set(
                "queue.buffering.max.messages",
                self.produce_queue_records_max.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                kib_rounded_up(self.produce_queue_bytes_max).to_string(),
            )
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string())
            .set("message.max.bytes", MESSAGE_BYTES_MAX.to_string());
        self.finish(config)
    }

    /// A partition reader's consumer. It has the group id only because librdkafka's
    /// `assign` requires one; it never joins the group.
    pub(crate) fn reader_config(&self, partition: u32) -> ClientConfig {
        let mut config = self.base(&format!("reader-{partition}"));
        config
            .set("group.id", &self.group_id)
            // The journal's offset is the truth: the reader never stores or commits
            // offsets of its own.
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // A position outside the log must stop the processor, never be silently
            // moved to the earliest or latest record (that would skip or replay
            // decisions).
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            // Only records of committed transactions; the commands topic is written
            // without transactions, so this changes nothing unless someone else writes
            // transactionally into it (see the reader's gap check).
            .set("isolation.level", "read_committed")
            // A processor waits for the next batch while callers wait for their answer:
            // the broker should hand over records at once, not hold a fetch for up to
            // librdkafka's default 500 ms hoping for more.
            .set("fetch.wait.max.ms", READER_FETCH_WAIT_MS.to_string())
            .set(
                "queued.max.messages.kbytes",
                kib_rounded_up(self.fetch_queue_bytes_max).to_string(),
            );
        self.finish(config)
    }

    /// A group member's consumer: it joins the group but never reads records (its
    /// partitions are paused as soon as they are assigned).
    pub(crate) fn member_config(&self) -> ClientConfig {
        let mut config = self.base("member");
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Cooperative rebalancing moves only the partitions that change owner, so a
            // processor keeps (and does not recover again) the partitions it keeps.
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                self.heartbeat_interval_ms.to_string(),
            )
            // Between an assignment and the pause that follows it librdkafka may start a
            // fetch; starting at the end keeps that fetch empty.
            .set("auto.offset.reset", "latest")
            .set("queued.min.messages", "1")
            .set("allow.auto.create.topics", "false");
        self.finish(config)
    }

    /// A consumer used only for metadata during topic setup.
    pub(crate) fn metadata_config(&self) -> ClientConfig {
        let mut config = self.base("admin");
        // A metadata request must not create the topic with the broker's default
        // partition count behind our back: `ensure_topic` creates it with ours.
        config.set("allow.auto.create.topics", "false");
        self.finish(config)
    }

    /// The admin client of topic setup.
    pub(crate) fn admin_config(&self) -> ClientConfig {
        let config = self.base("admin");
        self.finish(config)
    }
}

fn kib_rounded_up(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        KafkaLogConfig::new("127.0.0.1:9092", "commands", 8)
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn out_of_range_values_are_rejected_with_their_name() {
        let base = KafkaLogConfig::new("127.0.0.1:9092", "commands", 8);
        type Mutation = fn(&mut KafkaLogConfig);
        let cases: [(&str, Mutation); 7] = [
            ("partitions", |c| c.partitions = 0),
            ("brokers", |c| c.brokers = " ".into()),
            ("topic", |c| c.topic = String::new()),
            ("linger_ms", |c| c.linger_ms = c.delivery_timeout_ms),
            ("produce_batch_records_max", |c| {
                c.produce_batch_records_max = 0
            }),
            ("heartbeat_interval_ms", |c| {
                c.heartbeat_interval_ms = c.session_timeout_ms
            }),
            ("replication_factor", |c| c.replication_factor = 0),
        ];
        for (name, mutate) in cases {
            let mut config = base.clone();
            mutate(&mut config);
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error:?} should name {name}");
        }
    }

    #[test]
    fn librdkafka_overrides_come_last() {
        let mut config = KafkaLogConfig::new("127.0.0.1:9092", "commands", 8);
        config.librdkafka.push(("linger.ms".into(), "50".into()));
        assert_eq!(config.producer_config().get("linger.ms"), Some("50"));
        assert_eq!(config.producer_config().get("acks"), Some("all"));
    }
}
