//! The recorder against the real livekit-server v1.13.5 with a browser publisher: headless
//! Debian Chromium running livekit-client 2.23.0 (`tests/browser/`, driven through
//! playwright-core by `tests/support/browser_support.rs`). The page publishes a 640x360 canvas
//! (captureStream(30)) that shows a frame counter as big black/white blocks and turns white
//! for 100 ms every 2 s, and a WebAudio microphone that beeps 1 kHz for those 100 ms, with
//! livekit-client's default publish options unless a test says otherwise: VP8 with two
//! simulcast layers (320x180 `q`, 640x360 `h`), RED audio, Opus DTX (digital silence between
//! the beeps). What the files hold is judged from ffmpeg's decoding: the counter read back from
//! every frame, the sizes, the sync markers.
//!
//! Needs the server binary and Go (`sh tests/support/real_support/install.sh`), Chromium and the npm
//! packages (`sh tests/browser/install.sh`; `.ci/test` runs both) and root (the veth pair).

mod support;
use support::{browser_support, common, real_support, recorder_support};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use browser_support::*;
use livekit_recorder::daemon::{Daemon, DaemonConfig};
use real_support::*;
use recorder_support::{api, files_of, metric, start_with_media, stop_complete};
use reqwest::Method;
use serde_json::{json, Value};

/// One browser at a time: two Chromiums encoding simulcast at once on 2 cores overuse the CPU,
/// and then the browser pauses its top layer and the server's choices change (seen in CI runs
/// where the tests of this file ran two at a time).
async fn one_browser_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(())).lock().await
}

const WAIT: Duration = Duration::from_secs(30);
/// The A/V offset allowed for a browser publisher: the median of a recording's markers (what
/// the recorder's alignment by sender reports contributes, the same at every marker), the
/// issue's 40 ms. Measured -1 to +21 ms over 3 full runs, since the page's beep and flash are
/// both set by its audio render thread (see page.js); before that the page's own beep came
/// 20-40 ms after its picture.
const SYNC_MS: f64 = 40.0;
/// ... and at any one marker: the page's capture clocks (a canvas frame captured on the page's
/// thread, audio stamped in 10 ms chunks) jitter from one marker to the next; single markers
/// measured -12 to +40 ms on the loaded 2-core machine.
const SYNC_ONE_MS: f64 = 60.0;
/// The page's top simulcast layer (what it draws).
const TOP: (u32, u32) = (640, 360);

/// The server of a browser test, logging at `debug`: its stream tracker's view of each
/// simulcast layer ([`server_layer_events`]) is what explains a lower layer in a file.
fn browser_server() -> RealServer {
    RealServer::start(ServerOpts { log_level: "debug".into(), ..ServerOpts::default() })
}

async fn daemon_for(server: &RealServer, dir: &Path) -> Daemon {
    let mut cfg = DaemonConfig::new(&server.ws_url(), server.api_key(), server.api_secret(), dir);
    cfg.recording.start_timeout = Duration::from_secs(20);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

async fn stop_recording(addr: SocketAddr, id: &str) -> Value {
    let done = stop_complete(addr, id).await;
    assert_eq!(done["skipped_tracks"], json!([]), "{done}");
    done
}

/// The one part file of a finished recording, kept (`REAL_RECORDER_KEEP`), decoded by ffmpeg
/// without an error.
fn one_decodable_file(what: &str, done: &Value) -> PathBuf {
    let files = files_of(done);
    keep(&files);
    assert_eq!(files.len(), 1, "{what}: one part: {done}");
    let errors = common::ffmpeg_errors(&files[0]);
    assert!(errors.is_empty(), "{what}: {}: {errors}", files[0].display());
    files.into_iter().next().expect("one file")
}

fn keep(files: &[PathBuf]) {
    if let Some(dir) = std::env::var_os("REAL_RECORDER_KEEP") {
        let _ = std::fs::create_dir_all(&dir);
        for f in files {
            let _ = std::fs::copy(f, Path::new(&dir).join(f.file_name().expect("name")));
        }
    }
}

fn stream_of<'a>(probe: &'a common::Probe, kind: &str) -> (usize, &'a common::ProbeStream) {
    probe
        .streams
        .iter()
        .enumerate()
        .find(|(_, s)| s.codec_type == kind)
        .unwrap_or_else(|| panic!("no {kind} stream: {probe:?}"))
}

