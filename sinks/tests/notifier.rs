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

/// The mailbox, counting what it is handed.
#[derive(Debug, Clone)]
struct CountingMailbox {
    mailbox: MailboxTransport,
    handed: Arc<Mutex<Vec<String>>>,
}

impl Transport for CountingMailbox {
    async fn deliver(&self, message: &Message) -> Result<DeliveryReceipt, Error> {
        self.handed.lock().unwrap().push(message.key());
        self.mailbox.deliver(message).await
    }

    fn resend_is_harmless(&self) -> bool {
        self.mailbox.resend_is_harmless()
    }
}

/// Seats, tables and lots: a confirmed and a lapsed hold, a booking, a cancellation that
/// offers its covers to two waiting parties, a waitlist join, an offer lapse, an outbid and
/// a won lot each make exactly their messages (one per recipient, in Korean or English,
/// times in the venue's zone), once each, also when the notifier restarts mid-way, its
/// progress is lost and the outbox is read again.
#[tokio::test]
async fn every_domain_tells_each_recipient_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = common::journal_with_domains(dir.path()).await;
    let transport = CountingMailbox {
        mailbox: MailboxTransport::new(dir.path().join("mailbox")).unwrap(),
        handed: Arc::default(),
    };
    let mut config = config();
    config.sink = "mailbox".into();
    // The first notifier carries offsets 0..7 and "dies"; a crash had left gina's message
    // (offset 6) `sending`, and the progress is lost: the next reads the outbox from 0.
    config.batch_outcomes_max = 6;
    let mut first = Notifier::new(config.clone(), journal.clone(), 1, transport.clone());
    let report = first.deliver_pending().await.unwrap();
    assert_eq!((report.outcomes, report.messages), (6, 6));
    drop(first);
    assert!(journal
        .delivery_sending("mailbox", 0, 6, 0, at(50))
        .await
        .unwrap());
    journal.save_sink_progress("mailbox", 0, 0).await.unwrap();
    config.batch_outcomes_max = 1_000;
    let mut second = Notifier::new(config, journal.clone(), 1, transport.clone());
    let report = second.deliver_pending().await.unwrap();
    assert_eq!(report.outcomes, 14);
    assert_eq!(second.stats().resent_after_crash.load(Ordering::Relaxed), 1);
    assert_eq!(second.deliver_pending().await.unwrap().messages, 0);

    let mut handed = transport.handed.lock().unwrap().clone();
    handed.sort();
    let expected = [
        "0-1", "0-10", "0-11", "0-13", "0-2", "0-4", "0-5", "0-5.1", "0-5.2", "0-6", "0-7",
    ];
    assert_eq!(handed, expected, "each message handed over once");
    let ledger = journal.deliveries("mailbox", 0, 0..100).await.unwrap();
    assert!(ledger.iter().all(|d| d.state == DeliveryState::Sent));
    let mut keys: Vec<String> = ledger.iter().map(|d| d.message_key()).collect();
    keys.sort();
    assert_eq!(keys, expected);

    let read = |key: &str| {
        let text = std::fs::read_to_string(transport.mailbox.path_of(key)).unwrap();
        let (head, subject, body) = common::decode(&text);
        let to = common::header(&head, "To").unwrap().to_string();
        let message_id = common::header(&head, "Message-ID").unwrap().to_string();
        (to, message_id, subject, body.replace("\r\n", "\n"))
    };
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("0-1", "alice", "Your tickets for Gala are confirmed", &[
            "Seats: A-1-1, A-1-2\n",
            "Total: 25000\n",
            "The event starts at 2026-04-01 19:00 UTC.\n",
        ]),
        ("0-2", "bob", "Your hold on Gala has expired", &[
            "your hold gala-h2 for \"Gala\" expired before it was confirmed.\n",
            "Seats released: A-1-3\n",
        ]),
        ("0-4", "carol", "[Bistro] 예약이 확정되었습니다", &[
            "carol님, 안녕하세요.\n",
            "\"Bistro\" 예약(bistro-b1)이 확정되었습니다.\n",
            "일시: 2026년 3월 20일 19:00 KST (Asia/Seoul), 협정 세계시(UTC)로는 2026-03-20 10:00 UTC\n",
            "인원: 2명\n",
        ]),
        ("0-5", "dave", "[Bistro] 예약이 취소되었습니다", &[
            "\"Bistro\" 예약(bistro-b2)이 취소되었습니다.\n",
            "인원: 4명\n",
        ]),
        ("0-5.1", "erin", "[Bistro] 빈 자리가 생겼습니다", &[
            "\"Bistro\"에 빈 자리가 생겼습니다(제안 bistro-o1).\n",
            "수락 기한: 2026년 3월 20일 18:00 KST (Asia/Seoul), 협정 세계시(UTC)로는 2026-03-20 09:00 UTC까지",
        ]),
        ("0-5.2", "frank", "[Bistro] 빈 자리가 생겼습니다", &["(제안 bistro-o2)"]),
        ("0-6", "gina", "[Bistro] 대기자 명단에 등록되었습니다", &["대기 순번: 1번\n"]),
        ("0-7", "erin", "[Bistro] 자리 제안이 만료되었습니다", &["(bistro-o1)"]),
        ("0-10", "kate", "You have been outbid on Vase", &["Current price: 115.00 EUR\n"]),
        ("0-11", "hank", "You won Vase", &["you won \"Vase\".\nPrice: 115.00 EUR\n"]),
        ("0-13", "judy", "Your table at Diner is booked", &[
            "Hello judy,\n\nyour booking diner-b1 at \"Diner\" is confirmed.\n",
            "Date and time: 2026-03-08 19:00 EDT (America/New_York), that is 2026-03-08 23:00 UTC\n",
            "Party: 3\n",
        ]),
    ];
    for (key, user, subject, lines) in cases {
        let (to, message_id, got_subject, body) = read(key);
        assert_eq!(to, format!("{user}@shop.example"), "{key}");
        assert_eq!(message_id, format!("<{key}.mailbox@turnstile>"));
        assert_eq!(&got_subject, subject, "{key}");
        for line in *lines {
            assert!(body.contains(line), "{key}: {line:?} not in\n{body}");
        }
    }
    let files = std::fs::read_dir(dir.path().join("mailbox"))
        .unwrap()
        .count();
    assert_eq!(files, expected.len());
}
