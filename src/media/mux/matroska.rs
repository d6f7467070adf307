//! Progressive Matroska / WebM writer (RFC 9559; WebM is its subset with DocType `webm`).
//!
//! Pure: no I/O. It appends to a caller-owned `Vec<u8>` and counts every byte it appended
//! since [`MatroskaWriter::new`], so the caller may write the bytes out and clear the vector
//! at any time; [`Patch`] offsets are absolute offsets in the resulting file.
//!
//! **Invariant: after every [`MatroskaWriter::write`] the bytes appended so far are a valid
//! (truncated) file** that ffmpeg decodes up to the last complete block. This is what makes the
//! recording crash-tolerant:
//! - the Segment and every Cluster are written with the *unknown size* (RFC 9559 §22.2,
//!   RFC 8794 §6.2), so a reader finds where they end from the next element or the end of
//!   the file, and a file cut anywhere is still a well-formed prefix;
//! - everything a reader needs up front (EBML header, Info, Tracks) is written by `new`;
//!   what only a clean close knows (Duration, Cues, SeekHead, sizes) goes into space reserved
//!   with Void elements or after the last Cluster, and is filled in by the [`Patch`]es that
//!   [`MatroskaWriter::finish`] returns. Applying no patch still leaves a valid file;
//! - each Cluster with video starts at a keyframe (as the WebM guidelines ask), so playback
//!   of a damaged file resumes at the next Cluster.
//!
//! **Resolution changes mid-stream.** VP8, VP9, AV1 and H.264 all carry the frame size in-band
//! (VP8 keyframe header, VP9 uncompressed header, AV1 sequence header, H.264 SPS). The Track
//! header keeps the size given to `new` (or none when it was 0: PixelWidth/PixelHeight are
//! then left out), frames are stored unchanged, and ffmpeg (like browsers) follows the
//! bitstream and rescales or reconfigures at the new keyframe. No new Track is started.
//! PixelWidth/PixelHeight are written 4 bytes wide, and a clean close patches them to the
//! largest keyframe size of VP8, VP9 and AV1 (a simulcast subscription that starts on a low
//! layer and steps up then declares the top layer's size; H.264 keeps the first keyframe's,
//! as its `avcC` does). A file cut before the close declares the first keyframe's size.

use super::ebml::{self, UNKNOWN_SIZE};
use super::{ContainerKind, MuxError, MuxFrame, Patch, TrackConfig};
use crate::media::{codec, Codec, MediaKind};

/// Element IDs (RFC 9559 §5.1 and RFC 8794 §11).
mod id {
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const CODEC_ID: u32 = 0x86;
    pub const CODEC_PRIVATE: u32 = 0x63A2;
    pub const CODEC_DELAY: u32 = 0x56AA;
    pub const SEEK_PRE_ROLL: u32 = 0x56BB;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
}

/// Nanoseconds per Matroska tick: TimestampScale 1 ms (RFC 9559 §11.1).
const NS_PER_TICK: u64 = 1_000_000;
/// MuxingApp and WritingApp.
const APP: &str = "livekit-recorder";
/// Bytes reserved for the SeekHead right after the Segment header. Three Seeks with 8-byte
/// positions take 68 bytes (5 header + 3 × 21); the rest stays a Void.
const SEEK_HEAD_RESERVED: usize = 80;
/// Longest Cluster in ms before a new one starts even without a keyframe (audio-only files,
/// long GOPs): RFC 9559 §24.1 recommends at most 5 s per Cluster, and it keeps the i16 block
/// timestamp (§10.1) in range.
const MAX_CLUSTER_MS: i64 = 5_000;
/// Opus SeekPreRoll: 80 ms, as the Matroska Opus codec mapping and the WebM guidelines ask.
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;
/// Length of an ID + 8-byte size header for the 4-byte Segment and Cluster IDs.
const UNKNOWN_HEADER_LEN: u64 = 4 + 8;

/// A video track's PixelWidth/PixelHeight: where their 4-byte values are, what they say, and
/// the largest keyframe size seen.
#[derive(Debug, Clone, Copy)]
struct DeclaredSize {
    codec: Codec,
    /// Absolute file offsets of the PixelWidth and PixelHeight values.
    at: (u64, u64),
    declared: (u32, u32),
    largest: (u32, u32),
}

/// Where one Cluster starts, for its size patch and its CuePoint.
#[derive(Debug, Clone, Copy)]
struct ClusterMark {
    /// Absolute file offset of the Cluster ID.
    pos: u64,
    /// Cluster Timestamp in ms.
    ts_ms: u64,
    /// Track number to cue when the Cluster starts at a seek point.
    cue_track: Option<u64>,
}

/// Writes one WebM/Matroska file progressively; see the module docs for the layout.
///
/// Memory: per track a few words, plus one 32-byte `ClusterMark` per Cluster (about one per
/// video keyframe or per 5 s of audio: ~1.4 MB for a day of 2-second GOPs). That list is the
/// only thing that grows; it feeds the Cues and the Cluster size patches on close.
#[derive(Debug)]
pub struct MatroskaWriter {
    /// Kind of each track, by index.
    kinds: Vec<MediaKind>,
    /// Per track: the picture sizes of its video header, for the close to patch.
    sizes: Vec<Option<DeclaredSize>>,
    /// Whether any track is video (Clusters then start at video keyframes).
    has_video: bool,
    /// Bytes appended since `new`: the absolute offset of the next byte.
    written: u64,
    /// Absolute offset of the Segment's data (positions in SeekHead and Cues count from here).
    segment_data: u64,
    /// Absolute offsets of the Info and Tracks elements.
    info_pos: u64,
    tracks_pos: u64,
    /// Absolute offset of the Void that Duration replaces.
    duration_void: u64,
    /// Every Cluster started so far.
    clusters: Vec<ClusterMark>,
    /// Per track: timestamp (ns) of the last frame, to estimate a missing frame duration.
    last_ts_ns: Vec<Option<u64>>,
    /// End of the latest frame seen (ns), for Duration.
    end_ns: u64,
    /// Set by `finish`; later writes are ignored.
    finished: bool,
}

