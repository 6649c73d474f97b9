//! The racing client of `turnstile demo`: many simulated users claim coupons over real HTTP.
//!
//! # Closed loop, on purpose
//!
//! This is a *closed-loop* load generator: a fixed number of workers, each owning one
//! keep-alive HTTP/1.1 connection, sends one claim, waits for the whole answer, and only then
//! sends the next. The offered load therefore adapts to how fast the server answers, and the
//! race ends when every simulated user has had its answer. That is the question the demo asks:
//! "a fixed crowd of N users storms M coupons; how fast is the crowd served, how long does each
//! user wait, and does every coupon go to exactly one user?". An *open-loop* generator (requests
//! fired on a fixed schedule whether or not earlier ones were answered, which is what exposes
//! queueing collapse and coordinated omission under overload) answers a different question and is
//! a later feature.
//!
//! # Cheap per request
//!
//! The server under test shares the same machine (two cores), so every cycle spent here is taken
//! from it. The client therefore uses hyper's low-level connection API
//! ([`hyper::client::conn::http1::handshake`]) over a `TCP_NODELAY` [`TcpStream`]: no pool, no
//! per-request task, one connection per worker with requests sent strictly in sequence. The only
//! work per answer is reading the body and, for the few statuses that need it, picking one or two
//! fields out of the JSON. Each worker keeps its own counters and latency histogram; they are
//! merged once at the end, so workers share nothing but a few atomic counters.
//!
//! # Users, keys and replays
//!
//! User `i` (0-based) is `user-{i}` and claims with `Idempotency-Key: claim-{i}`. Workers pull the
//! next user index from a shared counter, so faster connections serve more users. When
//! [`ClaimRace::retry_every`] is `k > 0`, every k-th user (users `k-1`, `2k-1`, …) sends its
//! claim a second time with the same key after the first answer; the second answer must agree with
//! the first (same coupon, or the same refusal), otherwise it is counted in
//! [`RaceCounts::replay_mismatches`].
//!
//! # Failures are bounded
//!
//! A transport failure (connect, write, read or a request timeout) drops the connection and
//! retries the same request, with the same idempotency key — which is exactly what makes the
//! retry safe — on a fresh connection, at most [`MAX_TRANSPORT_RETRIES`] times; then the request
//! is counted as an error and the worker moves on. Error statuses are counted, never retried.
//! Every wait is bounded by a timeout ([`CONNECT_TIMEOUT`], [`REQUEST_TIMEOUT`]). Transport
//! failures do not abort the race, with one exception that keeps a dead or hung server from
//! stretching it out for hours: once as many requests in a row as there are connections have
//! been given up, with no answer of any kind in between, the race stops handing out users (and
//! retrying the requests in flight) and reports the users it never sent as
//! [`RaceReport::unsent`]. So [`ClaimRace::run`] always ends by itself: against a server that
//! accepts connections but never answers, after about 4 × [`REQUEST_TIMEOUT`] plus one more.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Number of connections `turnstile demo` races over unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 64;

/// How many times a request that failed on the transport is retried on a fresh connection
/// before it is counted as an error.
pub const MAX_TRANSPORT_RETRIES: u32 = 3;

/// Longest wait for a TCP connection and HTTP/1.1 handshake.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait for one request: connection ready, request written, whole answer read.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the progress bar is refreshed from the shared "requests done" counter.
const PROGRESS_REFRESH: Duration = Duration::from_millis(100);

/// Significant figures kept by the latency histograms (0.1% precision).
const HISTOGRAM_SIGFIGS: u8 = 3;

