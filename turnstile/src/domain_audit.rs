//! The seated-event, venue and auction invariants, re-checked from a journal's outcomes alone
//! (`docs/domains.md`, rule 12).
//!
//! Independent of the state machines in `turnstile_processors`: every check is re-derived
//! here, plainly, from the recorded decisions (ordered maps and vectors, nothing shared
//! with `processors/`), so that a bug in a state machine cannot hide itself. Only the wire
//! types and their spelling helpers (`seats::seat_id`, `venue::parse_slot_id`) come from
//! `turnstile_schemas`.
//!
//! Outcomes are grouped by resource and folded in log order (by log position). Rejections
//! and coupon decisions are skipped: they change nothing, and coupons have their own
//! checks in [`crate::audit`].
//!
//! What is checked, per domain:
//!
//! - **Seats.** A resource's decisions come after its creation and a repeated creation
//!   has the same spec. Holds are numbered `<event>-h<n>` in log order, made once, in the
//!   sales window, with 1..=`seats_per_hold_max` seats, all in the seat map, none named
//!   twice, in seat-map order, expiring `hold_ttl_seconds` after they were made, costing
//!   the sum of their seats' price tiers. No seat is in two live holds, held after it was
//!   sold, or sold twice. A holder never has more than `holds_per_user_max` active holds
//!   (a hold is active until confirmed, released or lapsed, past its expiry included).
//!   A hold ends once, and only a hold that was made: confirmed or released by its holder
//!   strictly before its `expires_at`, lapsed at or after it; the ending names the hold's
//!   seats (and, when confirmed, its price).
//! - **Venue.** Slots name a daily start of the spec; parties are 1..=`party_size_max`.
//!   Per slot, booked covers plus covers held by outstanding offers never exceed
//!   `capacity_covers`. A booking (`<venue>-b<n>`, numbered in log order) is made before
//!   its slot starts, for the slot's length, with the same times as every other booking
//!   of the slot, and in strict order only while nobody waits; a user never has two live
//!   bookings in overlapping slots. A cancel names a live booking of its user, with its
//!   slot and party, before the slot starts. A waitlist entry (`<venue>-w<n>`) is made
//!   only when the slot has no room for the party, once per user and slot while waiting,
//!   at the back (`position`). Every offer (`<venue>-o<n>`) answers a party that joined
//!   the slot's waitlist and still waits (not already offered), for that party's user and
//!   size, expiring `offer_ttl_seconds` after it was made or at the slot's start if
//!   sooner; the offers of one freeing are exactly those rule 8 of the venue gives (the
//!   waitlist walked in joining order over the covers then free: every party that fits,
//!   or in strict order the head while it fits; none once the slot has started). An
//!   offer ends once: accepted or declined by its guest before its expiry, lapsed at or
//!   after it (naming that expiry), with its slot and party.
//! - **Auction.** Bids (`<lot>-b<n>`, numbered in log order) come from the outcome's
//!   user, not the seller, from `opens_at` and before the current end, never after the
//!   close, at or under `AMOUNT_MINOR_MAX`, and at least the minimum (the opening price
//!   first, then the price plus the increment; a leader only above their own maximum).
//!   The end moves only forward, by exactly `extension_seconds`, and only on a bid in the
//!   window before it (`extended` says so). The leader is the highest maximum, the
//!   earliest on ties; `outbid` names the leader it displaced. The price never exceeds
//!   the leader's maximum and is what the proxy rule gives. A lot closes once. A close
//!   sale comes at or after the final end, to the final leader, at the current price,
//!   with the reserve met; a buy-now comes while the lot is open, to its user, at the
//!   buy-now price, while no maximum has reached it; an unsold close comes at or after
//!   the end, `no_bids` exactly when nobody bid, `reserve_not_met` exactly when the
//!   leader's maximum is below the reserve, naming that leader and maximum.
//!
//! Not checked (they need the venue's time zone and calendar, or are no invariant): that a
//! slot's instants are its local start in the venue's time zone, `bookable_days_ahead`,
//! the overlap rule for waitlist entries and offers (an offer may legitimately overlap a
//! booking made after joining), and best-available seat choice.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use turnstile_schemas::auction::{LotSpec, UnsoldReason, AMOUNT_MINOR_MAX};
use turnstile_schemas::seats::{seat_id, EventSpec};
use turnstile_schemas::venue::{parse_slot_id, parse_start, VenueSpec, WaitlistOffer};
use turnstile_schemas::{Decision, Outcome};

use crate::loadgen::thousands;

/// Problems listed in full; beyond this only counted.
const PROBLEMS_SHOWN_MAX: usize = 20;

/// What the domain checks found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DomainAudit {
    /// One line per domain that has resources.
    pub summary: Vec<String>,
    /// Invariant breaches, at most 20, then a line counting the rest; empty means passed.
    pub problems: Vec<String>,
}

/// Checks the seated-event, venue and auction invariants over every outcome of a journal,
/// given in log order per partition (outcomes of different partitions never share a
/// resource).
pub fn check_domains(outcomes: &[Outcome]) -> DomainAudit {
    let mut by_resource: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        if domain_of(&outcome.decision).is_some() {
            by_resource
                .entry(outcome.resource_id.as_str())
                .or_default()
                .push(outcome);
        }
    }
    let mut problems = Problems::default();
    let mut events = Vec::new();
    let mut venues = Vec::new();
    let mut lots = Vec::new();
    for (resource, mut decided) in by_resource {
        // Log order: a resource lives on one partition, so its positions order it.
        decided.sort_by_key(|outcome| outcome.position);
        let first = decided[0];
        let Some(domain) = created_domain(&first.decision) else {
            problems.at(
                "resource",
                first,
                format!(
                    "a {} decision on {resource}, which was never created",
                    first.decision.status()
                ),
            );
            continue;
        };
        match &first.decision {
            Decision::EventCreated { spec } => {
                let mut event = EventCheck::new(resource, spec);
                fold(domain, &decided, &mut problems, |o, p| event.apply(o, p));
                events.push(event);
            }
            Decision::VenueCreated { spec } => {
                let mut venue = VenueCheck::new(resource, spec);
                fold(domain, &decided, &mut problems, |o, p| venue.apply(o, p));
                venues.push(venue);
            }
            Decision::LotCreated { spec } => {
                let mut lot = LotCheck::new(resource, spec);
                fold(domain, &decided, &mut problems, |o, p| lot.apply(o, p));
                lots.push(lot);
            }
            _ => unreachable!("created_domain is Some only for a creation"),
        }
    }
    let mut summary = Vec::new();
    if !events.is_empty() {
        summary.push(seats_summary(&events));
    }
    if !venues.is_empty() {
        summary.push(venue_summary(&venues));
    }
    if !lots.is_empty() {
        summary.push(auction_summary(&lots));
    }
    DomainAudit {
        summary,
        problems: problems.capped(),
    }
}

/// Feeds a resource's decisions after its creation to `apply`, reporting decisions of
/// another domain (rule 1) instead.
fn fold(
    domain: Domain,
    decided: &[&Outcome],
    problems: &mut Problems,
    mut apply: impl FnMut(&Outcome, &mut Problems),
) {
    for outcome in &decided[1..] {
        match domain_of(&outcome.decision) {
            Some(other) if other != domain => problems.at(
                domain.noun(),
                outcome,
                format!(
                    "a {} decision on a resource of the {} domain",
                    outcome.decision.status(),
                    domain.name()
                ),
            ),
            _ => apply(outcome, problems),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    Seats,
    Venue,
    Auction,
}

impl Domain {
    fn name(self) -> &'static str {
        match self {
            Domain::Seats => "seats",
            Domain::Venue => "venue",
            Domain::Auction => "auction",
        }
    }

    /// How a problem names a resource of the domain.
    fn noun(self) -> &'static str {
        match self {
            Domain::Seats => "event",
            Domain::Venue => "venue",
            Domain::Auction => "lot",
        }
    }
}

/// The domain of a decision this audit checks; None for rejections and coupon decisions.
fn domain_of(decision: &Decision) -> Option<Domain> {
    match decision {
        Decision::EventCreated { .. }
        | Decision::SeatsHeld { .. }
        | Decision::HoldConfirmed { .. }
        | Decision::HoldReleased { .. }
        | Decision::HoldLapsed { .. } => Some(Domain::Seats),
        Decision::VenueCreated { .. }
        | Decision::TableBooked { .. }
        | Decision::BookingCancelled { .. }
        | Decision::Waitlisted { .. }
        | Decision::OfferAccepted { .. }
        | Decision::OfferDeclined { .. }
        | Decision::OfferLapsed { .. } => Some(Domain::Venue),
        Decision::LotCreated { .. }
        | Decision::BidAccepted { .. }
        | Decision::LotSold { .. }
        | Decision::LotClosedUnsold { .. } => Some(Domain::Auction),
        Decision::CampaignCreated { .. }
        | Decision::CouponGranted { .. }
        | Decision::CouponRedeemed { .. }
        | Decision::CouponExpired { .. }
        | Decision::CouponExpiring { .. }
        | Decision::Rejected { .. } => None,
    }
}

/// The domain a creation decision creates a resource of.
fn created_domain(decision: &Decision) -> Option<Domain> {
    match decision {
        Decision::EventCreated { .. } => Some(Domain::Seats),
        Decision::VenueCreated { .. } => Some(Domain::Venue),
        Decision::LotCreated { .. } => Some(Domain::Auction),
        _ => None,
    }
}

/// Every breach found, in the order found.
#[derive(Debug, Default)]
struct Problems {
    list: Vec<String>,
}

impl Problems {
    /// `<noun> <resource> at <partition>-<offset>: <what>`.
    fn at(&mut self, noun: &str, outcome: &Outcome, what: impl Display) {
        self.list.push(format!(
            "{noun} {} at {}: {what}",
            outcome.resource_id,
            outcome.position.outcome_id()
        ));
    }

    fn capped(mut self) -> Vec<String> {
        if self.list.len() > PROBLEMS_SHOWN_MAX {
            let rest = self.list.len() - PROBLEMS_SHOWN_MAX;
            self.list.truncate(PROBLEMS_SHOWN_MAX);
            self.list.push(format!("… and {rest} more"));
        }
        self.list
    }
}

