//! [`Journal`]: the journal on whichever backend a deployment chose, behind one type, so
//! the processors, the edge, the sinks and the audit are written once.

use std::ops::Range;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use turnstile_schemas::Outcome;

use crate::{
    ArchiveMismatch, BatchCommit, CampaignRow, CouponRow, DeadLetter, Delivery, DeliveryState,
    Error, LimitBreach, PartitionLease, PostgresJournal, ResourceView, SinkPartitionStatus,
    SqliteJournal, StoredOutcome, TimerRow,
};

/// Where a journal lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalLocation {
    /// A SQLite file: the embedded default.
    Sqlite(PathBuf),
    /// A PostgreSQL (or Aurora PostgreSQL) database and the schema the journal's tables
    /// live in.
    Postgres {
        /// `postgres://user@host:port/database`.
        url: String,
        /// Schema name (lower-case letters, digits and `_`).
        schema: String,
    },
}

impl JournalLocation {
    /// A PostgreSQL URL (`postgres://` or `postgresql://`) names a Postgres journal in
    /// `schema`; anything else is the path of a SQLite file.
    pub fn parse(location: &str, schema: &str) -> Self {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            JournalLocation::Postgres {
                url: location.to_string(),
                schema: schema.to_string(),
            }
        } else {
            JournalLocation::Sqlite(PathBuf::from(location))
        }
    }
}

impl std::fmt::Display for JournalLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalLocation::Sqlite(path) => write!(f, "SQLite file {}", path.display()),
            // The URL may carry a password: show only what follows the `@`.
            JournalLocation::Postgres { url, schema } => {
                let server = url.rsplit('@').next().unwrap_or(url);
                write!(f, "PostgreSQL {server}, schema {schema}")
            }
        }
    }
}

/// The journal. Cheap to clone: each backend is a connection pool.
#[derive(Debug, Clone)]
pub enum Journal {
    /// The embedded default.
    Sqlite(SqliteJournal),
    /// The production journal.
    Postgres(PostgresJournal),
}

/// Runs the same call on whichever backend `$journal` is.
macro_rules! on_backend {
    ($journal:expr, $backend:ident => $call:expr) => {
        match $journal {
            Journal::Sqlite($backend) => $call,
            Journal::Postgres($backend) => $call,
        }
    };
}

impl Journal {
    /// Opens (creating and migrating if needed) the journal at `location`.
    pub async fn open(location: &JournalLocation) -> Result<Self, Error> {
        Ok(match location {
            JournalLocation::Sqlite(path) => Journal::Sqlite(SqliteJournal::open(path).await?),
            JournalLocation::Postgres { url, schema } => {
                Journal::Postgres(PostgresJournal::connect_in_schema(url, schema).await?)
            }
        })
    }

    /// Opens an existing journal for reading only (the audit, a demo's report).
    pub async fn open_read_only(location: &JournalLocation) -> Result<Self, Error> {
        Ok(match location {
            JournalLocation::Sqlite(path) => {
                Journal::Sqlite(SqliteJournal::open_read_only(path).await?)
            }
            JournalLocation::Postgres { url, schema } => {
                Journal::Postgres(PostgresJournal::connect_read_only_in_schema(url, schema).await?)
            }
        })
    }

    /// Takes `partition`: bumps its epoch, fencing every earlier holder.
    pub async fn acquire(&self, partition: u32) -> Result<PartitionLease, Error> {
        on_backend!(self, j => j.acquire(partition).await)
    }

    /// Every partition's lease as stored.
    pub async fn partitions(&self) -> Result<Vec<PartitionLease>, Error> {
        on_backend!(self, j => j.partitions().await)
    }

    /// Commits one batch atomically, or fails with [`Error::Fenced`] and writes nothing.
    pub async fn commit(&self, batch: &BatchCommit) -> Result<(), Error> {
        on_backend!(self, j => j.commit(batch).await)
    }

    /// Every outcome of `partition`, in log order: recovery's input.
    pub async fn load_outcomes(&self, partition: u32) -> Result<Vec<Outcome>, Error> {
        on_backend!(self, j => j.load_outcomes(partition).await)
    }

