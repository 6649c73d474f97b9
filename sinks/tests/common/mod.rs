//! A journal with a campaign and some grants committed, for the notifier's tests.
#![allow(dead_code, clippy::unwrap_used)] // Each test binary uses part of it.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use turnstile_journal::{BatchCommit, Journal, SqliteJournal};
use turnstile_schemas::{CampaignSpec, CommandKind, Coupon, Decision, LogPosition, Outcome};

pub const CAMPAIGN: &str = "spring";

pub fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_772_900_000 + seconds, 0).unwrap()
}

/// A SQLite journal in `dir` holding, on partition 0, a campaign created at offset 0 (in
/// `time_zone` and `locale`) and one grant per user at offsets 1, 2, ….
pub async fn journal_with_grants(
    dir: &std::path::Path,
    time_zone: &str,
    locale: Option<&str>,
    users: &[&str],
    expires_at: DateTime<Utc>,
) -> (Journal, Vec<Outcome>) {
    let journal = Journal::Sqlite(
        SqliteJournal::open(&dir.join("journal.sqlite"))
            .await
            .unwrap(),
    );
    let lease = journal.acquire(0).await.unwrap();
    let spec = CampaignSpec {
        title: "Spring drop".into(),
        capacity: 1_000,
        per_user_limit: 1,
        opens_at: None,
        closes_at: None,
        time_zone: time_zone.into(),
        valid_days: 0,
        locale: locale.map(str::to_owned),
    };
    let mut outcomes = vec![outcome(
        0,
        "ops",
        CommandKind::CreateCampaign,
        Decision::CampaignCreated { spec },
    )];
    for (i, user) in users.iter().enumerate() {
        let offset = i as u64 + 1;
        let coupon = Coupon {
            coupon_id: format!("{CAMPAIGN}-{offset}"),
            campaign_id: CAMPAIGN.into(),
            user_id: (*user).into(),
            issued_at: at(offset as i64),
            expires_at,
        };
        outcomes.push(outcome(
            offset,
            user,
            CommandKind::Claim,
            Decision::CouponGranted { coupon },
        ));
    }
    let batch = BatchCommit {
        partition: 0,
        epoch: lease.epoch,
        from_offset: 0,
        next_offset: outcomes.len() as u64,
        outcomes: outcomes.iter().cloned().map(Arc::new).collect(),
        ..BatchCommit::default()
    };
    journal.commit(&batch).await.unwrap();
    (journal, outcomes)
}

fn outcome(offset: u64, user_id: &str, command: CommandKind, decision: Decision) -> Outcome {
    Outcome {
        request_id: format!("req-{offset}"),
        resource_id: CAMPAIGN.into(),
        user_id: user_id.into(),
        command,
        position: LogPosition {
            partition: 0,
            offset,
        },
        decided_at: at(offset as i64),
        decision,
    }
}

/// Decodes a raw MIME message of ours: (headers, subject, body).
pub fn decode(mime: &str) -> (String, String, String) {
    use base64::Engine;
    let base64 = base64::engine::general_purpose::STANDARD;
    let (head, body) = mime.split_once("\r\n\r\n").unwrap();
    let subject = head
        .lines()
        .find_map(|l| l.strip_prefix("Subject: =?UTF-8?B?"))
        .and_then(|s| s.strip_suffix("?="))
        .unwrap();
    let subject = String::from_utf8(base64.decode(subject).unwrap()).unwrap();
    let body = String::from_utf8(base64.decode(body.replace("\r\n", "")).unwrap()).unwrap();
    (head.to_string(), subject, body)
}

/// The value of header `name` in `head`.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

pub mod moto;
