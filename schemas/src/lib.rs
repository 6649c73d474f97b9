//! The data every turnstile stage agrees on.
//!
//! # Layout
//! - [`envelope`]: the versioned command envelope producers put on the log.
//! - [`coupon`]: the coupon-campaign commands, specs and coupons.
//! - [`seats`], [`venue`], [`auction`]: the seated-event, venue-slot and auction-lot
//!   commands and specs.
//! - [`outcome`]: the decision a processor records for one request id.
//! - [`error`]: the one JSON error shape every HTTP 4xx/5xx answer uses.
//! - [`export`]: JSON Schema documents for all of the above (`turnstile schema`).
//!
//! These types are serialised into the log and the journal, so their JSON form is a
//! contract: fields are only ever added (with defaults), never renamed or removed, and the
//! envelope carries a version number for the day that rule has to break.

pub mod auction;
pub mod coupon;
pub mod envelope;
pub mod error;
pub mod export;
pub mod outcome;
pub mod seats;
pub mod venue;

pub use coupon::{CampaignSpec, Coupon, CouponCommand};
pub use envelope::{Command, Envelope, ENVELOPE_VERSION, TIMER_REQUEST_PREFIX};
pub use error::{ApiError, ErrorBody};
pub use outcome::{CommandKind, Decision, LogPosition, Outcome, Rejection, ScheduledTimer};

/// Longest accepted request id (the `Idempotency-Key`), resource id or user id, in bytes.
/// Ids are stored in memory for every request a partition has seen, so they are bounded.
pub const ID_LEN_MAX_BYTES: usize = 128;

/// Checks an id (request, resource or user id): 1..=128 bytes of visible ASCII without `/`,
/// so it can appear in a URL path segment unescaped.
pub fn validate_id(what: &str, id: &str) -> Result<(), String> {
    validate_id_within(what, id, ID_LEN_MAX_BYTES)
}

/// [`validate_id`] with another length limit, in bytes.
pub(crate) fn validate_id_within(what: &str, id: &str, len_max_bytes: usize) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if id.len() > len_max_bytes {
        return Err(format!(
            "{what} is {} bytes long; the limit is {len_max_bytes}",
            id.len()
        ));
    }
    if let Some(bad) = id.chars().find(|c| !c.is_ascii_graphic() || *c == '/') {
        return Err(format!(
            "{what} contains {bad:?}; use visible ASCII characters other than '/'"
        ));
    }
    Ok(())
}
