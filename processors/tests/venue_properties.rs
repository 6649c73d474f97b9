//! Property tests of the venue state machine ([`Venue`]) on random command streams.
//!
//! Each case generates one venue (a time zone out of America/New_York, Asia/Seoul and
//! Europe/London; one to three daily slots out of starts that include 01:30, a start New
//! York passes twice on 2026-11-01, 02:30, which it skips on 2026-03-08, and 23:30, a slot
//! running past midnight; 60 to 150 minutes long so that slots overlap; 2 to 6 covers; a
//! party limit up to 4; offers held 1, 10 or 60 minutes; strict or group-aware waitlist
//! order; 0 to 3 bookable days ahead), then a random run of commands by four guests (so
//! that slots fill and waitlists form): bookings and waitlist joins for slots of the days
//! around the clock base (and malformed or unknown slot ids, parties of 0 or over the
//! limit), cancellations by the holder and by others, of missing and noncanonical ids,
//! offers accepted or declined by their guest or another user, retries of earlier
//! commands at the current time, duplicates at their original time, re-creates with the
//! same and another spec, lapse timers fired early, on time and late, every due timer
//! fired at its due time (as the scheduler does, cascades included), and clock moves
//! forwards and backwards, also exactly onto (or a second beside) offer expiries and
//! slot starts. Clock bases sit next to the 2026 New York daylight-saving changes and an
//! ordinary summer day. At the end every timer still pending is fired at its due time.
//!
//! The driver does what the partition will: `decide`, then `evolve` the decision and ask
//! it for its `timers`.
//!
//! | test | property |
//! |---|---|
//! | `decisions_match_reference_model` | every decision equals an independent, plainly written model's (`Model`) |
//! | `no_overbooking` | booked + offered covers never exceed a slot's capacity, from the decisions alone, and the state's view agrees |
//! | `no_overlapping_bookings` | a guest never has two bookings in overlapping slots |
//! | `promotions_are_fair` | freed covers go, in joining order, to every waiting party that fits (group-aware) or to the head while it fits (strict); never after the slot starts; offers expire at min(ttl, start) |
//! | `every_offer_ends_once` | every offer is accepted, declined or lapses exactly once, by its guest, in time; timers are scheduled for exactly the offers made |
//! | `cancel_frees_exactly_the_booking` | a cancellation frees the booking's covers, no more, no less |
//! | `replay_is_byte_identical` | determinism: the same stream gives byte-identical decisions |
//! | `restore_then_continue_equals_uninterrupted` | create + evolve over the recorded decisions (through JSON) decides the rest like the uninterrupted state |
//! | `generator_exercises_every_rule` | guards the others against being vacuous |
//!
//! Failing cases are not persisted (`failure_persistence: None`); proptest prints the
//! shrunk stream, one line per command.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use turnstile_processors::domain::Domain;
use turnstile_processors::venue::Venue;
use turnstile_schemas::venue::{
    SlotAvailability, SlotSpec, VenueCommand, VenueSpec, WaitlistOffer,
};
use turnstile_schemas::{Command, Decision, Rejection};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

const VENUE: &str = "bistro";
const TIME_ZONES: [&str; 3] = ["America/New_York", "Asia/Seoul", "Europe/London"];
/// Daily starts to choose from, in ascending order.
const STARTS: [&str; 7] = [
    "01:30", "02:30", "12:00", "18:00", "19:00", "20:30", "23:30",
];
const DURATIONS_MINUTES: [u32; 4] = [60, 90, 120, 150];
const TTLS_SECONDS: [u32; 3] = [60, 600, 3_600];
/// Size of the guest pool: small, so that slots fill and guests collide.
const USERS: usize = 5;
const OPERATOR: &str = "operator";
const OPS_MAX: usize = 100;
/// Days around the base's local date that commands name slots on.
const DAY_OFFSETS: std::ops::RangeInclusive<i64> = -1..=4;

/// Next to the New York spring-forward (2026-03-08) and fall-back (2026-11-01) days, and
/// an ordinary summer day.
const BASES: [&str; 3] = [
    "2026-03-07T12:00:00Z",
    "2026-10-31T12:00:00Z",
    "2026-06-15T00:00:00Z",
];

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn user(index: usize) -> String {
    format!("u{index}")
}

fn rejected<T>(reason: Rejection) -> Result<T, Rejection> {
    Err(reason)
}

/// The status of a result: the decision's, or the rejection's code.
fn status(result: &Result<Decision, Rejection>) -> &'static str {
    match result {
        Ok(decision) => decision.status(),
        Err(reason) => reason.code(),
    }
}

/// The offers a decision makes.
fn offers_of(decision: &Decision) -> &[WaitlistOffer] {
    match decision {
        Decision::BookingCancelled { offers, .. }
        | Decision::OfferDeclined { offers, .. }
        | Decision::OfferLapsed { offers, .. } => offers,
        _ => &[],
    }
}

/// The slot a decision acts on.
fn slot_of(decision: &Decision) -> Option<&str> {
    match decision {
        Decision::TableBooked { slot, .. }
        | Decision::BookingCancelled { slot, .. }
        | Decision::Waitlisted { slot, .. }
        | Decision::OfferAccepted { slot, .. }
        | Decision::OfferDeclined { slot, .. }
        | Decision::OfferLapsed { slot, .. } => Some(slot),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct VenueGen {
    time_zone: usize,
    /// (index into STARTS, duration index, capacity); deduplicated and sorted by start.
    slots: Vec<(usize, usize, u32)>,
    party_size_max: u32,
    ttl: usize,
    strict: bool,
    bookable_days_ahead: u32,
}

impl VenueGen {
    fn spec(&self) -> VenueSpec {
        let mut by_start: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        for &(start, duration, capacity) in &self.slots {
            by_start.insert(start, (duration, capacity));
        }
        let slots: Vec<SlotSpec> = by_start
            .iter()
            .map(|(&start, &(duration, capacity))| SlotSpec {
                start: STARTS[start].to_string(),
                duration_minutes: DURATIONS_MINUTES[duration],
                capacity_covers: capacity,
            })
            .collect();
        let smallest = slots.iter().map(|s| s.capacity_covers).min().unwrap();
        VenueSpec {
            locale: None,
            title: String::new(),
            time_zone: TIME_ZONES[self.time_zone].to_string(),
            slots,
            party_size_max: self.party_size_max.min(smallest),
            offer_ttl_seconds: TTLS_SECONDS[self.ttl],
            strict_waitlist_order: self.strict,
            bookable_days_ahead: self.bookable_days_ahead,
        }
    }
}

fn venue_gen() -> impl Strategy<Value = VenueGen> {
    (
        0..TIME_ZONES.len(),
        proptest::collection::vec(
            (0..STARTS.len(), 0..DURATIONS_MINUTES.len(), 2..=3_u32),
            1..=3,
        ),
        2..=4_u32,
        0..TTLS_SECONDS.len(),
        any::<bool>(),
        0..=3_u32,
    )
        .prop_map(
            |(time_zone, slots, party_size_max, ttl, strict, bookable_days_ahead)| VenueGen {
                time_zone,
                slots,
                party_size_max,
                ttl,
                strict,
                bookable_days_ahead,
            },
        )
}

/// One step before it is realised against the model. `day` is an offset from the base's
/// local date; `slot` picks among the venue's starts.
#[derive(Debug, Clone)]
enum Op {
    Book {
        day: i64,
        slot: Index,
        user: usize,
        party: u32,
        /// Instead of `day` and `slot`, the slot of this earlier booking.
        near: Option<Index>,
    },
    Join {
        day: i64,
        slot: Index,
        user: usize,
        party: u32,
        /// Instead of `day` and `slot`, the slot of this earlier booking.
        near: Option<Index>,
    },
    /// A slot id that names no slot (malformed, noncanonical, not a start of the venue).
    BadSlot {
        user: usize,
        kind: u8,
        join: bool,
    },
    /// The holder of a booking cancels it (often already cancelled or started).
    CancelHeld(Index),
    /// Anyone cancels any booking.
    CancelAny {
        booking: Index,
        user: usize,
    },
    /// A cancel or answer naming no booking or offer.
    Missing {
        user: usize,
        kind: u8,
        what: u8,
    },
    /// The guest of an offer (or, `by_guest` false, someone else) accepts it; with
    /// `edge`, the clock first jumps to a second before (-1) or onto (0) its expiry.
    Accept {
        offer: Index,
        by_guest: bool,
        edge: Option<i64>,
    },
    /// The guest of an offer declines it.
    Decline(Index),
    /// An offer's lapse timer fires early (`when` 0, an outstanding offer's), on time (1)
    /// or late (2).
    FireTimer {
        offer: Index,
        when: u8,
    },
    /// Every timer due by now fires, at its due time.
    FireDue,
    /// An earlier command again, at the current time.
    Retry(Index),
    /// An earlier command again, at its original time.
    Duplicate(Index),
    /// The venue created again with its spec (or, `same` false, another).
    Recreate {
        same: bool,
    },
    Tick(i64),
    /// The clock jumps onto an offer expiry or a slot start, nudged by -1, 0 or +1 s.
    JumpTo {
        target: Index,
        nudge_secs: i64,
    },
}

fn clock_step_secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        -2..=2_i64,
        (-8..=8_i64).prop_map(|q| q * 15 * 60),
        (-8..=8_i64).prop_map(|h| h * 3_600),
    ]
}

