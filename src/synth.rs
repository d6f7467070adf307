//! Synthetic publishers: the encoded loops embedded in the binary (made by
//! `src/assets/make.sh`), replayed as a live publisher would send them: a random RTP
//! timestamp base per track, one sender clock per participant (so sender reports of its tracks
//! agree), an optional start offset between audio and video, and looping without a timestamp
//! jump.
//!
//! Pure: callers advance time. Used by `demo`, the tests and the benchmarks (and the
//! simulator, which shares the loops instead of copying them per participant).

use std::sync::{Arc, OnceLock};

use crate::media::source::{annexb, ivf, oggopus, SourceError, SourceFrame};
use crate::media::{Codec, SenderReport};

/// A whole encoded loop: frames with RTP times from 0, and the loop period.
#[derive(Debug)]
pub struct EncodedLoop {
    /// The codec.
    pub codec: Codec,
    /// Frames in order, `rtp_ts` from 0 in the codec's clock.
    pub frames: Vec<SourceFrame>,
    /// RTP ticks from the first frame of one loop to the first frame of the next.
    pub period_ticks: u64,
}

const VP8: &[u8] = include_bytes!("assets/vp8.ivf");
const VP9: &[u8] = include_bytes!("assets/vp9.ivf");
const H264: &[u8] = include_bytes!("assets/h264.h264");
const AV1: &[u8] = include_bytes!("assets/av1.ivf");
const OPUS: &[u8] = include_bytes!("assets/opus.ogg");

/// Frame rate of the embedded video loops.
pub const LOOP_FPS: u32 = 30;

impl EncodedLoop {
    /// The embedded loop for `codec`, parsed once per process and shared.
    pub fn embedded(codec: Codec) -> Result<Arc<EncodedLoop>, SourceError> {
        static CACHE: [OnceLock<Result<Arc<EncodedLoop>, SourceError>>; 5] = [const { OnceLock::new() }; 5];
        CACHE[codec.index()].get_or_init(|| Self::parse(codec).map(Arc::new)).clone()
    }

    fn parse(codec: Codec) -> Result<EncodedLoop, SourceError> {
        let data = match codec {
            Codec::Vp8 => VP8,
            Codec::Vp9 => VP9,
            Codec::Av1 => AV1,
            Codec::H264 => H264,
            Codec::Opus => OPUS,
        };
        Self::from_bytes(codec, data)
    }

    /// A loop from a whole file in the format the embedded loops use (IVF for VP8/VP9/AV1,
    /// Annex-B at 30 fps for H.264, Ogg for Opus), trimmed the same way. For IVF the
    /// FourCC must match `codec`.
    pub fn from_bytes(codec: Codec, data: &[u8]) -> Result<EncodedLoop, SourceError> {
        let ivf = |fourcc: &[u8; 4]| -> Result<Vec<SourceFrame>, SourceError> {
            let s = ivf::read(data)?;
            if &s.fourcc != fourcc {
                return Err(SourceError::Malformed("IVF FourCC (another codec)"));
            }
            Ok(s.frames)
        };
        let frames = match codec {
            Codec::Vp8 => ivf(b"VP80")?,
            Codec::Vp9 => ivf(b"VP90")?,
            Codec::Av1 => ivf(b"AV01")?,
            Codec::H264 => annexb::read(data, LOOP_FPS)?,
            Codec::Opus => {
                // The file's last packet only carries the encoder's pre-skip tail: a loop of
                // whole packets covering exactly the audio's length repeats seamlessly.
                let ogg = oggopus::read(data)?;
                let total: u64 = ogg.frames.last().map_or(0, |f| f.rtp_ts + 960);
                let audio = total.saturating_sub(u64::from(ogg.pre_skip));
                ogg.frames.into_iter().filter(|f| f.rtp_ts + 960 <= audio.max(960)).collect()
            }
        };
        Self::from_frames(codec, frames)
    }

    /// A loop from frames already read; the period is the last frame's time plus the
    /// typical frame spacing.
    pub fn from_frames(codec: Codec, frames: Vec<SourceFrame>) -> Result<EncodedLoop, SourceError> {
        let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
            return Err(SourceError::Malformed("empty loop"));
        };
        let n = frames.len() as u64;
        let step = if n > 1 { (last.rtp_ts - first.rtp_ts) / (n - 1) } else { 3000 };
        let period_ticks = last.rtp_ts - first.rtp_ts + step.max(1);
        Ok(EncodedLoop { codec, frames, period_ticks })
    }
}

/// One frame as a synthetic publisher sends it.
#[derive(Debug, Clone, Copy)]
pub struct SentFrame<'a> {
    /// The sender's wall clock when the frame was captured, ns (the participant clock).
    pub sender_ns: u64,
    /// RTP timestamp on the wire.
    pub rtp_time: u32,
    /// The frame bytes.
    pub payload: &'a [u8],
    /// Index of the frame within the loop (keyframe knowledge lives in the codec module).
    pub loop_index: usize,
}

/// A track of a synthetic publisher: replays a loop forever.
#[derive(Debug, Clone)]
pub struct SyntheticTrack {
    source: Arc<EncodedLoop>,
    rtp_base: u32,
    /// Sender time of the first frame, ns on the participant clock.
    start_ns: u64,
    next: u64,
    /// How far the content runs ahead of the clock, in RTP ticks: a keyframe sent on request
    /// ([`SyntheticTrack::content_ahead`]) moves the loop on without moving time.
    ahead_ticks: u64,
}

