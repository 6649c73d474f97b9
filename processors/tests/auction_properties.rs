//! Property tests of auction lots, decided by [`AuctionLot`] through `Domain::decide`,
//! `evolve` and `timers`, as the partition will.
//!
//! Each case generates one lot's log: its `create_lot` (random opening price, increment,
//! optional reserve, buy-now price, `opens_at` and seller, an anti-sniping window of 0, 1,
//! 30, 120 or 600 seconds) and then a random run of bids by four bidders and the seller
//! (below, at and above the minimum, ties with the leader's maximum, raises by the
//! leader, amounts at the reserve, at the buy-now price and over the amount limit),
//! buy-nows, retries (same request id, later time), exact duplicates, fresh repeats of an
//! earlier command (new request id), re-creates with the same and another spec, close
//! timers, and clock moves. Timers are those the model predicts (the code's are checked
//! against them): each one fires stamped with its due time as the scheduler writes it,
//! with the current time as a hand-written record might be, or a second early; close
//! commands for ends that were never scheduled fire as well. The clock walks both ways by
//! seconds (through the anti-sniping window), minutes and hours, and jumps onto the
//! current end, the window's edge, `opens_at` and every scheduled end, nudged by a
//! millisecond or a second either way. At the end of the stream every scheduled timer
//! fires at its due time, in due order, as a scheduler that caught up would.
//!
//! The driver stands in for the partition: a request id decided before gets its first
//! decision back and changes nothing; otherwise `decide`, `evolve` on success, `timers`.
//!
//! | test | invariant |
//! |---|---|
//! | `decisions_match_reference_model` | every decision, and every timer scheduled, equals what an independent model (`Model`, which keeps every valid bid and recomputes the standing from scratch) predicts |
//! | `winner_is_the_highest_valid_bid` | from the decisions alone: the leader is the highest maximum, earliest on ties; the price is at least the opening price, never above the leader's maximum, at least the reserve when sold |
//! | `end_moves_only_by_the_rule` | the end only moves later, by exactly `extension_seconds`, on a bid accepted in the last `extension_seconds` before the end; rejected bids never move it |
//! | `closes_exactly_once_and_nothing_after` | nothing is accepted after the close; the lot closes at most once, by the close for its current end at or after it, or by a buy-now before it; and after the drain it is closed unless its last close was swallowed by an early hand-written firing |
//! | `one_decision_per_request` | retries and duplicates get the first decision back and change nothing |
//! | `replay_is_byte_identical` | the same stream gives byte-identical decisions and equal timers |
//! | `restore_then_continue_equals_uninterrupted` | a lot rebuilt by create + evolve over the recorded decisions (through their JSON) decides the rest of the stream as the original does |
//! | `generator_exercises_every_rule` | none: guards the others against being vacuous |
//! | `sniping_extends_repeatedly_and_only_the_last_close_counts` | a fixed scenario: bids in the last seconds extend again and again, stale closes are rejected, the lot closes at the last end |
//!
//! Failing cases are not persisted (`failure_persistence: None`); proptest prints the
//! shrunk stream, one line per record.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use turnstile_processors::auction::AuctionLot;
use turnstile_processors::domain::Domain;
use turnstile_schemas::auction::{
    AuctionCommand, LotSpec, UnsoldReason, AMOUNT_MINOR_MAX, LOT_TIMER_USER_ID,
};
use turnstile_schemas::{Command, Decision, Rejection, ScheduledTimer};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

const LOT: &str = "lamp";
/// Bidders: few, so that the same people outbid each other and raise their own maximum.
const BIDDERS: usize = 4;
/// The seller, when the spec names one; also bids now and then.
const SELLER: &str = "seller";
/// Longest run of commands after the create.
const OPS_MAX: usize = 90;
/// Anti-sniping windows tried, in seconds (0: off).
const EXTENSIONS: [u32; 5] = [0, 1, 30, 120, 600];
/// Lot ends (before extensions): an ordinary day, new year's eve, a leap day.
const ENDS: [&str; 3] = [
    "2026-06-15T12:00:00Z",
    "2026-12-31T23:59:59Z",
    "2028-02-29T08:30:00Z",
];

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn bidder(index: usize) -> String {
    format!("u{index}")
}

fn rejected(reason: Rejection) -> Decision {
    Decision::Rejected { reason }
}

fn close_request_id(command: &AuctionCommand) -> String {
    let (kind, subject) = command.timer().unwrap();
    format!("timer:{kind}:{subject}")
}

fn json(decision: &Decision) -> Vec<u8> {
    serde_json::to_vec(decision).unwrap()
}

// ---------------------------------------------------------------------------------------
// Records, and the driver that stands in for the partition
// ---------------------------------------------------------------------------------------

/// The timers a decision scheduled: (due time, user, command).
type Scheduled = Vec<(DateTime<Utc>, String, AuctionCommand)>;
/// What the model predicts for a record: the decision, whether it is new, its timers.
type Predicted = (Decision, bool, Scheduled);

/// One log record of the lot.
#[derive(Debug, Clone, PartialEq)]
struct Record {
    request_id: String,
    user: String,
    command: AuctionCommand,
    at: DateTime<Utc>,
}

/// What one record got.
#[derive(Debug, Clone, PartialEq)]
struct Applied {
    decision: Decision,
    /// False for a request decided before: nothing changed.
    is_new: bool,
    /// The timers the decision scheduled (none for a repeat).
    timers: Scheduled,
    /// The lot's end and whether it is closed, after the record.
    ends_at_after: DateTime<Utc>,
    closed_after: bool,
}

fn flatten(timers: Vec<ScheduledTimer>) -> Scheduled {
    timers
        .into_iter()
        .map(|t| match t.command {
            Command::Auction(command) => (t.due_at, t.user_id, command),
            other => panic!("a lot schedules only its own timers: {other:?}"),
        })
        .collect()
}

/// The partition's part: one decision per request id, decide + evolve + timers.
#[derive(Debug, Clone)]
struct Driver {
    lot: AuctionLot,
    decided: BTreeMap<String, Decision>,
    /// What a journal holds: every new decision with its request and user, in log order.
    journal: Vec<(String, String, Decision)>,
}

