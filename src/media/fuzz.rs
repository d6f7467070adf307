//! Entry points for the cargo-fuzz targets in `tests/fuzz` (feature `fuzzing`). Each takes
//! untrusted bytes and must never panic.

use super::codec;
use super::mux::ContainerKind;
use super::session::{Session, SessionConfig};
use super::source::{annexb, ivf, oggopus};
use super::{Codec, FrameIn, SenderReport};

/// The bitstream parsers of every codec on one frame.
pub fn codec_parsers(data: &[u8]) {
    let mut out = Vec::new();
    for c in Codec::ALL {
        let _ = codec::is_keyframe(c, data);
        let _ = codec::video_params(c, data);
        codec::to_stored(c, data, &mut out);
    }
    let _ = codec::opus::packet_samples(data);
}

/// The fixture readers (IVF, Annex-B, Ogg Opus) and crash recovery's scan of a torn file.
pub fn source_readers(data: &[u8]) {
    let _ = ivf::read(data);
    let _ = annexb::read(data, 30);
    let _ = oggopus::read(data);
    for kind in [ContainerKind::Mp4, ContainerKind::Ogg, ContainerKind::Mkv] {
        let _ = super::mux::recover::recoverable_len(kind, data);
    }
}

/// A whole session fed frames carved from `data`: the first byte picks the container and
/// codecs; then each frame is `[track, flags, len, rtp(4), payload(len)]`.
pub fn session(data: &[u8]) {
    let Some((&pick, mut rest)) = data.split_first() else { return };
    let (kind, tracks) = match pick % 4 {
        0 => (ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]),
        1 => (ContainerKind::Mkv, vec![Codec::H264, Codec::Opus]),
        2 => (ContainerKind::Mp4, vec![Codec::H264, Codec::Opus]),
        _ => (ContainerKind::Ogg, vec![Codec::Opus]),
    };
    let Ok(mut s) = Session::new(SessionConfig::new(kind, tracks)) else { return };
    let (mut out, mut arrival) = (Vec::new(), 0u64);
    while let [track, flags, len, r0, r1, r2, r3, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        let rtp_time = u32::from_be_bytes([*r0, *r1, *r2, *r3]);
        arrival += u64::from(*flags) * 1_000_000;
        let sr = (flags & 1 == 1).then_some(SenderReport { ntp_ns: arrival * 3, rtp_time: rtp_time ^ 0x55 });
        let frame =
            FrameIn { payload, rtp_time, arrival_ns: arrival, contiguous: flags & 2 == 0, sender_report: sr };
        let _ = s.push(usize::from(*track % 3), &frame, &mut out);
        let _ = s.poll(arrival, &mut out);
        rest = next;
    }
    let _ = s.finish(&mut out);
}
