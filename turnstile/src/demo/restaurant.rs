//! `turnstile demo --scenario restaurant`: a dinner rush at one venue.
//!
//! A bistro serves three evening slots tomorrow. Diners (parties of 1–8) rush to book the
//! slot they want; when it is full they join its waitlist (or are turned away when that is
//! full too). Some who booked cancel a little later; the covers they free are offered to
//! waiting parties that fit, and the outcome of the cancellation names those offers: the
//! demo hands each offer to its guest, who accepts, declines (passing the covers on) or
//! ignores it, so that it lapses after the short offer TTL when the expiry scheduler fires
//! its timer. The offers a lapse makes are found by looking up the lapse timer's request.
//!
//! Checks: no slot ever holds more covers than it seats (booked + offered ≤ capacity), in
//! every view polled during the rush and at every step of the journal replayed in log
//! order; each slot's booked covers in the final view and in the journal are exactly what
//! the answers add up to; every promotion answered is in the journal; the audit passes.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use turnstile_schemas::venue::WaitlistOffer;
use turnstile_schemas::{Decision, Outcome};

use super::crowd::{each_person, on_crowd_runtime, pick, progress, Crowd, Reply};
use super::{verdict, DemoArgs, DemoStack};
use crate::loadgen::thousands;

/// The venue.
const VENUE_ID: &str = "demo-bistro";
/// How long an offer waits for its guest: short, so that lapses happen during the demo.
const OFFER_TTL_SECONDS: u32 = 3;
/// The slots: start, minutes, share of the covers in percent; and how many want each.
const SLOTS: [(&str, u32, u32, u32); 3] = [
    ("18:00", 90, 27, 25),
    ("19:30", 120, 46, 50),
    ("21:30", 120, 27, 25),
];
/// Party sizes 1–8 and how often each comes.
const PARTY_WEIGHTS: [u32; 8] = [5, 35, 10, 25, 8, 10, 3, 4];
/// How long the demo waits for its last offers to be answered or lapse.
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// One slot of the venue's view (`GET /v1/venues/{id}?date=`).
#[derive(Debug, Clone, Deserialize)]
struct SlotView {
    slot: String,
    capacity_covers: u32,
    booked_covers: u32,
    offered_covers: u32,
    free_covers: u32,
    #[serde(default)]
    waitlist_length: u32,
}

#[derive(Debug, Clone, Deserialize)]
struct VenueView {
    slots: Vec<SlotView>,
}

/// What the diners saw.
#[derive(Debug, Default)]
struct Tally {
    bookings: u64,
    cancellations: u64,
    waitlisted: u64,
    turned_away: u64,
    offers_made: u64,
    offers_from_lapses: u64,
    accepted: u64,
    declined: u64,
    ignored: u64,
    late: u64,
    /// Covers booked per slot, as the answers add up (bookings + accepted − cancelled).
    booked: BTreeMap<String, i64>,
    rejections: BTreeMap<String, u64>,
}

/// What the view poller saw.
#[derive(Debug, Default)]
struct Watch {
    views: u64,
    over_capacity: Vec<String>,
    peak_waitlist: u32,
}

#[derive(Clone)]
struct Evening {
    crowd: Arc<Crowd>,
    tally: Arc<Mutex<Tally>>,
    date: String,
    seed: u64,
    /// Cancellations come within this many milliseconds of booking.
    cancel_ms_max: u64,
    /// Offers being answered or waited on.
    offers_open: Arc<AtomicU64>,
    /// Whether the venue answers lapse-timer lookups (`GET .../requests/{id}`).
    lookups: Arc<AtomicBool>,
    /// Guests answer offers only until then; later ones lapse unseen.
    offers_until: Instant,
}

