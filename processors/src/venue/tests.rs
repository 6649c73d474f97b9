//! Edge cases of the venue rules: time zones and daylight saving, boundaries, the
//! waitlist orders, offers, and evolve refusing contradictions.

#![allow(clippy::unwrap_used)]

use super::*;
use turnstile_schemas::venue::SlotSpec;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn slot_spec(start: &str, duration_minutes: u32, capacity_covers: u32) -> SlotSpec {
    SlotSpec {
        start: start.into(),
        duration_minutes,
        capacity_covers,
    }
}

fn spec(strict: bool) -> VenueSpec {
    VenueSpec {
        locale: None,
        title: "Bistro".into(),
        time_zone: "America/New_York".into(),
        slots: vec![
            slot_spec("01:30", 60, 6),
            slot_spec("02:30", 60, 6),
            slot_spec("18:00", 120, 6),
            slot_spec("19:00", 120, 6),
            slot_spec("23:30", 150, 6),
        ],
        party_size_max: 6,
        offer_ttl_seconds: 900,
        strict_waitlist_order: strict,
        bookable_days_ahead: 2,
    }
}

/// A venue driven like the partition does: decide, then evolve what was decided.
struct Harness {
    venue: Venue,
    now: DateTime<Utc>,
}

impl Harness {
    fn new(spec: VenueSpec, now: &str) -> Self {
        Harness {
            venue: Venue::create("bistro", &spec).unwrap(),
            now: utc(now),
        }
    }

    fn run(&mut self, user: &str, command: VenueCommand) -> Result<Decision, Rejection> {
        let before = format!("{:?}", self.venue);
        let result = self.venue.decide(user, &command, self.now);
        assert_eq!(before, format!("{:?}", self.venue), "decide never mutates");
        if let Ok(decision) = &result {
            self.venue.evolve(user, decision);
        }
        result
    }

    fn book(&mut self, user: &str, slot: &str, party_size: u32) -> Result<Decision, Rejection> {
        let slot = slot.to_string();
        self.run(user, VenueCommand::Book { slot, party_size })
    }

    fn join(&mut self, user: &str, slot: &str, party_size: u32) -> Result<Decision, Rejection> {
        let slot = slot.to_string();
        self.run(user, VenueCommand::JoinWaitlist { slot, party_size })
    }

    fn cancel(&mut self, user: &str, booking_id: &str) -> Result<Decision, Rejection> {
        let booking_id = booking_id.to_string();
        self.run(user, VenueCommand::CancelBooking { booking_id })
    }

    fn accept(&mut self, user: &str, offer_id: &str) -> Result<Decision, Rejection> {
        let offer_id = offer_id.to_string();
        self.run(user, VenueCommand::AcceptOffer { offer_id })
    }

    fn lapse(&mut self, user: &str, offer_id: &str) -> Result<Decision, Rejection> {
        let offer_id = offer_id.to_string();
        self.run(user, VenueCommand::LapseOffer { offer_id })
    }

    fn slot(&self, slot: &str) -> SlotAvailability {
        let (date, _) = parse_slot_id(slot).unwrap();
        self.venue
            .availability(date, self.now)
            .slots
            .into_iter()
            .find(|s| s.slot == slot)
            .unwrap()
    }
}

fn offers(decision: &Decision) -> Vec<(String, String, u32)> {
    match decision {
        Decision::BookingCancelled { offers, .. }
        | Decision::OfferDeclined { offers, .. }
        | Decision::OfferLapsed { offers, .. } => offers
            .iter()
            .map(|o| (o.offer_id.clone(), o.user_id.clone(), o.party_size))
            .collect(),
        other => panic!("no offers in {other:?}"),
    }
}

