//! `turnstile demo --scenario auction`: a bidding war on a few lots closing within seconds.
//!
//! Each lot ends a few seconds after the start, with a 2-second anti-sniping window. Its
//! bidders each have a private valuation and one of three habits: proxy bidders bid their
//! maximum once (and some come back to raise it), incremental bidders keep topping the
//! price by the least the lot accepts while they are not leading, and snipers wait for the
//! last second or so and bid their maximum — which moves the end, again and again. One lot
//! has a reserve; one may be bought outright at its buy-now price. The close timers fired
//! by the expiry scheduler end them.
//!
//! Checks: each lot closed exactly once; each winner is the highest bidder (the highest
//! maximum, the earlier on a tie) and pays what the proxy rule says, recomputed from the
//! accepted bids in log order; the final end is the original end plus one window per
//! extension; no bid was accepted at or after the end; the answers, the views and the
//! journal agree; the audit passes.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::json;
use turnstile_schemas::{Decision, Outcome};

use super::crowd::{each_person, on_crowd_runtime, pick, progress, Crowd, Reply};
use super::{verdict, DemoArgs, DemoStack};
use crate::loadgen::thousands;

/// The anti-sniping window and extension.
const EXTENSION_SECONDS: u32 = 2;
/// How long the demo waits for every lot to close after its bidders are done.
const CLOSE_WAIT_MAX: Duration = Duration::from_secs(30);
/// Titles of the lots, in turn.
const TITLES: [&str; 5] = [
    "1962 Fender Stratocaster",
    "Eames lounge chair",
    "First-edition Dune",
    "Leica M3",
    "Signed tour poster",
];

/// A lot as the demo creates it.
#[derive(Debug, Clone)]
struct Lot {
    lot_id: String,
    title: String,
    /// What the crowd values it at on average, in cents.
    value: u64,
    opening_price: u64,
    increment: u64,
    reserve_price: Option<u64>,
    buy_now_price: Option<u64>,
    ends_at: DateTime<Utc>,
}

impl Lot {
    fn spec(&self) -> serde_json::Value {
        let mut spec = json!({
            "lot_id": self.lot_id,
            "title": self.title,
            "ends_at": self.ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "opening_price": self.opening_price,
            "increment": self.increment,
            "extension_seconds": EXTENSION_SECONDS,
            "currency": "EUR",
        });
        if let Some(reserve) = self.reserve_price {
            spec["reserve_price"] = json!(reserve);
        }
        if let Some(buy_now) = self.buy_now_price {
            spec["buy_now_price"] = json!(buy_now);
        }
        spec
    }
}

/// The lots: the first has a reserve near its value, the third (of three or more) a
/// buy-now price; lot `k` ends `base + k` seconds after `now`.
fn plan_lots(lots: u32, now: DateTime<Utc>, base_seconds: i64) -> Vec<Lot> {
    let start = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
    (0..lots)
        .map(|k| {
            let value = 50_000 + 25_000 * u64::from(k % 7);
            Lot {
                lot_id: format!("lot-{}", k + 1),
                title: TITLES[k as usize % TITLES.len()].to_string(),
                value,
                opening_price: value / 5,
                increment: value / 100,
                reserve_price: (k == 0).then_some(value),
                buy_now_price: (k == 2).then_some(value * 3 / 2),
                ends_at: start + chrono::Duration::seconds(base_seconds + i64::from(k)),
            }
        })
        .collect()
}

/// A lot's view (`GET /v1/lots/{id}`), the fields the demo reads.
#[derive(Debug, Clone, Deserialize)]
struct LotView {
    status: String,
    ends_at: DateTime<Utc>,
    #[serde(default)]
    extended: bool,
    #[serde(default)]
    bid_count: u64,
    #[serde(default)]
    current_price: Option<u64>,
    #[serde(default)]
    leader: Option<String>,
    #[serde(default)]
    min_next_bid: Option<u64>,
    #[serde(default)]
    unsold_reason: Option<String>,
}

/// A bid the edge accepted, from its answer.
#[derive(Debug, Clone)]
struct Accepted {
    offset: u64,
    bidder: String,
    max_amount: u64,
    extended: bool,
}

/// What the bidders saw.
#[derive(Debug, Default)]
struct Tally {
    bids_sent: u64,
    /// Per lot, the accepted bids.
    accepted: BTreeMap<String, Vec<Accepted>>,
    extensions: u64,
    snipes: u64,
    buy_now: BTreeMap<String, (String, u64)>,
    rejections: BTreeMap<String, u64>,
}

/// How a bidder bids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Habit {
    Proxy,
    Incremental,
    Sniper,
}

