//! What a client may send, and the section 6 errors for everything else.

use std::sync::Arc;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::close::CloseCode;
use crate::defaults::DEFAULT_MAX_STATE_BYTES;
use crate::json::Json;

/// One complete (reassembled) frame from a client, as the target got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A text frame's payload, not yet checked for UTF-8.
    Text(&'a [u8]),
    /// A binary frame.
    Binary,
    /// A frame whose size the target's WebSocket layer already refused as
    /// larger than the limit (it never buffered it).
    Oversized,
    /// A text frame the target's WebSocket layer already found not UTF-8.
    InvalidUtf8,
    /// A frame over the connection's message rate (the target's
    /// [`crate::TokenBucket`] was empty): refused whatever it holds.
    RateLimited,
}

/// A message the protocol understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"action":"ping"}`: renews the lease. Extra fields are ignored.
    Ping,
    /// `{"action":"update","state":{…}|null}`: replaces the state
    /// (section 10); renews the lease.
    Update {
        /// The new state, compact; `None` clears it.
        state: Option<Json>,
    },
    /// `{"action":"broadcast","data":…}`: relayed to everyone else
    /// (section 13); renews the lease.
    Broadcast {
        /// The data, as sent.
        data: Json,
    },
    /// `{"action":"cursor",…}`: the 2015 cursor, relayed to everyone else
    /// with its `clientId` set; renews the lease.
    Cursor {
        /// Every field sent.
        fields: Arc<serde_json::Map<String, serde_json::Value>>,
    },
}

/// A frame the protocol refuses. `Display` is the wire text, where there is
/// one; [`MessageError::close_code`] says whether the socket stays open.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    /// Larger than `MAX_MESSAGE_BYTES` after reassembly.
    #[error("Message too large: the limit is {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A text frame that is not UTF-8: closed with 1007 and no message.
    #[error("Text frame is not valid UTF-8")]
    NotUtf8,
    /// Not JSON at all.
    #[error("Unparsable message sent")]
    Unparsable,
    /// JSON, but no action this protocol knows.
    #[error("Unrecognized action sent")]
    UnrecognizedAction,
    /// Binary frames carry nothing in this protocol.
    #[error("Binary messages are not supported")]
    Binary,
    /// More messages than the per-connection rate allows: a flood is a
    /// protocol violation (close 1008, the lease ends).
    #[error("Rate limit exceeded: too many messages")]
    RateLimited,
    /// An update whose `state` is missing, or neither an object nor null.
    #[error("Invalid state")]
    InvalidState,
    /// An update whose `state` text is over `MAX_STATE_BYTES`.
    #[error("State too large: the limit is {limit} bytes")]
    StateTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A broadcast without `data`.
    #[error("Invalid broadcast")]
    InvalidBroadcast,
}

impl MessageError {
    /// The close the error forces, or `None` when the socket stays open.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            MessageError::TooLarge { .. } => Some(CloseCode::MessageTooBig),
            MessageError::NotUtf8 => Some(CloseCode::InvalidPayload),
            MessageError::RateLimited => Some(CloseCode::PolicyViolation),
            MessageError::Unparsable
            | MessageError::UnrecognizedAction
            | MessageError::Binary
            | MessageError::InvalidState
            | MessageError::StateTooLarge { .. }
            | MessageError::InvalidBroadcast => None,
        }
    }

    /// Whether the client is told why with an error message first
    /// (section 6: a non-UTF-8 frame is closed without one).
    pub fn has_message(&self) -> bool {
        !matches!(self, MessageError::NotUtf8)
    }
}

/// Decodes one frame under a size limit, states under the default
/// `MAX_STATE_BYTES`.
pub fn decode(frame: Frame<'_>, max_bytes: usize) -> Result<ClientMessage, MessageError> {
    decode_limited(frame, max_bytes, DEFAULT_MAX_STATE_BYTES)
}