#[test]
fn new_york_slots_start_at_the_right_instants_across_daylight_saving() {
    let mut h = Harness::new(spec(false), "2026-03-07T12:00:00Z");
    let booked = |d: Result<Decision, Rejection>| match d.unwrap() {
        Decision::TableBooked {
            starts_at, ends_at, ..
        } => (starts_at, ends_at),
        other => panic!("{other:?}"),
    };
    // EST (UTC-5) the day before the spring forward, EDT (UTC-4) on the day.
    assert_eq!(
        booked(h.book("a", "2026-03-07T18:00", 2)).0,
        utc("2026-03-07T23:00:00Z")
    );
    assert_eq!(
        booked(h.book("b", "2026-03-08T18:00", 2)),
        (utc("2026-03-08T22:00:00Z"), utc("2026-03-09T00:00:00Z"))
    );
    // 02:30 does not happen on 2026-03-08, but does on the 9th.
    assert_eq!(
        h.book("c", "2026-03-08T02:30", 2),
        Err(Rejection::SlotNotFound)
    );
    assert_eq!(
        booked(h.book("c", "2026-03-09T02:30", 2)).0,
        utc("2026-03-09T06:30:00Z")
    );
    let view = h
        .venue
        .availability(NaiveDate::from_ymd_opt(2026, 3, 8).unwrap(), h.now);
    let starts: Vec<&str> = view.slots.iter().map(|s| s.slot.as_str()).collect();
    assert_eq!(
        starts,
        [
            "2026-03-08T01:30",
            "2026-03-08T18:00",
            "2026-03-08T19:00",
            "2026-03-08T23:30"
        ]
    );

    let mut h = Harness::new(spec(false), "2026-10-31T12:00:00Z");
    // EST again after the fall back; 01:30 happens twice and the first (EDT) counts.
    assert_eq!(
        booked(h.book("a", "2026-11-01T18:00", 2)).0,
        utc("2026-11-01T23:00:00Z")
    );
    assert_eq!(
        booked(h.book("b", "2026-11-01T01:30", 2)),
        (utc("2026-11-01T05:30:00Z"), utc("2026-11-01T06:30:00Z"))
    );
    assert_eq!(
        booked(h.book("a", "2026-10-31T18:00", 2)).0,
        utc("2026-10-31T22:00:00Z")
    );
}

#[test]
fn slot_names_parties_and_the_booking_window() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z"); // 08:00 in New York
    for bad in [
        "2026-06-15T18:00:00",
        "2026-06-15T18:05",
        "2026-6-15T18:00",
        "bistro",
        "",
    ] {
        assert_eq!(h.book("a", bad, 2), Err(Rejection::SlotNotFound), "{bad}");
    }
    assert_eq!(
        h.book("a", "2026-06-15T18:00", 0),
        Err(Rejection::PartySizeZero)
    );
    assert_eq!(
        h.book("a", "2026-06-15T18:00", 7),
        Err(Rejection::PartyTooLarge)
    );
    // Already started today; exactly at the start is too late too.
    assert_eq!(
        h.book("a", "2026-06-15T01:30", 2),
        Err(Rejection::SlotInPast)
    );
    h.now = utc("2026-06-15T22:00:00Z"); // 18:00 EDT
    assert_eq!(
        h.book("a", "2026-06-15T18:00", 2),
        Err(Rejection::SlotInPast)
    );
    h.now = utc("2026-06-15T21:59:59Z");
    assert!(h.book("a", "2026-06-15T18:00", 2).is_ok());
    // Two local days ahead, counted in New York: at 23:59 local on the 15th (03:59Z on
    // the 16th) the 17th is bookable and the 18th is not.
    h.now = utc("2026-06-16T03:59:00Z");
    assert!(h.book("b", "2026-06-17T23:30", 2).is_ok());
    assert_eq!(
        h.book("b", "2026-06-18T01:30", 2),
        Err(Rejection::SlotTooFarAhead)
    );
    h.now = utc("2026-06-16T04:00:00Z"); // midnight: the 16th locally
    assert!(h.book("b", "2026-06-18T18:00", 2).is_ok());
}

