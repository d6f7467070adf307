//! The session's rules, judged on the files it writes: keyframe gate, loss handling, gaps kept
//! as real time, the bounded start hold, resolution changes, and no panic on any input.

mod support;
use support::common;

use std::process::Command;

use common::*;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::session::{Session, SessionConfig};
use livekit_recorder::media::source::{annexb, ivf};
use livekit_recorder::media::{Codec, FrameIn, SenderReport};
use livekit_recorder::output::PartFile;
use livekit_recorder::synth::{EncodedLoop, SyntheticTrack};
use proptest::prelude::*;

/// Feeds frames (track, payload, rtp, arrival, contiguous) and returns the file path.
fn write_file(
    dir: &std::path::Path,
    kind: ContainerKind,
    codecs: &[Codec],
    frames: &[(usize, Vec<u8>, u32, u64, bool)],
) -> (std::path::PathBuf, Session, Vec<bool>) {
    write_file_with(dir, SessionConfig::new(kind, codecs.to_vec()), frames)
}

fn write_file_with(
    dir: &std::path::Path,
    cfg: SessionConfig,
    frames: &[(usize, Vec<u8>, u32, u64, bool)],
) -> (std::path::PathBuf, Session, Vec<bool>) {
    let kind = cfg.container;
    let mut s = Session::new(cfg).unwrap();
    let path = dir.join(format!("out.{}", kind.extension()));
    let mut file = PartFile::create(&path).unwrap();
    let (mut out, mut asked) = (Vec::new(), Vec::new());
    for (track, payload, rtp, arrival, contiguous) in frames {
        let f = FrameIn {
            payload,
            rtp_time: *rtp,
            arrival_ns: *arrival,
            contiguous: *contiguous,
            sender_report: None,
        };
        let o = s.push(*track, &f, &mut out);
        let p = s.poll(*arrival, &mut out);
        asked.push(o.request_keyframe || p.request_keyframe);
        file.append(&out).unwrap();
        out.clear();
    }
    let patches = s.finish(&mut out);
    file.append(&out).unwrap();
    let path = file.close(&patches).unwrap();
    (path, s, asked)
}

fn video_frames(codec: Codec, from: usize, count: usize) -> Vec<(usize, Vec<u8>, u32, u64, bool)> {
    let lp = EncodedLoop::embedded(codec).unwrap();
    (from..from + count)
        .map(|i| {
            let f = &lp.frames[i % lp.frames.len()];
            let t = i as u64 * 3000;
            (0, f.data.clone(), (t + 1000) as u32, 1_000 * MS + t * 1_000_000 / 90, true)
        })
        .collect()
}

#[test]
fn recording_starts_at_a_keyframe_and_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    // start mid-GOP: frames 10..29 are delta frames, 30 is the next keyframe
    let frames = video_frames(Codec::Vp8, 10, 60);
    let (path, s, asked) = write_file(dir.path(), ContainerKind::Webm, &[Codec::Vp8], &frames);
    assert_eq!(s.stats().dropped_before_keyframe, 20);
    assert!(asked[..20].iter().all(|&a| a), "every dropped frame asks for a keyframe");
    assert!(!asked[20..].iter().any(|&a| a), "no request once recording");
    let got = packets(&path, 0);
    assert_eq!(got.len(), 40);
    assert_eq!(got[0].data, frames[20].1, "the file starts with the keyframe");
    assert_eq!(got[0].pts, 0);
    assert!(ffmpeg_errors(&path).is_empty());
}

#[test]
fn unrepaired_loss_waits_for_the_next_keyframe() {
    let dir = tempfile::tempdir().unwrap();
    let mut frames = video_frames(Codec::Vp8, 0, 90);
    frames.remove(40); // lost for good
    frames[40].4 = false; // the depacketizer saw the gap
    let (path, s, asked) = write_file(dir.path(), ContainerKind::Webm, &[Codec::Vp8], &frames);
    // frames 41..59 (19 of them) are dropped; 60 is a keyframe
    assert_eq!(s.stats().dropped_after_loss, 19);
    assert!(asked[40..59].iter().all(|&a| a));
    let got = packets(&path, 0);
    assert_eq!(got.len(), 40 + 30);
    assert_eq!(got[40].data, frames[59].1);
    assert!((got[40].pts_ns() - 2_000_000_000).abs() <= 1_000_000, "time kept across the drop");
    assert!(ffmpeg_errors(&path).is_empty());
}

