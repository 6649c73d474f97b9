//! The partition runtime: the imperative shell around [`PartitionState`].
//!
//! One [`PartitionProcessor`] owns one log partition. On start it takes the partition in
//! the journal (bumping the epoch fences any earlier owner), restores state from the
//! journal's outcomes and continues from the journal's offset. Then, batch after batch, it
//! reads records, decides them in log order, commits outcomes + projections + next offset
//! in one transaction, and only after the commit tells its [`DecisionListener`] — so no
//! caller ever sees a decision that is not durable. `docs/exactly-once.md` is the contract.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use turnstile_journal::{BatchCommit, DeadLetter, Journal, PartitionLease};
use turnstile_log::{partition_for, EmbeddedLog, LogRecord};
use turnstile_log_kafka::{GroupHandle, KafkaPartitionReader};
use turnstile_schemas::{Command, Envelope, LogPosition, Outcome};

use crate::metrics;
use crate::partition::PartitionState;

/// How a partition processor batches its work.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// Most log records decided and committed in one journal transaction. Larger batches
    /// amortise the commit; smaller ones answer callers sooner under light load.
    pub batch_commands_max: usize,
    /// Pause before re-taking a partition after a retriable failure.
    pub retry_backoff_ms: u64,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            batch_commands_max: 4096,
            retry_backoff_ms: 200,
        }
    }
}

/// Told about decisions once they are durable (e.g. the HTTP edge answering waiting callers).
pub trait DecisionListener: Send + Sync + 'static {
    /// Called after each committed batch, with every record of the batch that has an
    /// outcome, in log order. Must not block: it runs on the processor's task.
    fn committed(&self, decided: &[Decided]);

    /// What the runtime calls after each commit: [`committed`](Self::committed), with the
    /// log range the batch covered. Every batch is reported, even one whose records were
    /// all dead-lettered (`decided` empty), so a listener that tracks a partition's progress
    /// (the Redis edge state's sold-out gate) can tell a batch it never heard of from one
    /// with nothing in it. Must not block either.
    fn committed_range(&self, range: BatchRange, decided: &[Decided]) {
        let _ = range;
        self.committed(decided);
    }
}

/// The log records one committed batch covered: offsets `from_offset..next_offset` of
/// `partition`. A partition's batches are reported in log order and without holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRange {
    /// The partition.
    pub partition: u32,
    /// The first offset of the batch.
    pub from_offset: u64,
    /// The offset after its last record: the next batch's `from_offset`.
    pub next_offset: u64,
}

/// A log record and the outcome it was answered with.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The request's one outcome. For a duplicate delivery it is the earlier outcome.
    pub outcome: Arc<Outcome>,
    /// Where this delivery sat on the log; equal to `outcome.position` for the first one.
    pub delivery: LogPosition,
}

impl Decided {
    /// True for the delivery that made the decision, false for duplicates.
    pub fn is_first(&self) -> bool {
        self.outcome.position == self.delivery
    }
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The journal failed or fenced us.
    #[error(transparent)]
    Journal(#[from] turnstile_journal::Error),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] turnstile_log::Error),
    /// The Kafka log failed.
    #[error(transparent)]
    Kafka(#[from] turnstile_log_kafka::Error),
    /// The journal has decided further than the log holds: the log lost acknowledged
    /// records. Never continue from here; it needs an operator.
    #[error("partition {partition}: the journal has decided up to offset {journal_offset} but the log ends at {log_end}; the log lost records")]
    LogBehindJournal {
        /// The partition.
        partition: u32,
        /// Where the journal says decisions reached.
        journal_offset: u64,
        /// Where the log ends.
        log_end: u64,
    },
}

impl Error {
    /// Whether re-taking the partition can help.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Journal(e) => e.is_retriable(),
            Error::Log(e) => e.is_retriable(),
            Error::Kafka(e) => e.is_retriable(),
            Error::LogBehindJournal { .. } => false,
        }
    }
}

/// The single writer of one partition.
#[derive(Debug)]
pub struct PartitionProcessor<L: DecisionListener> {
    lease: PartitionLease,
    state: PartitionState,
    reader: PartitionReader,
    journal: Journal,
    listener: Arc<L>,
    config: ProcessorConfig,
}

