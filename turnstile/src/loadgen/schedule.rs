//! When the open loop sends each claim, and for whom: a seeded Poisson process.
//!
//! Real callers do not coordinate with each other, so their claims arrive as a Poisson
//! process: the gaps between arrivals are independent and exponentially distributed with mean
//! `1 / rate`. Evenly spaced requests would understate queueing (no bursts); a Poisson stream
//! has the bursts a real crowd has, at the same average rate.
//!
//! The schedule is a pure function of its seed and settings — the gaps, the user and the
//! resource of every arrival are drawn from one seeded generator in a fixed order — so two runs
//! with the same seed offer exactly the same load, and a surprising result can be re-run.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One claim the schedule asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Position in the schedule, from 0; makes the request's idempotency key unique.
    pub seq: u64,
    /// When it is due, measured from the start of the run.
    pub at: Duration,
    /// The claiming user, `0..users`.
    pub user: u64,
    /// The resource claimed, `0..resources`.
    pub resource: usize,
}

/// The arrivals of one run, in order, ending at the run's duration.
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: StdRng,
    rate_per_sec: f64,
    duration_s: f64,
    users: u64,
    resources: usize,
    /// The time of the last arrival handed out, in seconds from the start. Summing in `f64`
    /// keeps sub-microsecond precision for days.
    clock_s: f64,
    next_seq: u64,
    /// Set once an arrival would fall past the end: the schedule stays ended.
    ended: bool,
}

impl Schedule {
    /// The schedule of `rate_per_sec` claims per second on average for `duration`, each by a
    /// uniformly random one of `users` users on a uniformly random one of `resources`.
    ///
    /// # Panics
    /// If the rate is not a positive finite number, or `users` or `resources` is 0: callers
    /// validate their input first, so that is a bug.
    pub fn new(
        seed: u64,
        rate_per_sec: f64,
        duration: Duration,
        users: u64,
        resources: usize,
    ) -> Self {
        assert!(
            rate_per_sec.is_finite() && rate_per_sec > 0.0,
            "the arrival rate must be positive, got {rate_per_sec}"
        );
        assert!(
            users > 0 && resources > 0,
            "a schedule needs users and resources"
        );
        Self {
            rng: StdRng::seed_from_u64(seed),
            rate_per_sec,
            duration_s: duration.as_secs_f64(),
            users,
            resources,
            clock_s: 0.0,
            next_seq: 0,
            ended: false,
        }
    }
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        if self.ended {
            return None;
        }
        // Inverse transform sampling: for U uniform in [0, 1), -ln(1 - U) / rate is exponential
        // with mean 1 / rate. 1 - U is in (0, 1], so the logarithm is finite.
        let uniform: f64 = self.rng.gen();
        let gap_s = -(1.0 - uniform).ln() / self.rate_per_sec;
        self.clock_s += gap_s;
        if self.clock_s >= self.duration_s {
            self.ended = true;
            return None;
        }
        let arrival = Arrival {
            seq: self.next_seq,
            at: Duration::from_secs_f64(self.clock_s),
            user: self.rng.gen_range(0..self.users),
            resource: self.rng.gen_range(0..self.resources),
        };
        self.next_seq += 1;
        Some(arrival)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps_s(schedule: Schedule) -> Vec<f64> {
        let mut last = Duration::ZERO;
        schedule
            .map(|a| {
                let gap = (a.at - last).as_secs_f64();
                last = a.at;
                gap
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| Schedule::new(seed, 5_000.0, Duration::from_secs(1), 1_000, 4);
        let first: Vec<Arrival> = run(7).collect();
        assert_eq!(first, run(7).collect::<Vec<_>>());
        assert_ne!(first, run(8).collect::<Vec<_>>());
    }

    #[test]
    fn gaps_are_exponential_with_mean_one_over_the_rate() {
        let rate = 20_000.0;
        let gaps = gaps_s(Schedule::new(1, rate, Duration::from_secs(10), 100, 1));
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n;
        // 200,000 gaps: the mean's standard error is 0.2% of it; allow 2%.
        assert!(
            (mean * rate - 1.0).abs() < 0.02,
            "mean gap {mean} s, expected {} s",
            1.0 / rate
        );
        // An exponential's standard deviation equals its mean (evenly spaced arrivals would
        // have none): this is what makes the bursts.
        let cv = variance.sqrt() / mean;
        assert!((cv - 1.0).abs() < 0.02, "coefficient of variation {cv}");
    }

    #[test]
    fn arrivals_fill_the_duration_at_the_rate_and_no_further() {
        let duration = Duration::from_secs(2);
        let arrivals: Vec<Arrival> = Schedule::new(3, 1_000.0, duration, 10, 3).collect();
        // Poisson with mean 2,000: standard deviation about 45; allow 5 of them.
        let n = arrivals.len() as i64;
        assert!((n - 2_000).abs() < 225, "{n} arrivals");
        assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(arrivals.iter().all(|a| a.at < duration));
        assert!(arrivals.iter().enumerate().all(|(i, a)| a.seq == i as u64));
    }

    #[test]
    fn users_and_resources_are_drawn_from_their_whole_range() {
        let arrivals: Vec<Arrival> =
            Schedule::new(4, 10_000.0, Duration::from_secs(1), 50, 4).collect();
        assert!(arrivals.iter().all(|a| a.user < 50 && a.resource < 4));
        for resource in 0..4 {
            let share = arrivals.iter().filter(|a| a.resource == resource).count() as f64
                / arrivals.len() as f64;
            assert!((share - 0.25).abs() < 0.03, "resource {resource}: {share}");
        }
        let mut users: Vec<u64> = arrivals.iter().map(|a| a.user).collect();
        users.sort_unstable();
        users.dedup();
        assert_eq!(users.len(), 50);
    }

    #[test]
    fn an_ended_schedule_stays_ended() {
        let mut schedule = Schedule::new(5, 100.0, Duration::from_millis(50), 1, 1);
        while schedule.next().is_some() {}
        assert!(schedule.next().is_none());
    }
}