/// `3 events`, `1 event`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

fn ids(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

// -- Seated events ------------------------------------------------------------------------

/// Where a seat that is not free stands: in which hold.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Taken {
    Held(String),
    Sold(String),
}

#[derive(Debug)]
struct HoldRec {
    user: String,
    seats: Vec<String>,
    expires_at: DateTime<Utc>,
    price_total: u64,
    made_at: String,
    /// How and where it ended, once it has.
    ended: Option<(&'static str, String)>,
}

#[derive(Debug)]
struct EventCheck {
    id: String,
    spec: EventSpec,
    /// Every seat of the map: its place in seat-map order and its price.
    seat_map: BTreeMap<String, (usize, u64)>,
    /// Seats held or sold; the others are free.
    taken: BTreeMap<String, Taken>,
    holds: BTreeMap<String, HoldRec>,
    holds_made: u64,
    active_by_user: BTreeMap<String, u32>,
    lapsed: u64,
}

impl EventCheck {
    fn new(id: &str, spec: &EventSpec) -> Self {
        let mut seat_map = BTreeMap::new();
        for section in &spec.sections {
            for row in &section.rows {
                for number in 1..=row.seats {
                    let place = seat_map.len();
                    seat_map.insert(
                        seat_id(&section.section_id, &row.row_id, number),
                        (place, section.price_tier.price_minor),
                    );
                }
            }
        }
        EventCheck {
            id: id.to_string(),
            spec: spec.clone(),
            seat_map,
            taken: BTreeMap::new(),
            holds: BTreeMap::new(),
            holds_made: 0,
            active_by_user: BTreeMap::new(),
            lapsed: 0,
        }
    }

    fn seats(&self) -> u64 {
        self.seat_map.len() as u64
    }

    fn count_taken(&self, sold: bool) -> u64 {
        self.taken
            .values()
            .filter(|t| matches!(t, Taken::Sold(_)) == sold)
            .count() as u64
    }

    fn apply(&mut self, o: &Outcome, p: &mut Problems) {
        let mut report = |what: String| p.at("event", o, what);
        match &o.decision {
            Decision::EventCreated { spec } if *spec != self.spec => {
                report("created again with another spec".into());
            }
            Decision::SeatsHeld {
                hold_id,
                seat_ids,
                expires_at,
                price_total,
            } => self.hold(o, &mut report, hold_id, seat_ids, *expires_at, *price_total),
            Decision::HoldConfirmed {
                hold_id,
                seat_ids,
                price_total,
            } => self.end(
                o,
                &mut report,
                "confirmed",
                hold_id,
                seat_ids,
                Some(*price_total),
            ),
            Decision::HoldReleased { hold_id, seat_ids } => {
                self.end(o, &mut report, "released", hold_id, seat_ids, None)
            }
            Decision::HoldLapsed { hold_id, seat_ids } => {
                self.end(o, &mut report, "lapsed", hold_id, seat_ids, None)
            }
            _ => {}
        }
    }

    fn hold(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        hold_id: &str,
        seat_ids: &[String],
        expires_at: DateTime<Utc>,
        price_total: u64,
    ) {
        let at = o.decided_at;
        if let Some(first) = self.holds.get(hold_id) {
            report(format!(
                "hold {hold_id} made twice (first at {})",
                first.made_at
            ));
            return;
        }
        self.holds_made += 1;
        let expected_id = format!("{}-h{}", self.id, self.holds_made);
        if hold_id != expected_id {
            report(format!(
                "hold {hold_id} is hold number {}, which is {expected_id}",
                self.holds_made
            ));
        }
        if let Some(open) = self.spec.sales_open_at.filter(|&open| at < open) {
            report(format!(
                "hold {hold_id} made at {}, before sales open at {}",
                time(at),
                time(open)
            ));
        }
        if let Some(close) = self.spec.sales_close_at.filter(|&close| at >= close) {
            report(format!(
                "hold {hold_id} made at {}, at or after sales close at {}",
                time(at),
                time(close)
            ));
        }
        let size = seat_ids.len();
        if size == 0 || size > self.spec.seats_per_hold_max as usize {
            report(format!(
                "hold {hold_id} takes {size} seats, not 1 to {}",
                self.spec.seats_per_hold_max
            ));
        }
        let ttl = Duration::seconds(i64::from(self.spec.hold_ttl_seconds));
        if expires_at != at + ttl {
            report(format!(
                "hold {hold_id} made at {} expires at {}, not {} seconds later",
                time(at),
                time(expires_at),
                self.spec.hold_ttl_seconds
            ));
        }
        let mut priced: u64 = 0;
        let mut previous_place: Option<usize> = None;
        let mut seen = BTreeSet::new();
        for seat in seat_ids {
            if !seen.insert(seat.as_str()) {
                report(format!("hold {hold_id} names seat {seat} twice"));
                continue;
            }
            let Some(&(place, price)) = self.seat_map.get(seat) else {
                report(format!(
                    "hold {hold_id} takes seat {seat}, which is not in the seat map"
                ));
                continue;
            };
            priced = priced.saturating_add(price);
            if previous_place.is_some_and(|previous| place < previous) {
                report(format!(
                    "hold {hold_id} lists seat {seat} out of seat-map order"
                ));
            }
            previous_place = Some(place);
            match self.taken.get(seat) {
                Some(Taken::Held(other)) => report(format!(
                    "seat {seat} is in two live holds, {other} and {hold_id}"
                )),
                Some(Taken::Sold(other)) => report(format!(
                    "seat {seat} held by {hold_id} after it was sold in {other}"
                )),
                None => {
                    self.taken
                        .insert(seat.clone(), Taken::Held(hold_id.to_string()));
                }
            }
        }
        if priced != price_total {
            report(format!(
                "hold {hold_id} costs {price_total}, but its seats' tiers sum to {priced}"
            ));
        }
        let active = self.active_by_user.entry(o.user_id.clone()).or_default();
        *active += 1;
        if *active > self.spec.holds_per_user_max {
            report(format!(
                "{} has {active} active holds with {hold_id}, over holds_per_user_max {}",
                o.user_id, self.spec.holds_per_user_max
            ));
        }
        self.holds.insert(
            hold_id.to_string(),
            HoldRec {
                user: o.user_id.clone(),
                seats: seat_ids.to_vec(),
                expires_at,
                price_total,
                made_at: o.position.outcome_id(),
                ended: None,
            },
        );
    }

    /// A hold confirmed, released or lapsed (`how`).
    fn end(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        how: &'static str,
        hold_id: &str,
        seat_ids: &[String],
        price_total: Option<u64>,
    ) {
        let at = o.decided_at;
        let Some(hold) = self.holds.get_mut(hold_id) else {
            report(format!("{how} hold {hold_id}, which was never made"));
            return;
        };
        if let Some((ended_how, ended_at)) = &hold.ended {
            report(format!(
                "hold {hold_id} {how} after it already {ended_how} at {ended_at}: a hold ends \
                 once"
            ));
            return;
        }
        hold.ended = Some((how, o.position.outcome_id()));
        if hold.user != o.user_id {
            report(format!(
                "hold {hold_id} {how} for {}, not its holder {}",
                o.user_id, hold.user
            ));
        }
        if how == "lapsed" {
            if at < hold.expires_at {
                report(format!(
                    "hold {hold_id} lapsed at {}, before its expiry {}",
                    time(at),
                    time(hold.expires_at)
                ));
            }
        } else if at >= hold.expires_at {
            report(format!(
                "hold {hold_id} {how} at {}, at or after its expiry {}",
                time(at),
                time(hold.expires_at)
            ));
        }
        if seat_ids != hold.seats.as_slice() {
            report(format!(
                "hold {hold_id} {how} with seats {}, but it holds {}",
                ids(seat_ids),
                ids(&hold.seats)
            ));
        }
        if let Some(price) = price_total.filter(|&p| p != hold.price_total) {
            report(format!(
                "hold {hold_id} confirmed at {price}, but it costs {}",
                hold.price_total
            ));
        }
        let (user, seats) = (hold.user.clone(), hold.seats.clone());
        if let Some(active) = self.active_by_user.get_mut(&user) {
            *active = active.saturating_sub(1);
        }
        if how == "lapsed" {
            self.lapsed += 1;
        }
        for seat in &seats {
            match self.taken.get(seat) {
                Some(Taken::Held(holder)) if holder == hold_id => {
                    if how == "confirmed" {
                        self.taken
                            .insert(seat.clone(), Taken::Sold(hold_id.to_string()));
                    } else {
                        self.taken.remove(seat);
                    }
                }
                Some(Taken::Sold(other)) if how == "confirmed" => {
                    report(format!("seat {seat} sold twice, in {other} and {hold_id}"));
                }
                // A seat the hold never got (reported when it was made).
                _ => {}
            }
        }
    }
}

fn seats_summary(events: &[EventCheck]) -> String {
    let seats: u64 = events.iter().map(EventCheck::seats).sum();
    let sold: u64 = events.iter().map(|e| e.count_taken(true)).sum();
    let held: u64 = events.iter().map(|e| e.count_taken(false)).sum();
    let lapsed: u64 = events.iter().map(|e| e.lapsed).sum();
    format!(
        "seats: {}, {}, {} sold, {} held, {} free; {} lapsed",
        count(events.len() as u64, "event", "events"),
        count(seats, "seat", "seats"),
        thousands(sold),
        thousands(held),
        thousands(seats.saturating_sub(sold + held)),
        count(lapsed, "hold", "holds"),
    )
}

// -- Venues --------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct SlotRec {
    capacity: u32,
    booked: u32,
    offered: u32,
    /// Waitlist ids of the parties waiting, in joining order.
    waiting: Vec<String>,
    /// The slot's instants, from its first booking.
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

#[derive(Debug)]
struct BookingRec {
    user: String,
    slot: String,
    party: u32,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    cancelled_at: Option<String>,
}

#[derive(Debug)]
struct EntryRec {
    user: String,
    slot: String,
    party: u32,
    offered: Option<String>,
}

#[derive(Debug)]
struct OfferRec {
    user: String,
    slot: String,
    party: u32,
    expires_at: DateTime<Utc>,
    ended: Option<(&'static str, String)>,
}

#[derive(Debug)]
struct VenueCheck {
    id: String,
    spec: VenueSpec,
    /// The spec's daily slots: start, length, capacity.
    day_slots: Vec<(NaiveTime, Duration, u32)>,
    slots: BTreeMap<String, SlotRec>,
    bookings: BTreeMap<String, BookingRec>,
    bookings_made: u64,
    entries: BTreeMap<String, EntryRec>,
    offers: BTreeMap<String, OfferRec>,
    accepted: u64,
    declined: u64,
    lapsed: u64,
}

impl VenueCheck {
    fn new(id: &str, spec: &VenueSpec) -> Self {
        let day_slots = spec
            .slots
            .iter()
            .filter_map(|slot| {
                Some((
                    parse_start(&slot.start)?,
                    Duration::minutes(i64::from(slot.duration_minutes)),
                    slot.capacity_covers,
                ))
            })
            .collect();
        VenueCheck {
            id: id.to_string(),
            spec: spec.clone(),
            day_slots,
            slots: BTreeMap::new(),
            bookings: BTreeMap::new(),
            bookings_made: 0,
            entries: BTreeMap::new(),
            offers: BTreeMap::new(),
            accepted: 0,
            declined: 0,
            lapsed: 0,
        }
    }

