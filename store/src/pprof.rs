//! `--enable-pprof`: etcd serves Go's profiler under `/debug/pprof/` on the client port, and
//! operators fetch a CPU profile with `go tool pprof http://HOST:2379/debug/pprof/profile`.
//! oxcd serves the same CPU profile (a sampling profiler, gzipped pprof protobuf, as Go's),
//! so the same command and tooling work. Go's other profiles (heap, goroutine, ...) describe
//! Go's runtime and have no counterpart; their paths answer 404, as without the flag.

use std::io::Write;
use std::time::Duration;

use axum::extract::RawQuery;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use pprof::protos::Message;

/// Go's default profile length when `seconds` is missing or not a positive number.
const DEFAULT_SECONDS: u64 = 30;

/// Samples per second, Go's `runtime.SetCPUProfileRate` default.
const SAMPLE_HZ: i32 = 100;

/// Frames of the C library and the kernel's vDSO, skipped while unwinding: unwinding
/// through them from a signal handler can deadlock (pprof-rs's advice).
const BLOCKLIST: &[&str] = &["libc", "libgcc", "pthread", "vdso"];

/// The routes `--enable-pprof` adds to the client port.
pub fn router() -> Router {
    Router::new().route("/debug/pprof/", get(index)).route("/debug/pprof/profile", get(profile))
}

/// The index Go's `pprof.Index` serves, listing what this member offers.
async fn index() -> Response {
    let body = "<html><head><title>/debug/pprof/</title></head><body>\n\
        /debug/pprof/<br>\n<br>\nTypes of profiles available:\n\
        <table><thead><td>Count</td><td>Profile</td></thead>\n\
        <tr><td>0</td><td><a href='profile'>profile</a></td></tr>\n</table>\n\
        <p>profile: CPU profile. You can specify the duration in the seconds GET parameter. \
        After you get the profile file, use the go tool pprof command to investigate the \
        profile.</p>\n</body></html>\n";
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// Samples the whole process for `seconds` and answers the gzipped pprof protobuf.
async fn profile(RawQuery(query): RawQuery) -> Response {
    let seconds = query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("seconds="))
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_SECONDS);
    // One profiler per process: a second request while one runs is refused, as Go refuses
    // with "profiling already in use".
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(SAMPLE_HZ)
        .blocklist(BLOCKLIST)
        .build()
    {
        Ok(guard) => guard,
        Err(e) => return failed(format!("Could not enable CPU profiling: {e}")),
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let encoded = tokio::task::spawn_blocking(move || encode(&guard)).await;
    match encoded {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"profile\""),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err(e)) => failed(e),
        Err(e) => failed(format!("profile task: {e}")),
    }
}

/// The samples so far as a gzipped pprof protobuf (Go's `profile.proto` wire format).
fn encode(guard: &pprof::ProfilerGuard<'_>) -> Result<Vec<u8>, String> {
    let report = guard.report().build().map_err(|e| format!("profile report: {e}"))?;
    let profile = report.pprof().map_err(|e| format!("profile encoding: {e}"))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&profile.encode_to_vec()).map_err(|e| format!("profile gzip: {e}"))?;
    gz.finish().map_err(|e| format!("profile gzip: {e}"))
}

/// A 500 with Go's plain-text error body.
fn failed(message: String) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
}
