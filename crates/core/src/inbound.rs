//! What a client may send, and the section 6 errors for everything else.

use thiserror::Error;

use crate::close::CloseCode;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMessage {
    /// `{"action":"ping"}`: renews the lease. Extra fields are ignored.
    Ping,
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
}

impl MessageError {
    /// The close the error forces, or `None` when the socket stays open.
    pub fn close_code(&self) -> Option<CloseCode> {
        match self {
            MessageError::TooLarge { .. } => Some(CloseCode::MessageTooBig),
            MessageError::NotUtf8 => Some(CloseCode::InvalidPayload),
            MessageError::RateLimited => Some(CloseCode::PolicyViolation),
            MessageError::Unparsable | MessageError::UnrecognizedAction | MessageError::Binary => {
                None
            }
        }
    }

    /// Whether the client is told why with an error message first
    /// (section 6: a non-UTF-8 frame is closed without one).
    pub fn has_message(&self) -> bool {
        !matches!(self, MessageError::NotUtf8)
    }
}

/// Decodes one frame under a size limit.
pub fn decode(frame: Frame<'_>, max_bytes: usize) -> Result<ClientMessage, MessageError> {
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
    match value.get("action") {
        Some(serde_json::Value::String(action)) if value.is_object() && action == "ping" => {
            Ok(ClientMessage::Ping)
        }
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
