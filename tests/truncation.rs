//! Crash tolerance: every container cut at 10 random byte offsets still decodes with ffmpeg,
//! and keeps every frame that was complete at the last flush point before the cut.

mod common;

use common::*;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::Codec;

fn check_truncations(kind: ContainerKind, codecs: &[Codec], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let rec = record(dir.path(), kind, codecs, &PublishOpts::default());
    let bytes = std::fs::read(&rec.path).unwrap();
    assert!(rec.flushes.len() >= 4, "{kind:?}: only {} flush points in 5 s", rec.flushes.len());
    let mut rng = Lcg(seed);
    for n in 0..10 {
        let first_flush = rec.flushes[0].0;
        let cut = first_flush + rng.next() % (bytes.len() as u64 - first_flush);
        let path = dir.path().join(format!("cut-{n}.{}", kind.extension()));
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let durable = rec.flushes.iter().filter(|(len, _)| *len <= cut).map(|(_, f)| *f).max().unwrap_or(0);
        let errors = ffmpeg_errors(&path);
        assert!(!errors.contains("[ffmpeg exit"), "{kind:?} cut at {cut}/{}: {errors}", bytes.len());
        let probe = ffprobe(&path);
        let packets: u64 = probe.streams.iter().map(|s| s.packets).sum();
        assert!(
            packets >= durable,
            "{kind:?} cut at {cut}: {packets} packets readable, {durable} were flushed before the cut"
        );
        eprintln!("{kind:?} cut at {cut}/{}: {packets} packets (>= {durable} flushed); ffmpeg said: {errors:?}", bytes.len());
    }
}

#[test]
fn webm_survives_truncation() {
    check_truncations(ContainerKind::Webm, &[Codec::Vp8, Codec::Opus], 1);
}

#[test]
fn mkv_survives_truncation() {
    check_truncations(ContainerKind::Mkv, &[Codec::H264, Codec::Opus], 2);
}

#[test]
fn fmp4_survives_truncation() {
    check_truncations(ContainerKind::Mp4, &[Codec::H264, Codec::Opus], 3);
}

#[test]
fn ogg_survives_truncation() {
    check_truncations(ContainerKind::Ogg, &[Codec::Opus], 4);
}
