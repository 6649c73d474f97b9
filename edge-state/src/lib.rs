//! The edges' shared state in Redis (`DESIGN.md` §4: "edge state … Redis, shared by every
//! edge"): how a decision made in one process reaches the edge holding the caller, and
//! what every edge's sold-out gate consults.
//!
//! # Layout
//! - `lib.rs`: [`EdgeStateConfig`] (in process or Redis), [`RedisConfig`], [`Error`].
//! - [`keys`]: every Redis key name, and the request hash the gate stores.
//! - [`publisher`]: the processors' side, a [`DecisionListener`] that publishes each
//!   committed batch in one round trip.
//! - [`subscriber`]: the edges' side, a task reading the outcome stream into a local
//!   listener (the edge's `OutcomeFeed`), reconnecting and catching up after a disconnect.
//! - [`gate`]: the sold-out gate's question to Redis: never decided, recorded, or unknown.
//! - `lua/`: the two scripts (publish a batch's gate state; answer a gate question).
//!
//! # What lives in Redis (namespace `ns`, see [`keys::Keys`])
//! | key | type | what | bounded by |
//! |---|---|---|---|
//! | `ns:outcomes` | stream | one entry per committed delivery: `d` its log position, `o` the outcome's journal JSON | `stream_entries_max` (`MAXLEN ~`) |
//! | `ns:partition:<p>` | hash | `next_offset` published up to; `gap` once a batch was never published | one per partition |
//! | `ns:campaign:<id>` | hash | `partition`, `capacity`, `issued`, `sold_out`, `decided` (members of the set below) | one per campaign, ~200 bytes, no expiry |
//! | `ns:decided:<id>` | set | an 8-byte hash of every decided request id of the campaign, ~50 bytes each | `decided_ttl_s` after its last decision |
//! | `ns:replay:<id>/<request>` | string | a recent outcome's journal JSON | `replay_ttl_s` |
//!
//! # Guarantees
//! Publishing happens only after the journal commit (`docs/exactly-once.md` rule 12), so
//! nothing in Redis is ever ahead of the journal. It is at most once per batch with
//! retries: a crash between commit and publish, a queue overflow or a Redis outage longer
//! than `publish_retry_ms_max` loses that batch's messages. No answer is lost with it: the
//! caller's edge times out into 202 with a status URL, and the status lookup reads the
//! journal, which stays the truth. The gate notices the hole (the partition's `gap`) and
//! stops trusting Redis for that partition's campaigns, falling back to journal reads,
//! until the partition's writer rebuilds its state from the journal
//! ([`Publisher::reseed`]; `turnstile serve` does at start).
//!
//! Run Redis with `maxmemory-policy` `noeviction` or a `volatile-*` policy: only the
//! decided sets and replay entries carry a TTL, and losing those is detected. Use one
//! namespace per deployment (data directory and journal).

pub mod gate;
pub mod keys;
pub mod publisher;
pub mod subscriber;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
pub use turnstile_processors::runtime::DecisionListener;

pub use gate::{GateAnswer, RedisGate};
pub use keys::Keys;
pub use publisher::{CampaignSeed, PartitionSeed, Publisher, PublisherHandle};
pub use subscriber::{OutcomeSubscriber, SubscriberHandle, SubscriberStatus};

/// How to start Redis when it is not running; said by every "cannot connect" error.
pub const START_REDIS_HINT: &str =
    "start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`";

/// Where the edges keep the state they share: rate limits, the sold-out gate, the outcome
/// fan-in that lets an edge answer a caller whose request another process decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum EdgeStateConfig {
    /// In the edge's own memory, told by processors in the same process. The embedded
    /// default: one process, no server.
    #[default]
    InProcess,
    /// In Redis, shared by every edge and fed by every processor, wherever they run.
    Redis(RedisConfig),
}

impl FromStr for EdgeStateConfig {
    type Err = Error;