impl Driver {
    /// Decides the create (record 0) as the partition does: `Domain::create`.
    fn create(record: &Record) -> (Driver, Applied) {
        let AuctionCommand::CreateLot { spec } = &record.command else {
            panic!("a stream starts with its create");
        };
        let lot = AuctionLot::create(LOT, spec).unwrap();
        let decision = AuctionLot::created(spec);
        let timers = flatten(decision.timers(&record.user));
        let applied = Applied {
            decision: decision.clone(),
            is_new: true,
            timers,
            ends_at_after: lot.ends_at(),
            closed_after: lot.is_closed(),
        };
        let mut driver = Driver {
            lot,
            decided: BTreeMap::new(),
            journal: Vec::new(),
        };
        driver.record(record, decision);
        (driver, applied)
    }

    /// Rebuilds a driver from journal entries (through their JSON bytes): create from the
    /// first, evolve over the rest.
    fn restore(journal: &[(String, String, Decision)]) -> Driver {
        let stored: Vec<(String, String, Decision)> = journal
            .iter()
            .map(|(r, u, d)| {
                (
                    r.clone(),
                    u.clone(),
                    serde_json::from_slice(&json(d)).unwrap(),
                )
            })
            .collect();
        let spec = AuctionLot::created_spec(&stored[0].2).unwrap();
        let mut driver = Driver {
            lot: AuctionLot::create(LOT, spec).unwrap(),
            decided: BTreeMap::new(),
            journal: Vec::new(),
        };
        for (i, (request_id, user, decision)) in stored.into_iter().enumerate() {
            // Entry 0 is the creation, which `create` did.
            if i > 0 {
                driver.lot.evolve(&user, &decision);
            }
            driver.decided.insert(request_id.clone(), decision.clone());
            driver.journal.push((request_id, user, decision));
        }
        driver
    }

    fn record(&mut self, record: &Record, decision: Decision) {
        self.decided
            .insert(record.request_id.clone(), decision.clone());
        self.journal
            .push((record.request_id.clone(), record.user.clone(), decision));
    }

    fn apply(&mut self, record: &Record) -> Applied {
        let (decision, is_new, timers) = match self.decided.get(&record.request_id) {
            Some(first) => (first.clone(), false, Vec::new()),
            None => {
                let decision = match self.lot.decide(&record.user, &record.command, record.at) {
                    Ok(decision) => {
                        self.lot.evolve(&record.user, &decision);
                        decision
                    }
                    Err(reason) => rejected(reason),
                };
                let timers = flatten(decision.timers(&record.user));
                self.record(record, decision.clone());
                (decision, true, timers)
            }
        };
        Applied {
            decision,
            is_new,
            timers,
            ends_at_after: self.lot.ends_at(),
            closed_after: self.lot.is_closed(),
        }
    }
}

fn run(stream: &Stream) -> (Driver, Vec<Applied>) {
    let (mut driver, created) = Driver::create(&stream.records[0]);
    let mut applied = vec![created];
    applied.extend(stream.records[1..].iter().map(|r| driver.apply(r)));
    (driver, applied)
}

// ---------------------------------------------------------------------------------------
// The reference model: the rules, written as plainly as possible
// ---------------------------------------------------------------------------------------

/// An independent statement of the lot rules. It keeps every valid bid and recomputes the
/// leader, runner-up and price from the whole list each time.
#[derive(Debug, Clone)]
struct Model {
    spec: LotSpec,
    end: DateTime<Utc>,
    /// Every accepted bid, in log order: (bidder, maximum).
    bids: Vec<(String, u64)>,
    closed: bool,
    /// Every end a close timer was set for, in the order they were set.
    scheduled: Vec<DateTime<Utc>>,
    decided: BTreeMap<String, Decision>,
}

impl Model {
    fn new(spec: &LotSpec) -> Model {
        Model {
            spec: spec.clone(),
            end: spec.ends_at,
            bids: Vec::new(),
            closed: false,
            scheduled: Vec::new(),
            decided: BTreeMap::new(),
        }
    }

    /// The highest maximum; the earliest of equal ones.
    fn leader(&self) -> Option<(String, u64)> {
        let mut best: Option<&(String, u64)> = None;
        for bid in &self.bids {
            if best.is_none_or(|b| bid.1 > b.1) {
                best = Some(bid);
            }
        }
        best.cloned()
    }

    /// The highest maximum of anyone but the leader.
    fn runner_up(&self) -> Option<u64> {
        let (leader, _) = self.leader()?;
        self.bids
            .iter()
            .filter(|(who, _)| *who != leader)
            .map(|(_, max)| *max)
            .max()
    }

    fn price(&self) -> Option<u64> {
        let (_, leader_max) = self.leader()?;
        let mut wanted = self.spec.opening_price;
        if let Some(runner_up) = self.runner_up() {
            wanted = wanted.max(runner_up + self.spec.increment);
        }
        if let Some(reserve) = self.spec.reserve_price {
            if leader_max >= reserve {
                wanted = wanted.max(reserve);
            }
        }
        Some(wanted.min(leader_max))
    }

    fn min_bid(&self, who: &str) -> u64 {
        match self.leader() {
            None => self.spec.opening_price,
            Some((leader, max)) if leader == who => max + 1,
            Some(_) => self.price().unwrap() + self.spec.increment,
        }
    }

    fn buy_now_available(&self) -> bool {
        match self.spec.buy_now_price {
            None => false,
            Some(price) => self.leader().is_none_or(|(_, max)| max < price),
        }
    }

    fn not_biddable(&self, who: &str, now: DateTime<Utc>) -> Option<Rejection> {
        if self.spec.seller_id.as_deref() == Some(who) {
            return Some(Rejection::SellerCannotBid);
        }
        if self.closed || now >= self.end {
            return Some(Rejection::Closed);
        }
        if self.spec.opens_at.is_some_and(|opens| now < opens) {
            return Some(Rejection::NotOpenYet);
        }
        None
    }

