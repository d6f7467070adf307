//! Frames an SFU makes up that no publisher sent.
//!
//! When a subscription closes (unpublish, the publisher leaves) livekit-server flushes the
//! subscriber's track with about 0.2 s of tiny keyframes (an 8x8 VP8 frame, a 2x2 H.264
//! SPS + PPS + IDR) or Opus silence, and on an audio mute it sends 1 s of Opus silence, so
//! that players clear their last picture and comfort noise. In a recording they are foreign
//! frames: a resolution change to 8x8 at the end of a file, a second SPS in an MP4, audio the
//! publisher never sent. They are recognised here by their exact bytes (they are constants of
//! the server), so a real publisher's frame is never mistaken for one.

use super::h264;
use crate::media::Codec;

/// The 8x8 VP8 keyframe.
const VP8_8X8: [u8; 31] = [
    0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x08, 0x00, 0x08, 0x00, 0x00, 0x47, 0x08, 0x85, 0x85, 0x88, 0x85,
    0x84, 0x88, 0x02, 0x02, 0x00, 0x0c, 0x0d, 0x60, 0x00, 0xfe, 0xff, 0xab, 0x50, 0x80,
];

/// The SPS of the 2x2 H.264 keyframe (its PPS and IDR always come with it).
const H264_2X2_SPS: [u8; 24] = [
    0x67, 0x42, 0xc0, 0x1f, 0x0f, 0xd9, 0x1f, 0x88, 0x88, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00,
    0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc9, 0x20,
];

/// The IDR slice of the 2x2 H.264 keyframe.
const H264_2X2_IDR: [u8; 10] = [0x65, 0x88, 0x84, 0x0a, 0xf2, 0x62, 0x80, 0x00, 0xa7, 0xbe];

/// Head of the Opus silence frame (a 20 ms CELT frame), followed by zero padding to 80 bytes.
const OPUS_SILENCE_HEAD: [u8; 3] = [0xf8, 0xff, 0xfe];

/// Length of the Opus silence frame with its zero padding.
pub const OPUS_SILENCE_LEN: usize = 80;

/// Whether `frame` (as depacketized) is one of the SFU's made-up frames for `codec`.
pub fn is_sfu_filler(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => frame == VP8_8X8,
        Codec::H264 => h264::nal_units(frame).any(|(_, nal)| nal == H264_2X2_SPS || nal == H264_2X2_IDR),
        Codec::Opus => {
            frame.len() == OPUS_SILENCE_LEN
                && frame.starts_with(&OPUS_SILENCE_HEAD)
                && frame[OPUS_SILENCE_HEAD.len()..].iter().all(|&b| b == 0)
        }
        Codec::Vp9 | Codec::Av1 => false,
    }
}

/// The filler frame the SFU sends for `codec` (for the simulator, which behaves the same way),
/// as one depacketized frame; `None` for codecs it sends none for.
pub fn sfu_filler(codec: Codec) -> Option<Vec<u8>> {
    Some(match codec {
        Codec::Vp8 => VP8_8X8.to_vec(),
        Codec::H264 => {
            let mut au = Vec::new();
            for nal in [&H264_2X2_SPS[..], &H264_2X2_PPS[..], &H264_2X2_IDR[..]] {
                au.extend_from_slice(&[0, 0, 0, 1]);
                au.extend_from_slice(nal);
            }
            au
        }
        Codec::Opus => {
            let mut f = vec![0u8; OPUS_SILENCE_LEN];
            f[..OPUS_SILENCE_HEAD.len()].copy_from_slice(&OPUS_SILENCE_HEAD);
            f
        }
        Codec::Vp9 | Codec::Av1 => return None,
    })
}

/// The PPS of the 2x2 H.264 keyframe.
const H264_2X2_PPS: [u8; 6] = [0x68, 0x87, 0xcb, 0x83, 0xcb, 0x20];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{is_keyframe, video_params};

    #[test]
    fn fillers_are_recognised_and_real_frames_are_not() {
        for codec in [Codec::Vp8, Codec::H264, Codec::Opus] {
            let f = sfu_filler(codec).unwrap();
            assert!(is_sfu_filler(codec, &f), "{codec}");
        }
        for codec in [Codec::Vp8, Codec::Opus] {
            let mut other = sfu_filler(codec).unwrap();
            *other.last_mut().unwrap() ^= 1;
            assert!(!is_sfu_filler(codec, &other), "{codec}: one byte changed");
        }
        // the 2x2 keyframe is known by its SPS or IDR; a PPS alone is not enough
        let pps_only = [&[0u8, 0, 0, 1][..], &H264_2X2_PPS[..]].concat();
        assert!(!is_sfu_filler(Codec::H264, &pps_only));
        let idr_only = [&[0u8, 0, 1][..], &H264_2X2_IDR[..]].concat();
        assert!(is_sfu_filler(Codec::H264, &idr_only), "with a 3-byte start code too");
        assert!(!is_sfu_filler(Codec::Opus, &[0xf8, 0xff, 0xfe]), "a short CELT frame is real");
        assert!(sfu_filler(Codec::Vp9).is_none());
    }

    #[test]
    fn the_fillers_are_tiny_keyframes() {
        let vp8 = sfu_filler(Codec::Vp8).unwrap();
        assert!(is_keyframe(Codec::Vp8, &vp8));
        let p = video_params(Codec::Vp8, &vp8).unwrap();
        assert_eq!((p.width, p.height), (8, 8));
        let h264 = sfu_filler(Codec::H264).unwrap();
        assert!(is_keyframe(Codec::H264, &h264));
        let p = video_params(Codec::H264, &h264).unwrap();
        assert_eq!((p.width, p.height), (2, 2));
    }

    #[test]
    fn no_frame_of_the_recorded_loops_is_a_filler() {
        use crate::media::source::{annexb, ivf, oggopus};
        let vp8 = ivf::read(include_bytes!("../../assets/vp8.ivf")).unwrap();
        assert!(vp8.frames.iter().all(|f| !is_sfu_filler(Codec::Vp8, &f.data)));
        let h264 = annexb::read(include_bytes!("../../assets/h264.h264"), 30).unwrap();
        assert!(h264.iter().all(|f| !is_sfu_filler(Codec::H264, &f.data)));
        let opus = oggopus::read(include_bytes!("../../assets/opus.ogg")).unwrap();
        assert!(opus.frames.iter().all(|f| !is_sfu_filler(Codec::Opus, &f.data)));
    }
}
