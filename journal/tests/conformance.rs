//! One set of scenarios, run against every journal backend: each must keep the exactly-once
//! protocol (`docs/exactly-once.md`) the same way, because the processors, sinks and the
//! audit rely on the journal's behaviour, not on which database is underneath.
//!
//! Each scenario is an `async fn` over the test-local [`Journal`] trait; `conformance!`
//! turns every scenario into one test per backend (`sqlite::<scenario>`,
//! `postgres::<scenario>`). The Postgres tests need a real server: see [`PostgresFixture`].
#![allow(clippy::unwrap_used)]

mod common;

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use common::{PostgresFixture, SqliteFixture};
use turnstile_journal::{
    ArchiveMismatch, BatchCommit, CampaignRow, CouponRow, DeadLetter, Delivery, DeliveryState,
    Error, LimitBreach, PartitionLease, PostgresJournal, ResourceView, SinkPartitionStatus,
    SqliteJournal, StoredOutcome, TimerRow,
};
use turnstile_schemas::{
    CampaignSpec, CommandKind, Coupon, Decision, LogPosition, Outcome, Rejection,
};

/// The public method set every backend offers. Implementing it by delegation (below) also
/// checks at compile time that the backends' signatures agree.
trait Journal {
    async fn acquire(&self, partition: u32) -> Result<PartitionLease, Error>;
    async fn partitions(&self) -> Result<Vec<PartitionLease>, Error>;
    async fn commit(&self, batch: &BatchCommit) -> Result<(), Error>;
    async fn load_outcomes(&self, partition: u32) -> Result<Vec<Outcome>, Error>;
    async fn stored_outcomes(&self, partition: u32) -> Result<Vec<StoredOutcome>, Error>;
    async fn outcome(&self, resource_id: &str, request_id: &str) -> Result<Option<Outcome>, Error>;
    async fn creation_outcome(&self, resource_id: &str) -> Result<Option<Outcome>, Error>;
    async fn decided_requests(&self) -> Result<Vec<(String, String)>, Error>;
    async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, Error>;
    async fn campaigns(&self) -> Result<Vec<CampaignRow>, Error>;
    async fn coupons_of_user(&self, user_id: &str) -> Result<Vec<CouponRow>, Error>;
    async fn limit_breaches(&self) -> Result<Vec<LimitBreach>, Error>;
    async fn dead_letters(&self, partition: u32) -> Result<Vec<DeadLetter>, Error>;
    async fn outbox_from(
        &self,
        partition: u32,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Outcome>, Error>;
    async fn sink_progress(&self, sink: &str) -> Result<Vec<(u32, u64)>, Error>;
    async fn save_sink_progress(
        &self,
        sink: &str,
        partition: u32,
        next_offset: u64,
    ) -> Result<(), Error>;
    async fn close(&self);
    async fn deliveries(
        &self,
        sink: &str,
        partition: u32,
        offsets: Range<u64>,
    ) -> Result<Vec<Delivery>, Error>;
    async fn delivery_sending(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        at: DateTime<Utc>,
    ) -> Result<bool, Error>;
    async fn deliveries_sending(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32)],
        at: DateTime<Utc>,
    ) -> Result<Vec<bool>, Error>;
    async fn delivery_sent(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        provider_message_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error>;
    async fn deliveries_sent(
        &self,
        sink: &str,
        deliveries: &[(u32, u64, u32, &str)],
        at: DateTime<Utc>,
    ) -> Result<(), Error>;
    async fn carried_without_delivery(&self, sink: &str, kinds: &[&str]) -> Result<u64, Error>;
    #[allow(clippy::too_many_arguments)] // the ledger key is three of them
    async fn delivery_error(
        &self,
        sink: &str,
        partition: u32,
        log_offset: u64,
        message_index: u32,
        state: DeliveryState,
        error: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error>;
    async fn deliveries_unfinished(&self, sink: &str, limit: u32) -> Result<Vec<Delivery>, Error>;
    async fn redrive_failed_deliveries(
        &self,
        sink: Option<&str>,
        outcome: Option<(u32, u64)>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error>;
    async fn sink_names(&self) -> Result<Vec<String>, Error>;
    async fn sink_status(&self, sink: &str) -> Result<Vec<SinkPartitionStatus>, Error>;
    async fn due_timers(
        &self,
        now: DateTime<Utc>,
        after: Option<&TimerRow>,
        limit: u32,
    ) -> Result<Vec<TimerRow>, Error>;
    async fn pending_timers(&self) -> Result<(u64, Option<DateTime<Utc>>), Error>;
    async fn archive_batch(
        &self,
        sink: &str,
        partition: u32,
        outcomes: &[Outcome],
        next_offset: u64,
    ) -> Result<(), Error>;
    async fn archive_mismatches(&self) -> Result<Vec<ArchiveMismatch>, Error>;
    async fn resource_view(&self, resource_id: &str) -> Result<Option<ResourceView>, Error>;
    async fn archive_record_states(&self) -> Result<Vec<(String, String, String)>, Error>;
}

macro_rules! delegate_journal {
    ($backend:ty) => {
        impl Journal for $backend {
            async fn acquire(&self, partition: u32) -> Result<PartitionLease, Error> {
                <$backend>::acquire(self, partition).await
            }
            async fn partitions(&self) -> Result<Vec<PartitionLease>, Error> {
                <$backend>::partitions(self).await
            }
            async fn commit(&self, batch: &BatchCommit) -> Result<(), Error> {
                <$backend>::commit(self, batch).await
            }
            async fn load_outcomes(&self, partition: u32) -> Result<Vec<Outcome>, Error> {
                <$backend>::load_outcomes(self, partition).await
            }
            async fn stored_outcomes(&self, partition: u32) -> Result<Vec<StoredOutcome>, Error> {
                <$backend>::stored_outcomes(self, partition).await
            }
            async fn outcome(
                &self,
                resource_id: &str,
                request_id: &str,
            ) -> Result<Option<Outcome>, Error> {
                <$backend>::outcome(self, resource_id, request_id).await
            }
            async fn creation_outcome(&self, resource_id: &str) -> Result<Option<Outcome>, Error> {
                <$backend>::creation_outcome(self, resource_id).await
            }
            async fn decided_requests(&self) -> Result<Vec<(String, String)>, Error> {
                <$backend>::decided_requests(self).await
            }
            async fn campaign(&self, campaign_id: &str) -> Result<Option<CampaignRow>, Error> {
                <$backend>::campaign(self, campaign_id).await
            }
            async fn campaigns(&self) -> Result<Vec<CampaignRow>, Error> {
                <$backend>::campaigns(self).await
            }
            async fn coupons_of_user(&self, user_id: &str) -> Result<Vec<CouponRow>, Error> {
                <$backend>::coupons_of_user(self, user_id).await
            }
            async fn limit_breaches(&self) -> Result<Vec<LimitBreach>, Error> {
                <$backend>::limit_breaches(self).await
            }
            async fn dead_letters(&self, partition: u32) -> Result<Vec<DeadLetter>, Error> {
                <$backend>::dead_letters(self, partition).await
            }
            async fn outbox_from(
                &self,
                partition: u32,
                from: u64,
                limit: u32,
            ) -> Result<Vec<Outcome>, Error> {
                <$backend>::outbox_from(self, partition, from, limit).await
            }
            async fn sink_progress(&self, sink: &str) -> Result<Vec<(u32, u64)>, Error> {
                <$backend>::sink_progress(self, sink).await
            }
            async fn save_sink_progress(
                &self,
                sink: &str,
                partition: u32,
                next_offset: u64,
            ) -> Result<(), Error> {
                <$backend>::save_sink_progress(self, sink, partition, next_offset).await
            }
            async fn deliveries(
                &self,
                sink: &str,
                partition: u32,
                offsets: Range<u64>,
            ) -> Result<Vec<Delivery>, Error> {
                <$backend>::deliveries(self, sink, partition, offsets).await
            }
            async fn delivery_sending(
                &self,
                sink: &str,
                partition: u32,
                log_offset: u64,
                message_index: u32,
                at: DateTime<Utc>,
            ) -> Result<bool, Error> {
                <$backend>::delivery_sending(self, sink, partition, log_offset, message_index, at)
                    .await
            }
            async fn deliveries_sending(
                &self,
                sink: &str,
                deliveries: &[(u32, u64, u32)],
                at: DateTime<Utc>,
            ) -> Result<Vec<bool>, Error> {
                <$backend>::deliveries_sending(self, sink, deliveries, at).await
            }
            async fn delivery_sent(
                &self,
                sink: &str,
                partition: u32,
                log_offset: u64,
                message_index: u32,
                provider_message_id: &str,
                at: DateTime<Utc>,
            ) -> Result<(), Error> {
                <$backend>::delivery_sent(
                    self,
                    sink,
                    partition,
                    log_offset,
                    message_index,
                    provider_message_id,
                    at,
                )
                .await
            }
            async fn deliveries_sent(
                &self,
                sink: &str,
                deliveries: &[(u32, u64, u32, &str)],
                at: DateTime<Utc>,
            ) -> Result<(), Error> {
                <$backend>::deliveries_sent(self, sink, deliveries, at).await
            }
            async fn carried_without_delivery(
                &self,
                sink: &str,
                kinds: &[&str],
            ) -> Result<u64, Error> {
                <$backend>::carried_without_delivery(self, sink, kinds).await
            }
            #[allow(clippy::too_many_arguments)] // the ledger key is three of them
            async fn delivery_error(
                &self,
                sink: &str,
                partition: u32,
                log_offset: u64,
                message_index: u32,
                state: DeliveryState,
                error: &str,
                at: DateTime<Utc>,
            ) -> Result<(), Error> {
                <$backend>::delivery_error(
                    self,
                    sink,
                    partition,
                    log_offset,
                    message_index,
                    state,
                    error,
                    at,
                )
                .await
            }
            async fn deliveries_unfinished(
                &self,
                sink: &str,
                limit: u32,
            ) -> Result<Vec<Delivery>, Error> {
                <$backend>::deliveries_unfinished(self, sink, limit).await
            }
            async fn redrive_failed_deliveries(
                &self,
                sink: Option<&str>,
                outcome: Option<(u32, u64)>,
                at: DateTime<Utc>,
            ) -> Result<u64, Error> {
                <$backend>::redrive_failed_deliveries(self, sink, outcome, at).await
            }
            async fn sink_names(&self) -> Result<Vec<String>, Error> {
                <$backend>::sink_names(self).await
            }
            async fn sink_status(&self, sink: &str) -> Result<Vec<SinkPartitionStatus>, Error> {
                <$backend>::sink_status(self, sink).await
            }
            async fn close(&self) {
                <$backend>::close(self).await
            }
            async fn due_timers(
                &self,
                now: DateTime<Utc>,
                after: Option<&TimerRow>,
                limit: u32,
            ) -> Result<Vec<TimerRow>, Error> {
                <$backend>::due_timers(self, now, after, limit).await
            }
            async fn pending_timers(&self) -> Result<(u64, Option<DateTime<Utc>>), Error> {
                <$backend>::pending_timers(self).await
            }
            async fn archive_batch(
                &self,
                sink: &str,
                partition: u32,
                outcomes: &[Outcome],
                next_offset: u64,
            ) -> Result<(), Error> {
                <$backend>::archive_batch(self, sink, partition, outcomes, next_offset).await
            }
            async fn archive_mismatches(&self) -> Result<Vec<ArchiveMismatch>, Error> {
                <$backend>::archive_mismatches(self).await
            }
            async fn resource_view(
                &self,
                resource_id: &str,
            ) -> Result<Option<ResourceView>, Error> {
                <$backend>::resource_view(self, resource_id).await
            }
            async fn archive_record_states(&self) -> Result<Vec<(String, String, String)>, Error> {
                <$backend>::archive_record_states(self).await
            }
        }
    };
}

delegate_journal!(SqliteJournal);
delegate_journal!(PostgresJournal);

/// One test per scenario and backend.
macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let fixture = super::SqliteFixture::new().await;
                    super::$scenario(&fixture.journal).await;
                    super::Journal::close(&fixture.journal).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let fixture = super::PostgresFixture::new().await;
                    super::$scenario(&fixture.journal).await;
                    super::Journal::close(&fixture.journal).await;
                }
            )*
        }
    };
}

