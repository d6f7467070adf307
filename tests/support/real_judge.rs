//! Judging what a recording of the Go publisher (`tests/lkpub`) holds, without the recorder's
//! help: the fixture files' frames in the form containers store, and the check that every
//! packet read back by ffmpeg is the publisher's next frame. Shared by the real-server tests.
#![allow(dead_code)]

use livekit_recorder::media::codec::to_stored;
use livekit_recorder::media::Codec;

use super::common;
use super::real_support::{asset, h264_access_units, ivf_frames, ogg_opus_packets};

/// The publisher's frames of `asset` as the container stores them.
pub fn stored_frames(asset_name: &str) -> (Codec, Vec<Vec<u8>>) {
    let codec = match asset_name.rsplit('.').next() {
        Some("ogg") => Codec::Opus,
        Some("h264") => Codec::H264,
        _ if asset_name.starts_with("vp8") => Codec::Vp8,
        _ if asset_name.starts_with("vp9") => Codec::Vp9,
        _ => Codec::Av1,
    };
    (codec, stored_file_frames(codec, &asset(asset_name)))
}

/// The frames of a publisher's file (`.ogg` Opus, `.h264` Annex-B, else IVF) as the container
/// stores them.
pub fn stored_file_frames(codec: Codec, path: &std::path::Path) -> Vec<Vec<u8>> {
    let frames = match codec {
        Codec::Opus => ogg_opus_packets(path),
        Codec::H264 => h264_access_units(path),
        _ => ivf_frames(path),
    };
    frames
        .iter()
        .map(|f| {
            let mut out = Vec::new();
            to_stored(codec, f, &mut out);
            out
        })
        .collect()
}

/// The Opus packets the publisher loops beside a 4 s video: the file's packets within 4 s (its
/// last packet, the encoder delay's extra 20 ms, is left out so both loops repeat together).
pub fn audio_loop() -> Vec<Vec<u8>> {
    let (_, mut frames) = stored_frames("opus.ogg");
    frames.truncate(200);
    frames
}

/// Which source frame (index into the looped file) each packet is. Every packet must be one of
/// the publisher's frames; with `contiguous`, consecutive packets are consecutive frames of
/// the loop (nothing missing, nothing added), else frames may be skipped (mute, rejoin) but
/// never reordered or foreign. Returns the number of source frames skipped.
pub fn match_source(what: &str, packets: &[common::Packet], source: &[Vec<u8>], contiguous: bool) -> usize {
    assert!(!packets.is_empty(), "{what}: no packets");
    let n = source.len();
    let starts: Vec<usize> = (0..n).filter(|&i| source[i] == packets[0].data).collect();
    assert!(
        !starts.is_empty(),
        "{what}: the first packet ({} bytes) is not a frame of the file",
        packets[0].data.len()
    );
    let mut best: Option<(usize, usize)> = None; // (packets matched, skipped)
    for s in starts {
        let (mut at, mut skipped, mut matched) = (s, 0usize, 1usize);
        for p in &packets[1..] {
            let window = if contiguous { 1 } else { 3 * n };
            match (1..=window).find(|&d| source[(at + d) % n] == p.data) {
                Some(d) => {
                    skipped += d - 1;
                    at += d;
                    matched += 1;
                }
                None => break,
            }
        }
        if best.is_none_or(|(m, _)| matched > m) {
            best = Some((matched, skipped));
        }
        if matched == packets.len() {
            break;
        }
    }
    let (matched, skipped) = best.expect("one start");
    assert_eq!(
        matched,
        packets.len(),
        "{what}: packet {matched} of {} is not the publisher's next frame ({} bytes)",
        packets.len(),
        packets[matched.min(packets.len() - 1)].data.len()
    );
    skipped
}
