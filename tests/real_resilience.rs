//! The recorder against the real livekit-server v1.13.5 when things break, judged by what the
//! files hold: every packet ffmpeg reads back is one of the publisher's frames (byte for byte,
//! in the form the container stores), every part decodes without an ffmpeg error, the video
//! keeps the publisher's size (no 8x8 keyframe of the server's), and the recording ends
//! `complete`.
//!
//! - kill -9 of the recorder process mid-recording, restarted on the same `RECORDINGS_DIR`:
//!   the recording resumes from the journal in a new part.
//! - livekit-server killed and restarted on the same ports mid-recording: the publisher and the
//!   recorder reconnect by themselves, the recording continues in a new part.
//! - Two recorder daemons in one room, each recording another participant (VP8 and VP9, so a
//!   mix-up shows): each file holds only its own participant's media, and neither daemon's bot
//!   subscribes to the other's participant (the server's own debug log of subscriptions).
//! - A track announced as end-to-end encrypted (`TrackInfo.encryption = GCM`): named in
//!   `skipped_tracks` with the reason; the other track is recorded.
//!
//! Each test has its own server and its own daemon. Needs the server binary and Go
//! (`sh tests/support/real_support/install.sh`, which `.ci/test` runs) and root (veth test network).

mod support;
use support::{common, real_judge, real_support, recorder_support};

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use livekit_recorder::daemon::{Daemon, DaemonConfig};
use livekit_recorder::media::Codec;
use real_judge::*;
use real_support::*;
use recorder_support::{
    api_or_down as api, files_of, start_with_media, stop_complete as stop_recording, wait_rec,
};
use reqwest::Method;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);

/// The number of parts of a recording and the bytes of its last one.
fn last_part(rec: &Value) -> (usize, u64) {
    let parts = rec["parts"].as_array().cloned().unwrap_or_default();
    (parts.len(), parts.last().and_then(|p| p["bytes"].as_u64()).unwrap_or(0))
}

async fn daemon_for(server: &RealServer, dir: &Path) -> Daemon {
    let mut cfg = DaemonConfig::new(&server.ws_url(), server.api_key(), server.api_secret(), dir);
    cfg.recording.start_timeout = Duration::from_secs(20);
    cfg.recording.filename_template = "{room_name}/{publisher_identity}-{time}".into();
    cfg.recording.auto_record_on_join = false;
    Daemon::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("daemon starts")
}

/// What one part of a recording must hold.
struct Expect<'a> {
    who: &'a str,
    /// The publisher's video fixture (`vp8.ivf`...).
    video: &'a str,
    /// Whether the file has the publisher's Opus audio (else: no audio stream at all).
    audio: bool,
}

/// Checks every part of a finished recording: decodes without an ffmpeg error, the video is
/// the fixture's codec at 320x240, and every packet is the publisher's next frame (each part a
/// contiguous run of the looped files). Returns (parts, video packets, audio packets).
fn assert_parts_hold_the_publishers_frames(rec: &Value, want: &Expect) -> (usize, usize, usize) {
    let who = want.who;
    let files = files_of(rec);
    assert!(!files.is_empty(), "{who}: no files: {rec}");
    let (vcodec, vsrc) = stored_frames(want.video);
    let asrc = audio_loop();
    let (mut nv, mut na) = (0, 0);
    for (n, file) in files.iter().enumerate() {
        let what = format!("{who} part {} ({})", n + 1, file.display());
        let errors = common::ffmpeg_errors(file);
        assert!(errors.is_empty(), "{what}: ffmpeg: {errors}\n{rec}");
        let probe = common::ffprobe(file);
        let vi = probe.streams.iter().position(|s| s.codec_type == "video");
        let ai = probe.streams.iter().position(|s| s.codec_type == "audio");
        let vi = vi.unwrap_or_else(|| panic!("{what}: no video stream: {probe:?}"));
        let v = &probe.streams[vi];
        let want_codec = match vcodec {
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            _ => "h264",
        };
        assert_eq!(v.codec_name, want_codec, "{what}: video codec");
        assert_eq!((v.width, v.height), (Some(320), Some(240)), "{what}: video size");
        let vp = common::packets(file, vi);
        match_source(&format!("{what} video"), &vp, &vsrc, true);
        nv += vp.len();
        match (want.audio, ai) {
            (true, Some(ai)) => {
                assert_eq!(probe.streams[ai].codec_name, "opus", "{what}: audio codec");
                let ap = common::packets(file, ai);
                match_source(&format!("{what} audio"), &ap, &asrc, true);
                na += ap.len();
            }
            (true, None) => panic!("{what}: no audio stream: {probe:?}"),
            (false, Some(_)) => panic!("{what}: an audio stream that should not be there: {probe:?}"),
            (false, None) => {}
        }
    }
    (files.len(), nv, na)
}