    /// The daily slot a slot id names: its length and capacity.
    fn day_slot(&self, slot: &str) -> Option<(Duration, u32)> {
        let (_, start) = parse_slot_id(slot)?;
        self.day_slots
            .iter()
            .find(|(s, _, _)| *s == start)
            .map(|&(_, length, capacity)| (length, capacity))
    }

    fn apply(&mut self, o: &Outcome, p: &mut Problems) {
        let mut report = |what: String| p.at("venue", o, what);
        match &o.decision {
            Decision::VenueCreated { spec } if *spec != self.spec => {
                report("created again with another spec".into());
            }
            Decision::TableBooked {
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
            } => {
                let booking = BookingRec {
                    user: o.user_id.clone(),
                    slot: slot.clone(),
                    party: *party_size,
                    starts_at: *starts_at,
                    ends_at: *ends_at,
                    cancelled_at: None,
                };
                self.book(o, &mut report, booking_id, booking, true);
            }
            Decision::BookingCancelled {
                booking_id,
                slot,
                party_size,
                offers,
            } => self.cancel(o, &mut report, booking_id, slot, *party_size, offers),
            Decision::Waitlisted {
                waitlist_id,
                slot,
                party_size,
                position,
            } => self.wait(o, &mut report, waitlist_id, slot, *party_size, *position),
            Decision::OfferAccepted {
                offer_id,
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
            } => {
                let outstanding =
                    self.end_offer(o, &mut report, "accepted", offer_id, slot, *party_size);
                if outstanding {
                    self.accepted += 1;
                    let booking = BookingRec {
                        user: o.user_id.clone(),
                        slot: slot.clone(),
                        party: *party_size,
                        starts_at: *starts_at,
                        ends_at: *ends_at,
                        cancelled_at: None,
                    };
                    self.book(o, &mut report, booking_id, booking, false);
                }
            }
            Decision::OfferDeclined {
                offer_id,
                slot,
                party_size,
                offers,
            } => {
                let outstanding =
                    self.end_offer(o, &mut report, "declined", offer_id, slot, *party_size);
                if outstanding {
                    self.declined += 1;
                    self.cascade(o, &mut report, slot, offers);
                }
            }
            Decision::OfferLapsed {
                offer_id,
                slot,
                party_size,
                expired_at,
                offers,
            } => {
                if let Some(offer) = self.offers.get(offer_id) {
                    if offer.expires_at != *expired_at {
                        report(format!(
                            "offer {offer_id} lapsed naming expiry {}, but it expires at {}",
                            time(*expired_at),
                            time(offer.expires_at)
                        ));
                    }
                }
                if self.end_offer(o, &mut report, "lapsed", offer_id, slot, *party_size) {
                    self.lapsed += 1;
                    self.cascade(o, &mut report, slot, offers);
                }
            }
            _ => {}
        }
    }

    /// Checks a slot id and a party size; the slot's record when the slot exists.
    fn slot(
        &mut self,
        report: &mut impl FnMut(String),
        what: &str,
        slot: &str,
        party: u32,
    ) -> Option<&mut SlotRec> {
        let Some((_, capacity)) = self.day_slot(slot) else {
            report(format!(
                "{what} is in {slot}, which is no slot of the venue"
            ));
            return None;
        };
        if party == 0 || party > self.spec.party_size_max {
            report(format!(
                "{what} is for {party} covers, not 1 to party_size_max {}",
                self.spec.party_size_max
            ));
        }
        Some(
            self.slots
                .entry(slot.to_string())
                .or_insert_with(|| SlotRec {
                    capacity,
                    ..SlotRec::default()
                }),
        )
    }

    /// A booking made directly (`direct`) or by accepting an offer.
    fn book(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        booking_id: &str,
        booking: BookingRec,
        direct: bool,
    ) {
        let at = o.decided_at;
        if let Some(first) = self.bookings.get(booking_id) {
            report(format!(
                "booking {booking_id} made twice (first for {} in {})",
                first.user, first.slot
            ));
            return;
        }
        self.bookings_made += 1;
        let expected_id = format!("{}-b{}", self.id, self.bookings_made);
        if booking_id != expected_id {
            report(format!(
                "booking {booking_id} is booking number {}, which is {expected_id}",
                self.bookings_made
            ));
        }
        let Some((length, _)) = self.day_slot(&booking.slot) else {
            report(format!(
                "booking {booking_id} is in {}, which is no slot of the venue",
                booking.slot
            ));
            return;
        };
        if booking.ends_at - booking.starts_at != length {
            report(format!(
                "booking {booking_id} runs {} to {}, not the slot's {} minutes",
                time(booking.starts_at),
                time(booking.ends_at),
                length.num_minutes()
            ));
        }
        if direct && at >= booking.starts_at {
            report(format!(
                "booking {booking_id} made at {}, at or after its slot starts at {}",
                time(at),
                time(booking.starts_at)
            ));
        }
        let strict = self.spec.strict_waitlist_order;
        let what = format!("booking {booking_id}");
        let Some(state) = self.slot(report, &what, &booking.slot, booking.party) else {
            return;
        };
        match state.times {
            None => state.times = Some((booking.starts_at, booking.ends_at)),
            Some((starts_at, ends_at))
                if (starts_at, ends_at) != (booking.starts_at, booking.ends_at) =>
            {
                report(format!(
                    "booking {booking_id} runs {} to {}, but {} runs {} to {} in earlier \
                     decisions",
                    time(booking.starts_at),
                    time(booking.ends_at),
                    booking.slot,
                    time(starts_at),
                    time(ends_at)
                ))
            }
            Some(_) => {}
        }
        if direct && strict && !state.waiting.is_empty() {
            report(format!(
                "booking {booking_id} taken in strict waitlist order with {} waiting for {}",
                count(state.waiting.len() as u64, "party", "parties"),
                booking.slot
            ));
        }
        // An accepted offer's covers were released from the offer by `end_offer`.
        state.booked += booking.party;
        if state.booked + state.offered > state.capacity {
            report(format!(
                "slot {} over capacity with booking {booking_id}: {} booked + {} offered \
                 covers > capacity_covers {}",
                booking.slot, state.booked, state.offered, state.capacity
            ));
        }
        if let Some((other_id, other)) = self.bookings.iter().find(|(_, b)| {
            b.user == booking.user
                && b.cancelled_at.is_none()
                && b.starts_at < booking.ends_at
                && booking.starts_at < b.ends_at
        }) {
            report(format!(
                "{} has overlapping live bookings {other_id} ({}) and {booking_id} ({})",
                booking.user, other.slot, booking.slot
            ));
        }
        self.bookings.insert(booking_id.to_string(), booking);
    }

    fn cancel(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        booking_id: &str,
        slot: &str,
        party: u32,
        offers: &[WaitlistOffer],
    ) {
        let at = o.decided_at;
        let Some(booking) = self.bookings.get_mut(booking_id) else {
            report(format!(
                "cancelled booking {booking_id}, which was never made"
            ));
            return;
        };
        if let Some(first) = &booking.cancelled_at {
            report(format!(
                "booking {booking_id} cancelled again (first at {first})"
            ));
            return;
        }
        booking.cancelled_at = Some(o.position.outcome_id());
        if booking.user != o.user_id {
            report(format!(
                "booking {booking_id} of {} cancelled by {}",
                booking.user, o.user_id
            ));
        }
        if booking.slot != slot || booking.party != party {
            report(format!(
                "booking {booking_id} cancelled as {party} covers in {slot}, but it is {} \
                 covers in {}",
                booking.party, booking.slot
            ));
        }
        if at >= booking.starts_at {
            report(format!(
                "booking {booking_id} cancelled at {}, at or after its slot starts at {}",
                time(at),
                time(booking.starts_at)
            ));
        }
        let (slot, party) = (booking.slot.clone(), booking.party);
        if let Some(state) = self.slots.get_mut(&slot) {
            state.booked = state.booked.saturating_sub(party);
        }
        self.cascade(o, report, &slot, offers);
    }

