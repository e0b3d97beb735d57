//! What a socket's frame or close asks of the store: renewals, updates
//! (with the record this instance holds), relays and leaves (sent once a
//! join in flight is answered).

use super::{Own, Pending, SharedSpace};
use crate::client_id::ClientId;
use crate::conn_id::ConnId;
use crate::output::Command;
use crate::shared::calls::StoreOp;
use crate::shared::step::SharedStep;
use crate::time::UnixMillis;
use crate::wire::ClientInfo;

impl SharedSpace {
    pub(super) fn command(&mut self, command: Command, now: UnixMillis, out: &mut SharedStep) {
        match command {
            Command::Renew { id, holder } => {
                let op = StoreOp::Renew {
                    id: id.clone(),
                    holder,
                };
                self.call(op, Pending::Renew(id, holder), now, out);
            }
            Command::Leave { id, holder, held } => {
                let last = held
                    .clone()
                    .and_then(|state| Some(self.record(&id, holder)?.with_state(state)));
                if self.own.get(&id).is_some_and(|o| o.conn == holder) {
                    self.own.remove(&id);
                }
                self.early.remove(&holder);
                match self.joining.get(&holder) {
                    // Never sent: the store has nothing to end.
                    Some(j) if j.waiting_since.is_some() => self.closed_now(holder, out),
                    Some(j) if j.sent => {
                        self.deferred.insert(holder, (id, held));
                    }
                    _ => {
                        let op = StoreOp::Leave { id, holder, last };
                        self.call(op, Pending::Leave(holder), now, out);
                    }
                }
            }
            Command::Update { id, holder, state } => {
                let Some(client) = self.record(&id, holder).map(|c| c.with_state(state)) else {
                    return;
                };
                match self.own.get_mut(&id).filter(|o| o.conn == holder) {
                    Some(own) => own.client = client.clone(),
                    None => match self.displaced_of(&id, holder) {
                        Some(displaced) => displaced.client = client.clone(),
                        None => {
                            self.early.insert(holder, client.clone());
                        }
                    },
                }
                // A client's update: told even if equal (section 10).
                let op = StoreOp::Update {
                    client,
                    holder,
                    if_changed: false,
                };
                self.call(op, Pending::Update(id, holder), now, out);
            }
            Command::Relay { id, holder, relay } => {
                let text = relay.message(&id).encode();
                let op = StoreOp::Relay {
                    from: Some((id.clone(), holder)),
                    text,
                };
                self.call(op, Pending::Renew(id, holder), now, out);
            }
        }
    }

    /// The record of lease `id` held by our socket `holder` that another
    /// socket's join displaced, if any.
    fn displaced_of(&mut self, id: &ClientId, holder: ConnId) -> Option<&mut Own> {
        self.displaced
            .values_mut()
            .find(|d| d.conn == holder && d.client.id == *id)
    }

    /// The record of lease `id` held by our socket `holder`: as its join
    /// and updates left it (kept aside if another join displaced it), or
    /// (welcomed by the channel before its join's reply came) as its last
    /// update or its welcome showed it: the view's,
    /// with what its resume brings (its own update is the latest; the
    /// resume's must not overwrite it).
    fn record(&self, id: &ClientId, holder: ConnId) -> Option<ClientInfo> {
        match self.own.get(id) {
            Some(own) if own.conn == holder => Some(own.client.clone()),
            _ => match self
                .displaced
                .values()
                .find(|d| d.conn == holder && d.client.id == *id)
                .map(|d| &d.client)
                .or_else(|| self.early.get(&holder))
            {
                Some(updated) => Some(updated.clone()),
                None => {
                    let seen = self.hub.viewed(id)?;
                    let resumed = self
                        .joining
                        .get(&holder)
                        .and_then(|j| j.request.resumed_client(seen));
                    Some(resumed.unwrap_or_else(|| seen.clone()))
                }
            },
        }
    }
}