    /// The decision and the timers `record` gets, and whether it is new.
    fn apply(&mut self, record: &Record) -> Predicted {
        if let Some(first) = self.decided.get(&record.request_id) {
            return (first.clone(), false, Vec::new());
        }
        let now = record.at;
        let who = record.user.as_str();
        let mut timers = Vec::new();
        let decision = match &record.command {
            AuctionCommand::CreateLot { spec } if self.decided.is_empty() => {
                self.scheduled.push(spec.ends_at);
                timers.push(self.close_timer(spec.ends_at));
                Decision::LotCreated { spec: spec.clone() }
            }
            AuctionCommand::CreateLot { spec } if *spec == self.spec => {
                timers.push(self.close_timer(spec.ends_at));
                Decision::LotCreated { spec: spec.clone() }
            }
            AuctionCommand::CreateLot { .. } => rejected(Rejection::ResourceExists),
            AuctionCommand::Bid { max_amount } => {
                if let Some(reason) = self.not_biddable(who, now) {
                    rejected(reason)
                } else if *max_amount > AMOUNT_MINOR_MAX {
                    rejected(Rejection::BidAboveLimit)
                } else if *max_amount < self.min_bid(who) {
                    rejected(Rejection::BidBelowMinimum)
                } else {
                    let before = self.leader().map(|(leader, _)| leader);
                    self.bids.push((who.to_string(), *max_amount));
                    let (leader, _) = self.leader().unwrap();
                    let n = i64::from(self.spec.extension_seconds);
                    let extended = n > 0 && self.end - now <= Duration::seconds(n);
                    if extended {
                        self.end += Duration::seconds(n);
                        self.scheduled.push(self.end);
                        timers.push(self.close_timer(self.end));
                    }
                    Decision::BidAccepted {
                        bid_id: format!("{LOT}-b{}", self.bids.len()),
                        bidder: who.to_string(),
                        max_amount: *max_amount,
                        price: self.price().unwrap(),
                        outbid: before.filter(|b| *b != leader),
                        leader,
                        ends_at: self.end,
                        extended,
                    }
                }
            }
            AuctionCommand::BuyNow => {
                if let Some(reason) = self.not_biddable(who, now) {
                    rejected(reason)
                } else if !self.buy_now_available() {
                    rejected(Rejection::BuyNowUnavailable)
                } else {
                    self.closed = true;
                    Decision::LotSold {
                        winner: who.to_string(),
                        price: self.spec.buy_now_price.unwrap(),
                        by_buy_now: true,
                        closed_at: now,
                    }
                }
            }
            AuctionCommand::CloseLot { ends_at } => {
                if self.closed {
                    rejected(Rejection::LotAlreadyClosed)
                } else if *ends_at != self.end || now < self.end {
                    rejected(Rejection::NotDueYet)
                } else {
                    self.closed = true;
                    match self.leader() {
                        None => Decision::LotClosedUnsold {
                            reason: UnsoldReason::NoBids,
                            highest_bidder: None,
                            highest_bid: None,
                            closed_at: now,
                        },
                        Some((leader, max)) if self.spec.reserve_price.is_some_and(|r| max < r) => {
                            Decision::LotClosedUnsold {
                                reason: UnsoldReason::ReserveNotMet,
                                highest_bidder: Some(leader),
                                highest_bid: Some(max),
                                closed_at: now,
                            }
                        }
                        Some((leader, _)) => Decision::LotSold {
                            winner: leader,
                            price: self.price().unwrap(),
                            by_buy_now: false,
                            closed_at: now,
                        },
                    }
                }
            }
        };
        self.decided
            .insert(record.request_id.clone(), decision.clone());
        (decision, true, timers)
    }

    fn close_timer(&self, end: DateTime<Utc>) -> (DateTime<Utc>, String, AuctionCommand) {
        (
            end,
            LOT_TIMER_USER_ID.to_string(),
            AuctionCommand::CloseLot { ends_at: end },
        )
    }

    /// Instants worth jumping to: the window's edges and every end.
    fn instants(&self) -> Vec<DateTime<Utc>> {
        let window = Duration::seconds(i64::from(self.spec.extension_seconds));
        let mut instants = vec![self.spec.ends_at, self.end, self.end - window];
        instants.extend(self.spec.opens_at);
        instants.extend(self.scheduled.iter().copied());
        instants
    }
}

// ---------------------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------------------

/// The random part of a spec.
#[derive(Debug, Clone)]
struct LotGen {
    end: usize,
    opens_hours_before: Option<i64>,
    opening_price: u64,
    increment: u64,
    reserve_increments: Option<u64>,
    buy_now_increments: Option<u64>,
    extension: usize,
    with_seller: bool,
}

impl LotGen {
    fn spec(&self) -> LotSpec {
        let ends_at = utc(ENDS[self.end]);
        let reserve_price = self
            .reserve_increments
            .map(|k| self.opening_price + k * self.increment);
        let floor = reserve_price.unwrap_or(self.opening_price);
        LotSpec {
            locale: None,
            title: "Lamp".into(),
            seller_id: self.with_seller.then(|| SELLER.to_string()),
            opens_at: self
                .opens_hours_before
                .map(|h| ends_at - Duration::hours(h)),
            ends_at,
            opening_price: self.opening_price,
            increment: self.increment,
            reserve_price,
            buy_now_price: self.buy_now_increments.map(|k| floor + k * self.increment),
            extension_seconds: EXTENSIONS[self.extension],
            currency: "EUR".into(),
        }
    }
}

fn lot_gen() -> impl Strategy<Value = LotGen> {
    (
        0..ENDS.len(),
        proptest::option::of(1..=6_i64),
        prop_oneof![Just(1_u64), 1..=2_000_u64],
        prop_oneof![Just(1_u64), 1..=500_u64],
        proptest::option::of(0..=12_u64),
        proptest::option::of(0..=20_u64),
        prop_oneof![1 => Just(0_usize), 1 => Just(1), 2 => Just(2), 3 => Just(3), 1 => Just(4)],
        any::<bool>(),
    )
        .prop_map(
            |(end, opens, opening_price, increment, reserve, buy_now, extension, with_seller)| {
                LotGen {
                    end,
                    opens_hours_before: opens,
                    opening_price,
                    increment,
                    reserve_increments: reserve,
                    buy_now_increments: buy_now,
                    extension,
                    with_seller,
                }
            },
        )
}

