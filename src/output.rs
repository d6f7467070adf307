//! A recording part on local disk: appends what the media session produces, makes it durable
//! at flush points, and applies the container's patches on a clean close.
//!
//! Crash tolerance comes from the containers (unknown-size Matroska segments, fragmented MP4,
//! Ogg pages); this file only decides when bytes reach the disk: `flush` writes the buffer and
//! calls `sync_data`, so after a crash the file holds everything up to the last flush point.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::media::mux::Patch;

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
        Ok(PartFile { path: path.to_path_buf(), out: BufWriter::with_capacity(256 * 1024, file), written: 0 })
    }

    /// Appends bytes (buffered).
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the buffer out and asks the OS to make it durable.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
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
        self.out.flush()?;
        let file = self.out.get_mut();
        for p in patches {
            if p.offset + p.bytes.len() as u64 <= self.written {
                file.seek(SeekFrom::Start(p.offset))?;
                file.write_all(&p.bytes)?;
            }
        }
        file.sync_all()?;
        Ok(self.path)
    }
}