#[test]
fn a_publisher_pause_stays_a_gap_of_real_time() {
    for (kind, codecs) in [
        (ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]),
        (ContainerKind::Mp4, vec![Codec::H264, Codec::Opus]),
        (ContainerKind::Ogg, vec![Codec::Opus]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        // nothing is sent from 1.5 s to 3.0 s (video resumes on its keyframe at 3.0 s)
        let opts =
            PublishOpts { seconds: 5.0, pauses: vec![(1_500 * MS, 3_000 * MS)], ..PublishOpts::default() };
        let rec = record(dir.path(), kind, &codecs, &opts);
        assert!(ffmpeg_errors(&rec.path).is_empty(), "{kind:?}");
        for (i, codec) in codecs.iter().enumerate() {
            let got = packets(&rec.path, i);
            // the first packet at or after the pause starts at 3.0 s: the gap is kept
            let shift = if *codec == Codec::Opus { opus_presentation_shift_ns(kind) as i64 } else { 0 };
            // Ogg fills gaps with 20 ms silence packets: look for the first real frame
            let silence = livekit_recorder::media::codec::opus::SILENCE_20MS;
            let after = got
                .iter()
                .find(|p| p.pts_ns() >= 1_500_000_000 && p.data != silence)
                .expect("packets after the pause");
            assert!(
                (after.pts_ns() + shift - 3_000_000_000).abs() <= 1_000_000,
                "{kind:?} {codec}: resumed at {} ns",
                after.pts_ns()
            );
        }
        let duration = ffprobe(&rec.path).duration.unwrap();
        assert!((duration - 5.0).abs() < 0.05, "{kind:?}: duration {duration} s, 5 s of real time passed");
    }
}

#[test]
fn audio_is_not_held_back_forever_waiting_for_video() {
    let dir = tempfile::tempdir().unwrap();
    let audio = EncodedLoop::embedded(Codec::Opus).unwrap();
    let mut frames = Vec::new();
    // 4 s of audio; video only starts (at a keyframe) at 3 s
    for (k, f) in audio.frames.iter().enumerate() {
        let t = k as u64 * 20 * MS;
        frames.push((t, (1, f.data.clone(), (k * 960) as u32, 1_000 * MS + t, true)));
    }
    for (t, v) in video_frames(Codec::Vp8, 0, 30).into_iter().enumerate() {
        let at = 3_000 * MS + t as u64 * 100 * MS / 3;
        frames.push((at, (0, v.1, (270_000 + t * 3000) as u32, 1_000 * MS + at, true)));
    }
    frames.sort_by_key(|f| f.0);
    let frames: Vec<_> = frames.into_iter().map(|f| f.1).collect();
    let mut s = Session::new(SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus])).unwrap();
    let mut out = Vec::new();
    for (track, payload, rtp, arrival, _) in &frames {
        let f =
            FrameIn { payload, rtp_time: *rtp, arrival_ns: *arrival, contiguous: true, sender_report: None };
        let _ = s.push(*track, &f, &mut out);
        let _ = s.poll(*arrival, &mut out);
        if *arrival >= 1_000 * MS + 3_200 * MS {
            break;
        }
        if *arrival >= 1_000 * MS + 2_100 * MS {
            assert!(s.started(), "the file started once audio had waited 2 s");
        } else if *arrival < 1_000 * MS + 1_900 * MS {
            assert!(!s.started(), "audio waits up to 2 s for a video keyframe");
        }
    }
    let _ = s.finish(&mut out);
    let path = dir.path().join("late-video.webm");
    std::fs::write(&path, &out).unwrap();
    assert!(ffmpeg_errors(&path).is_empty(), "{}", ffmpeg_errors(&path));
    let a = packets(&path, 1);
    let shift = opus_presentation_shift_ns(ContainerKind::Webm) as i64;
    assert!((a[0].pts_ns() + shift).abs() <= 1_000_000, "audio from the first frame on: {}", a[0].pts_ns());
    // The video track header has no size (no keyframe had arrived when the file started), so
    // ffmpeg cannot stream-copy it; ffprobe still reads its packets.
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(&path)
        .output()
        .unwrap();
    let first: f64 =
        String::from_utf8_lossy(&out.stdout).lines().next().expect("video packets").parse().unwrap();
    assert!((first - 3.0).abs() <= 0.001, "video joins at 3 s: {first}");
}