    /// `in-process`, or a Redis URL (`redis://host:6379`, `rediss://…`, `redis://host/2`
    /// for database 2) with every other setting at its default.
    fn from_str(value: &str) -> Result<Self, Error> {
        let value = value.trim();
        if value == "in-process" {
            return Ok(EdgeStateConfig::InProcess);
        }
        if value.starts_with("redis://") || value.starts_with("rediss://") {
            return Ok(EdgeStateConfig::Redis(RedisConfig::new(value)));
        }
        Err(Error::InvalidConfig(format!(
            "edge state {value:?} is neither `in-process` nor a redis:// URL; \
             e.g. --edge-state redis://127.0.0.1:6379"
        )))
    }
}

impl fmt::Display for EdgeStateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EdgeStateConfig::InProcess => f.write_str("in-process"),
            EdgeStateConfig::Redis(redis) => {
                write!(f, "{} (namespace {})", redis.url, redis.namespace)
            }
        }
    }
}

/// The Redis edge state's settings. Every limit is named with its unit last.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// The server: `redis://host:port[/db]`, or `rediss://` for TLS.
    pub url: String,
    /// Prefix of every key and the stream's name, so that several deployments (or
    /// parallel tests) share one Redis without seeing each other. Visible ASCII, no spaces.
    pub namespace: String,
    /// Entries the outcome stream keeps (`XADD MAXLEN ~`), about 0.5 KB each. An edge
    /// disconnected for longer than this many decisions take misses some: its waiting
    /// callers get 202 and its catalog is reloaded from the journal.
    pub stream_entries_max: u64,
    /// How long the replay cache keeps an outcome for the sold-out gate's fast path;
    /// after that a retry on a sold-out campaign reads the journal instead. An entry
    /// takes about 550 bytes, so the cache holds about `decisions/s × this × 550` bytes:
    /// 1.6 GB at 50k decisions/s for a minute. Retries mostly come within seconds.
    pub replay_ttl_s: u64,
    /// How long a campaign's decided set lives after its last decision; after that the
    /// campaign's gate falls back to journal reads for good (its hash, which stays, no
    /// longer matches the set).
    pub decided_ttl_s: u64,
    /// Committed batches waiting to be published; when full, a batch is dropped (its
    /// callers get 202, the gate stops trusting its partition) rather than slowing the
    /// processors, which must not block on Redis.
    pub publish_queue_batches_max: usize,
    /// Batches sent in one pipelined round trip when several are queued.
    pub publish_batches_per_trip_max: usize,
    /// How long one round trip of batches is retried before it is dropped.
    pub publish_retry_ms_max: u64,
    /// First pause before a retry or a reconnect; doubled each time up to the maximum.
    pub backoff_ms_min: u64,
    /// Longest pause between retries or reconnects.
    pub backoff_ms_max: u64,
    /// How long a command may take before it counts as failed (the gate then reads the
    /// journal instead).
    pub command_timeout_ms: u64,
    /// How long the subscriber's `XREAD` blocks waiting for new entries.
    pub read_block_ms: u64,
    /// Most stream entries the subscriber reads at once.
    pub read_entries_max: usize,
}

impl RedisConfig {
    /// The defaults, against the server at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig {
            url: url.into(),
            ..RedisConfig::default()
        }
    }

    /// A copy with another namespace.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Checks the settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if self.namespace.is_empty()
            || self.namespace.len() > keys::NAMESPACE_LEN_MAX_BYTES
            || !self.namespace.chars().all(|c| c.is_ascii_graphic())
        {
            return bad(format!(
                "Redis namespace {:?} must be 1 to {} visible ASCII characters",
                self.namespace,
                keys::NAMESPACE_LEN_MAX_BYTES
            ));
        }
        if self.publish_queue_batches_max == 0 || self.publish_batches_per_trip_max == 0 {
            return bad(
                "publish_queue_batches_max and publish_batches_per_trip_max must be at least 1"
                    .into(),
            );
        }
        if self.read_entries_max == 0 || self.stream_entries_max == 0 {
            return bad("read_entries_max and stream_entries_max must be at least 1".into());
        }
        if self.replay_ttl_s == 0 || self.decided_ttl_s == 0 {
            return bad("replay_ttl_s and decided_ttl_s must be at least 1".into());
        }
        Ok(())
    }

    fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms)
    }

    fn client(&self) -> Result<redis::Client, Error> {
        redis::Client::open(self.url.as_str()).map_err(|e| {
            Error::InvalidConfig(format!("Redis URL {:?} is not valid: {e}", self.url))
        })
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            namespace: "turnstile".into(),
            stream_entries_max: 200_000,
            replay_ttl_s: 60,
            decided_ttl_s: 7 * 24 * 3600,
            publish_queue_batches_max: 1_024,
            publish_batches_per_trip_max: 8,
            publish_retry_ms_max: 5_000,
            backoff_ms_min: 50,
            backoff_ms_max: 2_000,
            command_timeout_ms: 2_000,
            read_block_ms: 1_000,
            read_entries_max: 4_096,
        }
    }
}

