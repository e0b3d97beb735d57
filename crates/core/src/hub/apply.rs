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
            RosterEvent::Updated { client, .. } => match self.view.get(&client.id) {
                Some(seen) if seen.same_lease(&client) => {
                    if *seen != client {
                        let id = client.id.clone();
                        self.view.insert(id.clone(), client);
                        self.broadcast_viewed(&id, remote_update_text, out);
                    }
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