    fn wait(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        waitlist_id: &str,
        slot: &str,
        party: u32,
        position: u32,
    ) {
        if self.entries.contains_key(waitlist_id) {
            report(format!("waitlist entry {waitlist_id} made twice"));
            return;
        }
        let expected_id = format!("{}-w{}", self.id, self.entries.len() + 1);
        if waitlist_id != expected_id {
            report(format!(
                "waitlist entry {waitlist_id} is entry number {}, which is {expected_id}",
                self.entries.len() + 1
            ));
        }
        let strict = self.spec.strict_waitlist_order;
        let what = format!("waitlist entry {waitlist_id}");
        if self.slot(report, &what, slot, party).is_none() {
            return;
        }
        let already = self.slots.get(slot).and_then(|state| {
            state
                .waiting
                .iter()
                .find(|w| self.entries.get(*w).is_some_and(|e| e.user == o.user_id))
                .cloned()
        });
        if let Some(already) = already {
            report(format!(
                "{} joined the waitlist of {slot} twice: {already} and {waitlist_id}",
                o.user_id
            ));
        }
        let Some(state) = self.slots.get_mut(slot) else {
            return;
        };
        if let Some((starts_at, _)) = state.times.filter(|(s, _)| o.decided_at >= *s) {
            report(format!(
                "{waitlist_id} joined at {}, at or after {slot} starts at {}",
                time(o.decided_at),
                time(starts_at)
            ));
        }
        let free = state.capacity.saturating_sub(state.booked + state.offered);
        if party <= free && (!strict || state.waiting.is_empty()) {
            report(format!(
                "{waitlist_id} joined the waitlist of {slot} while it had room: {free} covers \
                 free for a party of {party}"
            ));
        }
        if position as usize != state.waiting.len() + 1 {
            report(format!(
                "{waitlist_id} joined at position {position}, but {} parties were waiting",
                state.waiting.len()
            ));
        }
        state.waiting.push(waitlist_id.to_string());
        self.entries.insert(
            waitlist_id.to_string(),
            EntryRec {
                user: o.user_id.clone(),
                slot: slot.to_string(),
                party,
                offered: None,
            },
        );
    }

    /// An offer accepted, declined or lapsed (`how`); whether it was outstanding (and its
    /// covers are now released from the offer).
    fn end_offer(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        how: &'static str,
        offer_id: &str,
        slot: &str,
        party: u32,
    ) -> bool {
        let at = o.decided_at;
        let Some(offer) = self.offers.get_mut(offer_id) else {
            report(format!("{how} offer {offer_id}, which was never made"));
            return false;
        };
        if let Some((ended_how, ended_at)) = &offer.ended {
            report(format!(
                "offer {offer_id} {how} after it already {ended_how} at {ended_at}: an offer \
                 ends once"
            ));
            return false;
        }
        offer.ended = Some((how, o.position.outcome_id()));
        if offer.user != o.user_id {
            report(format!(
                "offer {offer_id} for {} {how} by {}",
                offer.user, o.user_id
            ));
        }
        if offer.slot != slot || offer.party != party {
            report(format!(
                "offer {offer_id} {how} as {party} covers in {slot}, but it holds {} covers \
                 in {}",
                offer.party, offer.slot
            ));
        }
        if how == "lapsed" {
            if at < offer.expires_at {
                report(format!(
                    "offer {offer_id} lapsed at {}, before its expiry {}",
                    time(at),
                    time(offer.expires_at)
                ));
            }
        } else if at >= offer.expires_at {
            report(format!(
                "offer {offer_id} {how} at {}, at or after its expiry {}",
                time(at),
                time(offer.expires_at)
            ));
        }
        let (slot, party) = (offer.slot.clone(), offer.party);
        if let Some(state) = self.slots.get_mut(&slot) {
            state.offered = state.offered.saturating_sub(party);
        }
        true
    }

    /// The offers made when covers of `slot` were freed by `o` (rule 8 of the venue).
    fn cascade(
        &mut self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        slot: &str,
        offers: &[WaitlistOffer],
    ) {
        let at = o.decided_at;
        let strict = self.spec.strict_waitlist_order;
        let ttl = Duration::seconds(i64::from(self.spec.offer_ttl_seconds));
        let Some(state) = self.slots.get(slot) else {
            if !offers.is_empty() {
                report(format!("offers made in {slot}, where nothing was booked"));
            }
            return;
        };
        let started = state.times.is_some_and(|(starts_at, _)| at >= starts_at);
        // Rule 8, re-derived: walk the waitlist in joining order over the free covers.
        let mut expected = Vec::new();
        if !started {
            let mut free = state.capacity.saturating_sub(state.booked + state.offered);
            for waiting in &state.waiting {
                if free == 0 {
                    break;
                }
                let party = self.entries.get(waiting).map_or(u32::MAX, |e| e.party);
                if party > free {
                    if strict {
                        break;
                    }
                    continue;
                }
                free -= party;
                expected.push(waiting.clone());
            }
        }
        let made: Vec<String> = offers
            .iter()
            .map(|offer| offer.waitlist_id.clone())
            .collect();
        if made != expected {
            let order = if strict { "strict" } else { "joining" };
            report(format!(
                "covers freed in {slot} were offered to {}, but the waitlist in {order} order \
                 gives {}",
                ids(&made),
                ids(&expected)
            ));
        }
        for offer in offers {
            let id = &offer.offer_id;
            if self.offers.contains_key(id) {
                report(format!("offer {id} made twice"));
                continue;
            }
            let expected_id = format!("{}-o{}", self.id, self.offers.len() + 1);
            if *id != expected_id {
                report(format!(
                    "offer {id} is offer number {}, which is {expected_id}",
                    self.offers.len() + 1
                ));
            }
            if offer.slot != slot {
                report(format!(
                    "offer {id} is in {}, but the covers were freed in {slot}",
                    offer.slot
                ));
            }
            match self.entries.get_mut(&offer.waitlist_id) {
                None => report(format!(
                    "offer {id} answers {}, a party that never joined the waitlist",
                    offer.waitlist_id
                )),
                Some(entry) => {
                    if let Some(first) = &entry.offered {
                        report(format!(
                            "offer {id} goes to {}, which was already offered {first}",
                            offer.waitlist_id
                        ));
                    }
                    entry.offered = Some(id.clone());
                    if entry.slot != offer.slot
                        || entry.user != offer.user_id
                        || entry.party != offer.party_size
                    {
                        report(format!(
                            "offer {id} is {} covers for {} in {}, but {} waits with {} covers \
                             for {} in {}",
                            offer.party_size,
                            offer.user_id,
                            offer.slot,
                            offer.waitlist_id,
                            entry.party,
                            entry.user,
                            entry.slot
                        ));
                    }
                }
            }
            let latest = state_start(&self.slots, &offer.slot)
                .map_or(at + ttl, |starts_at| (at + ttl).min(starts_at));
            if offer.expires_at != latest {
                report(format!(
                    "offer {id} made at {} expires at {}, not at {} (offer_ttl_seconds {}, or \
                     the slot's start if sooner)",
                    time(at),
                    time(offer.expires_at),
                    time(latest),
                    self.spec.offer_ttl_seconds
                ));
            }
            if let Some(state) = self.slots.get_mut(&offer.slot) {
                state.waiting.retain(|w| *w != offer.waitlist_id);
                state.offered += offer.party_size;
                if state.booked + state.offered > state.capacity {
                    report(format!(
                        "slot {} over capacity with offer {id}: {} booked + {} offered covers \
                         > capacity_covers {}",
                        offer.slot, state.booked, state.offered, state.capacity
                    ));
                }
            }
            self.offers.insert(
                id.clone(),
                OfferRec {
                    user: offer.user_id.clone(),
                    slot: offer.slot.clone(),
                    party: offer.party_size,
                    expires_at: offer.expires_at,
                    ended: None,
                },
            );
        }
    }
}

fn state_start(slots: &BTreeMap<String, SlotRec>, slot: &str) -> Option<DateTime<Utc>> {
    slots.get(slot)?.times.map(|(starts_at, _)| starts_at)
}

fn venue_summary(venues: &[VenueCheck]) -> String {
    let live: Vec<&BookingRec> = venues
        .iter()
        .flat_map(|v| v.bookings.values())
        .filter(|b| b.cancelled_at.is_none())
        .collect();
    let covers: u64 = live.iter().map(|b| u64::from(b.party)).sum();
    let waiting: u64 = venues
        .iter()
        .flat_map(|v| v.slots.values())
        .map(|s| s.waiting.len() as u64)
        .sum();
    let sum = |f: fn(&VenueCheck) -> u64| venues.iter().map(f).sum::<u64>();
    format!(
        "venue: {}, {} live, {} booked, {} waitlisted; {} made, {} accepted, {} declined, \
         {} lapsed",
        count(venues.len() as u64, "venue", "venues"),
        count(live.len() as u64, "booking", "bookings"),
        count(covers, "cover", "covers"),
        count(waiting, "party", "parties"),
        count(sum(|v| v.offers.len() as u64), "offer", "offers"),
        thousands(sum(|v| v.accepted)),
        thousands(sum(|v| v.declined)),
        thousands(sum(|v| v.lapsed)),
    )
}

// -- Auction lots ----------------------------------------------------------------------------

#[derive(Debug)]
struct LotCheck {
    id: String,
    spec: LotSpec,
    /// The current end, re-derived (rule 6).
    ends_at: DateTime<Utc>,
    bids: u64,
    /// Per bidder: their highest maximum and the number of the bid that set it.
    best: BTreeMap<String, (u64, u64)>,
    /// The same, ranked: highest maximum first, then earliest bid.
    ranking: BTreeSet<(Reverse<u64>, u64, String)>,
    /// The price after the last bid, re-derived (rule 4).
    price: Option<u64>,
    /// Where and how it closed.
    closed: Option<(String, bool)>,
}

impl LotCheck {
    fn new(id: &str, spec: &LotSpec) -> Self {
        LotCheck {
            id: id.to_string(),
            spec: spec.clone(),
            ends_at: spec.ends_at,
            bids: 0,
            best: BTreeMap::new(),
            ranking: BTreeSet::new(),
            price: None,
            closed: None,
        }
    }

    /// The leader and their maximum, and the runner-up maximum (rule 3).
    fn standing(&self) -> Option<(&str, u64, Option<u64>)> {
        let mut ranked = self.ranking.iter();
        let (Reverse(max), _, leader) = ranked.next()?;
        // One entry per bidder, so the next is the best of everyone else.
        let runner_up = ranked.next().map(|(Reverse(m), _, _)| *m);
        Some((leader.as_str(), *max, runner_up))
    }

    /// Rule 4: the price the leader's maximum and the runner-up give.
    fn proxy_price(&self, leader_max: u64, runner_up: Option<u64>) -> u64 {
        let mut target = self.spec.opening_price;
        if let Some(runner_up) = runner_up {
            target = target.max(runner_up.saturating_add(self.spec.increment));
        }
        if let Some(reserve) = self.spec.reserve_price.filter(|&r| leader_max >= r) {
            target = target.max(reserve);
        }
        target.min(leader_max)
    }

