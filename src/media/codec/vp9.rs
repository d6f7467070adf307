//! VP9 from the bitstream (VP9 Bitstream Specification v0.6): keyframes and picture size from
//! the uncompressed header (§6.2) of the first frame of a (super)frame (Annex B). Pure, and
//! total on untrusted bytes: short or malformed frames give `false` / `None`, never a panic.

use super::h264::BitReader;
use super::VideoParams;

/// `frame_sync_code` (§6.2.1).
const SYNC_CODE: u64 = 0x49_83_42;
/// `color_space` value for RGB (§7.2.2).
const CS_RGB: u64 = 7;

/// What the start of an uncompressed header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    keyframe: bool,
    width: u32,
    height: u32,
}

/// The first frame of `data`: the whole of it, or the first frame listed in a superframe
/// index (Annex B.3: a marker byte `0b110xxxxx` at both ends of the index).
pub fn first_frame(data: &[u8]) -> &[u8] {
    let Some(&marker) = data.last() else {
        return data;
    };
    if marker & 0xe0 != 0xc0 {
        return data;
    }
    let frames = usize::from(marker & 7) + 1;
    let size_bytes = usize::from((marker >> 3) & 3) + 1;
    let index_len = 2 + size_bytes * frames;
    let Some(index_start) = data.len().checked_sub(index_len) else {
        return data;
    };
    if data.get(index_start) != Some(&marker) {
        return data;
    }
    let Some(size) = data.get(index_start + 1..index_start + 1 + size_bytes) else {
        return data;
    };
    let size = size.iter().rev().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    data.get(..size.min(index_start)).unwrap_or(data)
}

/// Parses the uncompressed header up to `frame_size()` (§6.2); `None` when malformed.
/// Non-keyframes report a zero size.
fn parse_header(frame: &[u8]) -> Option<Header> {
    let mut r = BitReader::new(frame);
    (r.bits(2)? == 2).then_some(())?; // frame_marker
    let low = r.bits(1)?;
    let profile = (r.bits(1)? << 1) | low;
    if profile == 3 {
        (r.bits(1)? == 0).then_some(())?; // reserved_zero
    }
    let not_key = Header { keyframe: false, width: 0, height: 0 };
    if r.bit()? {
        return Some(not_key); // show_existing_frame
    }
    let frame_type = r.bits(1)?;
    let _show_frame = r.bit()?;
    let _error_resilient_mode = r.bit()?;
    if frame_type != 0 {
        return Some(not_key);
    }
    (r.bits(24)? == SYNC_CODE).then_some(())?;
    skip_color_config(&mut r, profile)?;
    // frame_size() (§6.2.5)
    let width = r.bits32(16)? + 1;
    let height = r.bits32(16)? + 1;
    Some(Header { keyframe: true, width, height })
}

/// `color_config()` (§6.2.2): bit depth, color space, range and subsampling; nothing kept.
fn skip_color_config(r: &mut BitReader<'_>, profile: u64) -> Option<()> {
    if profile >= 2 {
        let _ten_or_twelve_bit = r.bit()?;
    }
    let color_space = r.bits(3)?;
    let odd_profile = profile == 1 || profile == 3;
    if color_space != CS_RGB {
        let _color_range = r.bit()?;
        if odd_profile {
            let _subsampling = r.bits(2)?;
            (r.bits(1)? == 0).then_some(())?; // reserved_zero
        }
    } else if odd_profile {
        (r.bits(1)? == 0).then_some(())?; // reserved_zero
    }
    Some(())
}

/// Whether the (first frame of the) frame is a keyframe: `frame_type` = KEY_FRAME with a valid
/// sync code, not a `show_existing_frame`.
pub fn is_keyframe(frame: &[u8]) -> bool {
    parse_header(first_frame(frame)).is_some_and(|h| h.keyframe)
}

