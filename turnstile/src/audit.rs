//! `turnstile audit`: checks the invariants from the journal and a replay of the log.
//!
//! - No oversell and limits hold (invariants 1, 2): counted from the journal's coupons.
//! - One outcome per request (3): every record of the log below the partition's journal
//!   offset is either a dead letter, a duplicate of a decided request, or has exactly one
//!   stored outcome, and no stored outcome lacks its record.
//! - Fair order and determinism (5, 6): replaying the log through a fresh state machine
//!   reproduces every stored outcome byte for byte, in log order.
//! - Seats, tables and lots (1, 2, 5 for each domain): `crate::domain_audit` re-derives
//!   every event's, venue's and lot's rules from the journal's outcomes alone.
//! - Effects once (7), as far as the journal can see them: once the archive sink has carried
//!   the whole outbox, every issued coupon has one archive row in the journal's state
//!   (active, redeemed, expired) and the archive has no other; every notifiable outcome a
//!   notifier has carried has a row in its delivery ledger, which is summed up (sent,
//!   failed, left ambiguous by a crash).

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use anyhow::Context;
use turnstile_journal::{
    expected_archive_records, outcome_json, Journal, JournalLocation, SinkPartitionStatus,
};
use turnstile_log::EmbeddedLog;
use turnstile_log_kafka::{KafkaLogConfig, KafkaPartitionReader};
use turnstile_processors::runtime::decode_record;
use turnstile_processors::runtime::PartitionReader;
use turnstile_processors::PartitionState;
use turnstile_schemas::{LogPosition, Outcome};
use turnstile_sinks::archive::ARCHIVE_SINK;
use turnstile_sinks::notify::NOTIFIED_OUTBOX_KINDS;

use crate::stack::log_dir;

/// Records read from the log per step of the replay.
const REPLAY_BATCH_RECORDS_MAX: usize = 8192;
/// Problems listed in full; beyond this only counted.
const PROBLEMS_SHOWN_MAX: usize = 20;

/// What the audit found.
#[derive(Debug, Default)]
pub struct AuditReport {
    /// Log records replayed.
    pub records: u64,
    /// Outcomes in the journal, all compared.
    pub outcomes: u64,
    /// Duplicate deliveries (retries) answered with an earlier outcome.
    pub duplicates: u64,
    /// Dead-lettered records.
    pub dead_letters: u64,
    /// Coupons issued, over all campaigns.
    pub coupons: u64,
    /// What the seats, venue and auction checks found: one line per domain in use.
    pub domains: Vec<String>,
    /// What the cross-check of the sinks found: one line per sink.
    pub sinks: Vec<String>,
    /// Invariant breaches found; empty means the audit passed.
    pub problems: Vec<String>,
}

impl AuditReport {
    /// True when every invariant held.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit: {} log records replayed, {} outcomes compared byte for byte, {} duplicate deliveries, {} dead letters, {} coupons",
            self.records, self.outcomes, self.duplicates, self.dead_letters, self.coupons
        )?;
        for line in self.domains.iter().chain(&self.sinks) {
            writeln!(f, "audit: {line}")?;
        }
        if self.passed() {
            writeln!(f, "audit: PASSED — no oversell, limits held, one outcome per request, replay identical")
        } else {
            writeln!(f, "audit: FAILED — {} problem(s):", self.problems.len())?;
            for problem in self.problems.iter().take(PROBLEMS_SHOWN_MAX) {
                writeln!(f, "  - {problem}")?;
            }
            if self.problems.len() > PROBLEMS_SHOWN_MAX {
                writeln!(
                    f,
                    "  … and {} more",
                    self.problems.len() - PROBLEMS_SHOWN_MAX
                )?;
            }
            Ok(())
        }
    }
}

/// Audits the log in a data directory against its journal (either may be in use).
pub async fn audit_data_dir(
    data_dir: &Path,
    journal: &JournalLocation,
) -> anyhow::Result<AuditReport> {
    let location = journal;
    let journal = Journal::open_read_only(location)
        .await
        .with_context(|| format!("cannot open the journal ({location})"))?;
    let log = EmbeddedLog::open_read_only(&log_dir(data_dir))
        .with_context(|| format!("cannot open the log in {}", data_dir.display()))?;
    let report = audit(&journal, &AuditedLog::Embedded(log)).await;
    journal.close().await;
    report
}

