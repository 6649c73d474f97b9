//! Seated events (live ticketing): seat maps, holds with a TTL, confirmation.
//!
//! An event's seats are laid out by its [`EventSpec`]: sections in spec order, each with a
//! price tier and rows (front to back, in spec order) of seats numbered `1..=seats`. A seat
//! is named `<section>-<row>-<n>` (`floor-A-7`); section and row ids contain no `-`, so the
//! name parses one way only. Users hold seats for a while (a *hold*, `<event>-h<n>`), then
//! confirm (buy) or release them, or the hold lapses when its timer comes due. The rules are
//! stated in `processors/src/seats/mod.rs`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest seat map a single partition will hold, in seats. The availability view lists
/// every free seat id, about 1.5 MB of JSON at this size.
pub const SEATS_PER_EVENT_MAX: u32 = 100_000;
/// Most sections an event may have.
pub const SECTIONS_PER_EVENT_MAX: usize = 1_000;
/// Most rows a section may have.
pub const ROWS_PER_SECTION_MAX: usize = 1_000;
/// Most seats a row may have.
pub const SEATS_PER_ROW_MAX: u32 = 1_000;
/// Longest section or row id, in bytes.
pub const SEAT_LABEL_LEN_MAX_BYTES: usize = 16;
/// Longest event title or price tier name, in bytes.
pub const TITLE_LEN_MAX_BYTES: usize = 200;
/// Highest price of one seat, in minor units (ten billion in major units), so that a hold's
/// total never overflows a `u64`.
pub const PRICE_MINOR_MAX: u64 = 1_000_000_000_000;

/// How long a hold lasts when the spec does not say: ten minutes.
pub const HOLD_TTL_SECONDS_DEFAULT: u32 = 600;
/// Longest hold an event may set: an hour.
pub const HOLD_TTL_SECONDS_MAX: u32 = 3_600;
/// Active holds one user may have on an event when the spec does not say.
pub const HOLDS_PER_USER_DEFAULT: u32 = 1;
/// Highest `holds_per_user_max` an event may set.
pub const HOLDS_PER_USER_MAX: u32 = 10;
/// Seats one hold may take when the spec does not say.
pub const SEATS_PER_HOLD_DEFAULT: u32 = 10;
/// Highest `seats_per_hold_max` an event may set.
pub const SEATS_PER_HOLD_MAX: u32 = 100;

/// The timer kind of [`SeatsCommand::LapseHold`]; its subject is the hold id, so its request
/// id is `timer:lapse_hold:<hold_id>`.
pub const LAPSE_HOLD_TIMER_KIND: &str = "lapse_hold";

/// What an operator sets when creating a seated event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    /// Human-readable name shown in lookups and notifications.
    #[serde(default)]
    pub title: String,
    /// When the event starts. Informational: sales follow `sales_open_at`/`sales_close_at`.
    pub starts_at: DateTime<Utc>,
    /// Holds before this instant are rejected (`not_open_yet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_open_at: Option<DateTime<Utc>>,
    /// Holds at or after this instant are rejected (`closed`). Holds made before it can
    /// still be confirmed until they expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_close_at: Option<DateTime<Utc>>,
    /// How long a hold lasts, in seconds: 1..=[`HOLD_TTL_SECONDS_MAX`], default
    /// [`HOLD_TTL_SECONDS_DEFAULT`].
    #[serde(default = "default_hold_ttl_seconds")]
    pub hold_ttl_seconds: u32,
    /// How many active holds one user may have on the event: 1..=[`HOLDS_PER_USER_MAX`],
    /// default [`HOLDS_PER_USER_DEFAULT`].
    #[serde(default = "default_holds_per_user_max")]
    pub holds_per_user_max: u32,
    /// How many seats one hold may take: 1..=[`SEATS_PER_HOLD_MAX`], default
    /// [`SEATS_PER_HOLD_DEFAULT`].
    #[serde(default = "default_seats_per_hold_max")]
    pub seats_per_hold_max: u32,
    /// The seat map, in the order best-available searches it (best section first).
    pub sections: Vec<SectionSpec>,
    /// Language of the notifications about it: one of [`crate::coupon::LOCALES`] (`en`,
    /// `ko`); English when absent. Left out of the JSON when absent, so that specs (and the
    /// outcomes that carry them) written before this field existed serialise byte for byte
    /// as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

