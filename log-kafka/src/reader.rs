//! [`KafkaPartitionReader`]: a processor's view of one partition, read from the offset the
//! journal names.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use turnstile_log::LogRecord;

use crate::config::KafkaLogConfig;
use crate::error::is_retriable_code;
use crate::{Error, TRACEPARENT_HEADER};

/// One header of a record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// The header's name.
    pub key: String,
    /// Its value; Kafka distinguishes a null value from an empty one.
    pub value: Option<Vec<u8>>,
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaRecord {
    /// The record's offset in its partition.
    pub offset: u64,
    /// The bytes appended. A Kafka record with a null value reads as empty (and is then
    /// dead-lettered by the processor, like any unparsable command).
    pub payload: Bytes,
    /// The record's headers, in order.
    pub headers: Vec<RecordHeader>,
}

impl KafkaRecord {
    /// The value of the first header named `key`, if it has one.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|header| header.key == key)
            .and_then(|header| header.value.as_deref())
    }

    /// The W3C trace context the appender attached, if any (and if it is UTF-8).
    pub fn traceparent(&self) -> Option<&str> {
        self.header(TRACEPARENT_HEADER)
            .and_then(|value| std::str::from_utf8(value).ok())
    }

    /// The record as the embedded log would return it, for code written against
    /// [`LogRecord`] (the processor's decoding, the audit's replay).
    pub fn into_log_record(self) -> LogRecord {
        LogRecord {
            offset: self.offset,
            payload: self.payload,
        }
    }
}

/// Reads one partition of the commands topic from an explicit offset.
///
/// The reader assigns itself the partition directly (no group membership, no stored
/// offsets): the position always comes from the caller, who takes it from the journal.
/// Which process may read which partition is decided elsewhere ([`crate::KafkaGroupMember`]
/// and the journal's epoch); a reader alone fences nothing.
///
/// Each reader is its own librdkafka consumer (a few threads and up to
/// `fetch_queue_bytes_max` of prefetched records).
pub struct KafkaPartitionReader {
    consumer: Arc<StreamConsumer>,
    topic: Arc<str>,
    partition: u32,
    /// The offset the consumer delivers next, as far as this reader knows. `None` after an
    /// error, so the next read repositions instead of trusting a half-consumed fetch.
    position: Option<u64>,
    request_timeout: Duration,
}

