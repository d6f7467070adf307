//! A minimal LiveKit-compatible server for the client's integration tests, trimmed from the
//! scratch verification crate: actix-web + actix-ws `/rtc` (protobuf signalling, Bearer token)
//! and a str0m ICE-lite SFU side that offers RED+Opus and VP8+RTX like LiveKit, adds an m-line
//! per subscribed track, writes numbered frames and records every frame it wrote.
//!
//! The room (one `Rtc`, one UDP socket) outlives WebSocket sessions, so a test can close the
//! WebSocket and watch the client resume while media keeps flowing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use livekit_api::access_token::TokenVerifier;
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

pub const KEY: &str = "devkey";
pub const SECRET: &str = "devsecret-devsecret-devsecret-0123";
pub const ROOM: &str = "room1";
pub const PUBLISHER: &str = "PA_pub0001";
pub const AUDIO: &str = "TR_AMaudio1";
pub const VIDEO: &str = "TR_VCvideo1";
const BOT_SID: &str = "PA_bot0001";

/// What the server saw.
#[derive(Default)]
pub struct Stats {
    pub answers: AtomicUsize,
    pub answers_with_red: AtomicUsize,
    pub trickles: AtomicUsize,
    pub subscriptions: AtomicUsize,
    pub track_settings: AtomicUsize,
    pub plis: AtomicUsize,
    pub resumes: AtomicUsize,
    pub sync_states: AtomicUsize,
    pub leaves: AtomicUsize,
    pub last_query: Mutex<String>,
    /// Every frame written: (track sid, bytes).
    pub sent: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Stats {
    pub fn get(&self, c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }
}

enum RoomInput {
    Ws { tx: mpsc::UnboundedSender<Resp>, reconnect: bool },
    Req(Box<Req>),
}

struct AppState {
    verifier: TokenVerifier,
    room: mpsc::UnboundedSender<RoomInput>,
    stats: Arc<Stats>,
    kick: Arc<Notify>,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    kick: Arc<Notify>,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Starts the HTTP server and the room on 127.0.0.1.
    pub async fn start() -> TestServer {
        for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
            std::env::remove_var(var);
        }
        let stats = Arc::new(Stats::default());
        let (room_tx, room_rx) = mpsc::unbounded_channel();
        tokio::spawn(run_room(room_rx, stats.clone()));
        let kick = Arc::new(Notify::new());
        let state = web::Data::new(AppState {
            verifier: TokenVerifier::with_api_key(KEY, SECRET),
            room: room_tx,
            stats: stats.clone(),
            kick: kick.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/rtc", web::get().to(rtc_handler))
                .route("/rtc/validate", web::get().to(validate_handler))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind test server");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TestServer { addr, stats, kick, handle }
    }

    /// The URL the client connects to.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes the current WebSocket (the room and its media stay).
    pub fn kick(&self) {
        self.kick.notify_waiters();
    }

    /// Frames the server wrote for `track`.
    pub fn sent(&self, track: &str) -> Vec<Vec<u8>> {
        let sent = self.stats.sent.lock().unwrap();
        sent.iter().filter(|(t, _)| t == track).map(|(_, b)| b.clone()).collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

async fn validate_handler(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match bearer(&req).map(|t| state.verifier.verify(&t)) {
        Some(Ok(_)) => HttpResponse::Ok().body("success"),
        _ => HttpResponse::Unauthorized().body("invalid token"),
    }
}

async fn rtc_handler(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    *state.stats.last_query.lock().unwrap() = req.query_string().to_owned();
    let token = bearer(&req).or_else(|| query.get("access_token").cloned());
    let claims = match token.map(|t| state.verifier.verify(&t)) {
        Some(Ok(c)) if c.video.room_join => c,
        _ => return Ok(HttpResponse::Unauthorized().body("bad token")),
    };
    let reconnect = query.get("reconnect").is_some_and(|v| v == "1");
    let (resp, session, stream) = actix_ws::handle(&req, body)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = state.room.send(RoomInput::Ws { tx, reconnect });
    let _ = claims;
    actix_web::rt::spawn(ws_session(session, stream, rx, state.into_inner()));
    Ok(resp)
}

async fn ws_session(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut rx: mpsc::UnboundedReceiver<Resp>,
    state: Arc<AppState>,
) {
    let kicked = state.kick.clone();
    loop {
        tokio::select! {
            msg = stream.recv() => {
                let Some(Ok(actix_ws::Message::Binary(b))) = msg else {
                    if matches!(msg, Some(Ok(_))) { continue } else { break }
                };
                if let Ok(proto::SignalRequest { message: Some(m) }) = proto::SignalRequest::decode(b) {
                    let _ = state.room.send(RoomInput::Req(Box::new(m)));
                }
            }
            out = rx.recv() => {
                let Some(m) = out else { break };
                let bytes = proto::SignalResponse { message: Some(m) }.encode_to_vec();
                if session.binary(bytes).await.is_err() { break }
            }
            _ = kicked.notified() => break,
        }
    }
    let _ = session.close(None).await;
}

/// The SFU side of the bot's subscriber PC.
struct Room {
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    stats: Arc<Stats>,
    ws: Option<mpsc::UnboundedSender<Resp>>,
    pending: Option<SdpPendingOffer>,
    offer_id: u32,
    renegotiate: bool,
    mids: HashMap<String, Mid>,
    want: Vec<String>,
    connected: bool,
    key_next: bool,
    n: u64,
}

async fn run_room(mut inputs: mpsc::UnboundedReceiver<RoomInput>, stats: Arc<Stats>) {
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
        mids: HashMap::new(),
        want: Vec::new(),
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

fn participant(sid: &str, identity: &str) -> proto::ParticipantInfo {
    let track = |sid: &str, t: proto::TrackType, mime: &str| proto::TrackInfo {
        sid: sid.into(),
        r#type: t as i32,
        mime_type: mime.into(),
        width: if t == proto::TrackType::Video { 320 } else { 0 },
        height: if t == proto::TrackType::Video { 240 } else { 0 },
        ..Default::default()
    };
    proto::ParticipantInfo {
        sid: sid.into(),
        identity: identity.into(),
        state: proto::participant_info::State::Active as i32,
        is_publisher: true,
        version: 1,
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
            return;
        }
        let me =
            proto::ParticipantInfo { sid: BOT_SID.into(), identity: "lkrec-t".into(), ..Default::default() };
        self.send(Resp::Join(proto::JoinResponse {
            room: Some(proto::Room { sid: "RM_room0001".into(), name: ROOM.into(), ..Default::default() }),
            participant: Some(me),
            other_participants: vec![participant(PUBLISHER, "alice")],
            subscriber_primary: true,
            ping_interval: 1,
            ping_timeout: 5,
            ..Default::default()
        }));
        self.offer();
        let cand = Candidate::host(self.local, "udp").expect("candidate");
        let init = serde_json::json!({"candidate": cand.to_sdp_string(), "sdpMid": "0", "sdpMLineIndex": 0});
        self.send(Resp::Trickle(proto::TrickleRequest {
            candidate_init: init.to_string(),
            target: proto::SignalTarget::Subscriber as i32,
            r#final: false,
        }));
    }

    /// Offers the data channel (first offer) and every wanted track not negotiated yet, unless
    /// an offer is still unanswered (then after its answer).
    fn offer(&mut self) {
        if self.pending.is_some() {
            self.renegotiate = true;
            return;
        }
        let first = self.offer_id == 0;
        let mut api = self.rtc.sdp_api();
        if first {
            api.add_channel("_reliable".into()); // LiveKit always has a data channel m-line
        }
        for t in &self.want {
            if self.mids.contains_key(t) {
                continue;
            }
            let kind = if t == AUDIO { MediaKind::Audio } else { MediaKind::Video };
            let stream = format!("{PUBLISHER}|{t}");
            let mid = api.add_media(kind, Direction::SendOnly, Some(stream), Some(t.clone()), None);
            self.mids.insert(t.clone(), mid);
        }
        let Some((offer, pending)) = api.apply() else { return };
        self.pending = Some(pending);
        self.offer_id += 1;
        let mid_to_track_id = self.mids.iter().map(|(t, m)| (m.to_string(), t.clone())).collect();
        self.send(Resp::Offer(proto::SessionDescription {
            r#type: "offer".into(),
            sdp: offer.to_sdp_string(),
            id: self.offer_id,
            mid_to_track_id,
        }));
    }

    fn on_request(&mut self, r: Req) {
        let s = self.stats.clone();
        match r {
            Req::PingReq(p) => {
                self.send(Resp::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: 0 }))
            }
            Req::Answer(sd) => {
                s.answers.fetch_add(1, Ordering::SeqCst);
                if sd.sdp.to_ascii_lowercase().contains(" red/") {
                    s.answers_with_red.fetch_add(1, Ordering::SeqCst);
                }
                let (Ok(answer), Some(p)) = (SdpAnswer::from_sdp_string(&sd.sdp), self.pending.take()) else {
                    return;
                };
                self.rtc.sdp_api().accept_answer(p, answer).expect("accept answer");
                if std::mem::take(&mut self.renegotiate) {
                    self.offer();
                }
            }
            Req::Trickle(t) => {
                s.trickles.fetch_add(1, Ordering::SeqCst);
                let v: serde_json::Value = serde_json::from_str(&t.candidate_init).expect("candidate json");
                assert!(v["sdpMid"].is_string() && v["sdpMLineIndex"].is_number(), "{v}");
                let line = v["candidate"].as_str().expect("candidate string");
                self.rtc.add_remote_candidate(Candidate::from_sdp_string(line).expect("candidate"));
            }
            Req::Subscription(sub) => {
                s.subscriptions.fetch_add(1, Ordering::SeqCst);
                if sub.subscribe {
                    self.add_tracks(&sub.track_sids);
                }
            }
            Req::TrackSetting(_) => drop(s.track_settings.fetch_add(1, Ordering::SeqCst)),
            Req::SyncState(_) => drop(s.sync_states.fetch_add(1, Ordering::SeqCst)),
            Req::Leave(_) => drop(s.leaves.fetch_add(1, Ordering::SeqCst)),
            _ => {}
        }
    }

    fn add_tracks(&mut self, tracks: &[String]) {
        for t in tracks {
            if !self.want.contains(t) {
                self.want.push(t.clone());
            }
        }
        self.offer();
    }

    /// Opus every 20 ms, VP8 (2 RTP packets per frame) every 40 ms; every frame is unique.
    fn write_media(&mut self) {
        self.n += 1;
        let n = self.n;
        if let Some(mid) = self.mids.get(AUDIO).copied() {
            let frame = vec![0xfc, (n >> 8) as u8, n as u8, 0xaa];
            self.write(mid, Codec::Opus, MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ), frame, AUDIO);
        }
        if n % 2 == 0 {
            if let Some(mid) = self.mids.get(VIDEO).copied() {
                let key = self.key_next || n % 50 == 0;
                let mut frame = vec![if key { 0x10 } else { 0x11 }, 0x02, 0x00, 0x9d, 0x01, 0x2a];
                frame.extend_from_slice(&n.to_be_bytes());
                frame.resize(1500, (n % 251) as u8);
                if self.write(mid, Codec::Vp8, MediaTime::new(n * 1800, Frequency::NINETY_KHZ), frame, VIDEO)
                {
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
