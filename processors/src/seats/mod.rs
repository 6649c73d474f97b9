//! Seated events (live ticketing): a seat map, holds with a TTL, confirmation.
//!
//! The rules, as a box-office manager would state them:
//! 1. New holds ([`SeatsCommand::HoldSeats`], [`SeatsCommand::HoldBest`]) are taken only
//!    in the sales window: before `sales_open_at` they get `not_open_yet`, at or after
//!    `sales_close_at` `closed`. Confirming, releasing and lapsing are not bound to it.
//! 2. A hold takes 1 to `seats_per_hold_max` seats (`hold_size_invalid`).
//! 3. Specific seats are named `<section>-<row>-<n>`. The first id in the request that
//!    names no seat of the event gets `seat_not_found`, the first one named twice
//!    `duplicate_seat` (whichever comes first in request order).
//!    A best-available request naming a section the event does not have gets
//!    `section_not_found`.
//! 4. A user has at most `holds_per_user_max` active holds on the event
//!    (`hold_limit_reached`).
//! 5. Specific seats are held all or none: if any of them is held or sold, the request gets
//!    `seat_unavailable` and holds nothing.
//! 6. Best available `count` seats (in the named section, or in any): the first row, in
//!    section order and then row order as the spec lists them (front to back), that has
//!    `count` free seats side by side, and there the lowest-numbered such run. Only when no
//!    row of any candidate section has such a run: the first section, in spec order, with
//!    at least `count` free seats, and there its `count` front-most free seats (row by row,
//!    by seat number). A party is never split across sections: with no section holding
//!    `count` free seats the request gets `not_enough_seats`.
//! 7. A new hold is numbered `<event>-h<n>` (n from 1, in log order), costs the sum of its
//!    seats' price tiers and expires `hold_ttl_seconds` after the request. Its seats stay
//!    held until it is confirmed, released or lapses, also past its expiry until its lapse
//!    timer fires (and it counts towards its holder's limit until then).
//! 8. A hold is confirmed (bought) or released only by its holder (`not_hold_holder`),
//!    only while active (`hold_already_confirmed`, `hold_already_released`, or
//!    `hold_expired` once lapsed), and strictly before its `expires_at` (`hold_expired`,
//!    even if the lapse timer has not fired yet). Confirmed seats stay sold for good;
//!    released seats are free again.
//! 9. When a hold's lapse timer comes due (stamped with the hold's `expires_at`, on behalf
//!    of its holder), an active hold lapses and its seats are free again. A lapse of a
//!    hold that was confirmed or released, or has lapsed, is rejected with the codes of
//!    rule 8 and changes nothing; one stamped before `expires_at` is `not_due_yet`.
//! 10. No seat is ever in two holds at once, and a sold seat is never held or sold again.
//!
//! Each rejection is checked in the order the rules list them (hold ids first:
//! `hold_not_found` for an id that is not exactly `<event>-h<n>` of a hold made). A rejected
//! command changes nothing.
//!
//! Pure: no I/O, no clock. "Now" is the command's `submitted_at` (a timer's due time).

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{DateTime, Duration, Utc};
use turnstile_schemas::seats::{
    seat_id, EventAvailability, EventSpec, HoldRecord, HoldStatus, SeatsCommand,
    SectionAvailability,
};
use turnstile_schemas::{Decision, Rejection};

use crate::domain::Domain;
use crate::text_table::TextTable;

/// Where one seat stands. Holds are numbered from 0 here (`<event>-h1` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seat {
    Free,
    Held(u32),
    Sold(u32),
}

/// A section of the seat map: its rows and seats are contiguous ranges.
#[derive(Debug, Clone)]
struct Section {
    id: Box<str>,
    price_minor: u64,
    /// Its rows, numbers into `SeatedEvent::rows`.
    rows: Range<u32>,
    /// Row id → row number.
    row_numbers: BTreeMap<Box<str>, u32>,
    /// Its seats, numbers into `SeatedEvent::seats`.
    seats: Range<u32>,
    free: u32,
    held: u32,
    sold: u32,
}

/// A row of a section.
#[derive(Debug, Clone)]
struct Row {
    id: Box<str>,
    section: u32,
    /// Seat 1 of the row, a number into `SeatedEvent::seats`.
    first_seat: u32,
    seats: u32,
    free: u32,
}

/// A hold as the event remembers it.
#[derive(Debug, Clone)]
struct Hold {
    /// Its holder, an entry of `SeatedEvent::users`.
    holder: u32,
    /// Its seats, ascending (seat-map order).
    seats: Box<[u32]>,
    expires_at: DateTime<Utc>,
    price_total: u64,
    status: HoldStatus,
}

/// One seated event: its seat map, every hold made, and who holds what.
#[derive(Debug, Clone)]
pub struct SeatedEvent {
    event_id: Box<str>,
    spec: EventSpec,
    sections: Vec<Section>,
    /// Section id → section number.
    section_numbers: BTreeMap<Box<str>, u32>,
    /// Every row, in seat-map order.
    rows: Vec<Row>,
    /// Every seat, in seat-map order (section, row, number).
    seats: Vec<Seat>,
    /// Hold `<event>-h<n>` is `holds[n - 1]`.
    holds: Vec<Hold>,
    /// Users who ever held, with their number of active holds.
    users: TextTable<u32>,
}

/// The seats a hold request resolved to, ascending, with their total price.
struct Picked {
    seats: Vec<u32>,
    price_total: u64,
}

