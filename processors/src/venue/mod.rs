//! Venue slots (restaurant reservations): covers per slot, bookings, waitlists.
//!
//! The rules, as a restaurant manager would state them:
//! 1. The venue serves its slots every day at their local start, in its time zone. A slot
//!    of one day is named by local date and start, `2026-12-24T18:00`; it runs from that
//!    instant for `duration_minutes`. A start the clocks skip that day (spring forward) is
//!    no slot that day; a start the clocks pass twice (fall back) is the first of the two.
//! 2. A booking or waitlist entry is checked in this order: the slot exists
//!    (`slot_not_found`), the party has 1 to `party_size_max` guests (`party_size_zero`,
//!    `party_too_large`), the slot starts after now (`slot_in_past`), and its local date is
//!    at most `bookable_days_ahead` days after today's local date (`slot_too_far_ahead`).
//! 3. A guest is never booked into two overlapping slots: a booking or waitlist entry is
//!    refused (`overlapping_booking`) while the guest has a booking or an outstanding offer
//!    in a slot whose time overlaps this one's (the same slot included).
//! 4. A slot has room for a party when that many covers are free (capacity − booked −
//!    held for outstanding offers) and, if the venue keeps strict waitlist order, nobody
//!    is waiting for it. A booking takes room (`<venue>-b<n>`) or is refused
//!    (`slot_full`): covers held for an offer are never booked by someone else.
//! 5. A party joins a slot's waitlist only when the slot has no room for it (else
//!    `slot_has_room`: book instead), once per slot (`already_waitlisted`, checked before
//!    rule 3), and while fewer than 200 parties wait (`waitlist_full`). It is told its
//!    position (`<venue>-w<n>`).
//! 6. A booking is cancelled by its holder (`booking_not_found`, `not_booking_holder`,
//!    `booking_already_cancelled`) before its slot starts (`slot_in_past`). Exactly its
//!    covers are freed (rule 8).
//! 7. An offer is answered by its guest (`offer_not_found`, `not_offer_guest`,
//!    `offer_already_answered`) before it expires (`offer_expired`). Accepting makes it a
//!    booking of the held covers (`<venue>-b<n>`), unless the guest has meanwhile booked
//!    an overlapping slot (`overlapping_booking`; the offer stays open). Declining frees
//!    the covers (rule 8).
//! 8. Covers freed in a slot that has not started are offered to its waiting parties at
//!    once. Without strict order the waitlist is walked in joining order and every party
//!    that fits the covers still free is offered them: the earliest-joined party that
//!    fits comes first, and a party of 2 is not blocked behind a party of 4. In strict
//!    order the head is offered while it fits, and nobody behind it. An offered party
//!    leaves the waitlist; its covers are held (`<venue>-o<n>`) until `offer_ttl_seconds`
//!    after the offer, or the slot's start if that is sooner. Covers freed once the slot
//!    has started are offered to nobody.
//! 9. An offer's lapse timer, due at its expiry, ends it if it is still outstanding and
//!    frees its covers (rule 8). Before the expiry it is `not_due_yet`; for an offer
//!    already answered, `offer_already_answered`; for one already lapsed, `offer_expired`.
//!
//! Pure: no I/O, no clock ("now" is passed in), and state kept in ordered maps and
//! vectors only, so a decision is a function of the decisions before it. Every decision
//! carries what [`Venue`]'s `evolve` needs, including the offers a freed cover causes.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use turnstile_schemas::venue::{
    local_instant, parse_slot_id, parse_start, slot_id, SlotAvailability, VenueAvailability,
    VenueCalendar, VenueCommand, VenueSpec, WaitlistOffer, WAITLIST_ENTRIES_PER_SLOT_MAX,
};
use turnstile_schemas::{Decision, Rejection};

use crate::domain::Domain;

