//! The open-loop load of `turnstile load`: claims offered at a fixed average rate, whether or
//! not earlier ones were answered.
//!
//! # Why open loop, and what is measured
//!
//! A closed-loop client (the demo's race) sends its next request only after the last answer,
//! so when the server slows down the client slows down with it and the requests that *would*
//! have been sent during the stall are never measured: the stall is hidden ("coordinated
//! omission"). Real callers do not wait for each other. Here the [`Schedule`] fixes, before the
//! run, when every claim is due; a claim's latency is measured from that *intended* send time
//! to the end of its answer. A claim that has to wait for a free connection waits in a queue,
//! and that wait is part of its latency.
//!
//! # Shape
//!
//! - A dispatcher walks the schedule, sleeps until each claim is due and puts it in its
//!   target's queue (targets take turns: claim `i` goes to target `i mod targets`). It never
//!   waits for a connection, so the offered rate does not bend to the server's.
//! - The connections are split evenly over the targets; each is a worker with one keep-alive
//!   [`Client`] that takes the oldest claim waiting in its target's queue, sends it and reads
//!   the whole answer. A worker keeps its own counts and histogram; they are merged at the end.
//! - A queue holds at most its share of [`OpenLoad::backlog_requests_max`]. A claim due while
//!   its queue is full is not sent: it is counted as *missed*, never silently dropped.
//! - When the schedule ends, the workers empty the queues; after
//!   [`OpenLoad::drain_timeout`] whatever is still queued is counted as missed too, and claims
//!   still waiting for an answer are counted as cut off. So a run always ends by itself,
//!   `duration + drain_timeout` after it started (later only if this machine is too busy to
//!   keep the schedule).
//!
//! The timer wheel ticks in milliseconds, so a claim may go out up to about a millisecond after
//! its intended time; that lag is measured as part of its latency, on the side of caution.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::{StatusCode, Uri};
use indicatif::ProgressStyle;
use serde::Serialize;
use tokio::sync::{mpsc, watch, Barrier, Mutex};
use tokio::task::JoinSet;

use super::answer::{classify, Answer};
use super::client::{Client, Post, Target, TransportStats};
use super::progress::Progress;
use super::schedule::{Arrival, Schedule};
use super::{
    claims_uri, micros_at_least_one, new_histogram, quantile_ms, rate_text, thousands, LoadgenError,
};

/// Longest idempotency key prefix: the key is `{prefix}-{seq}`, and the edge takes keys of up
/// to 128 bytes; 20 digits of sequence number and the dash must still fit.
pub const KEY_PREFIX_BYTES_MAX: usize = 107;

/// Longest excerpt kept from the body of an unexpected answer (4xx other than 409, 5xx) for the report.
const ERROR_BODY_CHARS_MAX: usize = 300;

/// An open-loop load. Build one with a struct literal and call [`OpenLoad::run`].
#[derive(Debug, Clone)]
pub struct OpenLoad {
    /// The edges to load; claim `i` of the schedule goes to target `i mod targets.len()`.
    pub targets: Vec<Target>,
    /// The campaigns claimed from; each claim picks one uniformly at random.
    pub campaign_ids: Vec<String>,
    /// Claims offered per second, on average (Poisson arrivals).
    pub rate_per_sec: f64,
    /// How long claims are offered.
    pub duration: Duration,
    /// Users `user-0` .. `user-{users-1}`; each claim picks one uniformly at random.
    pub users: u64,
    /// Seeds the schedule: the same seed offers the same claims at the same times.
    pub seed: u64,
    /// Keep-alive connections, split evenly over the targets (at least one per target).
    pub connections: usize,
    /// Claims that may wait for a free connection, split evenly over the targets; a claim due
    /// when its target's share is full is missed.
    pub backlog_requests_max: usize,
    /// How long answers are still awaited after the schedule ends.
    pub drain_timeout: Duration,
    /// Sent as `Prefer: wait={s}`: the edge answers 202 when the decision takes longer.
    /// `None` leaves the edge's own wait budget.
    pub prefer_wait_s: Option<u64>,
    /// Claim `i` is sent with `Idempotency-Key: {key_prefix}-{i}`: make it unique per run.
    pub key_prefix: String,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub show_progress: bool,
}

