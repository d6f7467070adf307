//! The recorder's load figures against the real livekit-server (v1.13.5) beside the same run
//! against the built-in simulator.
//!
//! Per N and backend: N participants in **one room**, each publishing the fixtures
//! `src/assets/vp8.ivf` (VP8 320x240 30 fps) + `src/assets/opus.ogg` (Opus 20 ms), looping:
//! against the real server N Go SDK publishers (`tests/lkpub`, one process each), against the
//! simulator N synthetic participants playing the same two files (`sim --media-dir`). One
//! recorder process (`livekit-recorder serve`, `LOG_LEVEL=warn`) records all N, started by
//! `POST /recordings/start` one after the other. Only the recorder's pid is measured (the
//! publishers, the server and the simulator are other processes):
//!
//! - idle: CPU and `VmRSS` before any recording;
//! - **start latency**: the start request -> the recording listed `active`, and -> `bytes > 0`
//!   (`GET /recordings?room=...` polled every 20 ms), p50/p95/max;
//! - a window (after 2 s settle): **mCPU/participant** = utime + stime of all the recorder's
//!   threads (`/proc/PID/stat`) / wall s / N x 1000; **RSS/participant** = (`VmRSS` at the end
//!   - `VmRSS` idle) / N;
//! - **frames lost**: `recorder_frames_lost_total` (and `..._dropped_total`) from `/metrics`,
//!   the sum of the recordings' `frames_lost` after the stop, and frames missing inside the
//!   checked files (every packet located in the looped fixture by SHA-256; a packet that is not
//!   a fixture frame is counted as foreign);
//! - stop all; every recording must end `complete`; a sample of the files (first, middle, last;
//!   all in test mode) is decoded by ffmpeg (`-f null`, no error allowed) and probed (VP8 +
//!   Opus streams).
//!
//! Env: `REAL_LOAD_N` (default `10,25`), `REAL_LOAD_SECS` (window, default 30),
//! `REAL_LOAD_SIM=0` (skip the simulator runs). Run by `cargo test --benches` (no `--bench`
//! argument) or with `CI` set: N = 2 for a 2 s window on both backends, asserting that every
//! recording became active with bytes, completed, and that its file decodes and holds only the
//! fixtures' frames. Needs what the real-server tests need: `sh tests/support/real_support/install.sh`
//! (livekit-server, Go publisher), root (veth test address), ffmpeg.

#[path = "../tests/support/mod.rs"]
mod support;
use support::real_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livekit_recorder::media::codec::to_stored;
use livekit_recorder::media::Codec;
use real_support::{Publisher, PublisherOpts, RealServer, ServerOpts};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_livekit-recorder");
const ROOM: &str = "load";

/// utime + stime of every thread of `pid`, in seconds (CLK_TCK = 100 on Linux).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (num(11) + num(12)) as f64 / 100.0
}

/// A `/proc/PID/status` field in KiB (or a count, for `Threads`).
fn status_field(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let v = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    v.unwrap_or(0.0)
}

/// A child process killed on drop, also when the bench panics.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// `(status, JSON or text body)`; status 0 when the request failed.
async fn http(client: &reqwest::Client, method: Method, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = client.request(method, url).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
        }
        Err(e) => (0, Value::String(e.to_string())),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Sim,
    Real,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sim => "sim",
            Kind::Real => "real",
        }
    }
}

/// The server side of one run: the real server with its Go publishers, or the simulator with
/// its synthetic participants. Dropped after the recorder.
struct Backend {
    ws_url: String,
    key: String,
    secret: String,
    _publishers: Vec<Publisher>,
    _server: Option<RealServer>,
    _sim: Option<Child>,
    _media: Option<tempfile::TempDir>,
}

fn identity(i: usize) -> String {
    format!("p{i:02}")
}

