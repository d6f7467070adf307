//! The main job, `livekit-recorder demo`: the file it writes decodes cleanly, holds VP8 and
//! Opus, lasts the requested time, and its sync markers line up although the synthetic
//! publisher's audio started 700 ms after its video.

mod support;
use support::common;

use std::time::Duration;

use common::*;
use livekit_recorder::demo::{run, DemoOptions};

#[test]
fn demo_records_a_lip_synced_webm() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DemoOptions {
        duration: Duration::from_secs(7),
        dir: dir.path().to_path_buf(),
        start_unix_ns: 1_764_000_000_123_456_789,
    };
    let report = run(&opts).expect("demo runs");
    assert!(report.path.starts_with(dir.path()));
    assert_eq!(std::fs::metadata(&report.path).unwrap().len(), report.bytes);
    let errors = ffmpeg_errors(&report.path);
    assert!(errors.is_empty(), "{errors}");
    let probe = ffprobe(&report.path);
    let codecs: Vec<&str> = probe.streams.iter().map(|s| s.codec_name.as_str()).collect();
    assert_eq!(codecs, ["vp8", "opus"]);
    let duration = probe.duration.unwrap();
    assert!((duration - 7.0).abs() < 0.05, "duration {duration}");
    assert_eq!(report.stats.dropped_before_keyframe, 0);
    assert_in_sync(&report.path, 1.0, 3);
}

/// `livekit-recorder demo` (the main job): simulator + daemon in-process, REST over real HTTP,
/// a complete recording whose file decodes cleanly and is in sync (within the recorder's 20 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_demo_records_through_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let report = livekit_recorder::demo::live::run(Duration::from_secs(4), dir.path().to_path_buf())
        .await
        .expect("live demo runs");
    assert_eq!(report.recording["status"], "complete", "{}", report.recording);
    assert!(report.path.starts_with(dir.path().join("demo")), "{:?}", report.path);
    let errors = ffmpeg_errors(&report.path);
    assert!(errors.is_empty(), "{errors}");
    let codecs: Vec<String> = ffprobe(&report.path).streams.iter().map(|s| s.codec_name.clone()).collect();
    assert_eq!(codecs, ["vp8", "opus"]);
    // over WebRTC, before the first sender report: the recorder's bound (20 ms), not the media
    // core's with exact inputs
    assert_recorder_in_sync(&report.path, 1.0, 1);
}
