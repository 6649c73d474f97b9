//! The SQLite journal of the embedded default.
//!
//! One writer connection (SQLite has one writer anyway; queueing in the pool is cheaper
//! than lock retries) and a few reader connections for lookups, in WAL mode so readers
//! never block the writer. `synchronous = FULL`: a commit is on disk before it returns,
//! because an answer is shown to a caller only after its decision committed.

use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use turnstile_schemas::{Coupon, Outcome};

use crate::deliveries::{
    delivery_from_columns, merge_status, Delivery, DeliveryState, SinkPartitionStatus,
};
use crate::rows::{
    outcome_json, parse_json, parse_time, time_text, ArchiveChange, ArchiveMismatch,
    CampaignColumns, CampaignRow, CouponRow, LimitBreach, Projections, RecordChange, StoredOutcome,
    TimerRow, ARCHIVE_MISMATCHES_SQL,
};
use crate::{BatchCommit, DeadLetter, Error, PartitionLease, ResourceView};

/// Migrations in order; `PRAGMA user_version` records how many were applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_journal.sql"),
    include_str!("../migrations/0002_sink_progress.sql"),
    include_str!("../migrations/0003_deliveries.sql"),
    include_str!("../migrations/0004_timers.sql"),
    include_str!("../migrations/0005_archive.sql"),
    include_str!("../migrations/0006_timer_subjects.sql"),
    include_str!("../migrations/0007_resource_views.sql"),
    include_str!("../migrations/0008_delivery_messages.sql"),
    include_str!("../migrations/0009_archive_records.sql"),
];

/// Rows per multi-row INSERT statement: 8 columns × 1000 stays well under SQLite's
/// 32766-parameter limit while keeping statement round trips few.
const INSERT_ROWS_MAX: usize = 1000;

/// How long a connection waits for a lock held by another process (the audit, say).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reader connections for lookups.
const READERS_MAX: u32 = 4;

