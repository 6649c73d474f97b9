//! Times a journal's `commit` alone (batches of granted claims, nothing else running), then
//! recovery's read: `load_outcomes` of the whole partition from a fresh connection. On
//! PostgreSQL it also times the peer DESIGN.md §6 names, in the same run: the common
//! design, a consumer doing one autocommitted INSERT per claim, and prints the ratio.
//!
//! Run: `cargo run --release -p turnstile-journal --example commit_speed --
//! [sqlite|postgres] [batch] [batches]` (default: sqlite 100 200).
//!
//! SQLite writes to a temporary file. Postgres uses `TURNSTILE_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, dropped at the end.
#![allow(clippy::unwrap_used)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::Connection;
use turnstile_journal::{BatchCommit, Journal, JournalLocation};
use turnstile_schemas::{CommandKind, Coupon, Decision, LogPosition, Outcome};

const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Claims the row-per-insert peer writes: enough for a steady rate, few enough to finish
/// in seconds at the hundreds to low thousands per second it manages.
const PEER_CLAIMS: u64 = 3_000;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let backend = match args.peek().map(String::as_str) {
        Some("sqlite") | Some("postgres") => args.next().unwrap(),
        _ => "sqlite".to_string(),
    };
    let batch: u64 = args.next().map_or(100, |a| a.parse().unwrap());
    let batches: u64 = args.next().map_or(200, |a| a.parse().unwrap());
    let (location, _dir) = location(&backend);

    let journal = open(&location).await;
    let epoch = journal.acquire(0).await.unwrap().epoch;
    let now = Utc::now();
    let started = Instant::now();
    for b in 0..batches {
        let commit = BatchCommit {
            partition: 0,
            epoch,
            from_offset: b * batch,
            next_offset: (b + 1) * batch,
            outcomes: (b * batch..(b + 1) * batch)
                .map(|i| Arc::new(granted(i, now)))
                .collect(),
            ..BatchCommit::default()
        };
        journal.commit(&commit).await.unwrap();
    }
    let elapsed = started.elapsed();
    let claims = batch * batches;
    let claims_per_sec = claims as f64 / elapsed.as_secs_f64();
    println!(
        "{backend}: {claims} claims in {batches} commits of {batch}: {claims_per_sec:.0} \
         claims/s, {:.0} µs per commit",
        elapsed.as_micros() as f64 / batches as f64
    );
    journal.close().await;

    // Recovery's read, as a restarted processor does it: a new connection, every outcome
    // of the partition in log order, parsed.
    let journal = open(&location).await;
    let started = Instant::now();
    let loaded = journal.load_outcomes(0).await.unwrap().len();
    let elapsed = started.elapsed();
    assert_eq!(loaded as u64, claims, "every committed outcome comes back");
    println!(
        "{backend}: load_outcomes of {loaded} grants: {:.2} s, {:.0} outcomes/s",
        elapsed.as_secs_f64(),
        loaded as f64 / elapsed.as_secs_f64()
    );
    journal.close().await;

    if let JournalLocation::Postgres { url, schema } = &location {
        let peer_per_sec = row_per_insert_peer(url, schema, now).await;
        println!(
            "postgres peer, one autocommitted INSERT per claim: {PEER_CLAIMS} claims at \
             {peer_per_sec:.0} claims/s; the batched journal commit is {:.1}x faster",
            claims_per_sec / peer_per_sec
        );
        let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut connection)
            .await
            .unwrap();
    }
}

/// Where this run's journal lives, and the temporary directory holding a SQLite one.
fn location(backend: &str) -> (JournalLocation, Option<tempfile::TempDir>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.sqlite");
        return (JournalLocation::Sqlite(path), Some(dir));
    }
    let url =
        std::env::var("TURNSTILE_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL_DEFAULT.into());
    let random = RandomState::new().build_hasher().finish();
    let schema = format!("commit_speed_{random:016x}");
    (JournalLocation::Postgres { url, schema }, None)
}

async fn open(location: &JournalLocation) -> Journal {
    Journal::open(location)
        .await
        .unwrap_or_else(|e| panic!("cannot open the journal ({location}): {e}"))
}

/// The common design: a consumer that writes each claim with its own INSERT, committed on
/// its own (durably: `synchronous_commit` stays on), offsets tracked elsewhere. Returns
/// claims per second.
async fn row_per_insert_peer(url: &str, schema: &str, now: DateTime<Utc>) -> f64 {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE {schema}.claims_row_per_insert (
             request_id text PRIMARY KEY, campaign_id text NOT NULL, user_id text NOT NULL,
             coupon_id text NOT NULL, log_offset bigint NOT NULL, issued_at timestamptz NOT NULL)"
    ))
    .execute(&mut connection)
    .await
    .unwrap();
    let insert = format!(
        "INSERT INTO {schema}.claims_row_per_insert
         (request_id, campaign_id, user_id, coupon_id, log_offset, issued_at)
         VALUES ($1, $2, $3, $4, $5, $6)"
    );
    let started = Instant::now();
    for i in 0..PEER_CLAIMS {
        sqlx::query(&insert)
            .bind(format!("claim-{i}"))
            .bind("drop")
            .bind(format!("user-{i}"))
            .bind(format!("drop-{}", i + 1))
            .bind(i as i64)
            .bind(now)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    PEER_CLAIMS as f64 / started.elapsed().as_secs_f64()
}

/// The `i`th claim of one campaign, granted.
fn granted(i: u64, now: DateTime<Utc>) -> Outcome {
    Outcome {
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
    }
}
