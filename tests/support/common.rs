//! Shared test helpers: a recording harness over the media core, and ffmpeg/ffprobe as the
//! independent judge of every file we write.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use livekit_recorder::media::mux::ContainerKind;
use livekit_recorder::media::session::{SessionConfig, SessionStats};
use livekit_recorder::media::{Codec, FrameIn, SenderReport};
use livekit_recorder::output::RecordingPart;
use livekit_recorder::synth::{EncodedLoop, Schedule, SyntheticTrack};

pub const MS: u64 = 1_000_000;

/// How the synthetic publisher behaves.
#[derive(Debug, Clone)]
pub struct PublishOpts {
    pub seconds: f64,
    /// Audio's first frame is captured this long after video's (the loops stay aligned).
    pub av_offset_ns: u64,
    /// Network delay per track (index-aligned with the codecs); missing = 20 ms.
    pub delays_ns: Vec<u64>,
    /// Sender reports on every frame from this sender time on (None: never).
    pub sr_from_ns: Option<u64>,
    /// RTP timestamp bases per track.
    pub rtp_bases: Vec<u32>,
    /// Sender-time windows in which nothing is sent (publisher pause / outage).
    pub pauses: Vec<(u64, u64)>,
}

impl Default for PublishOpts {
    fn default() -> Self {
        PublishOpts {
            seconds: 5.0,
            av_offset_ns: 0,
            delays_ns: vec![],
            sr_from_ns: Some(0),
            rtp_bases: vec![0x1234_5678, 0xfff0_0000],
            pauses: vec![],
        }
    }
}

/// A frame the publisher sent.
#[derive(Debug, Clone)]
pub struct Sent {
    /// Sender time relative to the loops' start, ns.
    pub sender_ns: u64,
    pub payload: Vec<u8>,
}

/// What a recording produced.
#[derive(Debug)]
pub struct Recorded {
    pub path: PathBuf,
    pub codecs: Vec<Codec>,
    /// Per track, every frame sent.
    pub sent: Vec<Vec<Sent>>,
    /// (file length, frames complete) at every flush point, in order.
    pub flushes: Vec<(u64, u64)>,
    pub stats: SessionStats,
    pub bytes: u64,
}

pub fn record(dir: &Path, kind: ContainerKind, codecs: &[Codec], o: &PublishOpts) -> Recorded {
    let name = codecs.iter().map(|c| c.as_str()).collect::<Vec<_>>().join("-");
    let path = dir.join(format!("{name}.{}", kind.extension()));
    let mut part =
        RecordingPart::create(&path, SessionConfig::new(kind, codecs.to_vec())).expect("create part");
    let tracks = codecs
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let base = o.rtp_bases.get(i).copied().unwrap_or(i as u32 * 7_777_777);
            let mut t = SyntheticTrack::new(EncodedLoop::embedded(c).expect("loop"), base, 0);
            if c == Codec::Opus {
                t.skip_to_time(o.av_offset_ns);
            }
            (t, o.delays_ns.get(i).copied().unwrap_or(20 * MS))
        })
        .collect();
    let mut schedule = Schedule::new(tracks, (o.seconds * 1e9) as u64);
    let (mut sent, mut next_poll) = (vec![Vec::new(); codecs.len()], 0u64);
    while let Some((i, arrival, f)) = schedule.next_arrival() {
        if o.pauses.iter().any(|&(a, b)| f.sender_ns >= a && f.sender_ns < b) {
            continue;
        }
        let arrival_ns = 1_000 * MS + arrival;
        let sr = o
            .sr_from_ns
            .filter(|&from| f.sender_ns >= from)
            .map(|_| SenderReport { ntp_ns: 5_000_000 * MS + f.sender_ns, rtp_time: f.rtp_time });
        sent[i].push(Sent { sender_ns: f.sender_ns, payload: f.payload.to_vec() });
        let frame = FrameIn {
            payload: f.payload,
            rtp_time: f.rtp_time,
            arrival_ns,
            contiguous: true,
            sender_report: sr,
        };
        let _ = part.push(i, &frame).unwrap();
        if arrival_ns >= next_poll {
            let _ = part.poll(arrival_ns).unwrap();
            next_poll = arrival_ns + 100 * MS;
        }
    }
    let flushes: Vec<(u64, u64)> = part.flushes().collect();
    let (path, stats) = part.finish().unwrap();
    let bytes = std::fs::metadata(&path).unwrap().len();
    Recorded { path, codecs: codecs.to_vec(), sent, flushes, stats, bytes }
}

