//! Maps each track's RTP clock onto one participant timeline in nanoseconds, so that audio and
//! video of one publisher line up.
//!
//! Pure: arrival times and sender reports are inputs; nothing reads a clock.
//!
//! How a frame's time is found (RFC 3550 §5.1, §6.4.1):
//! 1. The 32-bit RTP timestamp is unwrapped into 64 bits ([`RtpUnwrapper`]).
//! 2. Within a track, time advances by RTP deltas (exact, unlike arrival times, which jitter).
//!    A track's mapping is `t = rtp_ext / clock_rate + offset`.
//! 3. Before the track has a sender report, its first frame's `offset` comes from its arrival
//!    time relative to the participant's first arrival ([`ParticipantClock`]); a video track
//!    then follows its least delayed frame (a keyframe's many packets arrive late).
//! 4. Once a sender report (NTP <-> RTP pair) is known, the *target* offset comes from the
//!    sender's wall clock: `t = ntp(rtp) + ntp_to_local`, where `ntp_to_local` is estimated once
//!    per participant (at the first report of any of its tracks). Because every track of the
//!    participant shares that one estimate, audio and video are aligned by the sender's own
//!    clock, whatever their network paths or start offsets.
//! 5. Corrections (publisher clock drift, a late first report):
//!    - before anything of the file is written (`started == false`), the first report of a
//!      track re-times it at once, backwards too: the caller re-times frames still queued;
//!    - video then moves by at most [`MAX_STEP_NS`] per frame: a frame shown 5 ms early or late
//!      is invisible, and timestamps never go backwards;
//!    - audio is different: players play audio samples back to back and ignore small timestamp
//!      steps, so a gradual correction would never reach the ear, and moving written audio
//!      back means dropping samples. Once written, audio ignores corrections below
//!      [`AUDIO_DEADBAND_NS`]; a later target moves it forward (in 5 ms steps within
//!      [`AUDIO_SNAP_NS`], at once beyond: a gap); an earlier target (the file started on
//!      arrival times before any report, and the report says audio belongs earlier) moves
//!      the participant's `ntp_to_local` forward instead, so the other tracks follow audio
//!      and nothing is dropped;
//!    - a forward jump of more than [`SNAP_FORWARD_NS`] is taken at once by every track (a real
//!      gap, e.g. a paused publisher whose RTP clock stood still).
//!
//! Output times of a track never decrease.

use super::SenderReport;

/// The most a track's offset moves per frame when it is corrected towards its sender-report
/// target (5 ms: inaudible and invisible, yet 250 ms/s of correction for 20 ms audio frames).
pub const MAX_STEP_NS: i128 = 5_000_000;

/// The least time between two video frames of one track: 2 ms, so that they stay distinct in
/// a millisecond time base (Matroska) whichever way it rounds.
pub const MIN_VIDEO_STEP_NS: u64 = 2_000_000;

/// A correction forward larger than this is applied at once instead of gradually.
pub const SNAP_FORWARD_NS: i128 = 1_000_000_000;

/// An audio correction larger than this (two 20 ms frames) is applied at once.
pub const AUDIO_SNAP_NS: i128 = 40_000_000;

/// Audio ignores corrections smaller than this once written (sender-report jitter: an SFU
/// extrapolates the reports' NTP times).
pub const AUDIO_DEADBAND_NS: i128 = 5_000_000;

/// Where a participant's first arrival lands on its timeline (60 s). Before anything is
/// written, a track may be re-timed backwards (it follows its least delayed frame; a first
/// sender report): a burst of frames that waited in a busy receiver moves its start back by
/// 5 ms per frame, and frames still queued move with it. Starting at zero, those times would
/// stop at zero and collide (two audio frames at one time); with this headroom they never
/// reach it. Files count from their first frame, so the value never shows.
pub const HEADROOM_NS: u64 = 60_000_000_000;

const NS_PER_S: i128 = 1_000_000_000;

