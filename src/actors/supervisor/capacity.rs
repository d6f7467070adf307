//! The supervisor's admission policy: a start is refused while the disk that holds the
//! recordings is full (507) or when `MAX_CONCURRENT_RECORDINGS` recordings are live (503).
//! The disk is probed (a 64 KiB write, fsync, delete, in the directory where writing failed)
//! only after a recording failed for lack of space, at most once per second, so the normal start
//! path costs nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use super::SupervisorState;
use crate::recording::RecorderError;

/// Bytes the probe writes.
const PROBE_BYTES: usize = 64 * 1024;
/// Probe results are reused this long.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Where writing last failed for storage reasons, and the last probe of it.
#[derive(Debug, Default)]
pub(super) struct StorageProbe {
    failed_in: Option<std::path::PathBuf>,
    last: Option<(Instant, Option<String>)>,
}

impl StorageProbe {
    /// A recording failed writing in `dir`.
    pub(super) fn failed(&mut self, dir: std::path::PathBuf) {
        self.failed_in = Some(dir);
        self.last = None;
    }
}

impl SupervisorState {
    /// `Err` when a new recording must not start now.
    pub(super) fn admit(&mut self) -> Result<(), RecorderError> {
        if let Some(problem) = self.storage_problem() {
            return Err(RecorderError::InsufficientStorage(problem));
        }
        if let Some(max) = self.settings.room.recording.max_concurrent {
            let live = self.recs.values().filter(|e| e.info.status.is_live()).count();
            if live >= max {
                return Err(RecorderError::Unavailable(format!(
                    "at capacity: {live} recordings are live (MAX_CONCURRENT_RECORDINGS={max})"
                )));
            }
        }
        Ok(())
    }

    /// Why the recordings directory cannot take a new recording, if it cannot: only looked at
    /// after a recording failed for storage reasons (then re-probed at most once a second until
    /// a probe succeeds).
    pub(super) fn storage_problem(&mut self) -> Option<String> {
        let dir = self.probe.failed_in.clone()?;
        if let Some((at, result)) = &self.probe.last {
            if at.elapsed() < PROBE_EVERY {
                return result.clone();
            }
        }
        let result = probe(&dir).err().map(|e| format!("disk full or not writable ({}): {e}", dir.display()));
        if result.is_none() {
            tracing::info!(dir = %dir.display(), "recordings directory writable again");
            self.probe.failed_in = None;
        }
        self.probe.last = Some((Instant::now(), result.clone()));
        result
    }
}

fn probe(dir: &std::path::Path) -> std::io::Result<()> {
    let path = dir.join(".recorder-probe");
    let result = std::fs::File::create(&path).and_then(|mut f| {
        f.write_all(&[0u8; PROBE_BYTES])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&path);
    result
}
