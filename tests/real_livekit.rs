//! Against the real livekit-server v1.13.5 with a real publisher (server-sdk-go, `tests/lkpub`):
//! the server starts, the publisher joins and publishes, RED shows up as `audio/red`, and a
//! publisher's reconnect gets a new participant sid. Each test has its own server.
//! Needs the server binary and Go (`sh tests/support/real_support/install.sh`) and root (veth pair).

mod support;
use support::real_support;

use std::time::{Duration, Instant};

use livekit_api::services::room::RoomClient;
use livekit_protocol as proto;
use real_support::*;

/// Polls `list_participants` until `check` accepts the list (10 s).
async fn wait_participants(
    rc: &RoomClient,
    room: &str,
    what: &str,
    check: impl Fn(&[proto::ParticipantInfo]) -> bool,
) -> Vec<proto::ParticipantInfo> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let parts = rc.list_participants(room).await.unwrap_or_default();
        if check(&parts) {
            return parts;
        }
        if Instant::now() > deadline {
            panic!("{what}: participants of {room} are {parts:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn track(p: &proto::ParticipantInfo, kind: proto::TrackType) -> Option<&proto::TrackInfo> {
    p.tracks.iter().find(|t| t.r#type == kind as i32)
}

/// Joins with `opts`, waits until the server lists the publisher with both tracks and their
/// mime types; returns its ParticipantInfo.
async fn publish_and_list(red: bool, audio_mime: &str) -> (RealServer, Publisher, proto::ParticipantInfo) {
    let server = RealServer::start(ServerOpts::default());
    let publisher = Publisher::spawn(&server, "room1", "alice", PublisherOpts::vp8_opus().red(red));
    publisher.wait_started_async(Duration::from_secs(15)).await;
    // ICE connects over the test network's address (no loopback candidates in pion).
    let ice = publisher
        .wait_event_async(0, |e| e["event"] == "ice" && e["state"] == "connected", Duration::from_secs(10))
        .await;
    let remote = format!("{}:{}", server.node_ip(), server.udp_port());
    assert!(ice["pair"].as_str().is_some_and(|p| p.ends_with(&remote)), "{ice}");

    let rc = server.room_client();
    let parts = wait_participants(&rc, "room1", "two tracks with mime types", |ps| {
        ps.len() == 1 && ps[0].tracks.len() == 2 && ps[0].tracks.iter().all(|t| !t.mime_type.is_empty())
    })
    .await;
    let alice = parts[0].clone();
    assert_eq!(alice.identity, "alice");
    assert_eq!(Some(alice.sid.clone()), publisher.participant_sid());
    let video = track(&alice, proto::TrackType::Video).expect("video track");
    let audio = track(&alice, proto::TrackType::Audio).expect("audio track");
    assert_eq!(video.mime_type, "video/VP8");
    assert_eq!((video.width, video.height), (320, 240));
    assert_eq!(audio.mime_type, audio_mime);
    assert_eq!(Some(video.sid.clone()), publisher.track_sid("video"));
    assert_eq!(Some(audio.sid.clone()), publisher.track_sid("audio"));
    (server, publisher, alice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_starts_and_answers() {
    let server = RealServer::start(ServerOpts::default());
    let rc = server.room_client();
    assert!(rc.list_rooms(vec![]).await.expect("list rooms").is_empty());
    rc.create_room("made", Default::default()).await.expect("create room");
    let rooms = rc.list_rooms(vec![]).await.expect("list rooms");
    assert_eq!(rooms.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["made"]);
    assert!(server.log_tail(100_000).contains(&format!("\"version\": \"{SERVER_VERSION}\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_joins_with_vp8_and_opus() {
    let (_server, mut publisher, _) = publish_and_list(false, "audio/opus").await;
    // Media flows at the file's rate: 30 video frames and 50 Opus packets a second.
    for (kind, at_least) in [("video", 30), ("audio", 45)] {
        publisher
            .wait_event_async(
                0,
                |e| e["event"] == "sent" && e["kind"] == kind && e["frames"].as_u64() >= Some(at_least),
                Duration::from_secs(5),
            )
            .await;
    }
    let reply = publisher.command_async("leave").await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert!(publisher.wait_exit(Duration::from_secs(5)).is_some_and(|st| st.success()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn red_audio_is_listed_as_audio_red() {
    let (_server, publisher, _) = publish_and_list(true, "audio/red").await;
    let published =
        publisher.wait_event(|e| e["event"] == "published" && e["kind"] == "audio", Duration::ZERO);
    assert_eq!(published["mime"], "audio/red");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reconnect_gets_a_new_participant_sid() {
    let (server, publisher, alice) = publish_and_list(false, "audio/opus").await;
    let old_video = publisher.track_sid("video").expect("video sid");
    let reply = publisher.command_async("reconnect").await;
    assert_eq!(reply["ok"], true, "{reply}");
    let new_sid = reply["participant_sid"].as_str().expect("participant_sid").to_string();
    assert_ne!(new_sid, alice.sid);
    assert_eq!(publisher.participant_sid().as_deref(), Some(new_sid.as_str()));
    // The server lists only the new session, with freshly published tracks.
    let rc = server.room_client();
    let parts = wait_participants(&rc, "room1", "the new session with two tracks", |ps| {
        ps.len() == 1 && ps[0].sid == new_sid && ps[0].tracks.len() == 2
    })
    .await;
    let video = track(&parts[0], proto::TrackType::Video).expect("video track");
    assert_ne!(video.sid, old_video);
    assert_eq!(Some(video.sid.clone()), publisher.track_sid("video"));
}
