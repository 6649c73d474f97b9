//! Times `SqliteJournal::commit` alone: batches of granted claims, nothing else running.
//!
//! Run: `cargo run --release -p turnstile-journal --example commit_speed -- [batch] [batches]`
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use turnstile_journal::{BatchCommit, SqliteJournal};
use turnstile_schemas::{CommandKind, Coupon, Decision, LogPosition, Outcome};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let batch: u64 = args.next().map_or(100, |a| a.parse().unwrap());
    let batches: u64 = args.next().map_or(200, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(&dir.path().join("journal.sqlite"))
        .await
        .unwrap();
    let lease = journal.acquire(0).await.unwrap();
    let now = Utc::now();
    let started = Instant::now();
    for b in 0..batches {
        let outcomes = (b * batch..(b + 1) * batch)
            .map(|i| {
                Arc::new(Outcome {
                    request_id: format!("claim-{i}"),
                    resource_id: "drop".into(),
                    user_id: format!("user-{i}"),
                    command: CommandKind::Claim,
                    position: LogPosition {
                        partition: 0,
                        offset: i,
                    },
                    decided_at: now,
                    decision: Decision::CouponGranted {
                        coupon: Coupon {
                            coupon_id: format!("drop-{}", i + 1),
                            campaign_id: "drop".into(),
                            user_id: format!("user-{i}"),
                            issued_at: now,
                            expires_at: now,
                        },
                    },
                })
            })
            .collect();
        let commit = BatchCommit {
            partition: 0,
            epoch: lease.epoch,
            from_offset: b * batch,
            next_offset: (b + 1) * batch,
            outcomes,
            dead_letters: Vec::new(),
        };
        journal.commit(&commit).await.unwrap();
    }
    let elapsed = started.elapsed();
    let claims = batch * batches;
    println!(
        "{claims} claims in {batches} commits of {batch}: {:.0} claims/s, {:.0} µs per commit",
        claims as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / batches as f64
    );
}
