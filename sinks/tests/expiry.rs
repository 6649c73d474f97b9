//! The expiry scheduler against the real embedded log, partition processors and SQLite
//! journal, with a hand-set clock (`docs/exactly-once.md`, rules 33–38): timers fire at
//! their instant and not a second before, local midnights are right in Seoul and across
//! New York's 2026 daylight-saving changes, and a hundred thousand timers due at the same
//! second take effect once each, even when a restarted scheduler appends them again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tokio::sync::watch;
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::{partition_for, EmbeddedLog, EmbeddedLogConfig};
use turnstile_processors::runtime::{Decided, DecisionListener, ProcessorConfig, ProcessorGroup};
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Decision, Envelope, Outcome, Rejection, ENVELOPE_VERSION,
};
use turnstile_sinks::clock::ManualClock;
use turnstile_sinks::expiry::{AppendError, CommandAppender, ExpiryConfig, ExpiryScheduler};

const PARTITIONS: u32 = 4;

/// Longest wait for the processors to decide what a test appended.
const DECIDED_WITHIN: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Quiet;

impl DecisionListener for Quiet {
    fn committed(&self, _decided: &[Decided]) {}
}

/// The scheduler's way into the test's log.
#[derive(Debug, Clone)]
struct LogAppender(EmbeddedLog);

impl CommandAppender for LogAppender {
    async fn append(&self, partition: u32, payload: Vec<u8>) -> Result<u64, AppendError> {
        Ok(self.0.append(partition, payload).await?)
    }
}

/// A log, a journal and running processors in a temporary directory.
struct Stack {
    _dir: tempfile::TempDir,
    log: EmbeddedLog,
    journal: Journal,
    _shutdown: watch::Sender<bool>,
}

