//! `turnstile demo --scenario tickets`: a seated event goes on sale.
//!
//! Fans (50,000 for 5,000 seats by default) each ask for the best 1–4 seats, in a
//! section of their choice or anywhere, then — after a moment at the checkout — most
//! confirm, some release, and some walk away so that their hold lapses when its short
//! TTL runs out (the expiry scheduler fires the lapse timer). Fans turned away wait; once
//! the lapses have freed their seats, a second wave of them comes back and buys them.
//!
//! Checks: every seat is sold at most once (from the confirmations, from the event's view
//! and from the journal replayed through a small reference model that also checks no seat
//! is ever in two holds), sold ≤ seats, the view's sold seats are exactly the confirmed
//! ones, every abandoned or late hold lapsed, no hold is left at the end, the audit passes.

use std::collections::{BTreeMap, HashMap, HashSet};
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

/// The event the demo sells.
const EVENT_ID: &str = "demo-night";
/// Seats per row (more in sections of over 25,000 seats).
const ROW_SEATS: u32 = 25;
/// How long a hold lasts: short, so that lapses happen during the demo.
const HOLD_TTL_SECONDS: u32 = 3;
/// Longest a fan ponders at the checkout, well inside the TTL.
const CHECKOUT_MS_MAX: u64 = 700;
/// The sections: id, price tier, price in cents, share of the seats in percent.
const SECTIONS: [(&str, &str, u64, u32); 3] = [
    ("FLOOR", "Floor", 15_000, 10),
    ("LOWER", "Lower bowl", 8_500, 40),
    ("UPPER", "Upper bowl", 4_500, 50),
];
/// How long the demo waits for every hold to be confirmed, released or lapsed.
const SETTLE_MAX: Duration = Duration::from_secs(20);

/// What a fan does with a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Confirm,
    Release,
    Abandon,
}

/// What the fans saw, from the answers.
#[derive(Debug, Default)]
struct Tally {
    hold_requests: u64,
    holds: u64,
    held_seats: u64,
    /// Seat → number of holds it was in.
    times_held: HashMap<String, u32>,
    confirmed_holds: u64,
    /// Every seat of every confirmation, in answer order (duplicates are a failure).
    sold: Vec<String>,
    revenue_minor: u64,
    released_holds: u64,
    released_seats: u64,
    abandoned_holds: u64,
    /// Confirms or releases answered `hold_expired`: those holds lapse too.
    late: u64,
    turned_away: Vec<u64>,
    rejections: BTreeMap<String, u64>,
    /// The latest expiry of a hold that will lapse.
    last_lapse_due: Option<DateTime<Utc>>,
}

/// One section of the event's view.
#[derive(Debug, Deserialize)]
struct SectionView {
    section_id: String,
    seats: u32,
    free: u32,
    held: u32,
    sold: u32,
    #[serde(default)]
    free_seat_ids: Vec<String>,
}

/// The event's view (`GET /v1/events/{id}`), the fields the demo reads.
#[derive(Debug, Deserialize)]
struct EventView {
    sections: Vec<SectionView>,
}

impl EventView {
    fn sum(&self, field: impl Fn(&SectionView) -> u32) -> u64 {
        self.sections.iter().map(|s| u64::from(field(s))).sum()
    }
}

/// The event's spec: [`SECTIONS`] sharing `seats`, in rows of [`ROW_SEATS`].
fn event_spec(seats: u32) -> serde_json::Value {
    let mut left = seats;
    let sections: Vec<_> = SECTIONS
        .iter()
        .enumerate()
        .map(|(i, (id, tier, price, percent))| {
            let mut in_section = if i + 1 == SECTIONS.len() {
                left
            } else {
                (seats * percent / 100).max(1)
            };
            in_section = in_section.min(left - (SECTIONS.len() - 1 - i) as u32);
            left -= in_section;
            // Longer rows in a large section: at most 1,000 rows.
            let row_seats = ROW_SEATS.max(in_section.div_ceil(1_000));
            let rows: Vec<_> = (0..in_section.div_ceil(row_seats))
                .map(|r| {
                    json!({
                        "row_id": format!("R{}", r + 1),
                        "seats": (in_section - r * row_seats).min(row_seats),
                    })
                })
                .collect();
            json!({
                "section_id": id,
                "price_tier": {"name": tier, "price_minor": price},
                "rows": rows,
            })
        })
        .collect();
    json!({
        "event_id": EVENT_ID,
        "title": "Turnstile Live: demo night",
        "starts_at": (Utc::now() + chrono::Duration::days(30)).to_rfc3339(),
        "hold_ttl_seconds": HOLD_TTL_SECONDS,
        "holds_per_user_max": 1,
        "seats_per_hold_max": 4,
        "sections": sections,
    })
}

