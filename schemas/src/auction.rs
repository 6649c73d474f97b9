//! Auction lots (used goods): bids in log order, proxy bids, anti-sniping, close.
//!
//! A lot opens at `opens_at` (or at once), takes proxy bids until its end, and is closed by
//! its `close_lot` timer at that end, or at once by a buy-now. The rules themselves are
//! stated in `processors/src/auction/mod.rs`; this module holds the wire types: the spec,
//! the commands, the close reason and the view a lookup shows.

use chrono::{DateTime, Datelike, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How long the anti-sniping window is when a spec does not say: a bid accepted in the
/// last this many seconds before the end moves the end this many seconds later.
pub const EXTENSION_SECONDS_DEFAULT: u32 = 120;
/// Longest anti-sniping window (and extension) a spec may set, in seconds.
pub const EXTENSION_SECONDS_MAX: u32 = 3_600;
/// Largest amount (price, increment, bid) in minor units: 10^15, below 2^53, so that every
/// amount is an exact JSON number in every client, and sums of two never overflow a u64.
pub const AMOUNT_MINOR_MAX: u64 = 1_000_000_000_000_000;
/// Longest title, in bytes.
pub const TITLE_BYTES_MAX: usize = 200;
/// Earliest year `opens_at` and `ends_at` may fall in.
pub const SCHEDULE_YEAR_MIN: i32 = 2000;
/// Latest year `opens_at` and `ends_at` may fall in: keeps every end time, however often
/// extended, far inside the range of dates and of timer subjects (milliseconds in an i64).
pub const SCHEDULE_YEAR_MAX: i32 = 2999;
/// The timer kind of a lot's close: request id `timer:close_lot:<end in UTC ms>`.
pub const CLOSE_LOT_TIMER_KIND: &str = "close_lot";
/// The user a lot's close timer acts for.
pub const LOT_TIMER_USER_ID: &str = "operator";

/// What an operator (or seller) sets when creating a lot. Amounts are in minor units of
/// `currency` (cents for USD, won for KRW).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LotSpec {
    /// Human-readable name shown in lookups and notifications.
    #[serde(default)]
    pub title: String,
    /// The seller's user id: the seller may neither bid on the lot nor buy it
    /// (`seller_cannot_bid`). Absent: nobody is barred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    /// Bids and buy-now before this instant are rejected (`not_open_yet`). Absent: the lot
    /// is open from its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<DateTime<Utc>>,
    /// When bidding ends, before any anti-sniping extension. Exclusive: a bid at this
    /// instant is too late. Whole milliseconds (the close timer names it in milliseconds).
    pub ends_at: DateTime<Utc>,
    /// The least the first bid may offer, in minor units (at least 1).
    pub opening_price: u64,
    /// How much a bid must add to the current price, and how far the proxy raises the
    /// leader over the runner-up, in minor units (at least 1).
    pub increment: u64,
    /// Below this the lot is not sold: it closes `reserve_not_met` unless the leader's
    /// maximum reaches it. At least `opening_price`. Absent: no reserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_price: Option<u64>,
    /// The price at which a buyer may end the lot at once, while no bid's maximum has
    /// reached it. At least `opening_price` and the reserve. Absent: no buy-now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_now_price: Option<u64>,
    /// Anti-sniping: a bid accepted in the last this many seconds before the end moves the
    /// end this many seconds later. 0 turns it off. At most [`EXTENSION_SECONDS_MAX`].
    #[serde(default = "default_extension_seconds")]
    pub extension_seconds: u32,
    /// ISO 4217 code of the currency amounts are in (three capital letters, e.g. `EUR`).
    pub currency: String,
    /// Language of the notifications about it: one of [`crate::coupon::LOCALES`] (`en`,
    /// `ko`); English when absent. Left out of the JSON when absent, so that specs (and the
    /// outcomes that carry them) written before this field existed serialise byte for byte
    /// as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

fn default_extension_seconds() -> u32 {
    EXTENSION_SECONDS_DEFAULT
}

impl LotSpec {
    /// Checks the spec, or returns a message naming the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.title.len() > TITLE_BYTES_MAX {
            return Err(format!(
                "title must be at most {TITLE_BYTES_MAX} bytes, got {}",
                self.title.len()
            ));
        }
        if let Some(seller) = &self.seller_id {
            crate::validate_id("seller_id", seller)?;
        }
        crate::coupon::validate_locale(self.locale.as_deref())?;
        check_schedule_time("ends_at", self.ends_at)?;
        if !self.ends_at.nanosecond().is_multiple_of(1_000_000) {
            return Err(format!(
                "ends_at ({}) must be a whole number of milliseconds",
                self.ends_at.to_rfc3339()
            ));
        }
        if let Some(opens) = self.opens_at {
            check_schedule_time("opens_at", opens)?;
            if self.ends_at <= opens {
                return Err(format!(
                    "ends_at ({}) must be after opens_at ({})",
                    self.ends_at.to_rfc3339(),
                    opens.to_rfc3339()
                ));
            }
        }
        check_amount("opening_price", self.opening_price)?;
        check_amount("increment", self.increment)?;
        if let Some(reserve) = self.reserve_price {
            check_amount("reserve_price", reserve)?;
            if reserve < self.opening_price {
                return Err(format!(
                    "reserve_price ({reserve}) must be at least opening_price ({})",
                    self.opening_price
                ));
            }
        }
        if let Some(buy_now) = self.buy_now_price {
            check_amount("buy_now_price", buy_now)?;
            if buy_now < self.opening_price {
                return Err(format!(
                    "buy_now_price ({buy_now}) must be at least opening_price ({})",
                    self.opening_price
                ));
            }
            if let Some(reserve) = self.reserve_price.filter(|&r| buy_now < r) {
                return Err(format!(
                    "buy_now_price ({buy_now}) must be at least reserve_price ({reserve})"
                ));
            }
        }
        if self.extension_seconds > EXTENSION_SECONDS_MAX {
            return Err(format!(
                "extension_seconds must be at most {EXTENSION_SECONDS_MAX}, got {}",
                self.extension_seconds
            ));
        }
        let currency_ok =
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !currency_ok {
            return Err(format!(
                "currency {:?} is not an ISO 4217 code (three capital letters, e.g. EUR, KRW)",
                self.currency
            ));
        }
        Ok(())
    }
}

