//! Configuration: every knob is a command-line flag whose environment
//! variable (section 9, issue 5) is the fallback, and `--help` lists them
//! all with their defaults. A value that does not parse stops the server at
//! start with a message naming the variable.

use std::ffi::OsString;
use std::net::IpAddr;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};
use longhouse_core::defaults;
use thiserror::Error;

/// Everything the server reads from its flags and environment.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "longhouse",
    version,
    about = "The Longhouse presence server. Every option can also be set by the \
             environment variable shown with it; a flag wins over its variable."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", value_name = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = defaults::DEFAULT_PORT)]
    pub port: u16,
    /// Lease length, ms (at least 1).
    #[arg(long = "presence-ttl", env = "PRESENCE_TTL", value_name = "PRESENCE_TTL",
          default_value_t = longhouse_core::DEFAULT_PRESENCE_TTL_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub ttl_ms: u64,
    /// Server keepalive period, ms; 0 turns it off.
    #[arg(
        long,
        env = "KEEPALIVE_MS",
        value_name = "KEEPALIVE_MS",
        default_value_t = longhouse_core::DEFAULT_KEEPALIVE_MS
    )]
    pub keepalive_ms: u64,
    /// Largest accepted message, bytes (at least 64).
    #[arg(long, env = "MAX_MESSAGE_BYTES", value_name = "MAX_MESSAGE_BYTES",
          default_value_t = longhouse_core::DEFAULT_MAX_MESSAGE_BYTES, value_parser = at_least_64)]
    pub max_message_bytes: usize,
    /// Largest presence state (the JSON text as sent) or token `info`
    /// claim, bytes (at least 2: `{}`).
    #[arg(long, env = "MAX_STATE_BYTES", value_name = "MAX_STATE_BYTES",
          default_value_t = defaults::DEFAULT_MAX_STATE_BYTES, value_parser = at_least_2)]
    pub max_state_bytes: usize,
    /// One client's state updates reach the others at most once per this
    /// many ms (the latest is held, never lost); 0: every update.
    #[arg(
        long,
        env = "UPDATE_INTERVAL_MS",
        value_name = "UPDATE_INTERVAL_MS",
        default_value_t = defaults::DEFAULT_UPDATE_INTERVAL_MS
    )]
    pub update_interval_ms: u64,
    /// Redis store URL; unset: in-memory store.
    #[arg(long, env = "REDIS_URL", value_name = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Overrides REDIS_URL when set (Heroku's Redis Cloud add-on).
    #[arg(long, env = "REDISCLOUD_URL", value_name = "REDISCLOUD_URL")]
    pub rediscloud_url: Option<String>,
    /// HS256 secret for join tokens; when set every join needs
    /// `token=<JWT>` and the token's `sub` is the identity. Unset: off.
    #[arg(
        long,
        env = "AUTH_SECRET",
        value_name = "AUTH_SECRET",
        hide_env_values = true
    )]
    pub auth_secret: Option<String>,
    /// A second accepted secret, so AUTH_SECRET can be rotated without
    /// dropping anyone.
    #[arg(
        long,
        env = "AUTH_SECRET_PREVIOUS",
        value_name = "AUTH_SECRET_PREVIOUS",
        hide_env_values = true
    )]
    pub auth_secret_previous: Option<String>,
    /// Most clients (leases) in one space; beyond it `Space is full` and
    /// close 1013. 0: no limit.
    #[arg(
        long,
        env = "MAX_CLIENTS_PER_SPACE",
        value_name = "MAX_CLIENTS_PER_SPACE",
        default_value_t = longhouse_core::DEFAULT_MAX_CLIENTS_PER_SPACE
    )]
    pub max_clients_per_space: usize,
    /// Messages a connection may send per second, sustained (token bucket);
    /// beyond it an error and close 1008. 0: no limit.
    #[arg(
        long,
        env = "MESSAGE_RATE",
        value_name = "MESSAGE_RATE",
        default_value_t = longhouse_core::DEFAULT_MESSAGE_RATE
    )]
    pub message_rate: u32,
    /// Messages a connection may send at once (the bucket's size).
    #[arg(long, env = "MESSAGE_BURST", value_name = "MESSAGE_BURST", default_value_t = longhouse_core::DEFAULT_MESSAGE_BURST,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub message_burst: u32,
    /// Page origins allowed to open a WebSocket (comma separated, `*` for
    /// any); others get HTTP 403 before the upgrade. Unset: any origin.
    #[arg(long, env = "ALLOWED_ORIGINS", value_name = "ALLOWED_ORIGINS")]
    pub allowed_origins: Option<String>,
    /// Most WebSockets this instance serves at once; beyond it HTTP 503.
    /// 0: no limit.
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        value_name = "MAX_CONNECTIONS",
        default_value_t = defaults::DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,
    /// A connection that has not sent a complete HTTP request head within
    /// this many ms is dropped: from accept, and again while a kept-alive
    /// connection waits for its next request (at least 1).
    #[arg(long, env = "HANDSHAKE_TIMEOUT_MS", value_name = "HANDSHAKE_TIMEOUT_MS",
          default_value_t = defaults::DEFAULT_HANDSHAKE_TIMEOUT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout_ms: u64,
    /// Messages queued for one socket; a client that lets more pile up has
    /// stopped reading and is disconnected as a lost connection (at least 1).
    #[arg(long, env = "MAX_QUEUED_MESSAGES", value_name = "MAX_QUEUED_MESSAGES",
          default_value_t = defaults::DEFAULT_MAX_QUEUED_MESSAGES, value_parser = at_least_1)]
    pub max_queued_messages: usize,
    /// With Redis: messages queued between the subscription and the
    /// spaces; beyond it they are dropped and every space resynchronises
    /// from Redis, so memory stays bounded under a flood (at least 1).
    #[arg(long, env = "SUBSCRIPTION_QUEUE", value_name = "SUBSCRIPTION_QUEUE",
          default_value_t = defaults::DEFAULT_SUBSCRIPTION_QUEUE, value_parser = at_least_1)]
    pub subscription_queue: usize,
    /// Instead of serving: ask the server at HOST and PORT (loopback when
    /// HOST is every address) for `GET /health`, exit 0 on 200, else 1.
    /// For container health checks.
    #[arg(long)]
    pub health_check: bool,
}

