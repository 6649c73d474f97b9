//! What the scenarios share: a pool of keep-alive connections that simulated people borrow
//! for one request at a time (and give back while they think), answers reduced to the
//! decision or the rejection, replays of every k-th write, and the request counters and
//! latency histogram the reports print.
//!
//! Each person is a task of its own on the crowd's runtime, so that a fan pondering a
//! checkout or a sniper waiting for the last seconds holds no connection: only
//! [`Crowd::connections`] requests are ever in flight at once, as in the coupon race.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::{StatusCode, Uri};
use indicatif::ProgressStyle;
use serde::Deserialize;
use tokio::sync::Semaphore;
use turnstile_schemas::Decision;

use crate::loadgen::client::{Client, Post, Target, TransportStats};
use crate::loadgen::progress::Progress;
use crate::loadgen::{micros_at_least_one, new_histogram, quantile_ms, thousands};

/// Longest a demo follows a 202's status URL before counting the request as failed.
const PENDING_FOLLOW_MAX: Duration = Duration::from_secs(30);
/// Pause between looks at a 202's status URL.
const PENDING_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What the edge answered to one write, reduced to what the scenarios act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A decision (201 or 200, or a 202 followed to its decision).
    Decided {
        /// The decision.
        decision: Decision,
        /// The record's offset on its partition: the order the resource saw requests in.
        offset: u64,
    },
    /// The request was refused with this code (`sold_out`, `slot_full`, ...).
    Rejected {
        /// The HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
    },
    /// No usable answer: a transport failure, a 5xx, or a body that is not what the API
    /// documents. Counted as an error.
    Failed(String),
}

impl Reply {
    /// The rejection code, if refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            Reply::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The fields of an outcome body the scenarios read.
#[derive(Deserialize)]
struct OutcomeBody {
    decision: Decision,
    #[serde(default)]
    position: Option<PositionBody>,
}

#[derive(Deserialize)]
struct PositionBody {
    offset: u64,
}

/// An error body.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
}

/// A 202 body.
#[derive(Deserialize)]
struct PendingBody {
    status_url: String,
}

/// A status URL's body: `{"status":"decided","outcome":{...}}` or `{"status":"pending"}`.
#[derive(Deserialize)]
struct StatusBody {
    status: String,
    #[serde(default)]
    outcome: Option<OutcomeBody>,
}

fn decided(body: OutcomeBody) -> Reply {
    let offset = body.position.map_or(0, |p| p.offset);
    match body.decision {
        Decision::Rejected { reason } => Reply::Rejected {
            status: 0,
            code: reason.code().to_string(),
        },
        decision => Reply::Decided { decision, offset },
    }
}

/// Reduces an answer to a write. `Err(status_url)` for a 202.
fn classify(status: StatusCode, body: &[u8]) -> Result<Reply, String> {
    let text = || {
        String::from_utf8_lossy(body)
            .chars()
            .take(300)
            .collect::<String>()
    };
    match status.as_u16() {
        200 | 201 => Ok(match serde_json::from_slice::<OutcomeBody>(body) {
            Ok(outcome) => decided(outcome),
            Err(e) => Reply::Failed(format!("{status}: unexpected body ({e}): {}", text())),
        }),
        202 => match serde_json::from_slice::<PendingBody>(body) {
            Ok(pending) => Err(pending.status_url),
            Err(e) => Ok(Reply::Failed(format!("202 without a status_url ({e})"))),
        },
        400..=499 => Ok(match serde_json::from_slice::<ErrorBody>(body) {
            Ok(error) => Reply::Rejected {
                status: status.as_u16(),
                code: error.error.code,
            },
            Err(_) => Reply::Failed(format!("{status}: {}", text())),
        }),
        _ => Ok(Reply::Failed(format!("{status}: {}", text()))),
    }
}

/// Whether a replay's answer tells the same story as the first answer.
fn same_answer(first: &Reply, replay: &Reply) -> Option<bool> {
    match (first, replay) {
        (Reply::Failed(_), _) | (_, Reply::Failed(_)) => None,
        (Reply::Decided { decision: a, .. }, Reply::Decided { decision: b, .. }) => Some(a == b),
        (Reply::Rejected { code: a, .. }, Reply::Rejected { code: b, .. }) => Some(a == b),
        _ => Some(false),
    }
}

/// What the crowd's requests came to, for the report.
#[derive(Debug)]
pub struct Counters {
    /// Writes sent (replays included).
    pub writes: AtomicU64,
    /// Reads (views, status URLs).
    pub reads: AtomicU64,
    /// Writes answered 202 and followed to their decision.
    pub pending: AtomicU64,
    /// Replays compared with the first answer.
    pub replays: AtomicU64,
    /// Replays whose answer differed. Must be 0.
    pub replay_mismatches: AtomicU64,
    /// Failed requests. Must be 0.
    pub errors: AtomicU64,
    /// People done, for the progress bar.
    pub done: AtomicU64,
    /// The last failure, for the report.
    last_error: Mutex<Option<String>>,
    latency_us: Mutex<Histogram<u64>>,
    transport: Mutex<TransportStats>,
}

