//! tracing set-up: `LOG_LEVEL` filter, `LOG_FORMAT` text or JSON, to stderr.

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, first thing.
pub fn init(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