/// Largest latency the histograms tell apart (one hour, in microseconds); longer ones are
/// recorded as this. No request can take that long given the timeouts above.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// The `Idempotency-Key` request header.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Why a race could not be run. Failures *during* a race are counted in the [`RaceReport`]
/// instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The campaign id does not make a valid request path.
    #[error("campaign id {0:?} does not make a valid request path")]
    InvalidCampaignId(String),
    /// The target refused or did not accept a first TCP connection.
    #[error("cannot connect to {target}: {source}")]
    Unreachable {
        /// The address that was tried.
        target: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A single request ([`post_json`]) got no answer, or could not be made.
    #[error("POST {path} to {target} failed: {message}")]
    Request {
        /// The server.
        target: SocketAddr,
        /// The request path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A worker task panicked or was cancelled (a bug in this module).
    #[error("a load generator worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// A race of `users` simulated users over `connections` keep-alive connections.
///
/// Build one with a struct literal and call [`ClaimRace::run`].
#[derive(Debug, Clone)]
pub struct ClaimRace {
    /// The HTTP server to race against (loopback in the demo).
    pub target: SocketAddr,
    /// The campaign whose coupons are claimed: `POST /v1/campaigns/{campaign_id}/claims`.
    pub campaign_id: String,
    /// Number of simulated users. User `i` (0-based) is `user-{i}` and claims with
    /// `Idempotency-Key: claim-{i}`.
    pub users: u64,
    /// Concurrent workers, each with one keep-alive connection; 0 means
    /// [`DEFAULT_CONNECTIONS`]. Never more workers than users are started.
    pub connections: usize,
    /// Every k-th user (users `k-1`, `2k-1`, …; 0 = never) sends its claim a second time with
    /// the same key after the first answer, to exercise idempotent replay. (A user whose first
    /// claim got no answer at all, even after transport retries, does not replay.)
    pub retry_every: u64,
    /// Draw a progress bar (requests done / total, rate, ETA) on stderr. It stays hidden when
    /// this is false or when stderr is not a terminal.
    pub show_progress: bool,
}

impl ClaimRace {
    /// Number of requests the race sends when every one is answered: one per user plus one per
    /// replaying user. The progress bar counts up to this.
    pub fn total_requests(&self) -> u64 {
        self.users + replaying_users(self.users, self.retry_every)
    }

    /// Runs the race to the end and reports what the server answered.
    ///
    /// Fails only before the race starts (a campaign id that makes no request path, or a target
    /// that does not accept a TCP connection at all) or on a bug (a worker panicked). Once it
    /// runs, transport failures and error statuses are counted in the report.
    pub async fn run(self) -> Result<RaceReport, LoadgenError> {
        let uri = claims_uri(&self.campaign_id)
            .ok_or_else(|| LoadgenError::InvalidCampaignId(self.campaign_id.clone()))?;
        if self.users == 0 {
            return Ok(RaceReport::empty());
        }
        // One probe connection, so that a wrong address is a clear error instead of a race in
        // which every request fails.
        connect_tcp(self.target)
            .await
            .map_err(|source| LoadgenError::Unreachable {
                target: self.target,
                source,
            })?;

        let total = self.total_requests();
        let connections = if self.connections == 0 {
            DEFAULT_CONNECTIONS
        } else {
            self.connections
        };
        let workers =
            usize::try_from(self.users).map_or(connections, |users| users.min(connections));
        let shared = Arc::new(Shared {
            target: self.target,
            uri,
            host: HeaderValue::from_str(&self.target.to_string())
                .expect("a socket address is a valid Host header value"),
            users: self.users,
            retry_every: self.retry_every,
            next_user: AtomicU64::new(0),
            done: AtomicU64::new(0),
            abandoned_in_a_row: AtomicU64::new(0),
            give_up_after: workers as u64,
            gave_up: AtomicBool::new(false),
        });

        let progress = if self.show_progress {
            Some(Progress::start(total, Arc::clone(&shared)))
        } else {
            None
        };

        let started = Instant::now();
        let mut set = JoinSet::new();
        for _ in 0..workers {
            set.spawn(Worker::new(Arc::clone(&shared)).run());
        }
        let mut report = RaceReport::empty();
        while let Some(joined) = set.join_next().await {
            report.counts.absorb(joined?);
        }
        report.elapsed = started.elapsed();
        report.connections = workers;
        report.unsent = self
            .users
            .saturating_sub(shared.next_user.load(Ordering::Relaxed));

        if let Some(progress) = progress {
            progress.finish(shared.done.load(Ordering::Relaxed));
        }
        Ok(report)
    }
}

/// What the server answered during a race.
///
/// Counts are per HTTP answer: a replaying user contributes two answers. `requests` is the sum
/// of `granted`, `replayed`, `sold_out`, `other_rejections`, `accepted_pending` and `errors`.
#[derive(Debug, Clone)]
pub struct RaceReport {
    /// What the server answered, summed over the workers.
    pub counts: RaceCounts,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    /// Workers (and so concurrent keep-alive connections) that raced.
    pub connections: usize,
    /// Users never sent because the race gave up: as many requests in a row as there are
    /// connections failed on the transport, with no answer in between (the server is down or
    /// hung). 0 in a race that ran to the end.
    pub unsent: u64,
}

impl RaceReport {
    fn empty() -> Self {
        Self {
            counts: RaceCounts::new(),
            elapsed: Duration::ZERO,
            connections: 0,
            unsent: 0,
        }
    }

    /// Requests answered (or given up on) per second of wall time; 0 for an empty race.
    pub fn requests_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.counts.requests as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency in milliseconds at `quantile` (0.0..=1.0, clamped; 1.0 is the maximum);
    /// 0 when nothing was answered.
    pub fn latency_ms_at(&self, quantile: f64) -> f64 {
        if self.counts.latency_us.is_empty() {
            return 0.0;
        }
        let quantile = if quantile.is_nan() {
            0.0
        } else {
            quantile.clamp(0.0, 1.0)
        };
        self.counts.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// Multi-line human report section (requests, req/s, p50/p99/p99.9/max ms, answer counts).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail: the results of `writeln!` are ignored below.
        let _ = writeln!(
            out,
            "  requests      {} in {:.2} s over {} connections: {} req/s",
            thousands(self.counts.requests),
            self.elapsed.as_secs_f64(),
            self.connections,
            thousands(self.requests_per_sec().round() as u64),
        );
        let _ = writeln!(
            out,
            "  latency (ms)  p50 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}",
            self.latency_ms_at(0.5),
            self.latency_ms_at(0.99),
            self.latency_ms_at(0.999),
            self.counts.latency_us.max() as f64 / 1000.0,
        );
        let _ = writeln!(
            out,
            "  granted       {} (201)",
            thousands(self.counts.granted)
        );
        let _ = writeln!(
            out,
            "  refused       {} sold out, {} for other reasons (409)",
            thousands(self.counts.sold_out),
            thousands(self.counts.other_rejections),
        );
        let _ = write!(
            out,
            "  replayed      {} (200)",
            thousands(self.counts.replayed)
        );
        if self.counts.replays_checked > 0 || self.counts.replay_mismatches > 0 {
            let _ = write!(
                out,
                "; {} replays compared with the first answer, {} mismatches",
                thousands(self.counts.replays_checked),
                thousands(self.counts.replay_mismatches),
            );
        }
        out.push('\n');
        if self.counts.accepted_pending > 0 {
            let _ = writeln!(
                out,
                "  pending       {} (202: accepted, not decided in time)",
                thousands(self.counts.accepted_pending),
            );
        }
        if self.counts.errors == 0 {
            out.push_str("  errors        0\n");
        } else {
            let _ = writeln!(
                out,
                "  errors        {} ({} other statuses, {} without an answer)",
                thousands(self.counts.errors),
                thousands(self.counts.errors.saturating_sub(self.counts.abandoned)),
                thousands(self.counts.abandoned),
            );
        }
        if self.counts.connection_errors > 0 {
            let _ = writeln!(
                out,
                "  transport     {} failed tries, {} connections opened; last failure: {}",
                thousands(self.counts.connection_errors),
                thousands(self.counts.connections_opened),
                self.counts
                    .last_transport_error
                    .as_deref()
                    .unwrap_or("unknown"),
            );
        }
        if self.unsent > 0 {
            let _ = writeln!(
                out,
                "  gave up       the server stopped answering: {} users not sent",
                thousands(self.unsent),
            );
        }
        out
    }
}

/// Number of users `0..users` that replay their claim when every k-th does.
fn replaying_users(users: u64, retry_every: u64) -> u64 {
    users.checked_div(retry_every).unwrap_or(0)
}

/// Whether user `i` replays its claim.
fn replays(user: u64, retry_every: u64) -> bool {
    retry_every > 0 && user % retry_every == retry_every - 1
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIGS)
        .expect("constant histogram bounds are valid")
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let (head, tail) = digits.split_at(digits.len() % 3);
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    out.push_str(head);
    for group in tail.as_bytes().chunks(3) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(std::str::from_utf8(group).expect("decimal digits are ASCII"));
    }
    out
}

