//! The roster rules for a store that many instances share (Redis): key and
//! channel names, the wire form of leases and events, and the Lua scripts
//! that ARE [`crate::Roster`]'s join, renew, leave and sweep when the roster
//! lives outside the process.
//!
//! Every key of a space sits under one hash tag, `{<space>}`, so a space
//! lives in one Redis Cluster slot and each script touches one slot. The
//! target only sends [`ScriptCall`]s and decodes their [`ScriptReply`]; it
//! never needs to know a rule.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::join::SpaceName;
use crate::roster::{LeaveCause, RosterEvent, Sequenced};
use crate::time::UnixMillis;
use crate::wire::ClientInfo;

/// Every key and channel name starts with this, so a shared Redis can tell
/// Longhouse's data apart.
pub const KEY_PREFIX: &str = "lh";

/// How long a space's keys outlive their last change beyond the TTL, so
/// the leases of a space whose every instance died are eventually dropped
/// even if nobody sweeps it.
pub const IDLE_KEEP_MS: u64 = 3_600_000;

/// The largest key lifetime ever asked of Redis (ten years), whatever the
/// TTL: `PEXPIRE` refuses values that overflow its clock.
const MAX_KEEP_MS: u64 = 315_360_000_000;

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
    /// Hash: client id → lease record JSON ([`LeaseRecord`]).
    pub leases: String,
    /// Sorted set: client id scored by `expires_at` (ms since the epoch).
    pub expiries: String,
    /// Counter: the sequence number of the space's last event.
    pub seq: String,
    /// The (sharded) pub/sub channel that carries the space's events.
    pub channel: String,
}

impl SpaceKeys {
    /// The names for `space`: `lh:{<tag>}:leases`, `…:expiries`, `…:seq`
    /// and the channel `…:events`.
    pub fn new(space: &SpaceName) -> Self {
        let base = format!("{KEY_PREFIX}:{{{}}}", hash_tag(space));
        SpaceKeys {
            leases: format!("{base}:leases"),
            expiries: format!("{base}:expiries"),
            seq: format!("{base}:seq"),
            channel: format!("{base}:events"),
        }
    }
}

/// A stored or published text that does not decode.
#[derive(Debug, Error)]
pub enum CodecError {
    /// Not the JSON this module writes.
    #[error("malformed shared-store JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A connection id that is not a decimal `u64`.
    #[error("malformed holder {0:?}")]
    Holder(String),
    /// An event kind or cause this version does not know.
    #[error("unknown event {0:?}")]
    Kind(String),
    /// A script answered with a status this version does not know.
    #[error("unknown script status {0:?}")]
    Status(String),
}

/// Holders travel as decimal strings: Lua's numbers are doubles and would
/// round a random 64-bit connection id.
fn holder_text(holder: ConnId) -> String {
    holder.0.to_string()
}

fn parse_holder(text: &str) -> Result<ConnId, CodecError> {
    text.parse()
        .map(ConnId)
        .map_err(|_| CodecError::Holder(text.to_owned()))
}

/// One lease as the leases hash stores it (the expiry is the sorted set's
/// score). Holder `ConnId(0)` means "unknown": a lease put back after data
/// loss by an instance that does not hold its socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// The client as others see it.
    pub client: ClientInfo,
    /// The connection that holds it.
    pub holder: ConnId,
}

#[derive(Serialize, Deserialize)]
struct RawRecord {
    client: ClientInfo,
    holder: String,
}

impl LeaseRecord {
    /// The stored JSON: `{"client":{…},"holder":"<decimal>"}`.
    pub fn encode(&self) -> String {
        serde_json::to_string(&RawRecord {
            client: self.client.clone(),
            holder: holder_text(self.holder),
        })
        .expect("records serialize")
    }

