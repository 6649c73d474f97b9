//! Bot and macro blocking at the edge: per-user and per-IP token buckets and a per-user cap
//! on writes in flight. Everything here is in this edge's memory: several edges each limit
//! on their own (a user spread over N edges gets up to N times the rate).
//!
//! # The buckets
//! A hand-written keyed token bucket in its GCRA form (the "generic cell rate algorithm",
//! what `governor` implements too): per key one number, the theoretical arrival time `tat`
//! of the next request if the key sent at exactly its rate. A request at `now` is allowed
//! when `max(tat, now) + interval - now <= burst * interval`, and then moves `tat` on by one
//! interval; refused, it waits `max(tat, now) + interval - now - burst * interval`. So a key
//! idle long enough has its whole burst again, and a key whose `tat` is in the past is
//! indistinguishable from one never seen: forgetting it changes nothing.
//!
//! Not `governor`: it is not in the dependency tree yet, and its keyed state is a `DashMap`
//! whose memory grows with every key ever seen until someone calls `retain_recent`; here the
//! bound is a hard cap enforced on insert (see below), with no background task.
//!
//! # Memory
//! Each limiter holds at most `keys_max` keys, in [`SHARDS`] mutex-guarded shards (a shard
//! holds at most `keys_max / SHARDS`). A new key in a full shard first drops the shard's
//! idle keys (`tat` in the past: dropping them changes no answer); if every key is active,
//! the one whose `tat` is oldest (the least limited) goes: under a flood of distinct keys
//! the limit loosens for the least limited key rather than memory growing or new users
//! being refused. The in-flight counts hold a key only while it has a request in flight.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::error::Failure;

/// Shards of each keyed limiter (fewer lock collisions between concurrent requests).
pub const SHARDS: usize = 16;

/// Default of [`LimitsConfig::keys_max`].
pub const KEYS_MAX_DEFAULT: usize = 100_000;

/// The edge's limits; every one is off at 0 (the default).
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    /// Each user's sustained rate of writes; 0: no per-user rate limit.
    pub user_requests_per_second: f64,
    /// Writes a user may make at once after being idle (at least 1).
    pub user_burst: u32,
    /// Each client IP's sustained rate of users' writes; 0: no per-IP rate limit.
    pub ip_requests_per_second: f64,
    /// Writes an IP may make at once after being idle (at least 1).
    pub ip_burst: u32,
    /// Most writes of one user in flight at once; 0: no cap.
    pub user_in_flight_max: u32,
    /// Most keys (users, IPs) each rate limiter remembers.
    pub keys_max: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            user_requests_per_second: 0.0,
            user_burst: 10,
            ip_requests_per_second: 0.0,
            ip_burst: 100,
            user_in_flight_max: 0,
            keys_max: KEYS_MAX_DEFAULT,
        }
    }
}

impl LimitsConfig {
    /// The limits that are on, for a log line; `None` when all are off.
    pub fn describe(&self) -> Option<String> {
        let mut on = Vec::new();
        if self.user_requests_per_second > 0.0 {
            on.push(format!(
                "{}/s per user (bursts of {})",
                self.user_requests_per_second, self.user_burst
            ));
        }
        if self.ip_requests_per_second > 0.0 {
            on.push(format!(
                "{}/s per IP (bursts of {})",
                self.ip_requests_per_second, self.ip_burst
            ));
        }
        if self.user_in_flight_max > 0 {
            on.push(format!("{} in flight per user", self.user_in_flight_max));
        }
        (!on.is_empty()).then(|| on.join(", "))
    }
}

/// The limits of one edge, shared by its handlers.
#[derive(Debug)]
pub struct Limits {
    user: Option<KeyedBucket<String>>,
    ip: Option<KeyedBucket<IpAddr>>,
    in_flight: Option<Arc<InFlightCounts>>,
}

impl Limits {
    pub fn new(config: &LimitsConfig) -> Self {
        fn bucket<K: Hash + Eq + Clone>(
            rate: f64,
            burst: u32,
            keys_max: usize,
        ) -> Option<KeyedBucket<K>> {
            (rate > 0.0 && rate.is_finite()).then(|| KeyedBucket::new(rate, burst, keys_max))
        }
        let keys_max = config.keys_max;
        Limits {
            user: bucket(config.user_requests_per_second, config.user_burst, keys_max),
            ip: bucket(config.ip_requests_per_second, config.ip_burst, keys_max),
            in_flight: (config.user_in_flight_max > 0).then(|| {
                Arc::new(InFlightCounts {
                    max: config.user_in_flight_max,
                    counts: Mutex::new(HashMap::new()),
                })
            }),
        }
    }

