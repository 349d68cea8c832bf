//! Container probes: `httpGet` (plain HTTP to the pod's address), `tcpSocket` and `exec`, and the
//! threshold bookkeeping that turns single results into "ready", "started" or "restart it".
//!
//! HTTPS and gRPC probes are not implemented; they fail with a message saying so.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::{self, Launch};

/// One probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Passed.
    Success,
    /// Failed, with why.
    Failure(String),
}

/// Runs `probe` once against a container of the pod at `pod_ip`; `exec` probes run `launch`'s
/// environment and mounts with the probe's command.
pub async fn run(probe: &Probe, container: &Container, pod_ip: IpAddr, launch: &Launch) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let fut = async {
        if let Some(h) = &probe.http_get {
            if h.scheme.as_deref().is_some_and(|s| !s.eq_ignore_ascii_case("HTTP")) {
                return Outcome::Failure(
                    "HTTPS probes are not supported by the process kubelet".into(),
                );
            }
            let port = match port_number(&h.port, container) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            let host = match h.host.as_deref() {
                Some(h) if !h.is_empty() => h.to_string(),
                _ => pod_ip.to_string(),
            };
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|hh| (hh.name.clone(), hh.value.clone()))
                .collect();
            http_get(&host, port, h.path.as_deref().unwrap_or("/"), &headers).await
        } else if let Some(t) = &probe.tcp_socket {
            let port = match port_number(&t.port, container) {
                Ok(p) => p,
                Err(e) => return Outcome::Failure(e),
            };
            let host = t.host.clone().filter(|h| !h.is_empty()).unwrap_or(pod_ip.to_string());
            match TcpStream::connect((host.as_str(), port)).await {
                Ok(_) => Outcome::Success,
                Err(e) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
            }
        } else if let Some(e) = &probe.exec {
            exec(e.command.clone().unwrap_or_default(), launch).await
        } else if probe.grpc.is_some() {
            Outcome::Failure("gRPC probes are not supported by the process kubelet".into())
        } else {
            Outcome::Failure("probe has no handler".into())
        }
    };
    match tokio::time::timeout(timeout, fut).await {
        Ok(o) => o,
        Err(_) => Outcome::Failure(format!("probe timed out after {timeout:?}")),
    }
}

/// A probe's port: a number, or the name of one of the container's ports.
fn port_number(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("no container port named {name:?}"))
        }
    }
}

