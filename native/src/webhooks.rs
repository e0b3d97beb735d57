//! The webhook sender (section 14): one task per process owns the core's
//! [`Outbox`], takes member events from the spaces, makes the POSTs it asks
//! for, and reports their answers back to it. The outbox decides what to
//! send, when to retry and in which order; this module only does the I/O.

use std::time::Duration;

use longhouse_core::webhook::{
    Answer, Attempt, BatchId, Outbox, OutboxConfig, Settled, WebhookEvent, SIGNATURE_HEADER,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::clock::now;

/// The spaces' end: a cheap, cloneable handle that never blocks.
#[derive(Clone, Debug)]
pub struct Webhooks {
    /// The events of one roster change travel together, so they go in one
    /// batch.
    events: mpsc::UnboundedSender<Vec<WebhookEvent>>,
    /// Events held by the outbox (waiting or in flight), for shutdown.
    held: tokio::sync::watch::Receiver<usize>,
}

impl Webhooks {
    /// Starts the sender for `url`, signing with `secret`, on the current
    /// runtime.
    pub fn start(url: &str, secret: &str, config: OutboxConfig) -> Self {
        let (events, inbox) = mpsc::unbounded_channel();
        let client = http_client();
        let outbox = Outbox::new(secret.as_bytes().to_vec(), config);
        let (held_tx, held) = tokio::sync::watch::channel(0);
        tokio::spawn(run(outbox, inbox, held_tx, client, url.to_owned()));
        Webhooks { events, held }
    }

    /// Waits, at most `grace`, until every event made so far is delivered
    /// (or given up): at shutdown, since the in-memory outbox goes with
    /// the process. Returns how many are still held.
    pub async fn drained(&self, grace: Duration) -> usize {
        let mut held = self.held.clone();
        let _ = tokio::time::timeout(grace, held.wait_for(|n| *n == 0)).await;
        let left = *held.borrow();
        left
    }

    /// Queues events behind every earlier one of their space.
    pub fn push(&self, events: Vec<WebhookEvent>) {
        if events.is_empty() {
            return;
        }
        for event in &events {
            debug!(
                space = event.space.as_str(),
                id = event.id.as_str(),
                kind = event.kind.as_str(),
                "webhook event"
            );
            crate::metrics::webhook_event();
        }
        // The task ends only with the runtime.
        let _ = self.events.send(events);
    }
}

/// The client every webhook POST goes through: no redirects followed.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("longhouse/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

async fn run(
    mut outbox: Outbox,
    mut inbox: mpsc::UnboundedReceiver<Vec<WebhookEvent>>,
    held: tokio::sync::watch::Sender<usize>,
    client: reqwest::Client,
    url: String,
) {
    let mut requests: JoinSet<(BatchId, Answer)> = JoinSet::new();
    let mut open = true;
    loop {
        let wake = outbox.next_deadline().map(|at| {
            let ms = now().until(at);
            tokio::time::Instant::now() + Duration::from_millis(ms)
        });
        tokio::select! {
            events = inbox.recv(), if open => match events {
                Some(events) => {
                    // Everything already made goes in the same batches.
                    let at = now();
                    let mut next = Some(events);
                    while let Some(events) = next {
                        for event in events {
                            if let Err(full) = outbox.push(event, at) {
                                warn!(error = %full, "webhook event dropped");
                            }
                        }
                        next = inbox.try_recv().ok();
                    }
                }
                None => open = false,
            },
            Some(done) = requests.join_next(), if !requests.is_empty() => {
                if let Ok((batch, answer)) = done {
                    if let Some(s) = outbox.answered(batch, answer, now()) {
                        report(&s);
                    }
                }
            }
            _ = sleep_until(wake) => {}
        }
        let (attempts, settled) = outbox.poll(now());
        for s in &settled {
            report(s);
        }
        for attempt in attempts {
            requests.spawn(send(client.clone(), url.clone(), attempt));
        }
        held.send_if_modified(|n| std::mem::replace(n, outbox.held()) != outbox.held());
        if !open && requests.is_empty() && outbox.held() == 0 {
            return;
        }
    }
}

pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One POST; a 2xx answer delivers it, anything else fails it.
pub(crate) async fn send(
    client: reqwest::Client,
    url: String,
    attempt: Attempt,
) -> (BatchId, Answer) {
    let started = std::time::Instant::now();
    let result = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, &attempt.signature)
        .timeout(Duration::from_millis(attempt.timeout_ms))
        .body(attempt.body)
        .send()
        .await;
    // Errors without their URL: a receiver's URL may carry a secret in its
    // query, and logs never show query strings.
    let (answer, status, error) = match result {
        Ok(r) if r.status().is_success() => (Answer::Delivered, Some(r.status().as_u16()), None),
        Ok(r) => (Answer::Failed, Some(r.status().as_u16()), None),
        Err(e) => (Answer::Failed, None, Some(e.without_url().to_string())),
    };
    crate::metrics::webhook_attempt(answer == Answer::Delivered, started.elapsed());
    if answer == Answer::Failed {
        warn!(
            space = attempt.space.as_str(),
            events = attempt.ids.len(),
            attempt = attempt.attempt,
            status,
            error,
            "webhook attempt failed"
        );
    } else {
        debug!(
            space = attempt.space.as_str(),
            events = attempt.ids.len(),
            attempt = attempt.attempt,
            status,
            "webhook delivered"
        );
    }
    (attempt.batch, answer)
}

pub(crate) fn report(s: &Settled) {
    match s {
        Settled::Delivered { space, events } => {
            debug!(
                space = space.as_str(),
                events = events.len(),
                "webhook batch delivered"
            );
        }
        Settled::Retrying {
            space,
            failures,
            at,
        } => {
            info!(
                space = space.as_str(),
                failures,
                retry_in_ms = now().until(*at),
                "webhook batch to be retried"
            );
        }
        Settled::GivenUp { space, events } => {
            warn!(
                space = space.as_str(),
                events = events.len(),
                "webhook batch given up after retrying for the whole retry period"
            );
        }
    }
}
