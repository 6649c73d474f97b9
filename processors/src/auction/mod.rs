//! Auction lots (used goods): bids in log order, proxy bids, anti-sniping, close.
//!
//! The rules, as an auctioneer would state them (amounts in minor units of the lot's
//! currency, "now" is the command's `submitted_at`, and the log order is the order of
//! events: a command that reaches the log later is decided later, whatever its time):
//!
//! 1. A lot is open for bids and buy-now from `opens_at` (from its creation without one)
//!    until its end, exclusive: a bid before `opens_at` is `not_open_yet`, one at or after
//!    the end is `closed`. The end starts as `ends_at` and only ever moves later (rule 6).
//! 2. Every bid is a proxy bid: its amount is the most the bidder will pay. A plain bid is
//!    a proxy bid whose maximum is the amount.
//! 3. The leader is the bidder with the highest maximum; between equal maxima the earlier
//!    bid in log order leads. The runner-up maximum is the highest maximum bid by anyone
//!    but the leader.
//! 4. The current price is what the leader needs to beat the runner-up by one increment,
//!    and never more than the leader's maximum:
//!    `price = min(leader max, max(opening price, runner-up max + increment, R))`, where
//!    `R` is the reserve price when the leader's maximum reaches it (a leader who has met
//!    the reserve pays at least the reserve) and 0 otherwise. So the price is at least the
//!    opening price, at most the leader's maximum, and at least the reserve once it is
//!    met.
//! 5. A valid bid is at least the opening price when there is no bid yet, and at least
//!    the current price plus one increment after that (`bid_below_minimum` otherwise).
//!    The leader may raise their own maximum: a leader's bid must exceed their current
//!    maximum, by any amount. No bid may exceed `AMOUNT_MINOR_MAX` (`bid_above_limit`).
//!    The seller (`seller_id`) may not bid (`seller_cannot_bid`).
//! 6. Anti-sniping: a valid bid in the last `extension_seconds` before the current end
//!    (`end - N <= now < end`) moves the end to `end + N`, and a close timer is set for
//!    the new end. A rejected bid never moves it. `extension_seconds = 0` turns this off.
//! 7. Buy-now is available while the lot is open, it has a `buy_now_price`, and no bid's
//!    maximum has reached that price (`buy_now_unavailable` otherwise): a standing bid
//!    that already offers the buy-now price must not be taken over at that price. A
//!    buy-now sells the lot at once at the buy-now price; the seller may not buy.
//! 8. The lot's close timer comes due at its end. The close for the current end, at or
//!    after it, closes the lot: sold to the leader at the current price if there is a
//!    leader and the reserve (if any) is met, otherwise unsold (`no_bids` or
//!    `reserve_not_met`, naming the highest bidder and maximum). A close for an end that
//!    is no longer the lot's (an earlier end, moved by rule 6), or before the end, is
//!    `not_due_yet` and changes nothing; a close of a closed lot is `lot_already_closed`.
//! 9. A lot closes exactly once. After it closed, every bid and buy-now is `closed`.
//!
//! Checks are made in the order the rules give them: for a bid, seller, closed, not open
//! yet, above the limit, below the minimum; for a buy-now, seller, closed, not open yet,
//! unavailable; for a close, already closed, then not due.
//!
//! Pure: no I/O, no clock, no randomness. The state is O(1) in the number of bids: the
//! leader, their maximum and the runner-up maximum are all rule 3 and 4 need.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use turnstile_schemas::auction::AuctionCommand;
use turnstile_schemas::auction::{LotSpec, LotStatus, LotView, UnsoldReason, AMOUNT_MINOR_MAX};
use turnstile_schemas::{Decision, Rejection};

use crate::domain::Domain;

/// One lot's state: its rules, its end and the standing of its bids.
#[derive(Debug, Clone)]
pub struct AuctionLot {
    lot_id: Box<str>,
    spec: LotSpec,
    /// The current end (rule 6): `spec.ends_at` plus every extension so far.
    ends_at: DateTime<Utc>,
    /// Bids accepted so far; the next bid's id is `<lot>-b<bid_count + 1>`.
    bid_count: u64,
    /// The highest maximum and who bid it (rule 3); `None` before the first bid.
    leader: Option<Leader>,
    /// The highest maximum bid by anyone but the leader (rule 3).
    runner_up_max: Option<u64>,
    /// How the lot closed, once it has.
    closed: Option<Closure>,
}