/// The sizes of the decoded video over time: `(from s, WxH)` at every change.
fn size_changes(frames: &[VideoFrame]) -> Vec<(f64, u32, u32)> {
    let mut out: Vec<(f64, u32, u32)> = Vec::new();
    for f in frames {
        if out.last().is_none_or(|&(_, w, h)| (w, h) != (f.width, f.height)) {
            out.push((f.t, f.width, f.height));
        }
    }
    out
}

/// The counters of the decoded frames: at least 90 % of the frames readable (the page's VP9
/// SVC encoder leaves 3-6 % of its pictures with a block half updated: a grey block, or one
/// from an older picture, which the check bits turn away), strictly increasing (nothing
/// recorded twice, nothing out of order), none above what the page drew. Returns them.
fn assert_counters(what: &str, frames: &[VideoFrame], drawn: u64) -> Vec<u64> {
    assert!(drawn < 4096, "{what}: the page drew {drawn} frames; the picture holds 12 bits of its counter");
    let unreadable: Vec<f64> = frames.iter().filter(|f| f.counter.is_none()).map(|f| f.t).collect();
    eprintln!("{what}: {} of {} frames without a readable counter", unreadable.len(), frames.len());
    assert!(
        unreadable.len() * 10 <= frames.len(),
        "{what}: {} of {} frames have no readable counter (at {unreadable:.2?} s)",
        unreadable.len(),
        frames.len()
    );
    let counters: Vec<u64> = frames.iter().filter_map(|f| f.counter.map(u64::from)).collect();
    for w in counters.windows(2) {
        assert!(
            w[1] > w[0],
            "{what}: counter {} after {}: a frame recorded twice or out of order",
            w[1],
            w[0]
        );
    }
    let last = *counters.last().expect("counters");
    assert!(last <= drawn, "{what}: counter {last} read, the page drew {drawn}: misread");
    counters
}

/// The publisher's own largest gap (ms of RTP time) between consecutive frames of its top
/// layer (the SSRC with the largest size) that left its encoder between the Unix times
/// `from_ms` and `to_ms`, and the layer's size and frame count in that window.
fn publisher_gap_ms(status: &Value, from_ms: u64, to_ms: u64) -> (f64, (u64, u64), usize) {
    let layers = status["sent"].as_array().expect("sent");
    let top = layers
        .iter()
        .filter(|l| l["kind"] == "video")
        .max_by_key(|l| l["width"].as_u64().unwrap_or(0))
        .expect("a video layer sent");
    let times: Vec<(u64, u32)> = top["times"]
        .as_array()
        .expect("times")
        .iter()
        .map(|p| (p[0].as_f64().unwrap_or(0.0) as u64, p[1].as_u64().unwrap_or(0) as u32))
        .filter(|&(wall, _)| wall >= from_ms && wall <= to_ms)
        .collect();
    let gap = times.windows(2).map(|w| w[1].1.wrapping_sub(w[0].1)).max().unwrap_or(0);
    let size = (top["width"].as_u64().unwrap_or(0), top["height"].as_u64().unwrap_or(0));
    (f64::from(gap) / 90.0, size, times.len())
}

