//! The PostgreSQL journal of the production set-up (PostgreSQL 15 or Aurora PostgreSQL).
//!
//! Same tables, methods and semantics as [`crate::sqlite`]; what differs is how a batch gets
//! there. A commit is one transaction of a fixed handful of statements whatever the batch
//! size: the epoch check first, then one `INSERT … SELECT FROM UNNEST($1, $2, …)` per
//! table, each parameter a whole column as an array. A thousand claims cost six round
//! trips (begin, fence, outcomes, coupons, outbox, commit), not three thousand.
//! `synchronous_commit` is left as the server has it (on by default): a commit is durable
//! before it returns, because an answer is shown to a caller only after its decision
//! committed.
//!
//! The tables live in one schema (`public` unless told otherwise), so several journals can
//! share a database, as the tests do. Migrations are tracked in that schema's
//! `journal_migrations` table.

use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, Row};
use turnstile_schemas::Outcome;

use crate::deliveries::{
    delivery_from_columns, merge_status, Delivery, DeliveryState, SinkPartitionStatus,
};
use crate::load::OutcomeLoader;
use crate::rows::{
    outcome_json, parse_json, stored_time, ArchiveChange, ArchiveMismatch, CampaignColumns,
    CampaignRow, CouponRow, LimitBreach, Projections, RecordChange, StoredOutcome, TimerColumns,
    TimerRow, ARCHIVE_MISMATCHES_SQL,
};
use crate::{BatchCommit, DeadLetter, Error, PartitionLease, ResourceView};

/// Migrations in order; `journal_migrations` records each one applied, in its transaction.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_journal.sql"),
    include_str!("../migrations/postgres/0002_deliveries.sql"),
    include_str!("../migrations/postgres/0003_timers.sql"),
    include_str!("../migrations/postgres/0004_archive.sql"),
    include_str!("../migrations/postgres/0005_timer_subjects.sql"),
    include_str!("../migrations/postgres/0006_resource_views.sql"),
    include_str!("../migrations/postgres/0007_delivery_messages.sql"),
    include_str!("../migrations/postgres/0008_archive_records.sql"),
];

/// The advisory lock migrations take ("turnstil" in ASCII). One key for every schema:
/// a migration takes milliseconds, and a fixed key needs no hash that every build of
/// every process must agree on.
const MIGRATION_LOCK_KEY: i64 = 0x7475_726e_7374_696c;

/// The schema [`PostgresJournal::connect`] uses.
pub const DEFAULT_SCHEMA: &str = "public";

/// Connections per journal. Commits of different partitions run in parallel, one
/// connection each; lookups take the rest. Postgres readers never block writers.
const CONNECTIONS_MAX: u32 = 8;

/// How long a caller waits for a free connection, or for a server that went away.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest schema name PostgreSQL keeps (NAMEDATALEN - 1), in bytes.
const SCHEMA_NAME_LEN_MAX_BYTES: usize = 63;

/// How many coupon ids a failed redeem names in its error.
const REDEEM_ERROR_IDS_MAX: usize = 5;

/// The PostgreSQL journal. Cheap to clone: it is a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresJournal {
    pool: PgPool,
}

/// Whether a connection may write (and so create and migrate the schema).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    ReadWrite,
    ReadOnly,
}