/// Audits a Kafka topic against its journal (both may be in use).
pub async fn audit_kafka(
    kafka: KafkaLogConfig,
    journal: &JournalLocation,
) -> anyhow::Result<AuditReport> {
    let location = journal;
    let journal = Journal::open_read_only(location)
        .await
        .with_context(|| format!("cannot open the journal ({location})"))?;
    let report = audit(&journal, &AuditedLog::Kafka(kafka)).await;
    journal.close().await;
    report
}

/// The log an audit replays.
pub enum AuditedLog {
    /// The embedded log of a data directory.
    Embedded(EmbeddedLog),
    /// A Kafka topic, read partition by partition from offset 0 (never joining the group).
    Kafka(KafkaLogConfig),
}

impl AuditedLog {
    fn reader(&self, partition: u32) -> anyhow::Result<PartitionReader> {
        Ok(match self {
            AuditedLog::Embedded(log) => PartitionReader::Embedded(log.clone()),
            AuditedLog::Kafka(kafka) => PartitionReader::Kafka {
                reader: KafkaPartitionReader::open(kafka, partition, 0).with_context(|| {
                    format!("cannot read partition {partition} of {}", kafka.topic)
                })?,
                partitions: kafka.partitions,
                group: None,
            },
        })
    }
}

/// Audits a journal against the log it was decided from.
pub async fn audit(journal: &Journal, log: &AuditedLog) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    for breach in journal.limit_breaches().await? {
        let who = breach
            .user_id
            .map_or(String::new(), |user| format!(" to user {user:?}"));
        report.problem(format!(
            "campaign {:?} issued {} coupons{who}; the limit is {}",
            breach.campaign_id, breach.count, breach.limit
        ));
    }
    report.coupons = journal
        .campaigns()
        .await?
        .iter()
        .map(|c| u64::from(c.issued))
        .sum();
    for lease in journal.partitions().await? {
        replay_partition(
            journal,
            &mut log.reader(lease.partition)?,
            lease.partition,
            lease.next_offset,
            &mut report,
        )
        .await?;
    }
    let mut outcomes = Vec::new();
    for lease in journal.partitions().await? {
        outcomes.extend(journal.load_outcomes(lease.partition).await?);
    }
    let domains = crate::domain_audit::check_domains(&outcomes);
    report.domains = domains.summary;
    for problem in domains.problems {
        report.problem(problem);
    }
    check_sinks(journal, &outcomes, &mut report).await?;
    Ok(report)
}

/// Cross-checks the archive's holds, bookings and lots against the states the journal's
/// outcomes give them.
async fn check_archived_records(
    journal: &Journal,
    outcomes: &[Outcome],
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let mut expected = expected_archive_records(outcomes);
    let mut wrong = 0;
    for (resource_id, record_id, state) in journal.archive_record_states().await? {
        let key = (resource_id, record_id);
        match expected.remove(&key) {
            Some(journal_state) if journal_state == state => {}
            journal_state => {
                wrong += 1;
                report.problem(format!(
                    "archive: {:?} of {:?} is {} in the journal but {state} in the archive",
                    key.1,
                    key.0,
                    journal_state.as_deref().unwrap_or("absent"),
                ));
            }
        }
    }
    for ((resource_id, record_id), state) in &expected {
        wrong += 1;
        report.problem(format!(
            "archive: {record_id:?} of {resource_id:?} is {state} in the journal but absent from the archive"
        ));
    }
    if wrong == 0 {
        let records = journal.archive_record_states().await?.len();
        report.sinks.push(format!(
            "archive: all {records} holds, bookings and lots match the journal"
        ));
    }
    Ok(())
}

