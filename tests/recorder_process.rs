//! The recorder as users run it: `livekit-recorder serve` as a child process (configured by
//! environment variables) against the in-process simulator, stopped by signals.
//!
//! - SIGTERM during 5 A/V recordings (S3 and two callback URLs configured): the process exits
//!   0 within `DRAIN_TIMEOUT`, every file is uploaded and called back before the exit, and
//!   complete: ffmpeg decodes it, its frames are a contiguous run of what the simulator sent,
//!   and it reaches the frames sent just before the signal.
//! - kill -9 at 3 random moments during 5 A/V recordings, each followed by a restart on the
//!   same directory: every recording resumes in a new part within 3 s, every part decodes and is
//!   a contiguous run of what was sent, and each killed part holds everything sent until at
//!   most the last flush interval before the kill.
//! - S3 down for 60 s (`RECORDER_S3_OUTAGE_SECS`) with a kill -9 and restart in the middle:
//!   every object is uploaded afterwards, and each callback URL gets exactly one signed body
//!   per recording, after its objects exist.

mod support;
use support::{common, recorder_support, s3_support, serve_support, sim_support};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{json, Value};
use serve_support::{api, serve, signal, wait_exit, wait_rec};
use sim_support::{call, start_sim};

/// One synthetic VP8 + Opus participant `alice` per room.
async fn add_participants(sim: &livekit_recorder::sim::SimHandle, rooms: &[String], av_offset_ms: u64) {
    for room in rooms {
        let body = json!({ "room": room, "identity": "alice", "video": "vp8", "audio": "opus", "av_offset_ms": av_offset_ms });
        assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    }
}

/// Starts a recording of `alice` in every room and waits until each is `active`; the ids.
async fn record_all(addr: SocketAddr, rooms: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for room in rooms {
        let body = format!(r#"{{"room":"{room}","participant":"alice"}}"#);
        let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body)).await;
        assert_eq!(status, 201, "{rec}");
        ids.push(rec["id"].as_str().expect("id").to_owned());
    }
    for id in &ids {
        wait_rec(addr, id, Duration::from_secs(15), |r| r["status"] == "active").await;
    }
    ids
}