/// The SQLite journal. Cheap to clone: it is two connection pools.
#[derive(Debug, Clone)]
pub struct SqliteJournal {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        migrate(&writer).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS_MAX)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteJournal { writer, readers })
    }

    /// Opens an existing journal for reading only (the audit). Writes fail.
    pub async fn open_read_only(path: &Path) -> Result<Self, Error> {
        if !path.exists() {
            return Err(Error::NotFound(path.to_path_buf()));
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS_MAX)
            .connect_with(options)
            .await?;
        Ok(SqliteJournal {
            writer: readers.clone(),
            readers,
        })
    }

    /// Takes a partition: bumps its epoch (creating its row at offset 0 the first time) and
    /// returns the new lease. Every earlier holder's commits fail from now on.
    pub async fn acquire(&self, partition: u32) -> Result<PartitionLease, Error> {
        let row = sqlx::query(
            "INSERT INTO partitions (partition, epoch, next_offset) VALUES (?, 1, 0)
             ON CONFLICT (partition) DO UPDATE SET epoch = epoch + 1
             RETURNING epoch, next_offset",
        )
        .bind(partition as i64)
        .fetch_one(&self.writer)
        .await?;
        Ok(PartitionLease {
            partition,
            epoch: row.try_get::<i64, _>("epoch")? as u64,
            next_offset: row.try_get::<i64, _>("next_offset")? as u64,
        })
    }

    /// Every partition's row (for the audit and lag views).
    pub async fn partitions(&self) -> Result<Vec<PartitionLease>, Error> {
        let rows =
            sqlx::query("SELECT partition, epoch, next_offset FROM partitions ORDER BY partition")
                .fetch_all(&self.readers)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(PartitionLease {
                    partition: row.try_get::<i64, _>("partition")? as u32,
                    epoch: row.try_get::<i64, _>("epoch")? as u64,
                    next_offset: row.try_get::<i64, _>("next_offset")? as u64,
                })
            })
            .collect()
    }

    /// Commits one batch atomically, or changes nothing and returns [`Error::Fenced`] when
    /// the batch's epoch and starting offset are not the partition's current ones.
    pub async fn commit(&self, batch: &BatchCommit) -> Result<(), Error> {
        let mut tx = self.writer.begin().await?;
        let fenced = sqlx::query(
            "UPDATE partitions SET next_offset = ?
             WHERE partition = ? AND epoch = ? AND next_offset = ?",
        )
        .bind(batch.next_offset as i64)
        .bind(batch.partition as i64)
        .bind(batch.epoch as i64)
        .bind(batch.from_offset as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 0;
        if fenced {
            tx.rollback().await?;
            return Err(Error::Fenced {
                partition: batch.partition,
                epoch: batch.epoch,
                from_offset: batch.from_offset,
            });
        }
        insert_outcomes(&mut tx, batch).await?;
        insert_projections(&mut tx, batch).await?;
        for view in &batch.views {
            sqlx::query(
                "INSERT INTO resource_views (resource_id, partition, domain, body, next_offset)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (resource_id) DO UPDATE SET
                     body = excluded.body, next_offset = excluded.next_offset",
            )
            .bind(&view.resource_id)
            .bind(batch.partition as i64)
            .bind(&view.domain)
            .bind(&view.body)
            .bind(batch.next_offset as i64)
            .execute(&mut *tx)
            .await?;
        }
        for letter in &batch.dead_letters {
            sqlx::query(
                "INSERT INTO dead_letters (partition, log_offset, reason, payload) VALUES (?, ?, ?, ?)",
            )
            .bind(letter.partition as i64)
            .bind(letter.offset as i64)
            .bind(&letter.reason)
            .bind(&letter.payload)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every outcome of a partition in log order, for recovery.
    pub async fn load_outcomes(&self, partition: u32) -> Result<Vec<Outcome>, Error> {
        self.stored_outcomes(partition)
            .await?
            .iter()
            .map(|stored| parse_json(&stored.body))
            .collect()
    }

    /// Every outcome of a partition in log order, as stored.
    pub async fn stored_outcomes(&self, partition: u32) -> Result<Vec<StoredOutcome>, Error> {
        let rows = sqlx::query(
            "SELECT log_offset, body FROM outcomes WHERE partition = ? ORDER BY log_offset",
        )
        .bind(partition as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredOutcome {
                    offset: row.try_get::<i64, _>("log_offset")? as u64,
                    body: row.try_get("body")?,
                })
            })
            .collect()
    }

    /// The outcome of one request, if it was decided.
    pub async fn outcome(
        &self,
        resource_id: &str,
        request_id: &str,
    ) -> Result<Option<Outcome>, Error> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM outcomes WHERE resource_id = ? AND request_id = ?",
        )
        .bind(resource_id)
        .bind(request_id)
        .fetch_optional(&self.readers)
        .await?;
        body.as_deref().map(parse_json).transpose()
    }

    /// The outcome that created `resource_id` (a campaign, event, venue or lot), if it was
    /// created: its spec, which never changes, is what notifications about the resource
    /// need (title, time zone, locale). The first, if an identical creation was repeated.
    pub async fn creation_outcome(&self, resource_id: &str) -> Result<Option<Outcome>, Error> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM outcomes WHERE resource_id = ?
               AND status IN ('campaign_created', 'event_created', 'venue_created', 'lot_created')
             ORDER BY partition, log_offset LIMIT 1",
        )
        .bind(resource_id)
        .fetch_optional(&self.readers)
        .await?;
        body.as_deref().map(parse_json).transpose()
    }

    /// The view of an event, venue or lot, if one was committed.
    pub async fn resource_view(&self, resource_id: &str) -> Result<Option<ResourceView>, Error> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT domain, body FROM resource_views WHERE resource_id = ?")
                .bind(resource_id)
                .fetch_optional(&self.readers)
                .await?;
        Ok(row.map(|(domain, body)| ResourceView {
            resource_id: resource_id.to_string(),
            domain,
            body,
        }))
    }

    /// Every decided request as `(resource_id, request_id)`, for the edge's sold-out gate.
    pub async fn decided_requests(&self) -> Result<Vec<(String, String)>, Error> {
        Ok(
            sqlx::query_as("SELECT resource_id, request_id FROM outcomes")
                .fetch_all(&self.readers)
                .await?,
        )
    }

    /// One campaign with its issued count.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, Error> {
        let row: Option<CampaignColumns> = sqlx::query_as(
            "SELECT c.campaign_id, c.partition, c.spec,
                    (SELECT COUNT(*) FROM coupons k WHERE k.campaign_id = c.campaign_id)
             FROM campaigns c WHERE c.campaign_id = ?",
        )
        .bind(campaign_id)
        .fetch_optional(&self.readers)
        .await?;
        row.map(CampaignRow::from_columns).transpose()
    }

    /// Every campaign with its issued count.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, Error> {
        let rows: Vec<CampaignColumns> = sqlx::query_as(
            "SELECT c.campaign_id, c.partition, c.spec,
                    (SELECT COUNT(*) FROM coupons k WHERE k.campaign_id = c.campaign_id)
             FROM campaigns c ORDER BY c.campaign_id",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(CampaignRow::from_columns).collect()
    }

    /// A user's coupons across campaigns, oldest first.
    pub async fn coupons_of_user(&self, user_id: &str) -> Result<Vec<CouponRow>, Error> {
        let rows = sqlx::query(
            "SELECT k.coupon_id, k.campaign_id, k.user_id, k.issued_at, k.expires_at,
                    k.redeemed_at, k.expired_at, c.spec
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             WHERE k.user_id = ? ORDER BY k.issued_at, k.coupon_id",
        )
        .bind(user_id)
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let redeemed_at: Option<String> = row.try_get("redeemed_at")?;
                let expired_at: Option<String> = row.try_get("expired_at")?;
                Ok(CouponRow {
                    coupon_id: row.try_get("coupon_id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    user_id: row.try_get("user_id")?,
                    issued_at: parse_time(&row.try_get::<String, _>("issued_at")?)?,
                    expires_at: parse_time(&row.try_get::<String, _>("expires_at")?)?,
                    redeemed_at: redeemed_at.as_deref().map(parse_time).transpose()?,
                    expired_at: expired_at.as_deref().map(parse_time).transpose()?,
                    campaign: parse_json(&row.try_get::<String, _>("spec")?)?,
                })
            })
            .collect()
    }

    /// Campaigns with more coupons than capacity, and users over their per-user limit.
    pub async fn limit_breaches(&self) -> Result<Vec<LimitBreach>, Error> {
        let rows = sqlx::query(
            "SELECT c.campaign_id, NULL AS user_id, COUNT(*) AS n, c.capacity AS lim
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             GROUP BY c.campaign_id HAVING COUNT(*) > c.capacity
             UNION ALL
             SELECT c.campaign_id, k.user_id, COUNT(*) AS n, c.per_user_limit AS lim
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             GROUP BY c.campaign_id, k.user_id HAVING COUNT(*) > c.per_user_limit",
        )
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LimitBreach {
                    campaign_id: row.try_get("campaign_id")?,
                    user_id: row.try_get("user_id")?,
                    count: row.try_get::<i64, _>("n")? as u64,
                    limit: row.try_get::<i64, _>("lim")? as u64,
                })
            })
            .collect()
    }

    /// Dead letters of a partition, in log order: `(offset, reason)`.
    pub async fn dead_letters(&self, partition: u32) -> Result<Vec<DeadLetter>, Error> {
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT log_offset, reason, payload FROM dead_letters WHERE partition = ?
             ORDER BY log_offset",
        )
        .bind(partition as i64)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(offset, reason, payload)| DeadLetter {
                partition,
                offset: offset as u64,
                reason,
                payload,
            })
            .collect())
    }

    /// Up to `limit` outbox entries of a partition from log offset `from` on, in log order,
    /// each with its outcome.
    pub async fn outbox_from(
        &self,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Outcome>, Error> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT c.body FROM outbox o
             JOIN outcomes c ON c.partition = o.partition AND c.log_offset = o.log_offset
             WHERE o.partition = ? AND o.log_offset >= ? ORDER BY o.log_offset LIMIT ?",
        )
        .bind(partition as i64)
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        bodies.iter().map(|body| parse_json(body)).collect()
    }

    /// Where `sink` has got to in each partition's outbox (absent: nothing delivered yet).
    pub async fn sink_progress(&self, sink: &str) -> Result<Vec<(u32, u64)>, Error> {
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT partition, next_offset FROM sink_progress WHERE sink = ?")
                .bind(sink)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(p, o)| (p as u32, o as u64))
            .collect())
    }

    /// Records that `sink` has delivered every outbox entry of `partition` before `next_offset`.
    pub async fn save_sink_progress(
        &self,
        sink: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), Error> {
        save_progress(&self.writer, sink, partition, next_offset).await
    }

    /// Up to `limit` timers due at `now` or before, in due order, after `after` (a
    /// `(due_at, resource_id, timer_id)` position from an earlier page, if any).
    pub async fn due_timers(
        &self,
        now: DateTime<Utc>,
        after: Option<&TimerRow>,
        limit: u32,
    ) -> Result<Vec<TimerRow>, Error> {
        let (after_due, after_resource, after_timer) = match after {
            Some(timer) => (
                time_text(&timer.due_at),
                timer.resource_id.as_str(),
                timer.timer_id.as_str(),
            ),
            None => (String::new(), "", ""),
        };
        let rows: Vec<(String, String, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT resource_id, timer_id, partition, due_at, user_id, kind, subject
             FROM timers
             WHERE due_at <= ? AND (due_at, resource_id, timer_id) > (?, ?, ?)
             ORDER BY due_at, resource_id, timer_id LIMIT ?",
        )
        .bind(time_text(&now))
        .bind(after_due)
        .bind(after_resource)
        .bind(after_timer)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter()
            .map(|(resource, timer, partition, due, user, kind, subject)| {
                TimerRow::from_columns((
                    resource,
                    timer,
                    partition,
                    parse_time(&due)?,
                    user,
                    kind,
                    subject,
                ))
            })
            .collect()
    }

    /// Applies `outcomes` (outbox entries of `partition`, in log order) to the archive and
    /// records `sink`'s progress as `next_offset`, in one transaction: each outcome takes
    /// effect in the archive exactly once.
    pub async fn archive_batch(
        &self,
        sink: &str,
        partition: u32,
        outcomes: &[Outcome],
        next_offset: u64,
    ) -> Result<(), Error> {
        let mut tx = self.writer.begin().await?;
        // Issues go in as multi-row inserts; a state change needs its coupon's row, so each
        // run of issues is written before the change that follows it.
        let mut issued: Vec<(String, &Coupon)> = Vec::new();
        for outcome in outcomes {
            let outcome_id = outcome.position.outcome_id();
            match ArchiveChange::of(outcome) {
                Some(ArchiveChange::Issued(coupon)) => issued.push((outcome_id.clone(), coupon)),
                Some(ArchiveChange::Moved {
                    coupon_id,
                    state,
                    at,
                }) => {
                    insert_archived(&mut tx, &std::mem::take(&mut issued)).await?;
                    sqlx::query(
                        "UPDATE archive_coupons SET state = ?, state_at = ?, outcome_id = ?
                         WHERE coupon_id = ? AND state = 'active'",
                    )
                    .bind(state)
                    .bind(time_text(at))
                    .bind(&outcome_id)
                    .bind(coupon_id)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {}
            }
            for change in RecordChange::of(outcome) {
                apply_record_change(&mut tx, change, &outcome_id).await?;
            }
        }
        insert_archived(&mut tx, &issued).await?;
        save_progress(&mut *tx, sink, partition, next_offset).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every `archive_records` row as `(resource_id, record_id, state)`.
    pub async fn archive_record_states(&self) -> Result<Vec<(String, String, String)>, Error> {
        Ok(sqlx::query_as(
            "SELECT resource_id, record_id, state FROM archive_records
             ORDER BY resource_id, record_id",
        )
        .fetch_all(&self.readers)
        .await?)
    }

    /// Coupons whose archive row disagrees with the journal (at most 20).
    pub async fn archive_mismatches(&self) -> Result<Vec<ArchiveMismatch>, Error> {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as(ARCHIVE_MISMATCHES_SQL)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows.into_iter().map(ArchiveMismatch::from).collect())
    }

    /// Outbox entries of `kinds` that `sink`'s progress has passed but its delivery ledger
    /// has no row of message 0 for: effects lost, if the sink sends at least one message for
    /// every entry of those kinds.
    pub async fn carried_without_delivery(&self, sink: &str, kinds: &[&str]) -> Result<u64, Error> {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT count(*) FROM outbox o
             JOIN sink_progress s ON s.partition = o.partition AND s.sink = ",
        );
        query.push_bind(sink);
        query.push(
            " WHERE o.log_offset < s.next_offset
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = s.sink
                  AND d.partition = o.partition AND d.log_offset = o.log_offset
                  AND d.message_index = 0)
              AND o.kind IN (",
        );
        let mut separated = query.separated(", ");
        for kind in kinds {
            separated.push_bind(*kind);
        }
        query.push(")");
        let count: i64 = query.build_query_scalar().fetch_one(&self.readers).await?;
        Ok(count as u64)
    }

    /// Timers not yet taken effect, and when the next is due.
    pub async fn pending_timers(&self) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        let (count, next): (i64, Option<String>) =
            sqlx::query_as("SELECT COUNT(*), MIN(due_at) FROM timers")
                .fetch_one(&self.readers)
                .await?;
        Ok((count as u64, next.as_deref().map(parse_time).transpose()?))
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
    }

    /// The ledger rows of `sink` for outcomes of `partition` with offsets in `offsets`.
    pub async fn deliveries(
        &self,
        sink: &str,
        partition: u32,
        offsets: Range<u64>,
    ) -> Result<Vec<Delivery>, Error> {
        let rows: Vec<SqliteDeliveryColumns> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE sink = ? AND partition = ? AND log_offset >= ? AND log_offset < ?
             ORDER BY log_offset, message_index"
        ))
        .bind(sink)
        .bind(partition as i64)
        .bind(offsets.start as i64)
        .bind(offsets.end as i64)
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(sqlite_delivery).collect()
    }

    /// Records that `sink` is about to hand one message of an outcome to its provider (message
    /// `message_index`: 0 the first): the row becomes
    /// `sending` with one more attempt. Returns false, changing nothing, when the row is
    /// already `sent`: the message must not go out again.
    pub async fn delivery_sending(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        mark_sending(
            &self.writer,
            sink,
            (partition, log_offset, message_index),
            &at,
        )
        .await
    }

    /// [`delivery_sending`](Self::delivery_sending) for several deliveries in one
    /// transaction (one disk flush for a group of sends); whether each may be sent.
    pub async fn deliveries_sending(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32)],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, Error> {
        let mut tx = self.writer.begin().await?;
        let mut may_send = Vec::with_capacity(deliveries.len());
        for &key in deliveries {
            may_send.push(mark_sending(&mut *tx, sink, key, &at).await?);
        }
        tx.commit().await?;
        Ok(may_send)
    }

    /// Records that the provider accepted the message, under its id for it.
    pub async fn delivery_sent(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        mark_sent(
            &self.writer,
            sink,
            (partition, log_offset, message_index, provider_message_id),
            &at,
        )
        .await
    }

    /// [`delivery_sent`](Self::delivery_sent) for several deliveries in one transaction:
    /// `(partition, log_offset, message_index, provider_message_id)` each.
    pub async fn deliveries_sent(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.writer.begin().await?;
        for &delivery in deliveries {
            mark_sent(&mut *tx, sink, delivery, &at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records a provider error: `state` is [`DeliveryState::Failed`] for a permanent one,
    /// [`DeliveryState::Sending`] while a transient one is still being retried. A `sent`
    /// row is left as it is.
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
        sqlx::query(
            "UPDATE deliveries SET state = ?, last_error = ?, updated_at = ?
             WHERE sink = ? AND partition = ? AND log_offset = ? AND message_index = ?
               AND state <> 'sent'",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(time_text(&at))
        .bind(sink)
        .bind(partition as i64)
        .bind(log_offset as i64)
        .bind(i64::from(message_index))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Up to `limit` of `sink`'s unfinished deliveries, oldest outcome first: re-driven
    /// (`queued`) ones, and `sending` ones, which a sink finds only after a crash (its
    /// own sends end `sent` or `failed` before its next pass), wherever its progress is.
    pub async fn deliveries_unfinished(
        &self,
        sink: &str,
        limit: u32,
    ) -> Result<Vec<Delivery>, Error> {
        let rows: Vec<SqliteDeliveryColumns> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE sink = ? AND state IN ('queued', 'sending')
             ORDER BY partition, log_offset, message_index LIMIT ?"
        ))
        .bind(sink)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.into_iter().map(sqlite_delivery).collect()
    }

    /// Re-drives failed deliveries (of one sink, or one outcome `(partition, log_offset)`,
    /// or all): they become `queued`, and their sink sends them again. Returns how many.
    pub async fn redrive_failed_deliveries(
        &self,
        sink: Option<&str>,
        outcome: Option<(u32, u64)>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'queued', updated_at = ?1
             WHERE state = 'failed' AND (?2 IS NULL OR sink = ?2)
               AND (?3 IS NULL OR (partition = ?3 AND log_offset = ?4))",
        )
        .bind(time_text(&at))
        .bind(sink)
        .bind(outcome.map(|(p, _)| p as i64))
        .bind(outcome.map(|(_, o)| o as i64))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every sink that saved progress or delivered anything, by name.
    pub async fn sink_names(&self) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT sink FROM sink_progress UNION SELECT sink FROM deliveries ORDER BY 1",
        )
        .fetch_all(&self.readers)
        .await?)
    }

    /// `sink`'s progress, backlog and delivery counts on every partition.
    pub async fn sink_status(&self, sink: &str) -> Result<Vec<SinkPartitionStatus>, Error> {
        let progress: Vec<(i64, i64, i64, i64)> = sqlx::query_as(SINK_PROGRESS_SQL)
            .bind(sink)
            .fetch_all(&self.readers)
            .await?;
        let counts: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT partition, state, count(*) FROM deliveries WHERE sink = ?
             GROUP BY partition, state",
        )
        .bind(sink)
        .fetch_all(&self.readers)
        .await?;
        merge_status(progress, counts)
    }
}