/// How a bid's amount is chosen, relative to the lot's standing when it is made.
#[derive(Debug, Clone, Copy)]
enum Amount {
    /// One minor unit below the bidder's minimum.
    BelowMin,
    AtMin,
    /// The minimum plus `k` increments plus `jitter` (below one increment).
    AboveMin {
        k: u64,
        jitter: u64,
    },
    /// The leader's maximum (a tie; the minimum when there is no leader).
    TieLeader,
    /// At the reserve, one below or one above.
    Reserve(i8),
    /// At the buy-now price, one below or one above.
    BuyNow(i8),
    /// `AMOUNT_MINOR_MAX`, one above it, or u64::MAX.
    Huge(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Bid {
        user: usize,
        amount: Amount,
    },
    /// The leader raises their own maximum (by `k` units: 0 is not a raise).
    Raise {
        k: u64,
    },
    SellerBid,
    BuyNow {
        user: usize,
    },
    SellerBuyNow,
    /// An earlier request again: same id, user and command, at the current time.
    Retry(Index),
    /// An earlier record delivered again, byte for byte.
    Duplicate(Index),
    /// An earlier command again as a fresh request (new id), at the current time.
    Repeat(Index),
    /// Create again: same spec or (`other`) another one.
    Recreate {
        other: bool,
    },
    /// A scheduled close fires: at its due time once the clock reached it (`when` 0), at
    /// the current time (1), a second early (2), or at its due time whatever the clock (3).
    FireTimer {
        pick: Index,
        when: u8,
    },
    /// A close for an end that was never scheduled.
    BogusClose {
        kind: u8,
    },
    Tick(i64),
    /// Jump onto an instant of interest, nudged by this many milliseconds.
    JumpTo {
        target: Index,
        nudge_ms: i64,
    },
}

fn amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        2 => Just(Amount::BelowMin),
        3 => Just(Amount::AtMin),
        5 => (0..5_u64, 0..1_000_u64).prop_map(|(k, jitter)| Amount::AboveMin { k, jitter }),
        1 => Just(Amount::TieLeader),
        2 => (-1..=1_i8).prop_map(Amount::Reserve),
        1 => (-1..=1_i8).prop_map(Amount::BuyNow),
        1 => (0..3_u8).prop_map(Amount::Huge),
    ]
}

fn clock_step_ms() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => -2_000..=2_000_i64,                       // a second or two either way
        4 => (-90..=90_i64).prop_map(|s| s * 1_000),     // through the window
        2 => (-20..=20_i64).prop_map(|m| m * 60_000),     // minutes
        1 => (-3..=2_i64).prop_map(|h| h * 3_600_000),    // hours
    ]
}

/// `Op::FireTimer::when`: mostly on time.
fn fire_when() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(0_u8), 1 => Just(1), 1 => Just(2), 1 => Just(3)]
}

/// `Op::JumpTo::nudge_ms`: onto the instant, or a millisecond or a second beside it.
fn nudge_ms() -> impl Strategy<Value = i64> {
    prop_oneof![Just(-1_000_i64), Just(-1), Just(0), Just(1), Just(1_000)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        24 => (0..BIDDERS, amount()).prop_map(|(user, amount)| Op::Bid { user, amount }),
        2 => (0..3_u64).prop_map(|k| Op::Raise { k }),
        1 => Just(Op::SellerBid),
        2 => (0..BIDDERS).prop_map(|user| Op::BuyNow { user }),
        1 => Just(Op::SellerBuyNow),
        2 => any::<Index>().prop_map(Op::Retry),
        2 => any::<Index>().prop_map(Op::Duplicate),
        2 => any::<Index>().prop_map(Op::Repeat),
        1 => any::<bool>().prop_map(|other| Op::Recreate { other }),
        1 => (any::<Index>(), fire_when())
            .prop_map(|(pick, when)| Op::FireTimer { pick, when }),
        1 => (0..3_u8).prop_map(|kind| Op::BogusClose { kind }),
        10 => clock_step_ms().prop_map(Op::Tick),
        3 => (any::<Index>(), nudge_ms())
            .prop_map(|(target, nudge_ms)| Op::JumpTo { target, nudge_ms }),
    ]
}

/// A generated log for one lot, with the model's prediction for each record.
#[derive(Clone)]
struct Stream {
    spec: LotSpec,
    records: Vec<Record>,
    predicted: Vec<Predicted>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        writeln!(
            f,
            "Lot: opens_at={:?} ends_at={} opening={} increment={} reserve={:?} buy_now={:?} \
             extension={}s seller={:?}",
            s.opens_at.map(|t| t.to_rfc3339()),
            s.ends_at.to_rfc3339(),
            s.opening_price,
            s.increment,
            s.reserve_price,
            s.buy_now_price,
            s.extension_seconds,
            s.seller_id
        )?;
        for (i, (record, (decision, is_new, _))) in
            self.records.iter().zip(&self.predicted).enumerate()
        {
            let command = match &record.command {
                AuctionCommand::CreateLot { spec } if *spec == self.spec => "create".to_string(),
                AuctionCommand::CreateLot { .. } => "create (another spec)".to_string(),
                AuctionCommand::Bid { max_amount } => format!("bid {max_amount}"),
                AuctionCommand::BuyNow => "buy_now".to_string(),
                AuctionCommand::CloseLot { ends_at } => format!("close {}", ends_at.to_rfc3339()),
            };
            let expected = match decision {
                Decision::BidAccepted {
                    price,
                    leader,
                    ends_at,
                    extended,
                    ..
                } => format!(
                    "accepted: {leader} leads at {price}{}",
                    if *extended {
                        format!(", end -> {}", ends_at.to_rfc3339())
                    } else {
                        String::new()
                    }
                ),
                other => String::from_utf8(json(other)).unwrap(),
            };
            writeln!(
                f,
                "  #{i:<3} {} {:<7} {:<28} {command}  => model: {expected}{}",
                record.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                record.user,
                record.request_id,
                if *is_new { "" } else { " (seen before)" },
            )?;
        }
        Ok(())
    }
}

