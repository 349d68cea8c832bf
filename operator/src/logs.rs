//! The operator's log output: text for a person at a terminal, or JSON lines for a log
//! pipeline (one object per line with `timestamp`, `level`, `target`, the event's fields
//! flattened beside them, `message` among them, and `span`/`spans` carrying the span fields
//! such as the `cluster` a reconcile works on), so logs can be searched by cluster without
//! parsing text. The filter is `RUST_LOG` (default `info`) in both formats.

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process-wide subscriber writing to stdout in `format`; a second call is a
/// no-op (one subscriber per process).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
