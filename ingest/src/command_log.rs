//! [`CommandLog`]: where the edge appends commands — the embedded log or a Kafka topic.

use turnstile_log::EmbeddedLog;
use turnstile_log_kafka::{KafkaAppender, Record};

/// The log the edge writes to. Cheap to clone.
#[derive(Debug, Clone)]
pub enum CommandLog {
    /// The embedded default: a local file, fsync'd per group of appends.
    Embedded(EmbeddedLog),
    /// A Kafka topic (idempotent producer, `acks=all`).
    Kafka(KafkaAppender),
}

/// Why an append failed; either way the request was not acknowledged.
pub type AppendError = Box<dyn std::error::Error + Send + Sync>;

impl CommandLog {
    /// The log's partition count.
    pub fn partitions(&self) -> u32 {
        match self {
            CommandLog::Embedded(log) => log.partitions(),
            CommandLog::Kafka(appender) => appender.partitions(),
        }
    }

    /// Appends `payload` to `partition` and returns its offset once it is durable (written
    /// and fsync'd, or acknowledged by every in-sync replica). `traceparent` travels with
    /// it as a record header where the log has headers.
    pub async fn append(
        &self,
        partition: u32,
        payload: Vec<u8>,
        traceparent: Option<String>,
    ) -> Result<u64, AppendError> {
        Ok(match self {
            CommandLog::Embedded(log) => log.append(partition, payload).await?,
            CommandLog::Kafka(appender) => {
                let record = Record::new(partition, payload).with_traceparent(traceparent);
                appender.append_record(record).await?
            }
        })
    }
}
