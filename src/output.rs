//! A recording part on local disk: [`RecordingPart`] runs a media session into a
//! [`PartFile`], which appends what the session produces, makes it durable at flush points, and
//! applies the container's patches on a clean close.
//!
//! Crash tolerance comes from the containers (unknown-size Matroska segments, fragmented MP4,
//! Ogg pages); this file only decides when bytes reach the disk: `flush` writes the buffer and
//! calls `sync_data`, so after a crash the file holds everything up to the last flush point.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::collections::VecDeque;

use crate::media::mux::Patch;
use crate::media::session::{Outcome, Session, SessionConfig, SessionStats};
use crate::media::FrameIn;

/// What [`repair_part_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repair {
    /// Length found.
    pub before: u64,
    /// Length kept (a torn last fragment or page is cut off).
    pub after: u64,
}

/// Makes a part file that was being written when the process died a valid file: cuts a torn
/// last MP4 fragment or Ogg page (Matroska is valid at any length). Reads only unit headers,
/// so a multi-GiB file costs a few reads per fragment. Unknown extensions are left alone.
pub fn repair_part_file(path: &Path) -> io::Result<Repair> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let before = f.metadata()?.len();
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    let Some(kind) = crate::media::mux::ContainerKind::from_extension(ext) else {
        return Ok(Repair { before, after: before });
    };
    let after = crate::media::mux::recover::walk_units(kind, before, |off| {
        f.seek(SeekFrom::Start(off))?;
        let mut head = Vec::with_capacity(crate::media::mux::recover::UNIT_HEADER_MAX);
        (&mut f).take(crate::media::mux::recover::UNIT_HEADER_MAX as u64).read_to_end(&mut head)?;
        Ok::<_, io::Error>(head)
    })?;
    if after < before {
        f.set_len(after)?;
        f.sync_all()?;
    }
    Ok(Repair { before, after })
}

/// An open part file.
#[derive(Debug)]
pub struct PartFile {
    path: PathBuf,
    out: BufWriter<File>,
    written: u64,
}

