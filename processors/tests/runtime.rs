//! The partition runtime against the real embedded log and SQLite journal: epoch fencing
//! (invariant 8), poison records (9), and recovery that keeps deduplicating (3).
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use turnstile_journal::{Journal, JournalLocation};
use turnstile_log::{partition_for, EmbeddedLog, EmbeddedLogConfig};
use turnstile_processors::runtime::{
    BatchRange, Decided, DecisionListener, Error, PartitionProcessor, PartitionReader,
    ProcessorConfig,
};
use turnstile_schemas::{
    CampaignSpec, Command, CouponCommand, Decision, Envelope, ENVELOPE_VERSION,
};

#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<Decided>>);

impl DecisionListener for Recorder {
    fn committed(&self, decided: &[Decided]) {
        self.0.lock().unwrap().extend_from_slice(decided);
    }
}

/// Hears the range of every committed batch, with how many outcomes it carried.
#[derive(Debug, Default)]
struct RangeRecorder(Mutex<Vec<(BatchRange, usize)>>);

impl DecisionListener for RangeRecorder {
    fn committed(&self, _decided: &[Decided]) {
        unreachable!("the runtime calls committed_range");
    }

    fn committed_range(&self, range: BatchRange, decided: &[Decided]) {
        self.0.lock().unwrap().push((range, decided.len()));
    }
}

impl Recorder {
    fn taken(&self) -> Vec<Decided> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

fn envelope(resource: &str, request: &str, user: &str, command: CouponCommand) -> Vec<u8> {
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: request.into(),
        resource_id: resource.into(),
        user_id: user.into(),
        submitted_at: Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap(),
        traceparent: None,
        command: Command::Coupon(command),
    }
    .to_log_bytes()
}

fn create(resource: &str, capacity: u32) -> Vec<u8> {
    let spec = CampaignSpec {
        title: String::new(),
        capacity,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: "Asia/Tokyo".into(),
        valid_days: 0,
        locale: None,
    };
    envelope(
        resource,
        &format!("create-{resource}"),
        "operator",
        CouponCommand::CreateCampaign { spec },
    )
}

struct Fixture {
    _dir: tempfile::TempDir,
    log: EmbeddedLog,
    journal: Journal,
}

async fn fixture(partitions: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let log =
        EmbeddedLog::open(EmbeddedLogConfig::new(dir.path().join("log"), partitions)).unwrap();
    let journal = Journal::open(&JournalLocation::Sqlite(dir.path().join("journal.sqlite")))
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        log,
        journal,
    }
}

impl Fixture {
    async fn processor(
        &self,
        partition: u32,
        listener: &Arc<Recorder>,
    ) -> PartitionProcessor<Recorder> {
        self.processor_with(partition, listener, ProcessorConfig::default())
            .await
    }

    async fn processor_with<L: DecisionListener>(
        &self,
        partition: u32,
        listener: &Arc<L>,
        config: ProcessorConfig,
    ) -> PartitionProcessor<L> {
        PartitionProcessor::recover(
            partition,
            PartitionReader::Embedded(self.log.clone()),
            self.journal.clone(),
            listener.clone(),
            config,
        )
        .await
        .unwrap()
    }
}

