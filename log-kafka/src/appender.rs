//! [`KafkaAppender`]: the edge's side of the log. An append returns only once the brokers
//! acknowledged the record.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::KafkaLogConfig;
use crate::{Error, TRACEPARENT_HEADER};

/// How long an append sleeps before retrying when the producer's local queue is full.
/// Short: the queue drains at broker speed, and the wait as a whole is bounded by
/// `delivery_timeout_ms`.
const QUEUE_FULL_RETRY_MS: u64 = 5;

/// One record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The partition, chosen by the caller with [`turnstile_log::partition_for`] — the
    /// same placement as the embedded log. It is set explicitly on the Kafka record, so
    /// the key never influences placement.
    pub partition: u32,
    /// The Kafka record key: the resource id, so that tools reading the topic see which
    /// resource a record belongs to. `None` sends a record without a key.
    pub key: Option<String>,
    /// The command, opaque bytes (the JSON envelope).
    pub payload: Vec<u8>,
    /// W3C trace context of the request, sent as the record header
    /// [`TRACEPARENT_HEADER`] so that traces follow the command through the log.
    pub traceparent: Option<String>,
}

impl Record {
    /// A record for `partition` with no key and no trace context.
    pub fn new(partition: u32, payload: Vec<u8>) -> Self {
        Record {
            partition,
            key: None,
            payload,
            traceparent: None,
        }
    }

    /// A record of `resource_id`: placed on `partition_for(resource_id, partitions)` and
    /// keyed by the resource id.
    pub fn for_resource(resource_id: &str, partitions: u32, payload: Vec<u8>) -> Self {
        Record {
            partition: turnstile_log::partition_for(resource_id, partitions),
            key: Some(resource_id.to_string()),
            payload,
            traceparent: None,
        }
    }

    /// Sets the trace context header.
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }
}

/// Appends records to the commands topic. Cloning is cheap; all clones share one
/// librdkafka producer, whose batching (`linger_ms`) is what makes concurrent appends
/// cheap.
///
/// The producer is idempotent with `acks=all`: librdkafka retries failed sends without
/// duplicating or reordering records within a partition, and an append returns an offset
/// only after every in-sync replica has the record. Dropping the last clone purges what is
/// still unsent (those appends fail, none is falsely acknowledged); [`KafkaAppender::close`]
/// waits for them instead.
#[derive(Clone)]
pub struct KafkaAppender {
    producer: FutureProducer,
    topic: Arc<str>,
    partitions: u32,
    /// Bound on waiting for room in a full local queue: the delivery timeout, since a
    /// record that waits longer could not be delivered in time anyway.
    enqueue_wait: Duration,
    delivery_timeout: Duration,
}

