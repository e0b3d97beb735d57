//! Longhouse's JSON protocol (PROTOCOL.md sections 1 to 4 and 10): join
//! with `?identity=` (and `?state=`), `{"action":"update"}` to change the
//! state, and the welcome and `remote join` / `update` / `leave` events.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_tungstenite::tungstenite::Message;

use super::{Read, Seen};

/// A Longhouse client's codec: it only needs the state it joins with.
pub struct Longhouse {
    initial: Option<String>,
}

/// Every server message, with only the fields the load generator reads.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client: Option<ClientObject<'a>>,
    #[serde(borrow, default)]
    clients: Option<Vec<ClientObject<'a>>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

/// A client object (section 2), its state kept as the JSON text it came in.
#[derive(Deserialize)]
struct ClientObject<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, default)]
    state: Option<&'a RawValue>,
}

impl ClientObject<'_> {
    fn state(&self) -> Option<String> {
        self.state.map(|s| s.get().to_owned())
    }
}

impl Longhouse {
    /// A codec whose client joins with `state`, if given.
    pub fn new(initial: Option<String>) -> Self {
        Longhouse { initial }
    }

    /// `/{space}?identity=…[&state=…]`; space and identity are plain
    /// `[a-z0-9-]`, the state is form-encoded as browsers do.
    pub fn path(&self, space: &str, identity: &str) -> String {
        let mut path = format!("/{space}?identity={identity}");
        if let Some(state) = &self.initial {
            path.push_str("&state=");
            path.extend(form_urlencoded::byte_serialize(state.as_bytes()));
        }
        path
    }

    /// `{"action":"update","state":…}`.
    pub fn update(&self, state: &str) -> Message {
        Message::Text(format!(r#"{{"action":"update","state":{state}}}"#).into())
    }

    /// `{"action":"ping"}`.
    pub fn ping() -> Message {
        Message::Text(r#"{"action":"ping"}"#.into())
    }

    /// Decodes one text frame; anything unknown (keepalives, broadcasts)
    /// means nothing here.
    pub fn read(&self, text: &str) -> Read {
        let mut read = Read::default();
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            return read;
        };
        if let Some(error) = frame.error {
            read.seen.push(Seen::Error(error.into_owned()));
            return read;
        }
        if let (Some(id), Some(clients)) = (&frame.id, &frame.clients) {
            read.seen.push(Seen::Welcome {
                id: id.to_string(),
                roster: clients
                    .iter()
                    .map(|c| (c.id.to_string(), c.state()))
                    .collect(),
            });
            return read;
        }
        let seen = match (frame.event.as_deref(), frame.client) {
            (Some("remote join"), Some(c)) => Seen::Join {
                state: c.state(),
                id: c.id.into_owned(),
            },
            (Some("remote update"), Some(c)) => Seen::Update {
                state: c.state(),
                id: c.id.into_owned(),
            },
            (Some("remote leave"), Some(c)) => Seen::Leave {
                id: c.id.into_owned(),
            },
            (Some("expired"), _) => Seen::Expired,
            _ => return read,
        };
        read.seen.push(seen);
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(text: &str) -> Vec<Seen> {
        Longhouse::new(None).read(text).seen
    }

    #[test]
    fn the_welcome_carries_every_state_that_is_set() {
        let got = seen(
            r#"{"id":"a","clients":[{"id":"a","identity":"x","joinedAt":"t","state":{"c":{"x":1}}},{"id":"b","identity":"y","joinedAt":"t"}]}"#,
        );
        assert_eq!(
            got,
            vec![Seen::Welcome {
                id: "a".into(),
                roster: vec![
                    ("a".into(), Some(r#"{"c":{"x":1}}"#.into())),
                    ("b".into(), None)
                ],
            }]
        );
    }

    #[test]
    fn events_of_sections_3_and_10() {
        let c = r#"{"id":"b","identity":"y","joinedAt":"t","state":{"seq":2}}"#;
        assert_eq!(
            seen(&format!(r#"{{"event":"remote join","client":{c}}}"#)),
            vec![Seen::Join {
                id: "b".into(),
                state: Some(r#"{"seq":2}"#.into())
            }]
        );
        assert_eq!(
            seen(&format!(r#"{{"event":"remote update","client":{c}}}"#)),
            vec![Seen::Update {
                id: "b".into(),
                state: Some(r#"{"seq":2}"#.into())
            }]
        );
        assert_eq!(
            seen(r#"{"event":"remote update","client":{"id":"b","identity":"y","joinedAt":"t"}}"#),
            vec![Seen::Update {
                id: "b".into(),
                state: None
            }]
        );
        assert_eq!(
            seen(&format!(
                r#"{{"event":"remote leave","client":{c},"reason":"left"}}"#
            )),
            vec![Seen::Leave { id: "b".into() }]
        );
        assert_eq!(seen(r#"{"event":"expired"}"#), vec![Seen::Expired]);
        assert_eq!(
            seen(r#"{"error":"State too large"}"#),
            vec![Seen::Error("State too large".into())]
        );
    }

    #[test]
    fn keepalives_broadcasts_and_garbage_mean_nothing() {
        for text in [
            r#"{"ping":true}"#,
            r#"{"pong":true}"#,
            r#"{"event":"broadcast","from":"b","data":1}"#,
            "not json",
        ] {
            assert_eq!(seen(text), vec![]);
        }
    }

    #[test]
    fn the_state_is_form_encoded_in_the_join_url() {
        let c = Longhouse::new(Some(r#"{"n":"a b","x":1}"#.into()));
        assert_eq!(
            c.path("s", "u1"),
            "/s?identity=u1&state=%7B%22n%22%3A%22a+b%22%2C%22x%22%3A1%7D"
        );
        assert_eq!(Longhouse::new(None).path("s", "u1"), "/s?identity=u1");
    }

    #[test]
    fn an_update_is_the_action_of_section_10() {
        let m = Longhouse::new(None).update(r#"{"seq":3}"#);
        assert_eq!(
            m.into_text().unwrap().as_str(),
            r#"{"action":"update","state":{"seq":3}}"#
        );
    }
}
