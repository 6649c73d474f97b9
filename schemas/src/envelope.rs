//! The command envelope: one record on the log.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auction::AuctionCommand;
use crate::coupon::CouponCommand;
use crate::outcome::CommandKind;
use crate::seats::SeatsCommand;
use crate::venue::VenueCommand;

/// The start of every timer command's request id, and of no other: the edge refuses it
/// as an `Idempotency-Key`.
pub const TIMER_REQUEST_PREFIX: &str = "timer:";

/// Longest timer request id, in bytes: `timer:<kind>:<subject>`, where a subject (a coupon,
/// hold or offer id) holds a resource id of up to [`crate::ID_LEN_MAX_BYTES`] and a number.
pub const TIMER_ID_LEN_MAX_BYTES: usize = crate::ID_LEN_MAX_BYTES + 64;

/// The envelope version this build writes. Readers accept every version up to this one.
pub const ENVELOPE_VERSION: u16 = 1;

/// One request on its way through the log.
///
/// Everything a processor needs to decide is in here, including the time: processors use
/// `submitted_at` as "now" so that replaying the log decides exactly as the first run did.
// No `deny_unknown_fields`: serde cannot combine it with `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Envelope format version ([`ENVELOPE_VERSION`] when written by this build).
    pub v: u16,
    /// The caller's `Idempotency-Key`. Scoped to `resource_id`: the pair identifies the
    /// request, and every delivery of the pair gets the same outcome.
    pub request_id: String,
    /// The resource the command acts on (a campaign id). The log is partitioned by it.
    pub resource_id: String,
    /// The user the command is on behalf of (the operator for administrative commands).
    pub user_id: String,
    /// When the edge accepted the request; the decision's notion of "now".
    pub submitted_at: DateTime<Utc>,
    /// W3C `traceparent` of the request that produced this command, if it was traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// What to do.
    #[serde(flatten)]
    pub command: Command,
}

/// The command carried by an envelope, tagged by domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "domain", content = "command", rename_all = "snake_case")]
pub enum Command {
    /// A coupon-campaign command.
    Coupon(CouponCommand),
    /// A seated-event command (live ticketing).
    Seats(SeatsCommand),
    /// A venue command (restaurant reservations).
    Venue(VenueCommand),
    /// An auction-lot command.
    Auction(AuctionCommand),
}

/// Each domain's commands are a [`Command`] of that domain.
macro_rules! command_from {
    ($($domain:ident($command:ty)),* $(,)?) => {
        $(impl From<$command> for Command {
            fn from(command: $command) -> Self {
                Command::$domain(command)
            }
        })*
    };
}

command_from!(
    Coupon(CouponCommand),
    Seats(SeatsCommand),
    Venue(VenueCommand),
    Auction(AuctionCommand),
);

impl Command {
    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Coupon(command) => command.kind(),
            Command::Seats(command) => command.kind(),
            Command::Venue(command) => command.kind(),
            Command::Auction(command) => command.kind(),
        }
    }

    /// `(timer kind, subject)` of a timer command, `None` for the commands callers send.
    /// Timer kinds are unique across domains (docs/domains.md, rule 8).
    pub fn timer(&self) -> Option<(&'static str, String)> {
        match self {
            Command::Coupon(command) => command.timer(),
            Command::Seats(command) => command.timer(),
            Command::Venue(command) => command.timer(),
            Command::Auction(command) => command.timer(),
        }
    }

    /// The timer command of `kind` on `subject`, whichever domain it belongs to: the
    /// inverse of [`Command::timer`].
    pub fn from_timer(kind: &str, subject: &str) -> Option<Self> {
        None.or_else(|| CouponCommand::from_timer(kind, subject).map(Command::Coupon))
            .or_else(|| SeatsCommand::from_timer(kind, subject).map(Command::Seats))
            .or_else(|| VenueCommand::from_timer(kind, subject).map(Command::Venue))
            .or_else(|| AuctionCommand::from_timer(kind, subject).map(Command::Auction))
    }

    /// Whether only the expiry scheduler writes this command.
    pub fn is_timer(&self) -> bool {
        self.timer().is_some()
    }

    /// The request id of a timer command, `timer:<kind>:<subject>`: one per timer, so a
    /// timer fired twice is one request.
    pub fn timer_request_id(&self) -> Option<String> {
        let (kind, subject) = self.timer()?;
        Some(format!("{TIMER_REQUEST_PREFIX}{kind}:{subject}"))
    }
}