fn check_schedule_time(field: &str, at: DateTime<Utc>) -> Result<(), String> {
    if (SCHEDULE_YEAR_MIN..=SCHEDULE_YEAR_MAX).contains(&at.year()) {
        Ok(())
    } else {
        Err(format!(
            "{field} ({}) must fall in the years {SCHEDULE_YEAR_MIN} to {SCHEDULE_YEAR_MAX}",
            at.to_rfc3339()
        ))
    }
}

fn check_amount(field: &str, amount: u64) -> Result<(), String> {
    if (1..=AMOUNT_MINOR_MAX).contains(&amount) {
        Ok(())
    } else {
        Err(format!(
            "{field} must be between 1 and {AMOUNT_MINOR_MAX} minor units, got {amount}"
        ))
    }
}

/// Commands on an auction lot. The lot id is the envelope's `resource_id`; the bidder or
/// buyer is the envelope's `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuctionCommand {
    /// Create the lot (idempotent when the spec is identical).
    CreateLot {
        /// The lot's rules.
        spec: LotSpec,
    },
    /// Bid up to `max_amount`: a proxy bid. The lot's price is raised on the bidder's
    /// behalf, one increment over the runner-up, up to this maximum. A plain bid is one
    /// whose maximum is the amount. The leader may raise their own maximum.
    Bid {
        /// The most the bidder will pay, in minor units.
        max_amount: u64,
    },
    /// Buy the lot at its `buy_now_price`, ending it at once.
    BuyNow,
    /// Close the lot at its end. Written by the expiry scheduler when the lot's close
    /// timer comes due (`docs/domains.md`, rules 7–9), never accepted from callers.
    CloseLot {
        /// The end this close was scheduled for. An anti-sniping extension schedules a new
        /// close; the earlier one, naming an end that is no longer the lot's, is rejected
        /// (`not_due_yet`).
        ends_at: DateTime<Utc>,
    },
}

impl AuctionCommand {
    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> crate::outcome::CommandKind {
        use crate::outcome::CommandKind;
        match self {
            AuctionCommand::CreateLot { .. } => CommandKind::CreateLot,
            AuctionCommand::Bid { .. } => CommandKind::Bid,
            AuctionCommand::BuyNow => CommandKind::BuyNow,
            AuctionCommand::CloseLot { .. } => CommandKind::CloseLot,
        }
    }

    /// Whether only the expiry scheduler writes this command.
    pub fn is_timer(&self) -> bool {
        matches!(self, AuctionCommand::CloseLot { .. })
    }

