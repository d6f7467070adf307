//! H.264 / AVC from the bitstream: Annex-B NAL unit iteration, keyframes (IDR slices), picture
//! size from the sequence parameter set, the `avcC` record, and the Annex-B → length-prefixed
//! conversion containers store. Also owns [`BitReader`], the MSB-first bit reader VP9 and AV1
//! reuse.
//!
//! Pure, and total on untrusted bytes: every read is bounds-checked (`Option`), nothing is
//! indexed directly, and allocations are bounded by the input length.

use super::VideoParams;

/// NAL unit type of an IDR slice (H.264 Table 7-1).
const NAL_IDR: u8 = 5;
/// NAL unit type of a non-IDR slice.
const NAL_SLICE: u8 = 1;
/// NAL unit type of supplemental enhancement information.
const NAL_SEI: u8 = 6;
/// NAL unit type of a sequence parameter set.
const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
const NAL_AUD: u8 = 9;

/// Profiles whose SPS carries chroma format and bit depths (H.264 §7.3.2.1.1).
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];
/// Profiles whose `avcC` carries the 4 extension bytes (ISO/IEC 14496-15 §5.3.3.1.2).
const AVCC_EXT_PROFILES: [u8; 4] = [100, 110, 122, 144];

/// MSB-first bit reader over a byte slice; every read returns `None` past the end.
#[derive(Debug, Clone)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    /// One bit.
    pub(crate) fn bit(&mut self) -> Option<bool> {
        let byte = *self.data.get(self.pos / 8)?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Some(bit == 1)
    }

    /// `n` bits (at most 64) as an unsigned number, MSB first: the specs' `u(n)` / `f(n)`.
    pub(crate) fn bits(&mut self, n: u32) -> Option<u64> {
        if n > 64 {
            return None;
        }
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Some(v)
    }

    /// `n` bits (at most 32) as a `u32`.
    pub(crate) fn bits32(&mut self, n: u32) -> Option<u32> {
        if n > 32 {
            return None;
        }
        u32::try_from(self.bits(n)?).ok()
    }

    /// Skips `n` bits; `None` if fewer remain.
    pub(crate) fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.pos.checked_add(n)?;
        (end <= self.data.len().saturating_mul(8)).then(|| self.pos = end)
    }

    /// Unsigned Exp-Golomb `ue(v)` (H.264 §9.1); at most 31 leading zeros.
    pub(crate) fn ue(&mut self) -> Option<u32> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        let rest = self.bits(zeros)?;
        u32::try_from((1u64 << zeros) - 1 + rest).ok()
    }

    /// Signed Exp-Golomb `se(v)` (H.264 §9.1.1).
    pub(crate) fn se(&mut self) -> Option<i64> {
        let k = i64::from(self.ue()?);
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Iterator over the NAL units of an Annex-B byte stream (H.264 Annex B), 3- or 4-byte start
/// codes. Yields `(offset, nal)`: `offset` is where the unit's start code (with its leading
/// zero bytes) begins, `nal` the unit without start code or trailing zero bytes.
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    data: &'a [u8],
    /// Where the search for the next start code begins (end of the previous unit).
    pos: usize,
}

/// The NAL units of an Annex-B access unit or stream, see [`NalUnits`].
pub fn nal_units(data: &[u8]) -> NalUnits<'_> {
    NalUnits { data, pos: 0 }
}

/// Index of the next `00 00 01` at or after `from`.
fn find_start_code(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    rest.windows(3).position(|w| w == [0, 0, 1]).map(|i| i + from)
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let sc = find_start_code(self.data, self.pos)?;
            let mut offset = sc;
            while offset > self.pos && self.data.get(offset - 1) == Some(&0) {
                offset -= 1;
            }
            let start = sc + 3;
            let mut end = find_start_code(self.data, start).unwrap_or(self.data.len());
            while end > start && self.data.get(end - 1) == Some(&0) {
                end -= 1;
            }
            self.pos = end.max(start);
            match self.data.get(start..end) {
                Some(nal) if !nal.is_empty() => return Some((offset, nal)),
                _ => continue,
            }
        }
    }
}

/// `nal_unit_type` from the first header byte (H.264 §7.3.1).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1f)
}