/// The largest gap (ms) between consecutive frames of `frames` from `from_s` on.
fn file_gap_ms(frames: &[VideoFrame], from_s: f64) -> f64 {
    let late: Vec<f64> = frames.iter().filter(|f| f.t >= from_s).map(|f| f.t).collect();
    late.windows(2).map(|w| (w[1] - w[0]) * 1e3).fold(0.0, f64::max)
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// A/V offsets (ms) at every marker while the audio track runs; see [`assert_browser_sync`].
/// Markers before the audio's first packet + 100 ms or after its last - 150 ms are left out:
/// the file does not hold their whole beep (a recording that starts or stops mid-marker).
fn assert_markers(
    what: &str,
    path: &Path,
    frames: &[VideoFrame],
    status: &Value,
    audio: (f64, f64),
) -> Vec<f64> {
    assert_browser_sync(what, path, frames, status, (audio.0 + 0.1, audio.1 - 0.15), 3)
}

/// The file time (s) at which the page's frame `counter` was captured: that frame's own time,
/// or, when the page's encoder dropped it (a browser short of CPU encodes ~20 of its 30 draws
/// a second) or it cannot be read, the time interpolated between the readable frames drawn
/// just before and after it (at most 6 draws apart). The file's times are the sender's capture
/// times, so this is where the picture belongs, whichever frames the encoder kept.
fn time_of_drawn(frames: &[VideoFrame], counter: u64) -> Option<f64> {
    let known: Vec<(u64, f64)> =
        frames.iter().filter_map(|f| f.counter.map(|c| (u64::from(c), f.t))).collect();
    let after = known.iter().position(|&(c, _)| c >= counter)?;
    let (c2, t2) = known[after];
    if c2 == counter {
        return Some(t2);
    }
    let (c1, t1) = known[after.checked_sub(1)?];
    (c2 - c1 <= 6).then(|| t1 + (t2 - t1) * (counter - c1) as f64 / (c2 - c1) as f64)
}

/// The markers in `from_s..=until_s`: for each, the beep's start in the file's audio against
/// the capture time of the frame that began the flash (the counter the page drew on it,
/// [`time_of_drawn`]). At least `want` of them; each within [`SYNC_ONE_MS`], their median
/// within [`SYNC_MS`].
fn assert_browser_sync(
    what: &str,
    path: &Path,
    frames: &[VideoFrame],
    status: &Value,
    (from_s, until_s): (f64, f64),
    want: usize,
) -> Vec<f64> {
    let beeps = common::beeps(path);
    let flash_counters: Vec<u64> = status["flash_counters"]
        .as_array()
        .expect("flash_counters")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    // each marker's video time: the capture time of the frame drawn at its flash's start
    let times: Vec<f64> = flash_counters
        .iter()
        .filter_map(|&c| time_of_drawn(frames, c))
        .filter(|t| (from_s..=until_s).contains(t))
        .collect();
    let offsets = common::assert_beeps_near(what, &times, &beeps, SYNC_ONE_MS);
    assert!(
        offsets.len() >= want,
        "{what}: {} markers in {from_s:.2}..{until_s:.2} s: flashes drawn at counters {flash_counters:?}, beeps {beeps:?}",
        offsets.len()
    );
    let mut sorted = offsets.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 };
    eprintln!(
        "{what}: A/V median {median:+.1} ms over {n} markers {offsets:.1?} (the page's beep request to flash: {} ms)",
        status["beep_latencies_ms"]
    );
    assert!(median.abs() <= SYNC_MS, "{what}: A/V median {median:.1} ms over {offsets:.1?}");
    offsets
}

