//! Readers for the encoded loops ffmpeg makes (test fixtures, the simulator's media, the demo).
//! Pure: they parse byte slices. Malformed input ends the iteration with an error, never a
//! panic.

pub mod annexb;
pub mod ivf;
pub mod oggopus;

/// One encoded frame read from a file, with its presentation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFrame {
    /// Presentation time in the codec's RTP clock (90 kHz video, 48 kHz Opus), from 0.
    pub rtp_ts: u64,
    /// The frame as a depacketizer would deliver it (VP8/VP9 frame, H.264 Annex-B access unit,
    /// AV1 temporal unit, Opus packet).
    pub data: Vec<u8>,
}

/// Errors while reading a fixture.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceError {
    /// The file does not start with the expected signature.
    #[error("not a {0} file")]
    BadSignature(&'static str),
    /// The file ended inside a header or frame.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// Something else is wrong with the bytes.
    #[error("malformed {0}")]
    Malformed(&'static str),
}