/// One venue's state: its slots and every booking, waitlist entry and offer so far.
#[derive(Debug, Clone)]
pub struct Venue {
    venue_id: String,
    spec: VenueSpec,
    time_zone: Tz,
    /// The spec's slots, parsed; a slot of a day is numbered by its index here.
    day_slots: Vec<DaySlot>,
    /// Every slot something happened in, by local date and index in `day_slots`.
    slots: BTreeMap<SlotKey, SlotState>,
    /// Booking `n` (the suffix of `<venue>-b<n>`) is `bookings[n - 1]`.
    bookings: Vec<Booking>,
    /// Waitlist entry `n` is `entries[n - 1]`.
    entries: Vec<WaitEntry>,
    /// Offer `n` is `offers[n - 1]`.
    offers: Vec<Offer>,
    /// Per guest, the bookings and outstanding offers they hold: rule 3.
    commitments: BTreeMap<String, Vec<Commitment>>,
}

/// A slot served every day, from the spec.
#[derive(Debug, Clone)]
struct DaySlot {
    start: NaiveTime,
    duration: Duration,
    capacity: u32,
}

/// A slot of one day: its local date and its index among the venue's daily slots.
type SlotKey = (NaiveDate, u16);

/// A slot of one day as named in a command, with its instants.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    key: SlotKey,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    capacity: u32,
}

/// The covers and waitlist of a slot of one day.
#[derive(Debug, Clone)]
struct SlotState {
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    capacity: u32,
    booked: u32,
    /// Covers held for outstanding offers.
    offered: u32,
    /// Waitlist entry numbers, in joining order.
    waiting: VecDeque<u32>,
}

impl SlotState {
    fn new(resolved: &Resolved) -> Self {
        SlotState {
            starts_at: resolved.starts_at,
            ends_at: resolved.ends_at,
            capacity: resolved.capacity,
            booked: 0,
            offered: 0,
            waiting: VecDeque::new(),
        }
    }

    fn free(&self) -> u32 {
        self.capacity - self.booked - self.offered
    }
}

#[derive(Debug, Clone)]
struct Booking {
    user: String,
    slot: SlotKey,
    party: u32,
    cancelled: bool,
}

#[derive(Debug, Clone)]
struct WaitEntry {
    user: String,
    slot: SlotKey,
    party: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferStatus {
    Outstanding,
    Accepted,
    Declined,
    Lapsed,
}

#[derive(Debug, Clone)]
struct Offer {
    user: String,
    slot: SlotKey,
    party: u32,
    expires_at: DateTime<Utc>,
    status: OfferStatus,
}

/// What a guest holds in a slot: a booking or an outstanding offer (by number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Booking(u32),
    Offer(u32),
}

#[derive(Debug, Clone)]
struct Commitment {
    held: Held,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

/// The id kinds: `<venue>-b<n>`, `<venue>-w<n>`, `<venue>-o<n>`.
const BOOKING_TAG: char = 'b';
const WAITLIST_TAG: char = 'w';
const OFFER_TAG: char = 'o';

impl Venue {
    /// The venue's id.
    pub fn venue_id(&self) -> &str {
        &self.venue_id
    }

    /// The availability of every local date from `now`'s on that has activity: what the
    /// edge's lookups are answered from.
    pub fn calendar(&self, now: DateTime<Utc>) -> VenueCalendar {
        let today = now.with_timezone(&self.time_zone).date_naive();
        let mut dates: Vec<NaiveDate> = self
            .slots
            .range((today, 0)..)
            .map(|((date, _), _)| *date)
            .collect();
        dates.dedup();
        VenueCalendar {
            venue_id: self.venue_id.clone(),
            spec: self.spec.clone(),
            as_of: now,
            days: dates
                .into_iter()
                .map(|date| self.availability(date, now))
                .collect(),
        }
    }

