//! Frames → our muxers → file, judged by ffmpeg: every frame read back is byte-identical to the
//! frame sent with the same timestamp (±1 tick), the file decodes without a single error, and
//! ffprobe reports the right codecs, dimensions and duration.

mod support;
use support::common;

use common::*;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::{Codec, MediaKind};

fn check_roundtrip(kind: ContainerKind, codecs: &[Codec]) {
    let dir = tempfile::tempdir().unwrap();
    let rec = record(dir.path(), kind, codecs, &PublishOpts::default());
    let errors = ffmpeg_errors(&rec.path);
    assert!(errors.is_empty(), "{kind:?} {codecs:?}: ffmpeg reported: {errors}");

    let start = rec.sent.iter().filter_map(|s| s.first()).map(|f| f.sender_ns).min().unwrap();
    for (i, &codec) in codecs.iter().enumerate() {
        let got = packets(&rec.path, i);
        let sent = &rec.sent[i];
        assert_eq!(got.len(), sent.len(), "{codec}: packets read back vs frames sent");
        for (k, (p, s)) in got.iter().zip(sent).enumerate() {
            if codec == Codec::H264 {
                assert_eq!(avcc_nals(&p.data), annexb_nals(&s.payload), "h264 frame {k}: NAL units differ");
            } else {
                assert!(p.data == expected_stored(codec, &s.payload), "{codec} frame {k}: bytes differ");
            }
            let shift = if codec == Codec::Opus { opus_presentation_shift_ns(kind) } else { 0 };
            let want = (s.sender_ns - start) as i64 - shift as i64;
            let diff = (p.pts_ns() - want).abs();
            assert!(diff <= p.tick_ns() + 1, "{codec} frame {k}: pts {} ns, sent at {want} ns", p.pts_ns());
        }
    }

    let probe = ffprobe(&rec.path);
    assert_eq!(probe.streams.len(), codecs.len(), "{probe:?}");
    let mut want_duration = 0.0f64;
    for (s, (&codec, sent)) in probe.streams.iter().zip(codecs.iter().zip(&rec.sent)) {
        assert_eq!(s.codec_name, codec.as_str(), "{probe:?}");
        assert_eq!(s.packets, sent.len() as u64);
        let frame = if codec.kind() == MediaKind::Video {
            assert_eq!((s.width, s.height), (Some(320), Some(240)), "{codec} dimensions");
            1.0 / 30.0
        } else {
            0.02
        };
        let end = (sent.last().unwrap().sender_ns - start) as f64 / 1e9 + frame;
        want_duration = want_duration.max(end);
    }
    let got = probe.duration.expect("duration");
    assert!(
        (got - want_duration).abs() <= 1.0 / 30.0 + 0.001,
        "{kind:?} duration {got} s, want {want_duration} s"
    );
}

#[test]
fn webm_vp8_opus() {
    check_roundtrip(ContainerKind::Webm, &[Codec::Vp8, Codec::Opus]);
}

#[test]
fn webm_vp9_opus() {
    check_roundtrip(ContainerKind::Webm, &[Codec::Vp9, Codec::Opus]);
}

#[test]
fn webm_av1_opus() {
    check_roundtrip(ContainerKind::Webm, &[Codec::Av1, Codec::Opus]);
}

#[test]
fn mkv_h264_opus() {
    check_roundtrip(ContainerKind::Mkv, &[Codec::H264, Codec::Opus]);
}

#[test]
fn mp4_h264_opus() {
    check_roundtrip(ContainerKind::Mp4, &[Codec::H264, Codec::Opus]);
}

#[test]
fn ogg_opus() {
    check_roundtrip(ContainerKind::Ogg, &[Codec::Opus]);
}

#[test]
fn mkv_vp8_opus_generic() {
    check_roundtrip(ContainerKind::Mkv, &[Codec::Vp8, Codec::Opus]);
}

#[test]
fn webm_video_only() {
    check_roundtrip(ContainerKind::Webm, &[Codec::Vp9]);
}

#[test]
fn mp4_video_only() {
    check_roundtrip(ContainerKind::Mp4, &[Codec::H264]);
}