/// Picture size from a keyframe's `frame_size()`; `None` for other frames.
pub fn params(frame: &[u8]) -> Option<VideoParams> {
    let h = parse_header(first_frame(frame))?;
    h.keyframe.then_some(VideoParams { width: h.width, height: h.height, codec_private: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ivf;
    use proptest::prelude::*;

    /// Profile 0 keyframe header: marker, profile 0, show_existing 0, key, show, !err,
    /// sync code, color_space 2 (BT.709), range 0, then 320x240.
    fn key_320x240() -> Vec<u8> {
        // bits: 10 0 0 0 0 1 0 | 0x49 0x83 0x42 | 010 0 | 319 (16) | 239 (16)
        vec![0x82, 0x49, 0x83, 0x42, 0x40, 0x13, 0xf0, 0x0e, 0xf0, 0x00]
    }

    #[test]
    fn header_table() {
        let key = key_320x240();
        let mut bad_sync = key.clone();
        bad_sync[2] = 0x84;
        type Case<'a> = (&'a [u8], bool, Option<(u32, u32)>);
        let cases: &[Case] = &[
            (&key, true, Some((320, 240))),
            (&key[..7], false, None),
            (&bad_sync, false, None),
            (&[0x86, 0x00], false, None),             // inter frame
            (&[0x88, 0x00], false, None),             // show_existing_frame
            (&[0x02, 0x49, 0x83, 0x42], false, None), // bad frame_marker
            (&[], false, None),
        ];
        for (frame, key, size) in cases {
            assert_eq!(is_keyframe(frame), *key, "{frame:02x?}");
            assert_eq!(params(frame).map(|p| (p.width, p.height)), *size, "{frame:02x?}");
        }
    }

    #[test]
    fn profile_1_reads_subsampling() {
        // marker 10, profile low 1 high 0, show_existing 0, key 0, show 1, err 0 → 0xa2;
        // sync; color_space 2, range 0, ss 00, reserved 0 (7 bits), then 16x16 (15, 15).
        let f = [0xa2, 0x49, 0x83, 0x42, 0x40, 0x00, 0x1e, 0x00, 0x1e, 0x00];
        assert_eq!(params(&f).map(|p| (p.width, p.height)), Some((16, 16)));
    }

    #[test]
    fn superframe_uses_first_frame() {
        let key = key_320x240();
        let inter = [0x86, 0x00, 0x00];
        // index: marker 0b11000_001 (1-byte sizes, 2 frames), sizes, marker.
        let marker = 0xc1;
        let mut sf = key.clone();
        sf.extend_from_slice(&inter);
        sf.extend_from_slice(&[marker, key.len() as u8, inter.len() as u8, marker]);
        assert_eq!(first_frame(&sf), &key[..]);
        assert!(is_keyframe(&sf));
        let mut sf2 = inter.to_vec();
        sf2.extend_from_slice(&key);
        sf2.extend_from_slice(&[marker, inter.len() as u8, key.len() as u8, marker]);
        assert!(!is_keyframe(&sf2));
        // A size larger than the data is clamped, not trusted.
        assert_eq!(first_frame(&[0x00, 0xc0, 0xff, 0xc0]), &[0x00]);
    }

    #[test]
    fn fixture_keyframes_and_size() {
        let s = ivf::read(include_bytes!("../../assets/vp9.ivf")).unwrap();
        assert_eq!(&s.fourcc, b"VP90");
        assert_eq!(s.frames.len(), 120);
        let keys: Vec<usize> = (0..s.frames.len()).filter(|&i| is_keyframe(&s.frames[i].data)).collect();
        assert_eq!(keys, [0, 30, 60, 61, 90]); // ffprobe agrees: 61 follows the white flash
        let p = params(&s.frames[0].data).unwrap();
        assert_eq!((p.width, p.height, p.codec_private), (320, 240, None));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = is_keyframe(&data);
            let _ = params(&data);
            let _ = first_frame(&data);
        }
    }
}
