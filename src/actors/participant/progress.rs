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
    pub(super) fn progress(&self, status: Option<Status>, file: Option<PathBuf>) -> Progress {
        let (bytes, duration_s) = match &self.part {
            Some(p) => (p.len(), p.last_written_ns().unwrap_or(0) as f64 / 1e9),
            None => (self.reported_bytes, 0.0),
        };
        Progress {
            id: self.args.spec.id.clone(),
            part: self.part_no,
            status,
            tracks: self.tracks.iter().filter(|w| w.subscribed).map(TrackWriter::info).collect(),
            file,
            bytes,
            duration_s,
            error: None,
            frames_lost: 0,
        }
    }

    /// Frames lost not reported yet (the current part's drops after loss included).
    pub(super) fn take_lost(&mut self) -> u64 {
        let current = self.part.as_ref().map_or(0, |p| p.stats().dropped_after_loss);
        let total = self.frames_lost + current;
        let new = total.saturating_sub(self.reported_lost);
        self.reported_lost = self.reported_lost.max(total);
        new
    }

    pub(super) fn report(&mut self, status: Option<Status>, file: Option<PathBuf>) {
        let mut p = self.progress(status, file);
        p.frames_lost = self.take_lost();
        let delta = p.bytes.saturating_sub(self.reported_bytes);
        Metrics::add(&self.metrics().bytes_written, delta);
        self.reported_bytes = self.reported_bytes.max(p.bytes);
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }

    pub(super) fn report_final(&mut self, path: PathBuf, duration_ns: u64) {
        let mut p = self.progress(None, Some(path));
        p.frames_lost = self.take_lost();
        p.duration_s = duration_ns as f64 / 1e9;
        p.bytes = self.reported_bytes;
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
    }
}