impl<L: DecisionListener> PartitionProcessor<L> {
    /// Takes `partition` (fencing any earlier owner) and restores its state.
    pub async fn recover(
        partition: u32,
        reader: PartitionReader,
        journal: Journal,
        listener: Arc<L>,
        config: ProcessorConfig,
    ) -> Result<Self, Error> {
        let mut processor = PartitionProcessor {
            lease: PartitionLease {
                partition,
                epoch: 0,
                next_offset: 0,
            },
            state: PartitionState::new(partition),
            reader,
            journal,
            listener,
            config,
        };
        processor.retake().await?;
        Ok(processor)
    }

    /// Takes the partition (again) and reloads state from the journal, discarding memory
    /// that may be ahead of it (after a failed commit).
    pub async fn retake(&mut self) -> Result<(), Error> {
        let partition = self.lease.partition;
        let lease = self.journal.acquire(partition).await?;
        let log_end = self.reader.end_offset(partition).await?;
        if lease.next_offset > log_end {
            return Err(Error::LogBehindJournal {
                partition,
                journal_offset: lease.next_offset,
                log_end,
            });
        }
        self.state =
            PartitionState::restored(partition, &self.journal.load_outcomes(partition).await?);
        self.lease = lease;
        self.record_lag();
        tracing::info!(
            partition,
            epoch = lease.epoch,
            next_offset = lease.next_offset,
            decided = self.state.decided_count(),
            "partition recovered"
        );
        Ok(())
    }

    /// Sets the partition's consumer-lag gauge: the log's end minus the journal's next
    /// offset. On the embedded log only: its end is a memory read, while a Kafka broker's
    /// is a round trip per batch (not measured yet, rather than measured once and stale).
    fn record_lag(&self) {
        let PartitionReader::Embedded(log) = &self.reader else {
            return;
        };
        let lag = log
            .end_offset(self.lease.partition)
            .saturating_sub(self.lease.next_offset);
        metrics::global().consumer_lag.set(
            &[&self.lease.partition.to_string()],
            i64::try_from(lag).unwrap_or(i64::MAX),
        );
    }

    /// Decides everything on the log up to its end as of this call.
    pub async fn catch_up(&mut self) -> Result<(), Error> {
        let end = self.reader.end_offset(self.lease.partition).await?;
        while self.lease.next_offset < end {
            let records = self
                .reader
                .read_available(
                    self.lease.partition,
                    self.lease.next_offset,
                    self.config.batch_commands_max,
                )
                .await?;
            self.process(&records).await?;
        }
        Ok(())
    }

    /// Decides batch after batch until `shutdown` turns true or an error stops it.
    pub async fn run(&mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        loop {
            let records = self
                .reader
                .read(
                    self.lease.partition,
                    self.lease.next_offset,
                    self.config.batch_commands_max,
                    &mut shutdown,
                )
                .await?;
            if records.is_empty() {
                return Ok(());
            }
            self.process(&records).await?;
        }
    }