/// A busy receiver hands over the first 300 ms of audio at once (15 frames within 1.5 ms)
/// before the first video keyframe: every audio frame keeps its own time in the file (no two
/// at one timestamp, which ffmpeg reports as non-monotonic), and the file decodes cleanly.
#[test]
fn a_burst_of_late_audio_at_the_start_keeps_its_spacing() {
    let dir = tempfile::tempdir().unwrap();
    let audio = EncodedLoop::embedded(Codec::Opus).unwrap();
    let mut frames = Vec::new();
    for (k, f) in audio.frames.iter().take(100).enumerate() {
        let arrival = if k < 15 { 1_000 * MS + k as u64 * 100_000 } else { 1_000 * MS + k as u64 * 20 * MS };
        frames.push((arrival, (1, f.data.clone(), (k * 960) as u32, arrival, true)));
    }
    for (t, v) in video_frames(Codec::Vp8, 0, 45).into_iter().enumerate() {
        let at = 1_300 * MS + t as u64 * 100 * MS / 3;
        frames.push((at, (0, v.1, (27_000 + t * 3000) as u32, at, true)));
    }
    frames.sort_by_key(|f| f.0);
    let frames: Vec<_> = frames.into_iter().map(|f| f.1).collect();
    let (path, _, _) = write_file(dir.path(), ContainerKind::Webm, &[Codec::Vp8, Codec::Opus], &frames);
    let errors = ffmpeg_errors(&path);
    assert!(errors.is_empty(), "{errors}");
    let a = packets(&path, 1);
    for w in a.windows(2) {
        assert!(w[1].pts > w[0].pts, "audio packets share or reverse a time: {} then {}", w[0].pts, w[1].pts);
    }
}

fn make_with_ffmpeg(dir: &std::path::Path, name: &str, size: &str, codec_args: &[&str]) -> Vec<u8> {
    let path = dir.join(name);
    let src = format!("testsrc2=size={size}:rate=30:duration=1,format=yuv420p");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &src])
        .args(codec_args)
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(st.success());
    std::fs::read(path).unwrap()
}

#[test]
fn resolution_change_mid_stream_keeps_the_file_valid() {
    let dir = tempfile::tempdir().unwrap();
    let vp8 = ["-c:v", "libvpx", "-b:v", "300k", "-g", "30", "-f", "ivf"];
    let h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-g", "30"];
    let h264 = [&h264[..], &["-x264-params", "aud=1", "-f", "h264"]].concat();
    let cases: [(ContainerKind, Codec, &[&str]); 3] = [
        (ContainerKind::Webm, Codec::Vp8, &vp8),
        (ContainerKind::Mkv, Codec::H264, &h264),
        (ContainerKind::Mp4, Codec::H264, &h264),
    ];
    for (kind, codec, args) in cases {
        let read = |name: &str, size: &str| {
            let bytes = make_with_ffmpeg(dir.path(), name, size, args);
            match codec {
                Codec::H264 => annexb::read(&bytes, 30).unwrap(),
                _ => ivf::read(&bytes).unwrap().frames,
            }
        };
        let small = read(&format!("small-{}", kind.extension()), "320x240");
        let large = read(&format!("large-{}", kind.extension()), "640x360");
        let frames: Vec<_> = small
            .iter()
            .chain(&large)
            .enumerate()
            .map(|(i, f)| {
                let t = i as u64 * 3000;
                (0, f.data.clone(), t as u32, 1_000 * MS + t * 1_000_000 / 90, true)
            })
            .collect();
        let sub = dir.path().join(kind.extension());
        std::fs::create_dir_all(&sub).unwrap();
        let (path, s, _) = write_file(&sub, kind, &[codec], &frames);
        assert_eq!(s.stats().resolution_changes, 1, "{kind:?}");
        let errors = ffmpeg_errors(&path);
        assert!(errors.is_empty(), "{kind:?}: {errors}");
        assert_eq!(packets(&path, 0).len(), 60, "{kind:?}");
        // the decoder follows the bitstream: the last frame decodes at the new size
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-i"])
            .arg(&path)
            .args(["-vf", "showinfo", "-f", "null", "-", "-loglevel", "info"])
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("s:640x360"), "{kind:?}: no 640x360 frame decoded");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn sessions_never_panic_on_any_frames(
        kind in prop::sample::select(vec![0u8, 1, 2, 3]),
        frames in prop::collection::vec(
            (0usize..3, prop::collection::vec(any::<u8>(), 0..300), any::<u32>(), 0u64..50_000_000, any::<bool>(), any::<Option<(u64, u32)>>()),
            0..120),
    ) {
        let (kind, codecs) = match kind {
            0 => (ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]),
            1 => (ContainerKind::Mkv, vec![Codec::H264, Codec::Opus]),
            2 => (ContainerKind::Mp4, vec![Codec::H264, Codec::Opus]),
            _ => (ContainerKind::Ogg, vec![Codec::Opus]),
        };
        let mut s = Session::new(SessionConfig::new(kind, codecs)).unwrap();
        let (mut out, mut arrival) = (Vec::new(), 0u64);
        for (track, payload, rtp, step, contiguous, sr) in &frames {
            arrival += step;
            let sender_report = sr.map(|(ntp_ns, rtp_time)| SenderReport { ntp_ns, rtp_time });
            let f = FrameIn { payload, rtp_time: *rtp, arrival_ns: arrival, contiguous: *contiguous, sender_report };
            let _ = s.push(*track, &f, &mut out);
            let _ = s.poll(arrival, &mut out);
        }
        let _ = s.finish(&mut out);
    }
}

