//! Venue slots (restaurant reservations): covers per slot, bookings, waitlists.
//!
//! A venue serves the same time slots every day, in its own time zone. A slot of one day
//! is named by its local date and start, `2026-12-24T18:00` (a [slot id](parse_slot_id)).
//! Parties book covers in a slot; when a slot is full they join its waitlist, and covers
//! freed by a cancellation (or by an offer that lapses or is declined) are offered to the
//! waiting parties, each offer held for the guest until it is accepted or lapses.

use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most slots a venue serves per day (one every quarter hour).
pub const SLOTS_PER_DAY_MAX: usize = 96;
/// Longest slot, in minutes.
pub const SLOT_DURATION_MINUTES_MAX: u32 = 720;
/// Largest slot, in covers.
pub const SLOT_CAPACITY_COVERS_MAX: u32 = 10_000;
/// Largest party a venue may accept, in covers.
pub const PARTY_SIZE_MAX: u32 = 100;
/// How long an offer is held when the spec does not say, in seconds.
pub const OFFER_TTL_SECONDS_DEFAULT: u32 = 900;
/// Longest an offer may be held, in seconds.
pub const OFFER_TTL_SECONDS_MAX: u32 = 86_400;
/// How many days ahead bookings are taken when the spec does not say.
pub const BOOKABLE_DAYS_AHEAD_DEFAULT: u32 = 60;
/// Most days ahead a venue may take bookings.
pub const BOOKABLE_DAYS_AHEAD_MAX: u32 = 366;
/// Most parties waiting for one slot at once; a further join is `waitlist_full`.
pub const WAITLIST_ENTRIES_PER_SLOT_MAX: usize = 200;
/// Longest venue title, in bytes.
pub const TITLE_LEN_MAX_BYTES: usize = 200;
/// The timer kind of an offer's lapse (`timer:lapse_offer:<offer_id>`).
pub const LAPSE_OFFER_TIMER_KIND: &str = "lapse_offer";

/// The local start format of a slot in a spec (`18:00`).
const START_FORMAT: &str = "%H:%M";
/// The format of a slot id: local date and start (`2026-12-24T18:00`).
const SLOT_ID_FORMAT: &str = "%Y-%m-%dT%H:%M";

/// What an operator sets when creating a venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueSpec {
    /// Human-readable name shown in lookups and notifications.
    #[serde(default)]
    pub title: String,
    /// IANA time zone of the venue, e.g. `America/New_York`: slot starts are local times.
    pub time_zone: String,
    /// The slots served every day, in ascending order of start.
    pub slots: Vec<SlotSpec>,
    /// Largest party one booking or waitlist entry may be for, in covers. At most the
    /// smallest slot's capacity, so every party the venue accepts fits every slot.
    pub party_size_max: u32,
    /// How long covers freed for a waiting party are held for it, in seconds; the offer
    /// lapses then (or at the slot's start, if that is sooner).
    #[serde(default = "default_offer_ttl_seconds")]
    pub offer_ttl_seconds: u32,
    /// Whether waiting parties are offered covers strictly in the order they joined: a
    /// party of 4 at the head then blocks a party of 2 behind it (and new bookings) until
    /// 4 covers are free. When false, freed covers go to the earliest-joined party that
    /// fits them.
    #[serde(default)]
    pub strict_waitlist_order: bool,
    /// Bookings and waitlist entries are taken for slots up to this many local days after
    /// today (0: today only).
    #[serde(default = "default_bookable_days_ahead")]
    pub bookable_days_ahead: u32,
    /// Language of the notifications about it: one of [`crate::coupon::LOCALES`] (`en`,
    /// `ko`); English when absent. Left out of the JSON when absent, so that specs (and the
    /// outcomes that carry them) written before this field existed serialise byte for byte
    /// as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// One slot served every day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    /// Local start time, `HH:MM` (24-hour clock).
    pub start: String,
    /// How long a table is kept, in minutes; a slot may run past midnight.
    pub duration_minutes: u32,
    /// How many covers (guests) the slot seats in all.
    pub capacity_covers: u32,
}

fn default_offer_ttl_seconds() -> u32 {
    OFFER_TTL_SECONDS_DEFAULT
}

fn default_bookable_days_ahead() -> u32 {
    BOOKABLE_DAYS_AHEAD_DEFAULT
}

