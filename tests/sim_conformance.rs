//! Conformance of the LiveKit client against the simulator (`livekit_recorder::sim`) over real
//! WebSocket signalling and ICE/DTLS/SRTP on loopback: every frame the client delivers must
//! hash-match (stored form, `media::codec::to_stored`) and carry the RTP timestamp of a frame
//! in the simulator's `/sent` log; selective subscription, late publish, leave, and signal
//! resume after `drop_signal`, PLI -> new keyframe.
//!
//! DRAFT (named `.draft` so branch `lkclient` builds without the simulator): rename to
//! `tests/sim_conformance.rs` once `sim` is merged. Verified against `sim` at b6f4372 in a
//! temporary, uncommitted merge: 7/7 pass. Needs no dev-dependency beyond the crate's
//! own (`sha2`); the control API is called with a minimal HTTP/1.1 client.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use livekit_recorder::ids::{ParticipantSid, TrackSid};
use livekit_recorder::livekit::{
    connect, recorder_token, ConnectOptions, ParticipantSnapshot, ParticipantState, ReceivedFrame,
    RoomConnection, RoomEvent,
};
use livekit_recorder::media::{codec, Codec, MediaKind};
use livekit_recorder::sim::{self, SimConfig, SimHandle};
use sha2::Digest as _;
use support::{KEY, SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(15);

async fn start_sim() -> SimHandle {
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
        std::env::remove_var(var);
    }
    sim::start(SimConfig::new(KEY, SECRET)).await.expect("simulator starts")
}

