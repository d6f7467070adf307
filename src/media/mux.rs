//! Container writers. Each appends bytes to a caller-owned `Vec<u8>` and never touches files.
//!
//! Crash tolerance is the contract: after [`Muxer::flush`] returns, every byte appended so far
//! is a prefix of a file that ffmpeg decodes up to the last frame written. The caller writes
//! the bytes out and flushes the file at that point (the session asks for a flush at least
//! every second and at each video keyframe).
//!
//! | container | codecs | crash-tolerant because | on clean close |
//! |---|---|---|---|
//! | WebM ([`matroska`]) | VP8, VP9, AV1 + Opus | unknown-size Segment and Clusters | Duration, Cues, SeekHead, sizes patched |
//! | Matroska (.mkv) | H.264 (+ anything) | same writer, `matroska` doctype | same |
//! | fragmented MP4 ([`fmp4`]) | H.264 + Opus | empty moov, one moof+mdat per flush | nothing needed (an mfra is not written) |
//! | Ogg Opus ([`ogg`]) | Opus | one page per flush | final page flagged end-of-stream |

pub mod ebml;
pub mod fmp4;
pub mod matroska;
pub mod ogg;
pub mod recover;

use super::{Codec, MediaKind};

/// What a container needs to know about one track before the first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackConfig {
    /// The codec.
    pub codec: Codec,
    /// Video: coded width in pixels (0 when not known yet).
    pub width: u32,
    /// Video: coded height in pixels (0 when not known yet).
    pub height: u32,
    /// Codec configuration record from the bitstream: `avcC` for H.264, `av1C` for AV1,
    /// `None` for VP8/VP9/Opus. An H.264 `avcC` may carry no parameter sets when the
    /// first keyframe did not arrive in time; the stream then relies on the in-band SPS/PPS
    /// that every stored keyframe keeps.
    pub codec_private: Option<Vec<u8>>,
    /// Audio: channel count (Opus in WebRTC is always 2 in the SDP).
    pub channels: u8,
    /// Audio: Opus pre-skip in 48 kHz samples (RFC 7845 §5.1); 312 is libopus' default.
    pub pre_skip: u16,
}

impl TrackConfig {
    /// A config with only the codec known: defaults for everything else.
    pub fn new(codec: Codec) -> TrackConfig {
        TrackConfig { codec, width: 0, height: 0, codec_private: None, channels: 2, pre_skip: 312 }
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// One frame as the container stores it.
#[derive(Debug, Clone, Copy)]
pub struct MuxFrame<'a> {
    /// Index into the `tracks` given to [`Muxer::new`].
    pub track: usize,
    /// Presentation time in nanoseconds from the start of the file (never negative; frames of
    /// one track arrive in non-decreasing order, and frames across tracks are interleaved in
    /// non-decreasing order by the session).
    pub ts_ns: u64,
    /// Duration in nanoseconds when known (Opus from its TOC); video durations are derived from
    /// the next frame where a container needs them.
    pub duration_ns: Option<u64>,
    /// Video keyframe (Opus frames are always "key").
    pub keyframe: bool,
    /// The bytes stored: VP8/VP9/Opus frames as received, H.264 as length-prefixed (4-byte)
    /// NAL units, AV1 as OBUs without temporal delimiters.
    pub data: &'a [u8],
}

/// A byte range to overwrite in the already-written file on a clean close (for example the
/// Matroska Segment size and Duration). Applying none of them still leaves a valid file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    /// Absolute offset from the start of the file.
    pub offset: u64,
    /// The bytes to write at `offset`.
    pub bytes: Vec<u8>,
}

/// Which container to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerKind {
    /// WebM (Matroska subset): VP8, VP9, AV1, Opus.
    Webm,
    /// Matroska: any of our codecs, H.264 included.
    Mkv,
    /// Fragmented MP4: H.264 (+ Opus).
    Mp4,
    /// Ogg Opus: audio only.
    Ogg,
}

