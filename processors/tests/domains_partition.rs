//! The four domains side by side in one partition, decided by [`PartitionState::apply`]:
//! commands reach the resource of their own domain only (docs/domains.md, rules 1–2),
//! duplicates get the first outcome, timers of every domain decide in log order, and a
//! state restored from the recorded outcomes decides the rest of the log exactly as the
//! uninterrupted one, views included (rule 3, invariant 6).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;
use turnstile_processors::PartitionState;
use turnstile_schemas::{Command, Decision, Envelope, LogPosition, Outcome, ENVELOPE_VERSION};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0)
        .single()
        .unwrap()
}

/// A record: `(request id, resource, user, seconds after start, command as JSON)`.
type Record = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    serde_json::Value,
);

fn envelope((request_id, resource_id, user_id, seconds, command): &Record) -> Envelope {
    let command: Command = serde_json::from_value(command.clone()).unwrap();
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: request_id.to_string(),
        resource_id: resource_id.to_string(),
        user_id: user_id.to_string(),
        submitted_at: start() + Duration::seconds(*seconds),
        traceparent: None,
        command,
    }
}

/// Applies `records` from `offset` on; returns each record's outcome and the views of the
/// resources its new decisions changed.
fn run(state: &mut PartitionState, offset: u64, records: &[Record]) -> Vec<(Outcome, String)> {
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let position = LogPosition {
                partition: 0,
                offset: offset + i as u64,
            };
            let applied = state.apply(&envelope(record), position);
            // As the runtime does: only a new decision changes a view.
            let new: &[_] = if applied.is_new {
                &[applied.decision]
            } else {
                &[]
            };
            let views = state.changed_views(new);
            let views = views
                .iter()
                .map(|v| v.body.as_str())
                .collect::<Vec<_>>()
                .join(";");
            (state.outcome(applied.decision), views)
        })
        .collect()
}

fn first_part() -> Vec<Record> {
    let event = json!({"title": "Gala", "starts_at": "2027-01-01T19:00:00Z", "hold_ttl_seconds": 60,
        "sections": [{"section_id": "A", "price_tier": {"name": "front", "price_minor": 50},
                      "rows": [{"row_id": "1", "seats": 3}]}]});
    let venue = json!({"title": "Bistro", "time_zone": "Asia/Seoul", "party_size_max": 4,
        "slots": [{"start": "19:00", "duration_minutes": 90, "capacity_covers": 4}]});
    let lot = json!({"title": "Lamp", "ends_at": "2026-12-02T12:10:00Z", "opening_price": 100,
        "increment": 10, "extension_seconds": 30, "currency": "EUR"});
    let campaign = json!({"title": "Drop", "capacity": 2, "time_zone": "Asia/Seoul"});
    vec![
        (
            "c1",
            "drop",
            "operator",
            0,
            json!({"domain": "coupon", "command": {"kind": "create_campaign", "spec": campaign}}),
        ),
        (
            "e1",
            "gala",
            "operator",
            0,
            json!({"domain": "seats", "command": {"kind": "create_event", "spec": event}}),
        ),
        (
            "v1",
            "bistro",
            "operator",
            0,
            json!({"domain": "venue", "command": {"kind": "create_venue", "spec": venue}}),
        ),
        (
            "l1",
            "lamp",
            "operator",
            0,
            json!({"domain": "auction", "command": {"kind": "create_lot", "spec": lot}}),
        ),
        // Another domain's command on an existing resource, or a create over it.
        (
            "x1",
            "drop",
            "ann",
            1,
            json!({"domain": "seats", "command": {"kind": "hold_best", "count": 1}}),
        ),
        (
            "x2",
            "drop",
            "operator",
            1,
            json!({"domain": "seats", "command": {"kind": "create_event", "spec": event}}),
        ),
        (
            "x3",
            "gala",
            "ann",
            1,
            json!({"domain": "coupon", "command": {"kind": "claim"}}),
        ),
        (
            "x4",
            "gala",
            "operator",
            1,
            json!({"domain": "auction", "command": {"kind": "create_lot", "spec": lot}}),
        ),
        (
            "x5",
            "nowhere",
            "ann",
            1,
            json!({"domain": "venue", "command": {"kind": "book", "slot": "2026-12-03T19:00", "party_size": 2}}),
        ),
        (
            "h1",
            "gala",
            "ann",
            2,
            json!({"domain": "seats", "command": {"kind": "hold_best", "count": 2}}),
        ),
        (
            "b1",
            "bistro",
            "bob",
            3,
            json!({"domain": "venue", "command": {"kind": "book", "slot": "2026-12-03T19:00", "party_size": 4}}),
        ),
        (
            "w1",
            "bistro",
            "cid",
            4,
            json!({"domain": "venue", "command": {"kind": "join_waitlist", "slot": "2026-12-03T19:00", "party_size": 2}}),
        ),
        (
            "p1",
            "lamp",
            "dee",
            5,
            json!({"domain": "auction", "command": {"kind": "bid", "max_amount": 300}}),
        ),
        (
            "k1",
            "drop",
            "ann",
            6,
            json!({"domain": "coupon", "command": {"kind": "claim"}}),
        ),
        // A retry of the hold, later: the first outcome, nothing new.
        (
            "h1",
            "gala",
            "ann",
            9,
            json!({"domain": "seats", "command": {"kind": "hold_best", "count": 2}}),
        ),
    ]
}

