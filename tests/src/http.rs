//! A plain HTTP/1.0 GET for scraping `/metrics`, `/health` and Prometheus's API from tests,
//! reading the whole body (metrics pages exceed [`crate::Member::http_get`]'s 64 KiB cap);
//! and `request`, one HTTP/1.1 request of any method with a form body, for the APIs etcdctl
//! does not reach (etcd's v2 keys API with all its parameters), answers compared raw.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` on `addr` (`host:port`); the status code and the whole body, or `None` when
/// nothing answered in HTTP.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let (code, body) = get_bytes(addr, path, Duration::from_secs(5))?;
    Some((code, String::from_utf8_lossy(&body).to_string()))
}

/// `get` for binary bodies (profiles), waiting up to `timeout` for the answer.
pub fn get_bytes(addr: &str, path: &str, timeout: Duration) -> Option<(u16, Vec<u8>)> {
    let addr: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.take(16 << 20).read_to_end(&mut buf).ok()?;
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let code = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, buf[split + 4..].to_vec()))
}

/// An HTTP answer.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The status code (0 when the exchange failed).
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lower case), or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// Sends `method path` with a form `body` (empty: none) to `addr`; waits up to `timeout`.
pub fn request(addr: &str, method: &str, path: &str, form: &str, timeout: Duration) -> Answer {
    let ctype = "application/x-www-form-urlencoded";
    request_with_content_type(addr, method, path, form, ctype, timeout)
}

/// `request` with a body of another type (e.g. the JSON of v2's `/v2/members`).
pub fn request_with_content_type(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    content_type: &str,
    timeout: Duration,
) -> Answer {
    let form = body;
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return Answer::default();
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Answer::default();
    };
    let _ = s.set_read_timeout(Some(timeout));
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !form.is_empty() || method == "PUT" || method == "POST" {
        req.push_str(&format!("Content-Type: {content_type}\r\n"));
        req.push_str(&format!("Content-Length: {}\r\n", form.len()));
    }
    req.push_str("\r\n");
    req.push_str(form);
    if s.write_all(req.as_bytes()).is_err() {
        return Answer::default();
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Answer::default();
    };
    let mut lines = head.lines();
    let status =
        lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_string() };
    Answer { status: status.unwrap_or(0), headers, body }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