    /// Every outcome of `partition` as stored, in log order: the audit's input.
    pub async fn stored_outcomes(&self, partition: u32) -> Result<Vec<StoredOutcome>, Error> {
        on_backend!(self, j => j.stored_outcomes(partition).await)
    }

    /// The outcome of one request, if it was decided.
    pub async fn outcome(
        &self,
        resource_id: &str,
        request_id: &str,
    ) -> Result<Option<Outcome>, Error> {
        on_backend!(self, j => j.outcome(resource_id, request_id).await)
    }

    /// Every `archive_records` row (holds, bookings, lots) as `(resource_id, record_id,
    /// state)`.
    pub async fn archive_record_states(&self) -> Result<Vec<(String, String, String)>, Error> {
        on_backend!(self, j => j.archive_record_states().await)
    }

    /// The outcome that created a campaign, event, venue or lot (its spec).
    pub async fn creation_outcome(&self, resource_id: &str) -> Result<Option<Outcome>, Error> {
        on_backend!(self, j => j.creation_outcome(resource_id).await)
    }

    /// The committed view of an event, venue or lot.
    pub async fn resource_view(&self, resource_id: &str) -> Result<Option<ResourceView>, Error> {
        on_backend!(self, j => j.resource_view(resource_id).await)
    }

    /// Every decided `(resource_id, request_id)`.
    pub async fn decided_requests(&self) -> Result<Vec<(String, String)>, Error> {
        on_backend!(self, j => j.decided_requests().await)
    }