impl VenueSpec {
    /// Checks the spec and returns the parsed time zone, or a message naming the bad field.
    pub fn validate(&self) -> Result<Tz, String> {
        if self.title.len() > TITLE_LEN_MAX_BYTES {
            return Err(format!(
                "title must be at most {TITLE_LEN_MAX_BYTES} bytes, got {}",
                self.title.len()
            ));
        }
        crate::coupon::validate_locale(self.locale.as_deref())?;
        let time_zone = self.time_zone.parse::<Tz>().map_err(|_| {
            format!(
                "time_zone {:?} is not an IANA time zone name (e.g. America/New_York, \
                 Europe/London)",
                self.time_zone
            )
        })?;
        if self.slots.is_empty() || self.slots.len() > SLOTS_PER_DAY_MAX {
            return Err(format!(
                "slots must list between 1 and {SLOTS_PER_DAY_MAX} slots, got {}",
                self.slots.len()
            ));
        }
        let mut previous: Option<NaiveTime> = None;
        for (i, slot) in self.slots.iter().enumerate() {
            let start = parse_start(&slot.start).ok_or_else(|| {
                format!(
                    "slots[{i}].start {:?} is not a local time written HH:MM (e.g. 18:00)",
                    slot.start
                )
            })?;
            if previous.is_some_and(|p| start <= p) {
                return Err(format!(
                    "slots[{i}].start {} must come after slots[{}].start {}: list slots in \
                     ascending order of start, each start once",
                    slot.start,
                    i - 1,
                    self.slots[i - 1].start
                ));
            }
            previous = Some(start);
            if slot.duration_minutes == 0 || slot.duration_minutes > SLOT_DURATION_MINUTES_MAX {
                return Err(format!(
                    "slots[{i}].duration_minutes must be between 1 and \
                     {SLOT_DURATION_MINUTES_MAX}, got {}",
                    slot.duration_minutes
                ));
            }
            if slot.capacity_covers == 0 || slot.capacity_covers > SLOT_CAPACITY_COVERS_MAX {
                return Err(format!(
                    "slots[{i}].capacity_covers must be between 1 and \
                     {SLOT_CAPACITY_COVERS_MAX}, got {}",
                    slot.capacity_covers
                ));
            }
        }
        if self.party_size_max == 0 || self.party_size_max > PARTY_SIZE_MAX {
            return Err(format!(
                "party_size_max must be between 1 and {PARTY_SIZE_MAX}, got {}",
                self.party_size_max
            ));
        }
        if let Some(smallest) = self.slots.iter().min_by_key(|s| s.capacity_covers) {
            if self.party_size_max > smallest.capacity_covers {
                return Err(format!(
                    "party_size_max {} exceeds the capacity_covers {} of the {} slot: every \
                     party the venue accepts must fit every slot",
                    self.party_size_max, smallest.capacity_covers, smallest.start
                ));
            }
        }
        if self.offer_ttl_seconds == 0 || self.offer_ttl_seconds > OFFER_TTL_SECONDS_MAX {
            return Err(format!(
                "offer_ttl_seconds must be between 1 and {OFFER_TTL_SECONDS_MAX}, got {}",
                self.offer_ttl_seconds
            ));
        }
        if self.bookable_days_ahead > BOOKABLE_DAYS_AHEAD_MAX {
            return Err(format!(
                "bookable_days_ahead must be at most {BOOKABLE_DAYS_AHEAD_MAX}, got {}",
                self.bookable_days_ahead
            ));
        }
        Ok(time_zone)
    }
}

/// A spec slot's start (`18:00`), in its one canonical spelling.
pub fn parse_start(start: &str) -> Option<NaiveTime> {
    let time = NaiveTime::parse_from_str(start, START_FORMAT).ok()?;
    (time.format(START_FORMAT).to_string() == start).then_some(time)
}

/// The local date and start of a slot id (`2026-12-24T18:00`), in its one canonical
/// spelling: `2026-12-24T18:00:00` or `2026-12-24T8:00` name no slot.
pub fn parse_slot_id(slot: &str) -> Option<(NaiveDate, NaiveTime)> {
    let local = NaiveDateTime::parse_from_str(slot, SLOT_ID_FORMAT).ok()?;
    (local.format(SLOT_ID_FORMAT).to_string() == slot).then_some((local.date(), local.time()))
}

