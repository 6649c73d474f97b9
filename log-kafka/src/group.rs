//! [`KafkaGroupMember`]: a processor process's membership in the consumer group, which
//! spreads the partitions over the processes, reported as [`GroupEvent`]s.
//!
//! # What a caller must do
//!
//! The group only *suggests* who owns a partition; the journal's epoch *decides* (see
//! `docs/exactly-once.md`, rules 4, 10, 14). Kafka's rebalances and the journal's fence
//! are independent, so every step below stays safe if two processes briefly both believe
//! they own a partition.
//!
//! On [`GroupEvent::Assigned`], for each partition:
//! 1. Take it in the journal (bump its epoch). This fences the previous owner, even one
//!    that has not yet seen its revocation.
//! 2. Load its state from the journal.
//! 3. Open a [`crate::KafkaPartitionReader`] at the journal's `next_offset` (never at a
//!    Kafka committed offset) and check the offset is not past
//!    [`crate::KafkaPartitionReader::end_offset`].
//! 4. Decide and commit batches as usual; after each commit, optionally
//!    [`GroupHandle::commit_offset`] for lag display.
//!
//! On [`GroupEvent::Revoked`], for each partition:
//! 1. Start no new batch.
//! 2. A batch in flight may be finished (its journal commit either lands before the new
//!    owner takes the partition, or is fenced and rolled back) or abandoned (the new owner
//!    decides those records again from the journal's offset). Both are correct; finishing
//!    spares the new owner the work, abandoning frees the partition sooner. Tell waiting
//!    callers only what committed.
//! 3. Drop the partition's state and reader. If the partition is assigned again later,
//!    start over at step 1 of Assigned: another process may have committed in between,
//!    so memory from before is stale.
//!
//! When the event channel closes, membership is over (shutdown, or a fatal error that
//! [`KafkaGroupMember::run`] returns): treat every partition still held as revoked. The
//! member sends a final `Revoked` for them before closing the channel when it can.
//!
//! Keep receiving events promptly: the member delivers them from librdkafka's rebalance
//! callback and waits while the channel ([`GROUP_EVENT_QUEUE_MAX`]) is full, and a member
//! that stops serving the group for `max.poll.interval.ms` (5 minutes) is removed from it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::config::KafkaLogConfig;
use crate::Error;

/// Capacity of the event channel [`KafkaGroupMember::new`] returns. A rebalance produces
/// one or two events, so a handful is plenty; the bound makes a stuck receiver stall the
/// member (and so eventually cost it its membership) instead of growing a queue.
pub const GROUP_EVENT_QUEUE_MAX: usize = 16;

/// How long one poll of the member's consumer waits; bounds how late shutdown and offset
/// commits are noticed.
const MEMBER_POLL_MS: u64 = 100;

/// A change of this process's partitions. Each event is a delta: the partitions it
/// names were added to, or removed from, what the member held before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// These partitions are now this process's to process (ascending).
    Assigned(Vec<u32>),
    /// These partitions are no longer this process's (ascending); includes partitions
    /// whose assignment was lost (the session timed out), which another process may
    /// already be processing.
    Revoked(Vec<u32>),
}

/// State shared by the member's thread, its librdkafka callbacks and its handles.
#[derive(Default)]
struct Shared {
    /// The partitions this member holds, kept by the rebalance callbacks.
    assigned: Mutex<BTreeSet<u32>>,
    /// The latest `next_offset` asked to be committed per partition, not yet sent.
    /// Bounded by the partition count; a newer request replaces an older one.
    pending_commits: Mutex<BTreeMap<u32, u64>>,
}

/// The mutexes guard plain collections that no code leaves half-updated, so a panic
/// elsewhere while one was held does not make its content wrong.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// librdkafka's callbacks for the member's consumer. They run on the member's thread,
/// inside `poll` (and inside the consumer's close when it leaves).
struct MemberContext {
    topic: Arc<str>,
    events: mpsc::Sender<GroupEvent>,
    shared: Arc<Shared>,
}

impl MemberContext {
    fn partitions_in(&self, list: &TopicPartitionList) -> Vec<u32> {
        let mut partitions: Vec<u32> = list
            .elements_for_topic(&self.topic)
            .iter()
            .map(|element| {
                u32::try_from(element.partition()).expect("an assigned partition is not negative")
            })
            .collect();
        partitions.sort_unstable();
        partitions
    }

