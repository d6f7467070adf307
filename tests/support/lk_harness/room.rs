//! The SFU side of the bot's subscriber PC: one str0m `Rtc` (ICE-lite, RED+Opus and VP8+RTX
//! like LiveKit) and one UDP socket, living across WebSocket sessions.
//!
//! LiveKit-like behaviour the client must cope with: offers always carry a data channel,
//! RED is listed before Opus, the offer SDP carries no candidates (they come by trickle, the
//! first one before the offer is applied by the client), an unsubscribed track's m-line goes
//! inactive, and a resumed session gets an ICE-restart offer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{RoomInput, Stats, AUDIO, BOT_SID, PUBLISHER, ROOM, VIDEO};

struct Room {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    stats: Arc<Stats>,
    ws: Option<mpsc::UnboundedSender<Resp>>,
    pending: Option<SdpPendingOffer>,
    offer_id: u32,
    renegotiate: bool,
    restart_ice: bool,
    mids: HashMap<String, Mid>,
    want: Vec<String>,
    drop: Vec<String>,
    connected: bool,
    key_next: bool,
    n: u64,
}

pub(super) async fn run_room(mut inputs: mpsc::UnboundedReceiver<RoomInput>, stats: Arc<Stats>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
    let local = sock.local_addr().expect("addr");
    let mut rtc = RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, true) // red/48000/2 listed first, like LiveKit
        .enable_vp8(true) // with RTX
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(local, "udp").expect("candidate"));
    let mut room = Room {
        rtc,
        sock,
        local,
        stats,
        ws: None,
        pending: None,
        offer_id: 0,
        renegotiate: false,
        restart_ice: false,
        mids: HashMap::new(),
        want: Vec::new(),
        drop: Vec::new(),
        connected: false,
        key_next: true,
        n: 0,
    };
    let mut buf = vec![0u8; 2048];
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        let deadline = room.drain();
        tokio::select! {
            input = inputs.recv() => match input {
                Some(RoomInput::Ws { tx, reconnect }) => room.on_ws(tx, reconnect),
                Some(RoomInput::Req(r)) => room.on_request(*r),
                Some(RoomInput::PublisherLeaves) => room.publisher_leaves(),
                None => return,
            },
            r = room.sock.recv_from(&mut buf) => {
                if let Ok((len, src)) = r {
                    if let Ok(recv) = Receive::new(Protocol::Udp, src, room.local, &buf[..len]) {
                        let _ = room.rtc.handle_input(Input::Receive(Instant::now(), recv));
                    }
                }
            }
            _ = tick.tick(), if room.connected => room.write_media(),
            _ = tokio::time::sleep_until(deadline.into()) => {
                let _ = room.rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}

fn participant(state: proto::participant_info::State, version: u32) -> proto::ParticipantInfo {
    let track = |sid: &str, t: proto::TrackType, mime: &str| proto::TrackInfo {
        sid: sid.into(),
        r#type: t as i32,
        mime_type: mime.into(),
        width: if t == proto::TrackType::Video { 320 } else { 0 },
        height: if t == proto::TrackType::Video { 240 } else { 0 },
        ..Default::default()
    };
    proto::ParticipantInfo {
        sid: PUBLISHER.into(),
        identity: "alice".into(),
        state: state as i32,
        is_publisher: true,
        version,
        tracks: vec![
            track(AUDIO, proto::TrackType::Audio, "audio/opus"),
            track(VIDEO, proto::TrackType::Video, "video/VP8"),
        ],
        ..Default::default()
    }
}

impl Room {
    fn send(&self, m: Resp) {
        if let Some(ws) = &self.ws {
            let _ = ws.send(m);
        }
    }

    fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => {
                    let _ = self.sock.try_send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(e)) => self.on_event(e),
                Err(_) => return Instant::now() + Duration::from_millis(20),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::KeyframeRequest(_) => {
                self.stats.plis.fetch_add(1, Ordering::SeqCst);
                self.key_next = true;
            }
            _ => {}
        }
    }

    fn on_ws(&mut self, tx: mpsc::UnboundedSender<Resp>, reconnect: bool) {
        self.ws = Some(tx);
        if reconnect {
            self.stats.resumes.fetch_add(1, Ordering::SeqCst);
            self.send(Resp::Reconnect(proto::ReconnectResponse::default()));
            self.restart_ice = true;
            self.offer();
            return;
        }
        let me =
            proto::ParticipantInfo { sid: BOT_SID.into(), identity: "lkrec-t".into(), ..Default::default() };
        self.send(Resp::Join(proto::JoinResponse {
            room: Some(proto::Room { sid: "RM_room0001".into(), name: ROOM.into(), ..Default::default() }),
            participant: Some(me),
            other_participants: vec![participant(proto::participant_info::State::Active, 1)],
            subscriber_primary: true,
            ping_interval: 1,
            ping_timeout: 5,
            ..Default::default()
        }));
        self.trickle(); // before the offer: the client must hold it until the offer is applied
        self.offer();
    }

    fn trickle(&self) {
        let cand = Candidate::host(self.local, "udp").expect("candidate");
        let init = serde_json::json!({"candidate": cand.to_sdp_string(), "sdpMid": "0", "sdpMLineIndex": 0});
        self.send(Resp::Trickle(proto::TrickleRequest {
            candidate_init: init.to_string(),
            target: proto::SignalTarget::Subscriber as i32,
            r#final: false,
        }));
    }

    fn publisher_leaves(&mut self) {
        let gone = participant(proto::participant_info::State::Disconnected, 2);
        self.send(Resp::Update(proto::ParticipantUpdate { participants: vec![gone] }));
    }

    /// Offers the data channel (first offer), wanted tracks not negotiated yet, unwanted tracks
    /// as inactive and a requested ICE restart, unless an offer is still unanswered.
    fn offer(&mut self) {
        if self.pending.is_some() {
            self.renegotiate = true;
            return;
        }
        let first = self.offer_id == 0;
        let restart = std::mem::take(&mut self.restart_ice);
        let mut api = self.rtc.sdp_api();
        if first {
            api.add_channel("_reliable".into()); // LiveKit always has a data channel m-line
        }
        if restart {
            api.ice_restart(true);
        }
        for t in &self.want {
            if !self.mids.contains_key(t) {
                let kind = if t == AUDIO { MediaKind::Audio } else { MediaKind::Video };
                let stream = format!("{PUBLISHER}|{t}");
                let mid = api.add_media(kind, Direction::SendOnly, Some(stream), Some(t.clone()), None);
                self.mids.insert(t.clone(), mid);
            }
        }
        for t in self.drop.drain(..) {
            if let Some(mid) = self.mids.remove(&t) {
                api.set_direction(mid, Direction::Inactive);
            }
        }
        let Some((offer, pending)) = api.apply() else { return };
        self.pending = Some(pending);
        self.offer_id += 1;
        let mid_to_track_id = self.mids.iter().map(|(t, m)| (m.to_string(), t.clone())).collect();
        let sdp: String =
            offer.to_sdp_string().split_inclusive("\r\n").filter(|l| !l.starts_with("a=candidate")).collect();
        self.send(Resp::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp,
            id: self.offer_id,
            mid_to_track_id,
        }));
        if restart {
            self.trickle();
        }
    }

    fn on_request(&mut self, r: Req) {
        let s = self.stats.clone();
        match r {
            Req::PingReq(p) => {
                self.send(Resp::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: 0 }))
            }
            Req::Answer(sd) => self.on_answer(sd),
            Req::Trickle(t) => {
                s.trickles.fetch_add(1, Ordering::SeqCst);
                let v: serde_json::Value = serde_json::from_str(&t.candidate_init).expect("candidate json");
                assert!(v["sdpMid"].is_string() && v["sdpMLineIndex"].is_number(), "{v}");
                let line = v["candidate"].as_str().expect("candidate string");
                self.rtc.add_remote_candidate(Candidate::from_sdp_string(line).expect("candidate"));
            }
            Req::Subscription(sub) => {
                s.subscriptions.fetch_add(1, Ordering::SeqCst);
                for t in sub.track_sids {
                    if sub.subscribe && !self.want.contains(&t) {
                        self.want.push(t);
                    } else if !sub.subscribe {
                        self.want.retain(|w| *w != t);
                        self.drop.push(t);
                    }
                }
                self.offer();
            }
            Req::TrackSetting(_) => drop(s.track_settings.fetch_add(1, Ordering::SeqCst)),
            Req::SyncState(_) => drop(s.sync_states.fetch_add(1, Ordering::SeqCst)),
            Req::Leave(_) => drop(s.leaves.fetch_add(1, Ordering::SeqCst)),
            _ => {}
        }
    }

    fn on_answer(&mut self, sd: proto::SessionDescription) {
        let s = &self.stats;
        s.answers.fetch_add(1, Ordering::SeqCst);
        if sd.sdp.to_ascii_lowercase().contains(" red/") {
            s.answers_with_red.fetch_add(1, Ordering::SeqCst);
        }
        if sd.sdp.to_ascii_lowercase().contains(" rtx/90000") {
            s.answers_with_rtx.fetch_add(1, Ordering::SeqCst);
        }
        if sd.id != self.offer_id {
            s.answer_id_mismatches.fetch_add(1, Ordering::SeqCst);
        }
        let (Ok(answer), Some(p)) = (SdpAnswer::from_sdp_string(&sd.sdp), self.pending.take()) else {
            return;
        };
        self.rtc.sdp_api().accept_answer(p, answer).expect("accept answer");
        if std::mem::take(&mut self.renegotiate) {
            self.offer();
        }
    }

    /// Opus every 20 ms, VP8 (2 RTP packets per frame) every 40 ms; every frame is unique.
    fn write_media(&mut self) {
        self.n += 1;
        let n = self.n;
        if let Some(mid) = self.mids.get(AUDIO).copied() {
            let frame = vec![0xfc, (n >> 8) as u8, n as u8, 0xaa];
            let ts = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
            self.write(mid, Codec::Opus, ts, frame, AUDIO);
        }
        if n % 2 == 0 {
            if let Some(mid) = self.mids.get(VIDEO).copied() {
                let key = self.key_next || n % 50 == 0;
                let mut frame = vec![if key { 0x10 } else { 0x11 }, 0x02, 0x00, 0x9d, 0x01, 0x2a];
                frame.extend_from_slice(&n.to_be_bytes());
                frame.resize(1500, (n % 251) as u8);
                let ts = MediaTime::new(n * 1800, Frequency::NINETY_KHZ);
                if self.write(mid, Codec::Vp8, ts, frame, VIDEO) {
                    self.key_next &= !key;
                }
            }
        }
    }

    fn write(&mut self, mid: Mid, codec: Codec, ts: MediaTime, frame: Vec<u8>, track: &str) -> bool {
        let Some(w) = self.rtc.writer(mid) else { return false };
        let Some(pt) = w.payload_params().find(|p| p.spec().codec == codec).map(|p| p.pt()) else {
            return false;
        };
        let ok = w.write(pt, Instant::now(), ts, frame.clone()).is_ok();
        if ok {
            self.stats.sent.lock().unwrap().push((track.to_owned(), frame));
        }
        ok
    }
}