impl SyntheticTrack {
    /// A track whose loop starts at `start_ns` on the participant's clock, with RTP timestamp
    /// `rtp_base` at that instant. Tracks of one participant built with the same `start_ns`
    /// have their sync markers (flash and beep) at the same sender instants.
    pub fn new(source: Arc<EncodedLoop>, rtp_base: u32, start_ns: u64) -> SyntheticTrack {
        SyntheticTrack { source, rtp_base, start_ns, next: 0, ahead_ticks: 0 }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.source.codec
    }

    /// Capture time of the next frame.
    pub fn next_sender_ns(&self) -> u64 {
        self.start_ns + self.ticks_to_ns(self.time_ticks(self.next))
    }

    /// The next frame, advancing the track.
    pub fn next_frame(&mut self) -> SentFrame<'_> {
        let n = self.source.frames.len() as u64;
        let loop_index = (self.next % n) as usize;
        let ticks = self.time_ticks(self.next);
        self.next += 1;
        SentFrame {
            sender_ns: self.start_ns + self.ticks_to_ns(ticks),
            rtp_time: self.rtp_base.wrapping_add(ticks as u32),
            payload: &self.source.frames[loop_index].data,
            loop_index,
        }
    }

    /// Skips the frames captured before `offset_ns` after the track's start (a device that
    /// starts late, or a pause).
    pub fn skip_to_time(&mut self, offset_ns: u64) {
        while self.ticks_to_ns(self.time_ticks(self.next)) < offset_ns {
            self.next += 1;
        }
    }

    /// How far (ns, a multiple of this track's frame spacing) the content would move ahead if
    /// the frame due next were replaced by loop frame `loop_index` (the first one at or after
    /// it), at the due frame's capture time: what an encoder does when asked for a keyframe.
    pub fn ahead_to(&self, loop_index: usize) -> u64 {
        let mut probe = self.clone();
        probe.skip_to(loop_index);
        self.ticks_to_ns(self.ticks_of(probe.next) - self.ticks_of(self.next))
    }

    /// Moves the content `ns` ahead without moving time: the frame due next is the loop frame
    /// `ns` later, sent at the due frame's capture time; RTP and capture times stay continuous.
    /// Returns false (and changes nothing) when no frame boundary lies exactly `ns` ahead.
    pub fn content_ahead(&mut self, ns: u64) -> bool {
        let due = self.ticks_of(self.next);
        let mut next = self.next;
        while self.ticks_to_ns(self.ticks_of(next) - due) < ns {
            next += 1;
        }
        let ticks = self.ticks_of(next) - due;
        if self.ticks_to_ns(ticks) != ns {
            return false;
        }
        self.next = next;
        self.ahead_ticks += ticks;
        true
    }

    /// Capture ticks (from the track's start) of loop position `index`.
    fn time_ticks(&self, index: u64) -> u64 {
        self.ticks_of(index) - self.ahead_ticks
    }

    /// Skips to the next frame that is a keyframe of the loop, keeping real time: the frames
    /// in between are never sent (a publisher that cannot encode a keyframe on request).
    pub fn skip_to(&mut self, loop_index: usize) {
        let n = self.source.frames.len() as u64;
        while (self.next % n) as usize != loop_index {
            self.next += 1;
        }
    }

    /// The sender report a publisher would send now: the NTP <-> RTP pair of its one clock.
    pub fn sender_report(&self, sender_ns: u64) -> SenderReport {
        let since = sender_ns.saturating_sub(self.start_ns) as u128;
        let ticks = since * u128::from(self.source.codec.clock_rate()) / 1_000_000_000;
        SenderReport { ntp_ns: sender_ns, rtp_time: self.rtp_base.wrapping_add(ticks as u32) }
    }

    fn ticks_of(&self, index: u64) -> u64 {
        let n = self.source.frames.len() as u64;
        let cycle = index / n;
        cycle * self.source.period_ticks + self.source.frames[(index % n) as usize].rtp_ts
    }

    fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.source.codec.clock_rate())) as u64
    }
}

/// Several synthetic tracks of one publisher, replayed in arrival order: each track's frames
/// reach the receiver `delay_ns` after capture. Ends at a sender time.
#[derive(Debug, Clone)]
pub struct Schedule {
    tracks: Vec<(SyntheticTrack, u64)>,
    end_ns: u64,
}

impl Schedule {
    /// `tracks` with their network delays; frames captured at or after `end_ns` are not sent.
    pub fn new(tracks: Vec<(SyntheticTrack, u64)>, end_ns: u64) -> Schedule {
        Schedule { tracks, end_ns }
    }

    /// The next frame to arrive, with its track index and arrival time (capture + delay).
    pub fn next_arrival(&mut self) -> Option<(usize, u64, SentFrame<'_>)> {
        let i = (0..self.tracks.len())
            .filter(|&i| self.tracks[i].0.next_sender_ns() < self.end_ns)
            .min_by_key(|&i| self.tracks[i].0.next_sender_ns() + self.tracks[i].1)?;
        let (track, delay) = &mut self.tracks[i];
        let frame = track.next_frame();
        Some((i, frame.sender_ns + *delay, frame))
    }
}
