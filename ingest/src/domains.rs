//! Routes of the seated-event, venue and auction-lot APIs (`docs/domains.md`).
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/events` | create a seated event |
//! | GET | `/v1/events/{event_id}` | availability by section, free seat ids |
//! | POST | `/v1/events/{event_id}/holds` | hold named seats or the best N |
//! | POST | `/v1/events/{event_id}/holds/{hold_id}/confirm` | buy a hold's seats |
//! | POST | `/v1/events/{event_id}/holds/{hold_id}/release` | give a hold up |
//! | POST | `/v1/venues` | create a venue |
//! | GET | `/v1/venues/{venue_id}?date=YYYY-MM-DD` | a date's slots and free covers |
//! | POST | `/v1/venues/{venue_id}/bookings` | book a slot for a party |
//! | POST | `/v1/venues/{venue_id}/bookings/{booking_id}/cancel` | cancel a booking |
//! | POST | `/v1/venues/{venue_id}/waitlist` | wait for a full slot |
//! | POST | `/v1/venues/{venue_id}/offers/{offer_id}/accept` | take an offered table |
//! | POST | `/v1/venues/{venue_id}/offers/{offer_id}/decline` | pass an offered table on |
//! | POST | `/v1/lots` | create an auction lot |
//! | GET | `/v1/lots/{lot_id}` | price, leader, end, status |
//! | POST | `/v1/lots/{lot_id}/bids` | bid (a proxy bid up to `max_amount`) |
//! | POST | `/v1/lots/{lot_id}/buy-now` | buy at the buy-now price |
//! | GET | `/v1/{events,venues,lots}/{id}/requests/{request_id}` | a request's status |
//!
//! Writes answer like the coupon API ([`crate::api`]): the decision when it lands within
//! the wait budget, else 202 and the status URL. The edge checks what it can without the
//! state (ids, specs, body shape) and answers 4xx without touching the log; everything
//! that needs the state (a seat taken, a bid too low) is decided in log order and comes
//! back as the rejection's 4xx.
//!
//! With authentication on ([`crate::auth`]) creates need an admin token and users' writes
//! a bearer token whose `sub` is the user; the lookups stay public.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use turnstile_processors::domain::Domain;
use turnstile_processors::venue::Venue;
use turnstile_schemas::auction::{AuctionCommand, LotSpec};
use turnstile_schemas::seats::{EventSpec, SeatsCommand};
use turnstile_schemas::venue::{VenueCalendar, VenueCommand, VenueSpec};
use turnstile_schemas::{validate_id, Command};

use crate::api::{admit_user, create_body, request_status, submit, user_write, Answer, UserBody};
use crate::auth::{Admin, Caller};
use crate::error::Failure;
use crate::Edge;

/// The routes of this module.
pub(crate) fn routes() -> Router<Edge> {
    Router::new()
        .route("/v1/events", post(create_event))
        .route("/v1/events/{event_id}", get(event))
        .route("/v1/events/{event_id}/holds", post(hold))
        .route(
            "/v1/events/{event_id}/holds/{hold_id}/confirm",
            post(confirm_hold),
        )
        .route(
            "/v1/events/{event_id}/holds/{hold_id}/release",
            post(release_hold),
        )
        .route("/v1/venues", post(create_venue))
        .route("/v1/venues/{venue_id}", get(venue))
        .route("/v1/venues/{venue_id}/bookings", post(book))
        .route(
            "/v1/venues/{venue_id}/bookings/{booking_id}/cancel",
            post(cancel_booking),
        )
        .route("/v1/venues/{venue_id}/waitlist", post(join_waitlist))
        .route(
            "/v1/venues/{venue_id}/offers/{offer_id}/accept",
            post(accept_offer),
        )
        .route(
            "/v1/venues/{venue_id}/offers/{offer_id}/decline",
            post(decline_offer),
        )
        .route("/v1/lots", post(create_lot))
        .route("/v1/lots/{lot_id}", get(lot))
        .route("/v1/lots/{lot_id}/bids", post(bid))
        .route("/v1/lots/{lot_id}/buy-now", post(buy_now))
        .route(
            "/v1/events/{event_id}/requests/{request_id}",
            get(request_status),
        )
        .route(
            "/v1/venues/{venue_id}/requests/{request_id}",
            get(request_status),
        )
        .route(
            "/v1/lots/{lot_id}/requests/{request_id}",
            get(request_status),
        )
}

// ---------------------------------------------------------------------------------------
// Creating: an operator's write with a spec checked at the edge
// ---------------------------------------------------------------------------------------

/// A create body, as `POST /v1/{events,venues,lots}` take it.
type CreateBody = Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>;

async fn create_event(
    State(edge): State<Edge>,
    admin: Admin,
    headers: HeaderMap,
    body: CreateBody,
) -> Answer {
    let creation = Creation {
        id_field: "event_id",
        invalid_code: "invalid_event",
        validate: |spec: &EventSpec| spec.validate().map(drop),
        command: |spec| Command::Seats(SeatsCommand::CreateEvent { spec }),
    };
    creation.submit(&edge, &admin, &headers, body).await
}

async fn create_venue(
    State(edge): State<Edge>,
    admin: Admin,
    headers: HeaderMap,
    body: CreateBody,
) -> Answer {
    let creation = Creation {
        id_field: "venue_id",
        invalid_code: "invalid_venue",
        validate: |spec: &VenueSpec| spec.validate().map(drop),
        command: |spec| Command::Venue(VenueCommand::CreateVenue { spec }),
    };
    creation.submit(&edge, &admin, &headers, body).await
}

async fn create_lot(
    State(edge): State<Edge>,
    admin: Admin,
    headers: HeaderMap,
    body: CreateBody,
) -> Answer {
    let creation = Creation {
        id_field: "lot_id",
        invalid_code: "invalid_lot",
        validate: LotSpec::validate,
        command: |spec| Command::Auction(AuctionCommand::CreateLot { spec }),
    };
    creation.submit(&edge, &admin, &headers, body).await
}

/// How one domain's resource is created: the body's id field, the spec's check and the
/// command it becomes.
struct Creation<S> {
    id_field: &'static str,
    invalid_code: &'static str,
    validate: fn(&S) -> Result<(), String>,
    command: fn(S) -> Command,
}

impl<S: serde::de::DeserializeOwned> Creation<S> {
    /// Checks the key, the body, the id and the spec, then submits the creation on behalf
    /// of the operator.
    async fn submit(
        self,
        edge: &Edge,
        admin: &Admin,
        headers: &HeaderMap,
        body: CreateBody,
    ) -> Answer {
        let request_id = crate::api::idempotency_key(headers)?;
        let (resource_id, spec): (String, S) = create_body(body, self.id_field)?;
        (self.validate)(&spec).map_err(|m| Failure::invalid(self.invalid_code, m))?;
        validate_id(self.id_field, &resource_id).map_err(|m| Failure::invalid("invalid_id", m))?;
        let command = (self.command)(spec);
        submit(
            edge,
            headers,
            request_id,
            resource_id,
            admin.user_id(),
            command,
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Users' writes
// ---------------------------------------------------------------------------------------

/// Body of `POST /v1/events/{event_id}/holds`: named seats or the best N, not both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    /// Required unless a bearer token names the user.
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    seat_ids: Option<Vec<String>>,
    #[serde(default)]
    best: Option<BestSeats>,
}

/// "The best `count` seats", optionally in one section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BestSeats {
    count: u32,
    #[serde(default)]
    section: Option<String>,
}

async fn hold(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<HoldBody>, JsonRejection>,
) -> Answer {
    let Path(event_id) = path?;
    let request_id = crate::api::idempotency_key(&headers)?;
    let Json(body) = body?;
    let user_id = caller.user_id(body.user_id)?;
    let _in_flight = admit_user(&edge, &user_id)?;
    let command = match (body.seat_ids, body.best) {
        (Some(seat_ids), None) => SeatsCommand::HoldSeats { seat_ids },
        (None, Some(best)) => SeatsCommand::HoldBest {
            count: best.count,
            section: best.section,
        },
        _ => {
            return Err(Failure::invalid(
                "invalid_hold",
                "a hold names either seat_ids or best, exactly one of them",
            )
            .fix(r#"send {"user_id":"ann","seat_ids":["A-1-1"]} or {"user_id":"ann","best":{"count":2}}"#))
        }
    };
    let command = Command::Seats(command);
    submit(&edge, &headers, request_id, event_id, user_id, command).await
}

async fn confirm_hold(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((event_id, hold_id)) = path?;
    let hold_id = path_id("hold_id", hold_id)?;
    let command = Command::Seats(SeatsCommand::ConfirmHold { hold_id });
    user_command(&edge, &caller, &headers, body, event_id, command).await
}

async fn release_hold(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((event_id, hold_id)) = path?;
    let hold_id = path_id("hold_id", hold_id)?;
    let command = Command::Seats(SeatsCommand::ReleaseHold { hold_id });
    user_command(&edge, &caller, &headers, body, event_id, command).await
}

/// Body of bookings and waitlist entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartyBody {
    /// Required unless a bearer token names the user.
    #[serde(default)]
    user_id: Option<String>,
    /// `<local date>T<HH:MM>`, e.g. `2026-12-24T18:00`.
    slot: String,
    party_size: u32,
}

async fn book(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<PartyBody>, JsonRejection>,
) -> Answer {
    let Path(venue_id) = path?;
    party_command(
        &edge,
        &caller,
        &headers,
        venue_id,
        body,
        |slot, party_size| VenueCommand::Book { slot, party_size },
    )
    .await
}

async fn join_waitlist(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<PartyBody>, JsonRejection>,
) -> Answer {
    let Path(venue_id) = path?;
    party_command(
        &edge,
        &caller,
        &headers,
        venue_id,
        body,
        |slot, party_size| VenueCommand::JoinWaitlist { slot, party_size },
    )
    .await
}

async fn party_command(
    edge: &Edge,
    caller: &Caller,
    headers: &HeaderMap,
    venue_id: String,
    body: Result<Json<PartyBody>, JsonRejection>,
    command: impl FnOnce(String, u32) -> VenueCommand,
) -> Answer {
    let request_id = crate::api::idempotency_key(headers)?;
    let Json(body) = body?;
    let user_id = caller.user_id(body.user_id)?;
    let _in_flight = admit_user(edge, &user_id)?;
    let command = Command::Venue(command(body.slot, body.party_size));
    submit(edge, headers, request_id, venue_id, user_id, command).await
}

async fn cancel_booking(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((venue_id, booking_id)) = path?;
    let booking_id = path_id("booking_id", booking_id)?;
    let command = Command::Venue(VenueCommand::CancelBooking { booking_id });
    user_command(&edge, &caller, &headers, body, venue_id, command).await
}

async fn accept_offer(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((venue_id, offer_id)) = path?;
    let offer_id = path_id("offer_id", offer_id)?;
    let command = Command::Venue(VenueCommand::AcceptOffer { offer_id });
    user_command(&edge, &caller, &headers, body, venue_id, command).await
}

async fn decline_offer(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((venue_id, offer_id)) = path?;
    let offer_id = path_id("offer_id", offer_id)?;
    let command = Command::Venue(VenueCommand::DeclineOffer { offer_id });
    user_command(&edge, &caller, &headers, body, venue_id, command).await
}

/// Body of `POST /v1/lots/{lot_id}/bids`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BidBody {
    /// Required unless a bearer token names the user.
    #[serde(default)]
    user_id: Option<String>,
    /// The most the bidder will pay, in minor units; the lot's price rises only as far as
    /// competing bids make it (a proxy bid).
    max_amount: u64,
}

async fn bid(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<BidBody>, JsonRejection>,
) -> Answer {
    let Path(lot_id) = path?;
    let request_id = crate::api::idempotency_key(&headers)?;
    let Json(body) = body?;
    let user_id = caller.user_id(body.user_id)?;
    let _in_flight = admit_user(&edge, &user_id)?;
    let command = Command::Auction(AuctionCommand::Bid {
        max_amount: body.max_amount,
    });
    submit(&edge, &headers, request_id, lot_id, user_id, command).await
}

async fn buy_now(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path(lot_id) = path?;
    let command = Command::Auction(AuctionCommand::BuyNow);
    user_command(&edge, &caller, &headers, body, lot_id, command).await
}

/// An id from the path, checked like every id (`validate_id`).
fn path_id(what: &'static str, id: String) -> Result<String, Failure> {
    validate_id(what, &id).map_err(|m| Failure::invalid("invalid_id", m))?;
    Ok(id)
}

/// Submits a command whose body names only its user.
async fn user_command(
    edge: &Edge,
    caller: &Caller,
    headers: &HeaderMap,
    body: Result<Json<UserBody>, JsonRejection>,
    resource_id: String,
    command: Command,
) -> Answer {
    let (request_id, user_id, _in_flight) = user_write(edge, headers, caller, body)?;
    submit(edge, headers, request_id, resource_id, user_id, command).await
}

// ---------------------------------------------------------------------------------------
// Lookups: the views the processors commit with every batch
// ---------------------------------------------------------------------------------------

async fn event(State(edge): State<Edge>, path: Result<Path<String>, PathRejection>) -> Answer {
    let Path(event_id) = path?;
    let body = committed_view(&edge, &event_id, "seats", "event").await?;
    Ok(json_response(body))
}

async fn lot(State(edge): State<Edge>, path: Result<Path<String>, PathRejection>) -> Answer {
    let Path(lot_id) = path?;
    let body = committed_view(&edge, &lot_id, "auction", "lot").await?;
    Ok(json_response(body))
}

/// Query of `GET /v1/venues/{venue_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DateQuery {
    /// A local date, `YYYY-MM-DD`; today in the venue's zone when absent.
    #[serde(default)]
    date: Option<NaiveDate>,
}

async fn venue(
    State(edge): State<Edge>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<DateQuery>, QueryRejection>,
) -> Answer {
    let Path(venue_id) = path?;
    let Query(query) = query.map_err(|e| {
        Failure::bad_request("invalid_query", e.body_text()).fix("ask for ?date=2026-12-24")
    })?;
    let body = committed_view(&edge, &venue_id, "venue", "venue").await?;
    let calendar: VenueCalendar = serde_json::from_str(&body).map_err(Failure::unavailable)?;
    let time_zone: chrono_tz::Tz =
        calendar.spec.time_zone.parse().map_err(|_| {
            Failure::unavailable(format!("venue {venue_id} has an unknown time zone"))
        })?;
    let now = Utc::now();
    let date = query
        .date
        .unwrap_or_else(|| now.with_timezone(&time_zone).date_naive());
    let availability = match calendar.days.into_iter().find(|day| day.date == date) {
        Some(day) => day,
        // Nothing happened on that date: every slot is as the spec made it.
        None => Venue::create(&venue_id, &calendar.spec)
            .map_err(Failure::unavailable)?
            .availability(date, now),
    };
    Ok(Json(availability).into_response())
}

/// The committed view of `resource_id`, which must be of `domain`; 404 otherwise.
async fn committed_view(
    edge: &Edge,
    resource_id: &str,
    domain: &str,
    what: &'static str,
) -> Result<String, Failure> {
    let view = edge
        .journal
        .resource_view(resource_id)
        .await
        .map_err(Failure::unavailable)?;
    match view {
        Some(view) if view.domain == domain => Ok(view.body),
        _ => Err(Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_resource",
            format!("no {what} {resource_id:?} exists"),
        )
        .fix(format!("create it first with POST /v1/{what}s"))),
    }
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
