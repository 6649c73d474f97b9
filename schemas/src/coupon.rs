//! Coupon campaigns: a fixed quantity of coupons, first come first served.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest campaign a single partition will hold, in coupons.
pub const CAPACITY_MAX: u32 = 100_000_000;
/// Longest validity, in days after the day of issue.
pub const VALID_DAYS_MAX: u32 = 3_650;
/// The locales notifications are written in (`CampaignSpec::locale`); the first is the
/// default. A locale is added here together with its templates in `sinks/src/notify/`.
pub const LOCALES: &[&str] = &["en", "ko"];

/// How long before a coupon expires its holder is reminded (the "expiring tomorrow"
/// notice): the reminder timer is due this many hours before `expires_at`.
pub const EXPIRY_REMINDER_LEAD_HOURS: i64 = 24;

/// What an operator sets when creating a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Human-readable name shown in lookups and notifications.
    #[serde(default)]
    pub title: String,
    /// How many coupons exist. Never more are issued.
    pub capacity: u32,
    /// How many coupons one user may hold from this campaign.
    #[serde(default = "default_per_user_limit")]
    pub per_user_limit: u32,
    /// Claims before this instant are rejected (`not_open_yet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<DateTime<Utc>>,
    /// Claims at or after this instant are rejected (`closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at: Option<DateTime<Utc>>,
    /// IANA time zone of the campaign's market, e.g. `Asia/Seoul`; expiry is local midnight.
    pub time_zone: String,
    /// A coupon is valid until local midnight this many days after the day it was issued
    /// (0: until the end of the day of issue).
    #[serde(default)]
    pub valid_days: u32,
    /// Language of the campaign's notifications: one of [`LOCALES`] (`en`, `ko`); English
    /// when absent. Left out of the JSON when absent, so that specs (and the outcomes that
    /// carry them) written before this field existed serialise byte for byte as they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// Checks a spec's optional `locale` against [`LOCALES`].
pub fn validate_locale(locale: Option<&str>) -> Result<(), String> {
    match locale {
        Some(locale) if !LOCALES.contains(&locale) => Err(format!(
            "locale {locale:?} is not supported: use one of {LOCALES:?}, or leave it out for {:?}",
            LOCALES[0]
        )),
        _ => Ok(()),
    }
}

fn default_per_user_limit() -> u32 {
    1
}

impl CampaignSpec {
    /// Checks the spec and returns the parsed time zone, or a message naming the bad field.
    pub fn validate(&self) -> Result<chrono_tz::Tz, String> {
        if self.capacity == 0 || self.capacity > CAPACITY_MAX {
            return Err(format!(
                "capacity must be between 1 and {CAPACITY_MAX}, got {}",
                self.capacity
            ));
        }
        if self.per_user_limit == 0 {
            return Err("per_user_limit must be at least 1".into());
        }
        if self.valid_days > VALID_DAYS_MAX {
            return Err(format!(
                "valid_days must be at most {VALID_DAYS_MAX}, got {}",
                self.valid_days
            ));
        }
        if let (Some(opens), Some(closes)) = (self.opens_at, self.closes_at) {
            if closes <= opens {
                return Err(format!(
                    "closes_at ({closes}) must be after opens_at ({opens})"
                ));
            }
        }
        if self.title.len() > 200 {
            return Err("title must be at most 200 bytes".into());
        }
        validate_locale(self.locale.as_deref())?;
        self.time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
            format!(
                "time_zone {:?} is not an IANA time zone name (e.g. Asia/Seoul, America/New_York)",
                self.time_zone
            )
        })
    }
}

/// Commands on a coupon campaign. The campaign id is the envelope's `resource_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CouponCommand {
    /// Create the campaign (idempotent when the spec is identical).
    CreateCampaign {
        /// The campaign's rules.
        spec: CampaignSpec,
    },
    /// Claim one coupon for the envelope's user.
    Claim,
    /// Use a coupon the envelope's user holds.
    Redeem {
        /// The coupon to redeem.
        coupon_id: String,
    },
    /// End a coupon's validity. Written by the expiry scheduler when the coupon's expiry
    /// timer comes due (`docs/exactly-once.md`, rules 33–38), never accepted from callers.
    Expire {
        /// The coupon whose validity ends.
        coupon_id: String,
    },
    /// Remind the holder that a coupon expires within a day. Written by the expiry
    /// scheduler, like [`CouponCommand::Expire`].
    RemindExpiry {
        /// The coupon about to expire.
        coupon_id: String,
    },
}

