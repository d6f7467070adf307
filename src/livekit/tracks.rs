//! Which m-line carries which track, what we subscribed to, and turning media into frames.
//!
//! Invariants: a mid is announced (`TrackSubscribed`) only while its m-line is receiving and
//! the offer named its track; when the m-line goes inactive or is reused for another track
//! (LiveKit reuses transceivers), the old track gets `TrackUnsubscribed` first. Frames of mids
//! without an announced track are dropped and counted.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use str0m::media::{MediaData, Mid};

use super::events::{codec_from_mime, codec_from_str0m, keyframe, sender_report, ReceivedFrame};
use super::sdp::TrackRef;
use super::session::Session;
use super::RoomEvent;
use crate::ids::{ParticipantSid, TrackSid};
use crate::media::{Codec, MediaKind};

/// Width and height asked for when the publisher did not announce its size (the server then
/// picks the highest simulcast layer).
const FULL_SIZE: (u32, u32) = (1920, 1080);

/// A track whose media is flowing on a mid.
#[derive(Debug, Clone)]
struct Announced {
    track_sid: TrackSid,
    codec: Option<Codec>,
    /// A keyframe arrived since the track started; until then non-key frames trigger PLIs.
    keyframe_seen: bool,
}

/// Track bookkeeping of one connection.
#[derive(Debug, Default)]
pub(crate) struct Tracks {
    offer_map: HashMap<Mid, TrackRef>,
    announced: HashMap<Mid, Announced>,
    subscriptions: HashMap<String, BTreeSet<String>>,
    last_pli: HashMap<String, Instant>,
    nacks: HashMap<(Mid, Option<String>), u64>,
}

impl Tracks {
    /// Replaces the mid -> track map with the latest offer's.
    pub(crate) fn set_offer_map(&mut self, map: HashMap<String, TrackRef>) {
        self.offer_map = map.into_iter().map(|(mid, t)| (Mid::from(mid.as_str()), t)).collect();
    }

    /// The mid currently carrying `track_sid`.
    pub(crate) fn mid_of(&self, track_sid: &str) -> Option<Mid> {
        self.announced.iter().find(|(_, a)| a.track_sid == track_sid).map(|(mid, _)| *mid)
    }

    /// Records a subscription change; returns the tracks whose state actually changes.
    pub(crate) fn update_subscriptions(
        &mut self,
        participant_sid: &str,
        track_sids: &[String],
        subscribe: bool,
    ) -> Vec<String> {
        let set = self.subscriptions.entry(participant_sid.to_owned()).or_default();
        let delta: Vec<String> = track_sids
            .iter()
            .filter(|t| set.contains(*t) != subscribe)
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for t in &delta {
            if subscribe {
                set.insert(t.clone());
            } else {
                set.remove(t);
            }
        }
        if set.is_empty() {
            self.subscriptions.remove(participant_sid);
        }
        delta
    }

    /// All current subscriptions, as sent in `SyncState` after a resume.
    pub(crate) fn subscription_state(&self) -> proto::UpdateSubscription {
        let participant_tracks: Vec<proto::ParticipantTracks> = self
            .subscriptions
            .iter()
            .map(|(p, t)| proto::ParticipantTracks {
                participant_sid: p.clone(),
                track_sids: t.iter().cloned().collect(),
            })
            .collect();
        let track_sids = participant_tracks.iter().flat_map(|p| p.track_sids.clone()).collect();
        proto::UpdateSubscription { track_sids, subscribe: true, participant_tracks }
    }

    /// Rate limit for PLIs: at most one per `min_interval` per track.
    pub(crate) fn pli_allowed(&mut self, track_sid: &str, now: Instant, min_interval: Duration) -> bool {
        match self.last_pli.get(track_sid) {
            Some(last) if now.saturating_duration_since(*last) < min_interval => false,
            _ => {
                self.last_pli.insert(track_sid.to_owned(), now);
                true
            }
        }
    }

    /// Stores str0m's cumulative NACK count for one (mid, rid).
    pub(crate) fn record_nacks(&mut self, mid: Mid, rid: Option<String>, nacks: u64) {
        self.nacks.insert((mid, rid), nacks);
    }

