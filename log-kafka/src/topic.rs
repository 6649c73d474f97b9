//! [`ensure_topic`]: creates the commands topic with the configured partition count, or
//! checks the one that exists.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;

use crate::config::{KafkaLogConfig, MESSAGE_BYTES_MAX};
use crate::Error;

/// How often topic setup looks again while a created topic becomes ready.
const TOPIC_READY_POLL_MS: u64 = 100;

/// What [`ensure_topic`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicSetup {
    /// The topic did not exist and was created.
    Created,
    /// The topic existed with the configured partition count.
    Existed,
}

/// Makes sure the commands topic exists with `config.partitions` partitions.
///
/// A missing topic is created with the configured partitions and replication factor and
/// with the settings the log's contract needs: records are kept forever
/// (`retention.ms=-1`, `retention.bytes=-1`, `cleanup.policy=delete`) because a replay
/// from offset 0 must reproduce every decision (invariant 6) and compaction would leave
/// offset gaps; and records as large as the embedded log's are accepted. The call then
/// waits, up to `request_timeout_ms`, until every partition has a leader.
///
/// An existing topic is left as it is, but its partition count must match:
/// [`Error::PartitionCountMismatch`] otherwise. Two processes racing to create it are
/// fine (the loser finds it existing).
pub async fn ensure_topic(config: &KafkaLogConfig) -> Result<TopicSetup, Error> {
    config.validate()?;
    let config = Arc::new(config.clone());
    if let Some(existing) = partition_count(&config).await? {
        check_count(&config, existing)?;
        return Ok(TopicSetup::Existed);
    }
    let admin: AdminClient<DefaultClientContext> = config
        .admin_config()
        .create()
        .map_err(|e| Error::kafka("creating the admin client", e))?;
    let replication = i32::from(config.replication_factor);
    let partitions = i32::try_from(config.partitions).expect("below PARTITIONS_MAX");
    let message_bytes_max = MESSAGE_BYTES_MAX.to_string();
    let topic = NewTopic::new(
        &config.topic,
        partitions,
        TopicReplication::Fixed(replication),
    )
    .set("retention.ms", "-1")
    .set("retention.bytes", "-1")
    .set("cleanup.policy", "delete")
    .set("max.message.bytes", &message_bytes_max);
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let options = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| Error::kafka("creating the topic", e))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {
                // Another process created it first; check what it created.
                let existing = partition_count(&config).await?.unwrap_or(config.partitions);
                check_count(&config, existing)?;
                return Ok(TopicSetup::Existed);
            }
            Err((_, code)) => {
                return Err(Error::kafka(
                    "creating the topic",
                    rdkafka::error::KafkaError::AdminOp(code),
                ));
            }
        }
    }
    wait_until_ready(&config).await?;
    Ok(TopicSetup::Created)
}

fn check_count(config: &KafkaLogConfig, existing: u32) -> Result<(), Error> {
    if existing != config.partitions {
        return Err(Error::PartitionCountMismatch {
            topic: config.topic.clone(),
            existing,
            configured: config.partitions,
        });
    }
    Ok(())
}

/// The topic's partition count, `None` if it does not exist.
async fn partition_count(config: &Arc<KafkaLogConfig>) -> Result<Option<u32>, Error> {
    let state = topic_state(config).await?;
    Ok(state.map(|(count, _)| count))
}

/// The topic's partition count and whether every partition has a leader; `None` if the
/// topic does not exist.
async fn topic_state(config: &Arc<KafkaLogConfig>) -> Result<Option<(u32, bool)>, Error> {
    let config = Arc::clone(config);
    let result = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .metadata_config()
            .create()
            .map_err(|e| Error::kafka("creating a metadata client", e))?;
        let metadata = consumer
            .fetch_metadata(
                Some(&config.topic),
                Duration::from_millis(config.request_timeout_ms),
            )
            .map_err(|e| Error::kafka("fetching topic metadata", e))?;
        let Some(topic) = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == config.topic)
        else {
            return Ok(None);
        };
        match topic.error() {
            None => {}
            Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => return Ok(None),
            Some(code) => {
                return Err(Error::kafka(
                    "fetching topic metadata",
                    rdkafka::error::KafkaError::MetadataFetch(code.into()),
                ));
            }
        }
        let count = u32::try_from(topic.partitions().len()).expect("a partition count fits u32");
        let led = topic
            .partitions()
            .iter()
            .all(|partition| partition.leader() >= 0 && partition.error().is_none());
        Ok(Some((count, led)))
    })
    .await;
    result.map_err(|_| Error::Stopped)?
}

async fn wait_until_ready(config: &Arc<KafkaLogConfig>) -> Result<(), Error> {
    let started = Instant::now();
    let limit = Duration::from_millis(config.request_timeout_ms);
    loop {
        if let Some((count, true)) = topic_state(config).await? {
            check_count(config, count)?;
            return Ok(());
        }
        if started.elapsed() >= limit {
            return Err(Error::TopicNotReady {
                topic: config.topic.clone(),
                waited_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
        tokio::time::sleep(Duration::from_millis(TOPIC_READY_POLL_MS)).await;
    }
}