/// The leading bid.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leader {
    bidder: String,
    max_amount: u64,
}

/// How a lot closed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Closure {
    closed_at: DateTime<Utc>,
    /// The buyer and the price when sold; `None` when closed unsold.
    sale: Option<(String, u64)>,
    unsold_reason: Option<UnsoldReason>,
}

/// The standing a valid bid leads to (rules 3 and 4).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Standing {
    leader: Leader,
    runner_up_max: Option<u64>,
    price: u64,
}

impl AuctionLot {
    /// The lot's id.
    pub fn lot_id(&self) -> &str {
        &self.lot_id
    }

    /// The current end, after every extension so far.
    pub fn ends_at(&self) -> DateTime<Utc> {
        self.ends_at
    }

    /// Bids accepted so far.
    pub fn bid_count(&self) -> u64 {
        self.bid_count
    }

    /// Whether the lot has closed (sold or unsold).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// The current price (rule 4); `None` before the first bid.
    pub fn current_price(&self) -> Option<u64> {
        let leader = self.leader.as_ref()?;
        Some(proxy_price(
            &self.spec,
            leader.max_amount,
            self.runner_up_max,
        ))
    }

    /// The least a bid by `bidder` must offer now (rule 5), bidding being open.
    pub fn min_bid(&self, bidder: &str) -> u64 {
        match &self.leader {
            None => self.spec.opening_price,
            Some(leader) if leader.bidder == bidder => leader.max_amount.saturating_add(1),
            Some(_) => self
                .current_price()
                .unwrap_or(self.spec.opening_price)
                .saturating_add(self.spec.increment),
        }
    }

    /// What a lookup shows at `now` (the caller's clock: a view is not a decision).
    pub fn view(&self, now: DateTime<Utc>) -> LotView {
        let status = match &self.closed {
            Some(Closure { sale: Some(_), .. }) => LotStatus::Sold,
            Some(Closure { sale: None, .. }) => LotStatus::Unsold,
            None if self.spec.opens_at.is_some_and(|opens| now < opens) => LotStatus::Upcoming,
            None if now >= self.ends_at => LotStatus::Ending,
            None => LotStatus::Open,
        };
        let bidding = matches!(status, LotStatus::Upcoming | LotStatus::Open);
        let (leader, current_price) = match &self.closed {
            Some(Closure {
                sale: Some((winner, price)),
                ..
            }) => (Some(winner.clone()), Some(*price)),
            _ => (
                self.leader.as_ref().map(|l| l.bidder.clone()),
                self.current_price(),
            ),
        };
        let reserve_met = self.spec.reserve_price.map(|reserve| {
            status == LotStatus::Sold
                || self
                    .leader
                    .as_ref()
                    .is_some_and(|l| l.max_amount >= reserve)
        });
        LotView {
            lot_id: self.lot_id.to_string(),
            title: self.spec.title.clone(),
            currency: self.spec.currency.clone(),
            status,
            opens_at: self.spec.opens_at,
            ends_at: self.ends_at,
            extended: self.ends_at != self.spec.ends_at,
            bid_count: self.bid_count,
            current_price,
            leader,
            // Anyone's but the leader's: the leader's own minimum is their maximum + 1.
            min_next_bid: bidding.then(|| match self.current_price() {
                None => self.spec.opening_price,
                Some(price) => price.saturating_add(self.spec.increment),
            }),
            reserve_met,
            buy_now_price: self
                .buy_now_available()
                .filter(|_| status == LotStatus::Open),
            unsold_reason: self.closed.as_ref().and_then(|c| c.unsold_reason),
            closed_at: self.closed.as_ref().map(|c| c.closed_at),
        }
    }

    /// The buy-now price if no bid's maximum has reached it (rule 7), open or not.
    fn buy_now_available(&self) -> Option<u64> {
        let price = self.spec.buy_now_price?;
        let reached = self.leader.as_ref().is_some_and(|l| l.max_amount >= price);
        (!reached).then_some(price)
    }

    /// Rule 1 and 9: whether bids and buy-now are refused at `now`, and why.
    fn bidding_refusal(&self, user_id: &str, now: DateTime<Utc>) -> Option<Rejection> {
        if self.spec.seller_id.as_deref() == Some(user_id) {
            Some(Rejection::SellerCannotBid)
        } else if self.closed.is_some() || now >= self.ends_at {
            Some(Rejection::Closed)
        } else if self.spec.opens_at.is_some_and(|opens| now < opens) {
            Some(Rejection::NotOpenYet)
        } else {
            None
        }
    }

