//! How many frames of a track never arrived ([`LossCounter`]): the depacketizer marks the first
//! frame after loss it could not repair as not contiguous; the RTP timestamp gap to the
//! previous frame, in units of the track's frame interval (the smallest step seen between
//! contiguous frames), says how many frames are missing there.

/// Per-track estimate of frames lost on the network.
#[derive(Debug, Clone, Default)]
pub struct LossCounter {
    last_rtp: Option<u32>,
    step: Option<u32>,
}

impl LossCounter {
    /// Takes the next frame of the track; returns how many frames went missing before it.
    pub fn observe(&mut self, rtp_time: u32, contiguous: bool) -> u64 {
        let Some(prev) = self.last_rtp.replace(rtp_time) else { return 0 };
        let delta = rtp_time.wrapping_sub(prev);
        if delta == 0 || delta > i32::MAX as u32 {
            return 0; // same frame, or older (reordered): nothing to say
        }
        if contiguous {
            self.step = Some(self.step.map_or(delta, |s| s.min(delta)));
            return 0;
        }
        let Some(step) = self.step else { return 0 };
        let frames = (u64::from(delta) + u64::from(step) / 2) / u64::from(step);
        frames.saturating_sub(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_after_loss_count_the_missing_frames() {
        let mut c = LossCounter::default();
        let base = u32::MAX - 6000; // across the RTP wrap
        assert_eq!(c.observe(base, true), 0);
        assert_eq!(c.observe(base.wrapping_add(3000), true), 0);
        assert_eq!(c.observe(base.wrapping_add(6000), true), 0);
        // frames at +9000 .. +36000 lost: 10 frames
        assert_eq!(c.observe(base.wrapping_add(39_000), false), 10);
        // a contiguous jump (publisher skipped to a keyframe) is not loss
        assert_eq!(c.observe(base.wrapping_add(60_000), true), 0);
        // an older frame is ignored
        assert_eq!(c.observe(base.wrapping_add(57_000), false), 0);
    }

    #[test]
    fn no_estimate_before_the_frame_interval_is_known() {
        let mut c = LossCounter::default();
        assert_eq!(c.observe(0, false), 0);
        assert_eq!(c.observe(960 * 5, false), 0);
    }
}