impl MatroskaWriter {
    /// Checks the tracks and appends the EBML header, the Segment start (unknown size), the
    /// reserved SeekHead space, Info and Tracks to `out`.
    ///
    /// Errors: [`MuxError::NoTracks`], or [`MuxError::Unsupported`] for H.264 in WebM.
    pub fn new(webm: bool, tracks: &[TrackConfig], out: &mut Vec<u8>) -> Result<MatroskaWriter, MuxError> {
        if tracks.is_empty() {
            return Err(MuxError::NoTracks);
        }
        let container = if webm { ContainerKind::Webm } else { ContainerKind::Mkv };
        if let Some(t) = tracks.iter().find(|t| !container.supports(t.codec)) {
            return Err(MuxError::Unsupported { container, codec: t.codec });
        }
        let base = out.len();
        write_ebml_header(out, webm);
        // RFC 9559 §22.2: a Segment of unknown size runs to the end of the file.
        ebml::write_id(out, id::SEGMENT);
        out.extend_from_slice(&UNKNOWN_SIZE);
        let segment_data = (out.len() - base) as u64;
        ebml::void(out, SEEK_HEAD_RESERVED);
        let info_pos = (out.len() - base) as u64;
        let duration_void = info_pos + write_info(out);
        let tracks_pos = (out.len() - base) as u64;
        let size_at = write_tracks(out, tracks);
        let sizes = tracks
            .iter()
            .zip(size_at)
            .map(|(t, at)| {
                let at = at?;
                let declared = (t.width, t.height);
                Some(DeclaredSize {
                    codec: t.codec,
                    at: (tracks_pos + at.0, tracks_pos + at.1),
                    declared,
                    largest: declared,
                })
            })
            .collect();
        Ok(MatroskaWriter {
            kinds: tracks.iter().map(TrackConfig::kind).collect(),
            sizes,
            has_video: tracks.iter().any(|t| t.kind() == MediaKind::Video),
            written: (out.len() - base) as u64,
            segment_data,
            info_pos,
            tracks_pos,
            duration_void,
            clusters: Vec::new(),
            last_ts_ns: vec![None; tracks.len()],
            end_ns: 0,
            finished: false,
        })
    }

    /// Appends one SimpleBlock (after a new Cluster header when one is due) to `out`.
    ///
    /// Errors: [`MuxError::NoSuchTrack`]. Frames after [`MatroskaWriter::finish`] are ignored.
    pub fn write(&mut self, frame: &MuxFrame<'_>, out: &mut Vec<u8>) -> Result<(), MuxError> {
        let kind = *self.kinds.get(frame.track).ok_or(MuxError::NoSuchTrack(frame.track))?;
        if self.finished {
            return Ok(());
        }
        let base = out.len();
        // Opus packets are all independently decodable (RFC 9559 §10.3: keyframe flag).
        let key = frame.keyframe || kind == MediaKind::Audio;
        let ts_ms = frame.ts_ns.saturating_add(NS_PER_TICK / 2) / NS_PER_TICK;
        let track_number = frame.track as u64 + 1;
        let cluster_ts = match self.clusters.last() {
            Some(c) if !self.cluster_due(c, kind, key, ts_ms) => c.ts_ms,
            _ => self.start_cluster(out, base, kind, key, track_number, ts_ms),
        };
        // `cluster_due` guarantees the difference fits; a clamp keeps this total anyway.
        let relative = (ts_ms as i64 - cluster_ts as i64).clamp(i16::MIN.into(), i16::MAX.into());
        write_simple_block(out, track_number, relative as i16, key, frame.data);
        self.note_end(frame);
        if frame.keyframe {
            self.note_size(frame);
        }
        self.written += (out.len() - base) as u64;
        Ok(())
    }

    /// Nothing to do: [`MatroskaWriter::write`] already appends complete blocks.
    pub fn flush(&mut self, _out: &mut Vec<u8>) {}