    /// The standing after a valid bid of `max_amount` by `bidder` (rules 3 and 4).
    fn standing_after(&self, bidder: &str, max_amount: u64) -> Standing {
        let (leader, runner_up_max) = match &self.leader {
            // The leader raising their own maximum: nobody else's bid changes.
            Some(leader) if leader.bidder == bidder => (
                Leader {
                    bidder: bidder.to_string(),
                    max_amount,
                },
                self.runner_up_max,
            ),
            // A higher maximum takes the lead; the old leader's maximum, the highest of
            // everyone else's, becomes the runner-up.
            Some(leader) if max_amount > leader.max_amount => (
                Leader {
                    bidder: bidder.to_string(),
                    max_amount,
                },
                Some(leader.max_amount),
            ),
            // An equal or lower maximum: the earlier, higher bid keeps the lead.
            Some(leader) => (leader.clone(), self.runner_up_max.max(Some(max_amount))),
            None => (
                Leader {
                    bidder: bidder.to_string(),
                    max_amount,
                },
                None,
            ),
        };
        let price = proxy_price(&self.spec, leader.max_amount, runner_up_max);
        Standing {
            leader,
            runner_up_max,
            price,
        }
    }

    /// Rule 6: the end after a valid bid at `now` (before the current end), and whether
    /// the bid moved it.
    fn end_after_bid(&self, now: DateTime<Utc>) -> (DateTime<Utc>, bool) {
        let window = Duration::seconds(i64::from(self.spec.extension_seconds));
        if self.spec.extension_seconds > 0 && now >= self.ends_at - window {
            let extended = self
                .ends_at
                .checked_add_signed(window)
                .expect("an end before the year 3000 extended once per accepted bid stays a date");
            (extended, true)
        } else {
            (self.ends_at, false)
        }
    }

    fn bid_id(&self, number: u64) -> String {
        format!("{}-b{number}", self.lot_id)
    }

    fn decide_bid(
        &self,
        bidder: &str,
        max_amount: u64,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        if let Some(refusal) = self.bidding_refusal(bidder, now) {
            return Err(refusal);
        }
        if max_amount > AMOUNT_MINOR_MAX {
            return Err(Rejection::BidAboveLimit);
        }
        if max_amount < self.min_bid(bidder) {
            return Err(Rejection::BidBelowMinimum);
        }
        let standing = self.standing_after(bidder, max_amount);
        let (ends_at, extended) = self.end_after_bid(now);
        let outbid = self
            .leader
            .as_ref()
            .filter(|previous| previous.bidder != standing.leader.bidder)
            .map(|previous| previous.bidder.clone());
        Ok(Decision::BidAccepted {
            bid_id: self.bid_id(self.bid_count + 1),
            bidder: bidder.to_string(),
            max_amount,
            price: standing.price,
            leader: standing.leader.bidder,
            outbid,
            ends_at,
            extended,
        })
    }

    fn decide_buy_now(&self, buyer: &str, now: DateTime<Utc>) -> Result<Decision, Rejection> {
        if let Some(refusal) = self.bidding_refusal(buyer, now) {
            return Err(refusal);
        }
        let price = self
            .buy_now_available()
            .ok_or(Rejection::BuyNowUnavailable)?;
        Ok(Decision::LotSold {
            winner: buyer.to_string(),
            price,
            by_buy_now: true,
            closed_at: now,
        })
    }

    fn decide_close(
        &self,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        if self.closed.is_some() {
            return Err(Rejection::LotAlreadyClosed);
        }
        if ends_at != self.ends_at || now < self.ends_at {
            return Err(Rejection::NotDueYet);
        }
        let Some(leader) = &self.leader else {
            return Ok(Decision::LotClosedUnsold {
                reason: UnsoldReason::NoBids,
                highest_bidder: None,
                highest_bid: None,
                closed_at: now,
            });
        };
        if self
            .spec
            .reserve_price
            .is_some_and(|reserve| leader.max_amount < reserve)
        {
            return Ok(Decision::LotClosedUnsold {
                reason: UnsoldReason::ReserveNotMet,
                highest_bidder: Some(leader.bidder.clone()),
                highest_bid: Some(leader.max_amount),
                closed_at: now,
            });
        }
        Ok(Decision::LotSold {
            winner: leader.bidder.clone(),
            price: proxy_price(&self.spec, leader.max_amount, self.runner_up_max),
            by_buy_now: false,
            closed_at: now,
        })
    }

