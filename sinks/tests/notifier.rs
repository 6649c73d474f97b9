//! The notifier loop over a scripted transport: the ledger protocol (docs/sinks.md) —
//! `sent` is never sent again, a `sending` row found at start is resent with the same
//! Message-ID, transient errors are retried, permanent ones recorded and re-drivable, and
//! the partition always moves on.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use common::{at, journal_with_grants};
use turnstile_journal::DeliveryState;
use turnstile_sinks::notify::mailbox::MailboxTransport;
use turnstile_sinks::notify::{DeliveryReceipt, Message, Notifier, NotifierConfig, Transport};
use turnstile_sinks::Error;

/// A provider that answers from a script (then accepts everything) and keeps what it
/// accepted.
#[derive(Debug, Clone, Default)]
struct Scripted {
    /// Answers to the next calls, in order: `Some(retriable)` fails, `None` accepts.
    script: Arc<Mutex<VecDeque<Option<bool>>>>,
    accepted: Arc<Mutex<Vec<Message>>>,
    calls: Arc<Mutex<usize>>,
}

impl Transport for Scripted {
    async fn deliver(&self, message: &Message) -> Result<DeliveryReceipt, Error> {
        *self.calls.lock().unwrap() += 1;
        if let Some(Some(retriable)) = self.script.lock().unwrap().pop_front() {
            return Err(Error::Ses {
                message: if retriable {
                    "throttled".into()
                } else {
                    "MessageRejected".into()
                },
                retriable,
            });
        }
        let mut accepted = self.accepted.lock().unwrap();
        accepted.push(message.clone());
        Ok(DeliveryReceipt {
            provider_message_id: format!("p-{}", accepted.len()),
        })
    }
}

fn config() -> NotifierConfig {
    let mut config = NotifierConfig::new("ses", "drops@shop.example");
    config.recipients.domain = "shop.example".into();
    config.retry_backoff_ms_min = 1;
    config.retry_backoff_ms_max = 4;
    config.send_attempts_max = 3;
    config.sends_in_flight_max = 2;
    config
}

#[tokio::test]
async fn each_grant_is_sent_once_and_a_second_pass_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, outcomes) = journal_with_grants(
        dir.path(),
        "Asia/Seoul",
        Some("ko"),
        &["alice", "bob", "carol"],
        at(86_400),
    )
    .await;
    let transport = Scripted::default();
    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    let report = notifier.deliver_pending().await.unwrap();
    assert_eq!((report.outcomes, report.messages), (4, 3));
    let accepted = transport.accepted.lock().unwrap().clone();
    let to: Vec<&str> = accepted.iter().map(|m| m.to.as_str()).collect();
    assert_eq!(
        to,
        [
            "alice@shop.example",
            "bob@shop.example",
            "carol@shop.example"
        ]
    );
    assert_eq!(accepted[0].outcome_id, "0-1");
    assert_eq!(accepted[0].message_id, "<0-1.ses@turnstile>");
    assert_eq!(accepted[0].subject, "[Spring drop] 쿠폰이 발급되었습니다");
    assert_eq!(accepted[0].date, outcomes[1].decided_at);

    // The ledger has all three `sent` with the provider's ids; progress is past them.
    let ledger = journal.deliveries("ses", 0, 0..10).await.unwrap();
    assert!(
        ledger
            .iter()
            .all(|d| d.state == DeliveryState::Sent && d.attempts == 1),
        "{ledger:?}"
    );
    assert_eq!(journal.sink_progress("ses").await.unwrap(), [(0, 4)]);

    // Progress lost (a crash between delivering and saving it): nothing is sent again.
    journal.save_sink_progress("ses", 0, 0).await.unwrap();
    let report = notifier.deliver_pending().await.unwrap();
    assert_eq!((report.outcomes, report.messages), (4, 0));
    assert_eq!(transport.accepted.lock().unwrap().len(), 3);
    assert_eq!(notifier.stats().skipped.load(Ordering::Relaxed), 3);
}

#[tokio::test]
async fn a_message_left_sending_by_a_crash_is_resent_with_the_same_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = journal_with_grants(
        dir.path(),
        "Asia/Seoul",
        None,
        &["alice", "bob"],
        at(86_400),
    )
    .await;
    // The previous process wrote `sending` for bob's message and died.
    assert!(journal
        .delivery_sending("ses", 0, 2, 0, at(5))
        .await
        .unwrap());
    let transport = Scripted::default();
    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();
    let accepted = transport.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 2);
    // Bob's first: the unfinished deliveries go before the new outbox entries.
    assert_eq!(accepted[0].message_id, "<0-2.ses@turnstile>");
    assert_eq!(accepted[1].message_id, "<0-1.ses@turnstile>");
    assert_eq!(
        notifier.stats().resent_after_crash.load(Ordering::Relaxed),
        1
    );
    let bob = journal.deliveries("ses", 0, 2..3).await.unwrap().remove(0);
    assert_eq!((bob.state, bob.attempts), (DeliveryState::Sent, 2));
}

