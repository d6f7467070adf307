//! Shared by the recorder end-to-end tests (`recorder_api`, `recorder_tracks`): the daemon
//! against the in-process simulator, its REST API, bounded waits, and the comparison of the
//! packets ffmpeg reads back from a file with the simulator's `/sent` log.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use reqwest::Method;
use serde_json::Value;

use super::common;
use super::sim_support::{KEY, SECRET};

/// The daemon on `127.0.0.1:0` with a 4 s start timeout.
pub async fn start_daemon(sim: &livekit_recorder::sim::SimHandle, dir: &Path, token: Option<&str>) -> Daemon {
    start_daemon_with(sim, dir, token, |_| {}).await
}

/// The daemon on `127.0.0.1:0` with a 4 s start timeout and the settings `tweak` changes.
pub async fn start_daemon_with(
    sim: &livekit_recorder::sim::SimHandle,
    dir: &Path,
    token: Option<&str>,
    tweak: impl FnOnce(&mut DaemonConfig),
) -> Daemon {
    let mut cfg = DaemonConfig::new(&sim.ws_url(), KEY, SECRET, dir);
    cfg.recording.start_timeout = Duration::from_secs(4);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.api_token = token.map(str::to_owned);
    tweak(&mut cfg);
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

/// `(status, body)` with an optional bearer token.
pub async fn api(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let (status, _, body) =
        request(addr, method, path, body, token).await.unwrap_or_else(|e| panic!("request: {e}"));
    (status, body)
}

/// `GET` with an optional bearer token: `(status, response headers, body)`.
pub async fn get_with_headers(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    request(addr, Method::GET, path, None, token).await.unwrap_or_else(|e| panic!("request: {e}"))
}

/// `(status, body)`; status 0 when the request itself failed (a daemon that is down or
/// restarting).
pub async fn api_or_down(addr: SocketAddr, method: Method, path: &str, body: Option<&str>) -> (u16, Value) {
    match request(addr, method, path, body, None).await {
        Ok((status, _, body)) => (status, body),
        Err(e) => (0, Value::String(e.to_string())),
    }
}

async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Result<(u16, reqwest::header::HeaderMap, Value), reqwest::Error> {
    // reqwest is built without a crypto provider (see Cargo.toml): install ring's first
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut req = client.request(method, format!("http://{addr}{path}")).timeout(Duration::from_secs(20));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_owned());
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, headers, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Polls `GET /recordings/{id}` until `pred` holds (or panics after `timeout`).
pub async fn wait_for(
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

/// Polls `GET /recordings/{id}` without a token until `pred` holds (or panics after
/// `timeout`); a daemon that is down or restarting meanwhile answers status 0 and is polled on.
pub async fn wait_rec(addr: SocketAddr, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, r) = api_or_down(addr, Method::GET, &format!("/recordings/{id}"), None).await;
        if pred(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "condition not reached within {timeout:?}: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /recordings/start` of `identity` in `room` (201): the recording id.
pub async fn start_recording(addr: SocketAddr, room: &str, identity: &str) -> String {
    let body = serde_json::json!({ "room": room, "participant": identity }).to_string();
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
    assert_eq!(status, 201, "{rec}");
    rec["id"].as_str().expect("id").to_owned()
}

/// [`start_recording`], then waits (up to `timeout`) until it is `active` with bytes written:
/// the id and the time from the request to that.
pub async fn start_with_media(
    addr: SocketAddr,
    room: &str,
    identity: &str,
    timeout: Duration,
) -> (String, Duration) {
    let t0 = Instant::now();
    let id = start_recording(addr, room, identity).await;
    wait_rec(addr, &id, timeout, |r| r["status"] == "active" && r["bytes"].as_u64().unwrap_or(0) > 0).await;
    (id, t0.elapsed())
}

/// `POST /recordings/stop` by id (200): the ended recording, which must be `complete`.
pub async fn stop_complete(addr: SocketAddr, id: &str) -> Value {
    let (status, done) =
        api(addr, Method::POST, "/recordings/stop", Some(&serde_json::json!({ "id": id }).to_string()), None)
            .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["id"], id, "{done}");
    done
}

/// The value of the counter or gauge `name` (no labels) in `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (_, m) = api(addr, Method::GET, "/metrics", None, None).await;
    let text = m.as_str().expect("metrics text").to_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {text}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("value")
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that the packets are a contiguous run of the sent frames (loops repeat frames, so a
/// hash may sit at several positions: track every position the run could be at).
pub fn assert_contiguous_run(what: &str, packets: &[common::Packet], sent: &[String]) {
    contiguous_run_ends(what, packets, sent);
}

/// [`assert_contiguous_run`], and where in `sent` the run can end: the candidate positions of
/// its last packet (a looping publisher sends the same frames again, so there may be several).
pub fn contiguous_run_ends(what: &str, packets: &[common::Packet], sent: &[String]) -> Vec<usize> {
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
    let mut ends: Vec<usize> = cur.into_iter().collect();
    ends.sort_unstable();
    ends
}

/// The hashes of the first sent track of `kind`.
pub fn sent_hashes(sent: &Value, kind: &str) -> Vec<String> {
    frame_hashes(
        sent["tracks"].as_array().expect("tracks").iter().find(|t| t["kind"] == kind).expect("track of kind"),
    )
}

/// The hashes of the sent track `sid`.
/// The sender's clock (ns) of each frame of track `sid` in `/sent`.
pub fn sent_times_of(sent: &Value, sid: &str) -> Vec<u64> {
    let track =
        sent["tracks"].as_array().expect("tracks").iter().find(|t| t["sid"] == sid).expect("track in /sent");
    track["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["ntp_ns"].as_u64().expect("ntp_ns"))
        .collect()
}

pub fn sent_hashes_of(sent: &Value, sid: &str) -> Vec<String> {
    frame_hashes(
        sent["tracks"].as_array().expect("tracks").iter().find(|t| t["sid"] == sid).expect("track in /sent"),
    )
}

fn frame_hashes(track: &Value) -> Vec<String> {
    track["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["sha256"].as_str().expect("hash").to_owned())
        .collect()
}

/// Adds a synthetic VP8 + Opus participant to the simulator; returns (video sid, audio sid).
pub async fn join_av(sim: SocketAddr, room: &str, identity: &str) -> (String, String) {
    let body = serde_json::json!({ "room": room, "identity": identity, "video": "vp8", "audio": "opus" });
    let (status, v) = super::sim_support::call(sim, Method::POST, "/sim/participants", Some(body)).await;
    assert_eq!(status, 200, "{v}");
    let sid = |kind: &str| {
        v["tracks"].as_array().expect("tracks").iter().find(|t| t["kind"] == kind).expect("track")["sid"]
            .as_str()
            .expect("sid")
            .to_owned()
    };
    (sid("video"), sid("audio"))
}

/// The recording files under `dir` (the daemon's own dot-files, such as its journal, and the
/// `.json` manifests beside the parts left out).
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with(".json") {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Like [`assert_contiguous_run`], but one gap of at most `max_gap` frames is allowed;
/// returns the fewest frames missing over the runs that explain the packets.
pub fn assert_run_with_one_gap(
    what: &str,
    packets: &[common::Packet],
    sent: &[String],
    max_gap: usize,
) -> usize {
    let mut at: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in sent.iter().enumerate() {
        at.entry(h.as_str()).or_default().push(i);
    }
    assert!(packets.len() > 20, "{what}: only {} packets", packets.len());
    // (position in /sent, frames skipped so far)
    let mut cur: HashSet<(usize, usize)> = HashSet::new();
    for (n, p) in packets.iter().enumerate() {
        let h = sha256_hex(&p.data);
        let pos = at.get(h.as_str()).unwrap_or_else(|| panic!("{what} packet {n} is not in /sent"));
        cur = if n == 0 {
            pos.iter().map(|&i| (i, 0)).collect()
        } else {
            let mut next = HashSet::new();
            for &i in pos {
                for &(prev, gap) in &cur {
                    if i == prev + 1 {
                        next.insert((i, gap));
                    } else if gap == 0 && i > prev + 1 && i - prev - 1 <= max_gap {
                        next.insert((i, i - prev - 1));
                    }
                }
            }
            next
        };
        assert!(!cur.is_empty(), "{what}: packet {n} is neither the next frame nor after one short gap");
    }
    cur.iter().map(|&(_, gap)| gap).min().unwrap_or(0)
}

/// The `files` of a recording's JSON.
pub fn files_of(rec: &Value) -> Vec<PathBuf> {
    rec["files"].as_array().expect("files").iter().map(|f| PathBuf::from(f.as_str().expect("path"))).collect()
}

/// `POST /recordings/stop` by id; the recording it returns.
pub async fn stop_by_id(addr: SocketAddr, id: &str) -> Value {
    api(addr, Method::POST, "/recordings/stop", Some(&format!(r#"{{"id":"{id}"}}"#)), None).await.1
}