/// Mostly today and tomorrow (local to the clock), so that slots fill; now and then
/// further out or yesterday.
fn day() -> impl Strategy<Value = i64> {
    prop_oneof![4 => 0..=1_i64, 1 => DAY_OFFSETS]
}

/// Half the time, the slot of an earlier booking (so that slots fill and waitlists form).
fn near() -> impl Strategy<Value = Option<Index>> {
    proptest::option::of(any::<Index>())
}

/// Now and then, the clock jumps next to (-1 s) or onto an offer's expiry first.
fn edge() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![6 => Just(None), 1 => Just(Some(-1_i64)), 1 => Just(Some(0_i64))]
}

/// Mostly parties the venue takes; now and then 0 or one over the largest limit.
fn party() -> impl Strategy<Value = u32> {
    prop_oneof![10 => 1..=2_u32, 3 => Just(3_u32), 1 => Just(0_u32), 1 => Just(5_u32)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (day(), any::<Index>(), 0..USERS, party(), near())
            .prop_map(|(day, slot, user, party, near)| Op::Book { day, slot, user, party, near }),
        7 => (day(), any::<Index>(), 0..USERS, party(), near())
            .prop_map(|(day, slot, user, party, near)| Op::Join { day, slot, user, party, near }),
        1 => (0..USERS, 0..4_u8, any::<bool>())
            .prop_map(|(user, kind, join)| Op::BadSlot { user, kind, join }),
        5 => any::<Index>().prop_map(Op::CancelHeld),
        1 => (any::<Index>(), 0..USERS).prop_map(|(booking, user)| Op::CancelAny { booking, user }),
        1 => (0..USERS, 0..4_u8, 0..3_u8).prop_map(|(user, kind, what)| Op::Missing { user, kind, what }),
        5 => (any::<Index>(), prop::bool::weighted(0.85), edge())
            .prop_map(|(offer, by_guest, edge)| Op::Accept { offer, by_guest, edge }),
        2 => any::<Index>().prop_map(Op::Decline),
        3 => (any::<Index>(), 0..3_u8).prop_map(|(offer, when)| Op::FireTimer { offer, when }),
        3 => Just(Op::FireDue),
        2 => any::<Index>().prop_map(Op::Retry),
        1 => any::<Index>().prop_map(Op::Duplicate),
        1 => any::<bool>().prop_map(|same| Op::Recreate { same }),
        5 => clock_step_secs().prop_map(Op::Tick),
        2 => (any::<Index>(), -1..=1_i64)
            .prop_map(|(target, nudge_secs)| Op::JumpTo { target, nudge_secs }),
    ]
}

/// One command as the log would carry it.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    user: String,
    command: VenueCommand,
    at: DateTime<Utc>,
}

#[derive(Clone)]
struct Stream {
    spec: VenueSpec,
    steps: Vec<Step>,
    /// The model's decision for each step.
    predicted: Vec<Result<Decision, Rejection>>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "venue {:?}", self.spec)?;
        for (i, (step, predicted)) in self.steps.iter().zip(&self.predicted).enumerate() {
            let command = serde_json::to_string(&step.command).unwrap();
            let expected = match predicted {
                Ok(decision) => serde_json::to_string(decision).unwrap(),
                Err(reason) => reason.code().to_string(),
            };
            writeln!(
                f,
                "  #{i:<3} {} {:<8} {command}  => model: {expected}",
                step.at.format("%Y-%m-%dT%H:%M:%SZ"),
                step.user,
            )?;
        }
        Ok(())
    }
}

/// Realises operations into steps, asking the model what exists at each point.
struct Builder {
    model: Model,
    gen_spec: VenueSpec,
    base_date: NaiveDate,
    now: DateTime<Utc>,
    steps: Vec<Step>,
    predicted: Vec<Result<Decision, Rejection>>,
    /// Offers whose timer has fired on time (or late): the scheduler fires each once.
    fired: BTreeSet<usize>,
}

impl Builder {
    fn push_at(&mut self, user: &str, command: VenueCommand, at: DateTime<Utc>) {
        let predicted = self.model.apply(user, &command, at);
        self.steps.push(Step {
            user: user.to_string(),
            command,
            at,
        });
        self.predicted.push(predicted);
    }

    fn push(&mut self, user: &str, command: VenueCommand) {
        self.push_at(user, command, self.now);
    }

    fn slot(&self, day: i64, slot: Index, near: Option<Index>) -> String {
        if let (Some(pick), false) = (near, self.model.bookings.is_empty()) {
            return self.model.bookings[pick.index(self.model.bookings.len())]
                .slot
                .clone();
        }
        let today = self.now.with_timezone(&self.model.time_zone).date_naive();
        let date = today + Duration::days(day);
        let start = &self.gen_spec.slots[slot.index(self.gen_spec.slots.len())].start;
        format!("{}T{start}", date.format("%Y-%m-%d"))
    }

