//! The recorder daemon end to end over real WebRTC against the in-process simulator: REST
//! start before the participant joins, frames in the file hash-matching `/sent` with none
//! missing inside the recorded interval, lip sync although audio was sent 700 ms late,
//! selective recording, idempotent start, error bodies, the paged and filtered list, and
//! (feature `testing`) a failed participant recorder continuing in a part 2 file.

mod support;
use support::{common, recorder_support, sim_support};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use recorder_support::{
    api, assert_contiguous_run, assert_run_with_one_gap, files_of, get_with_headers, sent_hashes,
    start_daemon, start_daemon_with, stop_by_id, wait_for, walk,
};
use reqwest::Method;
use serde_json::{json, Value};
use sim_support::{call, post_hook, signed_hook, start_sim, SECRET};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_join_records_every_frame_in_sync() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let (status, rec) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"late","participant":"alice"}"#), None)
            .await;
    assert_eq!(status, 201, "{rec}");
    assert_eq!(rec["status"], "pending");
    let id = rec["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body =
        json!({ "room": "late", "identity": "alice", "video": "vp8", "audio": "opus", "av_offset_ms": 700 });
    assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, done) =
        api(addr, Method::POST, "/recordings/stop", Some(r#"{"room":"late","participant":"alice"}"#), None)
            .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["tracks"].as_array().map(Vec::len), Some(2), "{done}");
    let path = PathBuf::from(done["files"][0].as_str().expect("file"));
    assert!(path.starts_with(dir.path().join("late")), "{path:?}");
    assert_eq!(std::fs::metadata(&path).expect("file").len(), done["bytes"].as_u64().expect("bytes"));
    let errors = common::ffmpeg_errors(&path);
    assert!(errors.is_empty(), "{errors}");
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/late/sent", None).await;
    assert_contiguous_run("video", &common::packets(&path, 0), &sent_hashes(&sent, "video"));
    assert_contiguous_run("audio", &common::packets(&path, 1), &sent_hashes(&sent, "audio"));
    common::assert_recorder_in_sync(&path, 1.0, 1);
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_requested_participant_is_recorded_and_errors_are_json() {
    let sim = start_sim(vec![]).await;
    sim_support::add_participant(sim.http_addr(), "two", "alice", Some("vp8"), true).await;
    sim_support::add_participant(sim.http_addr(), "two", "bob", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), Some("tok")).await;
    let addr = daemon.addr();
    let t = Some("tok");
    let start = Some(r#"{"room":"two","participant":"alice"}"#);
    let (s, e) = api(addr, Method::POST, "/recordings/start", start, None).await;
    assert_eq!((s, e["error"].is_string()), (401, true), "{e}");
    assert_eq!(api(addr, Method::POST, "/recordings/start", start, Some("nope")).await.0, 401);
    let (s, e) = api(addr, Method::POST, "/recordings/start", Some("{not json"), t).await;
    assert_eq!((s, e["error"].is_string()), (400, true), "{e}");
    assert_eq!(api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"two"}"#), t).await.0, 400);
    assert_eq!(
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"","participant":"x"}"#), t).await.0,
        400
    );
    assert_eq!(api(addr, Method::POST, "/recordings/stop", Some(r#"{"room":"two"}"#), t).await.0, 400);
    assert_eq!(api(addr, Method::GET, "/recordings?status=bogus", None, t).await.0, 400);
    let (s, e) = api(addr, Method::GET, "/recordings/RC_nope", None, t).await;
    assert_eq!((s, e["error"].is_string()), (404, true), "{e}");
    assert_eq!(api(addr, Method::POST, "/recordings/stop", Some(r#"{"id":"RC_nope"}"#), t).await.0, 404);

    let (s, rec) = api(addr, Method::POST, "/recordings/start", start, t).await;
    assert_eq!(s, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    let (s, again) = api(addr, Method::POST, "/recordings/start", start, t).await;
    assert_eq!((s, again["id"].as_str()), (200, Some(id.as_str())), "idempotent start");
    let (_, nobody) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"two","participant":"carol"}"#), t)
            .await;
    let nobody_id = nobody["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, t, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s, done) =
        api(addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#)), t).await;
    assert_eq!((s, done["status"].as_str()), (200, Some("complete")), "{done}");
    let failed = wait_for(addr, &nobody_id, t, Duration::from_secs(10), |r| r["status"] == "failed").await;
    assert!(failed["error"].as_str().unwrap_or("").contains("carol"), "{failed}");
    let (_, list) = api(addr, Method::GET, "/recordings?room=two&status=complete", None, t).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let files: Vec<String> = walk(dir.path()).iter().map(|p| p.display().to_string()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("alice") && !files[0].contains("bob"), "{files:?}");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(format!("{}.json", files[0])).expect("manifest beside the part"),
    )
    .expect("manifest JSON");
    assert_eq!((manifest["id"].as_str(), manifest["status"].as_str()), (Some(id.as_str()), Some("complete")));
    assert_eq!(manifest["parts"], done["parts"], "{manifest}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Issue 9: `GET /recordings` is a JSON array, newest started first (ties by id), at most
/// `limit` (default 100, 1-1000); `X-Next-Cursor` and `Link: rel="next"` lead to the next
/// page, `after=<id>` starts after a recording; `room`, `participant` and `status` filter; a
/// bad value is a 400 with a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_list_pages_newest_first_and_filters() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let mut all = Vec::new();
    for (room, who) in [("pa", "p1"), ("pa", "p2"), ("pb", "p1"), ("pa", "p3"), ("pb", "p2")] {
        // nobody publishes: stopped while pending, each ends `failed` at once
        let body = json!({ "room": room, "participant": who }).to_string();
        let (s, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
        assert_eq!(s, 201, "{rec}");
        let done = stop_by_id(addr, rec["id"].as_str().expect("id")).await;
        assert_eq!(done["status"], "failed", "{done}");
        all.push(done);
    }
    let id = |r: &Value| r["id"].as_str().expect("id").to_owned();
    let ids = |list: &Value| list.as_array().expect("a JSON array").iter().map(id).collect::<Vec<_>>();
    all.sort_by_key(|r| std::cmp::Reverse((r["started_at"].as_str().expect("started_at").to_owned(), id(r))));
    let want: Vec<String> = all.iter().map(id).collect();

    let (mut got, mut pages, mut path) = (Vec::new(), 0, "/recordings?limit=2".to_owned());
    loop {
        let (s, headers, page) = get_with_headers(addr, &path, None).await;
        assert_eq!(s, 200, "{page}");
        assert!(page.as_array().is_some_and(|p| p.len() <= 2), "{page}");
        got.extend(ids(&page));
        pages += 1;
        let Some(cursor) = headers.get("x-next-cursor") else { break };
        let cursor = cursor.to_str().expect("ascii").to_owned();
        let link = headers.get("link").and_then(|l| l.to_str().ok()).unwrap_or_default();
        let next = format!("</recordings?limit=2&cursor={cursor}>; rel=\"next\"");
        assert_eq!(link, next, "the Link header keeps the query");
        path = format!("/recordings?limit=2&cursor={cursor}");
        assert!(pages < 10, "the cursor does not advance");
    }
    assert_eq!((got.clone(), pages), (want.clone(), 3), "every recording once, newest first");
    let (_, headers, whole) = get_with_headers(addr, "/recordings", None).await;
    assert_eq!(ids(&whole), want, "the default limit (100) holds them all");
    assert!(headers.get("x-next-cursor").is_none(), "no next page");
    let (_, _, rest) = get_with_headers(addr, &format!("/recordings?after={}", want[1]), None).await;
    assert_eq!(ids(&rest), want[2..], "after=<id>");

    let (_, _, p1) = get_with_headers(addr, "/recordings?participant=p1", None).await;
    let p1_want: Vec<String> = all.iter().filter(|r| r["participant"] == "p1").map(id).collect();
    assert_eq!((ids(&p1), p1.as_array().map(Vec::len)), (p1_want, Some(2)), "{p1}");
    let (_, _, one) = get_with_headers(addr, "/recordings?room=pa&participant=p1&status=failed", None).await;
    assert_eq!(one.as_array().map(Vec::len), Some(1), "{one}");
    let (_, _, none) = get_with_headers(addr, "/recordings?status=complete", None).await;
    assert_eq!(none, json!([]));

    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "limit=-1",
        "cursor=bm9wZQ",
        "cursor=%%%",
        "after=RC_nope",
        "after=RC_1&cursor=bm9wZQ",
        "participant=",
        "room=a%07b",
        "sort=asc",
    ] {
        let (s, _, e) = get_with_headers(addr, &format!("/recordings?{bad}"), None).await;
        assert_eq!((s, e["error"].is_string()), (400, true), "{bad}: {e}");
    }
    assert_eq!(get_with_headers(addr, "/recordings?limit=1000", None).await.0, 200);
    daemon.shutdown().await;
    sim.stop().await;
}

#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_participant_and_room_actors_continue_in_new_parts() {
    use livekit_recorder::actors::supervisor::SupervisorMsg;
    let sim = start_sim(vec![]).await;
    for room in ["crash", "bystander"] {
        let body = json!({ "room": room, "identity": "alice", "video": "vp8", "audio": "opus" });
        assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let (_, rec) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"crash","participant":"alice"}"#), None)
            .await;
    let id = rec["id"].as_str().expect("id").to_owned();
    // another room's recording, which no fault may touch
    let other = r#"{"room":"bystander","participant":"alice"}"#;
    let (_, rec) = api(addr, Method::POST, "/recordings/start", Some(other), None).await;
    let other_id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.supervisor().cast(SupervisorMsg::InjectFailure(id.as_str().into())).expect("cast");
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["files"].as_array().map(Vec::len) == Some(2))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // the room actor fails as if its connection was lost: it reconnects and resumes in part 3
    daemon.supervisor().cast(SupervisorMsg::InjectRoomFailure("crash".into())).expect("cast");
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["files"].as_array().map(Vec::len) == Some(3))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let done = stop_by_id(addr, &id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files = files_of(&done);
    assert!(files[1].to_string_lossy().ends_with("-part2.webm"), "{files:?}");
    assert!(files.len() == 3 && files[2].to_string_lossy().ends_with("-part3.webm"), "{done}");
    for f in &files {
        let errors = common::ffmpeg_errors(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
    }
    assert!(
        common::ffprobe(&files[1]).duration.unwrap_or(0.0) > 1.5,
        "part 2 holds the rest of the recording"
    );
    let (_, metrics) = api(addr, Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_actor_restarts_total{actor=\"participant\"} 1\n"), "{text}");
    assert!(text.contains("recorder_actor_restarts_total{actor=\"room\"} 1\n"), "{text}");
    let stop = format!(r#"{{"id":"{other_id}"}}"#);
    let (_, other) = api(addr, Method::POST, "/recordings/stop", Some(&stop), None).await;
    assert_eq!(other["status"], "complete", "{other}");
    assert_eq!(other["files"].as_array().map(Vec::len), Some(1), "untouched: one part: {other}");
    let file = PathBuf::from(other["files"][0].as_str().expect("file"));
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/bystander/sent", None).await;
    assert_contiguous_run("bystander video", &common::packets(&file, 0), &sent_hashes(&sent, "video"));
    assert_contiguous_run("bystander audio", &common::packets(&file, 1), &sent_hashes(&sent, "audio"));
    daemon.shutdown().await;
    sim.stop().await;
}

#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_track_writer_leaves_a_short_gap_in_the_same_file() {
    use livekit_recorder::actors::supervisor::SupervisorMsg;
    use livekit_recorder::media::MediaKind;
    let sim = start_sim(vec![]).await;
    for (room, who) in [("tw", "alice"), ("tw-other", "bob")] {
        let body =
            json!({ "room": room, "identity": who, "video": "vp8", "audio": "opus", "av_offset_ms": 700 });
        assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let mut ids = Vec::new();
    for body in [r#"{"room":"tw","participant":"alice"}"#, r#"{"room":"tw-other","participant":"bob"}"#] {
        let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(body), None).await;
        assert_eq!(status, 201, "{rec}");
        ids.push(rec["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        wait_for(addr, id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    daemon
        .supervisor()
        .cast(SupervisorMsg::InjectTrackFailure(ids[0].as_str().into(), MediaKind::Video))
        .expect("cast");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut done = Vec::new();
    for id in &ids {
        let d = stop_by_id(addr, id).await;
        assert_eq!(d["status"], "complete", "{d}");
        assert_eq!(d["files"].as_array().map(Vec::len), Some(1), "one file, no new part: {d}");
        done.push(PathBuf::from(d["files"][0].as_str().expect("file")));
    }
    let (_, metrics) = api(addr, Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_actor_restarts_total{actor=\"track_writer\"} 1\n"), "{text}");
    assert!(text.contains("recorder_actor_restarts_total{actor=\"participant\"} 0\n"), "{text}");
    for f in &done {
        let errors = common::ffmpeg_errors(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
    }
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/tw/sent", None).await;
    let video = common::packets(&done[0], 0);
    let missing = assert_run_with_one_gap("alice video", &video, &sent_hashes(&sent, "video"), 45);
    // frames the publisher skipped to answer the keyframe request are not in /sent: the time
    // gap is read from the file
    let gap_ms = video.windows(2).map(|w| w[1].pts_ns() - w[0].pts_ns()).max().unwrap_or(0) / 1_000_000;
    eprintln!(
        "track writer restart: {missing} video frames missing, gap {gap_ms} ms, {} recorded",
        video.len()
    );
    assert!(gap_ms <= 1200, "video gap {gap_ms} ms after the restart");
    assert_contiguous_run("alice audio", &common::packets(&done[0], 1), &sent_hashes(&sent, "audio"));
    common::assert_recorder_in_sync(&done[0], 1.0, 2);
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/tw-other/sent", None).await;
    assert_contiguous_run("bob video", &common::packets(&done[1], 0), &sent_hashes(&sent, "video"));
    assert_contiguous_run("bob audio", &common::packets(&done[1], 1), &sent_hashes(&sent, "audio"));
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn track_layout_writes_one_complete_file_per_track() {
    let sim = start_sim(vec![]).await;
    let body = json!({ "room": "per-track", "identity": "carol", "video": "vp8", "audio": "opus" });
    assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let bad = r#"{"room":"per-track","participant":"carol","layout":"tracks"}"#;
    let (status, err) = api(addr, Method::POST, "/recordings/start", Some(bad), None).await;
    assert_eq!(status, 400, "{err}");
    assert!(err["error"].as_str().unwrap_or("").contains("expected `participant` or `track`"), "{err}");
    let start = r#"{"room":"per-track","participant":"carol","layout":"track"}"#;
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(start), None).await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = stop_by_id(addr, &id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 2, "{done}");
    let name = |f: &PathBuf| f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    assert!(name(&files[0]).ends_with("-video.webm"), "{files:?}");
    assert!(name(&files[1]).ends_with("-audio.ogg"), "{files:?}");
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).expect("file").len()).sum();
    assert_eq!(total, done["bytes"].as_u64().expect("bytes"));
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/per-track/sent", None).await;
    for (f, kind) in files.iter().zip(["video", "audio"]) {
        let errors = common::ffmpeg_errors(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
        let probe = common::ffprobe(f);
        assert_eq!(probe.streams.len(), 1, "{}: one track per file", f.display());
        assert_contiguous_run(kind, &common::packets(f, 0), &sent_hashes(&sent, kind));
    }
    daemon.shutdown().await;
    sim.stop().await;
}

/// A small tmpfs mounted at a directory (unmounted on drop); `None` where this process may
/// not mount (not root, no CAP_SYS_ADMIN).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[should_panic(expected = "under CI=1 this is a failure")]
fn a_setup_that_cannot_run_fails_under_ci() {
    common::skip_unless_ci("t", "cannot mount", true);
}

#[test]
fn a_setup_that_cannot_run_is_skipped_outside_ci() {
    common::skip_unless_ci("t", "cannot mount", false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_fails_only_the_recordings_on_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(_tmpfs) = Tmpfs::mount(&dir.path().join("full"), "96k") else {
        return common::skip_unless_ci(
            "a_full_disk_fails_only_the_recordings_on_it",
            "cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)",
            common::under_ci(),
        );
    };
    let sim = start_sim(vec![]).await;
    for room in ["full", "roomy"] {
        let body = json!({ "room": room, "identity": "alice", "video": "vp8", "audio": "opus" });
        assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    }
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let mut ids = Vec::new();
    for room in ["full", "roomy"] {
        let body = format!(r#"{{"room":"{room}","participant":"alice"}}"#);
        let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
        assert_eq!(status, 201, "{rec}");
        ids.push(rec["id"].as_str().expect("id").to_owned());
    }
    let failed = wait_for(addr, &ids[0], None, Duration::from_secs(30), |r| r["status"] == "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("disk full"), "{failed}");
    // what reached the full disk stays readable
    let partial = PathBuf::from(failed["files"][0].as_str().expect("the failed recording lists its file"));
    let probe = common::ffprobe(&partial);
    assert!(probe.streams.len() == 2 && probe.streams[0].packets > 0, "{}: {probe:?}", partial.display());
    let (status, health) = api(addr, Method::GET, "/health-check", None, None).await;
    assert_eq!((status, &health["status"]), (200, &json!("degraded")), "the daemon stays up: {health}");
    assert!(health["storage"].as_str().unwrap_or_default().contains("disk full"), "{health}");
    // while the disk is full, starts are refused with 507
    let again = r#"{"room":"full","participant":"alice"}"#;
    let (status, refused) = api(addr, Method::POST, "/recordings/start", Some(again), None).await;
    assert_eq!(status, 507, "{refused}");
    assert!(refused["error"].as_str().unwrap_or_default().contains("disk full"), "{refused}");
    let (_, other) = api(addr, Method::GET, &format!("/recordings/{}", ids[1]), None, None).await;
    assert_eq!(other["status"], "active", "{other}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stop = format!(r#"{{"id":"{}"}}"#, ids[1]);
    let (_, done) = api(addr, Method::POST, "/recordings/stop", Some(&stop), None).await;
    assert_eq!(done["status"], "complete", "{done}");
    let path = PathBuf::from(done["files"][0].as_str().expect("file"));
    let errors = common::ffmpeg_errors(&path);
    assert!(errors.is_empty(), "{errors}");
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/roomy/sent", None).await;
    assert_contiguous_run("video", &common::packets(&path, 0), &sent_hashes(&sent, "video"));
    assert_contiguous_run("audio", &common::packets(&path, 1), &sent_hashes(&sent, "audio"));
    let (_, metrics) = api(addr, Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_storage_failures_total 1\n"), "{text}");
    // space again: health recovers and starts are accepted (the probe runs at most once a second)
    std::fs::remove_file(&partial).expect("free the tmpfs");
    let deadline = Instant::now() + Duration::from_secs(5);
    let health = loop {
        let (_, health) = api(addr, Method::GET, "/health-check", None, None).await;
        if health["status"] == "ok" || Instant::now() > deadline {
            break health;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health["status"], "ok", "{health}");
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(again), None).await;
    assert_eq!(status, 201, "{rec}");
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn size_limit_rolls_parts_and_duration_limit_ends_the_recording() {
    let sim = start_sim(vec![]).await;
    let body = json!({ "room": "limits", "identity": "alice", "video": "vp8", "audio": "opus" });
    assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |c| {
        c.recording.max_file_bytes = Some(60_000);
        c.recording.max_duration = Some(Duration::from_secs(9));
    })
    .await;
    let addr = daemon.addr();
    let start = r#"{"room":"limits","participant":"alice"}"#;
    let t0 = Instant::now();
    let (_, rec) = api(addr, Method::POST, "/recordings/start", Some(start), None).await;
    let id = rec["id"].as_str().expect("id").to_owned();
    // nobody stops it: the duration limit does
    let done = wait_for(addr, &id, None, Duration::from_secs(20), |r| r["status"] == "complete").await;
    // when it ended, not after the file checks below (ffmpeg's time varies with the load)
    let wall = t0.elapsed().as_secs_f64();
    let files = files_of(&done);
    assert!(files.len() >= 2, "60 kB parts: {done}");
    let (_, sent) = call(sim.http_addr(), Method::GET, "/sim/rooms/limits/sent", None).await;
    let (mut audio, mut video) = (Vec::new(), Vec::new());
    for (n, f) in files.iter().enumerate() {
        let errors = common::ffmpeg_errors(f);
        assert!(errors.is_empty(), "{}: {errors}", f.display());
        if n + 1 < files.len() {
            // a part closes at the first video keyframe past the limit (at most ~1 s more)
            let len = std::fs::metadata(f).expect("part").len();
            assert!((60_000..200_000).contains(&len), "{}: {len} bytes", f.display());
        }
        let v = common::packets(f, 0);
        // VP8: bit 0 of the first byte clear = keyframe
        assert!(v.first().is_some_and(|p| p.data[0] & 1 == 0), "{} starts with a keyframe", f.display());
        video.extend(v);
        audio.extend(common::packets(f, 1));
    }
    // the parts join without a missing frame
    assert_contiguous_run("video across parts", &video, &sent_hashes(&sent, "video"));
    // audio goes on across the parts without a missing frame
    assert_contiguous_run("audio across parts", &audio, &sent_hashes(&sent, "audio"));
    let secs = done["duration_s"].as_f64().expect("duration");
    assert!(
        (8.5..11.5).contains(&wall) && secs > 4.0 && secs < 9.0,
        "ended by the 9 s limit: {wall} s, media {secs} s"
    );
    // one manifest per part file, each the recording as it ended (all its parts)
    let manifests: Vec<PathBuf> = std::fs::read_dir(dir.path().join("limits"))
        .expect("room dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert_eq!(manifests.len(), files.len(), "{manifests:?}");
    for f in &files {
        let m: Value =
            serde_json::from_slice(&std::fs::read(format!("{}.json", f.display())).expect("manifest"))
                .expect("manifest JSON");
        assert_eq!((m["id"].as_str(), m["room"].as_str()), (Some(id.as_str()), Some("limits")), "{m}");
        assert_eq!(
            (m["participant"].as_str(), m["status"].as_str()),
            (Some("alice"), Some("complete")),
            "{m}"
        );
        assert_eq!(m["parts"], done["parts"], "{m}");
    }
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn starts_beyond_max_concurrent_recordings_are_refused() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |c| c.recording.max_concurrent = Some(2)).await;
    let addr = daemon.addr();
    for who in ["a", "b"] {
        let body = format!(r#"{{"room":"cap","participant":"{who}"}}"#);
        assert_eq!(api(addr, Method::POST, "/recordings/start", Some(&body), None).await.0, 201);
    }
    let (status, err) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"cap","participant":"c"}"#), None).await;
    assert_eq!(status, 503, "{err}");
    assert!(err["error"].as_str().unwrap_or_default().contains("MAX_CONCURRENT_RECORDINGS=2"), "{err}");
    // the same participant again is not a new recording: still answered
    let (status, _) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"cap","participant":"a"}"#), None).await;
    assert_eq!(status, 200);
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_webhooks_start_and_stop_recordings() {
    let sim = start_sim(vec![]).await;
    sim_support::add_participant(sim.http_addr(), "hook", "alice", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // the API token guards /recordings/* but not the webhook route (it has its own signature)
    let daemon = start_daemon(&sim, dir.path(), Some("tok")).await;
    let addr = daemon.addr();
    let (s, e) = post_hook(
        addr,
        signed_hook("participant_joined", "EV_0", "hook", "alice", "wrong-secret-wrong-secret"),
    )
    .await;
    assert_eq!((s, e["error"].is_string()), (401, true), "{e}");
    let bot = signed_hook("participant_joined", "EV_B", "hook", "lkrec-other", SECRET);
    assert_eq!(post_hook(addr, bot).await.1["action"], "ignored: recorder bot");
    let joined = signed_hook("participant_joined", "EV_1", "hook", "alice", SECRET);
    let (s, r) = post_hook(addr, joined.clone()).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(post_hook(addr, joined).await.1["action"], "duplicate");
    let (_, list) = api(addr, Method::GET, "/recordings?room=hook", None, Some("tok")).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let id = list[0]["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, Some("tok"), Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (s, _) = post_hook(addr, signed_hook("participant_left", "EV_2", "hook", "alice", SECRET)).await;
    assert_eq!(s, 200);
    let done = wait_for(addr, &id, Some("tok"), Duration::from_secs(10), |r| r["status"] == "complete").await;
    let path = PathBuf::from(done["files"][0].as_str().expect("file"));
    let errors = common::ffmpeg_errors(&path);
    assert!(errors.is_empty(), "{errors}");
    // a new join starts a new recording; room_finished stops everything in the room
    let (_, r) = post_hook(addr, signed_hook("participant_joined", "EV_3", "hook", "alice", SECRET)).await;
    let id2 = r["action"].as_str().and_then(|a| a.strip_prefix("recording ")).expect("started").to_owned();
    assert_ne!(id2, id);
    wait_for(addr, &id2, Some("tok"), Duration::from_secs(10), |r| r["status"] == "active").await;
    let (_, r) = post_hook(addr, signed_hook("room_finished", "EV_4", "hook", "", SECRET)).await;
    assert_eq!(r["action"], "stopping 1");
    wait_for(addr, &id2, Some("tok"), Duration::from_secs(10), |r| r["status"] == "complete").await;
    daemon.shutdown().await;
    sim.stop().await;
}
