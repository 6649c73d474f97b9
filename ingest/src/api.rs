//! Routes and handlers of the HTTP API (`/v1`).
//!
//! | method | path | what |
//! |---|---|---|
//! | POST | `/v1/campaigns` | create a campaign |
//! | GET | `/v1/campaigns/{campaign_id}` | a campaign's rules and stock |
//! | POST | `/v1/campaigns/{campaign_id}/claims` | claim a coupon |
//! | POST | `/v1/campaigns/{campaign_id}/coupons/{coupon_id}/redeem` | use a coupon |
//! | GET | `/v1/campaigns/{campaign_id}/requests/{request_id}` | a request's status |
//! | GET | `/v1/users/{user_id}/coupons` | a user's coupons |
//! | GET | `/healthz` | liveness |
//! | GET | `/openapi.json` | the OpenAPI 3.0 document of this API, see [`crate::openapi`] |
//! | GET | `/metrics` | Prometheus metrics of this process, see [`crate::metrics`] |
//! | … | `/v1/events`, `/v1/venues`, `/v1/lots` | seats, tables and lots, see [`crate::domains`] |
//! | GET, POST | `/v1/admin/…` | operator routes, see [`crate::admin`] |
//!
//! Every write needs an `Idempotency-Key` header: the request's id, scoped to its campaign.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use turnstile_edge_state::GateAnswer;
use turnstile_log::partition_for;
use turnstile_processors::runtime::Decided;
use turnstile_schemas::{
    validate_id, CampaignSpec, Command, CommandKind, CouponCommand, Decision, Envelope,
    LogPosition, Outcome, ENVELOPE_VERSION, TIMER_REQUEST_PREFIX,
};

use crate::auth::{Admin, Caller};
use crate::error::Failure;
use crate::limits::InFlight;
use crate::Edge;

/// The user id recorded on administrative commands when the edge does not authenticate
/// callers (with authentication on, the admin token's `sub` is recorded).
pub(crate) const OPERATOR_USER_ID: &str = "operator";

pub(crate) type Answer = Result<Response, Failure>;

/// The API's router.
pub fn router(edge: Edge) -> Router {
    let body_bytes_max = edge.config.body_bytes_max;
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/metrics", get(crate::metrics::serve))
        .route("/v1/campaigns", post(create_campaign))
        .route("/v1/campaigns/{campaign_id}", get(campaign))
        .route("/v1/campaigns/{campaign_id}/claims", post(claim))
        .route(
            "/v1/campaigns/{campaign_id}/coupons/{coupon_id}/redeem",
            post(redeem),
        )
        .route(
            "/v1/campaigns/{campaign_id}/requests/{request_id}",
            get(request_status),
        )
        .route("/v1/users/{user_id}/coupons", get(user_coupons))
        .merge(crate::domains::routes())
        .merge(crate::admin::routes())
        .fallback(|| async {
            Failure::new(StatusCode::NOT_FOUND, "no_such_route", "no such route")
                .fix("see the API table in the README")
        })
        .method_not_allowed_fallback(|| async {
            Failure::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(edge)
}

/// Parses a create body: the new resource's id in `id_field` beside the fields of its
/// spec. Not with `#[serde(flatten)]`, which drops fields the spec does not know: a
/// misspelt `per_user_limt` must be refused, not silently replaced by its default.
pub(crate) fn create_body<S: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
    id_field: &'static str,
) -> Result<(String, S), Failure> {
    let Json(mut fields) = body?;
    let id = match fields.remove(id_field) {
        Some(serde_json::Value::String(id)) => id,
        Some(other) => {
            return Err(Failure::invalid(
                "invalid_body",
                format!("{id_field} must be a string, got {other}"),
            ))
        }
        None => {
            return Err(Failure::invalid(
                "invalid_body",
                format!("missing field `{id_field}`"),
            ))
        }
    };
    let spec = serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| Failure::invalid("invalid_body", e.to_string()))?;
    Ok((id, spec))
}

/// Body of claims and redeems: the user, required unless a bearer token names it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    #[serde(default)]
    user_id: Option<String>,
}