    fn apply(&mut self, o: &Outcome, p: &mut Problems) {
        let mut report = |what: String| p.at("lot", o, what);
        match &o.decision {
            Decision::LotCreated { spec } if *spec != self.spec => {
                report("created again with another spec".into());
            }
            Decision::BidAccepted {
                bid_id,
                bidder,
                max_amount,
                price,
                leader,
                outbid,
                ends_at,
                extended,
            } => {
                let bid = Bid {
                    bid_id,
                    bidder,
                    max_amount: *max_amount,
                    price: *price,
                    leader,
                    outbid: outbid.as_deref(),
                    ends_at: *ends_at,
                    extended: *extended,
                };
                self.bid(o, &mut report, &bid);
            }
            Decision::LotSold {
                winner,
                price,
                by_buy_now,
                closed_at,
            } => {
                let open = self.close_once(&mut report, "sold");
                if open {
                    self.closed = Some((o.position.outcome_id(), true));
                    if *by_buy_now {
                        self.buy_now(o, &mut report, winner, *price, *closed_at);
                    } else {
                        self.sold(o, &mut report, winner, *price, *closed_at);
                    }
                }
            }
            Decision::LotClosedUnsold {
                reason,
                highest_bidder,
                highest_bid,
                closed_at,
            } => {
                let open = self.close_once(&mut report, "closed unsold");
                if open {
                    self.closed = Some((o.position.outcome_id(), false));
                    self.at_or_after_end(o, &mut report, "closed unsold", *closed_at);
                    let expected = match self.standing() {
                        None => (UnsoldReason::NoBids, None, None),
                        Some((leader, max, _)) => (
                            UnsoldReason::ReserveNotMet,
                            Some(leader.to_string()),
                            Some(max),
                        ),
                    };
                    let reserve_met = self.standing().is_some_and(|(_, max, _)| {
                        self.spec.reserve_price.is_none_or(|reserve| max >= reserve)
                    });
                    if reserve_met {
                        report(format!(
                            "closed unsold ({}) though its leader's maximum meets the reserve",
                            serde_json::to_value(reason).unwrap_or_default()
                        ));
                    } else if (*reason, highest_bidder.clone(), *highest_bid) != expected {
                        report(format!(
                            "closed unsold as {reason:?} naming {highest_bidder:?} at \
                             {highest_bid:?}, but the bids give {:?} naming {:?} at {:?}",
                            expected.0, expected.1, expected.2
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether the lot was still open for a closing decision; reports a second close.
    fn close_once(&self, report: &mut impl FnMut(String), how: &str) -> bool {
        match &self.closed {
            Some((first, _)) => {
                report(format!(
                    "{how} after it already closed at {first}: a lot closes once"
                ));
                false
            }
            None => true,
        }
    }

    fn at_or_after_end(
        &self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        how: &str,
        closed_at: DateTime<Utc>,
    ) {
        if o.decided_at < self.ends_at || closed_at < self.ends_at {
            report(format!(
                "{how} at {} (closed_at {}), before its end {}",
                time(o.decided_at),
                time(closed_at),
                time(self.ends_at)
            ));
        }
    }

    fn bid(&mut self, o: &Outcome, report: &mut impl FnMut(String), bid: &Bid<'_>) {
        let at = o.decided_at;
        let id = bid.bid_id;
        if let Some((closed, _)) = &self.closed {
            report(format!(
                "bid {id} accepted after the lot closed at {closed}"
            ));
            return;
        }
        self.bids += 1;
        let expected_id = format!("{}-b{}", self.id, self.bids);
        if id != expected_id {
            report(format!(
                "bid {id} is bid number {}, which is {expected_id}",
                self.bids
            ));
        }
        if bid.bidder != o.user_id {
            report(format!(
                "bid {id} names bidder {}, but was made by {}",
                bid.bidder, o.user_id
            ));
        }
        if self.spec.seller_id.as_deref() == Some(bid.bidder) {
            report(format!("bid {id} by the seller {}", bid.bidder));
        }
        if let Some(opens) = self.spec.opens_at.filter(|&opens| at < opens) {
            report(format!(
                "bid {id} at {}, before the lot opens at {}",
                time(at),
                time(opens)
            ));
        }
        if at >= self.ends_at {
            report(format!(
                "bid {id} at {}, at or after the lot's end {}",
                time(at),
                time(self.ends_at)
            ));
        }
        // Rule 5.
        let minimum = match (self.standing(), self.price) {
            (Some((leader, max, _)), _) if leader == bid.bidder => max.saturating_add(1),
            (Some(_), Some(price)) => price.saturating_add(self.spec.increment),
            _ => self.spec.opening_price,
        };
        if bid.max_amount < minimum || bid.max_amount > AMOUNT_MINOR_MAX {
            report(format!(
                "bid {id} of {} is outside {minimum}..={AMOUNT_MINOR_MAX}",
                bid.max_amount
            ));
        }
        // Rule 6.
        let window = Duration::seconds(i64::from(self.spec.extension_seconds));
        let in_window = self.spec.extension_seconds > 0 && at >= self.ends_at - window;
        let expected_end = if in_window {
            self.ends_at + window
        } else {
            self.ends_at
        };
        if bid.ends_at < self.ends_at {
            report(format!(
                "bid {id} moved the end backwards, from {} to {}",
                time(self.ends_at),
                time(bid.ends_at)
            ));
        } else if bid.ends_at != expected_end {
            report(format!(
                "bid {id} at {} moved the end from {} to {}, but extension_seconds {} gives {}",
                time(at),
                time(self.ends_at),
                time(bid.ends_at),
                self.spec.extension_seconds,
                time(expected_end)
            ));
        }
        if bid.extended != in_window {
            report(format!(
                "bid {id} says extended: {}, but it was {} the anti-sniping window",
                bid.extended,
                if in_window { "in" } else { "outside" }
            ));
        }
        self.ends_at = expected_end;
        // Rule 3.
        let previous_leader = self.standing().map(|(leader, _, _)| leader.to_string());
        let number = self.bids;
        let raised = self
            .best
            .get(bid.bidder)
            .is_none_or(|&(max, _)| bid.max_amount > max);
        if raised {
            if let Some((max, n)) = self
                .best
                .insert(bid.bidder.to_string(), (bid.max_amount, number))
            {
                self.ranking
                    .remove(&(Reverse(max), n, bid.bidder.to_string()));
            }
            self.ranking
                .insert((Reverse(bid.max_amount), number, bid.bidder.to_string()));
        }
        let Some((leader, leader_max, runner_up)) = self.standing() else {
            return;
        };
        if bid.leader != leader {
            report(format!(
                "bid {id} makes {} the leader, but the highest maximum is {leader}'s \
                 {leader_max} (earliest on ties)",
                bid.leader
            ));
        }
        let displaced = previous_leader.as_deref().filter(|p| *p != leader);
        if bid.outbid != displaced {
            report(format!(
                "bid {id} says it outbid {:?}, but it displaced {displaced:?}",
                bid.outbid
            ));
        }
        // Rule 4.
        let expected_price = self.proxy_price(leader_max, runner_up);
        if bid.price > leader_max {
            report(format!(
                "bid {id} sets the price {} above the leader's maximum {leader_max}",
                bid.price
            ));
        } else if bid.price != expected_price {
            report(format!(
                "bid {id} sets the price {}, but the proxy rule gives {expected_price}",
                bid.price
            ));
        }
        self.price = Some(expected_price);
    }

    fn sold(
        &self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        winner: &str,
        price: u64,
        closed_at: DateTime<Utc>,
    ) {
        self.at_or_after_end(o, report, "sold", closed_at);
        let Some((leader, leader_max, runner_up)) = self.standing() else {
            report(format!("sold to {winner} without a single bid"));
            return;
        };
        if winner != leader {
            report(format!(
                "sold to {winner}, who is not the highest bidder: {leader} leads with \
                 {leader_max}"
            ));
        }
        if price > leader_max {
            report(format!(
                "sold at {price}, above the winner's maximum {leader_max}"
            ));
        } else if price != self.proxy_price(leader_max, runner_up) {
            report(format!(
                "sold at {price}, but the current price is {}",
                self.proxy_price(leader_max, runner_up)
            ));
        }
        if let Some(reserve) = self.spec.reserve_price {
            if price < reserve || leader_max < reserve {
                report(format!(
                    "sold at {price} with the leader's maximum {leader_max}, the reserve \
                     {reserve} not met"
                ));
            }
        }
    }

    fn buy_now(
        &self,
        o: &Outcome,
        report: &mut impl FnMut(String),
        winner: &str,
        price: u64,
        closed_at: DateTime<Utc>,
    ) {
        let at = o.decided_at;
        if winner != o.user_id {
            report(format!(
                "bought now by {winner}, but the buy-now came from {}",
                o.user_id
            ));
        }
        if self.spec.seller_id.as_deref() == Some(winner) {
            report(format!("bought now by the seller {winner}"));
        }
        if closed_at != at {
            report(format!(
                "bought now at {} with closed_at {}",
                time(at),
                time(closed_at)
            ));
        }
        let open = self.spec.opens_at.is_none_or(|opens| at >= opens) && at < self.ends_at;
        if !open {
            report(format!(
                "bought now at {}, outside the bidding ({:?} to {})",
                time(at),
                self.spec.opens_at.map(time),
                time(self.ends_at)
            ));
        }
        match self.spec.buy_now_price {
            None => report(format!("bought now at {price}, but the lot has no buy-now")),
            Some(buy_now) => {
                if price != buy_now {
                    report(format!(
                        "bought now at {price}, but the buy-now price is {buy_now}"
                    ));
                }
                if let Some((leader, max, _)) = self.standing().filter(|s| s.1 >= buy_now) {
                    report(format!(
                        "bought now though {leader}'s maximum {max} reached the buy-now price"
                    ));
                }
            }
        }
    }
}

/// The fields of a `BidAccepted`.
#[derive(Debug)]
struct Bid<'a> {
    bid_id: &'a str,
    bidder: &'a str,
    max_amount: u64,
    price: u64,
    leader: &'a str,
    outbid: Option<&'a str>,
    ends_at: DateTime<Utc>,
    extended: bool,
}

fn auction_summary(lots: &[LotCheck]) -> String {
    let bids: u64 = lots.iter().map(|l| l.bids).sum();
    let sold = lots
        .iter()
        .filter(|l| matches!(l.closed, Some((_, true))))
        .count() as u64;
    let unsold = lots
        .iter()
        .filter(|l| matches!(l.closed, Some((_, false))))
        .count() as u64;
    format!(
        "auction: {}, {}, {} sold, {} unsold, {} open",
        count(lots.len() as u64, "lot", "lots"),
        count(bids, "bid", "bids"),
        thousands(sold),
        thousands(unsold),
        thousands(lots.len() as u64 - sold - unsold),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use turnstile_schemas::auction::UnsoldReason;
    use turnstile_schemas::seats::{PriceTier, RowSpec, SectionSpec};
    use turnstile_schemas::venue::SlotSpec;
    use turnstile_schemas::{CommandKind, LogPosition, Rejection};

    use super::*;

    /// Seconds after 2027-01-15T08:00:00Z.
    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn kind(decision: &Decision) -> CommandKind {
        match decision {
            Decision::EventCreated { .. } => CommandKind::CreateEvent,
            Decision::SeatsHeld { .. } => CommandKind::HoldSeats,
            Decision::HoldConfirmed { .. } => CommandKind::ConfirmHold,
            Decision::HoldReleased { .. } => CommandKind::ReleaseHold,
            Decision::HoldLapsed { .. } => CommandKind::LapseHold,
            Decision::VenueCreated { .. } => CommandKind::CreateVenue,
            Decision::TableBooked { .. } => CommandKind::Book,
            Decision::BookingCancelled { .. } => CommandKind::CancelBooking,
            Decision::Waitlisted { .. } => CommandKind::JoinWaitlist,
            Decision::OfferAccepted { .. } => CommandKind::AcceptOffer,
            Decision::OfferDeclined { .. } => CommandKind::DeclineOffer,
            Decision::OfferLapsed { .. } => CommandKind::LapseOffer,
            Decision::LotCreated { .. } => CommandKind::CreateLot,
            Decision::BidAccepted { .. } => CommandKind::Bid,
            Decision::LotSold {
                by_buy_now: true, ..
            } => CommandKind::BuyNow,
            Decision::LotSold { .. } | Decision::LotClosedUnsold { .. } => CommandKind::CloseLot,
            _ => CommandKind::Claim,
        }
    }

    /// A history under construction: each resource on its own partition, offsets dense.
    #[derive(Default)]
    struct History {
        outcomes: Vec<Outcome>,
    }

    impl History {
        fn push(&mut self, resource: &str, user: &str, at: DateTime<Utc>, decision: Decision) {
            let partition = match resource {
                "gala" => 0,
                "bistro" => 1,
                _ => 2,
            };
            let offset = self
                .outcomes
                .iter()
                .filter(|o| o.position.partition == partition)
                .count() as u64;
            self.outcomes.push(Outcome {
                request_id: format!("r{}", self.outcomes.len()),
                resource_id: resource.to_string(),
                user_id: user.to_string(),
                command: kind(&decision),
                position: LogPosition { partition, offset },
                decided_at: at,
                decision,
            });
        }

        fn check(&self) -> DomainAudit {
            check_domains(&self.outcomes)
        }

        /// The problems, which must be there.
        fn problems(&self) -> String {
            let audit = self.check();
            assert!(!audit.problems.is_empty(), "expected problems: {audit:?}");
            audit.problems.join("\n")
        }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    // -- Seats: event "gala", floor at 100 (rows A, B of 4), balcony at 50 (row A of 2).

    fn event_spec() -> EventSpec {
        let section = |id: &str, price: u64, rows: &[(&str, u32)]| SectionSpec {
            section_id: id.into(),
            price_tier: PriceTier {
                name: id.into(),
                price_minor: price,
            },
            rows: rows
                .iter()
                .map(|&(row_id, seats)| RowSpec {
                    row_id: row_id.into(),
                    seats,
                })
                .collect(),
        };
        EventSpec {
            locale: None,
            title: "Gala".into(),
            starts_at: t(86_400),
            sales_open_at: None,
            sales_close_at: None,
            hold_ttl_seconds: 600,
            holds_per_user_max: 2,
            seats_per_hold_max: 4,
            sections: vec![
                section("floor", 100, &[("A", 4), ("B", 4)]),
                section("bal", 50, &[("A", 2)]),
            ],
        }
    }

    fn held(n: u32, seats: &[&str], at: i64, price: u64) -> Decision {
        Decision::SeatsHeld {
            hold_id: format!("gala-h{n}"),
            seat_ids: strings(seats),
            expires_at: t(at + 600),
            price_total: price,
        }
    }

    fn confirmed(n: u32, seats: &[&str], price: u64) -> Decision {
        Decision::HoldConfirmed {
            hold_id: format!("gala-h{n}"),
            seat_ids: strings(seats),
            price_total: price,
        }
    }

    fn seats_history(h: &mut History) {
        let a = &["floor-A-1", "floor-A-2"];
        h.push(
            "gala",
            "op",
            t(0),
            Decision::EventCreated { spec: event_spec() },
        );
        h.push("gala", "alice", t(0), held(1, a, 0, 200));
        h.push("gala", "bob", t(10), held(2, &["floor-A-3"], 10, 100));
        h.push("gala", "alice", t(100), confirmed(1, a, 200));
        let released = Decision::HoldReleased {
            hold_id: "gala-h2".into(),
            seat_ids: strings(&["floor-A-3"]),
        };
        h.push("gala", "bob", t(200), released);
        let b = &["floor-A-3", "bal-A-1"];
        h.push("gala", "bob", t(300), held(3, b, 300, 150));
        h.push("gala", "carol", t(310), held(4, &["bal-A-2"], 310, 50));
        let lapsed = Decision::HoldLapsed {
            hold_id: "gala-h3".into(),
            seat_ids: strings(b),
        };
        h.push("gala", "bob", t(900), lapsed);
    }

    // -- Venue: "bistro" in UTC, 08:00 and 10:00 for two hours, 4 covers each.

    const SLOT_8: &str = "2027-01-16T08:00";
    const SLOT_10: &str = "2027-01-16T10:00";
    const DAY: i64 = 86_400;

    fn venue_spec(strict: bool) -> VenueSpec {
        let slot = |start: &str| SlotSpec {
            start: start.into(),
            duration_minutes: 120,
            capacity_covers: 4,
        };
        VenueSpec {
            locale: None,
            title: "Bistro".into(),
            time_zone: "UTC".into(),
            slots: vec![slot("08:00"), slot("10:00")],
            party_size_max: 4,
            offer_ttl_seconds: 900,
            strict_waitlist_order: strict,
            bookable_days_ahead: 60,
        }
    }

    fn slot_start(slot: &str) -> i64 {
        if slot == SLOT_8 {
            DAY
        } else {
            DAY + 7_200
        }
    }

    fn booked(n: u32, slot: &str, party: u32) -> Decision {
        Decision::TableBooked {
            booking_id: format!("bistro-b{n}"),
            slot: slot.into(),
            party_size: party,
            starts_at: t(slot_start(slot)),
            ends_at: t(slot_start(slot) + 7_200),
        }
    }

    fn waitlisted(n: u32, party: u32, position: u32) -> Decision {
        Decision::Waitlisted {
            waitlist_id: format!("bistro-w{n}"),
            slot: SLOT_8.into(),
            party_size: party,
            position,
        }
    }

    fn offer(n: u32, w: u32, user: &str, party: u32, made_at: i64) -> WaitlistOffer {
        WaitlistOffer {
            offer_id: format!("bistro-o{n}"),
            waitlist_id: format!("bistro-w{w}"),
            user_id: user.into(),
            slot: SLOT_8.into(),
            party_size: party,
            expires_at: t(made_at + 900),
        }
    }

    fn cancelled(n: u32, party: u32, offers: Vec<WaitlistOffer>) -> Decision {
        Decision::BookingCancelled {
            booking_id: format!("bistro-b{n}"),
            slot: SLOT_8.into(),
            party_size: party,
            offers,
        }
    }

    fn lapsed_offer(n: u32, party: u32, at: i64, offers: Vec<WaitlistOffer>) -> Decision {
        Decision::OfferLapsed {
            offer_id: format!("bistro-o{n}"),
            slot: SLOT_8.into(),
            party_size: party,
            expired_at: t(at),
            offers,
        }
    }

    fn venue_history(h: &mut History) {
        h.push(
            "bistro",
            "op",
            t(0),
            Decision::VenueCreated {
                spec: venue_spec(false),
            },
        );
        h.push("bistro", "alice", t(10), booked(1, SLOT_8, 3));
        h.push("bistro", "bob", t(20), waitlisted(1, 2, 1));
        h.push("bistro", "erin", t(30), waitlisted(2, 3, 2));
        // 4 covers free: bob's 2 fit, erin's 3 no longer do.
        let offers = vec![offer(1, 1, "bob", 2, 100)];
        h.push("bistro", "alice", t(100), cancelled(1, 3, offers));
        let offers = vec![offer(2, 2, "erin", 3, 1_000)];
        h.push("bistro", "bob", t(1_000), lapsed_offer(1, 2, 1_000, offers));
        let accepted = Decision::OfferAccepted {
            offer_id: "bistro-o2".into(),
            booking_id: "bistro-b2".into(),
            slot: SLOT_8.into(),
            party_size: 3,
            starts_at: t(DAY),
            ends_at: t(DAY + 7_200),
        };
        h.push("bistro", "erin", t(1_100), accepted);
        h.push("bistro", "alice", t(1_200), booked(3, SLOT_8, 1));
        // 08:00–10:00 and 10:00–12:00 do not overlap.
        h.push("bistro", "alice", t(1_300), booked(4, SLOT_10, 2));
    }

    // -- Auction: "vase" (opening 100, increment 10, reserve 150, 60 s window, ends at
    // 1000) and "lamp", never bid on.

    fn lot_spec() -> LotSpec {
        LotSpec {
            locale: None,
            title: "Vase".into(),
            seller_id: Some("sam".into()),
            opens_at: None,
            ends_at: t(1_000),
            opening_price: 100,
            increment: 10,
            reserve_price: Some(150),
            buy_now_price: Some(500),
            extension_seconds: 60,
            currency: "EUR".into(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn bid(
        n: u32,
        bidder: &str,
        max: u64,
        price: u64,
        leader: &str,
        outbid: Option<&str>,
        ends_at: i64,
        extended: bool,
    ) -> Decision {
        Decision::BidAccepted {
            bid_id: format!("vase-b{n}"),
            bidder: bidder.into(),
            max_amount: max,
            price,
            leader: leader.into(),
            outbid: outbid.map(str::to_string),
            ends_at: t(ends_at),
            extended,
        }
    }

    fn sold(winner: &str, price: u64, at: i64) -> Decision {
        Decision::LotSold {
            winner: winner.into(),
            price,
            by_buy_now: false,
            closed_at: t(at),
        }
    }

    fn auction_history(h: &mut History) {
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push(
            "vase",
            "alice",
            t(10),
            bid(1, "alice", 120, 100, "alice", None, 1_000, false),
        );
        // Bob's 200 meets the reserve: max(100, 120 + 10, 150) = 150.
        let b2 = bid(2, "bob", 200, 150, "bob", Some("alice"), 1_000, false);
        h.push("vase", "bob", t(20), b2);
        // In the window (940 <= 950): the end moves to 1060; price max(190, 150) = 190.
        let b3 = bid(3, "alice", 180, 190, "bob", None, 1_060, true);
        h.push("vase", "alice", t(950), b3);
        h.push("vase", "operator", t(1_060), sold("bob", 190, 1_060));
        let lamp = LotSpec {
            title: "Lamp".into(),
            ..lot_spec()
        };
        h.push("lamp", "op", t(0), Decision::LotCreated { spec: lamp });
        let unsold = Decision::LotClosedUnsold {
            reason: UnsoldReason::NoBids,
            highest_bidder: None,
            highest_bid: None,
            closed_at: t(1_000),
        };
        h.push("lamp", "operator", t(1_000), unsold);
    }

    fn valid() -> History {
        let mut h = History::default();
        seats_history(&mut h);
        venue_history(&mut h);
        auction_history(&mut h);
        // Ignored: a rejection and a coupon campaign.
        let rejected = Decision::Rejected {
            reason: Rejection::SeatUnavailable,
        };
        h.push("gala", "dave", t(400), rejected);
        h
    }

    #[test]
    fn a_valid_history_of_all_three_domains_passes_with_its_summary() {
        let audit = valid().check();
        assert_eq!(audit.problems, Vec::<String>::new());
        assert_eq!(
            audit.summary,
            vec![
                "seats: 1 event, 10 seats, 2 sold, 1 held, 7 free; 1 hold lapsed",
                "venue: 1 venue, 3 bookings live, 6 covers booked, 0 parties waitlisted; \
                 2 offers made, 1 accepted, 0 declined, 1 lapsed",
                "auction: 2 lots, 3 bids, 1 sold, 1 unsold, 0 open",
            ]
        );
    }

    #[test]
    fn outcomes_of_partitions_may_interleave_in_any_order() {
        let mut h = valid();
        h.outcomes.reverse();
        assert_eq!(h.check(), valid().check());
    }

    // -- Seats, tampered

    #[test]
    fn a_seat_sold_twice_is_found() {
        let mut h = valid();
        h.push("gala", "dave", t(400), held(5, &["floor-A-1"], 400, 100));
        h.push("gala", "dave", t(410), confirmed(5, &["floor-A-1"], 100));
        let problems = h.problems();
        assert!(
            problems.contains(
                "event gala at 0-9: seat floor-A-1 held by gala-h5 after it was sold in gala-h1"
            ),
            "{problems}"
        );
        assert!(
            problems
                .contains("event gala at 0-10: seat floor-A-1 sold twice, in gala-h1 and gala-h5"),
            "{problems}"
        );
    }

    #[test]
    fn a_seat_in_two_live_holds_is_found() {
        let mut h = History::default();
        h.push(
            "gala",
            "op",
            t(0),
            Decision::EventCreated { spec: event_spec() },
        );
        h.push("gala", "alice", t(0), held(1, &["floor-B-1"], 0, 100));
        h.push(
            "gala",
            "bob",
            t(5),
            held(2, &["floor-B-2", "floor-B-1"], 5, 200),
        );
        let problems = h.problems();
        assert!(
            problems.contains("seat floor-B-1 is in two live holds, gala-h1 and gala-h2"),
            "{problems}"
        );
        assert!(
            problems.contains("gala-h2 lists seat floor-B-1 out of seat-map order"),
            "{problems}"
        );
    }

    #[test]
    fn a_seat_outside_the_map_and_a_wrong_price_are_found() {
        let mut h = History::default();
        h.push(
            "gala",
            "op",
            t(0),
            Decision::EventCreated { spec: event_spec() },
        );
        h.push("gala", "alice", t(0), held(1, &["floor-C-1"], 0, 0));
        h.push(
            "gala",
            "bob",
            t(0),
            held(2, &["floor-A-1", "bal-A-1"], 0, 200),
        );
        let problems = h.problems();
        assert!(
            problems.contains("seat floor-C-1, which is not in the seat map"),
            "{problems}"
        );
        assert!(
            problems.contains("hold gala-h2 costs 200, but its seats' tiers sum to 150"),
            "{problems}"
        );
    }

    #[test]
    fn holds_over_the_per_user_limit_are_found() {
        let mut h = History::default();
        h.push(
            "gala",
            "op",
            t(0),
            Decision::EventCreated { spec: event_spec() },
        );
        for (n, seat) in [(1, "floor-B-1"), (2, "floor-B-2"), (3, "floor-B-3")] {
            h.push("gala", "alice", t(0), held(n, &[seat], 0, 100));
        }
        let problems = h.problems();
        assert!(
            problems.contains(
                "at 0-3: alice has 3 active holds with gala-h3, over holds_per_user_max 2"
            ),
            "{problems}"
        );
    }

    #[test]
    fn a_hold_ending_twice_late_or_by_another_user_is_found() {
        let mut h = valid();
        // h1 was confirmed at 0-3; h4 (carol's) expires at 910.
        h.push(
            "gala",
            "alice",
            t(400),
            confirmed(1, &["floor-A-1", "floor-A-2"], 200),
        );
        h.push("gala", "bob", t(910), confirmed(4, &["bal-A-2"], 50));
        let problems = h.problems();
        assert!(
            problems.contains(
                "hold gala-h1 confirmed after it already confirmed at 0-3: a hold ends once"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("hold gala-h4 confirmed for bob, not its holder carol"),
            "{problems}"
        );
        assert!(
            problems.contains(
                "hold gala-h4 confirmed at 2027-01-15T08:15:10+00:00, at or after its expiry"
            ),
            "{problems}"
        );
    }

    #[test]
    fn an_early_lapse_and_an_unknown_hold_are_found() {
        let mut h = valid();
        let lapse = |n: u32| Decision::HoldLapsed {
            hold_id: format!("gala-h{n}"),
            seat_ids: strings(&["bal-A-2"]),
        };
        h.push("gala", "carol", t(500), lapse(4));
        h.push("gala", "carol", t(2_000), lapse(9));
        let problems = h.problems();
        assert!(
            problems
                .contains("hold gala-h4 lapsed at 2027-01-15T08:08:20+00:00, before its expiry"),
            "{problems}"
        );
        assert!(
            problems.contains("lapsed hold gala-h9, which was never made"),
            "{problems}"
        );
    }

    // -- Venue, tampered

    #[test]
    fn covers_over_capacity_are_found() {
        let mut h = valid();
        // 08:00 has erin's 3 and alice's 1: full.
        h.push("bistro", "frank", t(1_400), booked(5, SLOT_8, 2));
        let problems = h.problems();
        assert!(problems.contains("venue bistro at 1-9: slot 2027-01-16T08:00 over capacity with booking bistro-b5: 6 booked + 0 offered covers > capacity_covers 4"), "{problems}");
    }

    #[test]
    fn an_overlapping_booking_is_found() {
        let mut h = valid();
        h.push("bistro", "alice", t(1_400), booked(5, SLOT_10, 1));
        let problems = h.problems();
        assert!(problems.contains("alice has overlapping live bookings bistro-b4 (2027-01-16T10:00) and bistro-b5 (2027-01-16T10:00)"), "{problems}");
    }

    #[test]
    fn an_offer_lapsed_twice_is_found() {
        let mut h = valid();
        h.push(
            "bistro",
            "bob",
            t(1_500),
            lapsed_offer(1, 2, 1_000, Vec::new()),
        );
        let problems = h.problems();
        assert!(
            problems.contains(
                "offer bistro-o1 lapsed after it already lapsed at 1-5: an offer ends once"
            ),
            "{problems}"
        );
    }

    #[test]
    fn an_offer_to_the_wrong_party_is_found() {
        let mut h = valid();
        // At the cancel, erin (3 covers, joined second) is offered instead of bob (2,
        // first); then bob's offer that lapses was never made.
        let Decision::BookingCancelled { offers, .. } = &mut h.outcomes[12].decision else {
            panic!("outcome 12 is the cancel");
        };
        offers[0] = offer(1, 2, "erin", 3, 100);
        let problems = h.problems();
        assert!(problems.contains("covers freed in 2027-01-16T08:00 were offered to [bistro-w2], but the waitlist in joining order gives [bistro-w1]"), "{problems}");
        assert!(
            problems
                .contains("offer bistro-o2 goes to bistro-w2, which was already offered bistro-o1"),
            "{problems}"
        );
    }

    #[test]
    fn an_offer_to_a_party_that_never_waited_is_found() {
        let mut h = valid();
        h.push(
            "bistro",
            "alice",
            t(1_400),
            Decision::BookingCancelled {
                booking_id: "bistro-b3".into(),
                slot: SLOT_8.into(),
                party_size: 1,
                offers: vec![offer(3, 7, "zed", 1, 1_400)],
            },
        );
        let problems = h.problems();
        assert!(
            problems.contains(
                "offer bistro-o3 answers bistro-w7, a party that never joined the waitlist"
            ),
            "{problems}"
        );
        assert!(
            problems.contains(
                "were offered to [bistro-w7], but the waitlist in joining order gives []"
            ),
            "{problems}"
        );
    }

    #[test]
    fn strict_order_offers_only_the_head() {
        let mut h = History::default();
        h.push(
            "bistro",
            "op",
            t(0),
            Decision::VenueCreated {
                spec: venue_spec(true),
            },
        );
        h.push("bistro", "alice", t(10), booked(1, SLOT_8, 2));
        h.push("bistro", "bob", t(20), booked(2, SLOT_8, 2));
        h.push("bistro", "carol", t(30), waitlisted(1, 4, 1));
        // Strict: dave waits behind carol though 2 covers would not be free anyway.
        h.push("bistro", "dave", t(40), waitlisted(2, 1, 2));
        // 2 free: carol (4) at the head does not fit and blocks dave (1).
        h.push("bistro", "alice", t(50), cancelled(1, 2, Vec::new()));
        assert_eq!(h.check().problems, Vec::<String>::new());
        h.push(
            "bistro",
            "bob",
            t(60),
            cancelled(2, 2, vec![offer(1, 1, "carol", 4, 60)]),
        );
        assert_eq!(h.check().problems, Vec::<String>::new());
        // A booking past the waiting dave breaks strict order.
        h.push("bistro", "erin", t(70), booked(3, SLOT_10, 1));
        h.push("bistro", "erin", t(70), booked(4, SLOT_8, 1));
        let problems = h.problems();
        assert!(problems.contains("booking bistro-b4 taken in strict waitlist order with 1 party waiting for 2027-01-16T08:00"), "{problems}");
        assert!(
            problems.contains("over capacity with booking bistro-b4: 1 booked + 4 offered"),
            "{problems}"
        );
    }

    #[test]
    fn a_cancel_by_another_user_and_a_needless_waitlist_are_found() {
        let mut h = valid();
        h.push("bistro", "mallory", t(1_400), cancelled(3, 1, Vec::new()));
        h.push(
            "bistro",
            "zoe",
            t(1_500),
            Decision::Waitlisted {
                waitlist_id: "bistro-w3".into(),
                slot: SLOT_10.into(),
                party_size: 2,
                position: 1,
            },
        );
        let problems = h.problems();
        assert!(
            problems.contains("booking bistro-b3 of alice cancelled by mallory"),
            "{problems}"
        );
        assert!(problems.contains("bistro-w3 joined the waitlist of 2027-01-16T10:00 while it had room: 2 covers free for a party of 2"), "{problems}");
    }

    // -- Auction, tampered

    #[test]
    fn a_bid_after_the_close_is_found() {
        let mut h = valid();
        h.push(
            "vase",
            "carol",
            t(1_070),
            bid(4, "carol", 400, 210, "carol", Some("bob"), 1_060, false),
        );
        let problems = h.problems();
        assert!(
            problems.contains("lot vase at 2-7: bid vase-b4 accepted after the lot closed at 2-4"),
            "{problems}"
        );
    }

    #[test]
    fn a_bid_after_the_end_is_found() {
        let mut h = History::default();
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push(
            "vase",
            "alice",
            t(1_000),
            bid(1, "alice", 120, 100, "alice", None, 1_060, true),
        );
        let problems = h.problems();
        assert!(
            problems
                .contains("bid vase-b1 at 2027-01-15T08:16:40+00:00, at or after the lot's end"),
            "{problems}"
        );
    }

    #[test]
    fn a_winner_who_is_not_the_highest_bidder_is_found() {
        let mut h = valid();
        h.outcomes[21].decision = sold("alice", 180, 1_060);
        let problems = h.problems();
        assert!(
            problems.contains(
                "lot vase at 2-4: sold to alice, who is not the highest bidder: bob leads with 200"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("sold at 180, but the current price is 190"),
            "{problems}"
        );
    }

    #[test]
    fn a_wrong_leader_on_a_bid_is_found() {
        let mut h = valid();
        h.outcomes[19].decision = bid(2, "bob", 200, 150, "alice", None, 1_000, false);
        let problems = h.problems();
        assert!(
            problems.contains(
                "bid vase-b2 makes alice the leader, but the highest maximum is bob's 200"
            ),
            "{problems}"
        );
        assert!(
            problems.contains("bid vase-b2 says it outbid None, but it displaced Some(\"alice\")"),
            "{problems}"
        );
    }

    #[test]
    fn an_end_moved_backwards_or_by_the_wrong_amount_is_found() {
        let mut h = valid();
        h.outcomes[20].decision = bid(3, "alice", 180, 190, "bob", None, 990, true);
        let problems = h.problems();
        assert!(
            problems.contains("bid vase-b3 moved the end backwards"),
            "{problems}"
        );

        let mut h = valid();
        h.outcomes[20].decision = bid(3, "alice", 180, 190, "bob", None, 1_100, true);
        let problems = h.problems();
        assert!(problems.contains("moved the end from 2027-01-15T08:16:40+00:00 to 2027-01-15T08:18:20+00:00, but extension_seconds 60 gives 2027-01-15T08:17:40+00:00"), "{problems}");

        // Moved by a bid outside the window.
        let mut h = valid();
        h.outcomes[19].decision = bid(2, "bob", 200, 150, "bob", Some("alice"), 1_060, true);
        let problems = h.problems();
        assert!(
            problems.contains(
                "bid vase-b2 says extended: true, but it was outside the anti-sniping window"
            ),
            "{problems}"
        );
    }

    #[test]
    fn a_price_above_the_winners_maximum_is_found() {
        let mut h = valid();
        h.outcomes[21].decision = sold("bob", 250, 1_060);
        let problems = h.problems();
        assert!(
            problems.contains("sold at 250, above the winner's maximum 200"),
            "{problems}"
        );
        let mut h = valid();
        h.outcomes[20].decision = bid(3, "alice", 180, 195, "bob", None, 1_060, true);
        let problems = h.problems();
        assert!(
            problems.contains("bid vase-b3 sets the price 195, but the proxy rule gives 190"),
            "{problems}"
        );
        let mut h = valid();
        h.outcomes[20].decision = bid(3, "alice", 180, 210, "bob", None, 1_060, true);
        let problems = h.problems();
        assert!(
            problems.contains("bid vase-b3 sets the price 210 above the leader's maximum 200"),
            "{problems}"
        );
    }

    #[test]
    fn an_early_sale_a_second_close_and_a_sale_below_reserve_are_found() {
        let mut h = valid();
        // Sold at the original end, before the extended one.
        h.outcomes[21].decision = sold("bob", 190, 1_000);
        h.outcomes[21].decided_at = t(1_000);
        h.push("vase", "operator", t(1_100), sold("bob", 190, 1_100));
        let problems = h.problems();
        assert!(problems.contains("sold at 2027-01-15T08:16:40+00:00 (closed_at 2027-01-15T08:16:40+00:00), before its end 2027-01-15T08:17:40+00:00"), "{problems}");
        assert!(
            problems.contains("at 2-7: sold after it already closed at 2-4: a lot closes once"),
            "{problems}"
        );

        let mut h = History::default();
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push(
            "vase",
            "alice",
            t(10),
            bid(1, "alice", 120, 100, "alice", None, 1_000, false),
        );
        h.push("vase", "operator", t(1_000), sold("alice", 100, 1_000));
        let problems = h.problems();
        assert!(
            problems.contains("sold at 100 with the leader's maximum 120, the reserve 150 not met"),
            "{problems}"
        );
    }

    #[test]
    fn a_bad_buy_now_and_a_wrong_unsold_close_are_found() {
        let mut h = History::default();
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push(
            "vase",
            "bob",
            t(10),
            bid(1, "bob", 600, 150, "bob", None, 1_000, false),
        );
        h.push(
            "vase",
            "sam",
            t(20),
            Decision::LotSold {
                winner: "sam".into(),
                price: 500,
                by_buy_now: true,
                closed_at: t(20),
            },
        );
        let problems = h.problems();
        assert!(
            problems.contains("bought now by the seller sam"),
            "{problems}"
        );
        assert!(
            problems.contains("bought now though bob's maximum 600 reached the buy-now price"),
            "{problems}"
        );

        let mut h = History::default();
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push(
            "vase",
            "bob",
            t(10),
            bid(1, "bob", 160, 150, "bob", None, 1_000, false),
        );
        h.push(
            "vase",
            "operator",
            t(1_000),
            Decision::LotClosedUnsold {
                reason: UnsoldReason::ReserveNotMet,
                highest_bidder: Some("bob".into()),
                highest_bid: Some(160),
                closed_at: t(1_000),
            },
        );
        let problems = h.problems();
        assert!(
            problems.contains(
                "closed unsold (\"reserve_not_met\") though its leader's maximum meets the reserve"
            ),
            "{problems}"
        );
    }

    // -- Across domains

    #[test]
    fn decisions_before_creation_or_of_another_domain_are_found() {
        let mut h = History::default();
        h.push("gala", "alice", t(0), held(1, &["floor-A-1"], 0, 100));
        h.push(
            "vase",
            "op",
            t(0),
            Decision::LotCreated { spec: lot_spec() },
        );
        h.push("vase", "alice", t(10), booked(1, SLOT_8, 2));
        let problems = h.problems();
        assert!(
            problems.contains(
                "resource gala at 0-0: a seats_held decision on gala, which was never created"
            ),
            "{problems}"
        );
        assert!(
            problems.contains(
                "lot vase at 2-1: a table_booked decision on a resource of the auction domain"
            ),
            "{problems}"
        );
    }

    #[test]
    fn problems_are_capped_at_twenty_with_a_count_of_the_rest() {
        let mut h = History::default();
        h.push(
            "gala",
            "op",
            t(0),
            Decision::EventCreated { spec: event_spec() },
        );
        for n in 1..=25 {
            h.push("gala", "alice", t(0), confirmed(n, &["floor-A-1"], 100));
        }
        let audit = h.check();
        assert_eq!(audit.problems.len(), 21);
        assert_eq!(audit.problems[20], "… and 5 more");
        assert_eq!(
            audit.problems[0],
            "event gala at 0-1: confirmed hold gala-h1, which was never made"
        );
    }
}