    /// The per-IP rate limit: 429 `rate_limited` with Retry-After when `ip` is over it.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Failure> {
        let Some(bucket) = &self.ip else {
            return Ok(());
        };
        bucket.check(&ip).map_err(|wait| {
            rate_limited(
                format!("too many writes from this IP address ({ip}); its limit is {} per second with bursts of {}", bucket.rate(), bucket.burst),
                wait,
            )
        })
    }

    /// A user's write: the per-user rate limit, then a slot among the user's writes in
    /// flight, held until the returned guard is dropped (when the answer is ready).
    pub fn admit_user(&self, user_id: &str) -> Result<InFlight, Failure> {
        if let Some(bucket) = &self.user {
            bucket.check(user_id).map_err(|wait| {
                rate_limited(
                    format!("too many writes by user {user_id:?}; the per-user limit is {} per second with bursts of {}", bucket.rate(), bucket.burst),
                    wait,
                )
            })?;
        }
        let Some(counts) = &self.in_flight else {
            return Ok(InFlight(None));
        };
        counts.enter(user_id)
    }
}

fn rate_limited(message: String, wait: Duration) -> Failure {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Failure::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        .retry_after(seconds.max(1))
        .fix(
            "wait as long as the Retry-After header says, then retry with the same Idempotency-Key",
        )
}

/// A GCRA token bucket per key, in shards, with at most `keys_max` keys.
#[derive(Debug)]
pub struct KeyedBucket<K> {
    /// Nanoseconds between two requests at the sustained rate.
    interval_ns: u64,
    burst: u32,
    shard_keys_max: usize,
    start: Instant,
    hasher: std::collections::hash_map::RandomState,
    /// Per key: its theoretical arrival time, in nanoseconds since `start`.
    shards: Vec<Mutex<HashMap<K, u64>>>,
}

impl<K: Hash + Eq + Clone> KeyedBucket<K> {
    /// `rate` requests per second sustained, `burst` at once (at least 1), `keys_max` keys.
    pub fn new(rate: f64, burst: u32, keys_max: usize) -> Self {
        KeyedBucket {
            interval_ns: ((1e9 / rate).round() as u64).max(1),
            burst: burst.max(1),
            shard_keys_max: (keys_max / SHARDS).max(1),
            start: Instant::now(),
            hasher: Default::default(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// The sustained rate, per second.
    pub fn rate(&self) -> f64 {
        1e9 / self.interval_ns as f64
    }

    /// Takes a token for `key` now, or says how long until one is there.
    pub fn check<Q>(&self, key: &Q) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(key, now)
    }

    /// [`KeyedBucket::check`] at `now` nanoseconds since the bucket was made.
    pub fn check_at<Q>(&self, key: &Q, now: u64) -> Result<(), Duration>
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let shard = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tolerance = self.interval_ns.saturating_mul(u64::from(self.burst));
        let tat = shard.get(key).copied().unwrap_or(now).max(now);
        let next = tat.saturating_add(self.interval_ns);
        if next - now > tolerance {
            return Err(Duration::from_nanos(next - now - tolerance));
        }
        match shard.get_mut(key) {
            Some(slot) => *slot = next,
            None => {
                if shard.len() >= self.shard_keys_max {
                    // Idle keys first: their bucket is full, forgetting them changes nothing.
                    shard.retain(|_, tat| *tat > now);
                }
                if shard.len() >= self.shard_keys_max {
                    // Every key is active: the least limited one goes.
                    if let Some(oldest) = shard
                        .iter()
                        .min_by_key(|(_, tat)| **tat)
                        .map(|(k, _)| k.clone())
                    {
                        shard.remove::<K>(&oldest);
                    }
                }
                shard.insert(key.to_owned(), next);
            }
        }
        Ok(())
    }

    /// Keys remembered, over all shards.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes in flight per user.
#[derive(Debug)]
struct InFlightCounts {
    max: u32,
    counts: Mutex<HashMap<String, u32>>,
}

impl InFlightCounts {
    fn enter(self: &Arc<Self>, user_id: &str) -> Result<InFlight, Failure> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(user_id.to_string()).or_insert(0);
        if *count >= self.max {
            return Err(Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_in_flight",
                format!(
                    "user {user_id:?} already has {} writes in flight, the most this edge takes at once",
                    self.max
                ),
            )
            .retry_after(1)
            .fix("wait for an answer before sending the next write"));
        }
        *count += 1;
        Ok(InFlight(Some((self.clone(), user_id.to_string()))))
    }

    fn leave(&self, user_id: &str) {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(user_id) {
            *count -= 1;
            if *count == 0 {
                counts.remove(user_id);
            }
        }
    }
}