impl OpenLoad {
    /// Checks the settings, so that a mistake is one clear error before anything is sent.
    fn validate(&self) -> Result<(), LoadgenError> {
        let invalid = |message: String| Err(LoadgenError::InvalidLoad(message));
        if self.targets.is_empty() {
            return invalid("no target to send claims to".into());
        }
        if self.campaign_ids.is_empty() {
            return invalid("no campaign to claim from".into());
        }
        if !(self.rate_per_sec.is_finite() && self.rate_per_sec > 0.0) {
            return invalid(format!(
                "the rate must be a positive number of claims per second, got {}",
                self.rate_per_sec
            ));
        }
        if self.duration.is_zero() {
            return invalid("the duration must be longer than zero".into());
        }
        if self.users == 0 {
            return invalid("at least one user is needed".into());
        }
        if self.connections < self.targets.len() {
            return invalid(format!(
                "{} connections cannot serve {} targets: each target needs at least one",
                self.connections,
                self.targets.len()
            ));
        }
        if self.backlog_requests_max == 0 {
            return invalid("the backlog must hold at least one request".into());
        }
        let key_prefix_ok = !self.key_prefix.is_empty()
            && self.key_prefix.len() <= KEY_PREFIX_BYTES_MAX
            && self
                .key_prefix
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/');
        if !key_prefix_ok {
            return invalid(format!(
                "idempotency key prefix {:?} must be 1 to {KEY_PREFIX_BYTES_MAX} visible ASCII \
                 characters other than '/'",
                self.key_prefix
            ));
        }
        Ok(())
    }

