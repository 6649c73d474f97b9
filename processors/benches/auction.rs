//! Decisions per second of one auction lot's hot command, the bid: `decide` + `evolve` +
//! `timers` on one `AuctionLot`, as the partition will run them, no I/O.
//!
//! - `bids_each_takes_the_lead`: every bid is valid and outbids the leader (the proxy rule,
//!   an outbid name, a new leader string), well before the end.
//! - `bids_each_extends_the_end`: the same, each in the last seconds before the then
//!   current end, so every bid also moves the end and sets a new close timer.
//! - `bids_mostly_below_minimum`: a bidding war's tail: 9 in 10 bids are too low and are
//!   rejected, 1 in 10 takes the lead.
//!
//! Run: `cargo bench -p turnstile-processors --bench auction`

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use turnstile_processors::auction::AuctionLot;
use turnstile_processors::domain::Domain;
use turnstile_schemas::auction::{AuctionCommand, LotSpec};
use turnstile_schemas::Decision;

const BIDS: u64 = 100_000;
const BIDDERS: u64 = 1_000;
const INCREMENT: u64 = 100;
const EXTENSION_SECONDS: i64 = 120;

fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .expect("valid time")
}

fn lot() -> AuctionLot {
    let spec = LotSpec {
        locale: None,
        title: "bench".into(),
        seller_id: Some("seller".into()),
        opens_at: None,
        ends_at: end(),
        opening_price: 1_000,
        increment: INCREMENT,
        reserve_price: Some(50_000),
        buy_now_price: None,
        extension_seconds: EXTENSION_SECONDS as u32,
        currency: "EUR".into(),
    };
    AuctionLot::create("lot-1", &spec).expect("a valid spec")
}

/// (bidder, command, submitted_at) of bid `i`: `leads` says whether it outbids the
/// leader, `sniping` whether it falls in the last seconds before the then current end.
fn bid(i: u64, leads: bool, sniping: bool) -> (String, AuctionCommand, DateTime<Utc>) {
    // Maxima that each beat the previous leader by 10 increments; a losing bid offers
    // the opening price, always below the minimum after the first bid.
    let max_amount = if leads {
        1_000 + (i + 1) * 10 * INCREMENT
    } else {
        1_000
    };
    let at = if sniping {
        // Bid i comes 1 s before the end, which i earlier bids each moved by 120 s.
        end() + Duration::seconds(EXTENSION_SECONDS * i as i64 - 1)
    } else {
        end() - Duration::hours(1)
    };
    (
        format!("user-{}", i % BIDDERS),
        AuctionCommand::Bid { max_amount },
        at,
    )
}

/// Decides `bids` on a fresh lot: (accepted, extended) counts.
fn decide_all(bids: &[(String, AuctionCommand, DateTime<Utc>)]) -> (usize, usize) {
    let mut lot = lot();
    let (mut accepted, mut extended) = (0, 0);
    for (user, command, at) in bids {
        if let Ok(decision) = lot.decide(user, command, *at) {
            lot.evolve(user, &decision);
            accepted += 1;
            extended += usize::from(!decision.timers(user).is_empty());
        }
    }
    (accepted, extended)
}

/// `expected`: the (accepted, extended) counts the stream must give, checked once first,
/// so the figure is for the path the name promises.
fn bench_bids(
    c: &mut Criterion,
    name: &str,
    bids: &[(String, AuctionCommand, DateTime<Utc>)],
    expected: (usize, usize),
) {
    assert_eq!(decide_all(bids), expected, "{name}");
    let mut group = c.benchmark_group("auction");
    group.throughput(Throughput::Elements(bids.len() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            lot,
            |mut lot| {
                for (user, command, at) in bids {
                    let decision = match lot.decide(user, command, *at) {
                        Ok(decision) => {
                            lot.evolve(user, &decision);
                            decision
                        }
                        Err(reason) => Decision::Rejected { reason },
                    };
                    black_box(decision.timers(user));
                    black_box(decision);
                }
                lot
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn auction(c: &mut Criterion) {
    let leading: Vec<_> = (0..BIDS).map(|i| bid(i, true, false)).collect();
    bench_bids(c, "bids_each_takes_the_lead", &leading, (leading.len(), 0));
    let sniping: Vec<_> = (0..BIDS).map(|i| bid(i, true, true)).collect();
    let all = (sniping.len(), sniping.len());
    bench_bids(c, "bids_each_extends_the_end", &sniping, all);
    let mostly_low: Vec<_> = (0..BIDS).map(|i| bid(i, i % 10 == 0, false)).collect();
    let tenth = (mostly_low.len() / 10, 0);
    bench_bids(c, "bids_mostly_below_minimum", &mostly_low, tenth);
}

criterion_group!(benches, auction);
criterion_main!(benches);