    /// Decides `records` (consecutive, starting at the lease's next offset) and commits them.
    async fn process(&mut self, records: &[LogRecord]) -> Result<(), Error> {
        let partition = self.lease.partition;
        let first = records.first().map_or(self.lease.next_offset, |r| r.offset);
        assert_eq!(
            first, self.lease.next_offset,
            "the log returned records out of order"
        );
        let mut batch = BatchCommit {
            partition,
            epoch: self.lease.epoch,
            from_offset: self.lease.next_offset,
            next_offset: self.lease.next_offset + records.len() as u64,
            ..BatchCommit::default()
        };
        let mut decided = Vec::with_capacity(records.len());
        let mut new_decisions = Vec::new();
        // (domain, status) of each new decision, counted once the commit holds.
        let mut decision_names = Vec::new();
        for (index, record) in records.iter().enumerate() {
            assert_eq!(record.offset, first + index as u64, "log offsets are dense");
            let delivery = LogPosition {
                partition,
                offset: record.offset,
            };
            match decode_record(record, partition, self.reader.partitions()) {
                Ok(envelope) => {
                    let applied = self.state.apply(&envelope, delivery);
                    let outcome = Arc::new(self.state.outcome(applied.decision));
                    if applied.is_new {
                        batch.outcomes.push(outcome.clone());
                        new_decisions.push(applied.decision);
                        decision_names.push((domain_name(&envelope), outcome.decision.status()));
                    }
                    decided.push(Decided { outcome, delivery });
                }
                Err(reason) => {
                    tracing::warn!(partition, offset = record.offset, %reason, "dead-lettered a log record");
                    batch.dead_letters.push(DeadLetter {
                        partition,
                        offset: record.offset,
                        reason,
                        payload: record.payload.to_vec(),
                    });
                }
            }
        }
        batch.views = self.state.changed_views(&new_decisions);
        let commit_started = std::time::Instant::now();
        self.journal.commit(&batch).await?;
        let commit_took = commit_started.elapsed();
        tracing::debug!(
            partition,
            records = records.len(),
            outcomes = batch.outcomes.len(),
            commit_us = commit_took.as_micros() as u64,
            "batch committed"
        );
        self.lease.next_offset = batch.next_offset;
        let metrics = metrics::global();
        let partition_label = partition.to_string();
        metrics
            .batch_records
            .observe(&[&partition_label], records.len() as f64);
        metrics
            .batch_commit
            .observe(&[&partition_label], commit_took.as_secs_f64());
        for (domain, status) in decision_names {
            metrics.decisions.inc(&[domain, status]);
        }
        self.record_lag();
        let range = BatchRange {
            partition,
            from_offset: batch.from_offset,
            next_offset: batch.next_offset,
        };
        self.listener.committed_range(range, &decided);
        self.reader.committed(partition, batch.next_offset);
        Ok(())
    }
}

/// Where a partition processor reads its records.
#[derive(Debug)]
pub enum PartitionReader {
    /// The embedded log, which holds every partition in this process.
    Embedded(EmbeddedLog),
    /// One partition of a Kafka topic.
    Kafka {
        /// The partition's reader, positioned by each read.
        reader: KafkaPartitionReader,
        /// The topic's partition count, for the placement check.
        partitions: u32,
        /// The consumer-group membership to commit lag offsets through, if any.
        group: Option<GroupHandle>,
    },
}

/// How long one Kafka read waits for records before checking for shutdown again.
const KAFKA_READ_WAIT_MS: u64 = 100;

/// Short waits [`PartitionReader::read_available`] allows a Kafka broker: 5 s in all.
pub const KAFKA_READS_AVAILABLE_MAX: u32 = 50;

impl PartitionReader {
    /// The log's partition count.
    pub fn partitions(&self) -> u32 {
        match self {
            PartitionReader::Embedded(log) => log.partitions(),
            PartitionReader::Kafka { partitions, .. } => *partitions,
        }
    }

    /// One past the last record of `partition`.
    pub async fn end_offset(&self, partition: u32) -> Result<u64, Error> {
        Ok(match self {
            PartitionReader::Embedded(log) => log.end_offset(partition),
            PartitionReader::Kafka { reader, .. } => reader.end_offset().await?,
        })
    }

    /// Records from `from` that are on the log now (at least one if `from` is before its
    /// end; empty only if a Kafka broker could not hand one over within
    /// [`KAFKA_READS_AVAILABLE_MAX`] short waits).
    pub async fn read_available(
        &mut self,
        partition: u32,
        from: u64,
        records_max: usize,
    ) -> Result<Vec<LogRecord>, Error> {
        let reader = match self {
            PartitionReader::Embedded(log) => {
                return Ok(log.read_now(partition, from, records_max)?)
            }
            PartitionReader::Kafka { reader, .. } => reader,
        };
        // The first fetch after opening or seeking may take a few waits to arrive.
        for _ in 0..KAFKA_READS_AVAILABLE_MAX {
            let records = reader.read(from, records_max, KAFKA_READ_WAIT_MS).await?;
            if !records.is_empty() {
                return Ok(records.into_iter().map(|r| r.into_log_record()).collect());
            }
        }
        Ok(Vec::new())
    }

