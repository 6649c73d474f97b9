//! What every backend stores and reads back the same way: the row types of lookups, the
//! outcome's canonical JSON, the status column and the time encoding.
//!
//! Kept in one place because the audit compares stored outcome JSON byte for byte, and a
//! journal moved from one backend to the other must read back identically.

use chrono::{DateTime, SecondsFormat, Utc};
use turnstile_schemas::{CampaignSpec, Coupon, Decision, Outcome};

use crate::{BatchCommit, Error};

/// A campaign as the journal knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    /// Its id.
    pub campaign_id: String,
    /// The partition that owns it.
    pub partition: u32,
    /// Its rules.
    pub spec: CampaignSpec,
    /// Coupons issued.
    pub issued: u32,
}

/// A coupon as the journal knows it, with its campaign's rules for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponRow {
    /// Coupon id.
    pub coupon_id: String,
    /// Campaign id.
    pub campaign_id: String,
    /// Holder.
    pub user_id: String,
    /// Issue instant.
    pub issued_at: DateTime<Utc>,
    /// End of validity.
    pub expires_at: DateTime<Utc>,
    /// When it was redeemed, if it was.
    pub redeemed_at: Option<DateTime<Utc>>,
    /// The campaign's rules (title, time zone).
    pub campaign: CampaignSpec,
}

/// An outcome row as stored, for the audit's byte-for-byte comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOutcome {
    /// Log offset of the record that decided it.
    pub offset: u64,
    /// The outcome JSON exactly as committed.
    pub body: String,
}

/// A limit the journal's own rows show broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitBreach {
    /// The campaign.
    pub campaign_id: String,
    /// The user, for a per-user limit breach.
    pub user_id: Option<String>,
    /// Coupons counted.
    pub count: u64,
    /// The limit.
    pub limit: u64,
}

/// The rows a batch changes besides its outcomes, grouped by table. A backend writes them
/// in field order: a redeem may name a coupon granted earlier in the same batch, so the
/// coupons go in before the redeems look for them.
#[derive(Debug, Default)]
pub(crate) struct Projections<'a> {
    /// New campaigns. A repeated create with an identical spec is also "created", so the
    /// same campaign may appear twice; the first row wins.
    pub campaigns: Vec<(&'a Outcome, &'a CampaignSpec)>,
    /// Granted coupons, each with the outcome that granted it.
    pub coupons: Vec<(&'a Outcome, &'a Coupon)>,
    /// Redeemed coupons: `(coupon_id, redeemed_at)`. Each must find its coupon unredeemed.
    pub redeems: Vec<(&'a str, &'a DateTime<Utc>)>,
    /// Every state-changing outcome, in log order: work for the sinks.
    pub outbox: Vec<&'a Outcome>,
}

impl<'a> Projections<'a> {
    /// Sorts the batch's outcomes into the tables they change.
    pub fn of(batch: &'a BatchCommit) -> Self {
        let mut projections = Projections::default();
        for outcome in batch.outcomes.iter().map(AsRef::as_ref) {
            match &outcome.decision {
                Decision::CampaignCreated { spec } => projections.campaigns.push((outcome, spec)),
                Decision::CouponGranted { coupon } => projections.coupons.push((outcome, coupon)),
                Decision::CouponRedeemed {
                    coupon_id,
                    redeemed_at,
                } => projections.redeems.push((coupon_id, redeemed_at)),
                Decision::Rejected { .. } => continue,
            }
            projections.outbox.push(outcome);
        }
        projections
    }
}

/// A campaign as both backends select it: `(campaign_id, partition, spec JSON, issued)`.
pub(crate) type CampaignColumns = (String, i64, String, i64);

impl CampaignRow {
    /// The row from its selected columns.
    pub(crate) fn from_columns(
        (campaign_id, partition, spec, issued): CampaignColumns,
    ) -> Result<Self, Error> {
        Ok(CampaignRow {
            campaign_id,
            partition: partition as u32,
            spec: parse_json(&spec)?,
            issued: issued as u32,
        })
    }
}

/// The outcome's canonical JSON: what the journal stores and a replay must reproduce.
pub fn outcome_json(outcome: &Outcome) -> String {
    serde_json::to_string(outcome).expect("outcomes serialise")
}

/// The `status` column of an outcome (and the `kind` of its outbox row).
pub(crate) fn decision_status(decision: &Decision) -> &'static str {
    match decision {
        Decision::CampaignCreated { .. } => "campaign_created",
        Decision::CouponGranted { .. } => "coupon_granted",
        Decision::CouponRedeemed { .. } => "coupon_redeemed",
        Decision::Rejected { reason } => reason.code(),
    }
}

/// A coupon time as SQLite stores it: RFC 3339 in UTC with milliseconds, so text order
/// is time order.
pub(crate) fn time_text(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A coupon time as the Postgres journal stores it: cut to the millisecond, like
/// [`time_text`], so both backends read back the same instant.
pub(crate) fn stored_time(time: &DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis())
        .expect("a time cut to the millisecond is still in range")
}

pub(crate) fn parse_time(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("bad timestamp {text:?}: {e}")))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("unreadable row {text:?}: {e}")))
}
