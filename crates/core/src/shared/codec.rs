//! The wire form of what the scripts publish and return: events and resets
//! on the space's channel, and every script's reply.
//!
//! The scripts build these texts by concatenation (Lua's `cjson` would
//! re-encode a client's numbers with 14 significant digits); this module
//! writes the same texts (for tests and simulated stores) and reads them.

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::roster::{LeaveCause, RosterEvent, Sequenced};
use crate::time::UnixMillis;
use crate::wire::ClientInfo;

/// A stored, published or returned text that does not decode.
#[derive(Debug, Error)]
pub enum CodecError {
    /// Not the JSON the scripts write.
    #[error("malformed shared-store JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A connection id that is not a decimal `u64`.
    #[error("malformed holder {0:?}")]
    Holder(String),
    /// An epoch that is not 1 to 32 characters of `0-9 a-z A-Z - _`.
    #[error("malformed epoch {0:?}")]
    Epoch(String),
    /// An event kind or cause this version does not know.
    #[error("unknown event {0:?}")]
    Kind(String),
    /// A script answered with a status this version does not know.
    #[error("unknown script status {0:?}")]
    Status(String),
}

/// Which history of a space a sequence number belongs to. A script starts
/// a new epoch whenever it finds the space's data missing, incomplete or
/// behind what its caller has seen (a `FLUSHALL`, an eviction, a failover
/// to a lagging replica), so sequence numbers of two histories are never
/// compared. Random, chosen by the caller (scripts have no randomness).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(String);

impl Epoch {
    /// An epoch from 64 random bits: 16 lowercase hex digits.
    pub fn from_random(bits: u64) -> Self {
        Epoch(format!("{bits:016x}"))
    }

    /// Validates an epoch read from the store: it is pasted into JSON by
    /// the scripts, so only characters that need no escaping pass.
    pub fn parse(s: &str) -> Result<Self, CodecError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Epoch(s.to_owned()))
        } else {
            Err(CodecError::Epoch(s.to_owned()))
        }
    }

    /// The epoch as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Holders travel as decimal strings: Lua's numbers are doubles and would
/// round a random 64-bit connection id.
pub(crate) fn holder_text(holder: ConnId) -> String {
    holder.0.to_string()
}

fn parse_holder(text: &str) -> Result<ConnId, CodecError> {
    text.parse()
        .map(ConnId)
        .map_err(|_| CodecError::Holder(text.to_owned()))
}

/// One message on a space's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A roster event of history `epoch`.
    Event {
        /// Its history.
        epoch: Epoch,
        /// The event and its sequence number.
        event: Sequenced,
    },
    /// A script began history `epoch` (the old one was lost): every
    /// instance serving the space resynchronises.
    Reset {
        /// The new history.
        epoch: Epoch,
    },
    /// A broadcast or cursor (section 13), published when the space's
    /// history stood at `after`: shown only once that much is applied.
    Relay {
        /// Its history.
        epoch: Epoch,
        /// The space's sequence number when it was published.
        after: u64,
        /// The sender; `None` for the server API.
        from: Option<ClientId>,
        /// The message as every recipient gets it.
        text: Arc<str>,
    },
}

#[derive(Deserialize)]
struct RawMessage {
    epoch: String,
    #[serde(default)]
    reset: bool,
    seq: Option<u64>,
    kind: Option<String>,
    client: Option<ClientInfo>,
    holder: Option<String>,
    #[serde(default)]
    replaced: Option<String>,
    #[serde(default)]
    cause: Option<String>,
    #[serde(default)]
    relay: bool,
    #[serde(default)]
    from: Option<ClientId>,
    #[serde(default)]
    message: Option<Box<RawValue>>,
}

