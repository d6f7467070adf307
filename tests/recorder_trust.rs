//! A recording's status never lies (end to end, daemon against the in-process simulator):
//! no `complete` without media, a stall says so while live, a drain ends every live recording
//! in the journal, dependencies that refuse us or are down fail or show why, colliding file
//! names keep both recordings, webhooks get the REST checks, durations are reported, the
//! HTTP surface answers wrong methods and oversize bodies with JSON, and ended recordings
//! answer the same after a restart (within the history's retention), never resumed.

mod support;
use support::{common, recorder_support, sim_support};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use recorder_support::{
    api, files_of, sent_hashes, start_daemon, start_daemon_with, stop_by_id, wait_for, walk,
};
use reqwest::Method;
use serde_json::{json, Value};
use sim_support::{call, start_sim, KEY, SECRET};

async fn start(addr: SocketAddr, room: &str, who: &str, filename: Option<&str>) -> String {
    let body = match filename {
        Some(f) => json!({ "room": room, "participant": who, "filename": f }),
        None => json!({ "room": room, "participant": who }),
    };
    let (s, rec) = api(addr, Method::POST, "/recordings/start", Some(&body.to_string()), None).await;
    assert_eq!(s, 201, "{rec}");
    rec["id"].as_str().expect("id").to_owned()
}

async fn mute(sim: SocketAddr, room: &str, who: &str, muted: bool) {
    for kind in ["audio", "video"] {
        let path = format!("/sim/participants/{room}/{who}/mute");
        let (s, r) = call(sim, Method::POST, &path, Some(json!({ "kind": kind, "muted": muted }))).await;
        assert_eq!(s, 200, "{r}");
    }
}

