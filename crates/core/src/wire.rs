//! What the server sends, byte for byte as section 2 to 4 show it.

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client_id::ClientId;
use crate::time::UnixMillis;

/// One present client as rosters and events show it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// The lease's client id.
    pub id: ClientId,
    /// Who holds it, opaque.
    pub identity: String,
    /// When the lease began; a resume keeps it.
    pub joined_at: UnixMillis,
}

impl Serialize for ClientInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ClientInfo", 3)?;
        st.serialize_field("id", self.id.as_str())?;
        st.serialize_field("identity", &self.identity)?;
        st.serialize_field("joinedAt", &self.joined_at.to_rfc3339())?;
        st.end()
    }
}

impl<'de> Deserialize<'de> for ClientInfo {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            id: ClientId,
            identity: String,
            #[serde(rename = "joinedAt")]
            joined_at: String,
        }
        let raw = Raw::deserialize(d)?;
        let joined_at = UnixMillis::parse_rfc3339(&raw.joined_at)
            .ok_or_else(|| serde::de::Error::custom("joinedAt is not RFC 3339"))?;
        Ok(ClientInfo {
            id: raw.id,
            identity: raw.identity,
            joined_at,
        })
    }
}

/// A message from the server to one client. Encode it once with
/// [`ServerMessage::encode`] and share the text among recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// The first message after a join: the client's id and the roster.
    Welcome {
        /// The joined client's id.
        id: ClientId,
        /// Everyone present, the client included.
        clients: Vec<ClientInfo>,
    },
    /// Someone else joined.
    RemoteJoin(ClientInfo),
    /// Someone else left, closed or expired.
    RemoteLeave(ClientInfo),
    /// The recipient's own lease ran out; a close 4000 follows.
    Expired,
    /// Something the client did was refused (section 6).
    Error(String),
    /// The native server's keepalive.
    Keepalive,
    /// The optional answer to a ping.
    Pong,
}

impl Serialize for ServerMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        match self {
            ServerMessage::Welcome { id, clients } => {
                m.serialize_entry("id", id.as_str())?;
                m.serialize_entry("clients", clients)?;
            }
            ServerMessage::RemoteJoin(c) => {
                m.serialize_entry("event", "remote join")?;
                m.serialize_entry("client", c)?;
            }
            ServerMessage::RemoteLeave(c) => {
                m.serialize_entry("event", "remote leave")?;
                m.serialize_entry("client", c)?;
            }
            ServerMessage::Expired => m.serialize_entry("event", "expired")?,
            ServerMessage::Error(e) => m.serialize_entry("error", e)?,
            ServerMessage::Keepalive => m.serialize_entry("ping", &true)?,
            ServerMessage::Pong => m.serialize_entry("pong", &true)?,
        }
        m.end()
    }
}

impl ServerMessage {
    /// The JSON text of one frame, shareable among every recipient.
    pub fn encode(&self) -> Arc<str> {
        serde_json::to_string(self)
            .expect("server messages always serialize")
            .into()
    }
}

/// The text of the native keepalive, `{"ping":true}`.
pub const KEEPALIVE_TEXT: &str = r#"{"ping":true}"#;
/// The exact ping text the edge target answers without waking its hub.
pub const PING_TEXT: &str = r#"{"action":"ping"}"#;
/// The answer to [`PING_TEXT`] on the edge, `{"pong":true}`.
pub const PONG_TEXT: &str = r#"{"pong":true}"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: &str, identity: &str, ms: u64) -> ClientInfo {
        ClientInfo {
            id: ClientId::parse(id).unwrap(),
            identity: identity.to_owned(),
            joined_at: UnixMillis(ms),
        }
    }

    #[test]
    fn welcome_is_byte_for_byte() {
        let a = client("3f0c", "a@example.com", 1_433_538_566_480);
        let b = client("9a11", "b@example.com", 1_433_538_568_493);
        let msg = ServerMessage::Welcome {
            id: a.id.clone(),
            clients: vec![a, b],
        };
        assert_eq!(
            &*msg.encode(),
            r#"{"id":"3f0c","clients":[{"id":"3f0c","identity":"a@example.com","joinedAt":"2015-06-05T21:09:26.480Z"},{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"}]}"#
        );
    }

    #[test]
    fn events_are_byte_for_byte() {
        let b = client("9a11", "b@example.com", 1_433_538_568_493);
        assert_eq!(
            &*ServerMessage::RemoteJoin(b.clone()).encode(),
            r#"{"event":"remote join","client":{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"}}"#
        );
        assert_eq!(
            &*ServerMessage::RemoteLeave(b).encode(),
            r#"{"event":"remote leave","client":{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"}}"#
        );
        assert_eq!(&*ServerMessage::Expired.encode(), r#"{"event":"expired"}"#);
        assert_eq!(&*ServerMessage::Keepalive.encode(), KEEPALIVE_TEXT);
        assert_eq!(&*ServerMessage::Pong.encode(), PONG_TEXT);
        assert_eq!(
            &*ServerMessage::Error("Unparsable message sent".into()).encode(),
            r#"{"error":"Unparsable message sent"}"#
        );
    }

    #[test]
    fn opaque_identities_round_trip() {
        let c = client("x", "|*[x]/%41:Zoë 🦀\"\\", 0);
        let text = serde_json::to_string(&c).unwrap();
        let back: ClientInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
