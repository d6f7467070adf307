//! AV1 from the bitstream (AV1 Bitstream & Decoding Process Specification; AV1 Codec ISO Media
//! File Format Binding): iteration over low-overhead OBUs (§5.3), keyframes from the frame
//! header (§5.9.2), picture size and the `av1C` record from the sequence header (§5.5), and the
//! stored form (temporal delimiters dropped).
//!
//! Pure, and total on untrusted bytes: OBU sizes are bounded by the data left, leb128 by
//! 8 bytes, operating points by the 5-bit count; malformed input gives `false` / `None`.

use super::h264::BitReader;
use super::VideoParams;

/// `OBU_SEQUENCE_HEADER` (§6.2.2, Table "obu_type").
pub const OBU_SEQUENCE_HEADER: u8 = 1;
/// `OBU_TEMPORAL_DELIMITER`.
pub const OBU_TEMPORAL_DELIMITER: u8 = 2;
/// `OBU_FRAME_HEADER`.
pub const OBU_FRAME_HEADER: u8 = 3;
/// `OBU_FRAME` (frame header + tile group).
pub const OBU_FRAME: u8 = 6;

/// One OBU of a low-overhead bitstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obu<'a> {
    /// `obu_type` (§5.3.2).
    pub obu_type: u8,
    /// The whole OBU: header, optional size field, payload.
    pub raw: &'a [u8],
    /// The payload (`obu_size` bytes after the header and size field).
    pub payload: &'a [u8],
}

/// Iterator over the OBUs of a temporal unit in low-overhead format (§5.2, §5.3). An OBU
/// without `obu_has_size_field` extends to the end of the data. Stops at the first malformed
/// or truncated OBU (see [`Obus::rest`]).
#[derive(Debug, Clone)]
pub struct Obus<'a> {
    data: &'a [u8],
    pos: usize,
    failed: bool,
}

/// The OBUs of `data`, see [`Obus`].
pub fn obus(data: &[u8]) -> Obus<'_> {
    Obus { data, pos: 0, failed: false }
}

impl<'a> Obus<'a> {
    /// The bytes not yet yielded (after the iteration: the malformed tail, if any).
    pub fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or(&[])
    }
}

/// `leb128()` (§4.10.5): at most 8 bytes, value below 2^32. Returns (value, bytes read).
pub fn leb128(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().take(8).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return (value <= u64::from(u32::MAX)).then_some((value, i + 1));
        }
    }
    None
}

/// `obu_header()` and `obu_size` (§5.3.1, §5.3.2) of the OBU at the start of `data`.
fn parse_obu(data: &[u8]) -> Option<Obu<'_>> {
    let &header = data.first()?;
    if header & 0x80 != 0 {
        return None; // obu_forbidden_bit
    }
    let obu_type = (header >> 3) & 0x0f;
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    let header_len = 1 + usize::from(has_extension);
    let after_header = data.get(header_len..)?;
    let (size, size_len) = if has_size {
        let (size, n) = leb128(after_header)?;
        (usize::try_from(size).ok()?, n)
    } else {
        (after_header.len(), 0)
    };
    let start = header_len + size_len;
    let end = start.checked_add(size)?;
    Some(Obu { obu_type, raw: data.get(..end)?, payload: data.get(start..end)? })
}

impl<'a> Iterator for Obus<'a> {
    type Item = Obu<'a>;

    fn next(&mut self) -> Option<Obu<'a>> {
        if self.failed {
            return None;
        }
        let rest = self.rest();
        if rest.is_empty() {
            return None;
        }
        match parse_obu(rest) {
            Some(obu) => {
                self.pos += obu.raw.len();
                Some(obu)
            }
            None => {
                self.failed = true;
                None
            }
        }
    }
}