    /// Applies an accepted bid, checking it against the rules first.
    fn evolve_bid(&mut self, decision: &Decision) {
        let Decision::BidAccepted {
            bid_id,
            bidder,
            max_amount,
            price,
            leader,
            outbid,
            ends_at,
            extended,
        } = decision
        else {
            unreachable!("evolve_bid is only called with BidAccepted");
        };
        let lot = &self.lot_id;
        assert!(
            self.closed.is_none(),
            "lot {lot}: bid {bid_id} accepted after the lot closed"
        );
        assert_eq!(
            *bid_id,
            self.bid_id(self.bid_count + 1),
            "lot {lot}: bids must be recorded in order"
        );
        assert!(
            *max_amount <= AMOUNT_MINOR_MAX && *max_amount >= self.min_bid(bidder),
            "lot {lot}: bid {bid_id} of {max_amount} by {bidder} is outside 1..={AMOUNT_MINOR_MAX} \
             or below the minimum {}",
            self.min_bid(bidder)
        );
        let standing = self.standing_after(bidder, *max_amount);
        assert!(
            standing.price == *price && standing.leader.bidder == *leader,
            "lot {lot}: bid {bid_id} records price {price} and leader {leader}, the proxy rule \
             gives {} and {}",
            standing.price,
            standing.leader.bidder
        );
        let displaced = self
            .leader
            .as_ref()
            .filter(|previous| previous.bidder != *leader)
            .map(|previous| &previous.bidder);
        assert_eq!(
            outbid.as_ref(),
            displaced,
            "lot {lot}: bid {bid_id} names the wrong outbid leader"
        );
        let window = Duration::seconds(i64::from(self.spec.extension_seconds));
        let expected_end = if *extended {
            assert!(
                self.spec.extension_seconds > 0,
                "lot {lot}: bid {bid_id} extended a lot without anti-sniping"
            );
            self.ends_at + window
        } else {
            self.ends_at
        };
        assert_eq!(
            *ends_at, expected_end,
            "lot {lot}: bid {bid_id} moves the end other than by extension_seconds"
        );
        self.bid_count += 1;
        self.leader = Some(standing.leader);
        self.runner_up_max = standing.runner_up_max;
        self.ends_at = *ends_at;
    }

    /// Applies a sale, checking it against rules 7 and 8 first.
    fn evolve_sold(
        &mut self,
        winner: &str,
        price: u64,
        by_buy_now: bool,
        closed_at: DateTime<Utc>,
    ) {
        let lot = &self.lot_id;
        assert!(self.closed.is_none(), "lot {lot} sold after it closed");
        if by_buy_now {
            assert_eq!(
                self.buy_now_available(),
                Some(price),
                "lot {lot}: bought now at {price} while buy-now was not available at that price"
            );
            assert!(
                closed_at < self.ends_at,
                "lot {lot}: bought now at {closed_at}, after its end {}",
                self.ends_at
            );
        } else {
            let leader = self
                .leader
                .as_ref()
                .expect("a lot sold at its close has a leader");
            assert!(
                leader.bidder == winner && self.current_price() == Some(price),
                "lot {lot}: sold to {winner} at {price}, but {} leads at {:?}",
                leader.bidder,
                self.current_price()
            );
            assert!(
                self.spec
                    .reserve_price
                    .is_none_or(|reserve| leader.max_amount >= reserve),
                "lot {lot}: sold although the reserve was not met"
            );
            assert!(
                closed_at >= self.ends_at,
                "lot {lot}: closed at {closed_at}, before its end {}",
                self.ends_at
            );
        }
        self.closed = Some(Closure {
            closed_at,
            sale: Some((winner.to_string(), price)),
            unsold_reason: None,
        });
    }

