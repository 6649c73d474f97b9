//! HTTP load generators: the closed-loop claim race of `turnstile demo` and the open-loop
//! load of `turnstile load`.
//!
//! The two ask different questions. The race ([`race`]) has a fixed crowd storm a drop: how
//! fast is the crowd served, and does every coupon go to exactly one user? The open loop
//! ([`open_loop`]) offers claims at a fixed rate whether or not earlier ones were answered:
//! what latency does a caller see at that rate, queueing included? Both speak to the edge
//! through the same small HTTP client and read its answers the same way.
//!
//! # Layout
//! - [`client`]: targets, one keep-alive HTTP/1.1 connection with bounded retries, one-shot
//!   requests for set-up calls.
//! - [`answer`]: an HTTP answer reduced to what the reports count.
//! - [`progress`]: a progress bar refreshed from shared counters.
//! - [`race`]: the closed-loop race (`turnstile demo`).
//! - [`schedule`]: the seeded Poisson arrival schedule of the open loop.
//! - [`open_loop`]: the open-loop generator (`turnstile load`).

pub mod answer;
pub mod client;
pub mod open_loop;
pub mod progress;
pub mod race;
pub mod schedule;

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use hyper::Uri;

pub use client::{get_json, post_json, Target};
pub use open_loop::{CampaignStock, LoadReport, OpenLoad};
pub use race::{ClaimRace, RaceReport};

/// Significant figures kept by the latency histograms (0.1% precision).
const HISTOGRAM_SIGFIGS: u8 = 3;

/// Largest latency the histograms tell apart (one hour, in microseconds); longer ones are
/// recorded as this. No request can take that long given the client's timeouts.
const HISTOGRAM_US_MAX: u64 = 3_600_000_000;

/// Why a load could not be generated. Failures *during* a run are counted in its report
/// instead.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The campaign id does not make a valid request path.
    #[error("campaign id {0:?} does not make a valid request path")]
    InvalidCampaignId(String),
    /// A `--target` that is not a plain `http://host[:port]` URL, or whose host does not
    /// resolve.
    #[error("target {target:?}: {message}")]
    InvalidTarget {
        /// What was given.
        target: String,
        /// What is wrong with it and how to fix it.
        message: String,
    },
    /// Settings that make no load, e.g. a rate of 0.
    #[error("{0}")]
    InvalidLoad(String),
    /// The target refused or did not accept a first TCP connection.
    #[error("cannot connect to {target}: {source}")]
    Unreachable {
        /// The target that was tried.
        target: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A single request ([`post_json`], [`get_json`]) got no answer, or could not be made.
    #[error("{method} {path} to {target} failed: {message}")]
    Request {
        /// The server.
        target: String,
        /// `GET` or `POST`.
        method: &'static str,
        /// The request path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A worker task panicked or was cancelled (a bug in this module).
    #[error("a load generator worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
}

/// An empty latency histogram in microseconds, the same bounds everywhere so that workers'
/// histograms can be added together.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_US_MAX, HISTOGRAM_SIGFIGS)
        .expect("constant histogram bounds are valid")
}

/// Latency in milliseconds at `quantile` (0.0..=1.0, clamped; 1.0 is the maximum) of a
/// histogram in microseconds; 0 when it is empty.
pub(crate) fn quantile_ms(latency_us: &Histogram<u64>, quantile: f64) -> f64 {
    if latency_us.is_empty() {
        return 0.0;
    }
    let quantile = if quantile.is_nan() {
        0.0
    } else {
        quantile.clamp(0.0, 1.0)
    };
    latency_us.value_at_quantile(quantile) as f64 / 1000.0
}

/// Microseconds in a duration, at least 1 (the histograms' lowest value), saturating.
pub(crate) fn micros_at_least_one(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
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

/// A rate per second for people: `19876.4` as `19,876`; rates under 10 keep a decimal.
pub fn rate_text(per_sec: f64) -> String {
    if per_sec < 10.0 {
        format!("{per_sec:.1}")
    } else {
        thousands(per_sec.round() as u64)
    }
}

/// `/v1/campaigns/{campaign_id}{suffix}`, the campaign id percent-encoded as a path segment.
fn campaign_uri(campaign_id: &str, suffix: &str) -> Option<Uri> {
    let mut path = String::from("/v1/campaigns/");
    for byte in campaign_id.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            path.push(char::from(byte));
        } else {
            let _ = write!(path, "%{byte:02X}");
        }
    }
    path.push_str(suffix);
    Uri::try_from(path).ok()
}

/// `/v1/campaigns/{campaign_id}/claims`.
fn claims_uri(campaign_id: &str) -> Option<Uri> {
    campaign_uri(campaign_id, "/claims")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_path_encodes_the_campaign() {
        let uri = claims_uri("spring-sale_2025").expect("plain ids are valid");
        assert_eq!(uri.path(), "/v1/campaigns/spring-sale_2025/claims");
        let uri = claims_uri("a b/c").expect("encoded ids are valid");
        assert_eq!(uri.path(), "/v1/campaigns/a%20b%2Fc/claims");
        let uri = campaign_uri("x", "").expect("plain ids are valid");
        assert_eq!(uri.path(), "/v1/campaigns/x");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(rate_text(19_876.4), "19,876");
        assert_eq!(rate_text(0.5), "0.5");
    }

    #[test]
    fn quantiles_of_an_empty_histogram_are_zero() {
        assert_eq!(quantile_ms(&new_histogram(), 0.99), 0.0);
        let mut h = new_histogram();
        h.record(2_000).expect("in bounds");
        assert_eq!(quantile_ms(&h, f64::NAN), 2.0);
        assert_eq!(quantile_ms(&h, 7.0), 2.0);
    }
}