    /// NACKs sent over all streams.
    pub(crate) fn nacks_total(&self) -> u64 {
        self.nacks.values().sum()
    }
}

impl Session {
    /// Subscribes or unsubscribes (selectively, idempotently) and asks for full quality video.
    pub(crate) fn subscribe(&mut self, participant_sid: &str, track_sids: Vec<String>, subscribe: bool) {
        let delta = self.tracks.update_subscriptions(participant_sid, &track_sids, subscribe);
        if delta.is_empty() {
            tracing::debug!(participant = %participant_sid, "subscription unchanged");
            return;
        }
        tracing::info!(participant = %participant_sid, tracks = ?delta, subscribe, "updating subscription");
        let participant_tracks = vec![proto::ParticipantTracks {
            participant_sid: participant_sid.to_owned(),
            track_sids: delta.clone(),
        }];
        self.send(Req::Subscription(proto::UpdateSubscription {
            track_sids: delta.clone(),
            subscribe,
            participant_tracks,
        }));
        if subscribe {
            for track_sid in delta {
                self.request_full_quality(participant_sid, track_sid);
            }
        }
    }

    fn request_full_quality(&mut self, participant_sid: &str, track_sid: String) {
        let info = self.track_info(participant_sid, &track_sid);
        if info.is_some_and(|t| t.r#type != proto::TrackType::Video as i32) {
            return;
        }
        let (width, height) = match info {
            Some(t) if t.width > 0 && t.height > 0 => (t.width, t.height),
            _ => FULL_SIZE,
        };
        self.send(Req::TrackSetting(proto::UpdateTrackSettings {
            track_sids: vec![track_sid],
            quality: proto::VideoQuality::High as i32,
            width,
            height,
            ..Default::default()
        }));
    }

    fn track_info(&self, participant_sid: &str, track_sid: &str) -> Option<&proto::TrackInfo> {
        let p = self.participants.get(participant_sid)?;
        p.tracks.iter().find(|t| t.sid == track_sid)
    }

    fn owner_of(&self, track_sid: &str) -> Option<&proto::ParticipantInfo> {
        self.participants.values().find(|p| p.tracks.iter().any(|t| t.sid == track_sid))
    }

    /// Brings the announced tracks in line with the offer map and the m-line directions.
    pub(crate) fn reconcile(&mut self) -> Result<(), String> {
        let live: HashMap<Mid, TrackRef> = self
            .tracks
            .offer_map
            .iter()
            .filter(|(mid, _)| self.mid_kind(**mid).is_some())
            .map(|(mid, t)| (*mid, t.clone()))
            .collect();
        let stale: Vec<Mid> = self
            .tracks
            .announced
            .iter()
            .filter(|(mid, a)| live.get(*mid).is_none_or(|t| t.track_sid != a.track_sid))
            .map(|(mid, _)| *mid)
            .collect();
        for mid in stale {
            if let Some(a) = self.tracks.announced.remove(&mid) {
                tracing::info!(track = %a.track_sid, %mid, "track media ended");
                self.emit(RoomEvent::TrackUnsubscribed { track_sid: a.track_sid })?;
            }
        }
        for (mid, t) in live {
            if !self.tracks.announced.contains_key(&mid) {
                self.announce(mid, t)?;
            }
        }
        Ok(())
    }

    fn announce(&mut self, mid: Mid, t: TrackRef) -> Result<(), String> {
        let owner = self.owner_of(&t.track_sid);
        let Some(participant_sid) = owner.map(|p| p.sid.clone()).or(t.participant_sid) else {
            tracing::debug!(track = %t.track_sid, %mid, "media for a track of an unknown participant");
            return Ok(());
        };
        let mime = owner.and_then(|p| p.tracks.iter().find(|i| i.sid == t.track_sid));
        let codec =
            mime.and_then(|i| codec_from_mime(&i.mime_type)).or_else(|| self.peer.negotiated_codec(mid));
        let kind = match self.mid_kind(mid) {
            Some(str0m::media::MediaKind::Audio) => MediaKind::Audio,
            _ => MediaKind::Video,
        };
        let track_sid = TrackSid::from(t.track_sid);
        let announced = Announced { track_sid: track_sid.clone(), codec, keyframe_seen: false };
        self.tracks.announced.insert(mid, announced);
        tracing::info!(participant = %participant_sid, track = %track_sid, %mid, ?codec, "track subscribed");
        let participant_sid = ParticipantSid::from(participant_sid);
        self.emit(RoomEvent::TrackSubscribed { participant_sid, track_sid, kind, codec })
    }