#[test]
fn no_overbooking_and_no_overlapping_bookings() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    assert!(h.book("a", "2026-06-15T18:00", 4).is_ok());
    assert_eq!(h.book("b", "2026-06-15T18:00", 3), Err(Rejection::SlotFull));
    assert!(h.book("b", "2026-06-15T18:00", 2).is_ok());
    assert_eq!(h.book("c", "2026-06-15T18:00", 1), Err(Rejection::SlotFull));
    // 19:00 overlaps 18:00 (two hours long); the same slot overlaps itself.
    assert_eq!(
        h.book("a", "2026-06-15T19:00", 2),
        Err(Rejection::OverlappingBooking)
    );
    // 23:30 runs to 02:00 the next day and overlaps nothing on the 15th's 18:00.
    assert!(h.book("a", "2026-06-15T23:30", 2).is_ok());
    // ... but the next day's 01:30 overlaps it.
    assert_eq!(
        h.book("a", "2026-06-16T01:30", 2),
        Err(Rejection::OverlappingBooking)
    );
    assert_eq!(
        h.join("a", "2026-06-15T18:00", 1),
        Err(Rejection::OverlappingBooking)
    );
    let slot = h.slot("2026-06-15T18:00");
    assert_eq!((slot.booked_covers, slot.free_covers), (6, 0));
    // Cancel frees exactly the booking's covers.
    assert_eq!(h.cancel("b", "bistro-b1"), Err(Rejection::NotBookingHolder));
    let cancelled = h.cancel("a", "bistro-b1").unwrap();
    assert!(offers(&cancelled).is_empty());
    assert_eq!(h.slot("2026-06-15T18:00").free_covers, 4);
    assert_eq!(
        h.cancel("a", "bistro-b1"),
        Err(Rejection::BookingAlreadyCancelled)
    );
    for bad in [
        "bistro-b01",
        "bistro-b9",
        "bistro-b0",
        "bistro-o1",
        "other-b1",
    ] {
        assert_eq!(h.cancel("a", bad), Err(Rejection::BookingNotFound), "{bad}");
    }
    h.now = utc("2026-06-15T22:00:00Z");
    assert_eq!(h.cancel("b", "bistro-b2"), Err(Rejection::SlotInPast));
}

#[test]
fn a_party_of_two_is_not_blocked_behind_a_party_of_four() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    let slot = "2026-06-15T18:00";
    h.book("a", slot, 3).unwrap();
    h.book("b", slot, 3).unwrap();
    assert_eq!(
        h.join("c", slot, 4).unwrap(),
        Decision::Waitlisted {
            waitlist_id: "bistro-w1".into(),
            slot: slot.into(),
            party_size: 4,
            position: 1,
        }
    );
    assert_eq!(h.join("c", slot, 2), Err(Rejection::AlreadyWaitlisted));
    h.join("d", slot, 2).unwrap();
    h.join("e", slot, 1).unwrap();
    assert_eq!(h.slot(slot).waitlist_length, 3);
    // 3 covers free: the 4 does not fit, the 2 and then the 1 do.
    let cancelled = h.cancel("a", "bistro-b1").unwrap();
    assert_eq!(
        offers(&cancelled),
        [
            ("bistro-o1".to_string(), "d".to_string(), 2),
            ("bistro-o2".to_string(), "e".to_string(), 1),
        ]
    );
    let view = h.slot(slot);
    assert_eq!(
        (view.booked_covers, view.offered_covers, view.free_covers),
        (3, 3, 0)
    );
    assert_eq!(view.waitlist_length, 1);
    // The timers lapse each offer at its expiry, for its guest.
    let timers = cancelled.timers("a");
    assert_eq!(timers.len(), 2);
    assert_eq!(timers[0].user_id, "d");
    assert_eq!(timers[0].due_at, utc("2026-06-15T12:15:00Z"));
    assert_eq!(
        timers[0].command,
        turnstile_schemas::Command::Venue(VenueCommand::LapseOffer {
            offer_id: "bistro-o1".into()
        })
    );
    // Held covers cannot be booked by someone else.
    assert_eq!(h.book("f", slot, 1), Err(Rejection::SlotFull));
}

