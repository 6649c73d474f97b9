//! Times a journal's `commit` alone (batches of granted claims, nothing else running), then
//! recovery's read: `load_outcomes` of the whole partition from a fresh connection.
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
use turnstile_journal::{BatchCommit, PostgresJournal, SqliteJournal};
use turnstile_schemas::{CommandKind, Coupon, Decision, LogPosition, Outcome};

const POSTGRES_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let backend = match args.peek().map(String::as_str) {
        Some("sqlite") | Some("postgres") => args.next().unwrap(),
        _ => "sqlite".to_string(),
    };
    let batch: u64 = args.next().map_or(100, |a| a.parse().unwrap());
    let batches: u64 = args.next().map_or(200, |a| a.parse().unwrap());
    let place = Place::new(&backend).await;

    let journal = place.open().await;
    let epoch = journal.acquire().await;
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
            dead_letters: Vec::new(),
        };
        journal.commit(&commit).await;
    }
    let elapsed = started.elapsed();
    let claims = batch * batches;
    println!(
        "{backend}: {claims} claims in {batches} commits of {batch}: {:.0} claims/s, {:.0} µs \
         per commit",
        claims as f64 / elapsed.as_secs_f64(),
        elapsed.as_micros() as f64 / batches as f64
    );
    journal.close().await;

    // Recovery's read, as a restarted processor does it: a new connection, every outcome
    // of the partition in log order, parsed.
    let journal = place.open().await;
    let started = Instant::now();
    let loaded = journal.load_outcomes().await;
    let elapsed = started.elapsed();
    assert_eq!(loaded as u64, claims, "every committed outcome comes back");
    println!(
        "{backend}: load_outcomes of {loaded} grants: {:.2} s, {:.0} outcomes/s",
        elapsed.as_secs_f64(),
        loaded as f64 / elapsed.as_secs_f64()
    );
    journal.close().await;
    place.remove().await;
}

/// Where the journal lives for this run.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres { url: String, schema: String },
}

/// One of the two backends (the journal crate has no trait over them; this example
/// needs only four methods).
enum Journal {
    Sqlite(SqliteJournal),
    Postgres(PostgresJournal),
}

impl Place {
    async fn new(backend: &str) -> Self {
        match backend {
            "sqlite" => Place::Sqlite(tempfile::tempdir().unwrap()),
            _ => {
                let url = std::env::var("TURNSTILE_POSTGRES_URL")
                    .unwrap_or_else(|_| POSTGRES_URL_DEFAULT.into());
                let random = RandomState::new().build_hasher().finish();
                let schema = format!("commit_speed_{random:016x}");
                Place::Postgres { url, schema }
            }
        }
    }

    async fn open(&self) -> Journal {
        match self {
            Place::Sqlite(dir) => Journal::Sqlite(
                SqliteJournal::open(&dir.path().join("journal.sqlite"))
                    .await
                    .unwrap(),
            ),
            Place::Postgres { url, schema } => Journal::Postgres(
                PostgresJournal::connect_in_schema(url, schema)
                    .await
                    .unwrap_or_else(|e| panic!("no Postgres journal at {url}: {e}")),
            ),
        }
    }

    async fn remove(self) {
        if let Place::Postgres { url, schema } = self {
            let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::raw_sql(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut connection)
                .await
                .unwrap();
        }
    }
}

impl Journal {
    async fn acquire(&self) -> u64 {
        match self {
            Journal::Sqlite(j) => j.acquire(0).await.unwrap().epoch,
            Journal::Postgres(j) => j.acquire(0).await.unwrap().epoch,
        }
    }

    async fn commit(&self, batch: &BatchCommit) {
        match self {
            Journal::Sqlite(j) => j.commit(batch).await.unwrap(),
            Journal::Postgres(j) => j.commit(batch).await.unwrap(),
        }
    }

    async fn load_outcomes(&self) -> usize {
        match self {
            Journal::Sqlite(j) => j.load_outcomes(0).await.unwrap().len(),
            Journal::Postgres(j) => j.load_outcomes(0).await.unwrap().len(),
        }
    }

    async fn close(&self) {
        match self {
            Journal::Sqlite(j) => j.close().await,
            Journal::Postgres(j) => j.close().await,
        }
    }
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