/// Item 2: a recording that got no frame ends `failed` with the reason (it used to end
/// `complete` with an empty file); one whose media stops says so while `active`; and item 8:
/// ended recordings and parts report their media duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_media_never_completes_and_a_stall_shows_while_live() {
    let sim = start_sim(vec![]).await;
    let sim_addr = sim.http_addr();
    sim_support::add_participant(sim_addr, "quiet", "mute", Some("vp8"), true).await;
    mute(sim_addr, "quiet", "mute", true).await;
    sim_support::add_participant(sim_addr, "quiet", "talker", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // long enough for the part to open without frames (it opens after the sender-report wait)
    let daemon =
        start_daemon_with(&sim, dir.path(), None, |c| c.recording.start_timeout = Duration::from_secs(30))
            .await;
    let addr = daemon.addr();
    let silent = start(addr, "quiet", "mute", None).await;
    let talker = start(addr, "quiet", "talker", None).await;
    // the silent participant's part opens (its tracks are subscribed) but nothing arrives
    let live = wait_for(addr, &silent, None, Duration::from_secs(20), |r| {
        r["error"].as_str().is_some_and(|e| e.contains("no media received"))
    })
    .await;
    assert_eq!(live["status"], "active", "{live}");
    let done = stop_by_id(addr, &silent).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"].as_str().is_some_and(|e| e.contains("no media")), "{done}");

    // the talker records, then goes quiet: `active`, with the stall in `error`
    wait_for(addr, &talker, None, Duration::from_secs(15), |r| r["status"] == "active").await;
    wait_for(addr, &talker, None, Duration::from_secs(10), |r| r["duration_s"].as_f64() > Some(1.0)).await;
    mute(sim_addr, "quiet", "talker", true).await;
    let stalled = wait_for(addr, &talker, None, Duration::from_secs(15), |r| r["error"].is_string()).await;
    assert_eq!(stalled["status"], "active", "{stalled}");
    assert!(stalled["error"].as_str().is_some_and(|e| e.contains("no media received")), "{stalled}");
    mute(sim_addr, "quiet", "talker", false).await;
    wait_for(addr, &talker, None, Duration::from_secs(15), |r| r["error"].is_null()).await;
    let done = stop_by_id(addr, &talker).await;
    assert_eq!(done["status"], "complete", "{done}");
    // item 8: the duration of the ended recording and of its part are the media time
    let total = done["duration_s"].as_f64().expect("duration");
    let part = done["parts"][0]["duration_s"].as_f64().expect("part duration");
    assert!(total > 1.0 && (total - part).abs() < 1e-6, "{done}");
    // ffmpeg's reading of the file: the span of its video packets
    let video = common::packets(&files_of(&done)[0], 0);
    let span = (video.last().expect("packets").pts_ns() - video[0].pts_ns()) as f64 / 1e9;
    assert!((span - total).abs() < 1.0, "video spans {span} s, duration_s {total}: {done}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Item 3: a drain ends every recording in the journal, so the next start resumes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drain_leaves_no_live_job_in_the_journal() {
    let sim = start_sim(vec![]).await;
    let rooms = ["d1", "d2", "d3"];
    for room in rooms {
        sim_support::add_participant(sim.http_addr(), room, "alice", Some("vp8"), true).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let mut ids = Vec::new();
    for room in rooms {
        ids.push(start(addr, room, "alice", None).await);
    }
    // one more that never gets media: its participant does not exist
    ids.push(start(addr, "d1", "nobody", None).await);
    for id in &ids[..3] {
        wait_for(addr, id, None, Duration::from_secs(15), |r| r["status"] == "active").await;
    }
    assert!(daemon.drain(Duration::from_secs(30)).await, "drained in time");
    let (_, replayed) = livekit_recorder::storage::journal::Journal::open(dir.path()).expect("journal");
    let live: Vec<_> =
        replayed.jobs.values().filter(|j| j.status.is_live()).map(|j| (&j.spec.id, j.status)).collect();
    assert!(live.is_empty(), "live after a clean drain: {live:?}");
    // and a restart resumes nothing
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let (_, list) = api(daemon.addr(), Method::GET, "/recordings", None, None).await;
    let resumed: Vec<&Value> = list
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["status"] != "complete" && r["status"] != "failed")
        .collect();
    assert!(resumed.is_empty(), "{resumed:?}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Item 4: a wrong API secret (401) fails the recording at once with the server's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_connection_fails_at_once() {
    let sim = start_sim(vec![]).await;
    sim_support::add_participant(sim.http_addr(), "auth", "alice", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = DaemonConfig::new(&sim.ws_url(), KEY, "wrong-secret-wrong-secret-wrong-00", dir.path());
    cfg.recording.start_timeout = Duration::from_secs(60);
    cfg.recording.resume_timeout = Duration::from_secs(300);
    let daemon = Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon");
    let addr = daemon.addr();
    let id = start(addr, "auth", "alice", None).await;
    let t0 = std::time::Instant::now();
    let failed = wait_for(addr, &id, None, Duration::from_secs(15), |r| r["status"] == "failed").await;
    assert!(t0.elapsed() < Duration::from_secs(15));
    let err = failed["error"].as_str().unwrap_or_default();
    assert!(err.contains("refused") && err.contains("401"), "{failed}");
    let (_, health) = api(addr, Method::GET, "/health-check", None, None).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["livekit"].is_string(), "{health}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Item 4: an unreachable LiveKit shows in the recording (`error` while it is retried) and in
/// the health check, and START_TIMEOUT bounds the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_livekit_is_reported_and_bounded_by_the_start_timeout() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = DaemonConfig::new(&format!("ws://127.0.0.1:{port}"), KEY, SECRET, dir.path());
    cfg.recording.start_timeout = Duration::from_secs(5);
    let daemon = Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon");
    let addr = daemon.addr();
    let (_, health) = api(addr, Method::GET, "/health-check", None, None).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert!(health["livekit"].as_str().is_some_and(|e| e.contains("unreachable")), "{health}");
    let id = start(addr, "nowhere", "alice", None).await;
    let waiting = wait_for(addr, &id, None, Duration::from_secs(4), |r| r["error"].is_string()).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert!(waiting["error"].as_str().is_some_and(|e| e.contains("retrying")), "{waiting}");
    let failed = wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "failed").await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("START_TIMEOUT")), "{failed}");
    daemon.shutdown().await;
}

/// Item 5: two recordings whose file names come out the same both keep all their media.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colliding_file_names_keep_both_recordings() {
    let sim = start_sim(vec![]).await;
    for room in ["x y", "x_y"] {
        let body = json!({ "room": room, "identity": "alice", "video": "vp8", "audio": "opus" });
        assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon_with(&sim, dir.path(), None, |_| {}).await;
    let addr = daemon.addr();
    // the same template and a room that sanitizes to the same directory
    let a = start(addr, "x y", "alice", Some("{room_name}/{publisher_identity}")).await;
    let b = start(addr, "x_y", "alice", Some("{room_name}/{publisher_identity}")).await;
    for id in [&a, &b] {
        wait_for(addr, id, None, Duration::from_secs(15), |r| r["status"] == "active").await;
    }
    wait_for(addr, &b, None, Duration::from_secs(10), |r| r["duration_s"].as_f64() > Some(2.0)).await;
    let (ra, rb) = (stop_by_id(addr, &a).await, stop_by_id(addr, &b).await);
    for (r, room) in [(&ra, "x y"), (&rb, "x_y")] {
        assert_eq!(r["status"], "complete", "{r}");
        let files = files_of(r);
        assert_eq!(files.len(), 1, "one part, not a lost first part: {r}");
        assert!(files[0].starts_with(dir.path()), "{files:?}");
        let (_, sent) =
            call(sim.http_addr(), Method::GET, &format!("/sim/rooms/{}/sent", urlencode(room)), None).await;
        recorder_support::assert_contiguous_run(
            room,
            &common::packets(&files[0], 0),
            &sent_hashes(&sent, "video"),
        );
    }
    assert_ne!(files_of(&ra), files_of(&rb), "distinct inputs never share a file");
    daemon.shutdown().await;
    sim.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn signed(body: &str) -> String {
    use sha2::Digest;
    let sha = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sha2::Sha256::digest(body));
    livekit_api::access_token::AccessToken::with_api_key(KEY, SECRET)
        .with_ttl(Duration::from_secs(60))
        .with_sha256(&sha)
        .to_jwt()
        .expect("jwt")
}

