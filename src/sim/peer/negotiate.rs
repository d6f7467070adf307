//! Offer/answer for a subscriber peer: which m-lines the next offer adds or deactivates, the
//! offer message (with `mid_to_track_id` and our trickles), applying the answer, ICE restarts.
//!
//! Invariant: at most one offer outstanding; [`Peer::negotiate`] is only called without one.

use std::collections::HashMap;
use std::time::Instant;

use livekit_protocol as proto;
use str0m::change::SdpAnswer;
use str0m::channel::{ChannelConfig, Reliability};
use str0m::media::{Direction, MediaKind as WireKind};

use super::{Peer, Sub, TrackSpec, RTCP_HOLD};
use crate::media::Codec;
use crate::sim::net::{candidate_init_json, first_mid, rtx_ssrcs, ssrcs_by_mid};

impl Peer {
    /// Resume: restart ICE in the next offer; an offer the client may have lost with its old
    /// socket is sent again first (it must be answered before the next one).
    pub(super) fn ice_restart(&mut self) {
        self.restart = true;
        if let (Some(_), Some(offer)) = (&self.pending, &self.last_offer) {
            self.ctx.outbox.send(proto::signal_response::Message::Offer(offer.clone()));
        }
    }

    pub(super) fn add(&mut self, spec: TrackSpec) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.spec.track == spec.track) {
            if !s.active {
                s.active = true;
                s.mid = None; // a new m-line: the old one stays inactive
                self.changed = true;
            }
            return;
        }
        self.subs.push(Sub { spec, mid: None, active: true });
        self.changed = true;
    }

    pub(super) fn negotiate(&mut self) {
        let first = self.offer_id == 0;
        let mut api = self.rtc.sdp_api();
        if first {
            api.add_channel("_reliable".into());
            let lossy = ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            };
            api.add_channel_with_config(lossy);
        }
        for s in self.subs.iter_mut() {
            match (s.active, s.mid) {
                (true, None) => {
                    let kind = if s.spec.codec == Codec::Opus { WireKind::Audio } else { WireKind::Video };
                    let stream = format!("{}|{}", s.spec.participant, s.spec.track);
                    s.mid = Some(api.add_media(
                        kind,
                        Direction::SendOnly,
                        Some(stream),
                        Some(s.spec.track.clone()),
                        None,
                    ));
                }
                (false, Some(mid)) => api.set_direction(mid, Direction::Inactive),
                _ => {}
            }
        }
        if self.restart {
            api.ice_restart(true);
        }
        let restarted = std::mem::take(&mut self.restart);
        self.changed = false;
        let Some((offer, pending)) = api.apply() else { return };
        self.pending = Some(pending);
        self.offer_id += 1;
        self.send_offer(offer.to_sdp_string(), first || restarted);
    }

    pub(super) fn send_offer(&mut self, sdp: String, trickle: bool) {
        let mid_to_track_id: HashMap<String, String> = self
            .subs
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| Some((s.mid?.to_string(), s.spec.track.clone())))
            .collect();
        let by_mid: HashMap<String, String> =
            self.subs.iter().filter_map(|s| Some((s.mid?.to_string(), s.spec.track.clone()))).collect();
        let ssrcs: HashMap<u32, String> = ssrcs_by_mid(&sdp)
            .into_iter()
            .filter_map(|(ssrc, mid)| Some((ssrc, by_mid.get(&mid)?.clone())))
            .collect();
        self.hold_for_new_streams(&sdp, &ssrcs);
        self.netem.set_ssrcs(ssrcs);
        let mid0 = first_mid(&sdp).unwrap_or("0").to_owned();
        let offer =
            proto::SessionDescription { r#type: "offer".into(), sdp, id: self.offer_id, mid_to_track_id };
        self.ctx.outbox.send(proto::signal_response::Message::Offer(offer));
        if trickle {
            for c in &self.cands {
                let t = proto::TrickleRequest {
                    candidate_init: candidate_init_json(c, &mid0),
                    target: proto::SignalTarget::Subscriber as i32,
                    r#final: false,
                };
                self.ctx.outbox.send(proto::signal_response::Message::Trickle(t));
            }
        }
    }

    pub(super) fn answer(&mut self, sdp: &str) {
        let Some(pending) = self.pending.take() else {
            return tracing::warn!(participant = %self.ctx.sid, "answer without an outstanding offer");
        };
        let result = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| e.to_string())
            .and_then(|a| self.rtc.sdp_api().accept_answer(pending, a).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(participant = %self.ctx.sid, "failed to apply the answer: {e}");
        }
        self.pts.clear();
    }

    /// Registers the primary SSRCs first seen in `sdp`: RTCP waits for their first RTP.
    pub(super) fn hold_for_new_streams(&mut self, sdp: &str, ssrcs: &HashMap<u32, String>) {
        let rtx = rtx_ssrcs(sdp);
        let until = Instant::now() + RTCP_HOLD;
        for ssrc in ssrcs.keys().filter(|s| !rtx.contains(s)) {
            if self.known.insert(*ssrc) {
                self.silent.insert(*ssrc, until);
            }
        }
    }
}
