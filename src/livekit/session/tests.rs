//! Session behaviour on hostile or odd input, without a server: malformed offers, garbage
//! candidates, candidates before the offer, stale participant updates, idempotent
//! subscriptions, keyframe requests for unknown tracks, server-initiated leave.

use std::net::{IpAddr, Ipv4Addr};

use super::*;

struct Harness {
    session: Session,
    signal_rx: mpsc::Receiver<SignalCmd>,
    events: mpsc::Receiver<RoomEvent>,
}

async fn harness() -> Harness {
    let ip: IpAddr = Ipv4Addr::LOCALHOST.into();
    let peer = Peer::bind(Some(ip), &[], None).await.expect("bind loopback");
    let (signal_tx, signal_rx) = mpsc::channel(64);
    let (event_tx, events) = mpsc::channel(64);
    let counters = Arc::new(Counters::default());
    let sink = EventSink::new(event_tx, counters.clone());
    let session = Session::new("PA_me".into(), peer, signal_tx, sink, counters, ConnectOptions::default());
    Harness { session, signal_rx, events }
}

fn sent(h: &mut Harness) -> Vec<Req> {
    let mut out = Vec::new();
    while let Ok(cmd) = h.signal_rx.try_recv() {
        if let SignalCmd::Send(msg) = cmd {
            out.push(*msg);
        }
    }
    out
}

fn info(sid: &str, version: u32, state: proto::participant_info::State) -> proto::ParticipantInfo {
    let video = proto::TrackInfo {
        sid: "TR_v".into(),
        r#type: proto::TrackType::Video as i32,
        mime_type: "video/VP8".into(),
        ..Default::default()
    };
    proto::ParticipantInfo {
        sid: sid.into(),
        identity: "alice".into(),
        state: state as i32,
        version,
        tracks: vec![video],
        ..Default::default()
    }
}

#[tokio::test]
async fn an_offer_that_cannot_be_answered_ends_the_session_with_the_reason() {
    let mut h = harness().await;
    let offer = proto::SessionDescription {
        r#type: "offer".into(),
        sdp: "v=0\r\nm=garbage".into(),
        id: 3,
        ..Default::default()
    };
    let err = h.session.on_message(Resp::Offer(offer)).expect_err("a malformed offer ends the session");
    assert!(err.contains("cannot answer LiveKit's subscriber offer 3"), "{err}");
    assert!(sent(&mut h).is_empty(), "no answer to a malformed offer");
}

#[tokio::test]
async fn candidates_wait_for_the_offer_and_garbage_is_dropped() {
    let mut h = harness().await;
    let target = proto::SignalTarget::Subscriber as i32;
    let good = r#"{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#;
    for json in [good, "{", r#"{"candidate":""}"#, r#"{"candidate":"candidate:x"}"#] {
        let t = proto::TrickleRequest { candidate_init: json.into(), target, r#final: false };
        assert!(h.session.on_message(Resp::Trickle(t)).is_ok());
    }
    let publisher = proto::TrickleRequest { candidate_init: good.into(), target: 0, r#final: false };
    assert!(h.session.on_message(Resp::Trickle(publisher)).is_ok());
    assert_eq!(h.session.pending_candidates.len(), 1);
}

#[tokio::test]
async fn stale_and_own_participant_updates_are_skipped() {
    let mut h = harness().await;
    use proto::participant_info::State;
    h.session.on_participants(vec![info("PA_a", 2, State::Active)]).unwrap();
    h.session
        .on_participants(vec![info("PA_a", 1, State::Disconnected), info("PA_me", 5, State::Active)])
        .unwrap();
    assert!(h.session.participants.contains_key("PA_a"));
    assert!(matches!(h.events.try_recv(), Ok(RoomEvent::ParticipantsChanged(p)) if p.len() == 1));
    assert!(h.events.try_recv().is_err(), "nothing to report for stale or own updates");
    h.session.on_participants(vec![info("PA_a", 3, State::Disconnected)]).unwrap();
    assert!(!h.session.participants.contains_key("PA_a"));
}

#[tokio::test]
async fn subscribe_is_selective_and_idempotent() {
    let mut h = harness().await;
    h.session.on_participants(vec![info("PA_a", 1, proto::participant_info::State::Active)]).unwrap();
    let tracks = vec!["TR_v".to_owned(), "TR_a".to_owned()];
    h.session.subscribe("PA_a", tracks.clone(), true);
    h.session.subscribe("PA_a", tracks, true);
    let reqs = sent(&mut h);
    let subs: Vec<_> =
        reqs.iter().filter_map(|r| if let Req::Subscription(s) = r { Some(s) } else { None }).collect();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].participant_tracks[0].participant_sid, "PA_a");
    let settings: Vec<_> =
        reqs.iter().filter_map(|r| if let Req::TrackSetting(s) = r { Some(s) } else { None }).collect();
    assert_eq!(settings.len(), 2, "video and the unknown-kind track; never a known audio track");
    assert!(settings.iter().all(|s| s.quality == proto::VideoQuality::High as i32 && s.width > 0));
}

#[tokio::test]
async fn keyframe_request_for_an_unknown_track_is_harmless() {
    let mut h = harness().await;
    h.session.request_keyframe("TR_nope", Instant::now());
    assert_eq!(h.session.counters.plis_sent.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn server_leave_ends_the_session_unless_resume() {
    let mut h = harness().await;
    let leave =
        proto::LeaveRequest { reason: proto::DisconnectReason::RoomDeleted as i32, ..Default::default() };
    let err = h.session.on_message(Resp::Leave(leave)).unwrap_err();
    assert!(err.contains("RoomDeleted"), "{err}");
    let resume =
        proto::LeaveRequest { action: proto::leave_request::Action::Resume as i32, ..Default::default() };
    assert!(h.session.on_message(Resp::Leave(resume)).is_ok());
    assert!(matches!(h.events.try_recv(), Ok(RoomEvent::Reconnecting)));
    assert!(matches!(h.signal_rx.try_recv(), Ok(SignalCmd::Resume { .. })));
}

#[tokio::test]
async fn signal_dropping_after_every_resume_backs_off() {
    let mut h = harness().await;
    let mut delays = Vec::new();
    for _ in 0..4 {
        h.session.on_signal(Some(SignalEvent::Close("socket closed".into()))).unwrap();
        match h.signal_rx.try_recv() {
            Ok(SignalCmd::Resume { delay, .. }) => delays.push(delay.as_millis() as u64),
            other => panic!("expected a resume, got {other:?}"),
        }
        h.session.on_resumed(Ok(())).unwrap();
        while h.signal_rx.try_recv().is_ok() {} // SyncState, SetReconnected
    }
    assert_eq!(delays, [0, 250, 500, 1000], "a lone drop resumes at once, a storm backs off");
    assert_eq!(h.session.counters.resumes.load(Ordering::Relaxed), 4);
}