    fn send(&self, event: GroupEvent) {
        // The callbacks run on the member's own thread (see `KafkaGroupMember::run`), never
        // on an async worker, so waiting here is allowed; it is the backpressure the module
        // docs describe.
        if self.events.blocking_send(event).is_err() {
            tracing::debug!("group event dropped: nobody receives the member's events");
        }
    }
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Read here: librdkafka resets the flag when the revocation is carried out.
        if let Rebalance::Revoke(list) = rebalance {
            tracing::info!(
                partitions = ?self.partitions_in(list),
                lost = consumer.assignment_lost(),
                "kafka group: partitions revoked"
            );
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(list) => {
                let partitions = self.partitions_in(list);
                if partitions.is_empty() {
                    return;
                }
                // The member only tracks ownership; the processors read through their own
                // readers. Pausing stops this consumer from fetching records nobody reads.
                if let Err(e) = consumer.pause(list) {
                    tracing::warn!(error = %e, "kafka group: pausing assigned partitions failed; the member fetches records it drops");
                }
                lock(&self.shared.assigned).extend(&partitions);
                tracing::info!(?partitions, "kafka group: partitions assigned");
                self.send(GroupEvent::Assigned(partitions));
            }
            Rebalance::Revoke(list) => {
                let partitions = self.partitions_in(list);
                if partitions.is_empty() {
                    return;
                }
                {
                    let mut assigned = lock(&self.shared.assigned);
                    let mut pending = lock(&self.shared.pending_commits);
                    for partition in &partitions {
                        assigned.remove(partition);
                        pending.remove(partition);
                    }
                }
                self.send(GroupEvent::Revoked(partitions));
            }
            Rebalance::Error(e) => {
                tracing::warn!(error = %e, "kafka group: rebalance failed; librdkafka retries");
            }
        }
    }

    /// rdkafka 0.39 does not call this for manual asynchronous commits
    /// (fede1024/rust-rdkafka#856): until that is fixed librdkafka logs a failed commit
    /// itself (a `COMMITFAIL` warning, through rdkafka's tracing bridge). Either way a
    /// failure is logged and nothing else happens: the offsets are for display only.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::warn!(
                error = %e,
                partitions = ?self.partitions_in(offsets),
                "kafka group: committing offsets for lag display failed; the journal's offsets are unaffected"
            );
        }
    }
}

/// One processor process's membership in the consumer group.
///
/// [`KafkaGroupMember::new`] creates it with the receiving end of its [`GroupEvent`]s;
/// [`KafkaGroupMember::run`] joins the group and serves it until shutdown;
/// [`KafkaGroupMember::handle`] gives cheap handles for offset commits. The module docs
/// say what a caller must do on each event.
///
/// Partitions are spread with the cooperative-sticky assignor, so a rebalance moves only
/// the partitions that change owner: a process keeps, without recovering again, the
/// partitions it keeps.
pub struct KafkaGroupMember {
    consumer: BaseConsumer<MemberContext>,
    topic: Arc<str>,
    shared: Arc<Shared>,
    partitions: u32,
}

impl fmt::Debug for KafkaGroupMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaGroupMember")
            .field("topic", &self.topic)
            .field("assigned", &*lock(&self.shared.assigned))
            .finish_non_exhaustive()
    }
}

impl KafkaGroupMember {
    /// Creates the member's consumer. It joins the group only when [`KafkaGroupMember::run`]
    /// runs, so nothing is assigned to a member nobody serves.
    pub fn new(config: &KafkaLogConfig) -> Result<(Self, mpsc::Receiver<GroupEvent>), Error> {
        config.validate()?;
        let (events, receiver) = mpsc::channel(GROUP_EVENT_QUEUE_MAX);
        let shared = Arc::new(Shared::default());
        let topic: Arc<str> = config.topic.as_str().into();
        let context = MemberContext {
            topic: Arc::clone(&topic),
            events,
            shared: Arc::clone(&shared),
        };
        let consumer = config
            .member_config()
            .create_with_context(context)
            .map_err(|e| Error::kafka("creating the group member", e))?;
        let member = KafkaGroupMember {
            consumer,
            topic,
            shared,
            partitions: config.partitions,
        };
        Ok((member, receiver))
    }

    /// A cheap, cloneable handle for offset commits and the current assignment.
    pub fn handle(&self) -> GroupHandle {
        GroupHandle {
            shared: Arc::clone(&self.shared),
            partitions: self.partitions,
        }
    }