#[test]
fn strict_order_offers_only_the_head_and_holds_back_new_bookings() {
    let mut h = Harness::new(spec(true), "2026-06-15T12:00:00Z");
    let slot = "2026-06-15T18:00";
    h.book("a", slot, 3).unwrap();
    h.book("b", slot, 3).unwrap();
    h.join("c", slot, 4).unwrap();
    h.join("d", slot, 2).unwrap();
    let cancelled = h.cancel("a", "bistro-b1").unwrap();
    assert!(offers(&cancelled).is_empty(), "the head (4) does not fit 3");
    // 3 covers free, but the waitlist goes first.
    assert_eq!(h.book("e", slot, 2), Err(Rejection::SlotFull));
    assert_eq!(h.slot(slot).bookable_party_size_max, 0);
    h.join("e", slot, 2).unwrap();
    let cancelled = h.cancel("b", "bistro-b2").unwrap();
    assert_eq!(
        offers(&cancelled),
        [
            ("bistro-o1".to_string(), "c".to_string(), 4),
            ("bistro-o2".to_string(), "d".to_string(), 2),
        ]
    );
    // 0 free now; e waits.
    assert_eq!(h.slot(slot).waitlist_length, 1);
}

#[test]
fn offers_are_answered_once_by_their_guest_before_expiry() {
    let mut h = Harness::new(spec(false), "2026-06-15T21:50:00Z"); // 17:50 EDT
    let slot = "2026-06-15T18:00";
    h.book("a", slot, 6).unwrap();
    h.join("b", slot, 2).unwrap();
    h.join("c", slot, 6).unwrap();
    let cancelled = h.cancel("a", "bistro-b1").unwrap();
    let Decision::BookingCancelled { offers, .. } = &cancelled else {
        panic!()
    };
    // The offer would run 15 minutes, but the slot starts in 10.
    assert_eq!(offers[0].expires_at, utc("2026-06-15T22:00:00Z"));
    assert_eq!(offers.len(), 1, "c's 6 does not fit the 4 left");
    assert_eq!(h.accept("c", "bistro-o1"), Err(Rejection::NotOfferGuest));
    assert_eq!(h.accept("b", "bistro-o2"), Err(Rejection::OfferNotFound));
    assert_eq!(h.lapse("b", "bistro-o1"), Err(Rejection::NotDueYet));
    // b books the overlapping 19:00 meanwhile? No: an outstanding offer blocks it.
    assert_eq!(
        h.book("b", "2026-06-15T19:00", 2),
        Err(Rejection::OverlappingBooking)
    );
    h.now = utc("2026-06-15T22:00:00Z");
    assert_eq!(h.accept("b", "bistro-o1"), Err(Rejection::OfferExpired));
    let lapsed = h.lapse("b", "bistro-o1").unwrap();
    assert!(
        offers_of(&lapsed).is_empty(),
        "the slot has started: nobody is offered"
    );
    assert_eq!(h.lapse("b", "bistro-o1"), Err(Rejection::OfferExpired));
    assert_eq!(h.accept("b", "bistro-o1"), Err(Rejection::OfferExpired));

    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    h.book("a", slot, 6).unwrap();
    h.join("b", slot, 2).unwrap();
    h.cancel("a", "bistro-b1").unwrap();
    h.now = utc("2026-06-15T12:14:59Z");
    let accepted = h.accept("b", "bistro-o1").unwrap();
    assert_eq!(
        accepted,
        Decision::OfferAccepted {
            offer_id: "bistro-o1".into(),
            booking_id: "bistro-b2".into(),
            slot: slot.into(),
            party_size: 2,
            starts_at: utc("2026-06-15T22:00:00Z"),
            ends_at: utc("2026-06-16T00:00:00Z"),
        }
    );
    assert_eq!(
        h.accept("b", "bistro-o1"),
        Err(Rejection::OfferAlreadyAnswered)
    );
    h.now = utc("2026-06-15T12:15:00Z");
    assert_eq!(
        h.lapse("b", "bistro-o1"),
        Err(Rejection::OfferAlreadyAnswered)
    );
    let view = h.slot(slot);
    assert_eq!((view.booked_covers, view.offered_covers), (2, 0));
}

