//! S3 uploads and result callbacks end to end: the daemon records over real WebRTC from the
//! in-process simulator, uploads to a moto S3 server started by the test (`MOTO_SERVER`, or
//! `.venv-moto/bin/moto_server` as `.ci/test` installs it), and POSTs signed callbacks to small
//! HTTP receivers in the test.

mod support;
use support::{common, recorder_support, s3_support, sim_support};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use livekit_recorder::storage::s3::{S3Settings, Uploader};
use reqwest::Method;
use s3_support::*;
use serde_json::Value;
use sim_support::{start_sim, KEY, SECRET};

// ---------------------------------------------------------------------------------------------
// daemon and REST

async fn start_daemon(
    sim: &livekit_recorder::sim::SimHandle,
    dir: &Path,
    s3: S3Settings,
    webhook_urls: Vec<String>,
) -> Daemon {
    let mut cfg = DaemonConfig::new(&sim.ws_url(), KEY, SECRET, dir);
    cfg.recording.start_timeout = Duration::from_secs(4);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.recording.auto_record_on_join = false;
    cfg.s3 = Some(s3);
    cfg.webhook_urls = webhook_urls;
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

/// The REST call, panicking when the request itself fails.
async fn api(addr: SocketAddr, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
    recorder_support::api(addr, method, path, body, None).await
}

async fn wait_for(addr: SocketAddr, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    recorder_support::wait_for(addr, id, None, timeout, pred).await
}

/// Records `room`/`alice` for `secs` through REST and stops; returns the stop response.
async fn record(sim: &livekit_recorder::sim::SimHandle, addr: SocketAddr, room: &str, secs: f64) -> Value {
    sim_support::add_participant(sim.http_addr(), room, "alice", Some("vp8"), true).await;
    let start = format!(r#"{{"room":"{room}","participant":"alice"}}"#);
    let (s, rec) = api(addr, Method::POST, "/recordings/start", Some(&start)).await;
    assert_eq!(s, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let (s, done) = api(addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#))).await;
    assert_eq!(s, 200, "{done}");
    done
}

fn files_of(rec: &Value) -> Vec<PathBuf> {
    rec["files"].as_array().expect("files").iter().map(|f| PathBuf::from(f.as_str().expect("path"))).collect()
}

fn outputs_of(rec: &Value) -> Vec<String> {
    rec["outputs"].as_array().expect("outputs").iter().map(|f| f.as_str().expect("url").to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// tests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recording_is_uploaded_then_complete_and_local_file_removed() {
    let moto = Moto::start(free_port()).await;
    create_bucket(&moto.endpoint()).await;
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon =
        start_daemon(&sim, dir.path(), s3_settings(&moto.endpoint(), false, Duration::from_secs(60)), vec![])
            .await;
    let addr = daemon.addr();
    let stopped = record(&sim, addr, "up", 4.0).await;
    assert_eq!(stopped["status"], "uploading", "{stopped}");
    let local = files_of(&stopped);
    assert_eq!(local.len(), 1, "{stopped}");
    let id = stopped["id"].as_str().expect("id");
    // uploading is not live: a new start for the same participant is a new recording
    let (s, again) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"up","participant":"alice"}"#)).await;
    assert_eq!(s, 201, "{again}");
    assert_ne!(again["id"].as_str(), Some(id));

    let done = wait_for(addr, id, Duration::from_secs(30), |r| r["status"] != "uploading").await;
    assert_eq!(done["status"], "complete", "{done}");
    let outputs = outputs_of(&done);
    assert_eq!(outputs.len(), 1, "{done}");
    let key = key_of(&outputs[0]);
    let rel = local[0].strip_prefix(dir.path()).expect("under RECORDINGS_DIR");
    assert_eq!(key, format!("lk/{}", rel.to_string_lossy()), "key = S3_DIRECTORY + relative path");
    assert!(!local[0].exists(), "S3_KEEP_LOCAL=false removes the local file after the verified upload");
    // the part's manifest went up beside it (same key + .json) and left the disk with it
    let manifest: Value = serde_json::from_slice(&get_object(&moto.endpoint(), &format!("{key}.json")).await)
        .expect("manifest JSON");
    assert_eq!(manifest["id"].as_str(), Some(id), "{manifest}");
    assert_eq!((manifest["room"].as_str(), manifest["participant"].as_str()), (Some("up"), Some("alice")));
    assert_eq!(manifest["parts"], stopped["parts"], "{manifest}");
    assert_eq!(manifest["status"], "uploading", "the recording as it ended, before its upload: {manifest}");
    assert!(!PathBuf::from(format!("{}.json", local[0].display())).exists(), "local manifest removed");
    assert_eq!(done["files"].as_array().map(Vec::len), Some(0), "{done}");
    let object = get_object(&moto.endpoint(), &key).await;
    assert_eq!(object.len() as u64, done["bytes"].as_u64().expect("bytes"), "object size = bytes written");
    let copy = dir.path().join("downloaded.webm");
    std::fs::write(&copy, &object).expect("write copy");
    let errors = common::ffmpeg_errors(&copy);
    assert!(errors.is_empty(), "the uploaded object decodes: {errors}");
    assert!(common::ffprobe(&copy).duration.unwrap_or(0.0) > 3.0, "about 4 s recorded");
    let (_, metrics) = api(addr, Method::GET, "/metrics", None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_uploads_total{result=\"ok\"} 1\n"), "{text}");
    assert!(text.contains("recorder_upload_duration_seconds_count 1\n"), "{text}");
    // shutdown finalizes the second recording and waits for its upload
    let second = again["id"].as_str().expect("id");
    wait_for(addr, second, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t0 = Instant::now();
    daemon.shutdown().await;
    eprintln!("measured: shutdown with one upload to drain took {:.2} s", t0.elapsed().as_secs_f64());
    let listed = s3_client(&moto.endpoint())
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("lk/up/")
        .send()
        .await
        .expect("list objects");
    assert_eq!(
        listed.contents().len(),
        4,
        "the recording finalized by the shutdown was uploaded (2 files, each with its manifest): {listed:?}"
    );
    let manifests =
        listed.contents().iter().filter(|o| o.key().is_some_and(|k| k.ends_with(".webm.json"))).count();
    assert_eq!(manifests, 2, "{listed:?}");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_goes_up_as_multipart() {
    let moto = Moto::start(free_port()).await;
    create_bucket(&moto.endpoint()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("room")).expect("mkdir");
    let path = dir.path().join("room").join("big.webm");
    let mut rng = common::Lcg(7);
    let data: Vec<u8> = (0..(17 * 1024 * 1024 + 4321)).map(|_| rng.next() as u8).collect();
    std::fs::write(&path, &data).expect("write big file");
    let metrics = Arc::new(livekit_recorder::metrics::Metrics::default());
    let uploader = Uploader::new(
        s3_settings(&moto.endpoint(), false, Duration::from_secs(30)),
        dir.path().to_path_buf(),
        metrics,
    )
    .await;
    let t0 = Instant::now();
    let up = uploader.upload_file(&path).await.expect("upload");
    eprintln!("measured: 17 MiB multipart upload + verify to moto in {:.2} s", t0.elapsed().as_secs_f64());
    assert_eq!(up.key, "lk/room/big.webm");
    assert_eq!(up.size, data.len() as u64);
    let etag = up.etag.clone().unwrap_or_default();
    assert!(etag.trim_matches('"').ends_with("-3"), "multipart ETag of 3 parts (8 + 8 + 1 MiB): {etag}");
    assert!(!up.local_kept && !path.exists(), "local file removed after the verified upload");
    let object = get_object(&moto.endpoint(), &up.key).await;
    assert_eq!(object.len(), data.len());
    assert!(object == data, "object bytes equal the file's bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_waits_for_s3_and_callbacks_arrive_once_signed() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let rx_ok = Receiver::start(0, Some(endpoint.clone()));
    let rx_flaky = Receiver::start(1, Some(endpoint.clone()));
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(
        &sim,
        dir.path(),
        s3_settings(&endpoint, true, Duration::from_secs(90)),
        vec![rx_ok.url.clone(), rx_flaky.url.clone()],
    )
    .await;
    let addr = daemon.addr();
    let stopped = record(&sim, addr, "down", 3.0).await;
    assert_eq!(stopped["status"], "uploading", "{stopped}");
    let id = stopped["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, r) = api(addr, Method::GET, &format!("/recordings/{id}"), None).await;
    assert_eq!(r["status"], "uploading", "still retrying while S3 is down: {r}");
    assert!(rx_ok.accepted().is_empty() && rx_flaky.state.attempts.load(Ordering::SeqCst) == 0);
    let moto = Moto::start(port).await;
    create_bucket(&moto.endpoint()).await;
    let up_at = Instant::now();
    let done = wait_for(addr, &id, Duration::from_secs(60), |r| r["status"] != "uploading").await;
    eprintln!("measured: complete {:.2} s after the bucket existed", up_at.elapsed().as_secs_f64());
    assert_eq!(done["status"], "complete", "{done}");
    let local = files_of(&done);
    assert_eq!(local.len(), 1, "S3_KEEP_LOCAL=true keeps the file: {done}");
    let outputs = outputs_of(&done);
    assert_eq!(outputs.len(), 1, "{done}");
    let object = get_object(&moto.endpoint(), &key_of(&outputs[0])).await;
    assert!(object == std::fs::read(&local[0]).expect("local file"), "object bytes equal the local file");

    for rx in [&rx_ok, &rx_flaky] {
        let got = rx.wait_accepted(1, Duration::from_secs(20)).await;
        assert_eq!(got.len(), 1, "exactly one accepted callback per URL: {got:?}");
        let a = &got[0];
        assert_signed(a);
        assert!(a.objects_existed, "the callback came after the object existed");
        let body: Value = serde_json::from_str(&a.body).expect("json body");
        assert_eq!(body, done, "the callback body is the recording as GET returns it");
    }
    assert_eq!(rx_ok.state.attempts.load(Ordering::SeqCst), 1);
    assert_eq!(rx_flaky.state.attempts.load(Ordering::SeqCst), 2, "the 500 was retried once");
    let (_, metrics) = api(addr, Method::GET, "/metrics", None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_callbacks_total{result=\"ok\"} 2\n"), "{text}");
    daemon.shutdown().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_gives_up_and_recording_fails_with_file_kept() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let rx = Receiver::start(0, None);
    let sim = start_sim(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(
        &sim,
        dir.path(),
        s3_settings(&endpoint, false, Duration::from_secs(2)),
        vec![rx.url.clone()],
    )
    .await;
    let addr = daemon.addr();
    // a recording that fails before any media (nobody joins) is reported too
    let (s, ghost) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"nos3","participant":"ghost"}"#)).await;
    assert_eq!(s, 201, "{ghost}");
    let stopped = record(&sim, addr, "nos3", 2.0).await;
    assert_eq!(stopped["status"], "uploading", "{stopped}");
    let id = stopped["id"].as_str().expect("id").to_owned();
    let local = files_of(&stopped);
    let t0 = Instant::now();
    let failed = wait_for(addr, &id, Duration::from_secs(30), |r| r["status"] != "uploading").await;
    eprintln!("measured: failed {:.2} s after the stop (UPLOAD_GIVE_UP=2s)", t0.elapsed().as_secs_f64());
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    eprintln!("error: {error}");
    assert!(error.contains("upload of") && error.contains("s3://recordings/lk/nos3/"), "{failed}");
    assert_eq!(files_of(&failed), local, "the local file stays listed");
    assert!(local[0].exists(), "the local file stays on disk");
    assert_eq!(outputs_of(&failed).len(), 0);
    let got = rx.wait_accepted(2, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 2, "one callback per recording: {got:?}");
    let bodies: Vec<Value> = got
        .iter()
        .map(|a| {
            assert_signed(a);
            serde_json::from_str(&a.body).expect("json")
        })
        .collect();
    let upload = bodies.iter().find(|b| b["id"] == id).expect("callback of the upload");
    assert_eq!(upload, &failed);
    let nobody = bodies.iter().find(|b| b["id"] == ghost["id"]).expect("callback of the ghost");
    assert_eq!(nobody["status"], "failed", "{nobody}");
    assert!(nobody["error"].as_str().unwrap_or_default().contains("ghost"), "{nobody}");
    let (_, metrics) = api(addr, Method::GET, "/metrics", None).await;
    let text = metrics.as_str().expect("text").to_owned();
    assert!(text.contains("recorder_uploads_total{result=\"failed\"} 1\n"), "{text}");
    daemon.shutdown().await;
    sim.stop().await;
}
