//! The recorder against the real livekit-server v1.13.5 with a real publisher (server-sdk-go,
//! `tests/lkpub`, publishing the fixture files without transcoding). Each test has its own
//! server and its own daemon. What the files hold is judged without the recorder's help: every
//! packet ffmpeg reads back is compared byte for byte with the publisher's file (in the form
//! the container stores), ffmpeg decodes each file without an error, and the A/V offset is
//! measured at the sync markers (white flash + 1 kHz beep every 2 s).
//!
//! Needs the server binary and Go (`sh tests/support/real_support/install.sh`, which `.ci/test` runs)
//! and root (the test network is a veth pair).

mod support;
use support::{common, real_judge, real_support, recorder_support};

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use real_judge::*;
use real_support::*;
use recorder_support::{api, files_of, metric, start_recording, stop_complete, wait_for};
use reqwest::Method;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
/// The A/V offset allowed at each sync marker.
const SYNC_MS: f64 = 20.0;

async fn daemon_for(server: &RealServer, dir: &Path, auto_record: bool) -> Daemon {
    let mut cfg = DaemonConfig::new(&server.ws_url(), server.api_key(), server.api_secret(), dir);
    cfg.recording.start_timeout = Duration::from_secs(20);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.recording.auto_record_on_join = auto_record;
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

/// A/V offsets (ms) at every flash from `from_s` on; each within [`SYNC_MS`].
fn assert_markers_in_sync(what: &str, path: &Path, from_s: f64, want: usize) -> Vec<f64> {
    common::assert_markers_within(what, path, from_s, f64::INFINITY, want, SYNC_MS)
}

fn stream_index(path: &Path, kind: &str) -> usize {
    common::ffprobe(path)
        .streams
        .iter()
        .position(|s| s.codec_type == kind)
        .unwrap_or_else(|| panic!("{} has no {kind} stream", path.display()))
}

/// Publisher `video` + Opus (with RED when `red`), recorded for ~6 s by REST start and stop:
/// complete, byte-exact, decodable, in sync, and no frame the publisher did not send.
async fn record_codec(video: &str, red: bool, h264_container: &str) {
    let what = format!(
        "{video}{}{}",
        if red { "+red" } else { "" },
        if h264_container == "mp4" { " in mp4" } else { "" }
    );
    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path(), false).await;
    let addr = daemon.addr();
    let room = "codecs";
    let publisher = Publisher::spawn(
        &server,
        room,
        "alice",
        PublisherOpts::assets(Some(video), Some("opus.ogg")).red(red),
    );
    publisher.wait_started_async(Duration::from_secs(20)).await;

    let t0 = Instant::now();
    let body = json!({ "room": room, "participant": "alice", "h264_container": h264_container }).to_string();
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), None).await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, None, WAIT, |r| r["status"] == "active").await;
    let active = t0.elapsed();
    wait_for(addr, &id, None, WAIT, |r| r["bytes"].as_u64().unwrap_or(0) > 0).await;
    let bytes = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let done = stop_complete(addr, &id).await;
    assert_eq!(done["skipped_tracks"], json!([]), "{done}");
    let codecs: Vec<&str> =
        done["tracks"].as_array().expect("tracks").iter().filter_map(|t| t["codec"].as_str()).collect();
    assert!(codecs.contains(&"opus"), "{what}: audio recorded as Opus: {done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "{done}");
    let file = &files[0];
    if h264_container == "mp4" {
        assert_eq!(file.extension().and_then(|e| e.to_str()), Some("mp4"), "{done}");
    }
    if let Some(keep) = std::env::var_os("REAL_RECORDER_KEEP") {
        // a copy for a look after the test
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(file, Path::new(&keep).join(file.file_name().expect("name")));
    }
    let errors = common::ffmpeg_errors(file);
    assert!(errors.is_empty(), "{what}: {}: {errors}", file.display());

    let (_, vsrc) = stored_frames(video);
    let asrc = audio_loop();
    let vp = common::packets(file, stream_index(file, "video"));
    let ap = common::packets(file, stream_index(file, "audio"));
    match_source(&format!("{what} video"), &vp, &vsrc, true);
    match_source(&format!("{what} audio"), &ap, &asrc, true);
    let probe = common::ffprobe(file);
    let v = probe.streams.iter().find(|s| s.codec_type == "video").expect("video");
    assert_eq!((v.width, v.height), (Some(320), Some(240)), "{what}: size");
    let offsets = assert_markers_in_sync(&what, file, 0.0, 2);
    eprintln!(
        "{what}: start -> active {:.0} ms, -> first bytes {:.0} ms; {} video + {} audio packets, all the \
         publisher's, contiguous; A/V {offsets:.1?} ms",
        active.as_secs_f64() * 1e3,
        bytes.as_secs_f64() * 1e3,
        vp.len(),
        ap.len()
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vp8_with_red_audio_is_recorded_byte_exact_and_in_sync() {
    record_codec("vp8.ivf", true, "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vp9_opus_is_recorded_byte_exact_and_in_sync() {
    record_codec("vp9.ivf", false, "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn av1_opus_is_recorded_byte_exact_and_in_sync() {
    record_codec("av1.ivf", false, "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h264_opus_is_recorded_byte_exact_and_in_sync() {
    record_codec("h264.h264", false, "mkv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h264_opus_in_mp4_is_recorded_byte_exact_and_in_sync() {
    record_codec("h264.h264", false, "mp4").await;
}

/// Webhooks signed by the real server: `participant_joined` starts a recording,
/// `participant_left` stops it (the server's 8x8 keyframes and silence at the leave are not in
/// the file), `room_finished` (the room deleted) stops the other participant's recording. A
/// mute and unmute of audio, and a rejoin with the same identity (a new session replacing the
/// old one) leave gaps but no foreign frame, and do not end the recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_mute_and_rejoin_against_the_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    // the daemon's port must be known before the server's config is written
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let server = RealServer::start(ServerOpts {
        webhook_url: Some(format!("http://127.0.0.1:{port}/recordings/webhooks")),
        departure_timeout: Some(1),
        ..ServerOpts::default()
    });
    let mut cfg = DaemonConfig::new(&server.ws_url(), server.api_key(), server.api_secret(), dir.path());
    cfg.recording.start_timeout = Duration::from_secs(20);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.recording.auto_record_on_join = true;
    let daemon = Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], port))).await.expect("daemon starts");
    let addr = daemon.addr();
    let room = "hooks";
    let alice = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    let bob = Publisher::spawn(&server, room, "bob", PublisherOpts::vp8_opus().red(true));
    alice.wait_started_async(Duration::from_secs(20)).await;
    bob.wait_started_async(Duration::from_secs(20)).await;

    let find = |who: &'static str| async move {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, list) = api(addr, Method::GET, "/recordings", None, None).await;
            let items = list
                .as_array()
                .cloned()
                .or_else(|| list["recordings"].as_array().cloned())
                .unwrap_or_default();
            if let Some(r) = items.iter().find(|r| r["participant"] == who && r["status"] == "active") {
                return r["id"].as_str().expect("id").to_owned();
            }
            assert!(Instant::now() < deadline, "no active recording of {who} started by the webhook: {list}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (a_id, b_id) = (find("alice").await, find("bob").await);

    // alice: audio muted for 2 s (the server sends 1 s of silence), then a rejoin
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(alice.command_async("mute audio").await["ok"], true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(alice.command_async("unmute audio").await["ok"], true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let old_sid = alice.participant_sid();
    let rejoin = alice.command_async("rejoin").await;
    assert_eq!(rejoin["ok"], true, "{rejoin}");
    assert_ne!(rejoin["participant_sid"].as_str().map(str::to_owned), old_sid, "a new session");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, rec) = api(addr, Method::GET, &format!("/recordings/{a_id}"), None, None).await;
    assert_eq!(rec["status"], "active", "the old session's participant_left does not stop it: {rec}");
    // alice leaves: participant_left stops her recording
    assert_eq!(alice.command_async("leave").await["ok"], true);
    let a_done =
        wait_for(addr, &a_id, None, WAIT, |r| r["status"] == "complete" || r["status"] == "failed").await;
    assert_eq!(a_done["status"], "complete", "{a_done}");
    // the room is deleted: room_finished stops bob's
    let rc = server.room_client();
    rc.delete_room(room).await.expect("delete room");
    let b_done =
        wait_for(addr, &b_id, None, WAIT, |r| r["status"] == "complete" || r["status"] == "failed").await;
    assert_eq!(b_done["status"], "complete", "{b_done}");

    let (_, vsrc) = stored_frames("vp8.ivf");
    let asrc = audio_loop();
    for (who, done, contiguous) in [("alice", &a_done, false), ("bob", &b_done, true)] {
        let files = files_of(done);
        assert!(!files.is_empty(), "{done}");
        let (mut v_skipped, mut a_skipped, mut packets) = (0, 0, 0);
        for file in &files {
            let errors = common::ffmpeg_errors(file);
            assert!(errors.is_empty(), "{who}: {}: {errors}\n{done}", file.display());
            let vp = common::packets(file, stream_index(file, "video"));
            let ap = common::packets(file, stream_index(file, "audio"));
            v_skipped += match_source(&format!("{who} video"), &vp, &vsrc, contiguous);
            a_skipped += match_source(&format!("{who} audio"), &ap, &asrc, contiguous);
            packets += vp.len() + ap.len();
            let v =
                common::ffprobe(file).streams.into_iter().find(|s| s.codec_type == "video").expect("video");
            assert_eq!((v.width, v.height), (Some(320), Some(240)), "{who}: no 8x8 keyframe");
        }
        eprintln!(
            "{who}: {} part(s), {packets} packets, every one the publisher's; frames skipped (mute, rejoin): \
             video {v_skipped}, audio {a_skipped}",
            files.len()
        );
    }
    let (_, metrics) = api(addr, Method::GET, "/metrics", None, None).await;
    let text = metrics.as_str().unwrap_or_default().to_owned();
    let fillers = text
        .lines()
        .find_map(|l| l.strip_prefix("recorder_sfu_filler_frames_total "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("filler metric");
    eprintln!("server filler frames left out: {fillers}");
    assert!(fillers > 0, "the server's filler frames reached the recorder and were left out");
    daemon.shutdown().await;
    drop(server);
}

/// Unpublish and publish again, four times for video and twice for audio: the server reuses
/// the freed m-line for the new track with a new SSRC whose sequence numbers are as likely
/// below the old stream's as above. Every republished track is recorded (each video run in a
/// part of its own, at least 1 s of the 2.5 s published), byte-exact and decodable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn republished_tracks_are_recorded_every_time() {
    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path(), false).await;
    let addr = daemon.addr();
    let room = "republish";
    let alice = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    alice.wait_started_async(Duration::from_secs(20)).await;
    let id = start_recording(addr, room, "alice").await;
    wait_for(addr, &id, None, WAIT, |r| r["bytes"].as_u64().unwrap_or(0) > 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    const CYCLES: usize = 4;
    for cycle in 0..CYCLES {
        let kinds: &[&str] = if cycle % 2 == 0 { &["video", "audio"] } else { &["video"] };
        for kind in kinds {
            let r = alice.command_async(&format!("unpublish {kind}")).await;
            assert_eq!(r["ok"], true, "{r}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for kind in kinds {
            let r = alice.command_async(&format!("publish {kind}")).await;
            assert_eq!(r["ok"], true, "{r}");
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let done = stop_complete(addr, &id).await;
    let videos = done["tracks"].as_array().expect("tracks").iter().filter(|t| t["kind"] == "video").count();
    assert_eq!(videos, CYCLES + 1, "every published video track is in the recording: {done}");

    let (_, vsrc) = stored_frames("vp8.ivf");
    let asrc = audio_loop();
    let files = files_of(&done);
    let mut spans = Vec::new();
    for file in &files {
        let errors = common::ffmpeg_errors(file);
        assert!(errors.is_empty(), "{}: {errors}\n{done}", file.display());
        let probe = common::ffprobe(file);
        if let Some(v) = probe.streams.iter().position(|s| s.codec_type == "video") {
            let vp = common::packets(file, v);
            match_source("republished video", &vp, &vsrc, false);
            let span = (vp.last().expect("packet").pts_ns() - vp[0].pts_ns()) as f64 / 1e9;
            spans.push(span);
        }
        if let Some(a) = probe.streams.iter().position(|s| s.codec_type == "audio") {
            match_source("republished audio", &common::packets(file, a), &asrc, false);
        }
    }
    eprintln!("republish: {} part(s), video seconds per part {spans:.2?}", files.len());
    assert!(spans.len() > CYCLES, "a part with video for every publication: {spans:?}\n{done}");
    for span in &spans[1..] {
        assert!(*span >= 1.0, "each republished video recorded (>= 1 s of 2.5 s): {spans:?}");
    }
    daemon.shutdown().await;
}

/// A screen share at 2 fps (a VP8 file ffmpeg makes here, a keyframe every 3 s, published
/// without audio): recorded whole, byte-exact and contiguous, no frame counted as lost, no
/// keyframe-request storm while frames are 500 ms apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn screen_share_at_2_fps_is_not_loss() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let screen = tmp.path().join("screen.ivf");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=2", "-frames:v", "40"])
        .args(["-c:v", "libvpx", "-g", "6", "-b:v", "300k", "-y"])
        .arg(&screen)
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path(), false).await;
    let addr = daemon.addr();
    let room = "screen";
    let opts = PublisherOpts { video: Some(screen.clone()), ..Default::default() };
    let alice = Publisher::spawn(&server, room, "alice", opts);
    alice.wait_started_async(Duration::from_secs(20)).await;
    let t0 = Instant::now();
    let id = start_recording(addr, room, "alice").await;
    wait_for(addr, &id, None, WAIT, |r| r["bytes"].as_u64().unwrap_or(0) > 0).await;
    let first = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (_, live) = api(addr, Method::GET, &format!("/recordings/{id}"), None, None).await;
    assert_eq!(live["status"], "active", "500 ms between frames is not a stall: {live}");
    assert_eq!(live["error"], serde_json::Value::Null, "{live}");
    let done = stop_complete(addr, &id).await;
    assert_eq!(done["frames_lost"], 0, "{done}");
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "{done}");
    let errors = common::ffmpeg_errors(&files[0]);
    assert!(errors.is_empty(), "{errors}");
    let vp = common::packets(&files[0], stream_index(&files[0], "video"));
    let src = stored_file_frames(livekit_recorder::media::Codec::Vp8, &screen);
    match_source("2 fps screen share", &vp, &src, true);
    let span = (vp.last().expect("packet").pts_ns() - vp[0].pts_ns()) as f64 / 1e9;
    let plis = metric(addr, "recorder_plis_requested_total").await;
    eprintln!(
        "2 fps screen share: first bytes after {:.0} ms, {} frames over {span:.1} s, all contiguous; \
         PLIs sent {plis}",
        first.as_secs_f64() * 1e3,
        vp.len()
    );
    assert!(vp.len() >= 18, "10 s at 2 fps: {} frames", vp.len());
    // the start asks for a keyframe (and again while none came); frames 500 ms apart must not
    // keep asking
    assert!(plis <= 4, "{plis} keyframe requests for a 2 fps track");
    daemon.shutdown().await;
}

/// A TCP proxy in front of the server's signalling port whose connections the test can cut.
struct CutProxy {
    port: u16,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CutProxy {
    async fn start(upstream: u16) -> CutProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let list = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                list.lock().expect("conns").push(task);
            }
        });
        CutProxy { port, conns, accept }
    }

    /// Drops every connection open now (both ends see the socket close).
    fn cut(&self) -> usize {
        let open: Vec<_> = self.conns.lock().expect("conns").drain(..).collect();
        let n = open.iter().filter(|t| !t.is_finished()).count();
        open.into_iter().for_each(|t| t.abort());
        n
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// The recorder's signalling connection drops after its join token expired (a 5 s token):
/// it resumes with the server's `refresh_token`, the same session and the same part go on,
/// every packet is the publisher's, and the gap of the resume is short (measured: 2 s of video
/// until the next keyframe, 40 ms of audio).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signal_resume_after_the_token_expired_keeps_the_recording() {
    let server = RealServer::start(ServerOpts::default());
    let proxy = CutProxy::start(server.port()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = DaemonConfig::new(
        &format!("ws://127.0.0.1:{}", proxy.port),
        server.api_key(),
        server.api_secret(),
        dir.path(),
    );
    cfg.recording.start_timeout = Duration::from_secs(20);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.recording.auto_record_on_join = false;
    cfg.recording.token_ttl = Duration::from_secs(5);
    let daemon = Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts");
    let addr = daemon.addr();
    let room = "resume";
    let publisher = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    publisher.wait_started_async(Duration::from_secs(20)).await;
    let id = start_recording(addr, room, "alice").await;
    wait_for(addr, &id, None, WAIT, |r| r["status"] == "active").await;
    // the join token expires 5 s after the join; the connection drops after that
    tokio::time::sleep(Duration::from_secs(7)).await;
    let cut = proxy.cut();
    assert!(cut >= 1, "the recorder's signalling connection went through the proxy");
    let metric = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse::<u64>().ok())
    };
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, m) = api(addr, Method::GET, "/metrics", None, None).await;
        if metric(m.as_str().unwrap_or_default(), "recorder_signal_reconnects_total").unwrap_or(0) >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no signal resume: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = stop_complete(addr, &id).await;
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "the resumed session continues the same part: {done}");
    let file = &files[0];
    let errors = common::ffmpeg_errors(file);
    assert!(errors.is_empty(), "{}: {errors}", file.display());
    let (_, vsrc) = stored_frames("vp8.ivf");
    let vp = common::packets(file, stream_index(file, "video"));
    let ap = common::packets(file, stream_index(file, "audio"));
    let v_skipped = match_source("resume video", &vp, &vsrc, false);
    let a_skipped = match_source("resume audio", &ap, &audio_loop(), false);
    eprintln!(
        "signal resume after token expiry: {} video + {} audio packets in one part, all the publisher's; \
         skipped: video {v_skipped}, audio {a_skipped}; frames_lost {}",
        vp.len(),
        ap.len(),
        done["frames_lost"]
    );
    // the resume (an ICE restart) costs a short gap: video up to the next keyframe after it
    assert!(v_skipped <= 90 && a_skipped <= 25, "gap too long: video {v_skipped}, audio {a_skipped} frames");
    daemon.shutdown().await;
}

