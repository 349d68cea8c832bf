//! Logging setup from etcd's flags: `--logger zap` writes etcd's JSON lines (`level`, `ts`,
//! `caller`, `msg`, then the event's fields) so log pipelines written for etcd keep parsing;
//! otherwise logs are human-readable. `--log-level` filters, `--log-outputs` picks where
//! lines go (`default`/`stderr`, `stdout`, or file paths, comma-separated).

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Why logging could not be set up (a bad `--log-outputs` entry).
#[derive(Debug, thiserror::Error)]
pub enum LogSetupError {
    /// A log file could not be opened for appending.
    #[error("cannot open log output {path}: {source}")]
    Open {
        /// The `--log-outputs` entry.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// `--logger` named a logger oxcd does not have.
    #[error("unknown logger option {0:?} (use \"zap\")")]
    UnknownLogger(String),
}

/// Installs the global subscriber for `logger`, `level` and `outputs` (etcd's flag values).
pub fn init(logger: &str, level: &str, outputs: &str) -> Result<(), LogSetupError> {
    let level = match level {
        "panic" | "fatal" | "dpanic" => "error",
        other => other,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn")));
    let sinks = open_outputs(outputs)?;
    let to_terminal =
        sinks.len() == 1 && matches!(sinks[0], Sink::Stderr) && io::stderr().is_terminal();
    let writer = Tee(Arc::new(Mutex::new(sinks)));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match logger {
        "zap" => builder.event_format(ZapJson).init(),
        "" | "human" => builder.with_ansi(to_terminal).init(),
        other => return Err(LogSetupError::UnknownLogger(other.to_string())),
    }
    Ok(())
}

/// One place log lines go.
enum Sink {
    Stderr,
    Stdout,
    File(File),
}

/// Parses `--log-outputs` as etcd does: `default` is stderr.
fn open_outputs(outputs: &str) -> Result<Vec<Sink>, LogSetupError> {
    let mut sinks = Vec::new();
    for entry in outputs.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        sinks.push(match entry {
            "default" | "stderr" => Sink::Stderr,
            "stdout" => Sink::Stdout,
            path => Sink::File(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| LogSetupError::Open { path: path.to_string(), source })?,
            ),
        });
    }
    if sinks.is_empty() {
        sinks.push(Sink::Stderr);
    }
    Ok(sinks)
}

/// Writes every line to each sink.
#[derive(Clone)]
struct Tee(Arc<Mutex<Vec<Sink>>>);

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sinks = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for sink in sinks.iter_mut() {
            // A full disk or closed pipe must not stop the member: the line is lost.
            let _ = match sink {
                Sink::Stderr => io::stderr().write_all(buf),
                Sink::Stdout => io::stdout().write_all(buf),
                Sink::File(f) => f.write_all(buf),
            };
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Tee {
    type Writer = Tee;

    fn make_writer(&'a self) -> Tee {
        self.clone()
    }
}

/// etcd's zap production encoding: one JSON object a line.
struct ZapJson;

impl<S, N> FormatEvent<S, N> for ZapJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let level = meta.level().as_str().to_ascii_lowercase();
        let caller = caller(meta.file().unwrap_or("unknown"), meta.line().unwrap_or(0));
        let mut line = serde_json::Map::new();
        line.insert("level".into(), level.into());
        line.insert("ts".into(), timestamp(SystemTime::now()).into());
        line.insert("caller".into(), caller.into());
        line.insert("msg".into(), fields.message.unwrap_or_default().into());
        for (key, value) in fields.rest {
            line.insert(key, value);
        }
        let text = serde_json::Value::Object(line).to_string();
        writeln!(writer, "{text}")
    }
}

/// An event's message and other fields, as JSON values.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    rest: Vec<(String, serde_json::Value)>,
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        match field.name() {
            "message" => self.message = Some(text),
            name => self.rest.push((name.to_string(), text.into())),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message = Some(value.to_string()),
            name => self.rest.push((name.to_string(), value.into())),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.rest.push((field.name().to_string(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.rest.push((field.name().to_string(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.rest.push((field.name().to_string(), value.into()));
    }
}

/// zap's short caller: the last directory and the file, with the line (`etcdserver/server.go:42`).
fn caller(file: &str, line: u32) -> String {
    let parts: Vec<&str> = file.rsplit('/').take(2).collect();
    let short: Vec<&str> = parts.into_iter().rev().collect();
    format!("{}:{line}", short.join("/"))
}

/// zap's ISO 8601 UTC time with milliseconds (`2021-01-02T03:04:05.678Z`).
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let mut out = String::new();
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
    out
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_zaps_iso8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_609_556_645_678);
        assert_eq!(timestamp(t), "2021-01-02T03:04:05.678Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn caller_is_short() {
        assert_eq!(caller("store/src/serve.rs", 40), "src/serve.rs:40");
        assert_eq!(caller("main.rs", 1), "main.rs:1");
    }
}
