//! Load figures for the recorder: N synthetic VP8 720p30 1.5 Mbit/s + Opus 48 kbit/s
//! participants (one room each) recorded at once over real WebRTC (ICE/DTLS/SRTP, loopback).
//!
//! Two child processes, so `/proc` figures are the recorder's alone: the simulator
//! (`livekit-recorder sim --media-dir ...`, the media generated once with ffmpeg into the target
//! dir, same parameters as `../shared/bench/mkmedia.sh`) and the recorder (`livekit-recorder
//! serve`). Per N: idle recorder CPU/RSS; `POST /recordings/start` for every participant; start
//! latency = start request -> the first complete video keyframe `SimpleBlock` in the WebM file
//! on disk (the file polled every 2 ms; split into "file created", "keyframe sent by the
//! simulator" (from `/sent`) and "keyframe on disk after it was sent"); a measurement window
//! of recorder CPU (utime + stime of all threads, `/proc/PID/stat`) and RSS (`VmRSS`,
//! `VmHWM`); stop all; frames lost = frames `/sent` logged between the first and the last
//! recorded frame (located by SHA-256, `ffmpeg -f framehash -hash sha256`) minus the packets
//! in the file, per track, plus the recorder's `recorder_frames_dropped_total`.
//!
//! With the baseline harness present (`BASELINE_DIR`, default `../shared/bench` beside the repository), its
//! GStreamer process-per-stream receiver (`gst_pp`) and C floor run at the same N right before
//! ours (`BASELINE_KINDS`, default `gst_pp floor`; its scratch goes to
//! `<target>/bench-baseline`) and the ratios are printed.
//!
//! Env: `RECORDER_LOAD_N` (default `1,10,50`), `RECORDER_LOAD_SECS` (window, default 30),
//! `RECORDER_LOAD_PERF=PREFIX` (`perf record -g` of the recorder during the window into
//! `PREFIX-n<N>.data`). Run by `cargo test` (no `--bench` argument) or with `CI` set: N = 1 for
//! 3 s with small media, no baseline, and the recording must complete with a non-empty file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const KEY: &str = "devkey";
const SECRET: &str = "devsecret-devsecret-devsecret-0123";
const BIN: &str = env!("CARGO_BIN_EXE_livekit-recorder");
const PROXY_VARS: [&str; 6] =
    ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

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

/// Kills a child process on drop, also when the bench panics.
struct Child(std::process::Child);

