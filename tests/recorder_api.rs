//! The recorder daemon end to end over real WebRTC against the in-process simulator: REST
//! start before the participant joins, frames in the file hash-matching `/sent` with none
//! missing inside the recorded interval, lip sync although audio was sent 700 ms late,
//! selective recording, idempotent start, error bodies, and (feature `testing`) a failed
//! participant recorder continuing in a part 2 file.

mod common;
mod sim_support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use reqwest::Method;
use serde_json::{json, Value};
use sim_support::{call, start_sim, KEY, SECRET};

async fn start_daemon(sim: &livekit_recorder::sim::SimHandle, dir: &Path, token: Option<&str>) -> Daemon {
    let cfg = DaemonConfig {
        livekit_url: sim.ws_url(),
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        recordings_dir: dir.to_path_buf(),
        start_timeout: Duration::from_secs(4),
        filename_template: "{room_name}/{publisher_identity}-{time}".into(),
        api_token: token.map(str::to_owned),
        auto_record_on_join: true,
        s3: None,
        webhook_urls: Vec::new(),
    };
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

/// `(status, body)` with an optional bearer token.
async fn api(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut req = client.request(method, format!("http://{addr}{path}")).timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_owned());
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls `GET /recordings/{id}` until `pred` holds (or panics after `timeout`).
async fn wait_for(
    addr: SocketAddr,
    id: &str,
    token: Option<&str>,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, r) = api(addr, Method::GET, &format!("/recordings/{id}"), None, token).await;
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "condition not reached: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the packets are a contiguous run of the sent frames (loops repeat frames, so a
/// hash may sit at several positions: track every position the run could be at).
fn assert_contiguous_run(what: &str, packets: &[common::Packet], sent: &[String]) {
    let mut at: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in sent.iter().enumerate() {
        at.entry(h.as_str()).or_default().push(i);
    }
    assert!(packets.len() > 20, "{what}: only {} packets", packets.len());
    let mut cur: HashSet<usize> = HashSet::new();
    for (n, p) in packets.iter().enumerate() {
        let h = sha256_hex(&p.data);
        let pos = at.get(h.as_str()).unwrap_or_else(|| panic!("{what} packet {n} is not in /sent"));
        cur = if n == 0 {
            pos.iter().copied().collect()
        } else {
            pos.iter().copied().filter(|i| *i > 0 && cur.contains(&(i - 1))).collect()
        };
        assert!(
            !cur.is_empty(),
            "{what}: packet {n} does not follow packet {} in /sent (frame missing)",
            n.max(1) - 1
        );
    }
}

fn sent_hashes(sent: &Value, kind: &str) -> Vec<String> {
    let t =
        sent["tracks"].as_array().expect("tracks").iter().find(|t| t["kind"] == kind).expect("track of kind");
    t["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["sha256"].as_str().expect("hash").to_owned())
        .collect()
}

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
    common::assert_in_sync(&path, 1.0, 1);
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
    daemon.shutdown().await;
    sim.stop().await;
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[cfg(feature = "testing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_participant_and_room_actors_continue_in_new_parts() {
    use livekit_recorder::actors::supervisor::SupervisorMsg;
    let sim = start_sim(vec![]).await;
    let body = json!({ "room": "crash", "identity": "alice", "video": "vp8", "audio": "opus" });
    assert_eq!(call(sim.http_addr(), Method::POST, "/sim/participants", Some(body)).await.0, 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), None).await;
    let addr = daemon.addr();
    let (_, rec) =
        api(addr, Method::POST, "/recordings/start", Some(r#"{"room":"crash","participant":"alice"}"#), None)
            .await;
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["status"] == "active").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.supervisor().cast(SupervisorMsg::InjectFailure(id.clone())).expect("cast");
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["files"].as_array().map(Vec::len) == Some(2))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // the room actor fails as if its connection was lost: it reconnects and resumes in part 3
    daemon.supervisor().cast(SupervisorMsg::InjectRoomFailure("crash".into())).expect("cast");
    wait_for(addr, &id, None, Duration::from_secs(10), |r| r["files"].as_array().map(Vec::len) == Some(3))
        .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, done) =
        api(addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#)), None).await;
    assert_eq!(done["status"], "complete", "{done}");
    let files: Vec<PathBuf> = done["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| PathBuf::from(f.as_str().expect("path")))
        .collect();
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
    daemon.shutdown().await;
    sim.stop().await;
}

/// A webhook body for `event` and its `Authorization` value, signed like LiveKit does.
fn signed_hook(event: &str, id: &str, room: &str, identity: &str, secret: &str) -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest;
    let ev = livekit_protocol::WebhookEvent {
        event: event.into(),
        id: id.into(),
        room: Some(livekit_protocol::Room { name: room.into(), ..Default::default() }),
        participant: Some(livekit_protocol::ParticipantInfo {
            identity: identity.into(),
            ..Default::default()
        }),
        created_at: 1,
        ..Default::default()
    };
    let body = serde_json::to_string(&ev).expect("json");
    let sha = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body.as_bytes()));
    let jwt = livekit_api::access_token::AccessToken::with_api_key(KEY, secret)
        .with_sha256(&sha)
        .with_ttl(Duration::from_secs(60))
        .to_jwt()
        .expect("jwt");
    (body, jwt)
}

async fn post_hook(addr: SocketAddr, (body, jwt): (String, String)) -> (u16, Value) {
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let resp = client
        .post(format!("http://{addr}/recordings/webhooks"))
        .header("authorization", jwt)
        .header("content-type", "application/webhook+json")
        .body(body)
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    (status, serde_json::from_str(&resp.text().await.expect("body")).unwrap_or(Value::Null))
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