impl SeatedEvent {
    /// A new event with every seat free, or a message naming what is wrong with the spec.
    pub fn new(event_id: &str, spec: &EventSpec) -> Result<Self, String> {
        let seat_count = spec.validate()?;
        let mut event = SeatedEvent {
            event_id: event_id.into(),
            spec: spec.clone(),
            sections: Vec::with_capacity(spec.sections.len()),
            section_numbers: BTreeMap::new(),
            rows: Vec::new(),
            seats: vec![Seat::Free; seat_count as usize],
            holds: Vec::new(),
            users: TextTable::default(),
        };
        let mut next_seat = 0_u32;
        for (s, section) in spec.sections.iter().enumerate() {
            let s = s as u32; // at most SECTIONS_PER_EVENT_MAX
            let first_row = event.rows.len() as u32; // at most SEATS_PER_EVENT_MAX
            let first_seat = next_seat;
            let mut row_numbers = BTreeMap::new();
            for row in &section.rows {
                row_numbers.insert(row.row_id.as_str().into(), event.rows.len() as u32);
                event.rows.push(Row {
                    id: row.row_id.as_str().into(),
                    section: s,
                    first_seat: next_seat,
                    seats: row.seats,
                    free: row.seats,
                });
                next_seat += row.seats;
            }
            event
                .section_numbers
                .insert(section.section_id.as_str().into(), s);
            event.sections.push(Section {
                id: section.section_id.as_str().into(),
                price_minor: section.price_tier.price_minor,
                rows: first_row..event.rows.len() as u32,
                row_numbers,
                seats: first_seat..next_seat,
                free: next_seat - first_seat,
                held: 0,
                sold: 0,
            });
        }
        assert_eq!(next_seat, seat_count, "the seat map covers every seat once");
        Ok(event)
    }

    /// The event's id.
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// What users see: seats by section, free, held and sold.
    pub fn availability(&self) -> EventAvailability {
        EventAvailability {
            event_id: self.event_id.to_string(),
            title: self.spec.title.clone(),
            starts_at: self.spec.starts_at,
            sales_open_at: self.spec.sales_open_at,
            sales_close_at: self.spec.sales_close_at,
            sections: self
                .sections
                .iter()
                .zip(&self.spec.sections)
                .map(|(section, spec)| SectionAvailability {
                    section_id: section.id.to_string(),
                    price_tier: spec.price_tier.clone(),
                    seats: section.seats.len() as u32,
                    free: section.free,
                    held: section.held,
                    sold: section.sold,
                    free_seat_ids: section
                        .seats
                        .clone()
                        .filter(|&seat| self.seats[seat as usize] == Seat::Free)
                        .map(|seat| self.seat_id(seat))
                        .collect(),
                })
                .collect(),
        }
    }

    /// A hold of this event, by id.
    pub fn hold(&self, hold_id: &str) -> Option<HoldRecord> {
        let number = self.hold_number(hold_id)?;
        let hold = &self.holds[number as usize];
        Some(HoldRecord {
            hold_id: hold_id.to_string(),
            user_id: self.users.key(hold.holder).to_string(),
            seat_ids: self.seat_ids(&hold.seats),
            expires_at: hold.expires_at,
            price_total: hold.price_total,
            status: hold.status,
        })
    }

    /// Holds made so far (active or ended).
    pub fn hold_count(&self) -> usize {
        self.holds.len()
    }

    /// The id of hold number `number` (from 0): `<event>-h<number + 1>`.
    pub fn hold_id(&self, number: u32) -> String {
        format!("{}-h{}", self.event_id, number + 1)
    }

    // -- Deciding ------------------------------------------------------------------------

    /// Rule 1: the sales window.
    fn check_sales_window(&self, now: DateTime<Utc>) -> Result<(), Rejection> {
        if self.spec.sales_open_at.is_some_and(|open| now < open) {
            return Err(Rejection::NotOpenYet);
        }
        if self.spec.sales_close_at.is_some_and(|close| now >= close) {
            return Err(Rejection::Closed);
        }
        Ok(())
    }

    /// Rule 2: the size of a hold.
    fn check_hold_size(&self, count: usize) -> Result<(), Rejection> {
        if count == 0 || count > self.spec.seats_per_hold_max as usize {
            return Err(Rejection::HoldSizeInvalid);
        }
        Ok(())
    }

    /// Rule 4: the user's active holds.
    fn check_hold_limit(&self, user_id: &str) -> Result<(), Rejection> {
        let active = self.users.find(user_id).map_or(0, |u| *self.users.value(u));
        if active >= self.spec.holds_per_user_max {
            return Err(Rejection::HoldLimitReached);
        }
        Ok(())
    }

