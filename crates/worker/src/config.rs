//! The edge target's configuration: the Worker vars (and secrets) of
//! `wrangler.toml`, PROTOCOL.md section 9 plus the abuse limits, with the
//! same names and defaults as the native server.
//!
//! This module is plain Rust so that it compiles (and is tested) on the host.

use std::fmt;

use longhouse_core::{
    parse_origins, DEFAULT_KEEPALIVE_MS, DEFAULT_MAX_CLIENTS_PER_SPACE, DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_STATE_BYTES, DEFAULT_MESSAGE_BURST, DEFAULT_MESSAGE_RATE, DEFAULT_PRESENCE_TTL_MS,
    DEFAULT_UPDATE_INTERVAL_MS,
};

/// The vars the edge target reads, already validated.
#[derive(Clone, PartialEq, Eq)]
pub struct EdgeConfig {
    /// `PRESENCE_TTL`: lease length in milliseconds.
    pub presence_ttl_ms: u64,
    /// `MAX_MESSAGE_BYTES`: largest accepted frame in bytes.
    pub max_message_bytes: usize,
    /// `MAX_STATE_BYTES`: largest state (as sent) or token `info`, bytes.
    pub max_state_bytes: usize,
    /// `UPDATE_INTERVAL_MS`: one client's updates reach the others at most
    /// once per this many ms (0: every one).
    pub update_interval_ms: u64,
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
    /// `ADMIN_TOKEN` (a Worker secret): the server API's bearer token;
    /// unset, the API's `POST` and `DELETE` are 404.
    pub admin_token: Option<String>,
    /// `WEBHOOK_URL` and `WEBHOOK_SECRET` (a Worker secret): where member
    /// events are POSTed and their signing key; `None` when unset.
    pub webhook: Option<Webhook>,
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
            .field("max_state_bytes", &self.max_state_bytes)
            .field("update_interval_ms", &self.update_interval_ms)
            .field("max_clients_per_space", &self.max_clients_per_space)
            .field("message_rate", &self.message_rate)
            .field("message_burst", &self.message_burst)
            .field("allowed_origins", &self.allowed_origins)
            .field("auth", &self.auth_secret.is_some())
            .field("admin_token", &self.admin_token.is_some())
            .field("webhook", &self.webhook)
            .field("trace_handlers", &self.trace_handlers)
            .finish()
    }
}

/// Where member events go (section 14).
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `WEBHOOK_URL`.
    pub url: String,
    /// `WEBHOOK_SECRET`, the HMAC key of the signature header.
    pub secret: String,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("Webhook").field("url", &self.url).finish()
    }
}

/// What is wrong with a var's value: a kind, never parsed back out of the
/// message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not a whole number.
    NotAWholeNumber,
    /// A whole number below the setting's least value.
    BelowMinimum(u64),
    /// A whole number beyond what the setting can hold.
    TooLarge,
    /// Unset, though the named var is set and needs it.
    RequiredWith(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::NotAWholeNumber => f.write_str("expected a whole number"),
            Problem::BelowMinimum(min) => write!(f, "expected a whole number, at least {min}"),
            Problem::TooLarge => f.write_str("too large"),
            Problem::RequiredWith(other) => write!(f, "required when {other} is set"),
        }
    }
}

/// A var that is set but cannot be used (PROTOCOL.md section 9): the Worker
/// refuses to serve with it instead of falling back to the default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for {var}: {problem}")]
pub struct ConfigError {
    /// The var's name, e.g. `PRESENCE_TTL`.
    pub var: &'static str,
    /// The value as given.
    pub value: String,
    /// Why it was refused.
    pub problem: Problem,
}

impl ConfigError {
    /// What HTTP callers and clients are told while the Worker refuses to
    /// serve. Only whole-number vars and missing ones are refused, so no
    /// secret is echoed.
    pub fn public_message(&self) -> String {
        format!("Server misconfigured: {self}")
    }
}