/// `/v1/campaigns/{campaign_id}/claims`, the campaign id percent-encoded as a path segment.
fn claims_uri(campaign_id: &str) -> Option<Uri> {
    let mut path = String::from("/v1/campaigns/");
    for byte in campaign_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(byte));
        } else {
            let _ = write!(path, "%{byte:02X}");
        }
    }
    path.push_str("/claims");
    Uri::try_from(path).ok()
}

/// State every worker reads; its atomics are the only shared writes.
#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    users: u64,
    retry_every: u64,
    /// The next user index to claim for.
    next_user: AtomicU64,
    /// Requests finished (answered or given up), for the progress bar.
    done: AtomicU64,
    /// Requests given up since the last answer of any kind, race-wide.
    abandoned_in_a_row: AtomicU64,
    /// When `abandoned_in_a_row` reaches this, the race gives up.
    give_up_after: u64,
    /// Set once the race has given up: workers take no more users.
    gave_up: AtomicBool,
}

impl Shared {
    /// Notes how a request ended, for the give-up rule.
    fn note(&self, answer: &Answer) {
        if matches!(answer, Answer::TransportError) {
            let in_a_row = self.abandoned_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
            if in_a_row >= self.give_up_after {
                self.gave_up.store(true, Ordering::Relaxed);
            }
        } else if self.abandoned_in_a_row.load(Ordering::Relaxed) != 0 {
            // Read first: the common case leaves the cache line shared.
            self.abandoned_in_a_row.store(0, Ordering::Relaxed);
        }
    }
}