#[test]
fn synthetic_loops_replay_without_timestamp_jumps() {
    let lp = EncodedLoop::embedded(Codec::Vp8).unwrap();
    let mut t = SyntheticTrack::new(lp.clone(), u32::MAX - 100_000, 0);
    let mut prev: Option<(u64, u32)> = None;
    for _ in 0..lp.frames.len() * 2 + 5 {
        let f = t.next_frame();
        if let Some((ns, rtp)) = prev {
            assert!((f.sender_ns - ns).abs_diff(33_333_333) <= 1, "even spacing across the loop boundary");
            assert_eq!(f.rtp_time.wrapping_sub(rtp), 3000);
        }
        prev = Some((f.sender_ns, f.rtp_time));
    }
}

/// Audio queued before the file starts (on arrival times) and then moved back by its first
/// sender report past the timeline's origin (the browser case: video's report set the
/// participant's clock, audio's says it was captured 30 ms earlier than its arrival implied):
/// every frame is kept, 20 ms apart, the first ones before video's first frame (the timeline's
/// headroom leaves room below its origin). (Clamped to the origin they overlapped: ffmpeg
/// reported non-monotonic audio timestamps; the session drops audio only if a move back ever
/// went beyond the headroom.)
#[test]
fn audio_moved_back_past_the_origin_before_the_start_does_not_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let audio = EncodedLoop::embedded(Codec::Opus).unwrap();
    let video = EncodedLoop::embedded(Codec::Vp8).unwrap();
    const NTP0: u64 = 5_000_000 * MS;
    /// (local arrival, track, payload, rtp, sender report)
    type Frame = (u64, usize, Vec<u8>, u32, Option<SenderReport>);
    let mut frames: Vec<Frame> = Vec::new();
    // audio captured at k * 20 ms, 30 ms on the way; reports from frame 10 on
    for k in 0..100u64 {
        let sent = k * 20 * MS;
        let rtp = (k * 960) as u32;
        let sr = (k >= 10).then_some(SenderReport { ntp_ns: NTP0 + sent, rtp_time: rtp });
        frames.push((sent + 30 * MS, 1, audio.frames[k as usize % audio.frames.len()].data.clone(), rtp, sr));
    }
    // video captured from 100 ms on at 30 fps, no delay, with reports from the first frame
    for j in 0..60u64 {
        let sent = 100 * MS + j * 100 * MS / 3;
        let rtp = (9_000 + j * 3_000) as u32;
        let sr = Some(SenderReport { ntp_ns: NTP0 + sent, rtp_time: rtp });
        frames.push((sent, 0, video.frames[j as usize % video.frames.len()].data.clone(), rtp, sr));
    }
    frames.sort_by_key(|f| f.0);
    let mut s = Session::new(SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus])).unwrap();
    let mut out = Vec::new();
    for (arrival, track, payload, rtp, sr) in &frames {
        let f = FrameIn {
            payload,
            rtp_time: *rtp,
            arrival_ns: 1_000 * MS + arrival,
            contiguous: true,
            sender_report: *sr,
        };
        let _ = s.push(*track, &f, &mut out);
        let _ = s.poll(1_000 * MS + arrival, &mut out);
    }
    let _ = s.finish(&mut out);
    let path = dir.path().join("moved-back.webm");
    std::fs::write(&path, &out).unwrap();
    assert!(ffmpeg_errors(&path).is_empty(), "{}", ffmpeg_errors(&path));
    let a = packets(&path, 1);
    for w in a.windows(2) {
        let step = w[1].pts_ns() - w[0].pts_ns();
        assert!(
            step >= 19_000_000,
            "audio packets {} ns apart: {:?}",
            step,
            a.iter().map(|p| p.pts_ns()).collect::<Vec<_>>()
        );
    }
    assert_eq!(s.stats().dropped_audio_overlap, 0, "{:?}", s.stats());
    assert_eq!(a.len(), 100, "every audio frame kept");
}

