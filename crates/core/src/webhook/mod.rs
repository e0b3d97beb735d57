//! Webhooks (section 14): what the app's backend is told about *members*
//! (an identity in a space, however many connections it has), how a batch
//! is signed, and the outbox that delivers batches at least once, in order
//! within a space, with back-off. Sans-IO like the rest of the core: the
//! target feeds roster events and the time in, and carries out the POSTs
//! the outbox asks for.

mod config;
mod event;
mod members;
mod outbox;
mod sign;
mod stream;

pub use event::{batch_body, EventType, WebhookEvent};
pub use members::MemberCounts;
pub use outbox::{Answer, Attempt, BatchId, Outbox, OutboxConfig, QueueFull, Settled};
pub use sign::{sign, SIGNATURE_HEADER};
pub use stream::from_stream_entry;