    /// Applies an unsold close, checking it against rule 8 first.
    fn evolve_unsold(
        &mut self,
        reason: UnsoldReason,
        highest_bidder: Option<&String>,
        highest_bid: Option<u64>,
        closed_at: DateTime<Utc>,
    ) {
        let lot = &self.lot_id;
        assert!(self.closed.is_none(), "lot {lot} closed twice");
        assert!(
            closed_at >= self.ends_at,
            "lot {lot}: closed at {closed_at}, before its end {}",
            self.ends_at
        );
        let expected_reason = match &self.leader {
            None => UnsoldReason::NoBids,
            Some(leader)
                if self
                    .spec
                    .reserve_price
                    .is_some_and(|reserve| leader.max_amount < reserve) =>
            {
                UnsoldReason::ReserveNotMet
            }
            Some(_) => panic!("lot {lot}: closed unsold although its leader met the reserve"),
        };
        assert_eq!(
            reason, expected_reason,
            "lot {lot}: unsold for the wrong reason"
        );
        assert_eq!(
            (highest_bidder, highest_bid),
            (
                self.leader.as_ref().map(|l| &l.bidder),
                self.leader.as_ref().map(|l| l.max_amount)
            ),
            "lot {lot}: the highest bid recorded at the close is not the leader's"
        );
        self.closed = Some(Closure {
            closed_at,
            sale: None,
            unsold_reason: Some(reason),
        });
    }
}

/// Rule 4: the price a leader with maximum `leader_max` pays against the runner-up.
fn proxy_price(spec: &LotSpec, leader_max: u64, runner_up_max: Option<u64>) -> u64 {
    let mut target = spec.opening_price;
    if let Some(runner_up) = runner_up_max {
        target = target.max(runner_up.saturating_add(spec.increment));
    }
    if let Some(reserve) = spec.reserve_price.filter(|&r| leader_max >= r) {
        target = target.max(reserve);
    }
    target.min(leader_max)
}

impl Domain for AuctionLot {
    type Spec = LotSpec;
    type Command = AuctionCommand;

    fn create(resource_id: &str, spec: &LotSpec) -> Result<Self, String> {
        spec.validate()?;
        Ok(AuctionLot {
            lot_id: resource_id.into(),
            spec: spec.clone(),
            ends_at: spec.ends_at,
            bid_count: 0,
            leader: None,
            runner_up_max: None,
            closed: None,
        })
    }

    fn create_command_spec(command: &AuctionCommand) -> Option<&LotSpec> {
        match command {
            AuctionCommand::CreateLot { spec } => Some(spec),
            _ => None,
        }
    }

    fn created(spec: &LotSpec) -> Decision {
        Decision::LotCreated { spec: spec.clone() }
    }

    fn created_spec(decision: &Decision) -> Option<&LotSpec> {
        match decision {
            Decision::LotCreated { spec } => Some(spec),
            _ => None,
        }
    }

    fn spec(&self) -> &LotSpec {
        &self.spec
    }

    fn decide(
        &self,
        user_id: &str,
        command: &AuctionCommand,
        now: DateTime<Utc>,
    ) -> Result<Decision, Rejection> {
        match command {
            // The partition decides creates; answered here the way it answers them.
            AuctionCommand::CreateLot { spec } if *spec == self.spec => {
                Ok(Decision::LotCreated { spec: spec.clone() })
            }
            AuctionCommand::CreateLot { .. } => Err(Rejection::ResourceExists),
            AuctionCommand::Bid { max_amount } => self.decide_bid(user_id, *max_amount, now),
            AuctionCommand::BuyNow => self.decide_buy_now(user_id, now),
            AuctionCommand::CloseLot { ends_at } => self.decide_close(*ends_at, now),
        }
    }

    fn evolve(&mut self, _user_id: &str, decision: &Decision) {
        match decision {
            Decision::LotCreated { spec } => assert_eq!(
                *spec, self.spec,
                "lot {}: created again with another spec",
                self.lot_id
            ),
            Decision::BidAccepted { .. } => self.evolve_bid(decision),
            Decision::LotSold {
                winner,
                price,
                by_buy_now,
                closed_at,
            } => self.evolve_sold(winner, *price, *by_buy_now, *closed_at),
            Decision::LotClosedUnsold {
                reason,
                highest_bidder,
                highest_bid,
                closed_at,
            } => self.evolve_unsold(*reason, highest_bidder.as_ref(), *highest_bid, *closed_at),
            Decision::Rejected { .. } => {}
            other => panic!(
                "lot {}: {} is not an auction decision",
                self.lot_id,
                other.status()
            ),
        }
    }

    fn heap_bytes(&self) -> usize {
        let spec = &self.spec;
        self.lot_id.len()
            + spec.title.capacity()
            + spec.currency.capacity()
            + spec.seller_id.as_ref().map_or(0, String::capacity)
            + self.leader.as_ref().map_or(0, |l| l.bidder.capacity())
            + self
                .closed
                .as_ref()
                .and_then(|c| c.sale.as_ref())
                .map_or(0, |(winner, _)| winner.capacity())
    }
}
