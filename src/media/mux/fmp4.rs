//! Fragmented MP4 writer (ISO/IEC 14496-12) for H.264 and Opus, with hand-written boxes.
//!
//! Pure: no I/O; boxes are appended to a caller-owned `Vec<u8>`. Layout: `ftyp`, a `moov`
//! with empty sample tables and an `mvex`, then one `moof` + `mdat` per flush. Invariant: bytes
//! are only appended as whole boxes, so a file cut after any complete fragment decodes up to
//! that fragment. Each fragment's `tfdt` is the exact decode time of its first sample, so gaps
//! in time are kept; decode times within a track never go backwards (they are clamped).
//!
//! Memory: samples are held until [`Fmp4Writer::flush`]. The session flushes at least every
//! second and at every video keyframe; independently of that, a fragment is closed before it
//! would exceed [`MAX_PENDING_BYTES`] or [`MAX_PENDING_SAMPLES`].

use super::{ContainerKind, MuxError, MuxFrame, Patch, TrackConfig};
use crate::media::{Codec, MediaKind};

/// Pending sample bytes (all tracks) above which `write` closes the fragment first.
pub const MAX_PENDING_BYTES: usize = 32 << 20;
/// Pending samples (all tracks) at which `write` closes the fragment.
pub const MAX_PENDING_SAMPLES: usize = 4096;

/// Sample flags (§8.8.3.1): sync = does not depend on others; non-sync = depends on others
/// and is a non-sync sample.
const SYNC: u32 = 0x0200_0000;
const NON_SYNC: u32 = 0x0101_0000;
/// The identity matrix of `mvhd` and `tkhd` (§8.2.2).
const MATRIX: [u32; 9] = [0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x4000_0000];
/// Minimal `avcC` without parameter sets (baseline, level 3.1, 4-byte lengths), used when
/// the configured one is unusable; the stream then relies on in-band SPS/PPS.
const EMPTY_AVCC: [u8; 7] = [1, 66, 0xC0, 31, 0xFF, 0xE0, 0];

/// One buffered sample.
#[derive(Debug)]
struct Sample {
    /// Decode time in the track timescale.
    ticks: u64,
    duration_ns: Option<u64>,
    size: u32,
    flags: u32,
}

/// One track's configuration and pending fragment.
#[derive(Debug)]
struct Track {
    id: u32,
    timescale: u32,
    video: bool,
    samples: Vec<Sample>,
    data: Vec<u8>,
    /// Decode time of the newest sample written (pending or emitted).
    last_ticks: Option<u64>,
    /// The newest difference between two consecutive samples.
    last_delta: Option<u64>,
}

/// Writes H.264 and Opus tracks as fragmented MP4, one `moof` + `mdat` per flush.
#[derive(Debug)]
pub struct Fmp4Writer {
    tracks: Vec<Track>,
    /// `mfhd` sequence number of the last fragment (§8.8.5: starts at 1, increases).
    sequence: u32,
    pending_bytes: usize,
    pending_samples: usize,
}

impl Fmp4Writer {
    /// Checks the tracks (H.264 or Opus, at least one) and appends `ftyp` + `moov`.
    pub fn new(tracks: &[TrackConfig], out: &mut Vec<u8>) -> Result<Fmp4Writer, MuxError> {
        if tracks.is_empty() {
            return Err(MuxError::NoTracks);
        }
        let unsupported = |t: &&TrackConfig| !matches!(t.codec, Codec::H264 | Codec::Opus);
        if let Some(t) = tracks.iter().find(unsupported) {
            return Err(MuxError::Unsupported { container: ContainerKind::Mp4, codec: t.codec });
        }
        write_ftyp(tracks, out);
        write_moov(tracks, out);
        let tracks = tracks.iter().zip(1u32..).map(|(c, id)| Track::new(c, id));
        Ok(Fmp4Writer { tracks: tracks.collect(), sequence: 0, pending_bytes: 0, pending_samples: 0 })
    }

    /// Buffers one frame (its bytes untouched) for the next fragment. Appends a fragment to
    /// `out` first when the frame would overflow the pending bounds or when its distance to the
    /// previous sample does not fit a 32-bit duration. A frame of 4 GiB or more cannot be
    /// stored in a fragment and is dropped.
    pub fn write(&mut self, frame: &MuxFrame<'_>, out: &mut Vec<u8>) -> Result<(), MuxError> {
        let track = self.tracks.get(frame.track).ok_or(MuxError::NoSuchTrack(frame.track))?;
        let Ok(size) = u32::try_from(frame.data.len()) else {
            return Ok(());
        };
        let ticks = track.clamped_ticks(frame.ts_ns);
        let long_gap = track.pending_end().is_some_and(|t| ticks.saturating_sub(t) > u64::from(u32::MAX));
        let flags = match (track.video, frame.keyframe) {
            (true, false) => NON_SYNC,
            _ => SYNC,
        };
        let full = self.pending_bytes.saturating_add(frame.data.len()) > MAX_PENDING_BYTES;
        if long_gap || full {
            self.flush(out);
        }
        let sample = Sample { ticks, duration_ns: frame.duration_ns, size, flags };
        if let Some(track) = self.tracks.get_mut(frame.track) {
            track.push(sample, frame.data);
        }
        self.pending_bytes += frame.data.len();
        self.pending_samples += 1;
        if self.pending_samples >= MAX_PENDING_SAMPLES {
            self.flush(out);
        }
        Ok(())
    }