    /// The timer kind and subject of a timer command: `("close_lot", "<ends_at in UTC
    /// milliseconds since the epoch>")`, e.g. `("close_lot", "1781539200000")`. `None` for
    /// the others.
    pub fn timer(&self) -> Option<(&'static str, String)> {
        match self {
            AuctionCommand::CloseLot { ends_at } => {
                Some((CLOSE_LOT_TIMER_KIND, ends_at.timestamp_millis().to_string()))
            }
            _ => None,
        }
    }

    /// The timer command of a timer kind and subject ([`AuctionCommand::timer`]'s
    /// inverse): `None` for another kind, or a subject that is not a canonical decimal
    /// number of milliseconds (no sign, no leading zeros, no spaces).
    pub fn from_timer(kind: &str, subject: &str) -> Option<Self> {
        if kind != CLOSE_LOT_TIMER_KIND {
            return None;
        }
        let millis: i64 = subject.parse().ok()?;
        if millis.to_string() != subject {
            return None;
        }
        let ends_at = DateTime::from_timestamp_millis(millis)?;
        Some(AuctionCommand::CloseLot { ends_at })
    }
}

/// Why a lot closed without a sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsoldReason {
    /// Nobody bid.
    NoBids,
    /// The highest maximum stayed below the reserve price.
    ReserveNotMet,
}

/// Where a lot stands, as a lookup shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LotStatus {
    /// `opens_at` is still ahead.
    Upcoming,
    /// Taking bids.
    Open,
    /// The end has passed; the close timer has not been decided yet. No bid is accepted.
    Ending,
    /// Closed with a winner (by the close timer or a buy-now).
    Sold,
    /// Closed without a sale.
    Unsold,
}