/// A whole-number var: unset or empty takes `default`; otherwise it must
/// parse and be at least `min` (the native server's flags have the same
/// bounds).
fn whole<T: TryFrom<u64>>(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    min: u64,
) -> Result<T, ConfigError> {
    let Some(value) = lookup(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    let problem = match value.trim().parse::<u64>() {
        Ok(n) if n < min => Problem::BelowMinimum(min),
        Ok(n) => match T::try_from(n) {
            Ok(n) => return Ok(n),
            Err(_) => Problem::TooLarge,
        },
        Err(_) => Problem::NotAWholeNumber,
    };
    Err(ConfigError {
        var,
        value,
        problem,
    })
}

impl EdgeConfig {
    /// Reads the vars through `lookup` (which returns `None` for an unset
    /// var); unset or empty vars take their defaults.
    ///
    /// # Errors
    ///
    /// The first var that is set to something unusable: not a whole number,
    /// or below its least value (`PRESENCE_TTL` and `MESSAGE_BURST` 1,
    /// `MAX_MESSAGE_BYTES` 64, as on the native server).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        // Read so that a bad value is refused as on the native server, though
        // the edge sends no keepalive (idle spaces hibernate).
        whole::<u64>(&lookup, "KEEPALIVE_MS", DEFAULT_KEEPALIVE_MS, 0)?;
        Ok(Self {
            presence_ttl_ms: whole(&lookup, "PRESENCE_TTL", DEFAULT_PRESENCE_TTL_MS, 1)?,
            max_message_bytes: whole(&lookup, "MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, 64)?,
            // The smallest state is `{}`.
            max_state_bytes: whole(&lookup, "MAX_STATE_BYTES", DEFAULT_MAX_STATE_BYTES, 2)?,
            update_interval_ms: whole(
                &lookup,
                "UPDATE_INTERVAL_MS",
                DEFAULT_UPDATE_INTERVAL_MS,
                0,
            )?,
            max_clients_per_space: whole(
                &lookup,
                "MAX_CLIENTS_PER_SPACE",
                DEFAULT_MAX_CLIENTS_PER_SPACE,
                0,
            )?,
            message_rate: whole(&lookup, "MESSAGE_RATE", DEFAULT_MESSAGE_RATE, 0)?,
            message_burst: whole(&lookup, "MESSAGE_BURST", DEFAULT_MESSAGE_BURST, 1)?,
            allowed_origins: get("ALLOWED_ORIGINS")
                .map(|v| parse_origins(&v))
                .unwrap_or_default(),
            auth_secret: get("AUTH_SECRET"),
            auth_secret_previous: get("AUTH_SECRET_PREVIOUS"),
            admin_token: get("ADMIN_TOKEN"),
            webhook: match (get("WEBHOOK_URL"), get("WEBHOOK_SECRET")) {
                (Some(url), Some(secret)) => Some(Webhook { url, secret }),
                (Some(_), None) => {
                    return Err(ConfigError {
                        var: "WEBHOOK_SECRET",
                        value: String::new(),
                        problem: Problem::RequiredWith("WEBHOOK_URL"),
                    })
                }
                (None, _) => None,
            },
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
        assert_eq!(config.presence_ttl_ms, 60_000);
        assert_eq!(config.max_message_bytes, 4096);
        assert_eq!(config.max_clients(), Some(1000));
        assert_eq!(
            (config.message_rate, config.message_burst),
            (DEFAULT_MESSAGE_RATE, DEFAULT_MESSAGE_BURST)
        );
        assert_eq!(config.max_state_bytes, 1024);
        assert_eq!(config.update_interval_ms, 50);
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
            ("MAX_STATE_BYTES", "2"),
            ("UPDATE_INTERVAL_MS", "0"),
            ("ALLOWED_ORIGINS", "https://a.example, https://b.example"),
            ("AUTH_SECRET", "s3cret"),
        ]))
        .unwrap();
        assert_eq!(config.presence_ttl_ms, 3000);
        assert_eq!(config.max_message_bytes, 64);
        assert_eq!(config.max_clients(), None);
        assert_eq!(config.message_rate, 5);
        assert_eq!((config.max_state_bytes, config.update_interval_ms), (2, 0));
        assert_eq!(config.allowed_origins.len(), 2);
        assert_eq!(config.auth_secret.as_deref(), Some("s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_value_that_is_not_a_whole_number_is_refused_naming_the_var() {
        for (var, value) in [
            ("PRESENCE_TTL", "abc"),
            ("PRESENCE_TTL", "-5"),
            ("PRESENCE_TTL", "1.5"),
            ("KEEPALIVE_MS", "abc"),
            ("MAX_MESSAGE_BYTES", "4k"),
            ("MAX_CLIENTS_PER_SPACE", "many"),
            ("MESSAGE_RATE", "-1"),
            ("MESSAGE_BURST", "twenty"),
            ("MAX_STATE_BYTES", "1kB"),
            ("UPDATE_INTERVAL_MS", "-50"),
        ] {
            let err = EdgeConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(
                err,
                ConfigError {
                    var,
                    value: value.to_owned(),
                    problem: Problem::NotAWholeNumber
                },
                "{var}={value}"
            );
            assert!(err.to_string().contains(var), "{err}");
            assert!(err.public_message().contains(var), "{err}");
        }
    }

    #[test]
    fn a_value_out_of_bounds_is_refused_as_on_the_native_server() {
        for (var, value, min) in [
            ("PRESENCE_TTL", "0", 1),
            ("MESSAGE_BURST", "0", 1),
            ("MAX_MESSAGE_BYTES", "63", 64),
            ("MAX_STATE_BYTES", "1", 2),
        ] {
            let err = EdgeConfig::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!((err.var, err.problem), (var, Problem::BelowMinimum(min)));
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid value {value:?} for {var}: expected a whole number, at least {min}"
                )
            );
        }
        let err = EdgeConfig::from_lookup(lookup(&[("MESSAGE_RATE", "4294967296")])).unwrap_err();
        assert_eq!((err.var, err.problem), ("MESSAGE_RATE", Problem::TooLarge));
        // The least values themselves, and zero where zero means "no limit".
        let config = EdgeConfig::from_lookup(lookup(&[
            ("PRESENCE_TTL", "1"),
            ("MESSAGE_BURST", "1"),
            ("MAX_MESSAGE_BYTES", "64"),
            ("MESSAGE_RATE", "0"),
            ("KEEPALIVE_MS", "0"),
        ]))
        .unwrap();
        assert_eq!(
            (
                config.presence_ttl_ms,
                config.message_burst,
                config.max_message_bytes
            ),
            (1, 1, 64)
        );
        assert_eq!(config.message_rate, 0);
    }

    #[test]
    fn admin_token_and_webhook_are_read_and_never_printed() {
        let config = EdgeConfig::from_lookup(lookup(&[
            ("ADMIN_TOKEN", "adm1n"),
            ("WEBHOOK_URL", "http://127.0.0.1:9/hook"),
            ("WEBHOOK_SECRET", "wh-s3cret"),
        ]))
        .unwrap();
        assert_eq!(config.admin_token.as_deref(), Some("adm1n"));
        let webhook = config.webhook.clone().unwrap();
        assert_eq!(
            (webhook.url.as_str(), webhook.secret.as_str()),
            ("http://127.0.0.1:9/hook", "wh-s3cret")
        );
        let printed = format!("{config:?}");
        assert!(
            !printed.contains("adm1n") && !printed.contains("wh-s3cret"),
            "{printed}"
        );
        let off = EdgeConfig::from_lookup(lookup(&[("WEBHOOK_SECRET", "s")])).unwrap();
        assert_eq!((off.admin_token, off.webhook), (None, None));
    }

    #[test]
    fn a_webhook_url_without_its_secret_is_refused() {
        let err =
            EdgeConfig::from_lookup(lookup(&[("WEBHOOK_URL", "http://127.0.0.1:9/")])).unwrap_err();
        assert_eq!(
            (err.var, err.problem),
            ("WEBHOOK_SECRET", Problem::RequiredWith("WEBHOOK_URL"))
        );
        assert!(err.public_message().contains("WEBHOOK_SECRET"), "{err}");
    }

    #[test]
    fn the_first_bad_var_is_the_one_named_and_spaces_around_values_are_ignored() {
        let err = EdgeConfig::from_lookup(lookup(&[
            ("PRESENCE_TTL", " 3000 "),
            ("MAX_MESSAGE_BYTES", "big"),
            ("MESSAGE_RATE", "fast"),
        ]))
        .unwrap_err();
        assert_eq!(err.var, "MAX_MESSAGE_BYTES");
        let config = EdgeConfig::from_lookup(lookup(&[("PRESENCE_TTL", " 3000 ")])).unwrap();
        assert_eq!(config.presence_ttl_ms, 3000);
        // Empty is unset, as on the native server.
        let config = EdgeConfig::from_lookup(lookup(&[("PRESENCE_TTL", " ")])).unwrap();
        assert_eq!(config.presence_ttl_ms, 60_000);
    }
}
