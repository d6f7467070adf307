//! After a crash: how much of a part file is a valid file. Pure; reads the bytes only.
//!
//! - Matroska/WebM: every prefix is valid (unknown-size Segment and Clusters); a block cut in
//!   the middle is skipped by demuxers, so the whole file is kept.
//! - Ogg: whole pages only (a page header names its length); a torn last page is cut off.
//! - Fragmented MP4: whole top-level boxes only, and a `moof` only together with its `mdat`.
//!   A torn `moof` makes ffmpeg reject the entire file ("error reading header"), so recovery
//!   must cut it off.
//!
//! The recorder truncates a part file to [`recoverable_len`] when it finds it unfinished at
//! start-up; after that the file decodes up to its last complete fragment or page.

use super::ContainerKind;

/// Header bytes [`unit_at`] needs to size any unit (an Ogg page header with a full segment
/// table; an MP4 box header with a 64-bit size is 16).
pub const UNIT_HEADER_MAX: usize = 27 + 255;

/// A whole unit (MP4 top-level box, Ogg page) as sized by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Its length in bytes, header included.
    pub len: u64,
    /// Whether the file is valid when it ends after this unit (an MP4 `moof` needs the `mdat`
    /// that follows it).
    pub may_end_file: bool,
}

/// The unit that starts with `head` (up to [`UNIT_HEADER_MAX`] bytes from its start), or
/// `None` when `head` does not start a unit (garbage, or too short to hold the header).
/// Always `None` for Matroska, which needs no unit walk (see [`recoverable_len`]).
pub fn unit_at(kind: ContainerKind, head: &[u8]) -> Option<Unit> {
    match kind {
        ContainerKind::Webm | ContainerKind::Mkv => None,
        ContainerKind::Ogg => {
            if head.len() < 27 || &head[..4] != b"OggS" {
                return None;
            }
            let segments = usize::from(head[26]);
            let table = head.get(27..27 + segments)?;
            let body: u64 = table.iter().map(|&l| u64::from(l)).sum();
            Some(Unit { len: 27 + segments as u64 + body, may_end_file: true })
        }
        ContainerKind::Mp4 => {
            let small = u32::from_be_bytes(head.get(..4)?.try_into().ok()?);
            let len = match small {
                1 => u64::from_be_bytes(head.get(8..16)?.try_into().ok()?),
                0 => return None,
                n => u64::from(n),
            };
            (len >= 8).then(|| Unit { len, may_end_file: head.get(4..8) != Some(b"moof".as_slice()) })
        }
    }
}

/// Walks the units of a file of `total` bytes: `read_head(offset)` returns up to
/// [`UNIT_HEADER_MAX`] bytes from `offset`. Returns the length of the longest valid prefix.
pub fn walk_units<E>(
    kind: ContainerKind,
    total: u64,
    mut read_head: impl FnMut(u64) -> Result<Vec<u8>, E>,
) -> Result<u64, E> {
    if matches!(kind, ContainerKind::Webm | ContainerKind::Mkv) {
        return Ok(total);
    }
    let (mut off, mut good) = (0u64, 0u64);
    while off < total {
        let Some(unit) = unit_at(kind, &read_head(off)?) else { break };
        let Some(end) = off.checked_add(unit.len).filter(|&e| e <= total) else { break };
        off = end;
        if unit.may_end_file {
            good = off;
        }
    }
    Ok(good)
}

/// Length of the longest prefix of `bytes` that is a valid file of `kind`.
pub fn recoverable_len(kind: ContainerKind, bytes: &[u8]) -> usize {
    let head = |off: u64| -> Result<Vec<u8>, std::convert::Infallible> {
        let from = usize::try_from(off).unwrap_or(usize::MAX).min(bytes.len());
        Ok(bytes[from..bytes.len().min(from.saturating_add(UNIT_HEADER_MAX))].to_vec())
    };
    match walk_units(kind, bytes.len() as u64, head) {
        Ok(n) => usize::try_from(n).unwrap_or(bytes.len()),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut b = ((8 + body) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.resize(8 + body, 0);
        b
    }

    #[test]
    fn mp4_keeps_whole_fragments_only() {
        let file = [boxed(b"ftyp", 8), boxed(b"moov", 40), boxed(b"moof", 30), boxed(b"mdat", 100)].concat();
        let fragment_start = 16 + 48;
        assert_eq!(recoverable_len(ContainerKind::Mp4, &file), file.len());
        for cut in fragment_start..file.len() {
            assert_eq!(recoverable_len(ContainerKind::Mp4, &file[..cut]), fragment_start, "cut at {cut}");
        }
        assert_eq!(recoverable_len(ContainerKind::Mp4, &file[..20]), 16);
    }

    #[test]
    fn ogg_keeps_whole_pages_only() {
        let mut page = b"OggS".to_vec();
        page.resize(26, 0);
        page.extend_from_slice(&[2, 255, 10]);
        page.resize(27 + 2 + 265, 7);
        let file = [page.clone(), page.clone()].concat();
        assert_eq!(recoverable_len(ContainerKind::Ogg, &file), file.len());
        assert_eq!(recoverable_len(ContainerKind::Ogg, &file[..file.len() - 1]), page.len());
        assert_eq!(recoverable_len(ContainerKind::Ogg, &file[..30]), 0);
    }

    proptest! {
        #[test]
        fn never_panics_and_stays_in_bounds(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
            for kind in [ContainerKind::Mp4, ContainerKind::Ogg, ContainerKind::Webm] {
                prop_assert!(recoverable_len(kind, &bytes) <= bytes.len());
            }
        }
    }
}
