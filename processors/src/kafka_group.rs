//! Processors for the partitions a Kafka consumer group gives this process.
//!
//! The group spreads a topic's partitions over every processor process; this module turns
//! its [`GroupEvent`]s into partition processors, following the contract in
//! `log-kafka/src/group.rs` and `docs/production.md` (rules 4–8): on assignment a
//! processor takes the partition in the journal (fencing the previous owner), restores
//! its state and reads from the journal's offset; on revocation it is told to stop after
//! the batch in flight, whose commit the journal fences if the new owner got there first.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use turnstile_journal::Journal;
use turnstile_log_kafka::{
    GroupEvent, GroupHandle, KafkaGroupMember, KafkaLogConfig, KafkaPartitionReader,
};

use crate::runtime::{
    supervise, DecisionListener, Error, PartitionProcessor, PartitionReader, ProcessorConfig,
};

/// A running processor of one assigned partition.
struct Assigned {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), Error>>,
}

/// Joins the consumer group of `kafka` and processes whatever partitions it assigns to
/// this process, until `shutdown` turns true. Returns the first processor error that
/// cannot be retried (a fenced processor is not one: its partition moved on).
pub async fn run_group_member<L: DecisionListener>(
    kafka: KafkaLogConfig,
    journal: Journal,
    listener: Arc<L>,
    config: ProcessorConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let (member, mut events) = KafkaGroupMember::new(&kafka)?;
    let group = member.handle();
    let membership = tokio::spawn(member.run(shutdown.clone()));
    let mut assigned: HashMap<u32, Assigned> = HashMap::new();
    let mut first_error = None;
    // The channel closes when membership ends (shutdown or a fatal error); the member
    // sends a last Revoked for what it held when it can.
    while let Some(event) = events.recv().await {
        match event {
            GroupEvent::Assigned(partitions) => {
                for partition in partitions {
                    let (stop, stop_rx) = watch::channel(false);
                    let task = tokio::spawn(process_partition(
                        partition,
                        kafka.clone(),
                        PartitionContext {
                            journal: journal.clone(),
                            listener: listener.clone(),
                            config: config.clone(),
                            group: group.clone(),
                        },
                        stop_rx,
                    ));
                    assigned.insert(partition, Assigned { stop, task });
                }
            }
            GroupEvent::Revoked(partitions) => {
                for partition in partitions {
                    if let Some(processor) = assigned.remove(&partition) {
                        stop_and_join(partition, processor, &mut first_error).await;
                    }
                }
            }
        }
    }
    for (partition, processor) in assigned.drain() {
        stop_and_join(partition, processor, &mut first_error).await;
    }
    match membership.await.expect("the group member does not panic") {
        Err(e) => Err(e.into()),
        Ok(()) => first_error.map_or(Ok(()), Err),
    }
}

/// What every partition processor of this member shares.
struct PartitionContext<L> {
    journal: Journal,
    listener: Arc<L>,
    config: ProcessorConfig,
    group: GroupHandle,
}

async fn process_partition<L: DecisionListener>(
    partition: u32,
    kafka: KafkaLogConfig,
    context: PartitionContext<L>,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    // The reader starts wherever; the processor's first read positions it at the
    // journal's offset (never at a Kafka committed offset).
    let reader = PartitionReader::Kafka {
        reader: KafkaPartitionReader::open(&kafka, partition, 0)?,
        partitions: kafka.partitions,
        group: Some(context.group),
    };
    let processor = PartitionProcessor::recover(
        partition,
        reader,
        context.journal,
        context.listener,
        context.config,
    )
    .await?;
    supervise(processor, stop).await
}

async fn stop_and_join(partition: u32, processor: Assigned, first_error: &mut Option<Error>) {
    // Send fails only when the processor is gone already.
    let _ = processor.stop.send(true);
    match processor
        .task
        .await
        .expect("partition processors do not panic")
    {
        Ok(()) => tracing::info!(partition, "partition released"),
        // Another process took the partition before our last commit: expected in a
        // rebalance, and nothing of that batch was committed or told.
        Err(Error::Journal(turnstile_journal::Error::Fenced { .. })) => {
            tracing::info!(partition, "partition released; its last batch was fenced");
        }
        Err(e) => {
            tracing::error!(partition, error = %e, "partition processor failed");
            first_error.get_or_insert(e);
        }
    }
}