fn offers_of(decision: &Decision) -> Vec<(String, String, u32)> {
    offers(decision)
}

#[test]
fn accepting_is_refused_after_booking_an_overlapping_slot_and_declining_passes_on() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    let slot = "2026-06-15T18:00";
    h.book("a", slot, 6).unwrap();
    h.join("b", slot, 2).unwrap();
    h.join("c", slot, 4).unwrap();
    h.book("b", "2026-06-15T19:00", 2).unwrap();
    let cancelled = h.cancel("a", "bistro-b1").unwrap();
    assert_eq!(offers(&cancelled).len(), 2, "2 + 4 fit 6");
    assert_eq!(
        h.accept("b", "bistro-o1"),
        Err(Rejection::OverlappingBooking)
    );
    h.join("d", slot, 2).unwrap();
    let declined = h
        .run(
            "b",
            VenueCommand::DeclineOffer {
                offer_id: "bistro-o1".into(),
            },
        )
        .unwrap();
    assert_eq!(
        offers(&declined),
        [("bistro-o3".to_string(), "d".to_string(), 2)]
    );
}

#[test]
fn the_waitlist_has_a_limit_and_joins_only_full_slots() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    let slot = "2026-06-15T18:00";
    assert_eq!(h.join("a", slot, 2), Err(Rejection::SlotHasRoom));
    h.book("a", slot, 6).unwrap();
    for i in 0..WAITLIST_ENTRIES_PER_SLOT_MAX {
        h.join(&format!("u{i}"), slot, 1).unwrap();
    }
    assert_eq!(h.join("late", slot, 1), Err(Rejection::WaitlistFull));
}

#[test]
#[should_panic(expected = "no overbooking would break")]
fn evolve_refuses_an_overbooking() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    h.book("a", "2026-06-15T18:00", 6).unwrap();
    h.venue.evolve(
        "b",
        &Decision::TableBooked {
            booking_id: "bistro-b2".into(),
            slot: "2026-06-15T18:00".into(),
            party_size: 1,
            starts_at: utc("2026-06-15T22:00:00Z"),
            ends_at: utc("2026-06-16T00:00:00Z"),
        },
    );
}

#[test]
#[should_panic(expected = "an offer is answered or lapses once")]
fn evolve_refuses_a_second_lapse() {
    let mut h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    h.book("a", "2026-06-15T18:00", 6).unwrap();
    h.join("b", "2026-06-15T18:00", 2).unwrap();
    h.cancel("a", "bistro-b1").unwrap();
    h.now = utc("2026-06-15T12:15:00Z");
    let lapsed = h.lapse("b", "bistro-o1").unwrap();
    h.venue.evolve("b", &lapsed);
}

#[test]
fn a_create_is_answered_by_spec() {
    let h = Harness::new(spec(false), "2026-06-15T12:00:00Z");
    let create = VenueCommand::CreateVenue { spec: spec(false) };
    assert_eq!(Venue::create_command_spec(&create), Some(&spec(false)));
    assert_eq!(
        h.venue.decide("op", &create, h.now),
        Ok(Venue::created(&spec(false)))
    );
    let other = VenueCommand::CreateVenue { spec: spec(true) };
    assert_eq!(
        h.venue.decide("op", &other, h.now),
        Err(Rejection::ResourceExists)
    );
    let mut bad = spec(false);
    bad.party_size_max = 7;
    assert!(Venue::create("x", &bad)
        .unwrap_err()
        .contains("party_size_max"));
    assert!(h.venue.heap_bytes() > 0);
}
