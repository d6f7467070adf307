//! Ogg Opus reader (RFC 7845): the `OpusHead` and `OpusTags` header packets, then one Opus
//! packet per frame, timed by the samples its TOC byte announces (RFC 6716 §3.1). Pure (the
//! `ogg` crate reads from an in-memory cursor) and total: malformed input gives an error.

use std::io::Cursor;

use super::{SourceError, SourceFrame};

/// An Ogg Opus file.
#[derive(Debug, Clone)]
pub struct OggOpusStream {
    /// Channels from OpusHead.
    pub channels: u8,
    /// Pre-skip from OpusHead.
    pub pre_skip: u16,
    /// Packets, rtp_ts on the 48 kHz clock.
    pub frames: Vec<SourceFrame>,
}

/// Parses a whole Ogg Opus file: the first logical stream, which must be Opus.
pub fn read(data: &[u8]) -> Result<OggOpusStream, SourceError> {
    let mut reader = ogg::PacketReader::new(Cursor::new(data));
    let mut next = || match reader.read_packet() {
        Ok(p) => Ok(p),
        Err(_) => Err(SourceError::Malformed("Ogg page")),
    };
    let head = next()?.ok_or(SourceError::Truncated("Ogg Opus"))?;
    let serial = head.stream_serial();
    let (channels, pre_skip) = parse_opus_head(&head.data)?;
    let mut frames = Vec::new();
    let mut tags_seen = false;
    let mut rtp_ts = 0u64;
    while let Some(packet) = next()? {
        if packet.stream_serial() != serial {
            continue;
        }
        if !tags_seen {
            if !packet.data.starts_with(b"OpusTags") {
                return Err(SourceError::Malformed("OpusTags"));
            }
            tags_seen = true;
            continue;
        }
        let samples = packet_samples(&packet.data).ok_or(SourceError::Malformed("Opus packet"))?;
        frames.push(SourceFrame { rtp_ts, data: packet.data });
        rtp_ts += u64::from(samples);
    }
    Ok(OggOpusStream { channels, pre_skip, frames })
}

/// `OpusHead` (RFC 7845 §5.1): magic, version (major 0), channel count, pre-skip.
fn parse_opus_head(p: &[u8]) -> Result<(u8, u16), SourceError> {
    const BAD: SourceError = SourceError::BadSignature("Ogg Opus");
    if !p.starts_with(b"OpusHead") {
        return Err(BAD);
    }
    match p.get(8..12) {
        Some(&[version, channels, a, b]) if version >> 4 == 0 && channels > 0 && p.len() >= 19 => {
            Ok((channels, u16::from_le_bytes([a, b])))
        }
        _ => Err(SourceError::Malformed("OpusHead")),
    }
}

/// Samples at 48 kHz in one Opus packet from its TOC byte and frame count (RFC 6716 §3.1);
/// `None` for an empty packet, a code-3 packet without its count byte, zero frames, or more
/// than 120 ms.
fn packet_samples(packet: &[u8]) -> Option<u32> {
    let &toc = packet.first()?;
    let config = toc >> 3;
    let per_frame = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config & 3)],
        12..=15 => [480, 960][usize::from(config & 1)],
        _ => [120, 240, 480, 960][usize::from(config & 3)],
    };
    let frames = match toc & 3 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(packet.get(1)? & 0x3f),
    };
    let total = per_frame * frames;
    (frames > 0 && total <= 5760).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn samples_table() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (&[0x00], Some(480)),        // SILK NB 10 ms, 1 frame
            (&[0x18], Some(2880)),       // SILK NB 60 ms
            (&[0x79], Some(1920)),       // hybrid FB 20 ms, 2 frames
            (&[0x7a], Some(1920)),       // code 2
            (&[0x7b, 0x03], Some(2880)), // code 3, 3 frames of 20 ms
            (&[0x7b, 0x07], None),       // 140 ms
            (&[0x7b, 0x00], None),       // zero frames
            (&[0x7b], None),             // missing count byte
            (&[0x60], Some(480)),        // hybrid SWB 10 ms
            (&[0x80], Some(120)),        // CELT NB 2.5 ms
            (&[], None),
        ];
        for (p, want) in cases {
            assert_eq!(packet_samples(p), *want, "{p:02x?}");
        }
    }

    #[test]
    fn opus_head_table() {
        let head = |v: u8, ch: u8| {
            let mut h = b"OpusHead".to_vec();
            h.extend_from_slice(&[v, ch, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
            h
        };
        assert_eq!(parse_opus_head(&head(1, 2)), Ok((2, 312)));
        assert_eq!(parse_opus_head(&head(0x10, 2)), Err(SourceError::Malformed("OpusHead")));
        assert_eq!(parse_opus_head(&head(1, 0)), Err(SourceError::Malformed("OpusHead")));
        assert_eq!(parse_opus_head(&head(1, 2)[..18]), Err(SourceError::Malformed("OpusHead")));
        assert_eq!(parse_opus_head(b"Vorbis"), Err(SourceError::BadSignature("Ogg Opus")));
    }

    #[test]
    fn fixture() {
        let s = read(include_bytes!("../../assets/opus.ogg")).unwrap();
        assert_eq!((s.channels, s.pre_skip), (2, 312));
        // 4 s + 312 samples of pre-skip in 20 ms packets: 201 (`ffprobe -count_packets` agrees).
        assert_eq!(s.frames.len(), 201);
        let ts: Vec<u64> = s.frames.iter().map(|f| f.rtp_ts).collect();
        let want: Vec<u64> = (0..201).map(|i| i * 960).collect();
        assert_eq!(ts, want);
    }

    #[test]
    fn not_ogg() {
        assert!(read(b"").is_err());
        assert!(read(b"OggS garbage").is_err());
        let truncated = &include_bytes!("../../assets/opus.ogg")[..5000];
        assert_eq!(read(truncated).unwrap_err(), SourceError::Malformed("Ogg page"));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = read(&data);
            let _ = packet_samples(&data);
        }

        #[test]
        fn corrupt_fixture_never_panics(at in 0usize..29_213, byte in any::<u8>(), cut in 0usize..29_213) {
            let mut data = include_bytes!("../../assets/opus.ogg").to_vec();
            data[at] = byte;
            data.truncate(cut.max(1));
            let _ = read(&data);
        }
    }
}
