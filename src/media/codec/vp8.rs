//! VP8 from the bitstream (RFC 6386): keyframes from the frame tag, picture size from the
//! keyframe header. Pure, and total on untrusted bytes: short or malformed frames give
//! `false` / `None`, never a panic.

use super::VideoParams;

/// The keyframe start code (RFC 6386 §9.1).
const START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// Whether `frame` is a VP8 keyframe: frame tag bit 0 (`key_frame`) is 0, and the 10-byte
/// keyframe header with its start code is present (RFC 6386 §9.1, §19.1).
pub fn is_keyframe(frame: &[u8]) -> bool {
    match frame.get(..10) {
        Some(head) => head[0] & 1 == 0 && head[3..6] == START_CODE,
        None => false,
    }
}

/// Width and height from a keyframe: 14-bit little-endian fields after the start code, the
/// 2 scale bits ignored (RFC 6386 §19.1); `None` for other frames or a zero size.
pub fn params(frame: &[u8]) -> Option<VideoParams> {
    if !is_keyframe(frame) {
        return None;
    }
    let dim = |at: usize| -> Option<u32> {
        let b = frame.get(at..at + 2)?;
        Some(u32::from(u16::from_le_bytes([b[0], b[1]]) & 0x3fff))
    };
    let (width, height) = (dim(6)?, dim(8)?);
    (width > 0 && height > 0).then_some(VideoParams { width, height, codec_private: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ivf;
    use proptest::prelude::*;

    #[test]
    fn keyframe_table() {
        let key = [0x30, 0x12, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00];
        let cases: &[(&[u8], bool)] = &[
            (&key, true),
            (&key[..9], false),
            (&[0x31, 0x12, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00], false),
            (&[0x30, 0x12, 0x00, 0x9d, 0x01, 0x2b, 0x40, 0x01, 0xf0, 0x00], false),
            (&[], false),
        ];
        for (frame, want) in cases {
            assert_eq!(is_keyframe(frame), *want, "{frame:02x?}");
        }
    }

    #[test]
    fn params_table() {
        // 320x240; then 640x480 with both scale bits set (ignored); then a zero width.
        type Case = (&'static [u8], Option<(u32, u32)>);
        let cases: &[Case] = &[
            (&[0x30, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00], Some((320, 240))),
            (&[0x30, 0, 0, 0x9d, 0x01, 0x2a, 0x80, 0xc2, 0xe0, 0xc1], Some((640, 480))),
            (&[0x30, 0, 0, 0x9d, 0x01, 0x2a, 0x00, 0xc0, 0xe0, 0x01], None),
            (&[0x31, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00], None),
        ];
        for (frame, want) in cases {
            let got = params(frame).map(|p| (p.width, p.height));
            assert_eq!(got, *want, "{frame:02x?}");
        }
    }

    #[test]
    fn fixture_keyframes_and_size() {
        let s = ivf::read(include_bytes!("../../assets/vp8.ivf")).unwrap();
        assert_eq!(&s.fourcc, b"VP80");
        let keys: Vec<usize> = (0..s.frames.len()).filter(|&i| is_keyframe(&s.frames[i].data)).collect();
        assert_eq!(keys, [0, 30, 60, 90]);
        let p = params(&s.frames[0].data).unwrap();
        assert_eq!((p.width, p.height, p.codec_private), (320, 240, None));
        assert_eq!(params(&s.frames[1].data), None);
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = is_keyframe(&data);
            let _ = params(&data);
        }
    }
}