impl Child {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

async fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!("{what} exited before listening: {st}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `(status, JSON or text body)`.
async fn http(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url).timeout(Duration::from_secs(60));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The target dir (`.../target`), from the binary's path (`target/<profile>/livekit-recorder`).
fn target_dir() -> PathBuf {
    let bin = Path::new(BIN);
    bin.parent().and_then(Path::parent).unwrap_or(Path::new(".")).to_path_buf()
}

/// `video.ivf` + `audio.ogg` for `--media-dir`, made once with ffmpeg and cached. Full: the
/// baseline's media (`mkmedia.sh`: 40 s 1280x720 30 fps testsrc2 + temporal noise, libvpx
/// 1500k, g 60, realtime, cpu-used 8; Opus 48k stereo 20 ms, sine + pink noise). Small (test
/// mode): 4 s at 320x240.
fn ensure_media(full: bool) -> Result<PathBuf, String> {
    let (name, size, secs, rate) = if full {
        ("bench-media-720p", "1280x720", "40", "1500k")
    } else {
        ("bench-media-small", "320x240", "4", "300k")
    };
    let dir = target_dir().join(name);
    if dir.join("video.ivf").is_file() && dir.join("audio.ogg").is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The baseline harness's own media (same parameters), once its mkmedia.sh has finished:
    // then both sides record exactly the same bytes.
    let base = target_dir().join("bench-baseline");
    if full && base.join("vp8.dump").is_file() {
        let copy = |from: &str, to: &str| std::fs::copy(base.join(from), dir.join(to)).map(|_| ());
        if copy("src_opus.ogg", "audio.ogg").and_then(|_| copy("src_vp8.ivf", "video.ivf")).is_ok() {
            println!("recorder_load: media copied from {}", base.display());
            return Ok(dir);
        }
    }
    let t0 = Instant::now();
    let video = format!("testsrc2=size={size}:rate=30,noise=alls=12:allf=t");
    let tmp_v = dir.join("video.tmp.ivf");
    let tmp_a = dir.join("audio.tmp.ogg");
    let run = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("timeout")
            .args(["600", "ffmpeg", "-hide_banner", "-v", "error", "-y"])
            .args(args)
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!("ffmpeg {args:?}: {}", String::from_utf8_lossy(&o.stderr))),
            Err(e) => Err(format!("ffmpeg: {e} (apt-get install ffmpeg)")),
        }
    };
    run(&[
        "-f",
        "lavfi",
        "-i",
        &video,
        "-t",
        secs,
        "-c:v",
        "libvpx",
        "-b:v",
        rate,
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-threads",
        "2",
        "-f",
        "ivf",
        tmp_v.to_str().expect("utf-8 path"),
    ])?;
    let sine = format!("sine=frequency=440:sample_rate=48000:duration={secs}");
    let noise = format!("anoisesrc=color=pink:sample_rate=48000:duration={secs}:amplitude=0.2");
    run(&[
        "-f",
        "lavfi",
        "-i",
        &sine,
        "-f",
        "lavfi",
        "-i",
        &noise,
        "-filter_complex",
        "[0][1]amerge=inputs=2[a]",
        "-map",
        "[a]",
        "-t",
        secs,
        "-c:a",
        "libopus",
        "-b:a",
        "48k",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-frame_duration",
        "20",
        "-f",
        "ogg",
        tmp_a.to_str().expect("utf-8 path"),
    ])?;
    std::fs::rename(&tmp_v, dir.join("video.ivf")).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp_a, dir.join("audio.ogg")).map_err(|e| e.to_string())?;
    println!("recorder_load: media generated in {} ({:.1} s)", dir.display(), t0.elapsed().as_secs_f64());
    Ok(dir)
}

/// EBML variable-size integer at `pos`: (value without the marker, length); `None` value
/// means "unknown size" (all ones).
fn vint(data: &[u8], pos: usize) -> Option<(Option<u64>, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    let mut v = u64::from(first) & (0xFF >> len);
    for b in &bytes[1..] {
        v = (v << 8) | u64::from(*b);
    }
    let all_ones = v == (1u64 << (7 * len)) - 1;
    Some((if all_ones { None } else { Some(v) }, len))
}

/// EBML element id at `pos` (marker kept, as in the Matroska spec): (id, length).
fn ebml_id(data: &[u8], pos: usize) -> Option<(u32, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    Some((bytes.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)), len))
}

/// Whether the WebM bytes hold a complete `SimpleBlock` of a video track with the keyframe flag
/// (what "first keyframe on disk" means here). Segment, Cluster, Tracks, TrackEntry and
/// BlockGroup are walked into (so unknown sizes work); other elements are skipped whole; a
/// partly written element ends the scan.
fn has_video_keyframe(data: &[u8]) -> bool {
    const DESCEND: [u32; 5] = [0x1853_8067, 0x1F43_B675, 0x1654_AE6B, 0xAE, 0xA0];
    let (mut pos, mut video_tracks, mut entry): (usize, Vec<u64>, (u64, u64)) = (0, Vec::new(), (0, 0));
    let mut steps = 0;
    while pos < data.len() && steps < 1_000_000 {
        steps += 1;
        let Some((id, il)) = ebml_id(data, pos) else { return false };
        let Some((size, sl)) = vint(data, pos + il) else { return false };
        let body = pos + il + sl;
        if DESCEND.contains(&id) {
            if id == 0xAE {
                entry = (0, 0);
            }
            pos = body;
            continue;
        }
        let Some(size) = size.map(|s| s as usize) else { return false };
        let Some(end) = body.checked_add(size).filter(|e| *e <= data.len()) else { return false };
        let uint = || data[body..end].iter().fold(0u64, |a, b| (a << 8) | u64::from(*b));
        match id {
            0xD7 => entry.0 = uint(),
            0x83 => entry.1 = uint(),
            0xA3 => {
                let Some((Some(track), tl)) = vint(data, body) else { return false };
                let flags = data.get(body + tl + 2).copied().unwrap_or(0);
                if video_tracks.contains(&track) && flags & 0x80 != 0 {
                    return true;
                }
            }
            _ => {}
        }
        if entry.0 != 0 && entry.1 == 1 && !video_tracks.contains(&entry.0) {
            video_tracks.push(entry.0);
        }
        pos = end;
    }
    false
}

