//! `GET /metrics` and the middleware that counts and times every HTTP request.
//!
//! The registry is [`turnstile_processors::metrics`]: the processors record their batches,
//! decisions and lag there, the edge its requests. A request's `route` label is the
//! route's template (`/v1/campaigns/{campaign_id}/claims`), never the raw path, and
//! `unmatched` for paths no route serves; `method` is one of the standard methods or
//! `other`: every label's set of values stays bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use turnstile_processors::metrics;

use crate::Edge;

/// The `route` label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// `GET /metrics`: this process's metrics in the Prometheus text format 0.0.4. The
/// gauges of state kept elsewhere (stock, sink backlog) are read when scraped.
pub async fn serve(State(edge): State<Edge>) -> Response {
    let registry = metrics::global();
    for (campaign_id, remaining) in edge.feed.stock() {
        registry
            .inventory_remaining
            .set(&[&campaign_id], i64::from(remaining));
    }
    // The journal may be briefly unreachable; the page is still served without them.
    if let Ok(sinks) = edge.journal.sink_names().await {
        for sink in sinks {
            if let Ok(status) = edge.journal.sink_status(&sink).await {
                let backlog: u64 = status.iter().map(|p| p.backlog_outcomes).sum();
                registry
                    .sink_backlog
                    .set(&[&sink], i64::try_from(backlog).unwrap_or(i64::MAX));
            }
        }
    }
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        registry.render(),
    )
        .into_response()
}

/// Counts and times the request under its route template, method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE.to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let registry = metrics::global();
    registry
        .http_requests
        .inc(&[&route, method, response.status().as_str()]);
    registry
        .http_request_duration
        .observe(&[&route, method], started.elapsed().as_secs_f64());
    response
}

/// The method's name, or `other` for extension methods (their set is unbounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}