/// Removes emulation prevention bytes (`00 00 03` → `00 00`, H.264 §7.4.1): NAL → RBSP.
pub fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// `first_mb_in_slice` of a slice NAL (types 1 and 5; H.264 §7.3.3), `None` otherwise.
pub fn first_mb_in_slice(nal: &[u8]) -> Option<u32> {
    if !matches!(nal_type(nal)?, NAL_SLICE | NAL_IDR) {
        return None;
    }
    let head = unescape(nal.get(1..nal.len().min(16))?);
    BitReader::new(&head).ue()
}

/// Whether the NAL type starts a new access unit after a VCL NAL (H.264 §7.4.1.2.3).
pub fn is_au_start_type(t: u8) -> bool {
    matches!(t, NAL_SEI | NAL_SPS | NAL_PPS | NAL_AUD | 14..=18)
}

/// Whether the Annex-B access unit contains an IDR slice.
pub fn is_keyframe(frame: &[u8]) -> bool {
    nal_units(frame).any(|(_, nal)| nal_type(nal) == Some(NAL_IDR))
}

/// What the SPS says (H.264 §7.3.2.1.1); only the fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sps {
    /// `profile_idc`.
    pub profile_idc: u8,
    /// The constraint flags byte (`profile_compatibility` in `avcC`).
    pub constraint_flags: u8,
    /// `level_idc`.
    pub level_idc: u8,
    /// `chroma_format_idc` (1 = 4:2:0 when absent).
    pub chroma_format_idc: u32,
    /// `bit_depth_luma_minus8`.
    pub bit_depth_luma_minus8: u32,
    /// `bit_depth_chroma_minus8`.
    pub bit_depth_chroma_minus8: u32,
    /// Width in pixels after cropping.
    pub width: u32,
    /// Height in pixels after cropping.
    pub height: u32,
}

/// Parses an SPS NAL unit (header byte included, emulation prevention still in).
pub fn parse_sps(nal: &[u8]) -> Option<Sps> {
    if nal_type(nal)? != NAL_SPS {
        return None;
    }
    let rbsp = unescape(nal.get(1..)?);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)? as u8;
    let constraint_flags = r.bits(8)? as u8;
    let level_idc = r.bits(8)? as u8;
    let sps_id = r.ue()?;
    (sps_id <= 31).then_some(())?;
    let chroma =
        if HIGH_PROFILES.contains(&profile_idc) { read_chroma_info(&mut r)? } else { ChromaInfo::DEFAULT };
    skip_frame_num_and_poc(&mut r)?;
    let _max_num_ref_frames = r.ue()?;
    let _gaps_in_frame_num_allowed = r.bit()?;
    let (width, height) = read_frame_size(&mut r, &chroma)?;
    Some(Sps {
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc: chroma.format_idc,
        bit_depth_luma_minus8: chroma.depth_luma_minus8,
        bit_depth_chroma_minus8: chroma.depth_chroma_minus8,
        width,
        height,
    })
}

/// The chroma part of a high-profile SPS.
#[derive(Debug, Clone, Copy)]
struct ChromaInfo {
    format_idc: u32,
    separate_colour_plane: bool,
    depth_luma_minus8: u32,
    depth_chroma_minus8: u32,
}

impl ChromaInfo {
    /// The values implied when the SPS omits them: 4:2:0, 8 bits (H.264 §7.4.2.1.1).
    const DEFAULT: ChromaInfo = ChromaInfo {
        format_idc: 1,
        separate_colour_plane: false,
        depth_luma_minus8: 0,
        depth_chroma_minus8: 0,
    };
}

/// `chroma_format_idc` ... `seq_scaling_matrix_present_flag` (H.264 §7.3.2.1.1).
fn read_chroma_info(r: &mut BitReader<'_>) -> Option<ChromaInfo> {
    let format_idc = r.ue()?;
    (format_idc <= 3).then_some(())?;
    let separate_colour_plane = format_idc == 3 && r.bit()?;
    let depth_luma_minus8 = r.ue()?;
    let depth_chroma_minus8 = r.ue()?;
    (depth_luma_minus8 <= 6 && depth_chroma_minus8 <= 6).then_some(())?;
    let _qpprime_y_zero_transform_bypass = r.bit()?;
    if r.bit()? {
        let lists = if format_idc == 3 { 12 } else { 8 };
        for i in 0..lists {
            if r.bit()? {
                skip_scaling_list(r, if i < 6 { 16 } else { 64 })?;
            }
        }
    }
    Some(ChromaInfo { format_idc, separate_colour_plane, depth_luma_minus8, depth_chroma_minus8 })
}

/// `scaling_list()` (H.264 §7.3.2.1.1.1): reads the deltas, keeps nothing.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Some(())
}

