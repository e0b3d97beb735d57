//! Issue 7, operating the native server: the demo page, `GET /metrics`,
//! `GET /{space}` as JSON, and `LOG_FORMAT=json`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use longhouse_e2e::client::encode_space;
use longhouse_e2e::http::{self, Response};
use longhouse_e2e::target::native_bin;
use longhouse_e2e::{Client, Ctx, Member, TargetOptions};
use serde_json::Value;

const JSON: &[(&str, &str)] = &[("Accept", "application/json")];

/// `GET /` is one self-contained HTML page that loads `./client.js`, and
/// `GET /client.js` is the client library's ES module.
pub async fn demo_page_and_client_script_are_served(cx: &Ctx) -> Result<()> {
    let base = cx.dep().http_base();
    let page = http::get(&base, "/").await?;
    ensure!(page.status == 200, "GET /: status {}", page.status);
    ensure!(
        page.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "GET /: content-type {:?}",
        page.header("content-type")
    );
    let html = page.body_text();
    ensure!(
        html.contains(r#"from "./client.js""#),
        "the page does not load ./client.js"
    );
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "href=\"//",
        "@import",
    ] {
        ensure!(
            !html.contains(external),
            "the page fetches from elsewhere ({external})"
        );
    }
    let script = http::get(&base, "/client.js").await?;
    ensure!(
        script.status == 200,
        "GET /client.js: status {}",
        script.status
    );
    ensure!(
        script
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/javascript")),
        "GET /client.js: content-type {:?}",
        script.header("content-type")
    );
    let js = script.body_text();
    // The module is a bundle (clients/js/build.mjs): its exports are one
    // `export { … }` list at the end.
    let exports = js
        .rfind("export {")
        .and_then(|at| js[at..].split_once('}'))
        .map(|(list, _)| list)
        .unwrap_or_default();
    ensure!(
        ["connect", "spaceUrl"].iter().all(|name| exports
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == *name))
            && js.contains("function connect(")
            && js.contains("function spaceUrl("),
        "GET /client.js is not the client library's ES module"
    );
    Ok(())
}

/// `GET /{space}` with `Accept: application/json` is the space's roster,
/// shaped as the welcome's; a clean leave takes the client out of it.
pub async fn roster_as_json_lists_who_is_present(cx: &Ctx) -> Result<()> {
    let base = cx.dep().http_base();
    let space = format!("{}/x y+", cx.space());
    let path = format!("/{}", encode_space(&space));
    let empty = roster(&base, &path).await?;
    ensure!(
        empty == serde_json::json!({"space": space, "clients": []}),
        "an empty space: {empty}"
    );
    let mut a = cx.join(&space, "ann|1 ü").await?;
    let mut b = cx.join(&space, "bob").await?;
    a.expect_join(&b.member()).await?;
    let expected = b.roster.clone();
    wait_for_roster(&base, &path, &space, &expected).await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;
    wait_for_roster(&base, &path, &space, &[a.member()]).await?;
    Ok(())
}

/// A roster request for an invalid space is refused as a join would be, and
/// without `Accept: application/json` a plain GET is still 404 or 426.
pub async fn roster_request_checks_the_space(cx: &Ctx) -> Result<()> {
    let base = cx.dep().http_base();
    let r = http::get_with_headers(&base, "/bad%zz", JSON).await?;
    ensure!(r.status == 400, "GET /bad%zz as JSON: status {}", r.status);
    let body: Value = serde_json::from_slice(&r.body).context("error body")?;
    ensure!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("Invalid")),
        "GET /bad%zz as JSON: {body}"
    );
    let r = http::get(&base, &format!("/{}", cx.space())).await?;
    ensure!(
        r.status == 404 || r.status == 426,
        "plain GET without Accept: status {}",
        r.status
    );
    Ok(())
}

