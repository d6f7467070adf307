//! One participant's recording part: frames of its tracks in, one container file's bytes out.
//!
//! Pure: the caller passes arrival times and receives bytes plus instructions
//! ([`Outcome`]): when to flush the file to disk and when to ask the publisher for a keyframe.
//!
//! Rules it enforces:
//! - **Keyframe gate.** A video track starts at a keyframe; frames before it are dropped and
//!   counted, and [`Outcome::request_keyframe`] is set. After loss that the depacketizer could
//!   not repair (`contiguous == false`), video waits for the next keyframe the same way.
//! - **Bounded start hold.** The file header needs each video track's configuration (size,
//!   `avcC`, `av1C`), which only a keyframe carries, and timestamps are best once sender
//!   reports tie the tracks together. Frames are held for at most
//!   [`SessionConfig::max_start_hold_ns`] (2 s) waiting for the keyframes, and for at most
//!   [`SessionConfig::max_sync_wait_ns`] waiting for reports (the recorder sets 0: a real SFU
//!   sends its first report up to 3 s after the first packet); a track's first report
//!   re-times its held frames. Then the file starts anyway, with a fallback video
//!   configuration if needed (sizes from the bitstream, H.264/AV1 parameter sets in-band), and
//!   later reports correct the timeline gradually (see [`super::timeline`]).
//! - **No audio overlap.** An audio frame that would start before the previous one ended (after
//!   a backward timeline correction) is dropped and counted: audio is played back to back, so
//!   overlapping frames would push everything after them late.
//! - **Interleaving.** Frames are written in timestamp order across tracks. A frame waits at
//!   most [`SessionConfig::interleave_window_ns`] (of timeline time, or of arrival time when
//!   everything stops) for the other tracks.
//! - **Flush points.** At every video keyframe and at least every
//!   [`SessionConfig::flush_interval_ns`], the muxer closes its fragment/page and the caller
//!   is told to flush: a crash loses at most that interval.
//! - **Bounded memory.** At most [`SessionConfig::max_queued_frames`] frames wait per track
//!   (default 512: about 10 s of 20 ms audio or 17 s of 30 fps video, far beyond the hold and
//!   interleave windows); past that the oldest is written at once instead of waiting. Frames
//!   are never dropped for lack of room.
//! - **Real time.** Timestamps come from the timeline (RTP + sender reports), so gaps (loss,
//!   mute, publisher pause) stay gaps: nothing is sped up or compressed.

use std::collections::VecDeque;

use super::codec::{self, opus, VideoParams};
use super::mux::{ContainerKind, MuxError, MuxFrame, Muxer, Patch, TrackConfig};
use super::timeline::{ParticipantClock, TrackTimeline, MIN_VIDEO_STEP_NS};
use super::{Codec, FrameIn, MediaKind};

/// Tunables of a [`Session`]. Times are nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The container to write.
    pub container: ContainerKind,
    /// The tracks of the file, in order.
    pub tracks: Vec<Codec>,
    /// How long frames may wait for the first video keyframe before the file starts anyway.
    pub max_start_hold_ns: u64,
    /// How long, once every video track has its keyframe, the file waits for sender reports
    /// before it starts on arrival times (later reports then correct the timeline; see
    /// [`super::timeline`]). At most [`SessionConfig::max_start_hold_ns`] counts.
    pub max_sync_wait_ns: u64,
    /// How long a frame may wait for the other tracks' frames, for interleaving.
    pub interleave_window_ns: u64,
    /// Longest time between flush points.
    pub flush_interval_ns: u64,
    /// Most frames waiting per track.
    pub max_queued_frames: usize,
}

impl SessionConfig {
    /// Defaults: 2 s start hold and sync wait, 300 ms interleave window, 1 s flush interval,
    /// 512 frames.
    pub fn new(container: ContainerKind, tracks: Vec<Codec>) -> SessionConfig {
        SessionConfig {
            container,
            tracks,
            max_start_hold_ns: 2_000_000_000,
            max_sync_wait_ns: 2_000_000_000,
            interleave_window_ns: 300_000_000,
            flush_interval_ns: 1_000_000_000,
            max_queued_frames: 512,
        }
    }
}

/// What the caller must do after a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Outcome {
    /// Write the bytes appended to `out` and flush the file to disk now.
    pub flush: bool,
    /// Ask the publisher for a keyframe (PLI) on this track; the caller rate-limits.
    pub request_keyframe: bool,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.flush |= other.flush;
        self.request_keyframe |= other.request_keyframe;
    }
}