conformance!(
    acquire_bumps_the_epoch,
    stale_epoch_is_fenced_and_writes_nothing,
    offset_mismatch_is_fenced,
    zombie_is_fenced_after_the_new_owner_commits,
    batch_round_trips_through_every_lookup,
    redeem_of_a_coupon_granted_in_the_same_batch,
    repeated_campaign_create_keeps_the_first_row,
    coupon_times_read_back_at_millisecond_precision,
    duplicate_request_fails_the_whole_batch,
    sink_progress_is_kept_per_sink_and_partition,
    delivery_ledger_never_resends_a_sent_outcome,
    delivery_ledger_failures_are_kept_and_redriven,
    delivery_ledger_keeps_each_message_of_an_outcome_apart,
    sink_status_shows_progress_backlog_and_counts,
    limit_breaches_are_reported,
    a_batch_of_thousands_commits_whole,
    timers_come_with_grants_and_go_with_their_outcomes,
    the_archive_follows_the_outbox_and_applying_twice_changes_nothing,
    resource_views_follow_the_last_batch_and_not_a_fenced_one,
    holds_bookings_and_lots_are_archived_once_in_their_final_state,
);

/// The audit compares stored outcome JSON byte for byte, and a journal may move from one
/// backend to the other: both must store exactly the same bytes for the same batch.
#[tokio::test]
async fn both_backends_store_identical_outcome_bytes() {
    let sqlite = SqliteFixture::new().await;
    let postgres = PostgresFixture::new().await;
    let from_sqlite = stored_after_sample_batch(&sqlite.journal).await;
    let from_postgres = stored_after_sample_batch(&postgres.journal).await;
    assert_eq!(from_sqlite.len(), 5);
    assert_eq!(from_sqlite, from_postgres);
}