    /// A slot of a booking that has no room for a party of `party` now, if any.
    fn full_slot(&self, pick: Index, party: u32) -> Option<String> {
        let full: BTreeSet<String> = self
            .model
            .bookings
            .iter()
            .filter(|b| b.starts_at > self.now)
            .filter(|b| {
                let capacity = self.model.slot(&b.slot).unwrap().capacity;
                !self.model.room(&b.slot, capacity, party)
            })
            .map(|b| b.slot.clone())
            .collect();
        let full: Vec<String> = full.into_iter().collect();
        (!full.is_empty()).then(|| full[pick.index(full.len())].clone())
    }

    /// Fires every timer due by now that has not fired, in due order, at its due time;
    /// the offers they cause are fired too when due by now.
    fn fire_due(&mut self, until: DateTime<Utc>) {
        loop {
            let next = (0..self.model.offers.len())
                .filter(|i| !self.fired.contains(i) && self.model.offers[*i].expires_at <= until)
                .min_by_key(|&i| (self.model.offers[i].expires_at, i));
            let Some(i) = next else { break };
            self.fired.insert(i);
            let offer = &self.model.offers[i];
            let (guest, due) = (offer.user.clone(), offer.expires_at);
            let command = VenueCommand::LapseOffer {
                offer_id: offer_id(i + 1),
            };
            self.push_at(&guest, command, due);
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Book {
                day,
                slot,
                user: u,
                party,
                near,
            } => {
                let slot = self.slot(*day, *slot, *near);
                let command = VenueCommand::Book {
                    slot,
                    party_size: *party,
                };
                self.push(&user(*u), command);
            }
            Op::Join {
                day,
                slot,
                user: u,
                party,
                near,
            } => {
                let slot = match near {
                    Some(pick) => self
                        .full_slot(*pick, *party)
                        .unwrap_or_else(|| self.slot(*day, *slot, None)),
                    None => self.slot(*day, *slot, None),
                };
                let command = VenueCommand::JoinWaitlist {
                    slot,
                    party_size: *party,
                };
                self.push(&user(*u), command);
            }
            Op::BadSlot {
                user: u,
                kind,
                join,
            } => {
                let date = self.base_date + Duration::days(1);
                let start = &self.gen_spec.slots[0].start;
                let good = format!("{}T{start}", date.format("%Y-%m-%d"));
                let slot = match kind {
                    0 => format!("{good}:00"),
                    1 => good.replace('T', " "),
                    2 => format!("{}T18:05", &good[..10]),
                    _ => "tomorrow".to_string(),
                };
                let command = if *join {
                    VenueCommand::JoinWaitlist {
                        slot,
                        party_size: 1,
                    }
                } else {
                    VenueCommand::Book {
                        slot,
                        party_size: 1,
                    }
                };
                self.push(&user(*u), command);
            }
            Op::CancelHeld(pick) => {
                // An active booking when there is one, else any.
                let active: Vec<usize> = (0..self.model.bookings.len())
                    .filter(|&i| !self.model.bookings[i].cancelled)
                    .collect();
                let all: Vec<usize> = (0..self.model.bookings.len()).collect();
                let candidates = if active.is_empty() { all } else { active };
                if !candidates.is_empty() {
                    let i = candidates[pick.index(candidates.len())];
                    let holder = self.model.bookings[i].user.clone();
                    let booking_id = booking_id(i + 1);
                    self.push(&holder, VenueCommand::CancelBooking { booking_id });
                }
            }
            Op::CancelAny { booking, user: u } => {
                let n = booking.index(self.model.bookings.len() + 1) + 1;
                let booking_id = booking_id(n);
                self.push(&user(*u), VenueCommand::CancelBooking { booking_id });
            }
            Op::Missing {
                user: u,
                kind,
                what,
            } => {
                let tag = ["b", "o", "w"][*what as usize];
                let next = match what {
                    0 => self.model.bookings.len() + 1,
                    _ => self.model.offers.len() + 1,
                };
                let id = match kind {
                    0 => format!("{VENUE}-{tag}{next}"),
                    1 => format!("{VENUE}-{tag}0"),
                    2 => format!("{VENUE}-{tag}01"),
                    _ => format!("other-{tag}1"),
                };
                let command = match what {
                    0 => VenueCommand::CancelBooking { booking_id: id },
                    1 => VenueCommand::AcceptOffer { offer_id: id },
                    // A waitlist id is no offer id.
                    _ => VenueCommand::DeclineOffer { offer_id: id },
                };
                self.push(&user(*u), command);
            }
            Op::Accept {
                offer,
                by_guest,
                edge,
            } => {
                if !self.model.offers.is_empty() {
                    let i = offer.index(self.model.offers.len());
                    if let Some(nudge) = edge {
                        self.now = self.model.offers[i].expires_at + Duration::seconds(*nudge);
                    }
                    let guest = &self.model.offers[i].user;
                    let who = if *by_guest {
                        guest.clone()
                    } else {
                        (0..USERS).map(user).find(|u| u != guest).unwrap()
                    };
                    let offer_id = offer_id(i + 1);
                    self.push(&who, VenueCommand::AcceptOffer { offer_id });
                }
            }
            Op::Decline(pick) => {
                if !self.model.offers.is_empty() {
                    let i = pick.index(self.model.offers.len());
                    let guest = self.model.offers[i].user.clone();
                    let offer_id = offer_id(i + 1);
                    self.push(&guest, VenueCommand::DeclineOffer { offer_id });
                }
            }
            Op::FireTimer { offer, when } => {
                // Early firings go to outstanding offers, where they matter.
                let open: Vec<usize> = (0..self.model.offers.len())
                    .filter(|&i| *when > 0 || self.model.offers[i].answer == Answer::Open)
                    .collect();
                if !open.is_empty() {
                    let i = open[offer.index(open.len())];
                    let offer = &self.model.offers[i];
                    let (guest, due) = (offer.user.clone(), offer.expires_at);
                    let at = match when {
                        0 => due - Duration::seconds(30),
                        1 => due,
                        _ => due.max(self.now) + Duration::seconds(1),
                    };
                    if *when > 0 {
                        self.fired.insert(i);
                    }
                    let offer_id = offer_id(i + 1);
                    self.push_at(&guest, VenueCommand::LapseOffer { offer_id }, at);
                }
            }
            Op::FireDue => self.fire_due(self.now),
            Op::Retry(pick) => {
                if !self.steps.is_empty() {
                    let earlier = self.steps[pick.index(self.steps.len())].clone();
                    self.push(&earlier.user, earlier.command);
                }
            }
            Op::Duplicate(pick) => {
                if !self.steps.is_empty() {
                    let earlier = self.steps[pick.index(self.steps.len())].clone();
                    self.push_at(&earlier.user, earlier.command, earlier.at);
                }
            }
            Op::Recreate { same } => {
                let mut spec = self.gen_spec.clone();
                if !*same {
                    spec.strict_waitlist_order = !spec.strict_waitlist_order;
                }
                self.push(OPERATOR, VenueCommand::CreateVenue { spec });
            }
            Op::Tick(secs) => self.now += Duration::seconds(*secs),
            Op::JumpTo { target, nudge_secs } => {
                let instants = self.model.instants_of_interest();
                if !instants.is_empty() {
                    self.now =
                        instants[target.index(instants.len())] + Duration::seconds(*nudge_secs);
                }
            }
        }
    }
}

fn booking_id(n: usize) -> String {
    format!("{VENUE}-b{n}")
}

fn offer_id(n: usize) -> String {
    format!("{VENUE}-o{n}")
}