/// Counters for metrics and for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    /// Frames given to [`Session::push`].
    pub frames_in: u64,
    /// Frames handed to the container.
    pub frames_written: u64,
    /// Video frames dropped while waiting for the first keyframe.
    pub dropped_before_keyframe: u64,
    /// Video frames dropped after unrepaired loss, until the next keyframe.
    pub dropped_after_loss: u64,
    /// Video frames replaced, before they were written, by a keyframe of the same capture time
    /// (a simulcast layer switch: the SFU forwards the new layer's keyframe of the picture it
    /// has just sent from the old layer).
    pub replaced_by_layer_switch: u64,
    /// Audio frames dropped because they overlapped the previous frame, or because a move back
    /// before the file started put them before the timeline's origin.
    pub dropped_audio_overlap: u64,
    /// Frames with a track index that does not exist.
    pub dropped_unknown_track: u64,
    /// Keyframes whose picture size differed from the previous one.
    pub resolution_changes: u64,
    /// Flush points reached.
    pub flushes: u64,
    /// Frames complete in the output at the last flush point (what survives a crash).
    pub frames_at_last_flush: u64,
    /// Bytes appended to `out` in total.
    pub bytes: u64,
}

/// Errors from a session.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The container rejected the track set.
    #[error("open the container: {0}")]
    Mux(#[from] MuxError),
}

#[derive(Debug)]
struct Queued {
    ts_ns: u64,
    /// The frame's RTP timestamp (its capture time on the sender's clock).
    rtp_time: u32,
    duration_ns: Option<u64>,
    keyframe: bool,
    data: Vec<u8>,
}

#[derive(Debug)]
struct TrackState {
    codec: Codec,
    timeline: TrackTimeline,
    awaiting_keyframe: bool,
    params: Option<VideoParams>,
    queue: VecDeque<Queued>,
    /// End of the last audio frame admitted (timeline ns).
    audio_end_ns: u64,
}

/// One recording part of one participant. See the module docs.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    clock: ParticipantClock,
    tracks: Vec<TrackState>,
    muxer: Option<Muxer>,
    /// Participant-timeline time that is zero in the file.
    start_ns: u64,
    first_arrival_ns: Option<u64>,
    last_arrival_ns: u64,
    /// Highest timestamp queued on any track (drives the interleave window).
    newest_ts_ns: u64,
    last_flush_ts_ns: u64,
    last_flush_arrival_ns: u64,
    last_written_ns: Option<u64>,
    scratch: Vec<u8>,
    stats: SessionStats,
}

impl Session {
    /// A session that writes nothing until its first frames arrive.
    pub fn new(cfg: SessionConfig) -> Result<Session, SessionError> {
        if cfg.tracks.is_empty() {
            return Err(MuxError::NoTracks.into());
        }
        if let Some(&codec) = cfg.tracks.iter().find(|c| !cfg.container.supports(**c)) {
            return Err(MuxError::Unsupported { container: cfg.container, codec }.into());
        }
        let tracks = cfg.tracks.iter().map(|&codec| TrackState::new(codec)).collect();
        Ok(Session {
            cfg,
            clock: ParticipantClock::new(),
            tracks,
            muxer: None,
            start_ns: 0,
            first_arrival_ns: None,
            last_arrival_ns: 0,
            newest_ts_ns: 0,
            last_flush_ts_ns: 0,
            last_flush_arrival_ns: 0,
            last_written_ns: None,
            scratch: Vec::new(),
            stats: SessionStats::default(),
        })
    }

