//! The notifier loop: outbox → notification → ledger → transport → ledger → progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use turnstile_journal::{DeliveryState, Journal};
use turnstile_schemas::{Decision, Outcome};

use super::{CouponFacts, Locale, Message, Notification, NotifierConfig, Transport};
use crate::Error;

/// Messages recorded per ledger transaction when a resend is harmless: large enough to
/// amortise the flush, small enough not to hold the journal's writer (which the processors
/// share on the embedded default) for long.
const LEDGER_GROUP_HARMLESS_MAX: usize = 256;

/// What the notifier has done since it started: typed counters, one place for their names.
#[derive(Debug, Default)]
pub struct NotifierStats {
    /// Messages the provider accepted.
    pub sent: AtomicU64,
    /// Messages found `sending` in the ledger (the process died mid-send) and sent again,
    /// with the same `Message-ID`.
    pub resent_after_crash: AtomicU64,
    /// Provider calls that failed transiently and were retried.
    pub retries: AtomicU64,
    /// Deliveries recorded `failed`.
    pub failed: AtomicU64,
    /// Outbox entries skipped because the ledger already had them (`sent`, `failed`).
    pub skipped: AtomicU64,
}

impl NotifierStats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Outbox entries carried past (progress advanced over them).
    pub outcomes: usize,
    /// Messages handed to the transport (each maybe after retries).
    pub messages: usize,
}

/// One message to send, with where it stands in the ledger.
#[derive(Debug)]
struct Job {
    partition: u32,
    log_offset: u64,
    /// The message, or why there can be none (an invalid address: failed at once).
    message: Result<Message, Error>,
}

/// The notifier over one transport. `run` it, or drive it pass by pass in tests.
#[derive(Debug)]
pub struct Notifier<T> {
    config: NotifierConfig,
    journal: Journal,
    partitions: u32,
    transport: T,
    /// Campaign id → what its messages need; loaded when first needed (a spec never
    /// changes once created).
    campaigns: HashMap<String, CampaignFacts>,
    stats: Arc<NotifierStats>,
}

/// What a message needs from its campaign.
#[derive(Debug, Clone)]
struct CampaignFacts {
    title: String,
    time_zone: chrono_tz::Tz,
    locale: Locale,
}

impl<T: Transport> Notifier<T> {
    /// A notifier over the outbox of `partitions` partitions of `journal`.
    pub fn new(config: NotifierConfig, journal: Journal, partitions: u32, transport: T) -> Self {
        assert!(
            config.sends_in_flight_max > 0,
            "sends_in_flight_max must be positive"
        );
        assert!(
            config.send_attempts_max > 0,
            "send_attempts_max must be positive"
        );
        Notifier {
            config,
            journal,
            partitions,
            transport,
            campaigns: HashMap::new(),
            stats: Arc::default(),
        }
    }

    /// Its counters, shared: read them while it runs.
    pub fn stats(&self) -> Arc<NotifierStats> {
        self.stats.clone()
    }