async fn stored_after_sample_batch(journal: &impl Journal) -> Vec<StoredOutcome> {
    let lease = journal.acquire(0).await.unwrap();
    let mut batch = sample_batch(lease);
    // Non-ASCII text, escapes and sub-millisecond times must survive either database.
    let mut odd = grant(0, 4, "drop", 3, "유저 \"quoted\" \\ tab\t");
    odd.decided_at = Utc.timestamp_opt(1_750_000_000, 987_654_321).unwrap();
    batch.outcomes.push(Arc::new(odd));
    batch.next_offset = 5;
    journal.commit(&batch).await.unwrap();
    journal.stored_outcomes(0).await.unwrap()
}

// ---- scenarios ----

async fn acquire_bumps_the_epoch(journal: &impl Journal) {
    assert_eq!(journal.partitions().await.unwrap(), []);
    assert_eq!(journal.acquire(0).await.unwrap(), lease(0, 1, 0));
    assert_eq!(journal.acquire(0).await.unwrap(), lease(0, 2, 0));
    assert_eq!(journal.acquire(3).await.unwrap(), lease(3, 1, 0));
    journal
        .commit(&batch(
            lease(0, 2, 0),
            2,
            vec![campaign(0, 0, "drop", 10, 1)],
        ))
        .await
        .unwrap();
    // The offset survives a take-over: the new owner continues where the old one stopped.
    assert_eq!(journal.acquire(0).await.unwrap(), lease(0, 3, 2));
    assert_eq!(
        journal.partitions().await.unwrap(),
        [lease(0, 3, 2), lease(3, 1, 0)]
    );
}

async fn stale_epoch_is_fenced_and_writes_nothing(journal: &impl Journal) {
    let stale = journal.acquire(0).await.unwrap();
    let current = journal.acquire(0).await.unwrap();
    let mut fenced = sample_batch(stale);
    fenced.dead_letters.push(dead_letter(0, 9, "bad json"));
    let err = journal.commit(&fenced).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Fenced {
                partition: 0,
                epoch: 1,
                from_offset: 0
            }
        ),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert_nothing_written(journal, 0).await;
    assert_eq!(journal.partitions().await.unwrap(), [current]);

    journal.commit(&sample_batch(current)).await.unwrap();
    assert_eq!(journal.stored_outcomes(0).await.unwrap().len(), 4);
}

async fn offset_mismatch_is_fenced(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let ahead = PartitionLease {
        next_offset: 5,
        ..lease
    };
    let err = journal.commit(&sample_batch(ahead)).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { from_offset: 5, .. }), "{err}");
    assert_nothing_written(journal, 0).await;

    journal.commit(&sample_batch(lease)).await.unwrap();
    // The same batch again: the journal has moved on to offset 4, so this is fenced too,
    // and the replayed batch's rows are not written twice.
    let err = journal.commit(&sample_batch(lease)).await.unwrap_err();
    assert!(matches!(err, Error::Fenced { from_offset: 0, .. }), "{err}");
    assert_eq!(journal.stored_outcomes(0).await.unwrap().len(), 4);
    assert_eq!(journal.partitions().await.unwrap(), [lease_at(lease, 4)]);
}

async fn zombie_is_fenced_after_the_new_owner_commits(journal: &impl Journal) {
    let zombie = journal.acquire(0).await.unwrap();
    journal
        .commit(&batch(zombie, 1, vec![campaign(0, 0, "drop", 10, 1)]))
        .await
        .unwrap();
    let owner = journal.acquire(0).await.unwrap();
    assert_eq!(owner, lease(0, 2, 1));
    journal
        .commit(&batch(owner, 2, vec![grant(0, 1, "drop", 1, "alice")]))
        .await
        .unwrap();
    // The zombie believes it is at offset 1 and decides offset 1 differently.
    let err = journal
        .commit(&batch(
            lease_at(zombie, 1),
            2,
            vec![grant(0, 1, "drop", 1, "mallory")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Fenced { epoch: 1, .. }), "{err}");
    assert!(journal.coupons_of_user("mallory").await.unwrap().is_empty());
    assert_eq!(journal.coupons_of_user("alice").await.unwrap().len(), 1);
}

async fn batch_round_trips_through_every_lookup(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let first = sample_batch(lease);
    journal.commit(&first).await.unwrap();
    let second = BatchCommit {
        partition: 0,
        epoch: lease.epoch,
        from_offset: 4,
        next_offset: 7,
        outcomes: vec![
            Arc::new(redeem(0, 4, "drop", "drop-1", "alice", at(12))),
            Arc::new(rejected(0, 6, "drop", "bob", Rejection::AlreadyRedeemed)),
        ],
        dead_letters: vec![dead_letter(0, 5, "envelope version 9 is unknown")],
        views: Vec::new(),
    };
    journal.commit(&second).await.unwrap();

    let all: Vec<Outcome> = first
        .outcomes
        .iter()
        .chain(&second.outcomes)
        .map(|outcome| outcome.as_ref().clone())
        .collect();
    assert_eq!(journal.load_outcomes(0).await.unwrap(), all);
    let stored = journal.stored_outcomes(0).await.unwrap();
    assert_eq!(
        stored.iter().map(|s| s.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 6]
    );
    for (stored, outcome) in stored.iter().zip(&all) {
        assert_eq!(stored.body, turnstile_journal::outcome_json(outcome));
    }
    assert_eq!(journal.load_outcomes(1).await.unwrap(), []);

    assert_eq!(
        journal.outcome("drop", "req-0-2").await.unwrap().as_ref(),
        Some(&all[2])
    );
    assert_eq!(
        journal.outcome("drop", "no-such-request").await.unwrap(),
        None
    );
    assert_eq!(journal.outcome("other", "req-0-2").await.unwrap(), None);

    let mut decided = journal.decided_requests().await.unwrap();
    decided.sort();
    let mut expected: Vec<(String, String)> = all
        .iter()
        .map(|o| (o.resource_id.clone(), o.request_id.clone()))
        .collect();
    expected.sort();
    assert_eq!(decided, expected);

    let drop = CampaignRow {
        campaign_id: "drop".into(),
        partition: 0,
        spec: spec(2, 1),
        issued: 2,
    };
    assert_eq!(
        journal.campaigns().await.unwrap(),
        std::slice::from_ref(&drop)
    );
    assert_eq!(journal.campaign("drop").await.unwrap(), Some(drop));
    assert_eq!(journal.campaign("nope").await.unwrap(), None);
    let alice = journal.coupons_of_user("alice").await.unwrap();
    assert_eq!(
        alice,
        [CouponRow {
            coupon_id: "drop-1".into(),
            campaign_id: "drop".into(),
            user_id: "alice".into(),
            issued_at: at(1),
            expires_at: at(86_400),
            redeemed_at: Some(at(12)),
            expired_at: None,
            campaign: spec(2, 1),
        }]
    );
    assert_eq!(journal.coupons_of_user("bob").await.unwrap().len(), 1);
    assert_eq!(journal.coupons_of_user("carol").await.unwrap(), []);

    assert_eq!(
        journal.dead_letters(0).await.unwrap(),
        [dead_letter(0, 5, "envelope version 9 is unknown")]
    );
    assert_eq!(journal.dead_letters(1).await.unwrap(), []);

    // The outbox holds the state-changing outcomes only (offsets 0, 1, 2, 4), in log order.
    let outbox = journal.outbox_from(0, 0, 100).await.unwrap();
    assert_eq!(
        outbox,
        [&all[0], &all[1], &all[2], &all[4]].map(Clone::clone)
    );
    let page = journal.outbox_from(0, 2, 1).await.unwrap();
    assert_eq!(page, [all[2].clone()]);
    assert_eq!(journal.outbox_from(0, 5, 100).await.unwrap(), []);
    assert_eq!(journal.limit_breaches().await.unwrap(), []);
}

async fn redeem_of_a_coupon_granted_in_the_same_batch(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let outcomes = vec![
        campaign(0, 0, "drop", 5, 1),
        grant(0, 1, "drop", 1, "alice"),
        redeem(0, 2, "drop", "drop-1", "alice", at(30)),
    ];
    journal.commit(&batch(lease, 3, outcomes)).await.unwrap();
    let alice = journal.coupons_of_user("alice").await.unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].redeemed_at, Some(at(30)));
}

