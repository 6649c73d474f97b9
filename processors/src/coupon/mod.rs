//! The coupon campaign: a fixed quantity of coupons, first come first served.
//!
//! The rules, as a campaign manager would state them:
//! 1. A claim before `opens_at` or at/after `closes_at` gets nothing.
//! 2. Once `capacity` coupons are issued, every later claim is sold out.
//! 3. A user holds at most `per_user_limit` coupons of the campaign.
//! 4. Otherwise the claim gets the next coupon, valid until local midnight `valid_days`
//!    days after the day of issue, in the campaign's time zone.
//! 5. A coupon is redeemed once, by its holder, before it expires.
//! 6. When its expiry timer comes due, an unredeemed coupon expires (and is archived as
//!    expired); a redeemed one stays redeemed. The day before, its holder is reminded.
//!
//! Pure: no I/O, no clock. "Now" is the command's `submitted_at`, passed in.
//!
//! Decisions come out as a [`Verdict`], a few bytes that the partition keeps per request;
//! [`CouponCampaign::coupon`] rebuilds a granted coupon in full when an outcome is needed.

pub mod validity;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use turnstile_schemas::{CampaignSpec, Coupon, Rejection};

use crate::text_table::{Absent, TextTable};

/// A decision as the partition remembers it. Everything else in the outcome (coupon id,
/// holder, expiry, spec) follows from it and the campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The campaign was created (or created again with the same spec).
    CampaignCreated,
    /// Coupon number `sequence` (1-based) was issued.
    CouponGranted {
        /// The coupon's number, the suffix of its id.
        sequence: u32,
    },
    /// Coupon number `sequence` was redeemed.
    CouponRedeemed {
        /// The coupon's number.
        sequence: u32,
    },
    /// Coupon number `sequence` expired (its expiry timer fired).
    CouponExpired {
        /// The coupon's number.
        sequence: u32,
    },
    /// The holder of coupon number `sequence` is to be reminded of its expiry.
    CouponExpiring {
        /// The coupon's number.
        sequence: u32,
    },
    /// Nothing changed, for this reason.
    Rejected(Rejection),
}

/// One campaign's state: its rules and every coupon issued so far.
#[derive(Debug, Clone)]
pub struct CouponCampaign {
    campaign_id: Box<str>,
    spec: CampaignSpec,
    time_zone: Tz,
    /// Coupon `n` (1-based, the suffix of its id) is `issued[n - 1]`.
    issued: Vec<IssuedCoupon>,
    /// Coupons held, by holder's user id: the per-user limit. `IssuedCoupon::holder`
    /// numbers an entry.
    holders: TextTable<u32>,
    /// Distinct expiry instants, in issue order; `IssuedCoupon` numbers one. A drop's
    /// coupons share a handful, so a coupon keeps 4 bytes instead of 12.
    expiries: Vec<DateTime<Utc>>,
    /// The expiry date of the last grant: a drop's grants fall on one local day, and
    /// finding that day's local midnight is the costly part of a grant.
    last_expiry_date: Option<Option<NaiveDate>>,
}

/// Coupons a new campaign makes room for at once, up to its capacity: a drop fills fast,
/// and growing its tables while it does costs more than the grants themselves.
const PREALLOCATED_COUPONS_MAX: u32 = 1 << 16;

fn preallocated_coupons(spec: &CampaignSpec) -> usize {
    spec.capacity.min(PREALLOCATED_COUPONS_MAX) as usize
}

/// What the campaign remembers of an issued coupon: enough to judge a redeem.
#[derive(Debug, Clone)]
struct IssuedCoupon {
    holder: u32,
    /// The coupon's expiry (a number in `expiries`) in the low 30 bits; the top bit is
    /// set once the coupon is redeemed, the next once it has expired.
    expiry_and_flags: u32,
}

const REDEEMED_BIT: u32 = 1 << 31;
const EXPIRED_BIT: u32 = 1 << 30;
const EXPIRY_NUMBER_MASK: u32 = EXPIRED_BIT - 1;

impl IssuedCoupon {
    fn expiry(&self) -> usize {
        (self.expiry_and_flags & EXPIRY_NUMBER_MASK) as usize
    }

    fn is_redeemed(&self) -> bool {
        self.expiry_and_flags & REDEEMED_BIT != 0
    }

    fn is_expired(&self) -> bool {
        self.expiry_and_flags & EXPIRED_BIT != 0
    }
}

impl CouponCampaign {
    /// A new, empty campaign. The spec must have passed [`CampaignSpec::validate`].
    pub fn new(campaign_id: &str, spec: CampaignSpec, time_zone: Tz) -> Self {
        let preallocated = preallocated_coupons(&spec);
        CouponCampaign {
            campaign_id: campaign_id.into(),
            spec,
            time_zone,
            issued: Vec::with_capacity(preallocated),
            holders: TextTable::with_capacity(preallocated),
            expiries: Vec::new(),
            last_expiry_date: None,
        }
    }

    /// Coupons the campaign made room for when it was created.
    pub fn preallocated_coupons(&self) -> usize {
        preallocated_coupons(&self.spec)
    }