#[derive(Debug, Clone)]
struct Sale {
    crowd: Arc<Crowd>,
    tally: Arc<Mutex<Tally>>,
    seed: u64,
}

impl Sale {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().expect("the tally lock is never poisoned")
    }

    /// One fan: a hold of the best seats, then a confirm, a release, or nothing.
    async fn fan(self, fan: u64, wave: u32) {
        let mut rng = StdRng::seed_from_u64(self.seed ^ (fan << 8) ^ u64::from(wave));
        let count = [1, 2, 3, 4][pick(&[20, 45, 15, 20], rng.gen_range(0..100))];
        let section = rng
            .gen_bool(0.35)
            .then(|| SECTIONS[pick(&[20, 40, 40], rng.gen_range(0..100))].0);
        // The first wave: 75% buy, 10% release, 15% walk away; those who come back mostly
        // buy (90%, 5%, 5%).
        let (confirm, release) = if wave == 1 { (75, 85) } else { (90, 95) };
        let choice = match rng.gen_range(0..100) {
            roll if roll < confirm => Choice::Confirm,
            roll if roll < release => Choice::Release,
            _ => Choice::Abandon,
        };
        let user = format!("fan-{fan}");
        let holds = format!("/v1/events/{EVENT_ID}/holds");
        let mut best = json!({"count": count});
        if let Some(section) = section {
            best["section"] = json!(section);
        }
        let key = format!("w{wave}-fan-{fan}-hold");
        let mut reply = self
            .crowd
            .post(&holds, &key, json!({"user_id": user, "best": best}))
            .await;
        self.tally().hold_requests += 1;
        if section.is_some() && reply.code() == Some("not_enough_seats") {
            // Nothing left there together: anywhere will do.
            let key = format!("{key}-any");
            let body = json!({"user_id": user, "best": {"count": count}});
            reply = self.crowd.post(&holds, &key, body).await;
            self.tally().hold_requests += 1;
        }
        let (hold_id, expires_at) = match reply {
            Reply::Decided {
                decision:
                    Decision::SeatsHeld {
                        hold_id,
                        seat_ids,
                        expires_at,
                        ..
                    },
                ..
            } => {
                let mut tally = self.tally();
                tally.holds += 1;
                tally.held_seats += seat_ids.len() as u64;
                for seat in seat_ids {
                    *tally.times_held.entry(seat).or_default() += 1;
                }
                (hold_id, expires_at)
            }
            Reply::Decided { decision, .. } => {
                self.crowd
                    .count_error(format!("a hold was answered {}", decision.status()));
                return self.crowd.person_done();
            }
            Reply::Rejected { code, .. } => {
                let mut tally = self.tally();
                if code == "not_enough_seats" {
                    tally.turned_away.push(fan);
                }
                *tally.rejections.entry(code).or_default() += 1;
                drop(tally);
                return self.crowd.person_done();
            }
            Reply::Failed(_) => return self.crowd.person_done(),
        };
        if choice == Choice::Abandon {
            let mut tally = self.tally();
            tally.abandoned_holds += 1;
            tally.last_lapse_due = tally.last_lapse_due.max(Some(expires_at));
            drop(tally);
            return self.crowd.person_done();
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(50..=CHECKOUT_MS_MAX))).await;
        let verb = if choice == Choice::Confirm {
            "confirm"
        } else {
            "release"
        };
        let reply = self
            .crowd
            .post(
                &format!("{holds}/{hold_id}/{verb}"),
                &format!("w{wave}-fan-{fan}-{verb}"),
                json!({"user_id": user}),
            )
            .await;
        let mut tally = self.tally();
        match reply {
            Reply::Decided {
                decision:
                    Decision::HoldConfirmed {
                        seat_ids,
                        price_total,
                        ..
                    },
                ..
            } => {
                tally.confirmed_holds += 1;
                tally.revenue_minor += price_total;
                tally.sold.extend(seat_ids);
            }
            Reply::Decided {
                decision: Decision::HoldReleased { seat_ids, .. },
                ..
            } => {
                tally.released_holds += 1;
                tally.released_seats += seat_ids.len() as u64;
            }
            Reply::Decided { decision, .. } => {
                self.crowd
                    .count_error(format!("a {verb} was answered {}", decision.status()));
            }
            Reply::Rejected { code, .. } => {
                if code == "hold_expired" {
                    tally.late += 1;
                    tally.last_lapse_due = tally.last_lapse_due.max(Some(expires_at));
                }
                *tally.rejections.entry(code).or_default() += 1;
            }
            Reply::Failed(_) => {}
        }
        drop(tally);
        self.crowd.person_done();
    }
}

