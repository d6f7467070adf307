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

/// Length of the longest prefix of `bytes` that is a valid file of `kind`.
pub fn recoverable_len(kind: ContainerKind, bytes: &[u8]) -> usize {
    match kind {
        ContainerKind::Webm | ContainerKind::Mkv => bytes.len(),
        ContainerKind::Ogg => ogg_pages_len(bytes),
        ContainerKind::Mp4 => mp4_boxes_len(bytes),
    }
}

/// End of the last complete top-level box, never ending between a `moof` and its `mdat`
/// (ISO/IEC 14496-12 §4.2: 32-bit size, or 1 = 64-bit size follows; 0 = to end of file, which
/// we never write and treat as torn).
fn mp4_boxes_len(bytes: &[u8]) -> usize {
    let (mut off, mut good) = (0usize, 0usize);
    while let Some(size) = box_size(&bytes[off..]) {
        let Some(end) = off.checked_add(size).filter(|&e| e <= bytes.len()) else { break };
        let kind = &bytes[off + 4..off + 8];
        off = end;
        if kind != b"moof" {
            good = off;
        }
    }
    good
}

fn box_size(b: &[u8]) -> Option<usize> {
    let small = u32::from_be_bytes(b.get(..4)?.try_into().ok()?);
    let size = match small {
        1 => u64::from_be_bytes(b.get(8..16)?.try_into().ok()?),
        0 => return None,
        n => u64::from(n),
    };
    usize::try_from(size).ok().filter(|&s| s >= 8)
}

/// End of the last complete Ogg page (RFC 3533 §6: 27-byte header, segment table, body).
fn ogg_pages_len(bytes: &[u8]) -> usize {
    let mut off = 0usize;
    loop {
        let page = &bytes[off..];
        if page.len() < 27 || &page[..4] != b"OggS" {
            return off;
        }
        let segments = usize::from(page[26]);
        let Some(table) = page.get(27..27 + segments) else { return off };
        let body: usize = table.iter().map(|&l| usize::from(l)).sum();
        let len = 27 + segments + body;
        if page.len() < len {
            return off;
        }
        off += len;
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
