//! What only the Postgres journal has to get right: schemas and migrations shared by
//! several processes, read-only access, connection failures, and fencing against another
//! connection's concurrent take-over (the behaviour the backends share is in
//! `conformance.rs`).
#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::{postgres_unreachable, PostgresFixture, TestSchema};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use turnstile_journal::{BatchCommit, Error, PostgresJournal};
use turnstile_schemas::{CampaignSpec, CommandKind, Decision, LogPosition, Outcome};

#[tokio::test]
async fn journals_opening_one_new_schema_at_once_migrate_it_once() {
    let schema = TestSchema::new();
    let connects = (0..4).map(|_| PostgresJournal::connect_in_schema(&schema.url, &schema.name));
    let journals: Vec<PostgresJournal> = futures_util::future::join_all(connects)
        .await
        .into_iter()
        .map(|journal| {
            journal.unwrap_or_else(|e| panic!("{}", postgres_unreachable(&schema.url, &e)))
        })
        .collect();
    for (n, journal) in journals.iter().enumerate() {
        assert_eq!(journal.acquire(0).await.unwrap().epoch, n as u64 + 1);
    }
    let mut connection = connect_in(&schema).await;
    let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM journal_migrations")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);

    // Connecting again finds the journal as it was.
    let again = PostgresJournal::connect_in_schema(&schema.url, &schema.name)
        .await
        .unwrap();
    assert_eq!(again.acquire(0).await.unwrap().epoch, 5);
    for journal in journals.iter().chain([&again]) {
        journal.close().await;
    }
}

#[tokio::test]
async fn a_journal_from_a_newer_build_is_refused() {
    let fixture = PostgresFixture::new().await;
    let mut connection = connect_in(&fixture.schema).await;
    sqlx::query("INSERT INTO journal_migrations (version) VALUES (99)")
        .execute(&mut connection)
        .await
        .unwrap();
    let schema = &fixture.schema;
    let err = PostgresJournal::connect_in_schema(&schema.url, &schema.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(m) if m.contains("version 99")),
        "{err}"
    );
    let err = PostgresJournal::connect_read_only_in_schema(&schema.url, &schema.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(m) if m.contains("version 99")),
        "{err}"
    );
}

#[tokio::test]
async fn schema_names_that_would_need_quoting_are_refused() {
    let url = common::postgres_url();
    let too_long = "s".repeat(64);
    for name in [
        "",
        "Public",
        "1st",
        "a-b",
        "x; DROP TABLE t",
        "ä",
        too_long.as_str(),
    ] {
        let err = PostgresJournal::connect_in_schema(&url, name)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Database(sqlx::Error::Configuration(_))),
            "{name:?}: {err}"
        );
        assert!(!err.is_retriable(), "{name:?}");
    }
}

#[tokio::test]
async fn a_read_only_journal_reads_and_refuses_writes() {
    let fixture = PostgresFixture::new().await;
    let lease = fixture.journal.acquire(0).await.unwrap();
    fixture
        .journal
        .commit(&batch(lease.epoch, 0, vec![campaign_created(0)]))
        .await
        .unwrap();
    let schema = &fixture.schema;
    let reader = PostgresJournal::connect_read_only_in_schema(&schema.url, &schema.name)
        .await
        .unwrap();
    assert_eq!(reader.campaigns().await.unwrap().len(), 1);
    assert_eq!(
        reader.partitions().await.unwrap(),
        [lease_at(lease.epoch, 1)]
    );
    let err = reader.acquire(0).await.unwrap_err();
    let code = match &err {
        Error::Database(e) => e.as_database_error().and_then(|d| d.code()),
        _ => None,
    };
    assert_eq!(
        code.as_deref(),
        Some("25006"),
        "read_only_sql_transaction: {err}"
    );
    assert!(!err.is_retriable());
    reader.close().await;
}

#[tokio::test]
async fn a_read_only_connect_to_no_journal_says_so() {
    let schema = TestSchema::new();
    let err = PostgresJournal::connect_read_only_in_schema(&schema.url, &schema.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt(m) if m.contains("holds no turnstile journal")),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_fails_fast_and_is_retriable() {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    let started = Instant::now();
    let err = PostgresJournal::connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// Under READ COMMITTED a commit that queued behind a take-over's row lock re-checks the
/// partition row once the take-over commits, sees the new epoch, and is fenced.
#[tokio::test]
async fn a_commit_queued_behind_a_take_over_is_fenced() {
    let fixture = PostgresFixture::new().await;
    let lease = fixture.journal.acquire(0).await.unwrap();
    let mut take_over = connect_in(&fixture.schema).await;
    let mut tx = take_over.begin().await.unwrap();
    sqlx::query("UPDATE partitions SET epoch = epoch + 1 WHERE partition = 0")
        .execute(&mut *tx)
        .await
        .unwrap();

    let journal = fixture.journal.clone();
    let commit = tokio::spawn(async move {
        journal
            .commit(&batch(lease.epoch, 0, vec![campaign_created(0)]))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !commit.is_finished(),
        "the commit must wait for the row lock"
    );
    tx.commit().await.unwrap();

    let err = commit.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Fenced { epoch: 1, .. }), "{err}");
    assert_eq!(fixture.journal.campaigns().await.unwrap(), []);
    assert_eq!(
        fixture.journal.partitions().await.unwrap(),
        [lease_at(2, 0)]
    );
}

/// A plain connection whose search path is the test's schema.
async fn connect_in(schema: &TestSchema) -> sqlx::PgConnection {
    PgConnectOptions::from_str(&schema.url)
        .unwrap()
        .options([("search_path", schema.name.as_str())])
        .connect()
        .await
        .unwrap()
}

fn lease_at(epoch: u64, next_offset: u64) -> turnstile_journal::PartitionLease {
    turnstile_journal::PartitionLease {
        partition: 0,
        epoch,
        next_offset,
    }
}

fn batch(epoch: u64, from_offset: u64, outcomes: Vec<Outcome>) -> BatchCommit {
    BatchCommit {
        partition: 0,
        epoch,
        from_offset,
        next_offset: from_offset + outcomes.len() as u64,
        outcomes: outcomes.into_iter().map(Arc::new).collect(),
        ..BatchCommit::default()
    }
}

fn campaign_created(offset: u64) -> Outcome {
    Outcome {
        request_id: format!("create-{offset}"),
        resource_id: "drop".into(),
        user_id: "ops".into(),
        command: CommandKind::CreateCampaign,
        position: LogPosition {
            partition: 0,
            offset,
        },
        decided_at: Utc.timestamp_opt(1_750_000_000, 0).unwrap(),
        decision: Decision::CampaignCreated {
            spec: CampaignSpec {
                title: "drop".into(),
                capacity: 10,
                per_user_limit: 1,
                opens_at: None,
                closes_at: None,
                time_zone: "Asia/Tokyo".into(),
                valid_days: 0,
                locale: None,
            },
        },
    }
}