/// Nothing recorded twice: the packets of all parts together are no more than the publisher
/// sent since it started (its `status` after the stop).
async fn assert_not_doubled(publisher: &Publisher, nv: usize, na: usize, rec: &Value) {
    let status = publisher.command_async("status").await;
    let sent = |kind: &str| status["tracks"][kind]["sent"].as_u64().expect("sent") as usize;
    let (sv, sa) = (sent("video"), sent("audio"));
    eprintln!("recorded {nv} of {sv} video and {na} of {sa} audio frames the publisher sent in all");
    assert!(nv <= sv && na <= sa, "more packets recorded than sent: {nv}/{sv}, {na}/{sa}\n{rec}");
}

/// `livekit-recorder serve` as a child process; killed on drop.
struct Serve {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `serve` against `server` on `dir` (appending to `log`) and waits for
    /// `/health-check`.
    async fn start(server: &RealServer, dir: &Path, log: &Path) -> Serve {
        let port = free_tcp_port();
        let out = std::fs::File::options().create(true).append(true).open(log).expect("recorder log");
        let child = Command::new(env!("CARGO_BIN_EXE_livekit-recorder"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LIVEKIT_URL", server.ws_url())
            .env("LIVEKIT_API_KEY", server.api_key())
            .env("LIVEKIT_API_SECRET", server.api_secret())
            .env("APP_PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("NO_COLOR", "1")
            .env("RECORDINGS_DIR", dir)
            .env("AUTO_RECORD_ON_JOIN", "false")
            .env("START_TIMEOUT", "20s")
            .env("FILENAME_TEMPLATE", "{room_name}/{publisher_identity}-{time}")
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone log"))
            .stderr(out)
            .spawn()
            .expect("spawn livekit-recorder serve");
        let s = Serve { child, addr: SocketAddr::from(([127, 0, 0, 1], port)), log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(20);
        while api(s.addr, Method::GET, "/health-check", None).await.0 != 200 {
            assert!(
                Instant::now() < deadline,
                "serve did not answer /health-check; log:\n{}",
                file_tail(&s.log, 3000)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    /// SIGKILL, waiting until the process is gone.
    fn kill_9(&mut self) {
        let ok = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -KILL failed");
        let _ = self.child.wait();
    }
}

/// kill -9 of the recorder process 4 s into a recording, and a restart on the same
/// `RECORDINGS_DIR`: the recording resumes from the journal in a new part, is stopped by REST
/// and ends `complete`; both parts decode and each is a contiguous run of the publisher's
/// frames (the first part as the restart repaired it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recorder_killed_9_resumes_in_a_new_part_against_the_real_server() {
    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let log = logs_dir().join(format!("recorder_killed_9-{}-recorder.log", server.port()));
    let _ = std::fs::remove_file(&log);
    let room = "crash";
    let alice = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    alice.wait_started_async(Duration::from_secs(20)).await;

    let mut daemon = Serve::start(&server, dir.path(), &log).await;
    let id = start_with_media(daemon.addr, room, "alice", WAIT).await.0;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, before) = api(daemon.addr, Method::GET, &format!("/recordings/{id}"), None).await;
    tokio::task::block_in_place(|| daemon.kill_9());
    let killed = Instant::now();
    eprintln!("killed -9 with {} bytes written in part 1", before["bytes"]);

    let daemon = Serve::start(&server, dir.path(), &log).await;
    let resumed = wait_rec(daemon.addr, &id, WAIT, |r| {
        let (parts, bytes) = last_part(r);
        r["status"] == "active" && parts == 2 && bytes > 0
    })
    .await;
    eprintln!(
        "resumed in part 2 with bytes {:.1} s after the kill: {}",
        killed.elapsed().as_secs_f64(),
        resumed["parts"]
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = stop_recording(daemon.addr, &id).await;
    assert_eq!(done["skipped_tracks"], json!([]), "{done}");
    assert_eq!(files_of(&done).len(), 2, "two parts: {done}");
    let (parts, nv, na) = assert_parts_hold_the_publishers_frames(
        &done,
        &Expect { who: "alice", video: "vp8.ivf", audio: true },
    );
    assert_not_doubled(&alice, nv, na, &done).await;
    // the killed part keeps what was written up to the last flush before the kill: at least
    // 2.5 s of the 4 s recorded after the first bytes
    let first = common::packets(&files_of(&done)[0], 0).len();
    assert!(first >= 75, "part 1 holds {first} video packets of ~120 before the kill\n{done}");
    eprintln!(
        "{parts} parts, {nv} video + {na} audio packets, every one the publisher's, each part contiguous"
    );
    drop(daemon);
}

/// livekit-server killed 4 s into a recording and restarted 1 s later on the same ports: the
/// Go SDK publisher reconnects by itself (to a server that has forgotten the room), the
/// recorder's bot joins again and the recording continues in a new part; stopped by REST it
/// ends `complete`, every part decodes and holds only the publisher's frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn livekit_server_killed_and_restarted_the_recording_continues() {
    let mut server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "outage";
    let alice = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    alice.wait_started_async(Duration::from_secs(20)).await;
    let id = start_with_media(addr, room, "alice", WAIT).await.0;
    tokio::time::sleep(Duration::from_secs(4)).await;

    let since = alice.event_count();
    let old_sid = alice.participant_sid();
    server.kill();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| server.restart());
    eprintln!("server back after {:.1} s", killed.elapsed().as_secs_f64());
    let back = alice
        .wait_event_async(since, |e| e["event"] == "reconnected" || e["event"] == "disconnected", WAIT)
        .await;
    assert_eq!(back["event"], "reconnected", "the publisher reconnects by itself: {back}");
    eprintln!("publisher reconnected {:.1} s after the kill", killed.elapsed().as_secs_f64());
    let resumed = wait_rec(addr, &id, WAIT, |r| {
        let (parts, bytes) = last_part(r);
        r["status"] == "active" && parts >= 2 && bytes > 0
    })
    .await;
    let status = alice.command_async("status").await;
    eprintln!(
        "recording continued in part {} {:.1} s after the kill (publisher sid {old_sid:?} -> {})",
        last_part(&resumed).0,
        killed.elapsed().as_secs_f64(),
        status["participant_sid"]
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = stop_recording(addr, &id).await;
    assert_eq!(done["skipped_tracks"], json!([]), "{done}");
    let (parts, nv, na) = assert_parts_hold_the_publishers_frames(
        &done,
        &Expect { who: "alice", video: "vp8.ivf", audio: true },
    );
    assert_not_doubled(&alice, nv, na, &done).await;
    assert!(parts >= 2, "a new part after the outage: {done}");
    let first = common::packets(&files_of(&done)[0], 0).len();
    assert!(first >= 105, "part 1 holds the 4 s before the outage: {first} video packets\n{done}");
    let last = files_of(&done).pop().expect("a file");
    let after = common::packets(&last, 0).len();
    assert!(after >= 60, "the last part holds the 4 s after the outage: {after} packets\n{done}");
    eprintln!(
        "{parts} parts, {nv} video + {na} audio packets, every one the publisher's, each part contiguous"
    );
    daemon.shutdown().await;
    drop(server);
}

/// `participant` -> trackIDs from the server's debug log lines "subscribing to track" (logged
/// by the subscriber's SubscriptionManager, with the subscriber's identity and the trackID).
fn subscriptions_in_log(log: &str) -> BTreeMap<String, BTreeSet<String>> {
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("\"{key}\": \""))? + key.len() + 5;
        let rest = &line[at..];
        Some(rest[..rest.find('"')?].to_owned())
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in log.lines().filter(|l| l.contains("subscribing to track")) {
        if let (Some(p), Some(t)) = (field(line, "participant"), field(line, "trackID")) {
            out.entry(p).or_default().insert(t);
        }
    }
    out
}

/// Two daemons (each its own bot in the room) record alice (VP8 + Opus) and bob (VP9 + Opus)
/// respectively: each file holds only its participant's frames, each recording's tracks are
/// its participant's track sids, and in the server's own log each bot subscribed to exactly
/// its participant's tracks and to nothing of the other's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_in_one_room_record_only_their_own_participant() {
    let server = RealServer::start(ServerOpts { log_level: "debug".into(), ..ServerOpts::default() });
    let (dir_a, dir_b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let daemon_a = daemon_for(&server, dir_a.path()).await;
    let daemon_b = daemon_for(&server, dir_b.path()).await;
    let room = "shared";
    let alice = Publisher::spawn(&server, room, "alice", PublisherOpts::vp8_opus());
    let bob =
        Publisher::spawn(&server, room, "bob", PublisherOpts::assets(Some("vp9.ivf"), Some("opus.ogg")));
    alice.wait_started_async(Duration::from_secs(20)).await;
    bob.wait_started_async(Duration::from_secs(20)).await;

    let ((id_a, _), (id_b, _)) = tokio::join!(
        start_with_media(daemon_a.addr(), room, "alice", WAIT),
        start_with_media(daemon_b.addr(), room, "bob", WAIT)
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    // the server's view: two bots beside alice and bob
    let participants = server.room_client().list_participants(room).await.expect("list participants");
    let identities: BTreeSet<String> = participants.iter().map(|p| p.identity.clone()).collect();
    let bots: Vec<&String> = identities.iter().filter(|i| i.starts_with("lkrec-")).collect();
    assert_eq!(bots.len(), 2, "one bot per daemon: {identities:?}");
    assert!(identities.contains("alice") && identities.contains("bob"), "{identities:?}");
    for p in participants.iter().filter(|p| p.identity.starts_with("lkrec-")) {
        assert!(p.tracks.is_empty(), "a bot publishes nothing: {p:?}");
    }
    let tracks_of = |who: &str| -> BTreeSet<String> {
        let p = participants.iter().find(|p| p.identity == who).expect("participant");
        p.tracks.iter().map(|t| t.sid.clone()).collect()
    };
    let (alice_tracks, bob_tracks) = (tracks_of("alice"), tracks_of("bob"));
    assert_eq!((alice_tracks.len(), bob_tracks.len()), (2, 2), "{participants:?}");

    let done_a = stop_recording(daemon_a.addr(), &id_a).await;
    let done_b = stop_recording(daemon_b.addr(), &id_b).await;
    // the recorder's view: each recording holds its participant's tracks
    let recorded = |rec: &Value| -> BTreeSet<String> {
        rec["tracks"]
            .as_array()
            .expect("tracks")
            .iter()
            .map(|t| t["sid"].as_str().expect("sid").to_owned())
            .collect()
    };
    assert_eq!(recorded(&done_a), alice_tracks, "daemon A records alice's tracks: {done_a}");
    assert_eq!(recorded(&done_b), bob_tracks, "daemon B records bob's tracks: {done_b}");

    // the server's log: what each bot subscribed to
    let subs = subscriptions_in_log(&std::fs::read_to_string(server.log_path()).expect("server log"));
    let bot_subs: BTreeMap<&String, &BTreeSet<String>> =
        subs.iter().filter(|(p, _)| p.starts_with("lkrec-")).collect();
    eprintln!("subscriptions of the bots in the server's log: {bot_subs:?}");
    assert_eq!(bot_subs.len(), 2, "both bots subscribed to something: {subs:?}");
    let mut seen: Vec<&BTreeSet<String>> = bot_subs.values().copied().collect();
    seen.sort();
    let mut want = vec![&alice_tracks, &bob_tracks];
    want.sort();
    assert_eq!(seen, want, "each bot subscribed to exactly one participant's tracks");

    // the files: alice's VP8, bob's VP9, each only its own frames
    let (pa, va, aa) = assert_parts_hold_the_publishers_frames(
        &done_a,
        &Expect { who: "alice", video: "vp8.ivf", audio: true },
    );
    let (pb, vb, ab) = assert_parts_hold_the_publishers_frames(
        &done_b,
        &Expect { who: "bob", video: "vp9.ivf", audio: true },
    );
    assert_eq!((pa, pb), (1, 1), "one part each");
    eprintln!("daemon A: alice {va} VP8 + {aa} Opus packets; daemon B: bob {vb} VP9 + {ab} Opus packets");
    for f in files_of(&done_a) {
        assert!(f.starts_with(dir_a.path()), "{}", f.display());
    }
    for f in files_of(&done_b) {
        assert!(f.starts_with(dir_b.path()), "{}", f.display());
    }
    daemon_a.shutdown().await;
    daemon_b.shutdown().await;
    drop(server);
}

/// A publisher whose audio track is announced as end-to-end encrypted (`--e2ee`: GCM in the
/// server's TrackInfo; the payload itself is plain Opus, which the server cannot tell): the
/// recording names the audio track in `skipped_tracks` with a reason that says it is
/// encrypted, records the video, and the file has no audio stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_encrypted_track_is_named_in_skipped_tracks_and_the_other_is_recorded() {
    let server = RealServer::start(ServerOpts::default());
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(&server, dir.path()).await;
    let addr = daemon.addr();
    let room = "e2ee";
    let mut opts = PublisherOpts::vp8_opus();
    opts.extra_args.push("--e2ee".into());
    let alice = Publisher::spawn(&server, room, "alice", opts);
    alice.wait_started_async(Duration::from_secs(20)).await;
    let audio_sid = alice.track_sid("audio").expect("audio published");
    let video_sid = alice.track_sid("video").expect("video published");

    // the server took the flag: its TrackInfo says GCM for the audio, NONE for the video
    // (polled: the server's participant info can lag the publisher's own events a little)
    let deadline = Instant::now() + Duration::from_secs(10);
    let p = loop {
        let participants = server.room_client().list_participants(room).await.expect("list participants");
        let alice_info = participants.iter().find(|p| p.identity == "alice").cloned();
        if let Some(p) = alice_info
            .filter(|p| [&audio_sid, &video_sid].iter().all(|sid| p.tracks.iter().any(|t| &&t.sid == sid)))
        {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the server does not list alice's tracks {audio_sid} and {video_sid}: {participants:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let enc = |sid: &str| p.tracks.iter().find(|t| t.sid == sid).map(|t| t.encryption).expect("track");
    assert_eq!(enc(&audio_sid), livekit_protocol::encryption::Type::Gcm as i32, "{p:?}");
    assert_eq!(enc(&video_sid), livekit_protocol::encryption::Type::None as i32, "{p:?}");

    let id = start_with_media(addr, room, "alice", WAIT).await.0;
    let (_, active) = api(addr, Method::GET, &format!("/recordings/{id}"), None).await;
    let skipped = active["skipped_tracks"].as_array().cloned().unwrap_or_default();
    assert_eq!(skipped.len(), 1, "named while active: {active}");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let done = stop_recording(addr, &id).await;
    let skipped = done["skipped_tracks"].as_array().expect("skipped_tracks");
    assert_eq!(skipped.len(), 1, "{done}");
    assert_eq!(skipped[0]["sid"], audio_sid.as_str(), "{done}");
    assert_eq!(skipped[0]["kind"], "audio", "{done}");
    let reason = skipped[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.to_lowercase().contains("encrypt"), "the reason says why: {reason:?}");
    let tracks = done["tracks"].as_array().expect("tracks");
    assert_eq!(tracks.len(), 1, "only the video is recorded: {done}");
    assert_eq!((&tracks[0]["sid"], &tracks[0]["codec"]), (&json!(video_sid), &json!("vp8")), "{done}");
    let (parts, nv, _) = assert_parts_hold_the_publishers_frames(
        &done,
        &Expect { who: "alice", video: "vp8.ivf", audio: false },
    );
    eprintln!(
        "skipped {audio_sid}: {reason:?}; {parts} part(s), {nv} VP8 packets, every one the publisher's"
    );
    daemon.shutdown().await;
    drop(server);
}