async fn repeated_campaign_create_keeps_the_first_row(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    // Two create requests with the same spec are both "created" (the second is idempotent).
    let mut again = campaign(0, 1, "drop", 5, 1);
    again.request_id = "create-again".into();
    journal
        .commit(&batch(lease, 2, vec![campaign(0, 0, "drop", 5, 1), again]))
        .await
        .unwrap();
    let campaigns = journal.campaigns().await.unwrap();
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0].spec, spec(5, 1));
    assert_eq!(journal.outbox_from(0, 0, 10).await.unwrap().len(), 2);
}

async fn coupon_times_read_back_at_millisecond_precision(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let precise = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
    let mut granted = grant(0, 1, "drop", 1, "alice");
    if let Decision::CouponGranted { coupon } = &mut granted.decision {
        coupon.issued_at = precise;
        coupon.expires_at = precise;
    }
    granted.decided_at = precise;
    journal
        .commit(&batch(
            lease,
            3,
            vec![
                campaign(0, 0, "drop", 5, 1),
                granted.clone(),
                redeem(0, 2, "drop", "drop-1", "alice", precise),
            ],
        ))
        .await
        .unwrap();
    let millis = Utc.timestamp_opt(1_700_000_000, 123_000_000).unwrap();
    let coupon = &journal.coupons_of_user("alice").await.unwrap()[0];
    assert_eq!(
        (coupon.issued_at, coupon.expires_at, coupon.redeemed_at),
        (millis, millis, Some(millis))
    );
    // The outcome itself keeps full precision: its JSON is what a replay must reproduce.
    assert_eq!(
        journal.outcome("drop", &granted.request_id).await.unwrap(),
        Some(granted)
    );
}

async fn duplicate_request_fails_the_whole_batch(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let mut duplicate = grant(0, 1, "drop", 1, "alice");
    duplicate.request_id = "req-0-0".into();
    let err = journal
        .commit(&batch(
            lease,
            2,
            vec![campaign(0, 0, "drop", 5, 1), duplicate],
        ))
        .await
        .unwrap_err();
    // A second outcome for one request is a processor bug: retrying cannot help.
    assert!(matches!(err, Error::Database(_)), "{err}");
    assert!(!err.is_retriable(), "{err}");
    assert_nothing_written(journal, 0).await;
    assert_eq!(journal.partitions().await.unwrap(), [lease]);
}

async fn sink_progress_is_kept_per_sink_and_partition(journal: &impl Journal) {
    assert_eq!(journal.sink_progress("mailbox").await.unwrap(), []);
    journal.save_sink_progress("mailbox", 0, 10).await.unwrap();
    journal.save_sink_progress("mailbox", 1, 3).await.unwrap();
    journal.save_sink_progress("archive", 0, 7).await.unwrap();
    journal.save_sink_progress("mailbox", 0, 12).await.unwrap();
    let mut mailbox = journal.sink_progress("mailbox").await.unwrap();
    mailbox.sort();
    assert_eq!(mailbox, [(0, 12), (1, 3)]);
    assert_eq!(journal.sink_progress("archive").await.unwrap(), [(0, 7)]);
    assert_eq!(journal.sink_progress("expiry").await.unwrap(), []);
}

/// The ledger protocol (docs/exactly-once.md, "Effects"): `sending` before the provider is
/// called, `sent` after; a `sent` row refuses to become `sending` again, and a `sending` row
/// found later (a crash mid-send) may be resent, counting the attempt.
async fn delivery_ledger_never_resends_a_sent_outcome(journal: &impl Journal) {
    assert!(journal
        .delivery_sending("ses", 0, 5, 0, at(10))
        .await
        .unwrap());
    let rows = journal.deliveries("ses", 0, 0..100).await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.partition, row.log_offset), (0, 5));
    assert_eq!(row.outcome_id(), "0-5");
    assert_eq!(row.state, DeliveryState::Sending);
    assert_eq!(row.attempts, 1);
    assert_eq!(row.first_attempt_at, at(10));
    assert_eq!(row.provider_message_id, None);

    // Found `sending` after a crash: resent, one more attempt.
    assert!(journal
        .delivery_sending("ses", 0, 5, 0, at(20))
        .await
        .unwrap());
    journal
        .delivery_sent("ses", 0, 5, 0, "ses-message-1", at(21))
        .await
        .unwrap();
    let row = journal.deliveries("ses", 0, 5..6).await.unwrap().remove(0);
    assert_eq!(row.state, DeliveryState::Sent);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.provider_message_id.as_deref(), Some("ses-message-1"));
    assert_eq!((row.first_attempt_at, row.updated_at), (at(10), at(21)));

    // Sent is final: neither a new attempt nor a late error changes it.
    assert!(!journal
        .delivery_sending("ses", 0, 5, 0, at(30))
        .await
        .unwrap());
    journal
        .delivery_error("ses", 0, 5, 0, DeliveryState::Failed, "late", at(31))
        .await
        .unwrap();
    let again = journal.deliveries("ses", 0, 5..6).await.unwrap().remove(0);
    assert_eq!(again, row);

    // Keyed per sink and outcome: the mailbox's delivery of the same outcome is its own.
    assert!(journal
        .delivery_sending("mailbox", 0, 5, 0, at(40))
        .await
        .unwrap());
    assert_eq!(journal.deliveries("ses", 0, 0..5).await.unwrap(), []);
    assert_eq!(journal.deliveries("ses", 1, 0..100).await.unwrap(), []);
    assert_eq!(journal.sink_names().await.unwrap(), ["mailbox", "ses"]);
}