/// What a lookup of a lot shows users: its state at one instant, without any bidder's
/// maximum or the reserve amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LotView {
    /// The lot.
    pub lot_id: String,
    /// Its title.
    pub title: String,
    /// The currency amounts are in.
    pub currency: String,
    /// Where it stands.
    pub status: LotStatus,
    /// When bidding opens, if it has a start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<DateTime<Utc>>,
    /// When bidding ends, after every anti-sniping extension so far.
    pub ends_at: DateTime<Utc>,
    /// Whether `ends_at` was moved by anti-sniping.
    pub extended: bool,
    /// Bids accepted so far.
    pub bid_count: u64,
    /// The current price (the final price once sold); `None` before the first bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_price: Option<u64>,
    /// Who leads (the winner once sold); `None` before the first bid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The least a bid by anyone but the leader must offer; `None` once bidding ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_next_bid: Option<u64>,
    /// Whether the leader's maximum meets the reserve; `None` for a lot without reserve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_met: Option<bool>,
    /// The buy-now price while buy-now is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_now_price: Option<u64>,
    /// Why it closed unsold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsold_reason: Option<UnsoldReason>,
    /// When it closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    fn spec() -> LotSpec {
        LotSpec {
            locale: None,
            title: "Lamp".into(),
            seller_id: None,
            opens_at: None,
            ends_at: Utc
                .with_ymd_and_hms(2026, 6, 15, 12, 0, 0)
                .single()
                .expect("valid"),
            opening_price: 1_000,
            increment: 100,
            reserve_price: None,
            buy_now_price: None,
            extension_seconds: EXTENSION_SECONDS_DEFAULT,
            currency: "EUR".into(),
        }
    }

    fn error(change: impl FnOnce(&mut LotSpec)) -> String {
        let mut spec = spec();
        change(&mut spec);
        spec.validate().expect_err("the spec is invalid")
    }

    #[test]
    fn a_minimal_spec_parses_with_defaults_and_round_trips() {
        let json = concat!(
            r#"{"ends_at":"2026-06-15T12:00:00Z","opening_price":1000,"increment":100,"#,
            r#""currency":"EUR"}"#
        );
        let parsed: LotSpec = serde_json::from_str(json).expect("parses");
        assert_eq!(parsed.extension_seconds, EXTENSION_SECONDS_DEFAULT);
        assert_eq!(parsed.title, "");
        assert!(parsed.validate().is_ok());
        let again: LotSpec =
            serde_json::from_str(&serde_json::to_string(&parsed).expect("serialises"))
                .expect("parses");
        assert_eq!(again, parsed);
        let unknown = json.replace("\"currency\"", "\"reserve\":5,\"currency\"");
        assert!(serde_json::from_str::<LotSpec>(&unknown).is_err());
    }

    #[test]
    fn bad_specs_name_the_bad_field() {
        assert!(spec().validate().is_ok());
        let cases: Vec<(String, &str)> = vec![
            (error(|s| s.title = "x".repeat(201)), "title"),
            (error(|s| s.seller_id = Some("a/b".into())), "seller_id"),
            (error(|s| s.seller_id = Some(String::new())), "seller_id"),
            (
                error(|s| s.ends_at += chrono::Duration::microseconds(1)),
                "ends_at",
            ),
            (error(|s| s.opens_at = Some(s.ends_at)), "opens_at"),
            (
                error(|s| s.ends_at = Utc.with_ymd_and_hms(3000, 1, 1, 0, 0, 0).unwrap()),
                "ends_at",
            ),
            (
                error(|s| s.opens_at = Some(Utc.with_ymd_and_hms(1999, 12, 31, 0, 0, 0).unwrap())),
                "opens_at",
            ),
            (error(|s| s.opening_price = 0), "opening_price"),
            (
                error(|s| s.opening_price = AMOUNT_MINOR_MAX + 1),
                "opening_price",
            ),
            (error(|s| s.increment = 0), "increment"),
            (error(|s| s.reserve_price = Some(999)), "reserve_price"),
            (error(|s| s.buy_now_price = Some(999)), "buy_now_price"),
            (
                error(|s| {
                    s.reserve_price = Some(5_000);
                    s.buy_now_price = Some(4_999);
                }),
                "buy_now_price (4999) must be at least reserve_price",
            ),
            (
                error(|s| s.extension_seconds = EXTENSION_SECONDS_MAX + 1),
                "extension_seconds",
            ),
            (error(|s| s.currency = "eur".into()), "currency"),
            (error(|s| s.currency = "EURO".into()), "currency"),
        ];
        for (message, field) in cases {
            assert!(message.contains(field), "{field}: {message}");
        }
        let mut edge = spec();
        edge.reserve_price = Some(edge.opening_price);
        edge.buy_now_price = Some(edge.opening_price);
        edge.extension_seconds = 0;
        edge.ends_at = Utc.with_ymd_and_hms(2999, 12, 31, 23, 59, 59).unwrap();
        assert!(edge.validate().is_ok());
    }

    #[test]
    fn close_timer_subjects_are_end_times_in_milliseconds_and_round_trip() {
        let close = AuctionCommand::CloseLot {
            ends_at: Utc.with_ymd_and_hms(2026, 6, 15, 0, 0, 0).unwrap()
                + chrono::Duration::milliseconds(7),
        };
        let (kind, subject) = close.timer().expect("a timer");
        assert_eq!((kind, subject.as_str()), ("close_lot", "1781481600007"));
        assert!(close.is_timer());
        assert_eq!(
            AuctionCommand::from_timer(kind, &subject),
            Some(close.clone())
        );
        for bad in ["01781481600007", "+1781481600007", " 1", "1.5", "", "x"] {
            assert_eq!(AuctionCommand::from_timer(kind, bad), None, "{bad:?}");
        }
        assert_eq!(AuctionCommand::from_timer("expire", &subject), None);
        let bid = AuctionCommand::Bid { max_amount: 5 };
        assert_eq!(bid.timer(), None);
        assert!(!bid.is_timer());
        assert!(!AuctionCommand::BuyNow.is_timer());
    }

    #[test]
    fn commands_use_the_wire_names() {
        let bid: AuctionCommand =
            serde_json::from_str(r#"{"kind":"bid","max_amount":1200}"#).expect("parses");
        assert_eq!(bid, AuctionCommand::Bid { max_amount: 1200 });
        let buy: AuctionCommand = serde_json::from_str(r#"{"kind":"buy_now"}"#).expect("parses");
        assert_eq!(buy, AuctionCommand::BuyNow);
        assert!(
            serde_json::from_str::<AuctionCommand>(r#"{"kind":"bid","max_amount":1,"x":1}"#)
                .is_err()
        );
        let close = serde_json::to_string(&AuctionCommand::CloseLot {
            ends_at: Utc.with_ymd_and_hms(2026, 6, 15, 0, 0, 0).unwrap(),
        })
        .expect("serialises");
        assert_eq!(
            close,
            r#"{"kind":"close_lot","ends_at":"2026-06-15T00:00:00Z"}"#
        );
    }
}