    /// Delivers until `shutdown` turns true. Failures of the journal are logged and the
    /// pass is tried again; provider failures are the ledger's business.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        while !*shutdown.borrow() {
            match self.deliver_pending().await {
                Ok(report) => {
                    tracing::debug!(sink = %self.config.sink, ?report, "notifier pass")
                }
                Err(e) => tracing::warn!(
                    sink = %self.config.sink, error = %e, retriable = e.is_retriable(),
                    "notifier pass failed; trying again"
                ),
            }
            // Rest after every pass, full batch or not: the processors' commits share the
            // database, and during a drop they come first. A backlog waits in the outbox,
            // durable, and is carried at up to a batch per partition per pause.
            if !crate::rest(pause, &mut shutdown).await {
                return;
            }
        }
    }

    /// One pass: re-driven deliveries first, then every partition's new outbox entries.
    pub async fn deliver_pending(&mut self) -> Result<PassReport, Error> {
        let mut report = PassReport::default();
        report.messages += self.deliver_redriven().await?;
        let progress: HashMap<u32, u64> = self
            .journal
            .sink_progress(&self.config.sink)
            .await?
            .into_iter()
            .collect();
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
            let ledger: HashMap<u64, DeliveryState> = self
                .journal
                .deliveries(&self.config.sink, partition, from..next)
                .await?
                .into_iter()
                .map(|d| (d.log_offset, d.state))
                .collect();
            let mut jobs = Vec::new();
            for outcome in &outcomes {
                let Some(notification) = self.notification(outcome).await? else {
                    continue;
                };
                // Anything in the ledger is final or the unfinished pass's (a row re-driven
                // or left `sending` after that pass read the ledger waits for the next).
                if ledger.contains_key(&outcome.position.offset) {
                    NotifierStats::add(&self.stats.skipped, 1);
                    continue;
                }
                jobs.push(self.job(outcome, &notification));
            }
            report.messages += jobs.len();
            self.send_all(jobs).await?;
            // Rule 22: progress only after every message of the batch has a final ledger
            // row (sent or failed).
            self.journal
                .save_sink_progress(&self.config.sink, partition, next)
                .await?;
            report.outcomes += outcomes.len();
        }
        Ok(report)
    }

    /// Sends the unfinished deliveries: those an operator re-drove (`turnstile sinks
    /// retry`), and those a crash left `sending`, wherever progress is (a re-driven send
    /// cut short lies behind it). This pass's own sends all end `sent` or `failed`
    /// before the next pass, so a `sending` row found here was left by a crash.
    async fn deliver_redriven(&mut self) -> Result<usize, Error> {
        let unfinished = self
            .journal
            .deliveries_unfinished(&self.config.sink, self.config.batch_outcomes_max)
            .await?;
        let mut jobs = Vec::new();
        for delivery in unfinished {
            if delivery.state == DeliveryState::Sending {
                NotifierStats::add(&self.stats.resent_after_crash, 1);
                tracing::info!(
                    sink = %self.config.sink, outcome_id = %delivery.outcome_id(),
                    "resending a message left in flight by a crash (same Message-ID)"
                );
            }
            let outcome = self
                .journal
                .outbox_from(delivery.partition, delivery.log_offset, 1)
                .await?
                .into_iter()
                .find(|o| o.position.offset == delivery.log_offset);
            let notification = match &outcome {
                Some(outcome) => self.notification(outcome).await?,
                None => None,
            };
            match (outcome, notification) {
                (Some(outcome), Some(notification)) => jobs.push(self.job(&outcome, &notification)),
                _ => {
                    // A ledger row without its outbox entry: nothing can be sent; say so.
                    let reason = "the outcome is no longer in the outbox";
                    self.journal
                        .delivery_error(
                            &self.config.sink,
                            delivery.partition,
                            delivery.log_offset,
                            DeliveryState::Failed,
                            reason,
                            Utc::now(),
                        )
                        .await?;
                }
            }
        }
        let sent = jobs.len();
        self.send_all(jobs).await?;
        Ok(sent)
    }

    /// The notification an outcome calls for, if any, and the locale to write it in. The
    /// outcomes that call for one are [`super::NOTIFIED_OUTBOX_KINDS`].
    async fn notification(
        &mut self,
        outcome: &Outcome,
    ) -> Result<Option<(Notification, Locale)>, Error> {
        // A grant names its coupon's holder; a reminder, a timer command, carries the
        // holder as its user.
        let (notification, coupon_id, expires_at): (fn(CouponFacts) -> Notification, _, _) =
            match &outcome.decision {
                Decision::CouponGranted { coupon } => (
                    Notification::CouponIssued,
                    &coupon.coupon_id,
                    coupon.expires_at,
                ),
                Decision::CouponExpiring {
                    coupon_id,
                    expires_at,
                } => (Notification::CouponExpiringTomorrow, coupon_id, *expires_at),
                // Creating a campaign, redeeming a coupon and its expiry tell nobody (the
                // archive records the expiry); rejections have no outbox row.
                _ => return Ok(None),
            };
        let campaign = self.campaign(&outcome.resource_id).await?;
        let facts = CouponFacts {
            user_id: outcome.user_id.clone(),
            coupon_id: coupon_id.clone(),
            campaign_title: campaign.title,
            expires_at,
            time_zone: campaign.time_zone,
        };
        Ok(Some((notification(facts), campaign.locale)))
    }

    fn job(&self, outcome: &Outcome, (notification, locale): &(Notification, Locale)) -> Job {
        let outcome_id = outcome.position.outcome_id();
        let message = self
            .config
            .recipients
            .address(notification.user_id())
            .map(|to| {
                let rendered = notification.render(*locale);
                Message {
                    message_id: Message::message_id_for(&outcome_id, &self.config.sink),
                    outcome_id,
                    from: self.config.from.clone(),
                    to,
                    subject: rendered.subject,
                    body: rendered.body,
                    date: outcome.decided_at,
                }
            });
        Job {
            partition: outcome.position.partition,
            log_offset: outcome.position.offset,
            message,
        }
    }

    /// Sends `jobs` in ledger groups (see [`Transport::resend_is_harmless`]), each message
    /// to a final ledger row.
    async fn send_all(&self, jobs: Vec<Job>) -> Result<(), Error> {
        let group_size = if self.transport.resend_is_harmless() {
            LEDGER_GROUP_HARMLESS_MAX
        } else {
            self.config.sends_in_flight_max
        };
        let mut jobs = jobs.into_iter().peekable();
        while jobs.peek().is_some() {
            let group: Vec<Job> = jobs.by_ref().take(group_size).collect();
            self.send_group(group).await?;
        }
        Ok(())
    }

    /// One group: its messages are marked `sending` in one journal transaction, their first
    /// attempts run `sends_in_flight_max` at a time, and the accepted ones are marked `sent`
    /// in one transaction — two disk flushes a group rather than two a message, which on
    /// the embedded default share the one SQLite writer with the processors' commits. A message that cannot be
    /// sent, or whose first attempt failed, goes on alone ([`finish_alone`]). Every send of
    /// the group finishes and records itself before a journal error is returned.
    async fn send_group(&self, group: Vec<Job>) -> Result<(), Error> {
        let sink = self.config.sink.as_str();
        let mut sendable = Vec::new();
        let mut unsendable = Vec::new();
        for job in group {
            match job.message {
                Ok(message) => sendable.push((job.partition, job.log_offset, message)),
                Err(_) => unsendable.push(job),
            }
        }
        let keys: Vec<(u32, u64)> = sendable
            .iter()
            .map(|(partition, offset, _)| (*partition, *offset))
            .collect();
        let may_send = self
            .journal
            .deliveries_sending(sink, &keys, Utc::now())
            .await?;
        // Not sendable: `sent` already (a redrive raced a resend). Never send twice.
        let mut to_send = sendable
            .into_iter()
            .zip(may_send)
            .filter_map(|(send, may_send)| may_send.then_some(send))
            .peekable();
        let mut alone = JoinSet::new();
        let finish = |job, first_error| {
            finish_alone(
                self.journal.clone(),
                self.transport.clone(),
                self.config.clone(),
                self.stats.clone(),
                job,
                first_error,
            )
        };
        for job in unsendable {
            alone.spawn(finish(job, None));
        }
        let mut first_error = None;
        let mut accepted = Vec::new();
        while to_send.peek().is_some() {
            let mut first_attempts = JoinSet::new();
            for (partition, log_offset, message) in
                to_send.by_ref().take(self.config.sends_in_flight_max)
            {
                let transport = self.transport.clone();
                first_attempts.spawn(async move {
                    let result = transport.deliver(&message).await;
                    (partition, log_offset, message, result)
                });
            }
            while let Some(done) = first_attempts.join_next().await {
                match done {
                    Ok((partition, log_offset, _, Ok(receipt))) => {
                        accepted.push((partition, log_offset, receipt.provider_message_id))
                    }
                    Ok((partition, log_offset, message, Err(error))) => {
                        let job = Job {
                            partition,
                            log_offset,
                            message: Ok(message),
                        };
                        alone.spawn(finish(job, Some(error)));
                    }
                    Err(e) => {
                        first_error.get_or_insert(Error::Task(e.to_string()));
                    }
                }
            }
        }
        let sent: Vec<(u32, u64, &str)> = accepted
            .iter()
            .map(|(partition, offset, id)| (*partition, *offset, id.as_str()))
            .collect();
        if let Err(e) = self.journal.deliveries_sent(sink, &sent, Utc::now()).await {
            first_error.get_or_insert(e.into());
        } else {
            NotifierStats::add(&self.stats.sent, sent.len() as u64);
        }
        while let Some(done) = alone.join_next().await {
            let result = done.map_err(|e| Error::Task(e.to_string())).and_then(|r| r);
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn campaign(&mut self, campaign_id: &str) -> Result<CampaignFacts, Error> {
        if let Some(facts) = self.campaigns.get(campaign_id) {
            return Ok(facts.clone());
        }
        let facts = match self.journal.campaign(campaign_id).await? {
            Some(row) => CampaignFacts {
                title: if row.spec.title.is_empty() {
                    campaign_id.to_string()
                } else {
                    row.spec.title.clone()
                },
                // Specs in the journal were validated when the campaign was created.
                time_zone: row.spec.time_zone.parse().unwrap_or(chrono_tz::UTC),
                locale: Locale::from_spec(row.spec.locale.as_deref()),
            },
            // A grant always follows its campaign's creation in the same journal.
            None => {
                return Err(Error::Journal(turnstile_journal::Error::Corrupt(format!(
                    "a coupon of campaign {campaign_id:?} was granted, but the campaign is \
                     not in the journal"
                ))))
            }
        };
        self.campaigns
            .insert(campaign_id.to_string(), facts.clone());
        Ok(facts)
    }
}

/// The ledger protocol for one message on its own (`docs/exactly-once.md`, rules 27–31):
/// after a failed first attempt in its group (`first_error`), transient errors are retried
/// with backoff, each attempt marked `sending` before the provider call and `sent` with the
/// provider's id after; permanent errors, or attempts running out, end `failed` with the
/// reason. A message that cannot be built is recorded `failed` at once. Returns an error
/// only when the journal fails.
async fn finish_alone<T: Transport>(
    journal: Journal,
    transport: T,
    config: NotifierConfig,
    stats: Arc<NotifierStats>,
    job: Job,
    first_error: Option<Error>,
) -> Result<(), Error> {
    let sink = config.sink.as_str();
    let (partition, offset) = (job.partition, job.log_offset);
    let message = match job.message {
        Ok(message) => message,
        Err(e) => {
            // Nothing to send: record the attempt and why, permanently.
            journal
                .delivery_sending(sink, partition, offset, Utc::now())
                .await?;
            journal
                .delivery_error(
                    sink,
                    partition,
                    offset,
                    DeliveryState::Failed,
                    &e.to_string(),
                    Utc::now(),
                )
                .await?;
            NotifierStats::add(&stats.failed, 1);
            tracing::warn!(sink, partition, offset, error = %e, "notification failed for good");
            return Ok(());
        }
    };
    let mut failure = first_error;
    let mut attempt = 1;
    loop {
        let error = match failure.take() {
            Some(error) => error,
            None => {
                if !journal
                    .delivery_sending(sink, partition, offset, Utc::now())
                    .await?
                {
                    // Already sent (a redrive raced a resend): never send twice.
                    return Ok(());
                }
                match transport.deliver(&message).await {
                    Ok(receipt) => {
                        journal
                            .delivery_sent(
                                sink,
                                partition,
                                offset,
                                &receipt.provider_message_id,
                                Utc::now(),
                            )
                            .await?;
                        NotifierStats::add(&stats.sent, 1);
                        return Ok(());
                    }
                    Err(error) => error,
                }
            }
        };
        if error.is_retriable() && attempt < config.send_attempts_max {
            journal
                .delivery_error(
                    sink,
                    partition,
                    offset,
                    DeliveryState::Sending,
                    &error.to_string(),
                    Utc::now(),
                )
                .await?;
            NotifierStats::add(&stats.retries, 1);
            tokio::time::sleep(Duration::from_millis(config.retry_backoff_ms(attempt))).await;
            attempt += 1;
            continue;
        }
        let reason = if error.is_retriable() {
            format!("gave up after {attempt} attempts: {error}")
        } else {
            error.to_string()
        };
        journal
            .delivery_error(
                sink,
                partition,
                offset,
                DeliveryState::Failed,
                &reason,
                Utc::now(),
            )
            .await?;
        NotifierStats::add(&stats.failed, 1);
        tracing::warn!(sink, outcome_id = %message.outcome_id, %reason, "notification failed; `turnstile sinks retry` re-drives it");
        return Ok(());
    }
}
