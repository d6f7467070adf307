//! Lip sync judged from the decoded output: audio and video of one publisher with different
//! RTP timestamp bases, audio starting 700 ms after video and travelling a much slower network
//! path, aligned only through sender reports. The white flash and the 1 kHz beep of each sync
//! marker must come out within 10 ms of each other.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::Codec;

/// Times (s) at which the picture turns white.
fn flashes(path: &Path) -> Vec<f64> {
    let graph = format!("movie={},signalstats", path.display());
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-f", "lavfi", "-i", &graph])
        .args(["-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0"])
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut times, mut was_white) = (Vec::new(), false);
    for line in text.lines() {
        let mut f = line.split(',');
        let (Some(t), Some(y)) = (f.next(), f.next()) else { continue };
        let (t, y): (f64, f64) = (t.parse().unwrap(), y.parse().unwrap());
        let white = y > 200.0;
        if white && !was_white {
            times.push(t);
        }
        was_white = white;
    }
    times
}

/// Times (s) at which a loud beep starts, from PCM resampled onto the file's timeline
/// (`first_pts=0` pads the start, `async=1` fills gaps, so sample n is at n / 48000 s).
fn beeps(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "48000"])
        .args(["-f", "s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<i16> = out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let (mut times, mut quiet_since) = (Vec::new(), 0usize);
    for (n, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() > 8000 {
            if n - quiet_since > 48_000 / 2 {
                times.push(n as f64 / 48_000.0);
            }
            quiet_since = n;
        }
    }
    times
}

fn assert_in_sync(path: &Path, from_s: f64, want_pairs: usize) {
    let (f, b) = (flashes(path), beeps(path));
    let mut pairs = 0;
    for &t in f.iter().filter(|&&t| t >= from_s) {
        let nearest = b.iter().copied().min_by(|x, y| (x - t).abs().total_cmp(&(y - t).abs()));
        let beep = nearest.unwrap_or_else(|| panic!("no beep near the flash at {t} s: beeps {b:?}"));
        let offset_ms = (beep - t) * 1000.0;
        eprintln!("marker at {t:.3} s: audio - video = {offset_ms:+.1} ms");
        assert!(offset_ms.abs() <= 10.0, "flash at {t} s, beep at {beep} s: {offset_ms:.1} ms apart");
        pairs += 1;
    }
    assert!(pairs >= want_pairs, "only {pairs} markers measured: flashes {f:?}, beeps {b:?}");
}

#[test]
fn sender_reports_align_audio_and_video() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PublishOpts {
        seconds: 7.0,
        av_offset_ns: 700 * MS,
        // audio arrives 180 ms later than video: arrival times alone would misalign it
        delays_ns: vec![20 * MS, 200 * MS],
        rtp_bases: vec![3_000_000_000, 77_777],
        sr_from_ns: Some(0),
        ..PublishOpts::default()
    };
    let rec = record(dir.path(), ContainerKind::Webm, &[Codec::Vp8, Codec::Opus], &opts);
    assert_in_sync(&rec.path, 1.0, 3);
}

#[test]
fn late_sender_reports_bring_tracks_into_sync() {
    let dir = tempfile::tempdir().unwrap();
    let opts = PublishOpts {
        seconds: 7.0,
        av_offset_ns: 700 * MS,
        delays_ns: vec![20 * MS, 200 * MS],
        rtp_bases: vec![12, 4_294_000_000],
        // no report for the first second: arrival times place audio 180 ms late until then
        sr_from_ns: Some(1_000 * MS),
        ..PublishOpts::default()
    };
    let rec = record(dir.path(), ContainerKind::Mkv, &[Codec::H264, Codec::Opus], &opts);
    assert_in_sync(&rec.path, 3.0, 2);
}