/// `ffmpeg -v error -i FILE -fps_mode vfr -f null -`: what it printed (empty = clean decode).
/// WebRTC video has a variable frame rate (frame times follow the sender's clock and sync
/// corrections): frames are decoded with their own timestamps instead of being forced onto a
/// constant-rate grid, where two frames 28 ms apart can land on one 1/30 s tick and the null
/// muxer complains about the grid, not about the file. (Every packet is compared byte for
/// byte separately; this judges decoding.)
pub fn ffmpeg_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-fps_mode", "vfr", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg (is it installed? the README's test command installs it)");
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        s.push_str(&format!("\n[ffmpeg exit {:?}]", out.status.code()));
    }
    s
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStream {
    pub codec_name: String,
    pub codec_type: String,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub packets: u64,
}

#[derive(Debug, Clone)]
pub struct Probe {
    pub streams: Vec<ProbeStream>,
    pub duration: Option<f64>,
}

pub fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .arg("stream=codec_name,codec_type,width,height,nb_read_packets:format=duration")
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok()).or_else(|| x.as_f64());
    let streams = v["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| ProbeStream {
                    codec_name: s["codec_name"].as_str().unwrap_or("").to_string(),
                    codec_type: s["codec_type"].as_str().unwrap_or("").to_string(),
                    width: s["width"].as_u64(),
                    height: s["height"].as_u64(),
                    packets: num(&s["nb_read_packets"]).unwrap_or(0.0) as u64,
                })
                .collect()
        })
        .unwrap_or_default();
    Probe { streams, duration: num(&v["format"]["duration"]) }
}

/// One packet as ffmpeg's demuxer returns it (stream copy, no decoding).
#[derive(Debug, Clone)]
pub struct Packet {
    /// Presentation time in the stream's time base.
    pub pts: i64,
    pub tb_num: i64,
    pub tb_den: i64,
    pub data: Vec<u8>,
}

impl Packet {
    pub fn pts_ns(&self) -> i64 {
        (self.pts as i128 * self.tb_num as i128 * 1_000_000_000 / self.tb_den as i128) as i64
    }
    /// One tick of the stream's time base, in ns.
    pub fn tick_ns(&self) -> i64 {
        (self.tb_num as i128 * 1_000_000_000 / self.tb_den as i128) as i64
    }
}