/// SHA-256 (hex) of every packet of every stream in `path`, by stream index.
fn packet_hashes(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
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
        // `stream, dts, pts, duration, size, hash[, S=n, side data size, side data hash]...`
        let (Some(Ok(i)), Some(h)) = (f.first().map(|s| s.parse::<usize>()), f.get(5)) else { continue };
        if streams.len() <= i {
            streams.resize(i + 1, Vec::new());
        }
        streams[i].push((*h).to_owned());
    }
    Ok(streams)
}

/// Stream index -> kind, from ffprobe.
fn stream_kinds(path: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=index,codec_type", "-of", "json"])
        .arg(path)
        .output();
    let json: Value = out.ok().and_then(|o| serde_json::from_slice(&o.stdout).ok()).unwrap_or_default();
    let mut kinds = Vec::new();
    for st in json["streams"].as_array().into_iter().flatten() {
        let i = st["index"].as_u64().unwrap_or(0) as usize;
        if kinds.len() <= i {
            kinds.resize(i + 1, String::new());
        }
        kinds[i] = st["codec_type"].as_str().unwrap_or("").to_owned();
    }
    kinds
}

/// Frames lost for one track: `/sent` frames between the first and the last recorded packet
/// (located by hash: the earliest match sent after the start request, the latest sent before
/// the stop) minus the packets in the file. `(lost, expected, recorded, first_ntp_ns)`.
fn lost_frames(
    sent: &[Value],
    got: &[String],
    t_start: u64,
    t_stop: u64,
) -> Option<(i64, usize, usize, u64)> {
    let hash = |f: &Value| f["sha256"].as_str().unwrap_or("").to_owned();
    let ntp = |f: &Value| f["ntp_ns"].as_u64().unwrap_or(0);
    let (head, tail) = (got.first()?, got.last()?);
    let first = sent.iter().position(|f| ntp(f) + 100_000_000 >= t_start && hash(f) == *head)?;
    let last = (first..sent.len())
        .rev()
        .find(|&i| ntp(&sent[i]) <= t_stop + 1_000_000_000 && hash(&sent[i]) == *tail)?;
    let expected = last - first + 1;
    Some((expected as i64 - got.len() as i64, expected, got.len(), ntp(&sent[first])))
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

/// One baseline point from `run.py` (its JSON result line).
#[derive(Debug, Clone)]
struct BaselinePoint {
    kind: String,
    mcpu: f64,
    vmhwm_mib: f64,
    pss_mib: f64,
    ok: String,
}

struct Baseline {
    dir: PathBuf,
    scratch: PathBuf,
    kinds: Vec<String>,
    rep: u32,
}

impl Baseline {
    /// The harness, ready to run (media and binaries in its scratch), or why not.
    fn setup() -> Result<Baseline, String> {
        // `../shared/bench` beside the repository unless BASELINE_DIR says otherwise
        let dir = std::env::var_os("BASELINE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench"));
        if !dir.join("run.py").is_file() {
            return Err(format!("{} has no run.py (set BASELINE_DIR)", dir.display()));
        }
        if !have("gst-launch-1.0") {
            return Err("gst-launch-1.0 not found (apt-get install -y gstreamer1.0-tools \
                        gstreamer1.0-plugins-good gstreamer1.0-plugins-base)"
                .into());
        }
        let scratch = target_dir().join("bench-baseline");
        let ready = ["vp8.dump", "opus.dump", "sender", "floor"].iter().all(|f| scratch.join(f).is_file());
        if !ready {
            println!("recorder_load: preparing the baseline media ({}/mkmedia.sh)", dir.display());
            let st = Command::new("timeout")
                .arg("900")
                .arg(dir.join("mkmedia.sh"))
                .env("BENCH_SCRATCH", &scratch)
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("mkmedia.sh: {e}"))?;
            if !st.success() {
                return Err(format!("mkmedia.sh failed: {st}"));
            }
        }
        let kinds = std::env::var("BASELINE_KINDS").unwrap_or_else(|_| "gst_pp floor".into());
        Ok(Baseline { dir, scratch, kinds: kinds.split_whitespace().map(str::to_owned).collect(), rep: 0 })
    }

    /// Runs every kind at `n` (bounded: `timeout 300`), parsing its appended result line.
    fn run(&mut self, n: usize) -> Vec<Result<BaselinePoint, String>> {
        let mut out = Vec::new();
        for kind in self.kinds.clone() {
            self.rep += 1;
            let t0 = Instant::now();
            let st = Command::new("timeout")
                .args(["300", "python3"])
                .arg(self.dir.join("run.py"))
                .args([&kind, &n.to_string(), &(900 + self.rep).to_string()])
                .env("BENCH_SCRATCH", &self.scratch)
                .stdout(Stdio::null())
                .status();
            let res = match st {
                Ok(s) if s.success() => self.result(&kind, n, 900 + self.rep),
                Ok(s) => Err(format!("run.py {kind} {n}: {s}")),
                Err(e) => Err(format!("run.py: {e}")),
            };
            println!("recorder_load: baseline {kind} N={n} ({:.0} s): {res:?}", t0.elapsed().as_secs_f64());
            out.push(res);
        }
        out
    }

    fn result(&self, kind: &str, n: usize, rep: u32) -> Result<BaselinePoint, String> {
        let text = std::fs::read_to_string(self.scratch.join("results.jsonl")).map_err(|e| e.to_string())?;
        let line = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|j| j["kind"] == kind && j["n"] == n && j["rep"] == rep)
            .ok_or("no result line")?;
        Ok(BaselinePoint {
            kind: kind.into(),
            mcpu: line["mcpu_per_stream"].as_f64().unwrap_or(f64::NAN),
            vmhwm_mib: line["vmhwm_mib_per_stream"].as_f64().unwrap_or(f64::NAN),
            pss_mib: line["pss_mib_per_stream"].as_f64().unwrap_or(f64::NAN),
            ok: format!("{}/{} outputs ok", line["ok_files"], n),
        })
    }
}