fn at_least_64(s: &str) -> Result<usize, String> {
    at_least(s, 64)
}

fn at_least_2(s: &str) -> Result<usize, String> {
    at_least(s, 2)
}

fn at_least_1(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

fn at_least(s: &str, min: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("expected a whole number, at least {min}")),
    }
}

/// A flag or variable set to something the server cannot use.
#[derive(Debug, Error)]
#[error("invalid value {value:?} for {var}: {reason}")]
pub struct ConfigError {
    /// The environment variable (and flag) at fault.
    pub var: String,
    /// What it was set to.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

impl Config {
    /// Reads the command line and the process environment. `--help`,
    /// `--version` and unknown flags print and exit here, as usual for a
    /// command-line tool; a bad value is returned as a [`ConfigError`].
    /// Call it at start, before any other thread: a variable set to the
    /// empty string counts as unset (deployment tools often template empty
    /// values), which clap cannot express, so those are removed first.
    pub fn from_env() -> Result<Self, ConfigError> {
        for var in variables() {
            if std::env::var_os(&var).is_some_and(|v| v.is_empty()) {
                std::env::remove_var(&var);
            }
        }
        Self::from_args(std::env::args_os())
    }

    /// Reads `args` (the program name first) and the process environment.
    pub fn from_args<I, T>(args: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Config::try_parse_from(args) {
            Ok(c) => Ok(c.normalized()),
            Err(e) => Err(value_error(&e).unwrap_or_else(|| e.exit())),
        }
    }

