//! Property tests of seated events, decided by [`SeatedEvent`] through the
//! [`Domain`] interface (`create`, then `decide` + `evolve` per command, `timers` after each).
//!
//! Each case generates one event: one to three sections (`floor`, `circle`, `gallery`, each
//! at its own price) of one to three rows (`A`, `B`, `C`) of one to eight seats, a hold TTL of
//! one, two or ten minutes, 1..=3 holds per user, 1..=5 seats per hold, and an optional
//! sales window. Then a random stream of commands by a pool of four users (small, so that
//! limits bite and seats run out): holds of named seats (mostly free ones, also taken ones,
//! repeated ones and ids that name no seat: seat 0, `01`, one past the row's end, unknown
//! rows and sections, a missing or extra part), best-available holds of 0..=6 seats in any
//! section, a named one or one that does not exist, confirms and releases by the holder or
//! by someone else, of held, ended and nonexistent hold ids, re-creates with the same or
//! another spec, earlier commands sent again at the current time (a client's retry) or
//! delivered again exactly (a duplicate), lapse timers fired by the scheduler when due
//! (stamped with their due time), fired again late, one second early or by another user,
//! and clock moves: a random walk backwards as well as forwards by seconds to hours, and
//! jumps exactly onto (or one second beside) the sales window's edges and holds' expiries.
//!
//! The driver here plays the partition: every decision, rejections included
//! (`Decision::Rejected`), is evolved, and the timers it schedules are collected. Request-id
//! deduplication is the partition's job and is not modelled: a retry or duplicate reaches
//! `decide` again, which is the harder case for the state machine.
//!
//! | test | what it proves |
//! |---|---|
//! | `no_seat_held_or_sold_twice` | from the decisions alone: a seat is in at most one active hold, a sold seat is never held, freed or sold again, a hold ends at most once |
//! | `holds_per_user_never_exceed_the_limit` | from the decisions alone: a user's active holds ≤ `holds_per_user_max`, a hold's size ≤ `seats_per_hold_max` |
//! | `holds_end_by_the_clock_and_by_the_holder` | lapses only at/after `expires_at`; confirms and releases only by the holder, strictly before it; `expires_at` = request + TTL; each hold's lapse timer is scheduled at its expiry |
//! | `counts_add_up_and_rejections_change_nothing` | free + held + sold = seats per section after every command, equal to what the decisions imply; a rejected command leaves the view and every hold as they were |
//! | `decisions_match_reference_model` | every decision (best-available picks included), every view and every hold equals what an independent reference model (`Model`) computes |
//! | `replay_is_byte_identical` | determinism: the same stream gives byte-identical decisions and timers |
//! | `restore_then_continue_equals_uninterrupted` | a state rebuilt by `create` + `evolve` over the recorded decisions decides the rest of the stream as the uninterrupted one did |
//! | `generator_exercises_every_rule` | none: guards the others against being vacuous |
//!
//! Failing cases are not persisted (`failure_persistence: None`); proptest prints the shrunk
//! stream, one line per command. `PROPTEST_CASES` overrides the default of 256 cases.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use turnstile_processors::domain::Domain;
use turnstile_processors::seats::SeatedEvent;
use turnstile_schemas::seats::{
    EventAvailability, EventSpec, HoldRecord, HoldStatus, PriceTier, RowSpec, SeatsCommand,
    SectionAvailability, SectionSpec,
};
use turnstile_schemas::{Command, Decision, Rejection, ScheduledTimer};

// ---------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------

/// The event. `gig-h1` is its first hold.
const EVENT_ID: &str = "gig";
/// Section ids, in spec order, and their prices in minor units.
const SECTIONS: [(&str, u64); 3] = [("floor", 9_900), ("circle", 6_500), ("gallery", 2_500)];
/// Row ids, front to back.
const ROWS: [&str; 3] = ["A", "B", "C"];
/// Size of the user pool.
const USERS: usize = 4;
/// Longest run of commands.
const OPS_MAX: usize = 100;
/// Hold TTLs the generator picks from.
const TTLS_SECONDS: [u32; 3] = [60, 120, 600];
/// The clock starts here.
const BASE: &str = "2026-06-15T18:00:00Z";

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn user(index: usize) -> String {
    format!("u{index}")
}

fn hold_id(number: usize) -> String {
    format!("{EVENT_ID}-h{}", number + 1)
}

type Decided = Result<Decision, Rejection>;

fn recorded(decided: &Decided) -> Decision {
    decided
        .clone()
        .unwrap_or_else(|reason| Decision::Rejected { reason })
}

fn status_name(decided: &Decided) -> &'static str {
    match decided {
        Ok(decision) => decision.status(),
        Err(reason) => reason.code(),
    }
}

// ---------------------------------------------------------------------------------------
// Generation: abstract operations, realised into commands against the reference model
// ---------------------------------------------------------------------------------------

/// The random part of the event's spec.
#[derive(Debug, Clone)]
struct EventGen {
    /// Seats per row, per section.
    sections: Vec<Vec<u32>>,
    ttl: usize,
    holds_per_user_max: u32,
    seats_per_hold_max: u32,
    /// `sales_open_at`, in minutes from the base.
    open_m: Option<i64>,
    /// `sales_close_at`, in minutes after `sales_open_at` (or after the base without it).
    close_after_m: Option<i64>,
}

