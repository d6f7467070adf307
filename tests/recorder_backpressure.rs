//! A stalled disk costs only its own recording: one recording's flushes block for 10 s (the
//! `output::failpoint` test hook, as `sync_data` blocks on a disk that stalls) while 20 other
//! participants of the same room are recorded. The stalled recording's queue is bounded
//! (`MEDIA_QUEUE_SIZE`, 128 KiB here, about 3.4 s of the simulator's media): it drops frames,
//! counts them in its `frames_dropped` and says so while live, and its file goes on after the
//! stall with one gap (a contiguous run of what was sent before and after it). The others lose
//! nothing (every frame sent is in their files, in order) and the process's memory stays
//! bounded while the stall lasts.
#![cfg(feature = "testing")]

mod support;
use support::{common, recorder_support, sim_support};

use std::time::{Duration, Instant};

use recorder_support::{
    api, assert_contiguous_run, assert_run_with_one_gap, files_of, join_av, sent_hashes_of,
    start_daemon_with, wait_for,
};
use reqwest::Method;
use serde_json::json;
use sim_support::{call, start_sim};

/// Recordings that must lose nothing.
const OTHERS: usize = 20;
const STALL: Duration = Duration::from_secs(10);
const QUEUE: usize = 128 << 10;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_costs_only_its_own_recording_frames_counted() {
    let sim = start_sim(vec![]).await;
    let s = sim.http_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |c| {
        c.recording.start_timeout = Duration::from_secs(30);
        c.recording.media_queue_bytes = QUEUE;
    })
    .await;
    let addr = daemon.addr();
    let room = "disk";
    let mut people = vec![("stalled".to_owned(), join_av(s, room, "stalled").await)];
    for n in 0..OTHERS {
        let identity = format!("p{n:02}");
        let tracks = join_av(s, room, &identity).await;
        people.push((identity, tracks));
    }
    let mut ids = Vec::new();
    for (identity, _) in &people {
        let body = json!({ "room": room, "participant": identity }).to_string();
        let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
        assert_eq!(status, 201, "{rec}");
        ids.push(rec["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        wait_for(addr, id, None, Duration::from_secs(30), |r| {
            r["status"] == "active" && r["bytes"].as_u64() > Some(0)
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // the stalled recording's file is `disk/stalled-<time>.webm`
    let before = rss_bytes();
    livekit_recorder::output::failpoint::stall_flushes("/stalled-", STALL);
    let stall_started = Instant::now();
    let mut peak = before;
    while stall_started.elapsed() < STALL {
        tokio::time::sleep(Duration::from_millis(250)).await;
        peak = peak.max(rss_bytes());
    }
    // after the stall: the recording says what it dropped while it is still live
    let live =
        wait_for(addr, &ids[0], None, Duration::from_secs(10), |r| r["frames_dropped"].as_u64() > Some(0))
            .await;
    assert_eq!(live["status"], "active", "{live}");
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut done = Vec::new();
    for id in &ids {
        let (status, rec) =
            api(addr, Method::POST, "/recordings/stop", Some(&json!({ "id": id }).to_string()), None).await;
        assert_eq!(status, 200, "{rec}");
        done.push(rec);
    }
    let (_, sent) = call(s, Method::GET, &format!("/sim/rooms/{room}/sent"), None).await;
    let growth = peak.saturating_sub(before);
    eprintln!(
        "stalled recording: {} frames dropped, {} lost; RSS {:.1} MiB before the stall, peak {:.1} MiB during it (+{:.1} MiB)",
        done[0]["frames_dropped"],
        done[0]["frames_lost"],
        before as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );

    // the stalled one: complete, frames dropped and counted, one gap in a decodable file
    let (stalled, (video, audio)) = (&done[0], &people[0].1);
    assert_eq!(stalled["status"], "complete", "{stalled}");
    let dropped = stalled["frames_dropped"].as_u64().expect("frames_dropped");
    // at least the stall minus what the queue holds (~3.4 s) of 30 fps video and 50 fps audio
    assert!(dropped >= 80 * 5, "{dropped} frames dropped in a 10 s stall: {stalled}");
    let files = files_of(stalled);
    assert_eq!(files.len(), 1, "the same part goes on after the stall: {stalled}");
    let errors = common::ffmpeg_errors(&files[0]);
    assert!(errors.is_empty(), "{}: {errors}", files[0].display());
    let gap_v = assert_run_with_one_gap(
        "stalled video",
        &common::packets(&files[0], 0),
        &sent_hashes_of(&sent, video),
        30 * 20,
    );
    let gap_a = assert_run_with_one_gap(
        "stalled audio",
        &common::packets(&files[0], 1),
        &sent_hashes_of(&sent, audio),
        50 * 20,
    );
    assert!(gap_v > 30 && gap_a > 50, "a gap where frames were dropped: video {gap_v}, audio {gap_a}");

    // the others lost nothing
    for ((identity, (video, audio)), rec) in people.iter().zip(&done).skip(1) {
        assert_eq!(rec["status"], "complete", "{identity}: {rec}");
        assert_eq!(
            (rec["frames_dropped"].as_u64(), rec["frames_lost"].as_u64()),
            (Some(0), Some(0)),
            "{identity}: {rec}"
        );
        let files = files_of(rec);
        assert_eq!(files.len(), 1, "{identity}: {rec}");
        assert_contiguous_run(
            &format!("{identity} video"),
            &common::packets(&files[0], 0),
            &sent_hashes_of(&sent, video),
        );
        assert_contiguous_run(
            &format!("{identity} audio"),
            &common::packets(&files[0], 1),
            &sent_hashes_of(&sent, audio),
        );
    }
    // bounded: the stalled recording holds at most its queue; the rest is the others' normal use
    assert!(growth < 64 << 20, "RSS grew by {growth} bytes during the stall");
    daemon.shutdown().await;
    sim.stop().await;
}