/// One answer, reduced to what the report needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// 201.
    Granted { coupon_id: Option<String> },
    /// 200: a replay; `granted` when its `decision.status` is `coupon_granted`.
    Replayed {
        granted: bool,
        coupon_id: Option<String>,
    },
    /// 409.
    Rejected { sold_out: bool },
    /// 202.
    Pending,
    /// Any other status.
    HttpError,
    /// No answer even after the transport retries.
    TransportError,
}

/// What a decided answer says, for comparing a replay with the first answer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict<'a> {
    /// A coupon, with its id when the body carried one.
    Granted(Option<&'a str>),
    /// No coupon, for whatever reason.
    Refused,
}

impl Answer {
    /// The verdict of a decided answer; `None` when undecided or failed.
    fn verdict(&self) -> Option<Verdict<'_>> {
        match self {
            Answer::Granted { coupon_id }
            | Answer::Replayed {
                granted: true,
                coupon_id,
            } => Some(Verdict::Granted(coupon_id.as_deref())),
            Answer::Replayed { granted: false, .. } | Answer::Rejected { .. } => {
                Some(Verdict::Refused)
            }
            Answer::Pending | Answer::HttpError | Answer::TransportError => None,
        }
    }
}

/// The fields of an outcome body (201 and 200) the race looks at.
#[derive(Deserialize)]
struct OutcomeBody<'a> {
    #[serde(borrow)]
    decision: Option<DecisionBody<'a>>,
}

#[derive(Deserialize)]
struct DecisionBody<'a> {
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow)]
    coupon: Option<CouponBody<'a>>,
}

#[derive(Deserialize)]
struct CouponBody<'a> {
    #[serde(borrow)]
    coupon_id: Option<Cow<'a, str>>,
}

/// The fields of an error body (409) the race looks at.
#[derive(Deserialize)]
struct ErrorBody<'a> {
    #[serde(borrow)]
    error: Option<ErrorDetail<'a>>,
}

#[derive(Deserialize)]
struct ErrorDetail<'a> {
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// `(decision.status == "coupon_granted", decision.coupon.coupon_id)` of an outcome body;
/// `(false, None)` when the body is not such JSON.
fn parse_outcome(body: &[u8]) -> (bool, Option<String>) {
    match serde_json::from_slice::<OutcomeBody<'_>>(body) {
        Ok(OutcomeBody {
            decision: Some(decision),
        }) => (
            decision.status.as_deref() == Some("coupon_granted"),
            decision
                .coupon
                .and_then(|c| c.coupon_id)
                .map(Cow::into_owned),
        ),
        _ => (false, None),
    }
}

/// Whether a 409 body carries `error.code == "sold_out"`.
fn is_sold_out(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<ErrorBody<'_>>(body),
        Ok(ErrorBody { error: Some(ErrorDetail { code: Some(code) }) }) if code == "sold_out"
    )
}

/// Reduces an HTTP answer to what the report needs, parsing the body only where it matters.
fn classify(status: StatusCode, body: &[u8]) -> Answer {
    match status {
        StatusCode::CREATED => Answer::Granted {
            coupon_id: parse_outcome(body).1,
        },
        StatusCode::OK => {
            let (granted, coupon_id) = parse_outcome(body);
            Answer::Replayed { granted, coupon_id }
        }
        StatusCode::CONFLICT => Answer::Rejected {
            sold_out: is_sold_out(body),
        },
        StatusCode::ACCEPTED => Answer::Pending,
        _ => Answer::HttpError,
    }
}