impl EventGen {
    fn spec(&self, base: DateTime<Utc>) -> EventSpec {
        let sales_open_at = self.open_m.map(|m| base + Duration::minutes(m));
        let anchor = sales_open_at.unwrap_or(base);
        EventSpec {
            locale: None,
            title: "Gig".into(),
            starts_at: base + Duration::days(30),
            sales_open_at,
            sales_close_at: self.close_after_m.map(|m| anchor + Duration::minutes(m)),
            hold_ttl_seconds: TTLS_SECONDS[self.ttl],
            holds_per_user_max: self.holds_per_user_max,
            seats_per_hold_max: self.seats_per_hold_max,
            sections: self
                .sections
                .iter()
                .zip(SECTIONS)
                .map(|(rows, (section_id, price_minor))| SectionSpec {
                    section_id: section_id.into(),
                    price_tier: PriceTier {
                        name: section_id.to_uppercase(),
                        price_minor,
                    },
                    rows: rows
                        .iter()
                        .zip(ROWS)
                        .map(|(&seats, row_id)| RowSpec {
                            row_id: row_id.into(),
                            seats,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One seat of a named-seat request.
#[derive(Debug, Clone)]
enum SeatPick {
    /// A free seat (any seat if none is free).
    Free(Index),
    /// Any seat of the map, often taken.
    Any(Index),
    /// The previous seat of the request again.
    Repeat,
    /// An id that names no seat, of this kind.
    Missing(u8, Index),
}

/// One step of a stream, before it is realised. `Index`es pick among what exists then.
#[derive(Debug, Clone)]
enum Op {
    HoldSeats {
        user: usize,
        seats: Vec<SeatPick>,
    },
    /// `section`: 0 any, 1 a section of the event, 2 one it does not have.
    HoldBest {
        user: usize,
        count: u32,
        section: u8,
        pick: Index,
    },
    /// Confirm (or release) a hold, by its holder or (`foreign`) by another user.
    EndHold {
        hold: Index,
        confirm: bool,
        foreign: Option<usize>,
    },
    /// Confirm or release an id that names no hold, of this kind.
    BadHoldId {
        user: usize,
        confirm: bool,
        kind: u8,
    },
    /// A create with the same spec or another one.
    Recreate {
        same: bool,
    },
    /// An earlier command sent again by its user at the current time.
    Resend(Index),
    /// An earlier command delivered again exactly.
    Duplicate(Index),
    /// The scheduler fires every pending lapse timer due by now, in due order, stamped
    /// with its due time.
    FireDue,
    /// A lapse timer scheduled earlier is fired again: 0 on time, 1 late, 2 one second
    /// early, 3 on time by another user.
    FireTimer {
        timer: Index,
        mode: u8,
    },
    /// The clock moves by this many seconds (either way).
    Tick(i64),
    /// The clock jumps onto an instant of interest (the sales window's edges, holds'
    /// expiries), nudged by -1, 0 or +1 second.
    JumpTo {
        target: Index,
        nudge_secs: i64,
    },
}

fn event_gen() -> impl Strategy<Value = EventGen> {
    (
        prop::collection::vec(prop::collection::vec(1..=8_u32, 1..=3), 1..=3),
        0..TTLS_SECONDS.len(),
        1..=3_u32,
        1..=5_u32,
        proptest::option::of(-30..=30_i64),
        proptest::option::of(10..=240_i64),
    )
        .prop_map(
            |(sections, ttl, holds_per_user_max, seats_per_hold_max, open_m, close_after_m)| {
                EventGen {
                    sections,
                    ttl,
                    holds_per_user_max,
                    seats_per_hold_max,
                    open_m,
                    close_after_m,
                }
            },
        )
}

fn seat_pick() -> impl Strategy<Value = SeatPick> {
    prop_oneof![
        12 => any::<Index>().prop_map(SeatPick::Free),
        3 => any::<Index>().prop_map(SeatPick::Any),
        1 => Just(SeatPick::Repeat),
        1 => (0..8_u8, any::<Index>()).prop_map(|(kind, pick)| SeatPick::Missing(kind, pick)),
    ]
}

fn clock_step_secs() -> impl Strategy<Value = i64> {
    prop_oneof![
        -2..=2_i64,                           // a second or two: straddles an edge
        (-4..=20_i64).prop_map(|q| q * 15),   // up to five minutes, by quarter minutes
        (-8..=16_i64).prop_map(|m| m * 60),   // up to a quarter of an hour, by minutes
        (-3..=3_i64).prop_map(|h| h * 3_600), // hours
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..USERS, prop::collection::vec(seat_pick(), 0..=6))
            .prop_map(|(user, seats)| Op::HoldSeats { user, seats }),
        8 => (0..USERS, 0..=6_u32, prop_oneof![6 => Just(0_u8), 3 => Just(1), 1 => Just(2)],
              any::<Index>())
            .prop_map(|(user, count, section, pick)| Op::HoldBest { user, count, section, pick }),
        8 => (any::<Index>(), any::<bool>(),
              prop_oneof![6 => Just(None), 1 => (0..USERS).prop_map(Some)])
            .prop_map(|(hold, confirm, foreign)| Op::EndHold { hold, confirm, foreign }),
        1 => (0..USERS, any::<bool>(), 0..7_u8)
            .prop_map(|(user, confirm, kind)| Op::BadHoldId { user, confirm, kind }),
        1 => any::<bool>().prop_map(|same| Op::Recreate { same }),
        2 => any::<Index>().prop_map(Op::Resend),
        2 => any::<Index>().prop_map(Op::Duplicate),
        3 => Just(Op::FireDue),
        2 => (any::<Index>(), 0..4_u8).prop_map(|(timer, mode)| Op::FireTimer { timer, mode }),
        6 => clock_step_secs().prop_map(Op::Tick),
        3 => (any::<Index>(), -1..=1_i64)
            .prop_map(|(target, nudge_secs)| Op::JumpTo { target, nudge_secs }),
    ]
}

/// One command of the stream: who sends it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    user: String,
    command: SeatsCommand,
    now: DateTime<Utc>,
}

/// A generated event and command stream, with the reference model's prediction for each
/// command.
#[derive(Clone)]
struct Stream {
    spec: EventSpec,
    steps: Vec<Step>,
    predicted: Vec<Decided>,
}

/// Prints one line per command, so a shrunk failing case reads like a log.
impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = &self.spec;
        writeln!(
            f,
            "Event ttl={}s holds_per_user_max={} seats_per_hold_max={} sales {:?}..{:?}",
            spec.hold_ttl_seconds,
            spec.holds_per_user_max,
            spec.seats_per_hold_max,
            spec.sales_open_at.map(|t| t.to_rfc3339()),
            spec.sales_close_at.map(|t| t.to_rfc3339()),
        )?;
        for section in &spec.sections {
            let rows: Vec<String> = section
                .rows
                .iter()
                .map(|row| format!("{}:{}", row.row_id, row.seats))
                .collect();
            writeln!(f, "  section {} {}", section.section_id, rows.join(" "))?;
        }
        for (i, (step, predicted)) in self.steps.iter().zip(&self.predicted).enumerate() {
            let command = match &step.command {
                SeatsCommand::CreateEvent { spec: other } => {
                    format!("create (same spec: {})", other == spec)
                }
                SeatsCommand::HoldSeats { seat_ids } => format!("hold {seat_ids:?}"),
                SeatsCommand::HoldBest { count, section } => {
                    format!("best {count} in {section:?}")
                }
                SeatsCommand::ConfirmHold { hold_id } => format!("confirm {hold_id}"),
                SeatsCommand::ReleaseHold { hold_id } => format!("release {hold_id}"),
                SeatsCommand::LapseHold { hold_id } => format!("lapse {hold_id}"),
            };
            let expected = match predicted {
                Ok(Decision::SeatsHeld {
                    hold_id,
                    seat_ids,
                    expires_at,
                    price_total,
                }) => format!(
                    "{hold_id} {seat_ids:?} expires {} costs {price_total}",
                    expires_at.format("%H:%M:%S")
                ),
                other => status_name(other).to_string(),
            };
            writeln!(
                f,
                "  #{i:<3} {} {:<3} {command}  => model: {expected}",
                step.now.format("%Y-%m-%dT%H:%M:%SZ"),
                step.user,
            )?;
        }
        Ok(())
    }
}

/// Realises operations into steps, asking the model what exists at each one.
struct Builder {
    model: Model,
    now: DateTime<Utc>,
    base: DateTime<Utc>,
    steps: Vec<Step>,
    predicted: Vec<Decided>,
    /// Lapse timers the model expects, `(due, holder, hold number)`, in scheduling order.
    timers: Vec<(DateTime<Utc>, String, usize)>,
    /// Those the scheduler has not fired yet.
    pending: BTreeSet<(DateTime<Utc>, usize)>,
}

impl Builder {
    fn push(&mut self, user: String, command: SeatsCommand, now: DateTime<Utc>) {
        let step = Step { user, command, now };
        let predicted = self.model.apply(&step);
        if let Ok(Decision::SeatsHeld { expires_at, .. }) = &predicted {
            let number = self.model.holds.len() - 1;
            self.timers.push((*expires_at, step.user.clone(), number));
            self.pending.insert((*expires_at, number));
        }
        self.steps.push(step);
        self.predicted.push(predicted);
    }

    fn step(&mut self, op: &Op) {
        let now = self.now;
        match op {
            Op::HoldSeats { user: u, seats } => {
                let seat_ids = self.realise_seats(seats);
                self.push(user(*u), SeatsCommand::HoldSeats { seat_ids }, now);
            }
            Op::HoldBest {
                user: u,
                count,
                section,
                pick,
            } => {
                let sections = &self.model.spec.sections;
                let section = match section {
                    0 => None,
                    1 => Some(sections[pick.index(sections.len())].section_id.clone()),
                    _ => Some("stalls".to_string()),
                };
                let command = SeatsCommand::HoldBest {
                    count: *count,
                    section,
                };
                self.push(user(*u), command, now);
            }
            Op::EndHold {
                hold,
                confirm,
                foreign,
            } => {
                if self.model.holds.is_empty() {
                    return;
                }
                let number = hold.index(self.model.holds.len());
                let holder = self.model.holds[number].user.clone();
                let sender = match foreign {
                    Some(u) => user(*u),
                    None => holder,
                };
                self.push(sender, end_command(*confirm, hold_id(number)), now);
            }
            Op::BadHoldId {
                user: u,
                confirm,
                kind,
            } => {
                let made = self.model.holds.len();
                let id = match kind {
                    0 => format!("{EVENT_ID}-h0"),
                    1 => format!("{EVENT_ID}-h0{}", made.max(1)),
                    2 => hold_id(made),
                    3 => "other-h1".to_string(),
                    4 => format!("{EVENT_ID}-1"),
                    5 => format!("{EVENT_ID}-h"),
                    _ => String::new(),
                };
                self.push(user(*u), end_command(*confirm, id), now);
            }
            Op::Recreate { same } => {
                let mut spec = self.model.spec.clone();
                if !same {
                    spec.hold_ttl_seconds += 1;
                }
                self.push("operator".into(), SeatsCommand::CreateEvent { spec }, now);
            }
            Op::Resend(pick) => {
                if !self.steps.is_empty() {
                    let earlier = self.steps[pick.index(self.steps.len())].clone();
                    self.push(earlier.user, earlier.command, now);
                }
            }
            Op::Duplicate(pick) => {
                if !self.steps.is_empty() {
                    let earlier = self.steps[pick.index(self.steps.len())].clone();
                    self.push(earlier.user, earlier.command, earlier.now);
                }
            }
            Op::FireDue => {
                while let Some(&(due, number)) = self.pending.first() {
                    if due > now {
                        break;
                    }
                    self.pending.pop_first();
                    let holder = self.model.holds[number].user.clone();
                    self.push(holder, lapse(number), due);
                }
            }
            Op::FireTimer { timer, mode } => {
                if self.timers.is_empty() {
                    return;
                }
                let (due, holder, number) = self.timers[timer.index(self.timers.len())].clone();
                let (sender, at) = match mode {
                    0 => (holder, due),
                    1 => (holder, now.max(due + Duration::seconds(60))),
                    2 => (holder, due - Duration::seconds(1)),
                    _ => (foreign_user(&holder), due),
                };
                self.push(sender, lapse(number), at);
            }
            Op::Tick(secs) => self.now += Duration::seconds(*secs),
            Op::JumpTo { target, nudge_secs } => {
                let targets = self.instants_of_interest();
                if !targets.is_empty() {
                    self.now =
                        targets[target.index(targets.len())] + Duration::seconds(*nudge_secs);
                }
            }
        }
    }

    fn realise_seats(&self, picks: &[SeatPick]) -> Vec<String> {
        let all = &self.model.seat_ids;
        let free: Vec<&String> = all.iter().filter(|id| self.model.is_free(id)).collect();
        let mut ids: Vec<String> = Vec::new();
        for pick in picks {
            let id = match pick {
                SeatPick::Free(i) if !free.is_empty() => free[i.index(free.len())].clone(),
                SeatPick::Free(i) | SeatPick::Any(i) => all[i.index(all.len())].clone(),
                SeatPick::Repeat => match ids.last() {
                    Some(last) => last.clone(),
                    None => all[0].clone(),
                },
                SeatPick::Missing(kind, i) => missing_seat_id(&self.model.spec, *kind, *i),
            };
            ids.push(id);
        }
        ids
    }

    fn instants_of_interest(&self) -> Vec<DateTime<Utc>> {
        let spec = &self.model.spec;
        let mut instants: Vec<DateTime<Utc>> = vec![self.base];
        instants.extend(spec.sales_open_at);
        instants.extend(spec.sales_close_at);
        instants.extend(self.model.holds.iter().map(|hold| hold.expires_at));
        instants
    }
}

fn end_command(confirm: bool, hold_id: String) -> SeatsCommand {
    if confirm {
        SeatsCommand::ConfirmHold { hold_id }
    } else {
        SeatsCommand::ReleaseHold { hold_id }
    }
}

fn lapse(number: usize) -> SeatsCommand {
    SeatsCommand::LapseHold {
        hold_id: hold_id(number),
    }
}

fn foreign_user(holder: &str) -> String {
    if holder == user(0) {
        user(1)
    } else {
        user(0)
    }
}

/// An id that names no seat of `spec`, built from one of its rows.
fn missing_seat_id(spec: &EventSpec, kind: u8, pick: Index) -> String {
    let section = &spec.sections[pick.index(spec.sections.len())];
    let row = &section.rows[pick.index(section.rows.len())];
    let (s, r) = (&section.section_id, &row.row_id);
    match kind {
        0 => format!("{s}-{r}-0"),
        1 => format!("{s}-{r}-01"),
        2 => format!("{s}-{r}-{}", row.seats + 1),
        3 => format!("{s}-Z-1"),
        4 => format!("stalls-{r}-1"),
        5 => format!("{s}-{r}"),
        6 => format!("{s}-{r}-+1"),
        _ => format!("{s}-{r}-1-1"),
    }
}

fn build_stream(gen: &EventGen, ops: &[Op]) -> Stream {
    let base = utc(BASE);
    let spec = gen.spec(base);
    let mut builder = Builder {
        model: Model::new(&spec),
        now: base,
        base,
        steps: Vec::new(),
        predicted: Vec::new(),
        timers: Vec::new(),
        pending: BTreeSet::new(),
    };
    for op in ops {
        builder.step(op);
    }
    Stream {
        spec,
        steps: builder.steps,
        predicted: builder.predicted,
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    (event_gen(), prop::collection::vec(op(), 1..=OPS_MAX))
        .prop_map(|(gen, ops)| build_stream(&gen, &ops))
}

// ---------------------------------------------------------------------------------------
// The reference model: the rules of processors/src/seats/mod.rs, written plainly
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModelSeat {
    Free,
    Held(usize),
    Sold(usize),
}

#[derive(Debug, Clone)]
struct ModelHold {
    user: String,
    seats: Vec<String>,
    expires_at: DateTime<Utc>,
    price_total: u64,
    status: HoldStatus,
}

#[derive(Debug, Clone)]
struct Model {
    spec: EventSpec,
    /// Every seat id, in seat-map order.
    seat_ids: Vec<String>,
    /// Seat id → (section index, position in `seat_ids`, state).
    seats: BTreeMap<String, (usize, usize, ModelSeat)>,
    holds: Vec<ModelHold>,
}

impl Model {
    fn new(spec: &EventSpec) -> Self {
        let mut model = Model {
            spec: spec.clone(),
            seat_ids: Vec::new(),
            seats: BTreeMap::new(),
            holds: Vec::new(),
        };
        for (s, section) in spec.sections.iter().enumerate() {
            for row in &section.rows {
                for n in 1..=row.seats {
                    let id = format!("{}-{}-{n}", section.section_id, row.row_id);
                    model
                        .seats
                        .insert(id.clone(), (s, model.seat_ids.len(), ModelSeat::Free));
                    model.seat_ids.push(id);
                }
            }
        }
        model
    }

    fn is_free(&self, id: &str) -> bool {
        self.seats[id].2 == ModelSeat::Free
    }

    fn apply(&mut self, step: &Step) -> Decided {
        let decided = self.decide(step);
        if let Ok(decision) = &decided {
            self.record(&step.user, decision);
        }
        decided
    }

    fn decide(&self, step: &Step) -> Decided {
        let now = step.now;
        match &step.command {
            SeatsCommand::CreateEvent { spec } => {
                if *spec == self.spec {
                    Ok(Decision::EventCreated { spec: spec.clone() })
                } else {
                    Err(Rejection::ResourceExists)
                }
            }
            SeatsCommand::HoldSeats { seat_ids } => {
                self.window(now)?;
                self.size(seat_ids.len())?;
                let mut seen: Vec<&String> = Vec::new();
                for id in seat_ids {
                    if !self.seats.contains_key(id) {
                        return Err(Rejection::SeatNotFound);
                    }
                    if seen.contains(&id) {
                        return Err(Rejection::DuplicateSeat);
                    }
                    seen.push(id);
                }
                self.limit(&step.user)?;
                if seat_ids.iter().any(|id| !self.is_free(id)) {
                    return Err(Rejection::SeatUnavailable);
                }
                let mut seats = seat_ids.clone();
                seats.sort_by_key(|id| self.seats[id].1);
                Ok(self.held(seats, now))
            }
            SeatsCommand::HoldBest { count, section } => {
                self.window(now)?;
                self.size(*count as usize)?;
                let candidates: Vec<usize> = match section {
                    None => (0..self.spec.sections.len()).collect(),
                    Some(id) => vec![self
                        .spec
                        .sections
                        .iter()
                        .position(|s| s.section_id == *id)
                        .ok_or(Rejection::SectionNotFound)?],
                };
                self.limit(&step.user)?;
                let seats = self
                    .best(*count, &candidates)
                    .ok_or(Rejection::NotEnoughSeats)?;
                Ok(self.held(seats, now))
            }
            SeatsCommand::ConfirmHold { hold_id } => {
                let number = self.active(&step.user, hold_id)?;
                let hold = &self.holds[number];
                if now >= hold.expires_at {
                    return Err(Rejection::HoldExpired);
                }
                Ok(Decision::HoldConfirmed {
                    hold_id: hold_id.clone(),
                    seat_ids: hold.seats.clone(),
                    price_total: hold.price_total,
                })
            }
            SeatsCommand::ReleaseHold { hold_id } => {
                let number = self.active(&step.user, hold_id)?;
                let hold = &self.holds[number];
                if now >= hold.expires_at {
                    return Err(Rejection::HoldExpired);
                }
                Ok(Decision::HoldReleased {
                    hold_id: hold_id.clone(),
                    seat_ids: hold.seats.clone(),
                })
            }
            SeatsCommand::LapseHold { hold_id } => {
                let number = self.active(&step.user, hold_id)?;
                let hold = &self.holds[number];
                if now < hold.expires_at {
                    return Err(Rejection::NotDueYet);
                }
                Ok(Decision::HoldLapsed {
                    hold_id: hold_id.clone(),
                    seat_ids: hold.seats.clone(),
                })
            }
        }
    }

    fn window(&self, now: DateTime<Utc>) -> Result<(), Rejection> {
        if let Some(open) = self.spec.sales_open_at {
            if now < open {
                return Err(Rejection::NotOpenYet);
            }
        }
        if let Some(close) = self.spec.sales_close_at {
            if now >= close {
                return Err(Rejection::Closed);
            }
        }
        Ok(())
    }

    fn size(&self, count: usize) -> Result<(), Rejection> {
        if count < 1 || count > self.spec.seats_per_hold_max as usize {
            Err(Rejection::HoldSizeInvalid)
        } else {
            Ok(())
        }
    }

    fn limit(&self, user: &str) -> Result<(), Rejection> {
        let active = self
            .holds
            .iter()
            .filter(|h| h.user == user && h.status == HoldStatus::Active)
            .count();
        if active >= self.spec.holds_per_user_max as usize {
            Err(Rejection::HoldLimitReached)
        } else {
            Ok(())
        }
    }

    /// Rule 6: a run of `count` free seats in the first row that has one; else the
    /// front-most `count` free seats of the first section with that many.
    fn best(&self, count: u32, candidates: &[usize]) -> Option<Vec<String>> {
        for &s in candidates {
            let section = &self.spec.sections[s];
            for row in &section.rows {
                let id = |n: u32| format!("{}-{}-{n}", section.section_id, row.row_id);
                if count > row.seats {
                    continue;
                }
                for start in 1..=row.seats - count + 1 {
                    if (start..start + count).all(|n| self.is_free(&id(n))) {
                        return Some((start..start + count).map(id).collect());
                    }
                }
            }
        }
        for &s in candidates {
            let free: Vec<String> = self
                .seat_ids
                .iter()
                .filter(|id| self.seats[*id].0 == s && self.is_free(id))
                .cloned()
                .collect();
            if free.len() >= count as usize {
                return Some(free[..count as usize].to_vec());
            }
        }
        None
    }

    fn held(&self, seat_ids: Vec<String>, now: DateTime<Utc>) -> Decision {
        let price_total = seat_ids
            .iter()
            .map(|id| self.spec.sections[self.seats[id].0].price_tier.price_minor)
            .sum();
        Decision::SeatsHeld {
            hold_id: hold_id(self.holds.len()),
            seat_ids,
            expires_at: now + Duration::seconds(i64::from(self.spec.hold_ttl_seconds)),
            price_total,
        }
    }

    fn active(&self, user: &str, id: &str) -> Result<usize, Rejection> {
        let number = (0..self.holds.len())
            .find(|&n| hold_id(n) == id)
            .ok_or(Rejection::HoldNotFound)?;
        let hold = &self.holds[number];
        if hold.user != user {
            return Err(Rejection::NotHoldHolder);
        }
        match hold.status {
            HoldStatus::Active => Ok(number),
            HoldStatus::Confirmed => Err(Rejection::HoldAlreadyConfirmed),
            HoldStatus::Released => Err(Rejection::HoldAlreadyReleased),
            HoldStatus::Lapsed => Err(Rejection::HoldExpired),
        }
    }

    fn record(&mut self, user: &str, decision: &Decision) {
        let (id, end) = match decision {
            Decision::SeatsHeld {
                seat_ids,
                expires_at,
                price_total,
                ..
            } => {
                for id in seat_ids {
                    self.seats.get_mut(id).unwrap().2 = ModelSeat::Held(self.holds.len());
                }
                self.holds.push(ModelHold {
                    user: user.to_string(),
                    seats: seat_ids.clone(),
                    expires_at: *expires_at,
                    price_total: *price_total,
                    status: HoldStatus::Active,
                });
                return;
            }
            Decision::HoldConfirmed { hold_id, .. } => (hold_id, HoldStatus::Confirmed),
            Decision::HoldReleased { hold_id, .. } => (hold_id, HoldStatus::Released),
            Decision::HoldLapsed { hold_id, .. } => (hold_id, HoldStatus::Lapsed),
            _ => return,
        };
        let number = (0..self.holds.len()).find(|&n| hold_id(n) == *id).unwrap();
        self.holds[number].status = end;
        for seat in self.holds[number].seats.clone() {
            self.seats.get_mut(&seat).unwrap().2 = if end == HoldStatus::Confirmed {
                ModelSeat::Sold(number)
            } else {
                ModelSeat::Free
            };
        }
    }

    fn view(&self) -> EventAvailability {
        EventAvailability {
            event_id: EVENT_ID.into(),
            title: self.spec.title.clone(),
            starts_at: self.spec.starts_at,
            sales_open_at: self.spec.sales_open_at,
            sales_close_at: self.spec.sales_close_at,
            sections: self
                .spec
                .sections
                .iter()
                .enumerate()
                .map(|(s, section)| {
                    let states: Vec<(&String, ModelSeat)> = self
                        .seat_ids
                        .iter()
                        .filter(|id| self.seats[*id].0 == s)
                        .map(|id| (id, self.seats[id].2))
                        .collect();
                    let count = |f: fn(&ModelSeat) -> bool| {
                        states.iter().filter(|(_, st)| f(st)).count() as u32
                    };
                    SectionAvailability {
                        section_id: section.section_id.clone(),
                        price_tier: section.price_tier.clone(),
                        seats: states.len() as u32,
                        free: count(|st| *st == ModelSeat::Free),
                        held: count(|st| matches!(st, ModelSeat::Held(_))),
                        sold: count(|st| matches!(st, ModelSeat::Sold(_))),
                        free_seat_ids: states
                            .iter()
                            .filter(|(_, st)| *st == ModelSeat::Free)
                            .map(|(id, _)| (*id).clone())
                            .collect(),
                    }
                })
                .collect(),
        }
    }

    fn hold_records(&self) -> Vec<HoldRecord> {
        self.holds
            .iter()
            .enumerate()
            .map(|(n, hold)| HoldRecord {
                hold_id: hold_id(n),
                user_id: hold.user.clone(),
                seat_ids: hold.seats.clone(),
                expires_at: hold.expires_at,
                price_total: hold.price_total,
                status: hold.status,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// The driver: the state machine as the partition runs it
// ---------------------------------------------------------------------------------------

/// What the state looks like after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    view: EventAvailability,
    holds: Vec<HoldRecord>,
}

fn snapshot(event: &SeatedEvent) -> Snapshot {
    Snapshot {
        view: event.availability(),
        holds: (0..event.hold_count())
            .map(|n| event.hold(&hold_id(n)).unwrap())
            .collect(),
    }
}

#[derive(Debug)]
struct Run {
    decided: Vec<Decided>,
    timers: Vec<Vec<ScheduledTimer>>,
    /// `after[i]`: the state after command `i`; `initial` before any.
    after: Vec<Snapshot>,
    initial: Snapshot,
}

fn create(spec: &EventSpec) -> SeatedEvent {
    SeatedEvent::create(EVENT_ID, spec).unwrap()
}

/// Decides and evolves each step on `event` (rejections too, as `Decision::Rejected`).
fn drive(mut event: SeatedEvent, steps: &[Step]) -> (SeatedEvent, Run) {
    let initial = snapshot(&event);
    let mut run = Run {
        decided: Vec::new(),
        timers: Vec::new(),
        after: Vec::new(),
        initial,
    };
    for step in steps {
        let decided = event.decide(&step.user, &step.command, step.now);
        let decision = recorded(&decided);
        event.evolve(&step.user, &decision);
        run.timers.push(decision.timers(&step.user));
        run.after.push(snapshot(&event));
        run.decided.push(decided);
    }
    (event, run)
}

fn run(stream: &Stream) -> Run {
    drive(create(&stream.spec), &stream.steps).1
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Replays the decisions alone (as `turnstile audit` would) and checks that no seat is
/// held or sold twice.
fn check_no_seat_twice(stream: &Stream, run: &Run) -> Result<(), TestCaseError> {
    #[derive(PartialEq, Eq, Debug, Clone, Copy)]
    enum Owner<'a> {
        Held(&'a str),
        Sold(&'a str),
    }
    let mut owners: HashMap<&str, Owner> = HashMap::new();
    let mut ended: BTreeSet<&str> = BTreeSet::new();
    let mut seats_of: HashMap<&str, &Vec<String>> = HashMap::new();
    for (i, decided) in run.decided.iter().enumerate() {
        match decided {
            Ok(Decision::SeatsHeld {
                hold_id, seat_ids, ..
            }) => {
                prop_assert!(
                    seats_of.insert(hold_id, seat_ids).is_none(),
                    "#{i}: hold {hold_id} made twice\n{stream:?}"
                );
                let distinct: BTreeSet<&String> = seat_ids.iter().collect();
                prop_assert_eq!(distinct.len(), seat_ids.len(), "#{}: seat repeated", i);
                for seat in seat_ids {
                    let before = owners.insert(seat, Owner::Held(hold_id));
                    prop_assert!(
                        before.is_none(),
                        "#{i}: {hold_id} takes {seat}, already {before:?}\n{stream:?}"
                    );
                }
            }
            Ok(
                Decision::HoldConfirmed {
                    hold_id, seat_ids, ..
                }
                | Decision::HoldReleased { hold_id, seat_ids }
                | Decision::HoldLapsed { hold_id, seat_ids },
            ) => {
                prop_assert!(
                    ended.insert(hold_id),
                    "#{i}: hold {hold_id} ended twice\n{stream:?}"
                );
                prop_assert_eq!(seats_of.get(hold_id.as_str()).copied(), Some(seat_ids));
                for seat in seat_ids {
                    prop_assert_eq!(
                        owners.get(seat.as_str()).copied(),
                        Some(Owner::Held(hold_id)),
                        "#{}: {} ends holding {}\n{:?}",
                        i,
                        hold_id,
                        seat,
                        stream
                    );
                    if matches!(decided, Ok(Decision::HoldConfirmed { .. })) {
                        owners.insert(seat, Owner::Sold(hold_id));
                    } else {
                        owners.remove(seat.as_str());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Replays the decisions alone and checks the per-user limit and the hold size.
fn check_limits(stream: &Stream, run: &Run) -> Result<(), TestCaseError> {
    let mut active: BTreeMap<&str, u32> = BTreeMap::new();
    let mut holder: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, (step, decided)) in stream.steps.iter().zip(&run.decided).enumerate() {
        match decided {
            Ok(Decision::SeatsHeld {
                hold_id, seat_ids, ..
            }) => {
                let count = active.entry(&step.user).or_default();
                *count += 1;
                prop_assert!(
                    *count <= stream.spec.holds_per_user_max,
                    "#{i}: {} has {count} active holds\n{stream:?}",
                    step.user
                );
                prop_assert!(
                    (1..=stream.spec.seats_per_hold_max as usize).contains(&seat_ids.len())
                );
                holder.insert(hold_id, &step.user);
            }
            Ok(
                Decision::HoldConfirmed { hold_id, .. }
                | Decision::HoldReleased { hold_id, .. }
                | Decision::HoldLapsed { hold_id, .. },
            ) => {
                *active.get_mut(holder[hold_id.as_str()]).unwrap() -= 1;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that holds end by the clock and by their holder, and that each hold schedules
/// its lapse at its expiry.
fn check_hold_ends(stream: &Stream, run: &Run) -> Result<(), TestCaseError> {
    let ttl = Duration::seconds(i64::from(stream.spec.hold_ttl_seconds));
    let mut holds: BTreeMap<&str, (&str, DateTime<Utc>)> = BTreeMap::new();
    for (i, ((step, decided), timers)) in stream
        .steps
        .iter()
        .zip(&run.decided)
        .zip(&run.timers)
        .enumerate()
    {
        match decided {
            Ok(Decision::SeatsHeld {
                hold_id,
                expires_at,
                ..
            }) => {
                prop_assert_eq!(*expires_at, step.now + ttl);
                prop_assert_eq!(
                    timers,
                    &vec![ScheduledTimer {
                        due_at: *expires_at,
                        user_id: step.user.clone(),
                        command: Command::Seats(SeatsCommand::LapseHold {
                            hold_id: hold_id.clone()
                        }),
                    }]
                );
                holds.insert(hold_id, (&step.user, *expires_at));
                continue;
            }
            Ok(
                Decision::HoldConfirmed { hold_id, .. } | Decision::HoldReleased { hold_id, .. },
            ) => {
                let (holder, expires_at) = holds[hold_id.as_str()];
                prop_assert_eq!(holder, step.user.as_str(), "#{}: not by the holder", i);
                prop_assert!(
                    step.now < expires_at,
                    "#{i}: {hold_id} ended at {} after its expiry {expires_at}\n{stream:?}",
                    step.now
                );
            }
            Ok(Decision::HoldLapsed { hold_id, .. }) => {
                let (holder, expires_at) = holds[hold_id.as_str()];
                prop_assert_eq!(holder, step.user.as_str());
                prop_assert!(
                    step.now >= expires_at,
                    "#{i}: {hold_id} lapsed at {} before its expiry {expires_at}\n{stream:?}",
                    step.now
                );
            }
            _ => {}
        }
        prop_assert!(
            timers.is_empty(),
            "#{}: only a new hold schedules a timer",
            i
        );
    }
    Ok(())
}

/// Checks free + held + sold = seats after every command, against counts implied by the
/// decisions, and that a rejection changes nothing.
fn check_counts_and_rejections(stream: &Stream, run: &Run) -> Result<(), TestCaseError> {
    let section_of = |seat: &str| -> usize {
        let section = seat.split('-').next().unwrap();
        stream
            .spec
            .sections
            .iter()
            .position(|s| s.section_id == section)
            .unwrap()
    };
    let sections = stream.spec.sections.len();
    let mut held = vec![0_u32; sections];
    let mut sold = vec![0_u32; sections];
    let mut previous = &run.initial;
    for (i, (decided, after)) in run.decided.iter().zip(&run.after).enumerate() {
        match decided {
            Ok(Decision::SeatsHeld { seat_ids, .. }) => {
                seat_ids.iter().for_each(|s| held[section_of(s)] += 1)
            }
            Ok(Decision::HoldConfirmed { seat_ids, .. }) => seat_ids.iter().for_each(|s| {
                held[section_of(s)] -= 1;
                sold[section_of(s)] += 1;
            }),
            Ok(Decision::HoldReleased { seat_ids, .. } | Decision::HoldLapsed { seat_ids, .. }) => {
                seat_ids.iter().for_each(|s| held[section_of(s)] -= 1)
            }
            Err(_) | Ok(Decision::EventCreated { .. }) => {
                prop_assert_eq!(after, previous, "#{}: a rejection changed the state", i);
            }
            Ok(other) => prop_assert!(false, "#{i}: unexpected {other:?}"),
        }
        for (s, (section, spec)) in after
            .view
            .sections
            .iter()
            .zip(&stream.spec.sections)
            .enumerate()
        {
            let seats: u32 = spec.rows.iter().map(|row| row.seats).sum();
            prop_assert_eq!(section.seats, seats);
            prop_assert_eq!(section.free + section.held + section.sold, seats);
            prop_assert_eq!(section.free_seat_ids.len(), section.free as usize);
            prop_assert_eq!(
                (section.held, section.sold),
                (held[s], sold[s]),
                "#{}: section {} counts differ from the decisions'\n{:?}",
                i,
                &section.section_id,
                stream
            );
        }
        previous = after;
    }
    Ok(())
}

/// Every decision, view and hold equals the reference model's.
fn check_against_model(stream: &Stream, run: &Run) -> Result<(), TestCaseError> {
    let mut model = Model::new(&stream.spec);
    prop_assert_eq!(&run.initial.view, &model.view());
    for (i, (step, (decided, after))) in stream
        .steps
        .iter()
        .zip(run.decided.iter().zip(&run.after))
        .enumerate()
    {
        let expected = model.apply(step);
        prop_assert_eq!(decided, &expected, "#{}\n{:?}", i, stream);
        prop_assert_eq!(&after.view, &model.view(), "#{} view", i);
        prop_assert_eq!(&after.holds, &model.hold_records(), "#{} holds", i);
    }
    Ok(())
}

fn bytes(run: &Run) -> Vec<u8> {
    let decisions: Vec<Decision> = run.decided.iter().map(recorded).collect();
    let timers: Vec<Vec<(DateTime<Utc>, &str, &Command)>> = run
        .timers
        .iter()
        .map(|timers| {
            timers
                .iter()
                .map(|t| (t.due_at, t.user_id.as_str(), &t.command))
                .collect()
        })
        .collect();
    serde_json::to_vec(&(decisions, timers)).unwrap()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn no_seat_held_or_sold_twice(stream in stream()) {
        check_no_seat_twice(&stream, &run(&stream))?;
    }

    #[test]
    fn holds_per_user_never_exceed_the_limit(stream in stream()) {
        check_limits(&stream, &run(&stream))?;
    }

    #[test]
    fn holds_end_by_the_clock_and_by_the_holder(stream in stream()) {
        check_hold_ends(&stream, &run(&stream))?;
    }

    #[test]
    fn counts_add_up_and_rejections_change_nothing(stream in stream()) {
        check_counts_and_rejections(&stream, &run(&stream))?;
    }

    #[test]
    fn decisions_match_reference_model(stream in stream()) {
        check_against_model(&stream, &run(&stream))?;
    }

    #[test]
    fn replay_is_byte_identical(stream in stream()) {
        let first = run(&stream);
        let second = run(&stream);
        prop_assert_eq!(bytes(&first), bytes(&second));
        prop_assert_eq!(first.after, second.after);
    }

    #[test]
    fn restore_then_continue_equals_uninterrupted(stream in stream(), cut in any::<Index>()) {
        let cut = cut.index(stream.steps.len() + 1);
        let (_, whole) = drive(create(&stream.spec), &stream.steps);
        // Recovery: create, then evolve the recorded decisions (rejections included).
        let mut restored = create(&stream.spec);
        for (step, decided) in stream.steps[..cut].iter().zip(&whole.decided) {
            restored.evolve(&step.user, &recorded(decided));
        }
        let at_cut = if cut == 0 { &whole.initial } else { &whole.after[cut - 1] };
        prop_assert_eq!(&snapshot(&restored), at_cut);
        let (_, rest) = drive(restored, &stream.steps[cut..]);
        prop_assert_eq!(&rest.decided[..], &whole.decided[cut..], "cut at #{}\n{:?}", cut, stream);
        prop_assert_eq!(&rest.timers[..], &whole.timers[cut..]);
        prop_assert_eq!(&rest.after[..], &whole.after[cut..]);
    }
}

#[test]
fn generator_exercises_every_rule() {
    let mut runner = TestRunner::deterministic();
    let strategy = stream();
    let mut decisions: BTreeMap<&str, usize> = BTreeMap::new();
    let mut boundaries: BTreeMap<&str, usize> = BTreeMap::new();
    let mut count = |what: &'static str, hit: bool| {
        *boundaries.entry(what).or_default() += usize::from(hit);
    };
    for _ in 0..300 {
        let stream = strategy.new_tree(&mut runner).unwrap().current();
        let spec = &stream.spec;
        let mut expiries: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
        let mut previous_time = None;
        let mut seen: Vec<&Step> = Vec::new();
        for (step, predicted) in stream.steps.iter().zip(&stream.predicted) {
            *decisions.entry(status_name(predicted)).or_default() += 1;
            let now = step.now;
            count(
                "clock went backwards",
                previous_time.is_some_and(|t| now < t),
            );
            previous_time = Some(now);
            count(
                "an earlier command again",
                seen.iter()
                    .any(|s| s.command == step.command && s.user == step.user),
            );
            seen.push(step);
            let is_hold = matches!(
                step.command,
                SeatsCommand::HoldSeats { .. } | SeatsCommand::HoldBest { .. }
            );
            if is_hold {
                count(
                    "hold exactly at sales_open_at",
                    spec.sales_open_at == Some(now),
                );
                count(
                    "hold exactly at sales_close_at",
                    spec.sales_close_at == Some(now),
                );
            }
            let hold_of = |command: &SeatsCommand| match command {
                SeatsCommand::ConfirmHold { hold_id }
                | SeatsCommand::ReleaseHold { hold_id }
                | SeatsCommand::LapseHold { hold_id } => expiries.get(hold_id.as_str()).copied(),
                _ => None,
            };
            let expiry = hold_of(&step.command);
            match (&step.command, predicted) {
                (SeatsCommand::ConfirmHold { .. }, Ok(_)) => count(
                    "confirmed one second before expiry",
                    expiry == Some(now + Duration::seconds(1)),
                ),
                (SeatsCommand::ConfirmHold { .. }, Err(Rejection::HoldExpired)) => {
                    count("confirm refused exactly at expiry", expiry == Some(now))
                }
                (SeatsCommand::LapseHold { .. }, Ok(_)) => {
                    count("lapsed exactly at expiry", expiry == Some(now))
                }
                (SeatsCommand::LapseHold { .. }, Err(Rejection::NotDueYet)) => count(
                    "lapse one second early",
                    expiry == Some(now + Duration::seconds(1)),
                ),
                (
                    SeatsCommand::HoldBest { count: n, .. },
                    Ok(Decision::SeatsHeld { seat_ids, .. }),
                ) => {
                    let first = &seat_ids[0];
                    let together = seat_ids.iter().all(|s| {
                        s.rsplit_once('-').unwrap().0 == first.rsplit_once('-').unwrap().0
                    });
                    let row = first.rsplit_once('-').unwrap().0;
                    let first_row = format!(
                        "{}-{}",
                        spec.sections[0].section_id, spec.sections[0].rows[0].row_id
                    );
                    count("best available split across rows", !together);
                    count(
                        "best available of several seats together beyond the first row",
                        together && *n > 1 && row != first_row,
                    );
                    count(
                        "best available in a later section",
                        !first.starts_with(&spec.sections[0].section_id),
                    );
                }
                _ => {}
            }
            if let Ok(Decision::SeatsHeld {
                hold_id,
                expires_at,
                ..
            }) = predicted
            {
                expiries.insert(hold_id, *expires_at);
            }
        }
    }
    let mut expected: Vec<&str> = vec![
        "event_created",
        "seats_held",
        "hold_confirmed",
        "hold_released",
        "hold_lapsed",
    ];
    expected.extend(
        [
            Rejection::NotOpenYet,
            Rejection::Closed,
            Rejection::ResourceExists,
            Rejection::NotDueYet,
            Rejection::SeatNotFound,
            Rejection::DuplicateSeat,
            Rejection::SeatUnavailable,
            Rejection::SectionNotFound,
            Rejection::HoldSizeInvalid,
            Rejection::NotEnoughSeats,
            Rejection::HoldLimitReached,
            Rejection::HoldNotFound,
            Rejection::NotHoldHolder,
            Rejection::HoldAlreadyConfirmed,
            Rejection::HoldAlreadyReleased,
            Rejection::HoldExpired,
        ]
        .map(Rejection::code),
    );
    for name in &expected {
        assert!(
            decisions.get(name).copied().unwrap_or(0) >= 10,
            "{name}: {decisions:?}"
        );
    }
    assert_eq!(
        decisions.len(),
        expected.len(),
        "an unexpected decision: {decisions:?}"
    );
    for (what, hits) in &boundaries {
        assert!(
            *hits >= 3,
            "{what}: only {hits} hits in 300 streams ({boundaries:?})"
        );
    }
    assert_eq!(boundaries.len(), 11, "{boundaries:?}");
}