    /// Appends the Cues and returns the patches for the Segment and Cluster sizes, Duration
    /// and the SeekHead. A second call appends nothing and returns no patch.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Vec<Patch> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        let base = out.len();
        let cues_pos = self.write_cues(out);
        self.written += (out.len() - base) as u64;
        let mut patches = Vec::with_capacity(self.clusters.len() + 3);
        patches.push(Patch {
            offset: self.segment_data - 8,
            bytes: ebml::size8(self.written - self.segment_data).to_vec(),
        });
        self.cluster_size_patches(cues_pos.unwrap_or(self.written), &mut patches);
        patches.extend(self.duration_patch());
        patches.extend(self.seek_head_patch(cues_pos));
        patches.extend(self.size_patches());
        patches
    }

    /// The largest picture of a video track, from its keyframes (VP8, VP9, AV1).
    fn note_size(&mut self, frame: &MuxFrame<'_>) {
        let Some(Some(size)) = self.sizes.get_mut(frame.track) else {
            return;
        };
        if size.codec == Codec::H264 {
            return;
        }
        if let Some(p) = codec::video_params(size.codec, frame.data) {
            let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
            if area((p.width, p.height)) > area(size.largest) {
                size.largest = (p.width, p.height);
            }
        }
    }

    /// PixelWidth/PixelHeight of the tracks whose largest keyframe is larger than declared.
    fn size_patches(&self) -> Vec<Patch> {
        let mut patches = Vec::new();
        for s in self.sizes.iter().flatten().filter(|s| s.largest != s.declared) {
            patches.push(Patch { offset: s.at.0, bytes: s.largest.0.to_be_bytes().to_vec() });
            patches.push(Patch { offset: s.at.1, bytes: s.largest.1.to_be_bytes().to_vec() });
        }
        patches
    }

    /// Whether `frame` must open a new Cluster after `c` (RFC 9559 §10.1: the block's
    /// timestamp is an i16 relative to the Cluster's).
    fn cluster_due(&self, c: &ClusterMark, kind: MediaKind, key: bool, ts_ms: u64) -> bool {
        let relative = ts_ms as i64 - c.ts_ms as i64;
        (self.has_video && kind == MediaKind::Video && key)
            || relative < i64::from(i16::MIN)
            || relative > MAX_CLUSTER_MS
    }

    /// Appends a Cluster header of unknown size with its Timestamp; returns the timestamp.
    fn start_cluster(
        &mut self,
        out: &mut Vec<u8>,
        base: usize,
        kind: MediaKind,
        key: bool,
        track_number: u64,
        ts_ms: u64,
    ) -> u64 {
        // Cue video keyframes when there is video, else every (audio) Cluster.
        let seekable = !self.has_video || (kind == MediaKind::Video && key);
        self.clusters.push(ClusterMark {
            pos: self.written + (out.len() - base) as u64,
            ts_ms,
            cue_track: seekable.then_some(track_number),
        });
        ebml::write_id(out, id::CLUSTER);
        out.extend_from_slice(&UNKNOWN_SIZE);
        ebml::uint(out, id::TIMESTAMP, ts_ms);
        ts_ms
    }

    /// Tracks the end of the latest frame; a missing duration is taken as the gap since the
    /// track's previous frame.
    fn note_end(&mut self, frame: &MuxFrame<'_>) {
        let Some(last) = self.last_ts_ns.get_mut(frame.track) else {
            return;
        };
        let gap =
            frame.duration_ns.unwrap_or_else(|| last.map_or(0, |prev| frame.ts_ns.saturating_sub(prev)));
        *last = Some(frame.ts_ns);
        self.end_ns = self.end_ns.max(frame.ts_ns.saturating_add(gap));
    }

    /// Appends Cues (RFC 9559 §5.1.5) for the cued Clusters; returns their absolute offset, or
    /// `None` when there is nothing to cue (Cues needs at least one CuePoint).
    fn write_cues(&self, out: &mut Vec<u8>) -> Option<u64> {
        let mut body = Vec::new();
        for c in &self.clusters {
            let Some(track) = c.cue_track else { continue };
            let mut positions = Vec::new();
            ebml::uint(&mut positions, id::CUE_TRACK, track);
            ebml::uint(&mut positions, id::CUE_CLUSTER_POSITION, c.pos - self.segment_data);
            let mut point = Vec::new();
            ebml::uint(&mut point, id::CUE_TIME, c.ts_ms);
            ebml::binary(&mut point, id::CUE_TRACK_POSITIONS, &positions);
            ebml::binary(&mut body, id::CUE_POINT, &point);
        }
        if body.is_empty() {
            return None;
        }
        ebml::binary(out, id::CUES, &body);
        Some(self.written)
    }

    /// One size patch per Cluster: each ends where the next starts, the last at `end`.
    fn cluster_size_patches(&self, end: u64, patches: &mut Vec<Patch>) {
        let ends = self.clusters.iter().skip(1).map(|c| c.pos).chain([end]);
        for (c, end) in self.clusters.iter().zip(ends) {
            let data = c.pos + UNKNOWN_HEADER_LEN;
            patches.push(Patch { offset: c.pos + 4, bytes: ebml::size8(end.saturating_sub(data)).to_vec() });
        }
    }

    /// Duration (RFC 9559 §5.1.2, ticks as float) over its same-size Void; none when zero
    /// (Duration must be > 0).
    fn duration_patch(&self) -> Option<Patch> {
        if self.end_ns == 0 {
            return None;
        }
        let mut bytes = Vec::with_capacity(ebml::FLOAT64_ELEMENT_LEN_ID2);
        ebml::float(&mut bytes, id::DURATION, self.end_ns as f64 / NS_PER_TICK as f64);
        Some(Patch { offset: self.duration_void, bytes })
    }

    /// SeekHead (RFC 9559 §5.1.1) for Info, Tracks and Cues plus a Void filling the rest of
    /// the reserved space.
    fn seek_head_patch(&self, cues_pos: Option<u64>) -> Option<Patch> {
        let targets =
            [(id::INFO, Some(self.info_pos)), (id::TRACKS, Some(self.tracks_pos)), (id::CUES, cues_pos)];
        let mut body = Vec::new();
        for (target, pos) in targets {
            let Some(pos) = pos else { continue };
            let mut seek = Vec::new();
            ebml::binary(&mut seek, id::SEEK_ID, &target.to_be_bytes());
            ebml::uint8(&mut seek, id::SEEK_POSITION, pos - self.segment_data);
            ebml::binary(&mut body, id::SEEK, &seek);
        }
        let mut bytes = Vec::with_capacity(SEEK_HEAD_RESERVED);
        ebml::binary(&mut bytes, id::SEEK_HEAD, &body);
        let rest = SEEK_HEAD_RESERVED.checked_sub(bytes.len()).filter(|&r| r != 1)?;
        ebml::void(&mut bytes, rest);
        Some(Patch { offset: self.segment_data, bytes })
    }
}