/// A simulcast layer switch as the SFU does it: the recording starts on the low layer's
/// keyframe, and the high layer's keyframe of the same picture (same RTP timestamp) follows at
/// once. The file holds that picture once: the high layer's keyframe, at the low one's time,
/// and the track's size is the high layer's. (Before: 31 packets, the picture twice, 2 ms
/// apart, and a 320x180 track header.)
#[test]
fn a_layer_switch_keyframe_of_the_same_instant_replaces_the_unwritten_frame() {
    let dir = tempfile::tempdir().unwrap();
    let vp8 = ["-c:v", "libvpx", "-b:v", "300k", "-g", "30", "-f", "ivf"];
    let small = ivf::read(&make_with_ffmpeg(dir.path(), "q.ivf", "320x180", &vp8)).unwrap().frames;
    let large = ivf::read(&make_with_ffmpeg(dir.path(), "h.ivf", "640x360", &vp8)).unwrap().frames;
    let at = |i: u64| (i * 3000) as u32;
    let arrival = |i: u64, extra_ms: u64| 1_000 * MS + i * 100 * MS / 3 + extra_ms * MS;
    // frame 0: the low layer's keyframe; then the high layer's keyframe of frame 0 (3 ms
    // later); then the high layer's frames 1..29
    let mut frames = vec![(0, small[0].data.clone(), at(0), arrival(0, 0), true)];
    frames.push((0, large[0].data.clone(), at(0), arrival(0, 3), true));
    for i in 1..30u64 {
        frames.push((0, large[i as usize].data.clone(), at(i), arrival(i, 0), true));
    }
    let (path, s, _) = write_file(dir.path(), ContainerKind::Webm, &[Codec::Vp8], &frames);
    assert!(ffmpeg_errors(&path).is_empty(), "{}", ffmpeg_errors(&path));
    let p = packets(&path, 0);
    assert_eq!(p.len(), 30, "one packet per picture: {:?}", s.stats());
    assert_eq!(s.stats().replaced_by_layer_switch, 1, "{:?}", s.stats());
    assert_eq!(p[0].data, large[0].data, "the high layer's keyframe");
    assert_eq!(p[1].pts_ns() - p[0].pts_ns(), 33_000_000, "frame 1 one frame after it");
    let probe = ffprobe(&path);
    assert_eq!((probe.streams[0].width, probe.streams[0].height), (Some(640), Some(360)));
}