/// The three simulcast layers of [`simulcast_publisher_layers_are_recorded_from_the_top_layer`]:
/// the fixtures' 4 s picture with its sync marker at 160x90 (`q`, a keyframe every 0.5 s),
/// 320x180 (`h`, every 1 s) and 640x360 (`f`, every 2 s), VP8, made here by ffmpeg. The low
/// layers' keyframes come more often, as a browser's do after a keyframe request, so the server
/// often starts the subscription on a low layer and steps up: the switches are in the file.
const SIMULCAST_LAYERS: [(&str, u32, u32, u32, &str); 3] =
    [("q", 160, 90, 15, "60k"), ("h", 320, 180, 30, "150k"), ("f", 640, 360, 60, "400k")];

fn make_simulcast_layers(dir: &Path) -> Vec<std::path::PathBuf> {
    SIMULCAST_LAYERS
        .iter()
        .map(|&(rid, w, h, gop, rate)| {
            let path = dir.join(format!("{rid}.ivf"));
            let video = format!(
                "testsrc2=size={w}x{h}:rate=30:duration=4,format=yuv420p,\
                 drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\\,2)\\,0.02)'"
            );
            let gop = gop.to_string();
            let out = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-f", "lavfi", "-i", &video])
                .args(["-c:v", "libvpx", "-b:v", rate, "-g", &gop, "-keyint_min", &gop, "-auto-alt-ref", "0"])
                .args(["-deadline", "realtime", "-cpu-used", "8", "-f", "ivf", "-y"])
                .arg(&path)
                .output()
                .expect("run ffmpeg");
            assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
            path
        })
        .collect()
}