/// Whether the answer to a replay contradicts the first answer for the same key. Only decided
/// answers can be compared: `None` when either side was pending or failed.
fn replay_contradicts(first: &Answer, replay: &Answer) -> Option<bool> {
    Some(first.verdict()? != replay.verdict()?)
}

/// Counts of what the server answered: one per worker while racing, summed into the
/// report at the end.
#[derive(Debug, Clone)]
pub struct RaceCounts {
    /// Requests sent (each counted once, however many transport retries it needed).
    pub requests: u64,
    /// `201 Created`: a coupon was granted.
    pub granted: u64,
    /// `200 OK`: a replay of the earlier outcome for the same key.
    pub replayed: u64,
    /// `409 Conflict` with code `sold_out`.
    pub sold_out: u64,
    /// Any other `409 Conflict` (`user_limit_reached`, `closed`, `not_open_yet`, …).
    pub other_rejections: u64,
    /// `202 Accepted`: taken but not decided within the server's wait budget.
    pub accepted_pending: u64,
    /// Every other status, plus requests that still failed on the transport after
    /// [`MAX_TRANSPORT_RETRIES`] retries (those are also counted in `abandoned`).
    pub errors: u64,
    /// Latency of every answered request in microseconds: from just before the request was
    /// first written to the whole answer body read (transport retries included; the worker's
    /// first connection set-up and requests that never got an answer are not).
    pub latency_us: Histogram<u64>,
    /// `(idempotency key, coupon_id)` of every `201`, for the caller's cross-check. The coupon id
    /// is empty if the body did not carry `decision.coupon.coupon_id`.
    pub granted_keys: Vec<(String, String)>,
    /// Replays whose answer contradicts the first answer for the same key: a different coupon,
    /// or a grant on one side and a refusal on the other. Must be 0.
    pub replay_mismatches: u64,
    /// Replays whose answers could be compared (both answers decided: 200, 201 or 409).
    pub replays_checked: u64,
    /// Requests given up after failing on the transport [`MAX_TRANSPORT_RETRIES`] + 1 times
    /// (included in `errors`).
    pub abandoned: u64,
    /// Failed tries: connect, write, read or [`REQUEST_TIMEOUT`]. Each one dropped its
    /// connection; the next try opened a fresh one.
    pub connection_errors: u64,
    /// Connections opened: one per worker, plus one after each failure or each keep-alive
    /// connection the server closed.
    pub connections_opened: u64,
    /// The last transport failure seen, if any, for the human report.
    pub last_transport_error: Option<String>,
}

impl RaceCounts {
    fn new() -> Self {
        Self {
            requests: 0,
            granted: 0,
            replayed: 0,
            sold_out: 0,
            other_rejections: 0,
            accepted_pending: 0,
            errors: 0,
            latency_us: new_histogram(),
            granted_keys: Vec::new(),
            replay_mismatches: 0,
            replays_checked: 0,
            abandoned: 0,
            connection_errors: 0,
            connections_opened: 0,
            last_transport_error: None,
        }
    }

    /// Adds another worker's counts.
    fn absorb(&mut self, other: RaceCounts) {
        self.requests += other.requests;
        self.granted += other.granted;
        self.replayed += other.replayed;
        self.sold_out += other.sold_out;
        self.other_rejections += other.other_rejections;
        self.accepted_pending += other.accepted_pending;
        self.errors += other.errors;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds can absorb each other");
        self.granted_keys.extend(other.granted_keys);
        self.replay_mismatches += other.replay_mismatches;
        self.replays_checked += other.replays_checked;
        self.abandoned += other.abandoned;
        self.connection_errors += other.connection_errors;
        self.connections_opened += other.connections_opened;
        if other.last_transport_error.is_some() {
            self.last_transport_error = other.last_transport_error;
        }
    }

    fn count(&mut self, key: &str, answer: &Answer) {
        self.requests += 1;
        match answer {
            Answer::Granted { coupon_id } => {
                self.granted += 1;
                self.granted_keys
                    .push((key.to_owned(), coupon_id.clone().unwrap_or_default()));
            }
            Answer::Replayed { .. } => self.replayed += 1,
            Answer::Rejected { sold_out: true } => self.sold_out += 1,
            Answer::Rejected { sold_out: false } => self.other_rejections += 1,
            Answer::Pending => self.accepted_pending += 1,
            Answer::HttpError => self.errors += 1,
            Answer::TransportError => {
                self.errors += 1;
                self.abandoned += 1;
            }
        }
    }
}