/// Appends every OBU of `frame` except temporal delimiters to `out`, byte for byte. A
/// malformed tail is copied unchanged (nothing is silently lost).
pub fn strip_temporal_delimiters(frame: &[u8], out: &mut Vec<u8>) {
    let mut it = obus(frame);
    for obu in it.by_ref() {
        if obu.obu_type != OBU_TEMPORAL_DELIMITER {
            out.extend_from_slice(obu.raw);
        }
    }
    out.extend_from_slice(it.rest());
}

/// The fields of a sequence header OBU we use (§5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SequenceHeader {
    /// `seq_profile`.
    pub seq_profile: u8,
    /// `reduced_still_picture_header`: every frame is a shown keyframe.
    pub reduced_still_picture_header: bool,
    /// `seq_level_idx[0]`.
    pub seq_level_idx_0: u8,
    /// `seq_tier[0]`.
    pub seq_tier_0: u8,
    /// `max_frame_width_minus_1 + 1`.
    pub max_frame_width: u32,
    /// `max_frame_height_minus_1 + 1`.
    pub max_frame_height: u32,
    /// `high_bitdepth`.
    pub high_bitdepth: bool,
    /// `twelve_bit`.
    pub twelve_bit: bool,
    /// `mono_chrome`.
    pub mono_chrome: bool,
    /// `subsampling_x`.
    pub subsampling_x: bool,
    /// `subsampling_y`.
    pub subsampling_y: bool,
    /// `chroma_sample_position` (2 bits).
    pub chroma_sample_position: u8,
}

/// Parses a sequence header OBU payload (`sequence_header_obu()`, §5.5.1).
pub fn parse_sequence_header(payload: &[u8]) -> Option<SequenceHeader> {
    let mut r = BitReader::new(payload);
    let seq_profile = r.bits(3)? as u8;
    (seq_profile <= 2).then_some(())?;
    let _still_picture = r.bit()?;
    let reduced = r.bit()?;
    let (seq_level_idx_0, seq_tier_0) =
        if reduced { (r.bits(5)? as u8, 0) } else { read_operating_points(&mut r)? };
    let width_bits = r.bits32(4)? + 1;
    let height_bits = r.bits32(4)? + 1;
    let max_frame_width = r.bits32(width_bits)? + 1;
    let max_frame_height = r.bits32(height_bits)? + 1;
    skip_tools(&mut r, reduced)?;
    let mut sh = SequenceHeader {
        seq_profile,
        reduced_still_picture_header: reduced,
        seq_level_idx_0,
        seq_tier_0,
        max_frame_width,
        max_frame_height,
        high_bitdepth: false,
        twelve_bit: false,
        mono_chrome: false,
        subsampling_x: false,
        subsampling_y: false,
        chroma_sample_position: 0,
    };
    read_color_config(&mut r, &mut sh)?;
    Some(sh)
}

/// `timing_info()`, `decoder_model_info()` and the operating points (§5.5.1, §5.5.3-5.5.5);
/// returns `seq_level_idx[0]` and `seq_tier[0]`.
fn read_operating_points(r: &mut BitReader<'_>) -> Option<(u8, u8)> {
    let mut buffer_delay_len = 0;
    let mut decoder_model_info_present = false;
    if r.bit()? {
        // timing_info(): num_units_in_display_tick, time_scale, equal_picture_interval
        r.skip(64)?;
        if r.bit()? {
            uvlc(r)?; // num_ticks_per_picture_minus_1
        }
        decoder_model_info_present = r.bit()?;
        if decoder_model_info_present {
            buffer_delay_len = r.bits(5)? as usize + 1;
            r.skip(32 + 5 + 5)?; // num_units_in_decoding_tick, two lengths
        }
    }
    let initial_display_delay_present = r.bit()?;
    let count = r.bits(5)? + 1;
    let mut first = None;
    for _ in 0..count {
        let _operating_point_idc = r.bits(12)?;
        let level = r.bits(5)? as u8;
        let tier = if level > 7 { r.bits(1)? as u8 } else { 0 };
        first.get_or_insert((level, tier));
        if decoder_model_info_present && r.bit()? {
            // operating_parameters_info(): two delays and low_delay_mode_flag (§5.5.5)
            r.skip(2 * buffer_delay_len + 1)?;
        }
        if initial_display_delay_present && r.bit()? {
            r.skip(4)?; // initial_display_delay_minus_1
        }
    }
    first
}

