//! The edge target's configuration: the Worker vars of `wrangler.toml`
//! (PROTOCOL.md section 9), parsed the same way on every target.
//!
//! This module is plain Rust so that it compiles (and is tested) on the host.

use std::fmt;

/// Default lease length, milliseconds.
pub const DEFAULT_PRESENCE_TTL_MS: u64 = 60_000;
/// Default largest accepted message, bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 4_096;
/// Default keepalive period on the edge, milliseconds: off, so that idle
/// spaces can hibernate.
pub const DEFAULT_KEEPALIVE_MS: u64 = 0;

/// The vars the edge target reads, already validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `PRESENCE_TTL`: lease length in milliseconds.
    pub presence_ttl_ms: u64,
    /// `MAX_MESSAGE_BYTES`: largest accepted frame in bytes.
    pub max_message_bytes: u64,
    /// `KEEPALIVE_MS`: keepalive period in milliseconds; 0 is off.
    pub keepalive_ms: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            presence_ttl_ms: DEFAULT_PRESENCE_TTL_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            keepalive_ms: DEFAULT_KEEPALIVE_MS,
        }
    }
}

/// A var that is set but does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The var's name, e.g. `PRESENCE_TTL`.
    pub name: &'static str,
    /// The value as given.
    pub value: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} must be a non-negative integer, got {:?}",
            self.name, self.value
        )
    }
}

impl std::error::Error for ConfigError {}

impl EdgeConfig {
    /// Reads the vars through `lookup` (which returns `None` for an unset
    /// var); unset or empty vars take their defaults.
    ///
    /// # Errors
    ///
    /// The first var that is set but is not a non-negative integer.
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let mut read = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) if value.trim().is_empty() => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ConfigError { name, value }),
            }
        };
        let presence_ttl_ms = read("PRESENCE_TTL", DEFAULT_PRESENCE_TTL_MS)?;
        let max_message_bytes = read("MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES)?;
        let keepalive_ms = read("KEEPALIVE_MS", DEFAULT_KEEPALIVE_MS)?;
        Ok(Self {
            presence_ttl_ms,
            max_message_bytes,
            keepalive_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl FnMut(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn unset_vars_take_defaults() {
        assert_eq!(
            EdgeConfig::from_lookup(lookup(&[])),
            Ok(EdgeConfig::default())
        );
    }

    #[test]
    fn set_vars_are_parsed() {
        let config = EdgeConfig::from_lookup(lookup(&[
            ("PRESENCE_TTL", "3000"),
            ("MAX_MESSAGE_BYTES", "64"),
            ("KEEPALIVE_MS", "0"),
        ]))
        .unwrap();
        assert_eq!(config.presence_ttl_ms, 3000);
        assert_eq!(config.max_message_bytes, 64);
        assert_eq!(config.keepalive_ms, 0);
    }

    #[test]
    fn a_bad_value_names_the_var() {
        let err = EdgeConfig::from_lookup(lookup(&[("MAX_MESSAGE_BYTES", "4k")])).unwrap_err();
        assert_eq!(err.name, "MAX_MESSAGE_BYTES");
        assert!(err.to_string().contains("MAX_MESSAGE_BYTES"));
    }
}
