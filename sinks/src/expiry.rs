//! The expiry scheduler: turns due timers into commands on the log.
//!
//! Timers are rows of the journal, made and deleted by the processors' batch commits
//! (`docs/exactly-once.md`, rules 33–38). The scheduler only reads them: each pass it pages
//! through every timer due by its [`Clock`], appends the command of each one it has not
//! appended yet — stamped with the timer's due time, so the decision is the one a punctual
//! scheduler would have got — and remembers it as in flight until the timer's row is gone.
//! A crash forgets what was in flight, so the next start appends those timers again: late,
//! never lost, and a second delivery of a timer's request id is a duplicate the processor
//! answers with the first outcome.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::watch;
use turnstile_journal::{Journal, TimerRow};
use turnstile_schemas::{Envelope, ENVELOPE_VERSION};

use crate::clock::Clock;
use crate::Error;

/// Why an append to the log failed.
pub type AppendError = Box<dyn std::error::Error + Send + Sync>;

/// The log the scheduler writes timer commands to (the one the edge writes to).
pub trait CommandAppender: Send + Sync + 'static {
    /// Appends `payload` to `partition`; resolves once the record is durable.
    fn append(
        &self,
        partition: u32,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<u64, AppendError>> + Send;
}

/// How the scheduler paces itself.
#[derive(Debug, Clone)]
pub struct ExpiryConfig {
    /// Pause between passes over the due timers.
    pub poll_interval_ms: u64,
    /// Timers read from the journal per page.
    pub page_timers_max: u32,
    /// Timers appended and not yet decided that the scheduler remembers; beyond it, due
    /// timers wait for the next pass.
    pub timers_in_flight_max: usize,
    /// Appends awaited at once (the log commits them as one group).
    pub appends_concurrent_max: usize,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        ExpiryConfig {
            poll_interval_ms: 500,
            page_timers_max: 4_096,
            timers_in_flight_max: 200_000,
            appends_concurrent_max: 1_024,
        }
    }
}

/// Fires due timers into the log.
#[derive(Debug)]
pub struct ExpiryScheduler<A, C> {
    config: ExpiryConfig,
    journal: Journal,
    appender: A,
    clock: C,
    /// `(resource_id, timer_id)` of timers appended whose rows were still there at the
    /// last look: not to be appended again while their commands wait to be decided.
    in_flight: HashSet<(String, String)>,
}

impl<A: CommandAppender, C: Clock> ExpiryScheduler<A, C> {
    /// A scheduler over `journal`'s timers, appending through `appender`.
    pub fn new(config: ExpiryConfig, journal: Journal, appender: A, clock: C) -> Self {
        ExpiryScheduler {
            config,
            journal,
            appender,
            clock,
            in_flight: HashSet::new(),
        }
    }

    /// Fires timers until `shutdown` turns true. Failures are logged and retried next pass.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let pause = Duration::from_millis(self.config.poll_interval_ms);
        while !*shutdown.borrow() {
            match self.fire_due().await {
                Ok(0) => {}
                Ok(fired) => tracing::debug!(fired, "expiry timers fired"),
                Err(e) => {
                    tracing::warn!(error = %e, retriable = e.is_retriable(), "firing timers failed; retrying")
                }
            }
            if !crate::rest(pause, &mut shutdown).await {
                return;
            }
        }
    }

    /// One pass: appends every due timer not in flight (up to the in-flight limit) and
    /// returns how many it appended.
    pub async fn fire_due(&mut self) -> Result<usize, Error> {
        let now = self.clock.now();
        let mut due_now = HashSet::new();
        let mut fired = 0;
        let mut after: Option<TimerRow> = None;
        loop {
            let page = self
                .journal
                .due_timers(now, after.as_ref(), self.config.page_timers_max)
                .await?;
            let last_page = page.len() < self.config.page_timers_max as usize;
            let mut to_fire = Vec::new();
            for timer in &page {
                let key = (timer.resource_id.clone(), timer.timer_id.clone());
                let room = self.in_flight.len() + to_fire.len() < self.config.timers_in_flight_max;
                if room && !self.in_flight.contains(&key) {
                    to_fire.push(timer);
                }
                due_now.insert(key);
            }
            fired += self.append_all(&to_fire).await?;
            if last_page {
                break;
            }
            after = page.last().cloned();
        }
        // A timer whose row is gone has taken effect; one still due stays in flight.
        self.in_flight.retain(|key| due_now.contains(key));
        Ok(fired)
    }

    /// Appends the commands of `timers`, a bounded number at a time; each appended timer
    /// is in flight from then on.
    async fn append_all(&mut self, timers: &[&TimerRow]) -> Result<usize, Error> {
        for chunk in timers.chunks(self.config.appends_concurrent_max.max(1)) {
            let appends = chunk.iter().map(|timer| {
                self.appender
                    .append(timer.partition, timer_envelope(timer).to_log_bytes())
            });
            let results = join_all(appends).await;
            for (timer, result) in chunk.iter().zip(results) {
                result.map_err(|e| Error::Append(e.to_string()))?;
                self.in_flight
                    .insert((timer.resource_id.clone(), timer.timer_id.clone()));
            }
        }
        Ok(timers.len())
    }
}

/// The command a timer fires: its request id is the timer's id, and its time the timer's
/// due time (`docs/exactly-once.md`, rule 34).
pub fn timer_envelope(timer: &TimerRow) -> Envelope {
    Envelope {
        v: ENVELOPE_VERSION,
        request_id: timer.timer_id.clone(),
        resource_id: timer.resource_id.clone(),
        user_id: timer.user_id.clone(),
        submitted_at: timer.due_at,
        traceparent: None,
        command: timer.command.clone(),
    }
}