/// A pool of keep-alive connections to the edge, shared by every simulated person.
#[derive(Debug)]
pub struct Crowd {
    clients: Mutex<Vec<Client>>,
    permits: Semaphore,
    connections: usize,
    retry_every: u64,
    writes_seen: AtomicU64,
    /// The counters the report prints.
    pub counters: Counters,
    started: Instant,
}

impl Crowd {
    /// A crowd sharing `connections` keep-alive connections; every `retry_every`-th write
    /// (0: none) is sent a second time with the same Idempotency-Key.
    pub fn new(target: Target, connections: usize, retry_every: u64) -> Arc<Self> {
        let connections = connections.max(1);
        Arc::new(Crowd {
            clients: Mutex::new(
                (0..connections)
                    .map(|_| Client::new(target.clone()))
                    .collect(),
            ),
            permits: Semaphore::new(connections),
            connections,
            retry_every,
            writes_seen: AtomicU64::new(0),
            counters: Counters {
                writes: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                pending: AtomicU64::new(0),
                replays: AtomicU64::new(0),
                replay_mismatches: AtomicU64::new(0),
                errors: AtomicU64::new(0),
                done: AtomicU64::new(0),
                last_error: Mutex::new(None),
                latency_us: Mutex::new(new_histogram()),
                transport: Mutex::new(TransportStats::default()),
            },
            started: Instant::now(),
        })
    }

    /// Sends one write with `Idempotency-Key: key` and reduces its answer; a 202 is
    /// followed to its decision. Every k-th write is sent again with the same key and the
    /// answers compared.
    pub async fn post(&self, path: &str, key: &str, body: serde_json::Value) -> Reply {
        let (Ok(uri), Ok(key_header)) = (Uri::try_from(path), HeaderValue::from_str(key)) else {
            return self.failed(format!(
                "cannot make a request of {path:?} with key {key:?}"
            ));
        };
        let body = Bytes::from(body.to_string());
        let first = self.post_once(&uri, &key_header, &body).await;
        let n = self.writes_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.retry_every > 0 && n.is_multiple_of(self.retry_every) {
            let replay = self.post_once(&uri, &key_header, &body).await;
            if let Some(same) = same_answer(&first, &replay) {
                self.counters.replays.fetch_add(1, Ordering::Relaxed);
                if !same {
                    self.counters
                        .replay_mismatches
                        .fetch_add(1, Ordering::Relaxed);
                    self.note_error(format!(
                        "replay of {key} at {path} answered {replay:?}, first {first:?}"
                    ));
                }
            }
        }
        first
    }

    async fn post_once(&self, uri: &Uri, key: &HeaderValue, body: &Bytes) -> Reply {
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        let post = Post {
            uri,
            key,
            body,
            prefer: None,
        };
        let exchange = {
            let mut lease = self.lease().await;
            lease.client().post(post, || true).await
        };
        let reply = match exchange.answer {
            Some((status, bytes)) => {
                if let Some(sent) = exchange.first_sent {
                    self.record_latency(sent);
                }
                classify(status, &bytes)
            }
            None => Ok(Reply::Failed(format!("no answer to POST {uri}"))),
        };
        match reply {
            Ok(Reply::Failed(why)) => self.failed(why),
            Ok(reply) => reply,
            Err(status_url) => {
                self.counters.pending.fetch_add(1, Ordering::Relaxed);
                self.follow(&status_url).await
            }
        }
    }

