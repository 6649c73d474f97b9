//! Decisions per second of the venue state machine on its hot command: bookings on one
//! venue (`decide` + `evolve`, as the partition applies them), no I/O.
//!
//! Run: `cargo bench -p turnstile-processors --bench venue`

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use turnstile_processors::domain::Domain;
use turnstile_processors::venue::Venue;
use turnstile_schemas::venue::{slot_id, SlotSpec, VenueCommand, VenueSpec};

const BOOKINGS: u64 = 100_000;
/// Slots per day and days booked: 8 × 60 slots of 500 covers; each gets ~208 parties.
const SLOTS_PER_DAY: u32 = 8;
const DAYS: u32 = 60;

fn spec() -> VenueSpec {
    VenueSpec {
        locale: None,
        title: "bench".into(),
        time_zone: "America/New_York".into(),
        slots: (0..SLOTS_PER_DAY)
            .map(|i| SlotSpec {
                start: format!("{:02}:00", 12 + i),
                duration_minutes: 90,
                capacity_covers: 500,
            })
            .collect(),
        party_size_max: 8,
        offer_ttl_seconds: 900,
        strict_waitlist_order: false,
        bookable_days_ahead: 60,
    }
}

/// Every guest books one table somewhere (parties of 1 or 2): every booking succeeds.
fn bookings() -> Vec<(String, VenueCommand)> {
    let first = NaiveDate::from_ymd_opt(2026, 12, 1).expect("valid date");
    (0..BOOKINGS)
        .map(|i| {
            let day = (i / u64::from(SLOTS_PER_DAY)) % u64::from(DAYS);
            let start = chrono::NaiveTime::from_hms_opt(12 + (i % 8) as u32, 0, 0).expect("time");
            let slot = slot_id(first + Duration::days(day as i64), start);
            let party_size = 1 + (i % 2) as u32;
            (
                format!("guest-{i}"),
                VenueCommand::Book { slot, party_size },
            )
        })
        .collect()
}

fn venue(c: &mut Criterion) {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
        .single()
        .expect("valid time");
    let commands = bookings();
    let mut group = c.benchmark_group("venue");
    group.throughput(Throughput::Elements(BOOKINGS));
    group.bench_function("bookings_all_booked", |b| {
        b.iter_batched(
            || Venue::create("bistro", &spec()).expect("valid spec"),
            |mut venue| {
                for (user, command) in &commands {
                    let decision = venue.decide(user, command, now).expect("booked");
                    venue.evolve(user, &decision);
                    black_box(decision);
                }
                venue
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, venue);
criterion_main!(benches);
