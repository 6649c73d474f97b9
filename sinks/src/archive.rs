//! The archive sink: keeps the back office's table of issued coupons (`archive_coupons`:
//! active, redeemed, expired) in step with the outbox.
//!
//! Unlike a notification, the archive lives in the journal's own database, so each step
//! applies a partition's outbox entries and saves the sink's progress in **one**
//! transaction (`Journal::archive_batch`): a crash loses the whole step or none of it, and
//! every outcome takes effect in the archive exactly once. The writes are idempotent as
//! well (an issued coupon is inserted if absent, a state changes only from `active`), so
//! the table stays right even if progress were ever reset.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::watch;
use turnstile_journal::Journal;

use crate::Error;

/// The sink's name in the journal's progress table.
pub const ARCHIVE_SINK: &str = "archive";

/// How often and how much the archive sink carries.
#[derive(Debug, Clone)]
pub struct ArchiveConfig {
    /// Pause between passes when the outbox has nothing new.
    pub poll_interval_ms: u64,
    /// Most outbox entries of one partition applied per transaction.
    pub batch_outcomes_max: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            poll_interval_ms: 200,
            batch_outcomes_max: 1_000,
        }
    }
}

/// Applies the outbox to the archive.
#[derive(Debug)]
pub struct ArchiveSink {
    config: ArchiveConfig,
    journal: Journal,
    partitions: u32,
}

impl ArchiveSink {
    /// A sink over the outbox of `partitions` partitions in `journal`.
    pub fn new(config: ArchiveConfig, journal: Journal, partitions: u32) -> Self {
        ArchiveSink {
            config,
            journal,
            partitions,
        }
    }

    /// Carries the outbox until `shutdown` turns true. Failures are logged and retried.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        while !*shutdown.borrow() {
            match self.apply_pending().await {
                Ok(applied) => tracing::debug!(applied, "archive pass"),
                Err(e) => {
                    tracing::warn!(error = %e, retriable = e.is_retriable(), "archiving failed; retrying")
                }
            }
            // Rest after every pass, full batch or not: the processors' commits share the
            // database, and during a drop they come first. A backlog waits in the outbox,
            // durable, and is carried at up to a batch per partition per pause.
            if !crate::rest(pause, &mut shutdown).await {
                return;
            }
        }
    }

    /// One step per partition; returns how many outbox entries it applied.
    pub async fn apply_pending(&mut self) -> Result<usize, Error> {
        let progress: HashMap<u32, u64> = self
            .journal
            .sink_progress(ARCHIVE_SINK)
            .await?
            .into_iter()
            .collect();
        let mut applied = 0;
        for partition in 0..self.partitions {
            let from = progress.get(&partition).copied().unwrap_or(0);
            let outcomes = self
                .journal
                .outbox_from(partition, from, self.config.batch_outcomes_max)
                .await?;
            let Some(last) = outcomes.last() else {
                continue;
            };
            let next_offset = last.position.offset + 1;
            self.journal
                .archive_batch(ARCHIVE_SINK, partition, &outcomes, next_offset)
                .await?;
            applied += outcomes.len();
        }
        Ok(applied)
    }
}