fn waitlist_id(n: usize) -> String {
    format!("{VENUE}-w{n}")
}

fn build_stream(gen: &VenueGen, base: DateTime<Utc>, ops: &[Op]) -> Stream {
    let spec = gen.spec();
    let model = Model::new(spec.clone());
    let base_date = base.with_timezone(&model.time_zone).date_naive();
    let mut builder = Builder {
        model,
        gen_spec: spec.clone(),
        base_date,
        now: base,
        steps: Vec::new(),
        predicted: Vec::new(),
        fired: BTreeSet::new(),
    };
    for op in ops {
        builder.step(op);
    }
    // The scheduler fires whatever is still pending.
    builder.fire_due(DateTime::<Utc>::MAX_UTC);
    Stream {
        spec,
        steps: builder.steps,
        predicted: builder.predicted,
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        venue_gen(),
        0..BASES.len(),
        0..96_i64,
        proptest::collection::vec(op(), 0..=OPS_MAX),
    )
        .prop_map(|(gen, base, quarter_hours, ops)| {
            let base = utc(BASES[base]) + Duration::minutes(15 * quarter_hours);
            build_stream(&gen, base, &ops)
        })
}

// ---------------------------------------------------------------------------------------
// The reference model: the venue rules, written as plainly as possible
// ---------------------------------------------------------------------------------------

/// An independent statement of the rules. It shares only the schema types with the
/// processor: slots are found by string comparison, instants with chrono-tz's `earliest`,
/// ids by formatting, and every count by scanning every booking, entry and offer.
#[derive(Debug)]
struct Model {
    spec: VenueSpec,
    time_zone: Tz,
    bookings: Vec<ModelBooking>,
    entries: Vec<ModelEntry>,
    offers: Vec<ModelOffer>,
}

#[derive(Debug, Clone)]
struct ModelBooking {
    user: String,
    slot: String,
    party: u32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    cancelled: bool,
}

#[derive(Debug, Clone)]
struct ModelEntry {
    user: String,
    slot: String,
    party: u32,
    waiting: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Open,
    Accepted,
    Declined,
    Lapsed,
}

#[derive(Debug, Clone)]
struct ModelOffer {
    user: String,
    slot: String,
    party: u32,
    expires_at: DateTime<Utc>,
    answer: Answer,
}

/// A slot of a day: its date, start, end and capacity.
struct ModelSlot {
    date: NaiveDate,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    capacity: u32,
}

impl Model {
    fn new(spec: VenueSpec) -> Self {
        Model {
            time_zone: spec.time_zone.parse().unwrap(),
            spec,
            bookings: Vec::new(),
            entries: Vec::new(),
            offers: Vec::new(),
        }
    }

    fn slot(&self, slot: &str) -> Option<ModelSlot> {
        let local = NaiveDateTime::parse_from_str(slot, "%Y-%m-%dT%H:%M").ok()?;
        if local.format("%Y-%m-%dT%H:%M").to_string() != slot {
            return None;
        }
        let spec = self.spec.slots.iter().find(|s| slot.ends_with(&s.start))?;
        let starts_at = self
            .time_zone
            .from_local_datetime(&local)
            .earliest()?
            .with_timezone(&Utc);
        Some(ModelSlot {
            date: local.date(),
            starts_at,
            ends_at: starts_at + Duration::minutes(i64::from(spec.duration_minutes)),
            capacity: spec.capacity_covers,
        })
    }

    fn booked(&self, slot: &str) -> u32 {
        self.bookings
            .iter()
            .filter(|b| b.slot == slot && !b.cancelled)
            .map(|b| b.party)
            .sum()
    }

    fn offered(&self, slot: &str) -> u32 {
        self.offers
            .iter()
            .filter(|o| o.slot == slot && o.answer == Answer::Open)
            .map(|o| o.party)
            .sum()
    }