/// Errors of the Redis edge state.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No connection could be made.
    #[error("cannot connect to Redis at {url}: {source} ({START_REDIS_HINT}, or point --edge-state at a running server)")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A setting is wrong.
    #[error("{0}")]
    InvalidConfig(String),
    /// Redis held something this build did not write (another program's keys in our
    /// namespace, or a newer format).
    #[error("unexpected data in Redis: {0}")]
    Malformed(String),
}

impl Error {
    /// Whether trying again (after a pause, on a new connection) can succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || !matches!(e.retry_method(), redis::RetryMethod::NoRetry)
            }
            Error::InvalidConfig(_) | Error::Malformed(_) => false,
        }
    }
}

/// A command connection that reconnects by itself (with backoff) after Redis restarts.
async fn connection_manager(config: &RedisConfig) -> Result<redis::aio::ConnectionManager, Error> {
    let client = config.client()?;
    let manager_config = redis::aio::ConnectionManagerConfig::new()
        .set_response_timeout(Some(config.command_timeout()))
        .set_connection_timeout(Some(config.command_timeout()))
        .set_min_delay(Duration::from_millis(config.backoff_ms_min))
        .set_max_delay(Duration::from_millis(config.backoff_ms_max));
    client
        .get_connection_manager_with_config(manager_config)
        .await
        .map_err(|source| Error::Connect {
            url: config.url.clone(),
            source,
        })
}

/// Doubling pauses between `backoff_ms_min` and `backoff_ms_max`.
#[derive(Debug)]
struct Backoff {
    next_ms: u64,
    min_ms: u64,
    max_ms: u64,
}

impl Backoff {
    fn new(config: &RedisConfig) -> Self {
        Backoff {
            next_ms: config.backoff_ms_min,
            min_ms: config.backoff_ms_min,
            max_ms: config.backoff_ms_max.max(config.backoff_ms_min),
        }
    }

    /// The next pause, and doubles the one after.
    fn next(&mut self) -> Duration {
        let pause = self.next_ms;
        self.next_ms = (self.next_ms * 2).clamp(self.min_ms.max(1), self.max_ms.max(1));
        Duration::from_millis(pause)
    }

    fn reset(&mut self) {
        self.next_ms = self.min_ms;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn edge_state_parses_from_the_command_line() {
        assert_eq!(
            "in-process".parse::<EdgeStateConfig>().unwrap(),
            EdgeStateConfig::InProcess
        );
        let EdgeStateConfig::Redis(redis) = "redis://10.0.0.5:6380/2".parse().unwrap() else {
            panic!("a redis URL is Redis");
        };
        assert_eq!(redis.url, "redis://10.0.0.5:6380/2");
        assert_eq!(redis.namespace, "turnstile");
        let err = "memcached://x".parse::<EdgeStateConfig>().unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
    }

    #[test]
    fn a_namespace_with_spaces_is_refused() {
        let config = RedisConfig::default().with_namespace("two words");
        assert!(config.validate().is_err());
        assert!(RedisConfig::default().validate().is_ok());
    }

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let config = RedisConfig {
            backoff_ms_min: 50,
            backoff_ms_max: 300,
            ..RedisConfig::default()
        };
        let mut backoff = Backoff::new(&config);
        let pauses: Vec<u64> = (0..5).map(|_| backoff.next().as_millis() as u64).collect();
        assert_eq!(pauses, vec![50, 100, 200, 300, 300]);
        backoff.reset();
        assert_eq!(backoff.next(), Duration::from_millis(50));
    }
}
