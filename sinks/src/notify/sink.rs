//! The notifier loop: outbox → notification → ledger → transport → ledger → progress.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use turnstile_journal::{DeliveryState, Journal};
use turnstile_schemas::auction::UnsoldReason;
use turnstile_schemas::venue::{local_instant, parse_slot_id, WaitlistOffer};
use turnstile_schemas::{Decision, Outcome};

use super::template::{LotFacts, Place, SeatsFacts, TableFacts};
use super::{
    CouponFacts, Locale, Message, Notification, NotificationKind, NotifierConfig, Transport,
};
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
    /// Which of the outcome's messages (its ledger index).
    message_index: u32,
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
    /// Event, venue or lot id → what its messages need, from the outcome that created it;
    /// loaded when first needed (a spec never changes once created).
    resources: HashMap<String, ResourceFacts>,
    stats: Arc<NotifierStats>,
}

/// What a message needs from the event, venue or lot it is about.
#[derive(Debug, Clone)]
struct ResourceFacts {
    place: Place,
    locale: Locale,
    /// An event's start.
    starts_at: Option<DateTime<Utc>>,
    /// A lot's currency.
    currency: String,
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
            resources: HashMap::new(),
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
            let ledger: HashMap<(u64, u32), DeliveryState> = self
                .journal
                .deliveries(&self.config.sink, partition, from..next)
                .await?
                .into_iter()
                .map(|d| ((d.log_offset, d.message_index), d.state))
                .collect();
            let mut jobs = Vec::new();
            for outcome in &outcomes {
                let notifications = self.notifications(outcome).await?;
                for (index, notification) in notifications.iter().enumerate() {
                    let index = index as u32;
                    // Anything in the ledger is final or the unfinished pass's (a row
                    // re-driven or left `sending` after that pass read the ledger waits for
                    // the next).
                    if ledger.contains_key(&(outcome.position.offset, index)) {
                        NotifierStats::add(&self.stats.skipped, 1);
                        continue;
                    }
                    jobs.push(self.job(outcome, index, notification));
                }
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
                    sink = %self.config.sink, message = %delivery.message_key(),
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
                Some(outcome) => self
                    .notifications(outcome)
                    .await?
                    .into_iter()
                    .nth(delivery.message_index as usize),
                None => None,
            };
            match (outcome, notification) {
                (Some(outcome), Some(notification)) => {
                    jobs.push(self.job(&outcome, delivery.message_index, &notification))
                }
                _ => {
                    // A ledger row without its outbox entry: nothing can be sent; say so.
                    let reason = "the outcome is no longer in the outbox";
                    self.journal
                        .delivery_error(
                            &self.config.sink,
                            delivery.partition,
                            delivery.log_offset,
                            delivery.message_index,
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

    /// The notifications an outcome calls for, each with the locale to write it in, in
    /// the order of their ledger index (0 first): a pure function of the outcome and its
    /// resource's spec, so a redrive or a pass after a restart finds each at its index.
    /// The outcomes that always call for one are [`super::NOTIFIED_OUTBOX_KINDS`].
    async fn notifications(
        &mut self,
        outcome: &Outcome,
    ) -> Result<Vec<(Notification, Locale)>, Error> {
        let user = || outcome.user_id.clone();
        let notifications = match &outcome.decision {
            // A grant names its coupon's holder; a reminder, a timer command, carries the
            // holder as its user.
            Decision::CouponGranted { coupon } => {
                let facts = self
                    .coupon_facts(outcome, &coupon.coupon_id, coupon.expires_at)
                    .await?;
                vec![(Notification::CouponIssued(facts.0), facts.1)]
            }
            Decision::CouponExpiring {
                coupon_id,
                expires_at,
            } => {
                let facts = self.coupon_facts(outcome, coupon_id, *expires_at).await?;
                vec![(Notification::CouponExpiringTomorrow(facts.0), facts.1)]
            }
            Decision::HoldConfirmed {
                hold_id,
                seat_ids,
                price_total,
            } => {
                let event = self.resource(&outcome.resource_id).await?;
                let facts = seats_facts(user(), &event, hold_id, seat_ids, Some(*price_total));
                vec![(Notification::TicketsConfirmed(facts), event.locale)]
            }
            Decision::HoldLapsed { hold_id, seat_ids } => {
                let event = self.resource(&outcome.resource_id).await?;
                let facts = seats_facts(user(), &event, hold_id, seat_ids, None);
                vec![(Notification::HoldExpired(facts), event.locale)]
            }
            Decision::TableBooked {
                booking_id,
                party_size,
                starts_at,
                ..
            }
            | Decision::OfferAccepted {
                booking_id,
                party_size,
                starts_at,
                ..
            } => {
                let venue = self.resource(&outcome.resource_id).await?;
                let facts = table_facts(user(), &venue, booking_id, *starts_at, *party_size);
                vec![(
                    Notification::Table(NotificationKind::BookingConfirmed, facts),
                    venue.locale,
                )]
            }
            Decision::Waitlisted {
                waitlist_id,
                slot,
                party_size,
                position,
            } => {
                let venue = self.resource(&outcome.resource_id).await?;
                let starts_at = slot_start(slot, &venue.place)?;
                let facts = TableFacts {
                    position: Some(*position),
                    ..table_facts(user(), &venue, waitlist_id, starts_at, *party_size)
                };
                vec![(
                    Notification::Table(NotificationKind::Waitlisted, facts),
                    venue.locale,
                )]
            }
            Decision::BookingCancelled {
                booking_id,
                slot,
                party_size,
                offers,
            } => {
                let venue = self.resource(&outcome.resource_id).await?;
                let starts_at = slot_start(slot, &venue.place)?;
                let facts = table_facts(user(), &venue, booking_id, starts_at, *party_size);
                let mut all = vec![(
                    Notification::Table(NotificationKind::BookingCancelled, facts),
                    venue.locale,
                )];
                all.extend(offer_notifications(&venue, offers)?);
                all
            }
            // The guest who declined knows; the parties offered the covers are told.
            Decision::OfferDeclined { offers, .. } => {
                if offers.is_empty() {
                    return Ok(Vec::new());
                }
                let venue = self.resource(&outcome.resource_id).await?;
                offer_notifications(&venue, offers)?
            }
            Decision::OfferLapsed {
                offer_id,
                slot,
                party_size,
                offers,
                ..
            } => {
                let venue = self.resource(&outcome.resource_id).await?;
                let starts_at = slot_start(slot, &venue.place)?;
                let facts = table_facts(user(), &venue, offer_id, starts_at, *party_size);
                let mut all = vec![(
                    Notification::Table(NotificationKind::OfferLapsed, facts),
                    venue.locale,
                )];
                all.extend(offer_notifications(&venue, offers)?);
                all
            }
            // The bidder saw their bid accepted in the answer; the leader it displaced is
            // told.
            Decision::BidAccepted {
                outbid: Some(outbid),
                price,
                ..
            } => {
                let lot = self.resource(&outcome.resource_id).await?;
                let facts = lot_facts(outbid.clone(), &lot, *price);
                vec![(
                    Notification::Lot(NotificationKind::Outbid, facts),
                    lot.locale,
                )]
            }
            Decision::LotSold { winner, price, .. } => {
                let lot = self.resource(&outcome.resource_id).await?;
                let facts = lot_facts(winner.clone(), &lot, *price);
                vec![(
                    Notification::Lot(NotificationKind::AuctionWon, facts),
                    lot.locale,
                )]
            }
            Decision::LotClosedUnsold {
                reason: UnsoldReason::ReserveNotMet,
                highest_bidder: Some(bidder),
                highest_bid,
                ..
            } => {
                let lot = self.resource(&outcome.resource_id).await?;
                let facts = lot_facts(bidder.clone(), &lot, highest_bid.unwrap_or(0));
                vec![(
                    Notification::Lot(NotificationKind::ReserveNotMet, facts),
                    lot.locale,
                )]
            }
            // Creations, redeems, expiries, new holds, released holds, bids that displaced
            // nobody and lots closed without bids tell nobody (the caller had the answer, or
            // the archive records it); rejections have no outbox row.
            _ => Vec::new(),
        };
        Ok(notifications)
    }

    async fn coupon_facts(
        &mut self,
        outcome: &Outcome,
        coupon_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(CouponFacts, Locale), Error> {
        let campaign = self.campaign(&outcome.resource_id).await?;
        let facts = CouponFacts {
            user_id: outcome.user_id.clone(),
            coupon_id: coupon_id.to_string(),
            campaign_title: campaign.title,
            expires_at,
            time_zone: campaign.time_zone,
        };
        Ok((facts, campaign.locale))
    }

    fn job(
        &self,
        outcome: &Outcome,
        message_index: u32,
        (notification, locale): &(Notification, Locale),
    ) -> Job {
        let outcome_id = outcome.position.outcome_id();
        let message = self
            .config
            .recipients
            .address(notification.user_id())
            .map(|to| {
                let rendered = notification.render(*locale);
                Message {
                    message_id: Message::message_id_for(
                        &outcome_id,
                        message_index,
                        &self.config.sink,
                    ),
                    outcome_id,
                    message_index,
                    kind: notification.kind(),
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
            message_index,
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
                Ok(message) => {
                    sendable.push(((job.partition, job.log_offset, job.message_index), message))
                }
                Err(_) => unsendable.push(job),
            }
        }
        let keys: Vec<(u32, u64, u32)> = sendable.iter().map(|(key, _)| *key).collect();
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
            for (key, message) in to_send.by_ref().take(self.config.sends_in_flight_max) {
                let transport = self.transport.clone();
                first_attempts.spawn(async move {
                    let result = transport.deliver(&message).await;
                    (key, message, result)
                });
            }
            while let Some(done) = first_attempts.join_next().await {
                match done {
                    Ok((key, _, Ok(receipt))) => accepted.push((key, receipt.provider_message_id)),
                    Ok(((partition, log_offset, message_index), message, Err(error))) => {
                        let job = Job {
                            partition,
                            log_offset,
                            message_index,
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
        let sent: Vec<(u32, u64, u32, &str)> = accepted
            .iter()
            .map(|((partition, offset, index), id)| (*partition, *offset, *index, id.as_str()))
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

    /// What messages about an event, venue or lot need, from the outcome that created it.
    async fn resource(&mut self, resource_id: &str) -> Result<ResourceFacts, Error> {
        if let Some(facts) = self.resources.get(resource_id) {
            return Ok(facts.clone());
        }
        let created = self.journal.creation_outcome(resource_id).await?;
        let title = |title: &str| {
            if title.is_empty() {
                resource_id.to_string()
            } else {
                title.to_string()
            }
        };
        let facts = match created.map(|outcome| outcome.decision) {
            Some(Decision::EventCreated { spec }) => ResourceFacts {
                place: Place {
                    title: title(&spec.title),
                    time_zone: chrono_tz::UTC,
                },
                locale: Locale::from_spec(spec.locale.as_deref()),
                starts_at: Some(spec.starts_at),
                currency: String::new(),
            },
            Some(Decision::VenueCreated { spec }) => ResourceFacts {
                place: Place {
                    title: title(&spec.title),
                    // Specs in the journal were validated when the venue was created.
                    time_zone: spec.time_zone.parse().unwrap_or(chrono_tz::UTC),
                },
                locale: Locale::from_spec(spec.locale.as_deref()),
                starts_at: None,
                currency: String::new(),
            },
            Some(Decision::LotCreated { spec }) => ResourceFacts {
                place: Place {
                    title: title(&spec.title),
                    time_zone: chrono_tz::UTC,
                },
                locale: Locale::from_spec(spec.locale.as_deref()),
                starts_at: None,
                currency: spec.currency.clone(),
            },
            // Every decision on a resource follows its creation in the same journal.
            _ => {
                return Err(Error::Journal(turnstile_journal::Error::Corrupt(format!(
                    "an outcome on {resource_id:?} calls for a notification, but the journal \
                     has no creation of it"
                ))))
            }
        };
        self.resources
            .insert(resource_id.to_string(), facts.clone());
        Ok(facts)
    }
}

fn seats_facts(
    user_id: String,
    event: &ResourceFacts,
    hold_id: &str,
    seat_ids: &[String],
    price_total: Option<u64>,
) -> SeatsFacts {
    SeatsFacts {
        user_id,
        event: event.place.clone(),
        starts_at: event.starts_at.unwrap_or_default(),
        hold_id: hold_id.to_string(),
        seat_ids: seat_ids.to_vec(),
        price_total,
    }
}

fn table_facts(
    user_id: String,
    venue: &ResourceFacts,
    reference: &str,
    starts_at: DateTime<Utc>,
    party_size: u32,
) -> TableFacts {
    TableFacts {
        user_id,
        venue: venue.place.clone(),
        reference: reference.to_string(),
        starts_at,
        party_size,
        position: None,
        accept_by: None,
    }
}

fn lot_facts(user_id: String, lot: &ResourceFacts, price: u64) -> LotFacts {
    LotFacts {
        user_id,
        lot: lot.place.clone(),
        price,
        currency: lot.currency.clone(),
    }
}

/// "A table is free: accept by ..." to each waiting party offered covers, in the
/// decision's order.
fn offer_notifications(
    venue: &ResourceFacts,
    offers: &[WaitlistOffer],
) -> Result<Vec<(Notification, Locale)>, Error> {
    offers
        .iter()
        .map(|offer| {
            let starts_at = slot_start(&offer.slot, &venue.place)?;
            let facts = TableFacts {
                accept_by: Some(offer.expires_at),
                ..table_facts(
                    offer.user_id.clone(),
                    venue,
                    &offer.offer_id,
                    starts_at,
                    offer.party_size,
                )
            };
            let notification = Notification::Table(NotificationKind::PromotedFromWaitlist, facts);
            Ok((notification, venue.locale))
        })
        .collect()
}

/// When a slot (`2026-12-24T18:00`, local to the venue) starts, as the venue domain
/// reckons it.
fn slot_start(slot: &str, venue: &Place) -> Result<DateTime<Utc>, Error> {
    parse_slot_id(slot)
        .and_then(|(date, time)| local_instant(venue.time_zone, date, time))
        .ok_or_else(|| {
            Error::Journal(turnstile_journal::Error::Corrupt(format!(
                "slot {slot:?} is not a local date and time of {}",
                venue.time_zone.name()
            )))
        })
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
    let (partition, offset, index) = (job.partition, job.log_offset, job.message_index);
    let message = match job.message {
        Ok(message) => message,
        Err(e) => {
            // Nothing to send: record the attempt and why, permanently.
            journal
                .delivery_sending(sink, partition, offset, index, Utc::now())
                .await?;
            journal
                .delivery_error(
                    sink,
                    partition,
                    offset,
                    index,
                    DeliveryState::Failed,
                    &e.to_string(),
                    Utc::now(),
                )
                .await?;
            NotifierStats::add(&stats.failed, 1);
            tracing::warn!(sink, partition, offset, index, error = %e, "notification failed for good");
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
                    .delivery_sending(sink, partition, offset, index, Utc::now())
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
                                index,
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
                    index,
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
                index,
                DeliveryState::Failed,
                &reason,
                Utc::now(),
            )
            .await?;
        NotifierStats::add(&stats.failed, 1);
        tracing::warn!(sink, outcome_id = %message.outcome_id, index, %reason, "notification failed; `turnstile sinks retry` re-drives it");
        return Ok(());
    }
}