/// Unwraps 32-bit RTP timestamps into a monotonic-ish 64-bit counter (RFC 3550 §5.1: the
/// timestamp wraps; differences below 2^31 are taken as forward or backward steps).
#[derive(Debug, Clone, Default)]
pub struct RtpUnwrapper {
    /// The highest extended value seen. Starts one full cycle up, so that a reordered frame
    /// from just before the first one does not underflow.
    highest: Option<u64>,
}

impl RtpUnwrapper {
    /// Extends `ts` and remembers it when it is the newest seen.
    pub fn unwrap(&mut self, ts: u32) -> u64 {
        let ext = self.extend(ts);
        if self.highest.is_none_or(|h| ext > h) {
            self.highest = Some(ext);
        }
        ext
    }

    /// Extends `ts` relative to the newest value seen, without remembering it.
    pub fn extend(&self, ts: u32) -> u64 {
        match self.highest {
            None => (1u64 << 32) + u64::from(ts),
            Some(h) => {
                let delta = i64::from(ts.wrapping_sub(h as u32) as i32);
                (h as i64).saturating_add(delta).max(0) as u64
            }
        }
    }
}

/// What all tracks of one participant share: the timeline origin and the estimate of the
/// sender's wall clock relative to ours.
#[derive(Debug, Clone, Default)]
pub struct ParticipantClock {
    /// Arrival time (caller's monotonic ns) that is timeline zero: the first frame of any track.
    origin_arrival_ns: Option<u64>,
    /// Local time (relative to origin) minus the sender's NTP time, from the first report.
    ntp_to_local_ns: Option<i128>,
    /// Added to every arrival-based offset: raised when written audio turns out to belong
    /// earlier (see the module docs), so that the other tracks move instead.
    arrival_shift_ns: i128,
    /// The first arrival's time on the timeline ([`HEADROOM_NS`]).
    headroom_ns: i128,
}

impl ParticipantClock {
    /// A clock with no frames seen; its first arrival is [`HEADROOM_NS`].
    pub fn new() -> ParticipantClock {
        ParticipantClock { headroom_ns: i128::from(HEADROOM_NS), ..ParticipantClock::default() }
    }

    /// A clock whose first arrival is timeline zero (tests that read absolute times).
    #[cfg(test)]
    fn at_zero() -> ParticipantClock {
        ParticipantClock::default()
    }

    fn local(&mut self, arrival_ns: u64) -> i128 {
        let origin = *self.origin_arrival_ns.get_or_insert(arrival_ns);
        i128::from(arrival_ns) - i128::from(origin) + self.headroom_ns
    }
}

/// One track's RTP → participant-timeline mapping.
#[derive(Debug, Clone)]
pub struct TrackTimeline {
    clock_rate: i128,
    /// Corrections beyond this jump instead of moving gradually (audio).
    snap_ns: Option<i128>,
    unwrapper: RtpUnwrapper,
    /// `t = rtp_ns + offset`; `None` before the first frame.
    offset_ns: Option<i128>,
    /// Whether the offset has ever been set from a sender report.
    synced: bool,
    last_out_ns: Option<u64>,
    corrections: u64,
    /// Least `arrival - rtp` seen before the first report: the least delayed frame.
    min_raw_ns: Option<i128>,
}

impl TrackTimeline {
    /// A video timeline for an RTP clock of `clock_rate` Hz (90 000).
    pub fn new(clock_rate: u32) -> TrackTimeline {
        TrackTimeline {
            clock_rate: i128::from(clock_rate.max(1)),
            snap_ns: None,
            unwrapper: RtpUnwrapper::default(),
            offset_ns: None,
            synced: false,
            last_out_ns: None,
            corrections: 0,
            min_raw_ns: None,
        }
    }

    /// An audio timeline (see the module docs: large corrections jump).
    pub fn for_audio(clock_rate: u32) -> TrackTimeline {
        TrackTimeline { snap_ns: Some(AUDIO_SNAP_NS), ..TrackTimeline::new(clock_rate) }
    }

