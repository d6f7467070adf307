//! LiveKit outages during a recording, over real WebRTC against the in-process simulator:
//!
//! - the signalling socket drops: the connection resumes and the recording goes on in the
//!   same file without a missing frame;
//! - the publisher's network pauses for 5 s: the same file goes on, with a gap of the outage's
//!   length (±1 s) and nothing else missing;
//! - the simulator (the LiveKit server) restarts: the room actor reconnects with backoff and
//!   the recording continues in a new part once the participant is back; both parts are
//!   complete runs of what each server sent.

mod support;
use support::{common, recorder_support, sim_support};

use std::time::Duration;

use recorder_support::{
    api, assert_contiguous_run, assert_run_with_one_gap, files_of, sent_hashes, start_daemon_with,
    stop_by_id, wait_for,
};
use reqwest::Method;
use serde_json::json;
use sim_support::{call, start_sim, KEY, SECRET};

async fn add_alice(sim: &livekit_recorder::sim::SimHandle, room: &str) {
    let body =
        json!({ "room": room, "identity": "alice", "video": "vp8", "audio": "opus", "av_offset_ms": 700 });
    let (status, r) = call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await;
    assert_eq!(status, 200, "{r}");
}

/// The largest step between consecutive packets, ms.
fn largest_gap_ms(packets: &[common::Packet]) -> i64 {
    packets.windows(2).map(|w| w[1].pts_ns() - w[0].pts_ns()).max().unwrap_or(0) / 1_000_000
}