impl PostgresJournal {
    /// Connects to the journal at `url` (`postgres://user@host:port/database`) in the
    /// [`DEFAULT_SCHEMA`], creating its tables if needed.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_in_schema(url, DEFAULT_SCHEMA).await
    }

    /// Connects to the journal in `schema` (created if missing; lower-case letters, digits
    /// and `_`), creating or migrating its tables.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, Error> {
        Self::connect_with(url, schema, Access::ReadWrite).await
    }

    /// Connects to an existing journal for reading only (the audit): every transaction is
    /// read-only, so writes fail.
    pub async fn connect_read_only(url: &str) -> Result<Self, Error> {
        Self::connect_read_only_in_schema(url, DEFAULT_SCHEMA).await
    }

    /// [`connect_read_only`](Self::connect_read_only) to the journal in `schema`.
    pub async fn connect_read_only_in_schema(url: &str, schema: &str) -> Result<Self, Error> {
        Self::connect_with(url, schema, Access::ReadOnly).await
    }

    async fn connect_with(url: &str, schema: &str, access: Access) -> Result<Self, Error> {
        check_schema_name(schema)?;
        // Every connection gets `schema` as its search path, so the SQL names tables
        // without a schema and the same statements serve every schema.
        let mut settings = vec![("search_path", schema)];
        if access == Access::ReadOnly {
            settings.push(("default_transaction_read_only", "on"));
        }
        let options = PgConnectOptions::from_str(url)?
            .application_name("turnstile-journal")
            .options(settings);
        // One connection first, outside the pool: it fails at once when the server is
        // down (a pool keeps retrying for ACQUIRE_TIMEOUT), and it sets the schema up
        // before any pooled connection starts using it.
        let mut first = options.connect().await?;
        match access {
            Access::ReadWrite => migrate(&mut first, schema).await?,
            Access::ReadOnly => {
                if applied_migrations(&mut first, schema).await? == 0 {
                    return Err(Error::Corrupt(format!(
                        "schema {schema:?} holds no turnstile journal: check the URL and \
                         schema (a server creates the journal on first start)"
                    )));
                }
            }
        }
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS_MAX)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(PostgresJournal { pool })
    }

    /// Takes a partition: bumps its epoch (creating its row at offset 0 the first time) and
    /// returns the new lease. Every earlier holder's commits fail from now on.
    pub async fn acquire(&self, partition: u32) -> Result<PartitionLease, Error> {
        let row = sqlx::query(
            "INSERT INTO partitions (partition, epoch, next_offset) VALUES ($1, 1, 0)
             ON CONFLICT (partition) DO UPDATE SET epoch = partitions.epoch + 1
             RETURNING epoch, next_offset",
        )
        .bind(i64::from(partition))
        .fetch_one(&self.pool)
        .await?;
        Ok(PartitionLease {
            partition,
            epoch: row.try_get::<i64, _>("epoch")? as u64,
            next_offset: row.try_get::<i64, _>("next_offset")? as u64,
        })
    }

    /// Every partition's row (for the audit and lag views).
    pub async fn partitions(&self) -> Result<Vec<PartitionLease>, Error> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT partition, epoch, next_offset FROM partitions ORDER BY partition",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(partition, epoch, next_offset)| PartitionLease {
                partition: partition as u32,
                epoch: epoch as u64,
                next_offset: next_offset as u64,
            })
            .collect())
    }

    /// Commits one batch atomically, or changes nothing and returns [`Error::Fenced`] when
    /// the batch's epoch and starting offset are not the partition's current ones.
    pub async fn commit(&self, batch: &BatchCommit) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        // The row lock this takes is held to the end of the transaction: a concurrent
        // `acquire` waits for it, or, if it bumped the epoch first, this matches no row.
        let fenced = sqlx::query(
            "UPDATE partitions SET next_offset = $1
             WHERE partition = $2 AND epoch = $3 AND next_offset = $4",
        )
        .bind(batch.next_offset as i64)
        .bind(i64::from(batch.partition))
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
        insert_projections(&mut tx, &Projections::of(batch)).await?;
        insert_dead_letters(&mut tx, batch).await?;
        upsert_views(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every outcome of a partition in log order, for recovery.
    pub async fn load_outcomes(&self, partition: u32) -> Result<Vec<Outcome>, Error> {
        // No ORDER BY: without fresh statistics (right after a bulk load, say) the planner
        // sorts a million rows on disk rather than walk the key. The rows arrive in about
        // log order anyway, and the loader puts them in order.
        let mut rows = sqlx::query("SELECT body FROM outcomes WHERE partition = $1")
            .bind(i64::from(partition))
            .fetch(&self.pool);
        // Rows go to the parser threads as they came off the wire: the body is read out
        // of the row there, not copied into a String on this task first.
        let mut loader = OutcomeLoader::new(|row: &PgRow| parse_json(row.try_get::<&str, _>(0)?));
        while let Some(row) = rows.try_next().await? {
            if !loader.push(row).await {
                break;
            }
        }
        drop(rows);
        loader.finish().await
    }

    /// Every outcome of a partition in log order, as stored.
    pub async fn stored_outcomes(&self, partition: u32) -> Result<Vec<StoredOutcome>, Error> {
        // Sorted here, not by the server, for the reason given in `load_outcomes`.
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT log_offset, body FROM outcomes WHERE partition = $1")
                .bind(i64::from(partition))
                .fetch_all(&self.pool)
                .await?;
        let mut stored: Vec<StoredOutcome> = rows
            .into_iter()
            .map(|(offset, body)| StoredOutcome {
                offset: offset as u64,
                body,
            })
            .collect();
        stored.sort_by_key(|row| row.offset);
        Ok(stored)
    }

    /// The outcome of one request, if it was decided.
    pub async fn outcome(
        &self,
        resource_id: &str,
        request_id: &str,
    ) -> Result<Option<Outcome>, Error> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM outcomes WHERE resource_id = $1 AND request_id = $2",
        )
        .bind(resource_id)
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        body.as_deref().map(parse_json).transpose()
    }

    /// The outcome that created `resource_id` (a campaign, event, venue or lot), if it was
    /// created: its spec, which never changes, is what notifications about the resource
    /// need (title, time zone, locale). The first, if an identical creation was repeated.
    pub async fn creation_outcome(&self, resource_id: &str) -> Result<Option<Outcome>, Error> {
        let body: Option<String> = sqlx::query_scalar(
            "SELECT body FROM outcomes WHERE resource_id = $1
               AND status IN ('campaign_created', 'event_created', 'venue_created', 'lot_created')
             ORDER BY partition, log_offset LIMIT 1",
        )
        .bind(resource_id)
        .fetch_optional(&self.pool)
        .await?;
        body.as_deref().map(parse_json).transpose()
    }

    /// The view of an event, venue or lot, if one was committed.
    pub async fn resource_view(&self, resource_id: &str) -> Result<Option<ResourceView>, Error> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT domain, body::text FROM resource_views WHERE resource_id = $1")
                .bind(resource_id)
                .fetch_optional(&self.pool)
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
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// One campaign with its issued count.
    pub async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, Error> {
        let row: Option<CampaignColumns> = sqlx::query_as(
            "SELECT c.campaign_id, c.partition, c.spec,
                    (SELECT count(*) FROM coupons k WHERE k.campaign_id = c.campaign_id)
             FROM campaigns c WHERE c.campaign_id = $1",
        )
        .bind(campaign_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CampaignRow::from_columns).transpose()
    }

    /// Every campaign with its issued count.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, Error> {
        // One pass over the coupons for all campaigns, not one per campaign.
        let rows: Vec<CampaignColumns> = sqlx::query_as(
            "SELECT c.campaign_id, c.partition, c.spec, count(k.coupon_id) AS issued
             FROM campaigns c LEFT JOIN coupons k ON k.campaign_id = c.campaign_id
             GROUP BY c.campaign_id ORDER BY c.campaign_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CampaignRow::from_columns).collect()
    }

    /// A user's coupons across campaigns, oldest first.
    pub async fn coupons_of_user(&self, user_id: &str) -> Result<Vec<CouponRow>, Error> {
        let rows = sqlx::query(
            "SELECT k.coupon_id, k.campaign_id, k.user_id, k.issued_at, k.expires_at,
                    k.redeemed_at, k.expired_at, c.spec
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             WHERE k.user_id = $1 ORDER BY k.issued_at, k.coupon_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(CouponRow {
                    coupon_id: row.try_get("coupon_id")?,
                    campaign_id: row.try_get("campaign_id")?,
                    user_id: row.try_get("user_id")?,
                    issued_at: row.try_get("issued_at")?,
                    expires_at: row.try_get("expires_at")?,
                    redeemed_at: row.try_get("redeemed_at")?,
                    expired_at: row.try_get("expired_at")?,
                    campaign: parse_json(&row.try_get::<String, _>("spec")?)?,
                })
            })
            .collect()
    }

    /// Campaigns with more coupons than capacity, and users over their per-user limit.
    pub async fn limit_breaches(&self) -> Result<Vec<LimitBreach>, Error> {
        let rows: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT c.campaign_id, NULL::text AS user_id, count(*) AS n, c.capacity AS lim
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             GROUP BY c.campaign_id HAVING count(*) > c.capacity
             UNION ALL
             SELECT c.campaign_id, k.user_id, count(*) AS n, c.per_user_limit AS lim
             FROM coupons k JOIN campaigns c ON c.campaign_id = k.campaign_id
             GROUP BY c.campaign_id, k.user_id HAVING count(*) > c.per_user_limit",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(campaign_id, user_id, count, limit)| LimitBreach {
                campaign_id,
                user_id,
                count: count as u64,
                limit: limit as u64,
            })
            .collect())
    }

    /// Dead letters of a partition, in log order: `(offset, reason)`.
    pub async fn dead_letters(&self, partition: u32) -> Result<Vec<DeadLetter>, Error> {
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as(
            "SELECT log_offset, reason, payload FROM dead_letters WHERE partition = $1
             ORDER BY log_offset",
        )
        .bind(i64::from(partition))
        .fetch_all(&self.pool)
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
             WHERE o.partition = $1 AND o.log_offset >= $2 ORDER BY o.log_offset LIMIT $3",
        )
        .bind(i64::from(partition))
        .bind(from as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        bodies.iter().map(|body| parse_json(body)).collect()
    }

    /// Where `sink` has got to in each partition's outbox (absent: nothing delivered yet).
    pub async fn sink_progress(&self, sink: &str) -> Result<Vec<(u32, u64)>, Error> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT partition, next_offset FROM sink_progress WHERE sink = $1
             ORDER BY partition",
        )
        .bind(sink)
        .fetch_all(&self.pool)
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
        save_progress(&self.pool, sink, partition, next_offset).await
    }

    /// Up to `limit` timers due at `now` or before, in due order, after `after` (a
    /// `(due_at, resource_id, timer_id)` position from an earlier page, if any).
    pub async fn due_timers(
        &self,
        now: DateTime<Utc>,
        after: Option<&TimerRow>,
        limit: u32,
    ) -> Result<Vec<TimerRow>, Error> {
        let query = match after {
            None => sqlx::query_as::<_, TimerColumns>(
                "SELECT resource_id, timer_id, partition, due_at, user_id, kind, subject
                 FROM timers WHERE due_at <= $1
                 ORDER BY due_at, resource_id, timer_id LIMIT $2",
            )
            .bind(stored_time(&now))
            .bind(i64::from(limit)),
            Some(timer) => sqlx::query_as::<_, TimerColumns>(
                "SELECT resource_id, timer_id, partition, due_at, user_id, kind, subject
                 FROM timers WHERE due_at <= $1 AND (due_at, resource_id, timer_id) > ($3, $4, $5)
                 ORDER BY due_at, resource_id, timer_id LIMIT $2",
            )
            .bind(stored_time(&now))
            .bind(i64::from(limit))
            .bind(stored_time(&timer.due_at))
            .bind(timer.resource_id.as_str())
            .bind(timer.timer_id.as_str()),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.into_iter().map(TimerRow::from_columns).collect()
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
        let mut tx = self.pool.begin().await?;
        for outcome in outcomes {
            let outcome_id = outcome.position.outcome_id();
            match ArchiveChange::of(outcome) {
                Some(ArchiveChange::Issued(coupon)) => {
                    sqlx::query(
                        "INSERT INTO archive_coupons (coupon_id, campaign_id, user_id,
                             issued_at, expires_at, state, state_at, outcome_id)
                         VALUES ($1, $2, $3, $4, $5, 'active', $4, $6)
                         ON CONFLICT (coupon_id) DO NOTHING",
                    )
                    .bind(&coupon.coupon_id)
                    .bind(&coupon.campaign_id)
                    .bind(&coupon.user_id)
                    .bind(stored_time(&coupon.issued_at))
                    .bind(stored_time(&coupon.expires_at))
                    .bind(&outcome_id)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(ArchiveChange::Moved {
                    coupon_id,
                    state,
                    at,
                }) => {
                    sqlx::query(
                        "UPDATE archive_coupons SET state = $1, state_at = $2, outcome_id = $3
                         WHERE coupon_id = $4 AND state = 'active'",
                    )
                    .bind(state)
                    .bind(stored_time(at))
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
        .fetch_all(&self.pool)
        .await?)
    }

    /// Coupons whose archive row disagrees with the journal (at most 20).
    pub async fn archive_mismatches(&self) -> Result<Vec<ArchiveMismatch>, Error> {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as(ARCHIVE_MISMATCHES_SQL)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(ArchiveMismatch::from).collect())
    }

    /// Outbox entries of `kinds` that `sink`'s progress has passed but its delivery ledger
    /// has no row of message 0 for: effects lost, if the sink sends at least one message for
    /// every entry of those kinds.
    pub async fn carried_without_delivery(&self, sink: &str, kinds: &[&str]) -> Result<u64, Error> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM outbox o
             JOIN sink_progress s ON s.partition = o.partition AND s.sink = $1
             WHERE o.log_offset < s.next_offset AND o.kind = ANY($2)
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.sink = s.sink
                   AND d.partition = o.partition AND d.log_offset = o.log_offset
                  AND d.message_index = 0)",
        )
        .bind(sink)
        .bind(kinds)
        .fetch_one(&self.pool)
        .await?;
        Ok(count as u64)
    }

    /// Timers not yet taken effect, and when the next is due.
    pub async fn pending_timers(&self) -> Result<(u64, Option<DateTime<Utc>>), Error> {
        let (count, next): (i64, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT count(*), min(due_at) FROM timers")
                .fetch_one(&self.pool)
                .await?;
        Ok((count as u64, next))
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The ledger rows of `sink` for outcomes of `partition` with offsets in `offsets`.
    pub async fn deliveries(
        &self,
        sink: &str,
        partition: u32,
        offsets: Range<u64>,
    ) -> Result<Vec<Delivery>, Error> {
        let rows: Vec<PgDeliveryColumns> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries
             WHERE sink = $1 AND partition = $2 AND log_offset >= $3 AND log_offset < $4
             ORDER BY log_offset, message_index"
        ))
        .bind(sink)
        .bind(i64::from(partition))
        .bind(offsets.start as i64)
        .bind(offsets.end as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(pg_delivery).collect()
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
            &self.pool,
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
        let mut tx = self.pool.begin().await?;
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
            &self.pool,
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
        let mut tx = self.pool.begin().await?;
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
            "UPDATE deliveries SET state = $1, last_error = $2, updated_at = $3
             WHERE sink = $4 AND partition = $5 AND log_offset = $6 AND message_index = $7
               AND state <> 'sent'",
        )
        .bind(state.as_str())
        .bind(error)
        .bind(stored_time(&at))
        .bind(sink)
        .bind(i64::from(partition))
        .bind(log_offset as i64)
        .bind(message_index as i32)
        .execute(&self.pool)
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
        let rows: Vec<PgDeliveryColumns> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE sink = $1 AND state IN ('queued', 'sending')
             ORDER BY partition, log_offset, message_index LIMIT $2"
        ))
        .bind(sink)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(pg_delivery).collect()
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
            "UPDATE deliveries SET state = 'queued', updated_at = $1
             WHERE state = 'failed' AND ($2::text IS NULL OR sink = $2)
               AND ($3::bigint IS NULL OR (partition = $3 AND log_offset = $4))",
        )
        .bind(stored_time(&at))
        .bind(sink)
        .bind(outcome.map(|(p, _)| i64::from(p)))
        .bind(outcome.map(|(_, o)| o as i64))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Every sink that saved progress or delivered anything, by name.
    pub async fn sink_names(&self) -> Result<Vec<String>, Error> {
        Ok(sqlx::query_scalar(
            "SELECT sink FROM sink_progress UNION SELECT sink FROM deliveries ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// `sink`'s progress, backlog and delivery counts on every partition.
    pub async fn sink_status(&self, sink: &str) -> Result<Vec<SinkPartitionStatus>, Error> {
        let progress: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT p.partition, coalesce(s.next_offset, 0),
                    (SELECT coalesce(max(o.log_offset) + 1, 0) FROM outbox o
                      WHERE o.partition = p.partition),
                    (SELECT count(*) FROM outbox o
                      WHERE o.partition = p.partition
                        AND o.log_offset >= coalesce(s.next_offset, 0))
             FROM partitions p
             LEFT JOIN sink_progress s ON s.partition = p.partition AND s.sink = $1
             ORDER BY p.partition",
        )
        .bind(sink)
        .fetch_all(&self.pool)
        .await?;
        let counts: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT partition, state, count(*) FROM deliveries WHERE sink = $1
             GROUP BY partition, state",
        )
        .bind(sink)
        .fetch_all(&self.pool)
        .await?;
        merge_status(progress, counts)
    }
}