    /// The campaign's rules.
    pub fn spec(&self) -> &CampaignSpec {
        &self.spec
    }

    /// Coupons issued so far.
    pub fn issued_count(&self) -> u32 {
        // `issued` never exceeds `capacity`, a u32 (asserted in `record_grant`).
        self.issued.len() as u32
    }

    /// Decides a claim by `user_id` at `now`.
    pub fn claim(&mut self, user_id: &str, now: DateTime<Utc>) -> Verdict {
        if self.spec.opens_at.is_some_and(|opens| now < opens) {
            return Verdict::Rejected(Rejection::NotOpenYet);
        }
        if self.spec.closes_at.is_some_and(|closes| now >= closes) {
            return Verdict::Rejected(Rejection::Closed);
        }
        if self.issued_count() >= self.spec.capacity {
            return Verdict::Rejected(Rejection::SoldOut);
        }
        let holder = self.holders.lookup(user_id);
        if holder
            .as_ref()
            .is_ok_and(|&h| *self.holders.value(h) >= self.spec.per_user_limit)
        {
            return Verdict::Rejected(Rejection::UserLimitReached);
        }
        let date = validity::expiry_date(now, self.time_zone, self.spec.valid_days);
        if self.last_expiry_date != Some(date) {
            self.last_expiry_date = Some(date);
            self.expiries
                .push(validity::expires_on(date, self.time_zone));
        }
        self.record_grant(holder, user_id)
    }

    /// Decides a redeem of `coupon_id` by `user_id` at `now`.
    pub fn redeem(&mut self, user_id: &str, coupon_id: &str, now: DateTime<Utc>) -> Verdict {
        let Some(sequence) = self.coupon_sequence(coupon_id) else {
            return Verdict::Rejected(Rejection::CouponNotFound);
        };
        let coupon = &self.issued[sequence as usize - 1];
        let rejection = if self.holders.key(coupon.holder) != user_id {
            Some(Rejection::NotCouponHolder)
        } else if coupon.is_redeemed() {
            Some(Rejection::AlreadyRedeemed)
        } else if coupon.is_expired() || now >= self.expiries[coupon.expiry()] {
            // An expiry logged before this redeem wins even if the redeem was submitted
            // earlier: log order decides (docs/exactly-once.md, rule 37).
            Some(Rejection::CouponExpired)
        } else {
            None
        };
        match rejection {
            Some(reason) => Verdict::Rejected(reason),
            None => self.record_redeem(sequence),
        }
    }

    /// Decides the expiry timer of `coupon_id`, stamped with its due time `now`.
    pub fn expire(&mut self, coupon_id: &str, now: DateTime<Utc>) -> Verdict {
        let Some(sequence) = self.coupon_sequence(coupon_id) else {
            return Verdict::Rejected(Rejection::CouponNotFound);
        };
        let coupon = &self.issued[sequence as usize - 1];
        if coupon.is_redeemed() {
            Verdict::Rejected(Rejection::AlreadyRedeemed)
        } else if coupon.is_expired() {
            Verdict::Rejected(Rejection::CouponExpired)
        } else if now < self.expiries[coupon.expiry()] {
            Verdict::Rejected(Rejection::NotDueYet)
        } else {
            self.record_expiry(sequence)
        }
    }

    /// Decides the reminder timer of `coupon_id`, stamped with its due time `now`.
    /// Changes nothing: the outcome is what the notifier acts on.
    pub fn remind_expiry(&self, coupon_id: &str, now: DateTime<Utc>) -> Verdict {
        let Some(sequence) = self.coupon_sequence(coupon_id) else {
            return Verdict::Rejected(Rejection::CouponNotFound);
        };
        let coupon = &self.issued[sequence as usize - 1];
        let expires_at = self.expiries[coupon.expiry()];
        if coupon.is_redeemed() {
            Verdict::Rejected(Rejection::AlreadyRedeemed)
        } else if coupon.is_expired() || now >= expires_at {
            Verdict::Rejected(Rejection::CouponExpired)
        } else if now < turnstile_schemas::coupon::reminder_time(expires_at) {
            Verdict::Rejected(Rejection::NotDueYet)
        } else {
            Verdict::CouponExpiring { sequence }
        }
    }

    /// Re-applies a recorded grant during recovery; grants must come in issue order.
    /// The expiry is taken as recorded, so an answer replayed later is the one first given.
    pub fn restore_grant(&mut self, coupon: &Coupon) -> Verdict {
        assert_eq!(
            self.parse_sequence(&coupon.coupon_id),
            Some(self.issued_count() + 1),
            "journal outcomes of campaign {} must restore in issue order: {} came next",
            self.campaign_id,
            coupon.coupon_id
        );
        if self.expiries.last() != Some(&coupon.expires_at) {
            self.expiries.push(coupon.expires_at);
            // The last expiry is no longer the one of the last claim's date.
            self.last_expiry_date = None;
        }
        let holder = self.holders.lookup(&coupon.user_id);
        self.record_grant(holder, &coupon.user_id)
    }