/// EBML header (RFC 8794 §11.2; RFC 9559 §7: DocTypeVersion 4, DocTypeReadVersion 2).
fn write_ebml_header(out: &mut Vec<u8>, webm: bool) {
    let mut body = Vec::new();
    ebml::uint(&mut body, id::EBML_VERSION, 1);
    ebml::uint(&mut body, id::EBML_READ_VERSION, 1);
    ebml::uint(&mut body, id::EBML_MAX_ID_LENGTH, 4);
    ebml::uint(&mut body, id::EBML_MAX_SIZE_LENGTH, 8);
    ebml::string(&mut body, id::DOC_TYPE, if webm { "webm" } else { "matroska" });
    ebml::uint(&mut body, id::DOC_TYPE_VERSION, 4);
    ebml::uint(&mut body, id::DOC_TYPE_READ_VERSION, 2);
    ebml::binary(out, id::EBML, &body);
}

/// Info with a Void where Duration goes; returns the Void's offset from the Info's start.
fn write_info(out: &mut Vec<u8>) -> u64 {
    let mut body = Vec::new();
    ebml::uint(&mut body, id::TIMESTAMP_SCALE, NS_PER_TICK);
    ebml::string(&mut body, id::MUXING_APP, APP);
    ebml::string(&mut body, id::WRITING_APP, APP);
    let void_in_body = body.len();
    ebml::void(&mut body, ebml::FLOAT64_ELEMENT_LEN_ID2);
    let start = out.len();
    ebml::binary(out, id::INFO, &body);
    (out.len() - start - body.len() + void_in_body) as u64
}

/// Tracks with one TrackEntry per config (RFC 9559 §5.1.4); returns, per track, the offsets of
/// its PixelWidth and PixelHeight values from the start of the Tracks element.
fn write_tracks(out: &mut Vec<u8>, tracks: &[TrackConfig]) -> Vec<Option<(u64, u64)>> {
    let mut body = Vec::new();
    let mut in_body = Vec::with_capacity(tracks.len());
    for (i, t) in tracks.iter().enumerate() {
        let (entry, size_at) = track_entry(i as u64 + 1, t);
        let start = body.len();
        ebml::binary(&mut body, id::TRACK_ENTRY, &entry);
        let header = body.len() - entry.len() - start;
        in_body.push(size_at.map(|(w, h)| ((start + header + w) as u64, (start + header + h) as u64)));
    }
    let start = out.len();
    ebml::binary(out, id::TRACKS, &body);
    let header = (out.len() - body.len() - start) as u64;
    in_body.into_iter().map(|at| at.map(|(w, h)| (header + w, header + h))).collect()
}

/// One TrackEntry: number and UID both `number` (UIDs must be non-zero, RFC 9559 §5.1.4.1.2);
/// with the offsets in it of the PixelWidth and PixelHeight values, for a video track with a
/// size.
fn track_entry(number: u64, t: &TrackConfig) -> (Vec<u8>, Option<(usize, usize)>) {
    let mut e = Vec::new();
    ebml::uint(&mut e, id::TRACK_NUMBER, number);
    ebml::uint(&mut e, id::TRACK_UID, number);
    let track_type = if t.kind() == MediaKind::Video { 1 } else { 2 };
    ebml::uint(&mut e, id::TRACK_TYPE, track_type);
    ebml::uint(&mut e, id::FLAG_LACING, 0);
    ebml::string(&mut e, id::CODEC_ID, codec_id(t.codec));
    if t.codec == Codec::Opus {
        let channels = opus_channels(t.channels);
        ebml::binary(&mut e, id::CODEC_PRIVATE, &opus_head(channels, t.pre_skip));
        // Matroska Opus mapping: CodecDelay = pre-skip in ns, SeekPreRoll 80 ms.
        ebml::uint(&mut e, id::CODEC_DELAY, u64::from(t.pre_skip) * 1_000_000_000 / 48_000);
        ebml::uint(&mut e, id::SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS);
        let mut audio = Vec::new();
        ebml::float(&mut audio, id::SAMPLING_FREQUENCY, 48_000.0);
        ebml::uint(&mut audio, id::CHANNELS, channels.into());
        ebml::binary(&mut e, id::AUDIO, &audio);
        return (e, None);
    }
    if let Some(private) = &t.codec_private {
        ebml::binary(&mut e, id::CODEC_PRIVATE, private);
    }
    // PixelWidth/PixelHeight are mandatory inside Video, so without a size the whole element
    // is left out and readers take the size from the bitstream.
    if t.width == 0 || t.height == 0 {
        return (e, None);
    }
    // 4-byte values (RFC 8794 §7.2 allows leading zeros), so the close can patch them in place
    let mut video = Vec::new();
    ebml::binary(&mut video, id::PIXEL_WIDTH, &t.width.to_be_bytes());
    let width_at = video.len() - 4;
    ebml::binary(&mut video, id::PIXEL_HEIGHT, &t.height.to_be_bytes());
    let height_at = video.len() - 4;
    let start = e.len();
    ebml::binary(&mut e, id::VIDEO, &video);
    let header = e.len() - video.len() - start;
    (e, Some((start + header + width_at, start + header + height_at)))
}

