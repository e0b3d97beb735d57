//! `GET /metrics`: counters and gauges in the Prometheus text format,
//! recorded through the `metrics` facade and rendered by
//! `metrics-exporter-prometheus` (no listener of its own: the server's
//! router serves the text).
//!
//! Names: `longhouse_connections` (open sockets), `longhouse_spaces`
//! (spaces with local sockets), `longhouse_presence_events_total{event=join|resume|leave|expire}`,
//! `longhouse_errors_total{kind}`, `longhouse_messages_in_total`,
//! `longhouse_messages_out_total`, `longhouse_server_closes_total{code}`,
//! `longhouse_redis_command_seconds{script}`,
//! `longhouse_webhook_events_total`, `longhouse_webhook_attempts_total{result=delivered|failed}`,
//! `longhouse_webhook_attempt_seconds`.

use std::sync::OnceLock;
use std::time::Duration;

use longhouse_core::{event_kind, ErrorKind, RosterEvent};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder (once; later calls do nothing).
pub fn install() {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .expect("the only metrics recorder");
        describe();
        // Present from the first scrape, before anything happened.
        gauge!("longhouse_connections").set(0.0);
        counter!("longhouse_messages_in_total").absolute(0);
        counter!("longhouse_messages_out_total").absolute(0);
        for event in ["join", "resume", "leave", "expire"] {
            counter!("longhouse_presence_events_total", "event" => event).absolute(0);
        }
        for kind in ErrorKind::ALL {
            counter!("longhouse_errors_total", "kind" => kind.label()).absolute(0);
        }
        handle
    });
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("longhouse_connections", "Open WebSocket connections.");
    describe_gauge!(
        "longhouse_spaces",
        "Spaces with at least one socket on this instance."
    );
    describe_counter!(
        "longhouse_presence_events_total",
        "Roster changes made by this instance: join, resume, leave (clean close), expire."
    );
    describe_counter!("longhouse_errors_total", "Errors sent to clients, by kind.");
    describe_counter!(
        "longhouse_messages_in_total",
        "Data frames received from clients."
    );
    describe_counter!(
        "longhouse_messages_out_total",
        "Text messages sent to clients."
    );
    describe_counter!(
        "longhouse_server_closes_total",
        "Close frames sent by the server, by code."
    );
    describe_histogram!(
        "longhouse_redis_command_seconds",
        Unit::Seconds,
        "Latency of the Redis roster scripts, by script."
    );
    describe_counter!(
        "longhouse_webhook_events_total",
        "Member events queued for the webhook by this instance."
    );
    describe_counter!(
        "longhouse_webhook_attempts_total",
        "Webhook POSTs made, by result (delivered: a 2xx answer)."
    );
    describe_histogram!(
        "longhouse_webhook_attempt_seconds",
        Unit::Seconds,
        "How long webhook POSTs took to be answered (or to fail)."
    );
}

/// The Prometheus text of everything recorded so far, with `spaces` as the
/// current number of spaces.
pub fn render(spaces: usize) -> String {
    gauge!("longhouse_spaces").set(spaces as f64);
    match HANDLE.get() {
        Some(handle) => handle.render(),
        None => String::new(),
    }
}

/// Counts an open connection until dropped.
pub struct OpenConnection(());

impl OpenConnection {
    /// A connection opened.
    pub fn open() -> Self {
        gauge!("longhouse_connections").increment(1.0);
        OpenConnection(())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        gauge!("longhouse_connections").decrement(1.0);
    }
}

/// One roster change.
pub fn presence_event(event: &RosterEvent) {
    counter!("longhouse_presence_events_total", "event" => event_kind(event)).increment(1);
}

/// One data frame (text or binary) from a client.
pub fn received() {
    counter!("longhouse_messages_in_total").increment(1);
}

/// One text message to a client.
pub fn sent() {
    counter!("longhouse_messages_out_total").increment(1);
}

/// One error a client was told of (or closed for), by the kind the core
/// reports.
pub fn error(kind: ErrorKind) {
    counter!("longhouse_errors_total", "kind" => kind.label()).increment(1);
}

/// One close frame from the server.
pub fn server_close(code: u16) {
    counter!("longhouse_server_closes_total", "code" => code.to_string()).increment(1);
}

/// One Redis script call and how long it took.
pub fn redis_command(script: &'static str, took: Duration) {
    histogram!("longhouse_redis_command_seconds", "script" => script).record(took.as_secs_f64());
}

/// One member event queued for the webhook.
pub fn webhook_event() {
    counter!("longhouse_webhook_events_total").increment(1);
}

/// One webhook POST, delivered or not, and how long it took.
pub fn webhook_attempt(delivered: bool, took: Duration) {
    let result = if delivered { "delivered" } else { "failed" };
    counter!("longhouse_webhook_attempts_total", "result" => result).increment(1);
    histogram!("longhouse_webhook_attempt_seconds").record(took.as_secs_f64());
}