/// What one N measured.
#[derive(Debug, Default)]
struct Point {
    n: usize,
    mcpu: f64,
    idle_mcpu: f64,
    rss_per_mib: f64,
    rss_total_mib: f64,
    rss_idle_mib: f64,
    hwm_mib: f64,
    threads: f64,
    lat_ms: Vec<f64>,
    created_ms: Vec<f64>,
    kf_sent_ms: Vec<f64>,
    kf_disk_ms: Vec<f64>,
    lost_video: i64,
    lost_audio: i64,
    expected: usize,
    unknown_hashes: usize,
    dropped_metric: f64,
    sim_mcpu: f64,
    complete: usize,
    min_bytes: u64,
    /// Tracks compared with `/sent`.
    checked: usize,
}

async fn run(n: usize, window: Duration, media: Option<&Path>, client: &reqwest::Client) -> Point {
    let mut tmp = tempfile::tempdir().expect("tempdir");
    // RECORDER_LOAD_KEEP=1 keeps the recordings for inspection.
    tmp.disable_cleanup(std::env::var_os("RECORDER_LOAD_KEEP").is_some());
    let rec_dir = tmp.path().join("recordings");
    let (sim_port, app_port) = (free_port(), free_port());
    let mut sim = Command::new(BIN);
    sim.args(["sim", "--port", &sim_port.to_string(), "--api-key", KEY, "--api-secret", SECRET])
        .args(["--media-ip", "127.0.0.1", "--advertise-ip", "127.0.0.1"])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null());
    if let Some(dir) = media {
        sim.arg("--media-dir").arg(dir);
    }
    let mut recorder = Command::new(BIN);
    recorder
        .arg("serve")
        .env("LIVEKIT_URL", format!("ws://127.0.0.1:{sim_port}"))
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", SECRET)
        .env("APP_PORT", app_port.to_string())
        .env("RECORDINGS_DIR", &rec_dir)
        .env("LOG_LEVEL", "warn")
        .env("AUTO_RECORD_ON_JOIN", "false")
        .env("START_TIMEOUT", "30s")
        .env("FILENAME_TEMPLATE", "{room_name}/{publisher_identity}-{recording_id}")
        .stdout(Stdio::null());
    for v in PROXY_VARS {
        sim.env_remove(v);
        recorder.env_remove(v);
    }
    let mut sim = Child(sim.spawn().expect("spawn the simulator"));
    wait_for_port(sim_port, "simulator", &mut sim).await;
    let mut rec = Child(recorder.spawn().expect("spawn the recorder"));
    wait_for_port(app_port, "recorder", &mut rec).await;
    let (simu, api) = (format!("http://127.0.0.1:{sim_port}"), format!("http://127.0.0.1:{app_port}"));
    use reqwest::Method;
    for i in 0..n {
        let body = json!({"room": format!("load-{i}"), "identity": "pub", "video": "vp8", "audio": "opus"});
        let (st, j) = http(client, Method::POST, &format!("{simu}/sim/participants"), Some(body)).await;
        assert_eq!(st, 200, "add participant: {j}");
    }

    // Idle: the recorder is up, no recording yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_secs = if window < Duration::from_secs(10) { 1.0 } else { 3.0 };
    let (c0, t0) = (cpu_secs(rec.pid()), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let idle_mcpu = (cpu_secs(rec.pid()) - c0) / t0.elapsed().as_secs_f64() * 1000.0;
    let rss_idle = status_field(rec.pid(), "VmRSS") / 1024.0;

    // Start every recording, then watch the predicted files (`{room}/pub-{id}.webm`).
    let mut ids = Vec::new();
    let mut t_req = Vec::new();
    for i in 0..n {
        let body = json!({"room": format!("load-{i}"), "participant": "pub"});
        let (t_ns, t) = (unix_ns(), Instant::now());
        let (st, j) = http(client, Method::POST, &format!("{api}/recordings/start"), Some(body)).await;
        assert!(st == 201 || st == 200, "start: {st} {j}");
        ids.push(j["id"].as_str().expect("id").to_owned());
        t_req.push((t_ns, t));
    }
    let paths: Vec<PathBuf> =
        ids.iter().enumerate().map(|(i, id)| rec_dir.join(format!("load-{i}/pub-{id}.webm"))).collect();
    let (mut created, mut on_disk) = (vec![None; n], vec![None; n]);
    let mut lens = vec![0u64; n];
    let deadline = Instant::now() + Duration::from_secs(40);
    while on_disk.iter().any(Option::is_none) && Instant::now() < deadline {
        for i in 0..n {
            if on_disk[i].is_some() {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&paths[i]) else { continue };
            let now = (Instant::now(), unix_ns());
            created[i].get_or_insert(now);
            if meta.len() != lens[i] {
                lens[i] = meta.len();
                if std::fs::read(&paths[i]).is_ok_and(|d| has_video_keyframe(&d)) {
                    on_disk[i] = Some(now);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "recorder_load: N={n}: load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let started = on_disk.iter().filter(|t| t.is_some()).count();
    println!("recorder_load: N={n}: {started}/{n} recordings have a keyframe on disk");

    // Measurement window.
    tokio::time::sleep(Duration::from_secs(if window < Duration::from_secs(10) { 0 } else { 2 })).await;
    let perf = std::env::var("RECORDER_LOAD_PERF").ok().map(|prefix| {
        let out = format!("{prefix}-n{n}.data");
        Child(
            Command::new("perf")
                .args(["record", "-F", "999", "-g", "-o", &out, "-p", &rec.pid().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("perf"),
        )
    });
    let (c0, s0, t0) = (cpu_secs(rec.pid()), cpu_secs(sim.pid()), Instant::now());
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let (c1, s1) = (cpu_secs(rec.pid()), cpu_secs(sim.pid()));
    if let Some(mut p) = perf {
        // SIGINT lets perf write its file.
        let _ = Command::new("kill").args(["-INT", &p.pid().to_string()]).status();
        let _ = p.0.wait();
    }
    let rss = status_field(rec.pid(), "VmRSS") / 1024.0;
    let hwm = status_field(rec.pid(), "VmHWM") / 1024.0;
    let threads = status_field(rec.pid(), "Threads");
    let (_, metrics) = http(client, Method::GET, &format!("{api}/metrics"), None).await;
    let dropped_metric: f64 = metrics
        .as_str()
        .unwrap_or("")
        .lines()
        .filter(|l| l.starts_with("recorder_frames_dropped_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum();

    // Stop all, then compare the files with `/sent`.
    let mut stopped = Vec::new();
    for id in &ids {
        let (st, j) =
            http(client, Method::POST, &format!("{api}/recordings/stop"), Some(json!({"id": id}))).await;
        assert_eq!(st, 200, "stop: {j}");
        stopped.push((j, unix_ns()));
    }
    let mut p = Point {
        n,
        mcpu: (c1 - c0) / secs * 1000.0 / n as f64,
        idle_mcpu,
        rss_per_mib: (rss - rss_idle) / n as f64,
        rss_total_mib: rss,
        rss_idle_mib: rss_idle,
        hwm_mib: hwm,
        threads,
        dropped_metric,
        sim_mcpu: (s1 - s0) / secs * 1000.0,
        min_bytes: u64::MAX,
        ..Point::default()
    };
    for (i, (rec_json, t_stop)) in stopped.iter().enumerate() {
        if rec_json["status"] == "complete" {
            p.complete += 1;
        }
        let file = rec_json["files"][0].as_str().map(PathBuf::from).unwrap_or_else(|| paths[i].clone());
        if file != paths[i] {
            println!(
                "recorder_load: warning: file {} is not the predicted {}",
                file.display(),
                paths[i].display()
            );
        }
        let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
        p.min_bytes = p.min_bytes.min(bytes);
        let (tq_ns, tq) = t_req[i];
        if let Some((t, _)) = created[i] {
            p.created_ms.push(t.duration_since(tq).as_secs_f64() * 1000.0);
        }
        let Some((t_disk, disk_ns)) = on_disk[i] else { continue };
        p.lat_ms.push(t_disk.duration_since(tq).as_secs_f64() * 1000.0);
        if !have("ffmpeg") {
            continue;
        }
        let (_, sent) = http(client, Method::GET, &format!("{simu}/sim/rooms/load-{i}/sent"), None).await;
        let hashes = packet_hashes(&file).unwrap_or_else(|e| {
            println!("recorder_load: load-{i}: {e}");
            Vec::new()
        });
        let kinds = stream_kinds(&file);
        if kinds.len() != 2 || hashes.len() != 2 {
            println!("recorder_load: load-{i}: streams {kinds:?}, {} with packets", hashes.len());
        }
        for (s, got) in hashes.iter().enumerate() {
            let kind = kinds.get(s).map_or("", String::as_str);
            let Some(track) = sent["tracks"].as_array().and_then(|t| t.iter().find(|t| t["kind"] == kind))
            else {
                continue;
            };
            let frames = track["frames"].as_array().cloned().unwrap_or_default();
            let known: std::collections::HashSet<&str> =
                frames.iter().filter_map(|f| f["sha256"].as_str()).collect();
            let unknown: Vec<usize> = (0..got.len()).filter(|&k| !known.contains(got[k].as_str())).collect();
            if !unknown.is_empty() {
                let at: Vec<usize> = unknown.iter().copied().take(5).collect();
                println!(
                    "recorder_load: load-{i} {kind}: {} of {} packets not in /sent, at {at:?} ({})",
                    unknown.len(),
                    got.len(),
                    file.display()
                );
            }
            p.unknown_hashes += unknown.len();
            match (lost_frames(&frames, got, tq_ns, *t_stop), kind) {
                (Some((lost, expected, _, first_ns)), "video") => {
                    p.checked += 1;
                    p.lost_video += lost;
                    p.expected += expected;
                    p.kf_sent_ms.push((first_ns as f64 - tq_ns as f64) / 1e6);
                    p.kf_disk_ms.push((disk_ns as f64 - first_ns as f64) / 1e6);
                }
                (Some((lost, expected, ..)), _) => {
                    p.checked += 1;
                    p.lost_audio += lost;
                    p.expected += expected;
                }
                (None, _) => println!("recorder_load: load-{i} {kind}: recorded frames not found in /sent"),
            }
        }
    }
    drop(rec);
    drop(sim);
    p
}

fn print_point(p: &Point) {
    let l =
        |v: &[f64]| format!("{:.0}/{:.0}/{:.0}", percentile(v, 0.5), percentile(v, 0.95), percentile(v, 1.0));
    println!(
        "recorder_load: N={:3}: recorder {:.2} mCPU/participant ({:.0} mCPU total, idle {:.1}), RSS {:.2} MiB/participant \
         (total {:.1} MiB, idle {:.1}, VmHWM {:.1}, {} threads); start latency p50/p95/max {} ms \
         [file created {} | keyframe sent by the sim {} | keyframe on disk after sent {}]; frames lost: video {} audio {} \
         of {} expected ({} of {} tracks checked), {} unknown packets, metrics dropped {}; {}/{} complete, smallest file {} B; sim {:.0} mCPU",
        p.n,
        p.mcpu,
        p.mcpu * p.n as f64,
        p.idle_mcpu,
        p.rss_per_mib,
        p.rss_total_mib,
        p.rss_idle_mib,
        p.hwm_mib,
        p.threads,
        l(&p.lat_ms),
        l(&p.created_ms),
        l(&p.kf_sent_ms),
        l(&p.kf_disk_ms),
        p.lost_video,
        p.lost_audio,
        p.expected,
        p.checked,
        2 * p.n,
        p.unknown_hashes,
        p.dropped_metric,
        p.complete,
        p.n,
        p.min_bytes,
        p.sim_mcpu,
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once, small.
    let ci = std::env::var_os("CI").is_some() || !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("RECORDER_LOAD_N") {
        Ok(v) => {
            v.split(',').filter_map(|s| s.trim().parse().ok()).filter(|n| (1..=200).contains(n)).collect()
        }
        Err(_) if ci => vec![1],
        Err(_) => vec![1, 10, 50],
    };
    let secs = std::env::var("RECORDER_LOAD_SECS").ok().and_then(|s| s.parse::<u64>().ok());
    let window = Duration::from_secs(secs.unwrap_or(if ci { 3 } else { 30 }).clamp(1, 600));
    let mut baseline = if ci { Err("test mode".to_owned()) } else { Baseline::setup() };
    if let Err(why) = &baseline {
        println!("recorder_load: baseline skipped: {why}");
    }
    let media = match ensure_media(!ci) {
        Ok(dir) => Some(dir),
        Err(e) if ci => {
            println!("recorder_load: {e}; using the embedded loops");
            None
        }
        Err(e) => panic!("{e}"),
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    // no idle pooled connections: a server closing one as it is reused failed a request once
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(0).build().expect("client");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut rows = Vec::new();
    for n in sizes {
        let base = baseline.as_mut().map(|b| b.run(n)).unwrap_or_default();
        let p = rt.block_on(run(n, window, media.as_deref(), &client));
        print_point(&p);
        if ci {
            assert_eq!(p.complete, n, "every recording completes");
            assert!(p.min_bytes > 0 && p.min_bytes != u64::MAX, "the file is non-empty");
        }
        rows.push((p, base));
    }
    println!();
    println!("| N | ours mCPU/participant | ours RSS MiB/participant (total) | start latency p50/p95/max ms | frames lost (video+audio / expected) | sim mCPU | baseline | baseline mCPU/stream | MiB/stream VmHWM (PSS) | ours/baseline mCPU | ours/baseline MiB (vs VmHWM) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (p, base) in &rows {
        let lat = format!(
            "{:.0}/{:.0}/{:.0}",
            percentile(&p.lat_ms, 0.5),
            percentile(&p.lat_ms, 0.95),
            percentile(&p.lat_ms, 1.0)
        );
        let ours = format!(
            "| {} | {:.2} | {:.2} ({:.0}) | {lat} | {} / {} | {:.0} |",
            p.n,
            p.mcpu,
            p.rss_per_mib,
            p.rss_total_mib,
            p.lost_video + p.lost_audio,
            p.expected,
            p.sim_mcpu
        );
        if base.is_empty() {
            println!("{ours} - | | | | |");
        }
        for b in base {
            match b {
                Ok(b) => println!(
                    "{ours} {} ({}) | {:.2} | {:.2} ({:.2}) | {:.2} | {:.3} |",
                    b.kind,
                    b.ok,
                    b.mcpu,
                    b.vmhwm_mib,
                    b.pss_mib,
                    p.mcpu / b.mcpu,
                    p.rss_per_mib / b.vmhwm_mib
                ),
                Err(e) => println!("{ours} failed: {e} | | | | |"),
            }
        }
    }
}
