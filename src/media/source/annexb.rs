//! Splits an H.264 Annex-B elementary stream (what `ffmpeg -f h264` writes) into access units
//! (H.264 §7.4.1.2.3). Pure and total: each access unit is the exact byte range of the file it
//! covers (start codes included), so the units concatenate back to the input.

use super::{SourceError, SourceFrame};
use crate::media::codec::h264;

/// Splits an H.264 Annex-B elementary stream into access units at `fps` frames per second.
/// A unit starts at an access unit delimiter, at an SPS/PPS/SEI (or types 14-18) after a slice,
/// or at a slice with `first_mb_in_slice` = 0 after a slice. `rtp_ts` = index × 90000 / fps.
pub fn read(data: &[u8], fps: u32) -> Result<Vec<SourceFrame>, SourceError> {
    if fps == 0 {
        return Err(SourceError::Malformed("frame rate"));
    }
    let starts = access_unit_starts(data);
    if starts.is_empty() && !data.is_empty() {
        return Err(SourceError::BadSignature("H.264 Annex-B"));
    }
    let ends = starts.iter().skip(1).copied().chain([data.len()]);
    let frames = starts
        .iter()
        .zip(ends)
        .enumerate()
        .map(|(i, (&start, end))| SourceFrame {
            rtp_ts: i as u64 * 90_000 / u64::from(fps),
            data: data.get(start..end).unwrap_or_default().to_vec(),
        })
        .collect();
    Ok(frames)
}

/// Byte offsets where access units begin; the first is always 0 when there is a NAL unit.
fn access_unit_starts(data: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut in_au = false;
    let mut seen_slice = false;
    for (offset, nal) in h264::nal_units(data) {
        let t = h264::nal_type(nal).unwrap_or(0);
        let is_slice = matches!(t, 1 | 5);
        let new_au = match t {
            9 => in_au,
            _ if h264::is_au_start_type(t) => seen_slice,
            1 | 5 => seen_slice && h264::first_mb_in_slice(nal) == Some(0),
            _ => false,
        };
        if !in_au || new_au {
            starts.push(if starts.is_empty() { 0 } else { offset });
            in_au = true;
            seen_slice = false;
        }
        seen_slice |= is_slice;
    }
    starts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::h264::is_keyframe;
    use proptest::prelude::*;

    const AUD: &[u8] = &[0, 0, 0, 1, 0x09, 0xf0];
    const SPS: &[u8] = &[0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x0d];
    const IDR: &[u8] = &[0, 0, 1, 0x65, 0x88]; // first_mb_in_slice = 0
    const P0: &[u8] = &[0, 0, 1, 0x41, 0x9a]; // first_mb_in_slice = 0
    const P1: &[u8] = &[0, 0, 1, 0x41, 0x5a]; // first_mb_in_slice = 1

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn split_table() {
        let cases: Vec<(Vec<u8>, Vec<Vec<u8>>)> = vec![
            (cat(&[AUD, IDR, AUD, P0]), vec![cat(&[AUD, IDR]), cat(&[AUD, P0])]),
            (cat(&[SPS, IDR, P0, P1]), vec![cat(&[SPS, IDR]), cat(&[P0, P1])]),
            (cat(&[IDR, SPS, IDR]), vec![IDR.to_vec(), cat(&[SPS, IDR])]),
            (cat(&[&[7, 7], IDR]), vec![cat(&[&[7, 7], IDR])]),
            (vec![], vec![]),
        ];
        for (stream, want) in cases {
            let got: Vec<Vec<u8>> = read(&stream, 30).unwrap().into_iter().map(|f| f.data).collect();
            assert_eq!(got, want, "{stream:02x?}");
        }
        assert_eq!(read(b"nothing", 30), Err(SourceError::BadSignature("H.264 Annex-B")));
        assert_eq!(read(IDR, 0), Err(SourceError::Malformed("frame rate")));
    }

    #[test]
    fn fixture() {
        let file = include_bytes!("../../assets/h264.h264");
        let aus = read(file, 30).unwrap();
        assert_eq!(aus.len(), 120);
        assert_eq!(aus.concat_data(), file.to_vec());
        let keys: Vec<usize> = (0..aus.len()).filter(|&i| is_keyframe(&aus[i].data)).collect();
        assert_eq!(keys, [0, 30, 60, 90]);
        assert!(aus.iter().all(|f| f.data.starts_with(&[0, 0, 0, 1, 9])));
        assert_eq!((aus[1].rtp_ts, aus[119].rtp_ts), (3000, 357_000));
    }

    trait ConcatData {
        fn concat_data(&self) -> Vec<u8>;
    }

    impl ConcatData for Vec<SourceFrame> {
        fn concat_data(&self) -> Vec<u8> {
            self.iter().flat_map(|f| f.data.iter().copied()).collect()
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_covers_input(data in proptest::collection::vec(0u8..4, 0..96)) {
            if let Ok(aus) = read(&data, 30) {
                prop_assert!(aus.is_empty() || aus.concat_data() == data);
            }
        }
    }
}
