//! The mailbox sink: one e-mail file per granted coupon, in a local directory.
//!
//! Each message is written to `<dir>/<outcome_id>.eml` through a temporary file and a
//! rename, so a message is either whole or absent, and delivering an outcome twice (after a
//! crash before progress was saved) rewrites the same file with the same bytes: one
//! message per outcome, whatever crashes.
//!
//! Known limit: files are not fsync'd before progress is saved, so a power loss (not a
//! process crash) may lose the last messages; the SES notifier will not have this gap.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::SecondsFormat;
use tokio::sync::watch;
use turnstile_journal::Journal;
use turnstile_schemas::{Coupon, Decision, Outcome};

use crate::Error;

/// The sink's name in the journal's progress table.
const SINK_NAME: &str = "mailbox";

/// Where and how often the mailbox sink delivers.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// Directory the `.eml` files go to (created if missing).
    pub dir: PathBuf,
    /// Pause between passes when the outbox has nothing new.
    pub poll_interval_ms: u64,
    /// Most outbox entries read and delivered per step before progress is saved.
    pub batch_outcomes_max: u32,
}

impl MailboxConfig {
    /// Defaults for a mailbox in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        MailboxConfig {
            dir: dir.into(),
            poll_interval_ms: 200,
            batch_outcomes_max: 1_000,
        }
    }
}

/// Delivers coupon notifications from the outbox to the mailbox directory.
#[derive(Debug)]
pub struct MailboxSink {
    config: MailboxConfig,
    journal: Journal,
    partitions: u32,
    /// Campaign id → (title, time zone), for message text; loaded when first needed.
    campaigns: HashMap<String, (String, chrono_tz::Tz)>,
}

impl MailboxSink {
    /// A sink over the outbox of `partitions` partitions in `journal`.
    pub fn new(config: MailboxConfig, journal: Journal, partitions: u32) -> Self {
        MailboxSink {
            config,
            journal,
            partitions,
            campaigns: HashMap::new(),
        }
    }

    /// Delivers until `shutdown` turns true. Failures are logged and retried next pass.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Err(e) = std::fs::create_dir_all(&self.config.dir) {
            tracing::error!(dir = %self.config.dir.display(), error = %e, "cannot create the mailbox; the mailbox sink is not running");
            return;
        }
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        while !*shutdown.borrow() {
            match self.deliver_pending().await {
                Ok(0) => {}
                Ok(delivered) => {
                    tracing::debug!(delivered, "mailbox delivered");
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retriable = e.is_retriable(), "mailbox delivery failed; retrying")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                changed = shutdown.changed() => {
                    // A dropped sender means the owner is gone: stop rather than spin.
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One pass over every partition's outbox; returns how many outcomes it carried.
    pub async fn deliver_pending(&mut self) -> Result<usize, Error> {
        let progress: HashMap<u32, u64> = self
            .journal
            .sink_progress(SINK_NAME)
            .await?
            .into_iter()
            .collect();
        let mut delivered = 0;
        for partition in 0..self.partitions {
            let from = progress.get(&partition).copied().unwrap_or(0);
            let outcomes = self
                .journal
                .outbox_from(partition, from, self.config.batch_outcomes_max)
                .await?;
            let Some(last) = outcomes.last() else {
                continue;
            };
            let next = last.position.offset + 1;
            for outcome in &outcomes {
                if let Decision::CouponGranted { coupon } = &outcome.decision {
                    self.write_message(outcome, coupon).await?;
                }
            }
            self.journal
                .save_sink_progress(SINK_NAME, partition, next)
                .await?;
            delivered += outcomes.len();
        }
        Ok(delivered)
    }

    async fn write_message(&mut self, outcome: &Outcome, coupon: &Coupon) -> Result<(), Error> {
        let (title, time_zone) = self.campaign(&coupon.campaign_id).await?;
        let expires_local = coupon.expires_at.with_timezone(&time_zone);
        let outcome_id = outcome.position.outcome_id();
        let message = format!(
            "From: turnstile <no-reply@turnstile.invalid>\r\n\
             To: {user}\r\n\
             Subject: Your coupon {coupon_id} for {title}\r\n\
             Message-ID: <{outcome_id}@turnstile.invalid>\r\n\
             Date: {date}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             Hello {user},\r\n\
             \r\n\
             you won coupon {coupon_id} of \"{title}\".\r\n\
             It is valid until {local} ({time_zone}), that is {utc}.\r\n",
            user = coupon.user_id,
            coupon_id = coupon.coupon_id,
            date = outcome.decided_at.to_rfc2822(),
            local = expires_local.format("%Y-%m-%d %H:%M"),
            utc = coupon.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        );
        let path = self.config.dir.join(format!("{outcome_id}.eml"));
        write_atomically(&path, message.as_bytes()).await
    }

    async fn campaign(&mut self, campaign_id: &str) -> Result<(String, chrono_tz::Tz), Error> {
        if !self.campaigns.contains_key(campaign_id) {
            for row in self.journal.campaigns().await? {
                // Specs in the journal were validated when the campaign was created.
                let time_zone = row.spec.time_zone.parse().unwrap_or(chrono_tz::UTC);
                self.campaigns
                    .insert(row.campaign_id, (row.spec.title, time_zone));
            }
        }
        Ok(self
            .campaigns
            .get(campaign_id)
            .cloned()
            .unwrap_or_else(|| (campaign_id.to_string(), chrono_tz::UTC)))
    }
}

/// Writes `bytes` to `path` via a temporary file and a rename: whole or absent.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let temporary = path.with_extension("eml.tmp");
    let io_error = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    tokio::fs::write(&temporary, bytes)
        .await
        .map_err(io_error)?;
    tokio::fs::rename(&temporary, path).await.map_err(io_error)
}
