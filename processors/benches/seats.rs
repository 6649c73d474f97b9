//! Decisions per second of a seated event's state machine: `decide` + `evolve` (+ `timers`)
//! on one event of 100,000 seats (100 sections of 10 rows of 100), no I/O.
//!
//! Run: `cargo bench -p turnstile-processors --bench seats`

use chrono::{DateTime, Duration, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use turnstile_processors::domain::Domain;
use turnstile_processors::seats::SeatedEvent;
use turnstile_schemas::seats::{EventSpec, PriceTier, RowSpec, SeatsCommand, SectionSpec};

/// Holds per measured batch: 40% of the house in pairs.
const HOLDS: u32 = 20_000;

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
}

fn event() -> SeatedEvent {
    let spec = EventSpec {
        locale: None,
        title: "bench".into(),
        starts_at: start() + Duration::days(30),
        sales_open_at: None,
        sales_close_at: None,
        hold_ttl_seconds: 600,
        holds_per_user_max: 1,
        seats_per_hold_max: 10,
        sections: (0..100)
            .map(|s| SectionSpec {
                section_id: format!("s{s}"),
                price_tier: PriceTier {
                    name: format!("tier {}", s / 10),
                    price_minor: 10_000 - 50 * s,
                },
                rows: (0..10)
                    .map(|r| RowSpec {
                        row_id: format!("r{r}"),
                        seats: 100,
                    })
                    .collect(),
            })
            .collect(),
    };
    SeatedEvent::create("gala", &spec).expect("a valid spec")
}

/// Decides and applies each `(user, command)`, as the partition does, with the timers.
fn apply_all(event: &mut SeatedEvent, commands: &[(String, SeatsCommand)]) {
    let now = start() + Duration::seconds(1);
    for (user, command) in commands {
        let decision = event
            .decide(user, command, now)
            .unwrap_or_else(|reason| turnstile_schemas::Decision::Rejected { reason });
        event.evolve(user, &decision);
        black_box(decision.timers(user));
        black_box(decision);
    }
}

fn bench(c: &mut Criterion, name: &str, commands: Vec<(String, SeatsCommand)>, prefill: bool) {
    let mut group = c.benchmark_group("seats");
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                let mut event = event();
                if prefill {
                    // The holds the confirms act on.
                    apply_all(&mut event, &best_pairs());
                }
                event
            },
            |mut event| {
                apply_all(&mut event, &commands);
                event
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn best_pairs() -> Vec<(String, SeatsCommand)> {
    (0..HOLDS)
        .map(|i| {
            let command = SeatsCommand::HoldBest {
                count: 2,
                section: None,
            };
            (format!("user-{i}"), command)
        })
        .collect()
}

fn seats(c: &mut Criterion) {
    // The flash-sale path: "best two together" by distinct users, every one held.
    bench(c, "hold_best_2", best_pairs(), false);
    // Named pairs all over the map, every one held.
    let named = (0..HOLDS)
        .map(|i| {
            let seat = (i * 2) % 100_000;
            let (section, row, n) = (seat / 1_000, seat / 100 % 10, seat % 100 + 1);
            let seat_ids = vec![
                format!("s{section}-r{row}-{n}"),
                format!("s{section}-r{row}-{}", n + 1),
            ];
            (format!("user-{i}"), SeatsCommand::HoldSeats { seat_ids })
        })
        .collect();
    bench(c, "hold_seats_2", named, false);
    // Every hold confirmed by its holder.
    let confirms = (0..HOLDS)
        .map(|i| {
            let command = SeatsCommand::ConfirmHold {
                hold_id: format!("gala-h{}", i + 1),
            };
            (format!("user-{i}"), command)
        })
        .collect();
    bench(c, "confirm_hold", confirms, true);
}

criterion_group!(benches, seats);
criterion_main!(benches);
