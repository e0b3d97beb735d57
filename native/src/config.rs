//! Configuration from the environment (section 9), refused at start with a
//! message naming the variable when a value does not parse.

use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

/// Everything the server reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on (`HOST`, default `0.0.0.0`).
    pub host: IpAddr,
    /// Port to listen on (`PORT`, default 5003).
    pub port: u16,
    /// Lease length in ms (`PRESENCE_TTL`, default 60000).
    pub ttl_ms: u64,
    /// Keepalive period in ms, 0 for none (`KEEPALIVE_MS`, default 30000).
    pub keepalive_ms: u64,
    /// Largest accepted message in bytes (`MAX_MESSAGE_BYTES`, default 4096).
    pub max_message_bytes: usize,
    /// Redis store, `REDISCLOUD_URL` over `REDIS_URL`; `None` is in-memory.
    pub redis_url: Option<String>,
}

/// A variable that is set to something the server cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid value {value:?} for environment variable {var}: {expected}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// What it was set to.
    pub value: String,
    /// What it should be.
    pub expected: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the
    /// process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| lookup(var).filter(|v| !v.trim().is_empty());
        Ok(Config {
            host: parse(
                &get,
                "HOST",
                "0.0.0.0".parse().expect("valid"),
                "an IP address",
                |_| true,
            )?,
            port: parse(&get, "PORT", 5003, "a port number, 0 to 65535", |_| true)?,
            ttl_ms: parse(
                &get,
                "PRESENCE_TTL",
                60_000,
                "a whole number of milliseconds, at least 1",
                |v| *v >= 1,
            )?,
            keepalive_ms: parse(
                &get,
                "KEEPALIVE_MS",
                30_000,
                "a whole number of milliseconds (0 turns keepalive off)",
                |_| true,
            )?,
            max_message_bytes: parse(
                &get,
                "MAX_MESSAGE_BYTES",
                4096,
                "a whole number of bytes, at least 64",
                |v| *v >= 64,
            )?,
            redis_url: get("REDISCLOUD_URL").or_else(|| get("REDIS_URL")),
        })
    }
}

fn parse<T: FromStr>(
    get: &impl Fn(&'static str) -> Option<String>,
    var: &'static str,
    default: T,
    expected: &'static str,
    valid: impl Fn(&T) -> bool,
) -> Result<T, ConfigError> {
    let Some(raw) = get(var) else {
        return Ok(default);
    };
    match raw.trim().parse::<T>() {
        Ok(v) if valid(&v) => Ok(v),
        _ => Err(ConfigError {
            var,
            value: raw,
            expected,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = with(&[]).unwrap();
        assert_eq!(c.port, 5003);
        assert_eq!(c.ttl_ms, 60_000);
        assert_eq!(c.keepalive_ms, 30_000);
        assert_eq!(c.max_message_bytes, 4096);
        assert_eq!(c.redis_url, None);
        assert_eq!(c.host.to_string(), "0.0.0.0");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let e = with(&[("PRESENCE_TTL", "abc")]).unwrap_err();
        assert_eq!(e.var, "PRESENCE_TTL");
        assert!(e.to_string().contains("PRESENCE_TTL"), "{e}");
        assert_eq!(with(&[("PORT", "70000")]).unwrap_err().var, "PORT");
        assert_eq!(
            with(&[("PRESENCE_TTL", "0")]).unwrap_err().var,
            "PRESENCE_TTL"
        );
        assert_eq!(
            with(&[("KEEPALIVE_MS", "-1")]).unwrap_err().var,
            "KEEPALIVE_MS"
        );
        assert_eq!(
            with(&[("MAX_MESSAGE_BYTES", "1e3")]).unwrap_err().var,
            "MAX_MESSAGE_BYTES"
        );
        assert_eq!(with(&[("HOST", "localhost:1")]).unwrap_err().var, "HOST");
    }

    #[test]
    fn redis_cloud_url_wins() {
        let c = with(&[("REDIS_URL", "redis://a"), ("REDISCLOUD_URL", "redis://b")]).unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("redis://b"));
        let c = with(&[("REDIS_URL", "redis://a"), ("REDISCLOUD_URL", "")]).unwrap();
        assert_eq!(c.redis_url.as_deref(), Some("redis://a"));
    }
}