/// Cross-checks the archive against the journal once it has caught up, and sums up each
/// notifier's delivery ledger.
async fn check_sinks(
    journal: &Journal,
    outcomes: &[Outcome],
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    for sink in journal.sink_names().await? {
        let status = journal.sink_status(&sink).await?;
        let backlog: u64 = status.iter().map(|p| p.backlog_outcomes).sum();
        if sink == ARCHIVE_SINK {
            if backlog > 0 {
                report.sinks.push(format!(
                    "archive: {backlog} outbox entries not applied yet; cross-checked once it catches up"
                ));
                continue;
            }
            let mismatches = journal.archive_mismatches().await?;
            for m in &mismatches {
                report.problem(format!(
                    "archive: coupon {:?} is {} in the journal but {} in the archive",
                    m.coupon_id,
                    m.journal_state.as_deref().unwrap_or("absent"),
                    m.archive_state.as_deref().unwrap_or("absent"),
                ));
            }
            if mismatches.is_empty() {
                report.sinks.push(format!(
                    "archive: caught up; all {} coupons match the journal",
                    report.coupons
                ));
            }
            check_archived_records(journal, outcomes, report).await?;
            continue;
        }
        let lost = journal
            .carried_without_delivery(&sink, NOTIFIED_OUTBOX_KINDS)
            .await?;
        if lost > 0 {
            report.problem(format!(
                "notifier {sink}: {lost} notifiable outcomes carried past without a delivery ledger row for their first message"
            ));
        }
        let sum = |count: fn(&SinkPartitionStatus) -> u64| status.iter().map(count).sum::<u64>();
        report.sinks.push(format!(
            "notifier {sink}: {} sent, {} failed, {} left sending by a crash, {} queued; {backlog} outbox entries not carried yet",
            sum(|p| p.sent),
            sum(|p| p.failed),
            sum(|p| p.sending),
            sum(|p| p.queued),
        ));
    }
    Ok(())
}

async fn replay_partition(
    journal: &Journal,
    log: &mut PartitionReader,
    partition: u32,
    decided_until: u64,
    report: &mut AuditReport,
) -> anyhow::Result<()> {
    let log_end = log.end_offset(partition).await?;
    if decided_until > log_end {
        report.problem(format!(
            "partition {partition}: journal decided up to offset {decided_until}, but the log ends at {log_end}"
        ));
        return Ok(());
    }
    let stored = journal.stored_outcomes(partition).await?;
    report.outcomes += stored.len() as u64;
    let dead_letters: HashSet<u64> = journal
        .dead_letters(partition)
        .await?
        .into_iter()
        .map(|letter| letter.offset)
        .collect();
    let mut stored = stored.into_iter().peekable();
    let mut state = PartitionState::new(partition);
    let mut offset = 0;
    while offset < decided_until {
        let wanted = ((decided_until - offset) as usize).min(REPLAY_BATCH_RECORDS_MAX);
        let records = log.read_available(partition, offset, wanted).await?;
        anyhow::ensure!(
            !records.is_empty(),
            "log partition {partition} has no record at offset {offset}"
        );
        for record in records {
            report.records += 1;
            offset = record.offset + 1;
            let envelope = match decode_record(&record, partition, log.partitions()) {
                Ok(envelope) => envelope,
                Err(reason) => {
                    report.dead_letters += 1;
                    if !dead_letters.contains(&record.offset) {
                        report.problem(format!(
                            "partition {partition} offset {}: undecodable ({reason}) but not dead-lettered",
                            record.offset
                        ));
                    }
                    continue;
                }
            };
            let applied = state.apply(
                &envelope,
                LogPosition {
                    partition,
                    offset: record.offset,
                },
            );
            if !applied.is_new {
                report.duplicates += 1;
                continue;
            }
            let replayed = outcome_json(&state.outcome(applied.decision));
            match stored.next_if(|s| s.offset == record.offset) {
                Some(original) if original.body == replayed => {}
                Some(original) => report.problem(format!(
                    "partition {partition} offset {}: replay decided {replayed} but the journal holds {}",
                    record.offset, original.body
                )),
                None => report.problem(format!(
                    "partition {partition} offset {}: request {:?} has no outcome in the journal",
                    record.offset, envelope.request_id
                )),
            }
        }
    }
    for extra in stored {
        report.problem(format!(
            "partition {partition} offset {}: the journal holds an outcome the replay did not produce: {}",
            extra.offset, extra.body
        ));
    }
    Ok(())
}