/// `GET /metrics` counts connections, spaces, joins, leaves, messages in
/// and out, and errors by kind (an own deployment, so the counts are exact).
pub async fn metrics_count_presence_messages_and_errors(cx: &Ctx) -> Result<()> {
    let dep = cx.start_own(TargetOptions::DEFAULT).await?;
    let (http_base, ws_base) = (dep.http_base(), dep.ws_base_of(0));
    let first = http::get(&http_base, "/metrics").await?;
    ensure!(first.status == 200, "GET /metrics: status {}", first.status);
    ensure!(
        first
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "GET /metrics: content-type {:?}",
        first.header("content-type")
    );
    let before = parse_metrics(&first.body_text());
    ensure!(
        before.get("longhouse_connections") == Some(&0.0),
        "connections before any: {before:?}"
    );

    let space = cx.space();
    let mut a = Client::join(&ws_base, &space, "a", None).await?;
    let mut b = Client::join(&ws_base, &space, "b", None).await?;
    a.expect_join(&b.member()).await?;
    a.ping().await?;
    a.send_text("hello").await?;
    a.expect_error("Unparsable").await?;
    b.close().await?;
    a.expect_leave(&b.member()).await?;

    let expect = [
        ("longhouse_connections", 1.0),
        ("longhouse_spaces", 1.0),
        (r#"longhouse_presence_events_total{event="join"}"#, 2.0),
        (r#"longhouse_presence_events_total{event="leave"}"#, 1.0),
        (r#"longhouse_errors_total{kind="unparsable"}"#, 1.0),
        // The ping and "hello".
        ("longhouse_messages_in_total", 2.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = parse_metrics(&http::get(&http_base, "/metrics").await?.body_text());
        let wrong: Vec<String> = expect
            .iter()
            .filter(|(name, value)| now.get(*name) != Some(value))
            .map(|(name, value)| format!("{name}: {:?}, expected {value}", now.get(*name)))
            .collect();
        // Two welcomes, a remote join, an error, a remote leave, and any
        // keepalives.
        let out = now
            .get("longhouse_messages_out_total")
            .copied()
            .unwrap_or(0.0);
        if wrong.is_empty() && out >= 5.0 {
            if cx.target().has(longhouse_e2e::Capability::DurableStore) {
                let joins = now
                    .get(r#"longhouse_redis_command_seconds_count{script="join"}"#)
                    .copied()
                    .unwrap_or(0.0);
                ensure!(joins >= 2.0, "Redis join latency not recorded: {now:?}");
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("metrics did not reach the expected values: {wrong:?}, messages out {out}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `LOG_FORMAT=json` writes one JSON object per line; the default is
/// human-readable text.
pub async fn log_format_json_writes_json_lines(_cx: &Ctx) -> Result<()> {
    let json_line = tokio::task::spawn_blocking(|| first_log_line(Some("json")))
        .await
        .map_err(|e| anyhow!("{e}"))??;
    let v: Value = serde_json::from_str(&json_line)
        .with_context(|| format!("LOG_FORMAT=json, not JSON: {json_line:?}"))?;
    ensure!(
        v["message"] == "listening" && v["level"] == "INFO",
        "LOG_FORMAT=json: unexpected first line {v}"
    );
    ensure!(
        v["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "LOG_FORMAT=json: fields are not flattened: {v}"
    );
    let text_line = tokio::task::spawn_blocking(|| first_log_line(None))
        .await
        .map_err(|e| anyhow!("{e}"))??;
    ensure!(
        serde_json::from_str::<Value>(&text_line).is_err() && text_line.contains("listening"),
        "default format: {text_line:?}"
    );
    Ok(())
}

/// `LOG_FORMAT=json`, read back whole: every line is a JSON object; lines
/// logged for a connection carry its span (`conn`, `space`, and `client`
/// once welcomed), so the join and the leave name the space and client
/// without repeating them per call; no token or query string appears.
pub async fn json_logs_carry_the_connection_span_and_no_query(cx: &Ctx) -> Result<()> {
    const SECRET: &str = "json-logs-secret";
    let options =
        TargetOptions::DEFAULT
            .with_json_logs()
            .with_limits(longhouse_e2e::target::ServerLimits {
                auth_secret: Some(SECRET),
                ..longhouse_e2e::target::ServerLimits::NONE
            });
    let dep = cx.start_own(options).await?;
    let space = cx.space();
    let token = longhouse_e2e::client::mint_token(
        &format!(
            r#"{{"sub":"ann","exp":{}}}"#,
            longhouse_e2e::client::unix_now() + 60
        ),
        SECRET,
    );
    let query = format!("token={token}&identity=ann&marker=q{}", cx.space());
    let url = format!("{}/{}?{query}", dep.ws_base_of(0), encode_space(&space));
    let mut ann = Client::connect_url(&url).await?;
    ann.expect_welcome().await?;
    let id = ann.id.clone();
    ann.ping().await?;
    ann.close().await?;
    let instance = &dep.instances()[0];
    // The leave is logged as the server handles the close: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let log = instance.log();
        // Whole lines only: the server may be writing the last one.
        let whole = log.rfind('\n').map_or("", |end| &log[..end]);
        let lines: Vec<Value> = whole
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON line: {l:?}")))
            .collect::<Result<_>>()?;
        if lines
            .iter()
            .any(|l| l["event"] == "leave" && l["client"] == id.as_str())
        {
            break lines;
        }
        ensure!(
            Instant::now() < deadline,
            "no leave line for {id} within 10 s:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let of = |event: &str| {
        lines
            .iter()
            .find(|l| l["event"] == event && l["client"] == id.as_str())
            .ok_or_else(|| anyhow!("no {event} line for {id}"))
    };
    let (join, leave) = (of("join")?, of("leave")?);
    for line in [join, leave] {
        let span = &line["span"];
        ensure!(
            span["name"] == "connection"
                && span["space"] == space.as_str()
                && span["conn"].as_str().is_some_and(|c| !c.is_empty()),
            "a presence line without the connection's span: {line}"
        );
    }
    ensure!(
        leave["span"]["client"] == id.as_str() && leave["span"]["conn"] == join["span"]["conn"],
        "the leave's span does not name the welcomed client on the same connection: {leave}"
    );
    let log = instance.log();
    for secret in [token.as_str(), &query, SECRET, "token=", "marker="] {
        ensure!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
    }
    Ok(())
}

/// Runs the binary on an ephemeral loopback port and returns its first
/// line of log that mentions `listening`; the process is killed after.
fn first_log_line(format: Option<&str>) -> Result<String> {
    let mut command = Command::new(native_bin());
    command
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("RUST_LOG", "info")
        .env_remove("REDIS_URL")
        .env_remove("REDISCLOUD_URL")
        .env_remove("LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(f) = format {
        command.env("LOG_FORMAT", f);
    }
    let mut child = command.spawn().context("spawn the server")?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening") {
                let _ = tx.send(line);
                return;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    line.map_err(|_| anyhow!("no `listening` line within 10 s"))
}

async fn roster(base: &str, path: &str) -> Result<Value> {
    let r: Response = http::get_with_headers(base, path, JSON).await?;
    ensure!(r.status == 200, "GET {path} as JSON: status {}", r.status);
    ensure!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "GET {path} as JSON: content-type {:?}",
        r.header("content-type")
    );
    serde_json::from_slice(&r.body).with_context(|| format!("GET {path}: {}", r.body_text()))
}

async fn wait_for_roster(base: &str, path: &str, space: &str, expected: &[Member]) -> Result<()> {
    let want = serde_json::json!({
        "space": space,
        "clients": expected
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "identity": m.identity, "joinedAt": m.joined_at}))
            .collect::<Vec<_>>(),
    });
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = roster(base, path).await?;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("GET {path} as JSON: {got}, expected {want}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `name{labels} value` lines, comments skipped.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}
