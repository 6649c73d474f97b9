//! The SES transport against moto's server: every notification arrives once, with the
//! right recipient, subject, body, local time and headers; moto's SES refuses an
//! unverified sender, which the notifier records as a permanent failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;

use aws_config::BehaviorVersion;
use aws_sdk_sesv2::config::{Credentials, Region};
use common::moto::Moto;
use common::{at, decode, header, journal_with_domains, journal_with_grants};
use turnstile_journal::DeliveryState;
use turnstile_sinks::notify::ses::SesTransport;
use turnstile_sinks::notify::{Notifier, NotifierConfig};

const FROM: &str = "drops@shop.example";

async fn ses(moto: &Moto) -> SesTransport {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(&moto.url)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"));
    SesTransport::from_loader(loader).await
}

fn config() -> NotifierConfig {
    let mut config = NotifierConfig::new("ses", FROM);
    config.recipients.domain = "shop.example".into();
    config
}

#[tokio::test]
async fn every_coupon_notification_arrives_once_in_korean_and_seoul_time() {
    let moto = Moto::start();
    let transport = ses(&moto).await;
    transport
        .client()
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users: Vec<String> = (0..25).map(|i| format!("user-{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    // Expiry: local midnight 2026-03-09 in Seoul, 15:00 UTC the day before.
    let expires_at = chrono::DateTime::parse_from_rfc3339("2026-03-08T15:00:00Z")
        .unwrap()
        .to_utc();
    let (journal, outcomes) =
        journal_with_grants(dir.path(), "Asia/Seoul", Some("ko"), &users, expires_at).await;

    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();
    // A lost progress save (a crash after delivering): the ledger stops a second send.
    journal.save_sink_progress("ses", 0, 0).await.unwrap();
    Notifier::new(config(), journal.clone(), 1, transport)
        .deliver_pending()
        .await
        .unwrap();

    let sent = moto.sent_raw().await;
    assert_eq!(sent.len(), users.len(), "one message per coupon");
    let mut by_outcome = HashMap::new();
    for message in &sent {
        let (head, subject, body) = decode(&message.raw_data);
        let outcome_id = header(&head, "X-Turnstile-Outcome-Id").unwrap().to_string();
        assert_eq!(
            header(&head, "Message-ID"),
            Some(format!("<{outcome_id}.ses@turnstile>").as_str())
        );
        assert_eq!(subject, "[Spring drop] 쿠폰이 발급되었습니다");
        by_outcome.insert(outcome_id, (head, body, message.id.clone()));
    }
    assert_eq!(by_outcome.len(), users.len(), "no outcome twice");
    for (i, user) in users.iter().enumerate() {
        let outcome = &outcomes[i + 1];
        let (head, body, ses_id) = &by_outcome[&outcome.position.outcome_id()];
        assert_eq!(
            header(head, "To"),
            Some(format!("{user}@shop.example").as_str())
        );
        assert_eq!(header(head, "From"), Some(FROM));
        assert!(
            body.starts_with(&format!("{user}님, 안녕하세요.")),
            "{body}"
        );
        assert!(
            body.contains(&format!("쿠폰(spring-{})이 발급되었습니다", i + 1)),
            "{body}"
        );
        assert!(
            body.contains("유효기간: 2026년 3월 9일 00:00 KST (Asia/Seoul)까지, 협정 세계시(UTC)로는 2026-03-08 15:00 UTC까지입니다."),
            "{body}"
        );
        let row = journal
            .deliveries(
                "ses",
                0,
                outcome.position.offset..outcome.position.offset + 1,
            )
            .await
            .unwrap()
            .remove(0);
        assert_eq!(row.state, DeliveryState::Sent);
        assert_eq!(
            row.provider_message_id.as_ref(),
            Some(ses_id),
            "the ledger keeps SES's MessageId"
        );
    }
}

#[tokio::test]
async fn an_unverified_sender_is_a_permanent_failure_and_redrivable_once_verified() {
    let moto = Moto::start();
    let transport = ses(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) =
        journal_with_grants(dir.path(), "America/New_York", None, &["alice"], at(86_400)).await;
    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();
    let row = journal.deliveries("ses", 0, 1..2).await.unwrap().remove(0);
    assert_eq!(
        (row.state, row.attempts),
        (DeliveryState::Failed, 1),
        "{row:?}"
    );
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("MessageRejected"),
        "{row:?}"
    );
    assert_eq!(
        journal.sink_progress("ses").await.unwrap(),
        [(0, 2)],
        "the line moved on"
    );
    assert!(moto.sent_raw().await.is_empty());

    transport
        .client()
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await
        .unwrap();
    assert_eq!(
        journal
            .redrive_failed_deliveries(Some("ses"), None, at(1))
            .await
            .unwrap(),
        1
    );
    notifier.deliver_pending().await.unwrap();
    let sent = moto.sent_raw().await;
    assert_eq!(sent.len(), 1);
    let (head, subject, body) = decode(&sent[0].raw_data);
    assert_eq!(header(&head, "X-Turnstile-Outcome-Id"), Some("0-1"));
    assert_eq!(subject, "Your coupon for Spring drop has been issued");
    assert!(body.contains("that is "), "{body}");
    let row = journal.deliveries("ses", 0, 1..2).await.unwrap().remove(0);
    assert_eq!((row.state, row.attempts), (DeliveryState::Sent, 2));
}

/// An outcome with several recipients: dave's cancellation tells dave and offers his covers
/// to erin and frank. Through SES each message arrives once, under its own Message-ID, and
/// a lost progress save sends none of them again.
#[tokio::test]
async fn a_cancellation_tells_its_guest_and_each_waiting_party_once() {
    let moto = Moto::start();
    let transport = ses(&moto).await;
    transport
        .client()
        .create_email_identity()
        .email_identity(FROM)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = journal_with_domains(dir.path()).await;
    let mut notifier = Notifier::new(config(), journal.clone(), 1, transport.clone());
    notifier.deliver_pending().await.unwrap();
    journal.save_sink_progress("ses", 0, 0).await.unwrap();
    Notifier::new(config(), journal.clone(), 1, transport)
        .deliver_pending()
        .await
        .unwrap();

    let sent = moto.sent_raw().await;
    assert_eq!(sent.len(), 11, "one message per recipient of the history");
    let mut cancellation: Vec<(String, String, String)> = sent
        .iter()
        .map(|message| decode(&message.raw_data))
        .filter(|(head, _, _)| header(head, "X-Turnstile-Outcome-Id") == Some("0-5"))
        .map(|(head, subject, _)| {
            let id = header(&head, "Message-ID").unwrap().to_string();
            (id, header(&head, "To").unwrap().to_string(), subject)
        })
        .collect();
    cancellation.sort();
    assert_eq!(
        cancellation,
        [
            (
                "<0-5.1.ses@turnstile>".into(),
                "erin@shop.example".into(),
                "[Bistro] 빈 자리가 생겼습니다".into()
            ),
            (
                "<0-5.2.ses@turnstile>".into(),
                "frank@shop.example".into(),
                "[Bistro] 빈 자리가 생겼습니다".into()
            ),
            (
                "<0-5.ses@turnstile>".into(),
                "dave@shop.example".into(),
                "[Bistro] 예약이 취소되었습니다".into()
            ),
        ]
    );
    let rows = journal.deliveries("ses", 0, 5..6).await.unwrap();
    let ids: Vec<_> = rows
        .iter()
        .map(|r| (r.message_index, r.state, r.attempts))
        .collect();
    assert_eq!(
        ids,
        [
            (0, DeliveryState::Sent, 1),
            (1, DeliveryState::Sent, 1),
            (2, DeliveryState::Sent, 1)
        ]
    );
}
