//! Per-track bookkeeping of a participant recording ([`TrackWriter`]).
//!
//! Not an actor, on purpose: the media [`Session`](crate::media::session::Session) interleaves
//! audio and video into ONE file and needs every track's frames in one place, so the
//! participant recorder owns the file. A separate actor per track would add a mailbox hop per
//! frame and still have to send each frame to the participant; it would isolate nothing, since
//! the unit that can break (the file) is shared. A failure anywhere in a participant's file is
//! handled by restarting the participant recorder on a new part.

use crate::livekit::TrackSnapshot;
use crate::media::{Codec, MediaKind, SenderReport};
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
    /// Whether a frame with a sender report arrived (its time is on the sender's clock).
    pub synced: bool,
    /// Whether any frame arrived.
    pub seen: bool,
    /// The last sender report seen before the track was synced.
    pub last_sr: Option<SenderReport>,
}

/// Two sender reports of one track agree when their NTP and RTP differences match this well.
const SR_AGREEMENT_NS: i64 = 20_000_000;

impl TrackWriter {
    /// Takes a frame's sender report; the track counts as synced once two different reports
    /// agree with each other (a publisher's or SFU's first report can be wrong, and the media
    /// session takes reports at face value).
    pub fn observe_sr(&mut self, sr: Option<SenderReport>) {
        let Some(sr) = sr else { return };
        match self.last_sr {
            Some(prev) if prev != sr => self.synced |= reports_agree(prev, sr, self.codec.clock_rate()),
            _ => {}
        }
        self.last_sr = Some(sr);
    }
}

/// Whether `b` lies on the NTP <-> RTP line `a` describes (RTP differences taken mod 2^32).
pub fn reports_agree(a: SenderReport, b: SenderReport, clock_rate: u32) -> bool {
    let rtp_ns =
        i64::from(b.rtp_time.wrapping_sub(a.rtp_time) as i32) * 1_000_000_000 / i64::from(clock_rate.max(1));
    let ntp_ns = b.ntp_ns as i64 - a.ntp_ns as i64;
    (ntp_ns - rtp_ns).abs() <= SR_AGREEMENT_NS
}

impl TrackWriter {
    /// A published track, not yet subscribed.
    pub fn published(t: &TrackSnapshot, codec: Codec) -> TrackWriter {
        TrackWriter {
            sid: t.sid.clone(),
            kind: t.kind,
            codec,
            index: None,
            frames: 0,
            subscribed: false,
            synced: false,
            seen: false,
            last_sr: None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_on_one_line_agree() {
        let a = SenderReport { ntp_ns: 1_000_000_000, rtp_time: u32::MAX - 47_999 };
        let b = SenderReport { ntp_ns: 2_000_000_000, rtp_time: 1 };
        assert!(reports_agree(a, b, 48_000), "across the RTP wrap");
        let bogus = SenderReport { ntp_ns: 2_000_000_000, rtp_time: 900_000 };
        assert!(!reports_agree(a, bogus, 48_000));
    }
}