    /// Empty strings are unset (an empty `REDISCLOUD_URL` does not hide
    /// `REDIS_URL`, an empty `AUTH_SECRET` is no secret).
    fn normalized(mut self) -> Self {
        for v in [
            &mut self.redis_url,
            &mut self.rediscloud_url,
            &mut self.auth_secret,
            &mut self.auth_secret_previous,
            &mut self.allowed_origins,
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        self
    }

    /// The Redis store: `REDISCLOUD_URL` over `REDIS_URL`; `None` is
    /// in-memory.
    pub fn redis(&self) -> Option<&str> {
        self.rediscloud_url.as_deref().or(self.redis_url.as_deref())
    }

    /// `MAX_CLIENTS_PER_SPACE` as the core takes it.
    pub fn max_clients(&self) -> Option<usize> {
        (self.max_clients_per_space > 0).then_some(self.max_clients_per_space)
    }

    /// The join policy: HS256 tokens when a secret is set.
    pub fn auth(&self) -> longhouse_core::Auth {
        longhouse_core::Auth::hs256(
            self.auth_secret.as_deref().map(str::as_bytes),
            self.auth_secret_previous.as_deref().map(str::as_bytes),
        )
    }

    /// `ALLOWED_ORIGINS`, split; empty: any origin.
    pub fn origins(&self) -> Vec<String> {
        self.allowed_origins
            .as_deref()
            .map(longhouse_core::parse_origins)
            .unwrap_or_default()
    }
}

/// Every option's environment variable, as declared on its argument.
fn variables() -> Vec<String> {
    Config::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
}

/// A bad value, named by its variable; `None` for anything else (help,
/// unknown flags), which clap reports itself. The kind, the argument and
/// the value parser's own error are clap's error context and source: the
/// argument is the one clap names ([`ContextKind::InvalidArg`] is its
/// rendering), the reason is the parser's error, not clap's message text.
fn value_error(e: &clap::Error) -> Option<ConfigError> {
    if e.kind() != ErrorKind::ValueValidation {
        return None;
    }
    let ContextValue::String(named) = e.get(ContextKind::InvalidArg)? else {
        return None;
    };
    // Built, as when it parsed, so each argument renders as clap named it.
    let mut command = Config::command();
    command.build();
    let arg = command.get_arguments().find(|a| a.to_string() == *named)?;
    let var = arg.get_env()?.to_string_lossy().into_owned();
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let reason = std::error::Error::source(e)?.to_string();
    Some(ConfigError { var, value, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(args: &[&str]) -> Result<Config, ConfigError> {
        let mut all = vec!["longhouse"];
        all.extend_from_slice(args);
        Config::from_args(all)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = with(&[]).unwrap();
        assert_eq!(c.port, 5003);
        assert_eq!(c.ttl_ms, 60_000);
        assert_eq!(c.keepalive_ms, 30_000);
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.redis(), None);
        assert_eq!(c.host.to_string(), "0.0.0.0");
        assert!(!c.auth().is_on());
        assert_eq!(c.max_clients(), Some(1000));
        assert_eq!((c.message_rate, c.message_burst), (100, 200));
        assert_eq!((c.max_state_bytes, c.update_interval_ms), (1024, 50));
        assert!(c.origins().is_empty());
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.handshake_timeout_ms, 5_000);
        assert_eq!(c.max_queued_messages, 1024);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = with(&["--presence-ttl", "abc"]).unwrap_err();
        assert_eq!(e.var, "PRESENCE_TTL");
        assert_eq!(e.value, "abc");
        assert_eq!(e.reason, "invalid digit found in string");
        let small = with(&["--max-message-bytes", "63"]).unwrap_err();
        assert_eq!(small.reason, "expected a whole number, at least 64");
        assert!(e.to_string().contains("PRESENCE_TTL"), "{e}");
        for (flag, value, var) in [
            ("--port", "70000", "PORT"),
            ("--presence-ttl", "0", "PRESENCE_TTL"),
            ("--keepalive-ms", "-1", "KEEPALIVE_MS"),
            ("--max-message-bytes", "1e3", "MAX_MESSAGE_BYTES"),
            ("--max-message-bytes", "63", "MAX_MESSAGE_BYTES"),
            ("--host", "localhost:1", "HOST"),
            ("--max-clients-per-space", "many", "MAX_CLIENTS_PER_SPACE"),
            ("--message-rate", "-3", "MESSAGE_RATE"),
            ("--message-burst", "0", "MESSAGE_BURST"),
            ("--max-connections", "x", "MAX_CONNECTIONS"),
            ("--handshake-timeout-ms", "0", "HANDSHAKE_TIMEOUT_MS"),
            ("--max-queued-messages", "0", "MAX_QUEUED_MESSAGES"),
            ("--max-state-bytes", "1", "MAX_STATE_BYTES"),
            ("--max-state-bytes", "lots", "MAX_STATE_BYTES"),
            ("--update-interval-ms", "-50", "UPDATE_INTERVAL_MS"),
        ] {
            let e = with(&[&format!("{flag}={value}")]).unwrap_err();
            assert_eq!(e.var, var, "{flag} {value}: {e}");
            assert!(e.to_string().contains(var), "{e}");
        }
    }

    #[test]
    fn flags_set_every_knob() {
        let c = with(&[
            "--auth-secret",
            "k1",
            "--auth-secret-previous",
            "k0",
            "--max-clients-per-space",
            "0",
            "--allowed-origins",
            "https://a.example, https://b.example",
            "--redis-url",
            "redis://a",
            "--rediscloud-url",
            "redis://b",
            "--max-state-bytes",
            "64",
            "--update-interval-ms",
            "0",
        ])
        .unwrap();
        assert_eq!((c.max_state_bytes, c.update_interval_ms), (64, 0));
        assert!(c.auth().is_on());
        assert_eq!(c.max_clients(), None);
        assert_eq!(c.origins().len(), 2);
        assert_eq!(c.redis(), Some("redis://b"));
        let c = with(&["--redis-url", "redis://a", "--rediscloud-url", ""]).unwrap();
        assert_eq!(c.redis(), Some("redis://a"));
        assert!(!with(&["--auth-secret", ""]).unwrap().auth().is_on());
    }

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = Config::command().render_long_help().to_string();
        let vars = variables();
        assert_eq!(vars.len(), 19, "{vars:?}");
        for var in &vars {
            assert!(
                help.contains(&format!("[env: {var}")),
                "{var} missing:\n{help}"
            );
        }
        for default in ["[default: 60000]", "[default: 1000]", "[default: 5003]"] {
            assert!(help.contains(default), "{default} missing:\n{help}");
        }
        assert!(!help.contains("k1"));
        Config::command().debug_assert();
    }
}