    /// The slots of local `date` as a guest sees them at `now` (the GET view).
    pub fn availability(&self, date: NaiveDate, now: DateTime<Utc>) -> VenueAvailability {
        let mut slots = Vec::with_capacity(self.day_slots.len());
        for (index, day_slot) in self.day_slots.iter().enumerate() {
            let slot = slot_id(date, day_slot.start);
            let Some(resolved) = self.resolve(&slot) else {
                continue; // the clocks skip this start on this date
            };
            let fresh = SlotState::new(&resolved);
            let state = self.slots.get(&(date, index as u16)).unwrap_or(&fresh);
            let bookable = if self.bookable(&resolved, now).is_err() || !self.open_to(state) {
                0
            } else {
                state.free().min(self.spec.party_size_max)
            };
            slots.push(SlotAvailability {
                slot,
                starts_at: state.starts_at,
                ends_at: state.ends_at,
                capacity_covers: state.capacity,
                booked_covers: state.booked,
                offered_covers: state.offered,
                free_covers: state.free(),
                waitlist_length: state.waiting.len() as u32,
                bookable_party_size_max: bookable,
            });
        }
        VenueAvailability {
            venue_id: self.venue_id.clone(),
            date,
            time_zone: self.spec.time_zone.clone(),
            as_of: now,
            slots,
        }
    }

    // -- Deciding ----------------------------------------------------------------------

    fn decide_book(
        &self,
        user_id: &str,
        slot: &str,
        party_size: u32,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let resolved = self.admit(slot, party_size, now)?;
        if self.overlaps(user_id, &resolved, true) {
            return Err(Rejection::OverlappingBooking);
        }
        if !self.has_room(&resolved, party_size) {
            return Err(Rejection::SlotFull);
        }
        Ok(Decision::TableBooked {
            booking_id: self.id(BOOKING_TAG, self.bookings.len() + 1),
            slot: slot.to_string(),
            party_size,
            starts_at: resolved.starts_at,
            ends_at: resolved.ends_at,
        })
    }

    fn decide_join(
        &self,
        user_id: &str,
        slot: &str,
        party_size: u32,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let resolved = self.admit(slot, party_size, now)?;
        let waiting = self
            .slots
            .get(&resolved.key)
            .map_or(0, |state| state.waiting.len());
        if self.slots.get(&resolved.key).is_some_and(|state| {
            state
                .waiting
                .iter()
                .any(|&n| self.entries[n as usize - 1].user == user_id)
        }) {
            return Err(Rejection::AlreadyWaitlisted);
        }
        if self.overlaps(user_id, &resolved, true) {
            return Err(Rejection::OverlappingBooking);
        }
        if self.has_room(&resolved, party_size) {
            return Err(Rejection::SlotHasRoom);
        }
        if waiting >= WAITLIST_ENTRIES_PER_SLOT_MAX {
            return Err(Rejection::WaitlistFull);
        }
        Ok(Decision::Waitlisted {
            waitlist_id: self.id(WAITLIST_TAG, self.entries.len() + 1),
            slot: slot.to_string(),
            party_size,
            position: waiting as u32 + 1,
        })
    }

    fn decide_cancel(
        &self,
        user_id: &str,
        booking_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let n = self
            .number(BOOKING_TAG, booking_id, self.bookings.len())
            .ok_or(Rejection::BookingNotFound)?;
        let booking = &self.bookings[n as usize - 1];
        if booking.user != user_id {
            return Err(Rejection::NotBookingHolder);
        }
        if booking.cancelled {
            return Err(Rejection::BookingAlreadyCancelled);
        }
        let state = self.slot_state(booking.slot);
        if state.starts_at <= now {
            return Err(Rejection::SlotInPast);
        }
        Ok(Decision::BookingCancelled {
            booking_id: booking_id.to_string(),
            slot: self.slot_name(booking.slot),
            party_size: booking.party,
            offers: self.promotions(booking.slot, booking.party, now),
        })
    }