/// A transient error keeps the row `sending` with the reason; a permanent one marks it
/// `failed`; a redrive (all, per sink, per outcome) turns failed rows `queued`, and the
/// sink finds them, and rows left `sending`, among its unfinished deliveries.
async fn delivery_ledger_failures_are_kept_and_redriven(journal: &impl Journal) {
    for offset in [1, 2, 3] {
        assert!(journal
            .delivery_sending("ses", 2, offset, 0, at(1))
            .await
            .unwrap());
    }
    journal
        .delivery_error("ses", 2, 1, 0, DeliveryState::Sending, "throttled", at(2))
        .await
        .unwrap();
    for offset in [2, 3] {
        journal
            .delivery_error(
                "ses",
                2,
                offset,
                0,
                DeliveryState::Failed,
                "rejected: bad address",
                at(2),
            )
            .await
            .unwrap();
    }
    assert!(journal
        .delivery_sending("mailbox", 0, 9, 0, at(1))
        .await
        .unwrap());
    journal
        .delivery_error(
            "mailbox",
            0,
            9,
            0,
            DeliveryState::Failed,
            "disk full",
            at(2),
        )
        .await
        .unwrap();
    let rows = journal.deliveries("ses", 2, 0..10).await.unwrap();
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.log_offset, r.state, r.last_error.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            (1, DeliveryState::Sending, Some("throttled")),
            (2, DeliveryState::Failed, Some("rejected: bad address")),
            (3, DeliveryState::Failed, Some("rejected: bad address")),
        ]
    );
    // Unfinished: the `sending` row (a sink finds one only after a crash), not the failed.
    let unfinished = journal.deliveries_unfinished("ses", 10).await.unwrap();
    assert_eq!(unfinished.len(), 1);
    assert_eq!(
        (unfinished[0].outcome_id(), unfinished[0].state),
        ("2-1".into(), DeliveryState::Sending)
    );
    journal
        .delivery_sent("ses", 2, 1, 0, "m-1", at(3))
        .await
        .unwrap();
    assert_eq!(journal.deliveries_unfinished("ses", 10).await.unwrap(), []);

    // One outcome, then one sink, then whatever is left.
    let one = journal
        .redrive_failed_deliveries(Some("ses"), Some((2, 3)), at(3))
        .await
        .unwrap();
    assert_eq!(one, 1);
    let queued = journal.deliveries_unfinished("ses", 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].outcome_id(), queued[0].state),
        ("2-3".into(), DeliveryState::Queued)
    );
    assert_eq!(
        journal
            .redrive_failed_deliveries(Some("ses"), None, at(4))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        journal.deliveries_unfinished("ses", 1).await.unwrap().len(),
        1
    );
    assert_eq!(
        journal
            .deliveries_unfinished("ses", 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        journal.deliveries_unfinished("mailbox", 10).await.unwrap(),
        []
    );
    assert_eq!(
        journal
            .redrive_failed_deliveries(None, None, at(5))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        journal
            .deliveries_unfinished("mailbox", 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        journal
            .redrive_failed_deliveries(None, None, at(6))
            .await
            .unwrap(),
        0
    );

    // A queued row is sent like any other.
    assert!(journal
        .delivery_sending("ses", 2, 2, 0, at(7))
        .await
        .unwrap());
    journal
        .delivery_sent("ses", 2, 2, 0, "m-2", at(8))
        .await
        .unwrap();
    let row = journal.deliveries("ses", 2, 2..3).await.unwrap().remove(0);
    assert_eq!((row.state, row.attempts), (DeliveryState::Sent, 2));
}

/// One outcome may call for several messages (a cancellation tells its guest and each
/// waiting party it made an offer to): the ledger is keyed per message,
/// (sink, partition, log_offset, message_index), each with its own state, attempts and
/// redrive; grouped writes, status counts and the audit's check of message 0 see each.
async fn delivery_ledger_keeps_each_message_of_an_outcome_apart(journal: &impl Journal) {
    let keys = [(0, 1, 0), (0, 1, 1), (0, 1, 2), (0, 3, 0)];
    assert_eq!(
        journal
            .deliveries_sending("ses", &keys, at(1))
            .await
            .unwrap(),
        [true; 4]
    );
    journal
        .deliveries_sent("ses", &[(0, 1, 0, "m-0"), (0, 1, 2, "m-2")], at(2))
        .await
        .unwrap();
    journal
        .delivery_error("ses", 0, 1, 1, DeliveryState::Failed, "rejected", at(3))
        .await
        .unwrap();
    let rows = journal.deliveries("ses", 0, 0..10).await.unwrap();
    let states: Vec<_> = rows
        .iter()
        .map(|r| (r.message_key(), r.state, r.provider_message_id.as_deref()))
        .collect();
    assert_eq!(
        states,
        [
            ("0-1".into(), DeliveryState::Sent, Some("m-0")),
            ("0-1.1".into(), DeliveryState::Failed, None),
            ("0-1.2".into(), DeliveryState::Sent, Some("m-2")),
            ("0-3".into(), DeliveryState::Sending, None),
        ]
    );
    // A sent message refuses to be sent again; its siblings are their own.
    assert_eq!(
        journal
            .deliveries_sending("ses", &keys, at(4))
            .await
            .unwrap(),
        [false, true, false, true]
    );
    journal
        .delivery_error("ses", 0, 1, 1, DeliveryState::Failed, "rejected", at(5))
        .await
        .unwrap();
    journal
        .delivery_sent("ses", 0, 3, 0, "m-3", at(5))
        .await
        .unwrap();

    // A redrive of the outcome re-drives its failed message only.
    let redriven = journal
        .redrive_failed_deliveries(Some("ses"), Some((0, 1)), at(6))
        .await
        .unwrap();
    assert_eq!(redriven, 1);
    let queued = journal.deliveries_unfinished("ses", 10).await.unwrap();
    assert_eq!(
        queued
            .iter()
            .map(|r| (r.message_key(), r.message_index, r.state, r.attempts))
            .collect::<Vec<_>>(),
        [("0-1.1".into(), 1, DeliveryState::Queued, 2)]
    );
    assert!(journal
        .delivery_sending("ses", 0, 1, 1, at(7))
        .await
        .unwrap());
    journal
        .delivery_sent("ses", 0, 1, 1, "m-1", at(8))
        .await
        .unwrap();
    let row = journal.deliveries("ses", 0, 1..2).await.unwrap().remove(1);
    assert_eq!(
        (
            row.message_index,
            row.state,
            row.attempts,
            row.provider_message_id
        ),
        (1, DeliveryState::Sent, 3, Some("m-1".into()))
    );
    assert_eq!(row.last_error.as_deref(), Some("rejected"));

    // Status counts messages; the audit's check wants message 0 of each carried outcome.
    let lease = journal.acquire(0).await.unwrap();
    let outcomes = vec![
        campaign(0, 0, "drop", 10, 1),
        grant(0, 1, "drop", 1, "alice"),
        grant(0, 2, "drop", 2, "bob"),
        grant(0, 3, "drop", 3, "carol"),
    ];
    journal.commit(&batch(lease, 4, outcomes)).await.unwrap();
    // The notifier finds a resource's spec in the outcome that created it.
    let created = journal.creation_outcome("drop").await.unwrap().unwrap();
    assert_eq!(
        created.position,
        LogPosition {
            partition: 0,
            offset: 0
        }
    );
    assert_eq!(journal.creation_outcome("nothing").await.unwrap(), None);
    journal.save_sink_progress("ses", 0, 4).await.unwrap();
    let status = journal.sink_status("ses").await.unwrap();
    assert_eq!((status[0].sent, status[0].failed), (4, 0));
    assert!(journal
        .delivery_sending("ses", 0, 2, 1, at(9))
        .await
        .unwrap());
    assert_eq!(
        journal
            .carried_without_delivery("ses", &["coupon_granted"])
            .await
            .unwrap(),
        1,
        "offset 2 has a message 1 but no message 0"
    );
}

/// `turnstile sinks status`: per partition a processor took, the sink's progress, the
/// outbox's end, the backlog between them, and the ledger's counts by state.
async fn sink_status_shows_progress_backlog_and_counts(journal: &impl Journal) {
    let lease0 = journal.acquire(0).await.unwrap();
    let outcomes = vec![
        campaign(0, 0, "drop", 10, 1),
        grant(0, 1, "drop", 1, "alice"),
        rejected(0, 2, "drop", "alice", Rejection::UserLimitReached),
        grant(0, 3, "drop", 2, "bob"),
    ];
    journal.commit(&batch(lease0, 4, outcomes)).await.unwrap();
    journal.acquire(1).await.unwrap();
    journal.save_sink_progress("ses", 0, 2).await.unwrap();
    assert!(journal
        .delivery_sending("ses", 0, 1, 0, at(1))
        .await
        .unwrap());
    journal
        .delivery_sent("ses", 0, 1, 0, "m", at(2))
        .await
        .unwrap();
    assert!(journal
        .delivery_sending("ses", 0, 3, 0, at(1))
        .await
        .unwrap());

    let status = journal.sink_status("ses").await.unwrap();
    assert_eq!(
        status,
        [
            SinkPartitionStatus {
                partition: 0,
                next_offset: 2,
                outbox_end_offset: 4,
                backlog_outcomes: 1, // the rejection has no outbox row
                sent: 1,
                sending: 1,
                ..SinkPartitionStatus::default()
            },
            SinkPartitionStatus {
                partition: 1,
                ..SinkPartitionStatus::default()
            },
        ]
    );
    let untouched = journal.sink_status("mailbox").await.unwrap();
    assert_eq!(untouched[0].backlog_outcomes, 3);
    assert_eq!(untouched[0].next_offset, 0);
}

async fn limit_breaches_are_reported(journal: &impl Journal) {
    // The journal stores what it is given; the audit relies on it to show a broken limit.
    let lease = journal.acquire(0).await.unwrap();
    let outcomes = vec![
        campaign(0, 0, "small", 2, 1),
        grant(0, 1, "small", 1, "alice"),
        grant(0, 2, "small", 2, "alice"),
        grant(0, 3, "small", 3, "bob"),
        campaign(0, 4, "roomy", 100, 2),
        grant(0, 5, "roomy", 1, "carol"),
        grant(0, 6, "roomy", 2, "carol"),
    ];
    journal.commit(&batch(lease, 7, outcomes)).await.unwrap();
    let mut breaches = journal.limit_breaches().await.unwrap();
    breaches.sort_by(|a, b| (&a.campaign_id, &a.user_id).cmp(&(&b.campaign_id, &b.user_id)));
    assert_eq!(
        breaches,
        [
            LimitBreach {
                campaign_id: "small".into(),
                user_id: None,
                count: 3,
                limit: 2,
            },
            LimitBreach {
                campaign_id: "small".into(),
                user_id: Some("alice".into()),
                count: 2,
                limit: 1,
            },
        ]
    );
    let campaigns = journal.campaigns().await.unwrap();
    let issued: Vec<(&str, u32)> = campaigns
        .iter()
        .map(|c| (c.campaign_id.as_str(), c.issued))
        .collect();
    assert_eq!(issued, [("roomy", 2), ("small", 3)]);
}

async fn a_batch_of_thousands_commits_whole(journal: &impl Journal) {
    // More rows than one SQLite statement takes (it splits them) in one transaction, and
    // more than recovery parses in one chunk.
    const GRANTS: u64 = 10_000;
    let lease = journal.acquire(0).await.unwrap();
    let mut outcomes = vec![campaign(0, 0, "drop", GRANTS as u32, 1)];
    outcomes.extend((1..=GRANTS).map(|n| grant(0, n, "drop", n as u32, &format!("user-{n}"))));
    journal
        .commit(&batch(lease, GRANTS + 1, outcomes.clone()))
        .await
        .unwrap();
    assert_eq!(journal.load_outcomes(0).await.unwrap(), outcomes);
    assert_eq!(journal.campaigns().await.unwrap()[0].issued, GRANTS as u32);
    let outbox = journal.outbox_from(0, 1_000, 100_000).await.unwrap();
    assert_eq!(outbox.len() as u64, GRANTS + 1 - 1_000);
    assert_eq!(
        journal.partitions().await.unwrap(),
        [lease_at(lease, GRANTS + 1)]
    );
}

// ---- helpers ----

async fn timers_come_with_grants_and_go_with_their_outcomes(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    // Alice's coupon is valid for three days, so it gets a reminder the day before; Bob's
    // expires within a day of issue and gets none.
    let mut alice = grant(0, 1, "drop", 1, "alice");
    if let Decision::CouponGranted { coupon } = &mut alice.decision {
        coupon.expires_at = at(3 * 86_400);
    }
    let bob = grant(0, 2, "drop", 2, "bob");
    let created = vec![campaign(0, 0, "drop", 10, 1), alice, bob];
    journal.commit(&batch(lease, 3, created)).await.unwrap();
    assert_eq!(
        journal.pending_timers().await.unwrap(),
        (3, Some(at(86_400)))
    );

    let due = |seconds| journal.due_timers(at(seconds), None, 10);
    assert_eq!(due(86_400 - 1).await.unwrap(), []);
    let all = due(3 * 86_400).await.unwrap();
    let described: Vec<(&str, DateTime<Utc>, &str)> = all
        .iter()
        .map(|t| (t.timer_id.as_str(), t.due_at, t.user_id.as_str()))
        .collect();
    assert_eq!(
        described,
        [
            ("timer:expire:drop-2", at(86_400), "bob"),
            ("timer:remind:drop-1", at(2 * 86_400), "alice"),
            ("timer:expire:drop-1", at(3 * 86_400), "alice"),
        ]
    );
    assert!(all
        .iter()
        .all(|t| t.partition == 0 && t.resource_id == "drop"));
    // Pages continue after the last timer of the previous page.
    let second_page = journal
        .due_timers(at(3 * 86_400), Some(&all[0]), 1)
        .await
        .unwrap();
    assert_eq!(second_page, [all[1].clone()]);

    // Bob's expiry fires and is decided: its timer goes and his coupon reads as expired.
    let mut expired = outcome(
        0,
        3,
        "drop",
        "bob",
        CommandKind::Expire,
        Decision::CouponExpired {
            coupon_id: "drop-2".into(),
            expired_at: at(86_400),
        },
    );
    expired.request_id = "timer:expire:drop-2".into();
    // Alice's reminder fires too early and is rejected: its timer goes all the same, since
    // a timer command has exactly one outcome.
    let mut early = rejected(0, 4, "drop", "alice", Rejection::NotDueYet);
    early.request_id = "timer:remind:drop-1".into();
    early.command = CommandKind::RemindExpiry;
    journal
        .commit(&batch(lease_at(lease, 3), 5, vec![expired, early]))
        .await
        .unwrap();
    let left = due(3 * 86_400).await.unwrap();
    assert_eq!(left, [all[2].clone()]);
    assert_eq!(
        journal.pending_timers().await.unwrap(),
        (1, Some(at(3 * 86_400)))
    );
    let bobs = journal.coupons_of_user("bob").await.unwrap();
    assert_eq!(bobs[0].expired_at, Some(at(86_400)));
    assert_eq!(
        journal.coupons_of_user("alice").await.unwrap()[0].expired_at,
        None
    );
}

async fn the_archive_follows_the_outbox_and_applying_twice_changes_nothing(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let issued = vec![
        campaign(0, 0, "drop", 10, 1),
        grant(0, 1, "drop", 1, "alice"),
        grant(0, 2, "drop", 2, "bob"),
    ];
    journal.commit(&batch(lease, 3, issued)).await.unwrap();
    let mut expired = outcome(
        0,
        4,
        "drop",
        "bob",
        CommandKind::Expire,
        Decision::CouponExpired {
            coupon_id: "drop-2".into(),
            expired_at: at(86_400),
        },
    );
    expired.request_id = "timer:expire:drop-2".into();
    let changed = vec![redeem(0, 3, "drop", "drop-1", "alice", at(3)), expired];
    journal
        .commit(&batch(lease_at(lease, 3), 5, changed))
        .await
        .unwrap();
    let outbox = journal.outbox_from(0, 0, 100).await.unwrap();
    assert_eq!(outbox.len(), 5);

    // Before the archive has seen anything, every coupon is missing from it.
    assert_eq!(journal.archive_mismatches().await.unwrap().len(), 2);
    journal
        .archive_batch("archive", 0, &outbox[..3], 3)
        .await
        .unwrap();
    let mismatch = |coupon: &str, journal: &str, archive: &str| ArchiveMismatch {
        coupon_id: coupon.into(),
        journal_state: Some(journal.into()),
        archive_state: Some(archive.into()),
    };
    let mut behind = journal.archive_mismatches().await.unwrap();
    behind.sort_by(|a, b| a.coupon_id.cmp(&b.coupon_id));
    assert_eq!(
        behind,
        [
            mismatch("drop-1", "redeemed", "active"),
            mismatch("drop-2", "expired", "active")
        ]
    );
    journal
        .archive_batch("archive", 0, &outbox[3..], 5)
        .await
        .unwrap();
    assert_eq!(journal.archive_mismatches().await.unwrap(), []);
    assert_eq!(journal.sink_progress("archive").await.unwrap(), [(0, 5)]);
    // The whole outbox again, as if progress had been lost: nothing changes.
    journal
        .archive_batch("archive", 0, &outbox, 5)
        .await
        .unwrap();
    assert_eq!(journal.archive_mismatches().await.unwrap(), []);
}

async fn resource_views_follow_the_last_batch_and_not_a_fenced_one(journal: &impl Journal) {
    let view = |body: &str| ResourceView {
        resource_id: "gala".into(),
        domain: "seats".into(),
        body: body.into(),
    };
    assert_eq!(journal.resource_view("gala").await.unwrap(), None);
    let first = journal.acquire(0).await.unwrap();
    let mut commit = batch(first, 1, vec![]);
    commit.views = vec![view(r#"{"free":10}"#)];
    journal.commit(&commit).await.unwrap();
    let mut second = batch(lease_at(first, 1), 2, vec![]);
    second.views = vec![view(r#"{"free":9}"#)];
    journal.commit(&second).await.unwrap();
    let stored = journal.resource_view("gala").await.unwrap().unwrap();
    assert_eq!(stored.domain, "seats");
    let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(body, serde_json::json!({ "free": 9 }));

    // A zombie holding the old epoch changes nothing.
    journal.acquire(0).await.unwrap();
    let mut zombie = batch(lease_at(first, 2), 3, vec![]);
    zombie.views = vec![view(r#"{"free":0}"#)];
    assert!(journal.commit(&zombie).await.is_err());
    let stored = journal.resource_view("gala").await.unwrap().unwrap();
    let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(body, serde_json::json!({ "free": 9 }));
}

async fn holds_bookings_and_lots_are_archived_once_in_their_final_state(journal: &impl Journal) {
    let lease = journal.acquire(0).await.unwrap();
    let decided = |offset: u64, resource: &str, user: &str, command: CommandKind, decision| {
        let decision: Decision = serde_json::from_value(decision).unwrap();
        outcome(0, offset, resource, user, command, decision)
    };
    let booking = |id: &str| {
        serde_json::json!({"status": "table_booked", "booking_id": id,
        "slot": "2026-12-24T18:00", "party_size": 2,
        "starts_at": "2026-12-24T09:00:00Z", "ends_at": "2026-12-24T10:30:00Z"})
    };
    let lot_spec = serde_json::json!({"title": "Lamp", "ends_at": "2026-12-24T12:00:00Z",
        "opening_price": 100, "increment": 10, "extension_seconds": 0, "currency": "EUR"});
    let held = |id: &str| {
        serde_json::json!({"status": "seats_held", "hold_id": id,
        "seat_ids": ["A-1-1"], "expires_at": "2026-12-02T12:10:00Z", "price_total": 50})
    };
    let history = vec![
        decided(0, "gala", "ann", CommandKind::HoldBest, held("gala-h1")),
        decided(1, "gala", "bob", CommandKind::HoldBest, held("gala-h2")),
        decided(
            2,
            "gala",
            "ann",
            CommandKind::ConfirmHold,
            serde_json::json!({
            "status": "hold_confirmed", "hold_id": "gala-h1", "seat_ids": ["A-1-1"], "price_total": 50}),
        ),
        decided(
            3,
            "gala",
            "bob",
            CommandKind::LapseHold,
            serde_json::json!({
            "status": "hold_lapsed", "hold_id": "gala-h2", "seat_ids": ["A-1-1"]}),
        ),
        decided(4, "bistro", "cid", CommandKind::Book, booking("bistro-b1")),
        decided(5, "bistro", "dee", CommandKind::Book, booking("bistro-b2")),
        decided(
            6,
            "bistro",
            "cid",
            CommandKind::CancelBooking,
            serde_json::json!({
            "status": "booking_cancelled", "booking_id": "bistro-b1", "slot": "2026-12-24T18:00",
            "party_size": 2, "offers": []}),
        ),
        decided(
            7,
            "lamp",
            "operator",
            CommandKind::CreateLot,
            serde_json::json!({"status": "lot_created", "spec": lot_spec}),
        ),
        decided(
            8,
            "lamp",
            "operator",
            CommandKind::CloseLot,
            serde_json::json!({
            "status": "lot_sold", "winner": "eve", "price": 120, "by_buy_now": false,
            "closed_at": "2026-12-24T12:00:00Z"}),
        ),
    ];
    journal
        .commit(&batch(lease, 9, history.clone()))
        .await
        .unwrap();
    let outbox = journal.outbox_from(0, 0, 100).await.unwrap();
    assert_eq!(outbox, history);

    let expected = turnstile_journal::expected_archive_records(&history);
    let row = |resource: &str, record: &str, state: &str| {
        (resource.to_string(), record.to_string(), state.to_string())
    };
    let wanted = vec![
        row("bistro", "bistro-b1", "cancelled"),
        row("bistro", "bistro-b2", "booked"),
        row("gala", "gala-h1", "sold"),
        row("gala", "gala-h2", "lapsed"),
        row("lamp", "lamp", "sold"),
    ];
    let as_rows = |states: std::collections::BTreeMap<(String, String), String>| {
        states
            .into_iter()
            .map(|((r, id), s)| (r, id, s))
            .collect::<Vec<_>>()
    };
    assert_eq!(as_rows(expected), wanted);

    // In two steps, then everything again as if progress were lost: the same rows.
    journal
        .archive_batch("archive", 0, &outbox[..4], 4)
        .await
        .unwrap();
    assert_eq!(
        journal.archive_record_states().await.unwrap()[..2],
        [
            row("gala", "gala-h1", "sold"),
            row("gala", "gala-h2", "lapsed"),
        ]
    );
    journal
        .archive_batch("archive", 0, &outbox[4..], 9)
        .await
        .unwrap();
    assert_eq!(journal.archive_record_states().await.unwrap(), wanted);
    journal
        .archive_batch("archive", 0, &outbox, 9)
        .await
        .unwrap();
    assert_eq!(journal.archive_record_states().await.unwrap(), wanted);
}

async fn assert_nothing_written(journal: &impl Journal, partition: u32) {
    assert_eq!(journal.stored_outcomes(partition).await.unwrap(), []);
    assert_eq!(journal.decided_requests().await.unwrap(), []);
    assert_eq!(journal.campaigns().await.unwrap(), []);
    assert_eq!(journal.coupons_of_user("alice").await.unwrap(), []);
    assert_eq!(journal.dead_letters(partition).await.unwrap(), []);
    assert_eq!(journal.outbox_from(partition, 0, 100).await.unwrap(), []);
}

fn lease(partition: u32, epoch: u64, next_offset: u64) -> PartitionLease {
    PartitionLease {
        partition,
        epoch,
        next_offset,
    }
}

fn lease_at(lease: PartitionLease, next_offset: u64) -> PartitionLease {
    PartitionLease {
        next_offset,
        ..lease
    }
}

/// A batch from the lease's offset to `next_offset`.
fn batch(lease: PartitionLease, next_offset: u64, outcomes: Vec<Outcome>) -> BatchCommit {
    BatchCommit {
        partition: lease.partition,
        epoch: lease.epoch,
        from_offset: lease.next_offset,
        next_offset,
        outcomes: outcomes.into_iter().map(Arc::new).collect(),
        ..BatchCommit::default()
    }
}

/// Four records from the lease's offset on: a campaign of 2, two grants and a sold-out
/// rejection.
fn sample_batch(lease: PartitionLease) -> BatchCommit {
    let (p, from) = (lease.partition, lease.next_offset);
    let outcomes = vec![
        campaign(p, from, "drop", 2, 1),
        grant(p, from + 1, "drop", 1, "alice"),
        grant(p, from + 2, "drop", 2, "bob"),
        rejected(p, from + 3, "drop", "carol", Rejection::SoldOut),
    ];
    batch(lease, from + 4, outcomes)
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + seconds, 0).unwrap()
}

fn spec(capacity: u32, per_user_limit: u32) -> CampaignSpec {
    CampaignSpec {
        title: "Spring drop — 90% off".into(),
        capacity,
        per_user_limit,
        opens_at: None,
        closes_at: Some(at(3_600)),
        time_zone: "Asia/Seoul".into(),
        valid_days: 0,
        locale: None,
    }
}

fn outcome(
    partition: u32,
    offset: u64,
    resource_id: &str,
    user_id: &str,
    command: CommandKind,
    decision: Decision,
) -> Outcome {
    Outcome {
        request_id: format!("req-{partition}-{offset}"),
        resource_id: resource_id.into(),
        user_id: user_id.into(),
        command,
        position: LogPosition { partition, offset },
        decided_at: at(offset as i64),
        decision,
    }
}

fn campaign(
    partition: u32,
    offset: u64,
    campaign_id: &str,
    capacity: u32,
    per_user_limit: u32,
) -> Outcome {
    let spec = spec(capacity, per_user_limit);
    let decision = Decision::CampaignCreated { spec };
    outcome(
        partition,
        offset,
        campaign_id,
        "ops",
        CommandKind::CreateCampaign,
        decision,
    )
}

fn grant(partition: u32, offset: u64, campaign_id: &str, n: u32, user_id: &str) -> Outcome {
    let coupon = Coupon {
        coupon_id: format!("{campaign_id}-{n}"),
        campaign_id: campaign_id.into(),
        user_id: user_id.into(),
        issued_at: at(offset as i64),
        expires_at: at(86_400),
    };
    let decision = Decision::CouponGranted { coupon };
    outcome(
        partition,
        offset,
        campaign_id,
        user_id,
        CommandKind::Claim,
        decision,
    )
}

fn redeem(
    partition: u32,
    offset: u64,
    campaign_id: &str,
    coupon_id: &str,
    user_id: &str,
    redeemed_at: DateTime<Utc>,
) -> Outcome {
    let decision = Decision::CouponRedeemed {
        coupon_id: coupon_id.into(),
        redeemed_at,
    };
    outcome(
        partition,
        offset,
        campaign_id,
        user_id,
        CommandKind::Redeem,
        decision,
    )
}

fn rejected(
    partition: u32,
    offset: u64,
    campaign_id: &str,
    user_id: &str,
    reason: Rejection,
) -> Outcome {
    let decision = Decision::Rejected { reason };
    outcome(
        partition,
        offset,
        campaign_id,
        user_id,
        CommandKind::Claim,
        decision,
    )
}

fn dead_letter(partition: u32, offset: u64, reason: &str) -> DeadLetter {
    DeadLetter {
        partition,
        offset,
        reason: reason.into(),
        payload: b"{\"not\": \"an envelope\"\x00\xff".to_vec(),
    }
}