/// The ledger's columns, in the order [`pg_delivery`] reads them.
const DELIVERY_COLUMNS: &str = "sink, partition, log_offset, message_index::bigint, state, \
     attempts::bigint, last_error, provider_message_id, first_attempt_at, updated_at";

type PgDeliveryColumns = (
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
);

fn pg_delivery(columns: PgDeliveryColumns) -> Result<Delivery, Error> {
    let (sink, partition, offset, message, state, attempts, error, provider_id, first, updated) =
        columns;
    delivery_from_columns(
        sink,
        (partition, offset, message),
        &state,
        attempts,
        error,
        provider_id,
        first,
        updated,
    )
}

/// Schema names are spliced into SQL and connection options, so only plain lower-case
/// identifiers are accepted: they need no quoting anywhere.
fn check_schema_name(schema: &str) -> Result<(), Error> {
    let mut chars = schema.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= SCHEMA_NAME_LEN_MAX_BYTES;
    if plain {
        Ok(())
    } else {
        Err(Error::Database(sqlx::Error::Configuration(
            format!(
                "journal schema {schema:?} must be 1 to {SCHEMA_NAME_LEN_MAX_BYTES} lower-case \
                 letters, digits or '_', not starting with a digit"
            )
            .into(),
        )))
    }
}

/// Creates the schema if needed and applies the migrations it lacks, all in one
/// transaction (PostgreSQL's DDL is transactional: a failed migration leaves nothing).
async fn migrate(connection: &mut PgConnection, schema: &str) -> Result<(), Error> {
    let mut tx = connection.begin().await?;
    // Journals opening at once (several processors starting together) take turns; the
    // lock is released with the transaction.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !schema_exists {
        // `schema` passed `check_schema_name`: a plain identifier.
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut *tx)
            .await?;
    }
    let tracked: bool = sqlx::query_scalar("SELECT to_regclass('journal_migrations') IS NOT NULL")
        .fetch_one(&mut *tx)
        .await?;
    if !tracked {
        sqlx::raw_sql(
            "CREATE TABLE journal_migrations (
                 version    integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .execute(&mut *tx)
        .await?;
    }
    let applied: i32 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM journal_migrations")
            .fetch_one(&mut *tx)
            .await?;
    let applied = check_version(applied, schema)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO journal_migrations (version) VALUES ($1)")
            .bind(index as i32 + 1)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How many migrations the journal in `schema` has (0: none, or no journal at all).
async fn applied_migrations(connection: &mut PgConnection, schema: &str) -> Result<usize, Error> {
    let tracked: bool = sqlx::query_scalar("SELECT to_regclass('journal_migrations') IS NOT NULL")
        .fetch_one(&mut *connection)
        .await?;
    if !tracked {
        return Ok(0);
    }
    let applied: i32 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM journal_migrations")
            .fetch_one(connection)
            .await?;
    check_version(applied, schema)
}

fn check_version(applied: i32, schema: &str) -> Result<usize, Error> {
    let applied = usize::try_from(applied).unwrap_or(usize::MAX);
    if applied > MIGRATIONS.len() {
        return Err(Error::Corrupt(format!(
            "the journal in schema {schema:?} has schema version {applied}; this build knows \
             up to {}",
            MIGRATIONS.len()
        )));
    }
    Ok(applied)
}

type Tx<'c> = sqlx::Transaction<'c, Postgres>;

/// One statement for all the batch's outcomes.
async fn insert_outcomes(tx: &mut Tx<'_>, batch: &BatchCommit) -> Result<(), Error> {
    let outcomes = &batch.outcomes;
    if outcomes.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO outcomes
             (partition, log_offset, resource_id, request_id, user_id, status, body)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[])",
    )
    .bind(column(outcomes, |o| i64::from(o.position.partition)))
    .bind(column(outcomes, |o| o.position.offset as i64))
    .bind(column(outcomes, |o| o.resource_id.as_str()))
    .bind(column(outcomes, |o| o.request_id.as_str()))
    .bind(column(outcomes, |o| o.user_id.as_str()))
    .bind(column(outcomes, |o| o.decision.status()))
    .bind(column(outcomes, |o| outcome_json(o)))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the rows derived from the batch's outcomes, one statement per table, in the