    /// Reads a stored record back.
    pub fn decode(text: &str) -> Result<Self, CodecError> {
        let raw: RawRecord = serde_json::from_str(text)?;
        Ok(LeaseRecord {
            client: raw.client,
            holder: parse_holder(&raw.holder)?,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct RawEvent {
    seq: u64,
    kind: String,
    client: ClientInfo,
    holder: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replaced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
}

/// The JSON of one published event, as the scripts write it:
/// `{"seq":N,"kind":"join"|"resume"|"leave","client":{…},"holder":"…"}`
/// plus `"replaced"` for a resume and `"cause":"closed"|"expired"` for a
/// leave.
pub fn encode_event(event: &Sequenced) -> String {
    let (kind, client, holder, replaced, cause) = match &event.event {
        RosterEvent::Joined { client, holder } => ("join", client, holder, None, None),
        RosterEvent::Resumed {
            client,
            holder,
            replaced,
        } => ("resume", client, holder, Some(holder_text(*replaced)), None),
        RosterEvent::Left {
            client,
            holder,
            cause,
        } => (
            "leave",
            client,
            holder,
            None,
            Some(match cause {
                LeaveCause::Closed => "closed".to_owned(),
                LeaveCause::Expired => "expired".to_owned(),
            }),
        ),
    };
    serde_json::to_string(&RawEvent {
        seq: event.seq,
        kind: kind.to_owned(),
        client: client.clone(),
        holder: holder_text(*holder),
        replaced,
        cause,
    })
    .expect("events serialize")
}

/// Reads a published event.
pub fn decode_event(text: &str) -> Result<Sequenced, CodecError> {
    let raw: RawEvent = serde_json::from_str(text)?;
    from_raw(raw)
}

fn from_raw(raw: RawEvent) -> Result<Sequenced, CodecError> {
    let holder = parse_holder(&raw.holder)?;
    let event = match (raw.kind.as_str(), raw.cause.as_deref()) {
        ("join", _) => RosterEvent::Joined {
            client: raw.client,
            holder,
        },
        ("resume", _) => RosterEvent::Resumed {
            client: raw.client,
            holder,
            replaced: parse_holder(raw.replaced.as_deref().unwrap_or("0"))?,
        },
        ("leave", Some("closed")) => RosterEvent::Left {
            client: raw.client,
            holder,
            cause: LeaveCause::Closed,
        },
        ("leave", Some("expired")) => RosterEvent::Left {
            client: raw.client,
            holder,
            cause: LeaveCause::Expired,
        },
        (kind, cause) => return Err(CodecError::Kind(format!("{kind}/{cause:?}"))),
    };
    Ok(Sequenced {
        seq: raw.seq,
        event,
    })
}

/// The roster at one sequence number, as [`crate::Hub::resync`] takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The sequence number of the last event it includes.
    pub seq: u64,
    /// Every lease with its holder.
    pub leases: Vec<(ClientInfo, ConnId)>,
}

/// What a script did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptStatus {
    /// Done as asked.
    Ok,
    /// A join refused: the id is alive under another identity.
    Refused,
    /// A renew or leave from a connection that no longer holds the lease
    /// (or whose lease expired): nothing changed.
    Stale,
    /// A join refused: the space holds `MAX_CLIENTS_PER_SPACE` leases.
    Full,
    /// A resync found the space lost (Redis restarted empty, say) and put
    /// the hub's leases back.
    Restored,
}

/// The decoded answer of every script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptReply {
    /// What the script did.
    pub status: ScriptStatus,
    /// The events it published, in sequence order (sweep leaves first).
    pub events: Vec<Sequenced>,
    /// When the earliest remaining lease runs out: when to sweep next.
    pub next_expiry: Option<UnixMillis>,
    /// The roster after the call, when asked for.
    pub snapshot: Option<Snapshot>,
}

#[derive(Deserialize)]
struct RawReply {
    status: String,
    events: Vec<RawEvent>,
    next: Option<String>,
    snapshot: Option<RawSnapshot>,
}

#[derive(Deserialize)]
struct RawSnapshot {
    seq: u64,
    leases: Vec<RawRecord>,
}

impl ScriptReply {
    /// Decodes the JSON text every script returns.
    pub fn decode(text: &str) -> Result<Self, CodecError> {
        let raw: RawReply = serde_json::from_str(text)?;
        let status = match raw.status.as_str() {
            "ok" => ScriptStatus::Ok,
            "refused" => ScriptStatus::Refused,
            "full" => ScriptStatus::Full,
            "stale" => ScriptStatus::Stale,
            "restored" => ScriptStatus::Restored,
            other => return Err(CodecError::Status(other.to_owned())),
        };
        let events = raw
            .events
            .into_iter()
            .map(from_raw)
            .collect::<Result<_, _>>()?;
        // Scores come back as Redis formats doubles ("1764000060000", or
        // "1.8e+19" for a lease that practically never ends).
        let next_expiry = raw
            .next
            .and_then(|s| s.parse::<f64>().ok())
            .map(|ms| UnixMillis(ms as u64));
        let snapshot = match raw.snapshot {
            Some(s) => Some(Snapshot {
                seq: s.seq,
                leases: s
                    .leases
                    .into_iter()
                    .map(|r| Ok((r.client, parse_holder(&r.holder)?)))
                    .collect::<Result<_, CodecError>>()?,
            }),
            None => None,
        };
        Ok(ScriptReply {
            status,
            events,
            next_expiry,
            snapshot,
        })
    }
}

/// How events are published: sharded pub/sub (Redis 7) or classic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// `SPUBLISH` / `SSUBSCRIBE`: the channel lives on the space's shard.
    Sharded,
    /// `PUBLISH` / `SUBSCRIBE`, for servers before Redis 7.
    Classic,
}