/// `log2_max_frame_num_minus4` and the picture order count fields (H.264 §7.3.2.1.1).
fn skip_frame_num_and_poc(r: &mut BitReader<'_>) -> Option<()> {
    (r.ue()? <= 12).then_some(())?;
    match r.ue()? {
        0 => (r.ue()? <= 12).then_some(()),
        1 => {
            let _delta_pic_order_always_zero = r.bit()?;
            let _offset_for_non_ref_pic = r.se()?;
            let _offset_for_top_to_bottom_field = r.se()?;
            let cycle = r.ue()?;
            (cycle <= 255).then_some(())?;
            for _ in 0..cycle {
                let _offset_for_ref_frame = r.se()?;
            }
            Some(())
        }
        2 => Some(()),
        _ => None,
    }
}

/// Picture size in macroblocks, field/frame coding and cropping → pixels (H.264 §7.4.2.1.1,
/// equations 7-13 to 7-20).
fn read_frame_size(r: &mut BitReader<'_>, chroma: &ChromaInfo) -> Option<(u32, u32)> {
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.bit()?;
    }
    let _direct_8x8_inference = r.bit()?;
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let mut width = width_mbs * 16;
    let mut height = height_map_units * 16 * field_factor;
    if r.bit()? {
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        let array_type = if chroma.separate_colour_plane { 0 } else { chroma.format_idc };
        let (sub_w, sub_h) = match array_type {
            0 => (1, 1),
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let crop_x = sub_w * (u64::from(left) + u64::from(right));
        let crop_y = sub_h * field_factor * (u64::from(top) + u64::from(bottom));
        width = width.checked_sub(crop_x)?;
        height = height.checked_sub(crop_y)?;
    }
    let (w, h) = (u32::try_from(width).ok()?, u32::try_from(height).ok()?);
    (w > 0 && h > 0).then_some((w, h))
}

/// Picture size and `avcC` from a keyframe's in-band SPS and PPS; `None` without an IDR
/// slice, an SPS or a PPS, or when the SPS does not parse.
pub fn params(frame: &[u8]) -> Option<VideoParams> {
    if !is_keyframe(frame) {
        return None;
    }
    let mut sps_list: Vec<&[u8]> = Vec::new();
    let mut pps_list: Vec<&[u8]> = Vec::new();
    for (_, nal) in nal_units(frame) {
        let list = match nal_type(nal) {
            Some(NAL_SPS) => &mut sps_list,
            Some(NAL_PPS) => &mut pps_list,
            _ => continue,
        };
        if !list.contains(&nal) {
            list.push(nal);
        }
    }
    let sps = parse_sps(sps_list.first()?)?;
    (!pps_list.is_empty()).then_some(())?;
    let avcc = build_avcc(&sps, &sps_list, &pps_list)?;
    Some(VideoParams { width: sps.width, height: sps.height, codec_private: Some(avcc) })
}

/// `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 §5.3.3.1) with 4-byte NAL lengths;
/// `None` if there are too many parameter sets or one is longer than 65535 bytes.
pub fn build_avcc(sps: &Sps, sps_list: &[&[u8]], pps_list: &[&[u8]]) -> Option<Vec<u8>> {
    if sps_list.len() > 31 || pps_list.len() > 255 {
        return None;
    }
    let mut out = avcc_header(sps.profile_idc, sps.constraint_flags, sps.level_idc);
    out.push(0xE0 | sps_list.len() as u8);
    push_parameter_sets(&mut out, sps_list)?;
    out.push(pps_list.len() as u8);
    push_parameter_sets(&mut out, pps_list)?;
    if AVCC_EXT_PROFILES.contains(&sps.profile_idc) {
        out.push(0xFC | (sps.chroma_format_idc & 3) as u8);
        out.push(0xF8 | (sps.bit_depth_luma_minus8 & 7) as u8);
        out.push(0xF8 | (sps.bit_depth_chroma_minus8 & 7) as u8);
        out.push(0); // numOfSequenceParameterSetExt
    }
    Some(out)
}

/// configurationVersion, profile, compatibility, level, `0xFF` (lengthSizeMinusOne = 3).
fn avcc_header(profile: u8, compat: u8, level: u8) -> Vec<u8> {
    vec![1, profile, compat, level, 0xFF]
}

/// Each set as a 16-bit big-endian length and its bytes.
fn push_parameter_sets(out: &mut Vec<u8>, sets: &[&[u8]]) -> Option<()> {
    for set in sets {
        out.extend_from_slice(&u16::try_from(set.len()).ok()?.to_be_bytes());
        out.extend_from_slice(set);
    }
    Some(())
}