impl PartFile {
    /// Creates the file (and its parent directories); fails if it already exists, so a
    /// recording never overwrites another.
    pub fn create(path: &Path) -> io::Result<PartFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        // 64 KiB: a flush point comes at least every second anyway, and this buffer is most of
        // what one recording costs in memory
        Ok(PartFile { path: path.to_path_buf(), out: BufWriter::with_capacity(64 * 1024, file), written: 0 })
    }

    /// Creates the file at `path`, or, when that name is taken (two recordings whose names
    /// render and sanitize to the same path), at `<stem>-<tag>.<ext>`, then
    /// `<stem>-<tag>-2.<ext>`, ...: a recording never writes into or loses to another's file.
    pub fn create_unique(path: &Path, tag: &str) -> io::Result<PartFile> {
        let mut candidate = path.to_path_buf();
        for n in 1..=MAX_NAME_TRIES {
            match PartFile::create(&candidate) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    tracing::info!(path = %candidate.display(), "file name taken; adding a suffix");
                    candidate = suffixed(path, tag, n + 1);
                }
                other => return other,
            }
        }
        Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{}: no free name", path.display())))
    }

    /// Appends bytes (buffered; a full buffer is written out off the runtime, see
    /// [`off_runtime`]).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.out.buffer().len() + bytes.len() > self.out.capacity() {
            off_runtime(|| self.out.write_all(bytes))?;
        } else {
            self.out.write_all(bytes)?;
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the buffer out and asks the OS to make it durable (off the runtime, see
    /// [`off_runtime`]).
    pub fn flush(&mut self) -> io::Result<()> {
        off_runtime(|| {
            #[cfg(feature = "testing")]
            failpoint::wait(&self.path);
            self.out.flush()?;
            self.out.get_ref().sync_data()
        })
    }

    /// Bytes appended so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was appended.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Clean close: flushes, applies patches that fall inside the file, syncs.
    pub fn close(mut self, patches: &[Patch]) -> io::Result<PathBuf> {
        let written = self.written;
        off_runtime(|| {
            self.out.flush()?;
            let file = self.out.get_mut();
            for p in patches {
                if p.offset + p.bytes.len() as u64 <= written {
                    file.seek(SeekFrom::Start(p.offset))?;
                    file.write_all(&p.bytes)?;
                }
            }
            file.sync_all()
        })?;
        Ok(self.path)
    }
}

/// Runs `f`, which may wait for the disk, without holding up the async runtime's other tasks:
/// on a multi-thread runtime the worker first hands its other tasks to another thread
/// (`tokio::task::block_in_place`), so a stalled disk stalls only the recording that writes to
/// it; elsewhere (a current-thread runtime, no runtime) `f` runs as it is. Used where the
/// disk is touched (a buffer written out, a flush point's `sync_data`, a close), about
/// twice a second per recording, not for each frame.
fn off_runtime<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Test hook: a disk that stalls.
#[cfg(feature = "testing")]
pub mod failpoint {
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    static STALLS: Mutex<Vec<(String, Instant)>> = Mutex::new(Vec::new());

    /// Flush points of part files whose path contains `needle` block for `duration` from now
    /// (as `sync_data` does on a disk that stalls).
    pub fn stall_flushes(needle: &str, duration: Duration) {
        let mut s = STALLS.lock().unwrap_or_else(|e| e.into_inner());
        s.retain(|(n, _)| n != needle);
        s.push((needle.to_owned(), Instant::now() + duration));
    }

    /// Blocks while a stall for `path` lasts.
    pub(super) fn wait(path: &Path) {
        let path = path.to_string_lossy();
        loop {
            let until = {
                let s = STALLS.lock().unwrap_or_else(|e| e.into_inner());
                s.iter().filter(|(n, _)| path.contains(n.as_str())).map(|(_, u)| *u).max()
            };
            let left = until.map_or(Duration::ZERO, |u| u.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// Names tried by [`PartFile::create_unique`].
const MAX_NAME_TRIES: u32 = 64;

/// `dir/stem.ext` -> `dir/stem-tag.ext` (n = 2) or `dir/stem-tag-{n-1}.ext` (n > 2).
fn suffixed(path: &Path, tag: &str, n: u32) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match n {
        2 => format!("{stem}-{tag}"),
        _ => format!("{stem}-{tag}-{}", n - 1),
    };
    match path.extension() {
        Some(ext) => path.with_file_name(format!("{name}.{}", ext.to_string_lossy())),
        None => path.with_file_name(name),
    }
}

/// One recording part: a media session writing into a part file. Frames in; bytes reach the
/// disk at the session's flush points (durable there); a clean close applies the container's
/// patches.
#[derive(Debug)]
pub struct RecordingPart {
    session: Session,
    file: PartFile,
    out: Vec<u8>,
    /// (file length, frames complete) at every flush point, newest last; bounded.
    flushes: VecDeque<(u64, u64)>,
}

/// Flush points remembered by [`RecordingPart::flushes`].
const MAX_FLUSH_MARKS: usize = 4096;

impl RecordingPart {
    /// Creates the file at `path` and a session for it.
    pub fn create(path: &Path, cfg: SessionConfig) -> io::Result<RecordingPart> {
        RecordingPart::with_file(PartFile::create(path)?, cfg)
    }

    /// Like [`RecordingPart::create`], with a unique name when `path` is taken (see
    /// [`PartFile::create_unique`]); [`RecordingPart::path`] is the name used.
    pub fn create_unique(path: &Path, tag: &str, cfg: SessionConfig) -> io::Result<RecordingPart> {
        let session = Session::new(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let file = PartFile::create_unique(path, tag)?;
        Ok(RecordingPart { session, file, out: Vec::new(), flushes: VecDeque::new() })
    }

    fn with_file(file: PartFile, cfg: SessionConfig) -> io::Result<RecordingPart> {
        let session = Session::new(cfg).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RecordingPart { session, file, out: Vec::new(), flushes: VecDeque::new() })
    }

    /// The part's file.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Takes one frame of track `track`; writes what the session produced.
    pub fn push(&mut self, track: usize, frame: &FrameIn<'_>) -> io::Result<Outcome> {
        let outcome = self.session.push(track, frame, &mut self.out);
        self.write_out(outcome)?;
        Ok(outcome)
    }

    /// Lets time pass (call a few times a second, and when no frames come).
    pub fn poll(&mut self, now_arrival_ns: u64) -> io::Result<Outcome> {
        let outcome = self.session.poll(now_arrival_ns, &mut self.out);
        self.write_out(outcome)?;
        Ok(outcome)
    }

    /// Clean close: the last frames, the trailer, the patches. Returns the path and counters.
    pub fn finish(mut self) -> io::Result<(PathBuf, SessionStats)> {
        let patches = self.session.finish(&mut self.out);
        self.file.append(&self.out)?;
        let path = self.file.close(&patches)?;
        Ok((path, self.session.stats()))
    }

    /// The session's counters so far.
    pub fn stats(&self) -> SessionStats {
        self.session.stats()
    }

    /// Bytes appended to the file so far.
    pub fn len(&self) -> u64 {
        self.file.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    /// File time (ns) of the last frame written.
    pub fn last_written_ns(&self) -> Option<u64> {
        self.session.last_written_ns()
    }

    /// (file length, frames complete) at the most recent flush points, oldest first.
    pub fn flushes(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.flushes.iter().copied()
    }

    fn write_out(&mut self, outcome: Outcome) -> io::Result<()> {
        self.file.append(&self.out)?;
        self.out.clear();
        if outcome.flush {
            self.file.flush()?;
            if self.flushes.len() == MAX_FLUSH_MARKS {
                self.flushes.pop_front();
            }
            self.flushes.push_back((self.file.len(), self.session.stats().frames_at_last_flush));
        }
        Ok(())
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_a_unique_suffix() {
        let dir = tempfile::tempdir().unwrap();
        let want = dir.path().join("r/alice-1.webm");
        let a = PartFile::create_unique(&want, "RC_a").unwrap();
        let b = PartFile::create_unique(&want, "RC_b").unwrap();
        let c = PartFile::create_unique(&want, "RC_b").unwrap();
        assert_eq!(a.path(), want);
        assert_eq!(b.path(), dir.path().join("r/alice-1-RC_b.webm"));
        assert_eq!(c.path(), dir.path().join("r/alice-1-RC_b-2.webm"));
    }
}