async fn create_campaign(
    State(edge): State<Edge>,
    admin: Admin,
    headers: HeaderMap,
    body: Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>,
) -> Answer {
    let request_id = idempotency_key(&headers)?;
    let (campaign_id, spec): (String, CampaignSpec) = create_body(body, "campaign_id")?;
    validate_id("campaign_id", &campaign_id)
        .map_err(|m| Failure::invalid("invalid_campaign_id", m))?;
    spec.validate()
        .map_err(|m| Failure::invalid("invalid_campaign", m))?;
    let command = Command::Coupon(CouponCommand::CreateCampaign { spec });
    let operator = admin.user_id();
    submit(&edge, &headers, request_id, campaign_id, operator, command).await
}

async fn campaign(State(edge): State<Edge>, path: Result<Path<String>, PathRejection>) -> Answer {
    let Path(campaign_id) = path?;
    let view = edge.campaign(&campaign_id).await?;
    let issued = view.issued();
    Ok(Json(json!({
        "campaign_id": campaign_id,
        "spec": view.spec,
        "issued": issued,
        "remaining": view.spec.capacity.saturating_sub(issued),
        "sold_out": view.sold_out(),
    }))
    .into_response())
}

async fn claim(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path(campaign_id) = path?;
    let (request_id, user_id, _in_flight) = user_write(&edge, &headers, &caller, body)?;
    let view = edge.campaign(&campaign_id).await?;
    if view.sold_out() {
        // The sold-out gate: no log write. A retry of a request decided earlier still gets
        // its recorded outcome (a winner retrying must see the win, not "sold out"); the
        // gate knows which keys were never decided, so most claims skip the journal too.
        match edge.gate(&campaign_id, &request_id).await {
            GateAnswer::NeverDecided => {
                return Err(Failure::rejected(
                    turnstile_schemas::Rejection::SoldOut,
                    None,
                ))
            }
            GateAnswer::Recorded(outcome) => {
                return answer_replay(*outcome, &user_id, CommandKind::Claim)
            }
            GateAnswer::Unknown => {}
        }
        let recorded = edge
            .journal
            .outcome(&campaign_id, &request_id)
            .await
            .map_err(Failure::unavailable)?;
        return match recorded {
            Some(outcome) => answer_replay(outcome, &user_id, CommandKind::Claim),
            None => Err(Failure::rejected(
                turnstile_schemas::Rejection::SoldOut,
                None,
            )),
        };
    }
    submit(
        &edge,
        &headers,
        request_id,
        campaign_id,
        user_id,
        Command::Coupon(CouponCommand::Claim),
    )
    .await
}

