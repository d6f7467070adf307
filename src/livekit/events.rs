//! Typed, owned events a [`RoomConnection`](super::RoomConnection) delivers, and the pure
//! conversions from wire types (protobuf, str0m) into them.
//!
//! Invariant: nothing outside `src/livekit` needs livekit-protocol or str0m types; every
//! conversion here is total (unknown enum values and unknown mime types map to defaults or
//! `None`, never to a panic).

use std::time::{Instant, UNIX_EPOCH};

use livekit_protocol as proto;
use str0m::format::CodecExtra;
use str0m::rtp::rtcp::SenderInfo;

use crate::ids::{Identity, ParticipantSid, RoomName, TrackSid};
use crate::media::{Codec, FrameIn, MediaKind, SenderReport};

/// Something that happened in the room or on the connection.
#[derive(Debug, Clone)]
pub enum RoomEvent {
    /// The JoinResponse arrived: the bot is in the room.
    Joined {
        /// The room's name (from the token's grant).
        room_name: RoomName,
        /// The bot's own participant sid.
        local_sid: ParticipantSid,
        /// Everyone else in the room, with their published tracks.
        participants: Vec<ParticipantSnapshot>,
    },
    /// Participants joined, changed their tracks, or left (state `Disconnected`). Each
    /// snapshot is complete; it replaces what was known about that participant.
    ParticipantsChanged(Vec<ParticipantSnapshot>),
    /// Media for a subscribed track is negotiated; frames for it follow.
    TrackSubscribed {
        /// The publisher's sid.
        participant_sid: ParticipantSid,
        /// The track's sid.
        track_sid: TrackSid,
        /// Audio or video.
        kind: MediaKind,
        /// The codec from the track's mime type or the negotiated payload type.
        codec: Option<Codec>,
    },
    /// One depacketized frame of a subscribed track.
    Frame {
        /// The track's sid.
        track_sid: TrackSid,
        /// The frame.
        frame: ReceivedFrame,
    },
    /// The track's m-line went inactive or was reused for another track: no more frames.
    TrackUnsubscribed {
        /// The track's sid.
        track_sid: TrackSid,
    },
    /// The signal connection dropped; resuming (media may keep flowing).
    Reconnecting,
    /// The signal connection was resumed.
    Reconnected,
    /// The connection ended; no further events follow.
    Disconnected {
        /// Why, for logs and status.
        reason: String,
    },
}

/// A participant as the last ParticipantUpdate described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    /// Participant sid (`PA_...`).
    pub sid: ParticipantSid,
    /// Identity from the publisher's token.
    pub identity: Identity,
    /// Connection state.
    pub state: ParticipantState,
    /// Published audio and video tracks (data tracks are left out).
    pub tracks: Vec<TrackSnapshot>,
    /// Disconnected because the server is shutting down (`DisconnectReason::SERVER_SHUTDOWN`):
    /// the participant did not leave, the server went away.
    pub server_shutdown: bool,
}

/// A participant's connection state (livekit `ParticipantInfo.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantState {
    /// Websocket connected, not yet joined.
    Joining,
    /// Joined, media not yet connected.
    Joined,
    /// Media connected.
    Active,
    /// Left the room.
    Disconnected,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSnapshot {
    /// Track sid (`TR_...`).
    pub sid: TrackSid,
    /// Audio or video.
    pub kind: MediaKind,
    /// From the track's mime type; `None` for codecs we do not record.
    pub codec: Option<Codec>,
    /// The mime type the server announced (`audio/red` for RED audio, recorded as Opus).
    pub mime: String,
    /// End-to-end encrypted: the SFU forwards ciphertext, which no player can decode.
    pub encrypted: bool,
    /// Whether the publisher muted it.
    pub muted: bool,
}

impl TrackSnapshot {
    /// Why this track cannot be recorded, if it cannot.
    pub fn unrecordable(&self) -> Option<String> {
        if self.encrypted {
            Some(
                "end-to-end encrypted (E2EE): the server forwards ciphertext, which cannot be recorded"
                    .into(),
            )
        } else if self.codec.is_none() {
            let mime = if self.mime.is_empty() { "(none announced)" } else { self.mime.as_str() };
            Some(format!("codec {mime} is not recordable (vp8, vp9, h264, av1, opus are)"))
        } else {
            None
        }
    }
}

/// One encoded frame, owned.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    /// The depacketized frame (VP8/VP9 frame, Annex-B access unit, AV1 temporal unit, Opus
    /// packet), shared with the receive path (never copied on its way to the file).
    pub payload: std::sync::Arc<[u8]>,
    /// RTP timestamp of the frame.
    pub rtp_time: u32,
    /// When the first packet of the frame arrived.
    pub arrival: Instant,
    /// No loss since the previous frame of this track.
    pub contiguous: bool,
    /// Keyframe flag for video codecs; `None` for audio.
    pub keyframe: Option<bool>,
    /// The latest RTCP sender report of this track.
    pub sender_report: Option<SenderReport>,
}

