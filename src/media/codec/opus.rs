//! Opus packet facts from the TOC byte (RFC 6716 §3.1) and frame-count code (§3.2).
//!
//! Pure: no I/O. Invariant: total on any input; a malformed or empty packet gives `None`,
//! never a panic, and `Some(n)` is always in `1..=5760` (at most 120 ms at 48 kHz).

/// A 20 ms CELT silence packet (config 31 = CELT fullband 20 ms, stereo, code 0), used to fill
/// gaps in Ogg so players keep real time.
pub const SILENCE_20MS: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// The longest duration a packet may have: 120 ms at 48 kHz (RFC 6716 §3.2.5).
const MAX_SAMPLES: u32 = 5760;

/// Samples (at 48 kHz) in one frame for a TOC `config` value (RFC 6716 §3.1, Table 2).
fn frame_samples(config: u8) -> u32 {
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    }
}

/// Samples at 48 kHz in this packet (RFC 6716 §3.1), `None` if the packet is empty, a code 3
/// packet lacks its frame count byte or counts zero frames, or it exceeds 120 ms (§3.2.5).
pub fn packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let per_frame = frame_samples(toc >> 3);
    let frames: u32 = match toc & 0x03 {
        0 => 1,
        // §3.2.2, §3.2.3: two frames (equal or different sizes).
        1 | 2 => 2,
        // §3.2.5: the frame count byte's low 6 bits give M, which must be at least 1.
        _ => u32::from(*packet.get(1)? & 0x3F),
    };
    let total = per_frame * frames;
    (frames > 0 && total <= MAX_SAMPLES).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], Option<u32>)] = &[
            (&[], None),
            (&SILENCE_20MS, Some(960)),
            // SILK 10/20/40/60 ms, code 0.
            (&[0 << 3], Some(480)),
            (&[1 << 3], Some(960)),
            (&[2 << 3], Some(1920)),
            (&[3 << 3], Some(2880)),
            (&[11 << 3], Some(2880)),
            // Hybrid 10/20 ms.
            (&[12 << 3], Some(480)),
            (&[13 << 3], Some(960)),
            (&[15 << 3], Some(960)),
            // CELT 2.5/5/10/20 ms.
            (&[16 << 3], Some(120)),
            (&[17 << 3], Some(240)),
            (&[18 << 3], Some(480)),
            (&[19 << 3 | 4], Some(960)),
            // Code 1 and 2: two frames.
            (&[1 << 3 | 1, 0, 0], Some(1920)),
            (&[3 << 3 | 2, 1, 0], Some(5760)),
            (&[3 << 3 | 1], Some(5760)),
            // Code 3: frame count byte.
            (&[16 << 3 | 3], None),
            (&[16 << 3 | 3, 0], None),
            (&[16 << 3 | 3, 48], Some(5760)),
            (&[16 << 3 | 3, 49], None),
            (&[16 << 3 | 3, 0xC0 | 2], Some(240)),
            (&[3 << 3 | 3, 2], Some(5760)),
            (&[3 << 3 | 3, 3], None),
            (&[1 << 3 | 3, 63], None),
        ];
        for (packet, want) in cases {
            assert_eq!(packet_samples(packet), *want, "packet {packet:02x?}");
        }
    }

    #[test]
    fn total_on_every_two_byte_prefix() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                if let Some(n) = packet_samples(&[a, b]) {
                    assert!((1..=MAX_SAMPLES).contains(&n));
                }
            }
        }
    }
}