#[derive(Debug, Clone)]
struct War {
    crowd: Arc<Crowd>,
    tally: Arc<Mutex<Tally>>,
    lots: Arc<Vec<Lot>>,
    started: DateTime<Utc>,
    seed: u64,
}

impl War {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().expect("the tally lock is never poisoned")
    }

    async fn view(&self, lot: &Lot) -> Option<LotView> {
        match self
            .crowd
            .get_view(&format!("/v1/lots/{}", lot.lot_id))
            .await
        {
            Ok(view) => Some(view),
            Err(e) => {
                self.crowd.count_error(e);
                None
            }
        }
    }

    /// Bids `max_amount`; whether it was accepted.
    async fn bid(&self, lot: &Lot, user: &str, key: String, max_amount: u64) -> bool {
        let reply = self
            .crowd
            .post(
                &format!("/v1/lots/{}/bids", lot.lot_id),
                &key,
                json!({"user_id": user, "max_amount": max_amount}),
            )
            .await;
        let mut tally = self.tally();
        tally.bids_sent += 1;
        match reply {
            Reply::Decided {
                decision:
                    Decision::BidAccepted {
                        bidder,
                        max_amount,
                        extended,
                        ..
                    },
                offset,
            } => {
                tally.extensions += u64::from(extended);
                tally
                    .accepted
                    .entry(lot.lot_id.clone())
                    .or_default()
                    .push(Accepted {
                        offset,
                        bidder,
                        max_amount,
                        extended,
                    });
                true
            }
            Reply::Decided { decision, .. } => {
                self.crowd
                    .count_error(format!("a bid was answered {}", decision.status()));
                false
            }
            Reply::Rejected { code, .. } => {
                *tally.rejections.entry(code).or_default() += 1;
                false
            }
            Reply::Failed(_) => false,
        }
    }

    /// Sleeps until `at`.
    async fn until(at: DateTime<Utc>) {
        if let Ok(wait) = (at - Utc::now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    }

    /// One bidder.
    async fn bidder(self, b: u64) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ (b << 8) ^ 0xa0c7);
        let lot = &self.lots[(b % self.lots.len() as u64) as usize];
        let user = format!("bidder-{b}");
        let habit = [Habit::Proxy, Habit::Incremental, Habit::Sniper]
            [pick(&[55, 30, 15], rng.gen_range(0..100))];
        // Snipers come for the lots they want most.
        let keen = if habit == Habit::Sniper { 130 } else { 100 };
        let valuation = lot.value * rng.gen_range(60..=160) / 100 * keen / 100;
        let span = (lot.ends_at - self.started).num_milliseconds().max(1);
        let arrival =
            self.started + chrono::Duration::milliseconds(rng.gen_range(0..=span * 6 / 10));
        let mut n = 0;
        let mut key = || {
            n += 1;
            format!("bid-{b}-{n}")
        };
        match habit {
            Habit::Proxy => {
                Self::until(arrival).await;
                // A few who value the lot over its buy-now price simply buy it.
                if lot.buy_now_price.is_some_and(|p| valuation >= p) && rng.gen_bool(0.3) {
                    self.buy_now(lot, &user, format!("buy-{b}")).await;
                    return self.crowd.person_done();
                }
                let Some(view) = self.view(lot).await else {
                    return self.crowd.person_done();
                };
                if view.status != "open" || view.min_next_bid.is_none_or(|m| m > valuation) {
                    return self.crowd.person_done();
                }
                // They start below what they would pay...
                let opening =
                    (valuation * rng.gen_range(50..=90) / 100).max(view.min_next_bid.unwrap_or(0));
                self.bid(lot, &user, key(), opening).await;
                // ... and most come back before the end, if outbid, with their maximum.
                if rng.gen_bool(0.6) {
                    let back =
                        view.ends_at - chrono::Duration::milliseconds(rng.gen_range(500..2_500));
                    Self::until(back).await;
                    if let Some(view) = self.view(lot).await {
                        let raised = valuation;
                        let leading = view.leader.as_deref() == Some(&user);
                        if view.status == "open"
                            && !leading
                            && view.min_next_bid.is_some_and(|m| m <= raised)
                        {
                            self.bid(lot, &user, key(), raised).await;
                        }
                    }
                }
            }
            Habit::Incremental => {
                Self::until(arrival).await;
                loop {
                    let Some(view) = self.view(lot).await else {
                        break;
                    };
                    if view.status != "open" {
                        break;
                    }
                    let Some(min) = view.min_next_bid else { break };
                    if view.leader.as_deref() != Some(&user) {
                        if min > valuation {
                            break;
                        }
                        self.bid(lot, &user, key(), min).await;
                    }
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(250..900))).await;
                }
            }
            Habit::Sniper => {
                let mut ends_at = lot.ends_at;
                for _ in 0..3 {
                    // Strike in the last second and a half: inside the window.
                    let strike =
                        ends_at - chrono::Duration::milliseconds(rng.gen_range(300..1_500));
                    Self::until(strike).await;
                    let Some(view) = self.view(lot).await else {
                        break;
                    };
                    if view.status != "open" {
                        break;
                    }
                    if view.ends_at > ends_at + chrono::Duration::milliseconds(100) {
                        // Extended since: wait for the new end.
                        ends_at = view.ends_at;
                        continue;
                    }
                    if view.leader.as_deref() == Some(&user)
                        || view.min_next_bid.is_none_or(|m| m > valuation)
                    {
                        break;
                    }
                    self.tally().snipes += 1;
                    self.bid(lot, &user, key(), valuation).await;
                    ends_at =
                        view.ends_at + chrono::Duration::seconds(i64::from(EXTENSION_SECONDS));
                }
            }
        }
        self.crowd.person_done();
    }

    async fn buy_now(&self, lot: &Lot, user: &str, key: String) {
        let reply = self
            .crowd
            .post(
                &format!("/v1/lots/{}/buy-now", lot.lot_id),
                &key,
                json!({"user_id": user}),
            )
            .await;
        let mut tally = self.tally();
        match reply {
            Reply::Decided {
                decision:
                    Decision::LotSold {
                        winner,
                        price,
                        by_buy_now: true,
                        ..
                    },
                ..
            } => {
                tally.buy_now.insert(lot.lot_id.clone(), (winner, price));
            }
            Reply::Decided { decision, .. } => {
                self.crowd
                    .count_error(format!("a buy-now was answered {}", decision.status()));
            }
            Reply::Rejected { code, .. } => {
                *tally.rejections.entry(code).or_default() += 1;
            }
            Reply::Failed(_) => {}
        }
    }
}