/// Matroska codec IDs (the Matroska codec mappings, IANA "Matroska Codec IDs").
fn codec_id(codec: Codec) -> &'static str {
    match codec {
        Codec::Vp8 => "V_VP8",
        Codec::Vp9 => "V_VP9",
        Codec::Av1 => "V_AV1",
        Codec::H264 => "V_MPEG4/ISO/AVC",
        Codec::Opus => "A_OPUS",
    }
}

/// Channel mapping family 0 allows only mono or stereo (RFC 7845 §5.1.1.1).
fn opus_channels(channels: u8) -> u8 {
    channels.clamp(1, 2)
}

/// The 19-byte OpusHead of RFC 7845 §5.1 (mapping family 0, input rate 48 kHz, gain 0).
fn opus_head(channels: u8, pre_skip: u16) -> [u8; 19] {
    let mut h = [0u8; 19];
    h[..8].copy_from_slice(b"OpusHead");
    h[8] = 1;
    h[9] = channels;
    h[10..12].copy_from_slice(&pre_skip.to_le_bytes());
    h[12..16].copy_from_slice(&48_000u32.to_le_bytes());
    // Output gain (16..18) and mapping family (18) stay 0.
    h
}

/// SimpleBlock (RFC 9559 §10.3): track VINT, i16 relative timestamp, flags, frame bytes.
fn write_simple_block(out: &mut Vec<u8>, track: u64, relative: i16, key: bool, data: &[u8]) {
    let size = ebml::vint_len(track) as u64 + 3 + data.len() as u64;
    ebml::write_header(out, id::SIMPLE_BLOCK, size);
    ebml::write_size(out, track);
    out.extend_from_slice(&relative.to_be_bytes());
    out.push(if key { 0x80 } else { 0 });
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One element found by the test walker.
    #[derive(Debug)]
    struct El {
        id: u32,
        /// Offset of the element's data.
        data: usize,
        /// Data size; `None` for unknown.
        size: Option<usize>,
    }

    /// Reads a VINT at `at`: (value without marker, raw value with marker, length).
    fn vint(b: &[u8], at: usize) -> (u64, u64, usize) {
        let len = b[at].leading_zeros() as usize + 1;
        let raw = b[at..at + len].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        (raw & !(1u64 << (7 * len)), raw, len)
    }

    fn element(b: &[u8], at: usize) -> El {
        let (_, id, id_len) = vint(b, at);
        let (size, _, size_len) = vint(b, at + id_len);
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        El { id: id as u32, data: at + id_len + size_len, size: (!unknown).then_some(size as usize) }
    }

    /// Known-size children of `[from, to)`; panics on overrun.
    fn children(b: &[u8], from: usize, to: usize) -> Vec<El> {
        let mut v = Vec::new();
        let mut at = from;
        while at < to {
            let e = element(b, at);
            let size = e.size.expect("known size after patching");
            at = e.data + size;
            assert!(at <= to, "element {:#x} overruns its parent", e.id);
            v.push(e);
        }
        v
    }

    /// Blocks stored in a patched file: (track number, ms, keyframe, bytes).
    type Block = (u64, i64, bool, Vec<u8>);

    /// Walks a patched file strictly; returns its top-level Segment children and blocks.
    fn walk_patched(b: &[u8]) -> (Vec<u32>, Vec<Block>) {
        let header = element(b, 0);
        assert_eq!(header.id, id::EBML);
        let seg = element(b, header.data + header.size.unwrap());
        assert_eq!(seg.id, id::SEGMENT);
        assert_eq!(seg.data + seg.size.unwrap(), b.len(), "segment size");
        let mut ids = Vec::new();
        let mut blocks = Vec::new();
        for e in children(b, seg.data, b.len()) {
            ids.push(e.id);
            if e.id == id::CLUSTER {
                blocks.extend(cluster_blocks(b, &e));
            }
        }
        (ids, blocks)
    }

    fn cluster_blocks(b: &[u8], cluster: &El) -> Vec<Block> {
        let kids = children(b, cluster.data, cluster.data + cluster.size.unwrap());
        assert_eq!(kids[0].id, id::TIMESTAMP);
        let uint =
            |e: &El| b[e.data..e.data + e.size.unwrap()].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        let ts = uint(&kids[0]) as i64;
        kids[1..]
            .iter()
            .map(|k| {
                assert_eq!(k.id, id::SIMPLE_BLOCK);
                let (track, _, n) = vint(b, k.data);
                let rel = i16::from_be_bytes([b[k.data + n], b[k.data + n + 1]]);
                let key = b[k.data + n + 2] & 0x80 != 0;
                let data = b[k.data + n + 3..k.data + k.size.unwrap()].to_vec();
                (track, ts + i64::from(rel), key, data)
            })
            .collect()
    }

    fn apply(file: &mut [u8], patches: &[Patch]) {
        for p in patches {
            let at = p.offset as usize;
            file[at..at + p.bytes.len()].copy_from_slice(&p.bytes);
        }
    }

    fn vp8_opus() -> Vec<TrackConfig> {
        let mut video = TrackConfig::new(Codec::Vp8);
        (video.width, video.height) = (320, 240);
        vec![video, TrackConfig::new(Codec::Opus)]
    }

    fn frame(track: usize, ms: u64, keyframe: bool, data: &[u8]) -> MuxFrame<'_> {
        MuxFrame { track, ts_ns: ms * 1_000_000, duration_ns: None, keyframe, data }
    }

    #[test]
    fn rejects_bad_configs_and_tracks() {
        let mut out = Vec::new();
        assert_eq!(MatroskaWriter::new(true, &[], &mut out).unwrap_err(), MuxError::NoTracks);
        let h264 = [TrackConfig::new(Codec::H264)];
        let err = MatroskaWriter::new(true, &h264, &mut out).unwrap_err();
        assert!(matches!(err, MuxError::Unsupported { codec: Codec::H264, .. }));
        assert!(out.is_empty());
        let mut w = MatroskaWriter::new(false, &h264, &mut out).unwrap();
        let len = out.len();
        assert_eq!(w.write(&frame(1, 0, true, b"x"), &mut out), Err(MuxError::NoSuchTrack(1)));
        assert_eq!(out.len(), len);
    }

    #[test]
    fn header_names_doctype_and_codecs() {
        for (webm, doctype) in [(true, &b"webm"[..]), (false, &b"matroska"[..])] {
            let mut out = Vec::new();
            MatroskaWriter::new(webm, &vp8_opus(), &mut out).unwrap();
            let has = |s: &[u8]| out.windows(s.len()).any(|w| w == s);
            assert!(has(doctype) && has(b"V_VP8") && has(b"A_OPUS") && has(b"OpusHead"));
        }
        let head = opus_head(2, 312);
        assert_eq!(head[8..], [1, 2, 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0]);
    }

    /// A VP8 keyframe header of `w`x`h` (RFC 6386 §9.1) and a few bytes of "data".
    fn vp8_key(w: u16, h: u16) -> Vec<u8> {
        let mut f = vec![0x30, 0x12, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.extend_from_slice(&[7; 8]);
        f
    }

    /// The (PixelWidth, PixelHeight) of the file's first video track, found by walking it.
    fn pixel_size(b: &[u8]) -> (u64, u64) {
        let header = element(b, 0);
        let seg = element(b, header.data + header.size.unwrap());
        let mut at = seg.data;
        let tracks = loop {
            let e = element(b, at);
            if e.id == id::TRACKS {
                break e;
            }
            at = e.data + e.size.expect("sized before Tracks");
        };
        let uint =
            |e: &El| b[e.data..e.data + e.size.unwrap()].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
        for entry in children(b, tracks.data, tracks.data + tracks.size.unwrap()) {
            let kids = children(b, entry.data, entry.data + entry.size.unwrap());
            if let Some(v) = kids.iter().find(|e| e.id == id::VIDEO) {
                let kids = children(b, v.data, v.data + v.size.unwrap());
                let get = |want| uint(kids.iter().find(|k| k.id == want).expect("pixel element"));
                return (get(id::PIXEL_WIDTH), get(id::PIXEL_HEIGHT));
            }
        }
        panic!("no video track")
    }

    #[test]
    fn the_close_declares_the_largest_keyframe_size() {
        let mut video = TrackConfig::new(Codec::Vp8);
        (video.width, video.height) = (160, 90);
        let tracks = [TrackConfig::new(Codec::Opus), video];
        let mut out = Vec::new();
        let mut w = MatroskaWriter::new(true, &tracks, &mut out).unwrap();
        // a low simulcast layer first, the top one from a later keyframe, a middle one at the end
        let (low, top, mid) = (vp8_key(160, 90), vp8_key(640, 360), vp8_key(320, 180));
        for (ms, key, data) in
            [(0, true, &low[..]), (33, false, &b"\x31delta"[..]), (66, true, &top), (99, true, &mid)]
        {
            w.write(&frame(1, ms, key, data), &mut out).unwrap();
        }
        // before the close (a file cut by a crash): the first keyframe's size
        assert_eq!(pixel_size(&out), (160, 90));
        let patches = w.finish(&mut out);
        apply(&mut out, &patches);
        assert_eq!(pixel_size(&out), (640, 360));
        walk_patched(&out);

        // a track that stays at its first size gets no size patch
        let mut out = Vec::new();
        let mut w = MatroskaWriter::new(true, &tracks[1..], &mut out).unwrap();
        w.write(&frame(0, 0, true, &low), &mut out).unwrap();
        assert!(w.size_patches().is_empty());
        let patches = w.finish(&mut out);
        apply(&mut out, &patches);
        assert_eq!(pixel_size(&out), (160, 90));
    }

    #[test]
    fn clusters_start_at_keyframes_and_on_long_gaps() {
        let mut out = Vec::new();
        let mut w = MatroskaWriter::new(true, &vp8_opus(), &mut out).unwrap();
        let frames = [
            frame(1, 0, false, b"a0"),    // first frame: cluster 1 (not cued: audio)
            frame(0, 0, true, b"k0"),     // video key: cluster 2 (cued)
            frame(0, 33, false, b"d1"),   //
            frame(1, 20, false, b"a1"),   //
            frame(0, 1000, true, b"k1"),  // cluster 3 (cued)
            frame(1, 9000, false, b"a2"), // > 5 s: cluster 4 (not cued)
            frame(1, 8990, false, b"a3"), // backwards within range: same cluster
        ];
        for f in &frames {
            w.write(f, &mut out).unwrap();
        }
        let patches = w.finish(&mut out);
        apply(&mut out, &patches);
        let (ids, blocks) = walk_patched(&out);
        let clusters = ids.iter().filter(|&&i| i == id::CLUSTER).count();
        assert_eq!(clusters, 4);
        assert_eq!(ids.first(), Some(&id::SEEK_HEAD));
        assert_eq!(ids.last(), Some(&id::CUES));
        assert_eq!(w.clusters.iter().filter(|c| c.cue_track.is_some()).count(), 2);
        let want: Vec<Block> = frames
            .iter()
            .map(|f| {
                (
                    f.track as u64 + 1,
                    (f.ts_ns / 1_000_000) as i64,
                    f.keyframe || f.track == 1,
                    f.data.to_vec(),
                )
            })
            .collect();
        assert_eq!(blocks, want);
    }

    #[test]
    fn offsets_survive_clearing_the_buffer() {
        let frames: Vec<_> =
            (0..200u64).map(|i| frame((i % 2) as usize, i * 20, i % 60 == 0, b"xyz")).collect();
        let mut whole = Vec::new();
        let mut w1 = MatroskaWriter::new(true, &vp8_opus(), &mut whole).unwrap();
        let mut pieces = Vec::new();
        let mut out = vec![9; 5]; // someone else's bytes: not counted
        let mut w2 = MatroskaWriter::new(true, &vp8_opus(), &mut out).unwrap();
        pieces.extend_from_slice(&out[5..]);
        for f in &frames {
            w1.write(f, &mut whole).unwrap();
            out.clear();
            w2.write(f, &mut out).unwrap();
            w2.flush(&mut out);
            pieces.extend_from_slice(&out);
        }
        let p1 = w1.finish(&mut whole);
        out.clear();
        let p2 = w2.finish(&mut out);
        pieces.extend_from_slice(&out);
        assert_eq!((&whole, &p1), (&pieces, &p2));
        assert!(w2.finish(&mut out).is_empty());
        apply(&mut whole, &p1);
        walk_patched(&whole);
    }

    proptest! {
        #[test]
        fn write_never_panics(
            ops in proptest::collection::vec(
                (0usize..4, 0u64..100_000_000_000, proptest::option::of(0u64..100_000_000), any::<bool>(), 0usize..300),
                0..60),
        ) {
            let tracks = vp8_opus();
            let mut out = Vec::new();
            let mut w = MatroskaWriter::new(true, &tracks, &mut out).unwrap();
            let mut want = Vec::new();
            for (track, ts_ns, duration_ns, keyframe, len) in ops {
                let data = vec![len as u8; len];
                let f = MuxFrame { track, ts_ns, duration_ns, keyframe, data: &data };
                let r = w.write(&f, &mut out);
                prop_assert_eq!(r.is_ok(), track < tracks.len());
                if r.is_ok() {
                    let ms = ts_ns.saturating_add(500_000) / 1_000_000;
                    want.push((track as u64 + 1, ms as i64, keyframe || track == 1, data));
                }
            }
            let patches = w.finish(&mut out);
            apply(&mut out, &patches);
            let (_, blocks) = walk_patched(&out);
            prop_assert_eq!(blocks, want);
        }
    }

    /// End-to-end with ffmpeg: real VP8 + Opus fixtures.
    mod ffmpeg {
        use super::*;
        use md5::{Digest, Md5};
        use std::path::Path;
        use std::process::Command;

        /// A fixture frame: (ts_ns, keyframe, bytes).
        type Input = (u64, bool, Vec<u8>);

        /// Frames of an IVF file (pts in 1/30 s).
        fn ivf_frames(b: &[u8]) -> Vec<Input> {
            let mut v = Vec::new();
            let mut at = 32;
            while at + 12 <= b.len() {
                let size = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
                let pts = u64::from_le_bytes(b[at + 4..at + 12].try_into().unwrap());
                let data = b[at + 12..at + 12 + size].to_vec();
                v.push((pts * 1_000_000_000 / 30, data[0] & 1 == 0, data));
                at += 12 + size;
            }
            v
        }

        /// Opus packets of an Ogg file (headers skipped), 20 ms each as the fixture is made.
        fn ogg_packets(b: &[u8]) -> Vec<Input> {
            let (mut packets, mut cur, mut at) = (Vec::new(), Vec::new(), 0);
            while at + 27 <= b.len() {
                let lacing = &b[at + 27..at + 27 + b[at + 26] as usize];
                let mut data = at + 27 + lacing.len();
                for &l in lacing {
                    cur.extend_from_slice(&b[data..data + l as usize]);
                    data += l as usize;
                    if l < 255 {
                        packets.push(std::mem::take(&mut cur));
                    }
                }
                at = data;
            }
            packets.into_iter().skip(2).enumerate().map(|(i, p)| (i as u64 * 20_000_000, true, p)).collect()
        }

        fn run(cmd: &str, args: &[&str]) -> Option<(String, String)> {
            let o = Command::new(cmd).args(args).output().ok()?;
            Some((String::from_utf8_lossy(&o.stdout).into(), String::from_utf8_lossy(&o.stderr).into()))
        }

        fn decode_errors(path: &Path) -> String {
            let p = path.to_str().unwrap();
            run("ffmpeg", &["-v", "error", "-i", p, "-f", "null", "-"]).unwrap().1
        }

        /// Per output stream, the packet md5s ffmpeg's framemd5 prints.
        fn packet_md5s(path: &Path) -> Vec<Vec<String>> {
            let p = path.to_str().unwrap();
            let (out, _) =
                run("ffmpeg", &["-v", "error", "-i", p, "-c", "copy", "-f", "framemd5", "-"]).unwrap();
            let mut streams = vec![Vec::new(), Vec::new()];
            for line in out.lines().filter(|l| !l.starts_with('#')) {
                let cols: Vec<&str> = line.split(',').map(str::trim).collect();
                streams[cols[0].parse::<usize>().unwrap()].push(cols[5].to_string());
            }
            streams
        }

        /// A file written from fixtures: bytes before patches, patches, per-track packet md5s
        /// and, after each write, (bytes so far, packets so far per track).
        struct Written {
            raw: Vec<u8>,
            patches: Vec<Patch>,
            md5s: Vec<Vec<String>>,
            ends: Vec<(usize, [usize; 2])>,
        }

        fn write_file(video: Codec, ivf: &[u8]) -> Written {
            let mut tracks = vp8_opus();
            tracks[0].codec = video;
            let mut inputs: Vec<(usize, Input)> = ivf_frames(ivf).into_iter().map(|f| (0, f)).collect();
            inputs.extend(ogg_packets(include_bytes!("../../assets/opus.ogg")).into_iter().map(|f| (1, f)));
            inputs.sort_by_key(|(t, f)| (f.0, *t));
            let mut md5s = vec![Vec::new(), Vec::new()];
            let mut ends = Vec::new();
            let mut out = Vec::new();
            let mut w = MatroskaWriter::new(true, &tracks, &mut out).unwrap();
            for (track, (ts_ns, keyframe, data)) in &inputs {
                let duration_ns = (*track == 1).then_some(20_000_000);
                let f = MuxFrame { track: *track, ts_ns: *ts_ns, duration_ns, keyframe: *keyframe, data };
                w.write(&f, &mut out).unwrap();
                md5s[*track].push(format!("{:x}", Md5::digest(data)));
                ends.push((out.len(), [md5s[0].len(), md5s[1].len()]));
            }
            let patches = w.finish(&mut out);
            Written { raw: out, patches, md5s, ends }
        }

        /// A copy cut right after a write decodes cleanly with every packet so far; one cut
        /// inside a block only reports the premature end and keeps the complete packets.
        fn check_cuts(dir: &Path, name: &str, w: &Written) {
            let n = w.ends.len();
            for (k, mid_block) in [(n / 5, false), (n / 3, true), (n / 2, false), (n - 2, true)] {
                let (end, counts) = w.ends[k];
                let cut = if mid_block { end + 9 } else { end };
                let path = dir.join(format!("{name}-cut{cut}.webm"));
                std::fs::write(&path, &w.raw[..cut]).unwrap();
                let errors = decode_errors(&path);
                let expected = errors.lines().all(|l| l.ends_with("File ended prematurely"));
                assert!(expected && (mid_block || errors.is_empty()), "{name} cut {cut}: {errors}");
                let want: Vec<Vec<String>> = (0..2).map(|t| w.md5s[t][..counts[t]].to_vec()).collect();
                assert_eq!(packet_md5s(&path), want, "{name} cut at {cut}");
            }
        }

        #[test]
        fn ffmpeg_reads_full_patched_and_truncated_files() {
            if run("ffmpeg", &["-version"]).is_none() {
                eprintln!("ffmpeg not installed: skipping");
                return;
            }
            let dir = tempfile::tempdir().unwrap();
            let cases = [
                (Codec::Vp8, &include_bytes!("../../assets/vp8.ivf")[..], "vp8"),
                (Codec::Vp9, &include_bytes!("../../assets/vp9.ivf")[..], "vp9"),
            ];
            for (codec, ivf, name) in cases {
                let w = write_file(codec, ivf);
                let (raw, patches, md5s) = (&w.raw, &w.patches, &w.md5s);
                let mut patched = raw.clone();
                apply(&mut patched, patches);
                walk_patched(&patched);
                for (label, bytes) in [("raw", raw), ("patched", &patched)] {
                    let path = dir.path().join(format!("{name}-{label}.webm"));
                    std::fs::write(&path, bytes).unwrap();
                    assert_eq!(decode_errors(&path), "", "{name} {label}");
                    assert_eq!(&packet_md5s(&path), md5s, "{name} {label}");
                    let p = path.to_str().unwrap();
                    let (probe, _) = run(
                        "ffprobe",
                        &[
                            "-v",
                            "error",
                            "-show_entries",
                            "stream=codec_name:format=duration",
                            "-of",
                            "csv=p=0",
                            p,
                        ],
                    )
                    .unwrap();
                    assert!(probe.contains(name) && probe.contains("opus"), "{probe}");
                    if label == "patched" {
                        let duration: f64 = probe.lines().last().unwrap().trim().parse().unwrap();
                        assert!((3.9..4.1).contains(&duration), "duration {duration}");
                    }
                }
                check_cuts(dir.path(), name, &w);
            }
        }
    }
}
