//! The one place the native server reads the wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use longhouse_core::UnixMillis;

/// Now, as the core wants it.
pub fn now() -> UnixMillis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    UnixMillis(u64::try_from(ms).unwrap_or(u64::MAX))
}
