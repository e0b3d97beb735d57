//! A protocol-aware WebSocket client for the cases.
//!
//! Everything received is recorded in [`Client::log`]. The `expect_*`
//! helpers wait (with a timeout) for the next message and fail on anything
//! else; server keepalives (`{"ping":true}`) and ping answers
//! (`{"pong":true}`) are skipped by them, as the protocol tells clients to,
//! and WebSocket-level ping/pong frames never surface.

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use futures_util::{SinkExt, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{RECV_TIMEOUT, SILENCE};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Characters left as they are in a path segment: RFC 3986 unreserved.
/// Everything else, `/` and `%` included, is percent-encoded, so the
/// server's single decoding gives back the space exactly.
const PATH_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The space as a path (without the leading `/`).
pub fn encode_space(space: &str) -> String {
    utf8_percent_encode(space, PATH_KEEP).to_string()
}

/// `{base}/{space}?identity=…&id=…`, every part encoded so that it decodes
/// to exactly what was given.
pub fn join_url(base: &str, space: &str, identity: Option<&str>, id: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(identity) = identity {
        query.append_pair("identity", identity);
    }
    if let Some(id) = id {
        query.append_pair("id", id);
    }
    let query = query.finish();
    let path = encode_space(space);
    if query.is_empty() {
        format!("{base}/{path}")
    } else {
        format!("{base}/{path}?{query}")
    }
}

/// One entry of a roster or the subject of an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    pub id: String,
    pub identity: String,
    pub joined_at: String,
}

impl Member {
    /// Parses `{"id":…,"identity":…,"joinedAt":…}` (extra fields allowed).
    pub fn from_json(v: &Value) -> Result<Member> {
        let field = |name: &str| -> Result<String> {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| anyhow!("client entry without string field {name:?}: {v}"))
        };
        ensure!(v.is_object(), "client entry is not an object: {v}");
        Ok(Member {
            id: field("id")?,
            identity: field("identity")?,
            joined_at: field("joinedAt")?,
        })
    }
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{:?}@{}", self.id, self.identity, self.joined_at)
    }
}

/// One client's idea of its space: welcome roster + joins − leaves. Fails on
/// a doubled join and on a leave for someone never seen joining.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    members: BTreeMap<String, Member>,
}

impl View {
    pub fn from_roster(roster: &[Member]) -> Result<View> {
        let mut view = View::default();
        for m in roster {
            ensure!(
                view.members.insert(m.id.clone(), m.clone()).is_none(),
                "roster lists id {} twice",
                m.id
            );
        }
        Ok(view)
    }

    pub fn apply(&mut self, event: &str, member: &Member) -> Result<()> {
        match event {
            "remote join" => {
                if let Some(old) = self.members.get(&member.id) {
                    bail!("remote join for {member} who is already present as {old}");
                }
                self.members.insert(member.id.clone(), member.clone());
            }
            "remote leave" => match self.members.remove(&member.id) {
                None => bail!("remote leave for {member} who was never seen joining"),
                Some(old) => ensure!(
                    &old == member,
                    "remote leave for {member} differs from its join {old}"
                ),
            },
            other => bail!("not a roster event: {other:?}"),
        }
        Ok(())
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.values().cloned().collect()
    }

    pub fn contains(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// What came in on a socket.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame: code and reason (None: a close frame without a code).
    Close(Option<(u16, String)>),
    /// The connection ended without (further) close frame, or failed.
    Ended(String),
}

impl Incoming {
    pub fn json(&self) -> Option<Value> {
        match self {
            Incoming::Text(t) => serde_json::from_str(t).ok(),
            _ => None,
        }
    }

    /// `{"ping":true}` or `{"pong":true}`: to be ignored by clients.
    pub fn is_keepalive(&self) -> bool {
        self.json()
            .is_some_and(|v| v == json!({"ping": true}) || v == json!({"pong": true}))
    }

