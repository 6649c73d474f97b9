//! The Kafka log backend: the production counterpart of `turnstile-log`'s embedded log.
//!
//! The HTTP edge appends commands with [`KafkaAppender`] and acknowledges a request only
//! once the append returned: every in-sync replica then has the record. Processors read
//! their partitions with [`KafkaPartitionReader`] from the offset their journal names, and
//! share the partitions between processes through [`KafkaGroupMember`]. Records are placed
//! with the same [`turnstile_log::partition_for`] as in the embedded log, so a resource
//! lives on the same partition number in either backend.
//!
//! # Layout
//!
//! - `lib.rs` — this overview and the re-exports.
//! - `config.rs` — [`KafkaLogConfig`] and the librdkafka properties each client derives
//!   from it.
//! - `topic.rs` — [`ensure_topic`]: create the commands topic, or check the existing one.
//! - `appender.rs` — [`KafkaAppender`] and [`Record`]: acknowledged appends.
//! - `reader.rs` — [`KafkaPartitionReader`] and [`KafkaRecord`]: offset-exact reads of one
//!   partition.
//! - `group.rs` — [`KafkaGroupMember`], [`GroupEvent`], [`GroupHandle`]: consumer-group
//!   membership, and what a processor must do on each assignment change.
//! - `error.rs` — the crate's [`Error`] and the one function deciding which librdkafka
//!   errors are retriable.
//!
//! # Where the truth is
//!
//! Kafka holds the commands; the journal holds the decisions *and* the offset up to which
//! they were made (`docs/exactly-once.md`, rules 9–11). This crate therefore never lets
//! Kafka decide a position: readers start where they are told, `auto.offset.reset` is
//! `error` (a position outside the log fails loudly instead of jumping), and consumer
//! group offsets are written only for lag display. Kafka transactions are not used: the
//! exactly-once guarantee rests on the journal commit, and the test brokers' transaction
//! support is incomplete (`DESIGN.md` §5).
//!
//! # Tests
//!
//! `tests/mock_cluster.rs` runs everything against librdkafka's in-process mock cluster:
//! no server needed. Its limits (no CreateTopics, for one) are named in the tests that
//! meet them.

mod appender;
mod config;
mod error;
mod group;
mod reader;
mod topic;

pub use crate::appender::{KafkaAppender, Record};
pub use crate::config::{
    KafkaLogConfig, DELIVERY_TIMEOUT_MS_DEFAULT, FETCH_QUEUE_BYTES_MAX_DEFAULT,
    HEARTBEAT_INTERVAL_MS_DEFAULT, LINGER_MS_DEFAULT, PRODUCE_BATCH_BYTES_MAX_DEFAULT,
    PRODUCE_BATCH_RECORDS_MAX_DEFAULT, PRODUCE_QUEUE_BYTES_MAX_DEFAULT,
    PRODUCE_QUEUE_RECORDS_MAX_DEFAULT, RECORD_OVERHEAD_BYTES_MAX, REQUEST_TIMEOUT_MS_DEFAULT,
    SESSION_TIMEOUT_MS_DEFAULT,
};
pub use crate::error::Error;
pub use crate::group::{GroupEvent, GroupHandle, KafkaGroupMember, GROUP_EVENT_QUEUE_MAX};
pub use crate::reader::{KafkaPartitionReader, KafkaRecord, RecordHeader};
pub use crate::topic::{ensure_topic, TopicSetup};

/// The record header that carries a command's W3C trace context (`traceparent`), so
/// that a trace follows one request from the edge through the log to the processor.
pub const TRACEPARENT_HEADER: &str = "traceparent";