    fn waiting(&self, slot: &str) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|&i| self.entries[i].waiting && self.entries[i].slot == slot)
            .collect()
    }

    fn free(&self, slot: &str, capacity: u32) -> u32 {
        capacity - self.booked(slot) - self.offered(slot)
    }

    fn room(&self, slot: &str, capacity: u32, party: u32) -> bool {
        if self.spec.strict_waitlist_order && !self.waiting(slot).is_empty() {
            return false;
        }
        party <= self.free(slot, capacity)
    }

    /// Whether `user` has a booking (or, with `offers`, an open offer) overlapping `s`.
    fn overlaps(&self, user: &str, s: &ModelSlot, offers: bool) -> bool {
        let booked = self.bookings.iter().any(|b| {
            b.user == user && !b.cancelled && b.starts_at < s.ends_at && s.starts_at < b.ends_at
        });
        let offered = offers
            && self.offers.iter().any(|o| {
                let other = self.slot(&o.slot).unwrap();
                o.user == user
                    && o.answer == Answer::Open
                    && other.starts_at < s.ends_at
                    && s.starts_at < other.ends_at
            });
        booked || offered
    }

    fn admit(&self, slot: &str, party: u32, now: DateTime<Utc>) -> Result<ModelSlot, Rejection> {
        let Some(s) = self.slot(slot) else {
            return rejected(Rejection::SlotNotFound);
        };
        if party == 0 {
            return rejected(Rejection::PartySizeZero);
        }
        if party > self.spec.party_size_max {
            return rejected(Rejection::PartyTooLarge);
        }
        if s.starts_at <= now {
            return rejected(Rejection::SlotInPast);
        }
        let today = now.with_timezone(&self.time_zone).date_naive();
        if (s.date - today).num_days() > i64::from(self.spec.bookable_days_ahead) {
            return rejected(Rejection::SlotTooFarAhead);
        }
        Ok(s)
    }

    fn apply(
        &mut self,
        user: &str,
        command: &VenueCommand,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        match command {
            VenueCommand::CreateVenue { spec } => {
                if *spec == self.spec {
                    Ok(Decision::VenueCreated { spec: spec.clone() })
                } else {
                    rejected(Rejection::ResourceExists)
                }
            }
            VenueCommand::Book { slot, party_size } => {
                let s = self.admit(slot, *party_size, now)?;
                if self.overlaps(user, &s, true) {
                    return rejected(Rejection::OverlappingBooking);
                }
                if !self.room(slot, s.capacity, *party_size) {
                    return rejected(Rejection::SlotFull);
                }
                self.bookings.push(ModelBooking {
                    user: user.to_string(),
                    slot: slot.clone(),
                    party: *party_size,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    cancelled: false,
                });
                Ok(Decision::TableBooked {
                    booking_id: booking_id(self.bookings.len()),
                    slot: slot.clone(),
                    party_size: *party_size,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                })
            }
            VenueCommand::JoinWaitlist { slot, party_size } => {
                let s = self.admit(slot, *party_size, now)?;
                let waiting = self.waiting(slot);
                if waiting.iter().any(|&i| self.entries[i].user == user) {
                    return rejected(Rejection::AlreadyWaitlisted);
                }
                if self.overlaps(user, &s, true) {
                    return rejected(Rejection::OverlappingBooking);
                }
                if self.room(slot, s.capacity, *party_size) {
                    return rejected(Rejection::SlotHasRoom);
                }
                if waiting.len() >= 200 {
                    return rejected(Rejection::WaitlistFull);
                }
                self.entries.push(ModelEntry {
                    user: user.to_string(),
                    slot: slot.clone(),
                    party: *party_size,
                    waiting: true,
                });
                Ok(Decision::Waitlisted {
                    waitlist_id: waitlist_id(self.entries.len()),
                    slot: slot.clone(),
                    party_size: *party_size,
                    position: waiting.len() as u32 + 1,
                })
            }
            VenueCommand::CancelBooking { booking_id: id } => {
                let Some(i) = (0..self.bookings.len()).find(|&i| booking_id(i + 1) == *id) else {
                    return rejected(Rejection::BookingNotFound);
                };
                let b = self.bookings[i].clone();
                if b.user != user {
                    return rejected(Rejection::NotBookingHolder);
                }
                if b.cancelled {
                    return rejected(Rejection::BookingAlreadyCancelled);
                }
                if b.starts_at <= now {
                    return rejected(Rejection::SlotInPast);
                }
                self.bookings[i].cancelled = true;
                Ok(Decision::BookingCancelled {
                    booking_id: id.clone(),
                    slot: b.slot.clone(),
                    party_size: b.party,
                    offers: self.promote(&b.slot, now),
                })
            }
            VenueCommand::AcceptOffer { offer_id: id } => {
                let i = self.answerable(user, id, now)?;
                let o = self.offers[i].clone();
                let s = self.slot(&o.slot).unwrap();
                if self.overlaps(user, &s, false) {
                    return rejected(Rejection::OverlappingBooking);
                }
                self.offers[i].answer = Answer::Accepted;
                self.bookings.push(ModelBooking {
                    user: user.to_string(),
                    slot: o.slot.clone(),
                    party: o.party,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    cancelled: false,
                });
                Ok(Decision::OfferAccepted {
                    offer_id: id.clone(),
                    booking_id: booking_id(self.bookings.len()),
                    slot: o.slot,
                    party_size: o.party,
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                })
            }
            VenueCommand::DeclineOffer { offer_id: id } => {
                let i = self.answerable(user, id, now)?;
                self.offers[i].answer = Answer::Declined;
                let o = self.offers[i].clone();
                Ok(Decision::OfferDeclined {
                    offer_id: id.clone(),
                    slot: o.slot.clone(),
                    party_size: o.party,
                    offers: self.promote(&o.slot, now),
                })
            }
            VenueCommand::LapseOffer { offer_id: id } => {
                let Some(i) = (0..self.offers.len()).find(|&i| offer_id(i + 1) == *id) else {
                    return rejected(Rejection::OfferNotFound);
                };
                let o = self.offers[i].clone();
                match o.answer {
                    Answer::Accepted | Answer::Declined => {
                        return rejected(Rejection::OfferAlreadyAnswered)
                    }
                    Answer::Lapsed => return rejected(Rejection::OfferExpired),
                    Answer::Open if now < o.expires_at => return rejected(Rejection::NotDueYet),
                    Answer::Open => {}
                }
                self.offers[i].answer = Answer::Lapsed;
                Ok(Decision::OfferLapsed {
                    offer_id: id.clone(),
                    slot: o.slot.clone(),
                    party_size: o.party,
                    expired_at: o.expires_at,
                    offers: self.promote(&o.slot, now),
                })
            }
        }
    }

    fn answerable(&self, user: &str, id: &str, now: DateTime<Utc>) -> Result<usize, Rejection> {
        let Some(i) = (0..self.offers.len()).find(|&i| offer_id(i + 1) == id) else {
            return rejected(Rejection::OfferNotFound);
        };
        let o = &self.offers[i];
        if o.user != user {
            return rejected(Rejection::NotOfferGuest);
        }
        match o.answer {
            Answer::Accepted | Answer::Declined => rejected(Rejection::OfferAlreadyAnswered),
            Answer::Lapsed => rejected(Rejection::OfferExpired),
            Answer::Open if now >= o.expires_at => rejected(Rejection::OfferExpired),
            Answer::Open => Ok(i),
        }
    }

    /// Offers the covers now free in `slot` to the parties waiting for it.
    fn promote(&mut self, slot: &str, now: DateTime<Utc>) -> Vec<WaitlistOffer> {
        let s = self.slot(slot).unwrap();
        if s.starts_at <= now {
            return Vec::new();
        }
        let mut free = self.free(slot, s.capacity);
        let expires_at =
            (now + Duration::seconds(i64::from(self.spec.offer_ttl_seconds))).min(s.starts_at);
        let mut made = Vec::new();
        for i in self.waiting(slot) {
            let entry = self.entries[i].clone();
            if entry.party <= free {
                free -= entry.party;
                self.entries[i].waiting = false;
                self.offers.push(ModelOffer {
                    user: entry.user.clone(),
                    slot: slot.to_string(),
                    party: entry.party,
                    expires_at,
                    answer: Answer::Open,
                });
                made.push(WaitlistOffer {
                    offer_id: offer_id(self.offers.len()),
                    waitlist_id: waitlist_id(i + 1),
                    user_id: entry.user,
                    slot: slot.to_string(),
                    party_size: entry.party,
                    expires_at,
                });
            } else if self.spec.strict_waitlist_order {
                break;
            }
        }
        made
    }

    /// Offer expiries and the starts of every slot something happened in.
    fn instants_of_interest(&self) -> Vec<DateTime<Utc>> {
        let mut instants: Vec<DateTime<Utc>> = self.offers.iter().map(|o| o.expires_at).collect();
        instants.extend(self.bookings.iter().map(|b| b.starts_at));
        instants.extend(
            self.entries
                .iter()
                .filter_map(|e| self.slot(&e.slot).map(|s| s.starts_at)),
        );
        instants
    }
}

// ---------------------------------------------------------------------------------------
// Running the code under test
// ---------------------------------------------------------------------------------------

/// What the state machine did with one step.
#[derive(Debug, Clone)]
struct Record {
    result: Result<Decision, Rejection>,
    /// The timers the decision scheduled: (due, guest, offer id).
    timers: Vec<(DateTime<Utc>, String, String)>,
    /// The decision's slot as the view showed it before and after.
    view: Option<(SlotAvailability, SlotAvailability)>,
}

fn slot_view(venue: &Venue, slot: &str, now: DateTime<Utc>) -> SlotAvailability {
    let date = NaiveDate::parse_from_str(&slot[..10], "%Y-%m-%d").unwrap();
    venue
        .availability(date, now)
        .slots
        .into_iter()
        .find(|s| s.slot == slot)
        .unwrap()
}

/// Decides and evolves `steps` on `venue`, as the partition will.
fn drive(venue: &mut Venue, steps: &[Step]) -> Vec<Record> {
    steps
        .iter()
        .map(|step| {
            let result = venue.decide(&step.user, &step.command, step.at);
            let mut record = Record {
                result: result.clone(),
                timers: Vec::new(),
                view: None,
            };
            if let Ok(decision) = &result {
                let before = slot_of(decision).map(|s| slot_view(venue, s, step.at));
                venue.evolve(&step.user, decision);
                record.view =
                    before.map(|b| (b, slot_view(venue, slot_of(decision).unwrap(), step.at)));
                record.timers = decision
                    .timers(&step.user)
                    .into_iter()
                    .map(|t| {
                        let Command::Venue(VenueCommand::LapseOffer { offer_id }) = &t.command
                        else {
                            panic!("a venue schedules only lapse_offer timers: {t:?}");
                        };
                        assert_eq!(t.command.timer(), Some(("lapse_offer", offer_id.clone())));
                        (t.due_at, t.user_id, offer_id.clone())
                    })
                    .collect();
            }
            record
        })
        .collect()
}