impl Evening {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().expect("the tally lock is never poisoned")
    }

    fn slot_id(&self, start: &str) -> String {
        format!("{}T{start}", self.date)
    }

    fn booked(&self, slot: &str, covers: u32, sign: i64) {
        *self.tally().booked.entry(slot.to_string()).or_default() += sign * i64::from(covers);
    }

    fn reject(&self, code: String) {
        *self.tally().rejections.entry(code).or_default() += 1;
    }

    /// One party: book, or wait; some who booked cancel later.
    async fn diner(self, d: u64) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ (d << 8) ^ 0xb157);
        let slot = self.slot_id(SLOTS[pick(&[25, 50, 25], rng.gen_range(0..100))].0);
        let party = pick(&PARTY_WEIGHTS, rng.gen_range(0..100)) as u32 + 1;
        let user = format!("diner-{d}");
        let bookings = format!("/v1/venues/{VENUE_ID}/bookings");
        let body = json!({"user_id": user, "slot": slot, "party_size": party});
        let mut reply = self
            .crowd
            .post(&bookings, &format!("book-{d}"), body.clone())
            .await;
        if reply.code() == Some("slot_full") {
            let waitlist = format!("/v1/venues/{VENUE_ID}/waitlist");
            reply = self
                .crowd
                .post(&waitlist, &format!("wait-{d}"), body.clone())
                .await;
            if reply.code() == Some("slot_has_room") {
                // Someone cancelled meanwhile.
                reply = self
                    .crowd
                    .post(&bookings, &format!("book-{d}-again"), body)
                    .await;
            }
        }
        match reply {
            Reply::Decided {
                decision:
                    Decision::TableBooked {
                        booking_id,
                        slot,
                        party_size,
                        ..
                    },
                ..
            } => {
                self.tally().bookings += 1;
                self.booked(&slot, party_size, 1);
                if rng.gen_bool(0.25) {
                    let later = rng.gen_range(self.cancel_ms_max / 10..=self.cancel_ms_max);
                    tokio::time::sleep(Duration::from_millis(later)).await;
                    self.cancel(d, &user, &booking_id).await;
                }
            }
            Reply::Decided {
                decision: Decision::Waitlisted { .. },
                ..
            } => self.tally().waitlisted += 1,
            Reply::Decided { decision, .. } => self
                .crowd
                .count_error(format!("a booking was answered {}", decision.status())),
            Reply::Rejected { code, .. } => {
                if code == "waitlist_full" {
                    self.tally().turned_away += 1;
                }
                self.reject(code);
            }
            Reply::Failed(_) => {}
        }
        self.crowd.person_done();
    }

    async fn cancel(&self, d: u64, user: &str, booking_id: &str) {
        let reply = self
            .crowd
            .post(
                &format!("/v1/venues/{VENUE_ID}/bookings/{booking_id}/cancel"),
                &format!("cancel-{d}"),
                json!({"user_id": user}),
            )
            .await;
        match reply {
            Reply::Decided {
                decision:
                    Decision::BookingCancelled {
                        slot,
                        party_size,
                        offers,
                        ..
                    },
                ..
            } => {
                self.tally().cancellations += 1;
                self.booked(&slot, party_size, -1);
                self.deliver(offers, false);
            }
            Reply::Decided { decision, .. } => self
                .crowd
                .count_error(format!("a cancellation was answered {}", decision.status())),
            Reply::Rejected { code, .. } => self.reject(code),
            Reply::Failed(_) => {}
        }
    }

    /// Hands each offer to its guest, who answers it on a task of their own.
    fn deliver(&self, offers: Vec<WaitlistOffer>, from_lapse: bool) {
        let mut tally = self.tally();
        tally.offers_made += offers.len() as u64;
        if from_lapse {
            tally.offers_from_lapses += offers.len() as u64;
        }
        drop(tally);
        if Instant::now() >= self.offers_until {
            return;
        }
        for offer in offers {
            self.offers_open.fetch_add(1, Ordering::Relaxed);
            let evening = self.clone();
            tokio::spawn(async move {
                evening.answer(offer).await;
                evening.offers_open.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// A guest's answer to an offer: accept (60%), decline (20%) or ignore it (20%).
    async fn answer(&self, offer: WaitlistOffer) {
        let number: u64 = offer
            .offer_id
            .rsplit('o')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut rng = StdRng::seed_from_u64(self.seed ^ (number << 8) ^ 0x0ffe);
        let roll = rng.gen_range(0..100);
        let user = json!({"user_id": offer.user_id});
        let offers = format!("/v1/venues/{VENUE_ID}/offers/{}", offer.offer_id);
        if roll >= 80 {
            self.tally().ignored += 1;
            return self.await_lapse(&offer).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..800))).await;
        let verb = if roll < 60 { "accept" } else { "decline" };
        let reply = self
            .crowd
            .post(
                &format!("{offers}/{verb}"),
                &format!("{verb}-{}", offer.offer_id),
                user,
            )
            .await;
        match reply {
            Reply::Decided {
                decision:
                    Decision::OfferAccepted {
                        slot, party_size, ..
                    },
                ..
            } => {
                self.tally().accepted += 1;
                self.booked(&slot, party_size, 1);
            }
            Reply::Decided {
                decision: Decision::OfferDeclined { offers, .. },
                ..
            } => {
                self.tally().declined += 1;
                self.deliver(offers, false);
            }
            Reply::Decided { decision, .. } => self.crowd.count_error(format!(
                "an offer's {verb} was answered {}",
                decision.status()
            )),
            Reply::Rejected { code, .. } => {
                if code == "offer_expired" {
                    self.tally().late += 1;
                }
                self.reject(code);
            }
            Reply::Failed(_) => {}
        }
    }

    /// Waits for an ignored offer to lapse, then looks up its lapse timer's outcome to
    /// hand the offers it made to their guests.
    async fn await_lapse(&self, offer: &WaitlistOffer) {
        let due = offer.expires_at + chrono::Duration::milliseconds(700);
        if let Ok(wait) = (due - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
        let path = format!(
            "/v1/venues/{VENUE_ID}/requests/timer:lapse_offer:{}",
            offer.offer_id
        );
        for _ in 0..20 {
            if !self.lookups.load(Ordering::Relaxed) {
                return;
            }
            match self.crowd.get(&path).await {
                Ok((200, body)) => {
                    #[derive(Deserialize)]
                    struct Status {
                        outcome: Option<OutcomeBody>,
                    }
                    #[derive(Deserialize)]
                    struct OutcomeBody {
                        decision: Decision,
                    }
                    match serde_json::from_slice::<Status>(&body) {
                        Ok(Status {
                            outcome: Some(OutcomeBody { decision }),
                        }) => {
                            if let Decision::OfferLapsed { offers, .. } = decision {
                                self.deliver(offers, true);
                            }
                            return;
                        }
                        // Pending: the timer is being decided.
                        Ok(_) => {}
                        Err(e) => return self.crowd.count_error(format!("GET {path}: {e}")),
                    }
                }
                Ok((404, body)) if String::from_utf8_lossy(&body).contains("no_such_route") => {
                    // This edge has no request lookup for venues: the offers a lapse
                    // makes lapse in turn, unseen.
                    self.lookups.store(false, Ordering::Relaxed);
                    return;
                }
                // Not fired yet (the scheduler polls twice a second).
                Ok((404, _)) => {}
                Ok((status, body)) => {
                    return self.crowd.count_error(format!(
                        "GET {path} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
                Err(e) => return self.crowd.count_error(e),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

fn venue_spec(capacity: [u32; 3]) -> serde_json::Value {
    let slots: Vec<_> = SLOTS
        .iter()
        .zip(capacity)
        .map(|((start, minutes, ..), covers)| {
            json!({"start": start, "duration_minutes": minutes, "capacity_covers": covers})
        })
        .collect();
    json!({
        "venue_id": VENUE_ID,
        "title": "Bistro Turnstile",
        "time_zone": "Europe/Paris",
        "slots": slots,
        "party_size_max": 8,
        "offer_ttl_seconds": OFFER_TTL_SECONDS,
    })
}

/// Polls the venue's view until `stop`, checking every slot's covers.
async fn watch(crowd: Arc<Crowd>, path: String, stop: Arc<AtomicBool>) -> Watch {
    let mut watch = Watch::default();
    while !stop.load(Ordering::Relaxed) {
        match crowd.get_view::<VenueView>(&path).await {
            Ok(view) => {
                watch.views += 1;
                for slot in &view.slots {
                    watch.peak_waitlist = watch.peak_waitlist.max(slot.waitlist_length);
                    let held = slot.booked_covers + slot.offered_covers;
                    if held > slot.capacity_covers
                        || slot.free_covers + held != slot.capacity_covers
                    {
                        watch.over_capacity.push(format!(
                            "{}: {} booked + {} offered, {} free of {}",
                            slot.slot,
                            slot.booked_covers,
                            slot.offered_covers,
                            slot.free_covers,
                            slot.capacity_covers
                        ));
                    }
                }
            }
            Err(e) => crowd.count_error(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    watch
}

struct Run {
    crowd: Arc<Crowd>,
    tally: Tally,
    watch: Watch,
    view: Option<VenueView>,
    elapsed: Duration,
}

async fn rush(evening: Evening, diners: u64, active: usize, show: bool) -> anyhow::Result<Run> {
    let started = Instant::now();
    let crowd = Arc::clone(&evening.crowd);
    let view_path = format!("/v1/venues/{VENUE_ID}?date={}", evening.date);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        Arc::clone(&crowd),
        view_path.clone(),
        Arc::clone(&stop),
    ));
    let bar_tally = Arc::clone(&evening.tally);
    let bar = progress(&crowd, "diners", diners, show, move || {
        let t = bar_tally.lock().expect("the tally lock is never poisoned");
        format!(
            "booked {}  waiting {}  cancelled {}  offers {}",
            thousands(t.bookings),
            thousands(t.waitlisted),
            thousands(t.cancellations),
            thousands(t.offers_made)
        )
    });
    let people = evening.clone();
    each_person((0..diners).collect(), active, move |d| {
        people.clone().diner(d)
    })
    .await?;
    // The last offers are answered or lapse.
    let deadline = Instant::now() + SETTLE_MAX;
    while evening.offers_open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let watch = watcher.await?;
    let view = match crowd.get_view::<VenueView>(&view_path).await {
        Ok(view) => Some(view),
        Err(e) => {
            crowd.count_error(e);
            None
        }
    };
    if let Some(bar) = bar {
        bar.finish();
    }
    let tally = std::mem::take(&mut *evening.tally.lock().expect("never poisoned"));
    Ok(Run {
        crowd,
        tally,
        watch,
        view,
        elapsed: started.elapsed(),
    })
}

/// What the journal says, replayed in log order.
#[derive(Debug, Default)]
struct Replayed {
    booked: BTreeMap<String, i64>,
    accepted: u64,
    lapsed: u64,
    problems: Vec<String>,
}

fn replay_journal(outcomes: &[Outcome], capacity: &BTreeMap<String, u32>) -> Replayed {
    let mut r = Replayed::default();
    let mut offered: BTreeMap<String, i64> = BTreeMap::new();
    // Offer id → (slot, covers) while outstanding.
    let mut open: BTreeMap<String, (String, u32)> = BTreeMap::new();
    fn offer(
        offers: &[WaitlistOffer],
        offered: &mut BTreeMap<String, i64>,
        open: &mut BTreeMap<String, (String, u32)>,
    ) {
        for o in offers {
            *offered.entry(o.slot.clone()).or_default() += i64::from(o.party_size);
            open.insert(o.offer_id.clone(), (o.slot.clone(), o.party_size));
        }
    }
    for outcome in outcomes {
        let slot = match &outcome.decision {
            Decision::TableBooked {
                slot, party_size, ..
            } => {
                *r.booked.entry(slot.clone()).or_default() += i64::from(*party_size);
                slot.clone()
            }
            Decision::BookingCancelled {
                slot,
                party_size,
                offers,
                ..
            } => {
                *r.booked.entry(slot.clone()).or_default() -= i64::from(*party_size);
                offer(offers, &mut offered, &mut open);
                slot.clone()
            }
            Decision::OfferAccepted {
                offer_id,
                slot,
                party_size,
                ..
            } => {
                r.accepted += 1;
                open.remove(offer_id);
                *offered.entry(slot.clone()).or_default() -= i64::from(*party_size);
                *r.booked.entry(slot.clone()).or_default() += i64::from(*party_size);
                slot.clone()
            }
            Decision::OfferDeclined {
                offer_id,
                slot,
                party_size,
                offers,
            }
            | Decision::OfferLapsed {
                offer_id,
                slot,
                party_size,
                offers,
                ..
            } => {
                if matches!(outcome.decision, Decision::OfferLapsed { .. }) {
                    r.lapsed += 1;
                }
                if open.remove(offer_id).is_none() {
                    r.problems
                        .push(format!("{offer_id} ended without being outstanding"));
                }
                *offered.entry(slot.clone()).or_default() -= i64::from(*party_size);
                offer(offers, &mut offered, &mut open);
                slot.clone()
            }
            _ => continue,
        };
        let booked = r.booked.get(&slot).copied().unwrap_or(0);
        let held = booked + offered.get(&slot).copied().unwrap_or(0);
        let cap = capacity.get(&slot).copied().map_or(0, i64::from);
        if held > cap || booked < 0 {
            r.problems.push(format!(
                "{slot} at offset {}: {booked} booked, {held} booked or offered, of {cap}",
                outcome.position.offset
            ));
        }
    }
    r
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let diners = args.users_or(3_000, 300);
    let covers: u32 = if args.small { 90 } else { 600 };
    let capacity: [u32; 3] = [0, 1, 2].map(|i| covers * SLOTS[i].2 / 100);
    let date = (Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .format("%Y-%m-%d")
        .to_string();
    let started = DemoStack::start(args).await?;
    let addr = started.stack.addr;
    println!(
        "turnstile demo --scenario restaurant: {} parties rush for {} covers in 3 slots on {date} \
         (offers last {OFFER_TTL_SECONDS} s) over HTTP on {addr} ({} partitions, data in {})",
        thousands(diners),
        capacity.iter().sum::<u32>(),
        args.tuning.partitions,
        started.data_dir.display()
    );
    let crowd = Crowd::new(addr.into(), args.connections as usize, args.retry_every);
    let create = crowd
        .post("/v1/venues", "create-demo-bistro", venue_spec(capacity))
        .await;
    if !matches!(
        create,
        Reply::Decided {
            decision: Decision::VenueCreated { .. },
            ..
        }
    ) {
        anyhow::bail!("creating the venue answered {create:?}");
    }
    let evening = Evening {
        crowd,
        tally: Arc::new(Mutex::new(Tally::default())),
        date: date.clone(),
        seed: args.seed,
        cancel_ms_max: if args.small { 2_000 } else { 5_000 },
        offers_open: Arc::new(AtomicU64::new(0)),
        lookups: Arc::new(AtomicBool::new(true)),
        offers_until: Instant::now() + Duration::from_secs(if args.small { 10 } else { 20 }),
    };
    let lookups = Arc::clone(&evening.lookups);
    let (active, show) = (args.connections as usize * 4, !args.quiet);
    let run = on_crowd_runtime(move || rush(evening, diners, active, show)).await?;
    let (outcomes, audit) = started.stop(&[VENUE_ID.to_string()]).await?;
    let capacity_of: BTreeMap<String, u32> = SLOTS
        .iter()
        .zip(capacity)
        .map(|((start, ..), covers)| (format!("{date}T{start}"), covers))
        .collect();
    let journal = replay_journal(&outcomes, &capacity_of);

    let t = &run.tally;
    println!();
    print!("{}", run.crowd.render());
    println!(
        "  parties       {} in {:.2} s: {} booked, {} waitlisted, {} turned away (waitlist full)",
        thousands(diners),
        run.elapsed.as_secs_f64(),
        thousands(t.bookings),
        thousands(t.waitlisted),
        thousands(t.turned_away)
    );
    println!(
        "  cancelled     {} bookings; {} offers made to waiting parties ({} after lapses)",
        thousands(t.cancellations),
        thousands(t.offers_made),
        thousands(t.offers_from_lapses)
    );
    println!(
        "  promotions    {} accepted, {} declined, {} ignored, {} answered too late",
        thousands(t.accepted),
        thousands(t.declined),
        thousands(t.ignored),
        thousands(t.late)
    );
    println!(
        "  lapsed        {} offers (expiry scheduler, from the journal){}",
        thousands(journal.lapsed),
        if lookups.load(Ordering::Relaxed) {
            ""
        } else {
            "; the edge has no request lookup for venues, so offers made by lapses went unseen"
        }
    );
    let refused: Vec<String> = t
        .rejections
        .iter()
        .map(|(code, n)| format!("{code} {}", thousands(*n)))
        .collect();
    println!(
        "  refused       {}",
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
    if let Some(view) = &run.view {
        for slot in &view.slots {
            println!(
                "  slot {}  {:>4} of {:>4} covers booked, {} offered, {} waiting",
                slot.slot,
                slot.booked_covers,
                slot.capacity_covers,
                slot.offered_covers,
                slot.waitlist_length
            );
        }
    }
    print!("{audit}");

    let mut checks = Vec::new();
    checks.push((
        format!(
            "covers never over capacity in {} views polled during the rush",
            thousands(run.watch.views)
        ),
        run.watch.over_capacity.is_empty() && run.watch.views > 0,
    ));
    for problem in run.watch.over_capacity.iter().take(5) {
        println!("  - {problem}");
    }
    checks.push((
        format!(
            "journal replay: covers never over capacity, offers answered once ({} problems)",
            journal.problems.len()
        ),
        journal.problems.is_empty(),
    ));
    for problem in journal.problems.iter().take(5) {
        println!("  - {problem}");
    }
    let booked_ok = |booked: &BTreeMap<String, i64>| {
        capacity_of.keys().all(|slot| {
            booked.get(slot).copied().unwrap_or(0) == t.booked.get(slot).copied().unwrap_or(0)
        })
    };
    match &run.view {
        Some(view) => checks.push((
            "final view: each slot's booked covers are what the answers add up to, within capacity"
                .to_string(),
            view.slots.len() == SLOTS.len()
                && booked_ok(
                    &view
                        .slots
                        .iter()
                        .map(|s| (s.slot.clone(), i64::from(s.booked_covers)))
                        .collect(),
                )
                && view
                    .slots
                    .iter()
                    .all(|s| s.booked_covers + s.offered_covers <= s.capacity_covers),
        )),
        None => checks.push(("the venue's view loaded".to_string(), false)),
    }
    checks.push((
        format!(
            "journal: booked covers per slot and {} promotions match the answers",
            journal.accepted
        ),
        booked_ok(&journal.booked) && journal.accepted == t.accepted,
    ));
    checks.push(("the audit passed".to_string(), audit.passed()));
    Ok(verdict(&checks, run.crowd.failures()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_venue_is_a_valid_spec() {
        for covers in [90, 600] {
            let capacity: [u32; 3] = [0, 1, 2].map(|i| covers * SLOTS[i].2 / 100);
            let mut spec = venue_spec(capacity);
            spec.as_object_mut().expect("an object").remove("venue_id");
            let spec: turnstile_schemas::venue::VenueSpec =
                serde_json::from_value(spec).expect("parses");
            assert!(spec.validate().is_ok());
        }
        assert_eq!(PARTY_WEIGHTS.iter().sum::<u32>(), 100);
    }
}