    /// Sends a PLI unless one went out for this track less than the minimum interval ago.
    pub(crate) fn request_keyframe(&mut self, track_sid: &str, now: Instant) {
        let Some(mid) = self.tracks.mid_of(track_sid) else {
            tracing::debug!(track = %track_sid, "keyframe request for a track without media");
            return;
        };
        if !self.tracks.pli_allowed(track_sid, now, self.opts.min_keyframe_interval) {
            return;
        }
        if self.peer.request_keyframe(mid) {
            self.counters.plis_sent.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(track = %track_sid, "PLI sent");
        }
    }

    pub(crate) fn mid_kind(&self, mid: Mid) -> Option<str0m::media::MediaKind> {
        self.peer.receiving_kind(mid)
    }

    /// One depacketized frame from str0m. A video track asks for a keyframe (rate-limited)
    /// while it has not seen one yet and after loss the depacketizer could not repair.
    pub(crate) fn on_media(&mut self, data: MediaData) {
        let Some(a) = self.tracks.announced.get_mut(&data.mid) else {
            tracing::trace!(mid = %data.mid, "frame for an unmapped mid");
            self.counters.frames_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let codec = codec_from_str0m(data.params.spec().codec).or(a.codec);
        let track_sid = a.track_sid.clone();
        let frame = ReceivedFrame {
            keyframe: keyframe(&data.codec_extra, codec, &data.data),
            payload: data.data.clone(),
            rtp_time: data.time.numer() as u32,
            arrival: data.network_time,
            contiguous: data.contiguous,
            sender_report: data.last_sender_info.as_ref().and_then(sender_report),
        };
        let needs_keyframe = !frame.contiguous || !a.keyframe_seen;
        a.keyframe_seen |= frame.keyframe == Some(true);
        if needs_keyframe && frame.keyframe == Some(false) {
            self.request_keyframe(&track_sid, Instant::now());
        }
        self.sink.frame(RoomEvent::Frame { track_sid, frame });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_idempotent_deltas() {
        let mut t = Tracks::default();
        let both = vec!["TR_a".to_owned(), "TR_b".to_owned()];
        assert_eq!(t.update_subscriptions("PA_1", &both, true), both);
        assert!(t.update_subscriptions("PA_1", &both, true).is_empty());
        assert_eq!(t.update_subscriptions("PA_1", &["TR_a".into()], false), vec!["TR_a".to_owned()]);
        let state = t.subscription_state();
        assert_eq!(state.track_sids, vec!["TR_b".to_owned()]);
        assert_eq!(state.participant_tracks[0].participant_sid, "PA_1");
        assert!(t.update_subscriptions("PA_1", &["TR_b".into()], false).len() == 1);
        assert!(t.subscription_state().participant_tracks.is_empty());
    }

    #[test]
    fn plis_are_rate_limited_per_track() {
        let mut t = Tracks::default();
        let now = Instant::now();
        let min = Duration::from_millis(500);
        assert!(t.pli_allowed("TR_v", now, min));
        assert!(!t.pli_allowed("TR_v", now + Duration::from_millis(100), min));
        assert!(t.pli_allowed("TR_w", now, min));
        assert!(t.pli_allowed("TR_v", now + Duration::from_millis(600), min));
    }

    #[test]
    fn nacks_sum_over_streams() {
        let mut t = Tracks::default();
        t.record_nacks(Mid::from("1"), None, 3);
        t.record_nacks(Mid::from("2"), None, 4);
        t.record_nacks(Mid::from("1"), None, 5);
        assert_eq!(t.nacks_total(), 9);
    }
}