    /// Joins the group and serves it (heartbeats run on librdkafka's threads; rebalances
    /// and commits are served here) until `shutdown` turns true, then leaves it: the
    /// remaining partitions are revoked (a final [`GroupEvent::Revoked`]), the coordinator
    /// is told at once so the other members take them over without waiting for
    /// `session_timeout_ms`, and the event channel closes.
    ///
    /// Runs on a blocking thread of its own, because librdkafka's callbacks block.
    /// Returns an error only for what ends membership: failing to subscribe, or a fatal
    /// librdkafka error. Transient errors are logged.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        match tokio::task::spawn_blocking(move || self.serve(shutdown)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Stopped),
        }
    }

    fn serve(self, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
        self.consumer
            .subscribe(&[&self.topic])
            .map_err(|e| Error::kafka("joining the consumer group", e))?;
        let result = loop {
            if *shutdown.borrow() {
                break Ok(());
            }
            match self.consumer.poll(Duration::from_millis(MEMBER_POLL_MS)) {
                None => {}
                Some(Ok(message)) => {
                    // Fetched between an assignment and its pause; nobody reads through
                    // the member.
                    tracing::trace!(
                        partition = message.partition(),
                        "kafka group: dropped a record fetched by the member"
                    );
                }
                Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    break Err(Error::kafka("taking part in the consumer group", e));
                }
                Some(Err(e)) => {
                    // rdkafka already logs it as a client error; this is for context.
                    tracing::debug!(error = %e, "kafka group: transient consumer error");
                }
            }
            self.commit_pending();
        };
        // Dropping the consumer closes it: librdkafka revokes the assignment through the
        // rebalance callback (the final Revoked event) and sends LeaveGroup. The channel
        // closes when the context, and with it the sender, is dropped.
        drop(self.consumer);
        result
    }

    /// Sends the offsets handles asked for, for partitions this member still holds.
    fn commit_pending(&self) {
        let pending = std::mem::take(&mut *lock(&self.shared.pending_commits));
        if pending.is_empty() {
            return;
        }
        let assigned = lock(&self.shared.assigned).clone();
        let mut list = TopicPartitionList::new();
        for (partition, next_offset) in pending {
            // Committing for a partition that moved on would let an old owner overwrite
            // the new owner's progress on the lag display.
            if !assigned.contains(&partition) {
                continue;
            }
            let (Ok(partition), Ok(next_offset)) =
                (i32::try_from(partition), i64::try_from(next_offset))
            else {
                continue;
            };
            if let Err(e) =
                list.add_partition_offset(&self.topic, partition, Offset::Offset(next_offset))
            {
                tracing::warn!(error = %e, "kafka group: could not build an offset commit");
            }
        }
        if list.count() == 0 {
            return;
        }
        // Asynchronous, so that a slow coordinator never keeps this thread from serving
        // rebalances; the result is logged (see `MemberContext::commit_callback`).
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, "kafka group: committing offsets for lag display failed; the journal's offsets are unaffected");
        }
    }
}

/// A cheap handle to a [`KafkaGroupMember`]: lag-display commits and the assignment.
#[derive(Clone)]
pub struct GroupHandle {
    shared: Arc<Shared>,
    partitions: u32,
}

impl fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupHandle")
            .field("assigned", &self.assigned())
            .finish_non_exhaustive()
    }
}

impl GroupHandle {
    /// Records `next_offset` (the offset after the last record decided) as the group's
    /// committed offset of `partition`, so lag tools show the processors' progress.
    ///
    /// For display only: the journal's offset is the truth, and nothing reads this back
    /// for correctness. The call never blocks and never fails: the member sends the
    /// latest offset per partition on its next poll (within about 100 ms) as an
    /// asynchronous commit, and only for partitions it still holds; failures are logged.
    ///
    /// Commits go through the member because Kafka accepts offset commits for a group
    /// with live members only from a member of the current generation.
    ///
    /// # Panics
    ///
    /// If `partition` is not below the configured partition count: a caller bug.
    pub fn commit_offset(&self, partition: u32, next_offset: u64) {
        assert!(
            partition < self.partitions,
            "commit_offset of partition {partition}, but the log has {} partitions",
            self.partitions
        );
        lock(&self.shared.pending_commits).insert(partition, next_offset);
    }

    /// The partitions the member holds now (ascending), as of the last event it sent.
    pub fn assigned(&self) -> Vec<u32> {
        lock(&self.shared.assigned).iter().copied().collect()
    }
}