/// A user's slot among its writes in flight; freed when dropped.
#[derive(Debug)]
#[must_use = "the slot is freed when dropped: hold it until the write is answered"]
pub struct InFlight(Option<(Arc<InFlightCounts>, String)>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((counts, user_id)) = &self.0 {
            counts.leave(user_id);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        // 2 per second, bursts of 3.
        let bucket = KeyedBucket::<String>::new(2.0, 3, 1_000);
        for _ in 0..3 {
            bucket.check_at("ann", 0).unwrap();
        }
        // The 4th at once waits one interval (half a second).
        assert_eq!(
            bucket.check_at("ann", 0).unwrap_err(),
            Duration::from_millis(500)
        );
        // Another key has its own bucket.
        bucket.check_at("bob", 0).unwrap();
        // Half a second later one token is back, and only one.
        bucket.check_at("ann", SECOND / 2).unwrap();
        assert_eq!(
            bucket.check_at("ann", SECOND / 2).unwrap_err(),
            Duration::from_millis(500)
        );
        // A refusal takes no token: a quarter second on, the wait is a quarter second.
        assert_eq!(
            bucket.check_at("ann", 3 * SECOND / 4).unwrap_err(),
            Duration::from_millis(250)
        );
        // Idle long enough, the whole burst is back (and no more).
        for _ in 0..3 {
            bucket.check_at("ann", 10 * SECOND).unwrap();
        }
        bucket.check_at("ann", 10 * SECOND).unwrap_err();
    }

    #[test]
    fn slow_rates_and_retry_after_in_whole_seconds() {
        // One every 10 seconds, no burst beyond the one.
        let bucket = KeyedBucket::<IpAddr>::new(0.1, 1, 1_000);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        bucket.check_at(&ip, 0).unwrap();
        assert_eq!(
            bucket.check_at(&ip, SECOND / 2).unwrap_err(),
            Duration::from_millis(9_500)
        );
        let failure = rate_limited("m".into(), Duration::from_millis(9_500));
        assert_eq!(failure.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(failure.code(), "rate_limited");
        assert_eq!(failure.retry_after_secs(), Some(10));
        // Never less than one second, never zero.
        let failure = rate_limited("m".into(), Duration::from_millis(3));
        assert_eq!(failure.retry_after_secs(), Some(1));
    }

    #[test]
    fn memory_is_bounded_and_idle_keys_go_first() {
        let keys_max = 4 * SHARDS;
        let bucket = KeyedBucket::<String>::new(1.0, 1, keys_max);
        // A flood of distinct keys, all active (each just took its only token).
        for i in 0..10 * keys_max {
            bucket.check_at(&format!("bot-{i}"), 0).unwrap();
            assert!(bucket.len() <= keys_max, "{} keys", bucket.len());
        }
        // Later, every one of them is idle again: a newcomer makes its shard drop them.
        bucket.check_at("ann", 5 * SECOND).unwrap();
        assert!(bucket.len() < keys_max);
        // An active key survives the purge of idle ones: its limit still holds.
        let bucket = KeyedBucket::<String>::new(1.0, 1, SHARDS);
        bucket.check_at("old", 0).unwrap();
        bucket.check_at("busy", 5 * SECOND).unwrap();
        for i in 0..100 {
            bucket.check_at(&format!("k{i}"), 5 * SECOND + 1).ok();
        }
        assert!(bucket.len() <= SHARDS);
    }

    #[test]
    fn users_and_ips_are_off_at_zero() {
        let limits = Limits::new(&LimitsConfig::default());
        for _ in 0..1_000 {
            limits.check_ip("127.0.0.1".parse().unwrap()).unwrap();
            // Guards dropped at once; held ones would not be capped either.
            let _held = limits.admit_user("ann").unwrap();
        }
        let held: Vec<_> = (0..100)
            .map(|_| limits.admit_user("ann").unwrap())
            .collect();
        assert_eq!(held.len(), 100);
    }

    #[test]
    fn the_in_flight_cap_counts_held_slots_per_user() {
        let limits = Limits::new(&LimitsConfig {
            user_in_flight_max: 2,
            ..LimitsConfig::default()
        });
        let first = limits.admit_user("ann").unwrap();
        let second = limits.admit_user("ann").unwrap();
        let refused = limits.admit_user("ann").unwrap_err();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.code(), "too_many_in_flight");
        // Another user is not affected.
        let _bob = limits.admit_user("bob").unwrap();
        // A slot freed is a slot available again.
        drop(first);
        let _third = limits.admit_user("ann").unwrap();
        limits.admit_user("ann").unwrap_err();
        drop(second);
        drop(_third);
        // A user with nothing in flight takes no memory.
        let counts = limits.in_flight.as_ref().unwrap();
        assert!(!counts.counts.lock().unwrap().contains_key("ann"));
    }

    #[test]
    fn the_user_limit_names_the_user_and_the_ip_limit_the_ip() {
        let limits = Limits::new(&LimitsConfig {
            user_requests_per_second: 1.0,
            user_burst: 1,
            ip_requests_per_second: 1.0,
            ip_burst: 1,
            ..LimitsConfig::default()
        });
        let _ = limits.admit_user("ann").unwrap();
        let refused = limits.admit_user("ann").unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            refused.message().contains("per-user"),
            "{}",
            refused.message()
        );
        let ip = "198.51.100.1".parse().unwrap();
        limits.check_ip(ip).unwrap();
        let refused = limits.check_ip(ip).unwrap_err();
        assert_eq!(refused.code(), "rate_limited");
        assert!(
            refused.message().contains("IP address"),
            "{}",
            refused.message()
        );
    }
}
