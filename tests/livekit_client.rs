//! The LiveKit client against a minimal in-test LiveKit server (`lk_harness`) over real
//! WebSocket signalling and ICE/DTLS/SRTP on loopback: join, selective subscription, answers
//! without RED, trickle before the offer, byte-exact frames, PLI, signal resume with an
//! ICE-restart offer, unsubscribe (m-line inactive), participant leaving, Leave.

mod support;
use support::lk_harness;

use std::collections::HashMap;
use std::time::Duration;

use livekit_recorder::ids::{ParticipantSid, TrackSid};
use livekit_recorder::livekit::{
    connect, recorder_token, ConnectOptions, ParticipantState, ReceivedFrame, RoomEvent,
};
use livekit_recorder::media::{Codec, MediaKind};
use lk_harness::{TestServer, AUDIO, KEY, PUBLISHER, ROOM, SECRET, VIDEO};
use tokio::sync::mpsc::Receiver;

const WAIT: Duration = Duration::from_secs(10);

/// Frames seen so far, by track.
#[derive(Default)]
struct Seen {
    frames: HashMap<TrackSid, Vec<ReceivedFrame>>,
}

impl Seen {
    fn count(&self, track: &str) -> usize {
        self.frames.get(track).map_or(0, Vec::len)
    }

    /// Next event that is not a frame (frames are collected).
    async fn next_control(&mut self, rx: &mut Receiver<RoomEvent>) -> RoomEvent {
        loop {
            let ev = tokio::time::timeout(WAIT, rx.recv()).await.expect("event in time").expect("open");
            match ev {
                RoomEvent::Frame { track_sid, frame } => {
                    self.frames.entry(track_sid).or_default().push(frame)
                }
                other => return other,
            }
        }
    }