/// Why one attempt got no answer; the connection it was made on is dropped either way.
#[derive(Debug)]
struct AttemptError {
    /// What went wrong, for the report.
    message: String,
    /// The server had closed an idle keep-alive connection before this request was sent: not
    /// a failure, the request just goes out again on a fresh connection.
    stale: bool,
}

impl AttemptError {
    fn failed(message: String) -> Self {
        Self {
            message,
            stale: false,
        }
    }
}

/// A keep-alive HTTP/1.1 connection; its I/O runs in a task of its own that ends when the
/// sender is dropped or the connection fails.
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Requests answered on this connection.
    answered: u64,
}

/// One worker: one connection at a time, one request at a time.
struct Worker {
    shared: Arc<Shared>,
    conn: Option<Conn>,
    tally: RaceCounts,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            conn: None,
            tally: RaceCounts::new(),
        }
    }

    /// Claims for users until none is left, then hands back the tally.
    async fn run(mut self) -> RaceCounts {
        let users = self.shared.users;
        let retry_every = self.shared.retry_every;
        loop {
            if self.shared.gave_up.load(Ordering::Relaxed) {
                break;
            }
            let user = self.shared.next_user.fetch_add(1, Ordering::Relaxed);
            if user >= users {
                break;
            }
            let key = format!("claim-{user}");
            let key_header =
                HeaderValue::from_str(&key).expect("claim-<digits> is a valid header value");
            let body = Bytes::from(format!("{{\"user_id\":\"user-{user}\"}}"));

            let first = self.claim(&key_header, &body).await;
            self.tally.count(&key, &first);
            // A replay needs a first answer to compare with.
            if replays(user, retry_every) && first != Answer::TransportError {
                let replay = self.claim(&key_header, &body).await;
                self.tally.count(&key, &replay);
                if let Some(contradicts) = replay_contradicts(&first, &replay) {
                    self.tally.replays_checked += 1;
                    self.tally.replay_mismatches += u64::from(contradicts);
                }
            }
        }
        self.tally
    }

    /// Sends one claim, retrying on fresh connections after transport failures.
    async fn claim(&mut self, key: &HeaderValue, body: &Bytes) -> Answer {
        let mut first_sent: Option<Instant> = None;
        let mut failures = 0;
        let answer = loop {
            let attempt = self.attempt(key, body, &mut first_sent);
            let outcome = tokio::time::timeout(REQUEST_TIMEOUT, attempt)
                .await
                .unwrap_or_else(|_| {
                    Err(AttemptError::failed(format!(
                        "no answer within {REQUEST_TIMEOUT:?}"
                    )))
                });
            match outcome {
                Ok((status, bytes)) => {
                    if let Some(sent) = first_sent {
                        let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                        self.tally.latency_us.saturating_record(micros.max(1));
                    }
                    break classify(status, &bytes);
                }
                Err(error) => {
                    self.conn = None;
                    if error.stale {
                        // Only a reused connection can be stale and the next one is fresh, so
                        // this cannot repeat without a real failure in between.
                        continue;
                    }
                    self.tally.connection_errors += 1;
                    self.tally.last_transport_error = Some(error.message);
                    failures += 1;
                    if failures > MAX_TRANSPORT_RETRIES
                        || self.shared.gave_up.load(Ordering::Relaxed)
                    {
                        break Answer::TransportError;
                    }
                }
            }
        };
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        self.shared.note(&answer);
        answer
    }

    /// One try of one request on the current connection, opening one if needed.
    async fn attempt(
        &mut self,
        key: &HeaderValue,
        body: &Bytes,
        first_sent: &mut Option<Instant>,
    ) -> Result<(StatusCode, Bytes), AttemptError> {
        let conn = match &mut self.conn {
            Some(conn) if !conn.sender.is_closed() => conn,
            slot => {
                let fresh = connect(self.shared.target).await?;
                self.tally.connections_opened += 1;
                slot.insert(fresh)
            }
        };
        let reused = conn.answered > 0;

        let request = json_post(
            self.shared.uri.clone(),
            self.shared.host.clone(),
            key.clone(),
            body.clone(),
        );

        let sender = &mut conn.sender;
        sender.ready().await.map_err(|e| AttemptError {
            message: format!("connection closed: {e}"),
            stale: reused,
        })?;
        first_sent.get_or_insert_with(Instant::now);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| AttemptError::failed(format!("request failed: {e}")))?;
        let status = response.status();
        // Always read the whole body: the next request on this connection needs it.
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| AttemptError::failed(format!("reading the answer failed: {e}")))?
            .to_bytes();
        conn.answered += 1;
        Ok((status, body))
    }
}