/// order [`Projections`] gives.
async fn insert_projections(tx: &mut Tx<'_>, projections: &Projections<'_>) -> Result<(), Error> {
    let campaigns = &projections.campaigns;
    if !campaigns.is_empty() {
        // A repeated create with an identical spec is also "created": the first row stays.
        sqlx::query(
            "INSERT INTO campaigns (campaign_id, partition, capacity, per_user_limit, spec)
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[],
                                  $5::text[])
             ON CONFLICT (campaign_id) DO NOTHING",
        )
        .bind(column(campaigns, |(o, _)| o.resource_id.as_str()))
        .bind(column(campaigns, |(o, _)| i64::from(o.position.partition)))
        .bind(column(campaigns, |(_, spec)| i64::from(spec.capacity)))
        .bind(column(campaigns, |(_, spec)| {
            i64::from(spec.per_user_limit)
        }))
        .bind(column(campaigns, |(_, spec)| {
            serde_json::to_string(spec).expect("specs serialise")
        }))
        .execute(&mut **tx)
        .await?;
    }
    let coupons = &projections.coupons;
    if !coupons.is_empty() {
        sqlx::query(
            "INSERT INTO coupons
                 (coupon_id, campaign_id, user_id, request_id, issued_at, expires_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                  $5::timestamptz[], $6::timestamptz[])",
        )
        .bind(column(coupons, |(_, c)| c.coupon_id.as_str()))
        .bind(column(coupons, |(_, c)| c.campaign_id.as_str()))
        .bind(column(coupons, |(_, c)| c.user_id.as_str()))
        .bind(column(coupons, |(o, _)| o.request_id.as_str()))
        .bind(column(coupons, |(_, c)| stored_time(&c.issued_at)))
        .bind(column(coupons, |(_, c)| stored_time(&c.expires_at)))
        .execute(&mut **tx)
        .await?;
    }
    if !projections.redeems.is_empty() {
        update_redeems(tx, &projections.redeems).await?;
    }
    if !projections.expiries.is_empty() {
        update_expiries(tx, &projections.expiries).await?;
    }
    write_timers(tx, projections).await?;
    let outbox = &projections.outbox;
    if !outbox.is_empty() {
        sqlx::query(
            "INSERT INTO outbox (partition, log_offset, kind)
             SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[])",
        )
        .bind(column(outbox, |o| i64::from(o.position.partition)))
        .bind(column(outbox, |o| o.position.offset as i64))
        .bind(column(outbox, |o| o.decision.status()))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Marks the batch's expired coupons; each must be there, unredeemed and unexpired.
