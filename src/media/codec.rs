//! Codec knowledge from the bitstream: keyframes, picture size, and the configuration records
//! containers need (`avcC`, `av1C`). One file per codec; all pure, all total on any input
//! (malformed bytes give `None` or `false`, never a panic).

pub mod av1;
pub mod filler;
pub mod h264;
pub mod opus;
pub mod vp8;
pub mod vp9;

use super::Codec;

/// What a keyframe tells us about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoParams {
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// `avcC` (H.264) or `av1C` (AV1) configuration record; `None` for VP8/VP9.
    pub codec_private: Option<Vec<u8>>,
}

/// Whether `frame` (as depacketized: Annex-B for H.264, OBUs for AV1) is a keyframe
/// that a decoder can start from.
pub fn is_keyframe(codec: Codec, frame: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => vp8::is_keyframe(frame),
        Codec::Vp9 => vp9::is_keyframe(frame),
        Codec::H264 => h264::is_keyframe(frame),
        Codec::Av1 => av1::is_keyframe(frame),
        Codec::Opus => true,
    }
}

/// Picture size and configuration record from a keyframe; `None` when the frame is not a
/// keyframe or is malformed.
pub fn video_params(codec: Codec, frame: &[u8]) -> Option<VideoParams> {
    match codec {
        Codec::Vp8 => vp8::params(frame),
        Codec::Vp9 => vp9::params(frame),
        Codec::H264 => h264::params(frame),
        Codec::Av1 => av1::params(frame),
        Codec::Opus => None,
    }
}

/// Converts a frame to the form containers store, appending to `out` (cleared first):
/// H.264 Annex-B → 4-byte length-prefixed NAL units (access unit delimiters dropped);
/// AV1 → OBUs without temporal delimiters; others unchanged.
pub fn to_stored(codec: Codec, frame: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        Codec::H264 => h264::annexb_to_avcc(frame, out),
        Codec::Av1 => av1::strip_temporal_delimiters(frame, out),
        Codec::Vp8 | Codec::Vp9 | Codec::Opus => out.extend_from_slice(frame),
    }
}
