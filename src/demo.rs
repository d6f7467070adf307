//! `livekit-recorder demo --offline`: one synthetic VP8 + Opus publisher (audio starting
//! 700 ms after video) recorded into one WebM file through the media core, with simulated
//! network delays and sender reports that start half a second in, as over a real connection.
//!
//! This exercises the whole media path offline: timeline, keyframe gate, interleaving,
//! container, crash-tolerant flushing and the clean close. The main job, `demo` without
//! `--offline`, is in [`live`]: the simulator plus the recorder daemon over real WebRTC.

pub mod live;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::media::mux::ContainerKind;
use crate::media::session::{SessionConfig, SessionStats};
use crate::media::{Codec, FrameIn, SenderReport};
use crate::output::RecordingPart;
use crate::synth::{EncodedLoop, Schedule, SyntheticTrack};

/// What `demo` does.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Length of the recording (sender time).
    pub duration: Duration,
    /// Directory to write into.
    pub dir: PathBuf,
    /// Sender wall clock at the start, ns since the UNIX epoch (also seeds RTP bases).
    pub start_unix_ns: u64,
}

/// What `demo` produced.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    /// The file written.
    pub path: PathBuf,
    /// Bytes in the file.
    pub bytes: u64,
    /// Media time written, seconds.
    pub duration_s: f64,
    /// Session counters.
    pub stats: SessionStats,
}

/// Errors from the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// An embedded loop could not be read.
    #[error("read embedded media: {0}")]
    Source(#[from] crate::media::source::SourceError),
    /// Disk trouble.
    #[error("write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

const AV_OFFSET_NS: u64 = 700_000_000;
const VIDEO_DELAY_NS: u64 = 30_000_000;
const AUDIO_DELAY_NS: u64 = 45_000_000;
const FIRST_SR_AFTER_NS: u64 = 500_000_000;
const POLL_EVERY_NS: u64 = 100_000_000;

/// Records the synthetic publisher; returns where the file is.
pub fn run(opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let t0 = opts.start_unix_ns;
    let video = SyntheticTrack::new(EncodedLoop::embedded(Codec::Vp8)?, (t0 >> 7) as u32, t0);
    let mut audio =
        SyntheticTrack::new(EncodedLoop::embedded(Codec::Opus)?, (t0 >> 19) as u32 ^ 0x9e37_79b9, t0);
    // the microphone starts late: its first frame is the one captured 700 ms in
    audio.skip_to_time(AV_OFFSET_NS);
    let end = t0 + opts.duration.as_nanos() as u64;
    let mut schedule = Schedule::new(vec![(video, VIDEO_DELAY_NS), (audio, AUDIO_DELAY_NS)], end);
    let path = opts.dir.join(format!("demo/alice-{}.webm", t0 / 1_000_000));
    let io = |source| DemoError::Io { path: path.clone(), source };
    let cfg = SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]);
    let mut part = RecordingPart::create(&path, cfg).map_err(io)?;
    let mut next_poll = 0;
    while let Some((i, arrival, f)) = schedule.next_arrival() {
        let arrival_ns = arrival - t0;
        // a sender report is one point on the publisher's NTP <-> RTP line; this frame's own
        // capture time and RTP time are such a point
        let sr = (f.sender_ns >= t0 + FIRST_SR_AFTER_NS)
            .then_some(SenderReport { ntp_ns: f.sender_ns, rtp_time: f.rtp_time });
        let frame = FrameIn {
            payload: f.payload,
            rtp_time: f.rtp_time,
            arrival_ns,
            contiguous: true,
            sender_report: sr,
        };
        let _ = part.push(i, &frame).map_err(io)?; // starts on a keyframe: never asks for one
        if arrival_ns >= next_poll {
            let _ = part.poll(arrival_ns).map_err(io)?;
            next_poll = arrival_ns + POLL_EVERY_NS;
        }
    }
    let duration_ns = part.last_written_ns().unwrap_or(0);
    let (path, stats) = part.finish().map_err(io)?;
    let bytes = std::fs::metadata(&path).map_err(io)?.len();
    Ok(DemoReport { path, bytes, duration_s: duration_ns as f64 / 1e9, stats })
}

/// The default output directory of the demo.
pub fn default_dir() -> &'static Path {
    Path::new(crate::config::DEFAULT_RECORDINGS_DIR)
}