/// The page's camera and microphone, published with `publish` over livekit-client's defaults,
/// recorded ~8 s by REST: complete, one file ffmpeg decodes without error, video in `codec`,
/// the top layer's 640x360 from 2 s on, counters strictly increasing with no gap wider than
/// the publisher's own, Opus audio over the whole recording, the markers in sync.
async fn record_camera_and_microphone(what: &str, publish: Value, codec: &str) {
    let server = browser_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "browser";
    let browser = Browser::spawn(&server, room, "alice", json!({ "publish": publish }));
    browser.wait_started(0).await;

    let (id, first_bytes) = start_with_media(addr, room, "alice", WAIT).await;
    let bytes_at = unix_ms();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stop_at = unix_ms();
    let done = stop_recording(addr, &id).await;
    let status = browser.command("status").await;
    let codecs: Vec<&str> =
        done["tracks"].as_array().expect("tracks").iter().filter_map(|t| t["codec"].as_str()).collect();
    assert!(codecs.contains(&codec) && codecs.contains(&"opus"), "{what}: {codec} + Opus: {done}");
    let file = &one_decodable_file(what, &done);

    let probe = common::ffprobe(file);
    let (vi, v) = stream_of(&probe, "video");
    let (ai, a) = stream_of(&probe, "audio");
    assert_eq!(v.codec_name, codec, "{probe:?}");
    assert_eq!(a.codec_name, "opus", "{probe:?}");

    // the picture: the top layer from 2 s on (the server may start on the low one)
    let frames = video_frames(file);
    assert!(frames.len() > 100, "{what}: {} frames in ~8 s", frames.len());
    let sizes = size_changes(&frames);
    let t_first = frames[0].t;
    let late: Vec<&VideoFrame> = frames.iter().filter(|f| f.t >= t_first + 2.0).collect();
    // the top layer from 2 s on, or else one of the layers the page published: a browser drops
    // its top layer when its CPU is overused, and livekit-server on the CPU-starved 2-core
    // machine has also forwarded the low layer to the end of a recording while the page still
    // sent its top one (2 CI runs of this test; the recorder asks for the top layer, see the
    // README): said loudly, and the pictures must still all be published ones
    let (own_gap, top, sent) = publisher_gap_ms(&status, bytes_at - 1_000, stop_at);
    let top_sent_throughout = own_gap < 500.0 && sent > 0;
    if !late.iter().all(|f| (f.width, f.height) == TOP) {
        let layers: Vec<(u32, u32)> = status["sent"]
            .as_array()
            .expect("sent")
            .iter()
            .filter(|l| l["kind"] == "video")
            .map(|l| (l["width"].as_u64().unwrap_or(0) as u32, l["height"].as_u64().unwrap_or(0) as u32))
            .collect();
        let events =
            server_layer_events(server.log_path(), &browser.track_sid("camera").expect("camera sid"));
        eprintln!(
            "{what}: NOT THE TOP LAYER from 2 s on: sizes {sizes:?}; the page {} its top layer (largest gap \
             {own_gap:.0} ms); senders {}; the server's stream tracker (ms, layer, status): {events:?}",
            if top_sent_throughout { "sent" } else { "paused" },
            status["senders"]
        );
        assert!(
            server_stopped_the_top_layer(&events),
            "{what}: a lower layer while livekit-server never judged the top layer stopped: {events:?}"
        );
        assert!(
            late.iter().all(|f| layers.contains(&(f.width, f.height))),
            "{what}: every picture one of the published layers {layers:?}: sizes {sizes:?}"
        );
    }

    // the counters: nothing twice, in order; no gap wider than the publisher's own (its top
    // layer's frames that left the encoder while the file was being written)
    let counters = assert_counters(what, &frames, status["counter"].as_u64().expect("counter"));
    let file_gap = file_gap_ms(&frames, t_first + 1.0);
    eprintln!(
        "{what}: {} frames, counters {}..{}; sizes {sizes:?}; largest gap from 1 s on {file_gap:.0} ms, the \
         publisher's own {own_gap:.0} ms (top layer {top:?}, {sent} frames sent meanwhile); page senders {}",
        counters.len(),
        counters[0],
        counters.last().expect("counter"),
        status["senders"]
    );
    assert_eq!(top, (u64::from(TOP.0), u64::from(TOP.1)), "{what}: the page's top layer");
    // the file's times follow the RTP clock, steered at most 5 ms per frame
    assert!(
        file_gap <= own_gap + 12.0,
        "{what}: a gap of {file_gap:.0} ms in the file, the publisher's own at most {own_gap:.0} ms"
    );

    // the audio: Opus over the whole recording (DTX: sparse packets in the silences)
    let ap = common::packets(file, ai);
    let vp = common::packets(file, vi);
    let a_first = ap[0].pts_ns() as f64 / 1e9;
    let a_last = ap.last().expect("audio").pts_ns() as f64 / 1e9;
    let v_last = vp.last().expect("video").pts_ns() as f64 / 1e9;
    let v_first = vp[0].pts_ns() as f64 / 1e9;
    let a_gap = ap.windows(2).map(|w| w[1].pts_ns() - w[0].pts_ns()).max().unwrap_or(0) as f64 / 1e6;
    eprintln!(
        "{what}: video {v_first:.3}..{v_last:.3} s, audio {a_first:.3}..{a_last:.3} s, {} audio packets, \
         largest audio gap {a_gap:.0} ms",
        ap.len()
    );
    assert!(a_first <= v_first + 0.5 && a_last >= v_last - 0.5, "{what}: audio covers the recording");

    let offsets = assert_markers(what, file, &frames, &status, (a_first, a_last));
    eprintln!(
        "{what}: start -> first bytes {:.0} ms; {} video frames, {} audio packets; A/V {offsets:.1?} ms",
        first_bytes.as_secs_f64() * 1e3,
        vp.len(),
        ap.len()
    );
    drop(browser);
    daemon.shutdown().await;
}