    /// Appends one `moof` + `mdat` with every pending sample; nothing when none is pending.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if self.pending_samples == 0 {
            return;
        }
        self.sequence = self.sequence.wrapping_add(1);
        let moof_start = out.len();
        let offset_fields = write_moof(self.sequence, &self.tracks, out);
        let data_len: u64 = self.tracks.iter().map(|t| t.data.len() as u64).sum();
        write_mdat_header(data_len, out);
        // §8.8.8: with default-base-is-moof, data_offset counts from the first byte of moof.
        let mut offset = (out.len() - moof_start) as u64;
        let with_samples = self.tracks.iter().filter(|t| !t.samples.is_empty());
        for (field, track) in offset_fields.into_iter().zip(with_samples) {
            let value = i32::try_from(offset).unwrap_or(i32::MAX);
            out[field..field + 4].copy_from_slice(&value.to_be_bytes());
            offset += track.data.len() as u64;
        }
        for track in &mut self.tracks {
            out.extend_from_slice(&track.data);
            track.samples.clear();
            track.data.clear();
        }
        self.pending_bytes = 0;
        self.pending_samples = 0;
    }

    /// Clean close: flushes what is pending. No `mfra` is written and no patches are needed.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Vec<Patch> {
        self.flush(out);
        Vec::new()
    }
}

impl Track {
    fn new(config: &TrackConfig, id: u32) -> Track {
        Track {
            id,
            timescale: timescale(config),
            video: is_video(config),
            samples: Vec::new(),
            data: Vec::new(),
            last_ticks: None,
            last_delta: None,
        }
    }

    /// `ts_ns` in the track timescale, kept strictly after the previous sample so decode
    /// times never go backwards (no underflow on bad input).
    fn clamped_ticks(&self, ts_ns: u64) -> u64 {
        let ticks = ns_to_ticks(ts_ns, self.timescale);
        match self.last_ticks {
            Some(last) => ticks.max(last.saturating_add(1)),
            None => ticks,
        }
    }

    /// Decode time of the last pending sample, if any.
    fn pending_end(&self) -> Option<u64> {
        self.samples.last().map(|s| s.ticks)
    }

    fn push(&mut self, sample: Sample, data: &[u8]) {
        if let Some(last) = self.last_ticks {
            self.last_delta = Some(sample.ticks.saturating_sub(last));
        }
        self.last_ticks = Some(sample.ticks);
        self.samples.push(sample);
        self.data.extend_from_slice(data);
    }

    /// Duration of pending sample `i`: the distance to the next one; for the last, its own
    /// duration when known, else the newest delta (at most 1 s), else 1/30 s or 20 ms.
    fn duration(&self, i: usize) -> u32 {
        let ticks = match (self.samples.get(i), self.samples.get(i + 1)) {
            (Some(s), Some(next)) => next.ticks.saturating_sub(s.ticks),
            (Some(s), None) => match (s.duration_ns, self.last_delta) {
                (Some(ns), _) if ns > 0 => ns_to_ticks(ns, self.timescale),
                (_, Some(delta)) if delta > 0 => delta.min(u64::from(self.timescale)),
                _ if self.video => u64::from(self.timescale / 30),
                _ => u64::from(self.timescale / 50),
            },
            _ => 0,
        };
        u32::try_from(ticks).unwrap_or(u32::MAX)
    }
}

/// The media timescale: 90 kHz for video, 48 kHz for Opus.
fn timescale(config: &TrackConfig) -> u32 {
    if is_video(config) {
        90_000
    } else {
        48_000
    }
}

/// round(ns * timescale / 1e9), saturating.
fn ns_to_ticks(ns: u64, timescale: u32) -> u64 {
    let t = (u128::from(ns) * u128::from(timescale) + 500_000_000) / 1_000_000_000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Appends a box: size, type, then what `body` writes (§4.2). Returns what `body` returns.
fn bx<R>(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    let r = body(out);
    let size = u32::try_from(out.len() - start).expect("header and moof boxes are bounded");
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    r
}

/// Appends a FullBox: a box whose body starts with version and 24-bit flags (§4.2).
fn full<R>(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    bx(out, kind, |o| {
        o.extend_from_slice(&((u32::from(version) << 24) | (flags & 0xFF_FFFF)).to_be_bytes());
        body(o)
    })
}

/// Appends big-endian 16-bit fields.
fn w16(out: &mut Vec<u8>, fields: &[u16]) {
    fields.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes()));
}

/// Appends big-endian 32-bit fields.
fn w32(out: &mut Vec<u8>, fields: &[u32]) {
    fields.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes()));
}