/// The real server and N Go publishers, all `started` (joined, tracks published and bound).
fn real_backend(n: usize) -> Backend {
    let server = RealServer::start(ServerOpts { log_level: "warn".into(), ..Default::default() });
    let t0 = Instant::now();
    let pubs: Vec<Publisher> = (0..n)
        .map(|i| Publisher::spawn(&server, ROOM, &identity(i), PublisherOpts::vp8_opus().loops(0)))
        .collect();
    for p in &pubs {
        p.wait_started(Duration::from_secs(90));
    }
    println!("real_load: real N={n}: {n} Go publishers started in {:.1} s", t0.elapsed().as_secs_f64());
    Backend {
        ws_url: server.ws_url(),
        key: server.api_key().into(),
        secret: server.api_secret().into(),
        _publishers: pubs,
        _server: Some(server),
        _sim: None,
        _media: None,
    }
}

/// The simulator (`sim --media-dir` with the same two fixtures) and N synthetic participants.
async fn sim_backend(n: usize, client: &reqwest::Client) -> Backend {
    let media = tempfile::tempdir().expect("tempdir");
    std::fs::copy(real_support::asset("vp8.ivf"), media.path().join("video.ivf")).expect("copy vp8.ivf");
    std::fs::copy(real_support::asset("opus.ogg"), media.path().join("audio.ogg")).expect("copy opus.ogg");
    let port = real_support::free_tcp_port();
    let (key, secret) = (real_support::API_KEY, real_support::API_SECRET);
    let mut cmd = Command::new(BIN);
    cmd.args(["sim", "--port", &port.to_string(), "--api-key", key, "--api-secret", secret])
        .args(["--media-ip", "127.0.0.1", "--advertise-ip", "127.0.0.1", "--media-dir"])
        .arg(media.path())
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut sim = Child(cmd.spawn().expect("spawn the simulator"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Ok(Some(st)) = sim.0.try_wait() {
            panic!("the simulator exited before listening: {st}");
        }
        assert!(Instant::now() < deadline, "the simulator did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..n {
        let body = json!({"room": ROOM, "identity": identity(i), "video": "vp8", "audio": "opus"});
        let (st, j) =
            http(client, Method::POST, &format!("http://127.0.0.1:{port}/sim/participants"), Some(body))
                .await;
        assert_eq!(st, 200, "add participant: {j}");
    }
    Backend {
        ws_url: format!("ws://127.0.0.1:{port}"),
        key: key.into(),
        secret: secret.into(),
        _publishers: Vec::new(),
        _server: None,
        _sim: Some(sim),
        _media: Some(media),
    }
}

/// `livekit-recorder serve` against the backend, listening on 127.0.0.1, log in
/// `target/real-lk-logs/`.
async fn start_recorder(b: &Backend, dir: &Path, log: &Path, client: &reqwest::Client) -> (Child, String) {
    let port = real_support::free_tcp_port();
    let out = std::fs::File::create(log).expect("recorder log");
    let child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIVEKIT_URL", &b.ws_url)
        .env("LIVEKIT_API_KEY", &b.key)
        .env("LIVEKIT_API_SECRET", &b.secret)
        .env("APP_PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("NO_COLOR", "1")
        .env("RECORDINGS_DIR", dir)
        .env("AUTO_RECORD_ON_JOIN", "false")
        .env("START_TIMEOUT", "30s")
        .env("FILENAME_TEMPLATE", "{room_name}/{publisher_identity}-{recording_id}")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone log"))
        .stderr(out)
        .spawn()
        .expect("spawn livekit-recorder serve");
    let mut child = Child(child);
    let api = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(client, Method::GET, &format!("{api}/health-check"), None).await.0 != 200 {
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!("the recorder exited: {st}; log:\n{}", real_support::file_tail(log, 3000));
        }
        assert!(Instant::now() < deadline, "no /health-check; log:\n{}", real_support::file_tail(log, 3000));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, api)
}

/// SHA-256 (hex) of every packet of every stream in `path` (`ffmpeg -c copy -f framehash`).
fn packet_hashes(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-c", "copy", "-f", "framehash", "-hash", "sha256", "-"])
        .output()
        .map_err(|e| format!("ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(format!("ffmpeg framehash {}: {}", path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let mut streams: Vec<Vec<String>> = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let (Some(Ok(i)), Some(h)) = (f.first().map(|s| s.parse::<usize>()), f.get(5)) else { continue };
        if streams.len() <= i {
            streams.resize(i + 1, Vec::new());
        }
        streams[i].push((*h).to_owned());
    }
    Ok(streams)
}

/// ffmpeg's decode errors (empty when the file decodes cleanly).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "vfr", "-f", "null", "-"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
        Ok(o) => format!("exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr)),
        Err(e) => format!("ffmpeg: {e}"),
    }
}

/// `codec_type:codec_name` of each stream, from ffprobe.
fn stream_codecs(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "json"])
        .arg(path)
        .output();
    let v: Value = out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default();
    v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!("{}:{}", s["codec_type"].as_str().unwrap_or(""), s["codec_name"].as_str().unwrap_or(""))
        })
        .collect()
}

