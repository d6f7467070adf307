//! `livekit-recorder demo`: one synthetic VP8 + Opus publisher (audio starting 700 ms after
//! video) recorded into one WebM file through the media core, with simulated network delays and
//! sender reports that start half a second in, as over a real connection.
//!
//! Until the recorder daemon lands, this exercises the whole media path offline: timeline,
//! keyframe gate, interleaving, container, crash-tolerant flushing and the clean close.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::media::mux::ContainerKind;
use crate::media::session::{Session, SessionConfig, SessionStats};
use crate::media::{Codec, FrameIn, SenderReport};
use crate::output::PartFile;
use crate::synth::{EncodedLoop, SyntheticTrack};

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
    /// The session could not start.
    #[error("start the media session: {0}")]
    Session(#[from] crate::media::session::SessionError),
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
    let seed = opts.start_unix_ns;
    let t0 = opts.start_unix_ns;
    let mut tracks = [
        (SyntheticTrack::new(EncodedLoop::embedded(Codec::Vp8)?, (seed >> 7) as u32, t0), VIDEO_DELAY_NS),
        (
            SyntheticTrack::new(
                EncodedLoop::embedded(Codec::Opus)?,
                (seed >> 19) as u32 ^ 0x9e37_79b9,
                t0 + AV_OFFSET_NS,
            ),
            AUDIO_DELAY_NS,
        ),
    ];
    let cfg = SessionConfig::new(ContainerKind::Webm, vec![Codec::Vp8, Codec::Opus]);
    let mut session = Session::new(cfg)?;
    let path = opts.dir.join(format!("demo/alice-{}.webm", t0 / 1_000_000));
    let io = |source| DemoError::Io { path: path.clone(), source };
    let mut file = PartFile::create(&path).map_err(io)?;
    let end = t0 + opts.duration.as_nanos() as u64;
    let (mut out, mut next_poll) = (Vec::new(), 0);
    // each step: the track whose next frame arrives first
    while let Some(i) = (0..tracks.len())
        .filter(|&i| tracks[i].0.next_sender_ns() < end)
        .min_by_key(|&i| tracks[i].0.next_sender_ns() + tracks[i].1)
    {
        let (track, delay) = &mut tracks[i];
        let f = track.next_frame();
        let arrival_ns = f.sender_ns - t0 + *delay;
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
        let mut outcome = session.push(i, &frame, &mut out);
        if arrival_ns >= next_poll {
            outcome.flush |= session.poll(arrival_ns, &mut out).flush;
            next_poll = arrival_ns + POLL_EVERY_NS;
        }
        write_out(&mut file, &mut out, outcome.flush).map_err(io)?;
    }
    let patches = session.finish(&mut out);
    write_out(&mut file, &mut out, false).map_err(io)?;
    let bytes = file.len();
    let path = file.close(&patches).map_err(io)?;
    let duration_s = session.last_written_ns().unwrap_or(0) as f64 / 1e9;
    Ok(DemoReport { path, bytes, duration_s, stats: session.stats() })
}

fn write_out(file: &mut PartFile, out: &mut Vec<u8>, flush: bool) -> std::io::Result<()> {
    file.append(out)?;
    out.clear();
    if flush {
        file.flush()?;
    }
    Ok(())
}

/// The default output directory of the demo.
pub fn default_dir() -> &'static Path {
    Path::new(crate::config::DEFAULT_RECORDINGS_DIR)
}