/// The fields of an update or a broadcast, as sent (a present `null` is
/// `Some`).
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    state: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Decodes one frame under a message size limit and a state size limit.
pub fn decode_limited(
    frame: Frame<'_>,
    max_bytes: usize,
    max_state_bytes: usize,
) -> Result<ClientMessage, MessageError> {
    let bytes = match frame {
        Frame::Binary => return Err(MessageError::Binary),
        Frame::Oversized => return Err(MessageError::TooLarge { limit: max_bytes }),
        Frame::InvalidUtf8 => return Err(MessageError::NotUtf8),
        Frame::RateLimited => return Err(MessageError::RateLimited),
        Frame::Text(bytes) => bytes,
    };
    if bytes.len() > max_bytes {
        return Err(MessageError::TooLarge { limit: max_bytes });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| MessageError::NotUtf8)?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| MessageError::Unparsable)?;
    let serde_json::Value::Object(fields) = value else {
        return Err(MessageError::UnrecognizedAction);
    };
    let Some(serde_json::Value::String(action)) = fields.get("action") else {
        return Err(MessageError::UnrecognizedAction);
    };
    match action.as_str() {
        "ping" => Ok(ClientMessage::Ping),
        "update" => {
            // A repeated key is refused here (JSON objects should not have
            // them, and which one counts is not for us to guess).
            let raw: Fields<'_> =
                serde_json::from_str(text).map_err(|_| MessageError::InvalidState)?;
            let state = raw.state.ok_or(MessageError::InvalidState)?.get();
            if state == "null" {
                return Ok(ClientMessage::Update { state: None });
            }
            if !state.starts_with('{') {
                return Err(MessageError::InvalidState);
            }
            if state.len() > max_state_bytes {
                return Err(MessageError::StateTooLarge {
                    limit: max_state_bytes,
                });
            }
            let state = Json::object(state).map_err(|_| MessageError::InvalidState)?;
            Ok(ClientMessage::Update { state: Some(state) })
        }
        "broadcast" => {
            let raw: Fields<'_> =
                serde_json::from_str(text).map_err(|_| MessageError::InvalidBroadcast)?;
            let data = raw.data.ok_or(MessageError::InvalidBroadcast)?;
            Ok(ClientMessage::Broadcast {
                data: Json::raw(data),
            })
        }
        "cursor" => Ok(ClientMessage::Cursor {
            fields: Arc::new(fields),
        }),
        _ => Err(MessageError::UnrecognizedAction),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<ClientMessage, MessageError> {
        decode(Frame::Text(s.as_bytes()), 4096)
    }

    #[test]
    fn ping_with_or_without_extra_fields() {
        assert_eq!(text(r#"{"action":"ping"}"#), Ok(ClientMessage::Ping));
        assert_eq!(
            text(r#" {"x":[1,2],"action":"ping","y":null} "#),
            Ok(ClientMessage::Ping)
        );
    }

    fn state(s: &str) -> Option<Json> {
        Some(Json::object(s).unwrap())
    }

    #[test]
    fn update_replaces_or_clears_the_state() {
        assert_eq!(
            text(r#"{"action":"update","state":{"b":1, "a":[true]},"x":0}"#),
            Ok(ClientMessage::Update {
                state: state(r#"{"a":[true],"b":1}"#)
            })
        );
        assert_eq!(
            text(r#"{"action":"update","state":null}"#),
            Ok(ClientMessage::Update { state: None })
        );
        for bad in [
            r#"{"action":"update"}"#,
            r#"{"action":"update","state":[1]}"#,
            r#"{"action":"update","state":"x"}"#,
            r#"{"action":"update","state":1}"#,
            r#"{"action":"update","state":{},"state":{}}"#,
        ] {
            let e = text(bad).unwrap_err();
            assert_eq!(e, MessageError::InvalidState, "{bad}");
            assert_eq!(e.to_string(), "Invalid state");
            assert_eq!(e.close_code(), None);
        }
    }

    #[test]
    fn state_size_is_the_raw_text_as_sent_inclusive() {
        // {"p":"xxx…"} of exactly n bytes.
        let of = |n: usize| format!(r#"{{"p":"{}"}}"#, "x".repeat(n - 8));
        assert_eq!(of(10).len(), 10);
        let msg = |s: &str| format!(r#"{{"action":"update","state":{s}}}"#);
        let at = |s: &str, limit| decode_limited(Frame::Text(msg(s).as_bytes()), 4096, limit);
        assert!(at(&of(10), 10).is_ok());
        let e = at(&of(11), 10).unwrap_err();
        assert_eq!(e, MessageError::StateTooLarge { limit: 10 });
        assert!(e.to_string().starts_with("State too large"));
        assert_eq!(e.close_code(), None);
        // Whitespace as sent counts.
        assert!(at(r#"{ "p" : 1 }"#, 10).is_err());
        assert!(at(r#"{"p":1}"#, 10).is_ok());
        // The default limit is 1024.
        assert!(text(&msg(&of(1024))).is_ok());
        assert!(text(&msg(&of(1025))).is_err());
    }

    #[test]
    fn broadcast_needs_data_of_any_kind() {
        for data in ["null", "1", r#""s""#, "[1, 2]", r#"{"a":{}}"#] {
            let m = text(&format!(r#"{{"action":"broadcast","data":{data}}}"#)).unwrap();
            let ClientMessage::Broadcast { data: got } = m else {
                panic!("{m:?}");
            };
            assert_eq!(got.as_str(), data);
        }
        let e = text(r#"{"action":"broadcast"}"#).unwrap_err();
        assert_eq!(e, MessageError::InvalidBroadcast);
        assert_eq!(e.to_string(), "Invalid broadcast");
        assert_eq!(e.close_code(), None);
    }

    #[test]
    fn cursor_keeps_every_field() {
        let m = text(r#"{"action":"cursor","x":1,"y":2.5,"clientId":"forged"}"#).unwrap();
        let ClientMessage::Cursor { fields } = m else {
            panic!("{m:?}");
        };
        assert_eq!(fields.len(), 4);
        assert_eq!(fields["y"], serde_json::json!(2.5));
    }

    #[test]
    fn unknown_actions_stay_open() {
        for s in [
            r#"{"action":"pong"}"#,
            r#"{"action":1}"#,
            "{}",
            "[]",
            "42",
            r#""ping""#,
            "null",
        ] {
            let e = text(s).unwrap_err();
            assert_eq!(e, MessageError::UnrecognizedAction, "{s}");
            assert_eq!(e.close_code(), None);
            assert_eq!(e.to_string(), "Unrecognized action sent");
        }
    }

    #[test]
    fn not_json_stays_open() {
        for s in ["", "ping", "{", r#"{"action":"ping""#] {
            let e = text(s).unwrap_err();
            assert_eq!(e, MessageError::Unparsable, "{s:?}");
            assert_eq!(e.close_code(), None);
            assert_eq!(e.to_string(), "Unparsable message sent");
        }
    }

    #[test]
    fn binary_stays_open() {
        let e = decode(Frame::Binary, 4096).unwrap_err();
        assert_eq!(e.to_string(), "Binary messages are not supported");
        assert_eq!(e.close_code(), None);
    }

    #[test]
    fn not_utf8_closes_1007_silently() {
        let e = decode(Frame::Text(b"{\"action\":\"\xff\"}"), 4096).unwrap_err();
        assert_eq!(e, MessageError::NotUtf8);
        assert_eq!(e.close_code(), Some(CloseCode::InvalidPayload));
        assert!(!e.has_message());
        assert_eq!(decode(Frame::InvalidUtf8, 4096), Err(MessageError::NotUtf8));
    }

    #[test]
    fn rate_limited_closes_1008_with_a_message() {
        let e = decode(Frame::RateLimited, 4096).unwrap_err();
        assert_eq!(e.close_code(), Some(CloseCode::PolicyViolation));
        assert!(e.has_message());
        assert!(e.to_string().starts_with("Rate limit exceeded"));
    }

    #[test]
    fn size_limit_is_inclusive() {
        let pad = |n: usize| format!(r#"{{"action":"ping","p":"{}"}}"#, "x".repeat(n - 24));
        assert_eq!(pad(100).len(), 100);
        assert_eq!(
            decode(Frame::Text(pad(100).as_bytes()), 100),
            Ok(ClientMessage::Ping)
        );
        let e = decode(Frame::Text(pad(101).as_bytes()), 100).unwrap_err();
        assert!(e.to_string().starts_with("Message too large"));
        assert_eq!(e.close_code(), Some(CloseCode::MessageTooBig));
        assert_eq!(
            decode(Frame::Oversized, 100),
            Err(MessageError::TooLarge { limit: 100 })
        );
    }
}