    pub fn is_server_ping(&self) -> bool {
        self.json().is_some_and(|v| v == json!({"ping": true}))
    }
}

impl fmt::Display for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incoming::Text(t) if t.len() > 300 => write!(f, "text {:?}…", &t[..300]),
            Incoming::Text(t) => write!(f, "text {t}"),
            Incoming::Binary(b) => write!(f, "binary ({} bytes)", b.len()),
            Incoming::Close(Some((code, reason))) => write!(f, "close {code} {reason:?}"),
            Incoming::Close(None) => write!(f, "close without code"),
            Incoming::Ended(why) => write!(f, "end: {why}"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub what: Incoming,
}

/// A protocol client. After [`Client::expect_welcome`], `id`, `identity`
/// and `joined_at` describe the client as the server sees it.
pub struct Client {
    ws: Option<Ws>,
    ended: bool,
    /// For messages: who this is.
    pub label: String,
    pub url: String,
    /// Just before the WebSocket handshake was sent: no lease of this
    /// connection can have started earlier.
    pub connect_started: Instant,
    /// When the welcome arrived: the lease started before this.
    pub welcomed_at: Option<Instant>,
    pub id: String,
    pub identity: String,
    pub joined_at: String,
    /// The welcome's roster.
    pub roster: Vec<Member>,
    /// Everything received, keepalives included.
    pub log: Vec<Received>,
}

impl Client {
    /// Opens a WebSocket to `{base}/{space}?identity=…&id=…` (each part
    /// encoded). `identity: None` leaves the parameter out.
    pub async fn connect(
        base: &str,
        space: &str,
        identity: Option<&str>,
        id: Option<&str>,
    ) -> Result<Client> {
        let url = join_url(base, space, identity, id);
        let mut client = Client::connect_url(&url).await?;
        if let Some(identity) = identity {
            client.identity = identity.to_string();
            client.label = format!("{identity:?}");
        }
        Ok(client)
    }

    /// Opens a WebSocket to a URL given as is (for cases about encoding).
    pub async fn connect_url(url: &str) -> Result<Client> {
        Client::connect_with_headers(url, &[]).await
    }