    /// Runs the load to the end and reports what was offered and what was answered.
    ///
    /// Fails only before the load starts (bad settings, a campaign id that makes no request
    /// path, a target that does not accept a TCP connection) or on a bug (a worker panicked).
    /// Once it runs, every claim ends up counted in the report: answered by status, failed on
    /// the transport, cut off by the drain timeout, or missed.
    pub async fn run(self) -> Result<LoadReport, LoadgenError> {
        self.validate()?;
        let uris = self
            .campaign_ids
            .iter()
            .map(|id| claims_uri(id).ok_or_else(|| LoadgenError::InvalidCampaignId(id.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        for target in &self.targets {
            target.probe().await?;
        }
        let prefer = self.prefer_wait_s.map(|s| {
            HeaderValue::from_str(&format!("wait={s}")).expect("wait=<digits> is a valid header")
        });
        let plan = Arc::new(Plan {
            uris,
            key_prefix: self.key_prefix.clone(),
            prefer,
        });
        let counters = Arc::new(Counters::default());
        let (stop_tx, stop_rx) = watch::channel(false);

        // One queue per target, the backlog split evenly (rounded up) between them.
        let lane_capacity = self.backlog_requests_max.div_ceil(self.targets.len());
        let (senders, lanes): (Vec<_>, Vec<_>) = self
            .targets
            .iter()
            .map(|_| {
                let (tx, rx) = mpsc::channel::<Due>(lane_capacity);
                (tx, Arc::new(Mutex::new(rx)))
            })
            .unzip();

        // Every connection is opened before the clock starts: the first claims should measure
        // the server, not this client's TCP handshakes.
        let ready = Arc::new(Barrier::new(self.connections + 1));
        let mut workers = JoinSet::new();
        for index in 0..self.connections {
            let lane = index % self.targets.len();
            let worker = Worker {
                client: Client::new(self.targets[lane].clone()),
                lane: Arc::clone(&lanes[lane]),
                plan: Arc::clone(&plan),
                counters: Arc::clone(&counters),
                stop: stop_rx.clone(),
                tally: LoadCounts::new(),
            };
            workers.spawn(worker.run(Arc::clone(&ready)));
        }
        ready.wait().await;

        let started = Instant::now();
        let progress = self
            .show_progress
            .then(|| start_progress(started, self.duration, Arc::clone(&counters)));
        let schedule = Schedule::new(
            self.seed,
            self.rate_per_sec,
            self.duration,
            self.users,
            self.campaign_ids.len(),
        );
        dispatch(schedule, started, &senders, &counters).await;
        // Closing the queues tells the workers to stop once they are empty.
        drop(senders);
        counters.draining.store(true, Ordering::Relaxed);

        // The dispatcher can only be late (a busy machine), never early.
        let drain_deadline =
            tokio::time::Instant::from_std((started + self.duration).max(Instant::now()))
                + self.drain_timeout;
        let mut counts = LoadCounts::new();
        let mut stopped = false;
        loop {
            let joined = if stopped {
                workers.join_next().await
            } else {
                match tokio::time::timeout_at(drain_deadline, workers.join_next()).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        // Send only fails when every worker is gone already.
                        let _ = stop_tx.send(true);
                        stopped = true;
                        continue;
                    }
                }
            };
            match joined {
                Some(tally) => counts.absorb(tally?),
                None => break,
            }
        }
        // Claims still queued when the drain timed out were never sent.
        let mut unsent_at_end = 0;
        for lane in &lanes {
            let mut lane = lane.lock().await;
            while lane.try_recv().is_ok() {
                unsent_at_end += 1;
            }
        }
        if let Some(progress) = progress {
            progress.finish();
        }

        let scheduled = counters.scheduled.load(Ordering::Relaxed);
        let missed_backlog_full = counters.missed.load(Ordering::Relaxed);
        let last_answer = counts.last_answer.map_or(Duration::ZERO, |t| t - started);
        let report = LoadReport {
            targets: self.targets.iter().map(|t| t.url.clone()).collect(),
            campaign_ids: self.campaign_ids,
            rate_per_sec: self.rate_per_sec,
            duration: self.duration,
            seed: self.seed,
            connections: self.connections,
            backlog_requests_max: (lane_capacity * lanes.len()) as u64,
            scheduled,
            missed_backlog_full,
            unsent_at_end,
            elapsed: last_answer.max(self.duration),
            counts,
            stock: Vec::new(),
        };
        assert_eq!(
            report.scheduled,
            report.counts.sent() + report.missed(),
            "every scheduled claim is sent or missed"
        );
        Ok(report)
    }
}

/// What every worker reads.
#[derive(Debug)]
struct Plan {
    /// The claims path of each campaign, by resource index.
    uris: Vec<Uri>,
    key_prefix: String,
    prefer: Option<HeaderValue>,
}

/// Counters shared by the dispatcher, the workers and the progress bar.
#[derive(Debug, Default)]
struct Counters {
    /// Claims that came due (sent, queued or missed).
    scheduled: AtomicU64,
    /// Claims a worker took from a queue.
    sent: AtomicU64,
    /// Claims answered with any status.
    answered: AtomicU64,
    /// Claims due while their queue was full.
    missed: AtomicU64,
    /// The schedule has ended; the queues are being emptied.
    draining: AtomicBool,
}

/// A claim and the instant it is due, in a target's queue.
#[derive(Debug, Clone, Copy)]
struct Due {
    arrival: Arrival,
    at: Instant,
}

/// Puts every claim of the schedule into its target's queue when it is due, or counts it as
/// missed when that queue is full. Never waits for a worker.
async fn dispatch(
    schedule: Schedule,
    started: Instant,
    lanes: &[mpsc::Sender<Due>],
    counters: &Counters,
) {
    for arrival in schedule {
        let at = started + arrival.at;
        if at > Instant::now() {
            tokio::time::sleep_until(at.into()).await;
        }
        counters.scheduled.fetch_add(1, Ordering::Relaxed);
        let lane = &lanes[(arrival.seq % lanes.len() as u64) as usize];
        // A closed queue means its workers are gone (a panic, reported when they are
        // joined): the claim cannot be sent either way.
        if lane.try_send(Due { arrival, at }).is_err() {
            counters.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One connection: takes the oldest claim from its target's queue, sends it, reads the answer.
struct Worker {
    client: Client,
    lane: Arc<Mutex<mpsc::Receiver<Due>>>,
    plan: Arc<Plan>,
    counters: Arc<Counters>,
    stop: watch::Receiver<bool>,
    tally: LoadCounts,
}

impl Worker {
    /// Opens the connection, waits for every other worker, then sends claims until the queue
    /// is closed and empty or the drain times out.
    async fn run(mut self, ready: Arc<Barrier>) -> LoadCounts {
        self.client.warm_up().await;
        ready.wait().await;
        loop {
            let next = async { self.lane.lock().await.recv().await };
            let due = tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => break,
                due = next => match due {
                    Some(due) => due,
                    None => break,
                },
            };
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let key = format!("{}-{}", self.plan.key_prefix, due.arrival.seq);
            let key = HeaderValue::from_str(&key).expect("the key prefix was validated");
            let body = Bytes::from(format!("{{\"user_id\":\"user-{}\"}}", due.arrival.user));
            let post = Post {
                uri: &self.plan.uris[due.arrival.resource],
                key: &key,
                body: &body,
                prefer: self.plan.prefer.as_ref(),
            };
            // The client bounds its own transport retries; the drain timeout cuts a claim off
            // mid-flight.
            let exchange = self.client.post(post, || true);
            let exchange = tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => {
                    self.tally.cut_off += 1;
                    break;
                }
                exchange = exchange => exchange,
            };
            match exchange.answer {
                Some((status, bytes)) => {
                    let now = Instant::now();
                    self.tally.latency_us.saturating_record(micros_at_least_one(
                        now.saturating_duration_since(due.at),
                    ));
                    self.tally.last_answer =
                        Some(self.tally.last_answer.map_or(now, |t| t.max(now)));
                    self.tally.count(status, &bytes);
                    self.counters.answered.fetch_add(1, Ordering::Relaxed);
                }
                None => self.tally.transport_errors += 1,
            }
        }
        self.tally.transport = std::mem::take(&mut self.client.stats);
        self.tally
    }
}

/// What the claims got, summed over the workers.
///
/// Every claim sent is counted exactly once: by the status of its answer, as a transport
/// error, or as cut off. [`LoadCounts::sent`] is their sum.
#[derive(Debug, Clone)]
pub struct LoadCounts {
    /// `201 Created`: a coupon was granted.
    pub granted: u64,
    /// `200 OK`: a replay of an earlier outcome for the same key.
    pub replayed: u64,
    /// `202 Accepted`: taken but not decided within the wait budget.
    pub pending: u64,
    /// `409 Conflict` with code `sold_out`.
    pub sold_out: u64,
    /// Any other `409 Conflict` (`user_limit_reached`, `closed`, `not_open_yet`, …).
    pub refused_other: u64,
    /// Other 4xx statuses.
    pub client_errors: u64,
    /// 5xx statuses.
    pub server_errors: u64,
    /// Any other status (1xx, 3xx, other 2xx).
    pub other_statuses: u64,
    /// No answer even after the transport retries.
    pub transport_errors: u64,
    /// Still waiting for an answer when the drain timed out.
    pub cut_off: u64,
    /// From the intended send time to the whole answer read, in microseconds, for every
    /// answered claim whatever its status.
    pub latency_us: Histogram<u64>,
    /// When the last answer arrived.
    pub last_answer: Option<Instant>,
    /// The last unexpected answer (4xx other than 409, 5xx, other statuses): status and the
    /// start of its body, to tell the user what the edge complained about.
    pub last_error_answer: Option<String>,
    /// Failed tries and connections opened.
    pub transport: TransportStats,
}

impl LoadCounts {
    fn new() -> Self {
        Self {
            granted: 0,
            replayed: 0,
            pending: 0,
            sold_out: 0,
            refused_other: 0,
            client_errors: 0,
            server_errors: 0,
            other_statuses: 0,
            transport_errors: 0,
            cut_off: 0,
            latency_us: new_histogram(),
            last_answer: None,
            last_error_answer: None,
            transport: TransportStats::default(),
        }
    }

    /// Claims answered with any status.
    pub fn answered(&self) -> u64 {
        self.granted
            + self.replayed
            + self.pending
            + self.sold_out
            + self.refused_other
            + self.client_errors
            + self.server_errors
            + self.other_statuses
    }

    /// Claims sent: answered, failed on the transport, or cut off.
    pub fn sent(&self) -> u64 {
        self.answered() + self.transport_errors + self.cut_off
    }

    fn count(&mut self, status: StatusCode, body: &[u8]) {
        match classify(status, body) {
            Answer::Granted { .. } => self.granted += 1,
            Answer::Replayed { .. } => self.replayed += 1,
            Answer::Pending => self.pending += 1,
            Answer::Rejected { sold_out: true } => self.sold_out += 1,
            Answer::Rejected { sold_out: false } => self.refused_other += 1,
            Answer::HttpError { status } => {
                if status.is_client_error() {
                    self.client_errors += 1;
                } else if status.is_server_error() {
                    self.server_errors += 1;
                } else {
                    self.other_statuses += 1;
                }
                let body = String::from_utf8_lossy(body);
                let mut excerpt: String = body.chars().take(ERROR_BODY_CHARS_MAX).collect();
                if excerpt.len() < body.len() {
                    excerpt.push('…');
                }
                self.last_error_answer = Some(format!("{status}: {excerpt}"));
            }
            Answer::TransportError => self.transport_errors += 1,
        }
    }

    /// Adds another worker's counts.
    fn absorb(&mut self, other: LoadCounts) {
        self.granted += other.granted;
        self.replayed += other.replayed;
        self.pending += other.pending;
        self.sold_out += other.sold_out;
        self.refused_other += other.refused_other;
        self.client_errors += other.client_errors;
        self.server_errors += other.server_errors;
        self.other_statuses += other.other_statuses;
        self.transport_errors += other.transport_errors;
        self.cut_off += other.cut_off;
        self.latency_us
            .add(&other.latency_us)
            .expect("histograms with the same bounds can absorb each other");
        self.last_answer = self.last_answer.max(other.last_answer);
        if other.last_error_answer.is_some() {
            self.last_error_answer = other.last_error_answer;
        }
        self.transport.absorb(other.transport);
    }
}

/// A campaign's stock as one target reported it before and after the run.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignStock {
    /// The target asked.
    pub target: String,
    /// The campaign.
    pub campaign_id: String,
    /// Coupons in the campaign.
    pub capacity: u64,
    /// Coupons issued before the run.
    pub issued_before: u64,
    /// Coupons issued after it (claims answered 202 may still add to it later).
    pub issued_after: u64,
}

/// What an open-loop run offered and what it got.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The targets, as URLs.
    pub targets: Vec<String>,
    /// The campaigns claimed from.
    pub campaign_ids: Vec<String>,
    /// The offered rate, claims per second.
    pub rate_per_sec: f64,
    /// How long claims were offered.
    pub duration: Duration,
    /// The schedule's seed.
    pub seed: u64,
    /// Keep-alive connections used.
    pub connections: usize,
    /// Claims that could wait for a connection, all targets together.
    pub backlog_requests_max: u64,
    /// Claims that came due: the Poisson schedule's count for this seed, rate and duration.
    pub scheduled: u64,
    /// Claims not sent because their queue was full when they came due.
    pub missed_backlog_full: u64,
    /// Claims still queued when the drain timed out, never sent.
    pub unsent_at_end: u64,
    /// From the start to the last answer, and at least the duration.
    pub elapsed: Duration,
    /// What the sent claims got.
    pub counts: LoadCounts,
    /// The campaigns' stock before and after, when the caller looked (`turnstile load` does).
    pub stock: Vec<CampaignStock>,
}

