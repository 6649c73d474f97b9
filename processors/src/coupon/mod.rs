//! The coupon campaign: a fixed quantity of coupons, first come first served.
//!
//! The rules, as a campaign manager would state them:
//! 1. A claim before `opens_at` or at/after `closes_at` gets nothing.
//! 2. Once `capacity` coupons are issued, every later claim is sold out.
//! 3. A user holds at most `per_user_limit` coupons of the campaign.
//! 4. Otherwise the claim gets the next coupon, valid until local midnight `valid_days`
//!    days after the day of issue, in the campaign's time zone.
//! 5. A coupon is redeemed once, by its holder, before it expires.
//!
//! Pure: no I/O, no clock. "Now" is the command's `submitted_at`, passed in.

pub mod validity;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use foldhash::{HashMap, HashMapExt};
use turnstile_schemas::{CampaignSpec, Coupon, Decision, Rejection};

/// One campaign's state: its rules and every coupon issued so far.
#[derive(Debug, Clone)]
pub struct CouponCampaign {
    campaign_id: Arc<str>,
    spec: CampaignSpec,
    time_zone: Tz,
    /// Coupon `n` (1-based, the suffix of its id) is `issued[n - 1]`.
    issued: Vec<IssuedCoupon>,
    /// Coupons held per user, for the per-user limit.
    held_by_user: HashMap<Arc<str>, u32>,
}

/// What the campaign remembers of an issued coupon: enough to judge a redeem.
#[derive(Debug, Clone)]
struct IssuedCoupon {
    holder: Arc<str>,
    expires_at: DateTime<Utc>,
    redeemed: bool,
}

impl CouponCampaign {
    /// A new, empty campaign. The spec must have passed [`CampaignSpec::validate`].
    pub fn new(campaign_id: &str, spec: CampaignSpec, time_zone: Tz) -> Self {
        CouponCampaign {
            campaign_id: campaign_id.into(),
            spec,
            time_zone,
            issued: Vec::new(),
            held_by_user: HashMap::new(),
        }
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
    pub fn claim(&mut self, user_id: &str, now: DateTime<Utc>) -> Decision {
        if let Some(rejection) = self.claim_rejection(user_id, now) {
            return Decision::Rejected { reason: rejection };
        }
        let sequence = self.issued.len() + 1;
        let coupon = Coupon {
            coupon_id: format!("{}-{sequence}", self.campaign_id),
            campaign_id: self.campaign_id.to_string(),
            user_id: user_id.to_string(),
            issued_at: now,
            expires_at: validity::expires_at(now, self.time_zone, self.spec.valid_days),
        };
        self.record_grant(&coupon);
        Decision::CouponGranted { coupon }
    }

    fn claim_rejection(&self, user_id: &str, now: DateTime<Utc>) -> Option<Rejection> {
        if self.spec.opens_at.is_some_and(|opens| now < opens) {
            return Some(Rejection::NotOpenYet);
        }
        if self.spec.closes_at.is_some_and(|closes| now >= closes) {
            return Some(Rejection::Closed);
        }
        if self.issued_count() >= self.spec.capacity {
            return Some(Rejection::SoldOut);
        }
        let held = self.held_by_user.get(user_id).copied().unwrap_or(0);
        if held >= self.spec.per_user_limit {
            return Some(Rejection::UserLimitReached);
        }
        None
    }

    /// Decides a redeem of `coupon_id` by `user_id` at `now`.
    pub fn redeem(&mut self, user_id: &str, coupon_id: &str, now: DateTime<Utc>) -> Decision {
        let Some(index) = self.coupon_index(coupon_id) else {
            return Decision::Rejected {
                reason: Rejection::CouponNotFound,
            };
        };
        let coupon = &self.issued[index];
        let rejection = if &*coupon.holder != user_id {
            Some(Rejection::NotCouponHolder)
        } else if coupon.redeemed {
            Some(Rejection::AlreadyRedeemed)
        } else if now >= coupon.expires_at {
            Some(Rejection::CouponExpired)
        } else {
            None
        };
        if let Some(reason) = rejection {
            return Decision::Rejected { reason };
        }
        self.record_redeem(index);
        Decision::CouponRedeemed {
            coupon_id: coupon_id.to_string(),
            redeemed_at: now,
        }
    }

    /// Re-applies a recorded decision during recovery. Only state-changing decisions
    /// matter; they must be replayed in log order.
    pub fn restore(&mut self, decision: &Decision) {
        match decision {
            Decision::CouponGranted { coupon } => {
                let expected = format!("{}-{}", self.campaign_id, self.issued.len() + 1);
                assert_eq!(
                    coupon.coupon_id, expected,
                    "journal outcomes of a campaign must restore in issue order"
                );
                self.record_grant(coupon);
            }
            Decision::CouponRedeemed { coupon_id, .. } => {
                let index = self
                    .coupon_index(coupon_id)
                    .expect("a recorded redeem names a coupon issued before it");
                self.record_redeem(index);
            }
            Decision::CampaignCreated { .. } | Decision::Rejected { .. } => {}
        }
    }

    fn record_grant(&mut self, coupon: &Coupon) {
        assert!(
            self.issued_count() < self.spec.capacity,
            "invariant 1 (no oversell) would break: campaign {} is at capacity {}",
            self.campaign_id,
            self.spec.capacity
        );
        let holder: Arc<str> = match self.held_by_user.get_key_value(coupon.user_id.as_str()) {
            Some((existing, _)) => existing.clone(),
            None => coupon.user_id.as_str().into(),
        };
        let held = self.held_by_user.entry(holder.clone()).or_insert(0);
        *held += 1;
        assert!(
            *held <= self.spec.per_user_limit,
            "invariant 2 (per-user limit) would break for user {} in campaign {}",
            coupon.user_id,
            self.campaign_id
        );
        self.issued.push(IssuedCoupon {
            holder,
            expires_at: coupon.expires_at,
            redeemed: false,
        });
    }

    fn record_redeem(&mut self, index: usize) {
        let coupon = &mut self.issued[index];
        assert!(!coupon.redeemed, "a coupon is redeemed at most once");
        coupon.redeemed = true;
    }

    /// Index into `issued` of a coupon id of this campaign (`<campaign>-<n>`, n ≥ 1).
    /// Only the canonical spelling names a coupon: `drop-01` or `drop-+1` is not `drop-1`
    /// (a loose parse would record a redeem of an id that was never issued).
    fn coupon_index(&self, coupon_id: &str) -> Option<usize> {
        let digits = coupon_id
            .strip_prefix(&*self.campaign_id)?
            .strip_prefix('-')?;
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let sequence = digits.parse::<usize>().ok()?;
        (1..=self.issued.len())
            .contains(&sequence)
            .then(|| sequence - 1)
    }
}