/// Every packet of stream `index`, read back by ffmpeg: `framemd5` gives pts, size and md5;
/// the `data` muxer gives the bytes, split by those sizes and checked against the md5s.
pub fn packets(path: &Path, index: usize) -> Vec<Packet> {
    let map = format!("0:{index}");
    let run = |fmt: &str| {
        let out = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-copyts", "-i"])
            .arg(path)
            .args(["-map", &map, "-c", "copy", "-f", fmt, "-"])
            .output()
            .expect("run ffmpeg");
        assert!(out.status.success(), "ffmpeg -f {fmt}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let md5_text = String::from_utf8(run("framemd5")).expect("utf8");
    let raw = run("data");
    let (mut tb, mut pkts, mut off) = ((1, 1), Vec::new(), 0usize);
    for line in md5_text.lines() {
        if let Some(rest) = line.strip_prefix("#tb 0: ") {
            let (n, d) = rest.trim().split_once('/').expect("tb");
            tb = (n.parse().unwrap(), d.parse().unwrap());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let (pts, size, md5) = (f[2].parse::<i64>().unwrap(), f[4].parse::<usize>().unwrap(), f[5]);
        let data = raw[off..off + size].to_vec();
        off += size;
        assert_eq!(md5_hex(&data), md5, "data muxer and framemd5 disagree");
        pkts.push(Packet { pts, tb_num: tb.0, tb_den: tb.1, data });
    }
    pkts
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Annex-B NAL units of an access unit, without access unit delimiters (independent of the
/// crate's own parser).
pub fn annexb_nals(au: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= au.len() {
        if au[i] == 0 && au[i + 1] == 0 && au[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut e = starts.get(k + 1).map_or(au.len(), |&n| n - 3);
        while e > s && au[e - 1] == 0 {
            e -= 1; // the zero byte of a 4-byte start code
        }
        if e > s && au[s] & 0x1f != 9 {
            nals.push(au[s..e].to_vec());
        }
    }
    nals
}

/// 4-byte length-prefixed NAL units.
pub fn avcc_nals(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    while data.len() >= 4 {
        let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        assert!(data.len() >= 4 + n, "truncated length-prefixed NAL");
        nals.push(data[4..4 + n].to_vec());
        data = &data[4 + n..];
    }
    assert!(data.is_empty(), "trailing bytes after NALs");
    nals
}

/// The bytes a container must hold for a frame sent as `payload`, derived without the crate:
/// AV1 loses its temporal delimiter OBU (0x12 0x00), everything else is unchanged (H.264 is
/// compared NAL by NAL instead).
pub fn expected_stored(codec: Codec, payload: &[u8]) -> Vec<u8> {
    match codec {
        Codec::Av1 if payload.starts_with(&[0x12, 0x00]) => payload[2..].to_vec(),
        _ => payload.to_vec(),
    }
}

/// How much earlier than its block time ffmpeg presents an Opus packet: containers that signal
/// the encoder's pre-skip (Matroska CodecDelay, Ogg pre-skip) shift presentation by it, so the
/// first decoded sample lands where the sender captured it. Fragmented MP4 (dOps) does not.
pub fn opus_presentation_shift_ns(kind: ContainerKind) -> u64 {
    match kind {
        ContainerKind::Mp4 => 0,
        ContainerKind::Webm | ContainerKind::Mkv | ContainerKind::Ogg => 312 * 1_000_000_000 / 48_000,
    }
}

// ---- sync markers, measured in the decoded output ----

/// Times (s) at which the picture turns white.
pub fn flashes(path: &Path) -> Vec<f64> {
    // ffmpeg's filter graph follows a change of the picture size mid-stream (an lavfi `movie`
    // source in ffprobe stops there without an error); -copyts keeps the file's timeline
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-copyts", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-vf", "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-"])
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // pairs of lines: "frame:N pts:P pts_time:T", then "lavfi.signalstats.YAVG=Y"
    let (mut times, mut was_white, mut t) = (Vec::new(), false, None);
    for line in text.lines() {
        if let Some(at) = line.split_whitespace().find_map(|w| w.strip_prefix("pts_time:")) {
            t = Some(at.parse::<f64>().unwrap_or_else(|e| panic!("pts_time {at:?}: {e}")));
        } else if let (Some(y), Some(at)) = (line.strip_prefix("lavfi.signalstats.YAVG="), t.take()) {
            let white = y.parse::<f64>().unwrap_or_else(|e| panic!("YAVG {y:?}: {e}")) > 200.0;
            if white && !was_white {
                times.push(at);
            }
            was_white = white;
        }
    }
    times
}

/// Times (s) at which a loud beep starts, from PCM resampled onto the file's timeline
/// (`first_pts=0` pads the start, `async=1` fills gaps, so sample n is at n / 48000 s).
pub fn beeps(path: &Path) -> Vec<f64> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-af", "aresample=async=1:first_pts=0", "-ac", "1", "-ar", "48000"])
        .args(["-f", "s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples: Vec<i16> = out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    let (mut times, mut quiet_since) = (Vec::new(), 0usize);
    for (n, &s) in samples.iter().enumerate() {
        if s.unsigned_abs() > 8000 {
            if n - quiet_since > 48_000 / 2 {
                times.push(n as f64 / 48_000.0);
            }
            quiet_since = n;
        }
    }
    times
}

/// Markers within 10 ms (the media core with exact inputs).
pub fn assert_in_sync(path: &Path, from_s: f64, want_pairs: usize) {
    assert_in_sync_within(path, from_s, want_pairs, 10.0);
}

/// The recorder over WebRTC: within 20 ms. Its file starts on arrival times and moves to the
/// sender's clock when the first sender report comes (3 s in, as livekit-server sends them),
/// so the first markers carry the network's and the machine's jitter.
pub fn assert_recorder_in_sync(path: &Path, from_s: f64, want_pairs: usize) {
    assert_in_sync_within(path, from_s, want_pairs, 20.0);
}

pub fn assert_in_sync_within(path: &Path, from_s: f64, want_pairs: usize, max_ms: f64) {
    assert_markers_within("markers", path, from_s, f64::INFINITY, want_pairs, max_ms);
}

/// A/V offsets (ms, audio - video) at every flash in `from_s..=until_s`, each with the
/// nearest beep; at least `want_pairs` of them, each within `max_ms`.
pub fn assert_markers_within(
    what: &str,
    path: &Path,
    from_s: f64,
    until_s: f64,
    want_pairs: usize,
    max_ms: f64,
) -> Vec<f64> {
    let (f, b) = (flashes(path), beeps(path));
    let within: Vec<f64> = f.iter().copied().filter(|&t| t >= from_s && t <= until_s).collect();
    let offsets = assert_beeps_near(what, &within, &b, max_ms);
    assert!(
        offsets.len() >= want_pairs,
        "{what}: only {} markers measured: flashes {f:?}, beeps {b:?}",
        offsets.len()
    );
    offsets
}

/// The A/V offset (ms, audio - video) of each flash time (s) with the beep nearest to it, each
/// within `max_ms`.
pub fn assert_beeps_near(what: &str, flashes: &[f64], beeps: &[f64], max_ms: f64) -> Vec<f64> {
    let mut offsets = Vec::new();
    for &t in flashes {
        let nearest = beeps.iter().copied().min_by(|x, y| (x - t).abs().total_cmp(&(y - t).abs()));
        let beep =
            nearest.unwrap_or_else(|| panic!("{what}: no beep near the flash at {t} s: beeps {beeps:?}"));
        let offset_ms = (beep - t) * 1000.0;
        eprintln!("{what}: marker at {t:.3} s: audio - video = {offset_ms:+.1} ms");
        assert!(
            offset_ms.abs() <= max_ms,
            "{what}: flash at {t:.3} s, beep at {beep:.3} s: {offset_ms:.1} ms apart"
        );
        offsets.push(offset_ms);
    }
    offsets
}

/// A small deterministic generator (tests must be reproducible).
pub struct Lcg(pub u64);
impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The browser the tests launch (Debian's package; never a downloaded one).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Where `tests/browser/install.sh` puts playwright-core and livekit-client (the browser tests:
/// `real_browser`, `recorder_dashboard`):
/// `$LKREC_BROWSER_MODULES`, else `$HOME/.cache/livekit-recorder/browser/node_modules`.
/// Panics with the install command when they or Chromium are missing.
pub fn node_modules() -> PathBuf {
    let dir = match std::env::var_os("LKREC_BROWSER_MODULES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
            .join(".cache/livekit-recorder/browser/node_modules"),
    };
    for need in ["playwright-core/package.json", "livekit-client/dist/livekit-client.umd.js"] {
        assert!(
            dir.join(need).is_file(),
            "{} is missing: install the browser publisher's packages with `sh tests/browser/install.sh` \
             (or set LKREC_BROWSER_MODULES)",
            dir.join(need).display()
        );
    }
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: `sh tests/browser/install.sh` (apt-get install chromium) installs it"
    );
    dir
}

/// The PixelWidth/PixelHeight a Matroska/WebM file's first video track declares in its header
/// (read by a walk of the EBML elements, not by a decoder, which reports the first frame's).
pub fn matroska_declared_size(path: &Path) -> Option<(u64, u64)> {
    let b = std::fs::read(path).ok()?;
    // (id with its marker, data offset, data size; None for unknown)
    let element = |at: usize| -> Option<(u64, usize, Option<usize>)> {
        let vint = |at: usize| -> Option<(u64, u64, usize)> {
            let len = b.get(at)?.leading_zeros() as usize + 1;
            let raw = b.get(at..at + len)?.iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
            Some((raw & !(1u64 << (7 * len)), raw, len))
        };
        let (_, id, id_len) = vint(at)?;
        let (size, _, size_len) = vint(at + id_len)?;
        let unknown = size == (1u64 << (7 * size_len)) - 1;
        Some((id, at + id_len + size_len, (!unknown).then_some(size as usize)))
    };
    let children = |from: usize, to: usize| -> Vec<(u64, usize, usize)> {
        let (mut at, mut v) = (from, Vec::new());
        while let Some((id, data, Some(size))) = element(at).filter(|_| at < to) {
            v.push((id, data, size));
            at = data + size;
        }
        v
    };
    let (_, ebml_data, ebml_size) = element(0)?;
    let (segment, seg_data, _) = element(ebml_data + ebml_size?)?;
    (segment == 0x1853_8067).then_some(())?;
    let uint =
        |data: usize, size: usize| b[data..data + size].iter().fold(0u64, |a, &x| a << 8 | u64::from(x));
    let (_, tracks, tracks_size) = children(seg_data, b.len()).into_iter().find(|e| e.0 == 0x1654_AE6B)?;
    for (_, entry, entry_size) in children(tracks, tracks + tracks_size).into_iter().filter(|e| e.0 == 0xAE) {
        if let Some((_, video, video_size)) =
            children(entry, entry + entry_size).into_iter().find(|e| e.0 == 0xE0)
        {
            let kids = children(video, video + video_size);
            let get = |id| kids.iter().find(|e| e.0 == id).map(|e| uint(e.1, e.2));
            return Some((get(0xB0)?, get(0xBA)?));
        }
    }
    None
}

/// `CI` is set (and not `0`/`false`): a test that cannot run its setup must fail there.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A test whose setup this machine cannot give: under CI it fails (a silent pass would hide
/// that the test never ran); elsewhere it prints why it is skipped.
pub fn skip_unless_ci(test: &str, why: &str, ci: bool) {
    assert!(!ci, "{test}: {why}; under CI=1 this is a failure, not a skip");
    eprintln!("SKIPPED {test}: {why} (set CI=1 to make this a failure)");
}