/// Starts recording `alice` in `room` and waits until it is `active`; the recording id.
async fn record_alice(addr: std::net::SocketAddr, room: &str) -> String {
    let body = format!(r#"{{"room":"{room}","participant":"alice"}}"#);
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    id
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    api(addr, Method::GET, "/metrics", None, None).await.1.as_str().expect("text").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dropped_signal_connection_resumes_without_a_missing_frame() {
    let sim = start_sim(vec![]).await;
    add_alice(&sim, "drop").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |_| {}).await;
    let addr = daemon.addr();
    let id = record_alice(addr, "drop").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault = json!({ "drop_signal": true });
    let (status, r) =
        call(sim.http_addr(), Method::POST, "/sim/participants/drop/alice/faults", Some(fault)).await;
    assert_eq!(status, 200, "{r}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let done = stop_by_id(addr, &id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "same part: {done}");
    let errors = common::ffmpeg_errors(&files[0]);
    assert!(errors.is_empty(), "{errors}");
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/drop/sent", None).await;
    let video = common::packets(&files[0], 0);
    assert_contiguous_run("video", &video, &sent_hashes(&sent, "video"));
    assert_contiguous_run("audio", &common::packets(&files[0], 1), &sent_hashes(&sent, "audio"));
    let gap = largest_gap_ms(&video);
    let at = video.windows(2).position(|w| (w[1].pts_ns() - w[0].pts_ns()) / 1_000_000 == gap);
    eprintln!("signal drop: largest video gap {gap} ms after packet {at:?} of {}", video.len());
    assert!(gap < 200, "video gap {gap} ms across the signal drop");
    assert!(metrics(addr).await.contains("recorder_actor_restarts_total{actor=\"room\"} 0\n"));
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_five_second_network_pause_leaves_a_gap_of_its_length() {
    let sim = start_sim(vec![]).await;
    add_alice(&sim, "pause").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |_| {}).await;
    let addr = daemon.addr();
    let id = record_alice(addr, "pause").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault = json!({ "pause_ms": 5000 });
    let (status, r) =
        call(sim.http_addr(), Method::POST, "/sim/participants/pause/alice/faults", Some(fault)).await;
    assert_eq!(status, 200, "{r}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let done = stop_by_id(addr, &id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "same part: {done}");
    let errors = common::ffmpeg_errors(&files[0]);
    assert!(errors.is_empty(), "{errors}");
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/pause/sent", None).await;
    let (video, audio) = (common::packets(&files[0], 0), common::packets(&files[0], 1));
    // video resumes at a keyframe: the delta frames sent before it (their references were
    // never sent) are dropped and a keyframe is asked for
    let skipped = assert_run_with_one_gap("video", &video, &sent_hashes(&sent, "video"), 45);
    eprintln!("5 s pause: {skipped} video frames skipped until the keyframe");
    assert_contiguous_run("audio", &audio, &sent_hashes(&sent, "audio"));
    let (vgap, agap) = (largest_gap_ms(&video), largest_gap_ms(&audio));
    eprintln!("5 s pause: largest gap video {vgap} ms, audio {agap} ms");
    assert!((4000..=6000).contains(&vgap) && (4000..=6000).contains(&agap), "gaps {vgap} / {agap} ms");
    common::assert_recorder_in_sync(&files[0], 1.0, 2);
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_restart_continues_the_recording_in_a_new_part() {
    let sim = start_sim(vec![]).await;
    let sim_addr = sim.http_addr();
    add_alice(&sim, "restart").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |_| {}).await;
    let addr = daemon.addr();
    let id = record_alice(addr, "restart").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // the publisher's media stops first, so /sent (read before the server goes away) holds
    // every frame part 1 can have
    for kind in ["audio", "video"] {
        let mute = json!({ "kind": kind, "muted": true });
        let (status, r) =
            call(sim_addr, Method::POST, "/sim/participants/restart/alice/mute", Some(mute)).await;
        assert_eq!(status, 200, "{r}");
    }
    // once the publisher has stopped: two reads of /sent 100 ms apart hold the same frames
    let frames = |sent: &serde_json::Value| -> usize {
        sent["tracks"]
            .as_array()
            .map_or(0, |t| t.iter().map(|t| t["frames"].as_array().map_or(0, Vec::len)).sum())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (_, mut sent_before) = call(sim_addr, Method::GET, "/sim/rooms/restart/sent", None).await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, again) = call(sim_addr, Method::GET, "/sim/rooms/restart/sent", None).await;
        let still = frames(&again) == frames(&sent_before);
        sent_before = again;
        if still {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the muted publisher still sends");
    }
    sim.stop().await;
    let down = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // the same server address comes back, empty; the participant joins again
    let mut cfg = livekit_recorder::sim::SimConfig::new(KEY, SECRET);
    cfg.http_addr = sim_addr;
    let sim = livekit_recorder::sim::start(cfg).await.expect("restart the simulator");
    add_alice(&sim, "restart").await;
    let r = wait_for(addr, &id, None, Duration::from_secs(20), |r| {
        r["files"].as_array().map(Vec::len) == Some(2)
    })
    .await;
    eprintln!("server restart: part 2 opened {:?} after the server went down", down.elapsed());
    assert_eq!(r["status"], "active", "{r}");
    // 5 s: the markers come every 2 s, and the sync check starts 1 s into the part (3 s once
    // held only a flash at 0.999 s)
    tokio::time::sleep(Duration::from_secs(5)).await;
    let done = stop_by_id(addr, &id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 2, "{done}");
    let (_, sent_after) = call(sim.http_addr(), Method::GET, "/sim/rooms/restart/sent", None).await;
    for (file, sent) in files.iter().zip([&sent_before, &sent_after]) {
        let errors = common::ffmpeg_errors(file);
        assert!(errors.is_empty(), "{}: {errors}", file.display());
        assert_contiguous_run("video", &common::packets(file, 0), &sent_hashes(sent, "video"));
        assert_contiguous_run("audio", &common::packets(file, 1), &sent_hashes(sent, "audio"));
    }
    common::assert_recorder_in_sync(&files[1], 1.0, 1);
    let text = metrics(addr).await;
    assert!(!text.contains("recorder_actor_restarts_total{actor=\"room\"} 0\n"), "{text}");
    daemon.shutdown().await;
    sim.stop().await;
}
