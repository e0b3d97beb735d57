//! A minimal HTTP/1.1 client: enough for `GET /health` and for checking
//! what plain requests get. One request per connection (`Connection: close`).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP answer, read whole (the connection is closed after it).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case), as HTTP compares names.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, for messages (not for comparing bytes).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET {base}{path}` where base is `http://127.0.0.1:PORT`.
pub async fn get(base: &str, path: &str) -> Result<Response> {
    get_with_headers(base, path, &[]).await
}

/// `GET {base}{path}` with extra request headers (`Accept`, say).
pub async fn get_with_headers(
    base: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response> {
    request(base, "GET", path, headers, None).await
}

/// `{method} {base}{path}` with extra headers and, if given, a body (sent
/// with its `Content-Length`).
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Response> {
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("not an http:// base: {base}"))?;
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let length = body
        .map(|b| format!("Content-Length: {}\r\n", b.len()))
        .unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: longhouse-e2e\r\n{extra}{length}Connection: close\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(body.unwrap_or_default());
    let exchange = async {
        let mut stream = TcpStream::connect(authority).await?;
        stream.write_all(&request).await?;
        // Stop once the response is complete: workerd keeps a connection
        // open for seconds after answering, `Connection: close` or not.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if is_complete(&buf) {
                break;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        anyhow::Ok(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .with_context(|| format!("{method} {base}{path} timed out"))?
        .with_context(|| format!("{method} {base}{path}"))?;
    parse_response(&buf).with_context(|| format!("{method} {base}{path}"))
}

/// A response whose length is known (content-length or chunked) and that
/// has arrived whole; one without either ends at the connection's close.
fn is_complete(buf: &[u8]) -> bool {
    match parse_response(buf) {
        Ok(r) => {
            r.header("content-length").is_some()
                || r.header("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        }
        Err(_) => false,
    }
}

/// Parses a complete response read until the connection closed.
pub fn parse_response(buf: &[u8]) -> Result<Response> {
    let head_end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("no end of headers in {} bytes", buf.len()))?;
    let head = std::str::from_utf8(&buf[..head_end]).context("headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("bad status line {status_line:?}");
    }
    let status: u16 = parts
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let raw = &buf[head_end + 4..];
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(raw)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().context("bad content-length")?;
        raw.get(..len)
            .ok_or_else(|| anyhow!("body shorter than content-length {len}"))?
            .to_vec()
    } else {
        raw.to_vec()
    };
    Ok(response)
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("truncated chunk size"))?;
        let size_text = std::str::from_utf8(&raw[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).context("bad chunk size")?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(raw.get(..size).ok_or_else(|| anyhow!("truncated chunk"))?);
        raw = raw
            .get(size + 2..)
            .ok_or_else(|| anyhow!("truncated chunk"))?;
    }
}