/// `ftyp` (§4.3): isom, plus avc1 when there is H.264.
fn write_ftyp(tracks: &[TrackConfig], out: &mut Vec<u8>) {
    bx(out, b"ftyp", |o| {
        o.extend_from_slice(b"isom\0\0\x02\0isomiso6mp41"); // minor version 0x200
        if tracks.iter().any(|t| t.codec == Codec::H264) {
            o.extend_from_slice(b"avc1");
        }
    });
}

/// `moov` (§8.2.1) with `mvhd` (§8.2.2), one `trak` per track and `mvex` (§8.8.1).
fn write_moov(tracks: &[TrackConfig], out: &mut Vec<u8>) {
    bx(out, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            // Creation, modification, timescale 1000, duration 0 (fragments follow), rate 1.0.
            w32(o, &[0, 0, 1000, 0, 0x0001_0000]);
            w16(o, &[0x0100, 0, 0, 0, 0, 0]); // volume 1.0, reserved
            w32(o, &MATRIX);
            w32(o, &[0; 6]); // pre_defined
            w32(o, &[u32::try_from(tracks.len() + 1).unwrap_or(u32::MAX)]); // next_track_ID
        });
        for (config, id) in tracks.iter().zip(1u32..) {
            write_trak(config, id, o);
        }
        bx(o, b"mvex", |o| {
            for id in (1u32..).take(tracks.len()) {
                // trex (§8.8.3): sample description 1, no defaults (every trun has them).
                full(o, b"trex", 0, 0, |o| w32(o, &[id, 1, 0, 0, 0]));
            }
        });
    });
}

/// Whether the track is video.
fn is_video(config: &TrackConfig) -> bool {
    config.kind() == MediaKind::Video
}

/// A 16-bit picture dimension (sample entries store 16 bits).
fn dim(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// `trak` (§8.3.1): `tkhd` (§8.3.2, flags 3: enabled, in movie) + `mdia`.
fn write_trak(config: &TrackConfig, id: u32, out: &mut Vec<u8>) {
    let volume = if is_video(config) { 0 } else { 0x0100 };
    let (width, height) = (dim(config.width), dim(config.height));
    bx(out, b"trak", |o| {
        full(o, b"tkhd", 0, 3, |o| {
            w32(o, &[0, 0, id, 0, 0, 0, 0]); // times, track_ID, reserved, duration, reserved
            w16(o, &[0, 0, volume, 0]); // layer, alternate_group, volume, reserved
            w32(o, &MATRIX);
            w32(o, &[u32::from(width) << 16, u32::from(height) << 16]); // 16.16 fixed point
        });
        bx(o, b"mdia", |o| write_mdia(config, o));
    });
}

/// `mdia` (§8.4): `mdhd`, `hdlr`, `minf`.
fn write_mdia(config: &TrackConfig, out: &mut Vec<u8>) {
    let video = is_video(config);
    full(out, b"mdhd", 0, 0, |o| {
        w32(o, &[0, 0, timescale(config), 0]);
        w16(o, &[0x55C4, 0]); // language "und" (packed ISO-639-2/T), pre_defined
    });
    full(out, b"hdlr", 0, 0, |o| {
        w32(o, &[0]);
        o.extend_from_slice(if video { b"vide" } else { b"soun" });
        w32(o, &[0; 3]);
        let name: &[u8] = if video { b"VideoHandler\0" } else { b"SoundHandler\0" };
        o.extend_from_slice(name);
    });
    bx(out, b"minf", |o| {
        if video {
            full(o, b"vmhd", 0, 1, |o| w16(o, &[0; 4]));
        } else {
            full(o, b"smhd", 0, 0, |o| w16(o, &[0; 2]));
        }
        bx(o, b"dinf", |o| {
            full(o, b"dref", 0, 0, |o| {
                w32(o, &[1]);
                full(o, b"url ", 0, 1, |_| ()); // flag 1: media in this file
            });
        });
        bx(o, b"stbl", |o| write_stbl(config, o));
    });
}

/// `stbl` (§8.5.1): the sample description and empty tables (samples live in fragments).
fn write_stbl(config: &TrackConfig, out: &mut Vec<u8>) {
    full(out, b"stsd", 0, 0, |o| {
        w32(o, &[1]);
        match config.codec {
            Codec::Opus => write_opus_entry(config, o),
            _ => write_avc_entry(config, o),
        }
    });
    for kind in [b"stts", b"stsc", b"stco"] {
        full(out, kind, 0, 0, |o| w32(o, &[0]));
    }
    full(out, b"stsz", 0, 0, |o| w32(o, &[0, 0]));
}

/// The `avcC` to store (ISO/IEC 14496-15 §5.3.3.1) and whether it carries an SPS. An unusable
/// record is replaced by one without parameter sets; the length size is forced to 4 bytes, the
/// form frames are stored in.
fn avc_config(config: &TrackConfig) -> (Vec<u8>, bool) {
    match config.codec_private.as_deref() {
        Some(c) if c.len() >= 7 && c.len() <= 0xFFFF && c[0] == 1 => {
            let mut c = c.to_vec();
            c[4] = 0xFF;
            let has_sps = c[5] & 0x1F > 0;
            (c, has_sps)
        }
        _ => (EMPTY_AVCC.to_vec(), false),
    }
}

/// `avc1` (parameter sets in `avcC`) or `avc3` (parameter sets in-band) sample entry
/// (ISO/IEC 14496-15 §5.4.2.1; VisualSampleEntry §12.1.3).
fn write_avc_entry(config: &TrackConfig, out: &mut Vec<u8>) {
    let (avcc, has_sps) = avc_config(config);
    bx(out, if has_sps { b"avc1" } else { b"avc3" }, |o| {
        w16(o, &[0, 0, 0, 1]); // reserved, data_reference_index 1
        w32(o, &[0; 4]); // pre_defined, reserved
        w16(o, &[dim(config.width), dim(config.height)]);
        w32(o, &[0x0048_0000, 0x0048_0000, 0]); // 72 dpi, reserved
        w16(o, &[1]); // frame_count
        o.extend_from_slice(&[0; 32]); // compressorname
        w16(o, &[0x0018, 0xFFFF]); // depth, pre_defined = -1
        bx(o, b"avcC", |o| o.extend_from_slice(&avcc));
    });
}

/// `Opus` sample entry with `dOps` (Encapsulation of Opus in ISOBMFF, §4.3).
fn write_opus_entry(config: &TrackConfig, out: &mut Vec<u8>) {
    let channels: u8 = if config.channels == 1 { 1 } else { 2 };
    bx(out, b"Opus", |o| {
        w16(o, &[0, 0, 0, 1]); // reserved, data_reference_index 1
        w32(o, &[0, 0]);
        w16(o, &[u16::from(channels), 16, 0, 0]); // channelcount, samplesize 16
        w32(o, &[48_000 << 16]);
        bx(o, b"dOps", |o| {
            o.extend_from_slice(&[0, channels]); // Version, OutputChannelCount
            w16(o, &[config.pre_skip]);
            w32(o, &[48_000]); // InputSampleRate
            o.extend_from_slice(&[0, 0, 0]); // OutputGain, ChannelMappingFamily 0
        });
    });
}

/// Appends `moof` (§8.8.4) with one `traf` per track that has samples. Returns the positions
/// (in `out`) of each `trun` data_offset field, to fill in once the `mdat` layout is known.
fn write_moof(sequence: u32, tracks: &[Track], out: &mut Vec<u8>) -> Vec<usize> {
    bx(out, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| w32(o, &[sequence]));
        let with_samples = tracks.iter().filter(|t| !t.samples.is_empty());
        with_samples.map(|t| write_traf(t, o)).collect()
    })
}