    /// Takes one frame of track `track` (an index into [`SessionConfig::tracks`]). Bytes for
    /// the file are appended to `out`.
    pub fn push(&mut self, track: usize, frame: &FrameIn<'_>, out: &mut Vec<u8>) -> Outcome {
        self.stats.frames_in += 1;
        let Some(t) = self.tracks.get_mut(track) else {
            self.stats.dropped_unknown_track += 1;
            return Outcome::default();
        };
        self.last_arrival_ns = self.last_arrival_ns.max(frame.arrival_ns);
        self.first_arrival_ns.get_or_insert(frame.arrival_ns);
        let started = self.muxer.is_some();
        let before = t.timeline.offset_ns();
        let ts =
            t.timeline.map(&mut self.clock, frame.rtp_time, frame.arrival_ns, frame.sender_report, started);
        if let (Some(old), Some(new), false) = (before, t.timeline.offset_ns(), started) {
            t.retime_queued(new - old, &mut self.stats);
        }
        // a frame of the same capture time as the last one queued (within 1 ms): another
        // simulcast layer's picture of the same instant (VP8 and H.264 only: VP9 and AV1 SVC
        // layers of one picture share a timestamp and build on each other)
        let same_instant = matches!(t.codec, Codec::Vp8 | Codec::H264)
            && t.queue.back().is_some_and(|q| {
                let d = frame.rtp_time.wrapping_sub(q.rtp_time);
                d.min(d.wrapping_neg()) <= t.codec.clock_rate() / 1000
            });
        let (keyframe, mut outcome) = t.admit(frame, &mut self.stats);
        let Some(keyframe) = keyframe else {
            return outcome;
        };
        let mut ts = ts;
        if same_instant && keyframe {
            // A layer switch: the SFU forwards the new layer's keyframe of the picture it has
            // just sent from the old layer. One picture per instant: the keyframe (which the
            // next frames need) replaces the old layer's, not written yet, at its time. Before
            // the file starts, the track's configuration (its size) comes from it too.
            let old = t.queue.pop_back().expect("checked above");
            ts = old.ts_ns;
            if !started && !t.queue.iter().any(|q| q.keyframe) {
                t.params = codec::video_params(t.codec, frame.payload);
            }
            self.stats.replaced_by_layer_switch += 1;
        }
        let duration_ns = match t.codec {
            Codec::Opus => opus::packet_samples(frame.payload).map(|s| u64::from(s) * 1_000_000_000 / 48_000),
            _ => None,
        };
        if t.codec.kind() == MediaKind::Audio {
            // 1 ms of slack: container time bases round
            if ts.saturating_add(1_000_000) < t.audio_end_ns {
                self.stats.dropped_audio_overlap += 1;
                return outcome;
            }
            t.audio_end_ns = ts.saturating_add(duration_ns.unwrap_or(20_000_000));
        }
        codec::to_stored(t.codec, frame.payload, &mut self.scratch);
        let data = std::mem::take(&mut self.scratch);
        t.queue.push_back(Queued { ts_ns: ts, rtp_time: frame.rtp_time, duration_ns, keyframe, data });
        self.newest_ts_ns = self.newest_ts_ns.max(ts);
        outcome.merge(self.advance(frame.arrival_ns, false, out));
        outcome
    }

    /// Lets time pass without frames: starts the file when the start hold expires and writes
    /// frames that waited too long. Call it a few times a second.
    pub fn poll(&mut self, now_arrival_ns: u64, out: &mut Vec<u8>) -> Outcome {
        let idle = now_arrival_ns.saturating_sub(self.last_arrival_ns) >= self.cfg.interleave_window_ns;
        self.advance(now_arrival_ns, idle, out)
    }

    /// Clean close: writes every waiting frame and the container's trailer. Returns the
    /// patches to apply to bytes already written (see [`Muxer::finish`]).
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Vec<Patch> {
        let before = out.len();
        let has_frames = self.tracks.iter().any(|t| !t.queue.is_empty());
        if self.muxer.is_none() && has_frames {
            self.open(out);
        }
        self.drain(true, out);
        let patches = self.muxer.as_mut().map(|m| m.finish(out)).unwrap_or_default();
        self.stats.bytes += (out.len() - before) as u64;
        patches
    }

    /// Whether the file has started (its header was produced).
    pub fn started(&self) -> bool {
        self.muxer.is_some()
    }

    /// Counters so far.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Timestamp (file time, ns) of the last frame written, if any.
    pub fn last_written_ns(&self) -> Option<u64> {
        self.last_written_ns
    }

    /// Opens the file when it can start, then writes what may be written.
    fn advance(&mut self, now_arrival_ns: u64, idle: bool, out: &mut Vec<u8>) -> Outcome {
        let before = out.len();
        let mut outcome = Outcome::default();
        if self.muxer.is_none() && self.ready_to_open(now_arrival_ns) {
            self.open(out);
        }
        if self.muxer.is_some() {
            outcome.flush |= self.drain(idle, out);
            if now_arrival_ns.saturating_sub(self.last_flush_arrival_ns) >= self.cfg.flush_interval_ns {
                outcome.flush |= self.flush_point(now_arrival_ns, out);
            }
        }
        self.stats.bytes += (out.len() - before) as u64;
        outcome
    }

