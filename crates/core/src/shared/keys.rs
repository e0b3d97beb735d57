//! Where one space lives in the shared store: key and channel names.
//!
//! Every key of a space sits under one hash tag, `{<space>}`, so a space
//! lives in one Redis Cluster slot and each script touches one slot.

use crate::join::SpaceName;

/// Every key and channel name starts with this, so a shared Redis can tell
/// Longhouse's data apart.
pub const KEY_PREFIX: &str = "lh";

/// How long a space's keys outlive their last change beyond the TTL, so
/// the leases of a space whose every instance died are eventually dropped
/// even if nobody sweeps it.
pub const IDLE_KEEP_MS: u64 = 3_600_000;

/// The largest key lifetime ever asked of Redis (ten years), whatever the
/// TTL: `PEXPIRE` refuses values that overflow its clock.
pub(crate) const MAX_KEEP_MS: u64 = 315_360_000_000;

/// The hash tag body of a space: the name with `%`, `{` and `}`
/// percent-encoded, so the tag always spans the whole name (Redis takes the
/// text up to the first `}` as the tag) and two names never share one.
pub fn hash_tag(space: &SpaceName) -> String {
    let mut tag = String::with_capacity(space.as_str().len());
    for c in space.as_str().chars() {
        match c {
            '%' => tag.push_str("%25"),
            '{' => tag.push_str("%7B"),
            '}' => tag.push_str("%7D"),
            c => tag.push(c),
        }
    }
    tag
}

/// The names of one space's data in the shared store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpaceKeys {
    /// Hash: the space's history (`@epoch`, `@seq`) and its leases, two
    /// fields each: `h:<id>` → `"<holder> <identity>"` (what the scripts
    /// read) and `c:<id>` → the client object as JSON, opaque to the
    /// scripts (they store and publish it, never re-encode it).
    pub leases: String,
    /// Sorted set: client id scored by `expires_at` (ms since the epoch, the
    /// store's clock).
    pub expiries: String,
    /// The (sharded) pub/sub channel that carries the space's events.
    pub channel: String,
    /// Lease counts by identity, for member events (section 14).
    pub members: String,
    /// The space's webhook stream: member events waiting for delivery.
    pub webhooks: String,
}

impl SpaceKeys {
    /// The names for `space`: `lh:{<tag>}:leases`, `…:expiries` and the
    /// channel `…:events`.
    pub fn new(space: &SpaceName) -> Self {
        let base = format!("{KEY_PREFIX}:{{{}}}", hash_tag(space));
        SpaceKeys {
            leases: format!("{base}:leases"),
            expiries: format!("{base}:expiries"),
            channel: format!("{base}:events"),
            members: format!("{base}:members"),
            webhooks: format!("{base}:webhooks"),
        }
    }
}

/// The space whose webhook stream `key` is (the inverse of
/// [`SpaceKeys::webhooks`]), for an instance that finds the key.
pub fn space_of_webhooks(key: &str) -> Option<SpaceName> {
    let tag = key
        .strip_prefix(KEY_PREFIX)?
        .strip_prefix(":{")?
        .strip_suffix("}:webhooks")?;
    let decoded = percent_encoding::percent_decode_str(tag)
        .decode_utf8()
        .ok()?;
    SpaceName::parse(&decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(s: &str) -> SpaceName {
        SpaceName::parse(s).unwrap()
    }

    #[test]
    fn keys_share_one_tag_that_spans_the_whole_space() {
        let k = SpaceKeys::new(&space("room"));
        assert_eq!(k.leases, "lh:{room}:leases");
        assert_eq!(k.expiries, "lh:{room}:expiries");
        assert_eq!(k.channel, "lh:{room}:events");
        assert_eq!(k.webhooks, "lh:{room}:webhooks");
        assert_eq!(k.members, "lh:{room}:members");
        for name in ["room", "a}b{c%d", "x%7By", "ü/ x"] {
            let keys = SpaceKeys::new(&space(name));
            assert_eq!(space_of_webhooks(&keys.webhooks), Some(space(name)));
        }
        assert_eq!(space_of_webhooks("lh:{room}:leases"), None);
        let k = SpaceKeys::new(&space("a}b{c%d"));
        assert_eq!(k.leases, "lh:{a%7Db%7Bc%25d}:leases");
    }

    #[test]
    fn escaping_never_merges_two_spaces() {
        let names = ["a}", "a%7D", "a%257D", "{a}", "%7Ba%7D", "a"];
        let tags: std::collections::HashSet<String> =
            names.iter().map(|n| hash_tag(&space(n))).collect();
        assert_eq!(tags.len(), names.len());
        for n in names {
            let tag = hash_tag(&space(n));
            assert!(!tag.contains('{') && !tag.contains('}'), "{tag}");
        }
    }
}