async fn redeem(
    State(edge): State<Edge>,
    caller: Caller,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Answer {
    let Path((campaign_id, coupon_id)) = path?;
    let (request_id, user_id, _in_flight) = user_write(&edge, &headers, &caller, body)?;
    validate_id("coupon_id", &coupon_id).map_err(|m| Failure::invalid("invalid_coupon_id", m))?;
    edge.campaign(&campaign_id).await?;
    let command = Command::Coupon(CouponCommand::Redeem { coupon_id });
    submit(&edge, &headers, request_id, campaign_id, user_id, command).await
}

pub(crate) async fn request_status(
    State(edge): State<Edge>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer {
    let Path((resource_id, request_id)) = path?;
    if let Some(outcome) = edge
        .journal
        .outcome(&resource_id, &request_id)
        .await
        .map_err(Failure::unavailable)?
    {
        return Ok(Json(json!({ "status": "decided", "outcome": outcome })).into_response());
    }
    if edge.feed.is_pending(&resource_id, &request_id) {
        return Ok(Json(json!({ "status": "pending" })).into_response());
    }
    Err(Failure::new(
        StatusCode::NOT_FOUND,
        "unknown_request",
        format!("no request {request_id:?} was accepted for {resource_id:?}"),
    )
    .fix("check the Idempotency-Key and the resource id the request was sent with"))
}

/// One coupon in a user's list.
#[derive(Debug, Serialize)]
struct CouponView {
    coupon_id: String,
    campaign_id: String,
    title: String,
    state: &'static str,
    issued_at: String,
    expires_at: String,
    expires_at_local: String,
    time_zone: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    redeemed_at: Option<String>,
    /// When the expiry timer took effect (the coupon is archived as expired). A coupon past
    /// its validity whose timer has not fired yet is `expired` without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_at: Option<String>,
}

async fn user_coupons(
    State(edge): State<Edge>,
    path: Result<Path<String>, PathRejection>,
) -> Answer {
    let Path(user_id) = path?;
    validate_id("user_id", &user_id).map_err(|m| Failure::invalid("invalid_user_id", m))?;
    let rows = edge
        .journal
        .coupons_of_user(&user_id)
        .await
        .map_err(Failure::unavailable)?;
    let now = Utc::now();
    let coupons: Vec<CouponView> = rows
        .into_iter()
        .map(|row| {
            let state = if row.redeemed_at.is_some() {
                "redeemed"
            } else if row.expired_at.is_some() || now >= row.expires_at {
                "expired"
            } else {
                "active"
            };
            let expires_at_local = match row.campaign.time_zone.parse::<chrono_tz::Tz>() {
                Ok(tz) => row
                    .expires_at
                    .with_timezone(&tz)
                    .to_rfc3339_opts(SecondsFormat::Secs, false),
                Err(_) => row.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            };
            CouponView {
                coupon_id: row.coupon_id,
                campaign_id: row.campaign_id,
                title: row.campaign.title,
                state,
                issued_at: row.issued_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                expires_at: row.expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                expires_at_local,
                time_zone: row.campaign.time_zone,
                redeemed_at: row
                    .redeemed_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                expired_at: row
                    .expired_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            }
        })
        .collect();
    Ok(Json(json!({ "user_id": user_id, "coupons": coupons })).into_response())
}

/// Appends the command to the log and answers with its decision, or 202 if the decision
/// does not arrive within the wait budget.
pub(crate) async fn submit(
    edge: &Edge,
    headers: &HeaderMap,
    request_id: String,
    resource_id: String,
    user_id: String,
    command: Command,
) -> Answer {
    let wait = wait_preference(headers)?.min(edge.wait_budget());
    let kind = command.kind();
    let envelope = Envelope {
        v: ENVELOPE_VERSION,
        request_id,
        resource_id,
        user_id,
        submitted_at: Utc::now(),
        traceparent: headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        command,
    };
    let partition = partition_for(&envelope.resource_id, edge.log.partitions());
    let decided = edge
        .feed
        .wait_for(&envelope.resource_id, &envelope.request_id);
    let appended = edge
        .log
        .append(
            partition,
            envelope.to_log_bytes(),
            envelope.traceparent.clone(),
        )
        .await;
    let offset = match appended {
        Ok(offset) => offset,
        Err(e) => {
            edge.feed
                .abandon(&envelope.resource_id, &envelope.request_id);
            return Err(Failure::unavailable(format!(
                "the log refused the request: {e}"
            )));
        }
    };
    if wait.is_zero() {
        // `Prefer: wait=0`: the caller asked for an immediate answer, not a race with
        // the processor.
        return Ok(pending(&envelope));
    }
    let delivery = LogPosition { partition, offset };
    match tokio::time::timeout(wait, decided).await {
        Ok(Ok(decided)) => answer_decided(&decided, delivery, &envelope.user_id, kind),
        // Timed out, or the processor stopped: the request is durable and will be decided.
        Ok(Err(_)) | Err(_) => Ok(pending(&envelope)),
    }
}

/// The answer to a caller whose own delivery (at `delivery`) has been decided.
fn answer_decided(
    decided: &Decided,
    delivery: LogPosition,
    user_id: &str,
    kind: CommandKind,
) -> Answer {
    if decided.outcome.position == delivery {
        answer(&decided.outcome, true)
    } else {
        answer_replay(decided.outcome.as_ref().clone(), user_id, kind)
    }
}

/// The answer to a retry of a request decided earlier: the same outcome, unless the key
/// was reused for a different request.
fn answer_replay(outcome: Outcome, user_id: &str, kind: CommandKind) -> Answer {
    if outcome.user_id != user_id || outcome.command != kind {
        return Err(Failure::invalid(
            "idempotency_key_reused",
            format!(
                "Idempotency-Key {:?} was already used for a different request (a {:?} by {:?})",
                outcome.request_id, outcome.command, outcome.user_id
            ),
        )
        .fix("use a new Idempotency-Key for each distinct request"));
    }
    answer(&outcome, false)
}

/// The API's collection of the command's resources: the first segment of its paths.
fn collection(command: &Command) -> &'static str {
    match command {
        Command::Coupon(_) => "campaigns",
        Command::Seats(_) => "events",
        Command::Venue(_) => "venues",
        Command::Auction(_) => "lots",
    }
}

/// 201 for a first grant or creation, 200 for redeems and replays, the rejection's error
/// status (with the outcome attached) for rejections.
fn answer(outcome: &Outcome, first: bool) -> Answer {
    let status = match &outcome.decision {
        Decision::Rejected { reason } => {
            return Err(Failure::rejected(*reason, Some(Box::new(outcome.clone()))))
        }
        _ if first && outcome.decision.creates_something() => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(outcome)).into_response())
}

