//! The process's metrics, in the Prometheus text exposition format (version 0.0.4).
//!
//! A tiny hand-written registry (no Prometheus crate is in the tree): labelled counters,
//! gauges and fixed-bucket histograms, rendered with their `# HELP` and `# TYPE` lines.
//! It lives here, not in the HTTP edge, because the partition processors record into it
//! and must not depend on the edge; the edge records its requests and serves
//! [`Metrics::render`] at `GET /metrics`.
//!
//! Every label has a bounded set of values: route templates, methods, status codes,
//! decision names, domains and partitions — never a raw id.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex, MutexGuard};

/// Buckets of request and commit durations, in seconds.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of batch sizes, in records.
pub const RECORDS_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 4096.0,
];

/// The metrics of this process (one registry per process, as Prometheus scrapes it).
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// Every metric family this process exposes.
#[derive(Debug)]
pub struct Metrics {
    /// HTTP requests answered, by route template, method and status code.
    pub http_requests: Family<u64>,
    /// How long HTTP requests took to answer, by route template and method.
    pub http_request_duration: Family<Histogram>,
    /// Decisions committed (first deliveries only), by domain and decision status.
    pub decisions: Family<u64>,
    /// Log records per committed batch, by partition.
    pub batch_records: Family<Histogram>,
    /// How long a batch's journal commit took, by partition.
    pub batch_commit: Family<Histogram>,
    /// Log end offset minus the journal's next offset, by partition.
    pub consumer_lag: Family<i64>,
    /// Coupons a campaign has left, by campaign (set when scraped).
    pub inventory_remaining: Family<i64>,
    /// Outbox entries a sink has not carried yet, by sink (set when scraped).
    pub sink_backlog: Family<i64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry (tests make their own; the process uses [`global`]).
    pub fn new() -> Self {
        Metrics {
            http_requests: Family::new(
                "turnstile_http_requests_total",
                "HTTP requests answered, by route template, method and status code.",
                Kind::Counter,
                &["route", "method", "status"],
            ),
            http_request_duration: Family::new(
                "turnstile_http_request_duration_seconds",
                "Time to answer an HTTP request, by route template and method.",
                Kind::Histogram(SECONDS_BUCKETS),
                &["route", "method"],
            ),
            decisions: Family::new(
                "turnstile_decisions_total",
                "Decisions committed to the journal (first deliveries), by domain and status.",
                Kind::Counter,
                &["domain", "status"],
            ),
            batch_records: Family::new(
                "turnstile_batch_records",
                "Log records decided per committed batch, by partition.",
                Kind::Histogram(RECORDS_BUCKETS),
                &["partition"],
            ),
            batch_commit: Family::new(
                "turnstile_batch_commit_seconds",
                "Time to commit a batch to the journal, by partition.",
                Kind::Histogram(SECONDS_BUCKETS),
                &["partition"],
            ),
            consumer_lag: Family::new(
                "turnstile_consumer_lag_records",
                "Log end offset minus the journal's next offset, by partition.",
                Kind::Gauge,
                &["partition"],
            ),
            inventory_remaining: Family::new(
                "turnstile_inventory_remaining",
                "Coupons a campaign has left, as the edge last heard, by campaign.",
                Kind::Gauge,
                &["resource"],
            ),
            sink_backlog: Family::new(
                "turnstile_sink_backlog_outcomes",
                "Outbox entries a sink has not carried yet, by sink.",
                Kind::Gauge,
                &["sink"],
            ),
        }
    }

