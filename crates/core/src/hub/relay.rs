//! Messages that are not presence (section 13): relayed to the other
//! welcomed sockets, never stored, never to a socket that has not seen the
//! sender join.

use std::sync::Arc;

use super::Hub;
use crate::client_id::ClientId;
use crate::json::Json;
use crate::output::{Output, Relay};
use crate::wire::ServerMessage;

impl Hub {
    /// Relays a client's broadcast or cursor to every other welcomed
    /// socket, if the sender is in the view (everyone here has then seen
    /// it join; a sender that left is no one to relay for).
    pub fn relay(&self, from: &ClientId, relay: &Relay, out: &mut Vec<Output>) {
        if self.view.contains_key(from) {
            self.broadcast(from, &relay.message(from), out);
        }
    }

    /// A relayed message from the shared store's channel, published when
    /// the space stood at sequence `after`: shown now if the view has
    /// applied that much, else once it has (so nobody sees a message from
    /// a sender it has not seen join), to every welcomed socket but the
    /// sender's, and only if the sender (`None`: the server API) is in the
    /// view. Held messages are bounded like held events.
    pub fn relayed(
        &mut self,
        after: u64,
        from: Option<ClientId>,
        text: Arc<str>,
        out: &mut Vec<Output>,
    ) {
        if after <= self.applied {
            self.deliver(from.as_ref(), &text, out);
            return;
        }
        if self.relays.len() >= self.max_held {
            self.relays.pop_front();
        }
        self.relays.push_back((after, from, text));
    }

    pub(super) fn release_relays(&mut self, out: &mut Vec<Output>) {
        while self
            .relays
            .front()
            .is_some_and(|(after, _, _)| *after <= self.applied)
        {
            let (_, from, text) = self.relays.pop_front().expect("checked");
            self.deliver(from.as_ref(), &text, out);
        }
    }

    pub(super) fn deliver(&self, from: Option<&ClientId>, text: &Arc<str>, out: &mut Vec<Output>) {
        if from.is_some_and(|id| !self.view.contains_key(id)) {
            return;
        }
        for (&conn, c) in &self.conns {
            if c.joined && Some(&c.id) != from {
                out.push(Output::Send {
                    conn,
                    text: text.clone(),
                });
            }
        }
    }

    /// Sends a broadcast of the server API (`from: null`) to every
    /// welcomed socket.
    pub fn server_broadcast(&self, data: &Json, out: &mut Vec<Output>) {
        let message = ServerMessage::Broadcast {
            from: None,
            data: data.clone(),
        };
        let mut text: Option<Arc<str>> = None;
        for (&conn, c) in &self.conns {
            if c.joined {
                let text = text.get_or_insert_with(|| message.encode()).clone();
                out.push(Output::Send { conn, text });
            }
        }
    }
}