impl PublishMode {
    /// The command the scripts publish with.
    pub fn publish_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SPUBLISH",
            PublishMode::Classic => "PUBLISH",
        }
    }

    /// The command that subscribes to a channel.
    pub fn subscribe_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SSUBSCRIBE",
            PublishMode::Classic => "SUBSCRIBE",
        }
    }

    /// The command that ends a subscription.
    pub fn unsubscribe_command(self) -> &'static str {
        match self {
            PublishMode::Sharded => "SUNSUBSCRIBE",
            PublishMode::Classic => "UNSUBSCRIBE",
        }
    }
}

/// The script texts (common prelude included), for loading once and calling
/// by SHA1.
pub mod scripts {
    /// [`crate::Roster::join`] after a sweep; optionally returns a snapshot.
    pub const JOIN: &str = concat!(
        include_str!("shared_store/common.lua"),
        include_str!("shared_store/join.lua")
    );
    /// [`crate::Roster::renew`] after a sweep.
    pub const RENEW: &str = concat!(
        include_str!("shared_store/common.lua"),
        include_str!("shared_store/renew.lua")
    );
    /// [`crate::Roster::leave`] after a sweep.
    pub const LEAVE: &str = concat!(
        include_str!("shared_store/common.lua"),
        include_str!("shared_store/leave.lua")
    );
    /// [`crate::Roster::sweep`].
    pub const SWEEP: &str = concat!(
        include_str!("shared_store/common.lua"),
        include_str!("shared_store/sweep.lua")
    );
    /// A snapshot for a resync, re-asserting a hub's leases after data loss.
    pub const RESYNC: &str = concat!(
        include_str!("shared_store/common.lua"),
        include_str!("shared_store/resync.lua")
    );
}

/// Which script a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptKind {
    /// See [`scripts::JOIN`].
    Join,
    /// See [`scripts::RENEW`].
    Renew,
    /// See [`scripts::LEAVE`].
    Leave,
    /// See [`scripts::SWEEP`].
    Sweep,
    /// See [`scripts::RESYNC`].
    Resync,
}

impl ScriptKind {
    /// The script's text.
    pub fn source(self) -> &'static str {
        match self {
            ScriptKind::Join => scripts::JOIN,
            ScriptKind::Renew => scripts::RENEW,
            ScriptKind::Leave => scripts::LEAVE,
            ScriptKind::Sweep => scripts::SWEEP,
            ScriptKind::Resync => scripts::RESYNC,
        }
    }
}

/// One script invocation, ready to send: which script, its keys and its
/// arguments. Built here so the argument layout lives next to the scripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCall {
    /// The script.
    pub kind: ScriptKind,
    /// `KEYS`: leases, expiries, seq.
    pub keys: [String; 3],
    /// `ARGV`.
    pub args: Vec<String>,
}

/// Builds the calls for one space; holds what every call passes.
#[derive(Debug, Clone)]
pub struct SpaceCalls {
    keys: SpaceKeys,
    mode: PublishMode,
    ttl_ms: u64,
    max_clients: Option<usize>,
}

impl SpaceCalls {
    /// Calls for `space` with lease length `ttl_ms`, publishing with `mode`.
    pub fn new(space: &SpaceName, mode: PublishMode, ttl_ms: u64) -> Self {
        SpaceCalls {
            keys: SpaceKeys::new(space),
            mode,
            ttl_ms,
            max_clients: None,
        }
    }

