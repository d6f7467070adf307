//! tracing set-up: `LOG_LEVEL` filter, `LOG_FORMAT` text or JSON, to stderr.
//!
//! Both formats print the spans an event is in: a recording's lines carry its span
//! ([`crate::recording::span`]: `recording_id`, `room`, `participant`), in text as
//! `recording{recording_id=RC_.. room=.. participant=..}: target: message` and in JSON as the
//! `span` object (the innermost span) and the `spans` list.

use tracing_subscriber::fmt::format::{DefaultFields, Format};
use tracing_subscriber::fmt::{MakeWriter, SubscriberBuilder};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Call once, first thing.
pub fn init(level: &str, format: LogFormat) {
    let builder = builder(level, std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The subscriber's settings, writing to `writer` (stderr in the daemon, a buffer in tests).
fn builder<W>(level: &str, writer: W) -> SubscriberBuilder<DefaultFields, Format, EnvFilter, W>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    /// A warning inside a recording's span, with `LOG_LEVEL=warn` (the span is ERROR level, so
    /// it stays enabled when INFO is filtered out).
    fn log_in_span(buf: &Buf, format: LogFormat) {
        let writer = buf.clone();
        let b = builder("warn", move || writer.clone());
        let emit = || {
            let span = crate::recording::span(&"RC_0123456789ab".into(), &"room-1".into(), &"alice".into());
            span.in_scope(|| tracing::warn!(part = 2, "no media received"));
        };
        match format {
            LogFormat::Json => tracing::subscriber::with_default(b.json().finish(), emit),
            LogFormat::Text => tracing::subscriber::with_default(b.with_ansi(false).finish(), emit),
        }
    }

    #[test]
    fn text_lines_carry_the_recording_span() {
        let buf = Buf::default();
        log_in_span(&buf, LogFormat::Text);
        let text = buf.text();
        assert!(
            text.contains("recording{recording_id=RC_0123456789ab room=room-1 participant=alice}:"),
            "{text}"
        );
        assert!(text.contains("no media received"), "{text}");
    }

    #[test]
    fn json_lines_carry_the_recording_span() {
        let buf = Buf::default();
        log_in_span(&buf, LogFormat::Json);
        let line: serde_json::Value = serde_json::from_str(buf.text().trim()).expect("one JSON line");
        assert_eq!(line["span"]["name"], "recording", "{line}");
        assert_eq!(line["span"]["recording_id"], "RC_0123456789ab", "{line}");
        assert_eq!(line["span"]["room"], "room-1");
        assert_eq!(line["span"]["participant"], "alice");
        assert_eq!(line["fields"]["message"], "no media received");
    }
}
