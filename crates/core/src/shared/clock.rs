//! One clock for a shared store: the store's. Scripts judge every lease by
//! `TIME` inside Redis; an instance only needs to know how far its own
//! clock is from the store's, to wake up when a lease is due and to stamp
//! `joinedAt`, so that a skewed instance neither sweeps at the wrong time
//! nor dates a join in the future.

use crate::time::UnixMillis;

/// How much an estimate's uncertainty grows per second of age: what two
/// clocks drift apart by, generously (100 ppm).
const DRIFT_PER_SEC_MS: u64 = 1;

/// An estimate of `store clock - local clock`, learnt from replies that
/// carry the store's time: each one bounds the offset to within half its
/// round trip. Keeps the tightest recent sample (an NTP-style minimum
/// filter), so one slow reply does not move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreClock {
    sample: Option<Sample>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    /// Store minus local, ms.
    offset: i64,
    /// Half the round trip it was measured over, ms.
    uncertainty: u64,
    /// When (local clock).
    at: UnixMillis,
}

impl StoreClock {
    /// No estimate yet: the store's clock is taken to be the local one.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reply sent at `sent` and received at `received` (local clock)
    /// says the store's clock read `store` in between.
    pub fn observe(&mut self, sent: UnixMillis, received: UnixMillis, store: UnixMillis) {
        let (sent, received) = (sent.min(received), sent.max(received));
        let half = (received.0 - sent.0) / 2;
        let midpoint = sent.0 + half;
        let sample = Sample {
            offset: to_i64(store.0) - to_i64(midpoint),
            uncertainty: half,
            at: received,
        };
        if self
            .sample
            .is_none_or(|s| sample.uncertainty <= s.aged(received))
        {
            self.sample = Some(sample);
        }
    }

    /// Takes `other`'s estimate if it is tighter than this one at `now`.
    pub fn merge(&mut self, other: &StoreClock, now: UnixMillis) {
        if let Some(theirs) = other.sample {
            if self
                .sample
                .is_none_or(|mine| theirs.aged(now) < mine.aged(now))
            {
                self.sample = Some(theirs);
            }
        }
    }

    /// Store minus local, ms (0 before any reply).
    pub fn offset_ms(&self) -> i64 {
        self.sample.map_or(0, |s| s.offset)
    }

    /// How far off the estimate may be at `now`, ms.
    pub fn uncertainty_ms(&self, now: UnixMillis) -> u64 {
        self.sample.map_or(0, |s| s.aged(now))
    }

    /// Whether any reply has been observed.
    pub fn is_known(&self) -> bool {
        self.sample.is_some()
    }

    /// The store's clock at local time `local`.
    pub fn store_time(&self, local: UnixMillis) -> UnixMillis {
        shift(local, self.offset_ms())
    }

    /// The local time at which the store's clock reads `store`.
    pub fn local_time(&self, store: UnixMillis) -> UnixMillis {
        shift(store, -self.offset_ms())
    }
}

impl Sample {
    fn aged(&self, now: UnixMillis) -> u64 {
        let age_secs = self.at.until(now) / 1000;
        self.uncertainty
            .saturating_add(age_secs.saturating_mul(DRIFT_PER_SEC_MS))
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn shift(t: UnixMillis, by: i64) -> UnixMillis {
    if by >= 0 {
        t.plus(by.unsigned_abs())
    } else {
        UnixMillis(t.0.saturating_sub(by.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_764_000_000_000;

    #[test]
    fn unknown_means_the_local_clock() {
        let c = StoreClock::new();
        assert!(!c.is_known());
        assert_eq!(c.store_time(UnixMillis(T)), UnixMillis(T));
        assert_eq!(c.local_time(UnixMillis(T)), UnixMillis(T));
    }

    #[test]
    fn a_skewed_local_clock_is_corrected_both_ways() {
        // The local clock is 5 s ahead of the store's.
        let mut c = StoreClock::new();
        c.observe(
            UnixMillis(T + 5_000),
            UnixMillis(T + 5_010),
            UnixMillis(T + 5),
        );
        assert_eq!(c.offset_ms(), -5_000);
        assert_eq!(c.uncertainty_ms(UnixMillis(T + 5_010)), 5);
        assert_eq!(c.store_time(UnixMillis(T + 6_000)), UnixMillis(T + 1_000));
        assert_eq!(c.local_time(UnixMillis(T + 1_000)), UnixMillis(T + 6_000));
        // And behind.
        let mut c = StoreClock::new();
        c.observe(UnixMillis(T), UnixMillis(T), UnixMillis(T + 3_000));
        assert_eq!(c.offset_ms(), 3_000);
    }

    #[test]
    fn the_tightest_sample_wins_until_it_ages() {
        let mut c = StoreClock::new();
        c.observe(UnixMillis(T), UnixMillis(T + 2), UnixMillis(T + 101));
        assert_eq!(c.offset_ms(), 100);
        // A slow reply says something else: ignored.
        c.observe(UnixMillis(T + 10), UnixMillis(T + 410), UnixMillis(T + 900));
        assert_eq!(c.offset_ms(), 100);
        // A minute later the old sample has aged past the new one's bound.
        c.observe(
            UnixMillis(T + 600_000),
            UnixMillis(T + 600_100),
            UnixMillis(T + 600_250),
        );
        assert_eq!(c.offset_ms(), 200);
    }

    #[test]
    fn merge_takes_the_tighter_estimate() {
        let mut a = StoreClock::new();
        let mut b = StoreClock::new();
        b.observe(UnixMillis(T), UnixMillis(T + 2), UnixMillis(T + 51));
        a.merge(&b, UnixMillis(T + 2));
        assert_eq!(a.offset_ms(), 50);
        let mut worse = StoreClock::new();
        worse.observe(UnixMillis(T), UnixMillis(T + 200), UnixMillis(T));
        a.merge(&worse, UnixMillis(T + 200));
        assert_eq!(a.offset_ms(), 50);
    }
}