impl LoadReport {
    /// Claims never sent: the queue was full when they came due, or they were still queued
    /// when the drain timed out.
    pub fn missed(&self) -> u64 {
        self.missed_backlog_full + self.unsent_at_end
    }

    /// Answers per second over [`LoadReport::elapsed`].
    pub fn achieved_per_sec(&self) -> f64 {
        self.counts.answered() as f64 / self.elapsed.as_secs_f64()
    }

    /// The report as plain data, for `--json` and for the text rendering alike.
    pub fn summary(&self) -> LoadSummary {
        let counts = &self.counts;
        let latency = &counts.latency_us;
        LoadSummary {
            targets: self.targets.clone(),
            campaign_ids: self.campaign_ids.clone(),
            seed: self.seed,
            connections: self.connections,
            backlog_requests_max: self.backlog_requests_max,
            offered: Offered {
                rate_per_sec: self.rate_per_sec,
                duration_s: self.duration.as_secs_f64(),
                scheduled: self.scheduled,
            },
            achieved: Achieved {
                rate_per_sec: self.achieved_per_sec(),
                elapsed_s: self.elapsed.as_secs_f64(),
                sent: counts.sent(),
                answered: counts.answered(),
            },
            answers: Answers {
                granted_201: counts.granted,
                replayed_200: counts.replayed,
                pending_202: counts.pending,
                sold_out_409: counts.sold_out,
                refused_other_409: counts.refused_other,
                client_errors_4xx: counts.client_errors,
                server_errors_5xx: counts.server_errors,
                other_statuses: counts.other_statuses,
            },
            transport_errors: counts.transport_errors,
            cut_off: counts.cut_off,
            missed: self.missed(),
            missed_backlog_full: self.missed_backlog_full,
            unsent_at_end: self.unsent_at_end,
            latency_ms: LatencyMs {
                p50: quantile_ms(latency, 0.5),
                p90: quantile_ms(latency, 0.9),
                p99: quantile_ms(latency, 0.99),
                p99_9: quantile_ms(latency, 0.999),
                max: latency.max() as f64 / 1000.0,
                mean: latency.mean() / 1000.0,
            },
            transport: TransportSummary {
                failed_tries: counts.transport.failed_tries,
                connections_opened: counts.transport.connections_opened,
                last_failure: counts.transport.last_failure.clone(),
            },
            last_error_answer: counts.last_error_answer.clone(),
            stock: self.stock.clone(),
        }
    }