impl CouponCommand {
    /// `(timer kind, subject)` of a timer command (`expire` or `remind`, and the coupon
    /// id); `None` for the commands callers send.
    pub fn timer(&self) -> Option<(&'static str, String)> {
        match self {
            CouponCommand::Expire { coupon_id } => Some(("expire", coupon_id.clone())),
            CouponCommand::RemindExpiry { coupon_id } => Some(("remind", coupon_id.clone())),
            _ => None,
        }
    }

    /// The timer command of `kind` on `subject`, the inverse of [`CouponCommand::timer`].
    pub fn from_timer(kind: &str, subject: &str) -> Option<Self> {
        let coupon_id = subject.to_string();
        match kind {
            "expire" => Some(CouponCommand::Expire { coupon_id }),
            "remind" => Some(CouponCommand::RemindExpiry { coupon_id }),
            _ => None,
        }
    }

    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> crate::outcome::CommandKind {
        use crate::outcome::CommandKind;
        match self {
            CouponCommand::CreateCampaign { .. } => CommandKind::CreateCampaign,
            CouponCommand::Claim => CommandKind::Claim,
            CouponCommand::Redeem { .. } => CommandKind::Redeem,
            CouponCommand::Expire { .. } => CommandKind::Expire,
            CouponCommand::RemindExpiry { .. } => CommandKind::RemindExpiry,
        }
    }
}

/// A coupon as issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coupon {
    /// Deterministic id: campaign id and issue sequence number (`<campaign>-<n>`).
    pub coupon_id: String,
    /// The campaign it belongs to.
    pub campaign_id: String,
    /// Its holder.
    pub user_id: String,
    /// When it was issued (the claim's `submitted_at`).
    pub issued_at: DateTime<Utc>,
    /// The instant of local midnight that ends its validity.
    pub expires_at: DateTime<Utc>,
}

impl Coupon {
    /// When its holder is reminded of the expiry ([`reminder_time`]), or never when that
    /// is not after the issue (a coupon valid for less than a day).
    pub fn reminder_due(&self) -> Option<DateTime<Utc>> {
        let due = reminder_time(self.expires_at);
        (due > self.issued_at).then_some(due)
    }
}

/// The reminder of a coupon expiring at `expires_at` is due
/// [`EXPIRY_REMINDER_LEAD_HOURS`] before it: a timer's due time and, in the state machine,
/// the earliest instant its command is accepted.
pub fn reminder_time(expires_at: DateTime<Utc>) -> DateTime<Utc> {
    expires_at - chrono::Duration::hours(EXPIRY_REMINDER_LEAD_HOURS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(locale: Option<&str>) -> CampaignSpec {
        CampaignSpec {
            title: "Drop".into(),
            capacity: 10,
            per_user_limit: 1,
            opens_at: None,
            closes_at: None,
            time_zone: "Asia/Seoul".into(),
            valid_days: 0,
            locale: locale.map(str::to_owned),
        }
    }

    #[test]
    fn a_spec_without_a_locale_serialises_as_before_the_field_existed() {
        // Invariant 6: outcomes stored before `locale` existed must replay byte for byte.
        let before = r#"{"title":"Drop","capacity":10,"per_user_limit":1,"time_zone":"Asia/Seoul","valid_days":0}"#;
        let parsed: CampaignSpec = serde_json::from_str(before).expect("old specs parse");
        assert_eq!(parsed, spec(None));
        assert_eq!(serde_json::to_string(&parsed).expect("serialises"), before);
    }

    #[test]
    fn a_locale_round_trips_and_is_validated() {
        let korean = spec(Some("ko"));
        let json = serde_json::to_string(&korean).expect("serialises");
        assert!(json.ends_with(r#","locale":"ko"}"#), "{json}");
        assert_eq!(
            serde_json::from_str::<CampaignSpec>(&json).expect("parses"),
            korean
        );
        assert!(korean.validate().is_ok());
        assert!(spec(Some("en")).validate().is_ok());
        assert!(spec(None).validate().is_ok());
        let error = spec(Some("fr"))
            .validate()
            .expect_err("fr has no templates");
        assert!(error.contains("locale \"fr\" is not supported"), "{error}");
    }
}