    /// The offer `offer_id` answered by `user_id` at `now`: checks shared by accept and
    /// decline (rule 7).
    fn answerable(
        &self,
        user_id: &str,
        offer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(u32, &Offer), Rejection> {
        let n = self
            .number(OFFER_TAG, offer_id, self.offers.len())
            .ok_or(Rejection::OfferNotFound)?;
        let offer = &self.offers[n as usize - 1];
        if offer.user != user_id {
            return Err(Rejection::NotOfferGuest);
        }
        match offer.status {
            OfferStatus::Accepted | OfferStatus::Declined => Err(Rejection::OfferAlreadyAnswered),
            OfferStatus::Lapsed => Err(Rejection::OfferExpired),
            OfferStatus::Outstanding if now >= offer.expires_at => Err(Rejection::OfferExpired),
            OfferStatus::Outstanding => Ok((n, offer)),
        }
    }

    fn decide_accept(
        &self,
        user_id: &str,
        offer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let (_, offer) = self.answerable(user_id, offer_id, now)?;
        let state = self.slot_state(offer.slot);
        let resolved = Resolved {
            key: offer.slot,
            starts_at: state.starts_at,
            ends_at: state.ends_at,
            capacity: state.capacity,
        };
        if self.overlaps(user_id, &resolved, false) {
            return Err(Rejection::OverlappingBooking);
        }
        Ok(Decision::OfferAccepted {
            offer_id: offer_id.to_string(),
            booking_id: self.id(BOOKING_TAG, self.bookings.len() + 1),
            slot: self.slot_name(offer.slot),
            party_size: offer.party,
            starts_at: state.starts_at,
            ends_at: state.ends_at,
        })
    }

    fn decide_decline(
        &self,
        user_id: &str,
        offer_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let (_, offer) = self.answerable(user_id, offer_id, now)?;
        Ok(Decision::OfferDeclined {
            offer_id: offer_id.to_string(),
            slot: self.slot_name(offer.slot),
            party_size: offer.party,
            offers: self.promotions(offer.slot, offer.party, now),
        })
    }

    fn decide_lapse(&self, offer_id: &str, now: DateTime<Utc>) -> Result<Decision, Rejection> {
        let n = self
            .number(OFFER_TAG, offer_id, self.offers.len())
            .ok_or(Rejection::OfferNotFound)?;
        let offer = &self.offers[n as usize - 1];
        match offer.status {
            OfferStatus::Accepted | OfferStatus::Declined => {
                return Err(Rejection::OfferAlreadyAnswered)
            }
            OfferStatus::Lapsed => return Err(Rejection::OfferExpired),
            OfferStatus::Outstanding if now < offer.expires_at => return Err(Rejection::NotDueYet),
            OfferStatus::Outstanding => {}
        }
        Ok(Decision::OfferLapsed {
            offer_id: offer_id.to_string(),
            slot: self.slot_name(offer.slot),
            party_size: offer.party,
            expired_at: offer.expires_at,
            offers: self.promotions(offer.slot, offer.party, now),
        })
    }

    /// Rule 2: the slot named by `slot`, if a party of `party_size` may book or wait for
    /// it at `now`.
    fn admit(
        &self,
        slot: &str,
        party_size: u32,
        now: DateTime<Utc>,
    ) -> Result<Resolved, Rejection> {
        let resolved = self.resolve(slot).ok_or(Rejection::SlotNotFound)?;
        if party_size == 0 {
            return Err(Rejection::PartySizeZero);
        }
        if party_size > self.spec.party_size_max {
            return Err(Rejection::PartyTooLarge);
        }
        self.bookable(&resolved, now)?;
        Ok(resolved)
    }

    /// Rule 2's time checks.
    fn bookable(&self, resolved: &Resolved, now: DateTime<Utc>) -> Result<(), Rejection> {
        if resolved.starts_at <= now {
            return Err(Rejection::SlotInPast);
        }
        let today = now.with_timezone(&self.time_zone).date_naive();
        let last = today
            .checked_add_days(chrono::Days::new(u64::from(self.spec.bookable_days_ahead)))
            .unwrap_or(NaiveDate::MAX);
        if resolved.key.0 > last {
            return Err(Rejection::SlotTooFarAhead);
        }
        Ok(())
    }

    /// Rule 3: whether `user_id` holds a booking (or, with `offers`, an outstanding
    /// offer) in a slot overlapping `slot`.
    fn overlaps(&self, user_id: &str, slot: &Resolved, offers: bool) -> bool {
        self.commitments.get(user_id).is_some_and(|held| {
            held.iter().any(|c| {
                (offers || matches!(c.held, Held::Booking(_)))
                    && c.starts_at < slot.ends_at
                    && slot.starts_at < c.ends_at
            })
        })
    }

    /// Whether a slot is open to new parties at all: not in strict order behind someone
    /// waiting.
    fn open_to(&self, state: &SlotState) -> bool {
        !self.spec.strict_waitlist_order || state.waiting.is_empty()
    }

    /// Rule 4.
    fn has_room(&self, slot: &Resolved, party_size: u32) -> bool {
        match self.slots.get(&slot.key) {
            None => party_size <= slot.capacity,
            Some(state) => self.open_to(state) && party_size <= state.free(),
        }
    }

    /// Rule 8: the offers made when `freed` covers of `key` become free at `now`.
    fn promotions(&self, key: SlotKey, freed: u32, now: DateTime<Utc>) -> Vec<WaitlistOffer> {
        let state = self.slot_state(key);
        if state.starts_at <= now {
            return Vec::new();
        }
        let mut free = state.free() + freed;
        let ttl = Duration::seconds(i64::from(self.spec.offer_ttl_seconds));
        let expires_at = (now + ttl).min(state.starts_at);
        let slot = self.slot_name(key);
        let mut offers = Vec::new();
        for &n in &state.waiting {
            let entry = &self.entries[n as usize - 1];
            if entry.party > free {
                if self.spec.strict_waitlist_order {
                    break;
                }
                continue;
            }
            free -= entry.party;
            offers.push(WaitlistOffer {
                offer_id: self.id(OFFER_TAG, self.offers.len() + offers.len() + 1),
                waitlist_id: self.id(WAITLIST_TAG, n as usize),
                user_id: entry.user.clone(),
                slot: slot.clone(),
                party_size: entry.party,
                expires_at,
            });
            if free == 0 {
                break;
            }
        }
        offers
    }

    // -- Evolving ----------------------------------------------------------------------

    fn record_booking(
        &mut self,
        user_id: &str,
        booking_id: &str,
        resolved: &Resolved,
        party_size: u32,
    ) {
        assert_eq!(
            booking_id,
            self.id(BOOKING_TAG, self.bookings.len() + 1),
            "venue {}: bookings are recorded in numbering order",
            self.venue_id
        );
        assert!(
            !self.overlaps(user_id, resolved, false),
            "rule 3 (no overlapping bookings) would break: {user_id} at venue {} already has \
             a booking overlapping {booking_id}",
            self.venue_id
        );
        let state = self
            .slots
            .entry(resolved.key)
            .or_insert_with(|| SlotState::new(resolved));
        state.booked += party_size;
        assert!(
            state.booked + state.offered <= state.capacity,
            "no overbooking would break: {booking_id} at venue {} takes {} booked + {} \
             offered covers over capacity {}",
            self.venue_id,
            state.booked,
            state.offered,
            state.capacity
        );
        let n = self.bookings.len() as u32 + 1;
        self.bookings.push(Booking {
            user: user_id.to_string(),
            slot: resolved.key,
            party: party_size,
            cancelled: false,
        });
        self.commitments
            .entry(user_id.to_string())
            .or_default()
            .push(Commitment {
                held: Held::Booking(n),
                starts_at: resolved.starts_at,
                ends_at: resolved.ends_at,
            });
    }

    fn release(&mut self, user: &str, held: Held) {
        let commitments = self
            .commitments
            .get_mut(user)
            .expect("a guest with a booking or offer has commitments");
        let at = commitments
            .iter()
            .position(|c| c.held == held)
            .expect("a booking or outstanding offer is among its guest's commitments");
        commitments.swap_remove(at);
        if commitments.is_empty() {
            self.commitments.remove(user);
        }
    }

    /// The offer `offer_id`, checked to be outstanding in `slot` for `party_size`, freed.
    fn close_offer(&mut self, offer_id: &str, slot: &str, party_size: u32, status: OfferStatus) {
        let n = self
            .number(OFFER_TAG, offer_id, self.offers.len())
            .unwrap_or_else(|| panic!("a recorded answer names offer {offer_id}, never made"));
        let offer = &mut self.offers[n as usize - 1];
        assert!(
            offer.status == OfferStatus::Outstanding,
            "an offer is answered or lapses once: {offer_id} is {:?}",
            offer.status
        );
        assert_eq!(
            offer.party, party_size,
            "{offer_id} holds its party's covers"
        );
        offer.status = status;
        let (key, party, user) = (offer.slot, offer.party, offer.user.clone());
        assert_eq!(self.slot_name(key), slot, "{offer_id} is in its slot");
        let state = self
            .slots
            .get_mut(&key)
            .expect("an offer's slot has a state");
        state.offered -= party;
        self.release(&user, Held::Offer(n));
    }

    fn record_offers(&mut self, offers: &[WaitlistOffer]) {
        for offer in offers {
            let n = self.offers.len() as u32 + 1;
            assert_eq!(
                offer.offer_id,
                self.id(OFFER_TAG, n as usize),
                "venue {}: offers are recorded in numbering order",
                self.venue_id
            );
            let entry_number = self
                .number(WAITLIST_TAG, &offer.waitlist_id, self.entries.len())
                .unwrap_or_else(|| panic!("{} answers no waitlist entry", offer.offer_id));
            let entry = &self.entries[entry_number as usize - 1];
            assert!(
                entry.user == offer.user_id
                    && entry.party == offer.party_size
                    && self.slot_name(entry.slot) == offer.slot,
                "{} is for the guest, party and slot of {}",
                offer.offer_id,
                offer.waitlist_id
            );
            let (key, user) = (entry.slot, entry.user.clone());
            let state = self
                .slots
                .get_mut(&key)
                .expect("a waitlist's slot has a state");
            let at = state
                .waiting
                .iter()
                .position(|&w| w == entry_number)
                .unwrap_or_else(|| panic!("{} is offered while not waiting", offer.waitlist_id));
            state.waiting.remove(at);
            state.offered += offer.party_size;
            assert!(
                state.booked + state.offered <= state.capacity,
                "no overbooking would break: {} holds {} covers of {} with {} booked and {} \
                 offered",
                offer.offer_id,
                offer.party_size,
                state.capacity,
                state.booked,
                state.offered
            );
            let (starts_at, ends_at) = (state.starts_at, state.ends_at);
            self.offers.push(Offer {
                user: user.clone(),
                slot: key,
                party: offer.party_size,
                expires_at: offer.expires_at,
                status: OfferStatus::Outstanding,
            });
            self.commitments.entry(user).or_default().push(Commitment {
                held: Held::Offer(n),
                starts_at,
                ends_at,
            });
        }
    }

    // -- Names -------------------------------------------------------------------------

    /// The slot a slot id names, with its instants (rule 1).
    fn resolve(&self, slot: &str) -> Option<Resolved> {
        let (date, start) = parse_slot_id(slot)?;
        let index = self.day_slots.iter().position(|s| s.start == start)?;
        let day_slot = &self.day_slots[index];
        let starts_at = local_instant(self.time_zone, date, start)?;
        Some(Resolved {
            key: (date, index as u16),
            starts_at,
            ends_at: starts_at + day_slot.duration,
            capacity: day_slot.capacity,
        })
    }

    fn slot_name(&self, key: SlotKey) -> String {
        slot_id(key.0, self.day_slots[key.1 as usize].start)
    }

    fn slot_state(&self, key: SlotKey) -> &SlotState {
        self.slots
            .get(&key)
            .expect("a slot with a booking, entry or offer has a state")
    }

    fn id(&self, tag: char, n: usize) -> String {
        format!("{}-{tag}{n}", self.venue_id)
    }

    /// The `n` of a canonically spelled `<venue>-<tag><n>` with `1 <= n <= count`.
    fn number(&self, tag: char, id: &str, count: usize) -> Option<u32> {
        let digits = id
            .strip_prefix(self.venue_id.as_str())?
            .strip_prefix('-')?
            .strip_prefix(tag)?;
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n = digits.parse::<u32>().ok()?;
        (1..=count).contains(&(n as usize)).then_some(n)
    }
}

impl Domain for Venue {
    type Spec = VenueSpec;
    type Command = VenueCommand;

