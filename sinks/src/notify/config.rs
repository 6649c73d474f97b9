//! The notifier's settings. Every loop, batch, retry and queue has a named limit.

use super::RecipientRule;

/// How a notifier delivers.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// The sink's name in the journal (progress and ledger): `mailbox` or `ses`. Two
    /// notifiers with different names each send every message once.
    pub sink: String,
    /// Sender address (`From`). With SES it must be a verified identity.
    pub from: String,
    /// How a user id becomes an address.
    pub recipients: RecipientRule,
    /// Pause between passes when the outbox has nothing new.
    pub poll_interval_ms: u64,
    /// Most outbox entries read per partition per pass; progress is saved after each.
    pub batch_outcomes_max: u32,
    /// Most messages handed to the provider at once. Each is `sending` in the ledger while
    /// in flight, so a crash leaves at most this many whose fate is unknown (and resent
    /// with the same `Message-ID`).
    pub sends_in_flight_max: usize,
    /// Most provider calls per message for transient errors; after that the delivery is
    /// recorded `failed` ("gave up after N attempts") and can be re-driven.
    pub send_attempts_max: u32,
    /// Backoff before the first retry; it doubles per retry.
    pub retry_backoff_ms_min: u64,
    /// Longest backoff between two retries.
    pub retry_backoff_ms_max: u64,
}

impl NotifierConfig {
    /// Defaults for the sink `sink` sending as `from`.
    pub fn new(sink: impl Into<String>, from: impl Into<String>) -> Self {
        NotifierConfig {
            sink: sink.into(),
            from: from.into(),
            recipients: RecipientRule::default(),
            poll_interval_ms: 200,
            batch_outcomes_max: 1_000,
            sends_in_flight_max: 8,
            send_attempts_max: 8,
            retry_backoff_ms_min: 100,
            retry_backoff_ms_max: 10_000,
        }
    }

    /// The pause before retry number `retry` (1 for the first).
    pub fn retry_backoff_ms(&self, retry: u32) -> u64 {
        let doubled = self.retry_backoff_ms_min.saturating_mul(
            1u64.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u64::MAX),
        );
        doubled.min(self.retry_backoff_ms_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let config = NotifierConfig::new("ses", "a@b.example");
        let backoffs: Vec<u64> = (1..=9).map(|r| config.retry_backoff_ms(r)).collect();
        assert_eq!(
            backoffs,
            [100, 200, 400, 800, 1_600, 3_200, 6_400, 10_000, 10_000]
        );
        assert_eq!(config.retry_backoff_ms(200), 10_000);
    }
}
