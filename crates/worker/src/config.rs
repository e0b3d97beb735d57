//! The edge target's configuration: the Worker vars (and secrets) of
//! `wrangler.toml`, PROTOCOL.md section 9 plus the abuse limits, with the
//! same names and defaults as the native server.
//!
//! This module is plain Rust so that it compiles (and is tested) on the host.

use std::fmt;

use longhouse_core::{
    parse_origins, DEFAULT_MAX_CLIENTS_PER_SPACE, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MESSAGE_BURST,
    DEFAULT_MESSAGE_RATE, DEFAULT_PRESENCE_TTL_MS,
};

/// The vars the edge target reads, already validated.
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `PRESENCE_TTL`: lease length in milliseconds.
    pub presence_ttl_ms: u64,
    /// `MAX_MESSAGE_BYTES`: largest accepted frame in bytes.
    pub max_message_bytes: usize,
    /// `MAX_CLIENTS_PER_SPACE`: leases per space, 0 for no limit.
    pub max_clients_per_space: usize,
    /// `MESSAGE_RATE`: messages a second per connection, 0 for no limit.
    pub message_rate: u32,
    /// `MESSAGE_BURST`: messages at once per connection.
    pub message_burst: u32,
    /// `ALLOWED_ORIGINS`, split; empty allows any origin.
    pub allowed_origins: Vec<String>,
    /// `AUTH_SECRET` (a Worker secret): joins need a token when set.
    pub auth_secret: Option<String>,
    /// `AUTH_SECRET_PREVIOUS`: also accepted, during a rotation.
    pub auth_secret_previous: Option<String>,
    /// `TRACE_HANDLERS=1`: one log line per handler invocation and per
    /// rebuild after a wake, so tests can see what woke the object.
    pub trace_handlers: bool,
}

impl fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_struct("EdgeConfig")
            .field("presence_ttl_ms", &self.presence_ttl_ms)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_clients_per_space", &self.max_clients_per_space)
            .field("message_rate", &self.message_rate)
            .field("message_burst", &self.message_burst)
            .field("allowed_origins", &self.allowed_origins)
            .field("auth", &self.auth_secret.is_some())
            .field("trace_handlers", &self.trace_handlers)
            .finish()
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            presence_ttl_ms: DEFAULT_PRESENCE_TTL_MS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_clients_per_space: DEFAULT_MAX_CLIENTS_PER_SPACE,
            message_rate: DEFAULT_MESSAGE_RATE,
            message_burst: DEFAULT_MESSAGE_BURST,
            allowed_origins: Vec::new(),
            auth_secret: None,
            auth_secret_previous: None,
            trace_handlers: false,
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
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        fn number<T: std::str::FromStr>(
            name: &'static str,
            value: Option<String>,
            default: T,
        ) -> Result<T, ConfigError> {
            match value {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<T>()
                    .map_err(|_| ConfigError { name, value }),
            }
        }
        Ok(Self {
            presence_ttl_ms: number("PRESENCE_TTL", get("PRESENCE_TTL"), DEFAULT_PRESENCE_TTL_MS)?
                .max(1),
            max_message_bytes: number(
                "MAX_MESSAGE_BYTES",
                get("MAX_MESSAGE_BYTES"),
                DEFAULT_MAX_MESSAGE_BYTES,
            )?,
            max_clients_per_space: number(
                "MAX_CLIENTS_PER_SPACE",
                get("MAX_CLIENTS_PER_SPACE"),
                DEFAULT_MAX_CLIENTS_PER_SPACE,
            )?,
            message_rate: number("MESSAGE_RATE", get("MESSAGE_RATE"), DEFAULT_MESSAGE_RATE)?,
            message_burst: number("MESSAGE_BURST", get("MESSAGE_BURST"), DEFAULT_MESSAGE_BURST)?
                .max(1),
            allowed_origins: get("ALLOWED_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            auth_secret: get("AUTH_SECRET"),
            auth_secret_previous: get("AUTH_SECRET_PREVIOUS"),
            trace_handlers: get("TRACE_HANDLERS").is_some_and(|v| v.trim() == "1"),
        })
    }

    /// The space-full limit as the core takes it.
    pub fn max_clients(&self) -> Option<usize> {
        (self.max_clients_per_space > 0).then_some(self.max_clients_per_space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn unset_vars_take_the_native_defaults() {
        let config = EdgeConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config, EdgeConfig::default());
        assert_eq!(config.presence_ttl_ms, 60_000);
        assert_eq!(config.max_message_bytes, 4096);
        assert_eq!(config.max_clients(), Some(1000));
        assert_eq!((config.message_rate, config.message_burst), (10, 20));
        assert!(config.allowed_origins.is_empty());
        assert_eq!(config.auth_secret, None);
    }

    #[test]
    fn set_vars_are_parsed() {
        let config = EdgeConfig::from_lookup(lookup(&[
            ("PRESENCE_TTL", "3000"),
            ("MAX_MESSAGE_BYTES", "64"),
            ("MAX_CLIENTS_PER_SPACE", "0"),
            ("MESSAGE_RATE", "5"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example"),
            ("AUTH_SECRET", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(config.presence_ttl_ms, 3000);
        assert_eq!(config.max_message_bytes, 64);
        assert_eq!(config.max_clients(), None);
        assert_eq!(config.message_rate, 5);
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(config.auth_secret.as_deref(), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_bad_value_names_the_var() {
        let err = EdgeConfig::from_lookup(lookup(&[("MAX_MESSAGE_BYTES", "4k")])).unwrap_err();
        assert_eq!(err.name, "MAX_MESSAGE_BYTES");
        assert!(err.to_string().contains("MAX_MESSAGE_BYTES"));
        let err = EdgeConfig::from_lookup(lookup(&[("MESSAGE_RATE", "-1")])).unwrap_err();
        assert_eq!(err.name, "MESSAGE_RATE");
    }
}