/// Waits until no seat is held (every hold confirmed, released or lapsed) and returns the
/// view then, or the last view seen when `SETTLE_MAX` passed.
async fn settled_view(crowd: &Crowd, due: Option<DateTime<Utc>>) -> Result<EventView, String> {
    if let Some(due) = due {
        let wait = (due - Utc::now()).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
    }
    let deadline = Instant::now() + SETTLE_MAX;
    loop {
        let view: EventView = crowd.get_view(&format!("/v1/events/{EVENT_ID}")).await?;
        if view.sum(|s| s.held) == 0 || Instant::now() >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the run came to.
struct Run {
    crowd: Arc<Crowd>,
    tally: Tally,
    second_wave: u64,
    view: Option<EventView>,
    elapsed: Duration,
}

async fn sale(
    crowd: Arc<Crowd>,
    fans: u64,
    seed: u64,
    connections: usize,
    show: bool,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sale = Sale {
        crowd: Arc::clone(&crowd),
        tally: Arc::clone(&tally),
        seed,
    };
    let bar_tally = Arc::clone(&tally);
    let bar = progress(&crowd, "fans", fans, show, move || {
        let t = bar_tally.lock().expect("the tally lock is never poisoned");
        format!(
            "holds {}  sold {}  released {}  abandoned {}",
            thousands(t.holds),
            thousands(t.sold.len() as u64),
            thousands(t.released_holds),
            thousands(t.abandoned_holds)
        )
    });
    // Fans active at once: enough to keep every connection busy while some ponder.
    let active = connections * 4;
    let first = sale.clone();
    each_person((0..fans).collect(), active, move |fan| {
        first.clone().fan(fan, 1)
    })
    .await?;

    // The turned-away fans come back once the abandoned holds have lapsed.
    let due = tally.lock().expect("never poisoned").last_lapse_due;
    let mut view = match settled_view(&crowd, due).await {
        Ok(view) => Some(view),
        Err(e) => {
            crowd.count_error(e);
            None
        }
    };
    let free = view.as_ref().map_or(0, |v| v.sum(|s| s.free));
    let mut returning = std::mem::take(&mut tally.lock().expect("never poisoned").turned_away);
    returning.sort_unstable();
    returning.truncate(usize::try_from(2 * free + 50).unwrap_or(usize::MAX));
    let second_wave = returning.len() as u64;
    if let Some(bar) = &bar {
        bar.bar().inc_length(second_wave);
    }
    let second = sale.clone();
    each_person(returning, active, move |fan| second.clone().fan(fan, 2)).await?;
    let due = tally.lock().expect("never poisoned").last_lapse_due;
    if second_wave > 0 {
        view = match settled_view(&crowd, due).await {
            Ok(view) => Some(view),
            Err(e) => {
                crowd.count_error(e);
                None
            }
        };
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    let tally = std::mem::take(&mut *tally.lock().expect("never poisoned"));
    Ok(Run {
        crowd,
        tally,
        second_wave,
        view,
        elapsed: started.elapsed(),
    })
}

/// What the journal says, replayed through a reference model of seats.
#[derive(Debug, Default)]
struct Replayed {
    holds: u64,
    confirmed: u64,
    released: u64,
    lapsed: u64,
    sold: HashSet<String>,
    problems: Vec<String>,
}

fn replay_journal(outcomes: &[Outcome]) -> Replayed {
    #[derive(PartialEq)]
    enum Seat {
        Held(String),
        Sold,
    }
    let mut seats: HashMap<String, Seat> = HashMap::new();
    let mut active: HashMap<String, Vec<String>> = HashMap::new();
    let mut r = Replayed::default();
    for outcome in outcomes {
        match &outcome.decision {
            Decision::SeatsHeld {
                hold_id, seat_ids, ..
            } => {
                r.holds += 1;
                for seat in seat_ids {
                    if let Some(state) = seats.get(seat) {
                        let what = if *state == Seat::Sold { "sold" } else { "held" };
                        r.problems
                            .push(format!("{hold_id} holds {seat}, which is already {what}"));
                    }
                    seats.insert(seat.clone(), Seat::Held(hold_id.clone()));
                }
                active.insert(hold_id.clone(), seat_ids.clone());
            }
            Decision::HoldConfirmed { hold_id, .. }
            | Decision::HoldReleased { hold_id, .. }
            | Decision::HoldLapsed { hold_id, .. } => {
                let Some(held) = active.remove(hold_id) else {
                    r.problems.push(format!(
                        "{hold_id} ended ({}) without being active",
                        outcome.decision.status()
                    ));
                    continue;
                };
                let confirmed = matches!(outcome.decision, Decision::HoldConfirmed { .. });
                match outcome.decision {
                    Decision::HoldConfirmed { .. } => r.confirmed += 1,
                    Decision::HoldReleased { .. } => r.released += 1,
                    _ => r.lapsed += 1,
                }
                for seat in held {
                    if seats.get(&seat) != Some(&Seat::Held(hold_id.clone())) {
                        r.problems
                            .push(format!("{seat} of {hold_id} was not held by it at its end"));
                    }
                    if confirmed {
                        seats.insert(seat.clone(), Seat::Sold);
                        if !r.sold.insert(seat.clone()) {
                            r.problems.push(format!("{seat} was sold twice"));
                        }
                    } else {
                        seats.remove(&seat);
                    }
                }
            }
            _ => {}
        }
    }
    r
}

pub async fn run(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let fans = args.users_or(50_000, 2_000);
    let seats = args.seats.unwrap_or(if args.small { 200 } else { 5_000 });
    let started = DemoStack::start(args).await?;
    let addr = started.stack.addr;
    println!(
        "turnstile demo --scenario tickets: {} fans for {} seats over HTTP on {addr} \
         (holds last {HOLD_TTL_SECONDS} s; {} partitions, data in {})",
        thousands(fans),
        thousands(u64::from(seats)),
        args.tuning.partitions,
        started.data_dir.display()
    );
    let crowd = Crowd::new(addr.into(), args.connections as usize, args.retry_every);
    let create = crowd
        .post("/v1/events", "create-demo-night", event_spec(seats))
        .await;
    if !matches!(
        create,
        Reply::Decided {
            decision: Decision::EventCreated { .. },
            ..
        }
    ) {
        anyhow::bail!("creating the event answered {create:?}");
    }
    let (seed, connections, show) = (args.seed, args.connections as usize, !args.quiet);
    let run = on_crowd_runtime(move || sale(crowd, fans, seed, connections, show)).await?;
    let (outcomes, audit) = started.stop(&[EVENT_ID.to_string()]).await?;
    let journal = replay_journal(&outcomes);

    let t = &run.tally;
    let sold: HashSet<&String> = t.sold.iter().collect();
    let resold = sold
        .iter()
        .filter(|seat| t.times_held.get(seat.as_str()).copied().unwrap_or(0) > 1)
        .count() as u64;
    println!();
    print!("{}", run.crowd.render());
    println!(
        "  fans          {} in {:.2} s; {} came back for the lapsed seats",
        thousands(fans),
        run.elapsed.as_secs_f64(),
        thousands(run.second_wave)
    );
    println!(
        "  holds         {} of {} requests ({} seats); confirmed {}, released {}, \
         abandoned {}, too late {}",
        thousands(t.holds),
        thousands(t.hold_requests),
        thousands(t.held_seats),
        thousands(t.confirmed_holds),
        thousands(t.released_holds),
        thousands(t.abandoned_holds),
        thousands(t.late)
    );
    println!(
        "  sold          {} of {} seats, {} resold after a release or lapse; revenue {:.2}",
        thousands(t.sold.len() as u64),
        thousands(u64::from(seats)),
        thousands(resold),
        t.revenue_minor as f64 / 100.0
    );
    println!(
        "  lapsed        {} holds (expiry scheduler, from the journal)",
        thousands(journal.lapsed)
    );
    let refused: Vec<String> = t
        .rejections
        .iter()
        .map(|(code, n)| format!("{code} {}", thousands(*n)))
        .collect();
    println!("  refused       {}", refused.join(", "));
    if let Some(view) = &run.view {
        let sections: Vec<String> = view
            .sections
            .iter()
            .map(|s| {
                format!(
                    "{} {}/{} sold",
                    s.section_id,
                    thousands(u64::from(s.sold)),
                    thousands(u64::from(s.seats))
                )
            })
            .collect();
        println!("  view          {}", sections.join(", "));
    }
    print!("{audit}");

    let mut checks = Vec::new();
    let mut check = |text: String, ok: bool| checks.push((text, ok));
    check(
        format!("sold {} ≤ seats {seats}", thousands(t.sold.len() as u64)),
        t.sold.len() as u64 <= u64::from(seats),
    );
    check(
        "each sold seat sold once (confirmations)".to_string(),
        sold.len() == t.sold.len(),
    );
    check(
        format!(
            "journal replay: no seat held or sold twice ({} problems)",
            journal.problems.len()
        ),
        journal.problems.is_empty(),
    );
    for problem in journal.problems.iter().take(5) {
        println!("  - {problem}");
    }
    check(
        "the journal's sold seats are exactly the confirmed ones".to_string(),
        journal.sold.len() == sold.len() && sold.iter().all(|s| journal.sold.contains(*s)),
    );
    check(
        format!(
            "every abandoned or late hold lapsed ({} = {} + {})",
            journal.lapsed, t.abandoned_holds, t.late
        ),
        journal.lapsed == t.abandoned_holds + t.late,
    );
    match &run.view {
        Some(view) => {
            let free_ids: HashSet<&String> = view
                .sections
                .iter()
                .flat_map(|s| &s.free_seat_ids)
                .collect();
            check(
                format!(
                    "view: {} sold, {} free, {} held of {seats} seats",
                    view.sum(|s| s.sold),
                    view.sum(|s| s.free),
                    view.sum(|s| s.held)
                ),
                view.sum(|s| s.sold) == sold.len() as u64
                    && view.sum(|s| s.held) == 0
                    && view.sum(|s| s.seats) == u64::from(seats)
                    && view
                        .sections
                        .iter()
                        .all(|s| s.free + s.held + s.sold == s.seats),
            );
            check(
                "view: no sold seat is listed free".to_string(),
                sold.iter().all(|seat| !free_ids.contains(*seat)),
            );
        }
        None => check("view of the event loaded".to_string(), false),
    }
    check("the audit passed".to_string(), audit.passed());
    Ok(verdict(&checks, run.crowd.failures()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seat_map_has_exactly_the_seats_asked_for() {
        for seats in [3, 10, 200, 4_999, 5_000, 100_000] {
            let spec: turnstile_schemas::seats::EventSpec = {
                let mut v = event_spec(seats);
                v.as_object_mut().expect("an object").remove("event_id");
                serde_json::from_value(v).expect("a valid spec")
            };
            assert_eq!(spec.validate(), Ok(seats), "{seats}");
        }
    }
}