/// livekit-client's defaults: VP8 with simulcast, RED, DTX.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_defaults_vp8_simulcast_red_dtx() {
    let _serial = one_browser_at_a_time().await;
    record_camera_and_microphone("defaults", json!({}), "vp8").await;
}

/// The same with `videoCodec: 'h264'` (simulcast, RED and DTX as by default): H.264 + Opus in
/// Matroska.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_h264_simulcast() {
    let _serial = one_browser_at_a_time().await;
    record_camera_and_microphone("h264", json!({ "videoCodec": "h264" }), "h264").await;
}

/// A page reload mid-recording (the same identity rejoins with a new session): the recording
/// goes on in the same id, in at most one new part, and nothing is recorded twice (the page
/// keeps its counter across the reload: counters across the parts strictly increase).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_page_reload_continues_the_recording() {
    let _serial = one_browser_at_a_time().await;
    let server = browser_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "reload";
    let browser = Browser::spawn(&server, room, "alice", json!({}));
    browser.wait_started(0).await;
    let sid1 = browser.participant_sid().expect("sid");

    let (id, _) = start_with_media(addr, room, "alice", WAIT).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let cursor = browser.event_count();
    let t_reload = Instant::now();
    browser.command("reload").await;
    let started = browser.wait_started(cursor).await;
    let rejoined = t_reload.elapsed();
    let sid2 = browser.participant_sid().expect("sid");
    assert_ne!(sid1, sid2, "a new session after the reload");
    let reload_counter = started["counter"].as_u64().expect("counter");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, live) = api(addr, Method::GET, &format!("/recordings/{id}"), None, None).await;
    assert_eq!(live["status"], "active", "the reload does not end the recording: {live}");
    let done = stop_recording(addr, &id).await;
    let after = browser.command("status").await;
    let files = files_of(&done);
    keep(&files);
    assert!(!files.is_empty() && files.len() <= 2, "one part, or a second one for the new session: {done}");

    let drawn = after["counter"].as_u64().expect("counter");
    let mut all: Vec<u64> = Vec::new();
    let mut summary = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let errors = common::ffmpeg_errors(f);
        assert!(errors.is_empty(), "part {i} {}: {errors}", f.display());
        let frames = video_frames(f);
        let counters = assert_counters(&format!("part {i}"), &frames, drawn);
        summary.push(format!(
            "part {i}: {} frames, counters {}..{}, sizes {:?}",
            counters.len(),
            counters[0],
            counters.last().expect("counter"),
            size_changes(&frames)
        ));
        all.extend(counters);
    }
    eprintln!(
        "reload: rejoined {:.0} ms after the reload; {}",
        rejoined.as_secs_f64() * 1e3,
        summary.join("; ")
    );
    for w in all.windows(2) {
        assert!(w[1] > w[0], "counter {} after {} across the parts: recorded twice", w[1], w[0]);
    }
    assert!(all.iter().any(|&c| c < reload_counter), "frames from before the reload: {summary:?}");
    let after_reload = all.iter().filter(|&&c| c > reload_counter).count();
    assert!(after_reload >= 60, "frames from the new session ({after_reload}): {summary:?}");
    drop(browser);
    daemon.shutdown().await;
}

