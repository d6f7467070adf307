//! `TrackWriterActor`: one per recorded track, child of the participant recorder. The room
//! routes the track's frames straight to it ([`RoomMsg::Route`]); it checks each frame,
//! follows the track's sender reports until two agree (then the track's time is on the
//! sender's clock), counts, and hands the frame to the participant recorder, which interleaves
//! all tracks into the ONE file it owns.
//!
//! What the actor isolates is the per-track handling of untrusted input: if it fails (a
//! panic in a handler is caught by ractor and reported as a failure), the participant
//! recorder restarts it (5 restarts / 60 s per participant, then the participant itself fails
//! and continues in a new part). The restarted writer marks its first frame as not contiguous,
//! so the media session drops until the next keyframe and asks for one: the track has a gap
//! of at most about one GOP in the SAME file, and the other tracks never stop.
//!
//! [`TrackWriter`] is the participant recorder's bookkeeping for the track (subscription,
//! index in the current part, the actor's address).

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::media_queue::QueuedFrame;
use super::participant::ParticipantMsg;
use super::room::RoomMsg;
use super::RoomSettings;
use crate::ids::{RecordingId, TrackSid};
use crate::livekit::{ReceivedFrame, TrackSnapshot};
use crate::media::codec::filler;
use crate::media::{Codec, MediaKind, SenderReport};
use crate::metrics::Metrics;
use crate::recording::TrackInfo;

/// Largest frame accepted (a 4K keyframe is a few MiB; anything larger is not media).
pub const MAX_FRAME_BYTES: usize = 16 << 20;

/// Arguments of a track writer.
#[derive(Debug, Clone)]
pub struct TrackWriterArgs {
    /// Recording id (for logs).
    pub recording: RecordingId,
    /// The recording's span: the writer's handlers run in it.
    pub span: tracing::Span,
    /// Track sid.
    pub sid: TrackSid,
    /// The track's codec.
    pub codec: Codec,
    /// Whether this writer replaces a failed one (its first frame starts a gap).
    pub restarted: bool,
    /// Where checked frames go.
    pub participant: ActorRef<ParticipantMsg>,
    /// Where the route is registered.
    pub room: ActorRef<RoomMsg>,
    /// Daemon settings (metrics).
    pub settings: Arc<RoomSettings>,
}

/// Messages of a track writer.
#[derive(Debug)]
pub enum TrackWriterMsg {
    /// One received frame of the track, with its share of the recording's queue.
    Frame(QueuedFrame),
    /// Replies once every frame queued before it has gone to the participant recorder.
    Flush(RpcReplyPort<()>),
    /// Test hook: fail as if a frame could not be handled.
    #[cfg(feature = "testing")]
    InjectFailure,
}

/// State of a track writer.
#[derive(Debug)]
pub struct TrackWriterState {
    args: TrackWriterArgs,
    /// The next frame is the first since a restart.
    gap: bool,
    synced: bool,
    last_sr: Option<SenderReport>,
    /// RTP time of the previous frame.
    last_rtp: Option<u32>,
}

/// A video frame more than this after the previous one (RTP time) starts a gap: after a
/// publisher stall its references are stale, so the file waits for a keyframe (and asks for
/// one) instead of writing frames a decoder would show broken. 3 s: a screen share sends 1-5
/// frames a second, or fewer when nothing moves, and those frames are not loss.
pub const VIDEO_STALL_NS: u64 = 3_000_000_000;

/// The track writer actor.
pub struct TrackWriterActor;

impl Actor for TrackWriterActor {
    type Msg = TrackWriterMsg;
    type State = TrackWriterState;
    type Arguments = TrackWriterArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: TrackWriterArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = args.span.clone();
        let _in = span.enter(); // nothing is awaited below
        let route = RoomMsg::Route { track_sid: args.sid.clone(), writer: me };
        if args.room.cast(route).is_err() {
            tracing::debug!(recording = %args.recording, track = %args.sid, "room actor gone");
        }
        Ok(TrackWriterState { gap: args.restarted, synced: false, last_sr: None, last_rtp: None, args })
    }

    async fn handle(
        &self,
        _me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = st.args.span.clone();
        let _in = span.enter(); // nothing is awaited below
        match msg {
            TrackWriterMsg::Frame(frame) => st.on_frame(frame),
            TrackWriterMsg::Flush(reply) => {
                let _ = reply.send(());
            }
            #[cfg(feature = "testing")]
            TrackWriterMsg::InjectFailure => return Err("injected track writer failure".into()),
        }
        Ok(())
    }
}

impl TrackWriterState {
    fn on_frame(&mut self, mut queued: QueuedFrame) {
        let frame = &mut queued.frame;
        if frame.payload.is_empty() || frame.payload.len() > MAX_FRAME_BYTES {
            tracing::debug!(track = %self.args.sid, size = frame.payload.len(), "frame refused");
            Metrics::add(&self.args.settings.metrics.frames_dropped, 1);
            return;
        }
        if filler::is_sfu_filler(self.args.codec, &frame.payload) {
            // not the publisher's: the SFU's blank keyframes / silence at close and mute
            tracing::debug!(track = %self.args.sid, "SFU filler frame left out");
            Metrics::add(&self.args.settings.metrics.sfu_filler_frames, 1);
            return;
        }
        if std::mem::take(&mut self.gap) || self.stalled(frame) {
            frame.contiguous = false;
        }
        self.last_rtp = Some(frame.rtp_time);
        let sr = frame.sender_report;
        self.observe_sr(sr);
        let msg =
            ParticipantMsg::Frame { track_sid: self.args.sid.clone(), frame: queued, synced: self.synced };
        let _ = self.args.participant.cast(msg);
    }