    /// One campaign, with its coupons issued so far.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, Error> {
        on_backend!(self, j => j.campaign(campaign_id).await)
    }

    /// Every campaign.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, Error> {
        on_backend!(self, j => j.campaigns().await)
    }

    /// A user's coupons.
    pub async fn coupons_of_user(&self, user_id: &str) -> Result<Vec<CouponRow>, Error> {
        on_backend!(self, j => j.coupons_of_user(user_id).await)
    }

    /// Capacities and per-user limits the journal's own rows show broken.
    pub async fn limit_breaches(&self) -> Result<Vec<LimitBreach>, Error> {
        on_backend!(self, j => j.limit_breaches().await)
    }

    /// The dead letters of `partition`, in offset order.
    pub async fn dead_letters(&self, partition: u32) -> Result<Vec<DeadLetter>, Error> {
        on_backend!(self, j => j.dead_letters(partition).await)
    }

    /// Up to `limit` outbox outcomes of `partition` from `from_offset` on.
    pub async fn outbox_from(
        &self,
        partition: u32,
        from_offset: u64,
        limit: u32,
    ) -> Result<Vec<Outcome>, Error> {
        on_backend!(self, j => j.outbox_from(partition, from_offset, limit).await)
    }

    /// A sink's saved progress: `(partition, next_offset)`.
    pub async fn sink_progress(&self, sink: &str) -> Result<Vec<(u32, u64)>, Error> {
        on_backend!(self, j => j.sink_progress(sink).await)
    }

    /// Saves a sink's progress on one partition.
    pub async fn save_sink_progress(
        &self,
        sink: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), Error> {
        on_backend!(self, j => j.save_sink_progress(sink, partition, next_offset).await)
    }

    /// Closes every connection.
    pub async fn close(&self) {
        on_backend!(self, j => j.close().await)
    }

    /// Up to `limit` timers due at `now` or before, in due order, after `after`.
    pub async fn due_timers(
        &self,
        now: DateTime<Utc>,
        after: Option<&TimerRow>,
        limit: u32,
    ) -> Result<Vec<TimerRow>, Error> {
        on_backend!(self, j => j.due_timers(now, after, limit).await)
    }

    /// Applies outbox entries of `partition` to the archive and records `sink`'s progress,
    /// in one transaction.
    pub async fn archive_batch(
        &self,
        sink: &str,
        partition: u32,
        outcomes: &[Outcome],
        next_offset: u64,
    ) -> Result<(), Error> {
        on_backend!(self, j => j.archive_batch(sink, partition, outcomes, next_offset).await)
    }

    /// Coupons whose archive row disagrees with the journal (at most 20).
    pub async fn archive_mismatches(&self) -> Result<Vec<ArchiveMismatch>, Error> {
        on_backend!(self, j => j.archive_mismatches().await)
    }

    /// Outbox entries of `kinds` that `sink` has carried without a ledger row.
    pub async fn carried_without_delivery(&self, sink: &str, kinds: &[&str]) -> Result<u64, Error> {
        on_backend!(self, j => j.carried_without_delivery(sink, kinds).await)
    }

    /// Timers not yet taken effect, and when the next is due.
    pub async fn pending_timers(&self) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        on_backend!(self, j => j.pending_timers().await)
    }

    /// The ledger rows of `sink` for outcomes of `partition` with offsets in `offsets`.
    pub async fn deliveries(
        &self,
        sink: &str,
        partition: u32,
        offsets: Range<u64>,
    ) -> Result<Vec<Delivery>, Error> {
        on_backend!(self, j => j.deliveries(sink, partition, offsets).await)
    }

    /// Marks a delivery `sending` before the provider is called; false when it was `sent`.
    pub async fn delivery_sending(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        on_backend!(self, j => j.delivery_sending(sink, partition, log_offset, message_index, at).await)
    }

    /// Marks a delivery `sent` with the provider's message id.
    pub async fn delivery_sent(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_backend!(self, j => j.delivery_sent(sink, partition, log_offset, message_index, provider_message_id, at).await)
    }

    /// Marks several deliveries `(partition, log_offset, message_index)` `sending` in one
    /// transaction; whether each may be sent.
    pub async fn deliveries_sending(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32)],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, Error> {
        on_backend!(self, j => j.deliveries_sending(sink, deliveries, at).await)
    }

    /// Marks several deliveries `(partition, log_offset, message_index,
    /// provider_message_id)` `sent` in one transaction.
    pub async fn deliveries_sent(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_backend!(self, j => j.deliveries_sent(sink, deliveries, at).await)
    }

    /// Records a provider error, leaving the delivery in `state` (`failed` or `sending`).
    #[allow(clippy::too_many_arguments)] // the ledger key is three of them
    pub async fn delivery_error(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        state: DeliveryState,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_backend!(self, j => j.delivery_error(sink, partition, log_offset, message_index, state, error, at).await)
    }

    /// Up to `limit` of `sink`'s unfinished deliveries (`queued` or `sending`).
    pub async fn deliveries_unfinished(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, Error> {
        on_backend!(self, j => j.deliveries_unfinished(sink, limit).await)
    }

    /// Re-drives failed deliveries (all, one sink's, or one outcome's); returns how many.
    pub async fn redrive_failed_deliveries(
        &self,
        sink: Option<&str>,
        outcome: Option<(u32, u64)>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        on_backend!(self, j => j.redrive_failed_deliveries(sink, outcome, at).await)
    }

    /// Every sink that saved progress or delivered anything.
    pub async fn sink_names(&self) -> Result<Vec<String>, Error> {
        on_backend!(self, j => j.sink_names().await)
    }

    /// `sink`'s progress, backlog and delivery counts on every partition.
    pub async fn sink_status(&self, sink: &str) -> Result<Vec<SinkPartitionStatus>, Error> {
        on_backend!(self, j => j.sink_status(sink).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_postgres_and_anything_else_a_file() {
        assert_eq!(
            JournalLocation::parse("postgres://u@h:5432/db", "drops"),
            JournalLocation::Postgres {
                url: "postgres://u@h:5432/db".into(),
                schema: "drops".into()
            }
        );
        assert!(matches!(
            JournalLocation::parse("postgresql://h/db", "public"),
            JournalLocation::Postgres { .. }
        ));
        assert_eq!(
            JournalLocation::parse("data/journal.sqlite", "public"),
            JournalLocation::Sqlite("data/journal.sqlite".into())
        );
    }

    #[test]
    fn a_location_is_shown_without_its_password() {
        let location = JournalLocation::parse("postgres://app:secret@db:5432/turnstile", "s");
        assert_eq!(
            location.to_string(),
            "PostgreSQL db:5432/turnstile, schema s"
        );
    }
}