/// A screen share at 2 fps (a 1280x720 canvas repainted twice a second, published as
/// `screen_share` with livekit-client's defaults, alone): recorded for 10 s without a stall,
/// with no frame lost and no keyframe-request storm while frames are 500 ms apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_screen_share_at_2_fps() {
    let _serial = one_browser_at_a_time().await;
    let server = browser_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "screen";
    let page =
        json!({ "camera": false, "microphone": false, "screen": { "fps": 2, "width": 1280, "height": 720 } });
    let browser = Browser::spawn(&server, room, "alice", page);
    browser.wait_started(0).await;
    let (id, first_bytes) = start_with_media(addr, room, "alice", WAIT).await;
    let started_at = unix_ms();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, live) = api(addr, Method::GET, &format!("/recordings/{id}"), None, None).await;
    assert_eq!(live["status"], "active", "500 ms between frames is not a stall: {live}");
    let stopped_at = unix_ms();
    let done = stop_recording(addr, &id).await;
    let status = browser.command("status").await;
    assert_eq!(done["frames_lost"], 0, "{done}");
    let file = one_decodable_file("screen share", &done);
    let frames = video_frames(&file);
    let span = frames.last().expect("frame").t - frames[0].t;
    let gap = file_gap_ms(&frames, frames[0].t);
    // the page's top layer's own largest gap: when it pauses that layer, the server forwards
    // the low one from that layer's next keyframe (a full run once had 2.5 s without a frame,
    // then 640x360 until the top layer came back; that run did not log the page's gaps)
    let (own_gap, _, sent) = publisher_gap_ms(&status, started_at, stopped_at);
    let allowed = if sent > 0 { 1_100.0f64.max(own_gap + 600.0) } else { 1_100.0 };
    let plis = metric(addr, "recorder_plis_requested_total").await;
    eprintln!(
        "screen 2 fps: first bytes after {:.0} ms; {} frames over {span:.1} s, sizes {:?}, largest gap {gap:.0} ms \
         (the page's top layer's own {own_gap:.0} ms, {sent} frames); \
         PLIs sent {plis}; page: {} frames painted, senders {}; the server's stream tracker (ms, layer, status): {:?}",
        first_bytes.as_secs_f64() * 1e3,
        frames.len(),
        size_changes(&frames),
        status["screen_frames"],
        status["senders"],
        server_layer_events(server.log_path(), &browser.track_sid("screen").expect("screen sid"))
    );
    assert!(frames.len() >= 16, "10 s at 2 fps: {} frames", frames.len());
    assert!(
        gap <= allowed,
        "a gap of {gap:.0} ms at 2 fps (the page's top layer's own largest gap {own_gap:.0} ms)"
    );
    assert!(plis <= 4, "{plis} keyframe requests for a 2 fps track");
    drop(browser);
    daemon.shutdown().await;
}

/// The first frame whose counter is at least `counter`: its time (s).
fn time_of_counter(frames: &[VideoFrame], counter: u64) -> Option<f64> {
    frames.iter().find(|f| f.counter.is_some_and(|c| u64::from(c) >= counter)).map(|f| f.t)
}

/// Audio packets' (first, last) times in the file (s) and the markers' offsets from `from_s` on.
fn audio_span_and_markers(
    what: &str,
    file: &Path,
    frames: &[VideoFrame],
    status: &Value,
    from_s: f64,
    want: usize,
) -> ((f64, f64), Vec<f64>) {
    let probe = common::ffprobe(file);
    let (ai, _) = stream_of(&probe, "audio");
    let ap = common::packets(file, ai);
    let a_first = ap[0].pts_ns() as f64 / 1e9;
    let a_last = ap.last().expect("audio").pts_ns() as f64 / 1e9;
    ((a_first, a_last), assert_browser_sync(what, file, frames, status, (from_s, a_last - 0.15), want))
}

