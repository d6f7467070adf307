//! The supervisor's history of ended recordings: a recording that ends (`complete` or
//! `failed`) is journaled whole ([`Event::Ended`]) and stays in the table; the retention
//! (`HISTORY_MAX_RECORDINGS`, `HISTORY_MAX_AGE`, [`Retention`](crate::storage::history::Retention))
//! drops the oldest ended first, from the table and from the journal. At start-up the history
//! comes back as it was journaled: never resumed, its files not touched.

use std::collections::BTreeMap;

use super::{Entry, SupervisorState};
use crate::ids::RecordingId;
use crate::lifecycle::Lifecycle;
use crate::recording::{self, PartInfo};
use crate::storage::journal::{EndedRecording, Event};

impl SupervisorState {
    /// Journals the ended recording `id` as history (its JSON now, when it ended at `at_ms`),
    /// adds it to the retention order and applies the retention.
    pub(super) fn remember_ended(&mut self, id: &RecordingId, at_ms: u64) {
        let Some(e) = self.recs.get(id) else { return };
        let ended = EndedRecording { spec: e.spec.clone(), info: e.info.clone(), at_ms };
        self.journal(Event::Ended(Box::new(ended)));
        self.ended.push_back((id.to_owned(), at_ms));
        self.expire_history(recording::unix_ms_now());
    }

    /// When `id` ended, if the journal's history has it (a restart keeps the original time).
    pub(super) fn ended_at_ms(&self, id: &RecordingId) -> Option<u64> {
        self.log.as_ref().and_then(|l| l.history().get(id)).map(|h| h.at_ms)
    }

    /// Drops the oldest ended recordings the retention does not keep at `now_ms`. One still
    /// delivering its result callbacks stays until they end (it needs its entry); the ones
    /// after it are not held up by it.
    pub(super) fn expire_history(&mut self, now_ms: u64) {
        let retention = self.settings.room.recording.history;
        loop {
            let pending = |id: &RecordingId| self.recs.get(id).is_some_and(|e| e.callbacks_pending > 0);
            let Some(pos) = self.ended.iter().position(|(id, _)| !pending(id)) else { break };
            let at_ms = self.ended[pos].1;
            if !retention.drops_oldest(self.ended.len(), at_ms, now_ms) {
                break;
            }
            let Some((id, _)) = self.ended.remove(pos) else { break };
            tracing::debug!(recording = %id, "dropped from the history (retention)");
            self.recs.remove(&id);
            if let Some(log) = self.log.as_mut() {
                if let Err(e) = log.expire(&id) {
                    tracing::error!("{e}");
                }
            }
        }
    }

    /// Start-up: the ended recordings of the journal's history that have no job left (their
    /// callbacks are done), as they were when they ended.
    pub(super) fn restore_history(&mut self) {
        let Some(log) = self.log.as_ref() else { return };
        let mut restored: Vec<EndedRecording> =
            log.history().values().filter(|h| !log.jobs().contains_key(&h.info.id)).cloned().collect();
        // oldest first from the start: a retention applied during recovery drops the oldest
        restored.sort_by(|a, b| (a.at_ms, &a.info.id).cmp(&(b.at_ms, &b.info.id)));
        for h in restored {
            let id = h.info.id.clone();
            self.ended.push_back((id.clone(), h.at_ms));
            self.recs.insert(id, ended_entry(h, self.settings.uploader.is_some()));
        }
    }

    /// After the start-up: the retention order sorted by end time, and applied.
    pub(super) fn settle_history(&mut self) {
        self.ended.make_contiguous().sort_by_key(|(id, at)| (*at, id.clone()));
        self.expire_history(recording::unix_ms_now());
    }
}

/// The table entry of a recording restored from the history: ended, notified, its parts as
/// journaled.
pub(super) fn ended_entry(h: EndedRecording, uploads: bool) -> Entry {
    let media = h.info.bytes > 0 || h.info.duration_s > 0.0;
    let life = Lifecycle::recovered(h.info.status, media, h.info.error.clone(), uploads);
    let parts: BTreeMap<u32, PartInfo> = h.info.parts.iter().map(|p| (p.part, p.clone())).collect();
    let mut entry = Entry::new(h.info, h.spec, life);
    entry.parts = parts;
    entry.notified = true;
    entry
}
