//! `livekit-recorder demo`: the simulator in-process with one synthetic VP8 + Opus participant
//! (audio sent 700 ms after video), the recorder daemon in-process against it on
//! `127.0.0.1:0`, a recording started and stopped through the REST API over real HTTP, and
//! the result printed. Needs nothing installed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::daemon::{Daemon, DaemonConfig};
use crate::sim::{self, SimConfig};

const KEY: &str = "demo-key";
const SECRET: &str = "demo-secret-demo-secret-demo-secret";
const ROOM: &str = "demo";
const IDENTITY: &str = "alice";

/// What the demo produced.
#[derive(Debug)]
pub struct LiveReport {
    /// The last file of the recording.
    pub path: PathBuf,
    /// The recording JSON as `POST /recordings/stop` returned it.
    pub recording: serde_json::Value,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveDemoError {
    /// The simulator or the daemon could not start.
    #[error("start {what}: {source}")]
    Start {
        /// Which.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// An HTTP call failed or answered unexpectedly.
    #[error("{0}")]
    Http(String),
}

/// Runs the demo; records for `duration` once the recording is active.
pub async fn run(duration: Duration, dir: PathBuf) -> Result<LiveReport, LiveDemoError> {
    let mut cfg = SimConfig::new(KEY, SECRET);
    cfg.advertise_ips = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    let sim =
        sim::start(cfg).await.map_err(|source| LiveDemoError::Start { what: "the simulator", source })?;
    let result = record(&sim, duration, dir).await;
    sim.stop().await;
    result
}

async fn record(sim: &sim::SimHandle, duration: Duration, dir: PathBuf) -> Result<LiveReport, LiveDemoError> {
    let body = serde_json::json!({ "room": ROOM, "identity": IDENTITY, "video": "vp8", "audio": "opus", "av_offset_ms": 700 });
    call(sim.http_addr(), "POST", "/sim/participants", Some(body)).await?;
    let mut cfg = DaemonConfig::new(&sim.ws_url(), KEY, SECRET, &dir);
    cfg.recording.start_timeout = Duration::from_secs(15);
    cfg.recording.auto_record_on_join = false;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let daemon = Daemon::start(cfg, addr)
        .await
        .map_err(|source| LiveDemoError::Start { what: "the recorder", source })?;
    let out = record_with(daemon.addr(), duration).await;
    daemon.shutdown().await;
    out
}

async fn record_with(addr: SocketAddr, duration: Duration) -> Result<LiveReport, LiveDemoError> {
    let start = serde_json::json!({ "room": ROOM, "participant": IDENTITY });
    let rec = call(addr, "POST", "/recordings/start", Some(start)).await?;
    let id = rec["id"].as_str().unwrap_or_default().to_owned();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = call(addr, "GET", &format!("/recordings/{id}"), None).await?;
        match r["status"].as_str() {
            Some("active") => break,
            Some("pending") if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return Err(LiveDemoError::Http(format!("recording did not become active: {r}"))),
        }
    }
    tokio::time::sleep(duration).await;
    let recording = call(addr, "POST", "/recordings/stop", Some(serde_json::json!({ "id": id }))).await?;
    let path = recording["files"]
        .as_array()
        .and_then(|f| f.last())
        .and_then(|p| p.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| LiveDemoError::Http(format!("no file in {recording}")))?;
    Ok(LiveReport { path, recording })
}

/// A JSON call over plain HTTP on loopback; non-2xx is an error.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, LiveDemoError> {
    let err = |e: reqwest::Error| LiveDemoError::Http(format!("{method} {path}: {e}"));
    let client = reqwest::Client::builder().no_proxy().build().map_err(err)?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut req = client.request(method, format!("http://{addr}{path}")).timeout(Duration::from_secs(20));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.map_err(err)?;
    let status = resp.status();
    let text = resp.text().await.map_err(err)?;
    if !status.is_success() {
        return Err(LiveDemoError::Http(format!("{path}: HTTP {status}: {text}")));
    }
    serde_json::from_str(&text).map_err(|e| LiveDemoError::Http(format!("{path}: bad JSON: {e}")))
}
