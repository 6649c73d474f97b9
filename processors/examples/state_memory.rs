//! Processor memory per grant (DESIGN.md §6: ≤ 150 bytes of processor state per grant).
//!
//! Grants `N` coupons of one campaign, each to its own user with its own request id, and
//! prints the state's own count of heap bytes and the process's resident-memory growth,
//! both per grant. Request ids are 36-character UUID-style keys, the shape browsers send.
//!
//! Run: `cargo run --release -p turnstile-processors --example state_memory -- [grants]`
#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use turnstile_processors::PartitionState;
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Envelope, LogPosition, ENVELOPE_VERSION,
};

fn main() {
    let grants: u32 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |a| a.parse().expect("grants is a number"));
    let now = Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap();
    let envelope = |request_id: String, user_id: String, command| Envelope {
        v: ENVELOPE_VERSION,
        request_id,
        resource_id: "drop".into(),
        user_id,
        submitted_at: now,
        traceparent: None,
        command: Command::Coupon(command),
    };
    let at = |offset| LogPosition {
        partition: 0,
        offset,
    };
    let resident_before = resident_bytes();
    let mut state = PartitionState::new(0);
    let spec = CampaignSpec {
        title: "memory".into(),
        capacity: grants,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: "Asia/Seoul".into(),
        valid_days: 0,
        locale: None,
    };
    let create = envelope(
        "create".into(),
        "operator".into(),
        CouponCommand::CreateCampaign { spec },
    );
    state.apply(&create, at(0));
    for i in 0..u64::from(grants) {
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", i >> 16, i);
        let claim = envelope(request_id, format!("user-{i}"), CouponCommand::Claim);
        assert!(state.apply(&claim, at(i + 1)).is_new);
    }
    let issued = state
        .campaigns()
        .map(|(_, c)| c.issued_count())
        .sum::<u32>();
    assert_eq!(issued, grants, "every claim is granted");
    let resident_growth = resident_bytes().saturating_sub(resident_before);
    let per_grant = |bytes: usize| bytes as f64 / f64::from(grants);
    println!(
        "{grants} grants (36-byte request ids, ~11-byte user ids): \
         state heap {:.0} bytes/grant, resident growth {:.0} bytes/grant (target <= 150)",
        per_grant(state.heap_bytes()),
        per_grant(resident_growth)
    );
}

/// Resident set size of this process, from /proc (Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
