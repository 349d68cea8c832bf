//! A real S3-compatible server for the backup tests: moto in server mode (PyPI `moto[server]`,
//! installed by `scripts/install-deps.sh`), on a free port of `host`, killed when dropped.
//! moto keeps everything in memory and accepts any access key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key moto accepts (any pair works; tests use these).
pub const ACCESS_KEY_ID: &str = "oxcd-test-key";
/// See [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str = "oxcd-test-secret";

/// A running moto server.
pub struct S3Server {
    child: Child,
    host: String,
    port: u16,
    log: tempfile::NamedTempFile,
}

impl S3Server {
    /// Starts moto on `host` (e.g. `127.0.0.1`, or a pod-like address) and a free port.
    pub fn start(host: &str) -> S3Server {
        let port = crate::ports::free_port();
        let log = tempfile::NamedTempFile::new().expect("log file");
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let child = Command::new(&python)
            .args(["-m", "moto.server", "-H", host, "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start moto ({python} -m moto.server): {e}; run scripts/install-deps.sh"
                )
            });
        let mut s = S3Server { child, host: host.into(), port, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.request("GET", "/", b"").is_none() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("moto exited ({status}): {}", s.log_text());
            }
            assert!(Instant::now() < deadline, "moto did not answer: {}", s.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
        s
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    /// Creates a bucket (moto takes an unsigned CreateBucket).
    pub fn create_bucket(&self, bucket: &str) {
        let status = self.request("PUT", &format!("/{bucket}"), b"");
        assert_eq!(status, Some(200), "create bucket {bucket}: {}", self.log_text());
    }

    /// The server's output so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// One HTTP/1.1 request; the status code, or None if the server did not answer.
    fn request(&self, method: &str, path: &str, body: &[u8]) -> Option<u16> {
        let mut conn = TcpStream::connect((self.host.as_str(), self.port)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.host,
            self.port,
            body.len()
        );
        conn.write_all(head.as_bytes()).ok()?;
        conn.write_all(body).ok()?;
        let mut resp = Vec::new();
        let _ = conn.read_to_end(&mut resp);
        let line = String::from_utf8_lossy(&resp);
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
