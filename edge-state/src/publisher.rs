//! The processors' side: every committed batch, published to Redis in one round trip.
//!
//! [`PublisherHandle`] is the processors' [`DecisionListener`]. It must not block (it runs
//! on the processor's task, between two commits), so it only queues the batch — a few
//! `Arc` clones — on a bounded queue, and [`Publisher::run`] sends it. One pipeline per
//! round trip carries, for each queued batch in order:
//! 1. `EVAL publish_batch.lua`: the gate's state (partition progress, the campaigns'
//!    decided sets, issued counts and sold-out flags), atomically;
//! 2. `XADD ns:outcomes` per delivery: what the edges' subscribers read, after the gate's
//!    state so an edge woken by an outcome finds Redis already knowing it;
//! 3. `SET ns:replay:… EX` per new outcome: the replay cache.
//!
//! The listener is called only after the journal commit, so nothing here is ever ahead of
//! the journal (rule 12). A batch is published at most once per attempt and retried for
//! `publish_retry_ms_max`; a retry may add its stream entries twice, which the edges'
//! feeds absorb (they are idempotent per outcome). A batch that is never published — the
//! process died after the commit, the queue was full, Redis stayed down — loses only
//! speed: its callers get 202 and read the journal, and the gate sees the hole.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, watch};
use turnstile_journal::outcome_json;
use turnstile_processors::runtime::{BatchRange, Decided, DecisionListener};
use turnstile_schemas::{Decision, Rejection};

use crate::keys::{request_hash, Keys};
use crate::{connection_manager, Backoff, Error, RedisConfig};

const PUBLISH_BATCH_LUA: &str = include_str!("lua/publish_batch.lua");

/// One committed batch waiting to be published.
#[derive(Debug)]
struct QueuedBatch {
    /// `None` when told through [`DecisionListener::committed`] without a range: such a
    /// batch is published for the waiting callers only, never to the gate.
    range: Option<BatchRange>,
    decided: Vec<Decided>,
}

/// Counters of a publisher, shared with its handles.
#[derive(Debug, Default)]
struct Counters {
    batches_published: AtomicU64,
    outcomes_published: AtomicU64,
    batches_dropped: AtomicU64,
}

/// The processors' listener: queues each committed batch for the [`Publisher`].
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct PublisherHandle {
    queue: mpsc::Sender<QueuedBatch>,
    counters: Arc<Counters>,
}

impl PublisherHandle {
    /// Batches published so far.
    pub fn batches_published(&self) -> u64 {
        self.counters.batches_published.load(Ordering::Relaxed)
    }

    /// Deliveries published so far.
    pub fn outcomes_published(&self) -> u64 {
        self.counters.outcomes_published.load(Ordering::Relaxed)
    }

    /// Batches given up on (queue full, or Redis down for longer than
    /// `publish_retry_ms_max`).
    pub fn batches_dropped(&self) -> u64 {
        self.counters.batches_dropped.load(Ordering::Relaxed)
    }

    fn enqueue(&self, batch: QueuedBatch) {
        if let Err(e) = self.queue.try_send(batch) {
            // Never block a processor on Redis: the callers of this batch time out into
            // 202 and read the journal; the gate sees the hole in the partition's progress.
            self.counters
                .batches_dropped
                .fetch_add(1, Ordering::Relaxed);
            let (range, why) = match e {
                mpsc::error::TrySendError::Full(b) => (b.range, "the publish queue is full"),
                mpsc::error::TrySendError::Closed(b) => (b.range, "the publisher stopped"),
            };
            tracing::warn!(
                ?range,
                why,
                "dropped a committed batch instead of publishing it to Redis"
            );
        }
    }
}

impl DecisionListener for PublisherHandle {
    fn committed(&self, decided: &[Decided]) {
        self.enqueue(QueuedBatch {
            range: None,
            decided: decided.to_vec(),
        });
    }

    fn committed_range(&self, range: BatchRange, decided: &[Decided]) {
        self.enqueue(QueuedBatch {
            range: Some(range),
            decided: decided.to_vec(),
        });
    }
}