    fn create(resource_id: &str, spec: &VenueSpec) -> Result<Self, String> {
        let time_zone = spec.validate()?;
        let day_slots = spec
            .slots
            .iter()
            .map(|slot| DaySlot {
                start: parse_start(&slot.start).expect("validated: starts are HH:MM"),
                duration: Duration::minutes(i64::from(slot.duration_minutes)),
                capacity: slot.capacity_covers,
            })
            .collect();
        Ok(Venue {
            venue_id: resource_id.to_string(),
            spec: spec.clone(),
            time_zone,
            day_slots,
            slots: BTreeMap::new(),
            bookings: Vec::new(),
            entries: Vec::new(),
            offers: Vec::new(),
            commitments: BTreeMap::new(),
        })
    }

    fn create_command_spec(command: &VenueCommand) -> Option<&VenueSpec> {
        match command {
            VenueCommand::CreateVenue { spec } => Some(spec),
            _ => None,
        }
    }

    fn created(spec: &VenueSpec) -> Decision {
        Decision::VenueCreated { spec: spec.clone() }
    }

    fn created_spec(decision: &Decision) -> Option<&VenueSpec> {
        match decision {
            Decision::VenueCreated { spec } => Some(spec),
            _ => None,
        }
    }

    fn spec(&self) -> &VenueSpec {
        &self.spec
    }

