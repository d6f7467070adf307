//! Ogg Opus writer (RFC 7845 on the Ogg framing of RFC 3533), one Opus track.
//!
//! Pure: no I/O; pages are appended to a caller-owned `Vec<u8>`. Invariant: every byte
//! appended is a whole page, so a file cut after any page boundary is a valid Ogg Opus file
//! that decodes up to that page. Real time is kept: the stream position (the granule)
//! follows the frames' timestamps, and gaps of 20 ms or more are filled with
//! silence packets.

use super::{ContainerKind, MuxError, MuxFrame, Patch, TrackConfig};
use crate::media::codec::opus::{packet_samples, SILENCE_20MS};
use crate::media::Codec;

/// Serial number of our only logical bitstream (RFC 3533 §6: any value; "LKRC").
const SERIAL: u32 = 0x4C4B_5243;
/// Samples one packet counts for when its TOC cannot be parsed.
const FALLBACK_SAMPLES: u64 = 960;
/// Samples in one [`SILENCE_20MS`] packet.
const SILENCE_SAMPLES: u64 = 960;
/// The most filler packets one gap gets: 10 minutes of 20 ms packets.
const MAX_FILL: u64 = 10 * 60 * 50;
/// Nanoseconds of one filler packet.
const FILL_NS: u64 = 20_000_000;
/// Lacing values one page holds at most (RFC 3533 §6: the segment count is one byte).
const MAX_SEGMENTS: usize = 255;

/// Header type flags (RFC 3533 §6).
const CONTINUED: u8 = 0x01;
const BOS: u8 = 0x02;
const EOS: u8 = 0x04;

/// Writes one Opus stream into Ogg pages; a page ends at each [`OggOpusWriter::flush`] and
/// when it reaches 255 lacing values (at most ~64 kB).
#[derive(Debug)]
pub struct OggOpusWriter {
    /// Page sequence number of the next page.
    seq: u32,
    /// The page being filled: lacing values and body.
    lacing: Vec<u8>,
    body: Vec<u8>,
    /// Whether the page being filled starts with the rest of a packet.
    continued: bool,
    /// Whether any packet completes on the page being filled.
    completes: bool,
    /// Samples of all packets queued so far (fillers included), without pre-skip.
    samples: u64,
    /// The first frame's timestamp: time zero of the stream.
    origin_ns: Option<u64>,
    fillers: u64,
    finished: bool,
}

impl OggOpusWriter {
    /// Checks that `tracks` is exactly one Opus track and appends the OpusHead page (BOS) and
    /// the OpusTags page (RFC 7845 §3: each header packet on its own page).
    pub fn new(tracks: &[TrackConfig], out: &mut Vec<u8>) -> Result<OggOpusWriter, MuxError> {
        let track = match tracks {
            [] => return Err(MuxError::NoTracks),
            [t] if t.codec == Codec::Opus => t,
            _ => {
                let other = tracks.iter().find(|t| t.codec != Codec::Opus);
                return Err(unsupported(other.map_or(Codec::Opus, |t| t.codec)));
            }
        };
        let mut w = OggOpusWriter {
            seq: 0,
            lacing: Vec::new(),
            body: Vec::new(),
            continued: false,
            completes: false,
            samples: 0,
            origin_ns: None,
            fillers: 0,
            finished: false,
        };
        w.header_page(&opus_head(track), BOS, out);
        w.header_page(&opus_tags(), 0, out);
        Ok(w)
    }

    /// Queues one Opus packet, after silence packets when it starts 20 ms or more after the
    /// end of the stream so far. Pages that fill up are appended to `out`. Frames after
    /// [`OggOpusWriter::finish`] are ignored (the stream has ended).
    pub fn write(&mut self, frame: &MuxFrame<'_>, out: &mut Vec<u8>) -> Result<(), MuxError> {
        if frame.track != 0 {
            return Err(MuxError::NoSuchTrack(frame.track));
        }
        if self.finished {
            return Ok(());
        }
        let origin = *self.origin_ns.get_or_insert(frame.ts_ns);
        self.fill_gap(frame.ts_ns.saturating_sub(origin), out);
        let n = packet_samples(frame.data).map_or(FALLBACK_SAMPLES, u64::from);
        self.push_packet(frame.data, n, out);
        Ok(())
    }

    /// Silence packets inserted so far to fill gaps.
    pub fn fillers(&self) -> u64 {
        self.fillers
    }