/// `traf` (§8.8.6): `tfhd` (default-base-is-moof), `tfdt` v1, `trun` with data offset and
/// per-sample duration, size and flags. Returns the position of the data_offset field.
fn write_traf(track: &Track, out: &mut Vec<u8>) -> usize {
    bx(out, b"traf", |o| {
        full(o, b"tfhd", 0, 0x02_0000, |o| w32(o, &[track.id]));
        let base = track.samples.first().map_or(0, |s| s.ticks);
        full(o, b"tfdt", 1, 0, |o| o.extend_from_slice(&base.to_be_bytes()));
        full(o, b"trun", 0, 0x701, |o| {
            w32(o, &[track.samples.len() as u32]);
            let field = o.len();
            w32(o, &[0]); // data_offset, patched by flush
            for (i, s) in track.samples.iter().enumerate() {
                w32(o, &[track.duration(i), s.size, s.flags]);
            }
            field
        })
    })
}

/// Appends the `mdat` header for `len` bytes of data (64-bit size when needed, §4.2).
fn write_mdat_header(len: u64, out: &mut Vec<u8>) {
    let size = u32::try_from(len + 8).unwrap_or(1); // 1: a 64-bit largesize follows
    w32(out, &[size]);
    out.extend_from_slice(b"mdat");
    if size == 1 {
        out.extend_from_slice(&(len + 16).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};
    use proptest::prelude::*;
    use std::io::Cursor;
    use std::path::Path;
    use std::process::Command;

    const MS: u64 = 1_000_000;

    /// (type, payload) of the boxes in `data`; asserts that their sizes add up to `data`.
    fn boxes(mut data: &[u8]) -> Vec<(String, &[u8])> {
        let mut found = Vec::new();
        while !data.is_empty() {
            assert!(data.len() >= 8, "truncated box header");
            let size = u32::from_be_bytes(data[..4].try_into().expect("4 bytes")) as usize;
            assert!(size >= 8 && size <= data.len(), "box size {size} of {}", data.len());
            let kind = String::from_utf8_lossy(&data[4..8]).into_owned();
            found.push((kind, &data[8..size]));
            data = &data[size..];
        }
        found
    }

    /// The payload of the box at `path` (e.g. `moov/trak/mdia`), checking every level.
    fn find<'a>(data: &'a [u8], path: &str) -> &'a [u8] {
        path.split('/').fold(data, |d, name| {
            let found = boxes(d).into_iter().find(|(k, _)| k == name);
            found.unwrap_or_else(|| panic!("no {name} in {path}")).1
        })
    }

    fn kinds(data: &[u8]) -> Vec<String> {
        boxes(data).into_iter().map(|b| b.0).collect()
    }

    fn be32(d: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(d[at..at + 4].try_into().expect("4 bytes"))
    }

    fn avcc_with_sps() -> Vec<u8> {
        let sps = [0x67, 0x42, 0xC0, 0x1E, 0xDA];
        let pps = [0x68, 0xCE, 0x3C, 0x80];
        let mut c = vec![1, 0x42, 0xC0, 0x1E, 0xFF, 0xE1, 0, sps.len() as u8];
        c.extend_from_slice(&sps);
        c.extend_from_slice(&[1, 0, pps.len() as u8]);
        c.extend_from_slice(&pps);
        c
    }

    fn h264(codec_private: Option<Vec<u8>>) -> TrackConfig {
        TrackConfig { width: 320, height: 240, codec_private, ..TrackConfig::new(Codec::H264) }
    }

    fn frame(track: usize, ts_ns: u64, keyframe: bool, data: &[u8]) -> MuxFrame<'_> {
        MuxFrame { track, ts_ns, duration_ns: None, keyframe, data }
    }

    #[test]
    fn header_layout() {
        let mut out = Vec::new();
        let tracks = [h264(Some(avcc_with_sps())), TrackConfig::new(Codec::Opus)];
        Fmp4Writer::new(&tracks, &mut out).expect("h264 + opus");
        assert_eq!(kinds(&out), ["ftyp", "moov"]);
        assert_eq!(find(&out, "ftyp"), b"isom\0\0\x02\0isomiso6mp41avc1");
        assert_eq!(kinds(find(&out, "moov")), ["mvhd", "trak", "trak", "mvex"]);
        assert_eq!(be32(find(&out, "moov/mvhd"), 12), 1000);
        let mvex = find(&out, "moov/mvex");
        assert_eq!(kinds(mvex), ["trex", "trex"]);
        let trak = find(&out, "moov/trak");
        assert_eq!(be32(find(trak, "tkhd"), 0), 3); // version 0, flags 3
        assert_eq!(be32(find(trak, "tkhd"), 76), 320 << 16);
        assert_eq!(be32(find(trak, "mdia/mdhd"), 12), 90_000);
        assert_eq!(&find(trak, "mdia/hdlr")[8..12], b"vide");
        let stbl = find(trak, "mdia/minf/stbl");
        assert_eq!(kinds(stbl), ["stsd", "stts", "stsc", "stco", "stsz"]);
        let entries = &find(stbl, "stsd")[8..];
        assert_eq!(kinds(entries), ["avc1"]);
        let avc1 = find(entries, "avc1");
        let mut avcc = avcc_with_sps();
        avcc[4] = 0xFF;
        assert_eq!(find(&avc1[78..], "avcC"), &avcc[..]);
        assert_eq!(kinds(find(trak, "mdia/minf")), ["vmhd", "dinf", "stbl"]);
        assert_eq!(kinds(&find(trak, "mdia/minf/dinf/dref")[8..]), ["url "]);
        let audio = boxes(find(&out, "moov"))[2].1;
        assert_eq!(be32(find(audio, "mdia/mdhd"), 12), 48_000);
        let entries = &find(audio, "mdia/minf/stbl/stsd")[8..];
        let opus = find(entries, "Opus");
        assert_eq!(&opus[16..18], &[0, 2]); // channelcount
        assert_eq!(be32(opus, 24), 48_000 << 16);
        let dops = find(&opus[28..], "dOps");
        assert_eq!(dops, &[0, 2, 0x01, 0x38, 0, 0, 0xBB, 0x80, 0, 0, 0]);
    }

    #[test]
    fn avc3_without_parameter_sets() {
        for private in [None, Some(vec![1, 2]), Some(EMPTY_AVCC.to_vec())] {
            let mut out = Vec::new();
            Fmp4Writer::new(&[h264(private)], &mut out).expect("h264");
            let entries = &find(&out, "moov/trak/mdia/minf/stbl/stsd")[8..];
            let avc3 = find(entries, "avc3");
            assert_eq!(find(&avc3[78..], "avcC"), EMPTY_AVCC);
        }
    }

    #[test]
    fn rejects_bad_tracks() {
        let mut out = Vec::new();
        assert_eq!(Fmp4Writer::new(&[], &mut out).err(), Some(MuxError::NoTracks));
        let err = Fmp4Writer::new(&[TrackConfig::new(Codec::Vp8)], &mut out).err();
        let want = MuxError::Unsupported { container: ContainerKind::Mp4, codec: Codec::Vp8 };
        assert_eq!(err, Some(want));
        let mut w = Fmp4Writer::new(&[h264(None)], &mut out).expect("h264");
        let bad = frame(1, 0, true, b"x");
        assert_eq!(w.write(&bad, &mut out), Err(MuxError::NoSuchTrack(1)));
    }

    /// Per traf: (track id, tfdt, [(duration, size, flags)], sample bytes).
    type Traf = (u32, u64, Vec<(u32, u32, u32)>, Vec<u8>);

    /// Parses one `moof` + `mdat` at the start of `frag`, following the data offsets.
    fn parse_fragment(frag: &[u8]) -> (u32, Vec<Traf>) {
        let top = boxes(frag);
        assert_eq!(top.iter().map(|b| b.0.as_str()).collect::<Vec<_>>(), ["moof", "mdat"]);
        let moof = top[0].1;
        let seq = be32(find(moof, "mfhd"), 4);
        let trafs = boxes(moof).into_iter().filter(|b| b.0 == "traf");
        let parsed = trafs.map(|(_, traf)| {
            assert_eq!(kinds(traf), ["tfhd", "tfdt", "trun"]);
            let tfhd = find(traf, "tfhd");
            assert_eq!(be32(tfhd, 0), 0x02_0000);
            let tfdt = find(traf, "tfdt");
            assert_eq!(tfdt[0], 1);
            let base = u64::from_be_bytes(tfdt[4..12].try_into().expect("8 bytes"));
            let trun = find(traf, "trun");
            assert_eq!(be32(trun, 0), 0x701);
            let n = be32(trun, 4) as usize;
            assert_eq!(trun.len(), 12 + 12 * n);
            let offset = be32(trun, 8) as usize;
            let samples: Vec<_> = (0..n)
                .map(|i| (be32(trun, 12 + 12 * i), be32(trun, 16 + 12 * i), be32(trun, 20 + 12 * i)))
                .collect();
            let len: usize = samples.iter().map(|s| s.1 as usize).sum();
            (be32(tfhd, 4), base, samples, frag[offset..offset + len].to_vec())
        });
        (seq, parsed.collect())
    }

    #[test]
    fn fragments_carry_exact_times_and_bytes() {
        let mut out = Vec::new();
        let tracks = [h264(None), TrackConfig::new(Codec::Opus)];
        let mut w = Fmp4Writer::new(&tracks, &mut out).expect("tracks");
        let header = out.len();
        w.flush(&mut out);
        assert_eq!(out.len(), header, "nothing pending: nothing emitted");
        w.write(&frame(0, 0, true, b"key"), &mut out).expect("write");
        w.write(&frame(1, 0, true, b"a0"), &mut out).expect("write");
        w.write(&frame(0, 33_333_333, false, b"p1"), &mut out).expect("write");
        let a1 = MuxFrame { duration_ns: Some(10 * MS), ..frame(1, 20 * MS, true, b"a1") };
        w.write(&a1, &mut out).expect("write");
        w.flush(&mut out);
        let first = out.len();
        let (seq, trafs) = parse_fragment(&out[header..]);
        assert_eq!(seq, 1);
        assert_eq!(trafs[0], (1, 0, vec![(3000, 3, SYNC), (3000, 2, NON_SYNC)], b"keyp1".to_vec()));
        assert_eq!(trafs[1], (2, 0, vec![(960, 2, SYNC), (480, 2, SYNC)], b"a0a1".to_vec()));
        // A 2 s gap on video only; tfdt is exact, and the audio traf is left out.
        w.write(&frame(0, 2_033_333_333, true, b"k2"), &mut out).expect("write");
        w.write(&frame(0, 2_000_000_000, false, b"back"), &mut out).expect("backwards");
        w.finish(&mut out);
        let (seq, trafs) = parse_fragment(&out[first..]);
        assert_eq!(seq, 2);
        assert_eq!(trafs.len(), 1);
        assert_eq!(trafs[0].1, 183_000);
        assert_eq!(trafs[0].2, vec![(1, 2, SYNC), (1, 4, NON_SYNC)]);
    }

    #[test]
    fn huge_gaps_and_bounds_close_fragments() {
        let mut out = Vec::new();
        let mut w = Fmp4Writer::new(&[TrackConfig::new(Codec::Opus)], &mut out).expect("opus");
        w.write(&frame(0, 0, true, b"a"), &mut out).expect("write");
        w.write(&frame(0, 100_000 * 1_000 * MS, true, b"b"), &mut out).expect("write");
        w.write(&frame(0, u64::MAX, true, b"c"), &mut out).expect("write");
        for i in 0..MAX_PENDING_SAMPLES as u64 {
            w.write(&frame(0, (u64::MAX - 1).saturating_add(i), true, b"d"), &mut out).expect("write");
        }
        w.finish(&mut out);
        let top = kinds(&out);
        assert_eq!(top.iter().filter(|k| *k == "moof").count(), 4);
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_every_byte(
            ops in prop::collection::vec(
                (0usize..3, 0u64..3_000_000_000, any::<bool>(), prop::collection::vec(any::<u8>(), 0..40), 0u8..6),
                0..80,
            )
        ) {
            let mut out = Vec::new();
            let tracks = [h264(None), TrackConfig::new(Codec::Opus)];
            let mut w = Fmp4Writer::new(&tracks, &mut out).expect("tracks");
            let mut ts = 0u64;
            let mut want = [Vec::new(), Vec::new()];
            for (track, step, key, data, op) in &ops {
                ts = if *op == 5 { ts.saturating_sub(*step) } else { ts.saturating_add(*step) };
                let f = MuxFrame { duration_ns: (*op == 1).then_some(*step), ..frame(*track, ts, *key, data) };
                let r = w.write(&f, &mut out);
                if let Some(bytes) = want.get_mut(*track) {
                    prop_assert!(r.is_ok());
                    bytes.extend_from_slice(data);
                } else {
                    prop_assert_eq!(r, Err(MuxError::NoSuchTrack(*track)));
                }
                if *op == 0 {
                    w.flush(&mut out);
                }
            }
            w.finish(&mut out);
            let mut got = [Vec::new(), Vec::new()];
            let mut rest = &out[out.len() - boxes(&out).iter().skip(2).map(|b| b.1.len() + 8).sum::<usize>()..];
            let mut last_tick: [Option<u64>; 2] = [None; 2];
            while !rest.is_empty() {
                let moof = 8 + boxes(rest)[0].1.len();
                let mdat = 8 + boxes(rest)[1].1.len();
                for (id, base, samples, bytes) in parse_fragment(&rest[..moof + mdat]).1 {
                    let t = id as usize - 1;
                    // Decode times strictly increase across fragments.
                    prop_assert!(last_tick[t].is_none_or(|last| base > last));
                    let inner: u64 = samples.iter().rev().skip(1).map(|s| u64::from(s.0)).sum();
                    last_tick[t] = Some(base + inner);
                    got[t].extend_from_slice(&bytes);
                }
                rest = &rest[moof + mdat..];
            }
            prop_assert_eq!(got, want);
        }
    }

    // ---- smoke tests with ffmpeg on the fixtures ----

    /// Splits Annex-B into NAL units (start codes of 3 or 4 bytes).
    fn nals(data: &[u8]) -> Vec<&[u8]> {
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i..i + 3] == [0, 0, 1] {
                starts.push(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        let ends = starts.iter().skip(1).map(|&s| s - 3).chain([data.len()]);
        let nals = starts.iter().zip(ends).map(|(&s, e)| &data[s..e]);
        // A 4-byte start code leaves a trailing zero on the previous NAL.
        nals.map(|n| n.strip_suffix(&[0]).unwrap_or(n)).collect()
    }

    /// The fixture's access units in stored form (4-byte lengths, AUDs dropped), keyframe
    /// flags, and an avcC from the first SPS and PPS.
    fn h264_fixture() -> (Vec<(Vec<u8>, bool)>, Vec<u8>) {
        let all = nals(include_bytes!("../../assets/h264.h264"));
        let (mut aus, mut sps, mut pps) = (Vec::<(Vec<u8>, bool)>::new(), None, None);
        for nal in all {
            let kind = nal[0] & 0x1F;
            match kind {
                9 => aus.push((Vec::new(), false)),
                7 => sps = sps.or(Some(nal)),
                8 => pps = pps.or(Some(nal)),
                _ => {}
            }
            if let (Some(au), true) = (aus.last_mut(), kind != 9) {
                au.0.extend_from_slice(&(nal.len() as u32).to_be_bytes());
                au.0.extend_from_slice(nal);
                au.1 |= kind == 5;
            }
        }
        let (sps, pps) = (sps.expect("sps"), pps.expect("pps"));
        let mut avcc = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
        avcc.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(sps);
        avcc.push(1);
        avcc.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        avcc.extend_from_slice(pps);
        (aus, avcc)
    }

    fn opus_fixture() -> Vec<Vec<u8>> {
        let file: &[u8] = include_bytes!("../../assets/opus.ogg");
        let mut r = ogg::PacketReader::new(Cursor::new(file));
        let mut packets = Vec::new();
        while let Some(p) = r.read_packet().expect("valid ogg") {
            packets.push(p.data);
        }
        packets.split_off(2)
    }

    fn have_ffmpeg() -> bool {
        let ok = Command::new("ffmpeg").arg("-version").output().is_ok();
        if !ok {
            eprintln!("ffmpeg not found: smoke test skipped");
        }
        ok
    }

    fn ffmpeg(args: &[&str], file: &Path, tail: &[&str]) -> (String, String) {
        let o = Command::new("ffmpeg").args(args).arg(file).args(tail).output().expect("runs");
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (text(o.stdout), text(o.stderr))
    }

    fn decode_errors(file: &Path) -> String {
        ffmpeg(&["-v", "error", "-i"], file, &["-f", "null", "-"]).1
    }

    /// (stream, pts, md5) per packet from `ffmpeg -c copy -f framemd5`.
    fn framemd5(file: &Path) -> Vec<(usize, i64, String)> {
        let (text, _) = ffmpeg(&["-v", "error", "-i"], file, &["-c", "copy", "-f", "framemd5", "-"]);
        let rows = text.lines().filter(|l| !l.starts_with('#'));
        let fields = rows.map(|l| l.split(',').map(|f| f.trim().to_string()).collect::<Vec<_>>());
        fields.map(|f| (f[0].parse().expect("index"), f[2].parse().expect("pts"), f[5].clone())).collect()
    }

    fn md5_hex(data: &[u8]) -> String {
        format!("{:x}", Md5::digest(data))
    }

    /// Writes 4 s of H.264 + Opus, interleaved by time, flushing at each keyframe and every
    /// second. Returns the file and, per flush, (end offset, frames written).
    fn write_av(avcc: Option<Vec<u8>>) -> (Vec<u8>, Vec<(usize, usize)>) {
        let (aus, _) = h264_fixture();
        let opus = opus_fixture();
        let mut frames: Vec<MuxFrame<'_>> = Vec::new();
        for (i, (au, key)) in aus.iter().enumerate() {
            frames.push(frame(0, i as u64 * 1_000_000_000 / 30, *key, au));
        }
        for (i, p) in opus.iter().enumerate() {
            let f = MuxFrame { duration_ns: Some(20 * MS), ..frame(1, i as u64 * 20 * MS, true, p) };
            frames.push(f);
        }
        frames.sort_by_key(|f| f.ts_ns);
        let mut out = Vec::new();
        let tracks = [h264(avcc), TrackConfig::new(Codec::Opus)];
        let mut w = Fmp4Writer::new(&tracks, &mut out).expect("tracks");
        let (mut cuts, mut last_flush) = (Vec::new(), 0);
        for (n, f) in frames.iter().enumerate() {
            if (f.track == 0 && f.keyframe) || f.ts_ns >= last_flush + 1_000 * MS {
                w.flush(&mut out);
                cuts.push((out.len(), n));
                last_flush = f.ts_ns;
            }
            w.write(f, &mut out).expect("write");
        }
        w.finish(&mut out);
        cuts.push((out.len(), frames.len()));
        (out, cuts)
    }

    #[test]
    fn smoke_ffmpeg_decodes_keeps_bytes_and_survives_cuts() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (aus, avcc) = h264_fixture();
        let opus = opus_fixture();
        let (file, cuts) = write_av(Some(avcc));
        let path = dir.path().join("av.mp4");
        std::fs::write(&path, &file).expect("write file");
        assert_eq!(decode_errors(&path), "");
        let probe = Command::new("ffprobe")
            .args(["-v", "error", "-show_entries", "stream=codec_name:format=duration"])
            .args(["-of", "csv=p=0"])
            .arg(&path)
            .output()
            .expect("ffprobe");
        let probe = String::from_utf8_lossy(&probe.stdout).into_owned();
        let lines: Vec<&str> = probe.lines().map(str::trim).collect();
        assert_eq!(&lines[..2], ["h264", "opus"]);
        let dur: f64 = lines[2].parse().expect("duration");
        assert!((dur - 4.0).abs() < 0.05, "duration {dur}");
        let rows = framemd5(&path);
        let stream = |s: usize| rows.iter().filter(|r| r.0 == s).collect::<Vec<_>>();
        let video: Vec<_> = stream(0).iter().map(|r| r.2.clone()).collect();
        let want: Vec<_> = aus.iter().map(|a| md5_hex(&a.0)).collect();
        assert_eq!(video, want);
        let pts: Vec<i64> = stream(0).iter().map(|r| r.1).collect();
        assert_eq!(pts, (0..aus.len() as i64).map(|i| i * 3000).collect::<Vec<_>>());
        let audio: Vec<_> = stream(1).iter().map(|r| r.2.clone()).collect();
        assert_eq!(audio, opus.iter().map(|p| md5_hex(p)).collect::<Vec<_>>());
        for &(cut, frames) in [cuts[1], cuts[cuts.len() / 2], cuts[cuts.len() - 2]].iter() {
            let path = dir.path().join(format!("cut{cut}.mp4"));
            std::fs::write(&path, &file[..cut]).expect("write cut");
            assert_eq!(decode_errors(&path), "", "cut at {cut}");
            assert_eq!(framemd5(&path).len(), frames, "cut at {cut}");
        }
    }

    #[test]
    fn smoke_avc3_and_audio_gap() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _) = write_av(None);
        let path = dir.path().join("avc3.mp4");
        std::fs::write(&path, &file).expect("write file");
        assert_eq!(decode_errors(&path), "");
        // Opus alone with a 1 s gap after packet 10: 1 s later, at 48 kHz.
        let mut out = Vec::new();
        let mut w = Fmp4Writer::new(&[TrackConfig::new(Codec::Opus)], &mut out).expect("opus");
        for (i, p) in opus_fixture().iter().enumerate().take(50) {
            let ts = i as u64 * 20 * MS + if i > 10 { 1_000 * MS } else { 0 };
            let f = MuxFrame { duration_ns: Some(20 * MS), ..frame(0, ts, true, p) };
            w.write(&f, &mut out).expect("write");
            if i % 5 == 4 {
                w.flush(&mut out);
            }
        }
        w.finish(&mut out);
        let path = dir.path().join("gap.mp4");
        std::fs::write(&path, &out).expect("write file");
        assert_eq!(decode_errors(&path), "");
        let rows = framemd5(&path);
        assert_eq!(rows.len(), 50);
        assert_eq!(rows[11].1 - rows[10].1, 960 + 48_000);
    }
}
