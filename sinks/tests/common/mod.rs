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

/// A SQLite journal in `dir` holding, on partition 0, a history of every domain the
/// notifier tells people about (one outcome per offset; see the comments):
/// an event `gala` (English, times in UTC), a venue `bistro` (Asia/Seoul, Korean), a lot
/// `vase` (English, EUR) and a venue `diner` (America/New_York, English).
pub async fn journal_with_domains(dir: &std::path::Path) -> (Journal, Vec<Outcome>) {
    use turnstile_schemas::venue::WaitlistOffer;
    let journal = Journal::Sqlite(
        SqliteJournal::open(&dir.join("journal.sqlite"))
            .await
            .unwrap(),
    );
    let lease = journal.acquire(0).await.unwrap();
    let time = |text: &str| text.parse::<DateTime<Utc>>().unwrap();
    let event = serde_json::from_value(serde_json::json!({
        "title": "Gala", "starts_at": "2026-04-01T19:00:00Z", "locale": "en",
        "sections": [{"section_id": "A", "price_tier": {"name": "Floor", "price_minor": 12500},
                      "rows": [{"row_id": "1", "seats": 10}]}]
    }))
    .unwrap();
    let venue = |title: &str, zone: &str, locale: &str| {
        serde_json::from_value(serde_json::json!({
            "title": title, "time_zone": zone, "locale": locale, "party_size_max": 6,
            "slots": [{"start": "19:00", "duration_minutes": 120, "capacity_covers": 20}]
        }))
        .unwrap()
    };
    let lot = serde_json::from_value(serde_json::json!({
        "title": "Vase", "ends_at": "2026-04-02T12:00:00Z", "opening_price": 1000,
        "increment": 500, "reserve_price": 5000, "currency": "EUR", "locale": "en"
    }))
    .unwrap();
    let slot = "2026-03-20T19:00".to_string();
    let offer = |n: u32, user: &str| WaitlistOffer {
        offer_id: format!("bistro-o{n}"),
        waitlist_id: format!("bistro-w{n}"),
        user_id: user.into(),
        slot: slot.clone(),
        party_size: 2,
        expires_at: time("2026-03-20T09:00:00Z"),
    };
    let history: Vec<(&str, &str, CommandKind, Decision)> = vec![
        // 0: the event.
        (
            "gala",
            "ops",
            CommandKind::CreateEvent,
            Decision::EventCreated { spec: event },
        ),
        // 1: alice buys two seats; 2: bob's hold lapses.
        (
            "gala",
            "alice",
            CommandKind::ConfirmHold,
            Decision::HoldConfirmed {
                hold_id: "gala-h1".into(),
                seat_ids: vec!["A-1-1".into(), "A-1-2".into()],
                price_total: 25_000,
            },
        ),
        (
            "gala",
            "bob",
            CommandKind::LapseHold,
            Decision::HoldLapsed {
                hold_id: "gala-h2".into(),
                seat_ids: vec!["A-1-3".into()],
            },
        ),
        // 3: the venue in Seoul; 4: carol books; 5: dave cancels, offering his covers to
        // erin and frank; 6: gina joins the waitlist; 7: erin's offer lapses.
        (
            "bistro",
            "ops",
            CommandKind::CreateVenue,
            Decision::VenueCreated {
                spec: venue("Bistro", "Asia/Seoul", "ko"),
            },
        ),
        (
            "bistro",
            "carol",
            CommandKind::Book,
            Decision::TableBooked {
                booking_id: "bistro-b1".into(),
                slot: slot.clone(),
                party_size: 2,
                starts_at: time("2026-03-20T10:00:00Z"),
                ends_at: time("2026-03-20T12:00:00Z"),
            },
        ),
        (
            "bistro",
            "dave",
            CommandKind::CancelBooking,
            Decision::BookingCancelled {
                booking_id: "bistro-b2".into(),
                slot: slot.clone(),
                party_size: 4,
                offers: vec![offer(1, "erin"), offer(2, "frank")],
            },
        ),
        (
            "bistro",
            "gina",
            CommandKind::JoinWaitlist,
            Decision::Waitlisted {
                waitlist_id: "bistro-w3".into(),
                slot: slot.clone(),
                party_size: 2,
                position: 1,
            },
        ),
        (
            "bistro",
            "erin",
            CommandKind::LapseOffer,
            Decision::OfferLapsed {
                offer_id: "bistro-o1".into(),
                slot: slot.clone(),
                party_size: 2,
                expired_at: time("2026-03-20T09:00:00Z"),
                offers: vec![],
            },
        ),
        // 8: the lot; 9: kate bids (nobody to tell); 10: hank outbids kate; 11: hank wins.
        (
            "vase",
            "ops",
            CommandKind::CreateLot,
            Decision::LotCreated { spec: lot },
        ),
        (
            "vase",
            "kate",
            CommandKind::Bid,
            Decision::BidAccepted {
                bid_id: "vase-b1".into(),
                bidder: "kate".into(),
                max_amount: 11_000,
                price: 1_000,
                leader: "kate".into(),
                outbid: None,
                ends_at: time("2026-04-02T12:00:00Z"),
                extended: false,
            },
        ),
        (
            "vase",
            "hank",
            CommandKind::Bid,
            Decision::BidAccepted {
                bid_id: "vase-b2".into(),
                bidder: "hank".into(),
                max_amount: 20_000,
                price: 11_500,
                leader: "hank".into(),
                outbid: Some("kate".into()),
                ends_at: time("2026-04-02T12:00:00Z"),
                extended: false,
            },
        ),
        (
            "vase",
            "hank",
            CommandKind::CloseLot,
            Decision::LotSold {
                winner: "hank".into(),
                price: 11_500,
                by_buy_now: false,
                closed_at: time("2026-04-02T12:00:00Z"),
            },
        ),
        // 12: a venue in New York; 13: judy books on the evening clocks went forward.
        (
            "diner",
            "ops",
            CommandKind::CreateVenue,
            Decision::VenueCreated {
                spec: venue("Diner", "America/New_York", "en"),
            },
        ),
        (
            "diner",
            "judy",
            CommandKind::Book,
            Decision::TableBooked {
                booking_id: "diner-b1".into(),
                slot: "2026-03-08T19:00".into(),
                party_size: 3,
                starts_at: time("2026-03-08T23:00:00Z"),
                ends_at: time("2026-03-09T01:00:00Z"),
            },
        ),
    ];
    let outcomes: Vec<Outcome> = history
        .into_iter()
        .enumerate()
        .map(|(offset, (resource, user, command, decision))| Outcome {
            request_id: format!("req-{offset}"),
            resource_id: resource.into(),
            user_id: user.into(),
            command,
            position: LogPosition {
                partition: 0,
                offset: offset as u64,
            },
            decided_at: at(offset as i64),
            decision,
        })
        .collect();
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
