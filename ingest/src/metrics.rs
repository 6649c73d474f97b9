//! `GET /metrics` and the middleware that counts and times every HTTP request.
//!
//! The registry is [`turnstile_processors::metrics`]: the processors record their batches,
//! decisions and lag there, the edge its requests. A request's `route` label is the
//! route's template (`/v1/campaigns/{campaign_id}/claims`), never the raw path, and
//! `unmatched` for paths no route serves; `method` is one of the standard methods or
//! `other`: every label's set of values stays bounded.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use turnstile_processors::metrics;

/// The `route` label of requests no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// `GET /metrics`: this process's metrics in the Prometheus text format 0.0.4.
pub async fn serve() -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::global().render(),
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
