//! The racing client of `turnstile demo`: many simulated users claim coupons over real HTTP.
//!
//! # Closed loop, on purpose
//!
//! This is a *closed-loop* load generator: a fixed number of workers, each owning one
//! keep-alive HTTP/1.1 connection ([`Client`]), sends one claim, waits for the whole answer, and
//! only then sends the next. The offered load therefore adapts to how fast the server answers,
//! and the race ends when every simulated user has had its answer. That is the question the demo
//! asks: "a fixed crowd of N users storms M coupons; how fast is the crowd served, how long does
//! each user wait, and does every coupon go to exactly one user?". The open-loop generator
//! ([`super::open_loop`], `turnstile load`) answers a different one: what latency a caller sees
//! when claims arrive at a given rate whether or not earlier ones were answered.
//!
//! Each worker keeps its own counters and latency histogram; they are merged once at the end,
//! so workers share nothing but a few atomic counters. The only work per answer is reading the
//! body and, for the few statuses that need it, picking one or two fields out of the JSON.
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
//! The client retries transport failures a bounded number of times
//! ([`TRANSPORT_RETRIES_MAX`](super::client::TRANSPORT_RETRIES_MAX)); a request that still fails is counted as an error and the worker
//! moves on. Error statuses are counted, never retried. Transport failures do not abort the
//! race, with one exception that keeps a dead or hung server from stretching it out for hours:
//! once as many requests in a row as there are connections have been given up, with no answer of
//! any kind in between, the race stops handing out users (and retrying the requests in flight)
//! and reports the users it never sent as [`RaceReport::unsent`]. So [`ClaimRace::run`] always
//! ends by itself: against a server that accepts connections but never answers, after about
//! 4 × [`REQUEST_TIMEOUT`](super::client::REQUEST_TIMEOUT) plus one more.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::Uri;
use indicatif::{ProgressState, ProgressStyle};
use tokio::task::JoinSet;

use super::answer::{classify, Answer};
use super::client::{Client, Post, Target, TransportStats};
use super::progress::Progress;
use super::{claims_uri, micros_at_least_one, new_histogram, quantile_ms, thousands, LoadgenError};

/// Number of connections `turnstile demo` races over unless told otherwise.
pub const DEFAULT_CONNECTIONS: usize = 64;

/// A race of `users` simulated users over `connections` keep-alive connections.
///
/// Build one with a struct literal and call [`ClaimRace::run`].
#[derive(Debug, Clone)]
pub struct ClaimRace {
    /// The HTTP server to race against (loopback in the demo).
    pub target: Target,
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
        self.target.probe().await?;

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
            users: self.users,
            retry_every: self.retry_every,
            next_user: AtomicU64::new(0),
            done: AtomicU64::new(0),
            abandoned_in_a_row: AtomicU64::new(0),
            give_up_after: workers as u64,
            gave_up: AtomicBool::new(false),
        });

        let progress = if self.show_progress {
            Some(start_progress(total, Arc::clone(&shared)))
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
            progress
                .bar()
                .set_position(shared.done.load(Ordering::Relaxed));
            progress.finish();
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
        quantile_ms(&self.counts.latency_us, quantile)
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
        if self.counts.transport.failed_tries > 0 {
            let _ = writeln!(
                out,
                "  transport     {} failed tries, {} connections opened; last failure: {}",
                thousands(self.counts.transport.failed_tries),
                thousands(self.counts.transport.connections_opened),
                self.counts
                    .transport
                    .last_failure
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

/// State every worker reads; its atomics are the only shared writes.
#[derive(Debug)]
struct Shared {
    target: Target,
    uri: Uri,
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

/// What a decided answer says, for comparing a replay with the first answer.
#[derive(Debug, PartialEq, Eq)]
enum Verdict<'a> {
    /// A coupon, with its id when the body carried one.
    Granted(Option<&'a str>),
    /// No coupon, for whatever reason.
    Refused,
}

/// The verdict of a decided answer; `None` when undecided or failed.
fn verdict(answer: &Answer) -> Option<Verdict<'_>> {
    match answer {
        Answer::Granted { coupon_id }
        | Answer::Replayed {
            granted: true,
            coupon_id,
        } => Some(Verdict::Granted(coupon_id.as_deref())),
        Answer::Replayed { granted: false, .. } | Answer::Rejected { .. } => Some(Verdict::Refused),
        Answer::Pending | Answer::HttpError { .. } | Answer::TransportError => None,
    }
}

/// Whether the answer to a replay contradicts the first answer for the same key. Only decided
/// answers can be compared: `None` when either side was pending or failed.
fn replay_contradicts(first: &Answer, replay: &Answer) -> Option<bool> {
    Some(verdict(first)? != verdict(replay)?)
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
    /// [`TRANSPORT_RETRIES_MAX`](super::client::TRANSPORT_RETRIES_MAX) retries (those are also counted in `abandoned`).
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
    /// Requests given up after failing on the transport [`TRANSPORT_RETRIES_MAX`](super::client::TRANSPORT_RETRIES_MAX) + 1 times
    /// (included in `errors`).
    pub abandoned: u64,
    /// Failed tries, connections opened (one per worker, plus one after each failure or each
    /// keep-alive connection the server closed) and the last failure.
    pub transport: TransportStats,
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
            transport: TransportStats::default(),
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
        self.transport.absorb(other.transport);
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
            Answer::HttpError { .. } => self.errors += 1,
            Answer::TransportError => {
                self.errors += 1;
                self.abandoned += 1;
            }
        }
    }
}

/// One worker: one connection at a time, one request at a time.
struct Worker {
    shared: Arc<Shared>,
    client: Client,
    tally: RaceCounts,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            client: Client::new(shared.target.clone()),
            shared,
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
        self.tally.transport = self.client.stats;
        self.tally
    }

    /// Sends one claim, retrying on fresh connections after transport failures (but not once
    /// the race has given up).
    async fn claim(&mut self, key: &HeaderValue, body: &Bytes) -> Answer {
        let post = Post {
            uri: &self.shared.uri,
            key,
            body,
            prefer: None,
        };
        let shared = &self.shared;
        let exchange = self
            .client
            .post(post, || !shared.gave_up.load(Ordering::Relaxed))
            .await;
        let answer = match exchange.answer {
            Some((status, bytes)) => {
                if let Some(sent) = exchange.first_sent {
                    self.tally
                        .latency_us
                        .saturating_record(micros_at_least_one(sent.elapsed()));
                }
                classify(status, &bytes)
            }
            None => Answer::TransportError,
        };
        self.shared.done.fetch_add(1, Ordering::Relaxed);
        self.shared.note(&answer);
        answer
    }
}

/// The progress bar of a race: requests done of the total, rate, ETA.
fn start_progress(total: u64, shared: Arc<Shared>) -> Progress {
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
    Progress::start(total, style, move |bar| {
        bar.set_position(shared.done.load(Ordering::Relaxed));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn empty_report_renders() {
        let report = RaceReport::empty();
        assert_eq!(report.requests_per_sec(), 0.0);
        assert_eq!(report.latency_ms_at(0.99), 0.0);
        assert!(report.render().contains("granted       0 (201)"));
    }
}
