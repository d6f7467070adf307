//! Process-wide counters for `GET /metrics` (Prometheus text format, hand-written).
//!
//! Counters are atomics written by the actors that own the events (one writer per event kind);
//! they carry no actor state, so sharing them is not shared mutable state between actors.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// The daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bytes appended to recording files.
    pub bytes_written: AtomicU64,
    /// Frames dropped (connection channel full, waiting for a keyframe, after loss, ...).
    pub frames_dropped: AtomicU64,
    /// Frames lost to unrepaired network loss (never received, counted from RTP gaps).
    pub frames_lost: AtomicU64,
    /// Frames the SFU made up (blank keyframes, silence at close and mute) left out of files.
    pub sfu_filler_frames: AtomicU64,
    /// Keyframe requests (PLIs) asked of the connection (it rate-limits them further).
    pub plis_requested: AtomicU64,
    /// Signal connections that dropped and started a resume (a healthy room shows none).
    pub signal_reconnects: AtomicU64,
    /// Room actors restarted.
    pub restarts_room: AtomicU64,
    /// Participant recorder actors restarted.
    pub restarts_participant: AtomicU64,
    /// Track writer actors restarted.
    pub restarts_track: AtomicU64,
    /// Recordings failed because the disk was full or not writable.
    pub storage_failures: AtomicU64,
    /// Files uploaded to S3 (verified).
    pub uploads_ok: AtomicU64,
    /// Files whose upload failed for good (`UPLOAD_GIVE_UP` passed).
    pub uploads_failed: AtomicU64,
    /// Sum of the successful uploads' durations (first attempt to verified), microseconds.
    pub upload_micros: AtomicU64,
    /// Result callbacks accepted (2xx) by their URL.
    pub callbacks_ok: AtomicU64,
    /// Result callbacks given up on after every attempt failed.
    pub callbacks_failed: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one file upload that ended, and its duration when it succeeded.
    pub fn record_upload(&self, ok: bool, seconds: f64) {
        if ok {
            Metrics::add(&self.uploads_ok, 1);
            Metrics::add(&self.upload_micros, (seconds * 1e6) as u64);
        } else {
            Metrics::add(&self.uploads_failed, 1);
        }
    }

    /// Counts one result callback that ended (delivered, or given up).
    pub fn record_callback(&self, ok: bool) {
        Metrics::add(if ok { &self.callbacks_ok } else { &self.callbacks_failed }, 1);
    }

    /// The Prometheus exposition, with the live gauge `active` (recordings not ended).
    pub fn render(&self, active: usize) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: &[(String, u64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        metric(
            "recorder_active_recordings",
            "gauge",
            "Recordings not ended.",
            &[(String::new(), active as u64)],
        );
        metric(
            "recorder_bytes_written_total",
            "counter",
            "Bytes written to recording files.",
            &[(String::new(), get(&self.bytes_written))],
        );
        metric(
            "recorder_frames_dropped_total",
            "counter",
            "Frames dropped.",
            &[(String::new(), get(&self.frames_dropped))],
        );
        metric(
            "recorder_frames_lost_total",
            "counter",
            "Frames lost to unrepaired network loss (never received).",
            &[(String::new(), get(&self.frames_lost))],
        );
        metric(
            "recorder_sfu_filler_frames_total",
            "counter",
            "Frames the SFU made up (blank keyframes, silence at close and mute), not recorded.",
            &[(String::new(), get(&self.sfu_filler_frames))],
        );
        metric(
            "recorder_plis_requested_total",
            "counter",
            "Keyframe requests (PLI).",
            &[(String::new(), get(&self.plis_requested))],
        );
        metric(
            "recorder_signal_reconnects_total",
            "counter",
            "Signal connections to LiveKit that dropped and were resumed (or retried).",
            &[(String::new(), get(&self.signal_reconnects))],
        );
        let restarts = [
            ("{actor=\"room\"}".to_owned(), get(&self.restarts_room)),
            ("{actor=\"participant\"}".to_owned(), get(&self.restarts_participant)),
            ("{actor=\"track_writer\"}".to_owned(), get(&self.restarts_track)),
        ];
        metric("recorder_actor_restarts_total", "counter", "Actor restarts by actor kind.", &restarts);
        metric(
            "recorder_storage_failures_total",
            "counter",
            "Recordings failed because the disk was full or not writable.",
            &[(String::new(), get(&self.storage_failures))],
        );
        let uploads = [
            ("{result=\"ok\"}".to_owned(), get(&self.uploads_ok)),
            ("{result=\"failed\"}".to_owned(), get(&self.uploads_failed)),
        ];
        metric("recorder_uploads_total", "counter", "Files uploaded to S3 by result.", &uploads);
        let name = "recorder_upload_duration_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time from a file's first upload attempt to its verified object.\n# TYPE {name} summary"
        );
        let _ = writeln!(s, "{name}_sum {:.6}", get(&self.upload_micros) as f64 / 1e6);
        let _ = writeln!(s, "{name}_count {}", get(&self.uploads_ok));
        let callbacks = [
            ("{result=\"ok\"}".to_owned(), get(&self.callbacks_ok)),
            ("{result=\"failed\"}".to_owned(), get(&self.callbacks_failed)),
        ];
        let name = "recorder_callbacks_total";
        let _ =
            writeln!(s, "# HELP {name} Result callbacks (WEBHOOK_URLS) by result.\n# TYPE {name} counter");
        for (labels, v) in callbacks {
            let _ = writeln!(s, "{name}{labels} {v}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.restarts_participant, 2);
        Metrics::add(&m.signal_reconnects, 1);
        let text = m.render(3);
        assert!(text.contains("recorder_signal_reconnects_total 1\n"), "{text}");
        assert!(text.contains("recorder_active_recordings 3\n"), "{text}");
        assert!(text.contains("recorder_actor_restarts_total{actor=\"participant\"} 2\n"), "{text}");
        assert!(text.contains("# TYPE recorder_bytes_written_total counter\n"), "{text}");
        m.record_upload(true, 1.5);
        m.record_upload(false, 0.0);
        m.record_callback(true);
        let text = m.render(0);
        assert!(text.contains("recorder_uploads_total{result=\"ok\"} 1\n"), "{text}");
        assert!(text.contains("recorder_uploads_total{result=\"failed\"} 1\n"), "{text}");
        assert!(text.contains("recorder_upload_duration_seconds_sum 1.500000\n"), "{text}");
        assert!(text.contains("recorder_upload_duration_seconds_count 1\n"), "{text}");
        assert!(text.contains("recorder_callbacks_total{result=\"ok\"} 1\n"), "{text}");
    }
}