/// The camera muted for 3 s mid-recording and unmuted (livekit-client's `mute()`/`unmute()`
/// of the published track): the recording goes on in one part that ffmpeg decodes; the
/// counters strictly increase; none of the frames drawn while muted is in the file (a gap, no
/// black or frozen frames); frames from after the unmute are; no frame counted as lost; the
/// markers after the unmute in sync; the audio covers the recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_camera_muted_and_unmuted() {
    let _serial = one_browser_at_a_time().await;
    let what = "camera mute";
    let server = browser_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "mute";
    let browser = Browser::spawn(&server, room, "alice", json!({}));
    browser.wait_started(0).await;
    let (id, _) = start_with_media(addr, room, "alice", WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let muted = browser.command("mute video").await;
    assert_eq!(muted["ok"], true, "{muted}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unmuted = browser.command("unmute video").await;
    assert_eq!(unmuted["ok"], true, "{unmuted}");
    let (c_mute, c_unmute) =
        (muted["counter"].as_u64().expect("counter"), unmuted["counter"].as_u64().expect("counter"));
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_, live) = api(addr, Method::GET, &format!("/recordings/{id}"), None, None).await;
    assert_eq!(live["status"], "active", "a mute does not end the recording: {live}");
    let done = stop_recording(addr, &id).await;
    let status = browser.command("status").await;
    let file = &one_decodable_file(what, &done);

    let frames = video_frames(file);
    let counters = assert_counters(what, &frames, status["counter"].as_u64().expect("counter"));
    // frames drawn well inside the muted time (the mute and unmute take effect within ~0.3 s)
    let inside: Vec<u64> =
        counters.iter().copied().filter(|&c| c > c_mute + 10 && c + 10 < c_unmute).collect();
    let after = counters.iter().filter(|&&c| c >= c_unmute).count();
    let t_unmute = time_of_counter(&frames, c_unmute).expect("frames after the unmute");
    let gap = frames.windows(2).map(|w| w[1].t - w[0].t).fold(0.0, f64::max);
    let ((a_first, a_last), offsets) = audio_span_and_markers(what, file, &frames, &status, t_unmute, 2);
    eprintln!(
        "{what}: counters {}..{} ({} frames), muted at counter {c_mute}, unmuted at {c_unmute} (file {t_unmute:.2} s); \
         {} frames from the muted time, {after} after; largest video gap {gap:.2} s; sizes {:?}; audio \
         {a_first:.2}..{a_last:.2} s; frames_lost {}; A/V after the unmute {offsets:.1?} ms",
        counters[0],
        counters.last().expect("counter"),
        counters.len(),
        inside.len(),
        size_changes(&frames),
        done["frames_lost"]
    );
    assert!(inside.is_empty(), "{what}: frames drawn while muted are in the file: {inside:?}");
    assert!(after >= 60, "{what}: {after} frames after the unmute");
    assert!(gap >= 2.0, "{what}: the muted time is a gap in the video ({gap:.2} s)");
    assert_eq!(done["frames_lost"], 0, "{what}: the muted time is not loss: {done}");
    let v_last = frames.last().expect("frame").t;
    assert!(a_first <= frames[0].t + 0.5 && a_last >= v_last - 0.5, "{what}: audio covers the recording");
    drop(browser);
    daemon.shutdown().await;
}