    fn ready_to_open(&self, now_arrival_ns: u64) -> bool {
        let videos_ready =
            self.tracks.iter().filter(|t| t.codec.kind() == MediaKind::Video).all(|t| t.params.is_some());
        let any_frames = self.tracks.iter().any(|t| !t.queue.is_empty());
        let synced = self.tracks.iter().filter(|t| !t.queue.is_empty()).all(|t| t.timeline.is_synced());
        let waited = |ns: u64| self.first_arrival_ns.is_some_and(|f| now_arrival_ns.saturating_sub(f) >= ns);
        let hold_over = waited(self.cfg.max_start_hold_ns);
        let sync_wait_over = waited(self.cfg.max_sync_wait_ns);
        let queue_full = self.tracks.iter().any(|t| t.queue.len() >= self.cfg.max_queued_frames);
        any_frames && ((videos_ready && (synced || sync_wait_over)) || hold_over || queue_full)
    }

    /// Writes the header. File time zero is the earliest frame waiting.
    fn open(&mut self, out: &mut Vec<u8>) {
        self.start_ns =
            self.tracks.iter().filter_map(|t| t.queue.front()).map(|q| q.ts_ns).min().unwrap_or(0);
        let configs: Vec<TrackConfig> = self.tracks.iter().map(TrackState::config).collect();
        // The track set was validated in `new`, so the container accepts it.
        self.muxer = Muxer::new(self.cfg.container, &configs, out).ok();
        self.last_flush_ts_ns = self.start_ns;
    }

    /// Writes queued frames in timestamp order while the interleave rule allows. Returns
    /// whether a flush point was reached.
    fn drain(&mut self, force: bool, out: &mut Vec<u8>) -> bool {
        let mut flushed = false;
        while let Some(i) = self.next_track(force) {
            let q = self.tracks[i].queue.pop_front().expect("next_track returns a non-empty queue");
            flushed |= self.write(i, q, out);
        }
        flushed
    }

    /// The track whose head frame is oldest, if it may be written now: every other track has
    /// a later frame waiting, or it waited out the window, or its queue is full, or `force`.
    fn next_track(&self, force: bool) -> Option<usize> {
        let (i, head) = self
            .tracks
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.queue.front().map(|q| (i, q.ts_ns)))
            .min_by_key(|&(_, ts)| ts)?;
        // The last frame queued of a simulcast-capable video track (VP8, H.264) stays until its
        // track's next frame: that may be another layer's keyframe of the same instant, which
        // replaces it (see `push`); written, the picture would be in the file twice.
        let track = &self.tracks[i];
        let may_be_replaced = matches!(track.codec, Codec::Vp8 | Codec::H264) && track.queue.len() == 1;
        let others_ahead =
            !may_be_replaced && self.tracks.iter().enumerate().all(|(j, t)| j == i || !t.queue.is_empty());
        let waited_out = self.newest_ts_ns.saturating_sub(head) >= self.cfg.interleave_window_ns;
        let full = self.tracks[i].queue.len() >= self.cfg.max_queued_frames;
        (force || others_ahead || waited_out || full).then_some(i)
    }

    fn write(&mut self, track: usize, q: Queued, out: &mut Vec<u8>) -> bool {
        if self.muxer.is_none() {
            return false;
        }
        let ts_ns = q.ts_ns.saturating_sub(self.start_ns);
        let video_key = q.keyframe && self.tracks[track].codec.kind() == MediaKind::Video;
        let due = q.ts_ns.saturating_sub(self.last_flush_ts_ns) >= self.cfg.flush_interval_ns;
        let mut flushed = false;
        if video_key || due {
            flushed = self.flush_point(self.last_arrival_ns, out);
            self.last_flush_ts_ns = q.ts_ns;
        }
        let frame =
            MuxFrame { track, ts_ns, duration_ns: q.duration_ns, keyframe: q.keyframe, data: &q.data };
        let muxer = self.muxer.as_mut().expect("checked above");
        // Track indices come from our own config, so the muxer accepts every frame.
        let _ = muxer.write(&frame, out);
        self.stats.frames_written += 1;
        self.last_written_ns = Some(self.last_written_ns.map_or(ts_ns, |l| l.max(ts_ns)));
        self.scratch = q.data;
        flushed
    }

    fn flush_point(&mut self, now_arrival_ns: u64, out: &mut Vec<u8>) -> bool {
        let Some(muxer) = self.muxer.as_mut() else { return false };
        muxer.flush(out);
        self.stats.frames_at_last_flush = self.stats.frames_written;
        self.last_flush_arrival_ns = now_arrival_ns;
        self.stats.flushes += 1;
        true
    }
}