/// Publishes committed batches to Redis; see the module docs.
pub struct Publisher {
    config: RedisConfig,
    keys: Keys,
    connection: ConnectionManager,
    queue: mpsc::Receiver<QueuedBatch>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Connects (failing at once, with how to start Redis, when it is not reachable) and
    /// returns the listener to give the processors and the service to run.
    pub async fn build(config: &RedisConfig) -> Result<(PublisherHandle, Publisher), Error> {
        config.validate()?;
        let connection = connection_manager(config).await?;
        let (sender, receiver) = mpsc::channel(config.publish_queue_batches_max);
        let counters = Arc::new(Counters::default());
        let handle = PublisherHandle {
            queue: sender,
            counters: counters.clone(),
        };
        let publisher = Publisher {
            config: config.clone(),
            keys: Keys::new(&config.namespace),
            connection,
            queue: receiver,
            counters,
        };
        Ok((handle, publisher))
    }

    /// Publishes queued batches until `shutdown` turns true (or every handle is gone),
    /// then publishes what was queued before that and returns. Stop the processors first,
    /// so that their last batches are in the queue.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut stopping = false;
        loop {
            let mut trip = Vec::new();
            if stopping {
                match self.queue.try_recv() {
                    Ok(batch) => trip.push(batch),
                    Err(_) => return,
                }
            } else {
                tokio::select! {
                    batch = self.queue.recv() => match batch {
                        Some(batch) => trip.push(batch),
                        None => return,
                    },
                    // A dropped sender also means stop.
                    _ = shutdown.wait_for(|stop| *stop) => {
                        stopping = true;
                        self.queue.close();
                        continue;
                    }
                }
            }
            while trip.len() < self.config.publish_batches_per_trip_max {
                match self.queue.try_recv() {
                    Ok(batch) => trip.push(batch),
                    Err(_) => break,
                }
            }
            self.publish_with_retries(&trip).await;
        }
    }

    async fn publish_with_retries(&mut self, trip: &[QueuedBatch]) {
        let pipeline = self.pipeline(trip);
        let started = Instant::now();
        let mut backoff = Backoff::new(&self.config);
        loop {
            let result: Result<(), Error> = pipeline
                .query_async(&mut self.connection)
                .await
                .map_err(Error::from);
            match result {
                Ok(()) => {
                    let outcomes: usize = trip.iter().map(|b| b.decided.len()).sum();
                    self.counters
                        .batches_published
                        .fetch_add(trip.len() as u64, Ordering::Relaxed);
                    self.counters
                        .outcomes_published
                        .fetch_add(outcomes as u64, Ordering::Relaxed);
                    return;
                }
                Err(e)
                    if e.is_retriable()
                        && started.elapsed().as_millis()
                            < u128::from(self.config.publish_retry_ms_max) =>
                {
                    tracing::warn!(error = %e, "publishing to Redis failed; retrying");
                    tokio::time::sleep(backoff.next()).await;
                }
                Err(e) => {
                    self.counters
                        .batches_dropped
                        .fetch_add(trip.len() as u64, Ordering::Relaxed);
                    let ranges: Vec<_> = trip.iter().map(|b| b.range).collect();
                    tracing::error!(error = %e, ?ranges, "gave up publishing committed batches to Redis; their callers get 202 and the journal answers");
                    return;
                }
            }
        }
    }

    /// One pipeline for the whole trip; see the module docs for what it holds.
    fn pipeline(&self, trip: &[QueuedBatch]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        let stream = self.keys.outcomes();
        for batch in trip {
            if let Some(range) = batch.range {
                self.gate_script(&mut pipe, range, &batch.decided);
            }
            // One JSON text per outcome, shared by its stream entry and its replay entry.
            let mut texts: HashMap<*const turnstile_schemas::Outcome, String> = HashMap::new();
            for delivery in &batch.decided {
                let text = texts
                    .entry(Arc::as_ptr(&delivery.outcome))
                    .or_insert_with(|| outcome_json(&delivery.outcome));
                pipe.cmd("XADD")
                    .arg(&stream)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(self.config.stream_entries_max)
                    .arg("*")
                    .arg("d")
                    .arg(delivery.delivery.outcome_id())
                    .arg("o")
                    .arg(text.as_str())
                    .ignore();
                if delivery.is_first() {
                    let outcome = &delivery.outcome;
                    pipe.cmd("SET")
                        .arg(self.keys.replay(&outcome.resource_id, &outcome.request_id))
                        .arg(text.as_str())
                        .arg("EX")
                        .arg(self.config.replay_ttl_s)
                        .ignore();
                }
            }
        }
        pipe
    }

    /// Adds `EVAL publish_batch.lua` for one batch (arguments as the script states).
    fn gate_script(&self, pipe: &mut redis::Pipeline, range: BatchRange, decided: &[Decided]) {
        let cmd = pipe
            .cmd("EVAL")
            .arg(PUBLISH_BATCH_LUA)
            .arg(0)
            .arg(self.keys.partition(range.partition))
            .arg(format!("{}:campaign:", self.keys.namespace()))
            .arg(format!("{}:decided:", self.keys.namespace()))
            .arg(range.partition)
            .arg(range.from_offset)
            .arg(range.next_offset)
            .arg(self.config.decided_ttl_s);
        for (campaign, summary) in campaign_summaries(decided) {
            cmd.arg(campaign)
                .arg(summary.capacity)
                .arg(summary.issued)
                .arg(u8::from(summary.rejected_sold_out))
                .arg(summary.members.len());
            for member in &summary.members {
                cmd.arg(&member[..]);
            }
        }
        cmd.ignore();
    }
}

