//! EBML primitives (RFC 8794): element IDs, variable-size integers (VINTs) and the element
//! helpers the Matroska writer builds on.
//!
//! Pure: no I/O. Every function appends to a caller-owned `Vec<u8>` and only ever appends, so
//! the invariant "bytes already in `out` are never touched" holds; in-place rewrites are the
//! caller's business (see [`super::Patch`]).

/// The 8-byte "unknown size" VINT (RFC 8794 §6.2: all VINT_DATA bits set).
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// The largest size an 8-byte VINT can carry (all-ones is reserved for "unknown").
pub const MAX_SIZE: u64 = (1 << 56) - 2;

/// ID of the Void element (RFC 8794 §11.3.2), one byte.
pub const VOID_ID: u32 = 0xEC;

/// Encoded length of a float64 element with a two-byte ID (ID + 1-byte size + 8 bytes).
pub const FLOAT64_ELEMENT_LEN_ID2: usize = 2 + 1 + 8;

/// Appends an element ID. Matroska IDs keep their VINT marker bits, so an ID is written as its
/// big-endian bytes without leading zero bytes (RFC 8794 §5).
pub fn write_id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Number of bytes of the shortest VINT that can carry `value` (1..=8). Values whose VINT_DATA
/// would be all ones are reserved (RFC 8794 §6.2), so `127` needs two bytes.
pub fn vint_len(value: u64) -> usize {
    (1..8).find(|&n| value < (1u64 << (7 * n)) - 1).unwrap_or(8)
}

/// Appends `value` (clamped to [`MAX_SIZE`]) as the shortest VINT (RFC 8794 §4).
pub fn write_size(out: &mut Vec<u8>, value: u64) {
    let value = value.min(MAX_SIZE);
    write_size_fixed(out, value, vint_len(value));
}

/// Appends `value` as a VINT of exactly `len` bytes (1..=8), as needed for sizes patched later.
/// `value` must fit (`value < 2^(7*len) - 1`); it is clamped to the largest that does.
pub fn write_size_fixed(out: &mut Vec<u8>, value: u64, len: usize) {
    let len = len.clamp(1, 8);
    let max = (1u64 << (7 * len)) - 2;
    let marked = value.min(max) | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// Returns `value` (clamped to [`MAX_SIZE`]) as an 8-byte VINT: the width we use for every
/// size patched on close, so a patch never changes the file's length.
pub fn size8(value: u64) -> [u8; 8] {
    (value.min(MAX_SIZE) | (1 << 56)).to_be_bytes()
}

/// Appends an element header: ID then the shortest size VINT.
pub fn write_header(out: &mut Vec<u8>, id: u32, size: u64) {
    write_id(out, id);
    write_size(out, size);
}

/// Appends an unsigned-integer element with the fewest bytes (at least one).
pub fn uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    binary(out, id, &bytes[skip..]);
}

/// Appends an unsigned-integer element always 8 bytes wide (for values patched later).
pub fn uint8(out: &mut Vec<u8>, id: u32, value: u64) {
    binary(out, id, &value.to_be_bytes());
}

/// Appends a float element, 8 bytes (RFC 8794 §7.3).
pub fn float(out: &mut Vec<u8>, id: u32, value: f64) {
    binary(out, id, &value.to_be_bytes());
}

/// Appends a string element (ASCII or UTF-8; no terminating zero).
pub fn string(out: &mut Vec<u8>, id: u32, value: &str) {
    binary(out, id, value.as_bytes());
}

/// Appends a binary element (also the body of any element whose payload is already built,
/// such as a master element's children).
pub fn binary(out: &mut Vec<u8>, id: u32, value: &[u8]) {
    write_header(out, id, value.len() as u64);
    out.extend_from_slice(value);
}