async fn update_expiries(
    tx: &mut Tx<'_>,
    expiries: &[(&str, &DateTime<Utc>)],
) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE coupons k SET expired_at = e.expired_at
         FROM UNNEST($1::text[], $2::timestamptz[]) AS e (coupon_id, expired_at)
         WHERE k.coupon_id = e.coupon_id AND k.expired_at IS NULL AND k.redeemed_at IS NULL",
    )
    .bind(column(expiries, |(coupon_id, _)| *coupon_id))
    .bind(column(expiries, |(_, at)| stored_time(at)))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated != expiries.len() as u64 {
        return Err(Error::Corrupt(format!(
            "{} of {} expiries found no unredeemed, unexpired coupon row",
            expiries.len() as u64 - updated,
            expiries.len()
        )));
    }
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
                "INSERT INTO archive_records (resource_id, record_id, kind, user_id, state,
                     detail, state_at, outcome_id)
                 VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
                 ON CONFLICT (resource_id, record_id) DO NOTHING",
            )
            .bind(resource_id)
            .bind(record_id)
            .bind(kind)
            .bind(user_id)
            .bind(state)
            .bind(detail.to_string())
            .bind(stored_time(&at))
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
                "UPDATE archive_records SET state = $1, state_at = $2, outcome_id = $3,
                     user_id = COALESCE($4, user_id), detail = detail || $5::jsonb
                 WHERE resource_id = $6 AND record_id = $7 AND state = $8",
            )
            .bind(to)
            .bind(stored_time(&at))
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

