//! What the server sends, byte for byte as sections 2 to 4 and 10 to 13
//! show it.

use std::sync::Arc;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::client_id::ClientId;
use crate::json::Json;
use crate::roster::LeaveCause;
use crate::time::UnixMillis;

/// One present client as rosters and events show it. The optional parts
/// (v2) are absent from its JSON when they are `None`, so a space where
/// nobody uses them shows v1's client objects byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    /// The lease's client id.
    pub id: ClientId,
    /// Who holds it, opaque.
    pub identity: String,
    /// When the lease began; a resume keeps it.
    pub joined_at: UnixMillis,
    /// The 2015 `username` parameter, when it was given (section 11).
    pub username: Option<String>,
    /// The token's signed `info` claim (section 11).
    pub info: Option<Json>,
    /// The presence state (section 10); `None` is `null`.
    pub state: Option<Json>,
}

impl ClientInfo {
    /// A client with none of the optional parts.
    pub fn new(id: ClientId, identity: impl Into<String>, joined_at: UnixMillis) -> Self {
        ClientInfo {
            id,
            identity: identity.into(),
            joined_at,
            username: None,
            info: None,
            state: None,
        }
    }

    /// Whether `other` is the same lease (id, identity, `joinedAt`),
    /// whatever its state, info and username: a difference in those is an
    /// update, in these a leave and a join.
    pub fn same_lease(&self, other: &ClientInfo) -> bool {
        self.id == other.id && self.identity == other.identity && self.joined_at == other.joined_at
    }

    /// This client with `state` instead of its own.
    pub fn with_state(&self, state: Option<Json>) -> ClientInfo {
        ClientInfo {
            state,
            ..self.clone()
        }
    }
}