    /// Multi-line human report.
    pub fn render(&self) -> String {
        self.summary().render()
    }
}

/// [`LoadReport`] as plain data; `turnstile load --json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// The targets, as URLs.
    pub targets: Vec<String>,
    /// The campaigns claimed from.
    pub campaign_ids: Vec<String>,
    /// The schedule's seed.
    pub seed: u64,
    /// Keep-alive connections used.
    pub connections: usize,
    /// Claims that could wait for a connection, all targets together.
    pub backlog_requests_max: u64,
    /// What was offered.
    pub offered: Offered,
    /// What came back, how fast.
    pub achieved: Achieved,
    /// Answers by status.
    pub answers: Answers,
    /// Claims sent that got no answer even after the transport retries.
    pub transport_errors: u64,
    /// Claims sent whose answer was still awaited when the drain timed out.
    pub cut_off: u64,
    /// Claims never sent: `missed_backlog_full + unsent_at_end`.
    pub missed: u64,
    /// Claims due while their queue was full.
    pub missed_backlog_full: u64,
    /// Claims still queued when the drain timed out.
    pub unsent_at_end: u64,
    /// Latency from the intended send time to the whole answer read, of answered claims.
    pub latency_ms: LatencyMs,
    /// What the connections went through.
    pub transport: TransportSummary,
    /// The last unexpected answer, status and the start of its body.
    pub last_error_answer: Option<String>,
    /// The campaigns' stock before and after, per target.
    pub stock: Vec<CampaignStock>,
}

