//! The outbox's timings and bounds (section 14: an answer within 10 s,
//! retries from 1 s doubling to 60 s, for at least an hour), read from
//! `defaults.rs`.

use crate::defaults;

/// The outbox's timings and bounds; the defaults are section 14's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// No answer within this long fails the attempt.
    pub timeout_ms: u64,
    /// The wait after a batch's first failure.
    pub first_retry_ms: u64,
    /// The longest wait between two attempts.
    pub max_retry_ms: u64,
    /// How long a batch is retried from its first failure.
    pub retry_for_ms: u64,
    /// The most events in one batch.
    pub max_batch: usize,
    /// The most batches in flight at once.
    pub max_in_flight: usize,
    /// The most events held.
    pub max_queued: usize,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            timeout_ms: defaults::DEFAULT_WEBHOOK_TIMEOUT_MS,
            first_retry_ms: defaults::DEFAULT_WEBHOOK_FIRST_RETRY_MS,
            max_retry_ms: defaults::DEFAULT_WEBHOOK_MAX_RETRY_MS,
            retry_for_ms: defaults::DEFAULT_WEBHOOK_RETRY_FOR_MS,
            max_batch: defaults::DEFAULT_WEBHOOK_MAX_BATCH,
            max_in_flight: defaults::DEFAULT_WEBHOOK_MAX_IN_FLIGHT,
            max_queued: defaults::DEFAULT_WEBHOOK_MAX_QUEUED,
        }
    }
}

impl OutboxConfig {
    /// The wait after the `failures`-th failure in a row (1-based): the
    /// first retry wait, doubled per further failure, at most the longest.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(63);
        self.first_retry_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_retry_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_one_second_doubling_to_sixty() {
        let c = OutboxConfig::default();
        let waits: Vec<u64> = (1..=9).map(|f| c.backoff_ms(f)).collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
        );
        assert_eq!(c.backoff_ms(u32::MAX), 60_000);
    }
}