/// The slot id of a local date and start.
pub fn slot_id(date: NaiveDate, start: NaiveTime) -> String {
    date.and_time(start).format(SLOT_ID_FORMAT).to_string()
}

/// The instant a local date and time happens in `time_zone`: the earlier of the two when
/// clocks go back, none when clocks skip it (that day has no such slot).
pub fn local_instant(time_zone: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Utc>> {
    match time_zone.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(earlier, _) => Some(earlier.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

/// Commands on a venue. The venue id is the envelope's `resource_id`; the guest is the
/// envelope's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum VenueCommand {
    /// Create the venue (idempotent when the spec is identical).
    CreateVenue {
        /// The venue's slots and rules.
        spec: VenueSpec,
    },
    /// Book a table for a party in a slot that has room for it now.
    Book {
        /// The slot: local date and start, `2026-12-24T18:00`.
        slot: String,
        /// Guests in the party, in covers.
        party_size: u32,
    },
    /// Cancel one of the user's bookings; its covers go to the slot's waitlist.
    CancelBooking {
        /// The booking (`<venue>-b<n>`).
        booking_id: String,
    },
    /// Wait for covers in a slot that has no room for the party now.
    JoinWaitlist {
        /// The slot: local date and start, `2026-12-24T18:00`.
        slot: String,
        /// Guests in the party, in covers.
        party_size: u32,
    },
    /// Take the covers an offer holds: the offer becomes a booking.
    AcceptOffer {
        /// The offer (`<venue>-o<n>`).
        offer_id: String,
    },
    /// Give up the covers an offer holds; they go to the next waiting party.
    DeclineOffer {
        /// The offer (`<venue>-o<n>`).
        offer_id: String,
    },
    /// End an offer nobody answered. Written by the expiry scheduler when the offer's
    /// timer comes due (`timer:lapse_offer:<offer_id>`), never accepted from callers.
    LapseOffer {
        /// The offer that lapses.
        offer_id: String,
    },
}

impl VenueCommand {
    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> crate::outcome::CommandKind {
        use crate::outcome::CommandKind;
        match self {
            VenueCommand::CreateVenue { .. } => CommandKind::CreateVenue,
            VenueCommand::Book { .. } => CommandKind::Book,
            VenueCommand::CancelBooking { .. } => CommandKind::CancelBooking,
            VenueCommand::JoinWaitlist { .. } => CommandKind::JoinWaitlist,
            VenueCommand::AcceptOffer { .. } => CommandKind::AcceptOffer,
            VenueCommand::DeclineOffer { .. } => CommandKind::DeclineOffer,
            VenueCommand::LapseOffer { .. } => CommandKind::LapseOffer,
        }
    }

    /// The timer kind and subject of a timer command (`("lapse_offer", offer_id)`).
    pub fn timer(&self) -> Option<(&'static str, String)> {
        match self {
            VenueCommand::LapseOffer { offer_id } => {
                Some((LAPSE_OFFER_TIMER_KIND, offer_id.clone()))
            }
            _ => None,
        }
    }

    /// The timer command of a timer kind and subject; none for another domain's kind.
    pub fn from_timer(kind: &str, subject: &str) -> Option<Self> {
        (kind == LAPSE_OFFER_TIMER_KIND).then(|| VenueCommand::LapseOffer {
            offer_id: subject.to_string(),
        })
    }

    /// Whether only the expiry scheduler writes this command.
    pub fn is_timer(&self) -> bool {
        self.timer().is_some()
    }
}

/// Covers freed in a slot, held for a waiting party until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitlistOffer {
    /// Deterministic id: `<venue>-o<n>`, numbered in the order offers are made.
    pub offer_id: String,
    /// The waitlist entry it answers (`<venue>-w<n>`); the entry leaves the waitlist.
    pub waitlist_id: String,
    /// The guest the offer is for: the user who joined the waitlist.
    pub user_id: String,
    /// The slot.
    pub slot: String,
    /// The covers held, the party's size.
    pub party_size: u32,
    /// When the offer lapses unless accepted: `offer_ttl_seconds` after it was made, or
    /// the slot's start if that is sooner.
    pub expires_at: DateTime<Utc>,
}

/// One slot of a date as a guest sees it now: what a GET on the venue shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotAvailability {
    /// The slot id (`2026-12-24T18:00`).
    pub slot: String,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// When it ends.
    pub ends_at: DateTime<Utc>,
    /// Covers it seats in all.
    pub capacity_covers: u32,
    /// Covers booked.
    pub booked_covers: u32,
    /// Covers held for outstanding waitlist offers.
    pub offered_covers: u32,
    /// Covers neither booked nor held: capacity − booked − offered.
    pub free_covers: u32,
    /// Parties waiting.
    pub waitlist_length: u32,
    /// The largest party a booking gets now (0: none; join the waitlist or, for a slot
    /// that has started or is too far ahead, neither).
    pub bookable_party_size_max: u32,
}