impl ContainerKind {
    /// File extension without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ContainerKind::Webm => "webm",
            ContainerKind::Mkv => "mkv",
            ContainerKind::Mp4 => "mp4",
            ContainerKind::Ogg => "ogg",
        }
    }

    /// The container a file extension names (`webm`, `mkv`, `mp4`, `ogg`).
    pub fn from_extension(ext: &str) -> Option<ContainerKind> {
        [ContainerKind::Webm, ContainerKind::Mkv, ContainerKind::Mp4, ContainerKind::Ogg]
            .into_iter()
            .find(|k| k.extension().eq_ignore_ascii_case(ext))
    }

    /// The default container for a set of codecs: WebM for VP8/VP9/AV1, Matroska for H.264,
    /// Ogg for Opus alone.
    pub fn for_codecs(video: Option<Codec>, audio: Option<Codec>) -> ContainerKind {
        match (video, audio) {
            (Some(Codec::H264), _) => ContainerKind::Mkv,
            (Some(_), _) => ContainerKind::Webm,
            (None, _) => ContainerKind::Ogg,
        }
    }

    /// Whether this container can carry these codecs.
    pub fn supports(self, codec: Codec) -> bool {
        match self {
            ContainerKind::Webm => codec != Codec::H264,
            ContainerKind::Mkv => true,
            ContainerKind::Mp4 => matches!(codec, Codec::H264 | Codec::Opus),
            ContainerKind::Ogg => codec == Codec::Opus,
        }
    }
}

/// Errors a container writer reports. All of them are caller bugs or unsupported
/// combinations; frame bytes themselves are never rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MuxError {
    /// The container cannot carry this codec.
    #[error("{container:?} cannot carry {codec}")]
    Unsupported {
        /// The container.
        container: ContainerKind,
        /// The codec it cannot carry.
        codec: Codec,
    },
    /// A frame named a track index that was not configured.
    #[error("no track {0}")]
    NoSuchTrack(usize),
    /// No tracks were configured.
    #[error("a file needs at least one track")]
    NoTracks,
}

/// Enum dispatch over the container writers (no `Box<dyn>` on the per-frame path).
#[derive(Debug)]
pub enum Muxer {
    /// WebM or Matroska.
    Matroska(matroska::MatroskaWriter),
    /// Fragmented MP4.
    Fmp4(fmp4::Fmp4Writer),
    /// Ogg Opus.
    Ogg(ogg::OggOpusWriter),
}

impl Muxer {
    /// Creates a writer and appends its header (EBML header + Segment start + Tracks; ftyp +
    /// moov; OpusHead + OpusTags pages) to `out`.
    pub fn new(kind: ContainerKind, tracks: &[TrackConfig], out: &mut Vec<u8>) -> Result<Muxer, MuxError> {
        if tracks.is_empty() {
            return Err(MuxError::NoTracks);
        }
        if let Some(t) = tracks.iter().find(|t| !kind.supports(t.codec)) {
            return Err(MuxError::Unsupported { container: kind, codec: t.codec });
        }
        Ok(match kind {
            ContainerKind::Webm => Muxer::Matroska(matroska::MatroskaWriter::new(true, tracks, out)?),
            ContainerKind::Mkv => Muxer::Matroska(matroska::MatroskaWriter::new(false, tracks, out)?),
            ContainerKind::Mp4 => Muxer::Fmp4(fmp4::Fmp4Writer::new(tracks, out)?),
            ContainerKind::Ogg => Muxer::Ogg(ogg::OggOpusWriter::new(tracks, out)?),
        })
    }

    /// Appends one frame. Bytes may be held back inside the writer until the next
    /// [`Muxer::flush`] (fMP4 fragments, Ogg pages); Matroska appends at once.
    pub fn write(&mut self, frame: &MuxFrame<'_>, out: &mut Vec<u8>) -> Result<(), MuxError> {
        match self {
            Muxer::Matroska(m) => m.write(frame, out),
            Muxer::Fmp4(m) => m.write(frame, out),
            Muxer::Ogg(m) => m.write(frame, out),
        }
    }

    /// Makes everything written so far decodable: closes the fragment / page. After this the
    /// bytes in `out` are a valid (truncated) file.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        match self {
            Muxer::Matroska(m) => m.flush(out),
            Muxer::Fmp4(m) => m.flush(out),
            Muxer::Ogg(m) => m.flush(out),
        }
    }

    /// Clean close: appends trailers (Cues, last page) and returns patches for bytes already
    /// written (Duration, sizes). Patch offsets count every byte this writer appended since
    /// [`Muxer::new`], so the caller may clear `out` between calls.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Vec<Patch> {
        match self {
            Muxer::Matroska(m) => m.finish(out),
            Muxer::Fmp4(m) => m.finish(out),
            Muxer::Ogg(m) => m.finish(out),
        }
    }
}