    /// Joins beyond `max_clients` leases are refused
    /// ([`ScriptStatus::Full`]); `None`: no limit.
    pub fn with_max_clients(mut self, max_clients: Option<usize>) -> Self {
        self.max_clients = max_clients;
        self
    }

    /// The space's key and channel names.
    pub fn keys(&self) -> &SpaceKeys {
        &self.keys
    }

    fn call(&self, kind: ScriptKind, now: UnixMillis, extra: Vec<String>) -> ScriptCall {
        let keep = self.ttl_ms.saturating_add(IDLE_KEEP_MS).min(MAX_KEEP_MS);
        let mut args = vec![
            self.keys.channel.clone(),
            self.mode.publish_command().to_owned(),
            now.0.to_string(),
            keep.to_string(),
        ];
        args.extend(extra);
        ScriptCall {
            kind,
            keys: [
                self.keys.leases.clone(),
                self.keys.expiries.clone(),
                self.keys.seq.clone(),
            ],
            args,
        }
    }

    fn expires_at(&self, now: UnixMillis) -> String {
        now.plus(self.ttl_ms).0.to_string()
    }

    /// A join of `id` for `identity` on `holder`; `snapshot` asks for the
    /// roster after it (a hub's first join), so it stays one round trip.
    pub fn join(
        &self,
        identity: &str,
        id: &ClientId,
        holder: ConnId,
        now: UnixMillis,
        snapshot: bool,
    ) -> ScriptCall {
        let fresh = ClientInfo {
            id: id.clone(),
            identity: identity.to_owned(),
            joined_at: now,
        };
        self.call(
            ScriptKind::Join,
            now,
            vec![
                id.as_str().to_owned(),
                identity.to_owned(),
                holder_text(holder),
                self.expires_at(now),
                serde_json::to_string(&fresh).expect("clients serialize"),
                if snapshot { "1" } else { "0" }.to_owned(),
                self.max_clients.unwrap_or(0).to_string(),
            ],
        )
    }

    /// A ping from `holder`.
    pub fn renew(&self, id: &ClientId, holder: ConnId, now: UnixMillis) -> ScriptCall {
        self.call(
            ScriptKind::Renew,
            now,
            vec![
                id.as_str().to_owned(),
                holder_text(holder),
                self.expires_at(now),
            ],
        )
    }

    /// A clean close by `holder`.
    pub fn leave(&self, id: &ClientId, holder: ConnId, now: UnixMillis) -> ScriptCall {
        self.call(
            ScriptKind::Leave,
            now,
            vec![id.as_str().to_owned(), holder_text(holder)],
        )
    }

    /// Expires whatever has run out.
    pub fn sweep(&self, now: UnixMillis) -> ScriptCall {
        self.call(ScriptKind::Sweep, now, Vec::new())
    }