/// 202 with the URL where the request's decision will be.
fn pending(envelope: &Envelope) -> Response {
    let (resource_id, request_id) = (&envelope.resource_id, &envelope.request_id);
    let collection = collection(&envelope.command);
    let status_url = format!("/v1/{collection}/{resource_id}/requests/{request_id}");
    let body = json!({ "status": "pending", "request_id": request_id, "status_url": status_url });
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, status_url)],
        Json(body),
    )
        .into_response()
}

/// What every user write carries: its `Idempotency-Key` and its user — the bearer token's
/// subject, or with authentication off the body's `user_id` (see [`Caller::user_id`]) —
/// admitted by the user's limits (see [`admit_user`]).
pub(crate) fn user_write(
    edge: &Edge,
    headers: &HeaderMap,
    caller: &Caller,
    body: Result<Json<UserBody>, JsonRejection>,
) -> Result<(String, String, InFlight), Failure> {
    let request_id = idempotency_key(headers)?;
    let Json(body) = body?;
    let user_id = caller.user_id(body.user_id)?;
    let in_flight = admit_user(edge, &user_id)?;
    Ok((request_id, user_id, in_flight))
}

/// A user's write, once its user is known: the per-user rate limit (429 `rate_limited`)
/// and a slot among the user's writes in flight (429 `too_many_in_flight`), to be held until
/// the write is answered. Every user write goes through here; the per-IP limit is checked
/// earlier, by the [`Caller`] extractor.
pub(crate) fn admit_user(edge: &Edge, user_id: &str) -> Result<InFlight, Failure> {
    edge.limits.admit_user(user_id)
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<String, Failure> {
    let value = headers.get("idempotency-key").ok_or_else(|| {
        Failure::bad_request(
            "missing_idempotency_key",
            "every write needs an Idempotency-Key header",
        )
        .fix(
            "send a unique key per request, e.g. Idempotency-Key: 7f9c1e2a; reuse it only to retry",
        )
    })?;
    let key = value.to_str().map_err(|_| {
        Failure::bad_request(
            "invalid_idempotency_key",
            "the Idempotency-Key is not visible ASCII",
        )
    })?;
    validate_id("Idempotency-Key", key)
        .map_err(|m| Failure::bad_request("invalid_idempotency_key", m))?;
    if key.starts_with(TIMER_REQUEST_PREFIX) {
        return Err(Failure::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Keys starting with {TIMER_REQUEST_PREFIX:?} are reserved for the expiry scheduler's timers"),
        )
        .fix("choose a key with another beginning"));
    }
    Ok(key.to_string())
}

/// `Prefer: wait=<seconds>` (RFC 7240); absent means the edge's full wait budget.
fn wait_preference(headers: &HeaderMap) -> Result<std::time::Duration, Failure> {
    let Some(prefer) = headers.get("prefer").and_then(|v| v.to_str().ok()) else {
        return Ok(std::time::Duration::MAX);
    };
    for preference in prefer.split(',') {
        if let Some(seconds) = preference.trim().strip_prefix("wait=") {
            let seconds: u64 = seconds.trim().parse().map_err(|_| {
                Failure::bad_request(
                    "invalid_prefer",
                    format!("Prefer: wait={seconds} is not a whole number of seconds"),
                )
            })?;
            return Ok(std::time::Duration::from_secs(seconds));
        }
    }
    Ok(std::time::Duration::MAX)
}