    /// Ends the current page if it holds anything, so every packet written so far is on disk
    /// once `out` is.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        if !self.finished && !self.lacing.is_empty() {
            self.end_page(0, out);
        }
    }

    /// Appends the last page with the end-of-stream flag (RFC 3533 §4); an empty page when
    /// nothing is pending. No patches. Calling it again does nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Vec<Patch> {
        if !self.finished {
            self.completes = true;
            self.end_page(EOS, out);
            self.finished = true;
        }
        Vec::new()
    }

    /// Inserts silence packets when the frame at `at_ns` (from the origin) starts at least one
    /// 20 ms packet after the end of what is queued, at most [`MAX_FILL`] per gap.
    /// Measured against the stream position, so small drifts cannot accumulate.
    fn fill_gap(&mut self, at_ns: u64, out: &mut Vec<u8>) {
        let end_ns = samples_to_ns(self.samples);
        let missing = (at_ns.saturating_sub(end_ns) / FILL_NS).min(MAX_FILL);
        for _ in 0..missing {
            self.push_packet(&SILENCE_20MS, SILENCE_SAMPLES, out);
        }
        self.fillers = self.fillers.saturating_add(missing);
    }

    /// Appends a header packet on its own page with granule position 0 (RFC 7845 §3).
    fn header_page(&mut self, packet: &[u8], flags: u8, out: &mut Vec<u8>) {
        let mut lacing = vec![255; packet.len() / 255];
        lacing.push((packet.len() % 255) as u8);
        write_page(flags, 0, self.seq, &lacing, packet, out);
        self.seq += 1;
    }

    /// Laces one packet of `samples` into the current page, ending pages that reach 255
    /// lacing values (the packet then continues on the next page, RFC 3533 §5).
    fn push_packet(&mut self, packet: &[u8], samples: u64, out: &mut Vec<u8>) {
        // A packet of length L takes L / 255 values of 255 and one final value < 255 (§6).
        let mut rest = packet;
        loop {
            let take = rest.len().min(255);
            let (seg, tail) = rest.split_at(take);
            self.lacing.push(u8::try_from(take).expect("take is at most 255"));
            self.body.extend_from_slice(seg);
            rest = tail;
            let done = take < 255;
            if done {
                // Counted only once complete: the granule covers completed packets only.
                self.samples = self.samples.saturating_add(samples);
                self.completes = true;
            }
            if self.lacing.len() == MAX_SEGMENTS {
                self.end_page(0, out);
                self.continued = !done;
            }
            if done {
                return;
            }
        }
    }

    /// Appends the current page with `flags` and starts an empty one.
    fn end_page(&mut self, flags: u8, out: &mut Vec<u8>) {
        // RFC 7845 §4: granule = samples decoded up to the last packet completed here, the
        // pre-skip included; the PCM position is granule - pre-skip, so the first packet's
        // audio is presented pre-skip samples before its timestamp. That is exactly the
        // encoder's look-ahead: its first kept sample was captured at the frame's timestamp
        // (the same presentation Matroska gives through CodecDelay).
        // RFC 3533 §6: -1 when no packet completes on the page.
        let granule = if self.completes { self.samples } else { u64::MAX };
        let flags = flags | if self.continued { CONTINUED } else { 0 };
        write_page(flags, granule, self.seq, &self.lacing, &self.body, out);
        self.seq = self.seq.wrapping_add(1);
        self.lacing.clear();
        self.body.clear();
        self.continued = false;
        self.completes = false;
    }
}

/// The error for a track this writer cannot carry.
fn unsupported(codec: Codec) -> MuxError {
    MuxError::Unsupported { container: ContainerKind::Ogg, codec }
}

/// Nanoseconds of `samples` at 48 kHz (rounded down, saturating).
fn samples_to_ns(samples: u64) -> u64 {
    u64::try_from(u128::from(samples) * 1_000_000_000 / 48_000).unwrap_or(u64::MAX)
}

/// The identification header (RFC 7845 §5.1), channel mapping family 0 (mono or stereo).
fn opus_head(track: &TrackConfig) -> Vec<u8> {
    let channels = if track.channels == 1 { 1 } else { 2 };
    let mut p = b"OpusHead".to_vec();
    p.push(1); // version
    p.push(channels);
    p.extend_from_slice(&track.pre_skip.to_le_bytes());
    p.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate
    p.extend_from_slice(&0i16.to_le_bytes()); // output gain
    p.push(0); // channel mapping family
    p
}