/// `POST {uri}` with a JSON body and an idempotency key. Everything it takes is already
/// validated or shared, so building it cannot fail and copies nothing large.
fn json_post(uri: Uri, host: HeaderValue, key: HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    headers.insert(HOST, host);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(IDEMPOTENCY_KEY, key);
    request
}

/// Sends one `POST {path}` with a JSON `body` and `Idempotency-Key: {idempotency_key}` and
/// returns the status code and the body as text, whatever the status. For the calls around a
/// race, such as creating the campaign; it opens a connection of its own.
///
/// Transport failures are retried on a fresh connection (the idempotency key makes that safe)
/// up to [`MAX_TRANSPORT_RETRIES`] times, each try bounded by [`REQUEST_TIMEOUT`].
pub async fn post_json(
    target: SocketAddr,
    path: &str,
    idempotency_key: &str,
    body: &str,
) -> Result<(u16, String), LoadgenError> {
    let error = |message: String| LoadgenError::Request {
        target,
        path: path.to_owned(),
        message,
    };
    let uri = Uri::try_from(path).map_err(|e| error(format!("invalid path: {e}")))?;
    let key = HeaderValue::from_str(idempotency_key)
        .map_err(|e| error(format!("invalid idempotency key: {e}")))?;
    let host = HeaderValue::from_str(&target.to_string())
        .expect("a socket address is a valid Host header value");
    let body = Bytes::copy_from_slice(body.as_bytes());

    let mut last_failure = String::new();
    for _ in 0..=MAX_TRANSPORT_RETRIES {
        let request = json_post(uri.clone(), host.clone(), key.clone(), body.clone());
        let exchange = async {
            let mut conn = connect(target).await.map_err(|e| e.message)?;
            let response = conn
                .sender
                .send_request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(failure)) => last_failure = failure,
            Err(_) => last_failure = format!("no answer within {REQUEST_TIMEOUT:?}"),
        }
    }
    Err(error(last_failure))
}

/// A TCP connection with Nagle off, or why not, within [`CONNECT_TIMEOUT`].
async fn connect_tcp(target: SocketAddr) -> std::io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no connection within {CONNECT_TIMEOUT:?}"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A fresh HTTP/1.1 connection, its I/O driven by a task of its own. (The HTTP/1.1 handshake
/// sends nothing, so it cannot hang.)
async fn connect(target: SocketAddr) -> Result<Conn, AttemptError> {
    let stream = connect_tcp(target)
        .await
        .map_err(|e| AttemptError::failed(format!("connect to {target} failed: {e}")))?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| AttemptError::failed(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        // A connection error reaches the worker through its next request; nothing to do here.
        let _ = driver.await;
    });
    Ok(Conn {
        sender,
        answered: 0,
    })
}

