//! The object's webhook POSTs (section 14): each sent in a task of its
//! own, each answer handed back to the core's outbox.

use longhouse_core::webhook::{Answer, Attempt, BatchId};
use longhouse_core::Step;
use worker::{console_error, Result};

use super::{log_line, Inner};
use crate::{now, webhooks};

impl Inner {
    /// Sends the webhook POSTs the outbox asked for, each in a task of its
    /// own (a receiver that takes its time holds up no handler, the alarm
    /// included); each answer goes back to the outbox.
    pub(super) fn deliver(&self, attempts: Vec<Attempt>) {
        let Some(url) = self
            .settings
            .as_ref()
            .ok()
            .and_then(|s| s.edge.webhook.as_ref())
            .map(|w| w.url.clone())
        else {
            return;
        };
        for attempt in attempts {
            let Some(me) = self.me.upgrade() else {
                return;
            };
            let url = url.clone();
            self.state.wait_until(async move {
                let answer = webhooks::post(&url, &attempt).await;
                if let Err(err) = me.webhook_answered(attempt.batch, answer).await {
                    console_error!(
                        "{}",
                        log_line(&me.space_name(), "webhook answer", &err.to_string())
                    );
                }
            });
        }
    }

    /// A webhook POST was answered (or failed): the outbox settles it and
    /// may send the next batch; the alarm follows its next deadline.
    async fn webhook_answered(&self, batch: BatchId, answer: Answer) -> Result<()> {
        {
            let mut live = self.live()?;
            if let Some(webhooks) = live.webhooks.as_mut() {
                webhooks.answered(&self.outbox, batch, answer, now())?;
            }
        }
        self.carry_out(&self.space_name(), Step::default()).await
    }
}