/// The comment header (RFC 7845 §5.2): our vendor string and no comments.
fn opus_tags() -> Vec<u8> {
    let vendor = b"livekit-recorder";
    let mut p = b"OpusTags".to_vec();
    p.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    p.extend_from_slice(vendor);
    p.extend_from_slice(&0u32.to_le_bytes());
    p
}

/// Appends one page (RFC 3533 §6) with its CRC.
fn write_page(flags: u8, granule: u64, seq: u32, lacing: &[u8], body: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0); // stream structure version
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&SERIAL.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // CRC, computed with this field zero
    out.push(u8::try_from(lacing.len()).expect("pages end at 255 lacing values"));
    out.extend_from_slice(lacing);
    out.extend_from_slice(body);
    let crc = crc32(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// CRC lookup table: polynomial 0x04C11DB7, not reflected (RFC 3533 §6).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 { (r << 1) ^ 0x04C1_1DB7 } else { r << 1 };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// The Ogg CRC-32: initial value 0, no final XOR.
fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(0u32, |crc, &b| (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ b)])
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

    fn opus() -> TrackConfig {
        TrackConfig::new(Codec::Opus)
    }

    fn frame(ts_ns: u64, data: &[u8]) -> MuxFrame<'_> {
        MuxFrame { track: 0, ts_ns, duration_ns: Some(20 * MS), keyframe: true, data }
    }

    /// (packet, page granule, first in stream, last in stream), CRCs checked by the reader.
    fn read_back(file: &[u8]) -> Vec<(Vec<u8>, u64, bool, bool)> {
        let mut r = ogg::PacketReader::new(Cursor::new(file));
        let mut packets = Vec::new();
        while let Some(p) = r.read_packet().expect("valid ogg") {
            let flags = (p.first_in_stream(), p.last_in_stream());
            packets.push((p.absgp_page(), flags, p.data));
        }
        packets.into_iter().map(|(g, (f, l), d)| (d, g, f, l)).collect()
    }

    /// The 20 ms packets of the fixture, headers skipped.
    fn fixture_packets() -> Vec<Vec<u8>> {
        let file: &[u8] = include_bytes!("../../assets/opus.ogg");
        let all = read_back(file);
        all.into_iter().skip(2).map(|p| p.0).collect()
    }

    #[test]
    fn rejects_other_track_sets() {
        let mut out = Vec::new();
        assert_eq!(OggOpusWriter::new(&[], &mut out).err(), Some(MuxError::NoTracks));
        let vp8 = TrackConfig::new(Codec::Vp8);
        let err = OggOpusWriter::new(&[opus(), vp8.clone()], &mut out).err();
        assert_eq!(err, Some(unsupported(Codec::Vp8)));
        let err = OggOpusWriter::new(&[opus(), opus()], &mut out).err();
        assert_eq!(err, Some(unsupported(Codec::Opus)));
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("one opus track");
        let bad = MuxFrame { track: 1, ..frame(0, &[1]) };
        assert_eq!(w.write(&bad, &mut out), Err(MuxError::NoSuchTrack(1)));
    }

    #[test]
    fn headers_and_granules() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        let packets = [vec![0xFC, 1, 2], vec![0xFC, 3], vec![16 << 3, 4]];
        for (i, p) in packets.iter().enumerate() {
            w.write(&frame(i as u64 * 20 * MS, p), &mut out).expect("write");
        }
        w.flush(&mut out);
        w.flush(&mut out); // nothing pending: no page
        w.finish(&mut out);
        let got = read_back(&out);
        assert_eq!(got.len(), 5);
        assert!(got[0].0.starts_with(b"OpusHead") && got[0].2 && got[0].1 == 0);
        assert_eq!(&got[0].0[9..12], &[2, 0x38, 0x01]); // stereo, pre-skip 312 LE
        assert!(got[1].0.starts_with(b"OpusTags") && got[1].1 == 0);
        assert_eq!(&got[1].0[12..28], b"livekit-recorder");
        assert_eq!(got[2].0, packets[0]);
        // Page granule: samples decoded, pre-skip included (RFC 7845 §4): 960 + 960 + 120.
        assert_eq!(got[4].1, 960 + 960 + 120);
        // The empty EOS page carries no packet but flags the last one (reader: last_in_stream
        // is only set on the EOS page's packets, so check the raw flag instead).
        let last_page = out.len() - 27;
        assert_eq!(out[last_page + 5], EOS);
        assert_eq!(out[last_page + 26], 0);
        assert_eq!(w.fillers(), 0);
    }

    #[test]
    fn finish_flags_the_pending_page() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        w.write(&frame(0, &SILENCE_20MS), &mut out).expect("write");
        w.finish(&mut out);
        let got = read_back(&out);
        assert_eq!(got.len(), 3);
        assert!(got[2].3, "last packet is on the EOS page");
        assert_eq!(got[2].1, 960);
        let before = out.len();
        w.finish(&mut out);
        w.write(&frame(0, &SILENCE_20MS), &mut out).expect("ignored");
        w.flush(&mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn big_packets_span_pages() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let exact = vec![7u8; 255 * 255]; // needs a terminating 0 on a continued page
        for (i, p) in [&big, &exact, &big[..10]].into_iter().enumerate() {
            w.write(&frame(i as u64 * 20 * MS, p), &mut out).expect("write");
        }
        w.finish(&mut out);
        let got = read_back(&out);
        assert_eq!(got.len(), 5);
        // The first audio page ends inside `big`: no packet completes on it.
        assert_eq!(got[2].1, 480); // TOC 0: SILK 10 ms
        let first_audio_page = 28 + 19 + 27 + 1 + 32;
        assert_eq!(&out[first_audio_page + 6..first_audio_page + 14], &[0xFF; 8]);
        assert_eq!(got[2].0, big);
        assert_eq!(got[3].0, exact);
        assert_eq!(got[4].0, &big[..10]);
    }

    #[test]
    fn granule_counts_completed_packets_only() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        let headers = out.len();
        w.write(&frame(0, &SILENCE_20MS), &mut out).expect("write");
        w.write(&frame(20 * MS, &vec![16 << 3; 70_000]), &mut out).expect("write");
        // The first page holds the small packet and the start of the big one.
        assert_eq!(&out[headers + 6..headers + 14], &960u64.to_le_bytes());
        w.finish(&mut out);
        let got = read_back(&out);
        assert_eq!(got[3].1, 960 + 120);
    }

    #[test]
    fn gaps_are_filled_with_silence() {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        let p = [0xFC, 9];
        w.write(&frame(5_000 * MS, &p), &mut out).expect("first frame is time zero");
        w.write(&frame(5_020 * MS, &p), &mut out).expect("write");
        w.write(&frame(5_059 * MS, &p), &mut out).expect("19 ms late: no filler");
        assert_eq!(w.fillers(), 0);
        w.write(&frame(6_060 * MS, &p), &mut out).expect("1 s gap");
        assert_eq!(w.fillers(), 50);
        w.write(&frame(u64::MAX, &p), &mut out).expect("huge gap is capped");
        assert_eq!(w.fillers(), 50 + MAX_FILL);
        w.write(&frame(0, &p), &mut out).expect("backwards: no underflow");
        w.finish(&mut out);
        let got = read_back(&out);
        assert_eq!(got.len() as u64, 2 + 6 + 50 + MAX_FILL);
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(
            ops in prop::collection::vec(
                (0u64..100_000_000, prop::collection::vec(any::<u8>(), 0..600), 0u8..8),
                0..60,
            )
        ) {
            let mut out = Vec::new();
            let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
            let mut ts = 0u64;
            let mut written = Vec::new();
            for (step, data, op) in &ops {
                ts = if *op == 7 { ts.saturating_sub(*step) } else { ts + step };
                w.write(&frame(ts, data), &mut out).expect("track 0");
                written.push(data.clone());
                if *op == 0 {
                    w.flush(&mut out);
                }
            }
            w.finish(&mut out);
            let got: Vec<Vec<u8>> = read_back(&out).into_iter().skip(2).map(|p| p.0).collect();
            prop_assert_eq!(got.len() as u64, written.len() as u64 + w.fillers());
            let real: Vec<Vec<u8>> = got.into_iter().filter(|p| p[..] != SILENCE_20MS).collect();
            let written: Vec<Vec<u8>> =
                written.into_iter().filter(|p| p[..] != SILENCE_20MS).collect();
            prop_assert_eq!(real, written);
        }
    }

    /// Whether ffmpeg is installed (the smoke tests are skipped without it).
    fn have_ffmpeg() -> bool {
        let ok = Command::new("ffmpeg").arg("-version").output().is_ok();
        if !ok {
            eprintln!("ffmpeg not found: smoke test skipped");
        }
        ok
    }

    fn run(cmd: &str, args: &[&str], file: &Path) -> (String, String) {
        let o = Command::new(cmd).args(args).arg(file).output().expect("runs");
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (text(o.stdout), text(o.stderr))
    }

    /// ffmpeg's decode errors (empty when clean).
    fn decode_errors(file: &Path) -> String {
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        String::from_utf8_lossy(&o.stderr).into_owned()
    }

    /// (pts, md5) per packet as `ffmpeg -c copy -f framemd5` reports them.
    fn framemd5(file: &Path) -> Vec<(i64, String)> {
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-c", "copy", "-f", "framemd5", "-"])
            .output()
            .expect("ffmpeg runs");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let rows = text.lines().filter(|l| !l.starts_with('#'));
        let fields = rows.map(|l| l.split(',').map(|f| f.trim().to_string()).collect::<Vec<_>>());
        fields.map(|f| (f[2].parse().expect("pts"), f[5].clone())).collect()
    }

    fn md5_hex(data: &[u8]) -> String {
        format!("{:x}", Md5::digest(data))
    }

    /// Writes the fixture's packets, 20 ms apart from `ts0`, with a gap of `gap_ns` before
    /// packet `gap_at`; flushes every 50 packets. Returns the file and the page ends.
    fn write_fixture(gap_at: usize, gap_ns: u64) -> (Vec<u8>, Vec<usize>, u64) {
        let mut out = Vec::new();
        let mut w = OggOpusWriter::new(&[opus()], &mut out).expect("opus");
        let mut cuts = Vec::new();
        for (i, p) in fixture_packets().iter().enumerate() {
            let gap = if i >= gap_at { gap_ns } else { 0 };
            let ts = 1_000 * MS + i as u64 * 20 * MS + gap;
            w.write(&frame(ts, p), &mut out).expect("write");
            if i % 50 == 49 {
                w.flush(&mut out);
                cuts.push(out.len());
            }
        }
        w.finish(&mut out);
        (out, cuts, w.fillers())
    }

    #[test]
    fn smoke_ffmpeg_decodes_and_keeps_bytes() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let packets = fixture_packets();
        let (file, cuts, fillers) = write_fixture(usize::MAX, 0);
        assert_eq!(fillers, 0);
        let path = dir.path().join("a.ogg");
        std::fs::write(&path, &file).expect("write file");
        assert_eq!(decode_errors(&path), "");
        let entries = ["-v", "error", "-show_entries", "stream=codec_name:format=duration"];
        let (probe, _) = run("ffprobe", &[&entries[..], &["-of", "csv=p=0"]].concat(), &path);
        assert!(probe.contains("opus"), "{probe}");
        let want = packets.len() as f64 * 0.02;
        let dur: f64 = probe.lines().last().and_then(|l| l.trim().parse().ok()).expect("duration");
        assert!((dur - want).abs() < 0.05, "duration {dur} vs {want}");
        let md5s: Vec<String> = framemd5(&path).into_iter().map(|r| r.1).collect();
        let want: Vec<String> = packets.iter().map(|p| md5_hex(p)).collect();
        assert_eq!(md5s, want);
        for (n, cut) in cuts.iter().enumerate().take(3) {
            let path = dir.path().join(format!("cut{n}.ogg"));
            std::fs::write(&path, &file[..*cut]).expect("write cut");
            assert_eq!(decode_errors(&path), "", "cut at {cut}");
            assert_eq!(framemd5(&path).len(), (n + 1) * 50);
        }
    }

    #[test]
    fn smoke_one_second_gap_shows_in_timestamps() {
        if !have_ffmpeg() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _, fillers) = write_fixture(100, 1_000 * MS);
        assert_eq!(fillers, 50);
        let path = dir.path().join("gap.ogg");
        std::fs::write(&path, &file).expect("write file");
        assert_eq!(decode_errors(&path), "");
        let packets = fixture_packets();
        let rows = framemd5(&path);
        assert_eq!(rows.len(), packets.len() + 50);
        // Real packets keep their bytes; 50 fillers sit between packets 99 and 100.
        assert_eq!(rows[99].1, md5_hex(&packets[99]));
        assert_eq!(rows[150].1, md5_hex(&packets[100]));
        assert_eq!(rows[100].1, md5_hex(&SILENCE_20MS));
        // 48 kHz time base: one packet of 960 samples plus one second.
        assert_eq!(rows[150].0 - rows[99].0, 960 + 48_000);
        assert_eq!(rows[99].0 - rows[0].0, 99 * 960);
    }
}
