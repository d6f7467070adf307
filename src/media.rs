//! The media core: encoded frames in, crash-tolerant container bytes out.
//!
//! **Pure and sans-IO.** Nothing in this module opens a file, a socket or a timer, and nothing
//! calls `Instant::now()` or `SystemTime::now()`: arrival times and sender reports are
//! parameters, and every writer appends to a caller-owned `Vec<u8>`. The actor that owns a
//! recording does the I/O (write + flush) whenever [`session::Session`] says a flush point was
//! reached. CI greps this directory for I/O crates.
//!
//! ```text
//! str0m frame (payload, RTP time, keyframe?, contiguous, last SR)
//!    │
//!    ▼
//! timeline::TrackTimeline      RTP u32 ──unwrap──▶ u64 ──SR/arrival──▶ participant ns
//!    │
//!    ▼
//! session::Session             keyframe gate, bounded start hold, bounded interleave,
//!    │                         codec config from the bitstream (codec/*), flush points
//!    ▼
//! mux::Muxer                   WebM / Matroska / fragmented MP4 / Ogg Opus → Vec<u8>
//! ```
//!
//! `source/*` reads the encoded loops made by ffmpeg (IVF, Annex-B H.264, Ogg Opus): the
//! simulator, the demo, the tests and the benchmarks publish from them.

pub mod codec;
pub mod mux;
pub mod session;
pub mod source;
pub mod timeline;

#[cfg(feature = "fuzzing")]
pub mod fuzz;

use std::fmt;

/// The codecs a LiveKit publisher can send that we record without transcoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    /// VP8 (RFC 6386).
    Vp8,
    /// VP9.
    Vp9,
    /// H.264 / AVC; frames arrive as Annex-B access units.
    H264,
    /// AV1; frames arrive as temporal units of low-overhead OBUs.
    Av1,
    /// Opus (RFC 6716), 48 kHz.
    Opus,
}

impl Codec {
    /// Every codec, in [`Codec::index`] order.
    pub const ALL: [Codec; 5] = [Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1, Codec::Opus];

    /// Position in [`Codec::ALL`] (for per-codec tables).
    pub const fn index(self) -> usize {
        match self {
            Codec::Vp8 => 0,
            Codec::Vp9 => 1,
            Codec::H264 => 2,
            Codec::Av1 => 3,
            Codec::Opus => 4,
        }
    }

    /// Audio or video.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Opus => MediaKind::Audio,
            Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Av1 => MediaKind::Video,
        }
    }

    /// RTP clock rate in Hz (RFC 7587 for Opus, 90 kHz for video).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Opus => 48_000,
            _ => 90_000,
        }
    }

    /// Lower-case name, as in SDP and in our JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::H264 => "h264",
            Codec::Av1 => "av1",
            Codec::Opus => "opus",
        }
    }

    /// Parses `vp8`, `VP8`, `video/VP8`, ...
    pub fn parse(s: &str) -> Option<Codec> {
        let s = s.rsplit('/').next().unwrap_or(s).to_ascii_lowercase();
        Some(match s.as_str() {
            "vp8" => Codec::Vp8,
            "vp9" => Codec::Vp9,
            "h264" | "avc" => Codec::H264,
            "av1" => Codec::Av1,
            "opus" => Codec::Opus,
            _ => return None,
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// Sound.
    Audio,
    /// Pictures.
    Video,
}

/// One RTCP sender report's NTP <-> RTP pair (RFC 3550 §6.4.1), as str0m's
/// `last_sender_info` delivers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport {
    /// The sender's wall clock at `rtp_time`, in nanoseconds since the UNIX epoch
    /// (NTP time converted; only differences between reports of one participant matter).
    pub ntp_ns: u64,
    /// The RTP timestamp that corresponds to `ntp_ns`.
    pub rtp_time: u32,
}

/// One encoded frame as str0m's frame mode delivers it. There is no keyframe flag: keyframes
/// are read from the bitstream (`codec::is_keyframe`), the same way for every codec.
#[derive(Debug, Clone, Copy)]
pub struct FrameIn<'a> {
    /// The depacketized frame: VP8/VP9 frame, H.264 Annex-B access unit, AV1 temporal unit
    /// (low-overhead OBUs), or one Opus packet.
    pub payload: &'a [u8],
    /// RTP timestamp (32 bits; the timeline unwraps it).
    pub rtp_time: u32,
    /// Local arrival time, nanoseconds on any monotonic clock shared by the participant's
    /// tracks (the caller passes `Instant` differences).
    pub arrival_ns: u64,
    /// Whether the depacketizer saw no loss since the previous frame. A non-contiguous video
    /// frame that is not a keyframe is dropped until the next keyframe.
    pub contiguous: bool,
    /// The last sender report received for this track, if any.
    pub sender_report: Option<SenderReport>,
}