impl fmt::Debug for KafkaPartitionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaPartitionReader")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl KafkaPartitionReader {
    /// Creates a consumer for `partition` and starts fetching at `from`.
    ///
    /// Must be called inside a tokio runtime (the consumer spawns a small wake-up task).
    pub fn open(config: &KafkaLogConfig, partition: u32, from: u64) -> Result<Self, Error> {
        config.validate()?;
        if partition >= config.partitions {
            return Err(Error::UnknownPartition {
                partition,
                partitions: config.partitions,
            });
        }
        let consumer: StreamConsumer = config
            .reader_config(partition)
            .create()
            .map_err(|e| Error::kafka("creating a partition reader", e))?;
        let mut reader = KafkaPartitionReader {
            consumer: Arc::new(consumer),
            topic: config.topic.as_str().into(),
            partition,
            position: None,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        };
        reader.seek(from)?;
        Ok(reader)
    }

    /// The partition this reader reads.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// Reads up to `records_max` records from offset `from` on, in offset order, waiting at
    /// most `wait_ms` for the first one. Returns an empty `Vec` when none arrived in time.
    ///
    /// Consecutive reads normally pass the offset after the last record returned; any
    /// other `from` repositions the consumer there first (records prefetched for the old
    /// position are discarded). The returned offsets are `from, from + 1, …`: a jump is
    /// [`Error::OffsetGap`]. A `from` outside the partition is
    /// [`Error::OffsetOutOfRange`], never a silent jump; `from` equal to the end waits.
    ///
    /// Transient broker trouble during the wait is logged and waited out; the read then
    /// simply returns what arrived.
    ///
    /// Cancel safety: dropping the future loses no record; the next read from the same
    /// `from` returns the same records.
    pub async fn read(
        &mut self,
        from: u64,
        records_max: usize,
        wait_ms: u64,
    ) -> Result<Vec<KafkaRecord>, Error> {
        if records_max == 0 {
            return Ok(Vec::new());
        }
        if self.position != Some(from) {
            self.seek(from)?;
        }
        // Until this read completes the position is unknown: if it fails or is cancelled
        // part-way, the next read must reposition.
        self.position = None;
        let result = self.read_inner(from, records_max, wait_ms).await;
        if let Ok(records) = &result {
            self.position = Some(from + records.len() as u64);
        }
        result
    }

    async fn read_inner(
        &self,
        from: u64,
        records_max: usize,
        wait_ms: u64,
    ) -> Result<Vec<KafkaRecord>, Error> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        let mut stream = self.consumer.stream();
        let mut records: Vec<KafkaRecord> = Vec::new();
        while records.len() < records_max {
            let next = if records.is_empty() {
                // Wait for the first record, up to the deadline.
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(next) => next,
                    Err(_elapsed) => break,
                }
            } else {
                // Then take what is already fetched, without waiting: a batch is what is
                // there, not what might come.
                match stream.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            let message = next.expect("a consumer's message stream never ends");
            match message {
                Ok(message) => {
                    let expected = from + records.len() as u64;
                    if let Some(record) = self.take(&message, expected)? {
                        records.push(record);
                    }
                }
                Err(e) => self.on_error(e, from)?,
            }
        }
        Ok(records)
    }

    /// Copies `message` out of librdkafka after checking it is the record due.
    fn take(
        &self,
        message: &BorrowedMessage<'_>,
        expected: u64,
    ) -> Result<Option<KafkaRecord>, Error> {
        assert_eq!(
            i64::from(message.partition()),
            i64::from(self.partition),
            "a reader assigned one partition received a record of another"
        );
        let offset = u64::try_from(message.offset()).expect("a fetched record has an offset");
        if offset < expected {
            // Fetched for a position before a reposition; librdkafka normally discards
            // these itself. Never what the caller asked for.
            tracing::debug!(
                partition = self.partition,
                offset,
                expected,
                "dropped a record fetched before a seek"
            );
            return Ok(None);
        }
        if offset > expected {
            return Err(Error::OffsetGap {
                partition: self.partition,
                expected,
                found: offset,
            });
        }
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| RecordHeader {
                        key: header.key.to_string(),
                        value: header.value.map(<[u8]>::to_vec),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(KafkaRecord {
            offset,
            payload: Bytes::copy_from_slice(message.payload().unwrap_or_default()),
            headers,
        }))
    }

    /// Decides what an error delivered with the records means for the read.
    fn on_error(&self, error: KafkaError, from: u64) -> Result<(), Error> {
        match &error {
            KafkaError::MessageConsumption(
                RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
            ) => Err(Error::OffsetOutOfRange {
                partition: self.partition,
                offset: from,
                reason: error.to_string(),
            }),
            KafkaError::PartitionEOF(_) => Ok(()),
            KafkaError::MessageConsumption(code) if is_retriable_code(*code) => {
                // rdkafka already logs these as client errors (at every reconnect attempt
                // while a broker is down); this line only adds the partition.
                tracing::debug!(partition = self.partition, error = %error, "transient error while reading the Kafka log; waiting it out");
                Ok(())
            }
            _ => Err(Error::kafka("reading", error)),
        }
    }

    /// Offset one past the last record of this reader's partition (its high watermark;
    /// 0 when it is empty). Asks the partition's leader, at most `request_timeout_ms`.
    pub async fn end_offset(&self) -> Result<u64, Error> {
        let consumer = Arc::clone(&self.consumer);
        let topic = Arc::clone(&self.topic);
        let partition = i32::try_from(self.partition).expect("below PARTITIONS_MAX");
        let timeout = self.request_timeout;
        let (_low, high) = tokio::task::spawn_blocking(move || {
            consumer.fetch_watermarks(&topic, partition, timeout)
        })
        .await
        .map_err(|_| Error::Stopped)?
        .map_err(|e| Error::kafka("fetching the end offset", e))?;
        Ok(u64::try_from(high).expect("a high watermark is never negative"))
    }

    /// Stops fetching and releases the consumer off the async threads (closing a
    /// librdkafka consumer blocks briefly). Dropping the reader does the same, blocking.
    pub async fn close(self) {
        let consumer = self.consumer;
        // A JoinError here means the runtime is shutting down; the consumer is then
        // dropped with it.
        let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
    }

    /// Points the consumer at `from`. Re-assigning with an explicit offset is librdkafka's
    /// reliable seek: it works before the first fetch (a plain seek does not) and bumps
    /// the partition's fetch version, so records fetched for the old position are
    /// discarded.
    fn seek(&mut self, from: u64) -> Result<(), Error> {
        let offset = i64::try_from(from).map_err(|_| Error::OffsetOutOfRange {
            partition: self.partition,
            offset: from,
            reason: "beyond the largest Kafka offset".to_string(),
        })?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(
                &self.topic,
                i32::try_from(self.partition).expect("below PARTITIONS_MAX"),
                Offset::Offset(offset),
            )
            .map_err(|e| Error::kafka("seeking", e))?;
        self.position = None;
        self.consumer
            .assign(&assignment)
            .map_err(|e| Error::kafka("seeking", e))?;
        self.position = Some(from);
        Ok(())
    }
}
