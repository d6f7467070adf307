//! The supervisor's durable side: every accepted recording, opened part and status change goes
//! to the [`JobLog`] before the supervisor acts on it, and at start-up the log is reconciled
//! with the disk and with LiveKit:
//!
//! - a recording that was `pending` or `active` when the process died: its part files are
//!   repaired ([`repair_part_file`]: a torn MP4 fragment or Ogg page is cut) and it resumes
//!   in a new part as soon as the room actor has reconnected and the participant is (still
//!   or again) there; if the participant does not come back within `RESUME_TIMEOUT`, it ends
//!   `complete` with the parts it has;
//! - a recording that was `finalizing`: its files are repaired and it is `complete`;
//! - a recording that had ended with callbacks still to deliver: shown again as it ended (its
//!   journaled history) and its callbacks sent to the URLs that had not accepted them;
//! - a recording that had ended and is in the history: shown again as it ended, never resumed
//!   (`history.rs`; also when its job still says live: the history is written after the end).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ractor::ActorRef;

use super::{Entry, SupervisorMsg, SupervisorState};
use crate::ids::{RecordingId, RoomName};
use crate::lifecycle::{End, Lifecycle, Report};
use crate::output::repair_part_file;
use crate::recording::{self, PartInfo, RecordingInfo, RecordingSpec, Status};
use crate::storage::journal::{Event, Job};

/// A recovered part file larger than this holds media (container headers are far smaller).
const MIN_MEDIA_BYTES: u64 = 1024;

impl SupervisorState {
    /// Appends to the job log (if there is one). A failed append is logged: the recording
    /// goes on, but a crash before the next good append could not recover it.
    pub(super) fn journal(&mut self, ev: Event) {
        if let Some(log) = self.log.as_mut() {
            if let Err(e) = log.record(ev) {
                tracing::error!("{e}");
            }
        }
    }

    /// A recording that was finalizing or uploading when the process died: uploads what is
    /// still local (files already gone were removed after their verified upload, so they are
    /// in S3), then completes as usual; without S3 it ends now (`complete` with media).
    fn upload_after_restart(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId, outputs: Vec<String>) {
        let Some(e) = self.recs.get_mut(id) else { return };
        e.info.outputs = outputs;
        if let Some(up) = self.settings.uploader.clone() {
            let all = e.info.files.clone();
            for f in all.iter().filter(|f| !f.exists()) {
                let url = up.url_for(&up.key_for(f));
                if !e.info.outputs.contains(&url) {
                    e.info.outputs.push(url);
                }
                e.removed.push(f.clone());
            }
            e.info.files = e.local_files();
        }
        match e.info.status {
            Status::Uploading => self.queue_upload(me, id),
            _ => self.report(me, id, Report::Ended(End::Finished)),
        }
    }

    /// Start-up: reconciles the jobs the log knows with the disk; resumes live recordings.
    pub(super) async fn recover(&mut self, me: &ActorRef<SupervisorMsg>) {
        let Some(log) = self.log.as_ref() else { return };
        let jobs: Vec<Job> = log.jobs().values().cloned().collect();
        let history = log.history().clone();
        self.restore_history();
        let mut resume: BTreeMap<RoomName, Vec<(RecordingSpec, u32)>> = BTreeMap::new();
        for job in jobs {
            let id = job.spec.id.clone();
            if let Some(h) = history.get(&id) {
                // ended: as it was then; only its callbacks may be left to do
                let mut entry = super::history::ended_entry(h.clone(), self.settings.uploader.is_some());
                entry.notified = false;
                self.recs.insert(id.clone(), entry);
                self.notify_skipping(me, &id, &job.delivered);
                continue;
            }
            let files: Vec<PathBuf> = job.parts.values().flat_map(|(f, _)| f.iter().cloned()).collect();
            let mut bytes = 0;
            for f in &files {
                match repair_part_file(f) {
                    Ok(r) => {
                        bytes += r.after;
                        if r.after < r.before {
                            tracing::warn!(recording = %id, file = %f.display(), cut = r.before - r.after, "torn end of a part file cut off");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(recording = %id, file = %f.display(), "cannot repair part file: {e}")
                    }
                }
            }
            let mut info = RecordingInfo::pending(&job.spec);
            info.files = files;
            info.bytes = bytes;
            info.error = job.error.clone();
            info.status = job.status;
            let parts: BTreeMap<u32, PartInfo> = job
                .parts
                .iter()
                .map(|(n, (files, at_ms))| {
                    let bytes = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
                    let started_at = (*at_ms > 0).then(|| recording::rfc3339(*at_ms));
                    let ended = job.ended.get(n);
                    let part = PartInfo {
                        part: *n,
                        files: files.clone(),
                        started_at,
                        ended_at: ended.map(|e| recording::rfc3339(e.at_ms)),
                        duration_s: ended.map_or(0.0, |e| e.duration_s),
                        bytes,
                        node: self.cluster.as_ref().map(|c| c.node.id.clone()),
                    };
                    (*n, part)
                })
                .collect();
            // media: a cleanly closed part says how many frames it holds; a part the process
            // died with is judged by its repaired size (a header alone is well under 1 KiB)
            let media = job.parts.keys().any(|n| match job.ended.get(n) {
                Some(e) => e.frames > 0,
                None => parts.get(n).is_some_and(|p| p.bytes > MIN_MEDIA_BYTES),
            });
            let next_part = job.parts.keys().max().map_or(1, |p| p + 1);
            let uploads = self.settings.uploader.is_some();
            let life = Lifecycle::recovered(job.status, media, job.error.clone(), uploads);
            let mut entry = Entry::new(info, job.spec.clone(), life);
            entry.info.duration_s = parts.values().map(|p| p.duration_s).sum();
            entry.info.parts = parts.values().cloned().collect();
            entry.parts = parts;
            match job.status {
                Status::Pending | Status::Active => {
                    tracing::info!(recording = %id, room = %job.spec.room, part = next_part, "resuming after a restart");
                    resume.entry(job.spec.room.clone()).or_default().push((job.spec.clone(), next_part));
                    self.recs.insert(id, entry);
                }
                // the stop was asked for: the files are final now
                Status::Finalizing | Status::Uploading => {
                    self.recs.insert(id.clone(), entry);
                    self.upload_after_restart(me, &id, job.outputs.unwrap_or_default());
                }
                Status::Complete | Status::Failed => {
                    entry.info.outputs = job.outputs.unwrap_or_default();
                    self.recs.insert(id.clone(), entry);
                    self.notify_skipping(me, &id, &job.delivered);
                }
            }
        }
        self.settle_history();
        for (room, list) in resume {
            let list = self.claim_resumed(me, list).await;
            if list.is_empty() {
                continue;
            }
            if let Err(e) = self.room(me, &room, list).await {
                tracing::error!(%room, "cannot resume recordings: {e}");
                self.fail_room(me, &room, &e.to_string());
            }
        }
    }
}
