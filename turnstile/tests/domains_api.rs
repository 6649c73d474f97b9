//! Seats, tables and lots through a real `turnstile serve`: each domain's happy path, its
//! timer taking effect through the expiry scheduler, replays, and the bad requests the
//! edge or the state machine answer with a precise 4xx in the stable error shape.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use common::{client, get_json, temp_dir, Server};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs `body` with an `Idempotency-Key`; returns the status and the JSON answer.
async fn post(
    client: &reqwest::Client,
    url: String,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .post(url)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{status}: body is not JSON: {text:?}"));
    (status, json)
}

/// Asserts an error answer: its status and code, in the stable shape.
fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(
        body["error"]["status"].as_u64(),
        Some(u64::from(status.as_u16())),
        "{body}"
    );
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Polls `url` until `done` holds for its JSON, or fails after 20 s.
async fn wait_for(client: &reqwest::Client, url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let view = get_json(client, url).await;
        if done(&view) {
            return view;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still {view} at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn seats_are_held_confirmed_and_lapse_through_the_scheduler() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    let spec = json!({
        "event_id": "gala",
        "title": "Gala",
        "starts_at": "2027-01-01T19:00:00Z",
        "hold_ttl_seconds": 1,
        "sections": [
            {"section_id": "A", "price_tier": {"name": "front", "price_minor": 5000},
             "rows": [{"row_id": "1", "seats": 4}, {"row_id": "2", "seats": 4}]},
            {"section_id": "B", "price_tier": {"name": "back", "price_minor": 2000},
             "rows": [{"row_id": "1", "seats": 2}]}
        ]
    });
    let created = post(
        &client,
        server.url("/v1/events"),
        "create-gala",
        spec.clone(),
    )
    .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    assert_eq!(created.1["decision"]["status"], "event_created");
    // Another create with the same spec is decided as created (docs/domains.md, rule 2).
    let again = post(&client, server.url("/v1/events"), "create-gala-2", spec).await;
    assert_eq!(again.0, StatusCode::CREATED, "{}", again.1);
    assert_eq!(again.1["decision"]["status"], "event_created");

    let view = get_json(&client, &server.url("/v1/events/gala")).await;
    assert_eq!(view["sections"][0]["free"], 8, "{view}");

    let holds = server.url("/v1/events/gala/holds");
    let held = post(
        &client,
        holds.clone(),
        "ann-1",
        json!({"user_id": "ann", "best": {"count": 2}}),
    )
    .await;
    assert_eq!(held.0, StatusCode::CREATED, "{}", held.1);
    let decision = &held.1["decision"];
    assert_eq!(decision["status"], "seats_held");
    assert_eq!(decision["seat_ids"], json!(["A-1-1", "A-1-2"]));
    assert_eq!(decision["price_total"], 10_000);
    let hold_id = decision["hold_id"].as_str().unwrap().to_string();
    let replay = post(
        &client,
        holds.clone(),
        "ann-1",
        json!({"user_id": "ann", "best": {"count": 2}}),
    )
    .await;
    assert_eq!(
        replay,
        (StatusCode::OK, held.1.clone()),
        "a retry gets the same outcome"
    );

    let taken = post(
        &client,
        holds.clone(),
        "bob-1",
        json!({"user_id": "bob", "seat_ids": ["A-1-2"]}),
    )
    .await;
    assert_error(&taken, StatusCode::CONFLICT, "seat_unavailable");
    let unknown = post(
        &client,
        holds.clone(),
        "bob-2",
        json!({"user_id": "bob", "seat_ids": ["Z-9-9"]}),
    )
    .await;
    assert_error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "seat_not_found");
    let twice = post(
        &client,
        holds.clone(),
        "bob-3",
        json!({"user_id": "bob", "seat_ids": ["B-1-1", "B-1-1"]}),
    )
    .await;
    assert_error(&twice, StatusCode::UNPROCESSABLE_ENTITY, "duplicate_seat");
    let both = post(
        &client,
        holds.clone(),
        "bob-4",
        json!({"user_id": "bob", "seat_ids": ["B-1-1"], "best": {"count": 1}}),
    )
    .await;
    assert_error(&both, StatusCode::UNPROCESSABLE_ENTITY, "invalid_hold");

    let confirm = server.url(&format!("/v1/events/gala/holds/{hold_id}/confirm"));
    let foreign = post(&client, confirm.clone(), "bob-5", json!({"user_id": "bob"})).await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "not_hold_holder");
    let sold = post(&client, confirm, "ann-2", json!({"user_id": "ann"})).await;
    // The hold lives one second; the confirm may come too late on a slow machine.
    if sold.0 == StatusCode::OK {
        assert_eq!(sold.1["decision"]["status"], "hold_confirmed", "{}", sold.1);
    } else {
        assert_error(&sold, StatusCode::GONE, "hold_expired");
    }

    // Bob's hold is left to lapse: the expiry scheduler writes the lapse into the log.
    let bob = post(
        &client,
        holds,
        "bob-6",
        json!({"user_id": "bob", "seat_ids": ["B-1-1", "B-1-2"]}),
    )
    .await;
    assert_eq!(bob.0, StatusCode::CREATED, "{}", bob.1);
    let view = wait_for(&client, &server.url("/v1/events/gala"), |v| {
        v["sections"][1]["free"] == 2
    })
    .await;
    assert_eq!(view["sections"][1]["held"], 0, "{view}");
    let bob_hold = bob.1["decision"]["hold_id"].as_str().unwrap();
    let lapse = get_json(
        &client,
        &server.url(&format!(
            "/v1/events/gala/requests/timer:lapse_hold:{bob_hold}"
        )),
    )
    .await;
    assert_eq!(
        lapse["outcome"]["decision"]["status"], "hold_lapsed",
        "{lapse}"
    );

    // A seats command on a resource that is not an event is decided, and refused.
    let nowhere = post(
        &client,
        server.url("/v1/events/nowhere/holds"),
        "k",
        json!({"user_id": "ann", "best": {"count": 1}}),
    )
    .await;
    assert_error(&nowhere, StatusCode::NOT_FOUND, "unknown_resource");
    let missing = client
        .get(server.url("/v1/events/nowhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let bad_spec = post(
        &client,
        server.url("/v1/events"),
        "bad",
        json!({"event_id": "x", "title": "", "starts_at": "2027-01-01T19:00:00Z", "sections": []}),
    )
    .await;
    assert_error(&bad_spec, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event");
    // A misspelt field is refused, not dropped in favour of its default.
    let typo = json!({"event_id": "y", "starts_at": "2027-01-01T19:00:00Z", "hold_ttl_secs": 30,
        "sections": [{"section_id": "A", "price_tier": {"name": "a", "price_minor": 1},
                      "rows": [{"row_id": "1", "seats": 1}]}]});
    let typo = post(&client, server.url("/v1/events"), "typo", typo).await;
    assert_error(&typo, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body");
    assert!(
        typo.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hold_ttl_secs"),
        "{}",
        typo.1
    );
    let bad_hold_id = post(
        &client,
        server.url("/v1/events/gala/holds/h%20one/confirm"),
        "k2",
        json!({"user_id": "ann"}),
    )
    .await;
    assert_error(&bad_hold_id, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id");
}

#[tokio::test]
async fn tables_are_booked_waitlisted_and_offered_when_a_booking_is_cancelled() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    let spec = json!({
        "venue_id": "bistro",
        "title": "Bistro",
        "time_zone": "UTC",
        "slots": [{"start": "19:00", "duration_minutes": 120, "capacity_covers": 4}],
        "party_size_max": 4,
        "offer_ttl_seconds": 600
    });
    let created = post(&client, server.url("/v1/venues"), "create", spec).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let date = (Utc::now() + chrono::Duration::days(2)).date_naive();
    let slot = format!("{date}T19:00");

    let bookings = server.url("/v1/venues/bistro/bookings");
    let booked = post(
        &client,
        bookings.clone(),
        "ann",
        json!({"user_id": "ann", "slot": slot, "party_size": 3}),
    )
    .await;
    assert_eq!(booked.0, StatusCode::CREATED, "{}", booked.1);
    assert_eq!(booked.1["decision"]["status"], "table_booked");
    let booking_id = booked.1["decision"]["booking_id"]
        .as_str()
        .unwrap()
        .to_string();
    let full = post(
        &client,
        bookings.clone(),
        "bob",
        json!({"user_id": "bob", "slot": slot, "party_size": 2}),
    )
    .await;
    assert_error(&full, StatusCode::CONFLICT, "slot_full");
    let waiting = post(
        &client,
        server.url("/v1/venues/bistro/waitlist"),
        "bob-wait",
        json!({"user_id": "bob", "slot": slot, "party_size": 2}),
    )
    .await;
    assert_eq!(waiting.0, StatusCode::CREATED, "{}", waiting.1);
    assert_eq!(waiting.1["decision"]["status"], "waitlisted");

    let too_large = post(
        &client,
        bookings.clone(),
        "carol",
        json!({"user_id": "carol", "slot": slot, "party_size": 9}),
    )
    .await;
    assert_error(
        &too_large,
        StatusCode::UNPROCESSABLE_ENTITY,
        "party_too_large",
    );
    let no_slot = post(
        &client,
        bookings.clone(),
        "dave",
        json!({"user_id": "dave", "slot": "tonight", "party_size": 2}),
    )
    .await;
    assert_error(&no_slot, StatusCode::UNPROCESSABLE_ENTITY, "slot_not_found");

    // Ann cancels: Bob's party of two is offered the freed covers in the same decision.
    let cancel = server.url(&format!("/v1/venues/bistro/bookings/{booking_id}/cancel"));
    let foreign = post(
        &client,
        cancel.clone(),
        "bob-cancel",
        json!({"user_id": "bob"}),
    )
    .await;
    assert_error(&foreign, StatusCode::FORBIDDEN, "not_booking_holder");
    let cancelled = post(&client, cancel, "ann-cancel", json!({"user_id": "ann"})).await;
    assert_eq!(cancelled.0, StatusCode::OK, "{}", cancelled.1);
    let offers = &cancelled.1["decision"]["offers"];
    assert_eq!(offers[0]["user_id"], "bob", "{}", cancelled.1);
    let offer_id = offers[0]["offer_id"].as_str().unwrap();
    let accept = server.url(&format!("/v1/venues/bistro/offers/{offer_id}/accept"));
    let accepted = post(&client, accept, "bob-accept", json!({"user_id": "bob"})).await;
    assert_eq!(accepted.0, StatusCode::CREATED, "{}", accepted.1);
    assert_eq!(accepted.1["decision"]["status"], "offer_accepted");

    let day = get_json(
        &client,
        &server.url(&format!("/v1/venues/bistro?date={date}")),
    )
    .await;
    assert_eq!(day["slots"][0]["booked_covers"], 2, "{day}");
    assert_eq!(day["slots"][0]["free_covers"], 2, "{day}");
    // A date nobody booked is shown from the spec.
    let later = (Utc::now() + chrono::Duration::days(5)).date_naive();
    let quiet = get_json(
        &client,
        &server.url(&format!("/v1/venues/bistro?date={later}")),
    )
    .await;
    assert_eq!(quiet["slots"][0]["free_covers"], 4, "{quiet}");
    let bad_date = client
        .get(server.url("/v1/venues/bistro?date=tomorrow"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_date.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_lot_takes_proxy_bids_extends_on_a_late_bid_and_closes_by_its_timer() {
    let (_dir, data) = temp_dir();
    let server = Server::start(&data, &[]);
    let client = client();
    let ends_at = Utc::now() + chrono::Duration::seconds(3);
    let ends_at = ends_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let spec = json!({
        "lot_id": "lamp",
        "title": "Brass lamp",
        "ends_at": ends_at,
        "opening_price": 1000,
        "increment": 100,
        "extension_seconds": 2,
        "currency": "EUR"
    });
    let created = post(&client, server.url("/v1/lots"), "create", spec).await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);

    let bids = server.url("/v1/lots/lamp/bids");
    let low = post(
        &client,
        bids.clone(),
        "ann-low",
        json!({"user_id": "ann", "max_amount": 500}),
    )
    .await;
    assert_error(&low, StatusCode::UNPROCESSABLE_ENTITY, "bid_below_minimum");
    let ann = post(
        &client,
        bids.clone(),
        "ann",
        json!({"user_id": "ann", "max_amount": 3000}),
    )
    .await;
    assert_eq!(ann.0, StatusCode::CREATED, "{}", ann.1);
    assert_eq!(ann.1["decision"]["price"], 1000, "{}", ann.1);
    let bob = post(
        &client,
        bids.clone(),
        "bob",
        json!({"user_id": "bob", "max_amount": 2000}),
    )
    .await;
    assert_eq!(bob.0, StatusCode::CREATED, "{}", bob.1);
    // Ann's proxy outbids Bob at once: she leads at Bob's maximum plus one increment.
    assert_eq!(bob.1["decision"]["leader"], "ann", "{}", bob.1);
    assert_eq!(bob.1["decision"]["price"], 2100, "{}", bob.1);

    // Carol bids in the last two seconds: the end moves by two seconds.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let carol = post(
        &client,
        bids.clone(),
        "carol",
        json!({"user_id": "carol", "max_amount": 5000}),
    )
    .await;
    assert_eq!(carol.0, StatusCode::CREATED, "{}", carol.1);
    assert_eq!(carol.1["decision"]["outbid"], "ann", "{}", carol.1);
    assert_eq!(carol.1["decision"]["extended"], true, "{}", carol.1);

    let view = wait_for(&client, &server.url("/v1/lots/lamp"), |v| {
        v["status"] == "sold"
    })
    .await;
    assert_eq!(view["leader"], "carol", "{view}");
    assert_eq!(view["current_price"], 3100, "{view}");
    let late = post(
        &client,
        bids,
        "dave",
        json!({"user_id": "dave", "max_amount": 9000}),
    )
    .await;
    assert_error(&late, StatusCode::CONFLICT, "closed");
    let missing = client
        .get(server.url("/v1/lots/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