    /// A video delta frame long after the previous frame (see [`VIDEO_STALL_NS`]).
    fn stalled(&self, frame: &ReceivedFrame) -> bool {
        self.last_rtp
            .is_some_and(|last| is_stall(last, frame.rtp_time, frame.keyframe, self.args.codec.clock_rate()))
    }

    /// Takes a frame's sender report; the track counts as synced once two different reports
    /// agree with each other (a publisher's or SFU's first report can be wrong, and the media
    /// session takes reports at face value).
    fn observe_sr(&mut self, sr: Option<SenderReport>) {
        let Some(sr) = sr else { return };
        match self.last_sr {
            Some(prev) if prev != sr => self.synced |= reports_agree(prev, sr, self.args.codec.clock_rate()),
            _ => {}
        }
        self.last_sr = Some(sr);
    }
}

/// Whether a frame at `rtp` after one at `last` (RTP times of a `clock_rate` clock) is a
/// delta frame after a publisher stall (see [`VIDEO_STALL_NS`]).
pub fn is_stall(last: u32, rtp: u32, keyframe: Option<bool>, clock_rate: u32) -> bool {
    let step = i64::from(rtp.wrapping_sub(last) as i32);
    let limit = VIDEO_STALL_NS as i64 * i64::from(clock_rate) / 1_000_000_000;
    keyframe == Some(false) && step > limit
}

/// Two sender reports of one track agree when their NTP and RTP differences match this well.
const SR_AGREEMENT_NS: i64 = 20_000_000;

/// Whether `b` lies on the NTP <-> RTP line `a` describes (RTP differences taken mod 2^32).
pub fn reports_agree(a: SenderReport, b: SenderReport, clock_rate: u32) -> bool {
    let rtp_ns =
        i64::from(b.rtp_time.wrapping_sub(a.rtp_time) as i32) * 1_000_000_000 / i64::from(clock_rate.max(1));
    let ntp_ns = b.ntp_ns as i64 - a.ntp_ns as i64;
    (ntp_ns - rtp_ns).abs() <= SR_AGREEMENT_NS
}

/// The participant recorder's bookkeeping for one subscribed track.
#[derive(Debug, Clone)]
pub struct TrackWriter {
    /// Track sid.
    pub sid: TrackSid,
    /// Audio or video.
    pub kind: MediaKind,
    /// The codec written.
    pub codec: Codec,
    /// (file, track index in that file's session) in the current part; `None` until the part
    /// includes the track.
    pub slot: Option<(usize, usize)>,
    /// Frames taken for this track.
    pub frames: u64,
    /// Whether the subscription is negotiated (frames can arrive).
    pub subscribed: bool,
    /// The publication is gone (unpublished, or its session was replaced by a rejoin): no
    /// later part includes the track.
    pub gone: bool,
    /// Whether the track has a sender report (its time is on the sender's clock).
    pub synced: bool,
    /// Whether any frame arrived.
    pub seen: bool,
    /// The writer actor, while it runs.
    pub actor: Option<ActorRef<TrackWriterMsg>>,
    /// The latest sender report seen before the part opened.
    pub latest_sr: Option<SenderReport>,
}

impl TrackWriter {
    /// A published track, not yet subscribed.
    pub fn published(t: &TrackSnapshot, codec: Codec) -> TrackWriter {
        TrackWriter {
            sid: t.sid.clone(),
            kind: t.kind,
            codec,
            slot: None,
            frames: 0,
            subscribed: false,
            gone: false,
            synced: false,
            seen: false,
            actor: None,
            latest_sr: None,
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
    fn low_frame_rates_are_not_stalls() {
        // a screen share at 1 fps, 0.5 fps (90 kHz clock): not loss
        assert!(!is_stall(u32::MAX - 1000, 89_000, Some(false), 90_000), "1 s later, across the wrap");
        assert!(!is_stall(0, 180_000, Some(false), 90_000), "2 s later");
        // a delta frame 5 s after the previous one: its references are stale
        assert!(is_stall(0, 450_000, Some(false), 90_000));
        // a keyframe after any pause starts clean; audio is never a stall
        assert!(!is_stall(0, 450_000, Some(true), 90_000));
        assert!(!is_stall(0, 240_000, None, 48_000));
    }

    #[test]
    fn reports_on_one_line_agree() {
        let a = SenderReport { ntp_ns: 1_000_000_000, rtp_time: u32::MAX - 47_999 };
        let b = SenderReport { ntp_ns: 2_000_000_000, rtp_time: 1 };
        assert!(reports_agree(a, b, 48_000), "across the RTP wrap");
        let bogus = SenderReport { ntp_ns: 2_000_000_000, rtp_time: 900_000 };
        assert!(!reports_agree(a, bogus, 48_000));
    }
}
