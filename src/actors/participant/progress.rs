//! What a participant recorder tells the supervisor: [`Progress`] of the current part (file,
//! bytes, duration, tracks) and status changes, and the `bytes written` counter.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::ParticipantState;
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::track_writer::TrackWriter;
use crate::actors::Progress;
use crate::metrics::Metrics;
use crate::recording::Status;

impl ParticipantState {
    pub(super) fn progress(&self, status: Option<Status>, files: Vec<PathBuf>) -> Progress {
        let (bytes, duration_s) = if self.parts.is_empty() {
            (self.reported_bytes, 0.0)
        } else {
            let written = self.parts.iter().filter_map(|p| p.last_written_ns()).max().unwrap_or(0);
            (self.parts.iter().map(|p| p.len()).sum(), written as f64 / 1e9)
        };
        Progress {
            id: self.args.spec.id.clone(),
            part: self.part_no,
            status,
            tracks: self.tracks.iter().filter(|w| w.subscribed).map(TrackWriter::info).collect(),
            skipped_tracks: self.skipped.clone(),
            files,
            bytes,
            duration_s,
            error: None,
            frames: self.parts.iter().map(|p| p.stats().frames_written).sum(),
            frames_lost: 0,
            frames_dropped: 0,
        }
    }

    /// Frames lost not reported yet (the current part's drops after loss included).
    pub(super) fn take_lost(&mut self) -> u64 {
        let current: u64 = self.parts.iter().map(|p| p.stats().dropped_after_loss).sum();
        let total = self.frames_lost + current;
        let new = total.saturating_sub(self.reported_lost);
        self.reported_lost = self.reported_lost.max(total);
        new
    }

    /// Frames the room dropped for this recording (queue full) not reported yet.
    pub(super) fn take_dropped(&mut self) -> u64 {
        let total = self.args.queue.dropped();
        let new = total.saturating_sub(self.reported_dropped);
        self.reported_dropped = self.reported_dropped.max(total);
        new
    }

    pub(super) fn report(&mut self, status: Option<Status>, files: Vec<PathBuf>) {
        let mut p = self.progress(status, files);
        p.frames_lost = self.take_lost();
        p.frames_dropped = self.take_dropped();
        let received: u64 = self.tracks.iter().map(|w| w.frames).sum();
        if status == Some(Status::Active) {
            self.stall.reset(received, Instant::now());
        }
        p.error = self.stall.notice(received, Instant::now()).or_else(|| {
            (p.frames_dropped > 0).then(|| {
                format!(
                    "writing fell behind: {} frames dropped since the last report (a slow or stalled disk?)",
                    p.frames_dropped
                )
            })
        });
        let delta = p.bytes.saturating_sub(self.reported_bytes);
        Metrics::add(&self.metrics().bytes_written, delta);
        self.reported_bytes = self.reported_bytes.max(p.bytes);
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }

    pub(super) fn report_final(&mut self, paths: Vec<PathBuf>, duration_ns: u64, frames: u64) {
        let mut p = self.progress(None, paths);
        p.frames_lost = self.take_lost();
        p.frames_dropped = self.take_dropped();
        p.frames = frames;
        p.duration_s = duration_ns as f64 / 1e9;
        p.bytes = self.reported_bytes;
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }
}

/// No frame for this long in an open part: the recording says so (its `error` while live).
pub(super) const STALL_AFTER: Duration = Duration::from_secs(5);

/// Watches the frames a recorder receives: "no media for N s" once none arrived for
/// [`STALL_AFTER`]. Pure (time passed in).
#[derive(Debug)]
pub(super) struct StallWatch {
    frames: u64,
    since: Instant,
}

impl StallWatch {
    pub(super) fn new(now: Instant) -> StallWatch {
        StallWatch { frames: 0, since: now }
    }

    /// Starts watching from `now` (a part opened).
    pub(super) fn reset(&mut self, frames: u64, now: Instant) {
        (self.frames, self.since) = (frames, now);
    }

    /// The notice for `frames` received so far at `now`, if media stopped arriving.
    pub(super) fn notice(&mut self, frames: u64, now: Instant) -> Option<String> {
        if frames != self.frames {
            self.reset(frames, now);
            return None;
        }
        let quiet = now.saturating_duration_since(self.since);
        (quiet >= STALL_AFTER).then(|| format!("no media received for {} s", quiet.as_secs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stall_is_noticed_and_cleared() {
        let t0 = Instant::now();
        let mut w = StallWatch::new(t0);
        assert_eq!(w.notice(0, t0 + Duration::from_secs(1)), None);
        let n = w.notice(0, t0 + STALL_AFTER + Duration::from_secs(1)).expect("stalled");
        assert!(n.starts_with("no media received for 6 s"), "{n}");
        assert_eq!(w.notice(5, t0 + STALL_AFTER * 2), None, "frames again: cleared");
        assert_eq!(w.notice(5, t0 + STALL_AFTER * 2 + Duration::from_secs(1)), None);
    }
}