/// `uvlc()` (§4.10.3); the leading-zero loop is bounded by the data.
fn uvlc(r: &mut BitReader<'_>) -> Option<u64> {
    let mut zeros = 0u32;
    while !r.bit()? {
        zeros += 1;
    }
    if zeros >= 32 {
        return Some(u64::from(u32::MAX));
    }
    Some(r.bits(zeros)? + (1u64 << zeros) - 1)
}

/// From `frame_id_numbers_present_flag` to `enable_restoration` (§5.5.1): tool flags only.
fn skip_tools(r: &mut BitReader<'_>, reduced: bool) -> Option<()> {
    if !reduced && r.bit()? {
        r.skip(4 + 3)?; // delta_frame_id_length_minus_2, additional_frame_id_length_minus_1
    }
    r.skip(3)?; // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
    if !reduced {
        r.skip(4)?; // interintra, masked, warped motion, dual filter
        let order_hint = r.bit()?;
        if order_hint {
            r.skip(2)?; // enable_jnt_comp, enable_ref_frame_mvs
        }
        let choose_screen_content_tools = r.bit()?;
        let force_screen_content_tools = choose_screen_content_tools || r.bit()?;
        if force_screen_content_tools {
            let choose_integer_mv = r.bit()?;
            if !choose_integer_mv {
                r.skip(1)?; // seq_force_integer_mv
            }
        }
        if order_hint {
            r.skip(3)?; // order_hint_bits_minus_1
        }
    }
    r.skip(3) // enable_superres, enable_cdef, enable_restoration
}

/// `color_config()` (§5.5.2).
fn read_color_config(r: &mut BitReader<'_>, sh: &mut SequenceHeader) -> Option<()> {
    sh.high_bitdepth = r.bit()?;
    sh.twelve_bit = sh.seq_profile == 2 && sh.high_bitdepth && r.bit()?;
    sh.mono_chrome = sh.seq_profile != 1 && r.bit()?;
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if r.bit()? {
        primaries = r.bits(8)?;
        transfer = r.bits(8)?;
        matrix = r.bits(8)?;
    }
    if sh.mono_chrome {
        r.skip(1)?; // color_range
        (sh.subsampling_x, sh.subsampling_y) = (true, true);
        return Some(());
    }
    if (primaries, transfer, matrix) == (1, 13, 0) {
        // sRGB: 4:4:4, full range, no color_range bit
        (sh.subsampling_x, sh.subsampling_y) = (false, false);
    } else {
        r.skip(1)?; // color_range
        (sh.subsampling_x, sh.subsampling_y) = match sh.seq_profile {
            0 => (true, true),
            1 => (false, false),
            _ if sh.twelve_bit => {
                let x = r.bit()?;
                (x, x && r.bit()?)
            }
            _ => (true, false),
        };
        if sh.subsampling_x && sh.subsampling_y {
            sh.chroma_sample_position = r.bits(2)? as u8;
        }
    }
    r.skip(1) // separate_uv_delta_q
}

/// The first sequence header OBU of the temporal unit, parsed, with its raw bytes.
fn sequence_header(frame: &[u8]) -> Option<(SequenceHeader, &[u8])> {
    let obu = obus(frame).find(|o| o.obu_type == OBU_SEQUENCE_HEADER)?;
    Some((parse_sequence_header(obu.payload)?, obu.raw))
}