/// The camera canvas resized mid-recording from 640x360 to 480x270 (the captured track's
/// resolution changes, the encoder restarts its layers): one part that ffmpeg decodes without
/// an error across the change; the counters strictly increase; the top layer's size before the
/// change and the new size from 2 s after it on; the markers in sync on both sides of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_resolution_change_mid_recording() {
    let _serial = one_browser_at_a_time().await;
    let what = "resize";
    const NEW: (u32, u32) = (480, 270);
    let server = browser_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "resize";
    let browser = Browser::spawn(&server, room, "alice", json!({}));
    browser.wait_started(0).await;
    let (id, _) = start_with_media(addr, room, "alice", WAIT).await;
    let started_at = unix_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let resized_at = unix_ms();
    let resized = browser.command(&format!("resize {}x{}", NEW.0, NEW.1)).await;
    assert_eq!(resized["ok"], true, "{resized}");
    let c_resize = resized["counter"].as_u64().expect("counter");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stopped_at = unix_ms();
    let done = stop_recording(addr, &id).await;
    let status = browser.command("status").await;
    let file = &one_decodable_file(what, &done);

    let frames = video_frames(file);
    let counters = assert_counters(what, &frames, status["counter"].as_u64().expect("counter"));
    let sizes = size_changes(&frames);
    // the top layer before and after the change, or else the low one (the page pauses its top
    // layer when short of CPU, and the server has kept the low one on the CPU-starved machine
    // while the page sent both; see the defaults test): said loudly below
    let (gap_before, _, _) = publisher_gap_ms(&status, started_at + 1_000, resized_at);
    let (gap_after, _, _) = publisher_gap_ms(&status, resized_at + 2_000, stopped_at);
    let layers = |top: (u32, u32)| vec![top, (top.0 / 2, top.1 / 2)];
    let (want_before, want_after) = (layers(TOP), layers(NEW));
    let t_first = frames[0].t;
    // the change: the first frame drawn after the command, or the first of the new size when
    // that one is earlier (the frames right after the change can be unreadable: the encoder
    // restarts its layers at the new size)
    let t_counter = time_of_counter(&frames, c_resize + 1).expect("frames after the resize");
    let t_new_size =
        frames.iter().find(|f| (f.width, f.height) == NEW || (f.width, f.height) == (NEW.0 / 2, NEW.1 / 2));
    let t_resize = t_new_size.map_or(t_counter, |f| f.t.min(t_counter));
    let gap = file_gap_ms(&frames, t_first + 1.0);
    // in sync before the change and after it (each side judged on its own)
    let ((a_first, _), later) = audio_span_and_markers(what, file, &frames, &status, t_resize, 1);
    let offsets = assert_browser_sync(what, file, &frames, &status, (a_first + 0.1, t_resize), 1);
    eprintln!(
        "{what}: counters {}..{} ({} frames), resized at counter {c_resize} (file {t_resize:.2} s); sizes {sizes:?}; \
         the page's top layer's largest gap {gap_before:.0} ms before the change, {gap_after:.0} ms after it; \
         largest gap from 1 s on {gap:.0} ms; page senders {}; A/V {offsets:.1?} ms, after the change {later:.1?} ms",
        counters[0],
        counters.last().expect("counter"),
        counters.len(),
        status["senders"]
    );
    let before: Vec<(u32, u32)> = frames
        .iter()
        .filter(|f| f.t >= t_first + 2.0 && f.t < t_resize)
        .map(|f| (f.width, f.height))
        .collect();
    let after: Vec<(u32, u32)> =
        frames.iter().filter(|f| f.t >= t_resize + 2.0).map(|f| (f.width, f.height)).collect();
    assert!(!before.is_empty() && !after.is_empty(), "{what}: frames before and after: {sizes:?}");
    if before.iter().any(|&s| s != TOP) || after.iter().any(|&s| s != NEW) {
        let events =
            server_layer_events(server.log_path(), &browser.track_sid("camera").expect("camera sid"));
        eprintln!(
            "{what}: NOT THE TOP LAYER throughout: sizes {sizes:?}; the server's stream tracker (ms, layer, status): {events:?}"
        );
        assert!(
            server_stopped_the_top_layer(&events),
            "{what}: a lower layer while livekit-server never judged the top layer stopped: {events:?}"
        );
    }
    assert!(
        before.iter().all(|s| want_before.contains(s)),
        "{what}: {want_before:?} before the change (the page's top layer's largest gap {gap_before:.0} ms): {sizes:?}"
    );
    assert!(
        after.iter().all(|s| want_after.contains(s)),
        "{what}: {want_after:?} from 2 s after the change (the page's top layer's largest gap {gap_after:.0} ms): {sizes:?}"
    );
    drop(browser);
    daemon.shutdown().await;
}

/// `videoCodec: 'av1'`: livekit-client publishes one SVC stream (L3T3_KEY: three spatial
/// layers, 160x90 to 640x360, in one RTP stream); the server forwards the layers up to the top
/// one, and the file holds the top layer's pictures, judged as the defaults test's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_av1_svc() {
    let _serial = one_browser_at_a_time().await;
    record_camera_and_microphone("av1", json!({ "videoCodec": "av1" }), "av1").await;
}

/// `videoCodec: 'vp9'`: livekit-client publishes one SVC stream (L3T3_KEY), judged as the AV1
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browser_vp9_svc() {
    let _serial = one_browser_at_a_time().await;
    record_camera_and_microphone("vp9", json!({ "videoCodec": "vp9" }), "vp9").await;
}

/// The counter's check bits turn away every picture with one block wrong (a flipped bit
/// anywhere in the 16), so such a picture is unreadable rather than another counter.
#[test]
fn a_counter_with_one_wrong_block_fails_its_check() {
    for c in 0..4096u32 {
        let word = (c << 4) | browser_support::counter_check(c);
        assert_eq!(browser_support::checked_counter(word), Some(c));
        for bit in 0..16 {
            assert_eq!(browser_support::checked_counter(word ^ (1 << bit)), None, "counter {c}, bit {bit}");
        }
    }
}
