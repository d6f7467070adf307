//! Media end to end over real ICE/DTLS/SRTP on loopback: a str0m bot joins the simulator
//! through livekit-signaling's `SignalClient`, subscribes selectively, and every frame it
//! receives must hash-match (and carry the RTP timestamp of) a frame in `/sent`; then
//! `drop_signal` closes its signal socket and it resumes.

mod support;
use support::sim_support;

use std::collections::HashMap;
use std::time::Duration;

use livekit_recorder::media::Codec;
use sim_support::*;

/// Track sid -> (codec, RTP timestamp -> hash).
fn sent_index(sent: &serde_json::Value) -> HashMap<String, (Codec, HashMap<u32, String>)> {
    let mut out = HashMap::new();
    for t in sent["tracks"].as_array().expect("tracks") {
        let codec = Codec::parse(t["codec"].as_str().expect("codec")).expect("known codec");
        let frames = t["frames"].as_array().expect("frames");
        let by_ts = frames
            .iter()
            .map(|f| {
                (f["rtp_ts"].as_u64().expect("ts") as u32, f["sha256"].as_str().expect("hash").to_owned())
            })
            .collect();
        out.insert(t["sid"].as_str().expect("sid").to_owned(), (codec, by_ts));
    }
    out
}

async fn received_frames_match_sent(video: &str) {
    let sim = start_sim(vec![]).await;
    let p = add_participant(sim.http_addr(), "media", "alice", Some(video), true).await;
    let tracks: Vec<String> = p["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["sid"].as_str().expect("sid").to_owned())
        .collect();
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("media", "rec"), false).await;
    bot.subscribe(&tracks, true).await;
    let got = bot
        .run_until(Duration::from_secs(15), |b| {
            let video = b.frames.iter().filter(|f| f.track == tracks[0]).count();
            let audio = b.frames.iter().filter(|f| f.track == tracks[1]).count();
            video >= 40 && audio >= 60
        })
        .await;
    assert!(got, "frames received: {} (connected {})", bot.frames.len(), bot.connected);
    let (status, sent) = call(sim.http_addr(), reqwest::Method::GET, "/sim/rooms/media/sent", None).await;
    assert_eq!(status, 200);
    let index = sent_index(&sent);
    for f in &bot.frames {
        let (codec, by_ts) = index.get(&f.track).expect("received track is in /sent");
        let sent_hash =
            by_ts.get(&f.rtp_ts).unwrap_or_else(|| panic!("{codec} RTP timestamp {} not in /sent", f.rtp_ts));
        assert_eq!(
            *sent_hash,
            stored_hash(*codec, &f.data),
            "{codec} frame at {} hash-matches /sent",
            f.rtp_ts
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_frames_hash_match_sent() {
    received_frames_match_sent("vp8").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_frames_hash_match_sent() {
    received_frames_match_sent("h264").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_signal_leads_to_resume_and_media_continues() {
    let sim = start_sim(vec![]).await;
    add_participant(sim.http_addr(), "resume", "alice", Some("vp8"), true).await;
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("resume", "rec"), true).await;
    assert!(bot.run_until(Duration::from_secs(10), |b| b.frames.len() > 20).await, "media before the fault");
    let body = serde_json::json!({ "drop_signal": true });
    let (status, _) =
        call(sim.http_addr(), reqwest::Method::POST, "/sim/participants/resume/alice/faults", Some(body))
            .await;
    assert_eq!(status, 200);
    assert!(
        bot.run_until(Duration::from_secs(5), |_| false).await || bot.closed,
        "signal socket closed by the fault"
    );
    let rr = bot.resume().await;
    assert!(rr.server_info.is_some());
    let offers = bot.offers.len();
    let before = bot.frames.len();
    let ok = bot
        .run_until(Duration::from_secs(10), |b| b.offers.len() > offers && b.frames.len() > before + 50)
        .await;
    assert!(
        ok,
        "ICE-restart offer answered and media flowing (offers {}, frames {})",
        bot.offers.len(),
        bot.frames.len()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_loss_stops_the_track_and_clearing_restores_it() {
    let sim = start_sim(vec![]).await;
    let p = add_participant(sim.http_addr(), "loss", "alice", Some("vp8"), false).await;
    let video = p["tracks"][0]["sid"].as_str().expect("sid").to_owned();
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("loss", "rec"), true).await;
    assert!(bot.run_until(Duration::from_secs(10), |b| b.frames.len() > 10).await);
    let lossy = serde_json::json!({ "loss_pct": 100.0, "track": video });
    assert_eq!(
        call(sim.http_addr(), reqwest::Method::POST, "/sim/participants/loss/alice/faults", Some(lossy))
            .await
            .0,
        200
    );
    bot.run_until(Duration::from_millis(300), |_| false).await;
    let n = bot.frames.len();
    bot.run_until(Duration::from_secs(1), |_| false).await;
    assert!(bot.frames.len() <= n + 1, "no frames under 100% loss ({} -> {})", n, bot.frames.len());
    let clear = serde_json::json!({ "loss_pct": 0.0 });
    assert_eq!(
        call(sim.http_addr(), reqwest::Method::POST, "/sim/participants/loss/alice/faults", Some(clear))
            .await
            .0,
        200
    );
    bot.request_keyframes();
    assert!(
        bot.run_until(Duration::from_secs(10), |b| b.frames.len() > n + 20).await,
        "frames again after clearing"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_loss_is_repaired_by_nack_and_rtx() {
    let sim = start_sim(vec![]).await;
    let p = add_participant(sim.http_addr(), "nack", "alice", Some("vp8"), false).await;
    let video = p["tracks"][0]["sid"].as_str().expect("sid").to_owned();
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("nack", "rec"), true).await;
    assert!(bot.run_until(Duration::from_secs(10), |b| b.frames.len() > 10).await);
    let lossy = serde_json::json!({ "loss_pct": 10.0 });
    assert_eq!(
        call(sim.http_addr(), reqwest::Method::POST, "/sim/participants/nack/alice/faults", Some(lossy))
            .await
            .0,
        200
    );
    bot.run_until(Duration::from_millis(200), |_| false).await;
    let n0 = bot.frames.len();
    bot.run_until(Duration::from_secs(4), |_| false).await;
    let got: std::collections::HashSet<u32> = bot.frames[n0..].iter().map(|f| f.rtp_ts).collect();
    let (first, last) = (bot.frames[n0].rtp_ts, bot.frames.last().expect("frames").rtp_ts);
    let (_, sent) = call(sim.http_addr(), reqwest::Method::GET, "/sim/rooms/nack/sent", None).await;
    let index = sent_index(&sent);
    let (_, by_ts) = index.get(&video).expect("video in /sent");
    let window: Vec<u32> = by_ts
        .keys()
        .copied()
        .filter(|ts| ts.wrapping_sub(first) < last.wrapping_sub(first).saturating_sub(27_000))
        .collect();
    let missing = window.iter().filter(|ts| !got.contains(ts)).count();
    assert!(window.len() > 60, "window of {} frames", window.len());
    // Unrepaired, 10% packet loss costs at least 10% of the frames (1-3 packets each); with
    // NACK/RTX a few are still lost when a retransmission is lost too (0-4 of ~110 seen).
    assert!(missing * 100 <= window.len() * 6, "{missing} of {} frames missing under 10% loss", window.len());
    sim.stop().await;
}

/// The sender reports' NTP <-> RTP mapping puts each received frame at the participant-clock
/// time `/sent` logged for it, for audio and video alike (so SR-based A/V sync holds), and
/// `av_offset_ms` delays audio's first frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reports_map_frames_to_the_participant_clock() {
    let sim = start_sim(vec![]).await;
    let body = serde_json::json!({ "room": "sync", "identity": "alice", "video": "vp8", "audio": "opus", "av_offset_ms": 300 });
    let (status, p) = call(sim.http_addr(), reqwest::Method::POST, "/sim/participants", Some(body)).await;
    assert_eq!(status, 200, "{p}");
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("sync", "rec"), true).await;
    let tracks: Vec<String> = p["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["sid"].as_str().expect("sid").to_owned())
        .collect();
    let has_sr = |b: &Bot, t: &str| b.frames.iter().filter(|f| f.track == t && f.sr.is_some()).count() > 5;
    assert!(
        bot.run_until(Duration::from_secs(15), |b| tracks.iter().all(|t| has_sr(b, t))).await,
        "sender reports on both tracks"
    );
    let (_, sent) = call(sim.http_addr(), reqwest::Method::GET, "/sim/rooms/sync/sent", None).await;
    let ntp_of = |track: &str, ts: u32| -> Option<u64> {
        let t = sent["tracks"].as_array()?.iter().find(|t| t["sid"] == track)?;
        t["frames"].as_array()?.iter().find(|f| f["rtp_ts"].as_u64() == Some(u64::from(ts)))?["ntp_ns"]
            .as_u64()
    };
    for (track, clock) in [(&tracks[0], 90_000i64), (&tracks[1], 48_000)] {
        // Every frame with a report, from the first one on: a single bad report fails.
        for f in bot.frames.iter().filter(|f| f.track == *track && f.sr.is_some()) {
            let (sr_ns, sr_rtp) = f.sr.expect("sr");
            let implied =
                sr_ns as i64 + i64::from(f.rtp_ts.wrapping_sub(sr_rtp) as i32) * 1_000_000_000 / clock;
            let logged = ntp_of(track, f.rtp_ts).expect("frame in /sent") as i64;
            let off = (implied - logged) as f64 / 1e6;
            assert!(
                off.abs() < 5.0,
                "{track}: SR ({sr_ns}, {sr_rtp}) puts frame {} {off} ms off /sent",
                f.rtp_ts
            );
        }
    }
    let first = |i: usize| sent["tracks"][i]["frames"][0]["ntp_ns"].as_u64().expect("first frame") as i64;
    let offset_ms = (first(1) - first(0)) as f64 / 1e6;
    assert!((offset_ms - 300.0).abs() < 25.0, "audio starts {offset_ms} ms after video");
    sim.stop().await;
}

/// A track published while a subscriber is connected is announced, offered on subscription,
/// starts at a keyframe, and every frame matches `/sent`; unpublishing it makes its m-line
/// inactive while the other track keeps flowing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_published_track_is_offered_and_matches_sent() {
    let sim = start_sim(vec![]).await;
    let addr = sim.http_addr();
    let p = add_participant(addr, "late", "alice", None, true).await;
    let audio = p["tracks"][0]["sid"].as_str().expect("audio sid").to_owned();
    let mut bot = Bot::join(&sim.ws_url(), &recorder_token("late", "rec"), false).await;
    bot.subscribe(std::slice::from_ref(&audio), true).await;
    let ok = bot.run_until(Duration::from_secs(10), |b| b.frames.iter().any(|f| f.track == audio)).await;
    assert!(ok, "audio flows before the video is published");
    let (status, v) = call(
        addr,
        reqwest::Method::POST,
        "/sim/participants/late/alice/tracks",
        Some(serde_json::json!({"kind": "video", "codec": "vp8"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let video = v["sid"].as_str().expect("video sid").to_owned();
    let announced =
        |b: &Bot| b.updates.iter().any(|u| u.identity == "alice" && u.tracks.iter().any(|t| t.sid == video));
    assert!(bot.run_until(Duration::from_secs(5), announced).await, "ParticipantUpdate with the new track");
    bot.subscribe(std::slice::from_ref(&video), true).await;
    let got = bot
        .run_until(Duration::from_secs(10), |b| {
            b.mid_track.values().any(|t| *t == video)
                && b.frames.iter().filter(|f| f.track == video).count() >= 40
        })
        .await;
    assert!(got, "video frames received: {}", bot.frames.iter().filter(|f| f.track == video).count());
    let (_, sent) = call(addr, reqwest::Method::GET, "/sim/rooms/late/sent", None).await;
    let index = sent_index(&sent);
    let (_, by_ts) = index.get(&video).expect("the late track is in /sent");
    let vt = sent["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .find(|t| t["sid"] == video.as_str())
        .expect("video");
    assert_eq!(vt["frames"][0]["keyframe"], true, "a late video track starts at a keyframe");
    for f in &bot.frames {
        let (codec, by_ts) = index.get(&f.track).expect("received track is in /sent");
        let hash = by_ts.get(&f.rtp_ts).unwrap_or_else(|| panic!("{codec} RTP {} not in /sent", f.rtp_ts));
        assert_eq!(*hash, stored_hash(*codec, &f.data), "{codec} frame at {}", f.rtp_ts);
    }
    let n_video = bot.frames.iter().filter(|f| f.track == video).count();
    assert!(by_ts.len() >= n_video, "sent {} video frames, received {n_video}", by_ts.len());
    // unpublish: the update drops the track, the m-line goes inactive, audio continues
    let offers = bot.offers.len();
    let (status, _) =
        call(addr, reqwest::Method::DELETE, &format!("/sim/participants/late/alice/tracks/{video}"), None)
            .await;
    assert_eq!(status, 200);
    let audio_before = bot.frames.iter().filter(|f| f.track == audio).count();
    let gone = |b: &Bot| {
        let last_update = b.updates.iter().rev().find(|u| u.identity == "alice");
        let removed = last_update.is_some_and(|u| u.tracks.iter().all(|t| t.sid != video));
        let inactive = b.offers.len() > offers
            && b.offers.last().is_some_and(|o| {
                o.sdp.split("\r\nm=").filter(|m| m.starts_with("video")).all(|m| m.contains("a=inactive"))
            });
        removed && inactive && b.frames.iter().filter(|f| f.track == audio).count() > audio_before + 25
    };
    assert!(
        bot.run_until(Duration::from_secs(10), gone).await,
        "update, inactive video m-line, audio goes on"
    );
    sim.stop().await;
}