/// An `avcC` with no SPS and no PPS, for a stream that must start before its first keyframe:
/// decoders then use the in-band parameter sets every stored keyframe carries. The
/// high-profile extension bytes are omitted (their values are unknown without an SPS).
pub fn avcc_without_parameter_sets(profile: u8, compat: u8, level: u8) -> Vec<u8> {
    let mut out = avcc_header(profile, compat, level);
    out.extend_from_slice(&[0xE0, 0]);
    out
}

/// Appends every NAL unit of the Annex-B `frame` except access unit delimiters to `out`, each
/// as a 4-byte big-endian length and the NAL bytes (ISO/IEC 14496-15 §5.3.2, sample format).
pub fn annexb_to_avcc(frame: &[u8], out: &mut Vec<u8>) {
    for (_, nal) in nal_units(frame) {
        if nal_type(nal) == Some(NAL_AUD) {
            continue;
        }
        if let Ok(len) = u32::try_from(nal.len()) {
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(nal);
        }
    }
}

/// The NAL units of a 4-byte length-prefixed sample; stops at the first truncated unit.
pub fn avcc_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let nal = tail.get(..len)?;
        rest = tail.get(len..)?;
        Some(nal)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::annexb;
    use proptest::prelude::*;

    /// SPS from `ffmpeg -c:v libx264` (see each case) and from the fixture.
    const SPS_BASELINE_320X240: &[u8] = &[
        0x67, 0x42, 0xc0, 0x0d, 0xda, 0x05, 0x07, 0xec, 0x04, 0x40, 0x00, 0x00, 0x03, 0x00, 0x40, 0x00, 0x00,
        0x0f, 0x23, 0xc5, 0x0a, 0xa8,
    ];
    /// `-profile:v high`, 1920x1080 (coded 1088, cropped).
    const SPS_HIGH_1080P: &[u8] = &[
        0x67, 0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00,
        0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
    ];
    /// `-profile:v high444 -pix_fmt yuv444p`, 100x50.
    const SPS_444_100X50: &[u8] = &[
        0x67, 0xf4, 0x00, 0x0a, 0x91, 0x9b, 0x28, 0xe4, 0xf1, 0xb1, 0xf8, 0x08, 0x80, 0x00, 0x00, 0x03, 0x00,
        0x80, 0x00, 0x00, 0x1e, 0x07, 0x89, 0x12, 0xcb,
    ];
    /// `-profile:v high422 -pix_fmt yuv422p10le`, 100x50.
    const SPS_422_10BIT_100X50: &[u8] = &[
        0x67, 0x7a, 0x00, 0x0a, 0xb6, 0xcd, 0x94, 0x72, 0x79, 0xe3, 0xf0, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01,
        0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x12, 0x25, 0x96,
    ];
    /// `-x264-params interlaced=1:tff=1`, 320x240 (frame_mbs_only_flag = 0).
    const SPS_INTERLACED_320X240: &[u8] = &[
        0x67, 0x64, 0x00, 0x15, 0xac, 0xd9, 0x41, 0x41, 0x0f, 0xcb, 0x80, 0x88, 0x00, 0x00, 0x03, 0x00, 0x08,
        0x00, 0x00, 0x03, 0x01, 0xe0, 0xf8, 0xa1, 0x4c, 0xb0,
    ];
    /// `-profile:v high`, 322x242 (cropping on both axes).
    const SPS_322X242: &[u8] = &[
        0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x50, 0x87, 0x88, 0x88, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00,
        0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x50, 0xa6, 0x58,
    ];

    /// MSB-first bit writer with Exp-Golomb, to build SPSes x264 does not write.
    #[derive(Default)]
    struct BitWriter {
        bits: Vec<bool>,
    }

    impl BitWriter {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            self.bits.extend((0..n).rev().map(|i| (v >> i) & 1 == 1));
            self
        }
        fn ue(&mut self, v: u32) -> &mut Self {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.u(len - 1, 0).u(len, x)
        }
        fn se(&mut self, v: i32) -> &mut Self {
            self.ue(if v > 0 { 2 * v as u32 - 1 } else { 2 * v.unsigned_abs() })
        }
        fn bytes(&mut self) -> Vec<u8> {
            self.u(1, 1); // rbsp_stop_one_bit
            self.bits
                .chunks(8)
                .map(|c| c.iter().enumerate().fold(0, |b, (i, &x)| b | (u8::from(x) << (7 - i))))
                .collect()
        }
    }

    #[test]
    fn bit_reader_exp_golomb() {
        let mut w = BitWriter::default();
        w.ue(0).ue(1).ue(2).ue(254).se(-3).se(3).se(0).u(5, 0x15);
        let data = w.bytes();
        let mut r = BitReader::new(&data);
        assert_eq!((r.ue(), r.ue(), r.ue(), r.ue()), (Some(0), Some(1), Some(2), Some(254)));
        assert_eq!((r.se(), r.se(), r.se()), (Some(-3), Some(3), Some(0)));
        assert_eq!(r.bits(5), Some(0x15));
        assert_eq!(BitReader::new(&[0, 0, 0, 0, 0]).ue(), None);
        assert_eq!(BitReader::new(&[0xff]).bits(9), None);
        assert_eq!(BitReader::new(&[0xff]).skip(9), None);
        assert_eq!(BitReader::new(&[0xff; 9]).bits32(33), None);
    }

    #[test]
    fn sps_table() {
        // (sps, profile, chroma, luma depth - 8, width, height)
        type Case = (&'static [u8], u8, u32, u32, u32, u32);
        let cases: &[Case] = &[
            (SPS_BASELINE_320X240, 66, 1, 0, 320, 240),
            (SPS_HIGH_1080P, 100, 1, 0, 1920, 1080),
            (SPS_444_100X50, 244, 3, 0, 100, 50),
            (SPS_422_10BIT_100X50, 122, 2, 2, 100, 50),
            (SPS_INTERLACED_320X240, 100, 1, 0, 320, 240),
            (SPS_322X242, 100, 1, 0, 322, 242),
        ];
        for &(nal, profile, chroma, depth, w, h) in cases {
            let sps = parse_sps(nal).unwrap();
            let got = (sps.profile_idc, sps.chroma_format_idc, sps.bit_depth_luma_minus8);
            assert_eq!(got, (profile, chroma, depth), "{nal:02x?}");
            assert_eq!((sps.width, sps.height), (w, h), "{nal:02x?}");
        }
        for nal in [&SPS_HIGH_1080P[..10], &[0x68, 0x64, 0, 0x28], &[]] {
            assert_eq!(parse_sps(nal), None);
        }
    }

    /// A high-profile SPS with scaling lists and picture order count type 1.
    fn crafted_sps(crop_bottom: u32) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.u(8, 0x67).u(8, 100).u(8, 0).u(8, 30).ue(0); // header, profile, flags, level, id
        w.ue(1).ue(0).ue(0).u(1, 0).u(1, 1); // 4:2:0, 8 bit, qpprime, scaling matrix present
        w.u(1, 1); // list 0 (4x4): deltas until nextScale hits 0, then no more reads
        w.se(-8);
        w.u(1, 0).u(1, 0).u(1, 0).u(1, 0).u(1, 0); // lists 1-5 absent
        w.u(1, 1); // list 6 (8x8): 64 deltas of +1
        for _ in 0..64 {
            w.se(1);
        }
        w.u(1, 0); // list 7 absent
        w.ue(0).ue(1).u(1, 0).se(-1).se(2).ue(3).se(1).se(-1).se(0); // frame num, poc type 1
        w.ue(4).u(1, 0).ue(39).ue(29).u(1, 1).u(1, 1); // refs, gaps, 640x480, frame_mbs_only
        w.u(1, 1).ue(0).ue(0).ue(0).ue(crop_bottom); // cropping
        w.u(1, 0); // no VUI
        w.bytes()
    }

    #[test]
    fn crafted_sps_with_scaling_lists_and_poc_type_1() {
        let sps = parse_sps(&crafted_sps(4)).unwrap();
        assert_eq!((sps.width, sps.height, sps.level_idc), (640, 472, 30));
        assert_eq!(parse_sps(&crafted_sps(1000)), None); // cropped below zero
    }

    fn annexb(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter().flat_map(|n| [&[0, 0, 0, 1][..], n].concat()).collect()
    }

    #[test]
    fn nal_iterator_table() {
        type Case = (&'static [u8], &'static [(usize, &'static [u8])]);
        let cases: &[Case] = &[
            (&[0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 1], &[(0, &[9, 0xf0]), (6, &[0x65, 1])]),
            (&[0, 0, 1, 0x67, 0, 0, 0, 0, 1, 0x68], &[(0, &[0x67]), (4, &[0x68])]),
            (&[0xaa, 0, 0, 1, 0x41, 0, 0, 1], &[(1, &[0x41])]),
            (&[0, 0, 1, 0, 0, 1], &[]),
            (&[0, 0, 1], &[]),
            (&[1, 2, 3], &[]),
        ];
        for (data, want) in cases {
            let got: Vec<(usize, &[u8])> = nal_units(data).collect();
            assert_eq!(&got, want, "{data:02x?}");
        }
    }

    #[test]
    fn keyframe_and_params() {
        let pps: &[u8] = &[0x68, 0xce, 0x3c, 0x80];
        let idr: &[u8] = &[0x65, 0x88, 0x84];
        let key = annexb(&[&[0x09, 0xf0], SPS_HIGH_1080P, pps, idr]);
        assert!(is_keyframe(&key));
        let p = params(&key).unwrap();
        assert_eq!((p.width, p.height), (1920, 1080));
        let mut want = vec![1, 100, 0, 0x28, 0xff, 0xe1, 0, SPS_HIGH_1080P.len() as u8];
        want.extend_from_slice(SPS_HIGH_1080P);
        want.extend_from_slice(&[1, 0, 4]);
        want.extend_from_slice(pps);
        want.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0]);
        assert_eq!(p.codec_private.unwrap(), want);
        let no_pps = annexb(&[SPS_HIGH_1080P, idr]);
        let no_idr = annexb(&[SPS_HIGH_1080P, pps, &[0x41, 0x9a]]);
        for frame in [no_pps, no_idr, vec![]] {
            assert_eq!(params(&frame), None);
        }
        assert!(!is_keyframe(&annexb(&[&[0x41, 0x9a]])));
    }

    #[test]
    fn avcc_without_parameter_sets_shape() {
        assert_eq!(avcc_without_parameter_sets(66, 0xc0, 31), [1, 66, 0xc0, 31, 0xff, 0xe0, 0]);
    }

    #[test]
    fn annexb_to_avcc_drops_auds() {
        let frame = annexb(&[&[0x09, 0xf0], &[0x67, 1, 2], &[0x65, 0, 0, 3, 1]]);
        let mut out = vec![];
        annexb_to_avcc(&frame, &mut out);
        assert_eq!(out, [0, 0, 0, 3, 0x67, 1, 2, 0, 0, 0, 5, 0x65, 0, 0, 3, 1]);
        let nals: Vec<&[u8]> = avcc_nals(&out).collect();
        assert_eq!(nals, [&[0x67, 1, 2][..], &[0x65, 0, 0, 3, 1]]);
        assert_eq!(avcc_nals(&out[..10]).count(), 1);
        assert_eq!(avcc_nals(&[0xff, 0xff, 0xff, 0xff, 1]).count(), 0);
    }

    #[test]
    fn fixture() {
        let aus = annexb::read(include_bytes!("../../assets/h264.h264"), 30).unwrap();
        let keys: Vec<usize> = (0..aus.len()).filter(|&i| is_keyframe(&aus[i].data)).collect();
        assert_eq!(keys, [0, 30, 60, 90]);
        let p = params(&aus[0].data).unwrap();
        assert_eq!((p.width, p.height), (320, 240));
        let avcc = p.codec_private.unwrap();
        assert_eq!(avcc[..7], [1, 66, 0xc0, 0x0d, 0xff, 0xe1, 0]);
        assert_eq!(avcc.len(), 6 + 2 + SPS_BASELINE_320X240.len() + 1 + 2 + 4);
        let mut out = vec![];
        annexb_to_avcc(&aus[30].data, &mut out);
        let types: Vec<u8> = avcc_nals(&out).filter_map(nal_type).collect();
        assert_eq!(types[..3], [7, 8, 5]); // AUD dropped, parameter sets kept in-band
        assert!(types[2..].iter().all(|&t| t == 5));
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(3u8), Just(0x67u8), any::<u8>()], 0..96)) {
            let _ = is_keyframe(&data);
            let _ = params(&data);
            let mut out = vec![];
            annexb_to_avcc(&data, &mut out);
            let _ = avcc_nals(&data).count();
            let _ = parse_sps(&data);
            let _ = first_mb_in_slice(&data);
        }

        #[test]
        fn sps_fuzz_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let sps = [&[0x67, 100, 0, 30][..], &tail].concat();
            let _ = parse_sps(&sps);
        }
    }
}
