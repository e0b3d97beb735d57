//! Carries out a core [`Step`] for either store: roster events to the log
//! and the metrics, error kinds to the metrics, socket effects to the
//! outboxes. One place, so both stores report the same things the same way.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use longhouse_core::{event_kind, ConnId, Output, SpaceName, Step};
use tracing::{error, info};

use crate::outbox::{Outbound, Outbox};

/// Does what `step` says for the sockets of `space` (their outboxes), then
/// drops the outboxes of sockets the space no longer holds (`holds`).
pub fn carry_out(
    space: &SpaceName,
    outboxes: &mut HashMap<ConnId, Outbox>,
    step: Step,
    holds: impl Fn(ConnId) -> bool,
) {
    for event in &step.events {
        crate::metrics::presence_event(&event.event);
        let client = event.event.client();
        info!(
            space = space.as_str(),
            client = client.id.as_str(),
            identity = client.identity.as_str(),
            event = event_kind(&event.event),
            seq = event.seq,
            "presence"
        );
    }
    for kind in step.errors {
        crate::metrics::error(kind);
    }
    for output in step.outputs {
        match output {
            Output::Send { conn, text } => {
                if let Some(outbox) = outboxes.get(&conn) {
                    let _ = outbox.send(Outbound::Text(text));
                }
            }
            Output::Close { conn, code } => {
                if let Some(outbox) = outboxes.remove(&conn) {
                    let _ = outbox.send(Outbound::Close(code));
                }
            }
        }
    }
    outboxes.retain(|conn, _| holds(*conn));
}

/// A space's work panicked: the space is dropped, so its sockets are closed
/// with 1011 (their leases are kept, as for a lost connection), and it is
/// said once.
pub fn dropped_after_panic(
    space: &SpaceName,
    outboxes: &mut HashMap<ConnId, Outbox>,
    panic: &(dyn std::any::Any + Send),
) {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    error!(
        space = space.as_str(),
        sockets = outboxes.len(),
        panic = %text,
        "a space's work panicked: the space is dropped, its sockets closed with 1011"
    );
    for (_, outbox) in outboxes.drain() {
        let _ = outbox.send(Outbound::Close(longhouse_core::CloseCode::InternalError));
    }
}

/// Locks whatever a panic elsewhere left the lock as: no critical section
/// of the stores panics (a space's work runs under `catch_unwind`), so the
/// data behind a lock is always whole.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