/// A looped fixture by the SHA-256 of each frame as the container stores it: hash -> the
/// positions in the loop.
struct Loop {
    len: usize,
    at: HashMap<String, Vec<usize>>,
}

impl Loop {
    fn new(codec: Codec, frames: &[Vec<u8>]) -> Loop {
        let mut at: HashMap<String, Vec<usize>> = HashMap::new();
        let mut stored = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            stored.clear();
            to_stored(codec, f, &mut stored);
            let hex: String = Sha256::digest(&stored).iter().map(|b| format!("{b:02x}")).collect();
            at.entry(hex).or_default().push(i);
        }
        Loop { len: frames.len(), at }
    }

    /// `(missing, foreign)`: the fewest frames of the loop that must have been skipped between
    /// consecutive packets (identical frames, e.g. repeated keyframes or Opus packets, make a
    /// packet's position ambiguous: the placement of all packets that skips least is taken; at a
    /// wrap one frame at the loop's end may be left out, as the Go publisher drops the Opus
    /// file's last packet), and packets that are no frame of the loop.
    fn gaps(&self, packets: &[String]) -> (usize, usize) {
        let len = self.len;
        let step = |p: usize, q: usize| {
            let skipped = (q + len - p - 1) % len;
            if q <= p && skipped > 0 {
                skipped - 1
            } else {
                skipped
            }
        };
        // The previous packet's positions and the least skipped frames to reach each.
        let mut prev: Option<(&[usize], Vec<usize>)> = None;
        let mut foreign = 0;
        for h in packets {
            let Some(pos) = self.at.get(h) else {
                foreign += 1;
                continue;
            };
            let cost = match &prev {
                None => vec![0; pos.len()],
                Some((ps, costs)) => pos
                    .iter()
                    .map(|&q| ps.iter().zip(costs).map(|(&p, c)| c + step(p, q)).min().unwrap_or(0))
                    .collect(),
            };
            prev = Some((pos.as_slice(), cost));
        }
        (prev.and_then(|(_, c)| c.into_iter().min()).unwrap_or(0), foreign)
    }
}