    /// Every family in the text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.http_requests.render(&mut out);
        self.http_request_duration.render(&mut out);
        self.decisions.render(&mut out);
        self.batch_records.render(&mut out);
        self.batch_commit.render(&mut out);
        self.consumer_lag.render(&mut out);
        self.inventory_remaining.render(&mut out);
        self.sink_backlog.render(&mut out);
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family is, for its `# TYPE` line; a histogram has its buckets' upper bounds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted into fixed buckets.
    Histogram(&'static [f64]),
}

/// One metric family: a value per combination of label values.
#[derive(Debug)]
pub struct Family<V> {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    series: Mutex<BTreeMap<Vec<String>, V>>,
}

impl<V> Family<V> {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: Kind,
        labels: &'static [&'static str],
    ) -> Self {
        Family {
            name,
            help,
            kind,
            labels,
            series: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Vec<String>, V>> {
        // A panic while holding the lock leaves numbers, never a broken invariant.
        self.series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with(&self, values: &[&str], default: impl FnOnce() -> V, f: impl FnOnce(&mut V)) {
        assert_eq!(
            values.len(),
            self.labels.len(),
            "{}: label values",
            self.name
        );
        let mut series = self.lock();
        // Look up without allocating; a new series allocates once.
        if let Some(value) = series
            .iter_mut()
            .find(|(key, _)| key.iter().map(String::as_str).eq(values.iter().copied()))
            .map(|(_, v)| v)
        {
            f(value);
            return;
        }
        let mut value = default();
        f(&mut value);
        series.insert(values.iter().map(|v| v.to_string()).collect(), value);
    }

    fn header(&self, out: &mut String) {
        let kind = match self.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }

    /// `{a="x",b="y"}` with `extra` appended (a histogram's `le`); empty without labels.
    fn label_set(&self, values: &[String], extra: Option<(&str, &str)>) -> String {
        let pairs: Vec<String> = self
            .labels
            .iter()
            .zip(values)
            .map(|(name, value)| (*name, value.as_str()))
            .chain(extra)
            .map(|(name, value)| format!("{name}=\"{}\"", escape_label(value)))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", pairs.join(","))
        }
    }
}

impl Family<u64> {
    /// Adds one to the counter with these label values.
    pub fn inc(&self, values: &[&str]) {
        self.add(values, 1);
    }

    /// Adds `n` to the counter with these label values.
    pub fn add(&self, values: &[&str], n: u64) {
        self.with(values, || 0, |v| *v += n);
    }

    /// The counter's value, 0 if never touched.
    pub fn get(&self, values: &[&str]) -> u64 {
        let mut found = 0;
        self.peek(values, |v| found = *v);
        found
    }

    fn render(&self, out: &mut String) {
        self.header(out);
        for (values, v) in self.lock().iter() {
            let _ = writeln!(out, "{}{} {v}", self.name, self.label_set(values, None));
        }
    }
}

impl Family<i64> {
    /// Sets the gauge with these label values.
    pub fn set(&self, values: &[&str], value: i64) {
        self.with(values, || 0, |v| *v = value);
    }

    fn render(&self, out: &mut String) {
        self.header(out);
        for (values, v) in self.lock().iter() {
            let _ = writeln!(out, "{}{} {v}", self.name, self.label_set(values, None));
        }
    }
}

impl<V> Family<V> {
    fn peek(&self, values: &[&str], f: impl FnOnce(&V)) {
        if let Some((_, v)) = self
            .lock()
            .iter()
            .find(|(key, _)| key.iter().map(String::as_str).eq(values.iter().copied()))
        {
            f(v);
        }
    }
}

impl Family<Histogram> {
    /// Counts `value` into the histogram with these label values.
    pub fn observe(&self, values: &[&str], value: f64) {
        let Kind::Histogram(bounds) = self.kind else {
            unreachable!("a histogram family has buckets")
        };
        self.with(
            values,
            || Histogram::new(bounds.len()),
            |h| h.observe(bounds, value),
        );
    }

    fn render(&self, out: &mut String) {
        let Kind::Histogram(bounds) = self.kind else {
            unreachable!("a histogram family has buckets")
        };
        self.header(out);
        for (values, h) in self.lock().iter() {
            let mut cumulative = 0;
            for (bound, count) in bounds.iter().zip(&h.buckets) {
                cumulative += count;
                let le = format_float(*bound);
                let labels = self.label_set(values, Some(("le", &le)));
                let _ = writeln!(out, "{}_bucket{labels} {cumulative}", self.name);
            }
            let labels = self.label_set(values, Some(("le", "+Inf")));
            let _ = writeln!(out, "{}_bucket{labels} {}", self.name, h.count);
            let labels = self.label_set(values, None);
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, format_float(h.sum));
            let _ = writeln!(out, "{}_count{labels} {}", self.name, h.count);
        }
    }
}

/// A histogram's state: per-bucket (not cumulative) counts, the sum and the count.
#[derive(Debug, Clone)]
pub struct Histogram {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: usize) -> Self {
        Histogram {
            buckets: vec![0; buckets],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, bounds: &[f64], value: f64) {
        // Above every bound: only in `+Inf`, which is the count.
        if let Some(i) = bounds.iter().position(|bound| value <= *bound) {
            self.buckets[i] += 1;
        }
        self.sum += value;
        self.count += 1;
    }
}

/// A float as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, else Rust's shortest form.
fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        format!("{value}")
    }
}

