//! Outcomes: the one decision recorded for each request id.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::auction::{AuctionCommand, LOT_TIMER_USER_ID};
use crate::coupon::{CampaignSpec, Coupon, CouponCommand};
use crate::envelope::Command;
use crate::seats::SeatsCommand;
use crate::venue::VenueCommand;

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

impl Outcome {
    /// The timer commands this outcome schedules, to be written in the same journal
    /// commit (`docs/exactly-once.md`, rule 33).
    pub fn timers(&self) -> Vec<ScheduledTimer> {
        self.decision.timers(&self.user_id)
    }
}

/// The close of a lot at `ends_at`, on behalf of the operator.
fn lot_close(ends_at: DateTime<Utc>) -> ScheduledTimer {
    ScheduledTimer {
        due_at: ends_at,
        user_id: LOT_TIMER_USER_ID.to_string(),
        command: Command::Auction(AuctionCommand::CloseLot { ends_at }),
    }
}

/// A timer an outcome schedules: `command` is written into the log at `due_at`, on the
/// outcome's resource, on behalf of `user_id`, stamped with `due_at` as its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledTimer {
    /// When the command is due.
    pub due_at: DateTime<Utc>,
    /// The user the command acts for (the coupon's holder, the hold's holder, ...).
    pub user_id: String,
    /// The timer command.
    pub command: Command,
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
    /// `SeatsCommand::CreateEvent`.
    CreateEvent,
    /// `SeatsCommand::HoldSeats`.
    HoldSeats,
    /// `SeatsCommand::HoldBest`.
    HoldBest,
    /// `SeatsCommand::ConfirmHold`.
    ConfirmHold,
    /// `SeatsCommand::ReleaseHold`.
    ReleaseHold,
    /// `SeatsCommand::LapseHold` (a timer).
    LapseHold,
    // -- Venue slots
    /// `VenueCommand::CreateVenue`.
    CreateVenue,
    /// `VenueCommand::Book`.
    Book,
    /// `VenueCommand::CancelBooking`.
    CancelBooking,
    /// `VenueCommand::JoinWaitlist`.
    JoinWaitlist,
    /// `VenueCommand::AcceptOffer`.
    AcceptOffer,
    /// `VenueCommand::DeclineOffer`.
    DeclineOffer,
    /// `VenueCommand::LapseOffer` (a timer).
    LapseOffer,
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
    /// The seated event now exists with this spec.
    EventCreated {
        /// The spec it was created with.
        spec: crate::seats::EventSpec,
    },
    /// Seats were held for the command's user (a new hold).
    SeatsHeld {
        /// The new hold, `<event>-h<n>`.
        hold_id: String,
        /// Its seats, in seat-map order.
        seat_ids: Vec<String>,
        /// When it expires: its lapse timer is due then.
        expires_at: DateTime<Utc>,
        /// What its seats cost together, in minor units.
        price_total: u64,
    },
    /// A hold's seats were bought by its holder; they stay sold.
    HoldConfirmed {
        /// The hold.
        hold_id: String,
        /// Its seats, in seat-map order.
        seat_ids: Vec<String>,
        /// What they cost together, in minor units.
        price_total: u64,
    },
    /// A hold was given up by its holder; its seats are free again.
    HoldReleased {
        /// The hold.
        hold_id: String,
        /// Its seats, now free, in seat-map order.
        seat_ids: Vec<String>,
    },
    /// A hold expired unconfirmed (its lapse timer fired); its seats are free again.
    HoldLapsed {
        /// The hold.
        hold_id: String,
        /// Its seats, now free, in seat-map order.
        seat_ids: Vec<String>,
    },

    // -- Venue slots (schemas/src/venue.rs) --------------------------------------------
    /// The venue now exists with this spec.
    VenueCreated {
        /// The spec it was created with.
        spec: crate::venue::VenueSpec,
    },
    /// A table was booked for the outcome's user.
    TableBooked {
        /// Deterministic id: `<venue>-b<n>`, numbered in booking order.
        booking_id: String,
        /// The slot (`2026-12-24T18:00`).
        slot: String,
        /// Covers booked.
        party_size: u32,
        /// When the slot starts.
        starts_at: DateTime<Utc>,
        /// When it ends.
        ends_at: DateTime<Utc>,
    },
    /// A booking was cancelled and its covers freed; `offers` are the waiting parties
    /// the freed covers were offered to, in the order made.
    BookingCancelled {
        /// The booking.
        booking_id: String,
        /// Its slot.
        slot: String,
        /// The covers freed, the booking's party size.
        party_size: u32,
        /// The offers the freed covers caused (none when nobody waiting fits them).
        offers: Vec<crate::venue::WaitlistOffer>,
    },
    /// The outcome's user joined a slot's waitlist.
    Waitlisted {
        /// Deterministic id: `<venue>-w<n>`, numbered in joining order.
        waitlist_id: String,
        /// The slot.
        slot: String,
        /// Covers wanted.
        party_size: u32,
        /// Parties waiting for the slot, this one included (1: at the head).
        position: u32,
    },
    /// An offer was accepted: its covers are now a booking of the outcome's user.
    OfferAccepted {
        /// The offer.
        offer_id: String,
        /// The booking it became (`<venue>-b<n>`).
        booking_id: String,
        /// The slot.
        slot: String,
        /// Covers booked.
        party_size: u32,
        /// When the slot starts.
        starts_at: DateTime<Utc>,
        /// When it ends.
        ends_at: DateTime<Utc>,
    },
    /// The guest declined an offer; its covers went on to `offers`.
    OfferDeclined {
        /// The offer.
        offer_id: String,
        /// Its slot.
        slot: String,
        /// The covers freed.
        party_size: u32,
        /// The offers the freed covers caused.
        offers: Vec<crate::venue::WaitlistOffer>,
    },
    /// An offer lapsed unanswered (its timer came due); its covers went on to `offers`.
    OfferLapsed {
        /// The offer.
        offer_id: String,
        /// Its slot.
        slot: String,
        /// The covers freed.
        party_size: u32,
        /// The offer's `expires_at`.
        expired_at: DateTime<Utc>,
        /// The offers the freed covers caused.
        offers: Vec<crate::venue::WaitlistOffer>,
    },

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
    /// The timer commands this decision, made for `user_id`, schedules: a pure function of
    /// the decision, so the journal, a replay and the audit agree on them
    /// (docs/domains.md, rule 7).
    pub fn timers(&self, user_id: &str) -> Vec<ScheduledTimer> {
        let timer = |due_at, command| ScheduledTimer {
            due_at,
            user_id: user_id.to_string(),
            command,
        };
        match self {
            Decision::CouponGranted { coupon } => {
                let coupon_id = || coupon.coupon_id.clone();
                let expire = CouponCommand::Expire {
                    coupon_id: coupon_id(),
                };
                let mut timers = vec![timer(coupon.expires_at, Command::Coupon(expire))];
                if let Some(due) = coupon.reminder_due() {
                    let remind = CouponCommand::RemindExpiry {
                        coupon_id: coupon_id(),
                    };
                    timers.push(timer(due, Command::Coupon(remind)));
                }
                timers
            }
            Decision::SeatsHeld {
                hold_id,
                expires_at,
                ..
            } => {
                let lapse = SeatsCommand::LapseHold {
                    hold_id: hold_id.clone(),
                };
                vec![timer(*expires_at, Command::Seats(lapse))]
            }
            Decision::BookingCancelled { offers, .. }
            | Decision::OfferDeclined { offers, .. }
            | Decision::OfferLapsed { offers, .. } => offers
                .iter()
                .map(|offer| ScheduledTimer {
                    due_at: offer.expires_at,
                    user_id: offer.user_id.clone(),
                    command: Command::Venue(VenueCommand::LapseOffer {
                        offer_id: offer.offer_id.clone(),
                    }),
                })
                .collect(),
            Decision::LotCreated { spec } => vec![lot_close(spec.ends_at)],
            Decision::BidAccepted {
                ends_at,
                extended: true,
                ..
            } => vec![lot_close(*ends_at)],
            _ => Vec::new(),
        }
    }

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
            Decision::EventCreated { .. } => "event_created",
            Decision::SeatsHeld { .. } => "seats_held",
            Decision::HoldConfirmed { .. } => "hold_confirmed",
            Decision::HoldReleased { .. } => "hold_released",
            Decision::HoldLapsed { .. } => "hold_lapsed",

            // -- Venue slots
            Decision::VenueCreated { .. } => "venue_created",
            Decision::TableBooked { .. } => "table_booked",
            Decision::BookingCancelled { .. } => "booking_cancelled",
            Decision::Waitlisted { .. } => "waitlisted",
            Decision::OfferAccepted { .. } => "offer_accepted",
            Decision::OfferDeclined { .. } => "offer_declined",
            Decision::OfferLapsed { .. } => "offer_lapsed",

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
            | Decision::EventCreated { .. }
            | Decision::SeatsHeld { .. }
            | Decision::VenueCreated { .. }
            | Decision::TableBooked { .. }
            | Decision::Waitlisted { .. }
            | Decision::OfferAccepted { .. }
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
    /// A seat id in the request names no seat of the event.
    SeatNotFound,
    /// The request names the same seat more than once.
    DuplicateSeat,
    /// A requested seat is held or sold.
    SeatUnavailable,
    /// No section with the requested id exists in the event.
    SectionNotFound,
    /// A hold must take 1 to the event's `seats_per_hold_max` seats.
    HoldSizeInvalid,
    /// Best-available found fewer free seats than asked for in any one section.
    NotEnoughSeats,
    /// The user already has as many active holds as the event allows.
    HoldLimitReached,
    /// No such hold on this event.
    HoldNotFound,
    /// The hold belongs to another user.
    NotHoldHolder,
    /// The hold was already confirmed.
    HoldAlreadyConfirmed,
    /// The hold was already released.
    HoldAlreadyReleased,
    /// The hold reached its `expires_at` (or has lapsed).
    HoldExpired,
    // -- Venue slots
    /// The slot id is not a slot of the venue: malformed, not one of its starts, or a
    /// local time the clocks skip that day.
    SlotNotFound,
    /// The slot starts at or before now.
    SlotInPast,
    /// The slot's date is more than `bookable_days_ahead` local days after today.
    SlotTooFarAhead,
    /// A party of 0.
    PartySizeZero,
    /// The party is larger than the venue's `party_size_max`.
    PartyTooLarge,
    /// The slot has no room for the party now (join its waitlist).
    SlotFull,
    /// The user already has a booking (or, for a new booking or waitlist entry, an
    /// outstanding offer) in a slot that overlaps this one.
    OverlappingBooking,
    /// The slot has room for the party now (book instead of waiting).
    SlotHasRoom,
    /// The user is already waiting for this slot.
    AlreadyWaitlisted,
    /// The slot's waitlist is as long as it may get.
    WaitlistFull,
    /// No such booking at this venue.
    BookingNotFound,
    /// The booking belongs to another user.
    NotBookingHolder,
    /// The booking was already cancelled.
    BookingAlreadyCancelled,
    /// No such offer at this venue.
    OfferNotFound,
    /// The offer is for another user.
    NotOfferGuest,
    /// The offer lapsed (or its `expires_at` has passed).
    OfferExpired,
    /// The offer was already accepted or declined.
    OfferAlreadyAnswered,
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
            Rejection::SeatNotFound => "seat_not_found",
            Rejection::DuplicateSeat => "duplicate_seat",
            Rejection::SeatUnavailable => "seat_unavailable",
            Rejection::SectionNotFound => "section_not_found",
            Rejection::HoldSizeInvalid => "hold_size_invalid",
            Rejection::NotEnoughSeats => "not_enough_seats",
            Rejection::HoldLimitReached => "hold_limit_reached",
            Rejection::HoldNotFound => "hold_not_found",
            Rejection::NotHoldHolder => "not_hold_holder",
            Rejection::HoldAlreadyConfirmed => "hold_already_confirmed",
            Rejection::HoldAlreadyReleased => "hold_already_released",
            Rejection::HoldExpired => "hold_expired",
            // -- Venue slots
            Rejection::SlotNotFound => "slot_not_found",
            Rejection::SlotInPast => "slot_in_past",
            Rejection::SlotTooFarAhead => "slot_too_far_ahead",
            Rejection::PartySizeZero => "party_size_zero",
            Rejection::PartyTooLarge => "party_too_large",
            Rejection::SlotFull => "slot_full",
            Rejection::OverlappingBooking => "overlapping_booking",
            Rejection::SlotHasRoom => "slot_has_room",
            Rejection::AlreadyWaitlisted => "already_waitlisted",
            Rejection::WaitlistFull => "waitlist_full",
            Rejection::BookingNotFound => "booking_not_found",
            Rejection::NotBookingHolder => "not_booking_holder",
            Rejection::BookingAlreadyCancelled => "booking_already_cancelled",
            Rejection::OfferNotFound => "offer_not_found",
            Rejection::NotOfferGuest => "not_offer_guest",
            Rejection::OfferExpired => "offer_expired",
            Rejection::OfferAlreadyAnswered => "offer_already_answered",
            // -- Auction lots
            Rejection::BidBelowMinimum => "bid_below_minimum",
            Rejection::BidAboveLimit => "bid_above_limit",
            Rejection::BuyNowUnavailable => "buy_now_unavailable",
            Rejection::SellerCannotBid => "seller_cannot_bid",
            Rejection::LotAlreadyClosed => "lot_already_closed",
        }
    }
}