    /// Collects frames until `done` holds.
    async fn frames_until(&mut self, rx: &mut Receiver<RoomEvent>, done: impl Fn(&Seen) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            let ev = tokio::time::timeout_at(deadline, rx.recv()).await.expect("frames in time");
            match ev.expect("open") {
                RoomEvent::Frame { track_sid, frame } => {
                    self.frames.entry(track_sid).or_default().push(frame)
                }
                RoomEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
                _ => {}
            }
        }
    }
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn token() -> String {
    recorder_token(KEY, SECRET, ROOM, "t", Duration::from_secs(600)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_subscribes_receives_exact_frames_and_resumes() {
    if std::env::var("LKH_DEBUG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("livekit_recorder=debug,livekit_signaling=trace,livekit_net=debug")
            .try_init();
    }
    let server = TestServer::start().await;
    let (conn, mut rx) = connect(&server.url(), &token(), ConnectOptions::default()).await.unwrap();
    let mut seen = Seen::default();

    let RoomEvent::Joined { room_name, local_sid, participants } = seen.next_control(&mut rx).await else {
        panic!("first event must be Joined");
    };
    assert_eq!((room_name.as_str(), local_sid.as_str()), (ROOM, "PA_bot0001"));
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].tracks.len(), 2);
    let query = server.stats.last_query.lock().unwrap().clone();
    assert!(query.contains("auto_subscribe=0") && query.contains("adaptive_stream=0"), "{query}");
    assert!(!query.contains("CAP_PACKET_TRAILER"), "{query}");

    let publisher = ParticipantSid::from(PUBLISHER);
    let (audio, video) = (TrackSid::from(AUDIO), TrackSid::from(VIDEO));
    conn.subscribe(&publisher, &[audio.clone(), video.clone()], true).await.unwrap();
    conn.subscribe(&publisher, &[audio.clone(), video.clone()], true).await.unwrap(); // idempotent
    let mut subscribed = HashMap::new();
    while subscribed.len() < 2 {
        match seen.next_control(&mut rx).await {
            RoomEvent::TrackSubscribed { participant_sid, track_sid, kind, codec } => {
                assert_eq!(participant_sid, PUBLISHER);
                subscribed.insert(track_sid, (kind, codec));
            }
            RoomEvent::ParticipantsChanged(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(subscribed[AUDIO], (MediaKind::Audio, Some(Codec::Opus)));
    assert_eq!(subscribed[VIDEO], (MediaKind::Video, Some(Codec::Vp8)));

    seen.frames_until(&mut rx, |s| s.count(AUDIO) >= 40 && s.count(VIDEO) >= 20).await;
    assert_frames_match(&server, &seen);
    let st = &server.stats;
    assert_eq!(st.get(&st.subscriptions), 1, "the repeated subscribe is not resent");
    assert_eq!(st.get(&st.track_settings), 1, "full quality is requested for video only");
    assert!(st.get(&st.answers) >= 2);
    assert_eq!(st.get(&st.answers_with_red), 0, "RED must be declined");
    assert!(st.get(&st.answers_with_rtx) >= 1, "RTX is accepted for video");
    assert!(st.get(&st.trickles) >= 1);

    // PLI on request; the second within 500 ms is rate-limited away. The stream started with
    // a keyframe, so the client asked for none by itself.
    assert_eq!(conn.stats().plis_sent, 0);
    conn.request_keyframe(&video).await.unwrap();
    conn.request_keyframe(&video).await.unwrap();
    eventually("a PLI at the server", || st.get(&st.plis) >= 1).await;
    assert_eq!(conn.stats().plis_sent, 1);

    // Resume: the server drops the WebSocket; media keeps flowing; the client resumes.
    server.kick();
    assert!(matches!(seen.next_control(&mut rx).await, RoomEvent::Reconnecting));
    assert!(matches!(seen.next_control(&mut rx).await, RoomEvent::Reconnected));
    assert!(server.stats.last_query.lock().unwrap().contains("reconnect=1"));
    eventually("resume and SyncState", || st.get(&st.resumes) == 1 && st.get(&st.sync_states) == 1).await;
    let answers = st.get(&st.answers);
    let before = seen.count(VIDEO);
    seen.frames_until(&mut rx, |s| s.count(VIDEO) >= before + 10).await;
    assert_frames_match(&server, &seen);
    eventually("the ICE-restart offer answered", || st.get(&st.answers) >= 3).await;
    assert!(answers >= 2);
    assert_eq!(st.get(&st.answer_id_mismatches), 0, "answers echo the offer id");

    // Unsubscribing from audio: its m-line goes inactive, video keeps flowing.
    conn.subscribe(&publisher, &[audio], false).await.unwrap();
    match seen.next_control(&mut rx).await {
        RoomEvent::TrackUnsubscribed { track_sid } => assert_eq!(track_sid, AUDIO),
        other => panic!("unexpected {other:?}"),
    }
    let before = seen.count(VIDEO);
    seen.frames_until(&mut rx, |s| s.count(VIDEO) >= before + 5).await;

    // The publisher leaves: ParticipantUpdate is reported as a Disconnected snapshot.
    server.publisher_leaves();
    let RoomEvent::ParticipantsChanged(changed) = seen.next_control(&mut rx).await else {
        panic!("expected ParticipantsChanged");
    };
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, ParticipantState::Disconnected);
    let consumed = (seen.count(AUDIO) + seen.count(VIDEO)) as u64;
    eventually("frame counter", || conn.stats().frames_received >= consumed).await;
    assert_eq!(conn.stats().resumes, 1);

    conn.close().await;
    eventually("Leave at the server", || st.get(&st.leaves) == 1).await;
    server.stop().await;
}

/// Every received payload is a frame the server wrote for that track, byte for byte.
fn assert_frames_match(server: &TestServer, seen: &Seen) {
    for track in [AUDIO, VIDEO] {
        let sent = server.sent(track);
        let got = &seen.frames[track];
        for f in got {
            assert!(sent.contains(&f.payload.to_vec()), "{track}: frame not sent by the server");
        }
        if track == VIDEO {
            assert!(got.iter().any(|f| f.keyframe == Some(true)));
            assert!(got.iter().all(|f| f.keyframe.is_some()));
        } else {
            assert!(got.iter().all(|f| f.keyframe.is_none()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_a_permanent_error() {
    let server = TestServer::start().await;
    let bad =
        recorder_token(KEY, "another-secret-another-secret-0", ROOM, "t", Duration::from_secs(60)).unwrap();
    let err = connect(&server.url(), &bad, ConnectOptions::default()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    server.stop().await;
}