/// A label value escaped: backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text escaped: backslash and line feed.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_help_type_and_labels() {
        let metrics = Metrics::new();
        metrics.decisions.inc(&["coupon", "coupon_granted"]);
        metrics.decisions.add(&["coupon", "coupon_granted"], 2);
        metrics.decisions.inc(&["coupon", "sold_out"]);
        assert_eq!(metrics.decisions.get(&["coupon", "coupon_granted"]), 3);
        assert_eq!(metrics.decisions.get(&["seats", "seats_held"]), 0);
        let text = metrics.render();
        let expected = "# HELP turnstile_decisions_total Decisions committed to the journal (first deliveries), by domain and status.\n\
                        # TYPE turnstile_decisions_total counter\n\
                        turnstile_decisions_total{domain=\"coupon\",status=\"coupon_granted\"} 3\n\
                        turnstile_decisions_total{domain=\"coupon\",status=\"sold_out\"} 1\n";
        assert!(text.contains(expected), "{text}");
    }

    #[test]
    fn a_family_without_series_still_has_its_help_and_type() {
        let text = Metrics::new().render();
        for name in [
            "turnstile_http_requests_total counter",
            "turnstile_http_request_duration_seconds histogram",
            "turnstile_decisions_total counter",
            "turnstile_batch_records histogram",
            "turnstile_batch_commit_seconds histogram",
            "turnstile_consumer_lag_records gauge",
            "turnstile_inventory_remaining gauge",
            "turnstile_sink_backlog_outcomes gauge",
        ] {
            assert!(text.contains(&format!("# TYPE {name}\n")), "{name}: {text}");
        }
        assert_eq!(text.lines().count(), 16, "{text}");
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(escape_help("a\\b\nc \"q\""), "a\\\\b\\nc \"q\"");
        let metrics = Metrics::new();
        metrics.http_requests.inc(&["/a\"b\\c\nd", "GET", "200"]);
        let text = metrics.render();
        assert!(
            text.contains(
                "turnstile_http_requests_total{route=\"/a\\\"b\\\\c\\nd\",method=\"GET\",status=\"200\"} 1\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf_sum_and_count() {
        let metrics = Metrics::new();
        for records in [1.0, 1.0, 3.0, 50.0, 10_000.0] {
            metrics.batch_records.observe(&["0"], records);
        }
        let text = metrics.render();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("turnstile_batch_records"))
            .collect();
        let bucket = |le: &str| -> u64 {
            let prefix = format!("turnstile_batch_records_bucket{{partition=\"0\",le=\"{le}\"}} ");
            lines
                .iter()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no bucket {le}: {text}"))
                .parse()
                .unwrap()
        };
        assert_eq!(bucket("1"), 2);
        assert_eq!(bucket("2"), 2);
        assert_eq!(bucket("5"), 3);
        assert_eq!(bucket("50"), 4);
        assert_eq!(bucket("4096"), 4);
        assert_eq!(bucket("+Inf"), 5);
        // Every bucket, then +Inf, _sum and _count, in that order.
        assert_eq!(lines.len(), RECORDS_BUCKETS.len() + 3);
        let counts: Vec<u64> = lines[..=RECORDS_BUCKETS.len()]
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert!(lines[RECORDS_BUCKETS.len()].contains("le=\"+Inf\""));
        assert_eq!(
            lines[RECORDS_BUCKETS.len() + 1],
            "turnstile_batch_records_sum{partition=\"0\"} 10055"
        );
        assert_eq!(
            lines[RECORDS_BUCKETS.len() + 2],
            "turnstile_batch_records_count{partition=\"0\"} 5"
        );
    }

    #[test]
    fn seconds_render_as_prometheus_floats() {
        assert_eq!(format_float(0.0005), "0.0005");
        assert_eq!(format_float(2.5), "2.5");
        assert_eq!(format_float(10.0), "10");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        let metrics = Metrics::new();
        metrics.batch_commit.observe(&["3"], 0.003);
        let text = metrics.render();
        assert!(text
            .contains("turnstile_batch_commit_seconds_bucket{partition=\"3\",le=\"0.0025\"} 0\n"));
        assert!(text
            .contains("turnstile_batch_commit_seconds_bucket{partition=\"3\",le=\"0.005\"} 1\n"));
        assert!(text.contains("turnstile_batch_commit_seconds_sum{partition=\"3\"} 0.003\n"));
    }

    #[test]
    fn gauges_go_up_and_down() {
        let metrics = Metrics::new();
        metrics.consumer_lag.set(&["1"], 7);
        metrics.consumer_lag.set(&["1"], 0);
        metrics.consumer_lag.set(&["0"], 2);
        let text = metrics.render();
        assert!(text.contains(
            "turnstile_consumer_lag_records{partition=\"0\"} 2\nturnstile_consumer_lag_records{partition=\"1\"} 0\n"
        ));
    }
}