/// The slots of one local date at a venue, in order of start. A slot whose local start
/// does not exist that day (clocks skip it) is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueAvailability {
    /// The venue.
    pub venue_id: String,
    /// The local date.
    pub date: NaiveDate,
    /// The venue's time zone.
    pub time_zone: String,
    /// When this view was taken.
    pub as_of: DateTime<Utc>,
    /// Each slot of the date.
    pub slots: Vec<SlotAvailability>,
}

/// What `GET /v1/venues/{id}` is built from: the venue's spec and the availability of
/// every date from the current one on that has bookings, offers or a waitlist. A date not
/// listed has every slot free, and is shown from the spec alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VenueCalendar {
    /// The venue.
    pub venue_id: String,
    /// Its rules and slots.
    pub spec: VenueSpec,
    /// When this view was taken (the time of the last decision it shows).
    pub as_of: DateTime<Utc>,
    /// The dates with activity, in date order.
    pub days: Vec<VenueAvailability>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VenueSpec {
        VenueSpec {
            locale: None,
            title: "Bistro".into(),
            time_zone: "America/New_York".into(),
            slots: vec![
                SlotSpec {
                    start: "18:00".into(),
                    duration_minutes: 120,
                    capacity_covers: 20,
                },
                SlotSpec {
                    start: "20:30".into(),
                    duration_minutes: 90,
                    capacity_covers: 8,
                },
            ],
            party_size_max: 6,
            offer_ttl_seconds: 900,
            strict_waitlist_order: false,
            bookable_days_ahead: 60,
        }
    }

    fn error(change: impl FnOnce(&mut VenueSpec)) -> String {
        let mut spec = spec();
        change(&mut spec);
        spec.validate().expect_err("invalid spec")
    }

    #[test]
    fn a_good_spec_validates_and_defaults_apply() {
        assert_eq!(spec().validate(), Ok(chrono_tz::America::New_York));
        let json = r#"{"time_zone":"Europe/London","party_size_max":2,
            "slots":[{"start":"12:00","duration_minutes":60,"capacity_covers":4}]}"#;
        let parsed: VenueSpec = serde_json::from_str(json).expect("parses");
        assert_eq!(parsed.offer_ttl_seconds, OFFER_TTL_SECONDS_DEFAULT);
        assert_eq!(parsed.bookable_days_ahead, BOOKABLE_DAYS_AHEAD_DEFAULT);
        assert!(!parsed.strict_waitlist_order);
        assert!(parsed.validate().is_ok());
        let unknown = r#"{"time_zone":"UTC","party_size_max":2,"tables":[],
            "slots":[{"start":"12:00","duration_minutes":60,"capacity_covers":4}]}"#;
        assert!(serde_json::from_str::<VenueSpec>(unknown).is_err());
    }

    #[test]
    fn bad_specs_name_the_bad_field() {
        type Change = Box<dyn FnOnce(&mut VenueSpec)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.title = "x".repeat(201)), "title"),
            (
                Box::new(|s| s.time_zone = "Mars/Olympus".into()),
                "time_zone",
            ),
            (Box::new(|s| s.slots.clear()), "slots must list"),
            (
                Box::new(|s| s.slots[0].start = "6pm".into()),
                "slots[0].start",
            ),
            (
                Box::new(|s| s.slots[1].start = "8:30".into()),
                "slots[1].start",
            ),
            (
                Box::new(|s| s.slots[1].start = "24:00".into()),
                "slots[1].start",
            ),
            (Box::new(|s| s.slots[1].start = "18:00".into()), "ascending"),
            (Box::new(|s| s.slots[1].start = "17:00".into()), "ascending"),
            (
                Box::new(|s| s.slots[0].duration_minutes = 0),
                "slots[0].duration_minutes",
            ),
            (
                Box::new(|s| s.slots[1].duration_minutes = 721),
                "slots[1].duration_minutes",
            ),
            (
                Box::new(|s| s.slots[1].capacity_covers = 0),
                "slots[1].capacity_covers",
            ),
            (
                Box::new(|s| s.slots[0].capacity_covers = 10_001),
                "slots[0].capacity_covers",
            ),
            (Box::new(|s| s.party_size_max = 0), "party_size_max must"),
            (Box::new(|s| s.party_size_max = 9), "20:30 slot"),
            (Box::new(|s| s.offer_ttl_seconds = 0), "offer_ttl_seconds"),
            (
                Box::new(|s| s.offer_ttl_seconds = 86_401),
                "offer_ttl_seconds",
            ),
            (
                Box::new(|s| s.bookable_days_ahead = 367),
                "bookable_days_ahead",
            ),
        ];
        for (change, field) in cases {
            let message = error(change);
            assert!(message.contains(field), "{field}: {message}");
        }
    }

    #[test]
    fn slot_ids_have_one_spelling() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 24).expect("date");
        let start = NaiveTime::from_hms_opt(18, 0, 0).expect("time");
        assert_eq!(slot_id(date, start), "2026-12-24T18:00");
        assert_eq!(parse_slot_id("2026-12-24T18:00"), Some((date, start)));
        for bad in [
            "2026-12-24T18:00:00",
            "2026-12-24 18:00",
            "2026-12-24T8:00",
            "2026-12-32T18:00",
            "2026-12-24",
            "",
        ] {
            assert_eq!(parse_slot_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn local_instants_follow_new_york_daylight_saving() {
        let ny = chrono_tz::America::New_York;
        let at = |y, m, d, h, min| {
            local_instant(
                ny,
                NaiveDate::from_ymd_opt(y, m, d).expect("date"),
                NaiveTime::from_hms_opt(h, min, 0).expect("time"),
            )
        };
        let utc = |s: &str| Some(s.parse::<DateTime<Utc>>().expect("utc"));
        // Spring forward on 2026-03-08: 18:00 is EDT (UTC-4); 02:30 does not exist.
        assert_eq!(at(2026, 3, 7, 18, 0), utc("2026-03-07T23:00:00Z"));
        assert_eq!(at(2026, 3, 8, 18, 0), utc("2026-03-08T22:00:00Z"));
        assert_eq!(at(2026, 3, 8, 2, 30), None);
        // Fall back on 2026-11-01: 18:00 is EST (UTC-5); 01:30 happens twice, the first
        // (EDT) counts.
        assert_eq!(at(2026, 10, 31, 18, 0), utc("2026-10-31T22:00:00Z"));
        assert_eq!(at(2026, 11, 1, 18, 0), utc("2026-11-01T23:00:00Z"));
        assert_eq!(at(2026, 11, 1, 1, 30), utc("2026-11-01T05:30:00Z"));
    }

    #[test]
    fn timer_commands_round_trip() {
        let lapse = VenueCommand::LapseOffer {
            offer_id: "bistro-o3".into(),
        };
        assert_eq!(
            lapse.timer(),
            Some(("lapse_offer", "bistro-o3".to_string()))
        );
        assert!(lapse.is_timer());
        assert_eq!(
            VenueCommand::from_timer("lapse_offer", "bistro-o3"),
            Some(lapse)
        );
        assert_eq!(VenueCommand::from_timer("lapse_hold", "x"), None);
        let accept = VenueCommand::AcceptOffer {
            offer_id: "bistro-o3".into(),
        };
        assert!(!accept.is_timer());
        assert_eq!(accept.timer(), None);
        let json = r#"{"kind":"book","slot":"2026-12-24T18:00","party_size":4}"#;
        let book: VenueCommand = serde_json::from_str(json).expect("parses");
        assert_eq!(serde_json::to_string(&book).expect("serialises"), json);
        assert!(serde_json::from_str::<VenueCommand>(
            r#"{"kind":"book","slot":"2026-12-24T18:00","party_size":4,"table":1}"#
        )
        .is_err());
    }
}
