//! Signalling conformance with livekit-signaling's `SignalClient`: JoinResponse fields, the
//! first subscriber offer (data channel, RED before Opus, msid forms, mid_to_track_id),
//! hidden recorders, and resume of an unknown participant.

mod support;
use support::sim_support;

use std::time::Duration;

use livekit_signaling::{SignalClient, SignalOptions};
use sim_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_recorder_joins_and_gets_a_livekit_shaped_offer() {
    let sim = start_sim(vec![]).await;
    let p = add_participant(sim.http_addr(), "sig", "alice", Some("vp8"), true).await;
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("sig", "rec"), true).await;
    let j = bot.join.clone();
    assert!(j.ping_interval > 0 && j.ping_timeout > 0, "ping {} / {}", j.ping_interval, j.ping_timeout);
    assert!(j.subscriber_primary);
    assert!(j.room.as_ref().is_some_and(|r| r.sid.starts_with("RM_") && r.name == "sig"));
    let me = j.participant.as_ref().expect("own participant");
    assert!(me.sid.starts_with("PA_") && me.identity == "rec");
    assert_eq!(j.other_participants.len(), 1);
    assert_eq!(j.other_participants[0].tracks.len(), 2);

    let has_audio = |b: &Bot| b.offers.iter().any(|o| o.sdp.contains("m=audio"));
    assert!(bot.run_until(Duration::from_secs(10), |b| b.connected && has_audio(b)).await, "connected");
    assert!(bot.offers[0].sdp.contains("m=application"), "data channel m-line in the first offer");
    let offer = bot.offers.iter().find(|o| o.sdp.contains("m=audio")).expect("offer with audio");
    let sdp = &offer.sdp;
    let audio_m = sdp.lines().find(|l| l.starts_with("m=audio")).expect("audio m-line");
    let pts: Vec<&str> = audio_m.split(' ').skip(3).collect();
    let red_pt = sdp
        .lines()
        .find(|l| l.contains("red/48000/2"))
        .and_then(|l| l.strip_prefix("a=rtpmap:"))
        .and_then(|l| l.split(' ').next())
        .expect("red pt");
    let opus_pt = sdp
        .lines()
        .find(|l| l.contains("opus/48000/2"))
        .and_then(|l| l.strip_prefix("a=rtpmap:"))
        .and_then(|l| l.split(' ').next())
        .expect("opus pt");
    assert_eq!(pts, [red_pt, opus_pt], "the audio m-line lists RED first, then Opus");
    assert!(sdp.contains("a=ice-lite"));
    for t in p["tracks"].as_array().expect("tracks") {
        let tr = t["sid"].as_str().expect("sid");
        let pa = p["sid"].as_str().expect("sid");
        assert!(sdp.contains(&format!("a=msid:{pa}|{tr} {tr}")), "msid for {tr}");
        assert!(offer.mid_to_track_id.values().any(|v| v == tr), "mid_to_track_id lists {tr}");
    }
    assert!(bot.updates.iter().any(|u| u.identity == "alice"), "ParticipantUpdate about the publisher");
    assert!(
        bot.run_until(Duration::from_secs(10), |b| !b.frames.is_empty()).await,
        "auto-subscribed media flows"
    );

    let other = Bot::join(&sim.ws_url(), &user_token("sig", "bob"), false).await;
    assert!(other.join.other_participants.iter().all(|p| p.identity != "rec"), "the recorder is hidden");

    let offers = bot.offers.len();
    assert_eq!(
        call(sim.http_addr(), reqwest::Method::DELETE, "/sim/participants/sig/alice", None).await.0,
        200
    );
    let gone = |b: &Bot| {
        b.updates.iter().any(|u| {
            u.identity == "alice" && u.state == livekit_protocol::participant_info::State::Disconnected as i32
        })
    };
    let inactive = |b: &Bot| {
        let last = &b.offers.last().expect("offer").sdp;
        let media = last.split("\r\nm=").filter(|m| m.starts_with("audio") || m.starts_with("video"));
        media.clone().count() == 2 && media.clone().all(|m| m.contains("a=inactive"))
    };
    let ok =
        bot.run_until(Duration::from_secs(10), |b| gone(b) && b.offers.len() > offers && inactive(b)).await;
    let states: Vec<_> = bot.updates.iter().map(|u| (u.identity.clone(), u.state)).collect();
    assert!(
        ok,
        "DISCONNECTED update and an offer with the m-lines inactive: offers {offers} -> {}, updates {states:?}",
        bot.offers.len()
    );
    sim.stop().await;
}

/// A subscriber to 20 A/V participants answers with 40 m-lines: well over 64 KiB in one
/// WebSocket message. The real server reads it (gorilla/websocket, no read limit); so must the
/// simulator: the session stays up and every track's media arrives. (With actix-ws's default
/// 64 KiB frame limit the session dropped at that answer, and at every SyncState after.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_larger_than_64_kib_keeps_the_session() {
    let sim = start_sim(vec![]).await;
    let mut tracks = Vec::new();
    for n in 0..20 {
        let p = add_participant(sim.http_addr(), "big", &format!("p{n:02}"), Some("vp8"), true).await;
        let sids = p["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .map(|t| t["sid"].as_str().expect("sid").to_owned());
        tracks.extend(sids);
    }
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("big", "rec"), true).await;
    let all_media = |b: &Bot| {
        let got: std::collections::HashSet<&str> = b.frames.iter().map(|f| f.track.as_str()).collect();
        tracks.iter().all(|t| got.contains(t.as_str()))
    };
    let ok = bot.run_until(Duration::from_secs(20), |b| b.closed || (b.connected && all_media(b))).await;
    let largest = bot.answer_bytes.iter().copied().max().unwrap_or(0);
    eprintln!("answers {:?} bytes; {} m-lines", bot.answer_bytes, tracks.len());
    assert!(
        largest > 64 << 10,
        "the answer ({largest} bytes) must exceed 64 KiB for this test to mean anything"
    );
    assert!(!bot.closed, "the simulator closed the session after an answer of {largest} bytes");
    assert!(ok && all_media(&bot), "media from all {} tracks", tracks.len());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_refused_and_unknown_resumes_get_leave() {
    let sim = start_sim(vec![]).await;
    let wrong = livekit_api::access_token::AccessToken::with_api_key(KEY, "another-secret-another-secret-00")
        .with_identity("x")
        .with_grants(livekit_api::access_token::VideoGrants {
            room_join: true,
            room: "r".into(),
            ..Default::default()
        })
        .to_jwt()
        .expect("token");
    let mut opts = SignalOptions::default();
    opts.region_failover = false;
    assert!(SignalClient::connect(&sim.ws_url(), &wrong, opts, None).await.is_err(), "bad signature refused");

    let mut bot = Bot::join(&sim.ws_url(), &user_token("r2", "carol"), false).await;
    let removed = call(sim.http_addr(), reqwest::Method::DELETE, "/sim/participants/r2/carol", None).await;
    assert_eq!(removed.0, 200);
    bot.run_until(Duration::from_secs(2), |b| b.closed).await;
    let resumed = bot.signal.restart(livekit_protocol::ReconnectReason::RrSignalDisconnected).await;
    assert!(resumed.is_err(), "resume of a removed participant is refused");
    sim.stop().await;
}