/// A layer switch mid-recording with audio: the low layer's frame 10 arrives, audio of a later
/// instant arrives after it (which let the video frame be written), then the high layer's
/// keyframe of frame 10. The low layer's last frame waits for its track's next frame, so the
/// keyframe still replaces it: frame 10 once, no two packets of one instant. (Before: the
/// low layer's frame 10 was written with the audio, and the picture was in the file twice,
/// as against livekit-server with the Go simulcast publisher.)
#[test]
fn a_layer_switch_keyframe_after_audio_still_replaces_the_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let vp8 = ["-c:v", "libvpx", "-b:v", "300k", "-g", "30", "-f", "ivf"];
    let small = ivf::read(&make_with_ffmpeg(dir.path(), "q.ivf", "320x180", &vp8)).unwrap().frames;
    let large = ivf::read(&make_with_ffmpeg(dir.path(), "h.ivf", "640x360", &vp8)).unwrap().frames;
    let opus = EncodedLoop::embedded(Codec::Opus).unwrap();
    let video_at = |i: u64| (i * 3000) as u32;
    let video_arrival = |i: u64| 1_000 * MS + i * 100 * MS / 3;
    let mut frames = Vec::new();
    let mut audio = 0u64;
    let mut audio_until = |frames: &mut Vec<(usize, Vec<u8>, u32, u64, bool)>, until_ns: u64| {
        while 1_000 * MS + audio * 20 * MS <= until_ns {
            let data = opus.frames[audio as usize % opus.frames.len()].data.clone();
            frames.push((1, data, (audio * 960) as u32, 1_000 * MS + audio * 20 * MS, true));
            audio += 1;
        }
    };
    for i in 0..=10u64 {
        audio_until(&mut frames, video_arrival(i));
        frames.push((0, small[i as usize].data.clone(), video_at(i), video_arrival(i), true));
    }
    // audio 25 ms past frame 10, then the high layer's keyframe of frame 10 and its frames
    audio_until(&mut frames, video_arrival(10) + 25 * MS);
    frames.push((0, large[0].data.clone(), video_at(10), video_arrival(10) + 26 * MS, true));
    for i in 11..30u64 {
        audio_until(&mut frames, video_arrival(i));
        frames.push((0, large[(i - 10) as usize].data.clone(), video_at(i), video_arrival(i), true));
    }
    // the file started at once (as the recorder sets it up: no wait for sender reports), so
    // frames are written as the interleave rule lets them
    let cfg = SessionConfig {
        max_sync_wait_ns: 0,
        ..SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus])
    };
    let (path, s, _) = write_file_with(dir.path(), cfg, &frames);
    assert!(ffmpeg_errors(&path).is_empty(), "{}", ffmpeg_errors(&path));
    let p = packets(&path, 0);
    assert_eq!(s.stats().replaced_by_layer_switch, 1, "{:?}", s.stats());
    assert_eq!(p.len(), 30, "one packet per picture: {:?}", s.stats());
    assert_eq!(p[10].data, large[0].data, "frame 10 is the high layer's keyframe");
    assert_eq!(p[9].data, small[9].data);
    assert!(p.windows(2).all(|w| w[1].pts_ns() > w[0].pts_ns()), "strictly increasing times");
}

#[test]
fn the_first_keyframe_reaches_the_disk_at_once() {
    // VP8 + Opus, the session set up as the recorder sets it (no wait for sender reports): the
    // call whose bytes first hold the file's first keyframe also says "flush", so the keyframe
    // is on disk at once, not at the next flush point (up to a second later)
    let cfg = SessionConfig {
        max_sync_wait_ns: 0,
        ..SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus])
    };
    let mut s = Session::new(cfg).unwrap();
    let video = video_frames(Codec::Vp8, 0, 3);
    let key = video[0].1.clone();
    let opus = EncodedLoop::embedded(Codec::Opus).unwrap();
    let (mut written, mut out) = (Vec::new(), Vec::new());
    let mut flushed_with_key = None;
    for i in 0..8u64 {
        let arrival = 1_000 * MS + i * 20 * MS;
        let a = FrameIn {
            payload: &opus.frames[i as usize].data,
            rtp_time: 5_000 + i as u32 * 960,
            arrival_ns: arrival,
            contiguous: true,
            sender_report: None,
        };
        let mut flush = s.push(1, &a, &mut out).flush;
        if let Some((_, payload, rtp, _, _)) = video.get(i as usize) {
            let v = FrameIn {
                payload,
                rtp_time: *rtp,
                arrival_ns: arrival + MS,
                contiguous: true,
                sender_report: None,
            };
            flush |= s.push(0, &v, &mut out).flush;
        }
        written.extend_from_slice(&out);
        out.clear();
        if flushed_with_key.is_none() && written.windows(key.len()).any(|w| w == key.as_slice()) {
            flushed_with_key = Some(flush);
        }
    }
    assert_eq!(flushed_with_key, Some(true), "the keyframe is written, and flushed in the same call");
}
