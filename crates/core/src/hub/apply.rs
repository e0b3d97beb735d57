//! Applying one roster event, in sequence, to the view and the sockets:
//! welcomes, joins, updates, leaves and the closes they cause.

use super::{send, Hub};
use crate::close::CloseCode;
use crate::output::Output;
use crate::roster::{LeaveCause, RosterEvent};
use crate::wire::{remote_join_text, remote_update_text, ClientInfo, ServerMessage};

impl Hub {
    pub(super) fn apply_in_order(&mut self, event: RosterEvent, out: &mut Vec<Output>) {
        match event {
            RosterEvent::Joined { client, holder } => {
                let id = client.id.clone();
                self.arrive(client, out);
                if self
                    .conns
                    .get(&holder)
                    .is_some_and(|c| !c.joined && c.id == id)
                {
                    self.welcome(holder, out);
                }
            }
            RosterEvent::Resumed {
                client,
                holder,
                replaced,
            } => {
                let id = client.id.clone();
                // New to the view only after a resync that missed the join.
                self.arrive(client, out);
                if replaced != holder && self.conns.get(&replaced).is_some_and(|c| c.id == id) {
                    self.drop_conn(replaced);
                    out.push(Output::Close {
                        conn: replaced,
                        code: CloseCode::Replaced,
                    });
                }
                if self
                    .conns
                    .get(&holder)
                    .is_some_and(|c| !c.joined && c.id == id)
                {
                    self.welcome(holder, out);
                }
            }
            // An update is an operation, not a change: told even if the
            // record is the one in view (section 10). Repeats never get
            // here: a duplicate is dropped by its sequence number, a
            // snapshot tells only what differs, a resume's changes and a
            // record settled again are events only if they change it.
            RosterEvent::Updated { client, .. } => match self.view.get(&client.id) {
                Some(seen) if seen.same_lease(&client) => {
                    let id = client.id.clone();
                    self.view.insert(id.clone(), client);
                    self.broadcast_viewed(&id, remote_update_text, out);
                }
                // Not seen joining (only in a history that contradicts
                // itself): as good as a join.
                _ => self.arrive(client, out),
            },
            RosterEvent::Left {
                client,
                holder,
                cause,
            } => {
                let local = self.conns.get(&holder).filter(|c| c.id == client.id);
                if let Some(welcomed) = local.map(|c| c.joined) {
                    match cause {
                        // A socket not yet welcomed is never told it
                        // expired (only in a history that contradicts
                        // itself): its join's reply settles it.
                        LeaveCause::Expired if !welcomed => {}
                        LeaveCause::Expired => self.expire_local(holder, out),
                        LeaveCause::Removed => {
                            self.drop_conn(holder);
                            send(holder, ServerMessage::Removed.encode(), out);
                            out.push(Output::Close {
                                conn: holder,
                                code: CloseCode::Removed,
                            });
                        }
                        LeaveCause::Closed => {
                            self.drop_conn(holder);
                        }
                    }
                }
                // The lease sockets saw join is the one that leaves, shown
                // with its latest record (a state flushed into the leave).
                if let Some(seen) = self.view.remove(&client.id) {
                    let id = client.id.clone();
                    let client = if seen.same_lease(&client) {
                        client
                    } else {
                        seen
                    };
                    let leave = ServerMessage::RemoteLeave {
                        client,
                        reason: cause,
                    };
                    self.broadcast(&id, &leave, out);
                }
            }
        }
    }

    /// Puts `client` in the view, telling local sockets if that changes
    /// it. A record that differs from the one in view under the same id
    /// (only in a history that contradicts itself) is told as the old
    /// one's leave and the new one's join, so sockets never drift from the
    /// view.
    fn arrive(&mut self, client: ClientInfo, out: &mut Vec<Output>) {
        let id = client.id.clone();
        match self.view.insert(id.clone(), client.clone()) {
            Some(old) if old == client => {}
            Some(old) if old.same_lease(&client) => {
                self.broadcast_viewed(&id, remote_update_text, out);
            }
            Some(old) => {
                let leave = ServerMessage::RemoteLeave {
                    client: old,
                    reason: LeaveCause::Expired,
                };
                self.broadcast(&id, &leave, out);
                self.broadcast_viewed(&id, remote_join_text, out);
            }
            None => self.broadcast_viewed(&id, remote_join_text, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::client_id::ClientId;
    use crate::conn_id::ConnId;
    use crate::hub::Hub;
    use crate::json::Json;
    use crate::output::Output;
    use crate::roster::{RosterEvent, Sequenced};
    use crate::time::UnixMillis;
    use crate::wire::ClientInfo;

    fn told(out: &mut Vec<Output>, conn: u64) -> Vec<String> {
        let texts = out
            .iter()
            .filter_map(|o| match o {
                Output::Send { conn: c, text } if c.0 == conn => Some(text.to_string()),
                _ => None,
            })
            .collect();
        out.clear();
        texts
    }

    /// An update event is told even when it changes nothing, once; the
    /// repeats of history (the same event again, a snapshot, a resume of
    /// the same record) are not.
    #[test]
    fn an_equal_update_is_told_and_repeats_of_history_are_not() {
        let mut hub = Hub::new(1 << 16, 0);
        let mut out = Vec::new();
        let a = ClientInfo::new(ClientId::parse("a").unwrap(), "a", UnixMillis(1))
            .with_state(Some(Json::object(r#"{"n":1}"#).unwrap()));
        let b = ClientInfo::new(ClientId::parse("b").unwrap(), "b", UnixMillis(2));
        for (seq, client, conn) in [(1, &a, 1), (2, &b, 2)] {
            hub.open(ConnId(conn), client.id.clone());
            let joined = RosterEvent::Joined {
                client: client.clone(),
                holder: ConnId(conn),
            };
            hub.apply(Sequenced { seq, event: joined }, &mut out);
        }
        out.clear();
        let update = Sequenced {
            seq: 3,
            event: RosterEvent::Updated {
                client: a.clone(),
                holder: ConnId(1),
            },
        };
        hub.apply(update.clone(), &mut out);
        let got = told(&mut out, 2);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with(r#"{"event":"remote update""#), "{got:?}");
        assert!(got[0].contains(r#""state":{"n":1}"#), "{got:?}");
        assert!(told(&mut out, 1).is_empty(), "told about itself");
        // The same event delivered again.
        hub.apply(update, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // A snapshot of the same roster.
        hub.resync(
            [(a.clone(), ConnId(1)), (b.clone(), ConnId(2))],
            3,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // A resume that brings nothing new.
        hub.open(ConnId(3), a.id.clone());
        let resumed = RosterEvent::Resumed {
            client: a.clone(),
            holder: ConnId(3),
            replaced: ConnId(1),
        };
        hub.apply(
            Sequenced {
                seq: 4,
                event: resumed,
            },
            &mut out,
        );
        assert!(told(&mut out, 2).is_empty());
    }
}