/// Minimal HTTP/1.1 client for the control API (no proxy, JSON in and out).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect control API");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    let json = if chunked { dechunk(rest) } else { rest.to_owned() };
    (status, serde_json::from_str(&json).unwrap_or(serde_json::Value::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

async fn add_participant(sim: &SimHandle, room: &str, identity: &str, video: Option<&str>) -> Vec<String> {
    let body = serde_json::json!({"room": room, "identity": identity, "video": video, "audio": "opus", "av_offset_ms": 700});
    let (status, json) = http(sim.http_addr(), "POST", "/sim/participants", Some(body)).await;
    assert_eq!(status, 200, "{json}");
    json["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["sid"].as_str().expect("sid").to_owned())
        .collect()
}

/// /sent as track sid -> (codec, sha256 -> every (rtp_ts, keyframe) sent with that hash; encoded
/// loops repeat and Opus silence frames are identical, so a hash can occur many times).
type SentIndex = HashMap<String, (Codec, HashMap<String, Vec<(u32, bool)>>)>;

async fn sent_index(sim: &SimHandle, room: &str) -> SentIndex {
    let (status, sent) = http(sim.http_addr(), "GET", &format!("/sim/rooms/{room}/sent"), None).await;
    assert_eq!(status, 200, "{sent}");
    let mut out = HashMap::new();
    for t in sent["tracks"].as_array().expect("tracks") {
        let codec = Codec::parse(t["codec"].as_str().expect("codec")).expect("known codec");
        let mut by_hash: HashMap<String, Vec<(u32, bool)>> = HashMap::new();
        for f in t["frames"].as_array().expect("frames") {
            let hash = f["sha256"].as_str().expect("sha256").to_owned();
            let ts = f["rtp_ts"].as_u64().expect("rtp_ts") as u32;
            by_hash.entry(hash).or_default().push((ts, f["keyframe"].as_bool().unwrap_or(false)));
        }
        out.insert(t["sid"].as_str().expect("sid").to_owned(), (codec, by_hash));
    }
    out
}

fn stored_hash(codec: Codec, payload: &[u8]) -> String {
    let mut stored = Vec::new();
    codec::to_stored(codec, payload, &mut stored);
    sha2::Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect()
}

/// The client side of a test: events, frames by track, participants.
struct Client {
    conn: RoomConnection,
    rx: Receiver<RoomEvent>,
    frames: HashMap<TrackSid, Vec<ReceivedFrame>>,
    participants: HashMap<ParticipantSid, ParticipantSnapshot>,
    subscribed: HashMap<TrackSid, (MediaKind, Option<Codec>)>,
    log: Vec<String>,
}

impl Client {
    async fn join(sim: &SimHandle, room: &str) -> Client {
        let token =
            recorder_token(KEY, SECRET, room, "conformance", Duration::from_secs(600)).expect("token");
        let (conn, rx) = connect(&sim.ws_url(), &token, ConnectOptions::default()).await.expect("join");
        let mut c = Client {
            conn,
            rx,
            frames: HashMap::new(),
            participants: HashMap::new(),
            subscribed: HashMap::new(),
            log: Vec::new(),
        };
        c.until(|c| !c.log.is_empty()).await;
        assert_eq!(c.log[0], "joined");
        c
    }

    fn count(&self, track: &str) -> usize {
        self.frames.get(track).map_or(0, Vec::len)
    }

    fn apply(&mut self, ev: RoomEvent) {
        match ev {
            RoomEvent::Joined { participants, .. } => {
                self.log.push("joined".into());
                self.participants.extend(participants.into_iter().map(|p| (p.sid.clone(), p)));
            }
            RoomEvent::ParticipantsChanged(ps) => {
                for p in ps {
                    self.log.push(format!("participant {} {:?}", p.identity, p.state));
                    self.participants.insert(p.sid.clone(), p);
                }
            }
            RoomEvent::TrackSubscribed { track_sid, kind, codec, .. } => {
                self.log.push(format!("subscribed {track_sid}"));
                self.subscribed.insert(track_sid, (kind, codec));
            }
            RoomEvent::TrackUnsubscribed { track_sid } => self.log.push(format!("unsubscribed {track_sid}")),
            RoomEvent::Frame { track_sid, frame } => self.frames.entry(track_sid).or_default().push(frame),
            RoomEvent::Reconnecting => self.log.push("reconnecting".into()),
            RoomEvent::Reconnected => self.log.push("reconnected".into()),
            RoomEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
        }
    }

    /// Handles events until `done` holds (panics after [`WAIT`]).
    async fn until(&mut self, done: impl Fn(&Client) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv()).await;
            let ev = ev.unwrap_or_else(|_| panic!("timed out; log: {:?}", self.log)).expect("channel open");
            self.apply(ev);
        }
    }

    fn participant(&self, identity: &str) -> Option<&ParticipantSnapshot> {
        self.participants.values().find(|p| p.identity == identity)
    }

    async fn subscribe_all(&mut self, identity: &str) -> Vec<TrackSid> {
        self.until(|c| c.participant(identity).is_some_and(|p| p.tracks.len() == 2)).await;
        let p = self.participant(identity).expect("participant").clone();
        let tracks: Vec<TrackSid> = p.tracks.iter().map(|t| t.sid.clone()).collect();
        self.conn.subscribe(&p.sid, &tracks, true).await.expect("subscribe");
        tracks
    }
}

/// Every received frame is in /sent with the same RTP timestamp and keyframe flag.
fn assert_frames_in_sent(c: &Client, index: &SentIndex) {
    for (track, frames) in &c.frames {
        let (codec, by_hash) = index.get(track.as_str()).expect("received track is in /sent");
        for f in frames {
            let hash = stored_hash(*codec, &f.payload);
            let sent = by_hash
                .get(&hash)
                .unwrap_or_else(|| panic!("{codec} frame of {} bytes not in /sent", f.payload.len()));
            let &(_, key) = sent.iter().find(|(ts, _)| *ts == f.rtp_time).unwrap_or_else(|| {
                panic!("{codec} frame at RTP {} not in /sent with that timestamp", f.rtp_time)
            });
            if codec.kind() == MediaKind::Video {
                assert_eq!(f.keyframe, Some(key), "{codec} keyframe flag");
            }
        }
    }
}

async fn frames_match_sent(video: &str) {
    let sim = start_sim().await;
    let tracks = add_participant(&sim, "conf", "alice", Some(video)).await;
    let mut c = Client::join(&sim, "conf").await;
    let subscribed = c.subscribe_all("alice").await;
    assert_eq!(
        subscribed.iter().map(|t| t.as_str()).collect::<HashSet<_>>(),
        tracks.iter().map(|t| t.as_str()).collect::<HashSet<_>>()
    );
    c.until(|c| tracks.iter().all(|t| c.count(t) >= 60)).await;
    for t in &tracks {
        let (kind, codec) = c.subscribed[t.as_str()];
        assert_eq!(codec.map(Codec::kind), Some(kind));
    }
    // Sender reports arrive (the sim sends them every few seconds).
    c.until(|c| tracks.iter().all(|t| c.frames[t.as_str()].iter().any(|f| f.sender_report.is_some()))).await;
    assert_frames_in_sent(&c, &sent_index(&sim, "conf").await);
    assert!(c.conn.stats().frames_received > 0);
    c.conn.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_frames_match_sent() {
    frames_match_sent("vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_frames_match_sent() {
    frames_match_sent("h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requested_participant_is_received() {
    let sim = start_sim().await;
    add_participant(&sim, "sel", "alice", Some("vp8")).await;
    let bobs = add_participant(&sim, "sel", "bob", Some("vp8")).await;
    let mut c = Client::join(&sim, "sel").await;
    let alices = c.subscribe_all("alice").await;
    c.until(|c| alices.iter().all(|t| c.count(t) >= 30)).await;
    assert!(bobs.iter().all(|t| c.count(t) == 0 && !c.subscribed.contains_key(t.as_str())));
    c.conn.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_publisher_then_leave() {
    let sim = start_sim().await;
    let mut c = Client::join(&sim, "late").await;
    assert!(c.participants.is_empty());
    add_participant(&sim, "late", "alice", Some("vp8")).await;
    let tracks = c.subscribe_all("alice").await;
    c.until(|c| tracks.iter().all(|t| c.count(t) >= 20)).await;
    let (status, _) = http(sim.http_addr(), "DELETE", "/sim/participants/late/alice", None).await;
    assert_eq!(status, 200);
    c.until(|c| c.participant("alice").is_some_and(|p| p.state == ParticipantState::Disconnected)).await;
    c.conn.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_signal_resumes_and_media_continues() {
    let sim = start_sim().await;
    add_participant(&sim, "resume", "alice", Some("vp8")).await;
    let mut c = Client::join(&sim, "resume").await;
    let tracks = c.subscribe_all("alice").await;
    c.until(|c| tracks.iter().all(|t| c.count(t) >= 20)).await;
    let body = serde_json::json!({"drop_signal": true});
    let (status, json) =
        http(sim.http_addr(), "POST", "/sim/participants/resume/alice/faults", Some(body)).await;
    assert_eq!(status, 200, "{json}");
    c.until(|c| c.log.iter().any(|l| l == "reconnected")).await;
    let before: Vec<usize> = tracks.iter().map(|t| c.count(t)).collect();
    c.until(|c| tracks.iter().zip(&before).all(|(t, n)| c.count(t) >= n + 20)).await;
    assert_frames_in_sent(&c, &sent_index(&sim, "resume").await);
    assert_eq!(c.conn.stats().resumes, 1);
    c.conn.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyframe_request_reaches_the_publisher() {
    let sim = start_sim().await;
    add_participant(&sim, "pli", "alice", Some("vp8")).await;
    let mut c = Client::join(&sim, "pli").await;
    let tracks = c.subscribe_all("alice").await;
    let video =
        tracks.iter().find(|t| c.subscribed.get(*t).is_some_and(|s| s.0 == MediaKind::Video)).cloned();
    c.until(|c| tracks.iter().all(|t| c.count(t) >= 10)).await;
    let video = video
        .or_else(|| tracks.iter().find(|t| c.subscribed[*t].0 == MediaKind::Video).cloned())
        .expect("video");
    // just after a keyframe of the loop (every 2 s), so that the next one is far away
    let keys_before = c.frames[&video].iter().filter(|f| f.keyframe == Some(true)).count();
    c.until(|c| c.frames[&video].iter().filter(|f| f.keyframe == Some(true)).count() > keys_before).await;
    let keys_before = keys_before + 1;
    c.until(|c| c.frames[&video].last().is_some_and(|f| f.keyframe != Some(true))).await;
    let asked_after = c.frames[&video].len();
    c.conn.request_keyframe(&video).await.expect("pli");
    c.until(|c| c.frames[&video].iter().filter(|f| f.keyframe == Some(true)).count() > keys_before).await;
    assert!(c.conn.stats().plis_sent >= 1);
    // answered as an encoder answers: a keyframe within a few frames, at the regular capture
    // times (30 fps: 3000 ticks apart), not the loop's next keyframe up to 2 s later
    let frames = &c.frames[&video][asked_after - 1..];
    let key = frames.iter().position(|f| f.keyframe == Some(true)).expect("the keyframe");
    assert!(key <= 8, "the keyframe came {key} frames after the request");
    for w in frames[..=key].windows(2) {
        let step = w[1].rtp_time.wrapping_sub(w[0].rtp_time);
        assert_eq!(step, 3000, "no hole in capture time up to the keyframe");
    }
    c.conn.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_reordering_are_repaired_with_nack_and_rtx() {
    let sim = start_sim().await;
    add_participant(&sim, "loss", "alice", Some("vp8")).await;
    let mut c = Client::join(&sim, "loss").await;
    let tracks = c.subscribe_all("alice").await;
    c.until(|c| tracks.iter().all(|t| c.count(t) >= 10)).await;
    let faults = serde_json::json!({"loss_pct": 5.0, "reorder_pct": 5.0});
    let (status, json) =
        http(sim.http_addr(), "POST", "/sim/participants/loss/alice/faults", Some(faults)).await;
    assert_eq!(status, 200, "{json}");
    let before: Vec<usize> = tracks.iter().map(|t| c.count(t)).collect();
    c.until(|c| tracks.iter().zip(&before).all(|(t, n)| c.count(t) >= n + 75)).await;
    // str0m reports NACK counts with its ingress stats, once a second.
    c.until(|c| c.conn.stats().nacks_sent > 0).await;
    assert_frames_in_sent(&c, &sent_index(&sim, "loss").await);
    c.conn.close().await;
    sim.stop().await;
}
