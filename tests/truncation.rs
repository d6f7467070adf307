//! Crash tolerance: every container cut at 10 random byte offsets still decodes with ffmpeg,
//! and keeps every frame that was complete at the last flush point before the cut.
//!
//! Matroska, WebM and Ogg files are judged exactly as cut. A fragmented MP4 cut inside a
//! `moof` is rejected whole by ffmpeg, so it is judged after crash recovery's truncation to
//! `recoverable_len` (whole fragments); cuts that land inside an `mdat` are also judged raw.

mod support;
use support::common;

use common::*;
use livekit_recorder::media::mux::recover::recoverable_len;
use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::Codec;

fn check_truncations(kind: ContainerKind, codecs: &[Codec], seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let rec = record(dir.path(), kind, codecs, &PublishOpts::default());
    let bytes = std::fs::read(&rec.path).unwrap();
    assert!(rec.flushes.len() >= 4, "{kind:?}: only {} flush points in 5 s", rec.flushes.len());
    let mut rng = Lcg(seed);
    for n in 0..10 {
        // from the first flush point that holds a frame (before it the file has none)
        let first_flush = rec.flushes.iter().find(|f| f.1 > 0).expect("a flush point with frames").0;
        let cut = first_flush + rng.next() % (bytes.len() as u64 - first_flush);
        let path = dir.path().join(format!("cut-{n}.{}", kind.extension()));
        let kept = recoverable_len(kind, &bytes[..cut as usize]);
        if kind != ContainerKind::Mp4 {
            assert!(kept + 64 * 1024 > cut as usize, "{kind:?}: recovery would drop more than a page");
        }
        // the daemon's start-up repair of a file on disk cuts to the same length
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let repair = livekit_recorder::output::repair_part_file(&path).unwrap();
        assert_eq!((repair.before, repair.after), (cut, kept as u64), "{kind:?} repair of a cut at {cut}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), kept as u64);
        if kind == ContainerKind::Mp4 && cut_inside_mdat(&bytes, kept, cut as usize) {
            let raw = dir.path().join(format!("raw-{n}.mp4"));
            std::fs::write(&raw, &bytes[..cut as usize]).unwrap();
            let errors = ffmpeg_errors(&raw);
            assert!(!errors.contains("[ffmpeg exit"), "fMP4 cut inside an mdat at {cut}: {errors}");
            let packets: u64 = ffprobe(&raw).streams.iter().map(|s| s.packets).sum();
            assert!(packets >= rec.flushes.iter().filter(|f| f.0 <= cut).map(|f| f.1).max().unwrap_or(0));
        }
        let durable = rec.flushes.iter().filter(|(len, _)| *len <= cut).map(|(_, f)| *f).max().unwrap_or(0);
        let errors = ffmpeg_errors(&path);
        assert!(!errors.contains("[ffmpeg exit"), "{kind:?} cut at {cut}/{}: {errors}", bytes.len());
        let probe = ffprobe(&path);
        let packets: u64 = probe.streams.iter().map(|s| s.packets).sum();
        assert!(
            packets >= durable,
            "{kind:?} cut at {cut}: {packets} packets readable, {durable} were flushed before the cut"
        );
        eprintln!(
            "{kind:?} cut at {cut}/{}: {packets} packets (>= {durable} flushed); ffmpeg said: {errors:?}",
            bytes.len()
        );
    }
}

/// Whether `cut` falls inside the `mdat` that follows the `moof` at `kept`.
fn cut_inside_mdat(bytes: &[u8], kept: usize, cut: usize) -> bool {
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    if bytes.get(kept + 4..kept + 8) != Some(b"moof".as_slice()) {
        return false;
    }
    let mdat = kept + size(kept);
    mdat + 8 <= cut && bytes.get(mdat + 4..mdat + 8) == Some(b"mdat".as_slice())
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