/// The winner and price the rules give for these accepted bids (in log order), or `None`
/// when the lot does not sell (no bids, or the reserve not met).
fn expected_sale(lot: &Lot, bids: &[Accepted]) -> Option<(String, u64)> {
    let mut leader: Option<&Accepted> = None;
    for bid in bids {
        if leader.is_none_or(|l| bid.max_amount > l.max_amount) {
            leader = Some(bid);
        }
    }
    let leader = leader?;
    if lot.reserve_price.is_some_and(|r| leader.max_amount < r) {
        return None;
    }
    let runner_up = bids
        .iter()
        .filter(|b| b.bidder != leader.bidder)
        .map(|b| b.max_amount)
        .max();
    let floor = [
        lot.opening_price,
        runner_up.map_or(0, |r| r + lot.increment),
        lot.reserve_price.unwrap_or(0),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    Some((leader.bidder.clone(), floor.min(leader.max_amount)))
}

struct Run {
    crowd: Arc<Crowd>,
    tally: Tally,
    views: Vec<Option<LotView>>,
    elapsed: Duration,
}

async fn war(
    crowd: Arc<Crowd>,
    lots: Arc<Vec<Lot>>,
    started: DateTime<Utc>,
    bidders: u64,
    seed: u64,
    show: bool,
) -> anyhow::Result<Run> {
    let clock = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let war = War {
        crowd: Arc::clone(&crowd),
        tally: Arc::clone(&tally),
        lots: Arc::clone(&lots),
        started,
        seed,
    };
    let bar_tally = Arc::clone(&tally);
    let bar = progress(&crowd, "bidders", bidders, show, move || {
        let t = bar_tally.lock().expect("the tally lock is never poisoned");
        format!(
            "bids {} accepted {}  extensions {}",
            thousands(t.bids_sent),
            thousands(t.accepted.values().map(|b| b.len() as u64).sum()),
            thousands(t.extensions)
        )
    });
    // Every bidder is active at once: they spend most of their time waiting.
    let people = war.clone();
    each_person((0..bidders).collect(), usize::MAX, move |b| {
        people.clone().bidder(b)
    })
    .await?;
    // The close timers end the lots.
    let deadline = Instant::now() + CLOSE_WAIT_MAX;
    let mut views = vec![None; lots.len()];
    loop {
        for (lot, view) in lots.iter().zip(views.iter_mut()) {
            if view
                .as_ref()
                .is_some_and(|v: &LotView| matches!(v.status.as_str(), "sold" | "unsold"))
            {
                continue;
            }
            *view = war.view(lot).await;
        }
        let closed = views.iter().all(|v| {
            v.as_ref()
                .is_some_and(|v| matches!(v.status.as_str(), "sold" | "unsold"))
        });
        if closed || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let tally = std::mem::take(&mut *tally.lock().expect("never poisoned"));
    Ok(Run {
        crowd,
        tally,
        views,
        elapsed: clock.elapsed(),
    })
}

/// What the journal says about one lot.
#[derive(Debug, Default)]
struct Journaled {
    accepted: u64,
    extensions: u64,
    closes: Vec<Decision>,
    /// Bids accepted at or after the lot's final end.
    late_bids: u64,
}

fn journaled(outcomes: &[Outcome], lot_id: &str, final_end: Option<DateTime<Utc>>) -> Journaled {
    let mut j = Journaled::default();
    for outcome in outcomes.iter().filter(|o| o.resource_id == lot_id) {
        match &outcome.decision {
            Decision::BidAccepted { extended, .. } => {
                j.accepted += 1;
                j.extensions += u64::from(*extended);
                if final_end.is_some_and(|end| outcome.decided_at >= end) {
                    j.late_bids += 1;
                }
            }
            decision @ (Decision::LotSold { .. } | Decision::LotClosedUnsold { .. }) => {
                j.closes.push(decision.clone());
            }
            _ => {}
        }
    }
    j
}

fn money(cents: u64) -> String {
    format!("€{}.{:02}", thousands(cents / 100), cents % 100)
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let bidders = args.users_or(600, 120);
    let lot_count = args.lots.unwrap_or(if args.small { 2 } else { 5 });
    let base_seconds = if args.small { 4 } else { 7 };
    let started = DemoStack::start(args).await?;
    let addr = started.stack.addr;
    let crowd = Crowd::new(addr.into(), args.connections as usize, args.retry_every);
    let now = Utc::now();
    let lots = plan_lots(lot_count, now, base_seconds);
    println!(
        "turnstile demo --scenario auction: {} bidders on {} lots ending {}–{} s from now, \
         {EXTENSION_SECONDS} s anti-sniping, over HTTP on {addr} ({} partitions, data in {})",
        thousands(bidders),
        lot_count,
        base_seconds,
        base_seconds + i64::from(lot_count) - 1,
        args.tuning.partitions,
        started.data_dir.display()
    );
    for lot in &lots {
        let create = crowd
            .post("/v1/lots", &format!("create-{}", lot.lot_id), lot.spec())
            .await;
        if !matches!(
            create,
            Reply::Decided {
                decision: Decision::LotCreated { .. },
                ..
            }
        ) {
            anyhow::bail!("creating {} answered {create:?}", lot.lot_id);
        }
    }
    let lots = Arc::new(lots);
    let (seed, show) = (args.seed, !args.quiet);
    let plan = Arc::clone(&lots);
    let run = on_crowd_runtime(move || war(crowd, plan, now, bidders, seed, show)).await?;
    let ids: Vec<String> = lots.iter().map(|l| l.lot_id.clone()).collect();
    let (outcomes, audit) = started.stop(&ids).await?;

    let t = &run.tally;
    println!();
    print!("{}", run.crowd.render());
    let accepted: u64 = t.accepted.values().map(|b| b.len() as u64).sum();
    println!(
        "  bids          {} sent, {} accepted, {} by snipers; {} extensions; in {:.2} s",
        thousands(t.bids_sent),
        thousands(accepted),
        thousands(t.snipes),
        thousands(t.extensions),
        run.elapsed.as_secs_f64()
    );
    let refused: Vec<String> = t
        .rejections
        .iter()
        .map(|(code, n)| format!("{code} {}", thousands(*n)))
        .collect();
    println!("  refused       {}", refused.join(", "));

    let mut checks = Vec::new();
    for (lot, view) in lots.iter().zip(&run.views) {
        let no_bids = Vec::new();
        let bids = t.accepted.get(&lot.lot_id).unwrap_or(&no_bids);
        let mut in_order = bids.clone();
        in_order.sort_by_key(|b| b.offset);
        let extensions = bids.iter().filter(|b| b.extended).count() as u64;
        let Some(view) = view else {
            checks.push((format!("{}: its view loaded", lot.lot_id), false));
            continue;
        };
        let j = journaled(&outcomes, &lot.lot_id, Some(view.ends_at));
        let expected = match t.buy_now.get(&lot.lot_id) {
            Some(sale) => Some(sale.clone()),
            None => expected_sale(lot, &in_order),
        };
        let result = match (view.status.as_str(), &view.leader, view.current_price) {
            ("sold", Some(winner), Some(price)) => {
                let how = if t.buy_now.contains_key(&lot.lot_id) {
                    "bought now"
                } else {
                    "sold"
                };
                format!("{how} to {winner} for {}", money(price))
            }
            ("unsold", ..) => format!(
                "unsold ({})",
                view.unsold_reason.as_deref().unwrap_or("no reason given")
            ),
            (status, ..) => format!("still {status}"),
        };
        println!(
            "  {:<6} {:<26} {} bids, {} extensions, ends {}: {result}",
            lot.lot_id,
            lot.title,
            thousands(view.bid_count),
            extensions,
            view.ends_at.format("%H:%M:%S%.3f"),
        );
        let sold_as_expected = match (&expected, view.status.as_str()) {
            (Some((winner, price)), "sold") => {
                view.leader.as_ref() == Some(winner) && view.current_price == Some(*price)
            }
            (None, "unsold") => true,
            _ => false,
        };
        let what = match &expected {
            Some((winner, price)) => format!("{winner} at {}", money(*price)),
            None => "no sale".to_string(),
        };
        checks.push((
            format!(
                "{}: the winner is the highest bidder, at the proxy price ({what})",
                lot.lot_id
            ),
            sold_as_expected,
        ));
        let journal_close = match j.closes.as_slice() {
            [Decision::LotSold { winner, price, .. }] => {
                expected.as_ref() == Some(&(winner.clone(), *price))
            }
            [Decision::LotClosedUnsold { .. }] => expected.is_none(),
            _ => false,
        };
        checks.push((
            format!(
                "{}: closed exactly once, as the view says ({} closes in the journal)",
                lot.lot_id,
                j.closes.len()
            ),
            journal_close,
        ));
        let by_buy_now = t.buy_now.contains_key(&lot.lot_id);
        let expected_end = lot.ends_at
            + chrono::Duration::seconds(i64::from(EXTENSION_SECONDS) * extensions as i64);
        checks.push((
            format!(
                "{}: {} bids and {} extensions answered = journal; end moved by each; \
                 no bid at or after the end",
                lot.lot_id,
                bids.len(),
                extensions
            ),
            j.accepted == bids.len() as u64
                && view.bid_count == bids.len() as u64
                && j.extensions == extensions
                && (by_buy_now || view.ends_at == expected_end)
                && view.extended == (extensions > 0)
                && j.late_bids == 0,
        ));
    }
    print!("{audit}");
    checks.push(("the audit passed".to_string(), audit.passed()));
    Ok(verdict(&checks, run.crowd.failures()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bid(offset: u64, bidder: &str, max_amount: u64) -> Accepted {
        Accepted {
            offset,
            bidder: bidder.into(),
            max_amount,
            extended: false,
        }
    }

    #[test]
    fn the_expected_sale_follows_the_proxy_rule() {
        let lots = plan_lots(3, Utc::now(), 5);
        let mut plain = lots[1].clone();
        plain.opening_price = 1_000;
        plain.increment = 100;
        assert_eq!(expected_sale(&plain, &[]), None);
        assert_eq!(
            expected_sale(&plain, &[bid(1, "a", 5_000)]),
            Some(("a".into(), 1_000))
        );
        // b outbids a; the price is a's maximum plus an increment.
        let bids = [bid(1, "a", 5_000), bid(2, "b", 7_000)];
        assert_eq!(expected_sale(&plain, &bids), Some(("b".into(), 5_100)));
        // A tie goes to the earlier bid, at its maximum.
        let bids = [bid(1, "a", 5_000), bid(2, "b", 5_000)];
        assert_eq!(expected_sale(&plain, &bids), Some(("a".into(), 5_000)));
        // The leader raising their own maximum does not raise the price.
        let bids = [bid(1, "a", 5_000), bid(2, "b", 6_000), bid(3, "b", 9_000)];
        assert_eq!(expected_sale(&plain, &bids), Some(("b".into(), 5_100)));
        let mut reserved = plain.clone();
        reserved.reserve_price = Some(6_000);
        assert_eq!(expected_sale(&reserved, &[bid(1, "a", 5_000)]), None);
        assert_eq!(
            expected_sale(&reserved, &[bid(1, "a", 8_000)]),
            Some(("a".into(), 6_000))
        );
    }

    #[test]
    fn the_lots_are_valid_specs() {
        for lot in plan_lots(7, Utc::now(), 7) {
            let mut spec = lot.spec();
            spec.as_object_mut().expect("an object").remove("lot_id");
            let spec: turnstile_schemas::auction::LotSpec =
                serde_json::from_value(spec).expect("parses");
            assert_eq!(spec.validate(), Ok(()), "{}", lot.lot_id);
        }
    }
}