/// An HTTP/1.1 GET; 200–399 is success, as in Kubernetes.
async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Outcome {
    let mut stream = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failure(format!("Get \"http://{host}:{port}{path}\": {e}")),
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.36\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    if let Err(e) = stream.write_all(req.as_bytes()).await {
        return Outcome::Failure(format!("writing the probe request: {e}"));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Outcome::Failure(format!("reading the probe response: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..400).contains(&c) => Outcome::Success,
        Some(c) => Outcome::Failure(format!("HTTP probe failed with statuscode: {c}")),
        None => Outcome::Failure(format!("malformed HTTP response: {:?}", line.lines().next())),
    }
}

/// Runs the probe's command inside the container's view (mounts, env); exit 0 is success.
async fn exec(command: Vec<String>, launch: &Launch) -> Outcome {
    if command.is_empty() {
        return Outcome::Failure("exec probe without a command".into());
    }
    let mut l = launch.clone();
    l.argv = command;
    l.log = launch.log.with_extension("probe.log");
    let pid = match process::spawn(&l) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    // Reaped by polling; the caller's timeout drops this future, so kill on the way out.
    struct Guard(i32, bool);
    impl Drop for Guard {
        fn drop(&mut self) {
            if !self.1 {
                process::kill_and_reap(self.0);
            }
        }
    }
    let mut guard = Guard(pid, false);
    loop {
        if let Some(exit) = process::try_wait(pid) {
            guard.1 = true;
            return match exit.code() {
                0 => Outcome::Success,
                c => Outcome::Failure(format!("command exited with {c}")),
            };
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A probe's schedule and threshold state for one container.
#[derive(Debug)]
pub struct Tracker {
    /// The probe spec.
    pub probe: Probe,
    next: Instant,
    successes: i32,
    failures: i32,
    /// The current verdict (after thresholds): `None` until the first verdict.
    pub verdict: Option<bool>,
    /// The last failure's message.
    pub last_failure: Option<String>,
}

impl Tracker {
    /// A tracker for a container that started at `started`.
    pub fn new(probe: Probe, started: Instant) -> Self {
        let delay = Duration::from_secs(probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        Tracker {
            probe,
            next: started + delay,
            successes: 0,
            failures: 0,
            verdict: None,
            last_failure: None,
        }
    }

    /// Whether the probe is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// Records a result at `now` and schedules the next run; returns the verdict.
    pub fn record(&mut self, outcome: Outcome, now: Instant) -> Option<bool> {
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        self.next = now + period;
        match outcome {
            Outcome::Success => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.probe.success_threshold.unwrap_or(1).max(1) {
                    self.verdict = Some(true);
                }
            }
            Outcome::Failure(msg) => {
                self.successes = 0;
                self.failures += 1;
                self.last_failure = Some(msg);
                if self.failures >= self.probe.failure_threshold.unwrap_or(3).max(1) {
                    self.verdict = Some(false);
                }
            }
        }
        self.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(json: serde_json::Value) -> Probe {
        serde_json::from_value(json).unwrap()
    }

    fn launch() -> Launch {
        Launch {
            argv: vec![],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            mounts: vec![],
            hostname: String::new(),
            log: std::env::temp_dir().join(format!("oxcd-probe-test-{}.log", std::process::id())),
        }
    }

    async fn serve_once(status: &'static str) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_and_tcp_and_exec() {
        let c = Container { name: "c".into(), ..Default::default() };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ok = serve_once("200 OK").await;
        let bad = serve_once("503 Service Unavailable").await;
        let p = probe(serde_json::json!({"httpGet": {"path": "/health", "port": ok}}));
        assert_eq!(run(&p, &c, ip, &launch()).await, Outcome::Success);
        let p = probe(serde_json::json!({"httpGet": {"path": "/health", "port": bad}}));
        assert_eq!(
            run(&p, &c, ip, &launch()).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        let p = probe(serde_json::json!({"tcpSocket": {"port": ok}}));
        assert_eq!(run(&p, &c, ip, &launch()).await, Outcome::Success);
        let p = probe(serde_json::json!({"exec": {"command": ["sh", "-c", "exit 0"]}}));
        assert_eq!(run(&p, &c, ip, &launch()).await, Outcome::Success);
        let p = probe(serde_json::json!({"exec": {"command": ["sh", "-c", "exit 2"]}}));
        assert_eq!(
            run(&p, &c, ip, &launch()).await,
            Outcome::Failure("command exited with 2".into())
        );
        let p =
            probe(serde_json::json!({"timeoutSeconds": 1, "exec": {"command": ["sleep", "5"]}}));
        assert!(
            matches!(run(&p, &c, ip, &launch()).await, Outcome::Failure(m) if m.contains("timed out"))
        );
        let named: Container = serde_json::from_value(serde_json::json!(
            {"name": "c", "ports": [{"name": "client", "containerPort": ok}]}
        ))
        .unwrap();
        let p = probe(serde_json::json!({"httpGet": {"port": "client"}}));
        assert_eq!(run(&p, &named, ip, &launch()).await, Outcome::Success);
    }

    #[test]
    fn thresholds() {
        let t0 = Instant::now();
        let p = probe(
            serde_json::json!({"periodSeconds": 1, "failureThreshold": 2, "successThreshold": 2, "initialDelaySeconds": 5}),
        );
        let mut t = Tracker::new(p, t0);
        assert!(!t.due(t0));
        assert!(t.due(t0 + Duration::from_secs(5)));
        assert_eq!(t.record(Outcome::Success, t0), None);
        assert_eq!(t.record(Outcome::Success, t0), Some(true));
        assert_eq!(t.record(Outcome::Failure("x".into()), t0), Some(true));
        assert_eq!(t.record(Outcome::Failure("x".into()), t0), Some(false));
        assert!(!t.due(t0 + Duration::from_millis(500)));
    }
}
