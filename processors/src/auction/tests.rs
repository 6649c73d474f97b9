//! Edge cases of the lot rules, one scenario at a time.

#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use turnstile_schemas::auction::{
    AuctionCommand, LotSpec, LotStatus, UnsoldReason, AMOUNT_MINOR_MAX, LOT_TIMER_USER_ID,
};
use turnstile_schemas::{Command, Decision, Rejection};

use super::AuctionLot;
use crate::domain::Domain;

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

fn spec() -> LotSpec {
    LotSpec {
        locale: None,
        title: "Lamp".into(),
        seller_id: Some("seller".into()),
        opens_at: Some(end() - Duration::hours(24)),
        ends_at: end(),
        opening_price: 1_000,
        increment: 100,
        reserve_price: None,
        buy_now_price: None,
        extension_seconds: 120,
        currency: "EUR".into(),
    }
}

fn lot(spec: &LotSpec) -> AuctionLot {
    AuctionLot::create("lamp", spec).unwrap()
}

/// An hour before the end: open, outside the anti-sniping window.
fn mid() -> DateTime<Utc> {
    end() - Duration::hours(1)
}

/// decide + evolve, as the partition does.
fn apply(
    lot: &mut AuctionLot,
    user: &str,
    command: AuctionCommand,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    let decision = lot.decide(user, &command, now)?;
    lot.evolve(user, &decision);
    Ok(decision)
}

fn bid(
    lot: &mut AuctionLot,
    user: &str,
    max_amount: u64,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    apply(lot, user, AuctionCommand::Bid { max_amount }, now)
}