/// The Go publisher sends VP8 as three simulcast layers (one track, rid q/h/f, one file per
/// layer) and Opus. The recorder asks for the top layer. Judged byte for byte against what
/// each layer sent: every video packet in the file is one layer's frame; the frames follow
/// the loop without a gap or a repeat across the layer switches (one picture per instant);
/// every run of one layer starts at that layer's keyframe (a decoder can start there: ffmpeg
/// decodes the file without an error); from 2.1 s on (the top layer's keyframe interval) every
/// frame is the top layer's; the audio is complete and the markers in sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulcast_publisher_layers_are_recorded_from_the_top_layer() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let layer_files = make_simulcast_layers(tmp.path());
    let layers: Vec<Vec<Vec<u8>>> =
        layer_files.iter().map(|f| stored_file_frames(livekit_recorder::media::Codec::Vp8, f)).collect();
    let n = layers[2].len();
    assert!(layers.iter().all(|l| l.len() == n && n == 120), "three 4 s loops at 30 fps");
    let mut which = std::collections::HashMap::new();
    for (li, frames) in layers.iter().enumerate() {
        for (i, f) in frames.iter().enumerate() {
            assert!(which.insert(f.as_slice(), (li, i)).is_none(), "frame {i} of layer {li} repeats");
        }
    }
    let keys: Vec<Vec<bool>> =
        layers.iter().map(|l| l.iter().map(|f| f.first().is_some_and(|b| b & 1 == 0)).collect()).collect();

    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path(), false).await;
    let addr = daemon.addr();
    let room = "simulcast";
    let joined: Vec<String> = layer_files.iter().map(|p| p.display().to_string()).collect();
    let opts = PublisherOpts {
        audio: Some(asset("opus.ogg")),
        extra_args: vec!["--simulcast".into(), joined.join(",")],
        ..Default::default()
    };
    let alice = Publisher::spawn(&server, room, "alice", opts);
    alice.wait_started_async(Duration::from_secs(20)).await;
    let t0 = Instant::now();
    let id = start_recording(addr, room, "alice").await;
    wait_for(addr, &id, None, WAIT, |r| r["bytes"].as_u64().unwrap_or(0) > 0).await;
    let first_bytes = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let done = stop_complete(addr, &id).await;
    assert_eq!(done["skipped_tracks"], json!([]), "{done}");
    let sent: Vec<(String, u64)> = alice
        .events()
        .iter()
        .rev()
        .filter(|e| e["event"] == "sent" && e["rid"].is_string())
        .take(3)
        .map(|e| (e["rid"].as_str().unwrap_or_default().to_owned(), e["frames"].as_u64().unwrap_or(0)))
        .collect();
    assert!(sent.len() == 3 && sent.iter().all(|(_, n)| *n > 100), "every layer sent: {sent:?}");
    let files = files_of(&done);
    assert_eq!(files.len(), 1, "{done}");
    let file = &files[0];
    if let Some(keep) = std::env::var_os("REAL_RECORDER_KEEP") {
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::copy(file, Path::new(&keep).join(file.file_name().expect("name")));
    }
    let errors = common::ffmpeg_errors(file);
    assert!(errors.is_empty(), "{}: {errors}", file.display());

    let vp = common::packets(file, stream_index(file, "video"));
    let ids: Vec<(usize, usize)> = vp
        .iter()
        .enumerate()
        .map(|(k, p)| {
            *which
                .get(p.data.as_slice())
                .unwrap_or_else(|| panic!("video packet {k} ({} bytes) is no layer's frame", p.data.len()))
        })
        .collect();
    // runs of one layer: (layer, first packet, packets)
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for (k, &(layer, _)) in ids.iter().enumerate() {
        match runs.last_mut() {
            Some(r) if r.0 == layer => r.2 += 1,
            _ => runs.push((layer, k, 1)),
        }
    }
    let t = |k: usize| (vp[k].pts_ns() - vp[0].pts_ns()) as f64 / 1e9;
    let described: Vec<String> = runs
        .iter()
        .map(|&(l, k, len)| {
            format!("{} from {:.2} s ({len} frames, from frame {})", SIMULCAST_LAYERS[l].0, t(k), ids[k].1)
        })
        .collect();
    for &(layer, k, _) in &runs {
        let (_, i) = ids[k];
        assert!(
            keys[layer][i],
            "the run of layer {} at {:.2} s starts on a delta frame: {described:?}",
            SIMULCAST_LAYERS[layer].0,
            t(k)
        );
    }
    for (k, w) in ids.windows(2).enumerate() {
        assert_eq!(
            w[1].1,
            (w[0].1 + 1) % n,
            "packet {} at {:.2} s: frame {} of {} after frame {} of {}: a picture missing or twice; runs {described:?}",
            k + 1,
            t(k + 1),
            w[1].1,
            SIMULCAST_LAYERS[w[1].0].0,
            w[0].1,
            SIMULCAST_LAYERS[w[0].0].0
        );
    }
    let &(top_layer, top_from, _) = runs.last().expect("a run");
    let probe = common::ffprobe(file);
    let v = probe.streams.iter().find(|s| s.codec_type == "video").expect("video");
    eprintln!(
        "simulcast: first bytes after {:.0} ms; {} video packets, every one a layer's frame, contiguous; runs \
         {described:?}; ffprobe reports {:?}x{:?}; frames_lost {}",
        first_bytes.as_secs_f64() * 1e3,
        vp.len(),
        v.width,
        v.height,
        done["frames_lost"]
    );
    assert_eq!(top_layer, 2, "the recording ends on the top layer: {described:?}");
    // the closed file's header declares the top layer's size, though it starts on another
    let declared = common::matroska_declared_size(file);
    assert_eq!(declared, Some((640, 360)), "the header's PixelWidth/PixelHeight: runs {described:?}");
    assert!(t(top_from) <= 2.1, "the top layer from 2.1 s at the latest: {described:?}");

    let ap = common::packets(file, stream_index(file, "audio"));
    match_source("simulcast audio", &ap, &audio_loop(), true);
    let offsets = assert_markers_in_sync("simulcast", file, 0.0, 2);
    eprintln!("simulcast: {} audio packets, contiguous; A/V {offsets:.1?} ms", ap.len());
    daemon.shutdown().await;
}