    /// Polls a 202's status URL until the request is decided.
    async fn follow(&self, status_url: &str) -> Reply {
        let deadline = Instant::now() + PENDING_FOLLOW_MAX;
        while Instant::now() < deadline {
            tokio::time::sleep(PENDING_POLL_INTERVAL).await;
            match self.get(status_url).await {
                Ok((200, body)) => match serde_json::from_slice::<StatusBody>(&body) {
                    Ok(StatusBody {
                        outcome: Some(outcome),
                        ..
                    }) => return decided(outcome),
                    Ok(StatusBody { status, .. }) if status == "pending" => continue,
                    _ => {
                        return self.failed(format!(
                            "{status_url}: unexpected body {}",
                            String::from_utf8_lossy(&body)
                        ))
                    }
                },
                Ok((status, body)) => {
                    return self.failed(format!(
                        "{status_url} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ))
                }
                Err(why) => return self.failed(why),
            }
        }
        self.failed(format!(
            "{status_url} still pending after {PENDING_FOLLOW_MAX:?}"
        ))
    }

    /// One GET on a pooled connection: the status and the body, or why there is none.
    pub async fn get(&self, path: &str) -> Result<(u16, Bytes), String> {
        let uri = Uri::try_from(path).map_err(|e| format!("invalid path {path:?}: {e}"))?;
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let exchange = {
            let mut lease = self.lease().await;
            lease.client().get(&uri, || true).await
        };
        exchange
            .answer
            .map(|(status, body)| (status.as_u16(), body))
            .ok_or_else(|| format!("no answer to GET {path}"))
    }

    /// A GET whose 200 body is parsed as `T`; anything else is an error.
    pub async fn get_view<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, String> {
        match self.get(path).await? {
            (200, body) => serde_json::from_slice(&body).map_err(|e| {
                format!(
                    "GET {path}: unexpected body ({e}): {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                )
            }),
            (status, body) => Err(format!(
                "GET {path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )),
        }
    }

    /// Counts a failure and returns it as a reply.
    pub fn failed(&self, why: String) -> Reply {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.note_error(why.clone());
        Reply::Failed(why)
    }

    /// Counts a failure that is not a reply (a view that did not load).
    pub fn count_error(&self, why: String) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.note_error(why);
    }

    fn note_error(&self, why: String) {
        if let Ok(mut last) = self.counters.last_error.lock() {
            *last = Some(why);
        }
    }

    fn record_latency(&self, sent: Instant) {
        if let Ok(mut histogram) = self.counters.latency_us.lock() {
            histogram.saturating_record(micros_at_least_one(sent.elapsed()));
        }
    }

    async fn lease(&self) -> Lease<'_> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the crowd's semaphore is never closed");
        let client = self
            .clients
            .lock()
            .expect("a client pool lock is never poisoned")
            .pop()
            .expect("a permit guarantees a free client");
        Lease {
            crowd: self,
            client: Some(client),
            _permit: permit,
        }
    }

    /// Marks a person done, for the progress bar.
    pub fn person_done(&self) {
        self.counters.done.fetch_add(1, Ordering::Relaxed);
    }

    /// The request section of a report: counts, rate, latency, replays, errors.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let writes = c.writes.load(Ordering::Relaxed);
        let reads = c.reads.load(Ordering::Relaxed);
        let elapsed = self.started.elapsed().as_secs_f64();
        let latency = c
            .latency_us
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| new_histogram());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "  requests      {} writes and {} reads in {:.2} s over {} connections: {} req/s",
            thousands(writes),
            thousands(reads),
            elapsed,
            self.connections,
            thousands(((writes + reads) as f64 / elapsed.max(1e-9)).round() as u64),
        );
        let _ = writeln!(
            out,
            "  latency (ms)  p50 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}   (writes)",
            quantile_ms(&latency, 0.5),
            quantile_ms(&latency, 0.99),
            quantile_ms(&latency, 0.999),
            latency.max() as f64 / 1000.0,
        );
        let _ = writeln!(
            out,
            "  replayed      {} writes sent again with the same Idempotency-Key, {} mismatches",
            thousands(c.replays.load(Ordering::Relaxed)),
            thousands(c.replay_mismatches.load(Ordering::Relaxed)),
        );
        let pending = c.pending.load(Ordering::Relaxed);
        if pending > 0 {
            let _ = writeln!(
                out,
                "  pending       {} (202, followed to their decision)",
                thousands(pending)
            );
        }
        let errors = c.errors.load(Ordering::Relaxed);
        let _ = write!(out, "  errors        {}", thousands(errors));
        if errors > 0 {
            if let Ok(last) = c.last_error.lock() {
                let _ = write!(out, " (last: {})", last.as_deref().unwrap_or("unknown"));
            }
        }
        out.push('\n');
        if let Ok(transport) = c.transport.lock() {
            if transport.failed_tries > 0 {
                let _ = writeln!(
                    out,
                    "  transport     {} failed tries; last failure: {}",
                    thousands(transport.failed_tries),
                    transport.last_failure.as_deref().unwrap_or("unknown"),
                );
            }
        }
        out
    }

    /// Problems the requests themselves show: failures and replay mismatches.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        let errors = self.counters.errors.load(Ordering::Relaxed);
        if errors > 0 {
            failures.push(format!("{errors} requests failed"));
        }
        let mismatches = self.counters.replay_mismatches.load(Ordering::Relaxed);
        if mismatches > 0 {
            failures.push(format!("{mismatches} replays got a different answer"));
        }
        failures
    }
}