    /// Maps one frame to participant-timeline nanoseconds (never decreasing for this track).
    /// `started` says whether frames of this track were already written to the file: before
    /// that, the first sender report may move the track backwards at once.
    pub fn map(
        &mut self,
        clock: &mut ParticipantClock,
        rtp_time: u32,
        arrival_ns: u64,
        sr: Option<SenderReport>,
        started: bool,
    ) -> u64 {
        let local = clock.local(arrival_ns);
        let ext = self.unwrapper.unwrap(rtp_time);
        let rtp_ns = self.rtp_to_ns(ext as i128);
        // before any report, a track follows its least delayed frame (a video keyframe's many
        // packets arrive later than the frames after it)
        let raw = local - rtp_ns;
        let min_raw = *self.min_raw_ns.get_or_insert(raw);
        self.min_raw_ns = Some(min_raw.min(raw));
        let mut target = match sr {
            Some(sr) => Some(self.sr_target(clock, sr, ext, local) - rtp_ns),
            None if !self.synced => self.min_raw_ns.map(|m| m + clock.arrival_shift_ns),
            None => None,
        };
        if let (true, Some(_), Some(cur), Some(t)) = (started, self.snap_ns, self.offset_ns, target) {
            if sr.is_some() && (t - cur).abs() < AUDIO_DEADBAND_NS {
                // report jitter: audio stays put
                target = Some(cur);
            } else if t < cur {
                // audio written already cannot move back without dropping samples: the
                // participant's clock estimate moves forward instead, and the other tracks
                // follow it (video gradually), so the tracks stay aligned with each other
                let estimate = if sr.is_some() {
                    clock.ntp_to_local_ns.as_mut()
                } else {
                    Some(&mut clock.arrival_shift_ns)
                };
                if let Some(e) = estimate {
                    *e += cur - t;
                }
                target = Some(cur);
            }
        }
        let before = self.offset_ns;
        let offset = self.steer(target, sr.is_some(), started);
        if let (Some(old), false) = (before, started) {
            // re-timed before anything was written: the floor moves with the track
            let shift = offset - old;
            self.last_out_ns = self.last_out_ns.map(|l| (i128::from(l) + shift).max(0) as u64);
        }
        let t = (rtp_ns + offset).clamp(0, i128::from(u64::MAX)) as u64;
        // never earlier than the previous frame; two video frames never share a time (a
        // container or player would take the second for a duplicate)
        let min_step = if self.snap_ns.is_none() { MIN_VIDEO_STEP_NS } else { 0 };
        let t = self.last_out_ns.map_or(t, |last| t.max(last.saturating_add(min_step)));
        self.last_out_ns = Some(t);
        t
    }

    /// How many frames had their offset corrected (drift, late sender report).
    pub fn corrections(&self) -> u64 {
        self.corrections
    }

    /// The current RTP → timeline offset, ns (None before the first frame).
    pub fn offset_ns(&self) -> Option<i128> {
        self.offset_ns
    }

