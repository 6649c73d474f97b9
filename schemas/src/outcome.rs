//! Outcomes: the one decision recorded for each request id.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::coupon::{CampaignSpec, Coupon};

/// Where a record sits on the log.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub struct LogPosition {
    /// Log partition.
    pub partition: u32,
    /// Offset within the partition, dense from 0.
    pub offset: u64,
}

impl LogPosition {
    /// The outcome id sinks dedupe on: stable across replays because the log is.
    pub fn outcome_id(&self) -> String {
        format!("{}-{}", self.partition, self.offset)
    }
}

/// The decision for one request, as stored in the journal and answered to callers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    /// The request (`Idempotency-Key`) this decides.
    pub request_id: String,
    /// The resource it was decided on.
    pub resource_id: String,
    /// The user it was decided for.
    pub user_id: String,
    /// The kind of command decided; with `user_id`, what a retry must match.
    pub command: CommandKind,
    /// The log record whose processing produced this outcome (the first delivery).
    pub position: LogPosition,
    /// The command's `submitted_at`: the time the decision was made at.
    pub decided_at: DateTime<Utc>,
    /// What was decided.
    pub decision: Decision,
}

/// The kinds of command, as recorded in outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CommandKind {
    /// `CouponCommand::CreateCampaign`.
    CreateCampaign,
    /// `CouponCommand::Claim`.
    Claim,
    /// `CouponCommand::Redeem`.
    Redeem,
    /// `CouponCommand::Expire` (a timer).
    Expire,
    /// `CouponCommand::RemindExpiry` (a timer).
    RemindExpiry,
    // -- Seated events

    // -- Venue slots

    // -- Auction lots
    /// `AuctionCommand::CreateLot`.
    CreateLot,
    /// `AuctionCommand::Bid`.
    Bid,
    /// `AuctionCommand::BuyNow`.
    BuyNow,
    /// `AuctionCommand::CloseLot` (a timer).
    CloseLot,
}

/// What a processor decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Decision {
    /// The campaign now exists with this spec.
    CampaignCreated {
        /// The spec it was created with.
        spec: CampaignSpec,
    },
    /// A coupon was issued.
    CouponGranted {
        /// The coupon.
        coupon: Coupon,
    },
    /// A coupon was used.
    CouponRedeemed {
        /// The coupon that was used.
        coupon_id: String,
        /// When.
        redeemed_at: DateTime<Utc>,
    },
    /// A coupon's validity ended; it can no longer be redeemed, and the archive keeps it
    /// as expired.
    CouponExpired {
        /// The coupon.
        coupon_id: String,
        /// The instant its validity ended (its `expires_at`).
        expired_at: DateTime<Utc>,
    },
    /// A coupon's holder is to be reminded that it expires soon (it is neither redeemed nor
    /// expired). Changes no state; the notifier acts on it.
    CouponExpiring {
        /// The coupon.
        coupon_id: String,
        /// When it expires.
        expires_at: DateTime<Utc>,
    },
    // -- Seated events (schemas/src/seats.rs) ----------------------------------------

    // -- Venue slots (schemas/src/venue.rs) --------------------------------------------

    // -- Auction lots (schemas/src/auction.rs) -----------------------------------------
    /// The lot now exists with this spec; its close timer is set for `spec.ends_at`.
    LotCreated {
        /// The spec it was created with.
        spec: crate::auction::LotSpec,
    },
    /// A (proxy) bid was accepted. The price and leader are the proxy rule's result after
    /// it; a bidder who is not `leader` afterwards was at once outbid by the leader's
    /// maximum.
    BidAccepted {
        /// Deterministic id: the lot id and the bid's number among accepted bids
        /// (`<lot>-b<n>`, from 1).
        bid_id: String,
        /// Who bid (the envelope's user).
        bidder: String,
        /// The bidder's maximum, in minor units.
        max_amount: u64,
        /// The lot's current price after the bid, in minor units.
        price: u64,
        /// Who leads after the bid.
        leader: String,
        /// The previous leader, when this bid took the lead from someone else: the user to
        /// tell they were outbid.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outbid: Option<String>,
        /// The lot's end after the bid (moved by `extension_seconds` when `extended`).
        ends_at: DateTime<Utc>,
        /// Whether the bid fell in the anti-sniping window and moved the end; a new close
        /// timer is then set for `ends_at`.
        extended: bool,
    },
    /// The lot was sold and is closed: by its close timer to the leader, or by a buy-now.
    LotSold {
        /// The buyer.
        winner: String,
        /// What the buyer pays, in minor units.
        price: u64,
        /// Whether it was a buy-now (otherwise the close at the lot's end).
        by_buy_now: bool,
        /// When it closed (the buy-now's or the close timer's time).
        closed_at: DateTime<Utc>,
    },
    /// The lot's close timer closed it without a sale.
    LotClosedUnsold {
        /// Why there is no sale.
        reason: crate::auction::UnsoldReason,
        /// The leader at the close (`reserve_not_met`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        highest_bidder: Option<String>,
        /// The leader's maximum at the close, in minor units (`reserve_not_met`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        highest_bid: Option<u64>,
        /// When it closed (the close timer's time).
        closed_at: DateTime<Utc>,
    },
    /// Nothing changed, for this reason.
    Rejected {
        /// Why.
        reason: Rejection,
    },
}

