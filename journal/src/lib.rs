//! The journal: where decisions become durable.
//!
//! # Layout
//! - [`Journal`] (`backend.rs`): the journal on either backend, what the rest of turnstile
//!   uses; [`JournalLocation`] says which (a SQLite path or a PostgreSQL URL).
//! - [`sqlite`]: the embedded default's journal, a SQLite file (sqlx).
//! - [`postgres`]: the production journal, PostgreSQL 15 or Aurora PostgreSQL (sqlx), with
//!   the same methods and semantics.
//! - `deliveries`: the sinks' delivery ledger rows ([`Delivery`]) and per-partition
//!   standing ([`SinkPartitionStatus`]), alike on both backends.
//! - `load`: recovery's read, outcome bodies parsed on worker threads as rows arrive.
//! - `rows`: what every backend stores and reads back alike: lookup rows, the outcome's
//!   canonical JSON, the status column, time encoding.
//! - `migrations/`: SQLite's schema, applied in order on open (tracked by `PRAGMA
//!   user_version`); `migrations/postgres/`: Postgres's, tracked in `journal_migrations`.
//!
//! A processor commits each batch in **one** transaction: the outcomes, the projections
//! derived from them (campaigns, coupons, outbox rows for the sinks), dead letters, and the
//! partition's next offset — guarded by the partition's epoch so a fenced processor's
//! commit changes nothing. `docs/exactly-once.md` states the protocol this implements.

mod backend;
mod deliveries;
mod load;
pub mod postgres;
mod rows;
pub mod sqlite;

pub use backend::{Journal, JournalLocation};
pub use deliveries::{message_key, Delivery, DeliveryState, SinkPartitionStatus};
pub use postgres::PostgresJournal;
pub use rows::{
    expected_archive_records, outcome_json, ArchiveMismatch, CampaignRow, CouponRow, LimitBreach,
    StoredOutcome, TimerRow,
};
pub use sqlite::SqliteJournal;

use turnstile_schemas::Outcome;

/// Everything one batch of decisions writes, committed atomically.
#[derive(Debug, Clone, Default)]
pub struct BatchCommit {
    /// The partition the batch was read from.
    pub partition: u32,
    /// The epoch the committing processor was granted when it took the partition.
    pub epoch: u64,
    /// The partition's next offset before this batch (a paired check against the journal).
    pub from_offset: u64,
    /// The offset after the last record of the batch.
    pub next_offset: u64,
    /// New outcomes, in log order. Duplicates of earlier requests are not in here.
    pub outcomes: Vec<std::sync::Arc<Outcome>>,
    /// Records that could not be decided.
    pub dead_letters: Vec<DeadLetter>,
    /// The current view of every event, venue or lot the batch changed.
    pub views: Vec<ResourceView>,
}

/// What users see of an event, a venue or a lot: its availability as JSON, as of the
/// batch that last changed it (`resource_views`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceView {
    /// The resource.
    pub resource_id: String,
    /// Its domain (`seats`, `venue`, `auction`).
    pub domain: String,
    /// The view's JSON.
    pub body: String,
}

/// A log record rejected without a decision (it did not parse or is not a valid command).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The record's bytes, as read.
    pub payload: Vec<u8>,
}

/// A partition's row in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLease {
    /// The partition.
    pub partition: u32,
    /// The epoch; commits must carry it.
    pub epoch: u64,
    /// Next log offset to decide.
    pub next_offset: u64,
}

/// Errors of the journal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another processor took the partition (its epoch is newer), or the journal's offset
    /// is not where this processor believed: the commit changed nothing.
    #[error(
        "partition {partition} is fenced: epoch {epoch} at offset {from_offset} no longer owns it"
    )]
    Fenced {
        /// The partition.
        partition: u32,
        /// The stale epoch.
        epoch: u64,
        /// The offset the stale processor expected.
        from_offset: u64,
    },
    /// The database failed.
    #[error("journal database error: {0}")]
    Database(#[from] sqlx::Error),
    /// There is no journal where one was expected.
    #[error("no journal at {}: check --data-dir (a server creates it on first start)", .0.display())]
    NotFound(std::path::PathBuf),
    /// The journal holds something this build cannot read.
    #[error("journal is corrupt or from a newer version: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether trying again (after reloading the partition) can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Fenced { .. } | Error::Corrupt(_) | Error::NotFound(_) => false,
            Error::Database(e) => {
                matches!(
                    e,
                    sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
                ) || e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|code| is_retriable_code(&code))
            }
        }
    }
}

/// Whether a database error code names a passing condition. SQLite's codes are decimal
/// numbers and PostgreSQL's five-character SQLSTATEs, so one list serves both.
fn is_retriable_code(code: &str) -> bool {
    matches!(
        code,
        // SQLite: SQLITE_BUSY / SQLITE_LOCKED, another connection holds the lock.
        "5" | "6"
        // PostgreSQL: serialization_failure, deadlock_detected (another transaction won),
        // too_many_connections, admin_shutdown / crash_shutdown / cannot_connect_now (a
        // restart or an Aurora failover).
        | "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
    ) || code.starts_with("08") // PostgreSQL connection_exception: the connection broke.
}
