//! A crowded room: 50 A/V participants (VP8 + Opus) in one room, all recorded at once by the
//! daemon against the in-process simulator. The recorder's one subscriber connection carries
//! 100 m-lines, so its SDP answers (and the SyncState it would send on a resume) are far
//! larger than a WebSocket frame limit of 64 KiB. Every recording must get its media and end
//! `complete`, each file's packets are a contiguous run of the simulator's `/sent` frames for
//! that participant, and the signal connection never drops (reconnects counted by the daemon's
//! `recorder_signal_reconnects_total`, printed and asserted 0).

mod support;
use support::{common, recorder_support, sim_support};

use std::path::Path;
use std::time::{Duration, Instant};

use recorder_support::{
    api, assert_contiguous_run, files_of, join_av, metric, sent_hashes_of, start_daemon_with, wait_for,
};
use reqwest::Method;
use serde_json::json;
use sim_support::{call, start_sim};

/// Participants in the room, each publishing VP8 video and Opus audio.
const PARTICIPANTS: usize = 50;

/// How long every recording runs once all have media.
const RECORD_FOR: Duration = Duration::from_secs(4);

/// Bounded wait for all recordings to get media (they start together).
const WAIT: Duration = Duration::from_secs(30);

/// Stream indices (video, audio) of a file, from ffprobe.
fn streams(path: &Path) -> (usize, usize) {
    let probe = common::ffprobe(path);
    let find = |kind: &str| probe.streams.iter().position(|s| s.codec_type == kind);
    match (find("video"), find("audio")) {
        (Some(v), Some(a)) => (v, a),
        other => panic!("{}: streams {other:?}", path.display()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_av_participants_in_one_room_are_all_recorded() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let t0 = Instant::now();
    let sim = start_sim(vec![]).await;
    let s = sim.http_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon =
        start_daemon_with(&sim, dir.path(), None, |c| c.recording.start_timeout = Duration::from_secs(30))
            .await;
    let addr = daemon.addr();
    let room = "crowd";
    let mut people = Vec::new();
    for n in 0..PARTICIPANTS {
        let identity = format!("p{n:02}");
        let tracks = join_av(s, room, &identity).await;
        people.push((identity, tracks));
    }
    // all started at once: the starts race each other's subscriptions and offers
    let starts = people.iter().map(|(identity, _)| async move {
        let body = json!({ "room": room, "participant": identity }).to_string();
        let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
        assert_eq!(status, 201, "{rec}");
        rec["id"].as_str().expect("id").to_owned()
    });
    let ids: Vec<String> = futures_util::future::join_all(starts).await;
    let started = Instant::now();
    for id in &ids {
        wait_for(addr, id, None, WAIT, |r| r["status"] == "active" && r["bytes"].as_u64() > Some(0)).await;
    }
    let all_media = started.elapsed();
    tokio::time::sleep(RECORD_FOR).await;
    let mut done = Vec::new();
    for id in &ids {
        let (status, rec) =
            api(addr, Method::POST, "/recordings/stop", Some(&json!({ "id": id }).to_string()), None).await;
        assert_eq!(status, 200, "{rec}");
        done.push(rec);
    }
    let reconnects = metric(addr, "recorder_signal_reconnects_total").await;
    let dropped = metric(addr, "recorder_frames_dropped_total").await;
    let lost: u64 = done.iter().map(|r| r["frames_lost"].as_u64().unwrap_or(0)).sum();
    eprintln!("signal reconnects: {reconnects}, frames dropped: {dropped}, frames lost: {lost}");
    let recorded = t0.elapsed();
    let (_, sent) = call(s, Method::GET, &format!("/sim/rooms/{room}/sent"), None).await;
    let (mut video_pkts, mut audio_pkts) = (0, 0);
    for ((identity, (video, audio)), rec) in people.iter().zip(&done) {
        assert_eq!(rec["status"], "complete", "{identity}: {rec}");
        assert!(rec["bytes"].as_u64() > Some(0), "{identity}: {rec}");
        let files = files_of(rec);
        assert_eq!(files.len(), 1, "{identity}: {rec}");
        let (vi, ai) = streams(&files[0]);
        let (vp, ap) = (common::packets(&files[0], vi), common::packets(&files[0], ai));
        assert_contiguous_run(&format!("{identity} video"), &vp, &sent_hashes_of(&sent, video));
        assert_contiguous_run(&format!("{identity} audio"), &ap, &sent_hashes_of(&sent, audio));
        // at least the time recorded after every recording had media (30 fps, 50 Opus frames/s)
        assert!(
            vp.len() as f64 >= 30.0 * (RECORD_FOR.as_secs_f64() - 1.0),
            "{identity}: {} video packets",
            vp.len()
        );
        assert!(
            ap.len() as f64 >= 50.0 * (RECORD_FOR.as_secs_f64() - 1.0),
            "{identity}: {} audio packets",
            ap.len()
        );
        video_pkts += vp.len();
        audio_pkts += ap.len();
    }
    eprintln!(
        "{PARTICIPANTS} A/V recordings in one room: all had media {:.1} s after the starts; {video_pkts} video and \
         {audio_pkts} audio packets, every one in /sent, contiguous per track; signal reconnects: {reconnects}; \
         recorded in {:.1} s, checked in {:.1} s",
        all_media.as_secs_f64(),
        recorded.as_secs_f64(),
        (t0.elapsed() - recorded).as_secs_f64(),
    );
    assert_eq!(reconnects, 0, "the signal connection dropped {reconnects} times");
    daemon.shutdown().await;
    sim.stop().await;
}
