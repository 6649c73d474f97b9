//! What every backend stores and reads back the same way: the row types of lookups, the
//! outcome's canonical JSON, the status column and the time encoding.
//!
//! Kept in one place because the audit compares stored outcome JSON byte for byte, and a
//! journal moved from one backend to the other must read back identically.

use chrono::{DateTime, SecondsFormat, Utc};
use turnstile_schemas::{CampaignSpec, Command, Coupon, Decision, Outcome, TIMER_REQUEST_PREFIX};

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
    /// When its expiry took effect, if it has.
    pub expired_at: Option<DateTime<Utc>>,
    /// The campaign's rules (title, time zone).
    pub campaign: CampaignSpec,
}

/// A timer: a command due at a time, written back into the log by the expiry scheduler
/// (`docs/exactly-once.md`, rules 33–38; `docs/domains.md`, rules 7–9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    /// The resource the command acts on.
    pub resource_id: String,
    /// The command's request id (`timer:<kind>:<subject>`), unique per resource.
    pub timer_id: String,
    /// The resource's partition.
    pub partition: u32,
    /// When the command is due; it is stamped with this as its `submitted_at`.
    pub due_at: DateTime<Utc>,
    /// The command's user (the coupon's holder, the hold's holder, ...).
    pub user_id: String,
    /// The command, a timer command of any domain.
    pub command: Command,
}

impl TimerRow {
    /// The timer that fires `command` on the resource of `outcome` at `due_at`.
    ///
    /// Both backends keep times to the millisecond, so a due time is rounded *up* to the
    /// next one: the command is stamped with its stored due time, and it must never be
    /// stamped before the instant it is due at (a hold's expiry carries the microseconds
    /// of the request that made it, and a lapse stamped a few microseconds early would be
    /// refused as not yet due).
    pub fn new(outcome: &Outcome, due_at: DateTime<Utc>, user_id: &str, command: Command) -> Self {
        let due_at = ceil_to_millis(due_at);
        TimerRow {
            resource_id: outcome.resource_id.clone(),
            timer_id: command
                .timer_request_id()
                .expect("a timer row carries a timer command"),
            partition: outcome.position.partition,
            due_at,
            user_id: user_id.to_string(),
            command,
        }
    }

    /// The `kind` and `subject` columns.
    pub(crate) fn kind_and_subject(&self) -> (&'static str, String) {
        self.command
            .timer()
            .expect("a timer row carries a timer command")
    }

    /// A row from its stored columns.
    pub(crate) fn from_columns(
        (resource_id, timer_id, partition, due_at, user_id, kind, subject): TimerColumns,
    ) -> Result<Self, Error> {
        let command = Command::from_timer(&kind, &subject)
            .ok_or_else(|| Error::Corrupt(format!("unknown timer kind {kind:?}")))?;
        Ok(TimerRow {
            resource_id,
            timer_id,
            partition: partition as u32,
            due_at,
            user_id,
            command,
        })
    }
}

/// `time` rounded up to a whole millisecond.
fn ceil_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    let floor = stored_time(&time);
    match floor < time {
        true => floor + chrono::Duration::milliseconds(1),
        false => floor,
    }
}

/// What one outcome changes in the archive (`archive_coupons`), if anything.
#[derive(Debug)]
pub(crate) enum ArchiveChange<'a> {
    /// A coupon was issued: a new `active` row.
    Issued(&'a Coupon),
    /// An `active` coupon moved to `state` (`redeemed`, `expired`) at `at`.
    Moved {
        coupon_id: &'a str,
        state: &'static str,
        at: &'a DateTime<Utc>,
    },
}

impl<'a> ArchiveChange<'a> {
    /// The change `outcome` makes.
    pub(crate) fn of(outcome: &'a Outcome) -> Option<Self> {
        match &outcome.decision {
            Decision::CouponGranted { coupon } => Some(ArchiveChange::Issued(coupon)),
            Decision::CouponRedeemed {
                coupon_id,
                redeemed_at,
            } => Some(ArchiveChange::Moved {
                coupon_id,
                state: "redeemed",
                at: redeemed_at,
            }),
            Decision::CouponExpired {
                coupon_id,
                expired_at,
            } => Some(ArchiveChange::Moved {
                coupon_id,
                state: "expired",
                at: expired_at,
            }),
            // Reminders change no coupon; the other domains have no archive table yet.
            _ => None,
        }
    }
}