    /// Opens a WebSocket to `url` with extra request headers (`Origin`).
    pub async fn connect_with_headers(url: &str, headers: &[(&str, &str)]) -> Result<Client> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
                value.parse()?,
            );
        }
        let connect_started = Instant::now();
        let (ws, _response) =
            tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .with_context(|| format!("WebSocket handshake with {url} timed out"))?
                .with_context(|| format!("WebSocket handshake with {url}"))?;
        Ok(Client {
            ws: Some(ws),
            ended: false,
            label: url.to_string(),
            url: url.to_string(),
            connect_started,
            welcomed_at: None,
            id: String::new(),
            identity: String::new(),
            joined_at: String::new(),
            roster: Vec::new(),
            log: Vec::new(),
        })
    }

    /// Connects and waits for the welcome.
    pub async fn join(base: &str, space: &str, identity: &str, id: Option<&str>) -> Result<Client> {
        let mut c = Client::connect(base, space, Some(identity), id).await?;
        c.expect_welcome().await?;
        Ok(c)
    }

    /// This client as others see it.
    pub fn member(&self) -> Member {
        Member {
            id: self.id.clone(),
            identity: self.identity.clone(),
            joined_at: self.joined_at.clone(),
        }
    }

    fn ws(&mut self) -> Result<&mut Ws> {
        let label = &self.label;
        self.ws
            .as_mut()
            .ok_or_else(|| anyhow!("{label}: the connection was dropped"))
    }

    /// The next thing that comes in (keepalives included), or None at the
    /// deadline.
    async fn read_until(&mut self, deadline: Instant) -> Result<Option<Received>> {
        if self.ended {
            return Ok(Some(Received {
                at: Instant::now(),
                what: Incoming::Ended("connection already ended".into()),
            }));
        }
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let ws = self.ws()?;
            let what = match tokio::time::timeout(remaining, ws.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => Incoming::Ended("connection ended without a close frame".into()),
                Ok(Some(Err(e))) => Incoming::Ended(format!("connection failed: {e}")),
                Ok(Some(Ok(msg))) => match msg {
                    Message::Text(t) => Incoming::Text(t.to_string()),
                    Message::Binary(b) => Incoming::Binary(b.to_vec()),
                    Message::Close(f) => {
                        Incoming::Close(f.map(|f| (u16::from(f.code), f.reason.to_string())))
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                },
            };
            if matches!(what, Incoming::Ended(_)) {
                self.ended = true;
            }
            let received = Received {
                at: Instant::now(),
                what,
            };
            self.log.push(received.clone());
            return Ok(Some(received));
        }
    }

    /// The next JSON message that is not a keepalive, if one arrives before
    /// `deadline`; `None` if none did. For cases that watch several clients
    /// at once (and ping them) while waiting for events.
    pub async fn poll_json(&mut self, deadline: Instant) -> Result<Option<(Value, Instant)>> {
        loop {
            match self.read_until(deadline).await? {
                None => return Ok(None),
                Some(r) if r.what.is_keepalive() => continue,
                Some(r) => match &r.what {
                    Incoming::Text(t) => {
                        let v: Value = serde_json::from_str(t).with_context(|| {
                            format!("{}: text frame is not JSON: {t:?}", self.label)
                        })?;
                        return Ok(Some((v, r.at)));
                    }
                    other => bail!("{}: expected a JSON message, got {other}", self.label),
                },
            }
        }
    }

    /// The next message that is not a keepalive, within `timeout`.
    pub async fn recv_within(&mut self, timeout: Duration) -> Result<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await? {
                None => bail!(
                    "{}: nothing (besides keepalives) arrived within {timeout:?}",
                    self.label
                ),
                Some(r) if r.what.is_keepalive() => continue,
                Some(r) => return Ok(r),
            }
        }
    }

    /// The next message that is not a keepalive.
    pub async fn recv(&mut self) -> Result<Received> {
        self.recv_within(RECV_TIMEOUT).await
    }

    /// The next message that is not a keepalive, which must be a JSON
    /// object in a text frame; with the time it arrived.
    pub async fn recv_json_timed(&mut self, timeout: Duration) -> Result<(Value, Instant)> {
        let r = self.recv_within(timeout).await?;
        match &r.what {
            Incoming::Text(t) => {
                let v: Value = serde_json::from_str(t)
                    .with_context(|| format!("{}: text frame is not JSON: {t:?}", self.label))?;
                ensure!(
                    v.is_object(),
                    "{}: message is not a JSON object: {t}",
                    self.label
                );
                Ok((v, r.at))
            }
            other => bail!("{}: expected a JSON message, got {other}", self.label),
        }
    }

    pub async fn recv_json(&mut self) -> Result<Value> {
        Ok(self.recv_json_timed(RECV_TIMEOUT).await?.0)
    }

    /// Waits for the welcome, checks its shape and records who we are.
    pub async fn expect_welcome(&mut self) -> Result<&[Member]> {
        let (v, at) = self.recv_json_timed(RECV_TIMEOUT).await?;
        let label = self.label.clone();
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{label}: welcome without string \"id\": {v}"))?
            .to_string();
        let clients = v
            .get("clients")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("{label}: welcome without array \"clients\": {v}"))?;
        let roster = clients
            .iter()
            .map(Member::from_json)
            .collect::<Result<Vec<_>>>()
            .with_context(|| format!("{label}: welcome {v}"))?;
        let me = roster
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| anyhow!("{label}: welcome roster does not include itself ({id}): {v}"))?
            .clone();
        if !self.identity.is_empty() {
            ensure!(
                me.identity == self.identity,
                "{label}: welcome gives own identity {:?}, joined as {:?}",
                me.identity,
                self.identity
            );
        }
        View::from_roster(&roster).with_context(|| format!("{label}: welcome {v}"))?;
        self.id = id;
        self.identity = me.identity;
        self.joined_at = me.joined_at;
        self.roster = roster;
        self.welcomed_at = Some(at);
        Ok(&self.roster)
    }

    /// Waits for `{"event":kind,"client":{…}}` and returns its client and
    /// arrival time.
    pub async fn expect_event_timed(
        &mut self,
        kind: &str,
        timeout: Duration,
    ) -> Result<(Member, Instant)> {
        let (v, at) = self
            .recv_json_timed(timeout)
            .await
            .with_context(|| format!("while waiting for {kind:?}"))?;
        let event = v.get("event").and_then(Value::as_str);
        ensure!(
            event == Some(kind),
            "{}: expected event {kind:?}, got {v}",
            self.label
        );
        let client = v
            .get("client")
            .ok_or_else(|| anyhow!("{}: event without \"client\": {v}", self.label))?;
        Ok((Member::from_json(client)?, at))
    }

    pub async fn expect_event(&mut self, kind: &str) -> Result<Member> {
        Ok(self.expect_event_timed(kind, RECV_TIMEOUT).await?.0)
    }

    /// Waits for a `remote join` of exactly `who`.
    pub async fn expect_join(&mut self, who: &Member) -> Result<()> {
        let m = self.expect_event("remote join").await?;
        ensure!(
            &m == who,
            "{}: remote join for {m}, expected {who}",
            self.label
        );
        Ok(())
    }

    /// Waits for a `remote leave` of exactly `who`; returns when it arrived.
    pub async fn expect_leave_within(
        &mut self,
        who: &Member,
        timeout: Duration,
    ) -> Result<Instant> {
        let (m, at) = self.expect_event_timed("remote leave", timeout).await?;
        ensure!(
            &m == who,
            "{}: remote leave for {m}, expected {who}",
            self.label
        );
        Ok(at)
    }

    pub async fn expect_leave(&mut self, who: &Member) -> Result<Instant> {
        self.expect_leave_within(who, RECV_TIMEOUT).await
    }

    /// Waits for `{"error":"<prefix>…"}` and returns the whole message.
    pub async fn expect_error(&mut self, prefix: &str) -> Result<String> {
        let v = self
            .recv_json()
            .await
            .with_context(|| format!("while waiting for error {prefix:?}"))?;
        let text = v
            .get("error")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{}: expected error {prefix:?}, got {v}", self.label))?;
        ensure!(
            text.starts_with(prefix),
            "{}: expected an error starting with {prefix:?}, got {text:?}",
            self.label
        );
        Ok(text.to_string())
    }

    /// The next thing (besides keepalives) must be a close frame with
    /// `code`.
    pub async fn expect_close(&mut self, code: u16) -> Result<Instant> {
        self.expect_close_within(code, RECV_TIMEOUT).await
    }

    pub async fn expect_close_within(&mut self, code: u16, timeout: Duration) -> Result<Instant> {
        let r = self
            .recv_within(timeout)
            .await
            .with_context(|| format!("while waiting for close {code}"))?;
        match &r.what {
            Incoming::Close(Some((got, _))) if *got == code => Ok(r.at),
            other => bail!("{}: expected close {code}, got {other}", self.label),
        }
    }

    /// The next thing (besides keepalives) must be a close frame with
    /// `code`, answered (tungstenite replies by itself); then the server must
    /// end the TCP connection within `timeout`. Returns how long after the
    /// close frame the connection ended (RFC 6455 7.1.1: the server closes
    /// the TCP connection first, and promptly).
    pub async fn expect_close_then_end(
        &mut self,
        code: u16,
        timeout: Duration,
    ) -> Result<Duration> {
        let closed_at = self.expect_close(code).await?;
        match self.read_until(closed_at + timeout).await? {
            None => bail!(
                "{}: the connection was still open {timeout:?} after close {code}",
                self.label
            ),
            Some(r) if matches!(r.what, Incoming::Ended(_)) => Ok(r.at - closed_at),
            Some(r) => bail!(
                "{}: got {} after close {code}, expected the connection to end",
                self.label,
                r.what
            ),
        }
    }

    /// One error message starting with `prefix`, then close `code`.
    pub async fn expect_rejected(&mut self, prefix: &str, code: u16) -> Result<String> {
        let text = self.expect_error(prefix).await?;
        self.expect_close(code).await?;
        Ok(text)
    }

    /// Nothing but keepalives arrives for [`SILENCE`].
    pub async fn expect_silence(&mut self) -> Result<()> {
        self.expect_silence_for(SILENCE).await
    }

    /// Nothing but keepalives arrives for `period` (keep it short: this is
    /// only for "no event" assertions).
    pub async fn expect_silence_for(&mut self, period: Duration) -> Result<()> {
        let deadline = Instant::now() + period;
        loop {
            match self.read_until(deadline).await? {
                None => return Ok(()),
                Some(r) if r.what.is_keepalive() => continue,
                Some(r) => bail!(
                    "{}: expected nothing for {period:?}, got {}",
                    self.label,
                    r.what
                ),
            }
        }
    }

    /// Everything but keepalives that arrives within `period` (for cases
    /// that keep several clients busy at once and check what they got).
    pub async fn drain_for(&mut self, period: Duration) -> Result<Vec<Incoming>> {
        let deadline = Instant::now() + period;
        let mut got = Vec::new();
        while let Some(r) = self.read_until(deadline).await? {
            if r.what.is_keepalive() {
                continue;
            }
            let ended = matches!(r.what, Incoming::Ended(_));
            got.push(r.what);
            if ended {
                break;
            }
        }
        Ok(got)
    }

    /// Nothing at all arrives for `period`, keepalives included.
    pub async fn expect_no_frames_for(&mut self, period: Duration) -> Result<()> {
        let deadline = Instant::now() + period;
        match self.read_until(deadline).await? {
            None => Ok(()),
            Some(r) => bail!(
                "{}: expected no message at all for {period:?}, got {}",
                self.label,
                r.what
            ),
        }
    }

    /// Waits for a server keepalive `{"ping":true}`; anything else but a
    /// `{"pong":true}` fails.
    pub async fn expect_keepalive(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await? {
                None => bail!("{}: no {{\"ping\":true}} within {timeout:?}", self.label),
                Some(r) if r.what.is_server_ping() => return Ok(r.at),
                Some(r) if r.what.is_keepalive() => continue,
                Some(r) => bail!("{}: expected {{\"ping\":true}}, got {}", self.label, r.what),
            }
        }
    }

    /// Waits for the edge's answer to an exact ping, `{"pong":true}`
    /// (server keepalives are skipped; anything else fails).
    pub async fn expect_pong(&mut self, timeout: Duration) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await? {
                None => bail!("{}: no {{\"pong\":true}} within {timeout:?}", self.label),
                Some(r) if r.what.is_server_ping() => continue,
                Some(r) if r.what.is_keepalive() => return Ok(r.at),
                Some(r) => bail!("{}: expected {{\"pong\":true}}, got {}", self.label, r.what),
            }
        }
    }

    pub async fn send(&mut self, msg: Message) -> Result<()> {
        let label = self.label.clone();
        let ws = self.ws()?;
        tokio::time::timeout(RECV_TIMEOUT, ws.send(msg))
            .await
            .with_context(|| format!("{label}: send timed out"))?
            .with_context(|| format!("{label}: send"))
    }

    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.send(Message::text(text)).await
    }

    pub async fn send_json(&mut self, v: &Value) -> Result<()> {
        self.send_text(&v.to_string()).await
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) -> Result<()> {
        self.send(Message::binary(bytes.to_vec())).await
    }

    /// `{"action":"ping"}`; returns when it was sent.
    pub async fn ping(&mut self) -> Result<Instant> {
        self.send_text(r#"{"action":"ping"}"#).await?;
        Ok(Instant::now())
    }

    /// A raw frame, masked as a client's must be (tungstenite masks it).
    pub async fn send_frame(&mut self, frame: Frame) -> Result<()> {
        self.send(Message::Frame(frame)).await
    }

    /// A text frame whose payload is `bytes`, valid UTF-8 or not.
    pub async fn send_raw_text(&mut self, bytes: &[u8]) -> Result<()> {
        self.send_frame(Frame::message(
            bytes.to_vec(),
            OpCode::Data(Data::Text),
            true,
        ))
        .await
    }

    /// One text message split into fragments: a text frame, then
    /// continuation frames, the last one final.
    pub async fn send_fragmented_text(&mut self, fragments: &[&[u8]]) -> Result<()> {
        ensure!(fragments.len() >= 2, "a fragmented message has 2+ frames");
        let last = fragments.len() - 1;
        for (i, part) in fragments.iter().enumerate() {
            let opcode = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            self.send_frame(Frame::message(part.to_vec(), opcode, i == last))
                .await?;
        }
        Ok(())
    }

    /// A clean close: sends a close frame (1000) and waits for the server's
    /// (or the end of the connection). Returns when the close frame was
    /// sent. Messages that arrive meanwhile are recorded.
    pub async fn close(&mut self) -> Result<Instant> {
        let sent = Instant::now();
        self.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await?;
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            match self.read_until(deadline).await? {
                None => bail!("{}: no close frame back after closing", self.label),
                Some(r) if matches!(r.what, Incoming::Close(_) | Incoming::Ended(_)) => break,
                Some(_) => continue,
            }
        }
        self.ws = None;
        Ok(sent)
    }

    /// Loses the connection: shuts the TCP stream down and drops it
    /// without a close frame, as a killed browser or a network drop would.
    /// Returns when it happened.
    pub fn drop_tcp(&mut self) -> Result<Instant> {
        let ws = self
            .ws
            .take()
            .ok_or_else(|| anyhow!("{}: already dropped", self.label))?;
        if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            // SAFETY: a plain syscall on a descriptor we own; the stream is
            // dropped right after.
            unsafe { libc::shutdown(tcp.as_raw_fd(), libc::SHUT_RDWR) };
        }
        drop(ws);
        self.ended = true;
        Ok(Instant::now())
    }

    /// What was received so far, one line each (for failure messages).
    pub fn transcript(&self) -> String {
        self.log
            .iter()
            .map(|r| r.what.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `s` is a lowercase UUID v4 (`xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx`).
pub fn is_lowercase_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Checks `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339, UTC, exactly milliseconds)
/// and returns the instant in milliseconds since the epoch.
pub fn parse_joined_at(s: &str) -> Result<i64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    ensure!(
        shape_ok,
        "joinedAt {s:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ (RFC 3339, UTC, milliseconds)"
    );
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("joinedAt {s:?} is not RFC 3339"))?;
    Ok(t.timestamp_millis())
}

/// The HTTP status a WebSocket upgrade to `url` with `headers` gets: 101
/// when it succeeds (the socket is then dropped), else the refusal's status.
pub async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> Result<u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut request = url.into_client_request()?;
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())?,
            value.parse()?,
        );
    }
    let attempt = tokio::time::timeout(RECV_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .with_context(|| format!("upgrade to {url} timed out"))?;
    match attempt {
        Ok((_ws, response)) => Ok(response.status().as_u16()),
        Err(WsError::Http(response)) => Ok(response.status().as_u16()),
        Err(e) => Err(anyhow!("upgrade to {url}: {e}")),
    }
}

/// An HS256 join token for `claims_json`, signed with `secret`: what an
/// application backend mints (written here independently of the server's
/// verifier).
pub fn mint_token(claims_json: &str, secret: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::Mac;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims_json);
    let signed = format!("{header}.{payload}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(signed.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{sig}")
}

/// Seconds since the epoch, for token claims.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