impl Serialize for ClientInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("ClientInfo", 6)?;
        st.serialize_field("id", self.id.as_str())?;
        st.serialize_field("identity", &self.identity)?;
        st.serialize_field("joinedAt", &self.joined_at.to_rfc3339())?;
        if let Some(username) = &self.username {
            st.serialize_field("username", username)?;
        }
        if let Some(info) = &self.info {
            st.serialize_field("info", info)?;
        }
        if let Some(state) = &self.state {
            st.serialize_field("state", state)?;
        }
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
            #[serde(default)]
            username: Option<String>,
            #[serde(default)]
            info: Option<Json>,
            #[serde(default)]
            state: Option<Json>,
        }
        let raw = Raw::deserialize(d)?;
        let joined_at = UnixMillis::parse_rfc3339(&raw.joined_at)
            .ok_or_else(|| serde::de::Error::custom("joinedAt is not RFC 3339"))?;
        let object = |j: Option<Json>| match j {
            Some(j) if !j.as_str().starts_with('{') => {
                Err(serde::de::Error::custom("state and info must be objects"))
            }
            j => Ok(j),
        };
        Ok(ClientInfo {
            id: raw.id,
            identity: raw.identity,
            joined_at,
            username: raw.username,
            info: object(raw.info)?,
            state: object(raw.state)?,
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
    /// Someone else left, and why (section 12); the client as last seen,
    /// its latest state included.
    RemoteLeave {
        /// Who left.
        client: ClientInfo,
        /// Why.
        reason: LeaveCause,
    },
    /// Someone else's state (or info, or username) changed (section 10).
    RemoteUpdate(ClientInfo),
    /// A message that is not presence (section 13): from a client, or from
    /// the server API (`from` is `None`, `null` on the wire).
    Broadcast {
        /// The sender's id.
        from: Option<ClientId>,
        /// Whatever it sent.
        data: Json,
    },
    /// The 2015 cursor relay: the sender's object, its `clientId` set to
    /// the sender's id.
    Cursor {
        /// The sender's id.
        from: ClientId,
        /// The fields the sender sent (any `clientId` among them is
        /// replaced).
        fields: Arc<serde_json::Map<String, serde_json::Value>>,
    },
    /// The server API removed the recipient's lease; a close 4003 follows.
    Removed,
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
            ServerMessage::RemoteLeave { client, reason } => {
                m.serialize_entry("event", "remote leave")?;
                m.serialize_entry("client", client)?;
                m.serialize_entry("reason", reason.reason())?;
            }
            ServerMessage::RemoteUpdate(c) => {
                m.serialize_entry("event", "remote update")?;
                m.serialize_entry("client", c)?;
            }
            ServerMessage::Broadcast { from, data } => {
                m.serialize_entry("event", "broadcast")?;
                m.serialize_entry("from", &from.as_ref().map(ClientId::as_str))?;
                m.serialize_entry("data", data)?;
            }
            ServerMessage::Cursor { from, fields } => {
                for (key, value) in fields.iter().filter(|(k, _)| *k != "clientId") {
                    m.serialize_entry(key, value)?;
                }
                m.serialize_entry("clientId", from.as_str())?;
            }
            ServerMessage::Removed => m.serialize_entry("error", REMOVED_TEXT)?,
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

/// One client object's text, as welcomes and events embed it: the hub
/// renders it when a client joins or changes and keeps it (boxed to its
/// exact length: one is kept per client in view, and never shared).
pub fn client_text(client: &ClientInfo) -> Box<str> {
    serde_json::to_string(client)
        .expect("client objects always serialize")
        .into_boxed_str()
}

/// A welcome made of its clients' kept texts, in welcome order: the same
/// bytes as [`ServerMessage::Welcome`] encodes to, without serialising
/// the roster again.
pub fn welcome_text(id: &ClientId, clients: &[&str]) -> Arc<str> {
    let id = serde_json::to_string(id.as_str()).expect("ids always serialize");
    const HEAD: &str = r#"{"id":"#;
    const CLIENTS: &str = r#","clients":["#;
    let len = HEAD.len()
        + id.len()
        + CLIENTS.len()
        + clients.iter().map(|c| c.len() + 1).sum::<usize>()
        + 2;
    let mut text = String::with_capacity(len);
    text.push_str(HEAD);
    text.push_str(&id);
    text.push_str(CLIENTS);
    for (i, client) in clients.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(client);
    }
    text.push_str("]}");
    text.into()
}

/// A `remote join` around a client's kept text: the bytes
/// [`ServerMessage::RemoteJoin`] encodes to.
pub fn remote_join_text(client: &str) -> Arc<str> {
    event_text("remote join", client)
}

/// A `remote update` around a client's kept text: the bytes
/// [`ServerMessage::RemoteUpdate`] encodes to.
pub fn remote_update_text(client: &str) -> Arc<str> {
    event_text("remote update", client)
}

fn event_text(event: &str, client: &str) -> Arc<str> {
    [r#"{"event":""#, event, r#"","client":"#, client, "}"]
        .concat()
        .into()
}

/// The error text a removed client gets before its close 4003.
pub const REMOVED_TEXT: &str = "Removed";

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
        ClientInfo::new(ClientId::parse(id).unwrap(), identity, UnixMillis(ms))
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
    fn a_welcome_of_kept_texts_is_the_encoded_welcome() {
        let mut b = client("9a11", "b\"@example.com", 1_433_538_568_493);
        b.state = Some(Json::object(r#"{"x":1}"#).unwrap());
        b.info = Some(Json::object(r#"{"role":"admin"}"#).unwrap());
        b.username = Some("Bob".into());
        for clients in [
            vec![],
            vec![client("3f0c", "a@example.com", 1_433_538_566_480)],
            vec![client("3f0c", "a@example.com", 1_433_538_566_480), b],
        ] {
            let id = ClientId::parse("x-y_1").unwrap();
            let texts: Vec<Box<str>> = clients.iter().map(client_text).collect();
            let texts: Vec<&str> = texts.iter().map(|t| &**t).collect();
            let text = welcome_text(&id, &texts);
            for c in &clients {
                let kept = client_text(c);
                assert_eq!(
                    remote_join_text(&kept),
                    ServerMessage::RemoteJoin(c.clone()).encode()
                );
                assert_eq!(
                    remote_update_text(&kept),
                    ServerMessage::RemoteUpdate(c.clone()).encode()
                );
            }
            assert_eq!(text, ServerMessage::Welcome { id, clients }.encode());
        }
    }

    #[test]
    fn events_are_byte_for_byte() {
        let b = client("9a11", "b@example.com", 1_433_538_568_493);
        assert_eq!(
            &*ServerMessage::RemoteJoin(b.clone()).encode(),
            r#"{"event":"remote join","client":{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"}}"#
        );
        assert_eq!(
            &*ServerMessage::RemoteLeave {
                client: b,
                reason: LeaveCause::Closed
            }
            .encode(),
            r#"{"event":"remote leave","client":{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z"},"reason":"left"}"#
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
    fn v2_parts_appear_only_when_present() {
        let mut b = client("9a11", "b@example.com", 1_433_538_568_493);
        b.username = Some("Bob".into());
        b.info = Some(Json::object(r#"{"role":"admin"}"#).unwrap());
        b.state = Some(Json::object(r#"{"x":1,"s":"typing"}"#).unwrap());
        assert_eq!(
            &*ServerMessage::RemoteUpdate(b.clone()).encode(),
            r#"{"event":"remote update","client":{"id":"9a11","identity":"b@example.com","joinedAt":"2015-06-05T21:09:28.493Z","username":"Bob","info":{"role":"admin"},"state":{"s":"typing","x":1}}}"#
        );
        let back: ClientInfo = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        for (reason, text) in [
            (LeaveCause::Closed, "left"),
            (LeaveCause::Expired, "expired"),
            (LeaveCause::Removed, "removed"),
        ] {
            let leave = ServerMessage::RemoteLeave {
                client: b.clone(),
                reason,
            }
            .encode();
            assert!(
                leave.ends_with(&format!(r#","reason":"{text}"}}"#)),
                "{leave}"
            );
        }
        let bad = r#"{"id":"x","identity":"i","joinedAt":"2015-06-05T21:09:28.493Z","state":[1]}"#;
        assert!(serde_json::from_str::<ClientInfo>(bad).is_err());
    }

    #[test]
    fn broadcasts_and_cursors() {
        let data: &serde_json::value::RawValue = serde_json::from_str(r#"{"a": [1]}"#).unwrap();
        assert_eq!(
            &*ServerMessage::Broadcast {
                from: Some(ClientId::parse("s1").unwrap()),
                data: Json::raw(data)
            }
            .encode(),
            r#"{"event":"broadcast","from":"s1","data":{"a": [1]}}"#
        );
        assert_eq!(
            &*ServerMessage::Broadcast {
                from: None,
                data: Json::raw(serde_json::from_str("7").unwrap())
            }
            .encode(),
            r#"{"event":"broadcast","from":null,"data":7}"#
        );
        let fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"action":"cursor","x":3,"clientId":"forged"}"#).unwrap();
        assert_eq!(
            &*ServerMessage::Cursor {
                from: ClientId::parse("s1").unwrap(),
                fields: Arc::new(fields)
            }
            .encode(),
            r#"{"action":"cursor","x":3,"clientId":"s1"}"#
        );
        assert_eq!(&*ServerMessage::Removed.encode(), r#"{"error":"Removed"}"#);
    }

    #[test]
    fn opaque_identities_round_trip() {
        let c = client("x", "|*[x]/%41:Zoë 🦀\"\\", 0);
        let text = serde_json::to_string(&c).unwrap();
        let back: ClientInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, c);
    }
}