impl ReceivedFrame {
    /// Borrowed view for the media core; `arrival_ns` counts from `epoch` (0 if earlier).
    pub fn as_frame_in(&self, epoch: Instant) -> FrameIn<'_> {
        let arrival_ns = self.arrival.saturating_duration_since(epoch).as_nanos();
        FrameIn {
            payload: &self.payload[..],
            rtp_time: self.rtp_time,
            arrival_ns: u64::try_from(arrival_ns).unwrap_or(u64::MAX),
            contiguous: self.contiguous,
            sender_report: self.sender_report,
        }
    }
}

/// `video/VP8`, `audio/opus`, ... to a recordable codec. `audio/red` (RFC 2198 redundant
/// audio, the default of browsers and most SDKs) is Opus: our answer declines RED, and the
/// server then sends the primary Opus stream.
pub fn codec_from_mime(mime: &str) -> Option<Codec> {
    let mime = mime.trim();
    if mime.eq_ignore_ascii_case("audio/red") {
        return Some(Codec::Opus);
    }
    Codec::parse(mime)
}

/// str0m's codec to ours (`None` for codecs we do not record).
pub(crate) fn codec_from_str0m(codec: str0m::format::Codec) -> Option<Codec> {
    use str0m::format::Codec as S;
    Some(match codec {
        S::Opus => Codec::Opus,
        S::Vp8 => Codec::Vp8,
        S::Vp9 => Codec::Vp9,
        S::H264 => Codec::H264,
        S::Av1 => Codec::Av1,
        _ => return None,
    })
}

/// str0m's last SR to ours. `None` for an NTP time before 1970 (a broken sender clock).
pub(crate) fn sender_report(info: &SenderInfo) -> Option<SenderReport> {
    let since_epoch = info.ntp_time.duration_since(UNIX_EPOCH).ok()?;
    Some(SenderReport {
        ntp_ns: u64::try_from(since_epoch.as_nanos()).ok()?,
        rtp_time: info.rtp_time.numer() as u32,
    })
}

/// Keyframe flag from the depacketizer's codec extra (VP9 from the frame header).
pub(crate) fn keyframe(extra: &CodecExtra, codec: Option<Codec>, payload: &[u8]) -> Option<bool> {
    match extra {
        CodecExtra::Vp8(e) => Some(e.is_keyframe),
        CodecExtra::H264(e) => Some(e.is_keyframe),
        CodecExtra::Av1(e) => Some(e.is_keyframe),
        CodecExtra::H265(e) => Some(e.is_keyframe),
        CodecExtra::Vp9(_) => Some(crate::media::codec::is_keyframe(Codec::Vp9, payload)),
        _ => match codec {
            Some(c) if c.kind() == MediaKind::Video => Some(crate::media::codec::is_keyframe(c, payload)),
            _ => None,
        },
    }
}

/// A participant from the wire, with only audio and video tracks.
pub(crate) fn participant_snapshot(info: &proto::ParticipantInfo) -> ParticipantSnapshot {
    ParticipantSnapshot {
        sid: ParticipantSid::from(&info.sid),
        identity: Identity::from(&info.identity),
        state: participant_state(info.state),
        tracks: info.tracks.iter().filter_map(track_snapshot).collect(),
        server_shutdown: info.disconnect_reason == proto::DisconnectReason::ServerShutdown as i32,
    }
}

fn participant_state(state: i32) -> ParticipantState {
    use proto::participant_info::State;
    match State::try_from(state) {
        Ok(State::Joining) => ParticipantState::Joining,
        Ok(State::Joined) => ParticipantState::Joined,
        Ok(State::Active) => ParticipantState::Active,
        Ok(State::Disconnected) | Err(_) => ParticipantState::Disconnected,
    }
}