/// What the journal says about one partition, to rebuild its gate state in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSeed {
    /// The partition.
    pub partition: u32,
    /// The journal's next offset for it: everything before is decided.
    pub next_offset: u64,
    /// Its campaigns.
    pub campaigns: Vec<CampaignSeed>,
}

/// One campaign of a [`PartitionSeed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignSeed {
    /// Its id.
    pub campaign_id: String,
    /// Coupons it has.
    pub capacity: u32,
    /// Coupons issued.
    pub issued: u32,
    /// Every request id decided on it.
    pub request_ids: Vec<String>,
}

impl Publisher {
    /// The partitions (of `(partition, journal next_offset)`) whose gate state in Redis
    /// does not match the journal: a hole in what was published (a gap), or progress
    /// other than the journal's (Redis restarted empty, or it is a new namespace on an old
    /// data directory). Their gate reads the journal until they are [`reseed`]ed.
    ///
    /// [`reseed`]: Self::reseed
    pub async fn stale_partitions(&mut self, partitions: &[(u32, u64)]) -> Result<Vec<u32>, Error> {
        let mut stale = Vec::new();
        for &(partition, next_offset) in partitions {
            let (known, gap): (Option<u64>, Option<u8>) = redis::cmd("HMGET")
                .arg(self.keys.partition(partition))
                .arg("next_offset")
                .arg("gap")
                .query_async(&mut self.connection)
                .await?;
            let matches = gap.is_none() && known.unwrap_or(0) == next_offset;
            if !matches {
                stale.push(partition);
            }
        }
        Ok(stale)
    }

