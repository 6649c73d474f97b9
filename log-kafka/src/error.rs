//! The crate's one error enum.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Everything that can go wrong appending to, reading from or joining the group of the
/// Kafka log.
///
/// Each variant knows whether retrying the same call can help: see [`Error::is_retriable`].
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// The configuration is unusable. Fix the config.
    #[error("invalid Kafka log configuration: {reason}")]
    InvalidConfig {
        /// What is wrong and what the allowed range is.
        reason: String,
    },

    /// The partition number is not below the configured partition count.
    #[error("partition {partition} does not exist: the log has {partitions} partitions")]
    UnknownPartition {
        /// The partition asked for.
        partition: u32,
        /// The configured partition count.
        partitions: u32,
    },

    /// One payload is larger than [`turnstile_log::RECORD_PAYLOAD_BYTES_MAX`], the limit
    /// both log backends share.
    #[error(
        "record payload of {payload_bytes} bytes exceeds the limit of {payload_bytes_max} bytes"
    )]
    RecordTooLarge {
        /// Size of the rejected payload.
        payload_bytes: usize,
        /// The limit.
        payload_bytes_max: usize,
    },

    /// The topic exists with another partition count than configured. Resources are
    /// placed by `partition_for(id, partitions)`, so using a different count would move
    /// resources between partitions and break their order: configure the topic's count,
    /// or use a new topic.
    #[error(
        "topic {topic} has {existing} partitions but the configuration says {configured}; \
         the partition count is part of the data (use {existing}, or a new topic)"
    )]
    PartitionCountMismatch {
        /// The topic.
        topic: String,
        /// Its partition count on the brokers.
        existing: u32,
        /// The configured count.
        configured: u32,
    },

    /// A created topic did not show all its partitions with a leader in time. Kafka
    /// creates topics asynchronously; retrying usually finds it ready.
    #[error(
        "topic {topic} was created but not all its partitions had a leader after {waited_ms} ms"
    )]
    TopicNotReady {
        /// The topic.
        topic: String,
        /// How long we waited.
        waited_ms: u64,
    },

    /// A read asked for an offset the partition does not hold: past its end (the
    /// journal is ahead of the log, so the log lost acknowledged records or is not the
    /// log the journal was written from) or before its start (retention deleted records
    /// that were never decided). Either way it needs an operator; the reader never jumps
    /// to another position on its own.
    #[error("offset {offset} is outside partition {partition} of the log: {reason}")]
    OffsetOutOfRange {
        /// The partition read.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// What the broker or librdkafka said.
        reason: String,
    },

    /// The partition skipped an offset. The commands topic is written without
    /// transactions and never compacted, so its offsets are dense; a gap means something
    /// else (a transactional producer, compaction) touched it, and the processor's
    /// offset arithmetic no longer holds.
    #[error("partition {partition} jumped from offset {expected} to {found}; the commands topic must not be compacted or written transactionally")]
    OffsetGap {
        /// The partition read.
        partition: u32,
        /// The offset that was due.
        expected: u64,
        /// The offset that came.
        found: u64,
    },

    /// The client was closed, or dropped while a call waited on it.
    #[error("the Kafka client has stopped")]
    Stopped,

    /// An error from librdkafka or a broker. Whether a retry helps depends on the code:
    /// see [`Error::is_retriable`].
    #[error("Kafka error while {op}: {source}")]
    Kafka {
        /// What the client was doing ("appending", "reading", …).
        op: &'static str,
        /// The error librdkafka reported.
        #[source]
        source: KafkaError,
    },
}

impl Error {
    /// Whether retrying the same call can succeed.
    ///
    /// Retriable: broker unavailability and timeouts (`MessageTimedOut`, `AllBrokersDown`,
    /// leader elections, too few in-sync replicas, a full local queue, …) and a created
    /// topic that is not ready yet. An append that failed retriably may still have been
    /// written; the processor deduplicates the caller's retry by request id.
    ///
    /// Not retriable: configuration and caller mistakes, a log that disagrees with the
    /// journal ([`Error::OffsetOutOfRange`], [`Error::OffsetGap`]), a stopped client,
    /// and librdkafka's fatal errors (an idempotent producer that lost its guarantees
    /// must be replaced by a new [`crate::KafkaAppender`]).
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::TopicNotReady { .. } => true,
            Error::Kafka { source, .. } => is_retriable_kafka(source),
            Error::InvalidConfig { .. }
            | Error::UnknownPartition { .. }
            | Error::RecordTooLarge { .. }
            | Error::PartitionCountMismatch { .. }
            | Error::OffsetOutOfRange { .. }
            | Error::OffsetGap { .. }
            | Error::Stopped => false,
        }
    }

    pub(crate) fn kafka(op: &'static str, source: KafkaError) -> Self {
        Error::Kafka { op, source }
    }
}

/// The one place that decides which librdkafka errors a retry can cure.
fn is_retriable_kafka(error: &KafkaError) -> bool {
    match error {
        KafkaError::MessageConsumptionFatal(_) => false,
        KafkaError::Transaction(e) => e.is_retriable(),
        // rdkafka's `rdkafka_error_code` answers `None` for admin errors, so look inside.
        KafkaError::AdminOp(code) => is_retriable_code(*code),
        _ => error.rdkafka_error_code().is_some_and(is_retriable_code),
    }
}

pub(crate) fn is_retriable_code(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        // Local: the network or the cluster is unavailable, or a local wait ran out.
        C::BrokerTransportFailure
            | C::Resolve
            | C::MessageTimedOut
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::QueueFull
            | C::TimedOutQueue
            | C::WaitingForCoordinator
            | C::Retry
            // Broker: leadership moves, replicas catching up, coordinators loading.
            | C::UnknownTopicOrPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::RebalanceInProgress
            | C::KafkaStorageError
            | C::NotController
            | C::ThrottlingQuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailability_is_retriable_and_fatal_errors_are_not() {
        let produce = |code| Error::kafka("appending", KafkaError::MessageProduction(code));
        assert!(produce(RDKafkaErrorCode::MessageTimedOut).is_retriable());
        assert!(produce(RDKafkaErrorCode::NotEnoughReplicas).is_retriable());
        assert!(produce(RDKafkaErrorCode::QueueFull).is_retriable());
        assert!(!produce(RDKafkaErrorCode::Fatal).is_retriable());
        assert!(!produce(RDKafkaErrorCode::TopicAuthorizationFailed).is_retriable());
        assert!(!produce(RDKafkaErrorCode::MessageSizeTooLarge).is_retriable());
        let fatal_read = Error::kafka(
            "reading",
            KafkaError::MessageConsumptionFatal(RDKafkaErrorCode::BrokerTransportFailure),
        );
        assert!(!fatal_read.is_retriable());
        let admin = |code| Error::kafka("creating the topic", KafkaError::AdminOp(code));
        assert!(admin(RDKafkaErrorCode::OperationTimedOut).is_retriable());
        assert!(!admin(RDKafkaErrorCode::InvalidPartitions).is_retriable());
        assert!(!Error::Stopped.is_retriable());
        assert!(!Error::OffsetGap {
            partition: 0,
            expected: 1,
            found: 2
        }
        .is_retriable());
    }
}