impl Stack {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log =
            EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"), PARTITIONS)).unwrap();
        let location = JournalLocation::Sqlite(dir.path().join("journal.sqlite"));
        let journal = Journal::open(&location).await.unwrap();
        let (shutdown, shutdown_rx) = watch::channel(false);
        let processors = ProcessorGroup::start(
            log.clone(),
            journal.clone(),
            Arc::new(Quiet),
            ProcessorConfig::default(),
            shutdown_rx,
        )
        .await
        .unwrap();
        tokio::spawn(processors.join());
        Stack {
            _dir: dir,
            log,
            journal,
            _shutdown: shutdown,
        }
    }

    fn scheduler(&self, clock: &ManualClock) -> ExpiryScheduler<LogAppender, ManualClock> {
        ExpiryScheduler::new(
            ExpiryConfig::default(),
            self.journal.clone(),
            LogAppender(self.log.clone()),
            clock.clone(),
        )
    }

    async fn append(&self, envelope: &Envelope) {
        let partition = partition_for(&envelope.resource_id, PARTITIONS);
        self.log
            .append(partition, envelope.to_log_bytes())
            .await
            .unwrap();
    }

    /// The outcome of a request, once the processors have committed it.
    async fn decided(&self, resource_id: &str, request_id: &str) -> Outcome {
        let started = Instant::now();
        loop {
            if let Some(outcome) = self.journal.outcome(resource_id, request_id).await.unwrap() {
                return outcome;
            }
            assert!(
                started.elapsed() < DECIDED_WITHIN,
                "{resource_id}/{request_id} was not decided within {DECIDED_WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until exactly `count` timers are pending (made by grants, not yet taken effect).
    async fn pending_timers_become(&self, count: u64) {
        let started = Instant::now();
        loop {
            let (pending, _) = self.journal.pending_timers().await.unwrap();
            if pending == count {
                return;
            }
            assert!(
                started.elapsed() < DECIDED_WITHIN,
                "{pending} timers pending, waited for {count}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a campaign and waits for it.
    async fn create(&self, campaign_id: &str, capacity: u32, time_zone: &str, valid_days: u32) {
        let spec = CampaignSpec {
            title: campaign_id.into(),
            capacity,
            per_user_limit: 1,
            opens_at: None,
            closes_at: None,
            time_zone: time_zone.into(),
            valid_days,
            locale: None,
        };
        let request_id = format!("create-{campaign_id}");
        let at = utc("2026-01-01T00:00:00Z");
        let create = CouponCommand::CreateCampaign { spec };
        self.append(&envelope(campaign_id, &request_id, "operator", at, create))
            .await;
        let outcome = self.decided(campaign_id, &request_id).await;
        assert!(matches!(outcome.decision, Decision::CampaignCreated { .. }));
    }

    /// A claim by `user` at `at`; returns the granted coupon's id and expiry.
    async fn claim(&self, campaign_id: &str, user: &str, at: &str) -> (String, DateTime<Utc>) {
        let request_id = format!("claim-{user}");
        let claim = envelope(
            campaign_id,
            &request_id,
            user,
            utc(at),
            CouponCommand::Claim,
        );
        self.append(&claim).await;
        match self.decided(campaign_id, &request_id).await.decision {
            Decision::CouponGranted { coupon } => (coupon.coupon_id, coupon.expires_at),
            other => panic!("the claim was not granted: {other:?}"),
        }
    }
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn envelope(
    resource_id: &str,
    request_id: &str,
    user_id: &str,
    submitted_at: DateTime<Utc>,
    command: impl Into<Command>,
) -> Envelope {
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: request_id.into(),
        resource_id: resource_id.into(),
        user_id: user_id.into(),
        submitted_at,
        traceparent: None,
        command: command.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coupon_issued_at_23_59_59_kst_expires_one_second_later_and_not_before() {
    let stack = Stack::start().await;
    stack.create("seoul", 10, "Asia/Seoul", 0).await;
    // 23:59:59 in Seoul (UTC+9, no daylight saving): valid until the local midnight after.
    let (coupon_id, expires_at) = stack.claim("seoul", "min-ji", "2026-06-15T14:59:59Z").await;
    assert_eq!(expires_at, utc("2026-06-15T15:00:00Z"));
    stack.pending_timers_become(1).await;

    let clock = ManualClock::new(utc("2026-06-15T14:59:59.999Z"));
    let mut scheduler = stack.scheduler(&clock);
    assert_eq!(scheduler.fire_due().await.unwrap(), 0, "not due yet");
    clock.set(expires_at);
    assert_eq!(scheduler.fire_due().await.unwrap(), 1);

    let expiry = stack
        .decided("seoul", &format!("timer:expire:{coupon_id}"))
        .await;
    assert_eq!(
        expiry.decision,
        Decision::CouponExpired {
            coupon_id: coupon_id.clone(),
            expired_at: expires_at,
        }
    );
    assert_eq!(expiry.decided_at, expires_at, "stamped with its due time");
    assert_eq!(
        expiry.user_id, "min-ji",
        "a timer acts for the coupon's holder"
    );
    stack.pending_timers_become(0).await;
    let coupons = stack.journal.coupons_of_user("min-ji").await.unwrap();
    assert_eq!(coupons[0].expired_at, Some(expires_at));
    assert_eq!(scheduler.fire_due().await.unwrap(), 0, "fired once");

    // The holder's redeem, logged after the expiry, is refused even though it claims an
    // earlier time: log order decides.
    let redeem = CouponCommand::Redeem {
        coupon_id: coupon_id.clone(),
    };
    let late = utc("2026-06-15T14:59:59.500Z");
    stack
        .append(&envelope("seoul", "redeem-1", "min-ji", late, redeem))
        .await;
    assert_eq!(
        stack.decided("seoul", "redeem-1").await.decision,
        Decision::Rejected {
            reason: Rejection::CouponExpired
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_york_timers_fall_on_local_midnight_across_both_2026_dst_changes() {
    let stack = Stack::start().await;
    stack.create("nyc", 10, "America/New_York", 1).await;
    // Noon on the Saturday before each change, valid for one more day: each coupon
    // expires at the local midnight after the change. Its reminder is due 24 hours before
    // that, which across a change is not a local midnight.
    let (spring, spring_expiry) = stack.claim("nyc", "ann", "2026-03-07T17:00:00Z").await;
    let (fall, fall_expiry) = stack.claim("nyc", "bob", "2026-10-31T16:00:00Z").await;
    // 2026-03-09 00:00 EDT (UTC-4) and 2026-11-02 00:00 EST (UTC-5).
    assert_eq!(spring_expiry, utc("2026-03-09T04:00:00Z"));
    assert_eq!(fall_expiry, utc("2026-11-02T05:00:00Z"));
    stack.pending_timers_become(4).await;

    let due = [
        // 2026-03-07 23:00 EST: the spring day is 23 hours long.
        ("2026-03-08T04:00:00Z", format!("timer:remind:{spring}")),
        ("2026-03-09T04:00:00Z", format!("timer:expire:{spring}")),
        // 2026-11-01 01:00 EDT, the first of the two 01:00s: the fall day is 25 hours long.
        ("2026-11-01T05:00:00Z", format!("timer:remind:{fall}")),
        ("2026-11-02T05:00:00Z", format!("timer:expire:{fall}")),
    ];
    let clock = ManualClock::new(utc("2026-03-01T00:00:00Z"));
    let mut scheduler = stack.scheduler(&clock);
    for (at, timer_id) in &due {
        let at = utc(at);
        clock.set(at - chrono::Duration::seconds(1));
        assert_eq!(
            scheduler.fire_due().await.unwrap(),
            0,
            "{timer_id} fired early"
        );
        clock.set(at);
        assert_eq!(scheduler.fire_due().await.unwrap(), 1, "{timer_id} is due");
        let outcome = stack.decided("nyc", timer_id).await;
        assert_eq!(outcome.decided_at, at);
        let expected_kind = if timer_id.contains("remind") {
            matches!(outcome.decision, Decision::CouponExpiring { .. })
        } else {
            matches!(outcome.decision, Decision::CouponExpired { .. })
        };
        assert!(expected_kind, "{timer_id}: {:?}", outcome.decision);
    }
    stack.pending_timers_become(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_timers_due_at_one_second_take_effect_once_each() {
    const COUPONS: u32 = 100_000;
    let stack = Stack::start().await;
    stack.create("tokyo", COUPONS, "Asia/Tokyo", 0).await;
    // Every coupon claimed the same morning expires at the same midnight.
    let morning = utc("2026-06-15T00:30:00Z");
    let claims: Vec<Envelope> = (0..COUPONS)
        .map(|n| {
            let user = format!("user-{n}");
            envelope(
                "tokyo",
                &format!("claim-{n}"),
                &user,
                morning,
                CouponCommand::Claim,
            )
        })
        .collect();
    for chunk in claims.chunks(10_000) {
        join_all(chunk.iter().map(|claim| stack.append(claim))).await;
    }
    stack.pending_timers_become(u64::from(COUPONS)).await;
    let midnight = utc("2026-06-15T15:00:00Z");
    assert_eq!(
        stack.journal.pending_timers().await.unwrap(),
        (u64::from(COUPONS), Some(midnight))
    );

    let clock = ManualClock::new(midnight);
    let mut first = stack.scheduler(&clock);
    assert_eq!(first.fire_due().await.unwrap(), COUPONS as usize);
    // A scheduler that restarted right away knows nothing of what is in flight and
    // appends every timer whose row is still there once more: late, never lost, and
    // the second delivery of a timer's request id is a duplicate.
    let mut restarted = stack.scheduler(&clock);
    let again = restarted.fire_due().await.unwrap();
    stack.pending_timers_become(0).await;
    assert_eq!(first.fire_due().await.unwrap(), 0);
    assert_eq!(restarted.fire_due().await.unwrap(), 0);

    let partition = partition_for("tokyo", PARTITIONS);
    let outcomes = stack.journal.load_outcomes(partition).await.unwrap();
    let mut expired: Vec<&str> = outcomes
        .iter()
        .filter_map(|o| match &o.decision {
            Decision::CouponExpired {
                coupon_id,
                expired_at,
            } => {
                assert_eq!(*expired_at, midnight);
                Some(coupon_id.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(expired.len(), COUPONS as usize, "one expiry per coupon");
    expired.sort_unstable();
    expired.dedup();
    assert_eq!(expired.len(), COUPONS as usize, "no coupon expired twice");
    let log_end = stack.log.end_offset(partition) as usize;
    assert_eq!(
        log_end,
        1 + COUPONS as usize * 2 + again,
        "the create, the claims, the first firing and the restarted one's all on the log"
    );
    println!("a restarted scheduler appended {again} timers again; each was a duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_lapses_at_its_expiry_and_its_seats_return_to_stock_exactly_once() {
    let stack = Stack::start().await;
    let spec: turnstile_schemas::seats::EventSpec = serde_json::from_value(serde_json::json!({
        "title": "Opening night", "starts_at": "2026-07-01T19:00:00Z", "hold_ttl_seconds": 600,
        "sections": [{"section_id": "A", "price_tier": {"name": "all", "price_minor": 100},
                      "rows": [{"row_id": "1", "seats": 4}]}]
    }))
    .unwrap();
    let at = utc("2026-06-15T10:00:00.123456Z");
    let create = turnstile_schemas::seats::SeatsCommand::CreateEvent { spec };
    stack
        .append(&envelope("night", "create", "operator", at, create))
        .await;
    stack.decided("night", "create").await;
    let hold = turnstile_schemas::seats::SeatsCommand::HoldBest {
        count: 3,
        section: None,
    };
    stack
        .append(&envelope("night", "hold-1", "kim", at, hold))
        .await;
    let Decision::SeatsHeld {
        hold_id,
        expires_at,
        ..
    } = stack.decided("night", "hold-1").await.decision
    else {
        panic!("the hold was not made")
    };
    assert_eq!(expires_at, at + chrono::Duration::seconds(600));
    stack.pending_timers_become(1).await;
    let free = |stack: &Stack| {
        let journal = stack.journal.clone();
        async move {
            let view = journal.resource_view("night").await.unwrap().unwrap();
            let view: serde_json::Value = serde_json::from_str(&view.body).unwrap();
            (
                view["sections"][0]["free"].as_u64().unwrap(),
                view["sections"][0]["held"].as_u64().unwrap(),
            )
        }
    };
    assert_eq!(free(&stack).await, (1, 3));

    // Not a millisecond early: the expiry carries microseconds, the clock is just before.
    let clock = ManualClock::new(expires_at - chrono::Duration::milliseconds(1));
    let mut scheduler = stack.scheduler(&clock);
    assert_eq!(scheduler.fire_due().await.unwrap(), 0, "not due yet");
    clock.set(expires_at + chrono::Duration::milliseconds(1));
    assert_eq!(scheduler.fire_due().await.unwrap(), 1);
    let lapse = stack
        .decided("night", &format!("timer:lapse_hold:{hold_id}"))
        .await;
    assert!(
        matches!(&lapse.decision, Decision::HoldLapsed { seat_ids, .. } if seat_ids.len() == 3),
        "{lapse:?}"
    );
    assert_eq!(lapse.user_id, "kim", "a lapse acts for the holder");
    assert!(
        lapse.decided_at >= expires_at,
        "never stamped before the expiry"
    );
    stack.pending_timers_become(0).await;
    assert_eq!(free(&stack).await, (4, 0), "the seats are back");

    // Fired again by a restarted scheduler, or the same command delivered twice: a
    // duplicate of one request, and the seats come back once.
    assert_eq!(scheduler.fire_due().await.unwrap(), 0, "fired once");
    let again = turnstile_schemas::seats::SeatsCommand::LapseHold {
        hold_id: hold_id.clone(),
    };
    let timer_id = format!("timer:lapse_hold:{hold_id}");
    stack
        .append(&envelope("night", &timer_id, "kim", expires_at, again))
        .await;
    let hold_2 = turnstile_schemas::seats::SeatsCommand::HoldBest {
        count: 4,
        section: None,
    };
    let later = expires_at + chrono::Duration::seconds(1);
    stack
        .append(&envelope("night", "hold-2", "lee", later, hold_2))
        .await;
    assert!(matches!(
        stack.decided("night", "hold-2").await.decision,
        Decision::SeatsHeld { .. }
    ));
    assert_eq!(
        free(&stack).await,
        (0, 4),
        "all four held once more, none twice"
    );
    let partition = partition_for("night", PARTITIONS);
    let lapses = stack
        .journal
        .load_outcomes(partition)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| matches!(o.decision, Decision::HoldLapsed { .. }))
        .count();
    assert_eq!(lapses, 1, "one lapse outcome");
}