/// What one run measured.
#[derive(Debug, Default)]
struct Point {
    kind: &'static str,
    n: usize,
    mcpu: f64,
    idle_mcpu: f64,
    rss_per_mib: f64,
    rss_idle_mib: f64,
    rss_mib: f64,
    hwm_mib: f64,
    threads: f64,
    active_ms: Vec<f64>,
    bytes_ms: Vec<f64>,
    metric_lost: f64,
    metric_dropped: f64,
    metric_filler: f64,
    rec_lost: u64,
    complete: usize,
    files_checked: usize,
    files_ok: usize,
    file_missing: (usize, usize),
    file_packets: (usize, usize),
    foreign: usize,
    problems: Vec<String>,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

async fn measure(kind: Kind, n: usize, window: Duration, quick: bool, client: &reqwest::Client) -> Point {
    let backend = match kind {
        Kind::Real => tokio::task::block_in_place(|| real_backend(n)),
        Kind::Sim => sim_backend(n, client).await,
    };
    let mut tmp = tempfile::tempdir().expect("tempdir");
    tmp.disable_cleanup(std::env::var_os("REAL_LOAD_KEEP").is_some());
    let rec_dir = tmp.path().join("recordings");
    let log = real_support::logs_dir().join(format!("real_load-{}-n{n}-recorder.log", kind.name()));
    let (rec, api) = start_recorder(&backend, &rec_dir, &log, client).await;
    let pid = rec.0.id();
    let mut p = Point { kind: kind.name(), n, ..Point::default() };

    // Idle: connected to nothing, no recording yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(if quick { 1 } else { 3 })).await;
    p.idle_mcpu = (cpu_secs(pid) - c0) / t0.elapsed().as_secs_f64() * 1000.0;
    p.rss_idle_mib = status_field(pid, "VmRSS") / 1024.0;

    // Start all, one after the other; then watch the list until each is active with bytes.
    let mut starts: Vec<(String, Instant)> = Vec::new();
    for i in 0..n {
        let body = json!({"room": ROOM, "participant": identity(i)});
        let t = Instant::now();
        let (st, j) = http(client, Method::POST, &format!("{api}/recordings/start"), Some(body)).await;
        assert!(st == 201 || st == 200, "start {}: {st} {j}", identity(i));
        starts.push((j["id"].as_str().expect("id").to_owned(), t));
    }
    let (mut active, mut bytes) = (vec![None::<Instant>; n], vec![None::<Instant>; n]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while bytes.iter().any(Option::is_none) && Instant::now() < deadline {
        let (_, list) =
            http(client, Method::GET, &format!("{api}/recordings?room={ROOM}&limit=1000"), None).await;
        let now = Instant::now();
        for r in list.as_array().into_iter().flatten() {
            let Some(i) = starts.iter().position(|(id, _)| r["id"] == id.as_str()) else { continue };
            if r["status"] == "active" {
                active[i].get_or_insert(now);
                if r["bytes"].as_u64().unwrap_or(0) > 0 {
                    bytes[i].get_or_insert(now);
                }
            }
        }
        last = list;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..n {
        let t = starts[i].1;
        if let Some(a) = active[i] {
            p.active_ms.push(a.duration_since(t).as_secs_f64() * 1000.0);
        }
        if let Some(b) = bytes[i] {
            p.bytes_ms.push(b.duration_since(t).as_secs_f64() * 1000.0);
        }
    }
    if p.bytes_ms.len() < n {
        p.problems
            .push(format!("{} of {n} recordings active with bytes within 60 s: {last}", p.bytes_ms.len()));
    }

    // The window.
    tokio::time::sleep(Duration::from_secs(if quick { 0 } else { 2 })).await;
    let (c0, t0) = (cpu_secs(pid), Instant::now());
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    p.mcpu = (cpu_secs(pid) - c0) / secs * 1000.0 / n as f64;
    p.rss_mib = status_field(pid, "VmRSS") / 1024.0;
    p.hwm_mib = status_field(pid, "VmHWM") / 1024.0;
    p.threads = status_field(pid, "Threads");
    p.rss_per_mib = (p.rss_mib - p.rss_idle_mib) / n as f64;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "real_load: {} N={n}: load average {}",
        kind.name(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    // Stop all.
    let mut done = Vec::new();
    for (id, _) in &starts {
        let (st, j) =
            http(client, Method::POST, &format!("{api}/recordings/stop"), Some(json!({"id": id}))).await;
        if st != 200 {
            p.problems.push(format!("stop {id}: {st} {j}"));
        }
        done.push(j);
    }
    let (_, metrics) = http(client, Method::GET, &format!("{api}/metrics"), None).await;
    let metrics = metrics.as_str().unwrap_or("");
    p.metric_lost = metric(metrics, "recorder_frames_lost_total");
    p.metric_dropped = metric(metrics, "recorder_frames_dropped_total");
    p.metric_filler = metric(metrics, "recorder_sfu_filler_frames_total");
    drop(rec);

    // The files: status, decode, codecs, and every packet a frame of the fixtures.
    let video = Loop::new(Codec::Vp8, &real_support::ivf_frames(&real_support::asset("vp8.ivf")));
    let audio = Loop::new(Codec::Opus, &real_support::ogg_opus_packets(&real_support::asset("opus.ogg")));
    let sample: Vec<usize> = if quick {
        (0..n).collect()
    } else {
        let mut s = vec![0, n / 2, n - 1];
        s.dedup();
        s
    };
    for (i, r) in done.iter().enumerate() {
        if r["status"] == "complete" {
            p.complete += 1;
        } else {
            p.problems.push(format!("{}: not complete: {r}", identity(i)));
        }
        p.rec_lost += r["frames_lost"].as_u64().unwrap_or(0);
        if !sample.contains(&i) {
            continue;
        }
        p.files_checked += 1;
        let files: Vec<PathBuf> = r["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .map(PathBuf::from)
            .collect();
        let Some(file) = files.first() else {
            p.problems.push(format!("{}: no file: {r}", identity(i)));
            continue;
        };
        let mut ok = files.len() == 1;
        if !ok {
            p.problems.push(format!("{}: {} parts: {r}", identity(i), files.len()));
        }
        let errors = decode_errors(file);
        if !errors.is_empty() {
            ok = false;
            p.problems.push(format!("{}: ffmpeg decode: {errors}", file.display()));
        }
        let codecs = stream_codecs(file);
        if codecs != ["video:vp8", "audio:opus"] && codecs != ["audio:opus", "video:vp8"] {
            ok = false;
            p.problems.push(format!("{}: streams {codecs:?}", file.display()));
        }
        match packet_hashes(file) {
            Ok(streams) => {
                for (s, hashes) in streams.iter().enumerate() {
                    let is_video = codecs.get(s).is_some_and(|c| c.starts_with("video"));
                    let (missing, foreign) = if is_video { video.gaps(hashes) } else { audio.gaps(hashes) };
                    if is_video {
                        p.file_missing.0 += missing;
                        p.file_packets.0 += hashes.len();
                    } else {
                        p.file_missing.1 += missing;
                        p.file_packets.1 += hashes.len();
                    }
                    p.foreign += foreign;
                    if foreign > 0 {
                        ok = false;
                        p.problems.push(format!(
                            "{}: stream {s}: {foreign} packets not in the fixture",
                            file.display()
                        ));
                    }
                }
            }
            Err(e) => {
                ok = false;
                p.problems.push(e);
            }
        }
        if ok {
            p.files_ok += 1;
        }
    }
    // The publishers leave (up to 2 s each), then the server stops.
    tokio::task::block_in_place(|| drop(backend));
    drop(tmp);
    p
}

fn lat(v: &[f64]) -> String {
    format!("{:.0}/{:.0}/{:.0}", percentile(v, 0.5), percentile(v, 0.95), percentile(v, 1.0))
}

fn print_point(p: &Point) {
    println!(
        "real_load: {} N={}: recorder {:.2} mCPU/participant ({:.0} mCPU total, idle {:.1}), RSS {:.2} MiB/participant \
         (total {:.1} MiB, idle {:.1}, VmHWM {:.1}, {} threads); start -> active p50/p95/max {} ms, -> bytes > 0 {} ms; \
         frames lost: metric {} (dropped {}, SFU filler {}), recordings' frames_lost {}, missing in {} checked files \
         video {} of {} / audio {} of {} packets, {} foreign; {}/{} complete, {}/{} files decode clean",
        p.kind,
        p.n,
        p.mcpu,
        p.mcpu * p.n as f64,
        p.idle_mcpu,
        p.rss_per_mib,
        p.rss_mib,
        p.rss_idle_mib,
        p.hwm_mib,
        p.threads,
        lat(&p.active_ms),
        lat(&p.bytes_ms),
        p.metric_lost,
        p.metric_dropped,
        p.metric_filler,
        p.rec_lost,
        p.files_checked,
        p.file_missing.0,
        p.file_packets.0,
        p.file_missing.1,
        p.file_packets.1,
        p.foreign,
        p.complete,
        p.n,
        p.files_ok,
        p.files_checked,
    );
    for problem in &p.problems {
        println!("real_load: {} N={}: problem: {problem}", p.kind, p.n);
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, small.
    let quick = std::env::var_os("CI").is_some() || !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("REAL_LOAD_N") {
        Ok(v) => {
            v.split(',').filter_map(|s| s.trim().parse().ok()).filter(|n| (1..=50).contains(n)).collect()
        }
        Err(_) if quick => vec![2],
        Err(_) => vec![10, 25],
    };
    let secs = std::env::var("REAL_LOAD_SECS").ok().and_then(|s| s.parse::<u64>().ok());
    let window = Duration::from_secs(secs.unwrap_or(if quick { 2 } else { 30 }).clamp(1, 300));
    let with_sim = std::env::var("REAL_LOAD_SIM").map_or(true, |v| v != "0");
    let _ = rustls::crypto::ring::default_provider().install_default();
    // no idle pooled connections: a server closing one as it is reused failed a request once
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().expect("client");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let started = Instant::now();
    let mut rows: Vec<(Point, Option<Point>)> = Vec::new();
    for n in sizes {
        let t = Instant::now();
        let real = rt.block_on(measure(Kind::Real, n, window, quick, &client));
        print_point(&real);
        println!("real_load: real N={n}: {:.0} s", t.elapsed().as_secs_f64());
        let sim = with_sim.then(|| {
            let t = Instant::now();
            let sim = rt.block_on(measure(Kind::Sim, n, window, quick, &client));
            print_point(&sim);
            println!("real_load: sim N={n}: {:.0} s", t.elapsed().as_secs_f64());
            sim
        });
        if quick {
            for p in std::iter::once(&real).chain(sim.as_ref()) {
                assert!(p.problems.is_empty(), "{} N={n}: {:?}", p.kind, p.problems);
                assert_eq!(p.bytes_ms.len(), n, "{}: every recording active with bytes", p.kind);
                assert_eq!(p.complete, n, "{}: every recording complete", p.kind);
                assert_eq!(p.files_ok, n, "{}: every file decodes with only the fixtures' frames", p.kind);
                assert!(p.file_packets.0 > 0 && p.file_packets.1 > 0, "{}: video and audio packets", p.kind);
            }
        }
        rows.push((real, sim));
    }
    println!();
    println!(
        "| N | server | recorder mCPU/participant | RSS MiB/participant (total) | start -> active p50/p95 ms | \
         start -> bytes p50/p95 ms | frames lost: metric / recordings / missing in checked files (v+a of packets) | files ok |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |p: &Point| {
        println!(
            "| {} | {} | {:.2} | {:.2} ({:.0}) | {:.0}/{:.0} | {:.0}/{:.0} | {} / {} / {}+{} of {}+{} | {}/{} |",
            p.n,
            p.kind,
            p.mcpu,
            p.rss_per_mib,
            p.rss_mib,
            percentile(&p.active_ms, 0.5),
            percentile(&p.active_ms, 0.95),
            percentile(&p.bytes_ms, 0.5),
            percentile(&p.bytes_ms, 0.95),
            p.metric_lost,
            p.rec_lost,
            p.file_missing.0,
            p.file_missing.1,
            p.file_packets.0,
            p.file_packets.1,
            p.files_ok,
            p.files_checked,
        )
    };
    for (real, sim) in &rows {
        row(real);
        if let Some(sim) = sim {
            row(sim);
            let r = |a: f64, b: f64| if b.abs() > 1e-9 { format!("{:.2}", a / b) } else { "-".into() };
            println!(
                "| {} | real/sim | {} | {} | {}/{} | {}/{} | | |",
                real.n,
                r(real.mcpu, sim.mcpu),
                r(real.rss_per_mib, sim.rss_per_mib),
                r(percentile(&real.active_ms, 0.5), percentile(&sim.active_ms, 0.5)),
                r(percentile(&real.active_ms, 0.95), percentile(&sim.active_ms, 0.95)),
                r(percentile(&real.bytes_ms, 0.5), percentile(&sim.bytes_ms, 0.5)),
                r(percentile(&real.bytes_ms, 0.95), percentile(&sim.bytes_ms, 0.95)),
            );
        }
    }
    println!("real_load: {:.0} s in all", started.elapsed().as_secs_f64());
}