impl fmt::Debug for KafkaAppender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaAppender")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaAppender {
    /// Creates the producer. It connects lazily: a broker that is down surfaces as failed
    /// appends (after `delivery_timeout_ms`), not as an error here.
    pub fn new(config: &KafkaLogConfig) -> Result<Self, Error> {
        config.validate()?;
        let producer: FutureProducer = config
            .producer_config()
            .create()
            .map_err(|e| Error::kafka("creating the producer", e))?;
        Ok(KafkaAppender {
            producer,
            topic: config.topic.as_str().into(),
            partitions: config.partitions,
            enqueue_wait: Duration::from_millis(config.delivery_timeout_ms),
            delivery_timeout: Duration::from_millis(config.delivery_timeout_ms),
        })
    }

    /// The configured partition count (for `partition_for`).
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Appends `payload` to `partition` and returns its offset once the brokers
    /// acknowledged it. The same contract as `EmbeddedLog::append`, with the brokers'
    /// acknowledgement in place of the fsync.
    ///
    /// Cancel safety: if the future is dropped after the record was handed to librdkafka,
    /// the record may still be written.
    pub async fn append(&self, partition: u32, payload: Vec<u8>) -> Result<u64, Error> {
        self.append_record(Record::new(partition, payload)).await
    }

    /// Appends one record (with its key and trace context) and returns its offset once
    /// the brokers acknowledged it.
    pub async fn append_record(&self, record: Record) -> Result<u64, Error> {
        let delivery = self.enqueue(&record).await?;
        self.delivered(record.partition, delivery).await
    }

    /// Appends `records`, possibly to several partitions, and returns their offsets in
    /// the same order once all were acknowledged. Everything is handed to librdkafka
    /// before the first acknowledgement is awaited, so the records share produce batches.
    ///
    /// Unlike the embedded log's batch this is not atomic: on `Err` some records may have
    /// been written. Retrying the whole batch is safe because processors deduplicate by
    /// request id. Offsets of one partition are increasing in record order but need not
    /// be consecutive, since other appends may interleave.
    pub async fn append_batch(&self, records: Vec<Record>) -> Result<Vec<u64>, Error> {
        for record in &records {
            self.check(record)?;
        }
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            deliveries.push((record.partition, self.enqueue(record).await?));
        }
        let mut offsets = Vec::with_capacity(records.len());
        for (partition, delivery) in deliveries {
            offsets.push(self.delivered(partition, delivery).await?);
        }
        Ok(offsets)
    }

    /// Waits (at most `delivery_timeout_ms`) until everything handed to the producer by any
    /// clone was acknowledged or failed, then drops this handle.
    pub async fn close(self) -> Result<(), Error> {
        let producer = self.producer.clone();
        let timeout = self.delivery_timeout;
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|_| Error::Stopped)?
            .map_err(|e| Error::kafka("flushing the producer", e))
    }

    fn check(&self, record: &Record) -> Result<(), Error> {
        if record.partition >= self.partitions {
            return Err(Error::UnknownPartition {
                partition: record.partition,
                partitions: self.partitions,
            });
        }
        if record.payload.len() > turnstile_log::RECORD_PAYLOAD_BYTES_MAX {
            return Err(Error::RecordTooLarge {
                payload_bytes: record.payload.len(),
                payload_bytes_max: turnstile_log::RECORD_PAYLOAD_BYTES_MAX,
            });
        }
        Ok(())
    }

    /// Hands `record` to librdkafka, waiting while its queue is full.
    async fn enqueue(&self, record: &Record) -> Result<DeliveryFuture, Error> {
        self.check(record)?;
        let partition = i32::try_from(record.partition).expect("below PARTITIONS_MAX");
        let deadline = Instant::now() + self.enqueue_wait;
        loop {
            let mut kafka_record = FutureRecord::<[u8], [u8]>::to(&self.topic)
                .partition(partition)
                .payload(record.payload.as_slice());
            if let Some(key) = &record.key {
                kafka_record = kafka_record.key(key.as_bytes());
            }
            if let Some(traceparent) = &record.traceparent {
                kafka_record = kafka_record.headers(OwnedHeaders::new().insert(Header {
                    key: TRACEPARENT_HEADER,
                    value: Some(traceparent.as_str()),
                }));
            }
            match self.producer.send_result(kafka_record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(QUEUE_FULL_RETRY_MS)).await;
                }
                Err((e, _)) => return Err(Error::kafka("appending", e)),
            }
        }
    }

    /// Waits for the brokers' verdict on one enqueued record.
    async fn delivered(&self, partition: u32, delivery: DeliveryFuture) -> Result<u64, Error> {
        match delivery.await {
            Ok(Ok(delivery)) => {
                assert_eq!(
                    i64::from(delivery.partition),
                    i64::from(partition),
                    "the producer wrote to another partition than the record named"
                );
                // With acks=all the broker always reports the offset it assigned.
                let offset = u64::try_from(delivery.offset)
                    .expect("an acknowledged record has a non-negative offset");
                Ok(offset)
            }
            Ok(Err((e, _))) => Err(Error::kafka("appending", e)),
            // The producer was dropped with the record still in it.
            Err(_) => Err(Error::Stopped),
        }
    }
}