/// The text of one event as the scripts publish it:
/// `{"epoch":"E","seq":N,"kind":"join"|"resume"|"leave","client":{…},"holder":"…"}`
/// plus `"replaced"` for a resume and `"cause":"closed"|"expired"` for a
/// leave.
pub fn encode_event(epoch: &Epoch, event: &Sequenced) -> String {
    let (kind, client, holder, extra) = match &event.event {
        RosterEvent::Joined { client, holder } => ("join", client, holder, String::new()),
        RosterEvent::Updated { client, holder } => ("update", client, holder, String::new()),
        RosterEvent::Resumed {
            client,
            holder,
            replaced,
        } => (
            "resume",
            client,
            holder,
            format!(r#","replaced":"{}""#, holder_text(*replaced)),
        ),
        RosterEvent::Left {
            client,
            holder,
            cause,
        } => (
            "leave",
            client,
            holder,
            format!(
                r#","cause":"{}""#,
                match cause {
                    LeaveCause::Closed => "closed",
                    LeaveCause::Expired => "expired",
                    LeaveCause::Removed => "removed",
                }
            ),
        ),
    };
    format!(
        r#"{{"epoch":"{epoch}","seq":{},"kind":"{kind}","client":{},"holder":"{}"{extra}}}"#,
        event.seq,
        serde_json::to_string(client).expect("clients serialize"),
        holder_text(*holder),
    )
}

/// The text of a relay, as the relay script publishes it.
pub fn encode_relay(epoch: &Epoch, after: u64, from: Option<&ClientId>, text: &str) -> String {
    let from = from.map_or_else(|| "null".to_owned(), |id| format!(r#""{}""#, id.as_str()));
    format!(r#"{{"epoch":"{epoch}","seq":{after},"relay":true,"from":{from},"message":{text}}}"#)
}

/// The text of a reset, as the scripts publish it.
pub fn encode_reset(epoch: &Epoch) -> String {
    format!(r#"{{"epoch":"{epoch}","reset":true}}"#)
}

/// Reads one message of a space's channel.
pub fn decode_published(text: &str) -> Result<Published, CodecError> {
    let raw: RawMessage = serde_json::from_str(text)?;
    from_raw(raw)
}

fn from_raw(raw: RawMessage) -> Result<Published, CodecError> {
    let epoch = Epoch::parse(&raw.epoch)?;
    if raw.reset {
        return Ok(Published::Reset { epoch });
    }
    if raw.relay {
        let (Some(after), Some(message)) = (raw.seq, raw.message) else {
            return Err(CodecError::Kind("a relay without seq or message".into()));
        };
        return Ok(Published::Relay {
            epoch,
            after,
            from: raw.from,
            text: Arc::from(message.get()),
        });
    }
    let missing = || CodecError::Kind("an event without seq, kind, client or holder".into());
    let (Some(seq), Some(kind), Some(client), Some(holder)) =
        (raw.seq, raw.kind, raw.client, raw.holder)
    else {
        return Err(missing());
    };
    let holder = parse_holder(&holder)?;
    let event = match (kind.as_str(), raw.cause.as_deref()) {
        ("join", _) => RosterEvent::Joined { client, holder },
        ("update", _) => RosterEvent::Updated { client, holder },
        ("resume", _) => RosterEvent::Resumed {
            client,
            holder,
            replaced: parse_holder(raw.replaced.as_deref().unwrap_or("0"))?,
        },
        ("leave", Some("closed")) => RosterEvent::Left {
            client,
            holder,
            cause: LeaveCause::Closed,
        },
        ("leave", Some("expired")) => RosterEvent::Left {
            client,
            holder,
            cause: LeaveCause::Expired,
        },
        ("leave", Some("removed")) => RosterEvent::Left {
            client,
            holder,
            cause: LeaveCause::Removed,
        },
        (kind, cause) => return Err(CodecError::Kind(format!("{kind}/{cause:?}"))),
    };
    Ok(Published::Event {
        epoch,
        event: Sequenced { seq, event },
    })
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
    /// A resync found the caller's history gone and put its leases back.
    Restored,
}

/// The decoded answer of every script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptReply {
    /// What the script did.
    pub status: ScriptStatus,
    /// The space's history after the call; `None` when the store holds
    /// nothing for the space (never used, or lost and nothing put back).
    pub epoch: Option<Epoch>,
    /// The sequence number of the space's last event after the call.
    pub seq: u64,
    /// The store's clock when the script ran: every lease is judged by it.
    pub now: UnixMillis,
    /// The events it published, in sequence order (sweep leaves first).
    pub events: Vec<Sequenced>,
    /// When the earliest remaining lease runs out (store clock).
    pub next_expiry: Option<UnixMillis>,
    /// Every lease after the call with its holder (at [`ScriptReply::seq`]),
    /// when asked for.
    pub snapshot: Option<Vec<(ClientInfo, ConnId)>>,
}

#[derive(Deserialize)]
struct RawReply {
    status: String,
    epoch: Option<String>,
    seq: u64,
    now: u64,
    events: Vec<RawMessage>,
    next: Option<String>,
    leases: Option<Vec<RawLease>>,
}

#[derive(Deserialize)]
struct RawLease {
    holder: String,
    client: ClientInfo,
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
        let epoch = raw.epoch.as_deref().map(Epoch::parse).transpose()?;
        let mut events = Vec::with_capacity(raw.events.len());
        for message in raw.events {
            match from_raw(message)? {
                Published::Event { epoch: e, event } if Some(&e) == epoch.as_ref() => {
                    events.push(event);
                }
                other => {
                    return Err(CodecError::Kind(format!(
                        "a reply of epoch {epoch:?} carries {other:?}"
                    )))
                }
            }
        }
        // Scores come back as Redis formats doubles ("1764000060000", or
        // "1.8e+19" for a lease that practically never ends).
        let next_expiry = raw
            .next
            .and_then(|s| s.parse::<f64>().ok())
            .map(|ms| UnixMillis(ms as u64));
        let snapshot = raw
            .leases
            .map(|leases| {
                leases
                    .into_iter()
                    .map(|l| Ok((l.client, parse_holder(&l.holder)?)))
                    .collect::<Result<Vec<_>, CodecError>>()
            })
            .transpose()?;
        Ok(ScriptReply {
            status,
            epoch,
            seq: raw.seq,
            now: UnixMillis(raw.now),
            events,
            next_expiry,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_id::ClientId;

    fn client(id: &str) -> ClientInfo {
        let mut c = ClientInfo::new(
            ClientId::parse(id).unwrap(),
            "a|b/ü \"x\"",
            UnixMillis(1_764_000_000_123),
        );
        if id == "y" {
            c.state = crate::Json::object(r#"{"n":1e3,"s":"é"}"#).ok();
        }
        c
    }

    fn epoch() -> Epoch {
        Epoch::from_random(0xfeed)
    }

    #[test]
    fn epochs_are_hex_and_only_safe_text_parses() {
        assert_eq!(epoch().as_str(), "000000000000feed");
        assert!(Epoch::parse("ab-_9Z").is_ok());
        for bad in ["", "a\"b", "a b", &"x".repeat(33), "é"] {
            assert!(Epoch::parse(bad).is_err(), "{bad:?}");
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
            RosterEvent::Updated {
                client: client("y"),
                holder: ConnId(7),
            },
            RosterEvent::Left {
                client: client("y"),
                holder: ConnId(7),
                cause: LeaveCause::Removed,
            },
        ];
        for (i, event) in events.into_iter().enumerate() {
            let s = Sequenced {
                seq: i as u64 + 1,
                event,
            };
            assert_eq!(
                decode_published(&encode_event(&epoch(), &s)).unwrap(),
                Published::Event {
                    epoch: epoch(),
                    event: s
                }
            );
        }
        assert_eq!(
            decode_published(&encode_reset(&epoch())).unwrap(),
            Published::Reset { epoch: epoch() }
        );
        let text = r#"{"event":"broadcast","from":"s","data":[1, {"a":null}]}"#;
        let from = ClientId::parse("s").unwrap();
        for from in [Some(from), None] {
            assert_eq!(
                decode_published(&encode_relay(&epoch(), 4, from.as_ref(), text)).unwrap(),
                Published::Relay {
                    epoch: epoch(),
                    after: 4,
                    from,
                    text: text.into()
                }
            );
        }
    }

    #[test]
    fn events_decode_as_the_scripts_write_them() {
        let text = r#"{"epoch":"e1","seq":3,"kind":"leave","client":{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:26.480Z","state":{"x":1.5}},"holder":"18446744073709551615","cause":"expired"}"#;
        let Published::Event { epoch, event } = decode_published(text).unwrap() else {
            panic!("not an event");
        };
        assert_eq!(epoch.as_str(), "e1");
        assert_eq!(event.seq, 3);
        assert!(matches!(
            event.event,
            RosterEvent::Left {
                holder: ConnId(u64::MAX),
                cause: LeaveCause::Expired,
                ..
            }
        ));
        for bad in [
            r#"{"epoch":"e","seq":1,"kind":"nope","client":{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:26.480Z"},"holder":"1"}"#,
            r#"{"epoch":"e","seq":1}"#,
            r#"{"seq":1,"kind":"join","client":{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:26.480Z"},"holder":"1"}"#,
            "{}",
            "junk",
        ] {
            assert!(decode_published(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replies_decode() {
        let event = Sequenced {
            seq: 9,
            event: RosterEvent::Joined {
                client: client("x"),
                holder: ConnId(5),
            },
        };
        let text = format!(
            r#"{{"status":"ok","epoch":"{}","seq":9,"now":1764000000000,"events":[{}],"next":"1764000060000","leases":[{{"holder":"5","client":{}}}]}}"#,
            epoch(),
            encode_event(&epoch(), &event),
            serde_json::to_string(&client("x")).unwrap()
        );
        let r = ScriptReply::decode(&text).unwrap();
        assert_eq!(r.status, ScriptStatus::Ok);
        assert_eq!(r.epoch, Some(epoch()));
        assert_eq!((r.seq, r.now), (9, UnixMillis(1_764_000_000_000)));
        assert_eq!(r.events, vec![event]);
        assert_eq!(r.next_expiry, Some(UnixMillis(1_764_000_060_000)));
        assert_eq!(r.snapshot, Some(vec![(client("x"), ConnId(5))]));
        let r = ScriptReply::decode(
            r#"{"status":"refused","epoch":null,"seq":0,"now":1,"events":[],"next":"1.8446744073709552e+19","leases":null}"#,
        )
        .unwrap();
        assert_eq!(r.status, ScriptStatus::Refused);
        assert_eq!(r.epoch, None);
        assert_eq!(r.next_expiry, Some(UnixMillis(u64::MAX)));
        assert!(ScriptReply::decode(
            r#"{"status":"?","epoch":null,"seq":0,"now":1,"events":[],"next":null,"leases":null}"#
        )
        .is_err());
        // An event of another epoch than the reply's cannot be.
        let text = format!(
            r#"{{"status":"ok","epoch":"other","seq":9,"now":1,"events":[{}],"next":null,"leases":null}}"#,
            encode_event(
                &epoch(),
                &Sequenced {
                    seq: 9,
                    event: RosterEvent::Joined {
                        client: client("x"),
                        holder: ConnId(5)
                    }
                }
            )
        );
        assert!(ScriptReply::decode(&text).is_err());
    }
}