fn track_snapshot(t: &proto::TrackInfo) -> Option<TrackSnapshot> {
    let kind = match proto::TrackType::try_from(t.r#type) {
        Ok(proto::TrackType::Audio) => MediaKind::Audio,
        Ok(proto::TrackType::Video) => MediaKind::Video,
        _ => return None,
    };
    // the announced mime, else the first codec of the list (simulcast codecs, backup codec)
    let mime = if t.mime_type.is_empty() {
        t.codecs.first().map(|c| c.mime_type.clone()).unwrap_or_default()
    } else {
        t.mime_type.clone()
    };
    let encrypted = t.encryption != proto::encryption::Type::None as i32;
    Some(TrackSnapshot {
        sid: TrackSid::from(&t.sid),
        kind,
        codec: codec_from_mime(&mime),
        mime,
        encrypted,
        muted: t.muted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use str0m::media::{Frequency, MediaTime};

    #[test]
    fn mime_types_map_to_codecs() {
        assert_eq!(codec_from_mime("video/VP8"), Some(Codec::Vp8));
        assert_eq!(codec_from_mime("audio/opus"), Some(Codec::Opus));
        assert_eq!(codec_from_mime("video/H264"), Some(Codec::H264));
        assert_eq!(codec_from_mime("video/AV1"), Some(Codec::Av1));
        assert_eq!(codec_from_mime("audio/red"), Some(Codec::Opus), "RED is recorded as its primary Opus");
        assert_eq!(codec_from_mime("video/H265"), None);
        assert_eq!(codec_from_mime(""), None);
    }

    #[test]
    fn sender_info_converts_to_unix_ns_and_u32_rtp() {
        let info = SenderInfo {
            ssrc: 1.into(),
            ntp_time: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            rtp_time: MediaTime::new((1u64 << 32) + 5, Frequency::NINETY_KHZ),
            sender_packet_count: 0,
            sender_octet_count: 0,
        };
        let sr = sender_report(&info).unwrap();
        assert_eq!(sr.ntp_ns, 1_700_000_000_123_000_000);
        assert_eq!(sr.rtp_time, 5);
        let early = SenderInfo { ntp_time: UNIX_EPOCH - Duration::from_secs(1), ..info };
        assert_eq!(sender_report(&early), None);
    }

    #[test]
    fn snapshot_keeps_audio_and_video_only() {
        let info = proto::ParticipantInfo {
            sid: "PA_1".into(),
            identity: "alice".into(),
            state: proto::participant_info::State::Active as i32,
            tracks: vec![
                proto::TrackInfo {
                    sid: "TR_V".into(),
                    r#type: proto::TrackType::Video as i32,
                    mime_type: "video/VP8".into(),
                    muted: true,
                    ..Default::default()
                },
                proto::TrackInfo { sid: "TR_D".into(), r#type: 2, ..Default::default() },
            ],
            ..Default::default()
        };
        let s = participant_snapshot(&info);
        assert_eq!(s.state, ParticipantState::Active);
        assert_eq!(s.tracks.len(), 1);
        assert_eq!(s.tracks[0].codec, Some(Codec::Vp8));
        assert!(s.tracks[0].muted);
        assert_eq!(s.tracks[0].unrecordable(), None);
        let bad = proto::ParticipantInfo { state: 99, ..info };
        assert_eq!(participant_snapshot(&bad).state, ParticipantState::Disconnected);
    }

    #[test]
    fn red_is_recordable_while_encrypted_and_unknown_codecs_say_why() {
        let track = |mime: &str, encryption: proto::encryption::Type| proto::TrackInfo {
            sid: "TR_A".into(),
            r#type: proto::TrackType::Audio as i32,
            mime_type: mime.into(),
            encryption: encryption as i32,
            ..Default::default()
        };
        let red = track_snapshot(&track("audio/red", proto::encryption::Type::None)).unwrap();
        assert_eq!((red.codec, red.unrecordable()), (Some(Codec::Opus), None));
        let e2ee = track_snapshot(&track("audio/opus", proto::encryption::Type::Gcm)).unwrap();
        assert!(e2ee.unrecordable().unwrap().contains("encrypted"));
        let pcmu = track_snapshot(&track("audio/PCMU", proto::encryption::Type::None)).unwrap();
        assert!(pcmu.unrecordable().unwrap().contains("audio/PCMU"));
        // no mime on the track itself: the first of its codecs
        let mut listed = track("", proto::encryption::Type::None);
        listed.codecs =
            vec![proto::SimulcastCodecInfo { mime_type: "audio/red".into(), ..Default::default() }];
        assert_eq!(track_snapshot(&listed).unwrap().codec, Some(Codec::Opus));
    }

    #[test]
    fn frame_in_is_relative_to_the_epoch() {
        let epoch = Instant::now();
        let frame = ReceivedFrame {
            payload: vec![1, 2, 3].into(),
            rtp_time: 7,
            arrival: epoch + Duration::from_millis(5),
            contiguous: true,
            keyframe: Some(true),
            sender_report: None,
        };
        let f = frame.as_frame_in(epoch);
        assert_eq!(f.arrival_ns, 5_000_000);
        assert_eq!(f.payload, &[1u8, 2, 3][..]);
        assert_eq!(frame.as_frame_in(epoch + Duration::from_secs(1)).arrival_ns, 0);
    }
}