/// The offered load.
#[derive(Debug, Clone, Serialize)]
pub struct Offered {
    /// Claims per second asked for.
    pub rate_per_sec: f64,
    /// How long.
    pub duration_s: f64,
    /// Claims the seeded Poisson schedule made due in that time.
    pub scheduled: u64,
}

/// The load the targets took.
#[derive(Debug, Clone, Serialize)]
pub struct Achieved {
    /// Answers per second over `elapsed_s`.
    pub rate_per_sec: f64,
    /// From the start to the last answer, at least the duration.
    pub elapsed_s: f64,
    /// Claims sent.
    pub sent: u64,
    /// Claims answered, with any status.
    pub answered: u64,
}

/// Answers by status.
#[derive(Debug, Clone, Serialize)]
pub struct Answers {
    /// Coupons granted.
    pub granted_201: u64,
    /// Replays of an earlier outcome.
    pub replayed_200: u64,
    /// Accepted, not decided within the wait budget.
    pub pending_202: u64,
    /// Refused: sold out.
    pub sold_out_409: u64,
    /// Refused for another reason (mostly `user_limit_reached`).
    pub refused_other_409: u64,
    /// Other 4xx.
    pub client_errors_4xx: u64,
    /// 5xx.
    pub server_errors_5xx: u64,
    /// Anything else.
    pub other_statuses: u64,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyMs {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

/// Transport failures and connections.
#[derive(Debug, Clone, Serialize)]
pub struct TransportSummary {
    /// Failed tries (each retried on a fresh connection, up to the retry limit).
    pub failed_tries: u64,
    /// Connections opened, the first ones included.
    pub connections_opened: u64,
    /// The last failure seen.
    pub last_failure: Option<String>,
}

impl LoadSummary {
    /// Multi-line human report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let count = thousands;
        // Writing to a String cannot fail: the results of `writeln!` are ignored below.
        let _ = writeln!(
            out,
            "  offered       {} claims/s: {} claims due in {:.2} s (Poisson, seed {})",
            rate_text(self.offered.rate_per_sec),
            count(self.offered.scheduled),
            self.offered.duration_s,
            self.seed,
        );
        let _ = writeln!(
            out,
            "  achieved      {} claims/s: {} answered in {:.2} s over {} connections",
            rate_text(self.achieved.rate_per_sec),
            count(self.achieved.answered),
            self.achieved.elapsed_s,
            self.connections,
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            out,
            "  latency (ms)  p50 {:.2}   p90 {:.2}   p99 {:.2}   p99.9 {:.2}   max {:.2}   \
             (from the intended send time)",
            l.p50, l.p90, l.p99, l.p99_9, l.max,
        );
        let a = &self.answers;
        let _ = writeln!(
            out,
            "  answers       201 granted {}   409 sold out {}   409 other {}   200 replayed {}   \
             202 pending {}",
            count(a.granted_201),
            count(a.sold_out_409),
            count(a.refused_other_409),
            count(a.replayed_200),
            count(a.pending_202),
        );
        let _ = write!(
            out,
            "  errors        4xx {}   5xx {}   transport {}   missed {}",
            count(a.client_errors_4xx),
            count(a.server_errors_5xx),
            count(self.transport_errors + self.cut_off),
            count(self.missed),
        );
        if a.other_statuses > 0 {
            let _ = write!(out, "   other statuses {}", count(a.other_statuses));
        }
        out.push('\n');
        if self.missed_backlog_full > 0 {
            let _ = writeln!(
                out,
                "  missed        {} claims came due while {} already waited for a connection \
                 (the backlog's limit): the targets, or this client, could not keep up",
                count(self.missed_backlog_full),
                count(self.backlog_requests_max),
            );
        }
        if self.unsent_at_end > 0 || self.cut_off > 0 {
            let _ = writeln!(
                out,
                "  drain         timed out: {} claims still queued (counted as missed), {} \
                 awaiting an answer (counted as transport errors)",
                count(self.unsent_at_end),
                count(self.cut_off),
            );
        }
        if self.transport.failed_tries > 0 {
            let _ = writeln!(
                out,
                "  transport     {} failed tries, {} connections opened; last failure: {}",
                count(self.transport.failed_tries),
                count(self.transport.connections_opened),
                self.transport.last_failure.as_deref().unwrap_or("unknown"),
            );
        }
        if let Some(answer) = &self.last_error_answer {
            let _ = writeln!(out, "  last error    {answer}");
        }
        for (target, stock) in group_by_target(&self.stock) {
            let capacity: u64 = stock.iter().map(|s| s.capacity).sum();
            let after: u64 = stock.iter().map(|s| s.issued_after).sum();
            let before: u64 = stock.iter().map(|s| s.issued_before).sum();
            let _ = writeln!(
                out,
                "  stock         {target}: {} of {} coupons issued, {} during this run",
                count(after),
                count(capacity),
                count(after.saturating_sub(before)),
            );
        }
        out
    }
}

/// Stock rows grouped by target, in the order the targets first appear.
fn group_by_target(stock: &[CampaignStock]) -> Vec<(&str, Vec<&CampaignStock>)> {
    let mut groups: Vec<(&str, Vec<&CampaignStock>)> = Vec::new();
    for row in stock {
        match groups.iter_mut().find(|(target, _)| *target == row.target) {
            Some((_, rows)) => rows.push(row),
            None => groups.push((&row.target, vec![row])),
        }
    }
    groups
}

/// The progress bar of an open-loop run: time elapsed of the duration, claims sent and
/// answered, the answer rate over the last second, the backlog and the misses.
fn start_progress(started: Instant, duration: Duration, counters: Arc<Counters>) -> Progress {
    let style = ProgressStyle::with_template("{spinner} load {wide_bar} {elapsed:>4}  {msg}")
        .expect("the progress template is valid");
    let len = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    // (when, answered) over the last second, for the rate.
    let mut window: VecDeque<(Instant, u64)> = VecDeque::new();
    Progress::start(len, style, move |bar| {
        let now = Instant::now();
        let sent = counters.sent.load(Ordering::Relaxed);
        let answered = counters.answered.load(Ordering::Relaxed);
        let missed = counters.missed.load(Ordering::Relaxed);
        let queued = counters
            .scheduled
            .load(Ordering::Relaxed)
            .saturating_sub(sent + missed);
        window.push_back((now, answered));
        while window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(1))
        {
            window.pop_front();
        }
        let per_sec = match window.front() {
            Some(&(t, n)) if now > t => (answered - n) as f64 / (now - t).as_secs_f64(),
            _ => 0.0,
        };
        let phase = if counters.draining.load(Ordering::Relaxed) {
            "draining  "
        } else {
            ""
        };
        bar.set_position(u64::try_from((now - started).as_millis()).unwrap_or(u64::MAX));
        bar.set_message(format!(
            "{phase}sent {}  answered {}  {} /s  queued {}  missed {}",
            thousands(sent),
            thousands(answered),
            thousands(per_sec.round() as u64),
            thousands(queued),
            thousands(missed),
        ));
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A real HTTP/1.1 server that answers each request on a connection, in turn, `201` after
    /// `delay` — or never, when `delay` is `None`.
    async fn slow_server(delay: Option<Duration>) -> SocketAddr {
        counting_server(delay).await.0
    }

    /// [`slow_server`], and how many requests it has read.
    async fn counting_server(delay: Option<Duration>) -> (SocketAddr, Arc<AtomicU64>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer_slowly(stream, delay, Arc::clone(&counter)));
            }
        });
        (addr, requests)
    }

    async fn answer_slowly(stream: TcpStream, delay: Option<Duration>, requests: Arc<AtomicU64>) {
        let mut stream = BufReader::new(stream);
        loop {
            let mut content_length = 0;
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    content_length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; content_length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            requests.fetch_add(1, Ordering::Relaxed);
            match delay {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
            let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\n\
                content-length: 2\r\n\r\n{}";
            if stream.get_mut().write_all(answer).await.is_err() {
                return;
            }
        }
    }

    fn load(addr: SocketAddr, rate_per_sec: f64, duration: Duration) -> OpenLoad {
        OpenLoad {
            targets: vec![addr.into()],
            campaign_ids: vec!["c".into()],
            rate_per_sec,
            duration,
            users: 1_000,
            seed: 11,
            connections: 1,
            backlog_requests_max: 100_000,
            drain_timeout: Duration::from_secs(10),
            prefer_wait_s: None,
            key_prefix: "t".into(),
            show_progress: false,
        }
    }

    /// The one property the open loop exists for: a claim that waits behind others for the
    /// connection has that wait in its latency, so latency grows with the backlog where a
    /// closed loop would see the server's 5 ms every time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn latency_includes_the_wait_for_a_connection() {
        let service = Duration::from_millis(5);
        let addr = slow_server(Some(service)).await;

        // Well below the one connection's 200 claims/s: hardly any queueing.
        let light = load(addr, 40.0, Duration::from_millis(500))
            .run()
            .await
            .unwrap();
        // Five times what it can serve: the backlog grows for the whole run.
        let duration = Duration::from_millis(300);
        let heavy = load(addr, 1_000.0, duration).run().await.unwrap();

        for report in [&light, &heavy] {
            assert_eq!(report.missed(), 0);
            assert_eq!(
                report.counts.granted, report.scheduled,
                "every claim answered"
            );
        }
        let p50 = |r: &LoadReport| quantile_ms(&r.counts.latency_us, 0.5);
        assert!(p50(&light) < 50.0, "light load p50 {} ms", p50(&light));
        // One connection serves the claims one by one, each taking at least `service`; the
        // last is answered no sooner than `scheduled × service` after the start, yet it was
        // due before `duration` had passed.
        let floor_ms =
            (heavy.scheduled as f64 * service.as_secs_f64() - duration.as_secs_f64()) * 1000.0;
        let max_ms = heavy.counts.latency_us.max() as f64 / 1000.0;
        assert!(
            floor_ms > 500.0,
            "the test needs a real backlog: {floor_ms} ms"
        );
        assert!(
            max_ms >= floor_ms,
            "max {max_ms} ms < queueing floor {floor_ms} ms"
        );
        assert!(
            p50(&heavy) > 10.0 * p50(&light),
            "heavy p50 {} ms vs light {} ms",
            p50(&heavy),
            p50(&light)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn claims_beyond_the_backlog_are_missed_and_counted() {
        let addr = slow_server(Some(Duration::from_millis(50))).await;
        let mut load = load(addr, 500.0, Duration::from_millis(200));
        load.backlog_requests_max = 5;
        let report = load.run().await.unwrap();
        assert!(
            report.missed_backlog_full > report.scheduled / 2,
            "{} of {} missed",
            report.missed_backlog_full,
            report.scheduled
        );
        assert_eq!(report.unsent_at_end, 0);
        assert_eq!(report.counts.sent() + report.missed(), report.scheduled);
        assert_eq!(report.counts.answered(), report.counts.sent());
        assert!(report.render().contains("could not keep up"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_server_that_never_answers_ends_the_run_at_the_drain_timeout() {
        let addr = slow_server(None).await;
        let mut load = load(addr, 200.0, Duration::from_millis(200));
        load.connections = 2;
        load.drain_timeout = Duration::from_millis(300);
        let started = Instant::now();
        let report = load.run().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(report.counts.answered(), 0);
        assert_eq!(
            report.counts.cut_off, 2,
            "one claim stuck on each connection"
        );
        assert_eq!(report.unsent_at_end, report.scheduled - 2);
        let text = report.render();
        assert!(text.contains("drain         timed out"), "{text}");
        assert!(text.contains("transport 2   missed "), "{text}");
    }

    #[tokio::test]
    async fn claims_take_turns_between_targets() {
        let (first, first_requests) = counting_server(Some(Duration::ZERO)).await;
        let (second, second_requests) = counting_server(Some(Duration::ZERO)).await;
        let mut load = load(first, 500.0, Duration::from_millis(200));
        load.targets.push(second.into());
        load.connections = 4;
        let report = load.run().await.unwrap();
        assert_eq!(report.counts.granted, report.scheduled);
        // Claim i went to target i mod 2.
        let first = first_requests.load(Ordering::Relaxed);
        let second = second_requests.load(Ordering::Relaxed);
        assert_eq!(first + second, report.scheduled);
        assert_eq!(first, report.scheduled.div_ceil(2));
    }

    #[tokio::test]
    async fn bad_settings_are_refused_before_anything_is_sent() {
        let addr = slow_server(Some(Duration::ZERO)).await;
        let refused = |load: OpenLoad| async move { load.run().await.unwrap_err().to_string() };
        let mut zero_rate = load(addr, 1.0, Duration::from_secs(1));
        zero_rate.rate_per_sec = 0.0;
        assert!(refused(zero_rate).await.contains("positive number"));
        let mut too_few = load(addr, 1.0, Duration::from_secs(1));
        too_few.targets.push(addr.into());
        assert!(refused(too_few).await.contains("at least one"));
        let mut bad_key = load(addr, 1.0, Duration::from_secs(1));
        bad_key.key_prefix = "a/b".into();
        assert!(refused(bad_key).await.contains("key prefix"));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        let unreachable = load(closed_addr, 1.0, Duration::from_secs(1));
        assert!(refused(unreachable).await.contains("cannot connect"));
    }

    #[test]
    fn an_empty_report_renders() {
        let report = LoadReport {
            targets: vec!["http://127.0.0.1:1".into()],
            campaign_ids: vec!["c".into()],
            rate_per_sec: 5.0,
            duration: Duration::from_secs(1),
            seed: 1,
            connections: 1,
            backlog_requests_max: 1,
            scheduled: 0,
            missed_backlog_full: 0,
            unsent_at_end: 0,
            elapsed: Duration::from_secs(1),
            counts: LoadCounts::new(),
            stock: Vec::new(),
        };
        let text = report.render();
        assert!(text.contains("offered       5.0 claims/s"), "{text}");
        assert!(text.contains("201 granted 0"), "{text}");
        assert_eq!(report.summary().latency_ms.max, 0.0);
    }
}