/// Realises operations into records, asking the model what stands at each step.
struct Builder {
    model: Model,
    now: DateTime<Utc>,
    records: Vec<Record>,
    predicted: Vec<Predicted>,
}

impl Builder {
    fn push(&mut self, user: &str, command: AuctionCommand) {
        let request_id = format!("r{}", self.records.len());
        self.deliver(Record {
            request_id,
            user: user.to_string(),
            command,
            at: self.now,
        });
    }

    fn deliver(&mut self, record: Record) {
        let predicted = self.model.apply(&record);
        self.records.push(record);
        self.predicted.push(predicted);
    }

    fn close(&mut self, ends_at: DateTime<Utc>, at: DateTime<Utc>) {
        let command = AuctionCommand::CloseLot { ends_at };
        self.deliver(Record {
            request_id: close_request_id(&command),
            user: LOT_TIMER_USER_ID.to_string(),
            command,
            at,
        });
    }

    fn amount(&self, user: &str, amount: Amount) -> u64 {
        let spec = &self.model.spec;
        let min = self.model.min_bid(user);
        let nudge = |base: u64, by: i8| base.saturating_add_signed(i64::from(by));
        match amount {
            Amount::BelowMin => min.saturating_sub(1),
            Amount::AtMin => min,
            Amount::AboveMin { k, jitter } => min + k * spec.increment + jitter % spec.increment,
            Amount::TieLeader => self.model.leader().map_or(min, |(_, max)| max),
            Amount::Reserve(by) => nudge(spec.reserve_price.unwrap_or(min), by),
            Amount::BuyNow(by) => nudge(spec.buy_now_price.unwrap_or(min), by),
            Amount::Huge(0) => AMOUNT_MINOR_MAX,
            Amount::Huge(1) => AMOUNT_MINOR_MAX + 1,
            Amount::Huge(_) => u64::MAX,
        }
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Bid { user, amount } => {
                let user = bidder(*user);
                let max_amount = self.amount(&user, *amount);
                self.push(&user, AuctionCommand::Bid { max_amount });
            }
            Op::Raise { k } => {
                if let Some((leader, max)) = self.model.leader() {
                    self.push(
                        &leader,
                        AuctionCommand::Bid {
                            max_amount: max + k,
                        },
                    );
                }
            }
            Op::SellerBid => {
                let max_amount = self.model.min_bid(SELLER);
                self.push(SELLER, AuctionCommand::Bid { max_amount });
            }
            Op::BuyNow { user } => self.push(&bidder(*user), AuctionCommand::BuyNow),
            Op::SellerBuyNow => self.push(SELLER, AuctionCommand::BuyNow),
            Op::Retry(pick) => {
                let mut again = self.records[pick.index(self.records.len())].clone();
                again.at = self.now;
                self.deliver(again);
            }
            Op::Duplicate(pick) => {
                let again = self.records[pick.index(self.records.len())].clone();
                self.deliver(again);
            }
            Op::Repeat(pick) => {
                let earlier = self.records[pick.index(self.records.len())].clone();
                if !earlier.command.is_timer() {
                    self.push(&earlier.user, earlier.command);
                }
            }
            Op::Recreate { other } => {
                let mut spec = self.model.spec.clone();
                if *other {
                    spec.increment += 1;
                }
                self.push(SELLER, AuctionCommand::CreateLot { spec });
            }
            Op::FireTimer { pick, when } => {
                let ends = &self.model.scheduled;
                let due = ends[pick.index(ends.len())];
                let at = match when {
                    // The scheduler fires a timer once its clock reached the due time.
                    0 if self.now >= due => due,
                    0 => return,
                    1 => self.now,
                    2 => due - Duration::seconds(1),
                    // A scheduler whose clock runs ahead of the edges'.
                    _ => due,
                };
                self.close(due, at);
            }
            Op::BogusClose { kind } => {
                let ends_at = match kind {
                    0 => self.model.end + Duration::seconds(1),
                    1 => self.model.spec.ends_at - Duration::hours(1),
                    _ => self.model.end - Duration::milliseconds(1),
                };
                self.close(ends_at, ends_at.max(self.now));
            }
            Op::Tick(ms) => self.now += Duration::milliseconds(*ms),
            Op::JumpTo { target, nudge_ms } => {
                let instants = self.model.instants();
                self.now =
                    instants[target.index(instants.len())] + Duration::milliseconds(*nudge_ms);
            }
        }
    }

    /// A scheduler that caught up: every scheduled close fires at its due time, in due
    /// order (a timer decided before is a duplicate).
    fn drain(&mut self) {
        let due: BTreeSet<DateTime<Utc>> = self.model.scheduled.iter().copied().collect();
        for end in due {
            self.close(end, end);
        }
    }
}

