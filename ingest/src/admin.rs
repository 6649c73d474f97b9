//! Operator routes (`/v1/admin`): the dead-letter queue.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/v1/admin/dead-letters` | every dead-lettered record, with its reason and bytes |
//! | POST | `/v1/admin/dead-letters/{partition}/{offset}/replay` | append the record again |
//!
//! A replay appends the record's bytes to the log again, on the partition its resource
//! belongs to (a record that does not parse goes back to the partition it came from). It
//! is safe to repeat: a request decided once gets its first outcome back on every later
//! delivery (invariant 3), and a record still invalid is dead-lettered again with its new
//! offset. Replay after deploying a fix, e.g. a build that reads a newer envelope version.
//!
//! With authentication on ([`crate::auth`]) every admin route needs a bearer token with
//! the `admin` scope; with it off they are open: bind such an edge to a private address.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use turnstile_journal::DeadLetter;
use turnstile_log::partition_for;
use turnstile_schemas::Envelope;

use crate::auth::Admin;
use crate::error::Failure;
use crate::Edge;

/// The admin routes, to merge into the API's router.
pub fn routes() -> Router<Edge> {
    Router::new()
        .route("/v1/admin/dead-letters", get(list))
        .route(
            "/v1/admin/dead-letters/{partition}/{offset}/replay",
            post(replay),
        )
}

async fn list(State(edge): State<Edge>, _admin: Admin) -> Result<Response, Failure> {
    let mut letters = Vec::new();
    for partition in 0..edge.log.partitions() {
        letters.extend(dead_letters(&edge, partition).await?);
    }
    let letters: Vec<_> = letters.iter().map(letter_json).collect();
    Ok(Json(json!({ "dead_letters": letters })).into_response())
}

async fn replay(
    State(edge): State<Edge>,
    _admin: Admin,
    path: Result<Path<(u32, u64)>, PathRejection>,
) -> Result<Response, Failure> {
    let Path((partition, offset)) = path?;
    let not_found = || {
        Failure::new(
            StatusCode::NOT_FOUND,
            "unknown_dead_letter",
            format!("no dead letter at partition {partition}, offset {offset}"),
        )
        .fix("list them with GET /v1/admin/dead-letters (or `turnstile dlq list`)")
    };
    if partition >= edge.log.partitions() {
        return Err(not_found());
    }
    let letter = dead_letters(&edge, partition)
        .await?
        .into_iter()
        .find(|letter| letter.offset == offset)
        .ok_or_else(not_found)?;
    let target = match Envelope::from_log_bytes(&letter.payload) {
        Ok(envelope) => partition_for(&envelope.resource_id, edge.log.partitions()),
        Err(_) => partition,
    };
    let appended = edge
        .log
        .append(target, letter.payload.clone(), None)
        .await
        .map_err(|e| Failure::unavailable(format!("the log refused the replay: {e}")))?;
    tracing::info!(
        from_partition = partition,
        from_offset = offset,
        to_partition = target,
        to_offset = appended,
        "replayed a dead letter"
    );
    Ok(Json(json!({
        "replayed": letter_json(&letter),
        "appended_at": { "partition": target, "offset": appended },
    }))
    .into_response())
}

async fn dead_letters(edge: &Edge, partition: u32) -> Result<Vec<DeadLetter>, Failure> {
    edge.journal
        .dead_letters(partition)
        .await
        .map_err(Failure::unavailable)
}

/// A dead letter as JSON: the payload as text when it is UTF-8, else base16.
fn letter_json(letter: &DeadLetter) -> serde_json::Value {
    let payload = match std::str::from_utf8(&letter.payload) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({ "hex": hex(&letter.payload) }),
    };
    json!({
        "partition": letter.partition,
        "offset": letter.offset,
        "reason": letter.reason,
        "payload": payload,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
