//! Decisions per second of the in-memory core: `PartitionState::apply` on a stream of
//! claims, no I/O. DESIGN.md §6 target: ≥ 5M decisions/s on one partition.
//!
//! Run: `cargo bench -p turnstile-processors --bench decide`

use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use turnstile_processors::PartitionState;
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Envelope, LogPosition, ENVELOPE_VERSION,
};

const CLAIMS: u64 = 100_000;

fn envelope(request: u64, user: u64, command: CouponCommand) -> Envelope {
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: format!("req-{request}"),
        resource_id: "drop".into(),
        user_id: format!("user-{user}"),
        submitted_at: Utc
            .with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
            .single()
            .expect("valid time"),
        traceparent: None,
        command: Command::Coupon(command),
    }
}

fn campaign(capacity: u32) -> (PartitionState, u64) {
    let mut state = PartitionState::new(0);
    let spec = CampaignSpec {
        title: "bench".into(),
        capacity,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: "Asia/Seoul".into(),
        valid_days: 0,
        locale: None,
    };
    let create = envelope(u64::MAX, 0, CouponCommand::CreateCampaign { spec });
    state.apply(
        &create,
        LogPosition {
            partition: 0,
            offset: 0,
        },
    );
    (state, 1)
}

/// `expand`: also build each decision's full `Outcome`, as the runtime does for the journal.
fn bench_claims(c: &mut Criterion, name: &str, capacity: u32, expand: bool) {
    let claims: Vec<Envelope> = (0..CLAIMS)
        .map(|i| envelope(i, i, CouponCommand::Claim))
        .collect();
    let mut group = c.benchmark_group("decide");
    group.throughput(Throughput::Elements(CLAIMS));
    group.bench_function(name, |b| {
        b.iter_batched(
            || campaign(capacity),
            |(mut state, first_offset)| {
                for (i, claim) in claims.iter().enumerate() {
                    let position = LogPosition {
                        partition: 0,
                        offset: first_offset + i as u64,
                    };
                    let applied = state.apply(claim, position);
                    if expand {
                        black_box(state.outcome(applied.decision));
                    }
                    black_box(applied);
                }
                state
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn decide(c: &mut Criterion) {
    // Every claim wins: the most expensive path (coupon, expiry, per-user entry).
    bench_claims(c, "claims_all_granted", CLAIMS as u32, false);
    // A flash drop: 1% win, the rest are sold out.
    bench_claims(c, "claims_1pct_granted", (CLAIMS / 100) as u32, false);
    // The same two with every outcome expanded (strings, coupon id) as for the journal.
    bench_claims(c, "claims_all_granted_with_outcomes", CLAIMS as u32, true);
    bench_claims(
        c,
        "claims_1pct_granted_with_outcomes",
        (CLAIMS / 100) as u32,
        true,
    );
}

criterion_group!(benches, decide);
criterion_main!(benches);