    /// Re-applies a recorded redeem during recovery.
    pub fn restore_redeem(&mut self, coupon_id: &str) -> Verdict {
        let sequence = self
            .coupon_sequence(coupon_id)
            .expect("a recorded redeem names a coupon issued before it");
        self.record_redeem(sequence)
    }

    /// Re-applies a recorded expiry during recovery, checking it against the coupon.
    pub fn restore_expiry(&mut self, coupon_id: &str, expired_at: DateTime<Utc>) -> Verdict {
        let sequence = self
            .coupon_sequence(coupon_id)
            .expect("a recorded expiry names a coupon issued before it");
        assert_eq!(
            self.expires_at(sequence),
            expired_at,
            "a recorded expiry of {coupon_id} happened at the coupon's expiry"
        );
        self.record_expiry(sequence)
    }

    /// The number of a recorded reminder's coupon, during recovery.
    pub fn restore_reminder(&self, coupon_id: &str) -> Verdict {
        let sequence = self
            .coupon_sequence(coupon_id)
            .expect("a recorded reminder names a coupon issued before it");
        Verdict::CouponExpiring { sequence }
    }

    /// When coupon number `sequence` expires.
    pub fn expires_at(&self, sequence: u32) -> DateTime<Utc> {
        self.expiries[self.issued[sequence as usize - 1].expiry()]
    }

    /// Coupon number `sequence` in full, as granted at `issued_at`.
    pub fn coupon(&self, sequence: u32, issued_at: DateTime<Utc>) -> Coupon {
        let issued = &self.issued[sequence as usize - 1];
        Coupon {
            coupon_id: self.coupon_id(sequence),
            campaign_id: self.campaign_id.to_string(),
            user_id: self.holders.key(issued.holder).to_string(),
            issued_at,
            expires_at: self.expiries[issued.expiry()],
        }
    }

    /// The id of coupon number `sequence`: `<campaign>-<n>`.
    pub fn coupon_id(&self, sequence: u32) -> String {
        format!("{}-{sequence}", self.campaign_id)
    }

    /// Bytes of memory held by the campaign's per-coupon state.
    pub fn heap_bytes(&self) -> usize {
        self.issued.capacity() * std::mem::size_of::<IssuedCoupon>()
            + self.expiries.capacity() * std::mem::size_of::<DateTime<Utc>>()
            + self.holders.heap_bytes()
    }

    /// Issues the next coupon, expiring at the last of `expiries`.
    fn record_grant(&mut self, holder: Result<u32, Absent>, user_id: &str) -> Verdict {
        assert!(
            self.issued_count() < self.spec.capacity,
            "invariant 1 (no oversell) would break: campaign {} is at capacity {}",
            self.campaign_id,
            self.spec.capacity
        );
        let holder = holder.unwrap_or_else(|absent| self.holders.insert(absent, user_id, 0));
        let held = self.holders.value_mut(holder);
        *held += 1;
        assert!(
            *held <= self.spec.per_user_limit,
            "invariant 2 (per-user limit) would break for user {user_id} in campaign {}",
            self.campaign_id
        );
        let expiry = self.expiries.len() - 1;
        assert!(
            expiry <= EXPIRY_NUMBER_MASK as usize,
            "fewer than 2^30 expiry instants"
        );
        self.issued.push(IssuedCoupon {
            holder,
            expiry_and_flags: expiry as u32,
        });
        Verdict::CouponGranted {
            sequence: self.issued_count(),
        }
    }

    fn record_redeem(&mut self, sequence: u32) -> Verdict {
        let coupon = &mut self.issued[sequence as usize - 1];
        assert!(
            !coupon.is_redeemed() && !coupon.is_expired(),
            "a coupon is redeemed at most once, and never after it expired"
        );
        coupon.expiry_and_flags |= REDEEMED_BIT;
        Verdict::CouponRedeemed { sequence }
    }

    fn record_expiry(&mut self, sequence: u32) -> Verdict {
        let coupon = &mut self.issued[sequence as usize - 1];
        assert!(
            !coupon.is_redeemed() && !coupon.is_expired(),
            "a coupon expires at most once, and never after it was redeemed"
        );
        coupon.expiry_and_flags |= EXPIRED_BIT;
        Verdict::CouponExpired { sequence }
    }

    /// The number of an issued coupon of this campaign, from its id (`<campaign>-<n>`).
    /// Only the canonical spelling names a coupon: `drop-01` or `drop-+1` is not `drop-1`
    /// (a loose parse would record a redeem of an id that was never issued).
    fn coupon_sequence(&self, coupon_id: &str) -> Option<u32> {
        let sequence = self.parse_sequence(coupon_id)?;
        (1..=self.issued_count())
            .contains(&sequence)
            .then_some(sequence)
    }

    /// The `n` of a canonically spelled `<campaign>-<n>`, issued or not.
    fn parse_sequence(&self, coupon_id: &str) -> Option<u32> {
        let digits = coupon_id
            .strip_prefix(&*self.campaign_id)?
            .strip_prefix('-')?;
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse::<u32>().ok()
    }
}