fn default_hold_ttl_seconds() -> u32 {
    HOLD_TTL_SECONDS_DEFAULT
}

fn default_holds_per_user_max() -> u32 {
    HOLDS_PER_USER_DEFAULT
}

fn default_seats_per_hold_max() -> u32 {
    SEATS_PER_HOLD_DEFAULT
}

/// One section of the seat map: a price tier and its rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionSpec {
    /// The section's id, unique in the event: 1..=16 ASCII letters, digits or `_`.
    pub section_id: String,
    /// What every seat of the section costs.
    pub price_tier: PriceTier,
    /// The rows, best (front) first.
    pub rows: Vec<RowSpec>,
}

/// A named price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// The tier's name as shown to buyers (`"Premium"`).
    pub name: String,
    /// The price of one seat, in minor units (cents): at most [`PRICE_MINOR_MAX`].
    pub price_minor: u64,
}

/// One row of a section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RowSpec {
    /// The row's id, unique in its section: 1..=16 ASCII letters, digits or `_`.
    pub row_id: String,
    /// How many seats the row has, numbered `1..=seats` (1..=[`SEATS_PER_ROW_MAX`]).
    pub seats: u32,
}

/// Checks a section or row id: 1..=[`SEAT_LABEL_LEN_MAX_BYTES`] ASCII letters, digits or
/// `_` (no `-`, which separates the parts of a seat id).
fn validate_label(what: &str, label: &str) -> Result<(), String> {
    if label.is_empty() || label.len() > SEAT_LABEL_LEN_MAX_BYTES {
        return Err(format!(
            "{what} must be 1 to {SEAT_LABEL_LEN_MAX_BYTES} bytes long, got {label:?}"
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return Err(format!(
            "{what} {label:?} contains {bad:?}; use ASCII letters, digits and '_'"
        ));
    }
    Ok(())
}

impl EventSpec {
    /// Checks the spec and returns its number of seats, or a message naming the bad field.
    pub fn validate(&self) -> Result<u32, String> {
        if self.title.len() > TITLE_LEN_MAX_BYTES {
            return Err(format!("title must be at most {TITLE_LEN_MAX_BYTES} bytes"));
        }
        crate::coupon::validate_locale(self.locale.as_deref())?;
        if let (Some(open), Some(close)) = (self.sales_open_at, self.sales_close_at) {
            if close <= open {
                return Err(format!(
                    "sales_close_at ({close}) must be after sales_open_at ({open})"
                ));
            }
        }
        if !(1..=HOLD_TTL_SECONDS_MAX).contains(&self.hold_ttl_seconds) {
            return Err(format!(
                "hold_ttl_seconds must be between 1 and {HOLD_TTL_SECONDS_MAX}, got {}",
                self.hold_ttl_seconds
            ));
        }
        if !(1..=HOLDS_PER_USER_MAX).contains(&self.holds_per_user_max) {
            return Err(format!(
                "holds_per_user_max must be between 1 and {HOLDS_PER_USER_MAX}, got {}",
                self.holds_per_user_max
            ));
        }
        if !(1..=SEATS_PER_HOLD_MAX).contains(&self.seats_per_hold_max) {
            return Err(format!(
                "seats_per_hold_max must be between 1 and {SEATS_PER_HOLD_MAX}, got {}",
                self.seats_per_hold_max
            ));
        }
        if self.sections.is_empty() || self.sections.len() > SECTIONS_PER_EVENT_MAX {
            return Err(format!(
                "sections must list 1 to {SECTIONS_PER_EVENT_MAX} sections, got {}",
                self.sections.len()
            ));
        }
        let mut seats_total: u64 = 0;
        for (s, section) in self.sections.iter().enumerate() {
            validate_label(&format!("sections[{s}].section_id"), &section.section_id)?;
            if let Some(first) = self.sections[..s]
                .iter()
                .position(|other| other.section_id == section.section_id)
            {
                return Err(format!(
                    "sections[{s}].section_id {:?} is already the id of sections[{first}]",
                    section.section_id
                ));
            }
            let tier = &section.price_tier;
            if tier.name.is_empty() || tier.name.len() > TITLE_LEN_MAX_BYTES {
                return Err(format!(
                    "sections[{s}].price_tier.name must be 1 to {TITLE_LEN_MAX_BYTES} bytes long"
                ));
            }
            if tier.price_minor > PRICE_MINOR_MAX {
                return Err(format!(
                    "sections[{s}].price_tier.price_minor must be at most {PRICE_MINOR_MAX}, \
                     got {}",
                    tier.price_minor
                ));
            }
            if section.rows.is_empty() || section.rows.len() > ROWS_PER_SECTION_MAX {
                return Err(format!(
                    "sections[{s}].rows must list 1 to {ROWS_PER_SECTION_MAX} rows, got {}",
                    section.rows.len()
                ));
            }
            for (r, row) in section.rows.iter().enumerate() {
                validate_label(&format!("sections[{s}].rows[{r}].row_id"), &row.row_id)?;
                if let Some(first) = section.rows[..r]
                    .iter()
                    .position(|other| other.row_id == row.row_id)
                {
                    return Err(format!(
                        "sections[{s}].rows[{r}].row_id {:?} is already the id of \
                         sections[{s}].rows[{first}]",
                        row.row_id
                    ));
                }
                if !(1..=SEATS_PER_ROW_MAX).contains(&row.seats) {
                    return Err(format!(
                        "sections[{s}].rows[{r}].seats must be between 1 and \
                         {SEATS_PER_ROW_MAX}, got {}",
                        row.seats
                    ));
                }
                seats_total += u64::from(row.seats);
            }
        }
        if seats_total > u64::from(SEATS_PER_EVENT_MAX) {
            return Err(format!(
                "sections hold {seats_total} seats in all; an event has at most \
                 {SEATS_PER_EVENT_MAX}"
            ));
        }
        // At most SEATS_PER_EVENT_MAX, a u32.
        Ok(seats_total as u32)
    }
}

/// The id of seat `number` of row `row_id` in section `section_id`:
/// `<section>-<row>-<number>`.
pub fn seat_id(section_id: &str, row_id: &str, number: u32) -> String {
    format!("{section_id}-{row_id}-{number}")
}

/// Commands on a seated event. The event id is the envelope's `resource_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SeatsCommand {
    /// Create the event (idempotent when the spec is identical).
    CreateEvent {
        /// The event's seat map and rules.
        spec: EventSpec,
    },
    /// Hold these seats for the envelope's user, all or none.
    HoldSeats {
        /// The seats, as `<section>-<row>-<n>`; each at most once.
        seat_ids: Vec<String>,
    },
    /// Hold the best `count` free seats for the envelope's user: together in one row where
    /// possible, never split across sections (the rule is stated in the state machine).
    HoldBest {
        /// How many seats: 1..=the event's `seats_per_hold_max`.
        count: u32,
        /// Only seats of this section; any section when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        section: Option<String>,
    },
    /// Buy the seats of a hold the envelope's user has, before it expires.
    ConfirmHold {
        /// The hold.
        hold_id: String,
    },
    /// Give up a hold the envelope's user has, before it expires.
    ReleaseHold {
        /// The hold.
        hold_id: String,
    },
    /// End a hold that was neither confirmed nor released by its expiry, freeing its seats.
    /// Written by the expiry scheduler when the hold's timer comes due
    /// (`docs/exactly-once.md`, rules 33–38), never accepted from callers.
    LapseHold {
        /// The hold.
        hold_id: String,
    },
}

impl SeatsCommand {
    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> crate::outcome::CommandKind {
        use crate::outcome::CommandKind;
        match self {
            SeatsCommand::CreateEvent { .. } => CommandKind::CreateEvent,
            SeatsCommand::HoldSeats { .. } => CommandKind::HoldSeats,
            SeatsCommand::HoldBest { .. } => CommandKind::HoldBest,
            SeatsCommand::ConfirmHold { .. } => CommandKind::ConfirmHold,
            SeatsCommand::ReleaseHold { .. } => CommandKind::ReleaseHold,
            SeatsCommand::LapseHold { .. } => CommandKind::LapseHold,
        }
    }

    /// `(timer kind, subject)` of a timer command (`("lapse_hold", hold_id)`), None for the
    /// others. Its request id is `timer:<kind>:<subject>`.
    pub fn timer(&self) -> Option<(&'static str, String)> {
        match self {
            SeatsCommand::LapseHold { hold_id } => Some((LAPSE_HOLD_TIMER_KIND, hold_id.clone())),
            _ => None,
        }
    }

    /// The timer command of `kind` on `subject`: the inverse of [`SeatsCommand::timer`]; None
    /// for a kind this domain does not have.
    pub fn from_timer(kind: &str, subject: &str) -> Option<Self> {
        (kind == LAPSE_HOLD_TIMER_KIND).then(|| SeatsCommand::LapseHold {
            hold_id: subject.to_string(),
        })
    }

    /// Whether only the expiry scheduler writes this command.
    pub fn is_timer(&self) -> bool {
        self.timer().is_some()
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Its seats are held for its holder (possibly past `expires_at`, until it lapses).
    Active,
    /// Its seats were bought.
    Confirmed,
    /// Its holder gave it up; its seats were freed.
    Released,
    /// It expired unconfirmed; its seats were freed.
    Lapsed,
}

/// A hold as the event shows it to its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRecord {
    /// `<event>-h<n>`, numbered from 1 in the order holds were made.
    pub hold_id: String,
    /// Who holds it.
    pub user_id: String,
    /// Its seats, in seat-map order.
    pub seat_ids: Vec<String>,
    /// When it expires: it can be confirmed or released strictly before.
    pub expires_at: DateTime<Utc>,
    /// What its seats cost together, in minor units.
    pub price_total: u64,
    /// Where it stands.
    pub status: HoldStatus,
}

/// What a user sees of an event: its seats by section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventAvailability {
    /// The event.
    pub event_id: String,
    /// Its title.
    pub title: String,
    /// When it starts.
    pub starts_at: DateTime<Utc>,
    /// When sales open, if the spec says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_open_at: Option<DateTime<Utc>>,
    /// When sales close, if the spec says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_close_at: Option<DateTime<Utc>>,
    /// Every section, in spec order.
    pub sections: Vec<SectionAvailability>,
}

