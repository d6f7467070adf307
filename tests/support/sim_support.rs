//! Shared by the `sim_*` tests and the `sim_load` bench: tokens, a tiny HTTP client for the
//! control API, and a str0m subscriber bot driven by livekit-signaling's `SignalClient`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_api::access_token::{AccessToken, VideoGrants};
use livekit_protocol as proto;
use livekit_signaling::{SignalClient, SignalEvent, SignalEvents, SignalOptions};
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

pub const KEY: &str = "devkey";
pub const SECRET: &str = "devsecret-devsecret-devsecret-0123";

/// A hidden recorder token for `room`, as LiveKit egress makes them.
pub fn recorder_token(room: &str, identity: &str) -> String {
    AccessToken::with_api_key(KEY, SECRET)
        .with_identity(identity)
        .with_kind("egress")
        .with_grants(livekit_recorder::livekit::token::recorder_grants(room))
        .to_jwt()
        .expect("token")
}

/// A plain (visible) participant token.
pub fn user_token(room: &str, identity: &str) -> String {
    let grants = VideoGrants { room_join: true, room: room.into(), ..Default::default() };
    AccessToken::with_api_key(KEY, SECRET)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
        .expect("token")
}

/// Starts a simulator on loopback with these webhook URLs.
pub async fn start_sim(webhooks: Vec<String>) -> livekit_recorder::sim::SimHandle {
    // livekit-net's WebSocket connector honours HTTP_PROXY without NO_PROXY (pitfall P5):
    // drop proxy settings once, and only when present, before any client reads them.
    static NO_PROXY: std::sync::Once = std::sync::Once::new();
    NO_PROXY.call_once(|| {
        for v in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"] {
            if std::env::var_os(v).is_some() {
                std::env::remove_var(v);
            }
        }
    });
    let mut cfg = livekit_recorder::sim::SimConfig::new(KEY, SECRET);
    cfg.webhook_urls = webhooks;
    livekit_recorder::sim::start(cfg).await.expect("start sim")
}