#[tokio::test]
async fn transient_errors_are_retried_and_permanent_ones_recorded_then_redriven() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = journal_with_grants(
        dir.path(),
        "Asia/Seoul",
        None,
        &["alice", "bob", "two words"],
        at(86_400),
    )
    .await;
    let transport = Scripted::default();
    // alice: throttled twice, then accepted. bob: rejected for good.
    transport
        .script
        .lock()
        .unwrap()
        .extend([Some(true), Some(true), None, Some(false)]);
    let mut config = config();
    config.sends_in_flight_max = 1; // the script is consumed in outcome order
    let mut notifier = Notifier::new(config, journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();

    let ledger = journal.deliveries("ses", 0, 0..10).await.unwrap();
    let rows: Vec<_> = ledger
        .iter()
        .map(|d| (d.outcome_id(), d.state, d.attempts, d.last_error.clone()))
        .collect();
    assert_eq!(
        rows[0],
        (
            "0-1".into(),
            DeliveryState::Sent,
            3,
            Some("SES: throttled".into())
        )
    );
    assert_eq!(
        rows[1],
        (
            "0-2".into(),
            DeliveryState::Failed,
            1,
            Some("SES: MessageRejected".into())
        )
    );
    assert_eq!(rows[2].1, DeliveryState::Failed);
    assert!(
        rows[2]
            .3
            .as_deref()
            .unwrap()
            .contains("not a valid e-mail address"),
        "{rows:?}"
    );
    // The partition moved on past the failures.
    assert_eq!(journal.sink_progress("ses").await.unwrap(), [(0, 4)]);
    assert_eq!(notifier.stats().retries.load(Ordering::Relaxed), 2);
    assert_eq!(notifier.stats().failed.load(Ordering::Relaxed), 2);

    // Re-driven, bob's message goes out on the next pass; the bad address fails again.
    assert_eq!(
        journal
            .redrive_failed_deliveries(Some("ses"), None, at(9))
            .await
            .unwrap(),
        2
    );
    notifier.deliver_pending().await.unwrap();
    let bob = journal.deliveries("ses", 0, 2..3).await.unwrap().remove(0);
    assert_eq!((bob.state, bob.attempts), (DeliveryState::Sent, 2));
    let to: Vec<String> = transport
        .accepted
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.to.clone())
        .collect();
    assert_eq!(to, ["alice@shop.example", "bob@shop.example"]);
    let bad = journal.deliveries("ses", 0, 3..4).await.unwrap().remove(0);
    assert_eq!(bad.state, DeliveryState::Failed);
}

#[tokio::test]
async fn transient_errors_that_outlast_the_attempts_fail_with_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = journal_with_grants(dir.path(), "UTC", None, &["alice"], at(86_400)).await;
    let transport = Scripted::default();
    transport.script.lock().unwrap().extend([Some(true); 3]);
    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();
    let row = journal.deliveries("ses", 0, 1..2).await.unwrap().remove(0);
    assert_eq!((row.state, row.attempts), (DeliveryState::Failed, 3));
    assert_eq!(
        row.last_error.as_deref(),
        Some("gave up after 3 attempts: SES: throttled")
    );
    assert_eq!(*transport.calls.lock().unwrap(), 3);
}

#[tokio::test]
async fn the_mailbox_writes_one_file_per_outcome_and_records_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = journal_with_grants(
        dir.path(),
        "America/New_York",
        None,
        &["alice", "bob@mail.example"],
        common::at(0),
    )
    .await;
    let mailbox = MailboxTransport::new(dir.path().join("mailbox")).unwrap();
    let mut config = config();
    config.sink = "mailbox".into();
    let mut notifier = Notifier::new(config, journal.clone(), 1, mailbox.clone());
    notifier.deliver_pending().await.unwrap();
    let text = std::fs::read_to_string(mailbox.path_of("0-2")).unwrap();
    let (head, subject, body) = common::decode(&text);
    assert_eq!(common::header(&head, "To"), Some("bob@mail.example"));
    assert_eq!(
        common::header(&head, "Message-ID"),
        Some("<0-2.mailbox@turnstile>")
    );
    assert_eq!(common::header(&head, "X-Turnstile-Outcome-Id"), Some("0-2"));
    assert_eq!(subject, "Your coupon for Spring drop has been issued");
    assert!(
        body.contains("your coupon spring-2 for \"Spring drop\" has been issued."),
        "{body}"
    );
    assert!(body.contains("(America/New_York), that is"), "{body}");
    let files = std::fs::read_dir(dir.path().join("mailbox"))
        .unwrap()
        .count();
    assert_eq!(files, 2);
    let ledger = journal.deliveries("mailbox", 0, 0..10).await.unwrap();
    let ids: Vec<_> = ledger
        .iter()
        .map(|d| (d.state, d.provider_message_id.clone().unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            (DeliveryState::Sent, "0-1.eml".into()),
            (DeliveryState::Sent, "0-2.eml".into())
        ]
    );
}