fn second_part() -> Vec<Record> {
    vec![
        // Ann's hold lapses through its timer; Eve can then hold those seats.
        (
            "timer:lapse_hold:gala-h1",
            "gala",
            "ann",
            62,
            json!({"domain": "seats", "command": {"kind": "lapse_hold", "hold_id": "gala-h1"}}),
        ),
        (
            "h2",
            "gala",
            "eve",
            63,
            json!({"domain": "seats", "command": {"kind": "hold_seats", "seat_ids": ["A-1-1"]}}),
        ),
        (
            "h3",
            "gala",
            "eve",
            64,
            json!({"domain": "seats", "command": {"kind": "confirm_hold", "hold_id": "gala-h2"}}),
        ),
        // Bob cancels: Cid is offered the table in the same decision.
        (
            "c2",
            "bistro",
            "bob",
            65,
            json!({"domain": "venue", "command": {"kind": "cancel_booking", "booking_id": "bistro-b1"}}),
        ),
        (
            "a1",
            "bistro",
            "cid",
            66,
            json!({"domain": "venue", "command": {"kind": "accept_offer", "offer_id": "bistro-o1"}}),
        ),
        // A bid in the last 30 s extends the lot; the close for the old end is not due.
        (
            "p2",
            "lamp",
            "fay",
            590,
            json!({"domain": "auction", "command": {"kind": "bid", "max_amount": 500}}),
        ),
        (
            "timer:close_lot:1796213400000",
            "lamp",
            "operator",
            600,
            json!({"domain": "auction", "command": {"kind": "close_lot", "ends_at": "2026-12-02T12:10:00Z"}}),
        ),
        (
            "timer:close_lot:1796213430000",
            "lamp",
            "operator",
            630,
            json!({"domain": "auction", "command": {"kind": "close_lot", "ends_at": "2026-12-02T12:10:30Z"}}),
        ),
        (
            "p3",
            "lamp",
            "gus",
            631,
            json!({"domain": "auction", "command": {"kind": "bid", "max_amount": 900}}),
        ),
    ]
}

fn status(outcome: &Outcome) -> &'static str {
    outcome.decision.status()
}

#[test]
fn each_command_reaches_its_own_domain_and_timers_decide_in_log_order() {
    let mut state = PartitionState::new(0);
    let first = run(&mut state, 0, &first_part());
    let statuses: Vec<&str> = first.iter().map(|(o, _)| status(o)).collect();
    assert_eq!(
        statuses,
        [
            "campaign_created",
            "event_created",
            "venue_created",
            "lot_created",
            "unknown_resource",
            "resource_exists",
            "unknown_campaign",
            "resource_exists",
            "unknown_resource",
            "seats_held",
            "table_booked",
            "waitlisted",
            "bid_accepted",
            "coupon_granted",
            "seats_held",
        ]
    );
    assert_eq!(
        first[14].0, first[9].0,
        "a retry is answered with the first outcome"
    );
    assert!(first[14].1.is_empty(), "a duplicate changes no view");
    assert!(first[9].1.contains(r#""held":2"#), "{}", first[9].1);

    let second = run(&mut state, first.len() as u64, &second_part());
    let statuses: Vec<&str> = second.iter().map(|(o, _)| status(o)).collect();
    assert_eq!(
        statuses,
        [
            "hold_lapsed",
            "seats_held",
            "hold_confirmed",
            "booking_cancelled",
            "offer_accepted",
            "bid_accepted",
            "not_due_yet",
            "lot_sold",
            "closed",
        ]
    );
    let Decision::BookingCancelled { offers, .. } = &second[3].0.decision else {
        unreachable!()
    };
    assert_eq!(offers[0].user_id, "cid");
    let Decision::LotSold { winner, price, .. } = &second[7].0.decision else {
        unreachable!()
    };
    assert_eq!((winner.as_str(), *price), ("fay", 310));
}

#[test]
fn a_restored_state_decides_the_rest_as_the_uninterrupted_one() {
    let mut uninterrupted = PartitionState::new(0);
    let first = run(&mut uninterrupted, 0, &first_part());
    let rest = run(&mut uninterrupted, first.len() as u64, &second_part());

    // The journal's outcomes: one per request, in log order, read back from JSON.
    let mut recorded: Vec<Outcome> = Vec::new();
    for (outcome, _) in &first {
        if !recorded
            .iter()
            .any(|o| o.request_id == outcome.request_id && o.resource_id == outcome.resource_id)
        {
            let json = serde_json::to_string(outcome).unwrap();
            recorded.push(serde_json::from_str(&json).unwrap());
        }
    }
    let mut restored = PartitionState::restored(0, &recorded);
    for outcome in &recorded {
        assert_eq!(
            restored
                .outcome_of(&outcome.resource_id, &outcome.request_id)
                .as_ref(),
            Some(outcome)
        );
    }
    let rest_after_restore = run(&mut restored, first.len() as u64, &second_part());
    assert_eq!(
        rest_after_restore, rest,
        "outcomes and views after recovery"
    );
    let bytes = |run: &[(Outcome, String)]| {
        serde_json::to_string(&run.iter().map(|(o, _)| o).collect::<Vec<_>>()).unwrap()
    };
    assert_eq!(bytes(&rest_after_restore), bytes(&rest));
}
