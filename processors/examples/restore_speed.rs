//! How fast a recovering processor rebuilds its state from the journal's outcomes: the
//! in-memory half of recovery (DESIGN.md §6: back at full speed ≤ 2 s with 1M grants; the
//! journal's read is measured by `turnstile-journal`'s `commit_speed` example).
//!
//! Run: `cargo run --release -p turnstile-processors --example restore_speed -- [grants]`
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use chrono::{TimeZone, Utc};
use turnstile_processors::PartitionState;
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Envelope, LogPosition, Outcome, ENVELOPE_VERSION,
};

fn main() {
    let grants: u32 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("grants is a number"));
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let at = |offset| LogPosition {
        partition: 0,
        offset,
    };
    let envelope = |request_id: String, user_id: String, command| Envelope {
        v: ENVELOPE_VERSION,
        request_id,
        resource_id: "drop".into(),
        user_id,
        submitted_at: now,
        traceparent: None,
        command: Command::Coupon(command),
    };
    let spec = CampaignSpec {
        title: "restore".into(),
        capacity: grants,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: "America/New_York".into(),
        valid_days: 1,
        locale: None,
    };
    // The journal's outcomes, as a first run decided them.
    let mut first_run = PartitionState::new(0);
    let create = envelope(
        "create".into(),
        "operator".into(),
        CouponCommand::CreateCampaign { spec },
    );
    let created = first_run.apply(&create, at(0));
    let mut outcomes: Vec<Outcome> = vec![first_run.outcome(created.decision)];
    for i in 0..u64::from(grants) {
        let claim = envelope(
            format!("claim-{i:012}"),
            format!("user-{i}"),
            CouponCommand::Claim,
        );
        let applied = first_run.apply(&claim, at(i + 1));
        outcomes.push(first_run.outcome(applied.decision));
    }

    let started = Instant::now();
    let restored = PartitionState::restored(0, &outcomes);
    let elapsed = started.elapsed();
    assert_eq!(restored.decided_count(), outcomes.len());
    println!(
        "restored {} outcomes ({grants} grants) in {:.2} s: {:.0} outcomes/s",
        outcomes.len(),
        elapsed.as_secs_f64(),
        outcomes.len() as f64 / elapsed.as_secs_f64()
    );
}