/// The ledger's columns, in the order [`sqlite_delivery`] reads them.
const DELIVERY_COLUMNS: &str =
    "sink, partition, log_offset, message_index, state, attempts, last_error, \
     provider_message_id, first_attempt_at, updated_at";

type SqliteDeliveryColumns = (
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn sqlite_delivery(columns: SqliteDeliveryColumns) -> Result<Delivery, Error> {
    let (sink, partition, offset, message, state, attempts, error, provider_id, first, updated) =
        columns;
    delivery_from_columns(
        sink,
        (partition, offset, message),
        &state,
        attempts,
        error,
        provider_id,
        parse_time(&first)?,
        parse_time(&updated)?,
    )
}

/// Per partition: the sink's progress (0 before its first save), one past the last outbox
/// entry, and the outbox entries not yet carried. Partitions are those a processor took.
const SINK_PROGRESS_SQL: &str = "SELECT p.partition, coalesce(s.next_offset, 0),
       (SELECT coalesce(max(o.log_offset) + 1, 0) FROM outbox o WHERE o.partition = p.partition),
       (SELECT count(*) FROM outbox o
         WHERE o.partition = p.partition AND o.log_offset >= coalesce(s.next_offset, 0))
     FROM partitions p LEFT JOIN sink_progress s ON s.partition = p.partition AND s.sink = ?
     ORDER BY p.partition";

async fn migrate(pool: &SqlitePool) -> Result<(), Error> {
    let applied: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(pool)
        .await?;
    let applied = applied as usize;
    if applied > MIGRATIONS.len() {
        return Err(Error::Corrupt(format!(
            "the journal has schema version {applied}; this build knows up to {}",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", index + 1))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

type Tx<'c> = sqlx::Transaction<'c, Sqlite>;

async fn insert_outcomes(tx: &mut Tx<'_>, batch: &BatchCommit) -> Result<(), Error> {
    let rows: Vec<(&Outcome, String)> = batch
        .outcomes
        .iter()
        .map(|outcome| (outcome.as_ref(), outcome_json(outcome)))
        .collect();
    for chunk in rows.chunks(INSERT_ROWS_MAX) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO outcomes (resource_id, request_id, partition, log_offset, user_id, status, body) ",
        );
        insert.push_values(chunk, |mut row, (outcome, body)| {
            row.push_bind(outcome.resource_id.as_str())
                .push_bind(outcome.request_id.as_str())
                .push_bind(outcome.position.partition as i64)
                .push_bind(outcome.position.offset as i64)
                .push_bind(outcome.user_id.as_str())
                .push_bind(outcome.decision.status())
                .push_bind(body.as_str());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes the rows derived from the batch's outcomes: campaigns, coupons, redeems and outbox.
async fn insert_projections(tx: &mut Tx<'_>, batch: &BatchCommit) -> Result<(), Error> {
    let projections = Projections::of(batch);
    for (outcome, spec) in &projections.campaigns {
        sqlx::query(
            "INSERT OR IGNORE INTO campaigns
             (campaign_id, partition, capacity, per_user_limit, spec) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&outcome.resource_id)
        .bind(outcome.position.partition as i64)
        .bind(spec.capacity as i64)
        .bind(spec.per_user_limit as i64)
        .bind(serde_json::to_string(spec).expect("specs serialise"))
        .execute(&mut **tx)
        .await?;
    }
    for chunk in projections.coupons.chunks(INSERT_ROWS_MAX) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO coupons (coupon_id, campaign_id, user_id, request_id, issued_at, expires_at) ",
        );
        insert.push_values(chunk, |mut row, (outcome, coupon)| {
            row.push_bind(coupon.coupon_id.as_str())
                .push_bind(coupon.campaign_id.as_str())
                .push_bind(coupon.user_id.as_str())
                .push_bind(outcome.request_id.as_str())
                .push_bind(time_text(&coupon.issued_at))
                .push_bind(time_text(&coupon.expires_at));
        });
        insert.build().execute(&mut **tx).await?;
    }
    for (coupon_id, redeemed_at) in &projections.redeems {
        let updated = sqlx::query(
            "UPDATE coupons SET redeemed_at = ? WHERE coupon_id = ? AND redeemed_at IS NULL",
        )
        .bind(time_text(redeemed_at))
        .bind(coupon_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(Error::Corrupt(format!(
                "redeem of {coupon_id} found no unredeemed coupon row"
            )));
        }
    }
    for (coupon_id, expired_at) in &projections.expiries {
        let updated = sqlx::query(
            "UPDATE coupons SET expired_at = ?
             WHERE coupon_id = ? AND expired_at IS NULL AND redeemed_at IS NULL",
        )
        .bind(time_text(expired_at))
        .bind(coupon_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if updated != 1 {
            return Err(Error::Corrupt(format!(
                "expiry of {coupon_id} found no unredeemed, unexpired coupon row"
            )));
        }
    }
    for chunk in projections.timers.chunks(INSERT_ROWS_MAX) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO timers (resource_id, timer_id, partition, due_at, user_id, kind, subject) ",
        );
        insert.push_values(chunk, |mut row, timer| {
            let (kind, subject) = timer.kind_and_subject();
            row.push_bind(timer.resource_id.as_str())
                .push_bind(timer.timer_id.as_str())
                .push_bind(timer.partition as i64)
                .push_bind(time_text(&timer.due_at))
                .push_bind(timer.user_id.as_str())
                .push_bind(kind)
                .push_bind(subject);
        });
        // A repeated creation (a lot created twice with one spec) schedules its timer again.
        insert.push(" ON CONFLICT (resource_id, timer_id) DO NOTHING");
        insert.build().execute(&mut **tx).await?;
    }
    for (resource_id, timer_id) in &projections.fired_timers {
        sqlx::query("DELETE FROM timers WHERE resource_id = ? AND timer_id = ?")
            .bind(resource_id)
            .bind(timer_id)
            .execute(&mut **tx)
            .await?;
    }
    for chunk in projections.outbox.chunks(INSERT_ROWS_MAX) {
        let mut insert =
            QueryBuilder::<Sqlite>::new("INSERT INTO outbox (partition, log_offset, kind) ");
        insert.push_values(chunk, |mut row, outcome| {
            row.push_bind(outcome.position.partition as i64)
                .push_bind(outcome.position.offset as i64)
                .push_bind(outcome.decision.status());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Records that `sink` has carried `partition`'s outbox up to `next_offset`, on its own or
/// inside a transaction that applies what it carried.
async fn save_progress<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    sink: &str,
    partition: u32,
    next_offset: u64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sink_progress (sink, partition, next_offset) VALUES (?, ?, ?)
         ON CONFLICT (sink, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )
    .bind(sink)
    .bind(partition as i64)
    .bind(next_offset as i64)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks a delivery `sending` (one more attempt) unless it was `sent`; whether it may be sent.
async fn mark_sending<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    sink: &str,
    (partition, log_offset, message_index): (u32, u64, u32),
    at: &DateTime<Utc>,
) -> Result<bool, Error> {
    let at = time_text(at);
    let done = sqlx::query(
        "INSERT INTO deliveries
             (sink, partition, log_offset, message_index, state, attempts, first_attempt_at,
              updated_at)
         VALUES (?, ?, ?, ?, 'sending', 1, ?, ?)
         ON CONFLICT (sink, partition, log_offset, message_index) DO UPDATE
             SET state = 'sending', attempts = deliveries.attempts + 1,
                 updated_at = excluded.updated_at
             WHERE deliveries.state <> 'sent'",
    )
    .bind(sink)
    .bind(partition as i64)
    .bind(log_offset as i64)
    .bind(i64::from(message_index))
    .bind(&at)
    .bind(&at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a delivery `sent` with the provider's id for the message.
async fn mark_sent<'e>(
    executor: impl sqlx::Executor<'e, Database = Sqlite>,
    sink: &str,
    (partition, log_offset, message_index, provider_message_id): (u32, u64, u32, &str),
    at: &DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE deliveries SET state = 'sent', provider_message_id = ?, updated_at = ?
         WHERE sink = ? AND partition = ? AND log_offset = ? AND message_index = ?",
    )
    .bind(provider_message_id)
    .bind(time_text(at))
    .bind(sink)
    .bind(partition as i64)
    .bind(log_offset as i64)
    .bind(i64::from(message_index))
    .execute(executor)
    .await?;
    Ok(())
}

/// Applies one change to `archive_records`; both kinds are idempotent.
async fn apply_record_change(
    tx: &mut Tx<'_>,
    change: RecordChange,
    outcome_id: &str,
) -> Result<(), Error> {
    match change {
        RecordChange::Insert {
            resource_id,
            record_id,
            kind,
            user_id,
            state,
            detail,
            at,
        } => {
            sqlx::query(
                "INSERT OR IGNORE INTO archive_records (resource_id, record_id, kind, user_id,
                     state, detail, state_at, outcome_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(resource_id)
            .bind(record_id)
            .bind(kind)
            .bind(user_id)
            .bind(state)
            .bind(detail.to_string())
            .bind(time_text(&at))
            .bind(outcome_id)
            .execute(&mut **tx)
            .await?;
        }
        RecordChange::Move {
            resource_id,
            record_id,
            from,
            to,
            user_id,
            detail,
            at,
        } => {
            sqlx::query(
                "UPDATE archive_records SET state = ?, state_at = ?, outcome_id = ?,
                     user_id = COALESCE(?, user_id), detail = json_patch(detail, ?)
                 WHERE resource_id = ? AND record_id = ? AND state = ?",
            )
            .bind(to)
            .bind(time_text(&at))
            .bind(outcome_id)
            .bind(user_id)
            .bind(detail.unwrap_or_else(|| serde_json::json!({})).to_string())
            .bind(resource_id)
            .bind(record_id)
            .bind(from)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Adds issued coupons to the archive as `active`, leaving any row already there.
async fn insert_archived(tx: &mut Tx<'_>, issued: &[(String, &Coupon)]) -> Result<(), Error> {
    for chunk in issued.chunks(INSERT_ROWS_MAX) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT OR IGNORE INTO archive_coupons (coupon_id, campaign_id, user_id, issued_at,
                 expires_at, state, state_at, outcome_id) ",
        );
        insert.push_values(chunk, |mut row, (outcome_id, coupon)| {
            row.push_bind(coupon.coupon_id.as_str())
                .push_bind(coupon.campaign_id.as_str())
                .push_bind(coupon.user_id.as_str())
                .push_bind(time_text(&coupon.issued_at))
                .push_bind(time_text(&coupon.expires_at))
                .push_bind("active")
                .push_bind(time_text(&coupon.issued_at))
                .push_bind(outcome_id.as_str());
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    /// A journal whose ledger was written when each outcome had one message: after
    /// `0008_delivery_messages.sql` its rows are message 0, so a `sent` one is never sent
    /// again and its state, attempts and times are as they were.
    #[tokio::test]
    async fn the_per_message_migration_keeps_old_rows_as_message_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let old = SqlitePool::connect_with(options).await.unwrap();
        let before_messages = MIGRATIONS.len() - 1;
        for sql in &MIGRATIONS[..before_messages] {
            sqlx::raw_sql(sql).execute(&old).await.unwrap();
        }
        sqlx::raw_sql(&format!("PRAGMA user_version = {before_messages}"))
            .execute(&old)
            .await
            .unwrap();
        sqlx::raw_sql(
            "INSERT INTO deliveries (sink, partition, log_offset, state, attempts, last_error,
                 provider_message_id, first_attempt_at, updated_at)
             VALUES ('ses', 0, 5, 'sent', 2, 'throttled', 'm-5',
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:01.000Z'),
                    ('ses', 0, 6, 'failed', 1, 'rejected', NULL,
                     '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:02.000Z')",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let journal = SqliteJournal::open(&path).await.unwrap();
        let rows = journal.deliveries("ses", 0, 0..10).await.unwrap();
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.message_key(), r.message_index, r.state, r.attempts))
            .collect();
        assert_eq!(
            keys,
            [
                ("0-5".into(), 0, DeliveryState::Sent, 2),
                ("0-6".into(), 0, DeliveryState::Failed, 1),
            ]
        );
        assert_eq!(rows[0].provider_message_id.as_deref(), Some("m-5"));
        assert_eq!(rows[0].last_error.as_deref(), Some("throttled"));
        let at = parse_time("2026-01-02T00:00:00.000Z").unwrap();
        assert!(!journal.delivery_sending("ses", 0, 5, 0, at).await.unwrap());
        assert!(journal.delivery_sending("ses", 0, 5, 1, at).await.unwrap());
        journal.close().await;
    }
}