/// Appends a Void element of exactly `total` bytes including its header (RFC 8794 §11.3.2).
/// A total of 0 appends nothing.
///
/// # Panics
/// If `total == 1`: no element is one byte long. Callers reserve constant sizes ≥ 2, so this
/// is an internal invariant, never input-derived.
pub fn void(out: &mut Vec<u8>, total: usize) {
    assert!(total != 1, "a Void element is at least 2 bytes");
    if total == 0 {
        return;
    }
    // 1-byte ID + 1-byte size carries up to 126 bytes; beyond, an 8-byte size (≥ 9 total).
    let (size_len, payload) = if total - 2 < 127 { (1, total - 2) } else { (8, total - 9) };
    write_id(out, VOID_ID);
    write_size_fixed(out, payload as u64, size_len);
    out.resize(out.len() + payload, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut v = Vec::new();
        f(&mut v);
        v
    }

    #[test]
    fn ids() {
        let cases: &[(u32, &[u8])] = &[
            (0xEC, &[0xEC]),
            (0x4286, &[0x42, 0x86]),
            (0x2AD7B1, &[0x2A, 0xD7, 0xB1]),
            (0x1A45DFA3, &[0x1A, 0x45, 0xDF, 0xA3]),
        ];
        for (id, want) in cases {
            assert_eq!(run(|o| write_id(o, *id)), *want, "id {id:#x}");
        }
    }

    #[test]
    fn sizes() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x80]),
            (1, &[0x81]),
            (126, &[0xFE]),
            (127, &[0x40, 0x7F]),
            (16382, &[0x7F, 0xFE]),
            (16383, &[0x20, 0x3F, 0xFF]),
            (MAX_SIZE, &[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]),
            (u64::MAX, &[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]),
        ];
        for (v, want) in cases {
            assert_eq!(run(|o| write_size(o, *v)), *want, "size {v}");
        }
    }

    #[test]
    fn fixed_sizes() {
        let cases: &[(u64, usize, &[u8])] = &[
            (0, 8, &[0x01, 0, 0, 0, 0, 0, 0, 0]),
            (5, 1, &[0x85]),
            (5, 2, &[0x40, 0x05]),
            (0x1234, 8, &[0x01, 0, 0, 0, 0, 0, 0x12, 0x34]),
            (500, 1, &[0xFE]),
        ];
        for (v, len, want) in cases {
            assert_eq!(run(|o| write_size_fixed(o, *v, *len)), *want, "{v}/{len}");
        }
        assert_eq!(size8(0x1234).as_slice(), run(|o| write_size_fixed(o, 0x1234, 8)));
        assert_ne!(size8(MAX_SIZE), UNKNOWN_SIZE);
    }

    #[test]
    fn elements() {
        let cases: Vec<(Vec<u8>, &[u8])> = vec![
            (run(|o| uint(o, 0xD7, 0)), &[0xD7, 0x81, 0x00]),
            (run(|o| uint(o, 0xD7, 1)), &[0xD7, 0x81, 0x01]),
            (run(|o| uint(o, 0x2AD7B1, 1_000_000)), &[0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]),
            (run(|o| uint8(o, 0x53AC, 1)), &[0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, 1]),
            (run(|o| float(o, 0x4489, 1.0)), &[0x44, 0x89, 0x88, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]),
            (run(|o| string(o, 0x4282, "webm")), &[0x42, 0x82, 0x84, b'w', b'e', b'b', b'm']),
            (run(|o| binary(o, 0x63A2, &[])), &[0x63, 0xA2, 0x80]),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        assert_eq!(run(|o| float(o, 0x4489, 0.0)).len(), FLOAT64_ELEMENT_LEN_ID2);
    }

    #[test]
    fn voids_have_exact_length() {
        for total in [0, 2, 3, 11, 80, 128, 129, 130, 1000] {
            let v = run(|o| void(o, total));
            assert_eq!(v.len(), total, "total {total}");
            if total > 0 {
                assert_eq!(v[0], 0xEC);
            }
        }
        assert_eq!(run(|o| void(o, 2)), [0xEC, 0x80]);
        assert_eq!(run(|o| void(o, 129))[..9], [0xEC, 1, 0, 0, 0, 0, 0, 0, 120]);
    }
}