/// One section's seats: `free + held + sold == seats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SectionAvailability {
    /// The section.
    pub section_id: String,
    /// What a seat costs.
    pub price_tier: PriceTier,
    /// Seats in the section.
    pub seats: u32,
    /// Seats nobody holds or bought.
    pub free: u32,
    /// Seats in active holds (including holds past their expiry that have not lapsed yet).
    pub held: u32,
    /// Seats bought.
    pub sold: u32,
    /// The free seats, in seat-map order (row by row, by number).
    pub free_seat_ids: Vec<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spec() -> EventSpec {
        EventSpec {
            locale: None,
            title: "Gala".into(),
            starts_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            sales_open_at: None,
            sales_close_at: None,
            hold_ttl_seconds: HOLD_TTL_SECONDS_DEFAULT,
            holds_per_user_max: HOLDS_PER_USER_DEFAULT,
            seats_per_hold_max: SEATS_PER_HOLD_DEFAULT,
            sections: vec![SectionSpec {
                section_id: "floor".into(),
                price_tier: PriceTier {
                    name: "Floor".into(),
                    price_minor: 12_500,
                },
                rows: vec![
                    RowSpec {
                        row_id: "A".into(),
                        seats: 10,
                    },
                    RowSpec {
                        row_id: "B".into(),
                        seats: 12,
                    },
                ],
            }],
        }
    }

    fn error(edit: impl FnOnce(&mut EventSpec)) -> String {
        let mut spec = spec();
        edit(&mut spec);
        spec.validate().expect_err("the edited spec is invalid")
    }

    #[test]
    fn a_valid_spec_counts_its_seats() {
        assert_eq!(spec().validate(), Ok(22));
    }

    #[test]
    fn defaults_apply_when_the_limits_are_left_out() {
        let json = r#"{"starts_at":"2027-01-15T08:00:00Z","sections":[{"section_id":"floor",
            "price_tier":{"name":"Floor","price_minor":12500},"rows":[{"row_id":"A","seats":10},
            {"row_id":"B","seats":12}]}]}"#;
        let parsed: EventSpec = serde_json::from_str(json).unwrap();
        assert_eq!(parsed.hold_ttl_seconds, 600);
        assert_eq!(parsed.holds_per_user_max, 1);
        assert_eq!(parsed.seats_per_hold_max, 10);
        assert_eq!(
            parsed,
            EventSpec {
                title: String::new(),
                ..spec()
            }
        );
        assert!(
            serde_json::from_str::<EventSpec>(&json.replace("\"A\"", "\"A\",\"x\":1")).is_err()
        );
    }

    /// `locale` is optional and left out when absent, so every spec written before it
    /// existed (and every outcome carrying one) serialises byte for byte as it did.
    #[test]
    fn locale_is_optional_byte_compatible_and_checked() {
        let json = serde_json::to_string(&spec()).unwrap();
        assert!(!json.contains("locale"), "{json}");
        let korean = EventSpec {
            locale: Some("ko".into()),
            ..spec()
        };
        let json = serde_json::to_string(&korean).unwrap();
        assert!(json.ends_with(r#","locale":"ko"}"#), "{json}");
        assert_eq!(serde_json::from_str::<EventSpec>(&json).unwrap(), korean);
        assert_eq!(korean.validate(), Ok(22));
        let french = error(|s| s.locale = Some("fr".into()));
        assert!(
            french.starts_with("locale \"fr\" is not supported"),
            "{french}"
        );
    }

    #[test]
    fn bad_specs_name_the_bad_field() {
        let cases: Vec<(String, &str)> = vec![
            (
                error(|s| s.title = "x".repeat(201)),
                "title must be at most 200",
            ),
            (
                error(|s| {
                    s.sales_open_at = Some(s.starts_at);
                    s.sales_close_at = Some(s.starts_at);
                }),
                "sales_close_at",
            ),
            (
                error(|s| s.hold_ttl_seconds = 0),
                "hold_ttl_seconds must be between 1 and 3600, got 0",
            ),
            (error(|s| s.hold_ttl_seconds = 3_601), "hold_ttl_seconds"),
            (
                error(|s| s.holds_per_user_max = 0),
                "holds_per_user_max must be between 1 and 10",
            ),
            (error(|s| s.holds_per_user_max = 11), "holds_per_user_max"),
            (
                error(|s| s.seats_per_hold_max = 0),
                "seats_per_hold_max must be between 1 and 100",
            ),
            (error(|s| s.seats_per_hold_max = 101), "seats_per_hold_max"),
            (
                error(|s| s.sections.clear()),
                "sections must list 1 to 1000 sections, got 0",
            ),
            (
                error(|s| s.sections[0].section_id = "flo-or".into()),
                "sections[0].section_id \"flo-or\" contains '-'",
            ),
            (
                error(|s| s.sections[0].section_id = String::new()),
                "sections[0].section_id must be 1 to 16",
            ),
            (
                error(|s| s.sections[0].section_id = "x".repeat(17)),
                "sections[0].section_id must be 1 to 16",
            ),
            (
                error(|s| s.sections.push(s.sections[0].clone())),
                "sections[1].section_id \"floor\" is already the id of sections[0]",
            ),
            (
                error(|s| s.sections[0].price_tier.name = String::new()),
                "sections[0].price_tier.name",
            ),
            (
                error(|s| s.sections[0].price_tier.price_minor = PRICE_MINOR_MAX + 1),
                "sections[0].price_tier.price_minor must be at most",
            ),
            (
                error(|s| s.sections[0].rows.clear()),
                "sections[0].rows must list 1 to 1000 rows, got 0",
            ),
            (
                error(|s| s.sections[0].rows[1].row_id = "A".into()),
                "sections[0].rows[1].row_id \"A\" is already the id of sections[0].rows[0]",
            ),
            (
                error(|s| s.sections[0].rows[1].row_id = "B 2".into()),
                "sections[0].rows[1].row_id \"B 2\" contains ' '",
            ),
            (
                error(|s| s.sections[0].rows[1].seats = 0),
                "sections[0].rows[1].seats must be between 1 and 1000, got 0",
            ),
            (
                error(|s| s.sections[0].rows[0].seats = 1_001),
                "sections[0].rows[0].seats",
            ),
            (
                error(|s| {
                    let row = RowSpec {
                        row_id: "R".into(),
                        seats: 1_000,
                    };
                    s.sections[0].rows = (0..101)
                        .map(|r| RowSpec {
                            row_id: format!("R{r}"),
                            ..row.clone()
                        })
                        .collect();
                }),
                "sections hold 101000 seats in all; an event has at most 100000",
            ),
        ];
        for (error, expected) in cases {
            assert!(
                error.contains(expected),
                "{error:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn the_largest_map_is_valid() {
        let mut spec = spec();
        spec.sections[0].rows = (0..100)
            .map(|r| RowSpec {
                row_id: format!("R{r}"),
                seats: SEATS_PER_ROW_MAX,
            })
            .collect();
        assert_eq!(spec.validate(), Ok(SEATS_PER_EVENT_MAX));
    }

    #[test]
    fn commands_round_trip_and_timers_invert() {
        let commands = [
            SeatsCommand::CreateEvent { spec: spec() },
            SeatsCommand::HoldSeats {
                seat_ids: vec!["floor-A-1".into()],
            },
            SeatsCommand::HoldBest {
                count: 2,
                section: None,
            },
            SeatsCommand::HoldBest {
                count: 2,
                section: Some("floor".into()),
            },
            SeatsCommand::ConfirmHold {
                hold_id: "gala-h1".into(),
            },
            SeatsCommand::ReleaseHold {
                hold_id: "gala-h1".into(),
            },
            SeatsCommand::LapseHold {
                hold_id: "gala-h1".into(),
            },
        ];
        for command in &commands {
            let json = serde_json::to_string(command).unwrap();
            assert_eq!(
                &serde_json::from_str::<SeatsCommand>(&json).unwrap(),
                command
            );
            match command.timer() {
                Some((kind, subject)) => {
                    assert!(command.is_timer());
                    assert_eq!(kind, "lapse_hold");
                    assert_eq!(subject, "gala-h1");
                    assert_eq!(
                        SeatsCommand::from_timer(kind, &subject).as_ref(),
                        Some(command)
                    );
                }
                None => assert!(!command.is_timer()),
            }
        }
        assert_eq!(
            serde_json::to_string(&commands[2]).unwrap(),
            r#"{"kind":"hold_best","count":2}"#
        );
        assert_eq!(SeatsCommand::from_timer("expire", "gala-h1"), None);
        assert!(serde_json::from_str::<SeatsCommand>(
            r#"{"kind":"confirm_hold","hold_id":"h","extra":1}"#
        )
        .is_err());
        assert_eq!(seat_id("floor", "A", 7), "floor-A-7");
    }
}
