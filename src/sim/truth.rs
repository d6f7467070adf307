//! The ground truth: every frame a synthetic publisher sent, per track, served by
//! `GET /sim/rooms/{room}/sent`.
//!
//! Invariant: the log is bounded ([`MAX_FRAMES_PER_TRACK`]); frames past the bound are
//! counted in `dropped` but not stored. The RTP timestamp logged is the one on the wire: str0m
//! puts the `MediaTime` given to `Writer::write` into the RTP header verbatim (no per-stream
//! offset; `streams/send.rs`, `packet/payload.rs` in str0m 0.25).

use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::media::hash_form;
use crate::media::Codec;

/// At most this many frames are kept per track (about 1.8 h of 30 fps video, 1.1 h of
/// 20 ms audio); later frames are only counted.
pub const MAX_FRAMES_PER_TRACK: usize = 200_000;

/// One frame sent.
#[derive(Debug, Clone, Serialize)]
pub struct SentFrame {
    /// RTP timestamp on the wire.
    pub rtp_ts: u32,
    /// The sender's wall clock for this frame (the participant clock), ns since the UNIX
    /// epoch; the same clock drives the RTCP sender reports.
    pub ntp_ns: u64,
    /// Frame size in bytes, as sent.
    pub size: usize,
    /// Whether the frame is a keyframe.
    pub keyframe: bool,
    /// Hex SHA-256 of the stored form (see `hash_form`).
    #[serde(serialize_with = "as_str")]
    pub sha256: Arc<str>,
}

fn as_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

/// The log of one track.
#[derive(Debug)]
pub struct TrackLog {
    sid: String,
    participant: String,
    codec: Codec,
    frames: Mutex<(Vec<SentFrame>, u64)>,
}

/// `/sent` JSON for one track.
#[derive(Debug, Serialize)]
pub struct TrackLogJson {
    sid: String,
    participant: String,
    kind: &'static str,
    codec: &'static str,
    hash_form: &'static str,
    dropped: u64,
    frames: Vec<SentFrame>,
}

impl TrackLog {
    /// An empty log for track `sid` of participant identity `participant`.
    pub fn new(sid: &str, participant: &str, codec: Codec) -> TrackLog {
        TrackLog {
            sid: sid.into(),
            participant: participant.into(),
            codec,
            frames: Mutex::new((Vec::new(), 0)),
        }
    }

    /// Records one frame (or counts it when the log is full).
    pub fn push(&self, frame: SentFrame) {
        let mut g = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.len() < MAX_FRAMES_PER_TRACK {
            g.0.push(frame);
        } else {
            g.1 += 1;
        }
    }

    /// A snapshot as JSON-ready data.
    pub fn to_json(&self) -> TrackLogJson {
        let g = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        TrackLogJson {
            sid: self.sid.clone(),
            participant: self.participant.clone(),
            kind: if self.codec == Codec::Opus { "audio" } else { "video" },
            codec: self.codec.as_str(),
            hash_form: hash_form(self.codec),
            dropped: g.1,
            frames: g.0.clone(),
        }
    }
}