#[tokio::test]
async fn a_fenced_processor_commits_nothing_and_tells_nobody() {
    let f = fixture(1).await;
    f.log
        .append_batch(
            0,
            vec![
                create("drop", 5),
                envelope("drop", "r1", "u1", CouponCommand::Claim),
            ],
        )
        .await
        .unwrap();
    let zombie_heard = Arc::new(Recorder::default());
    let mut zombie = f.processor(0, &zombie_heard).await;
    let successor_heard = Arc::new(Recorder::default());
    let mut successor = f.processor(0, &successor_heard).await;

    let error = zombie.catch_up().await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::Journal(turnstile_journal::Error::Fenced { .. })
        ),
        "{error}"
    );
    assert!(!error.is_retriable());
    assert!(
        zombie_heard.taken().is_empty(),
        "a fenced processor must not announce decisions"
    );
    assert!(f.journal.stored_outcomes(0).await.unwrap().is_empty());
    assert_eq!(f.journal.partitions().await.unwrap()[0].next_offset, 0);

    successor.catch_up().await.unwrap();
    assert_eq!(successor_heard.taken().len(), 2);
    assert_eq!(f.journal.stored_outcomes(0).await.unwrap().len(), 2);
    assert_eq!(f.journal.partitions().await.unwrap()[0].next_offset, 2);
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_the_partition_moves_on() {
    let f = fixture(2).await;
    let here = partition_for("drop", 2);
    let elsewhere = (0..100)
        .map(|i| format!("other-{i}"))
        .find(|r| partition_for(r, 2) != here)
        .unwrap();
    let mut wrong_version: serde_json::Value =
        serde_json::from_slice(&envelope("drop", "v9", "u", CouponCommand::Claim)).unwrap();
    wrong_version["v"] = 99.into();
    f.log
        .append_batch(
            here,
            vec![
                create("drop", 5),
                b"{not json".to_vec(),
                serde_json::to_vec(&wrong_version).unwrap(),
                envelope(&elsewhere, "stray", "u", CouponCommand::Claim),
                envelope("drop", "r1", "u1", CouponCommand::Claim),
            ],
        )
        .await
        .unwrap();
    let heard = Arc::new(Recorder::default());
    f.processor(here, &heard).await.catch_up().await.unwrap();

    let letters = f.journal.dead_letters(here).await.unwrap();
    let offsets: Vec<u64> = letters.iter().map(|letter| letter.offset).collect();
    assert_eq!(offsets, vec![1, 2, 3], "{letters:?}");
    assert!(
        letters[0].reason.contains("not a valid envelope"),
        "{letters:?}"
    );
    assert!(letters[1].reason.contains("version 99"), "{letters:?}");
    assert!(
        letters[2].reason.contains("belongs to partition"),
        "{letters:?}"
    );
    let decided = heard.taken();
    assert_eq!(decided.len(), 2);
    assert!(matches!(
        decided[1].outcome.decision,
        Decision::CouponGranted { .. }
    ));
    assert_eq!(
        f.journal
            .partitions()
            .await
            .unwrap()
            .iter()
            .find(|p| p.partition == here)
            .unwrap()
            .next_offset,
        5
    );
}

#[tokio::test]
async fn after_recovery_a_redelivery_gets_the_recorded_outcome() {
    let f = fixture(1).await;
    f.log
        .append_batch(
            0,
            vec![
                create("drop", 1),
                envelope("drop", "r1", "u1", CouponCommand::Claim),
            ],
        )
        .await
        .unwrap();
    let heard = Arc::new(Recorder::default());
    f.processor(0, &heard).await.catch_up().await.unwrap();
    let first = heard.taken()[1].clone();
    assert!(first.is_first());

    // A new owner restores from the journal; the same request arrives again, and a
    // different user finds the single coupon gone.
    f.log
        .append_batch(
            0,
            vec![
                envelope("drop", "r1", "u1", CouponCommand::Claim),
                envelope("drop", "r2", "u2", CouponCommand::Claim),
            ],
        )
        .await
        .unwrap();
    f.processor(0, &heard).await.catch_up().await.unwrap();
    let later = heard.taken();
    assert!(!later[0].is_first());
    assert_eq!(later[0].outcome, first.outcome);
    assert!(matches!(
        later[1].outcome.decision,
        Decision::Rejected {
            reason: turnstile_schemas::Rejection::SoldOut
        }
    ));
    assert_eq!(
        f.journal.stored_outcomes(0).await.unwrap().len(),
        3,
        "a duplicate records no second outcome"
    );
}

#[tokio::test]
async fn every_batch_is_reported_with_its_range_even_one_with_only_dead_letters() {
    // The Redis edge state tells a lost batch from an empty one by these ranges.
    let f = fixture(1).await;
    f.log
        .append_batch(
            0,
            vec![
                create("ranges", 5),
                b"{not json".to_vec(),
                b"also not json".to_vec(),
                envelope("ranges", "r1", "u1", CouponCommand::Claim),
            ],
        )
        .await
        .unwrap();
    let heard = Arc::new(RangeRecorder::default());
    f.processor_with(0, &heard, two_per_batch())
        .await
        .catch_up()
        .await
        .unwrap();
    let range = |from_offset, next_offset| BatchRange {
        partition: 0,
        from_offset,
        next_offset,
    };
    assert_eq!(
        *heard.0.lock().unwrap(),
        vec![(range(0, 2), 1), (range(2, 4), 1)]
    );
    f.log
        .append_batch(0, vec![b"junk".to_vec(), b"junk".to_vec()])
        .await
        .unwrap();
    heard.0.lock().unwrap().clear();
    f.processor_with(0, &heard, two_per_batch())
        .await
        .catch_up()
        .await
        .unwrap();
    assert_eq!(*heard.0.lock().unwrap(), vec![(range(4, 6), 0)]);
}

fn two_per_batch() -> ProcessorConfig {
    ProcessorConfig {
        batch_commands_max: 2,
        ..ProcessorConfig::default()
    }
}