    fn decide(
        &self,
        user_id: &str,
        command: &VenueCommand,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        match command {
            // The partition decides creates; answered the same way here for completeness.
            VenueCommand::CreateVenue { spec } if *spec == self.spec => Ok(Self::created(spec)),
            VenueCommand::CreateVenue { .. } => Err(Rejection::ResourceExists),
            VenueCommand::Book { slot, party_size } => {
                self.decide_book(user_id, slot, *party_size, now)
            }
            VenueCommand::CancelBooking { booking_id } => {
                self.decide_cancel(user_id, booking_id, now)
            }
            VenueCommand::JoinWaitlist { slot, party_size } => {
                self.decide_join(user_id, slot, *party_size, now)
            }
            VenueCommand::AcceptOffer { offer_id } => self.decide_accept(user_id, offer_id, now),
            VenueCommand::DeclineOffer { offer_id } => self.decide_decline(user_id, offer_id, now),
            VenueCommand::LapseOffer { offer_id } => self.decide_lapse(offer_id, now),
        }
    }

    fn evolve(&mut self, user_id: &str, decision: &Decision) {
        match decision {
            Decision::VenueCreated { spec } => assert_eq!(
                *spec, self.spec,
                "venue {} is created once, with one spec",
                self.venue_id
            ),
            Decision::TableBooked {
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
            } => {
                let resolved = self
                    .resolve(slot)
                    .unwrap_or_else(|| panic!("{booking_id} is in {slot}, no slot here"));
                assert!(
                    resolved.starts_at == *starts_at && resolved.ends_at == *ends_at,
                    "{booking_id} runs when its slot {slot} does"
                );
                self.record_booking(user_id, booking_id, &resolved, *party_size);
            }
            Decision::BookingCancelled {
                booking_id,
                slot,
                party_size,
                offers,
            } => {
                let n = self
                    .number(BOOKING_TAG, booking_id, self.bookings.len())
                    .unwrap_or_else(|| panic!("cancelled {booking_id}, never booked"));
                let booking = &mut self.bookings[n as usize - 1];
                assert!(
                    booking.user == user_id && !booking.cancelled && booking.party == *party_size,
                    "{booking_id} is cancelled once, by its holder, freeing its covers"
                );
                booking.cancelled = true;
                let key = booking.slot;
                assert_eq!(self.slot_name(key), *slot, "{booking_id} is in its slot");
                let state = self
                    .slots
                    .get_mut(&key)
                    .expect("a booking's slot has a state");
                state.booked -= party_size;
                self.release(user_id, Held::Booking(n));
                self.record_offers(offers);
            }
            Decision::Waitlisted {
                waitlist_id,
                slot,
                party_size,
                position,
            } => {
                let resolved = self
                    .resolve(slot)
                    .unwrap_or_else(|| panic!("{waitlist_id} waits for {slot}, no slot here"));
                let n = self.entries.len() as u32 + 1;
                assert_eq!(
                    *waitlist_id,
                    self.id(WAITLIST_TAG, n as usize),
                    "venue {}: waitlist entries are recorded in numbering order",
                    self.venue_id
                );
                let state = self
                    .slots
                    .entry(resolved.key)
                    .or_insert_with(|| SlotState::new(&resolved));
                assert_eq!(
                    state.waiting.len() + 1,
                    *position as usize,
                    "{waitlist_id} joins at the back of the waitlist of {slot}"
                );
                state.waiting.push_back(n);
                self.entries.push(WaitEntry {
                    user: user_id.to_string(),
                    slot: resolved.key,
                    party: *party_size,
                });
            }
            Decision::OfferAccepted {
                offer_id,
                booking_id,
                slot,
                party_size,
                starts_at,
                ends_at,
            } => {
                let n = self
                    .number(OFFER_TAG, offer_id, self.offers.len())
                    .unwrap_or_else(|| panic!("accepted {offer_id}, never made"));
                assert_eq!(
                    self.offers[n as usize - 1].user,
                    user_id,
                    "{offer_id} is accepted by its guest"
                );
                self.close_offer(offer_id, slot, *party_size, OfferStatus::Accepted);
                let resolved = self
                    .resolve(slot)
                    .unwrap_or_else(|| panic!("{booking_id} is in {slot}, no slot here"));
                assert!(
                    resolved.starts_at == *starts_at && resolved.ends_at == *ends_at,
                    "{booking_id} runs when its slot {slot} does"
                );
                self.record_booking(user_id, booking_id, &resolved, *party_size);
            }
            Decision::OfferDeclined {
                offer_id,
                slot,
                party_size,
                offers,
            } => {
                self.close_offer(offer_id, slot, *party_size, OfferStatus::Declined);
                self.record_offers(offers);
            }
            Decision::OfferLapsed {
                offer_id,
                slot,
                party_size,
                expired_at,
                offers,
            } => {
                let n = self
                    .number(OFFER_TAG, offer_id, self.offers.len())
                    .unwrap_or_else(|| panic!("lapsed {offer_id}, never made"));
                assert_eq!(
                    self.offers[n as usize - 1].expires_at,
                    *expired_at,
                    "{offer_id} lapses at its expiry"
                );
                self.close_offer(offer_id, slot, *party_size, OfferStatus::Lapsed);
                self.record_offers(offers);
            }
            Decision::Rejected { .. } => {}
            other => panic!(
                "venue {} was given a {} decision, which is not a venue's",
                self.venue_id,
                other.status()
            ),
        }
    }

    fn heap_bytes(&self) -> usize {
        let users: usize = self
            .commitments
            .iter()
            .map(|(user, held)| {
                user.capacity() + held.capacity() * std::mem::size_of::<Commitment>() + 64
            })
            .sum();
        let slots: usize = self
            .slots
            .values()
            .map(|s| std::mem::size_of::<SlotState>() + s.waiting.capacity() * 4 + 32)
            .sum();
        let bookings: usize = self.bookings.iter().map(|b| b.user.capacity()).sum();
        let entries: usize = self.entries.iter().map(|e| e.user.capacity()).sum();
        let offers: usize = self.offers.iter().map(|o| o.user.capacity()).sum();
        users
            + slots
            + bookings
            + entries
            + offers
            + self.bookings.capacity() * std::mem::size_of::<Booking>()
            + self.entries.capacity() * std::mem::size_of::<WaitEntry>()
            + self.offers.capacity() * std::mem::size_of::<Offer>()
            + self.day_slots.capacity() * std::mem::size_of::<DaySlot>()
    }
}

#[cfg(test)]
mod tests;