/// Finds coupons whose archive row disagrees with the journal (missing, extra, or in
/// another state): `(coupon_id, journal's state, archive's state)`, at most 20. The same
/// SQL on both backends.
pub(crate) const ARCHIVE_MISMATCHES_SQL: &str = "
    SELECT j.coupon_id, j.state, a.state FROM
      (SELECT coupon_id, CASE WHEN redeemed_at IS NOT NULL THEN 'redeemed'
                              WHEN expired_at IS NOT NULL THEN 'expired'
                              ELSE 'active' END AS state FROM coupons) j
      LEFT JOIN archive_coupons a ON a.coupon_id = j.coupon_id
      WHERE a.state IS NULL OR a.state <> j.state
    UNION ALL
    SELECT a.coupon_id, NULL, a.state FROM archive_coupons a
      WHERE NOT EXISTS (SELECT 1 FROM coupons k WHERE k.coupon_id = a.coupon_id)
    LIMIT 20";

/// A coupon whose archive row disagrees with the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMismatch {
    /// The coupon.
    pub coupon_id: String,
    /// Its state by the journal (`None`: the journal never issued it).
    pub journal_state: Option<String>,
    /// Its state in the archive (`None`: no row).
    pub archive_state: Option<String>,
}

impl From<(String, Option<String>, Option<String>)> for ArchiveMismatch {
    /// From the columns of [`ARCHIVE_MISMATCHES_SQL`].
    fn from(
        (coupon_id, journal_state, archive_state): (String, Option<String>, Option<String>),
    ) -> Self {
        ArchiveMismatch {
            coupon_id,
            journal_state,
            archive_state,
        }
    }
}

/// A timer as both backends select it (times already parsed).
pub(crate) type TimerColumns = (String, String, i64, DateTime<Utc>, String, String, String);

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
    /// Expired coupons: `(coupon_id, expired_at)`. Each must find its coupon unexpired.
    pub expiries: Vec<(&'a str, &'a DateTime<Utc>)>,
    /// Timers the batch's decisions schedule ([`Outcome::timers`]).
    pub timers: Vec<TimerRow>,
    /// Timers whose command the batch decided: `(resource_id, timer_id)`, to delete.
    pub fired_timers: Vec<(&'a str, &'a str)>,
    /// Every state-changing outcome, in log order: work for the sinks.
    pub outbox: Vec<&'a Outcome>,
}

impl<'a> Projections<'a> {
    /// Sorts the batch's outcomes into the tables they change.
    pub fn of(batch: &'a BatchCommit) -> Self {
        let mut projections = Projections::default();
        for outcome in batch.outcomes.iter().map(AsRef::as_ref) {
            if outcome.request_id.starts_with(TIMER_REQUEST_PREFIX) {
                // Fired and decided, whatever the decision: the timer has taken effect.
                projections
                    .fired_timers
                    .push((&outcome.resource_id, &outcome.request_id));
            }
            projections.timers.extend(
                outcome.timers().into_iter().map(|timer| {
                    TimerRow::new(outcome, timer.due_at, &timer.user_id, timer.command)
                }),
            );
            match &outcome.decision {
                Decision::CampaignCreated { spec } => projections.campaigns.push((outcome, spec)),
                Decision::CouponGranted { coupon } => projections.coupons.push((outcome, coupon)),
                Decision::CouponRedeemed {
                    coupon_id,
                    redeemed_at,
                } => projections.redeems.push((coupon_id, redeemed_at)),
                Decision::CouponExpired {
                    coupon_id,
                    expired_at,
                } => projections.expiries.push((coupon_id, expired_at)),
                Decision::Rejected { .. } => continue,
                // A reminder, or another domain's decision: the outbox is all it changes.
                _ => {}
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn due_times_round_up_to_the_stored_millisecond() {
        let whole = Utc
            .with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
            .single()
            .expect("UTC is unambiguous");
        assert_eq!(ceil_to_millis(whole), whole);
        let micros = whole + chrono::Duration::microseconds(1_001);
        assert_eq!(
            ceil_to_millis(micros),
            whole + chrono::Duration::milliseconds(2)
        );
        assert!(ceil_to_millis(micros) >= micros);
    }
}