/// Writes the current view of every resource the batch changed.
async fn upsert_views(tx: &mut Tx<'_>, batch: &BatchCommit) -> Result<(), Error> {
    let views = &batch.views;
    if views.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO resource_views (resource_id, partition, domain, body, next_offset)
         SELECT v.resource_id, $2, v.domain, v.body::jsonb, $3
         FROM UNNEST($1::text[], $4::text[], $5::text[]) AS v (resource_id, domain, body)
         ON CONFLICT (resource_id) DO UPDATE SET
             body = excluded.body, next_offset = excluded.next_offset",
    )
    .bind(column(views, |v| v.resource_id.as_str()))
    .bind(i64::from(batch.partition))
    .bind(batch.next_offset as i64)
    .bind(column(views, |v| v.domain.as_str()))
    .bind(column(views, |v| v.body.as_str()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds the timers the batch's decisions scheduled and deletes those whose command it decided.
async fn write_timers(tx: &mut Tx<'_>, projections: &Projections<'_>) -> Result<(), Error> {
    let timers = &projections.timers;
    if !timers.is_empty() {
        sqlx::query(
            "INSERT INTO timers (resource_id, timer_id, partition, due_at, user_id, kind, subject)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::timestamptz[],
                                  $5::text[], $6::text[], $7::text[])
             ON CONFLICT (resource_id, timer_id) DO NOTHING",
        )
        .bind(column(timers, |t| t.resource_id.as_str()))
        .bind(column(timers, |t| t.timer_id.as_str()))
        .bind(column(timers, |t| i64::from(t.partition)))
        .bind(column(timers, |t| stored_time(&t.due_at)))
        .bind(column(timers, |t| t.user_id.as_str()))
        .bind(column(timers, |t| t.kind_and_subject().0))
        .bind(column(timers, |t| t.kind_and_subject().1))
        .execute(&mut **tx)
        .await?;
    }
    let fired = &projections.fired_timers;
    if !fired.is_empty() {
        sqlx::query(
            "DELETE FROM timers t
             USING UNNEST($1::text[], $2::text[]) AS f (resource_id, timer_id)
             WHERE t.resource_id = f.resource_id AND t.timer_id = f.timer_id",
        )
        .bind(column(fired, |(resource_id, _)| *resource_id))
        .bind(column(fired, |(_, timer_id)| *timer_id))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Marks the batch's redeemed coupons; each must be there and unredeemed.
async fn update_redeems(tx: &mut Tx<'_>, redeems: &[(&str, &DateTime<Utc>)]) -> Result<(), Error> {
    let updated = sqlx::query(
        "UPDATE coupons k SET redeemed_at = r.redeemed_at
         FROM UNNEST($1::text[], $2::timestamptz[]) AS r (coupon_id, redeemed_at)
         WHERE k.coupon_id = r.coupon_id AND k.redeemed_at IS NULL",
    )
    .bind(column(redeems, |(coupon_id, _)| *coupon_id))
    .bind(column(redeems, |(_, at)| stored_time(at)))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if updated != redeems.len() as u64 {
        let named = redeems.len().min(REDEEM_ERROR_IDS_MAX);
        return Err(Error::Corrupt(format!(
            "{} of {} redeems found no unredeemed coupon row (redeems of {:?}{})",
            redeems.len() as u64 - updated,
            redeems.len(),
            column(&redeems[..named], |(coupon_id, _)| *coupon_id),
            if named < redeems.len() { ", …" } else { "" },
        )));
    }
    Ok(())
}

async fn insert_dead_letters(tx: &mut Tx<'_>, batch: &BatchCommit) -> Result<(), Error> {
    let letters = &batch.dead_letters;
    if letters.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO dead_letters (partition, log_offset, reason, payload)
         SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::bytea[])",
    )
    .bind(column(letters, |l| i64::from(l.partition)))
    .bind(column(letters, |l| l.offset as i64))
    .bind(column(letters, |l| l.reason.as_str()))
    .bind(column(letters, |l| l.payload.as_slice()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One column of `rows`, bound as one array parameter.
fn column<'a, T, U>(rows: &'a [T], value: impl Fn(&'a T) -> U) -> Vec<U> {
    rows.iter().map(value).collect()
}

/// Records that `sink` has carried `partition`'s outbox up to `next_offset`, on its own or
/// inside a transaction that applies what it carried.
async fn save_progress<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    sink: &str,
    partition: u32,
    next_offset: u64,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO sink_progress (sink, partition, next_offset) VALUES ($1, $2, $3)
         ON CONFLICT (sink, partition) DO UPDATE SET next_offset = excluded.next_offset",
    )
    .bind(sink)
    .bind(i64::from(partition))
    .bind(next_offset as i64)
    .execute(executor)
    .await?;
    Ok(())
}

/// Marks a delivery `sending` (one more attempt) unless it was `sent`; whether it may be sent.
async fn mark_sending<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    sink: &str,
    (partition, log_offset, message_index): (u32, u64, u32),
    at: &DateTime<Utc>,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO deliveries
             (sink, partition, log_offset, message_index, state, attempts, first_attempt_at,
              updated_at)
         VALUES ($1, $2, $3, $4, 'sending', 1, $5, $5)
         ON CONFLICT (sink, partition, log_offset, message_index) DO UPDATE
             SET state = 'sending', attempts = deliveries.attempts + 1,
                 updated_at = excluded.updated_at
             WHERE deliveries.state <> 'sent'",
    )
    .bind(sink)
    .bind(i64::from(partition))
    .bind(log_offset as i64)
    .bind(message_index as i32)
    .bind(stored_time(at))
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a delivery `sent` with the provider's id for the message.
async fn mark_sent<'e>(
    executor: impl sqlx::Executor<'e, Database = Postgres>,
    sink: &str,
    (partition, log_offset, message_index, provider_message_id): (u32, u64, u32, &str),
    at: &DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE deliveries SET state = 'sent', provider_message_id = $1, updated_at = $2
         WHERE sink = $3 AND partition = $4 AND log_offset = $5 AND message_index = $6",
    )
    .bind(provider_message_id)
    .bind(stored_time(at))
    .bind(sink)
    .bind(i64::from(partition))
    .bind(log_offset as i64)
    .bind(message_index as i32)
    .execute(executor)
    .await?;
    Ok(())
}