impl Decision {
    /// The decision's stable name: the journal's `status` column, the `kind` of its
    /// outbox row, and for a rejection its reason's code.
    pub fn status(&self) -> &'static str {
        match self {
            Decision::CampaignCreated { .. } => "campaign_created",
            Decision::CouponGranted { .. } => "coupon_granted",
            Decision::CouponRedeemed { .. } => "coupon_redeemed",
            // Not "coupon_expired": that is the code of a rejected redeem.
            Decision::CouponExpired { .. } => "coupon_expiry",
            Decision::CouponExpiring { .. } => "coupon_expiry_reminder",
            // -- Seated events

            // -- Venue slots

            // -- Auction lots
            Decision::LotCreated { .. } => "lot_created",
            Decision::BidAccepted { .. } => "bid_accepted",
            Decision::LotSold { .. } => "lot_sold",
            Decision::LotClosedUnsold { .. } => "lot_closed_unsold",
            Decision::Rejected { reason } => reason.code(),
        }
    }

    /// Whether the decision made something new that a first answer reports as `201
    /// Created` (a campaign, a coupon, a hold, a booking, a bid); the others answer 200.
    pub fn creates_something(&self) -> bool {
        matches!(
            self,
            Decision::CampaignCreated { .. } | Decision::CouponGranted { .. } // -- other domains
                | Decision::LotCreated { .. }
                | Decision::BidAccepted { .. }
        )
    }
}

/// Why a command changed nothing. Stable machine-readable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    /// Every coupon has been issued.
    SoldOut,
    /// The user already holds as many coupons as the campaign allows.
    UserLimitReached,
    /// The campaign's `opens_at` is still ahead.
    NotOpenYet,
    /// The campaign's `closes_at` has passed.
    Closed,
    /// No campaign with this id exists.
    UnknownCampaign,
    /// A campaign with this id already exists with a different spec.
    CampaignExists,
    /// The campaign spec is invalid.
    InvalidSpec,
    /// No such coupon in this campaign.
    CouponNotFound,
    /// The coupon belongs to another user.
    NotCouponHolder,
    /// The coupon was already used.
    AlreadyRedeemed,
    /// The coupon's validity ended.
    CouponExpired,
    /// A timer command arrived before its due time (only the scheduler writes them, at
    /// their due time, so this points at a hand-written record).
    NotDueYet,
    /// No event, venue or lot with this id exists in the command's domain.
    UnknownResource,
    /// An event, venue or lot with this id already exists with a different spec.
    ResourceExists,
    // -- Seated events

    // -- Venue slots

    // -- Auction lots
    /// A bid below the least the lot accepts now: the opening price for the first bid,
    /// the current price plus the increment after it, and for the leader more than their
    /// own maximum.
    BidBelowMinimum,
    /// A bid above the largest amount accepted (`AMOUNT_MINOR_MAX`).
    BidAboveLimit,
    /// The lot has no buy-now price, or a bid's maximum has already reached it.
    BuyNowUnavailable,
    /// The lot's seller may neither bid on it nor buy it.
    SellerCannotBid,
    /// A close timer of a lot that is already closed (sold or closed unsold).
    LotAlreadyClosed,
}

impl Rejection {
    /// The stable code, as it appears in JSON.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::SoldOut => "sold_out",
            Rejection::UserLimitReached => "user_limit_reached",
            Rejection::NotOpenYet => "not_open_yet",
            Rejection::Closed => "closed",
            Rejection::UnknownCampaign => "unknown_campaign",
            Rejection::CampaignExists => "campaign_exists",
            Rejection::InvalidSpec => "invalid_spec",
            Rejection::CouponNotFound => "coupon_not_found",
            Rejection::NotCouponHolder => "not_coupon_holder",
            Rejection::AlreadyRedeemed => "already_redeemed",
            Rejection::CouponExpired => "coupon_expired",
            Rejection::NotDueYet => "not_due_yet",
            Rejection::UnknownResource => "unknown_resource",
            Rejection::ResourceExists => "resource_exists",
            // -- Seated events

            // -- Venue slots

            // -- Auction lots
            Rejection::BidBelowMinimum => "bid_below_minimum",
            Rejection::BidAboveLimit => "bid_above_limit",
            Rejection::BuyNowUnavailable => "buy_now_unavailable",
            Rejection::SellerCannotBid => "seller_cannot_bid",
            Rejection::LotAlreadyClosed => "lot_already_closed",
        }
    }
}