/// A connection borrowed from the pool for one request.
struct Lease<'a> {
    crowd: &'a Crowd,
    client: Option<Client>,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn client(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a lease holds its client until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.take() {
            if let Ok(mut transport) = self.crowd.counters.transport.lock() {
                transport.absorb(std::mem::take(&mut client.stats));
            }
            if let Ok(mut clients) = self.crowd.clients.lock() {
                clients.push(client);
            }
        }
    }
}

/// A progress bar over `people`, its message refreshed from `message` (the scenario's
/// running tally).
pub fn progress(
    crowd: &Arc<Crowd>,
    what: &str,
    people: u64,
    show: bool,
    message: impl Fn() -> String + Send + 'static,
) -> Option<Progress> {
    if !show {
        return None;
    }
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {what} {{bar:30}} {{pos}}/{{len}}  {{msg}}  [{{elapsed}}]"
    ))
    .expect("the progress template is valid");
    let crowd = Arc::clone(crowd);
    Some(Progress::start(people, style, move |bar| {
        bar.set_position(crowd.counters.done.load(Ordering::Relaxed));
        bar.set_message(message());
    }))
}

/// Runs `scenario` on a runtime of its own, as a separate client would: sharing the edge's
/// runtime would let the crowd's tasks queue in front of the server's and blur the figures.
pub async fn on_crowd_runtime<T, F, Fut>(scenario: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let (report_tx, report_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("turnstile-demo-crowd".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build();
            let report = match runtime {
                Ok(runtime) => runtime.block_on(scenario()),
                Err(e) => Err(anyhow::Error::from(e).context("cannot start the crowd's runtime")),
            };
            // The receiver only goes away if the demo itself is gone.
            let _ = report_tx.send(report);
        })?;
    report_rx
        .await
        .map_err(|_| anyhow::anyhow!("the crowd's thread died"))?
}

/// Runs `journey` for every person, at most `active_max` at once (so that a person who
/// has started is not queued behind the whole crowd for their next request).
pub async fn each_person<F, Fut>(
    people: Vec<u64>,
    active_max: usize,
    journey: F,
) -> anyhow::Result<()>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for person in people {
        while set.len() >= active_max.max(1) {
            if let Some(joined) = set.join_next().await {
                joined?;
            }
        }
        set.spawn(journey(person));
    }
    while let Some(joined) = set.join_next().await {
        joined?;
    }
    Ok(())
}

/// Picks an index by weight with `roll` in `0..sum(weights)`.
pub fn pick(weights: &[u32], mut roll: u32) -> usize {
    for (i, &w) in weights.iter().enumerate() {
        if roll < w {
            return i;
        }
        roll -= w;
    }
    weights.len() - 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn answers_reduce_to_decisions_and_codes() {
        let held = br#"{"request_id":"k","resource_id":"e","user_id":"u","command":"hold_best",
            "position":{"partition":1,"offset":7},"decided_at":"2026-01-01T00:00:00Z",
            "decision":{"status":"hold_released","hold_id":"e-h1","seat_ids":["A-1-1"]}}"#;
        let reply = classify(StatusCode::OK, held).unwrap();
        assert!(matches!(
            reply,
            Reply::Decided {
                decision: Decision::HoldReleased { .. },
                offset: 7
            }
        ));
        let refused = br#"{"error":{"status":409,"code":"slot_full","message":"m"}}"#;
        assert_eq!(
            classify(StatusCode::CONFLICT, refused).unwrap().code(),
            Some("slot_full")
        );
        let pending = br#"{"status":"pending","status_url":"/v1/lots/x/requests/k"}"#;
        assert_eq!(
            classify(StatusCode::ACCEPTED, pending).unwrap_err(),
            "/v1/lots/x/requests/k"
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b"busy").unwrap(),
            Reply::Failed(_)
        ));
        assert!(matches!(
            classify(StatusCode::CREATED, b"{}").unwrap(),
            Reply::Failed(_)
        ));
    }

    #[test]
    fn replays_compare_decisions_and_codes() {
        let rejected = |code: &str| Reply::Rejected {
            status: 409,
            code: code.into(),
        };
        assert_eq!(
            same_answer(&rejected("slot_full"), &rejected("slot_full")),
            Some(true)
        );
        assert_eq!(
            same_answer(&rejected("slot_full"), &rejected("closed")),
            Some(false)
        );
        assert_eq!(
            same_answer(&rejected("slot_full"), &Reply::Failed("x".into())),
            None
        );
    }

    #[test]
    fn weighted_picks() {
        assert_eq!(pick(&[1, 2, 3], 0), 0);
        assert_eq!(pick(&[1, 2, 3], 1), 1);
        assert_eq!(pick(&[1, 2, 3], 2), 1);
        assert_eq!(pick(&[1, 2, 3], 5), 2);
        assert_eq!(pick(&[1, 2, 3], 99), 2);
    }
}
