//! What a participant recorder tells the supervisor: [`Progress`] of the current part (file,
//! bytes, duration, tracks) and status changes, and the `bytes written` counter.

use std::path::PathBuf;

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
            frames_lost: 0,
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

    pub(super) fn report(&mut self, status: Option<Status>, files: Vec<PathBuf>) {
        let mut p = self.progress(status, files);
        p.frames_lost = self.take_lost();
        let delta = p.bytes.saturating_sub(self.reported_bytes);
        Metrics::add(&self.metrics().bytes_written, delta);
        self.reported_bytes = self.reported_bytes.max(p.bytes);
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }

    pub(super) fn report_final(&mut self, paths: Vec<PathBuf>, duration_ns: u64) {
        let mut p = self.progress(None, paths);
        p.frames_lost = self.take_lost();
        p.duration_s = duration_ns as f64 / 1e9;
        p.bytes = self.reported_bytes;
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }
}
