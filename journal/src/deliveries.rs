//! The delivery ledger's rows, as every backend reads them back: what a sink tried to
//! deliver for each outcome, and each sink's standing per partition for `turnstile sinks
//! status`. The protocol the sinks follow with it is `docs/exactly-once.md`, "Effects".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Error;

/// Where one outcome's delivery by one sink stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Written before the provider is called. Found at start, the process died mid-send:
    /// the provider may or may not have the message.
    Sending,
    /// The provider accepted it. Never sent again.
    Sent,
    /// A permanent error (rejected message, invalid address); the partition moved on.
    Failed,
    /// A failed delivery re-driven by an operator, waiting for the sink to send it.
    Queued,
}

impl DeliveryState {
    /// The `state` column's text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Queued => "queued",
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "queued" => DeliveryState::Queued,
            other => return Err(Error::Corrupt(format!("unknown delivery state {other:?}"))),
        })
    }
}

/// One row of the delivery ledger: one sink's delivery of one message of an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The sink (`mailbox`, `ses`).
    pub sink: String,
    /// The outcome's partition.
    pub partition: u32,
    /// The outcome's log offset: with the partition, its id.
    pub log_offset: u64,
    /// Which of the outcome's messages: 0 for its first (its own user's, and every
    /// outcome's only message before outcomes could have several), 1.. for the further
    /// recipients in the decision's order (the waiting parties a cancellation made offers
    /// to, say).
    pub message_index: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// How many times the provider was called for it (each resend after a crash counts).
    pub attempts: u32,
    /// The last error the provider gave, kept after a later success for the record.
    pub last_error: Option<String>,
    /// The provider's id for the accepted message (SES's MessageId, the mailbox's file).
    pub provider_message_id: Option<String>,
    /// When the first attempt began.
    pub first_attempt_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// The outcome id (`<partition>-<log_offset>`), as messages and the CLI show it.
    pub fn outcome_id(&self) -> String {
        format!("{}-{}", self.partition, self.log_offset)
    }

    /// The message's id in the ledger, as logs and the CLI show it: the outcome id for
    /// message 0, `<outcome id>.<index>` for the further ones.
    pub fn message_key(&self) -> String {
        message_key(&self.outcome_id(), self.message_index)
    }
}

/// A message's id in the ledger from its outcome id and index: the outcome id alone for
/// message 0 (so an outcome's first message keeps the name it had when each outcome had one
/// message), `<outcome id>.<index>` for the others.
pub fn message_key(outcome_id: &str, message_index: u32) -> String {
    if message_index == 0 {
        outcome_id.to_string()
    } else {
        format!("{outcome_id}.{message_index}")
    }
}

/// One sink's standing on one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkPartitionStatus {
    /// The partition.
    pub partition: u32,
    /// The next outbox offset the sink has not yet carried (its saved progress).
    pub next_offset: u64,
    /// One past the partition's last outbox entry.
    pub outbox_end_offset: u64,
    /// Outbox entries at or after the progress: work not yet carried.
    pub backlog_outcomes: u64,
    /// Deliveries the provider accepted.
    pub sent: u64,
    /// Deliveries that failed for good (re-drive them with `turnstile sinks retry`).
    pub failed: u64,
    /// Deliveries in flight, or left ambiguous by a crash until the sink resends them.
    pub sending: u64,
    /// Re-driven deliveries waiting for the sink.
    pub queued: u64,
}

/// Parses a ledger row from its columns (SQLite gives times as text, Postgres as times).
#[allow(clippy::too_many_arguments)]
pub(crate) fn delivery_from_columns(
    sink: String,
    (partition, log_offset, message_index): (i64, i64, i64),
    state: &str,
    attempts: i64,
    last_error: Option<String>,
    provider_message_id: Option<String>,
    first_attempt_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
) -> Result<Delivery, Error> {
    Ok(Delivery {
        sink,
        partition: partition as u32,
        log_offset: log_offset as u64,
        message_index: message_index as u32,
        state: DeliveryState::parse(state)?,
        attempts: attempts as u32,
        last_error,
        provider_message_id,
        first_attempt_at,
        updated_at,
    })
}

/// Joins per-partition progress rows `(partition, next_offset, outbox_end, backlog)` with
/// ledger counts `(partition, state, count)` into one status per partition.
pub(crate) fn merge_status(
    progress: Vec<(i64, i64, i64, i64)>,
    counts: Vec<(i64, String, i64)>,
) -> Result<Vec<SinkPartitionStatus>, Error> {
    let mut by_partition: BTreeMap<u32, SinkPartitionStatus> = progress
        .into_iter()
        .map(|(partition, next, end, backlog)| {
            let status = SinkPartitionStatus {
                partition: partition as u32,
                next_offset: next as u64,
                outbox_end_offset: end as u64,
                backlog_outcomes: backlog as u64,
                ..SinkPartitionStatus::default()
            };
            (partition as u32, status)
        })
        .collect();
    for (partition, state, count) in counts {
        let status = by_partition
            .entry(partition as u32)
            .or_insert_with(|| SinkPartitionStatus {
                partition: partition as u32,
                ..SinkPartitionStatus::default()
            });
        let count = count as u64;
        match DeliveryState::parse(&state)? {
            DeliveryState::Sending => status.sending = count,
            DeliveryState::Sent => status.sent = count,
            DeliveryState::Failed => status.failed = count,
            DeliveryState::Queued => status.queued = count,
        }
    }
    Ok(by_partition.into_values().collect())
}