/// `(status, JSON body)` of a control API call.
pub async fn call(
    addr: SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut req = client.request(method, format!("http://{addr}{path}")).timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// Creates a synthetic participant; returns the response JSON.
pub async fn add_participant(
    addr: SocketAddr,
    room: &str,
    identity: &str,
    video: Option<&str>,
    audio: bool,
) -> serde_json::Value {
    let body = serde_json::json!({ "room": room, "identity": identity, "video": video, "audio": if audio { Some("opus") } else { None } });
    let (status, json) = call(addr, reqwest::Method::POST, "/sim/participants", Some(body)).await;
    assert_eq!(status, 200, "{json}");
    json
}

/// A frame the bot received.
#[derive(Debug, Clone)]
pub struct RecvFrame {
    pub track: String,
    pub rtp_ts: u32,
    pub data: Arc<[u8]>,
    /// The last sender report of the stream: (NTP as UNIX ns, RTP timestamp).
    pub sr: Option<(u64, u32)>,
}

/// A subscriber bot: SignalClient + str0m answering the simulator's offers.
pub struct Bot {
    pub signal: SignalClient,
    events: SignalEvents,
    pub join: proto::JoinResponse,
    rtc: Rtc,
    sock: UdpSocket,
    local: SocketAddr,
    cand: Candidate,
    pub mid_track: HashMap<String, String>,
    pub offers: Vec<proto::SessionDescription>,
    /// Size of each answer sent, as encoded on the WebSocket (bytes).
    pub answer_bytes: Vec<usize>,
    pub updates: Vec<proto::ParticipantInfo>,
    pub frames: Vec<RecvFrame>,
    pub connected: bool,
    pub closed: bool,
}

impl Bot {
    /// Joins `url` with `token`.
    pub async fn join(url: &str, token: &str, auto_subscribe: bool) -> Bot {
        let mut opts = SignalOptions::default();
        opts.auto_subscribe = auto_subscribe;
        opts.adaptive_stream = false;
        opts.region_failover = false;
        opts.client_capabilities = vec![proto::client_info::Capability::CapCompressionDeflateRaw];
        let (signal, join, events) =
            SignalClient::connect(url, token, opts, None).await.expect("signal connect");
        let config = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_vp9(true)
            .enable_h264(true)
            .enable_av1(true);
        let mut rtc = config.build(Instant::now());
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = sock.local_addr().expect("local addr");
        let cand = Candidate::host(local, "udp").expect("candidate");
        rtc.add_local_candidate(cand.clone());
        Bot {
            signal,
            events,
            join,
            rtc,
            sock,
            local,
            cand,
            mid_track: HashMap::new(),
            offers: Vec::new(),
            answer_bytes: Vec::new(),
            updates: Vec::new(),
            frames: Vec::new(),
            connected: false,
            closed: false,
        }
    }

    /// Subscribes to (or unsubscribes from) `tracks`.
    pub async fn subscribe(&self, tracks: &[String], on: bool) {
        let sub = proto::UpdateSubscription {
            track_sids: tracks.to_vec(),
            subscribe: on,
            participant_tracks: vec![],
        };
        self.signal.send(Req::Subscription(sub)).await;
    }

    /// Pumps signalling and media until `pred` holds or `timeout` passes; returns `pred`.
    pub async fn run_until(&mut self, timeout: Duration, pred: impl Fn(&Bot) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 2000];
        while Instant::now() < deadline {
            if pred(self) {
                return true;
            }
            let wake = self.drain().min(deadline);
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Some(SignalEvent::Message(m)) => self.on_signal(*m).await,
                    Some(SignalEvent::Close(_)) | None => { self.closed = true; return pred(self) }
                },
                r = self.sock.recv_from(&mut buf) => if let Ok((n, src)) = r {
                    if let Ok(rx) = Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                        let _ = self.rtc.handle_input(Input::Receive(Instant::now(), rx));
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => { let _ = self.rtc.handle_input(Input::Timeout(Instant::now())); }
            }
        }
        pred(self)
    }

    /// Resumes after the signal socket was dropped.
    pub async fn resume(&mut self) -> proto::ReconnectResponse {
        let rr = self.signal.restart(proto::ReconnectReason::RrSignalDisconnected).await.expect("resume");
        self.signal.set_reconnected().await;
        self.closed = false;
        rr
    }

    /// Asks for a keyframe on every received video mid.
    pub fn request_keyframes(&mut self) {
        let all: Vec<String> = self.mid_track.keys().cloned().collect();
        for m in all {
            if let Some(rx) = self.rtc.direct_api().stream_rx_by_mid(Mid::from(m.as_str()), None) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
            }
        }
    }

    async fn on_signal(&mut self, m: Resp) {
        match m {
            Resp::Offer(sd) => self.answer(sd).await,
            Resp::Trickle(t) => {
                let v: serde_json::Value = serde_json::from_str(&t.candidate_init).expect("candidate JSON");
                assert!(v["sdpMid"].is_string() && v["sdpMLineIndex"].is_number(), "{v}");
                if let Some(c) = v["candidate"].as_str().and_then(|c| Candidate::from_sdp_string(c).ok()) {
                    self.rtc.add_remote_candidate(c);
                }
            }
            Resp::Update(u) => self.updates.extend(u.participants),
            _ => {}
        }
    }

    async fn answer(&mut self, sd: proto::SessionDescription) {
        self.mid_track.extend(sd.mid_to_track_id.clone());
        let offer = SdpOffer::from_sdp_string(&sd.sdp).expect("offer SDP");
        let answer = self.rtc.sdp_api().accept_offer(offer).expect("accept offer");
        let first = self.offers.is_empty();
        let id = sd.id;
        self.offers.push(sd);
        let answer = proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer.to_sdp_string(),
            id,
            mid_to_track_id: Default::default(),
        };
        let req = proto::SignalRequest { message: Some(Req::Answer(answer)) };
        self.answer_bytes.push(prost::Message::encoded_len(&req));
        self.signal.send(req.message.expect("answer")).await;
        if first {
            let init = serde_json::json!({ "candidate": self.cand.to_sdp_string(), "sdpMid": "0", "sdpMLineIndex": 0 }).to_string();
            let t = proto::TrickleRequest {
                candidate_init: init,
                target: proto::SignalTarget::Subscriber as i32,
                r#final: false,
            };
            self.signal.send(Req::Trickle(t)).await;
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
                Err(e) => panic!("bot rtc failed: {e}"),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::MediaData(d) => {
                let track = self.mid_track.get(&d.mid.to_string()).cloned().unwrap_or_default();
                let sr = d.last_sender_info.map(|si| {
                    let ns =
                        si.ntp_time.duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.as_nanos() as u64);
                    (ns, si.rtp_time.numer() as u32)
                });
                self.frames.push(RecvFrame { track, rtp_ts: d.time.numer() as u32, data: d.data, sr });
            }
            _ => {}
        }
    }
}

/// Hex SHA-256 of `to_stored(codec, frame)`.
pub fn stored_hash(codec: livekit_recorder::media::Codec, frame: &[u8]) -> String {
    use sha2::Digest;
    let mut out = Vec::new();
    livekit_recorder::media::codec::to_stored(codec, frame, &mut out);
    sha2::Sha256::digest(&out).iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook body for `event` and its `Authorization` value, signed like LiveKit does.
pub fn signed_hook(event: &str, id: &str, room: &str, identity: &str, secret: &str) -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest;
    let ev = livekit_protocol::WebhookEvent {
        event: event.into(),
        id: id.into(),
        room: Some(livekit_protocol::Room { name: room.into(), ..Default::default() }),
        participant: Some(livekit_protocol::ParticipantInfo {
            identity: identity.into(),
            ..Default::default()
        }),
        created_at: 1,
        ..Default::default()
    };
    let body = serde_json::to_string(&ev).expect("json");
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()));
    let jwt = livekit_api::access_token::AccessToken::with_api_key(KEY, secret)
        .with_sha256(&sha)
        .with_ttl(Duration::from_secs(60))
        .to_jwt()
        .expect("jwt");
    (body, jwt)
}

/// POSTs a signed webhook to the recorder at `addr`: `(status, JSON body)`.
pub async fn post_hook(addr: SocketAddr, (body, jwt): (String, String)) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let resp = client
        .post(format!("http://{addr}/recordings/webhooks"))
        .header("authorization", jwt)
        .header("content-type", "application/webhook+json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(serde_json::Value::Null))
}
