//! The supervisor writes each part's manifest ([`crate::storage::manifest`]): when the part
//! closes, and again for every part still on disk when the recording's status leaves the live
//! states (ended, uploading, complete, failed), so the manifest says how the recording ended.

use super::SupervisorState;
use crate::ids::RecordingId;
use crate::storage::manifest;

impl SupervisorState {
    /// Writes the manifest of part `part`'s files, or of every local file when `part` is `None`.
    pub(super) fn write_manifests(&self, id: &RecordingId, part: Option<u32>) {
        let Some(e) = self.recs.get(id) else { return };
        let files = match part {
            Some(p) => e.parts.get(&p).map(|v| v.files.clone()).unwrap_or_default(),
            None => e.local_files(),
        };
        for f in files.iter().filter(|f| !e.removed.contains(f)) {
            if let Err(err) = manifest::write(f, &e.info) {
                let path = manifest::path_for(f);
                tracing::warn!(recording = %id, path = %path.display(), "failed to write the manifest: {err}");
            }
        }
    }
}
