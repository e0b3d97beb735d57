//! Client ids: the handle a client keeps to resume its lease.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::join::InvalidReason;

/// Longest client id accepted from a client (section 1 of the protocol).
pub const MAX_ID_CHARS: usize = 64;

/// A validated client id: 1 to 64 characters of `A-Z a-z 0-9 - _`. Fresh ids
/// are lowercase UUID v4 strings, which fit the same rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// Validates an id that came from outside (a query string, a store).
    pub fn parse(s: &str) -> Result<Self, InvalidReason> {
        if s.is_empty() {
            return Err(InvalidReason::Empty);
        }
        if s.chars().count() > MAX_ID_CHARS {
            return Err(InvalidReason::TooLong { max: MAX_ID_CHARS });
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InvalidReason::BadIdCharacter);
        }
        Ok(ClientId(s.to_owned()))
    }

    /// A fresh id from 16 random bytes supplied by the target (the core has
    /// no randomness of its own): a lowercase UUID v4.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
        ClientId(uuid.hyphenated().to_string())
    }

    /// The id as it goes on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ClientId {
    type Error = InvalidReason;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ClientId::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_are_lowercase_uuid_v4() {
        let id = ClientId::from_random_bytes([0xAB; 16]);
        let s = id.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4", "version nibble");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"), "variant");
        assert_eq!(s, s.to_lowercase());
        assert_eq!(ClientId::parse(s).unwrap(), id);
    }

    #[test]
    fn limits() {
        assert!(ClientId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(
            ClientId::parse(&"a".repeat(65)),
            Err(InvalidReason::TooLong { max: 64 })
        );
        assert_eq!(ClientId::parse(""), Err(InvalidReason::Empty));
        assert!(ClientId::parse("A-z_09").is_ok());
        for bad in ["a b", "a.b", "é", "a/b", "a+b"] {
            assert_eq!(ClientId::parse(bad), Err(InvalidReason::BadIdCharacter));
        }
    }
}