/// The progress bar and the task that refreshes it from the shared counter.
struct Progress {
    bar: ProgressBar,
    refresher: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn start(total: u64, shared: Arc<Shared>) -> Self {
        let style = ProgressStyle::with_template(
            "{spinner} claims {wide_bar} {pos}/{len}  {rate}  ETA {eta}  [{elapsed}]",
        )
        .expect("the progress template is valid")
        .with_key(
            "rate",
            |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{} req/s", thousands(state.per_sec().round() as u64));
            },
        );
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style);
        let refresher = {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROGRESS_REFRESH);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    bar.set_position(shared.done.load(Ordering::Relaxed));
                }
            })
        };
        Self { bar, refresher }
    }

    fn finish(self, done: u64) {
        self.bar.set_position(done);
        self.bar.finish_and_clear();
        // Drop stops the refresher.
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_yields_the_coupon_id() {
        let body = br#"{"request_id":"claim-7","resource_id":"spring","user_id":"user-7",
            "position":{"partition":0,"offset":9},"decided_at":"2025-01-01T00:00:00Z",
            "decision":{"status":"coupon_granted","coupon":{"coupon_id":"spring-3",
            "campaign_id":"spring","user_id":"user-7","issued_at":"2025-01-01T00:00:00Z",
            "expires_at":"2025-01-02T00:00:00Z"}}}"#;
        assert_eq!(
            classify(StatusCode::CREATED, body),
            Answer::Granted {
                coupon_id: Some("spring-3".into())
            }
        );
    }

    #[test]
    fn escaped_coupon_ids_are_unescaped() {
        let body = br#"{"decision":{"status":"coupon_granted","coupon":{"coupon_id":"a\"b"}}}"#;
        assert_eq!(
            classify(StatusCode::CREATED, body),
            Answer::Granted {
                coupon_id: Some("a\"b".into())
            }
        );
    }

    #[test]
    fn replays_of_grants_and_refusals() {
        let grant = br#"{"decision":{"status":"coupon_granted","coupon":{"coupon_id":"c-1"}}}"#;
        assert_eq!(
            classify(StatusCode::OK, grant),
            Answer::Replayed {
                granted: true,
                coupon_id: Some("c-1".into())
            }
        );
        let refusal = br#"{"decision":{"status":"rejected","reason":"sold_out"}}"#;
        assert_eq!(
            classify(StatusCode::OK, refusal),
            Answer::Replayed {
                granted: false,
                coupon_id: None
            }
        );
    }

    #[test]
    fn conflicts_are_split_by_code() {
        let sold_out = br#"{"error":{"code":"sold_out","message":"no coupons left"}}"#;
        let limit = br#"{"error":{"code":"user_limit_reached","message":"one per user"}}"#;
        assert_eq!(
            classify(StatusCode::CONFLICT, sold_out),
            Answer::Rejected { sold_out: true }
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, limit),
            Answer::Rejected { sold_out: false }
        );
        assert_eq!(
            classify(StatusCode::CONFLICT, b"not json"),
            Answer::Rejected { sold_out: false }
        );
    }

    #[test]
    fn other_statuses() {
        let pending = br#"{"status_url":"/v1/claims/claim-1"}"#;
        assert_eq!(classify(StatusCode::ACCEPTED, pending), Answer::Pending);
        assert_eq!(
            classify(StatusCode::SERVICE_UNAVAILABLE, b""),
            Answer::HttpError
        );
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"{}"), Answer::HttpError);
        assert_eq!(
            classify(StatusCode::CREATED, b"garbage"),
            Answer::Granted { coupon_id: None }
        );
    }

    #[test]
    fn replay_comparison() {
        let granted = |id: &str| Answer::Granted {
            coupon_id: Some(id.into()),
        };
        let replayed = |id: &str| Answer::Replayed {
            granted: true,
            coupon_id: Some(id.into()),
        };
        let refused_replay = Answer::Replayed {
            granted: false,
            coupon_id: None,
        };
        let sold_out = Answer::Rejected { sold_out: true };

        assert_eq!(
            replay_contradicts(&granted("a"), &replayed("a")),
            Some(false)
        );
        assert_eq!(
            replay_contradicts(&granted("a"), &replayed("b")),
            Some(true)
        );
        assert_eq!(replay_contradicts(&granted("a"), &granted("b")), Some(true));
        assert_eq!(
            replay_contradicts(&granted("a"), &refused_replay),
            Some(true)
        );
        assert_eq!(replay_contradicts(&granted("a"), &sold_out), Some(true));
        assert_eq!(replay_contradicts(&sold_out, &refused_replay), Some(false));
        assert_eq!(replay_contradicts(&sold_out, &replayed("a")), Some(true));
        assert_eq!(replay_contradicts(&Answer::Pending, &replayed("a")), None);
        assert_eq!(
            replay_contradicts(&granted("a"), &Answer::TransportError),
            None
        );
    }

    #[test]
    fn replaying_users_are_every_kth() {
        assert_eq!(replaying_users(10, 0), 0);
        assert_eq!(replaying_users(10, 3), 3);
        let picked: Vec<u64> = (0..10).filter(|&u| replays(u, 3)).collect();
        assert_eq!(picked, vec![2, 5, 8]);
        assert!((0..10).all(|u| replays(u, 1)));
        assert!(!(0..10).any(|u| replays(u, 0)));
    }

    #[test]
    fn claims_path_encodes_the_campaign() {
        let uri = claims_uri("spring-sale_2025").expect("plain ids are valid");
        assert_eq!(uri.path(), "/v1/campaigns/spring-sale_2025/claims");
        let uri = claims_uri("a b/c").expect("encoded ids are valid");
        assert_eq!(uri.path(), "/v1/campaigns/a%20b%2Fc/claims");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn empty_report_renders() {
        let report = RaceReport::empty();
        assert_eq!(report.requests_per_sec(), 0.0);
        assert_eq!(report.latency_ms_at(0.99), 0.0);
        assert!(report.render().contains("granted       0 (201)"));
    }
}
