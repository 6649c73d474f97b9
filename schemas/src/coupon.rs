//! Coupon campaigns: a fixed quantity of coupons, first come first served.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Largest campaign a single partition will hold, in coupons.
pub const CAPACITY_MAX: u32 = 100_000_000;
/// Longest validity, in days after the day of issue.
pub const VALID_DAYS_MAX: u32 = 3_650;

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
}

impl CouponCommand {
    /// The command's kind, as recorded in its outcome.
    pub fn kind(&self) -> crate::outcome::CommandKind {
        use crate::outcome::CommandKind;
        match self {
            CouponCommand::CreateCampaign { .. } => CommandKind::CreateCampaign,
            CouponCommand::Claim => CommandKind::Claim,
            CouponCommand::Redeem { .. } => CommandKind::Redeem,
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