/// The `serve` environment for S3 on `endpoint` (moto's test credentials, path style).
fn s3_env(endpoint: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("S3_BUCKET", s3_support::BUCKET),
        ("S3_ENDPOINT", endpoint),
        ("S3_FORCE_PATH_STYLE", "true"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// `(sha256, ntp_ns)` of the frames of one kind in a `/sent` answer.
fn sent_frames(sent: &Value, kind: &str) -> Vec<(String, u64)> {
    let t = sent["tracks"].as_array().expect("tracks").iter().find(|t| t["kind"] == kind).expect("track");
    t["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| (f["sha256"].as_str().expect("hash").to_owned(), f["ntp_ns"].as_u64().expect("ntp")))
        .collect()
}

/// The packets are a contiguous run of `sent`; returns the sender time of the last one. The
/// loops repeat every 4 s, so a run can match at several places: the latest one that ended no
/// later than `not_after` (nothing can be recorded after the process died) is the true one.
fn contiguous_run_end(what: &str, packets: &[common::Packet], sent: &[(String, u64)], not_after: u64) -> u64 {
    let hashes: Vec<String> = sent.iter().map(|(h, _)| h.clone()).collect();
    let ends = recorder_support::contiguous_run_ends(what, packets, &hashes);
    let end = ends.iter().map(|&i| sent[i].1).filter(|&t| t <= not_after).max();
    end.unwrap_or_else(|| panic!("{what}: the run ends after the process stopped"))
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.extension().is_some_and(|x| x == "webm") {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finalizes_every_recording_and_exits_zero() {
    let sim = start_sim(vec![]).await;
    let rooms: Vec<String> = (0..5).map(|i| format!("drain-{i}")).collect();
    add_participants(&sim, &rooms, 700).await;
    // with S3 and two callback URLs: the drain uploads and calls back before the exit
    let moto = s3_support::Moto::start(s3_support::free_port()).await;
    s3_support::create_bucket(&moto.endpoint()).await;
    let receivers = [
        s3_support::Receiver::start(0, Some(moto.endpoint())),
        s3_support::Receiver::start(0, Some(moto.endpoint())),
    ];
    let urls = format!("{},{}", receivers[0].url, receivers[1].url);
    let endpoint = moto.endpoint();
    let mut env = s3_env(&endpoint);
    env.extend([("DRAIN_TIMEOUT", "20s"), ("S3_KEEP_LOCAL", "true"), ("WEBHOOK_URLS", urls.as_str())]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = serve(&sim, dir.path(), &env).await;
    let ids = record_all(daemon.addr, &rooms).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let signalled_ns = unix_ns();
    signal(&daemon.child, "-TERM");
    let code = tokio::task::block_in_place(|| wait_exit(&mut daemon.child, Duration::from_secs(25)));
    let exited_ns = unix_ns();
    assert_eq!(code, Some(0), "exit code after SIGTERM");
    // called back before the exit: every receiver already has one body per recording
    for rx in &receivers {
        let accepted = rx.accepted();
        assert_eq!(accepted.len(), ids.len(), "callbacks at {} before the exit", rx.url);
        for a in &accepted {
            s3_support::assert_signed(a);
            assert!(a.objects_existed, "called back before the upload: {}", a.body);
            let body: Value = serde_json::from_str(&a.body).expect("json");
            assert_eq!(body["status"], "complete", "{body}");
            assert!(ids.iter().any(|id| body["id"] == *id), "{body}");
        }
    }
    let files = files_under(dir.path());
    assert_eq!(files.len(), 5, "{files:?}");
    for (room, file) in rooms.iter().zip(&files) {
        assert!(file.starts_with(dir.path().join(room)), "{file:?}");
        let errors = common::ffmpeg_errors(file);
        assert!(errors.is_empty(), "{}: {errors}", file.display());
        // uploaded before the exit, whole
        let key = file.strip_prefix(dir.path()).expect("under the dir").to_string_lossy().into_owned();
        let head = s3_support::s3_client(&moto.endpoint())
            .head_object()
            .bucket(s3_support::BUCKET)
            .key(&key)
            .send()
            .await;
        let size = std::fs::metadata(file).expect("kept").len() as i64;
        assert_eq!(head.expect("object").content_length(), Some(size), "{key}");
        let (_, sent) = call(sim.http_addr(), Method::GET, &format!("/sim/rooms/{room}/sent"), None).await;
        for (index, kind) in [(0, "video"), (1, "audio")] {
            let end =
                contiguous_run_end(kind, &common::packets(file, index), &sent_frames(&sent, kind), exited_ns);
            // the file reaches what was sent just before the signal (allowing for the
            // network path and the interleaving window)
            let behind_ms = (signalled_ns as i64 - end as i64) / 1_000_000;
            eprintln!("{room} {kind}: last frame in the file was sent {behind_ms} ms before SIGTERM");
            assert!(behind_ms < 600, "{}: {kind} ends {behind_ms} ms before SIGTERM", file.display());
        }
    }
    sim.stop().await;
}

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_three_times_loses_at_most_a_flush_interval_and_resumes() {
    let sim = start_sim(vec![]).await;
    let rooms: Vec<String> = (0..5).map(|i| format!("crash-{i}")).collect();
    add_participants(&sim, &rooms, 700).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = serve(&sim, dir.path(), &[]).await;
    let ids = record_all(daemon.addr, &rooms).await;
    let mut rng = common::Lcg(0x5eed_c0de);
    // (kill time, restart time), UNIX ns
    let mut crashes = Vec::new();
    for round in 1..=3u64 {
        let wait_ms = 1500 + rng.next() % 2000;
        tokio::time::sleep(Duration::from_millis(wait_ms)).await;
        let killed = unix_ns();
        signal(&daemon.child, "-KILL");
        let _ = tokio::task::block_in_place(|| wait_exit(&mut daemon.child, Duration::from_secs(10)));
        let restarted = unix_ns();
        daemon = serve(&sim, dir.path(), &[]).await;
        for id in &ids {
            let want = (round + 1) as usize;
            let r = wait_rec(daemon.addr, id, Duration::from_secs(10), |r| {
                r["files"].as_array().map(Vec::len) == Some(want)
            })
            .await;
            assert_eq!(r["status"], "active", "resumed: {r}");
        }
        eprintln!("round {round}: killed after {wait_ms} ms; every recording resumed in part {}", round + 1);
        crashes.push((killed, restarted));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in &ids {
        let (status, done) =
            api(daemon.addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#))).await;
        assert_eq!((status, &done["status"]), (200, &json!("complete")), "{done}");
        let files: Vec<PathBuf> = done["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| PathBuf::from(f.as_str().expect("path")))
            .collect();
        assert_eq!(files.len(), 4, "{done}");
        let room = done["room"].as_str().expect("room");
        let (_, sent) = call(sim.http_addr(), Method::GET, &format!("/sim/rooms/{room}/sent"), None).await;
        for (n, file) in files.iter().enumerate() {
            let errors = common::ffmpeg_errors(file);
            assert!(errors.is_empty(), "{}: {errors}", file.display());
            for (index, kind) in [(0, "video"), (1, "audio")] {
                let packets = common::packets(file, index);
                let frames = sent_frames(&sent, kind);
                let not_after = crashes.get(n).map_or(u64::MAX, |c| c.0);
                let what = format!("{} {kind}", file.display());
                let end = contiguous_run_end(&what, &packets, &frames, not_after);
                if let Some(&(killed, _)) = crashes.get(n) {
                    let lost_ms = (killed as i64 - end as i64) / 1_000_000;
                    eprintln!("{room} part {} {kind}: last frame sent {lost_ms} ms before the kill", n + 1);
                    assert!(lost_ms <= 1300, "{}: {kind} lost {lost_ms} ms before the kill", file.display());
                }
                if n > 0 {
                    // the resumed part starts within 3 s of the restart
                    let first = &packets[0];
                    let hash = sha256_hex(&first.data);
                    let restarted = crashes[n - 1].1;
                    let start =
                        frames.iter().filter(|(h, _)| *h == hash).map(|(_, t)| *t).find(|&t| t >= restarted);
                    let start = start.unwrap_or_else(|| {
                        panic!("{}: first {kind} frame not sent after the restart", file.display())
                    });
                    let ms = (start - restarted) / 1_000_000;
                    eprintln!("{room} part {} {kind}: first frame sent {ms} ms after the restart", n + 1);
                    assert!(ms <= 3000, "{}: {kind} resumed {ms} ms after the restart", file.display());
                }
            }
        }
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_outage_across_a_restart_uploads_everything_and_calls_back_once() {
    use s3_support::{assert_signed, create_bucket, free_port, key_of, s3_client, Moto, Receiver, BUCKET};
    let outage = Duration::from_secs(
        std::env::var("RECORDER_S3_OUTAGE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(60),
    );
    let sim = start_sim(vec![]).await;
    let rooms: Vec<String> = (0..3).map(|i| format!("s3down-{i}")).collect();
    add_participants(&sim, &rooms, 0).await;
    let moto_port = free_port();
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    let receivers = [Receiver::start(0, Some(endpoint.clone())), Receiver::start(1, Some(endpoint.clone()))];
    let urls = format!("{},{}", receivers[0].url, receivers[1].url);
    let mut env = s3_env(&endpoint);
    env.extend([("S3_DIRECTORY", "lk"), ("UPLOAD_GIVE_UP", "10m"), ("WEBHOOK_URLS", urls.as_str())]);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = serve(&sim, dir.path(), &env).await;
    let ids = record_all(daemon.addr, &rooms).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut sizes = Vec::new();
    for id in &ids {
        let (_, done) =
            api(daemon.addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#))).await;
        assert_eq!(done["status"], "uploading", "S3 is down: {done}");
        let file = PathBuf::from(done["files"][0].as_str().expect("file"));
        sizes.push(std::fs::metadata(&file).expect("local file").len());
    }
    let down_since = Instant::now();
    // the daemon dies in the middle of the outage and comes back on the same directory
    tokio::time::sleep(outage / 2).await;
    signal(&daemon.child, "-KILL");
    let _ = tokio::task::block_in_place(|| wait_exit(&mut daemon.child, Duration::from_secs(10)));
    let daemon = serve(&sim, dir.path(), &env).await;
    for id in &ids {
        let r = wait_rec(daemon.addr, id, Duration::from_secs(10), |r| r["status"] == "uploading").await;
        assert!(r["outputs"].as_array().is_some_and(Vec::is_empty), "{r}");
    }
    assert!(receivers.iter().all(|r| r.accepted().is_empty()), "no callback before the upload");
    tokio::time::sleep(outage.saturating_sub(down_since.elapsed())).await;
    let moto = Moto::start(moto_port).await;
    create_bucket(&moto.endpoint()).await;
    eprintln!("S3 back after {:?}", down_since.elapsed());
    let mut done = Vec::new();
    for id in &ids {
        // the upload retries back off to at most 30 s
        let r = wait_rec(daemon.addr, id, Duration::from_secs(60), |r| r["status"] == "complete").await;
        done.push(r);
    }
    eprintln!("every recording complete {:?} after S3 went down", down_since.elapsed());
    for (rec, size) in done.iter().zip(&sizes) {
        let outputs = rec["outputs"].as_array().expect("outputs");
        assert_eq!(outputs.len(), 1, "{rec}");
        let key = key_of(outputs[0].as_str().expect("url"));
        let head = s3_client(&moto.endpoint()).head_object().bucket(BUCKET).key(&key).send().await;
        assert_eq!(head.expect("object exists").content_length(), Some(*size as i64), "{key}");
        assert!(rec["files"].as_array().is_some_and(Vec::is_empty), "local file removed: {rec}");
    }
    for rx in &receivers {
        let accepted = rx.wait_accepted(ids.len(), Duration::from_secs(30)).await;
        assert_eq!(accepted.len(), ids.len(), "exactly one callback per recording at {}", rx.url);
        let mut seen: Vec<String> = Vec::new();
        for a in &accepted {
            assert_signed(a);
            assert!(a.objects_existed, "callback before the object existed: {}", a.body);
            let body: Value = serde_json::from_str(&a.body).expect("json");
            assert_eq!(body["status"], "complete", "{body}");
            seen.push(body["id"].as_str().expect("id").to_owned());
        }
        seen.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(seen, want, "one body per recording at {}", rx.url);
    }
    drop(daemon);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_signal_exits_at_once_and_the_next_start_finishes_the_job() {
    use s3_support::{create_bucket, free_port, Moto};
    let sim = start_sim(vec![]).await;
    let rooms = vec!["twice".to_owned()];
    add_participants(&sim, &rooms, 0).await;
    // S3 is down, so the drain waits for the upload
    let moto_port = free_port();
    let endpoint = format!("http://127.0.0.1:{moto_port}");
    let mut env = s3_env(&endpoint);
    env.push(("DRAIN_TIMEOUT", "60s"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = serve(&sim, dir.path(), &env).await;
    let id = record_all(daemon.addr, &rooms).await.remove(0);
    let body = r#"{"room":"twice","participant":"alice"}"#;
    tokio::time::sleep(Duration::from_secs(2)).await;
    signal(&daemon.child, "-TERM");
    // draining: still up, new starts refused with 503 (until the signal is handled, the same
    // start answers 200 with the recording already running)
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, err) = loop {
        let (status, err) = api(daemon.addr, Method::POST, "/recordings/start", Some(body)).await;
        if status == 503 || Instant::now() > deadline {
            break (status, err);
        }
        assert_eq!(status, 200, "the running recording, before the drain: {err}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{err}");
    assert!(err["error"].as_str().unwrap_or_default().contains("shutting down"), "{err}");
    let second = Instant::now();
    signal(&daemon.child, "-TERM");
    let code = tokio::task::block_in_place(|| wait_exit(&mut daemon.child, Duration::from_secs(5)));
    eprintln!("second signal: exit {code:?} after {:?}", second.elapsed());
    assert_eq!(code, Some(130), "a second signal exits at once");
    // the next start finishes what the first left: the upload
    let moto = Moto::start(moto_port).await;
    create_bucket(&moto.endpoint()).await;
    let daemon = serve(&sim, dir.path(), &env).await;
    let done = wait_rec(daemon.addr, &id, Duration::from_secs(60), |r| r["status"] == "complete").await;
    assert_eq!(done["outputs"].as_array().map(Vec::len), Some(1), "{done}");
    drop(daemon);
    sim.stop().await;
}
