//! A plain HTTP/1.0 GET for scraping `/metrics`, `/health` and Prometheus's API from tests,
//! reading the whole body (metrics pages exceed [`crate::Member::http_get`]'s 64 KiB cap).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// `GET path` on `addr` (`host:port`); the status code and the whole body, or `None` when
/// nothing answered in HTTP.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.take(16 << 20).read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let code = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}