/// Whether the temporal unit starts a decodable sequence: it has a sequence header and its
/// first frame (header) OBU has `show_existing_frame` = 0 and `frame_type` = KEY_FRAME
/// (§5.9.2), or the sequence uses `reduced_still_picture_header`.
pub fn is_keyframe(frame: &[u8]) -> bool {
    let Some((sh, _)) = sequence_header(frame) else {
        return false;
    };
    let header = obus(frame).find(|o| matches!(o.obu_type, OBU_FRAME | OBU_FRAME_HEADER));
    let Some(header) = header else {
        return false;
    };
    if sh.reduced_still_picture_header {
        return true;
    }
    let mut r = BitReader::new(header.payload);
    // show_existing_frame f(1) = 0, then frame_type f(2) = KEY_FRAME (0)
    matches!((r.bit(), r.bits(2)), (Some(false), Some(0)))
}

/// Picture size (the sequence's maximum) and `av1C` (AV1-ISOBMFF §2.3.3) from a keyframe.
pub fn params(frame: &[u8]) -> Option<VideoParams> {
    if !is_keyframe(frame) {
        return None;
    }
    let (sh, raw) = sequence_header(frame)?;
    Some(VideoParams {
        width: sh.max_frame_width,
        height: sh.max_frame_height,
        codec_private: Some(av1c(&sh, raw)),
    })
}