fn run(stream: &Stream) -> (Venue, Vec<Record>) {
    let mut venue = Venue::create(VENUE, &stream.spec).unwrap();
    let records = drive(&mut venue, &stream.steps);
    (venue, records)
}

fn bytes(result: &Result<Decision, Rejection>) -> Vec<u8> {
    match result {
        Ok(decision) => serde_json::to_vec(decision).unwrap(),
        Err(reason) => serde_json::to_vec(reason).unwrap(),
    }
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

fn check_against_model(stream: &Stream, records: &[Record]) -> Result<(), TestCaseError> {
    for (i, (record, predicted)) in records.iter().zip(&stream.predicted).enumerate() {
        prop_assert_eq!(
            &record.result,
            predicted,
            "step #{} differs from the model",
            i
        );
    }
    Ok(())
}

/// Capacity per slot id, from the spec.
fn capacity(spec: &VenueSpec, slot: &str) -> u32 {
    spec.slots
        .iter()
        .find(|s| slot.ends_with(&s.start))
        .unwrap()
        .capacity_covers
}

#[derive(Debug, Clone)]
struct LedgerBooking {
    guest: String,
    slot: String,
    party: u32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    active: bool,
}

#[derive(Debug, Clone)]
struct LedgerOffer {
    guest: String,
    slot: String,
    party: u32,
    expires_at: DateTime<Utc>,
    closed: Option<&'static str>,
}

/// Covers, waitlists, bookings and offers per slot, from the decisions alone: the
/// invariants are checked on it independently of the state machine and of the model.
#[derive(Debug)]
struct Ledger {
    spec: VenueSpec,
    booked: HashMap<String, u32>,
    offered: HashMap<String, u32>,
    /// Per slot: (waitlist id, guest, party), in joining order.
    waiting: HashMap<String, Vec<(String, String, u32)>>,
    /// Per slot: its start, learnt from the bookings in it.
    starts: HashMap<String, DateTime<Utc>>,
    bookings: BTreeMap<String, LedgerBooking>,
    offers: BTreeMap<String, LedgerOffer>,
}

impl Ledger {
    fn new(spec: &VenueSpec) -> Self {
        Ledger {
            spec: spec.clone(),
            booked: HashMap::new(),
            offered: HashMap::new(),
            waiting: HashMap::new(),
            starts: HashMap::new(),
            bookings: BTreeMap::new(),
            offers: BTreeMap::new(),
        }
    }

    fn covers(&self, slot: &str) -> (u32, u32) {
        (
            self.booked.get(slot).copied().unwrap_or(0),
            self.offered.get(slot).copied().unwrap_or(0),
        )
    }

    /// Applies one decision, checking every invariant it touches.
    fn apply(&mut self, user: &str, at: DateTime<Utc>, d: &Decision) -> Result<(), TestCaseError> {
        match d {
            Decision::TableBooked {
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
            }
            | Decision::OfferAccepted {
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
                ..
            } => {
                if let Decision::OfferAccepted { offer_id, .. } = d {
                    let offer = self.close(offer_id, user, "accepted", at)?;
                    prop_assert_eq!((&offer.slot, offer.party), (slot, *party_size));
                } else {
                    prop_assert!(*starts_at > at, "booked {} at or after its start", slot);
                }
                prop_assert_eq!(booking_id, &format!("{VENUE}-b{}", self.bookings.len() + 1));
                for other in self.bookings.values() {
                    prop_assert!(
                        !(other.active
                            && other.guest == user
                            && other.starts_at < *ends_at
                            && *starts_at < other.ends_at),
                        "{} has overlapping bookings in {} and {}",
                        user,
                        other.slot,
                        slot
                    );
                }
                *self.booked.entry(slot.clone()).or_default() += party_size;
                self.starts.insert(slot.clone(), *starts_at);
                self.bookings.insert(
                    booking_id.clone(),
                    LedgerBooking {
                        guest: user.to_string(),
                        slot: slot.clone(),
                        party: *party_size,
                        starts_at: *starts_at,
                        ends_at: *ends_at,
                        active: true,
                    },
                );
            }
            Decision::BookingCancelled {
                booking_id,
                slot,
                party_size,
                offers,
            } => {
                let booking = self.bookings.get_mut(booking_id);
                prop_assert!(booking.is_some(), "cancelled {}, never booked", booking_id);
                let booking = booking.unwrap();
                prop_assert!(booking.active, "{} cancelled twice", booking_id);
                prop_assert_eq!(&booking.guest, user, "cancelled by its holder");
                prop_assert_eq!(&booking.slot, slot);
                prop_assert_eq!(booking.party, *party_size, "frees the booking's covers");
                prop_assert!(booking.starts_at > at, "cancelled after its start");
                booking.active = false;
                *self.booked.get_mut(slot).unwrap() -= party_size;
                self.promoted(slot, at, offers)?;
            }
            Decision::Waitlisted {
                waitlist_id,
                slot,
                party_size,
                position,
            } => {
                let waiting = self.waiting.entry(slot.clone()).or_default();
                prop_assert!(waiting.iter().all(|w| w.1 != user), "{} waits twice", user);
                waiting.push((waitlist_id.clone(), user.to_string(), *party_size));
                prop_assert_eq!(waiting.len(), *position as usize);
            }
            Decision::OfferDeclined {
                offer_id,
                slot,
                offers,
                ..
            } => {
                self.close(offer_id, user, "declined", at)?;
                self.promoted(slot, at, offers)?;
            }
            Decision::OfferLapsed {
                offer_id,
                slot,
                expired_at,
                offers,
                ..
            } => {
                let offer = self.close(offer_id, user, "lapsed", at)?;
                prop_assert_eq!(*expired_at, offer.expires_at);
                self.promoted(slot, at, offers)?;
            }
            _ => {}
        }
        if let Some(slot) = slot_of(d) {
            let (booked, offered) = self.covers(slot);
            prop_assert!(
                booked + offered <= capacity(&self.spec, slot),
                "{} has {} booked + {} offered covers, capacity {}",
                slot,
                booked,
                offered,
                capacity(&self.spec, slot)
            );
        }
        Ok(())
    }

    /// Closes an outstanding offer once, by its guest, in time.
    fn close(
        &mut self,
        offer_id: &str,
        user: &str,
        how: &'static str,
        at: DateTime<Utc>,
    ) -> Result<LedgerOffer, TestCaseError> {
        let offer = self.offers.get_mut(offer_id);
        prop_assert!(offer.is_some(), "{} {}, never made", offer_id, how);
        let offer = offer.unwrap();
        prop_assert_eq!(offer.closed, None, "{} {} after it ended", offer_id, how);
        prop_assert_eq!(&offer.guest, user, "{} {} for its guest", offer_id, how);
        if how == "lapsed" {
            prop_assert!(at >= offer.expires_at, "{} lapsed early", offer_id);
        } else {
            prop_assert!(at < offer.expires_at, "{} {} too late", offer_id, how);
        }
        offer.closed = Some(how);
        let offer = offer.clone();
        *self.offered.get_mut(&offer.slot).unwrap() -= offer.party;
        Ok(offer)
    }

    /// Rule 8, from the decisions: the offers freed covers caused are exactly the fair
    /// ones.
    fn promoted(
        &mut self,
        slot: &str,
        at: DateTime<Utc>,
        offers: &[WaitlistOffer],
    ) -> Result<(), TestCaseError> {
        let starts_at = self.starts[slot];
        let waiting = self.waiting.entry(slot.to_string()).or_default().clone();
        let mut expected = Vec::new();
        if at < starts_at {
            let (booked, offered) = self.covers(slot);
            let mut free = capacity(&self.spec, slot) - booked - offered;
            for entry in &waiting {
                if entry.2 <= free {
                    free -= entry.2;
                    expected.push(entry.clone());
                } else if self.spec.strict_waitlist_order {
                    break;
                }
            }
        }
        let made: Vec<(String, String, u32)> = offers
            .iter()
            .map(|o| (o.waitlist_id.clone(), o.user_id.clone(), o.party_size))
            .collect();
        prop_assert_eq!(&made, &expected, "unfair promotion in {} at {}", slot, at);
        let ttl = Duration::seconds(i64::from(self.spec.offer_ttl_seconds));
        for offer in offers {
            prop_assert_eq!(&offer.slot, slot);
            prop_assert_eq!(offer.expires_at, (at + ttl).min(starts_at));
            prop_assert_eq!(
                &offer.offer_id,
                &format!("{VENUE}-o{}", self.offers.len() + 1)
            );
            self.offers.insert(
                offer.offer_id.clone(),
                LedgerOffer {
                    guest: offer.user_id.clone(),
                    slot: slot.to_string(),
                    party: offer.party_size,
                    expires_at: offer.expires_at,
                    closed: None,
                },
            );
            *self.offered.entry(slot.to_string()).or_default() += offer.party_size;
        }
        self.waiting
            .get_mut(slot)
            .unwrap()
            .retain(|w| !offers.iter().any(|o| o.waitlist_id == w.0));
        Ok(())
    }
}

/// Runs the ledger over the decisions; `view` also compares the state's view of each
/// decided slot with it.
fn check_ledger(stream: &Stream, records: &[Record]) -> Result<Ledger, TestCaseError> {
    let mut ledger = Ledger::new(&stream.spec);
    for (i, (step, record)) in stream.steps.iter().zip(records).enumerate() {
        let Ok(decision) = &record.result else {
            continue;
        };
        ledger
            .apply(&step.user, step.at, decision)
            .map_err(|e| TestCaseError::fail(format!("step #{i}: {e}")))?;
        if let (Some(slot), Some((_, after))) = (slot_of(decision), &record.view) {
            let (booked, offered) = ledger.covers(slot);
            let waiting = ledger.waiting.get(slot).map_or(0, Vec::len) as u32;
            prop_assert_eq!(
                (
                    after.booked_covers,
                    after.offered_covers,
                    after.waitlist_length
                ),
                (booked, offered, waiting),
                "step #{}: the view of {} disagrees with the decisions",
                i,
                slot
            );
            prop_assert_eq!(after.free_covers, after.capacity_covers - booked - offered);
        }
    }
    Ok(ledger)
}

fn check_offers_end_once(
    stream: &Stream,
    records: &[Record],
    ledger: &Ledger,
) -> Result<(), TestCaseError> {
    for (i, record) in records.iter().enumerate() {
        let expected: Vec<(DateTime<Utc>, String, String)> = match &record.result {
            Ok(decision) => offers_of(decision)
                .iter()
                .map(|o| (o.expires_at, o.user_id.clone(), o.offer_id.clone()))
                .collect(),
            Err(_) => Vec::new(),
        };
        prop_assert_eq!(&record.timers, &expected, "step #{}: timers", i);
    }
    // The stream ends with every pending timer fired: every offer has ended, once.
    for (id, offer) in &ledger.offers {
        prop_assert!(offer.closed.is_some(), "{} never ended ({:?})", id, stream);
    }
    Ok(())
}

fn check_cancels(records: &[Record]) -> Result<(), TestCaseError> {
    for (i, record) in records.iter().enumerate() {
        if let (
            Ok(Decision::BookingCancelled {
                party_size, offers, ..
            }),
            Some((b, a)),
        ) = (&record.result, &record.view)
        {
            let offered: u32 = offers.iter().map(|o| o.party_size).sum();
            prop_assert_eq!(a.booked_covers + party_size, b.booked_covers, "step #{}", i);
            prop_assert_eq!(a.offered_covers, b.offered_covers + offered, "step #{}", i);
            prop_assert_eq!(
                a.free_covers + offered,
                b.free_covers + party_size,
                "#{}",
                i
            );
            prop_assert_eq!(a.capacity_covers, b.capacity_covers);
        }
    }
    Ok(())
}

fn same_records(expected: &[Record], actual: &[Record], first: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(expected.len(), actual.len());
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        prop_assert_eq!(bytes(&a.result), bytes(&e.result), "step #{}", first + i);
        prop_assert_eq!(&a.timers, &e.timers, "step #{}", first + i);
        prop_assert_eq!(&a.view, &e.view, "step #{}", first + i);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every decision (checks in the documented order, ids, positions, instants, the
    /// cascade of offers) equals the reference model's.
    #[test]
    fn decisions_match_reference_model(stream in stream()) {
        let (_, records) = run(&stream);
        check_against_model(&stream, &records)?;
    }

    /// Booked + offered covers never exceed a slot's capacity; the view agrees.
    #[test]
    fn no_overbooking(stream in stream()) {
        let (_, records) = run(&stream);
        check_ledger(&stream, &records)?;
    }

    /// A guest never holds two bookings in overlapping slots (checked in the ledger on
    /// every booking and accepted offer), and bookings are made before their slot starts.
    #[test]
    fn no_overlapping_bookings(stream in stream()) {
        let (_, records) = run(&stream);
        let ledger = check_ledger(&stream, &records)?;
        let active: Vec<&LedgerBooking> = ledger.bookings.values().filter(|b| b.active).collect();
        for (i, a) in active.iter().enumerate() {
            for b in &active[i + 1..] {
                prop_assert!(
                    a.guest != b.guest || a.ends_at <= b.starts_at || b.ends_at <= a.starts_at,
                    "{} holds {} and {}", a.guest, a.slot, b.slot
                );
            }
        }
    }

    /// Promotions are fair and never overbook (the ledger recomputes every cascade).
    #[test]
    fn promotions_are_fair(stream in stream()) {
        let (_, records) = run(&stream);
        check_ledger(&stream, &records)?;
    }

    /// Every offer ends exactly once; each decision schedules a lapse for exactly the
    /// offers it makes, due at their expiry, for their guest.
    #[test]
    fn every_offer_ends_once(stream in stream()) {
        let (_, records) = run(&stream);
        let ledger = check_ledger(&stream, &records)?;
        check_offers_end_once(&stream, &records, &ledger)?;
    }

    /// A cancel frees exactly the booking's covers, which go to the offers it makes.
    #[test]
    fn cancel_frees_exactly_the_booking(stream in stream()) {
        let (_, records) = run(&stream);
        check_cancels(&records)?;
    }

    /// Determinism: the same stream decides byte for byte the same.
    #[test]
    fn replay_is_byte_identical(stream in stream()) {
        let (first_venue, first) = run(&stream);
        let (second_venue, second) = run(&stream);
        same_records(&first, &second, 0)?;
        prop_assert_eq!(format!("{first_venue:?}"), format!("{second_venue:?}"));
    }

    /// Recovery: stop after a random prefix, rebuild a venue by create + evolve over the
    /// prefix's decisions (through their JSON, as the journal stores them), and feed both
    /// it and the original the rest: they decide identically.
    #[test]
    fn restore_then_continue_equals_uninterrupted(stream in stream(), cut in any::<Index>()) {
        let cut = cut.index(stream.steps.len() + 1);
        let (prefix, suffix) = stream.steps.split_at(cut);
        let mut original = Venue::create(VENUE, &stream.spec).unwrap();
        let before = drive(&mut original, prefix);
        let created = Venue::created(&stream.spec);
        let created: Decision = serde_json::from_slice(&serde_json::to_vec(&created).unwrap()).unwrap();
        let mut restored = Venue::create(VENUE, Venue::created_spec(&created).unwrap()).unwrap();
        for (step, record) in prefix.iter().zip(&before) {
            if let Ok(decision) = &record.result {
                let stored: Decision =
                    serde_json::from_slice(&serde_json::to_vec(decision).unwrap()).unwrap();
                restored.evolve(&step.user, &stored);
            }
        }
        prop_assert_eq!(format!("{restored:?}"), format!("{original:?}"));
        let expected = drive(&mut original, suffix);
        let actual = drive(&mut restored, suffix);
        same_records(&expected, &actual, cut)?;
    }
}

/// The streams reach every decision and rejection (but `waitlist_full`, which takes 200
/// parties and is unit-tested) and the boundaries the properties talk about.
#[test]
fn generator_exercises_every_rule() {
    const STREAMS_CHECKED: usize = 1_000;
    let mut runner = TestRunner::deterministic();
    let strategy = stream();
    let mut seen: HashMap<&'static str, usize> = HashMap::new();
    let mut boundaries: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut count = |what: &'static str, hit: bool| {
        *boundaries.entry(what).or_default() += usize::from(hit);
    };
    for _ in 0..STREAMS_CHECKED {
        let stream = strategy.new_tree(&mut runner).unwrap().current();
        let model = Model::new(stream.spec.clone());
        let mut expiries: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut waiting: HashMap<String, Vec<String>> = HashMap::new();
        let mut previous = None;
        for (step, predicted) in stream.steps.iter().zip(&stream.predicted) {
            *seen.entry(status(predicted)).or_default() += 1;
            count(
                "clock went backwards",
                previous.is_some_and(|p| step.at < p),
            );
            previous = Some(step.at);
            let start = |slot: &str| model.slot(slot).map(|s| s.starts_at);
            match (&step.command, predicted) {
                (VenueCommand::Book { slot, .. }, Err(Rejection::SlotInPast)) => {
                    count(
                        "booked exactly at the slot's start",
                        start(slot) == Some(step.at),
                    );
                }
                (VenueCommand::Book { slot, .. }, Ok(_)) => {
                    count(
                        "booked one second before the start",
                        start(slot) == Some(step.at + Duration::seconds(1)),
                    );
                    let ny = stream.spec.time_zone == "America/New_York";
                    count(
                        "booked on a New York daylight-saving day",
                        ny && (slot.starts_with("2026-03-08") || slot.starts_with("2026-11-01")),
                    );
                }
                (VenueCommand::AcceptOffer { offer_id }, Err(Rejection::OfferExpired)) => {
                    count(
                        "accepted exactly at expiry",
                        expiries.get(offer_id) == Some(&step.at),
                    );
                }
                (VenueCommand::AcceptOffer { offer_id }, Ok(_)) => count(
                    "accepted one second before expiry",
                    expiries.get(offer_id) == Some(&(step.at + Duration::seconds(1))),
                ),
                (VenueCommand::LapseOffer { offer_id }, Ok(_)) => {
                    count(
                        "lapsed exactly at expiry",
                        expiries.get(offer_id) == Some(&step.at),
                    );
                }
                _ => {}
            }
            if let Ok(decision) = predicted {
                if let Decision::Waitlisted {
                    waitlist_id, slot, ..
                } = decision
                {
                    waiting
                        .entry(slot.clone())
                        .or_default()
                        .push(waitlist_id.clone());
                }
                let offers = offers_of(decision);
                count("a decision made offers", !offers.is_empty());
                count(
                    "a lapse or decline passed covers on",
                    !offers.is_empty()
                        && matches!(
                            decision,
                            Decision::OfferLapsed { .. } | Decision::OfferDeclined { .. }
                        ),
                );
                count("several offers at once", offers.len() > 1);
                count(
                    "an offer cut short by the slot's start",
                    offers.iter().any(|o| start(&o.slot) == Some(o.expires_at)),
                );
                count(
                    "covers freed once the slot started",
                    offers.is_empty()
                        && matches!(decision, Decision::OfferLapsed { .. })
                        && slot_of(decision)
                            .and_then(start)
                            .is_some_and(|s| s <= step.at),
                );
                for offer in offers {
                    expiries.insert(offer.offer_id.clone(), offer.expires_at);
                    let queue = waiting.get_mut(&offer.slot).unwrap();
                    let at = queue.iter().position(|w| *w == offer.waitlist_id).unwrap();
                    count(
                        "group-aware: a party passed over",
                        at > 0 && !stream.spec.strict_waitlist_order,
                    );
                    count("strict order promoted", stream.spec.strict_waitlist_order);
                    queue.remove(at);
                }
            }
        }
    }
    let mut expected: Vec<&str> = vec![
        "venue_created",
        "table_booked",
        "booking_cancelled",
        "waitlisted",
        "offer_accepted",
        "offer_declined",
        "offer_lapsed",
    ];
    expected.extend(
        [
            Rejection::ResourceExists,
            Rejection::NotDueYet,
            Rejection::SlotNotFound,
            Rejection::SlotInPast,
            Rejection::SlotTooFarAhead,
            Rejection::PartySizeZero,
            Rejection::PartyTooLarge,
            Rejection::SlotFull,
            Rejection::OverlappingBooking,
            Rejection::SlotHasRoom,
            Rejection::AlreadyWaitlisted,
            Rejection::BookingNotFound,
            Rejection::NotBookingHolder,
            Rejection::BookingAlreadyCancelled,
            Rejection::OfferNotFound,
            Rejection::NotOfferGuest,
            Rejection::OfferExpired,
            Rejection::OfferAlreadyAnswered,
        ]
        .map(Rejection::code),
    );
    println!("decisions: {seen:?}\nboundaries: {boundaries:?}");
    for name in expected {
        assert!(
            seen.get(name).copied().unwrap_or(0) >= 10,
            "{name}: {seen:?}"
        );
    }
    for (what, hits) in &boundaries {
        assert!(
            *hits >= 3,
            "{what}: only {hits} hits in {STREAMS_CHECKED} streams ({boundaries:?})"
        );
    }
    assert_eq!(boundaries.len(), 14, "{boundaries:?}");
}
