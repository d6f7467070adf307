//! Lip sync judged from the decoded output: audio and video of one publisher with different
//! RTP timestamp bases, audio starting 700 ms after video and travelling a much slower network
//! path, aligned only through sender reports. The white flash and the 1 kHz beep of each sync
//! marker must come out within 10 ms of each other.

mod support;
use support::common;

use common::*;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::Codec;

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