async fn webhook(addr: SocketAddr, body: &str, auth: &str) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let resp = client
        .post(format!("http://{addr}/recordings/webhooks"))
        .header("authorization", auth)
        .header("content-type", "application/webhook+json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null))
}

/// Item 6 and 10: a webhook that cannot become a valid recording is answered, not recorded;
/// a rejected signature says what failed; wrong methods are 405 and oversize bodies 413, with
/// JSON bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_validated_and_http_errors_are_json() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    for (room, who) in [("", "alice"), ("r", ""), ("r", "a\u{1}b"), (&*"r".repeat(300), "alice")] {
        let body = json!({ "event": "participant_joined", "id": format!("EV_{}{}", room.len(), who.len()),
            "room": { "name": room }, "participant": { "identity": who } })
        .to_string();
        let (s, r) = webhook(addr, &body, &signed(&body)).await;
        assert_eq!(s, 200, "{r}");
        assert!(
            r["action"].as_str().is_some_and(|a| a.starts_with("ignored: invalid participant_joined")),
            "{r}"
        );
    }
    let (_, list) = api(addr, Method::GET, "/recordings", None, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(0), "no recording from invalid webhooks: {list}");
    let body = r#"{"event":"room_started","id":"EV_x"}"#;
    let wrong =
        livekit_api::access_token::AccessToken::with_api_key(KEY, "another-secret-another-secret-0000")
            .with_sha256("x")
            .to_jwt()
            .expect("jwt");
    let (s, r) = webhook(addr, body, &wrong).await;
    assert_eq!(s, 401, "{r}");
    assert!(r["error"].as_str().is_some_and(|e| e.contains("bad signature")), "{r}");

    let (s, r) = api(addr, Method::GET, "/recordings/start", None, None).await;
    assert_eq!((s, r["error"].is_string()), (405, true), "{r}");
    let (s, r) = api(addr, Method::DELETE, "/recordings/RC_1", None, None).await;
    assert_eq!((s, r["error"].is_string()), (405, true), "{r}");
    let big = format!(r#"{{"room":"r","participant":"{}"}}"#, "x".repeat(2 << 20));
    let (s, r) = api(addr, Method::POST, "/recordings/start", Some(&big), None).await;
    assert_eq!((s, r["error"].is_string()), (413, true), "{r}");
    let long = format!("/recordings/{}", "x".repeat(20_000));
    let (s, r) = api(addr, Method::GET, &long, None, None).await;
    assert!(s >= 400 && r["error"].is_string(), "{s} {r}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Item 10: a RECORDINGS_DIR that is a file is one clear error naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recordings_dir_that_is_a_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file: PathBuf = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let cfg = DaemonConfig::new("ws://127.0.0.1:9", KEY, SECRET, &file);
    let err = Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.err().expect("refused");
    let msg = err.to_string();
    assert!(msg.contains("RECORDINGS_DIR") && msg.contains("not a directory"), "{msg}");
}

/// Issue 9: ended recordings (complete and failed) answer with the same JSON after a restart,
/// in `GET /recordings` too, and the new daemon does not resume them although the participant
/// is still publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_recordings_answer_the_same_after_a_restart() {
    let sim = start_sim(vec![]).await;
    sim_support::add_participant(sim.http_addr(), "hist", "alice", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let done_id = start(addr, "hist", "alice", None).await;
    let failed_id = start(addr, "hist", "nobody", None).await;
    wait_for(addr, &done_id, None, Duration::from_secs(15), |r| r["status"] == "active").await;
    wait_for(addr, &done_id, None, Duration::from_secs(10), |r| r["duration_s"].as_f64() > Some(1.0)).await;
    let done = stop_by_id(addr, &done_id).await;
    assert_eq!(done["status"], "complete", "{done}");
    let failed = stop_by_id(addr, &failed_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let (_, before_done) = api(addr, Method::GET, &format!("/recordings/{done_id}"), None, None).await;
    let (_, before_failed) = api(addr, Method::GET, &format!("/recordings/{failed_id}"), None, None).await;
    assert!(before_done["parts"].as_array().is_some_and(|p| p.len() == 1), "{before_done}");
    assert!(before_done["tracks"].as_array().is_some_and(|t| !t.is_empty()), "{before_done}");
    daemon.shutdown().await;

    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let (s, after_done) = api(addr, Method::GET, &format!("/recordings/{done_id}"), None, None).await;
    assert_eq!(s, 200, "the complete recording is still known: {after_done}");
    assert_eq!(after_done, before_done, "the same JSON after a restart");
    let (s, after_failed) = api(addr, Method::GET, &format!("/recordings/{failed_id}"), None, None).await;
    assert_eq!(s, 200, "the failed recording is still known: {after_failed}");
    assert_eq!(after_failed, before_failed, "the same JSON after a restart");
    let (_, list) = api(addr, Method::GET, "/recordings?room=hist", None, None).await;
    let listed: Vec<&Value> = list.as_array().expect("list").iter().collect();
    assert_eq!(listed, [&after_failed, &after_done], "newest started first: {list}");
    // alice still publishes: an ended recording must not come back to life
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, later) = api(addr, Method::GET, &format!("/recordings/{done_id}"), None, None).await;
    assert_eq!(later, before_done, "not resumed");
    let files = walk(dir.path());
    assert_eq!(files.len(), 1, "no new part file: {files:?}");
    daemon.shutdown().await;
    sim.stop().await;
}

/// Issue 9: `HISTORY_MAX_RECORDINGS` keeps the newest ended recordings, live and after a
/// restart (a smaller limit at the next start drops more, oldest first).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_history_keeps_the_newest_ended_recordings_across_restarts() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = |n: usize| move |c: &mut DaemonConfig| c.recording.history.max_recordings = n;
    let daemon = start_daemon_with(&sim, dir.path(), None, keep(2)).await;
    let addr = daemon.addr();
    let mut ids = Vec::new();
    for who in ["p1", "p2", "p3"] {
        // nobody publishes: stopped while pending, they end `failed` at once
        let id = start(addr, "keep", who, None).await;
        assert_eq!(stop_by_id(addr, &id).await["status"], "failed");
        ids.push(id);
    }
    assert_eq!(statuses(addr, &ids).await, [404, 200, 200], "the oldest ended is dropped");
    daemon.shutdown().await;

    let daemon = start_daemon_with(&sim, dir.path(), None, keep(2)).await;
    let addr = daemon.addr();
    let got: Vec<u16> = statuses(addr, &ids).await;
    assert_eq!(got, [404, 200, 200], "the same two after a restart");
    daemon.shutdown().await;

    let daemon = start_daemon_with(&sim, dir.path(), None, keep(1)).await;
    let addr = daemon.addr();
    assert_eq!(statuses(addr, &ids).await, [404, 404, 200], "a smaller limit drops the oldest");
    let (_, list) = api(addr, Method::GET, "/recordings", None, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    daemon.shutdown().await;
    sim.stop().await;
}

async fn statuses(addr: SocketAddr, ids: &[String]) -> Vec<u16> {
    let mut out = Vec::new();
    for id in ids {
        out.push(api(addr, Method::GET, &format!("/recordings/{id}"), None, None).await.0);
    }
    out
}

/// Issue 9: `src/actors` never imports the HTTP layer (the webhook types live in
/// `src/webhook.rs`); `.ci/test` checks the same.
#[test]
fn the_actors_do_not_depend_on_http() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("actors.rs")];
    files.extend(walk(&root.join("actors")));
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).expect("source").contains("crate::http"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "src/actors imports crate::http: {offenders:?}");
}

/// Issue 9: `HISTORY_MAX_AGE` drops an ended recording that long after it ended, on the
/// daemon's timer (nothing else ends), and a restart does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ended_recordings_expire_after_the_history_max_age() {
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let short = |c: &mut DaemonConfig| c.recording.history.max_age = Duration::from_secs(1);
    let daemon = start_daemon_with(&sim, dir.path(), None, short).await;
    let addr = daemon.addr();
    let id = start(addr, "age", "nobody", None).await;
    assert_eq!(stop_by_id(addr, &id).await["status"], "failed");
    assert_eq!(statuses(addr, std::slice::from_ref(&id)).await, [200], "kept while young");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(statuses(addr, std::slice::from_ref(&id)).await, [404], "dropped once older than 1 s");
    daemon.shutdown().await;
    let daemon = start_daemon(&sim, dir.path(), None).await;
    assert_eq!(statuses(daemon.addr(), &[id]).await, [404], "not back after a restart");
    daemon.shutdown().await;
    sim.stop().await;
}