    /// A snapshot for a hub at sequence `applied` that knows `known` (its
    /// view, with the holder where the socket is local and `ConnId(0)`
    /// otherwise); see `resync.lua`.
    pub fn resync(&self, applied: u64, known: &[LeaseRecord], now: UnixMillis) -> ScriptCall {
        let known: Vec<RawRecord> = known
            .iter()
            .map(|r| RawRecord {
                client: r.client.clone(),
                holder: holder_text(r.holder),
            })
            .collect();
        self.call(
            ScriptKind::Resync,
            now,
            vec![
                applied.to_string(),
                self.expires_at(now),
                serde_json::to_string(&known).expect("records serialize"),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(s: &str) -> SpaceName {
        SpaceName::parse(s).unwrap()
    }

    fn client(id: &str) -> ClientInfo {
        ClientInfo {
            id: ClientId::parse(id).unwrap(),
            identity: "a|b/ü \"x\"".into(),
            joined_at: UnixMillis(1_764_000_000_123),
        }
    }

    #[test]
    fn keys_share_one_tag_that_spans_the_whole_space() {
        let k = SpaceKeys::new(&space("room"));
        assert_eq!(k.leases, "lh:{room}:leases");
        assert_eq!(k.expiries, "lh:{room}:expiries");
        assert_eq!(k.seq, "lh:{room}:seq");
        assert_eq!(k.channel, "lh:{room}:events");
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

    #[test]
    fn events_round_trip() {
        let events = [
            RosterEvent::Joined {
                client: client("x"),
                holder: ConnId(u64::MAX),
            },
            RosterEvent::Resumed {
                client: client("x"),
                holder: ConnId(0xdead_beef_0000_0001),
                replaced: ConnId(u64::MAX - 1),
            },
            RosterEvent::Left {
                client: client("y"),
                holder: ConnId(7),
                cause: LeaveCause::Closed,
            },
            RosterEvent::Left {
                client: client("y"),
                holder: ConnId(7),
                cause: LeaveCause::Expired,
            },
        ];
        for (i, event) in events.into_iter().enumerate() {
            let s = Sequenced {
                seq: i as u64 + 1,
                event,
            };
            assert_eq!(decode_event(&encode_event(&s)).unwrap(), s);
        }
    }

    #[test]
    fn events_decode_as_the_scripts_write_them() {
        let text = r#"{"seq":3,"kind":"leave","client":{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:26.480Z"},"holder":"18446744073709551615","cause":"expired"}"#;
        let e = decode_event(text).unwrap();
        assert_eq!(e.seq, 3);
        assert!(matches!(
            e.event,
            RosterEvent::Left {
                holder: ConnId(u64::MAX),
                cause: LeaveCause::Expired,
                ..
            }
        ));
        assert!(decode_event(r#"{"seq":1,"kind":"nope","client":{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:26.480Z"},"holder":"1"}"#).is_err());
        assert!(decode_event("{}").is_err());
    }

    #[test]
    fn records_round_trip_with_exact_holders() {
        let r = LeaseRecord {
            client: client("x"),
            holder: ConnId(u64::MAX),
        };
        assert!(r.encode().contains(r#""holder":"18446744073709551615""#));
        assert_eq!(LeaseRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn replies_decode() {
        let rec = LeaseRecord {
            client: client("x"),
            holder: ConnId(5),
        };
        let text = format!(
            r#"{{"status":"ok","events":[{}],"next":"1764000060000","snapshot":{{"seq":9,"leases":[{}]}}}}"#,
            encode_event(&Sequenced {
                seq: 9,
                event: RosterEvent::Joined {
                    client: client("x"),
                    holder: ConnId(5)
                }
            }),
            rec.encode()
        );
        let r = ScriptReply::decode(&text).unwrap();
        assert_eq!(r.status, ScriptStatus::Ok);
        assert_eq!(r.events.len(), 1);
        assert_eq!(r.next_expiry, Some(UnixMillis(1_764_000_060_000)));
        assert_eq!(
            r.snapshot,
            Some(Snapshot {
                seq: 9,
                leases: vec![(client("x"), ConnId(5))]
            })
        );
        let r = ScriptReply::decode(
            r#"{"status":"refused","events":[],"next":"1.8446744073709552e+19","snapshot":null}"#,
        )
        .unwrap();
        assert_eq!(r.status, ScriptStatus::Refused);
        let full =
            ScriptReply::decode(r#"{"status":"full","events":[],"next":null,"snapshot":null}"#)
                .unwrap();
        assert_eq!(full.status, ScriptStatus::Full);
        assert_eq!(r.next_expiry, Some(UnixMillis(u64::MAX)));
        assert!(
            ScriptReply::decode(r#"{"status":"?","events":[],"next":null,"snapshot":null}"#)
                .is_err()
        );
    }

    #[test]
    fn calls_lay_out_their_arguments() {
        let calls = SpaceCalls::new(&space("s"), PublishMode::Sharded, 1000);
        let c = calls.join(
            "me",
            &ClientId::parse("x").unwrap(),
            ConnId(3),
            UnixMillis(10),
            true,
        );
        assert_eq!(c.kind, ScriptKind::Join);
        assert_eq!(c.keys[0], "lh:{s}:leases");
        assert_eq!(&c.args[..4], ["lh:{s}:events", "SPUBLISH", "10", "3601000"]);
        assert_eq!(&c.args[4..8], ["x", "me", "3", "1010"]);
        assert_eq!(c.args[9], "1");
        assert_eq!(c.args[10], "0");
        let limited = calls.with_max_clients(Some(7)).join(
            "me",
            &ClientId::parse("x").unwrap(),
            ConnId(3),
            UnixMillis(10),
            false,
        );
        assert_eq!(limited.args[10], "7");
        assert!(scripts::JOIN.contains("local function sweep()"));
    }
}