impl Envelope {
    /// Serialises the envelope as the bytes stored on the log.
    pub fn to_log_bytes(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).expect("envelope serialises")
    }

    /// Parses log bytes, rejecting envelopes from a newer, unknown version.
    pub fn from_log_bytes(bytes: &[u8]) -> Result<Self, String> {
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| format!("not a valid envelope: {e}"))?;
        if envelope.v == 0 || envelope.v > ENVELOPE_VERSION {
            return Err(format!(
                "envelope version {} is not supported (this build reads 1..={ENVELOPE_VERSION})",
                envelope.v
            ));
        }
        for (what, id) in [
            ("resource_id", &envelope.resource_id),
            ("user_id", &envelope.user_id),
        ] {
            crate::validate_id(what, id)?;
        }
        let timer_id = envelope.request_id.starts_with(TIMER_REQUEST_PREFIX);
        // A timer's id names its subject, which may hold the resource id in full.
        let request_id_max = match timer_id {
            true => TIMER_ID_LEN_MAX_BYTES,
            false => crate::ID_LEN_MAX_BYTES,
        };
        crate::validate_id_within("request_id", &envelope.request_id, request_id_max)?;
        if envelope.command.is_timer() != timer_id {
            // Timer commands and only they carry timer ids, so a caller's request can never
            // take a timer's id and swallow its firing (docs/exactly-once.md, rule 38).
            return Err(format!(
                "request_id {:?}: ids starting with {TIMER_REQUEST_PREFIX:?} belong to timer \
                 commands, and timer commands only use such ids",
                envelope.request_id
            ));
        }
        Ok(envelope)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn envelope(request_id: &str, command: CouponCommand) -> Vec<u8> {
        Envelope {
            v: ENVELOPE_VERSION,
            request_id: request_id.into(),
            resource_id: "drop".into(),
            user_id: "alice".into(),
            submitted_at: Utc
                .with_ymd_and_hms(2026, 6, 15, 15, 0, 0)
                .single()
                .expect("UTC is unambiguous"),
            traceparent: None,
            command: Command::Coupon(command),
        }
        .to_log_bytes()
    }

    #[test]
    fn a_timer_id_may_hold_a_resource_id_of_the_longest_length() {
        let campaign = "c".repeat(crate::ID_LEN_MAX_BYTES);
        let coupon_id = format!("{campaign}-4294967295");
        let remind = CouponCommand::RemindExpiry { coupon_id };
        let timer_id = Command::Coupon(remind.clone())
            .timer_request_id()
            .expect("a timer");
        assert!(timer_id.len() > crate::ID_LEN_MAX_BYTES);
        let mut bytes = envelope(&timer_id, remind);
        bytes = String::from_utf8(bytes)
            .expect("JSON")
            .replace("\"drop\"", &format!("\"{campaign}\""))
            .into_bytes();
        let parsed = Envelope::from_log_bytes(&bytes).expect("a timer of a long campaign id");
        assert_eq!(parsed.request_id, timer_id);
        // Callers' ids keep the ordinary limit.
        let long_claim = envelope(
            &"r".repeat(crate::ID_LEN_MAX_BYTES + 1),
            CouponCommand::Claim,
        );
        assert!(Envelope::from_log_bytes(&long_claim).is_err());
    }

    #[test]
    fn timer_ids_and_timer_commands_go_together_or_not_at_all() {
        let expire = || CouponCommand::Expire {
            coupon_id: "drop-1".into(),
        };
        let timer_id = Command::Coupon(expire())
            .timer_request_id()
            .expect("expire is a timer");
        assert_eq!(timer_id, "timer:expire:drop-1");
        assert!(Envelope::from_log_bytes(&envelope(&timer_id, expire())).is_ok());
        assert!(Envelope::from_log_bytes(&envelope("r1", CouponCommand::Claim)).is_ok());

        let claim_with_timer_id = envelope(&timer_id, CouponCommand::Claim);
        let error =
            Envelope::from_log_bytes(&claim_with_timer_id).expect_err("a claim with a timer id");
        assert!(error.contains("belong to timer commands"), "{error}");
        assert!(Envelope::from_log_bytes(&envelope("r2", expire())).is_err());
    }
}