    /// Records from `from`, waiting until there are some; empty once `shutdown` is true.
    async fn read(
        &mut self,
        partition: u32,
        from: u64,
        records_max: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<Vec<LogRecord>, Error> {
        let reader = match self {
            PartitionReader::Embedded(log) => {
                return Ok(log.read(partition, from, records_max, shutdown).await?)
            }
            PartitionReader::Kafka { reader, .. } => reader,
        };
        while !*shutdown.borrow() {
            // A Kafka read is cancel-safe: dropping it for shutdown loses no record.
            let records = tokio::select! {
                records = reader.read(from, records_max, KAFKA_READ_WAIT_MS) => records?,
                changed = shutdown.changed() => match changed {
                    Ok(()) => continue,
                    // The sender is gone: nobody can stop us any more, so stop now.
                    Err(_) => break,
                },
            };
            if !records.is_empty() {
                return Ok(records.into_iter().map(|r| r.into_log_record()).collect());
            }
        }
        Ok(Vec::new())
    }

    /// After a journal commit: on Kafka, record the progress for lag tools (never read
    /// back; the journal's offset is the truth).
    fn committed(&self, partition: u32, next_offset: u64) {
        if let PartitionReader::Kafka {
            group: Some(group), ..
        } = self
        {
            group.commit_offset(partition, next_offset);
        }
    }
}

/// The domain a command belongs to: the `domain` label of decisions.
fn domain_name(envelope: &Envelope) -> &'static str {
    match envelope.command {
        Command::Coupon(_) => "coupon",
        Command::Seats(_) => "seats",
        Command::Venue(_) => "venue",
        Command::Auction(_) => "auction",
    }
}

/// Parses a record read from `partition`; a record that is not a valid command for this
/// partition is dead-lettered with the returned reason. The audit's replay uses this too.
pub fn decode_record(
    record: &LogRecord,
    partition: u32,
    partitions: u32,
) -> Result<Envelope, String> {
    let envelope = Envelope::from_log_bytes(&record.payload)?;
    let owner = partition_for(&envelope.resource_id, partitions);
    if owner != partition {
        return Err(format!(
            "resource {:?} belongs to partition {owner}, not {partition}",
            envelope.resource_id
        ));
    }
    Ok(envelope)
}

/// One processor per partition of a log, supervised: a retriable failure re-takes the
/// partition (reloading state from the journal, because memory may be ahead of it).
#[derive(Debug)]
pub struct ProcessorGroup {
    tasks: JoinSet<Result<(), Error>>,
}

impl ProcessorGroup {
    /// Recovers every partition and decides everything already on the log, then starts
    /// the processors. When this returns, every record logged before the call is decided.
    pub async fn start<L: DecisionListener>(
        log: EmbeddedLog,
        journal: Journal,
        listener: Arc<L>,
        config: ProcessorConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, Error> {
        let mut tasks = JoinSet::new();
        for partition in 0..log.partitions() {
            let mut processor = PartitionProcessor::recover(
                partition,
                PartitionReader::Embedded(log.clone()),
                journal.clone(),
                listener.clone(),
                config.clone(),
            )
            .await?;
            processor.catch_up().await?;
            tasks.spawn(supervise(processor, shutdown.clone()));
        }
        Ok(ProcessorGroup { tasks })
    }

    /// Waits for every processor to stop; the first error, if any.
    pub async fn join(mut self) -> Result<(), Error> {
        let mut first_error = None;
        while let Some(result) = self.tasks.join_next().await {
            let result = result.expect("processor tasks do not panic");
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs `processor` until `shutdown`, re-taking its partition after retriable failures.
pub(crate) async fn supervise<L: DecisionListener>(
    mut processor: PartitionProcessor<L>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let partition = processor.lease.partition;
    let mut retake = false;
    loop {
        let result = if retake {
            match processor.retake().await {
                Ok(()) => processor.run(shutdown.clone()).await,
                Err(e) => Err(e),
            }
        } else {
            processor.run(shutdown.clone()).await
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_retriable() && !*shutdown.borrow() => {
                tracing::warn!(partition, error = %e, "partition processor failed; re-taking the partition");
                tokio::time::sleep(Duration::from_millis(processor.config.retry_backoff_ms)).await;
                retake = true;
            }
            // Another processor took the partition (a rebalance, or we were a zombie): our
            // last batch rolled back, and the partition is in its hands now.
            Err(e @ Error::Journal(turnstile_journal::Error::Fenced { .. })) => {
                tracing::warn!(partition, error = %e, "partition taken over elsewhere; stopping here");
                return Err(e);
            }
            Err(e) => {
                tracing::error!(partition, error = %e, "partition processor stopped");
                return Err(e);
            }
        }
    }
}