    /// Rules 1–5 for specific seats.
    fn pick_seats(
        &self,
        user_id: &str,
        seat_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<Picked, Rejection> {
        self.check_sales_window(now)?;
        self.check_hold_size(seat_ids.len())?;
        let mut seats = Vec::with_capacity(seat_ids.len());
        for id in seat_ids {
            let seat = self.seat_number(id).ok_or(Rejection::SeatNotFound)?;
            if seats.contains(&seat) {
                return Err(Rejection::DuplicateSeat);
            }
            seats.push(seat);
        }
        self.check_hold_limit(user_id)?;
        if seats
            .iter()
            .any(|&seat| self.seats[seat as usize] != Seat::Free)
        {
            return Err(Rejection::SeatUnavailable);
        }
        seats.sort_unstable();
        Ok(self.priced(seats))
    }

    /// Rules 1, 2, 3, 4 and 6 for best available.
    fn pick_best(
        &self,
        user_id: &str,
        count: u32,
        section: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Picked, Rejection> {
        self.check_sales_window(now)?;
        self.check_hold_size(count as usize)?;
        let candidates = match section {
            Some(id) => {
                let s = *self
                    .section_numbers
                    .get(id)
                    .ok_or(Rejection::SectionNotFound)?;
                s..s + 1
            }
            None => 0..self.sections.len() as u32,
        };
        self.check_hold_limit(user_id)?;
        let seats = self
            .best_run(count, candidates.clone())
            .or_else(|| self.best_front_most(count, candidates))
            .ok_or(Rejection::NotEnoughSeats)?;
        Ok(self.priced(seats))
    }

    /// Rule 6, first part: the lowest run of `count` free seats side by side in the first
    /// row (section order, then row order) that has one.
    fn best_run(&self, count: u32, sections: Range<u32>) -> Option<Vec<u32>> {
        for section in &self.sections[sections.start as usize..sections.end as usize] {
            if section.free < count {
                continue;
            }
            for row in &self.rows[section.rows.start as usize..section.rows.end as usize] {
                if row.free < count {
                    continue;
                }
                let mut run = 0;
                for seat in row.first_seat..row.first_seat + row.seats {
                    if self.seats[seat as usize] == Seat::Free {
                        run += 1;
                        if run == count {
                            return Some((seat + 1 - count..seat + 1).collect());
                        }
                    } else {
                        run = 0;
                    }
                }
            }
        }
        None
    }

    /// Rule 6, second part: the `count` front-most free seats of the first section that
    /// has that many.
    fn best_front_most(&self, count: u32, sections: Range<u32>) -> Option<Vec<u32>> {
        let section = self.sections[sections.start as usize..sections.end as usize]
            .iter()
            .find(|section| section.free >= count)?;
        Some(
            section
                .seats
                .clone()
                .filter(|&seat| self.seats[seat as usize] == Seat::Free)
                .take(count as usize)
                .collect(),
        )
    }

    fn priced(&self, seats: Vec<u32>) -> Picked {
        let price_total = self.price_total(&seats);
        Picked { seats, price_total }
    }

    fn price_total(&self, seats: &[u32]) -> u64 {
        // At most SEATS_PER_HOLD_MAX seats of at most PRICE_MINOR_MAX each: no overflow.
        seats
            .iter()
            .map(|&seat| self.sections[self.row_of(seat).section as usize].price_minor)
            .sum()
    }

    fn held(&self, picked: Picked, now: DateTime<Utc>) -> Decision {
        Decision::SeatsHeld {
            hold_id: self.hold_id(self.holds.len() as u32),
            seat_ids: self.seat_ids(&picked.seats),
            expires_at: now + Duration::seconds(i64::from(self.spec.hold_ttl_seconds)),
            price_total: picked.price_total,
        }
    }

    /// What rules 8 and 9 share: the hold, if it exists, `user_id` holds it and it is active.
    fn active_hold_of(&self, user_id: &str, hold_id: &str) -> Result<&Hold, Rejection> {
        let number = self.hold_number(hold_id).ok_or(Rejection::HoldNotFound)?;
        let hold = &self.holds[number as usize];
        if self.users.key(hold.holder) != user_id {
            return Err(Rejection::NotHoldHolder);
        }
        match hold.status {
            HoldStatus::Active => Ok(hold),
            HoldStatus::Confirmed => Err(Rejection::HoldAlreadyConfirmed),
            HoldStatus::Released => Err(Rejection::HoldAlreadyReleased),
            HoldStatus::Lapsed => Err(Rejection::HoldExpired),
        }
    }

    fn confirm(
        &self,
        user_id: &str,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let hold = self.active_hold_of(user_id, hold_id)?;
        if now >= hold.expires_at {
            return Err(Rejection::HoldExpired);
        }
        Ok(Decision::HoldConfirmed {
            hold_id: hold_id.to_string(),
            seat_ids: self.seat_ids(&hold.seats),
            price_total: hold.price_total,
        })
    }

    fn release(
        &self,
        user_id: &str,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let hold = self.active_hold_of(user_id, hold_id)?;
        if now >= hold.expires_at {
            return Err(Rejection::HoldExpired);
        }
        Ok(Decision::HoldReleased {
            hold_id: hold_id.to_string(),
            seat_ids: self.seat_ids(&hold.seats),
        })
    }

    fn lapse(
        &self,
        user_id: &str,
        hold_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let hold = self.active_hold_of(user_id, hold_id)?;
        if now < hold.expires_at {
            return Err(Rejection::NotDueYet);
        }
        Ok(Decision::HoldLapsed {
            hold_id: hold_id.to_string(),
            seat_ids: self.seat_ids(&hold.seats),
        })
    }

    // -- Evolving ------------------------------------------------------------------------

    fn record_hold(
        &mut self,
        user_id: &str,
        hold_id: &str,
        seat_ids: &[String],
        expires_at: DateTime<Utc>,
        price_total: u64,
    ) {
        let number = self.holds.len() as u32;
        assert_eq!(
            hold_id,
            self.hold_id(number),
            "holds of event {} are recorded in order",
            self.event_id
        );
        let seats: Box<[u32]> = seat_ids
            .iter()
            .map(|id| {
                self.seat_number(id).unwrap_or_else(|| {
                    panic!(
                        "hold {hold_id} names seat {id}, which event {} lacks",
                        self.event_id
                    )
                })
            })
            .collect();
        assert!(
            (1..=self.spec.seats_per_hold_max as usize).contains(&seats.len()),
            "hold {hold_id} has {} seats, outside 1..={}",
            seats.len(),
            self.spec.seats_per_hold_max
        );
        assert!(
            seats.windows(2).all(|pair| pair[0] < pair[1]),
            "hold {hold_id} lists its seats once each, in seat-map order"
        );
        assert_eq!(
            price_total,
            self.price_total(&seats),
            "hold {hold_id} costs the sum of its seats' price tiers"
        );
        let holder = match self.users.lookup(user_id) {
            Ok(entry) => entry,
            Err(absent) => self.users.insert(absent, user_id, 0),
        };
        let active = self.users.value_mut(holder);
        *active += 1;
        assert!(
            *active <= self.spec.holds_per_user_max,
            "rule 4 (holds per user) would break for {user_id} with hold {hold_id}"
        );
        for &seat in seats.iter() {
            let status = &mut self.seats[seat as usize];
            assert_eq!(
                *status,
                Seat::Free,
                "rule 10 (no seat held or sold twice) would break: hold {hold_id} takes seat \
                 number {seat}, which is not free"
            );
            *status = Seat::Held(number);
            let row_number = self.row_number(seat);
            let row = &mut self.rows[row_number];
            row.free -= 1;
            let section = &mut self.sections[row.section as usize];
            section.free -= 1;
            section.held += 1;
        }
        self.holds.push(Hold {
            holder,
            seats,
            expires_at,
            price_total,
            status: HoldStatus::Active,
        });
    }

    /// Ends an active hold of `user_id`: its seats become sold (`Confirmed`) or free.
    fn record_end(&mut self, user_id: &str, hold_id: &str, seat_ids: &[String], end: HoldStatus) {
        let number = self.hold_number(hold_id).unwrap_or_else(|| {
            panic!("a recorded end of hold {hold_id} names a hold made before it")
        });
        let hold = &self.holds[number as usize];
        assert_eq!(
            self.users.key(hold.holder),
            user_id,
            "hold {hold_id} ends on behalf of its holder"
        );
        assert_eq!(
            hold.status,
            HoldStatus::Active,
            "hold {hold_id} ends once ({end:?} after {:?})",
            hold.status
        );
        assert!(
            self.seat_ids(&hold.seats) == seat_ids,
            "a recorded end of hold {hold_id} names its seats"
        );
        let holder = hold.holder;
        let seats = std::mem::take(&mut self.holds[number as usize].seats);
        for &seat in seats.iter() {
            let row_number = self.row_number(seat);
            let status = &mut self.seats[seat as usize];
            assert_eq!(
                *status,
                Seat::Held(number),
                "seat number {seat} is held by hold {hold_id} until it ends"
            );
            let section = &mut self.sections[self.rows[row_number].section as usize];
            section.held -= 1;
            if end == HoldStatus::Confirmed {
                *status = Seat::Sold(number);
                section.sold += 1;
            } else {
                *status = Seat::Free;
                section.free += 1;
                self.rows[row_number].free += 1;
            }
        }
        let hold = &mut self.holds[number as usize];
        hold.seats = seats;
        hold.status = end;
        *self.users.value_mut(holder) -= 1;
    }

    // -- Names ---------------------------------------------------------------------------

    /// The number of seat `<section>-<row>-<n>`, if the event has it. Only the canonical
    /// spelling names a seat (`A-1-01` is not `A-1-1`).
    fn seat_number(&self, id: &str) -> Option<u32> {
        let mut parts = id.splitn(3, '-');
        let (section, row, n) = (parts.next()?, parts.next()?, parts.next()?);
        let section = &self.sections[*self.section_numbers.get(section)? as usize];
        let row = &self.rows[*section.row_numbers.get(row)? as usize];
        let n = parse_canonical(n)?;
        (1..=row.seats).contains(&n).then(|| row.first_seat + n - 1)
    }

    /// The number (from 0) of hold `<event>-h<n>`, if it was made.
    fn hold_number(&self, hold_id: &str) -> Option<u32> {
        let n = parse_canonical(hold_id.strip_prefix(&*self.event_id)?.strip_prefix("-h")?)?;
        (1..=self.holds.len() as u32).contains(&n).then(|| n - 1)
    }

    fn row_number(&self, seat: u32) -> usize {
        self.rows.partition_point(|row| row.first_seat <= seat) - 1
    }

    fn row_of(&self, seat: u32) -> &Row {
        &self.rows[self.row_number(seat)]
    }

    fn seat_id(&self, seat: u32) -> String {
        let row = self.row_of(seat);
        seat_id(
            &self.sections[row.section as usize].id,
            &row.id,
            seat - row.first_seat + 1,
        )
    }

    fn seat_ids(&self, seats: &[u32]) -> Vec<String> {
        seats.iter().map(|&seat| self.seat_id(seat)).collect()
    }
}

/// The `n` of a canonically spelled positive decimal (no sign, no leading zero).
fn parse_canonical(digits: &str) -> Option<u32> {
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Domain for SeatedEvent {
    type Spec = EventSpec;
    type Command = SeatsCommand;

    fn create(resource_id: &str, spec: &EventSpec) -> Result<Self, String> {
        SeatedEvent::new(resource_id, spec)
    }

    fn create_command_spec(command: &SeatsCommand) -> Option<&EventSpec> {
        match command {
            SeatsCommand::CreateEvent { spec } => Some(spec),
            _ => None,
        }
    }

    fn created(spec: &EventSpec) -> Decision {
        Decision::EventCreated { spec: spec.clone() }
    }

    fn created_spec(decision: &Decision) -> Option<&EventSpec> {
        match decision {
            Decision::EventCreated { spec } => Some(spec),
            _ => None,
        }
    }

    fn spec(&self) -> &EventSpec {
        &self.spec
    }

    fn decide(
        &self,
        user_id: &str,
        command: &SeatsCommand,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        match command {
            // The partition decides creates; answered here as it would be, for safety.
            SeatsCommand::CreateEvent { spec } if *spec == self.spec => Ok(Self::created(spec)),
            SeatsCommand::CreateEvent { .. } => Err(Rejection::ResourceExists),
            SeatsCommand::HoldSeats { seat_ids } => {
                let picked = self.pick_seats(user_id, seat_ids, now)?;
                Ok(self.held(picked, now))
            }
            SeatsCommand::HoldBest { count, section } => {
                let picked = self.pick_best(user_id, *count, section.as_deref(), now)?;
                Ok(self.held(picked, now))
            }
            SeatsCommand::ConfirmHold { hold_id } => self.confirm(user_id, hold_id, now),
            SeatsCommand::ReleaseHold { hold_id } => self.release(user_id, hold_id, now),
            SeatsCommand::LapseHold { hold_id } => self.lapse(user_id, hold_id, now),
        }
    }

    fn evolve(&mut self, user_id: &str, decision: &Decision) {
        match decision {
            Decision::EventCreated { spec } => assert_eq!(
                *spec, self.spec,
                "event {} is created again only with its own spec",
                self.event_id
            ),
            Decision::SeatsHeld {
                hold_id,
                seat_ids,
                expires_at,
                price_total,
            } => self.record_hold(user_id, hold_id, seat_ids, *expires_at, *price_total),
            Decision::HoldConfirmed {
                hold_id,
                seat_ids,
                price_total,
            } => {
                let number = self.hold_number(hold_id);
                assert!(
                    number.is_some_and(|n| self.holds[n as usize].price_total == *price_total),
                    "a confirmed hold {hold_id} costs what it cost when it was made"
                );
                self.record_end(user_id, hold_id, seat_ids, HoldStatus::Confirmed);
            }
            Decision::HoldReleased { hold_id, seat_ids } => {
                self.record_end(user_id, hold_id, seat_ids, HoldStatus::Released);
            }
            Decision::HoldLapsed { hold_id, seat_ids } => {
                self.record_end(user_id, hold_id, seat_ids, HoldStatus::Lapsed);
            }
            Decision::Rejected { .. } => {}
            other => panic!(
                "event {} was given a decision of another domain: {}",
                self.event_id,
                other.status()
            ),
        }
    }

    fn heap_bytes(&self) -> usize {
        let section_bytes: usize = self
            .sections
            .iter()
            .map(|section| {
                section.id.len()
                    + section
                        .row_numbers
                        .keys()
                        .map(|id| id.len() + 2 * std::mem::size_of::<(Box<str>, u32)>())
                        .sum::<usize>()
            })
            .sum();
        let hold_bytes: usize = self
            .holds
            .iter()
            .map(|hold| hold.seats.len() * std::mem::size_of::<u32>())
            .sum();
        self.sections.capacity() * std::mem::size_of::<Section>()
            + section_bytes
            + self.rows.capacity() * std::mem::size_of::<Row>()
            + self.rows.iter().map(|row| row.id.len()).sum::<usize>()
            + self.seats.capacity() * std::mem::size_of::<Seat>()
            + self.holds.capacity() * std::mem::size_of::<Hold>()
            + hold_bytes
            + self.users.heap_bytes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use turnstile_schemas::seats::{PriceTier, RowSpec, SectionSpec};
    use turnstile_schemas::{Command, ScheduledTimer};

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn section(id: &str, price_minor: u64, rows: &[(&str, u32)]) -> SectionSpec {
        SectionSpec {
            section_id: id.into(),
            price_tier: PriceTier {
                name: id.to_uppercase(),
                price_minor,
            },
            rows: rows
                .iter()
                .map(|&(row_id, seats)| RowSpec {
                    row_id: row_id.into(),
                    seats,
                })
                .collect(),
        }
    }

    /// floor: A 1..=4, B 1..=6 at 100; balcony: A 1..=3 at 40.
    fn spec() -> EventSpec {
        EventSpec {
            locale: None,
            title: "Gala".into(),
            starts_at: t(86_400),
            sales_open_at: Some(t(0)),
            sales_close_at: Some(t(3_600)),
            hold_ttl_seconds: 600,
            holds_per_user_max: 2,
            seats_per_hold_max: 6,
            sections: vec![
                section("floor", 100, &[("A", 4), ("B", 6)]),
                section("balcony", 40, &[("A", 3)]),
            ],
        }
    }

    fn event() -> SeatedEvent {
        SeatedEvent::new("gala", &spec()).unwrap()
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn hold_seats(seats: &[&str]) -> SeatsCommand {
        SeatsCommand::HoldSeats {
            seat_ids: ids(seats),
        }
    }

    fn best(count: u32, section: Option<&str>) -> SeatsCommand {
        SeatsCommand::HoldBest {
            count,
            section: section.map(str::to_owned),
        }
    }

    /// Decides and applies; returns the decision or rejection.
    fn apply(
        event: &mut SeatedEvent,
        user: &str,
        command: SeatsCommand,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        let decided = event.decide(user, &command, now);
        if let Ok(decision) = &decided {
            event.evolve(user, decision);
        }
        decided
    }

    fn held_seats(decided: Result<Decision, Rejection>) -> Vec<String> {
        match decided {
            Ok(Decision::SeatsHeld { seat_ids, .. }) => seat_ids,
            other => panic!("expected a hold, got {other:?}"),
        }
    }

    #[test]
    fn a_hold_of_specific_seats_is_priced_timed_and_sorted() {
        let mut event = event();
        let decided = apply(
            &mut event,
            "ann",
            hold_seats(&["balcony-A-2", "floor-B-1"]),
            t(10),
        );
        assert_eq!(
            decided,
            Ok(Decision::SeatsHeld {
                hold_id: "gala-h1".into(),
                seat_ids: ids(&["floor-B-1", "balcony-A-2"]),
                expires_at: t(610),
                price_total: 140,
            })
        );
        let timers = decided.unwrap().timers("ann");
        assert_eq!(
            timers,
            vec![ScheduledTimer {
                due_at: t(610),
                user_id: "ann".into(),
                command: Command::Seats(SeatsCommand::LapseHold {
                    hold_id: "gala-h1".into()
                }),
            }]
        );
        let view = event.availability();
        assert_eq!(
            (
                view.sections[0].free,
                view.sections[0].held,
                view.sections[0].sold
            ),
            (9, 1, 0)
        );
        assert!(!view.sections[0]
            .free_seat_ids
            .contains(&"floor-B-1".to_string()));
        assert_eq!(
            view.sections[1].free_seat_ids,
            ids(&["balcony-A-1", "balcony-A-3"])
        );
        let hold = event.hold("gala-h1").unwrap();
        assert_eq!(hold.status, HoldStatus::Active);
        assert_eq!(hold.user_id, "ann");
    }

    #[test]
    fn bad_seat_requests_are_refused_precisely_in_request_order() {
        let mut event = event();
        let now = t(10);
        for (seats, expected) in [
            (vec![], Rejection::HoldSizeInvalid),
            (vec!["floor-A-1"; 7], Rejection::HoldSizeInvalid),
            (vec!["floor-A-01"], Rejection::SeatNotFound),
            (vec!["floor-A-0"], Rejection::SeatNotFound),
            (vec!["floor-A-5"], Rejection::SeatNotFound),
            (vec!["floor-A-+1"], Rejection::SeatNotFound),
            (vec!["floor-C-1"], Rejection::SeatNotFound),
            (vec!["stalls-A-1"], Rejection::SeatNotFound),
            (vec!["floor-A"], Rejection::SeatNotFound),
            (vec!["floor-A-1-1"], Rejection::SeatNotFound),
            (vec![""], Rejection::SeatNotFound),
            (vec!["floor-A-1", "floor-A-1"], Rejection::DuplicateSeat),
            (
                vec!["floor-A-1", "floor-A-1", "nope"],
                Rejection::DuplicateSeat,
            ),
            (
                vec!["floor-A-1", "nope", "floor-A-1"],
                Rejection::SeatNotFound,
            ),
        ] {
            assert_eq!(
                event.decide("ann", &hold_seats(&seats), now),
                Err(expected),
                "{seats:?}"
            );
        }
        held_seats(apply(&mut event, "ann", hold_seats(&["floor-A-2"]), now));
        assert_eq!(
            event.decide("bob", &hold_seats(&["floor-A-1", "floor-A-2"]), now),
            Err(Rejection::SeatUnavailable)
        );
        held_seats(apply(&mut event, "ann", hold_seats(&["floor-A-3"]), now));
        // The limit (2) comes before availability.
        assert_eq!(
            event.decide("ann", &hold_seats(&["floor-A-2"]), now),
            Err(Rejection::HoldLimitReached)
        );
        assert_eq!(
            event.decide("ann", &best(1, None), now),
            Err(Rejection::HoldLimitReached)
        );
    }

    #[test]
    fn the_sales_window_bounds_new_holds_only() {
        let mut event = event();
        assert_eq!(
            event.decide("ann", &best(1, None), t(-1)),
            Err(Rejection::NotOpenYet)
        );
        let hold = held_seats(apply(&mut event, "ann", best(1, None), t(0)));
        assert_eq!(hold, ids(&["floor-A-1"]));
        held_seats(apply(&mut event, "bob", best(1, None), t(3_599)));
        assert_eq!(
            event.decide("cat", &hold_seats(&["floor-A-4"]), t(3_600)),
            Err(Rejection::Closed)
        );
        // bob's hold, made a second before the close, is confirmed after it.
        assert!(matches!(
            apply(
                &mut event,
                "bob",
                SeatsCommand::ConfirmHold {
                    hold_id: "gala-h2".into()
                },
                t(3_700)
            ),
            Ok(Decision::HoldConfirmed { .. })
        ));
    }

    #[test]
    fn best_available_prefers_a_run_in_a_later_row_then_the_front_most_seats() {
        let mut event = event();
        let now = t(10);
        // Break up row A: A-2 is taken, so no two together in A.
        held_seats(apply(&mut event, "x", hold_seats(&["floor-A-2"]), now));
        assert_eq!(
            held_seats(apply(&mut event, "ann", best(2, None), now)),
            ids(&["floor-A-3", "floor-A-4"])
        );
        assert_eq!(
            held_seats(apply(&mut event, "bob", best(2, None), now)),
            ids(&["floor-B-1", "floor-B-2"])
        );
        // A-1 alone, B-3..=6 together: three go to B.
        assert_eq!(
            held_seats(apply(&mut event, "cat", best(3, None), now)),
            ids(&["floor-B-3", "floor-B-4", "floor-B-5"])
        );
        // Floor has A-1 and B-6 left, two apart: a pair goes to the balcony together.
        assert_eq!(
            held_seats(apply(&mut event, "dan", best(2, None), now)),
            ids(&["balcony-A-1", "balcony-A-2"])
        );
        // Nowhere two together: the front-most two of the first section with two free.
        assert_eq!(
            held_seats(apply(&mut event, "eve", best(2, None), now)),
            ids(&["floor-A-1", "floor-B-6"])
        );
        // One left in the balcony and none on the floor: never split across sections.
        assert_eq!(
            event.decide("fay", &best(2, None), now),
            Err(Rejection::NotEnoughSeats)
        );
        assert_eq!(
            held_seats(apply(&mut event, "fay", best(1, Some("balcony")), now)),
            ids(&["balcony-A-3"])
        );
        assert_eq!(
            event.decide("gus", &best(1, Some("floor")), now),
            Err(Rejection::NotEnoughSeats)
        );
        assert_eq!(
            event.decide("gus", &best(1, Some("stalls")), now),
            Err(Rejection::SectionNotFound)
        );
        assert_eq!(
            event.decide("gus", &best(0, None), now),
            Err(Rejection::HoldSizeInvalid)
        );
        assert_eq!(
            event.decide("gus", &best(7, None), now),
            Err(Rejection::HoldSizeInvalid)
        );
        let view = event.availability();
        assert!(view
            .sections
            .iter()
            .all(|s| s.free == 0 && s.held == s.seats));
    }

    #[test]
    fn a_named_section_is_searched_alone() {
        let mut event = event();
        assert_eq!(
            held_seats(apply(&mut event, "ann", best(3, Some("balcony")), t(10))),
            ids(&["balcony-A-1", "balcony-A-2", "balcony-A-3"])
        );
    }

    #[test]
    fn confirm_and_release_by_the_holder_strictly_before_expiry() {
        let mut event = event();
        held_seats(apply(&mut event, "ann", best(2, None), t(0)));
        let confirm = |id: &str| SeatsCommand::ConfirmHold { hold_id: id.into() };
        let release = |id: &str| SeatsCommand::ReleaseHold { hold_id: id.into() };
        assert_eq!(
            event.decide("bob", &confirm("gala-h1"), t(1)),
            Err(Rejection::NotHoldHolder)
        );
        for missing in [
            "gala-h2", "gala-h0", "gala-h01", "gala-1", "gala", "other-h1", "",
        ] {
            assert_eq!(
                event.decide("ann", &confirm(missing), t(1)),
                Err(Rejection::HoldNotFound),
                "{missing}"
            );
        }
        assert_eq!(
            event.decide("ann", &confirm("gala-h1"), t(600)),
            Err(Rejection::HoldExpired)
        );
        assert_eq!(
            event.decide("ann", &release("gala-h1"), t(600)),
            Err(Rejection::HoldExpired)
        );
        assert_eq!(
            apply(&mut event, "ann", confirm("gala-h1"), t(599)),
            Ok(Decision::HoldConfirmed {
                hold_id: "gala-h1".into(),
                seat_ids: ids(&["floor-A-1", "floor-A-2"]),
                price_total: 200,
            })
        );
        assert_eq!(
            event.decide("ann", &confirm("gala-h1"), t(2)),
            Err(Rejection::HoldAlreadyConfirmed)
        );
        assert_eq!(
            event.decide("ann", &release("gala-h1"), t(2)),
            Err(Rejection::HoldAlreadyConfirmed)
        );
        assert_eq!(event.availability().sections[0].sold, 2);
        // The limit counts active holds only.
        held_seats(apply(&mut event, "ann", best(1, None), t(3)));
        assert_eq!(
            apply(&mut event, "ann", release("gala-h2"), t(4)),
            Ok(Decision::HoldReleased {
                hold_id: "gala-h2".into(),
                seat_ids: ids(&["floor-A-3"]),
            })
        );
        assert_eq!(
            event.decide("ann", &confirm("gala-h2"), t(5)),
            Err(Rejection::HoldAlreadyReleased)
        );
        assert_eq!(
            held_seats(apply(&mut event, "bob", best(1, None), t(5))),
            ids(&["floor-A-3"])
        );
    }

    #[test]
    fn a_hold_lapses_at_its_expiry_and_only_if_still_active() {
        let mut event = event();
        held_seats(apply(&mut event, "ann", best(2, None), t(0)));
        let lapse = SeatsCommand::LapseHold {
            hold_id: "gala-h1".into(),
        };
        assert_eq!(
            event.decide("ann", &lapse, t(599)),
            Err(Rejection::NotDueYet)
        );
        // Past its expiry, unlapsed: its seats stay held and it still counts.
        assert_eq!(
            event.decide("bob", &hold_seats(&["floor-A-1"]), t(700)),
            Err(Rejection::SeatUnavailable)
        );
        assert_eq!(event.availability().sections[0].held, 2);
        assert_eq!(
            apply(&mut event, "ann", lapse.clone(), t(600)),
            Ok(Decision::HoldLapsed {
                hold_id: "gala-h1".into(),
                seat_ids: ids(&["floor-A-1", "floor-A-2"]),
            })
        );
        assert_eq!(
            event.decide("ann", &lapse, t(600)),
            Err(Rejection::HoldExpired)
        );
        assert_eq!(
            event.decide(
                "ann",
                &SeatsCommand::ConfirmHold {
                    hold_id: "gala-h1".into()
                },
                t(1)
            ),
            Err(Rejection::HoldExpired)
        );
        assert_eq!(event.availability().sections[0].free, 10);
        held_seats(apply(&mut event, "ann", best(1, None), t(700)));
        apply(
            &mut event,
            "ann",
            SeatsCommand::ConfirmHold {
                hold_id: "gala-h2".into(),
            },
            t(701),
        )
        .unwrap();
        let stale = SeatsCommand::LapseHold {
            hold_id: "gala-h2".into(),
        };
        assert_eq!(
            event.decide("ann", &stale, t(1_300)),
            Err(Rejection::HoldAlreadyConfirmed)
        );
    }

    #[test]
    fn a_repeated_create_is_answered_by_spec() {
        let event = event();
        let same = SeatsCommand::CreateEvent { spec: spec() };
        assert_eq!(
            event.decide("op", &same, t(0)),
            Ok(Decision::EventCreated { spec: spec() })
        );
        let mut other = spec();
        other.title = "Other".into();
        assert_eq!(
            event.decide("op", &SeatsCommand::CreateEvent { spec: other }, t(0)),
            Err(Rejection::ResourceExists)
        );
        assert_eq!(SeatedEvent::create_command_spec(&same), Some(&spec()));
        assert_eq!(
            SeatedEvent::created_spec(&SeatedEvent::created(&spec())),
            Some(&spec())
        );
        let mut bad = spec();
        bad.sections[1].section_id = "floor".into();
        assert!(SeatedEvent::create("gala", &bad)
            .unwrap_err()
            .contains("sections[1].section_id"));
    }

    #[test]
    fn restore_by_evolve_rebuilds_the_same_state() {
        let mut event = event();
        let mut log = Vec::new();
        for (user, command, now) in [
            ("ann", best(2, None), t(0)),
            ("bob", hold_seats(&["balcony-A-3", "floor-B-6"]), t(1)),
            (
                "ann",
                SeatsCommand::ConfirmHold {
                    hold_id: "gala-h1".into(),
                },
                t(2),
            ),
            (
                "bob",
                SeatsCommand::LapseHold {
                    hold_id: "gala-h2".into(),
                },
                t(601),
            ),
            ("cat", best(3, Some("balcony")), t(602)),
        ] {
            let decision = apply(&mut event, user, command, now).unwrap();
            log.push((user, decision));
        }
        let mut restored = SeatedEvent::create("gala", &spec()).unwrap();
        for (user, decision) in &log {
            restored.evolve(user, decision);
        }
        assert_eq!(restored.availability(), event.availability());
        for n in 1..=3 {
            let id = format!("gala-h{n}");
            assert_eq!(restored.hold(&id), event.hold(&id));
        }
        assert!(restored.heap_bytes() > 0);
    }

    #[test]
    #[should_panic(expected = "rule 10 (no seat held or sold twice)")]
    fn evolve_refuses_a_seat_held_twice() {
        let mut event = event();
        let decision = event
            .decide("ann", &hold_seats(&["floor-A-1"]), t(0))
            .unwrap();
        event.evolve("ann", &decision);
        event.evolve(
            "bob",
            &Decision::SeatsHeld {
                hold_id: "gala-h2".into(),
                seat_ids: ids(&["floor-A-1"]),
                expires_at: t(600),
                price_total: 100,
            },
        );
    }

    #[test]
    #[should_panic(expected = "ends once")]
    fn evolve_refuses_a_hold_ended_twice() {
        let mut event = event();
        let held = event.decide("ann", &best(1, None), t(0)).unwrap();
        event.evolve("ann", &held);
        let confirmed = event
            .decide(
                "ann",
                &SeatsCommand::ConfirmHold {
                    hold_id: "gala-h1".into(),
                },
                t(1),
            )
            .unwrap();
        event.evolve("ann", &confirmed);
        event.evolve(
            "ann",
            &Decision::HoldLapsed {
                hold_id: "gala-h1".into(),
                seat_ids: ids(&["floor-A-1"]),
            },
        );
    }

    #[test]
    #[should_panic(expected = "recorded in order")]
    fn evolve_refuses_holds_out_of_order() {
        let mut event = event();
        event.evolve(
            "ann",
            &Decision::SeatsHeld {
                hold_id: "gala-h2".into(),
                seat_ids: ids(&["floor-A-1"]),
                expires_at: t(600),
                price_total: 100,
            },
        );
    }

    #[test]
    #[should_panic(expected = "rule 4 (holds per user)")]
    fn evolve_refuses_a_hold_over_the_user_limit() {
        let mut event = event();
        for (n, seat) in ["floor-A-1", "floor-A-2", "floor-A-3"].iter().enumerate() {
            event.evolve(
                "ann",
                &Decision::SeatsHeld {
                    hold_id: format!("gala-h{}", n + 1),
                    seat_ids: ids(&[seat]),
                    expires_at: t(600),
                    price_total: 100,
                },
            );
        }
    }

    #[test]
    fn decisions_never_name_a_rejection_code() {
        let statuses = [
            Decision::EventCreated { spec: spec() },
            Decision::SeatsHeld {
                hold_id: String::new(),
                seat_ids: Vec::new(),
                expires_at: t(0),
                price_total: 0,
            },
            Decision::HoldConfirmed {
                hold_id: String::new(),
                seat_ids: Vec::new(),
                price_total: 0,
            },
            Decision::HoldReleased {
                hold_id: String::new(),
                seat_ids: Vec::new(),
            },
            Decision::HoldLapsed {
                hold_id: String::new(),
                seat_ids: Vec::new(),
            },
        ]
        .map(|d| d.status());
        for rejection in [
            Rejection::SeatNotFound,
            Rejection::DuplicateSeat,
            Rejection::SeatUnavailable,
            Rejection::SectionNotFound,
            Rejection::HoldSizeInvalid,
            Rejection::NotEnoughSeats,
            Rejection::HoldLimitReached,
            Rejection::HoldNotFound,
            Rejection::NotHoldHolder,
            Rejection::HoldAlreadyConfirmed,
            Rejection::HoldAlreadyReleased,
            Rejection::HoldExpired,
            Rejection::NotDueYet,
        ] {
            assert!(
                !statuses.contains(&rejection.code()),
                "{}",
                rejection.code()
            );
            let json = serde_json::to_string(&rejection).unwrap();
            assert_eq!(json, format!("\"{}\"", rejection.code()));
        }
    }
}