/// `AV1CodecConfigurationRecord`: marker + version 1, profile and level, tier and color
/// flags, no initial presentation delay, then the sequence header OBU as `configOBUs`.
pub fn av1c(sh: &SequenceHeader, sequence_header_obu: &[u8]) -> Vec<u8> {
    let flag = |b: bool, shift: u8| u8::from(b) << shift;
    let mut out = vec![
        0x81,
        (sh.seq_profile << 5) | (sh.seq_level_idx_0 & 0x1f),
        (sh.seq_tier_0 << 7)
            | flag(sh.high_bitdepth, 6)
            | flag(sh.twelve_bit, 5)
            | flag(sh.mono_chrome, 4)
            | flag(sh.subsampling_x, 3)
            | flag(sh.subsampling_y, 2)
            | (sh.chroma_sample_position & 3),
        0x00,
    ];
    out.extend_from_slice(sequence_header_obu);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ivf;
    use proptest::prelude::*;

    /// The fixture's sequence header OBU (libaom, 320x240, profile 0, level 0, 4:2:0).
    const SEQ_320X240: &[u8] =
        &[0x0a, 0x0b, 0x00, 0x00, 0x00, 0x04, 0x3c, 0xff, 0xbc, 0xda, 0xf9, 0x00, 0x40];
    const TD: &[u8] = &[0x12, 0x00];

    /// MSB-first bit writer for crafted sequence headers.
    #[derive(Default)]
    struct Bits(Vec<bool>);

    impl Bits {
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            self.0.extend((0..n).rev().map(|i| (v >> i) & 1 == 1));
            self
        }
        fn bytes(&self) -> Vec<u8> {
            let byte = |c: &[bool]| c.iter().enumerate().fold(0, |b, (i, &x)| b | u8::from(x) << (7 - i));
            self.0.chunks(8).map(byte).collect()
        }
    }

    /// An OBU with a size field around `payload`.
    fn obu(obu_type: u8, payload: &[u8]) -> Vec<u8> {
        let mut o = vec![(obu_type << 3) | 2, payload.len() as u8];
        o.extend_from_slice(payload);
        o
    }

    #[test]
    fn leb128_table() {
        type Case = (&'static [u8], Option<(u64, usize)>);
        let cases: &[Case] = &[
            (&[0x00], Some((0, 1))),
            (&[0x7f], Some((127, 1))),
            (&[0x80, 0x01], Some((128, 2))),
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], Some((u64::from(u32::MAX), 5))),
            (&[0x80, 0x80, 0x80, 0x80, 0x10], None), // 2^32
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], None), // 9 bytes
            (&[0x80], None),
            (&[], None),
        ];
        for (data, want) in cases {
            assert_eq!(leb128(data), *want, "{data:02x?}");
        }
    }

    #[test]
    fn obu_iterator_table() {
        // (data, [(type, raw len, payload len)], rest len)
        let ext = [0x36, 0x08, 0x01, 0xaa]; // type 6 + extension byte, size 1
        let no_size = [0x30, 0xaa, 0xbb]; // type 6 without size field: to the end
        type Case<'a> = (&'a [u8], &'a [(u8, usize, usize)], usize);
        let cases: &[Case] = &[
            (&[0x12, 0x00, 0x0a, 0x01, 0xff], &[(2, 2, 0), (1, 3, 1)], 0),
            (&ext, &[(6, 4, 1)], 0),
            (&no_size, &[(6, 3, 2)], 0),
            (&[0x12, 0x00, 0x0a, 0x05, 0xff], &[(2, 2, 0)], 3), // truncated
            (&[0x92, 0x00], &[], 2),                            // forbidden bit
            (&[0x16, 0x08], &[], 2),                            // extension missing its size
        ];
        for (data, want, rest) in cases {
            let mut it = obus(data);
            let got: Vec<(u8, usize, usize)> =
                it.by_ref().map(|o| (o.obu_type, o.raw.len(), o.payload.len())).collect();
            assert_eq!((&got[..], it.rest().len()), (*want, *rest), "{data:02x?}");
        }
    }

    #[test]
    fn strips_temporal_delimiters_only() {
        let tu = [TD, SEQ_320X240, &[0x32, 0x01, 0x10], &[0x0a]].concat();
        let mut out = vec![];
        strip_temporal_delimiters(&tu, &mut out);
        assert_eq!(out, tu[2..]); // the malformed 1-byte tail is kept as is
    }

    #[test]
    fn fixture_sequence_header() {
        let sh = parse_sequence_header(&SEQ_320X240[2..]).unwrap();
        let want = SequenceHeader {
            seq_profile: 0,
            reduced_still_picture_header: false,
            seq_level_idx_0: 0,
            seq_tier_0: 0,
            max_frame_width: 320,
            max_frame_height: 240,
            high_bitdepth: false,
            twelve_bit: false,
            mono_chrome: false,
            subsampling_x: true,
            subsampling_y: true,
            chroma_sample_position: 0,
        };
        assert_eq!(sh, want);
        assert_eq!(av1c(&sh, SEQ_320X240)[..4], [0x81, 0x00, 0x0c, 0x00]);
    }

    /// Profile 2, timing + decoder model + display delay, two operating points (the first at
    /// level 9, tier 1), 1920x1080, 12-bit 4:2:0 with chroma_sample_position 1.
    fn crafted_sequence_header() -> Vec<u8> {
        let mut b = Bits::default();
        b.u(3, 2).u(1, 0).u(1, 0); // profile, still_picture, reduced
        b.u(1, 1).u(32, 1001).u(32, 60000).u(1, 1).u(3, 0b010); // timing_info, uvlc = 1
        b.u(1, 1).u(5, 9).u(32, 1).u(5, 3).u(5, 3); // decoder_model_info, buffer delay 10 bits
        b.u(1, 1).u(5, 1); // initial_display_delay_present, 2 operating points
        b.u(12, 0x101).u(5, 9).u(1, 1).u(1, 1).u(10, 5).u(10, 6).u(1, 0).u(1, 1).u(4, 3);
        b.u(12, 0x103).u(5, 4).u(1, 0).u(1, 0);
        b.u(4, 10).u(4, 10).u(11, 1919).u(11, 1079); // frame size
        b.u(1, 1).u(4, 5).u(3, 2); // frame_id_numbers_present
        b.u(3, 0).u(4, 0).u(1, 1).u(2, 0); // tools, order hint
        b.u(1, 0).u(1, 1).u(1, 0).u(1, 0).u(3, 6); // screen content, integer mv, hint bits
        b.u(3, 0); // superres, cdef, restoration
        b.u(1, 1).u(1, 1).u(1, 0).u(1, 0); // high_bitdepth, twelve_bit, mono, no description
        b.u(1, 0).u(1, 1).u(1, 1).u(2, 1).u(1, 0).u(1, 0); // range, ss 1/1, csp, uv q, grain
        b.bytes()
    }

    #[test]
    fn crafted_sequence_header_parses() {
        let sh = parse_sequence_header(&crafted_sequence_header()).unwrap();
        assert_eq!((sh.seq_profile, sh.seq_level_idx_0, sh.seq_tier_0), (2, 9, 1));
        assert_eq!((sh.max_frame_width, sh.max_frame_height), (1920, 1080));
        assert!(sh.high_bitdepth && sh.twelve_bit && !sh.mono_chrome);
        assert_eq!((sh.subsampling_x, sh.subsampling_y, sh.chroma_sample_position), (true, true, 1));
        let raw = obu(OBU_SEQUENCE_HEADER, &crafted_sequence_header());
        assert_eq!(av1c(&sh, &raw)[..4], [0x81, 0x49, 0xed, 0x00]);
    }

    #[test]
    fn keyframe_table() {
        let seq = SEQ_320X240;
        let key = obu(OBU_FRAME, &[0x10, 0x00]); // show_existing 0, frame_type 0
        let inter = obu(OBU_FRAME, &[0x30, 0x00]); // frame_type 1
        let shown = obu(OBU_FRAME_HEADER, &[0x80]); // show_existing_frame
                                                    // reduced_still_picture_header, level 0, 16x16, then tools and color config.
        let mut still = Bits::default();
        still.u(3, 0).u(1, 1).u(1, 1).u(5, 0).u(4, 3).u(4, 3).u(4, 15).u(4, 15);
        still.u(3, 0).u(3, 0).u(1, 0).u(1, 0).u(1, 0).u(2, 0).u(1, 0).u(1, 0);
        let still_seq = obu(OBU_SEQUENCE_HEADER, &still.bytes());
        let cases: Vec<(Vec<u8>, bool)> = vec![
            ([TD, seq, &key].concat(), true),
            ([TD, seq, &inter].concat(), false),
            ([TD, seq, &shown].concat(), false),
            ([TD, &key].concat(), false), // no sequence header
            ([TD, seq].concat(), false),  // no frame
            ([&still_seq[..], &obu(OBU_FRAME, &[0xff])].concat(), true),
        ];
        for (tu, want) in cases {
            assert_eq!(is_keyframe(&tu), want, "{tu:02x?}");
            assert_eq!(params(&tu).is_some(), want, "{tu:02x?}");
        }
        let p = params(&[&still_seq[..], &obu(OBU_FRAME, &[0])].concat()).unwrap();
        assert_eq!((p.width, p.height), (16, 16));
    }

    #[test]
    fn fixture() {
        let s = ivf::read(include_bytes!("../../assets/av1.ivf")).unwrap();
        let keys: Vec<usize> = (0..s.frames.len()).filter(|&i| is_keyframe(&s.frames[i].data)).collect();
        assert_eq!(keys, [0, 30, 60, 90]);
        let p = params(&s.frames[0].data).unwrap();
        assert_eq!((p.width, p.height), (320, 240));
        assert_eq!(p.codec_private.unwrap(), [&[0x81, 0x00, 0x0c, 0x00][..], SEQ_320X240].concat());
        for f in &s.frames {
            let mut out = vec![];
            strip_temporal_delimiters(&f.data, &mut out);
            assert_eq!(out, f.data[2..]); // every TU starts with exactly one TD
            assert!(obus(&out).all(|o| o.obu_type != OBU_TEMPORAL_DELIMITER));
        }
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = is_keyframe(&data);
            let _ = params(&data);
            let _ = parse_sequence_header(&data);
            let mut out = vec![];
            strip_temporal_delimiters(&data, &mut out);
            prop_assert_eq!(out.len() <= data.len(), true);
            let _ = is_keyframe(&[SEQ_320X240, &data].concat());
        }
    }
}
