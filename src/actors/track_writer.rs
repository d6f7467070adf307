//! Per-track bookkeeping of a participant recording ([`TrackWriter`]).
//!
//! Not an actor, on purpose: the media [`Session`](crate::media::session::Session) interleaves
//! audio and video into ONE file and needs every track's frames in one place, so the
//! participant recorder owns the file. A separate actor per track would add a mailbox hop per
//! frame and still have to send each frame to the participant; it would isolate nothing, since
//! the unit that can break (the file) is shared. A failure anywhere in a participant's file is
//! handled by restarting the participant recorder on a new part.

use crate::livekit::TrackSnapshot;
use crate::media::{Codec, MediaKind};
use crate::recording::TrackInfo;

/// One subscribed track of a recording.
#[derive(Debug, Clone)]
pub struct TrackWriter {
    /// Track sid.
    pub sid: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec written.
    pub codec: Codec,
    /// Index of the track in the current part's session (`None` until the part includes it).
    pub index: Option<usize>,
    /// Frames taken for this track.
    pub frames: u64,
    /// Whether the subscription is negotiated (frames can arrive).
    pub subscribed: bool,
}

impl TrackWriter {
    /// A published track, not yet subscribed.
    pub fn published(t: &TrackSnapshot, codec: Codec) -> TrackWriter {
        TrackWriter { sid: t.sid.clone(), kind: t.kind, codec, index: None, frames: 0, subscribed: false }
    }

    /// The API's view.
    pub fn info(&self) -> TrackInfo {
        let kind = match self.kind {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
        };
        TrackInfo { sid: self.sid.clone(), kind: kind.into(), codec: self.codec.to_string().to_lowercase() }
    }
}