    /// Rebuilds the gate state of these partitions from the journal. Only the partition's
    /// single writer may do this, before it publishes anything: a batch published while a
    /// reseed runs could be overwritten. Edges reading meanwhile see the old gap (it is
    /// cleared last) and keep reading the journal.
    pub async fn reseed(&mut self, seeds: &[PartitionSeed]) -> Result<(), Error> {
        const MEMBERS_PER_SADD_MAX: usize = 10_000;
        for seed in seeds {
            let progress = self.keys.partition(seed.partition);
            // Untrusted while rebuilding, whatever was there.
            redis::cmd("HSET")
                .arg(&progress)
                .arg("gap")
                .arg(1)
                .query_async::<()>(&mut self.connection)
                .await?;
            for campaign in &seed.campaigns {
                let hash = self.keys.campaign(&campaign.campaign_id);
                let decided = self.keys.decided(&campaign.campaign_id);
                let mut members: Vec<[u8; 8]> = campaign
                    .request_ids
                    .iter()
                    .map(|r| request_hash(r))
                    .collect();
                members.sort_unstable();
                members.dedup();
                let mut pipe = redis::pipe();
                pipe.del(&hash).ignore().del(&decided).ignore();
                for chunk in members.chunks(MEMBERS_PER_SADD_MAX) {
                    let chunk: Vec<&[u8]> = chunk.iter().map(|m| &m[..]).collect();
                    pipe.sadd(&decided, chunk).ignore();
                }
                pipe.cmd("HSET")
                    .arg(&hash)
                    .arg("partition")
                    .arg(seed.partition)
                    .arg("capacity")
                    .arg(campaign.capacity)
                    .arg("issued")
                    .arg(campaign.issued)
                    .arg("decided")
                    .arg(members.len())
                    .ignore();
                if campaign.issued >= campaign.capacity {
                    pipe.hset(&hash, "sold_out", 1).ignore();
                }
                if !members.is_empty() {
                    pipe.expire(&decided, self.config.decided_ttl_s as i64)
                        .ignore();
                }
                pipe.query_async::<()>(&mut self.connection).await?;
            }
            redis::pipe()
                .atomic()
                .hset(&progress, "next_offset", seed.next_offset)
                .ignore()
                .hdel(&progress, "gap")
                .ignore()
                .query_async::<()>(&mut self.connection)
                .await?;
            tracing::info!(
                partition = seed.partition,
                next_offset = seed.next_offset,
                campaigns = seed.campaigns.len(),
                "rebuilt the partition's sold-out gate in Redis from the journal"
            );
        }
        Ok(())
    }
}

/// What one batch tells the gate about one campaign.
#[derive(Debug, Default, PartialEq, Eq)]
struct CampaignSummary {
    /// Its capacity, when the batch created it (else 0).
    capacity: u32,
    /// The highest coupon sequence the batch granted (else 0).
    issued: u32,
    /// Whether a claim was rejected sold out.
    rejected_sold_out: bool,
    /// [`request_hash`] of every request the batch decided first.
    members: Vec<[u8; 8]>,
}

/// Groups a batch's new decisions by campaign, in order of first appearance.
fn campaign_summaries(decided: &[Decided]) -> Vec<(&str, CampaignSummary)> {
    let mut order: Vec<(&str, CampaignSummary)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for delivery in decided.iter().filter(|d| d.is_first()) {
        let outcome = &delivery.outcome;
        let campaign = outcome.resource_id.as_str();
        let at = *index.entry(campaign).or_insert_with(|| {
            order.push((campaign, CampaignSummary::default()));
            order.len() - 1
        });
        let summary = &mut order[at].1;
        summary.members.push(request_hash(&outcome.request_id));
        match &outcome.decision {
            Decision::CampaignCreated { spec } => summary.capacity = spec.capacity,
            Decision::CouponGranted { coupon } => {
                if let Some(sequence) = coupon_sequence(campaign, &coupon.coupon_id) {
                    summary.issued = summary.issued.max(sequence);
                }
            }
            Decision::Rejected {
                reason: Rejection::SoldOut,
            } => summary.rejected_sold_out = true,
            // The shared gate knows campaigns only.
            _ => {}
        }
    }
    order
}

/// The issue number of coupon `<campaign>-<n>`: coupons are numbered from 1 without gaps,
/// so the highest number granted is the count issued, and taking the maximum makes a
/// republished batch count nothing twice.
pub fn coupon_sequence(campaign_id: &str, coupon_id: &str) -> Option<u32> {
    coupon_id
        .strip_prefix(campaign_id)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn coupon_numbers_come_from_their_ids() {
        assert_eq!(coupon_sequence("spring-drop", "spring-drop-17"), Some(17));
        assert_eq!(coupon_sequence("spring-drop", "spring-17"), None);
        assert_eq!(coupon_sequence("a", "a-x"), None);
    }
}