fn build_stream(gen: &LotGen, start_before_end_s: i64, ops: &[Op]) -> Stream {
    let spec = gen.spec();
    let mut builder = Builder {
        model: Model::new(&spec),
        now: spec.ends_at - Duration::seconds(start_before_end_s),
        records: Vec::new(),
        predicted: Vec::new(),
    };
    builder.push(SELLER, AuctionCommand::CreateLot { spec: spec.clone() });
    for op in ops {
        builder.step(op);
    }
    builder.drain();
    Stream {
        spec,
        records: builder.records,
        predicted: builder.predicted,
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        lot_gen(),
        prop_oneof![3 => 0..=700_i64, 2 => 0..=4 * 3_600_i64, 1 => -60..=60_i64],
        proptest::collection::vec(op(), 0..=OPS_MAX),
    )
        .prop_map(|(gen, start, ops)| build_stream(&gen, start, &ops))
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

fn check_against_model(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    for (i, (a, (decision, is_new, timers))) in applied.iter().zip(&stream.predicted).enumerate() {
        prop_assert_eq!(
            &a.decision,
            decision,
            "record #{} differs from the model",
            i
        );
        prop_assert_eq!(a.is_new, *is_new, "record #{}: is_new", i);
        prop_assert_eq!(&a.timers, timers, "record #{}: timers", i);
    }
    Ok(())
}

/// From the decisions alone: who leads, and what the price may be.
fn check_winner_and_price(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    let spec = &stream.spec;
    // (max, log position, bidder) of every accepted bid; the best is the highest max,
    // then the lowest position.
    let mut best: Option<(u64, usize, String)> = None;
    for (i, a) in applied.iter().enumerate().filter(|(_, a)| a.is_new) {
        match &a.decision {
            Decision::BidAccepted {
                bidder,
                max_amount,
                price,
                leader,
                outbid,
                ..
            } => {
                prop_assert_eq!(bidder, &stream.records[i].user);
                let previous = best.as_ref().map(|b| b.2.clone());
                if best.as_ref().is_none_or(|b| *max_amount > b.0) {
                    best = Some((*max_amount, i, bidder.clone()));
                }
                let (leader_max, _, expected_leader) = best.clone().unwrap();
                prop_assert_eq!(leader, &expected_leader, "#{}: the highest max leads", i);
                let displaced = previous.filter(|p| p != leader);
                prop_assert_eq!(
                    outbid,
                    &displaced,
                    "#{}: outbid names the displaced leader",
                    i
                );
                prop_assert!(
                    *price <= leader_max,
                    "#{}: price {} over the max {}",
                    i,
                    price,
                    leader_max
                );
                prop_assert!(
                    *price >= spec.opening_price,
                    "#{}: price below the opening",
                    i
                );
            }
            Decision::LotSold {
                winner,
                price,
                by_buy_now: false,
                ..
            } => {
                let (leader_max, _, leader) = best.clone().unwrap();
                prop_assert_eq!(winner, &leader, "#{}: sold to someone but the leader", i);
                prop_assert!(*price <= leader_max && *price >= spec.opening_price);
                if let Some(reserve) = spec.reserve_price {
                    prop_assert!(
                        *price >= reserve,
                        "#{}: sold at {} under the reserve {}",
                        i,
                        price,
                        reserve
                    );
                }
            }
            Decision::LotSold {
                winner,
                price,
                by_buy_now: true,
                ..
            } => {
                prop_assert_eq!(Some(*price), spec.buy_now_price);
                prop_assert!(
                    best.as_ref().is_none_or(|b| b.0 < *price),
                    "#{}: bought at a price a bid had reached",
                    i
                );
                prop_assert_eq!(winner, &stream.records[i].user);
            }
            Decision::LotClosedUnsold {
                reason,
                highest_bidder,
                highest_bid,
                ..
            } => {
                prop_assert_eq!(highest_bid, &best.as_ref().map(|b| b.0));
                prop_assert_eq!(highest_bidder, &best.as_ref().map(|b| b.2.clone()));
                let expected = match (&best, spec.reserve_price) {
                    (None, _) => Some(UnsoldReason::NoBids),
                    (Some(b), Some(reserve)) if b.0 < reserve => Some(UnsoldReason::ReserveNotMet),
                    _ => None,
                };
                prop_assert_eq!(
                    Some(*reason),
                    expected,
                    "#{}: unsold for the wrong reason",
                    i
                );
            }
            _ => {}
        }
    }
    Ok(())
}

/// The end only moves by rule 6.
fn check_end_moves(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    let window = Duration::seconds(i64::from(stream.spec.extension_seconds));
    let mut end = stream.spec.ends_at;
    for (i, (record, a)) in stream.records.iter().zip(applied).enumerate() {
        if let (
            true,
            Decision::BidAccepted {
                ends_at, extended, ..
            },
        ) = (a.is_new, &a.decision)
        {
            prop_assert!(
                record.at < end,
                "#{}: accepted at or after the end {}",
                i,
                end
            );
            let in_window = !window.is_zero() && record.at >= end - window;
            prop_assert_eq!(*extended, in_window, "#{}: extended", i);
            let expected = if in_window { end + window } else { end };
            prop_assert_eq!(*ends_at, expected, "#{}: the new end", i);
            end = expected;
        }
        prop_assert_eq!(
            a.ends_at_after,
            end,
            "#{}: the lot's end moved without an accepted bid",
            i
        );
    }
    Ok(())
}

/// Closes at most once, properly; nothing accepted after.
fn check_close(stream: &Stream, applied: &[Applied]) -> Result<(), TestCaseError> {
    let mut end = stream.spec.ends_at;
    let mut closed_at_record = None;
    for (i, (record, a)) in stream.records.iter().zip(applied).enumerate() {
        if !a.is_new {
            continue;
        }
        let closes = matches!(
            a.decision,
            Decision::LotSold { .. } | Decision::LotClosedUnsold { .. }
        );
        let accepts = closes || matches!(a.decision, Decision::BidAccepted { .. });
        if accepts {
            prop_assert!(
                closed_at_record.is_none(),
                "#{}: accepted after the close at #{:?}",
                i,
                closed_at_record
            );
        }
        if let Decision::BidAccepted { ends_at, .. } = &a.decision {
            end = *ends_at;
        }
        if closes {
            closed_at_record = Some(i);
            match (&record.command, &a.decision) {
                (
                    AuctionCommand::CloseLot { ends_at },
                    Decision::LotSold {
                        closed_at,
                        by_buy_now: false,
                        ..
                    },
                )
                | (
                    AuctionCommand::CloseLot { ends_at },
                    Decision::LotClosedUnsold { closed_at, .. },
                ) => {
                    prop_assert_eq!(*ends_at, end, "#{}: closed by a close for another end", i);
                    prop_assert!(
                        record.at >= end && *closed_at == record.at,
                        "#{}: closed before the end",
                        i
                    );
                }
                (
                    AuctionCommand::BuyNow,
                    Decision::LotSold {
                        closed_at,
                        by_buy_now: true,
                        ..
                    },
                ) => {
                    prop_assert!(
                        record.at < end && *closed_at == record.at,
                        "#{}: bought after the end",
                        i
                    );
                }
                (command, decision) => {
                    prop_assert!(
                        false,
                        "#{}: {:?} closed the lot with {:?}",
                        i,
                        command,
                        decision
                    )
                }
            }
        }
        prop_assert_eq!(
            a.closed_after,
            closed_at_record.is_some(),
            "#{}: closed state",
            i
        );
    }
    // After the drain the lot is closed, unless the close for its last end was swallowed:
    // decided first as not due (a hand-written early firing took the timer's id).
    let last_close = close_request_id(&AuctionCommand::CloseLot { ends_at: end });
    let swallowed = stream.records.iter().zip(applied).any(|(r, a)| {
        a.is_new && r.request_id == last_close && a.decision == rejected(Rejection::NotDueYet)
    });
    prop_assert!(
        closed_at_record.is_some() || swallowed,
        "the lot never closed"
    );
    Ok(())
}

fn check_one_decision_per_request(
    stream: &Stream,
    applied: &[Applied],
) -> Result<(), TestCaseError> {
    let mut first: BTreeMap<&str, &Applied> = BTreeMap::new();
    for (i, (record, a)) in stream.records.iter().zip(applied).enumerate() {
        match first.get(record.request_id.as_str()) {
            None => {
                prop_assert!(a.is_new, "#{}", i);
                first.insert(&record.request_id, a);
            }
            Some(earlier) => {
                prop_assert!(!a.is_new, "#{}", i);
                prop_assert_eq!(json(&a.decision), json(&earlier.decision), "#{}", i);
                prop_assert!(a.timers.is_empty(), "#{}: a repeat scheduled timers", i);
                let before = &applied[i - 1];
                prop_assert_eq!(
                    (a.ends_at_after, a.closed_after),
                    (before.ends_at_after, before.closed_after)
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn decisions_match_reference_model(stream in stream()) {
        let (_, applied) = run(&stream);
        check_against_model(&stream, &applied)?;
    }

    #[test]
    fn winner_is_the_highest_valid_bid(stream in stream()) {
        let (_, applied) = run(&stream);
        check_winner_and_price(&stream, &applied)?;
    }

    #[test]
    fn end_moves_only_by_the_rule(stream in stream()) {
        let (_, applied) = run(&stream);
        check_end_moves(&stream, &applied)?;
    }

    #[test]
    fn closes_exactly_once_and_nothing_after(stream in stream()) {
        let (_, applied) = run(&stream);
        check_close(&stream, &applied)?;
    }

    #[test]
    fn one_decision_per_request(stream in stream()) {
        let (_, applied) = run(&stream);
        check_one_decision_per_request(&stream, &applied)?;
    }

    #[test]
    fn replay_is_byte_identical(stream in stream()) {
        let (_, first) = run(&stream);
        let (_, second) = run(&stream);
        for (i, (a, b)) in first.iter().zip(&second).enumerate() {
            prop_assert_eq!(json(&a.decision), json(&b.decision), "record #{}", i);
            prop_assert_eq!(a, b, "record #{}", i);
        }
    }

    #[test]
    fn restore_then_continue_equals_uninterrupted(stream in stream(), cut in any::<Index>()) {
        let cut = 1 + cut.index(stream.records.len());
        let (prefix, suffix) = stream.records.split_at(cut);
        let (mut original, _) = Driver::create(&prefix[0]);
        for record in &prefix[1..] {
            original.apply(record);
        }
        let mut restored = Driver::restore(&original.journal);
        let probe = stream.spec.ends_at - Duration::seconds(1);
        prop_assert_eq!(restored.lot.view(probe), original.lot.view(probe));
        for (i, record) in suffix.iter().enumerate() {
            let expected = original.apply(record);
            let actual = restored.apply(record);
            let (actual_json, expected_json) = (json(&actual.decision), json(&expected.decision));
            prop_assert_eq!(actual_json, expected_json, "record #{}", cut + i);
            prop_assert_eq!(actual, expected, "record #{}", cut + i);
        }
        for at in [probe, original.lot.ends_at(), original.lot.ends_at() + Duration::hours(1)] {
            prop_assert_eq!(restored.lot.view(at), original.lot.view(at));
        }
    }
}

/// The streams reach every decision, rejection and boundary the properties talk about.
/// Deterministic: a fixed seed, 300 streams.
#[test]
fn generator_exercises_every_rule() {
    let mut runner = TestRunner::deterministic();
    let strategy = stream();
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let mut boundaries: BTreeMap<&str, usize> = BTreeMap::new();
    let mut count = |what: &'static str, hit: bool| {
        *boundaries.entry(what).or_default() += usize::from(hit);
    };
    for _ in 0..300 {
        let stream = strategy.new_tree(&mut runner).unwrap().current();
        let window = Duration::seconds(i64::from(stream.spec.extension_seconds));
        let mut end = stream.spec.ends_at;
        let mut extensions = 0;
        let mut previous = None;
        for (record, (decision, is_new, _)) in stream.records.iter().zip(&stream.predicted) {
            let name = match decision {
                Decision::LotSold {
                    by_buy_now: true, ..
                } => "lot_sold by buy-now".to_string(),
                Decision::LotSold { .. } => "lot_sold at the close".to_string(),
                Decision::LotClosedUnsold { reason, .. } => format!("lot_closed_unsold {reason:?}"),
                other => other.status().to_string(),
            };
            *decisions.entry(name).or_default() += 1;
            count(
                "clock went backwards",
                previous.is_some_and(|p| record.at < p),
            );
            previous = Some(record.at);
            count("retry or duplicate", !is_new);
            if !is_new {
                continue;
            }
            let is_bid = matches!(record.command, AuctionCommand::Bid { .. });
            count(
                "bid exactly at the end, closed",
                is_bid && record.at == end && *decision == rejected(Rejection::Closed),
            );
            match decision {
                Decision::BidAccepted {
                    ends_at,
                    extended,
                    outbid,
                    leader,
                    bidder,
                    ..
                } => {
                    count(
                        "accepted exactly at end - window, extended",
                        *extended && record.at == end - window,
                    );
                    count(
                        "accepted 1 ms before the window",
                        !window.is_zero() && record.at == end - window - Duration::milliseconds(1),
                    );
                    count(
                        "accepted 1 ms before the end",
                        record.at == end - Duration::milliseconds(1),
                    );
                    count("took the lead from someone", outbid.is_some());
                    count("lost at once to the leader's proxy", leader != bidder);
                    if *extended {
                        extensions += 1;
                    }
                    end = *ends_at;
                }
                Decision::Rejected {
                    reason: Rejection::BidBelowMinimum,
                } => {
                    count(
                        "rejected in the window",
                        !window.is_zero() && record.at >= end - window && record.at < end,
                    );
                }
                Decision::Rejected {
                    reason: Rejection::NotDueYet,
                } => {
                    if let AuctionCommand::CloseLot { ends_at } = record.command {
                        count(
                            "stale close for an earlier end",
                            ends_at < end && record.at >= ends_at,
                        );
                    }
                }
                Decision::LotSold {
                    by_buy_now: false,
                    closed_at,
                    price,
                    ..
                } => {
                    count(
                        "sold at exactly the reserve",
                        stream.spec.reserve_price == Some(*price),
                    );
                    count(
                        "sold at an extended end",
                        *closed_at == end && end != stream.spec.ends_at,
                    );
                    count(
                        "sold with a reserve met",
                        stream.spec.reserve_price.is_some(),
                    );
                }
                _ => {}
            }
        }
        count("two or more extensions", extensions >= 2);
    }
    let mut expected: Vec<String> = [
        "lot_created",
        "bid_accepted",
        "lot_sold at the close",
        "lot_sold by buy-now",
        "lot_closed_unsold NoBids",
        "lot_closed_unsold ReserveNotMet",
    ]
    .map(String::from)
    .to_vec();
    expected.extend(
        [
            Rejection::NotOpenYet,
            Rejection::Closed,
            Rejection::NotDueYet,
            Rejection::ResourceExists,
            Rejection::BidBelowMinimum,
            Rejection::BidAboveLimit,
            Rejection::BuyNowUnavailable,
            Rejection::SellerCannotBid,
            Rejection::LotAlreadyClosed,
        ]
        .map(|r| r.code().to_string()),
    );
    for name in &expected {
        assert!(
            decisions.get(name).copied().unwrap_or(0) >= 10,
            "{name}: {decisions:?}"
        );
    }
    for (what, hits) in &boundaries {
        assert!(
            *hits >= 3,
            "{what}: only {hits} hits in 300 streams ({boundaries:?})"
        );
    }
    assert_eq!(boundaries.len(), 14, "{boundaries:?}");
}

/// Bids in the last seconds extend the end again and again; every close set for an
/// earlier end is rejected when it fires; the lot closes once, at the last end.
#[test]
fn sniping_extends_repeatedly_and_only_the_last_close_counts() {
    let spec = LotGen {
        end: 0,
        opens_hours_before: Some(24),
        opening_price: 1_000,
        increment: 100,
        reserve_increments: None,
        buy_now_increments: None,
        extension: 3, // 120 s
        with_seller: true,
    }
    .spec();
    let end0 = spec.ends_at;
    let n = Duration::seconds(120);
    let mut builder = Builder {
        model: Model::new(&spec),
        now: end0 - Duration::hours(1),
        records: Vec::new(),
        predicted: Vec::new(),
    };
    builder.push(SELLER, AuctionCommand::CreateLot { spec: spec.clone() });
    builder.push("u0", AuctionCommand::Bid { max_amount: 1_500 });
    // Five snipes, each 3 s before the then-current end, alternating bidders.
    let mut end = end0;
    for round in 0..5_u64 {
        builder.now = end - Duration::seconds(3);
        let user = bidder(1 + (round as usize % 2));
        let max_amount = builder.model.leader().unwrap().1 + 100;
        builder.push(&user, AuctionCommand::Bid { max_amount });
        // The close for the end just replaced fires on time, and is stale.
        builder.close(end, end);
        end += n;
    }
    // A rejected bid in the last second does not extend.
    builder.now = end - Duration::seconds(1);
    builder.push("u3", AuctionCommand::Bid { max_amount: 1 });
    // The last close fires, then every earlier one again (the scheduler caught up).
    builder.close(end, end);
    builder.drain();
    let stream = Stream {
        spec,
        records: builder.records,
        predicted: builder.predicted,
    };
    let (driver, applied) = run(&stream);
    check_against_model(&stream, &applied).unwrap();
    check_end_moves(&stream, &applied).unwrap();
    check_close(&stream, &applied).unwrap();
    check_winner_and_price(&stream, &applied).unwrap();

    assert_eq!(end, end0 + n * 5);
    assert_eq!(driver.lot.ends_at(), end);
    let stale: Vec<&Applied> = applied
        .iter()
        .filter(|a| a.is_new && a.decision == rejected(Rejection::NotDueYet))
        .collect();
    assert_eq!(stale.len(), 5, "{applied:#?}");
    let extensions = applied
        .iter()
        .filter(|a| matches!(a.decision, Decision::BidAccepted { extended: true, .. }))
        .count();
    assert_eq!(extensions, 5);
    assert_eq!(
        applied.iter().filter(|a| a.timers.len() == 1).count(),
        6,
        "one close for the create and one per extension"
    );
    let closes: Vec<&Decision> = applied
        .iter()
        .filter(|a| a.is_new)
        .map(|a| &a.decision)
        .filter(|d| {
            matches!(
                d,
                Decision::LotSold { .. } | Decision::LotClosedUnsold { .. }
            )
        })
        .collect();
    assert_eq!(closes.len(), 1);
    match closes[0] {
        Decision::LotSold {
            winner,
            closed_at,
            by_buy_now: false,
            ..
        } => {
            assert_eq!(*closed_at, end);
            assert_eq!(winner, "u1", "the last snipe (round 4) was by u1");
        }
        other => panic!("{other:?}"),
    }
}
