//! Time as the core sees it: milliseconds since the Unix epoch, always passed
//! in by the target, so the state machines are deterministic under test.

use std::fmt;

use chrono::{DateTime, SecondsFormat};

/// A point in time in milliseconds since the Unix epoch. The core never reads
/// a clock; every input that depends on time carries one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixMillis(pub u64);

impl UnixMillis {
    /// This instant plus `ms` milliseconds, saturating rather than wrapping so
    /// a huge TTL means "practically never" instead of "already expired".
    pub fn plus(self, ms: u64) -> Self {
        UnixMillis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `self` until `later`, zero if `later` is not later.
    pub fn until(self, later: UnixMillis) -> u64 {
        later.0.saturating_sub(self.0)
    }

    /// RFC 3339, UTC, millisecond precision, `Z` suffix: the `joinedAt`
    /// format that the 2015 clients parse.
    pub fn to_rfc3339(self) -> String {
        let millis = i64::try_from(self.0).unwrap_or(i64::MAX);
        match DateTime::from_timestamp_millis(millis) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
            None => "9999-12-31T23:59:59.999Z".to_owned(),
        }
    }

    /// Parses the `joinedAt` format back, for stores that keep client records
    /// as wire JSON.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let t = DateTime::parse_from_rfc3339(s).ok()?;
        u64::try_from(t.timestamp_millis()).ok().map(UnixMillis)
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_2015_service() {
        assert_eq!(
            UnixMillis(1_433_538_566_480).to_rfc3339(),
            "2015-06-05T21:09:26.480Z"
        );
        assert_eq!(UnixMillis(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_it_formats() {
        let t = UnixMillis(1_433_538_566_480);
        assert_eq!(UnixMillis::parse_rfc3339(&t.to_rfc3339()), Some(t));
        assert_eq!(UnixMillis::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn arithmetic_saturates() {
        assert_eq!(UnixMillis(u64::MAX - 1).plus(10), UnixMillis(u64::MAX));
        assert_eq!(UnixMillis(10).until(UnixMillis(4)), 0);
        assert_eq!(UnixMillis(4).until(UnixMillis(10)), 6);
    }
}
