//! Abuse limits every target applies the same way: a per-connection
//! message rate and the allowed browser origins. Pure functions of their
//! inputs (time included), so the edge and native targets cannot drift.

/// A token bucket: `burst` messages at once, refilled at `per_sec` a
/// second. One per connection; the target passes the time in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens in thousandths, so refills need no floating point.
    milli: u64,
    capacity_milli: u64,
    per_sec: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ms` (any monotonic milliseconds).
    /// `per_sec` 0 means no limit.
    pub fn new(per_sec: u32, burst: u32, now_ms: u64) -> Self {
        let capacity_milli = u64::from(burst.max(1)) * 1000;
        TokenBucket {
            milli: capacity_milli,
            capacity_milli,
            per_sec: u64::from(per_sec),
            last_ms: now_ms,
        }
    }

    /// Takes one token for a message at `now_ms`; false when the bucket is
    /// empty (the client is over the rate). A clock that goes backwards
    /// refills nothing.
    pub fn take(&mut self, now_ms: u64) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        // per_sec tokens a second = per_sec thousandths a millisecond.
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(self.per_sec))
            .min(self.capacity_milli);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// Whether an upgrade with this `Origin` header may proceed under
/// `ALLOWED_ORIGINS` (`allowed`, already split). An empty list allows
/// everything; otherwise the header must be present and equal one entry
/// (ASCII case-insensitive, a trailing `/` ignored), or an entry is `*`.
/// Browsers always send `Origin` on a WebSocket upgrade, so a missing one
/// is refused: it is not a listed page.
pub fn origin_allowed<S: AsRef<str>>(allowed: &[S], origin: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(origin) = origin else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    allowed.iter().any(|a| {
        let a = a.as_ref().trim().trim_end_matches('/');
        a == "*" || a.eq_ignore_ascii_case(origin)
    })
}

/// Splits an `ALLOWED_ORIGINS` value (comma or whitespace separated).
pub fn parse_origins(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut b = TokenBucket::new(10, 3, 1000);
        assert!(b.take(1000) && b.take(1000) && b.take(1000));
        assert!(!b.take(1000));
        assert!(!b.take(1099));
        assert!(b.take(1100), "one token after 100 ms at 10/s");
        assert!(!b.take(1100));
        // Long idle refills only up to the burst.
        assert!((0..3).all(|_| b.take(100_000)));
        assert!(!b.take(100_000));
    }

    #[test]
    fn a_client_pinging_every_few_seconds_is_never_limited() {
        let mut b = TokenBucket::new(5, 20, 0);
        assert!((0..1000).all(|i| b.take(i * 3000)));
    }

    #[test]
    fn the_defaults_allow_60_updates_a_second_indefinitely() {
        use crate::defaults::{DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGE_RATE};
        let mut b = TokenBucket::new(DEFAULT_MESSAGE_RATE, DEFAULT_MESSAGE_BURST, 0);
        // An hour of a mousemove handler at 60 Hz whose events come in
        // bunches of up to 30 (a busy main thread), and a ping every 25 s.
        let mut t = 0u64;
        for frame in 0..(60 * 3600u64) {
            let at = (frame / 30) * 500;
            t = t.max(at);
            assert!(b.take(t), "update {frame} at {t} ms refused");
            if frame % 1500 == 0 {
                assert!(b.take(t), "ping at {t} ms refused");
            }
        }
        // The limit still holds a flood back.
        let mut flood = TokenBucket::new(DEFAULT_MESSAGE_RATE, DEFAULT_MESSAGE_BURST, 0);
        assert!(!(0..1000).all(|_| flood.take(0)));
    }

    #[test]
    fn backwards_clock_and_zero_rate() {
        let mut b = TokenBucket::new(1, 1, 5000);
        assert!(b.take(5000));
        assert!(!b.take(0));
        assert!(!b.take(5999));
        assert!(b.take(6000));
        let mut free = TokenBucket::new(0, 1, 0);
        assert!((0..10_000).all(|_| free.take(0)));
        let mut huge = TokenBucket::new(u32::MAX, u32::MAX, 0);
        assert!(huge.take(u64::MAX));
    }

    #[test]
    fn origins() {
        let allowed = parse_origins("https://app.example.com, http://localhost:3000/");
        assert_eq!(allowed.len(), 2);
        assert!(origin_allowed(&allowed, Some("https://app.example.com")));
        assert!(origin_allowed(&allowed, Some("HTTPS://APP.example.com/")));
        assert!(origin_allowed(&allowed, Some("http://localhost:3000")));
        assert!(!origin_allowed(&allowed, Some("https://evil.example.com")));
        assert!(!origin_allowed(
            &allowed,
            Some("https://app.example.com.evil")
        ));
        assert!(!origin_allowed(&allowed, None));
        assert!(origin_allowed::<String>(&[], None));
        assert!(origin_allowed(&["*"], Some("null")));
    }
}