fn close(
    lot: &mut AuctionLot,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Decision, Rejection> {
    apply(
        lot,
        LOT_TIMER_USER_ID,
        AuctionCommand::CloseLot { ends_at },
        now,
    )
}

/// (price, leader, outbid) of an accepted bid.
fn standing(decision: &Decision) -> (u64, &str, Option<&str>) {
    match decision {
        Decision::BidAccepted {
            price,
            leader,
            outbid,
            ..
        } => (*price, leader.as_str(), outbid.as_deref()),
        other => panic!("not a bid: {other:?}"),
    }
}

#[test]
fn an_invalid_spec_creates_nothing() {
    let mut bad = spec();
    bad.increment = 0;
    let error = AuctionLot::create("lamp", &bad).unwrap_err();
    assert!(error.contains("increment"), "{error}");
}

#[test]
fn proxy_bidding_follows_the_runner_up_by_one_increment() {
    let mut lot = lot(&spec());
    let first = bid(&mut lot, "ann", 1_500, mid()).unwrap();
    assert_eq!(
        standing(&first),
        (1_000, "ann", None),
        "alone: the opening price"
    );
    match &first {
        Decision::BidAccepted { bid_id, .. } => assert_eq!(bid_id, "lamp-b1"),
        _ => unreachable!(),
    }
    // Below the minimum of price + increment.
    assert_eq!(
        bid(&mut lot, "bob", 1_099, mid()),
        Err(Rejection::BidBelowMinimum)
    );
    // Bob at exactly the minimum: Ann's proxy answers one increment over him.
    let second = bid(&mut lot, "bob", 1_100, mid()).unwrap();
    assert_eq!(standing(&second), (1_200, "ann", None));
    assert_eq!(
        bid(&mut lot, "bob", 1_299, mid()),
        Err(Rejection::BidBelowMinimum)
    );
    // Cid takes the lead from Ann: she is the one outbid; the price is Ann's max + 100.
    let third = bid(&mut lot, "cid", 2_000, mid()).unwrap();
    assert_eq!(standing(&third), (1_600, "cid", Some("ann")));
    // Ann ties Cid's max: the earlier bid keeps the lead, at its full maximum.
    let tie = bid(&mut lot, "ann", 2_000, mid()).unwrap();
    assert_eq!(standing(&tie), (2_000, "cid", None));
    assert_eq!(lot.min_bid("dan"), 2_100);
    // The leader raises their own maximum: it must exceed it, by any amount.
    assert_eq!(
        bid(&mut lot, "cid", 2_000, mid()),
        Err(Rejection::BidBelowMinimum)
    );
    let raise = bid(&mut lot, "cid", 2_001, mid()).unwrap();
    assert_eq!(
        standing(&raise),
        (2_001, "cid", None),
        "capped by Cid's max"
    );
    let raise = bid(&mut lot, "cid", 5_000, mid()).unwrap();
    assert_eq!(
        standing(&raise),
        (2_100, "cid", None),
        "runner-up 2000 + 100"
    );
    assert_eq!(lot.bid_count(), 6);
    let sold = close(&mut lot, end(), end()).unwrap();
    assert_eq!(
        sold,
        Decision::LotSold {
            winner: "cid".into(),
            price: 2_100,
            by_buy_now: false,
            closed_at: end()
        }
    );
}

#[test]
fn a_met_reserve_lifts_the_price_to_it() {
    let mut reserved = spec();
    reserved.reserve_price = Some(5_000);
    let mut lot = lot(&reserved);
    let low = bid(&mut lot, "ann", 3_000, mid()).unwrap();
    assert_eq!(standing(&low), (1_000, "ann", None));
    assert_eq!(lot.view(mid()).reserve_met, Some(false));
    let high = bid(&mut lot, "bob", 6_000, mid()).unwrap();
    assert_eq!(
        standing(&high),
        (5_000, "bob", Some("ann")),
        "max(3100, reserve)"
    );
    assert_eq!(lot.view(mid()).reserve_met, Some(true));
    let over = bid(&mut lot, "ann", 5_500, mid()).unwrap();
    assert_eq!(standing(&over), (5_600, "bob", None));
    match close(&mut lot, end(), end() + Duration::seconds(5)).unwrap() {
        Decision::LotSold { winner, price, .. } => {
            assert_eq!((winner.as_str(), price), ("bob", 5_600))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reserve_not_met_closes_unsold_naming_the_highest_bid() {
    let mut reserved = spec();
    reserved.reserve_price = Some(5_000);
    let mut lot = lot(&reserved);
    bid(&mut lot, "ann", 4_999, mid()).unwrap();
    let closed = close(&mut lot, end(), end()).unwrap();
    assert_eq!(
        closed,
        Decision::LotClosedUnsold {
            reason: UnsoldReason::ReserveNotMet,
            highest_bidder: Some("ann".into()),
            highest_bid: Some(4_999),
            closed_at: end(),
        }
    );
    assert_eq!(lot.view(end()).status, LotStatus::Unsold);
}

#[test]
fn no_bids_closes_unsold_once() {
    let mut lot = lot(&spec());
    assert_eq!(
        close(&mut lot, end(), end() - Duration::milliseconds(1)),
        Err(Rejection::NotDueYet)
    );
    let closed = close(&mut lot, end(), end()).unwrap();
    assert!(matches!(
        closed,
        Decision::LotClosedUnsold {
            reason: UnsoldReason::NoBids,
            highest_bidder: None,
            highest_bid: None,
            ..
        }
    ));
    assert_eq!(
        close(&mut lot, end(), end()),
        Err(Rejection::LotAlreadyClosed)
    );
    assert_eq!(
        bid(&mut lot, "ann", 2_000, mid()),
        Err(Rejection::Closed),
        "log order decides"
    );
}

#[test]
fn the_window_is_opens_at_inclusive_to_the_end_exclusive() {
    let mut lot = lot(&spec());
    let opens = spec().opens_at.unwrap();
    assert_eq!(
        bid(&mut lot, "ann", 1_000, opens - Duration::milliseconds(1)),
        Err(Rejection::NotOpenYet)
    );
    assert!(bid(&mut lot, "ann", 1_000, opens).is_ok());
    assert_eq!(
        bid(&mut lot, "bob", 5_000, end()),
        Err(Rejection::Closed),
        "the end is exclusive"
    );
    assert_eq!(lot.view(end()).status, LotStatus::Ending);
    assert_eq!(lot.view(end()).min_next_bid, None);
    assert_eq!(
        lot.view(opens - Duration::seconds(1)).status,
        LotStatus::Upcoming
    );
    assert!(bid(&mut lot, "bob", 5_000, end() - Duration::milliseconds(1)).is_ok());
}

#[test]
fn a_bid_in_the_last_seconds_extends_the_end_and_sets_a_new_close() {
    let mut lot = lot(&spec());
    let window = Duration::seconds(120);
    let outside = bid(
        &mut lot,
        "ann",
        1_000,
        end() - window - Duration::milliseconds(1),
    )
    .unwrap();
    assert!(matches!(
        outside,
        Decision::BidAccepted {
            extended: false,
            ..
        }
    ));
    assert!(outside.timers("ann").is_empty());
    // Rejected bids in the window never extend.
    assert_eq!(
        bid(&mut lot, "bob", 1_050, end() - Duration::seconds(1)),
        Err(Rejection::BidBelowMinimum)
    );
    assert_eq!(lot.ends_at(), end());
    let edge = bid(&mut lot, "bob", 1_100, end() - window).unwrap();
    let first_extension = end() + window;
    assert!(
        matches!(edge, Decision::BidAccepted { extended: true, ends_at, .. }
            if ends_at == first_extension)
    );
    let timers = edge.timers("bob");
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].due_at, first_extension);
    assert_eq!(timers[0].user_id, LOT_TIMER_USER_ID);
    assert_eq!(
        timers[0].command,
        Command::Auction(AuctionCommand::CloseLot {
            ends_at: first_extension
        })
    );
    // The old end is no longer the end: a bid there is fine, and extends again.
    let again = bid(&mut lot, "ann", 1_300, end()).unwrap();
    let second_extension = first_extension + window;
    assert!(
        matches!(again, Decision::BidAccepted { extended: true, ends_at, .. }
            if ends_at == second_extension)
    );
    // The stale closes change nothing; the due one closes.
    assert_eq!(close(&mut lot, end(), end()), Err(Rejection::NotDueYet));
    assert_eq!(
        close(&mut lot, first_extension, first_extension),
        Err(Rejection::NotDueYet)
    );
    assert_eq!(
        close(&mut lot, second_extension, first_extension),
        Err(Rejection::NotDueYet)
    );
    let never_scheduled = second_extension + Duration::seconds(1);
    assert_eq!(
        close(&mut lot, never_scheduled, never_scheduled),
        Err(Rejection::NotDueYet)
    );
    assert!(lot.view(second_extension - Duration::seconds(1)).extended);
    match close(&mut lot, second_extension, second_extension).unwrap() {
        Decision::LotSold {
            winner, closed_at, ..
        } => {
            assert_eq!((winner.as_str(), closed_at), ("ann", second_extension));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        close(&mut lot, first_extension, first_extension),
        Err(Rejection::LotAlreadyClosed)
    );
}

#[test]
fn zero_extension_seconds_never_extends() {
    let mut off = spec();
    off.extension_seconds = 0;
    let mut lot = lot(&off);
    let last = bid(&mut lot, "ann", 1_000, end() - Duration::milliseconds(1)).unwrap();
    assert!(
        matches!(last, Decision::BidAccepted { extended: false, ends_at, .. } if ends_at == end())
    );
}

#[test]
fn buy_now_until_a_maximum_reaches_its_price() {
    let mut buyable = spec();
    buyable.buy_now_price = Some(3_000);
    let mut lot = lot(&buyable);
    let buy = |lot: &mut AuctionLot, user: &str, now| apply(lot, user, AuctionCommand::BuyNow, now);
    assert_eq!(
        buy(
            &mut lot,
            "ann",
            spec().opens_at.unwrap() - Duration::seconds(1)
        ),
        Err(Rejection::NotOpenYet)
    );
    assert_eq!(
        buy(&mut lot, "seller", mid()),
        Err(Rejection::SellerCannotBid)
    );
    bid(&mut lot, "ann", 2_999, mid()).unwrap();
    assert_eq!(lot.view(mid()).buy_now_price, Some(3_000));
    let mut probe = lot.clone();
    bid(&mut probe, "bob", 3_000, mid()).unwrap();
    assert_eq!(
        buy(&mut probe, "cid", mid()),
        Err(Rejection::BuyNowUnavailable)
    );
    assert_eq!(probe.view(mid()).buy_now_price, None);
    let sold = buy(&mut lot, "cid", mid()).unwrap();
    assert_eq!(
        sold,
        Decision::LotSold {
            winner: "cid".into(),
            price: 3_000,
            by_buy_now: true,
            closed_at: mid()
        }
    );
    let view = lot.view(mid());
    assert_eq!(
        (view.status, view.leader.as_deref(), view.current_price),
        (LotStatus::Sold, Some("cid"), Some(3_000))
    );
    assert_eq!(bid(&mut lot, "ann", 9_000, mid()), Err(Rejection::Closed));
    assert_eq!(buy(&mut lot, "dan", mid()), Err(Rejection::Closed));
    assert_eq!(
        close(&mut lot, end(), end()),
        Err(Rejection::LotAlreadyClosed)
    );

    let mut plain = self::lot(&spec());
    assert_eq!(
        buy(&mut plain, "ann", mid()),
        Err(Rejection::BuyNowUnavailable)
    );
    assert_eq!(buy(&mut plain, "ann", end()), Err(Rejection::Closed));
}

#[test]
fn the_seller_may_not_bid_and_amounts_are_bounded() {
    let mut lot = lot(&spec());
    assert_eq!(
        bid(&mut lot, "seller", 5_000, mid()),
        Err(Rejection::SellerCannotBid)
    );
    assert_eq!(
        bid(&mut lot, "ann", AMOUNT_MINOR_MAX + 1, mid()),
        Err(Rejection::BidAboveLimit)
    );
    assert_eq!(
        bid(&mut lot, "ann", 999, mid()),
        Err(Rejection::BidBelowMinimum)
    );
    let top = bid(&mut lot, "ann", AMOUNT_MINOR_MAX, mid()).unwrap();
    assert_eq!(standing(&top), (1_000, "ann", None));
    assert_eq!(
        bid(&mut lot, "bob", AMOUNT_MINOR_MAX, mid()).map(|d| standing(&d).0),
        Ok(AMOUNT_MINOR_MAX)
    );
    assert_eq!(
        bid(&mut lot, "cid", AMOUNT_MINOR_MAX, mid()),
        Err(Rejection::BidBelowMinimum)
    );
}

#[test]
fn creation_schedules_the_close_and_a_repeat_create_is_idempotent() {
    let mut lot = lot(&spec());
    let created = AuctionLot::created(&spec());
    assert_eq!(AuctionLot::created_spec(&created), Some(&spec()));
    let timers = created.timers("seller");
    assert_eq!(timers.len(), 1);
    assert_eq!(
        (timers[0].due_at, &timers[0].command),
        (
            end(),
            &Command::Auction(AuctionCommand::CloseLot { ends_at: end() })
        )
    );
    let again = AuctionCommand::CreateLot { spec: spec() };
    assert_eq!(AuctionLot::create_command_spec(&again), Some(&spec()));
    assert_eq!(lot.decide("seller", &again, mid()), Ok(created.clone()));
    lot.evolve("seller", &created);
    let mut other = spec();
    other.increment = 200;
    assert_eq!(
        lot.decide("seller", &AuctionCommand::CreateLot { spec: other }, mid()),
        Err(Rejection::ResourceExists)
    );
    assert!(lot.heap_bytes() >= "lamp".len() + "Lamp".len());
}

#[test]
fn a_restored_lot_equals_the_one_that_decided() {
    let mut buyable = spec();
    buyable.reserve_price = Some(1_500);
    let mut live = lot(&buyable);
    let mut decisions = Vec::new();
    for (user, max, secs_before_end) in [
        ("ann", 1_200, 3_600),
        ("bob", 2_000, 100),
        ("ann", 1_900, 50),
        ("cid", 4_000, 10),
    ] {
        decisions.push(
            bid(
                &mut live,
                user,
                max,
                end() - Duration::seconds(secs_before_end),
            )
            .unwrap(),
        );
    }
    let mut restored = lot(&buyable);
    for decision in &decisions {
        restored.evolve("whoever", decision);
    }
    let at = live.ends_at() - Duration::seconds(1);
    assert_eq!(restored.view(at), live.view(at));
    let final_end = live.ends_at();
    assert_eq!(
        close(&mut restored, final_end, final_end),
        close(&mut live, final_end, final_end)
    );
}

#[test]
#[should_panic(expected = "bids must be recorded in order")]
fn evolve_refuses_a_bid_out_of_order() {
    let mut lot = lot(&spec());
    let first = bid(&mut lot, "ann", 1_000, mid()).unwrap();
    lot.evolve("ann", &first);
}

#[test]
#[should_panic(expected = "the proxy rule gives")]
fn evolve_refuses_a_forged_price() {
    let mut lot = lot(&spec());
    let Decision::BidAccepted {
        bid_id,
        bidder,
        max_amount,
        leader,
        outbid,
        ends_at,
        extended,
        ..
    } = lot
        .decide("ann", &AuctionCommand::Bid { max_amount: 5_000 }, mid())
        .unwrap()
    else {
        unreachable!()
    };
    let forged = Decision::BidAccepted {
        bid_id,
        bidder,
        max_amount,
        price: 4_000,
        leader,
        outbid,
        ends_at,
        extended,
    };
    lot.evolve("ann", &forged);
}

#[test]
#[should_panic(expected = "sold after it closed")]
fn evolve_refuses_a_second_close() {
    let mut lot = lot(&spec());
    bid(&mut lot, "ann", 1_000, mid()).unwrap();
    let sold = close(&mut lot, end(), end()).unwrap();
    lot.evolve(LOT_TIMER_USER_ID, &sold);
}

#[test]
#[should_panic(expected = "before its end")]
fn evolve_refuses_an_early_close() {
    let mut lot = lot(&spec());
    lot.evolve(
        LOT_TIMER_USER_ID,
        &Decision::LotClosedUnsold {
            reason: UnsoldReason::NoBids,
            highest_bidder: None,
            highest_bid: None,
            closed_at: mid(),
        },
    );
}

#[test]
#[should_panic(expected = "is not an auction decision")]
fn evolve_refuses_another_domains_decision() {
    let mut lot = lot(&spec());
    lot.evolve(
        "ann",
        &Decision::CouponRedeemed {
            coupon_id: "x-1".into(),
            redeemed_at: mid(),
        },
    );
}
