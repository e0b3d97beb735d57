//! The hub's view of the roster, each client kept with its JSON text: a
//! welcome is then a concatenation of texts rendered when a client joined
//! or changed, not the whole roster serialised again for every join.

use std::collections::HashMap;
use std::sync::Arc;

use crate::client_id::ClientId;
use crate::wire::{client_text, welcome_text, ClientInfo};

/// One client in view and its client object as the wire shows it.
#[derive(Debug, Clone)]
struct Viewed {
    info: ClientInfo,
    text: Box<str>,
}

/// The roster as local sockets know it, keyed by client id.
///
/// Each record is boxed: a map keeps room for more entries than it holds
/// (up to twice as many), and a record inline (about 150 B) made each idle
/// socket pay for that room too; boxed, the spare room is a pointer per
/// entry (BENCHMARKS.md, "Where the memory goes").
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    clients: HashMap<ClientId, Box<Viewed>>,
}

impl View {
    /// The client under `id`.
    pub(crate) fn get(&self, id: &ClientId) -> Option<&ClientInfo> {
        self.clients.get(id).map(|v| &v.info)
    }

    /// Whether `id` is in view.
    pub(crate) fn contains_key(&self, id: &ClientId) -> bool {
        self.clients.contains_key(id)
    }

    /// Puts `client` in view under `id`, rendering its text unless the
    /// record is unchanged; returns the record it replaced.
    pub(crate) fn insert(&mut self, id: ClientId, client: ClientInfo) -> Option<ClientInfo> {
        if let Some(seen) = self.clients.get(&id) {
            if seen.info == client {
                return Some(client);
            }
        }
        let text = client_text(&client);
        self.clients
            .insert(id, Box::new(Viewed { info: client, text }))
            .map(|old| old.info)
    }

    /// Takes the client under `id` out of view.
    pub(crate) fn remove(&mut self, id: &ClientId) -> Option<ClientInfo> {
        self.clients.remove(id).map(|v| v.info)
    }