impl TrackState {
    fn new(codec: Codec) -> TrackState {
        TrackState {
            codec,
            timeline: match codec.kind() {
                MediaKind::Audio => TrackTimeline::for_audio(codec.clock_rate()),
                MediaKind::Video => TrackTimeline::new(codec.clock_rate()),
            },
            awaiting_keyframe: codec.kind() == MediaKind::Video,
            params: None,
            queue: VecDeque::new(),
            audio_end_ns: 0,
        }
    }

    /// Moves frames not yet written by `shift_ns` (a first sender report before the file
    /// started).
    fn retime_queued(&mut self, shift_ns: i128, stats: &mut SessionStats) {
        if shift_ns == 0 {
            return;
        }
        // A move back can take the first frames before the timeline's origin. Video frames
        // stay (each is needed to decode the next) at the origin, each MIN_VIDEO_STEP_NS after
        // the previous; audio frames that now start before it are dropped and counted (they
        // belong before the file): clamped to it they would overlap the frames after them,
        // and a player would push everything after them late.
        let audio = self.codec.kind() == MediaKind::Audio;
        let mut prev: Option<u64> = None;
        self.queue.retain_mut(|q| {
            let ts = i128::from(q.ts_ns) + shift_ns;
            if audio && ts < -1_000_000 {
                stats.dropped_audio_overlap += 1;
                return false;
            }
            let mut ts = ts.max(0) as u64;
            if !audio {
                ts = prev.map_or(ts, |p| ts.max(p.saturating_add(MIN_VIDEO_STEP_NS)));
            }
            q.ts_ns = ts;
            prev = Some(ts);
            true
        });
        self.audio_end_ns = (i128::from(self.audio_end_ns) + shift_ns).max(0) as u64;
    }

    /// The keyframe gate: `Some(keyframe)` when the frame goes on, and what to ask for.
    fn admit(&mut self, frame: &FrameIn<'_>, stats: &mut SessionStats) -> (Option<bool>, Outcome) {
        if self.codec.kind() == MediaKind::Audio {
            return (Some(true), Outcome::default());
        }
        let ask = Outcome { flush: false, request_keyframe: true };
        let Some(p) = codec::video_params(self.codec, frame.payload) else {
            if self.awaiting_keyframe || !frame.contiguous {
                // A delta frame is useless before a keyframe, and after unrepaired loss it
                // would reference a picture the decoder never had.
                match self.params {
                    None => stats.dropped_before_keyframe += 1,
                    Some(_) => stats.dropped_after_loss += 1,
                }
                self.awaiting_keyframe = true;
                return (None, ask);
            }
            return (Some(false), Outcome::default());
        };
        if self.params.as_ref().is_some_and(|old| (old.width, old.height) != (p.width, p.height)) {
            stats.resolution_changes += 1;
        }
        self.params.get_or_insert(p);
        self.awaiting_keyframe = false;
        (Some(true), Outcome::default())
    }

    /// The container's view of this track: from the first keyframe, or a fallback.
    fn config(&self) -> TrackConfig {
        let mut c = TrackConfig::new(self.codec);
        match &self.params {
            Some(p) => {
                c.width = p.width;
                c.height = p.height;
                c.codec_private = p.codec_private.clone();
            }
            None => c.codec_private = fallback_private(self.codec),
        }
        c
    }
}

/// A configuration record for a video track whose first keyframe has not arrived when the file
/// must start: no parameter sets (they travel in-band with every keyframe).
fn fallback_private(codec: Codec) -> Option<Vec<u8>> {
    match codec {
        // Constrained Baseline, level 3.1: what WebRTC publishers send by default.
        Codec::H264 => Some(codec::h264::avcc_without_parameter_sets(66, 0xe0, 31)),
        // av1C (AV1-ISOBMFF §2.3.3): Main profile, level 2.0, 8-bit 4:2:0, no config OBUs.
        Codec::Av1 => Some(vec![0x81, 0x00, 0x0c, 0x00]),
        Codec::Vp8 | Codec::Vp9 | Codec::Opus => None,
    }
}