    /// Whether this track has been aligned by a sender report.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    fn rtp_to_ns(&self, ticks: i128) -> i128 {
        ticks * NS_PER_S / self.clock_rate
    }

    /// The frame's time on the participant timeline according to the sender's clock.
    fn sr_target(&self, clock: &mut ParticipantClock, sr: SenderReport, ext: u64, local: i128) -> i128 {
        let sr_ext = self.unwrapper.extend(sr.rtp_time);
        let ntp = i128::from(sr.ntp_ns) + self.rtp_to_ns(ext as i128 - sr_ext as i128);
        let to_local = *clock.ntp_to_local_ns.get_or_insert(local - ntp);
        ntp + to_local
    }

    /// Moves the offset towards `target` (see the module docs for the policy).
    fn steer(&mut self, target: Option<i128>, from_sr: bool, started: bool) -> i128 {
        let first_sync = from_sr && !self.synced;
        self.synced |= from_sr;
        let offset = match (self.offset_ns, target) {
            (None, t) => t.unwrap_or(0),
            (Some(cur), None) => cur,
            (Some(cur), Some(t)) => {
                let delta = t - cur;
                if delta != 0 {
                    self.corrections += 1;
                }
                let jump = (first_sync && (!started || delta > 0))
                    || delta > SNAP_FORWARD_NS
                    || self.snap_ns.is_some_and(|limit| delta.abs() > limit);
                if jump {
                    t
                } else {
                    cur + delta.clamp(-MAX_STEP_NS, MAX_STEP_NS)
                }
            }
        };
        self.offset_ns = Some(offset);
        offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn unwraps_across_32_bit_wrap() {
        let mut u = RtpUnwrapper::default();
        let a = u.unwrap(u32::MAX - 10);
        let b = u.unwrap(5);
        assert_eq!(b - a, 16);
        // a reordered frame from before the wrap maps back below `b`
        assert_eq!(u.unwrap(u32::MAX - 1), a + 9);
        assert_eq!(u.unwrap(100), b + 95);
    }

    #[test]
    fn rtp_deltas_not_arrival_jitter_drive_time() {
        let mut clock = ParticipantClock::at_zero();
        let mut v = TrackTimeline::new(90_000);
        assert_eq!(v.map(&mut clock, 1000, 5_000 * MS, None, true), 0);
        // arrives 50 ms late, but the RTP clock says 33.3 ms
        let t = v.map(&mut clock, 1000 + 3000, 5_083 * MS, None, true);
        assert_eq!(t, 33_333_333);
    }

    #[test]
    fn sender_reports_align_tracks_with_different_bases_and_paths() {
        // Sender clock: video starts at NTP 100 s, audio 700 ms later. Audio's packets take
        // 180 ms longer to arrive than video's.
        let (v_base, a_base) = (123_456_u32, 4_000_000_000_u32);
        let ntp0 = 100_000 * MS;
        let v_sr = SenderReport { ntp_ns: ntp0, rtp_time: v_base };
        let a_sr = SenderReport { ntp_ns: ntp0, rtp_time: a_base.wrapping_sub(48_000 * 7 / 10) };
        let mut clock = ParticipantClock::at_zero();
        let (mut v, mut a) = (TrackTimeline::new(90_000), TrackTimeline::new(48_000));
        let tv = v.map(&mut clock, v_base, 10_000 * MS, Some(v_sr), true);
        let ta = a.map(&mut clock, a_base, 10_880 * MS, Some(a_sr), true);
        assert_eq!(tv, 0);
        assert_eq!(ta, 700 * MS, "audio placed by the sender's clock, not by its late arrival");
        // 2 s later on both clocks (RTP wraps for audio on the way)
        let tv2 = v.map(&mut clock, v_base + 180_000, 12_010 * MS, Some(v_sr), true);
        let ta2 = a.map(&mut clock, a_base.wrapping_add(96_000), 12_900 * MS, Some(a_sr), true);
        assert_eq!(tv2, 2_000 * MS);
        assert_eq!(ta2, 2_700 * MS);
    }

    #[test]
    fn late_report_corrects_gradually_without_going_backwards() {
        let mut clock = ParticipantClock::at_zero();
        let (mut v, mut a) = (TrackTimeline::new(90_000), TrackTimeline::new(48_000));
        // video's report ties the sender clock to ours: NTP 0 is local 0
        v.map(&mut clock, 0, 0, Some(SenderReport { ntp_ns: 0, rtp_time: 0 }), true);
        let mut last = 0;
        for i in 0..100u32 {
            // audio arrives 200 ms after video; from frame 10 its report says it started at
            // 100 ms on the sender's clock: 100 ms earlier than the arrival-based guess
            let sr = (i >= 10).then_some(SenderReport { ntp_ns: 100 * MS, rtp_time: 0 });
            let t = a.map(&mut clock, i * 960, (200 + u64::from(i) * 20) * MS, sr, true);
            assert!(t >= last, "frame {i} went backwards");
            if i > 0 {
                assert!(t - last >= 15 * MS, "at most 5 ms per frame: {}", t - last);
            }
            last = t;
        }
        assert_eq!(last, (100 + 99 * 20) * MS);
        assert_eq!(a.corrections(), 20);
    }

    #[test]
    fn a_burst_before_the_file_starts_keeps_every_frame_apart() {
        // a busy receiver: ten audio frames (20 ms apart on the RTP clock) delivered together
        // at the participant's first arrival, nothing written yet. The track follows its least
        // delayed frame back, 5 ms per frame; the frames already queued move back with it (as
        // the session does). Their spacing must survive, which needs room below the first
        // arrival: from zero they would pile up there.
        for (clock, apart) in [(ParticipantClock::new(), true), (ParticipantClock::at_zero(), false)] {
            let mut clock = clock;
            let mut a = TrackTimeline::for_audio(48_000);
            let mut queued: Vec<i128> = Vec::new();
            for i in 0..10u32 {
                let before = a.offset_ns();
                let t = a.map(&mut clock, i * 960, 5_000 * MS + u64::from(i) * 100_000, None, false);
                if let (Some(old), Some(new)) = (before, a.offset_ns()) {
                    for q in &mut queued {
                        *q = (*q + new - old).max(0);
                    }
                }
                queued.push(i128::from(t));
            }
            let distinct = queued.windows(2).all(|w| w[1] > w[0]);
            assert_eq!(distinct, apart, "{queued:?}");
        }
    }

    #[test]
    fn video_frames_never_share_a_time() {
        let mut clock = ParticipantClock::at_zero();
        let mut v = TrackTimeline::new(90_000);
        let a = v.map(&mut clock, 9000, 0, None, true);
        // the same RTP time again, then one going back: each lands 2 ms after the last
        let b = v.map(&mut clock, 9000, 10 * MS, None, true);
        let c = v.map(&mut clock, 8000, 20 * MS, None, true);
        assert_eq!((b - a, c - b), (MIN_VIDEO_STEP_NS, MIN_VIDEO_STEP_NS));
        // audio frames are never moved for this (the session drops overlapping audio)
        let mut au = TrackTimeline::for_audio(48_000);
        let x = au.map(&mut clock, 960, 0, None, true);
        assert_eq!(au.map(&mut clock, 960, 5 * MS, None, true), x);
    }

    #[test]
    fn drift_is_corrected_in_small_steps() {
        let mut clock = ParticipantClock::at_zero();
        let mut v = TrackTimeline::new(90_000);
        let sr0 = SenderReport { ntp_ns: 0, rtp_time: 0 };
        v.map(&mut clock, 0, 0, Some(sr0), true);
        // the sender's clock now says RTP 90_000 is at 1.05 s (its RTP clock runs slow)
        let sr1 = SenderReport { ntp_ns: 1_050 * MS, rtp_time: 90_000 };
        let mut prev = v.map(&mut clock, 90_000, 0, Some(sr1), true);
        assert_eq!(prev, 1_005 * MS, "the first of ten 5 ms steps");
        for i in 1..=30u32 {
            let t = v.map(&mut clock, 90_000 + i * 3000, 0, Some(sr1), true);
            let step = t - prev - 33_333_333;
            assert!(step <= 5 * MS + 1, "step {step}");
            prev = t;
        }
        // 50 ms of correction needs 10 steps; after 30 frames it is complete
        assert_eq!(prev, 1_050 * MS + 1_000 * MS);
    }

    #[test]
    fn before_the_file_starts_a_first_report_retimes_backwards_at_once() {
        let mut clock = ParticipantClock::at_zero();
        let (mut v, mut a) = (TrackTimeline::new(90_000), TrackTimeline::for_audio(48_000));
        v.map(&mut clock, 0, 0, Some(SenderReport { ntp_ns: 0, rtp_time: 0 }), false);
        // arrival-based: 300 ms; the report says 100 ms
        assert_eq!(a.map(&mut clock, 0, 300 * MS, None, false), 300 * MS);
        let sr = Some(SenderReport { ntp_ns: 100 * MS, rtp_time: 0 });
        assert_eq!(a.map(&mut clock, 960, 320 * MS, sr, false), 120 * MS);
        assert_eq!(a.map(&mut clock, 1920, 360 * MS, sr, false), 140 * MS);
    }

    #[test]
    fn written_audio_never_moves_back_and_the_other_tracks_follow_it() {
        let mut clock = ParticipantClock::at_zero();
        let (mut v, mut a) = (TrackTimeline::new(90_000), TrackTimeline::for_audio(48_000));
        v.map(&mut clock, 0, 0, Some(SenderReport { ntp_ns: 0, rtp_time: 0 }), true);
        let mut out = Vec::new();
        for i in 0..20u32 {
            let sr = (i >= 10).then_some(SenderReport { ntp_ns: 100 * MS, rtp_time: 0 });
            out.push(a.map(&mut clock, i * 960, (200 + u64::from(i) * 20) * MS, sr, true));
        }
        // frames 0..9 at 200..380 ms; from frame 10 the report puts audio 100 ms earlier:
        // audio already written stays where it is (moving it back would drop frames) ...
        assert_eq!(out[9], 380 * MS);
        assert_eq!(out[10], 400 * MS, "no audio frame goes back in time, so none is dropped");
        assert_eq!(out[19], 580 * MS);
        // ... and video, on the same sender clock, moves 100 ms later instead, in 5 ms steps
        let t = v.map(&mut clock, 3000, 33 * MS, Some(SenderReport { ntp_ns: 0, rtp_time: 0 }), true);
        assert_eq!(t, 33_333_333 + 5 * MS);
        // report jitter below the dead band leaves audio alone
        let sr = Some(SenderReport { ntp_ns: 103 * MS, rtp_time: 0 });
        assert_eq!(a.map(&mut clock, 20 * 960, 600 * MS, sr, true), 600 * MS);
        // a later target moves audio forward in 5 ms steps
        let sr = Some(SenderReport { ntp_ns: 120 * MS, rtp_time: 0 });
        assert_eq!(a.map(&mut clock, 21 * 960, 620 * MS, sr, true), 625 * MS);
        // far later: at once (a gap)
        let sr = Some(SenderReport { ntp_ns: 300 * MS, rtp_time: 0 });
        assert_eq!(a.map(&mut clock, 22 * 960, 640 * MS, sr, true), 440 * MS + 300 * MS + 100 * MS);
    }

    proptest! {
        #[test]
        fn output_never_decreases(
            frames in prop::collection::vec(
                (any::<u32>(), 0u64..10_000_000_000, prop::option::of((any::<u64>(), any::<u32>()))),
                1..200),
            rate in prop::sample::select(vec![1u32, 8_000, 48_000, 90_000]),
        ) {
            let mut clock = ParticipantClock::at_zero();
            let mut tl = TrackTimeline::new(rate);
            let mut last = 0;
            for (rtp, arrival, sr) in frames {
                let sr = sr.map(|(ntp_ns, rtp_time)| SenderReport { ntp_ns, rtp_time });
                let t = tl.map(&mut clock, rtp, arrival, sr, true);
                prop_assert!(t >= last);
                last = t;
            }
        }

        #[test]
        fn monotonic_rtp_with_reports_is_monotonic_per_track(
            steps in prop::collection::vec((1u32..6000, 0u64..100_000_000, any::<bool>()), 1..300),
            base in any::<u32>(),
            ntp in 0u64..(1u64 << 62),
        ) {
            let mut clock = ParticipantClock::at_zero();
            let mut tl = TrackTimeline::new(90_000);
            let (mut rtp, mut arrival, mut last) = (base, 0u64, 0u64);
            for (d, jitter, with_sr) in steps {
                rtp = rtp.wrapping_add(d);
                arrival += jitter;
                let sr = with_sr.then_some(SenderReport { ntp_ns: ntp, rtp_time: base });
                let t = tl.map(&mut clock, rtp, arrival, sr, true);
                prop_assert!(t >= last);
                last = t;
            }
        }
    }
}