    /// Every client in view, in no order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &ClientInfo> {
        self.clients.values().map(|v| &v.info)
    }

    /// Every client in view, in welcome order (by `joinedAt`, then id).
    fn ordered(&self) -> Vec<&Viewed> {
        let mut clients: Vec<&Viewed> = self.clients.values().map(|v| &**v).collect();
        clients.sort_unstable_by(|a, b| {
            (a.info.joined_at, &a.info.id).cmp(&(b.info.joined_at, &b.info.id))
        });
        clients
    }

    /// Copies of every client in view, in welcome order.
    pub(crate) fn sorted(&self) -> Vec<ClientInfo> {
        self.ordered().into_iter().map(|v| v.info.clone()).collect()
    }

    /// The welcome for the socket of `id`: the text a `Welcome` with
    /// this view encodes to, made of the kept client texts; `own`, when
    /// given, stands for `id`'s record (a resume's changes not yet in view).
    pub(crate) fn welcome(&self, id: &ClientId, own: Option<&ClientInfo>) -> Arc<str> {
        let own = own.map(client_text);
        let texts: Vec<&str> = self
            .ordered()
            .into_iter()
            .map(|v| match &own {
                Some(own) if v.info.id == *id => &**own,
                _ => &*v.text,
            })
            .collect();
        welcome_text(id, &texts)
    }

    /// The kept text of the client under `id`, for the events about it.
    pub(crate) fn text_of(&self, id: &ClientId) -> Option<&str> {
        self.clients.get(id).map(|v| &*v.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn_id::ConnId;
    use crate::hub::Hub;
    use crate::json::Json;
    use crate::output::Output;
    use crate::roster::{LeaveCause, RosterEvent, Sequenced};
    use crate::time::UnixMillis;
    use crate::wire::ServerMessage;

    fn client(id: &str, at: u64) -> ClientInfo {
        ClientInfo::new(
            ClientId::parse(id).unwrap(),
            format!("{id}@x"),
            UnixMillis(at),
        )
    }

    fn json(text: &str) -> Option<Json> {
        Some(Json::object(text).unwrap())
    }

    /// Every kept text is what serialising its client gives now, and the
    /// welcome is what encoding the whole view gives.
    fn assert_fresh(view: &View) {
        for info in view.values() {
            assert_eq!(
                view.text_of(&info.id),
                Some(serde_json::to_string(info).unwrap().as_str()),
                "{info:?}"
            );
        }
        let id = ClientId::parse("me").unwrap();
        assert_eq!(
            view.welcome(&id, None),
            ServerMessage::Welcome {
                id,
                clients: view.sorted()
            }
            .encode()
        );
    }

    #[test]
    fn kept_texts_follow_every_change() {
        let mut view = View::default();
        assert_fresh(&view);
        let a = client("a", 2_000);
        let b = client("b", 1_000);
        assert_eq!(view.insert(a.id.clone(), a.clone()), None);
        assert_eq!(view.insert(b.id.clone(), b.clone()), None);
        assert_fresh(&view);
        // An update of the state.
        let a2 = a.with_state(json(r#"{"x":1}"#));
        assert_eq!(view.insert(a.id.clone(), a2.clone()), Some(a.clone()));
        assert_eq!(
            view.text_of(&a.id)
                .map(|t| t.contains(r#""state":{"x":1}"#)),
            Some(true)
        );
        assert_fresh(&view);
        // A resume that replaces info and username, its state kept.
        let mut a3 = a2.clone();
        a3.info = json(r#"{"role":"admin"}"#);
        a3.username = Some("Ann".into());
        assert_eq!(view.insert(a.id.clone(), a3.clone()), Some(a2));
        assert_fresh(&view);
        // The same record again changes nothing.
        assert_eq!(view.insert(a.id.clone(), a3.clone()), Some(a3.clone()));
        assert_fresh(&view);
        // The state cleared.
        view.insert(a.id.clone(), a3.with_state(None));
        assert_fresh(&view);
        assert_eq!(view.remove(&b.id), Some(b.clone()));
        assert_eq!(view.text_of(&b.id), None);
        assert_fresh(&view);
    }

    #[test]
    fn the_welcome_is_in_join_order() {
        let mut view = View::default();
        for (id, at) in [("c", 3), ("a", 2), ("b", 2), ("d", 1)] {
            view.insert(ClientId::parse(id).unwrap(), client(id, at));
        }
        let order: Vec<String> = view
            .sorted()
            .into_iter()
            .map(|c| c.id.to_string())
            .collect();
        assert_eq!(order, ["d", "a", "b", "c"]);
        assert_fresh(&view);
    }

    #[test]
    fn a_resumes_own_record_stands_in_for_the_kept_one() {
        let mut view = View::default();
        let a = client("a", 1);
        let b = client("b", 2);
        view.insert(a.id.clone(), a.clone());
        view.insert(b.id.clone(), b.clone());
        let b2 = b.with_state(json(r#"{"back":true}"#));
        assert_eq!(
            view.welcome(&b.id, Some(&b2)),
            ServerMessage::Welcome {
                id: b.id.clone(),
                clients: vec![a, b2]
            }
            .encode()
        );
        // The kept text is untouched until the record changes in view.
        assert_fresh(&view);
    }

    fn seq(seq: u64, event: RosterEvent) -> Sequenced {
        Sequenced { seq, event }
    }

    fn welcome_of(out: &[Output], conn: u64) -> Arc<str> {
        out.iter()
            .find_map(|o| match o {
                Output::Send { conn: c, text } if c.0 == conn && text.starts_with(r#"{"id":"#) => {
                    Some(text.clone())
                }
                _ => None,
            })
            .expect("a welcome")
    }

    #[test]
    fn a_hub_welcomes_with_kept_texts_after_joins_updates_and_resumes() {
        let mut hub = Hub::new(1 << 16, 0);
        let mut out = Vec::new();
        let a = client("a", 1_000).with_state(json(r#"{"cursor":{"x":1,"y":2}}"#));
        let b = client("b", 2_000);
        hub.open(ConnId(1), a.id.clone());
        hub.apply(
            seq(
                1,
                RosterEvent::Joined {
                    client: a.clone(),
                    holder: ConnId(1),
                },
            ),
            &mut out,
        );
        hub.open(ConnId(2), b.id.clone());
        hub.apply(
            seq(
                2,
                RosterEvent::Joined {
                    client: b.clone(),
                    holder: ConnId(2),
                },
            ),
            &mut out,
        );
        let expected = |hub: &Hub, id: &ClientId| {
            ServerMessage::Welcome {
                id: id.clone(),
                clients: hub.view(),
            }
            .encode()
        };
        assert_eq!(welcome_of(&out, 2), expected(&hub, &b.id));
        assert_fresh(&hub.view);

        // b's state changes; a resumes on socket 3 with new info and state.
        let b2 = b.with_state(json(r#"{"typing":true}"#));
        hub.apply(
            seq(
                3,
                RosterEvent::Updated {
                    client: b2.clone(),
                    holder: ConnId(2),
                },
            ),
            &mut out,
        );
        let mut a2 = a.with_state(json(r#"{"cursor":{"x":5,"y":6}}"#));
        a2.info = json(r#"{"team":"red"}"#);
        out.clear();
        hub.open(ConnId(3), a.id.clone());
        hub.apply(
            seq(
                4,
                RosterEvent::Resumed {
                    client: a2.clone(),
                    holder: ConnId(3),
                    replaced: ConnId(1),
                },
            ),
            &mut out,
        );
        assert_eq!(hub.viewed(&a.id), Some(&a2));
        assert_eq!(welcome_of(&out, 3), expected(&hub, &a.id));
        assert_fresh(&hub.view);

        // A newcomer after b leaves sees the changed records.
        hub.apply(
            seq(
                5,
                RosterEvent::Left {
                    client: b2,
                    holder: ConnId(2),
                    cause: LeaveCause::Closed,
                },
            ),
            &mut out,
        );
        let c = client("c", 3_000);
        out.clear();
        hub.open(ConnId(4), c.id.clone());
        hub.apply(
            seq(
                6,
                RosterEvent::Joined {
                    client: c.clone(),
                    holder: ConnId(4),
                },
            ),
            &mut out,
        );
        assert_eq!(welcome_of(&out, 4), expected(&hub, &c.id));
        assert_eq!(hub.view(), vec![a2, c]);
        assert_fresh(&hub.view);
    }
}
