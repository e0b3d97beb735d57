//! Member events of one space (section 14) on the edge: counted from the
//! roster's events (the core's `MemberCounts`), kept in the object's
//! storage until delivered (`OutboxTable`), and sent by `fetch` as the
//! core's `Outbox` asks, in order, retried from the object's alarm.

use longhouse_core::webhook::{
    Answer, Attempt, BatchId, MemberCounts, Outbox, OutboxConfig, Settled, SIGNATURE_HEADER,
};
use longhouse_core::{Roster, Sequenced, UnixMillis};
use worker::{
    console_error, console_log, wasm_bindgen::JsValue, Fetch, Headers, Method, Request,
    RequestInit, Result,
};

use crate::config::Webhook;
use crate::outbox_table::OutboxTable;

/// One object's webhook state, rebuilt after every wake.
pub struct Webhooks {
    members: MemberCounts,
    outbox: Outbox,
}

impl Webhooks {
    /// The state of a woken object: the members of its stored roster, and
    /// every stored event queued again (sent at once, in order).
    pub fn restore(
        webhook: &Webhook,
        roster: &Roster,
        table: &OutboxTable,
        now: UnixMillis,
    ) -> Result<Self> {
        let members =
            MemberCounts::from_identities(roster.leases().map(|l| l.client.identity.as_str()));
        let mut outbox = Outbox::new(webhook.secret.as_bytes(), OutboxConfig::default());
        for event in table.load()? {
            if let Err(full) = outbox.push(event, now) {
                console_error!("{}", log_line(&full.id, &full.to_string()));
            }
        }
        Ok(Webhooks { members, outbox })
    }

    /// Makes the member events of `events`, stores and queues them.
    pub fn observe(
        &mut self,
        space: &str,
        events: &[Sequenced],
        table: &OutboxTable,
        now: UnixMillis,
    ) -> Result<()> {
        for event in events {
            for made in self
                .members
                .observe(space, &event.event, now, fresh_event_id)
            {
                match self.outbox.push(made.clone(), now) {
                    Ok(()) => table.insert(&made)?,
                    Err(full) => console_error!("{}", log_line(&full.id, &full.to_string())),
                }
            }
        }
        Ok(())
    }

    /// The POSTs to make now; what is done with is forgotten in storage.
    pub fn poll(&mut self, table: &OutboxTable, now: UnixMillis) -> Result<Vec<Attempt>> {
        let (attempts, settled) = self.outbox.poll(now);
        for s in settled {
            settle(table, s)?;
        }
        Ok(attempts)
    }

    /// A POST's outcome.
    pub fn answered(
        &mut self,
        table: &OutboxTable,
        batch: BatchId,
        answer: Answer,
        now: UnixMillis,
    ) -> Result<()> {
        if let Some(s) = self.outbox.answered(batch, answer, now) {
            settle(table, s)?;
        }
        Ok(())
    }

    /// When the outbox must be polled next (a retry, an answer's timeout).
    pub fn next_deadline(&self) -> Option<UnixMillis> {
        self.outbox.next_deadline()
    }
}

/// Forgets delivered and given-up events in storage; logs the outcome.
fn settle(table: &OutboxTable, settled: Settled) -> Result<()> {
    match settled {
        Settled::Delivered { events, .. } => table.delete(events.iter().map(|e| e.id.as_str())),
        Settled::Retrying {
            space,
            failures,
            at,
        } => {
            console_log!(
                "{}",
                serde_json::json!({ "event": "webhook retry", "space": space, "failures": failures, "at": at.0 })
            );
            Ok(())
        }
        Settled::GivenUp { space, events } => {
            console_error!(
                "{}",
                serde_json::json!({ "event": "webhook given up", "space": space, "events": events.len() })
            );
            table.delete(events.iter().map(|e| e.id.as_str()))
        }
    }
}

/// POSTs one batch to `url`: delivered on a 2xx answer, failed on anything
/// else (the outbox times the attempt out itself).
pub async fn post(url: &str, attempt: &Attempt) -> Answer {
    match try_post(url, attempt).await {
        Ok(status) if (200..300).contains(&status) => Answer::Delivered,
        Ok(status) => {
            console_log!(
                "{}",
                serde_json::json!({ "event": "webhook refused", "space": attempt.space, "status": status })
            );
            Answer::Failed
        }
        Err(err) => {
            // The runtime's error text may quote the URL, whose query can
            // hold a secret: never logged.
            let error = err.to_string().replace(url, "<WEBHOOK_URL>");
            console_log!(
                "{}",
                serde_json::json!({ "event": "webhook failed", "space": attempt.space, "error": error })
            );
            Answer::Failed
        }
    }
}

async fn try_post(url: &str, attempt: &Attempt) -> Result<u16> {
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    headers.set(SIGNATURE_HEADER, &attempt.signature)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&attempt.body)));
    let response = Fetch::Request(Request::new_with_init(url, &init)?)
        .send()
        .await?;
    Ok(response.status_code())
}

fn fresh_event_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn log_line(id: &str, error: &str) -> String {
    serde_json::json!({ "event": "webhook dropped", "id": id, "error": error }).to_string()
}
