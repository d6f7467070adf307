//! OTP-style restart intensity as a pure value: "at most `max` restarts within `window`", and
//! the backoffs of reconnects ([`Reconnect`]) and signal resumes ([`Resumes`]).
//!
//! Pure: time is passed in (`now`), nothing here reads a clock, so the policy is unit-tested
//! without sleeping. Every supervisor in [`crate::actors`] keeps one [`RestartBudget`] per
//! supervised unit and asks it what to do when a child fails.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a supervisor does with a failed child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within budget: start the child again.
    Restart,
    /// Too many failures in the window: give up and let the level above decide.
    Escalate,
}

/// Restart intensity (OTP `intensity`/`period`).
#[derive(Debug, Clone)]
pub struct RestartBudget {
    max: usize,
    window: Duration,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    /// At most `max` restarts within any `window`.
    pub fn new(max: usize, window: Duration) -> RestartBudget {
        RestartBudget { max, window, recent: VecDeque::with_capacity(max) }
    }

    /// Records a failure at `now` and says whether to restart.
    pub fn on_failure(&mut self, now: Instant) -> Verdict {
        while self.recent.front().is_some_and(|t| now.saturating_duration_since(*t) > self.window) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max {
            return Verdict::Escalate;
        }
        self.recent.push_back(now);
        Verdict::Restart
    }

    /// Restarts granted within the current window.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

/// A connection that comes and goes (a room's LiveKit connection): reconnect with capped
/// exponential backoff (0.5 s, 1 s, 2 s, ... at most 10 s) until the trouble has lasted
/// `give_up`. A connection that stayed up for [`STABLE_AFTER`] ends the trouble: the next
/// failure starts a new one with short delays again; one that fails sooner does not, so a
/// connection that fails right after every connect still backs off and gives up.
#[derive(Debug, Clone, Default)]
pub struct Reconnect {
    since: Option<Instant>,
    attempts: u32,
    up_at: Option<Instant>,
}

/// A connection up this long ends the current trouble.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(10);

impl Reconnect {
    /// The connection is up (at `now`).
    pub fn on_up(&mut self, now: Instant) {
        self.up_at = Some(now);
    }

    /// The connection failed at `now`: how long to wait before reconnecting, or `None` when
    /// the trouble has lasted `give_up` already.
    pub fn on_failure(&mut self, now: Instant, give_up: Duration) -> Option<Duration> {
        if self.up_at.take().is_some_and(|up| now.saturating_duration_since(up) >= STABLE_AFTER) {
            (self.since, self.attempts) = (None, 0);
        }
        let since = *self.since.get_or_insert(now);
        if now.saturating_duration_since(since) >= give_up {
            return None;
        }
        let delay = BACKOFF_BASE.saturating_mul(1 << self.attempts.min(16)).min(BACKOFF_CAP);
        self.attempts += 1;
        Some(delay)
    }

    /// Reconnects so far in the current trouble.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }
}

/// Resumes of a signal connection: the first after a stable stretch is immediate (a lone
/// blip costs nothing); a connection that drops again within [`STABLE_AFTER`] of its last
/// resume waits 250 ms, 500 ms, 1 s, ... at most 5 s first. Without it, a server that closes
/// the socket right after every resume (a message it refuses, a proxy's frame limit) gets one
/// resume per round trip: hundreds a second.
#[derive(Debug, Clone, Default)]
pub struct Resumes {
    up_at: Option<Instant>,
    quick: u32,
}

const RESUME_BASE: Duration = Duration::from_millis(250);
const RESUME_CAP: Duration = Duration::from_secs(5);

impl Resumes {
    /// A resume succeeded at `now`.
    pub fn on_up(&mut self, now: Instant) {
        self.up_at = Some(now);
    }

    /// The signal connection dropped at `now`: how long to wait before resuming.
    pub fn on_lost(&mut self, now: Instant) -> Duration {
        let quick = self.up_at.take().is_some_and(|up| now.saturating_duration_since(up) < STABLE_AFTER);
        self.quick = if quick { self.quick + 1 } else { 0 };
        match self.quick {
            0 => Duration::ZERO,
            n => RESUME_BASE.saturating_mul(1 << (n - 1).min(16)).min(RESUME_CAP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_drops_right_after_resumes_back_off() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut r = Resumes::default();
        assert_eq!(r.on_lost(t0), Duration::ZERO, "the first drop resumes at once");
        let mut delays = Vec::new();
        let mut now = 0;
        for _ in 0..7 {
            r.on_up(ms(now));
            now += 25; // dropped again 25 ms after each resume
            let d = r.on_lost(ms(now));
            delays.push(d.as_millis() as u64);
            now += d.as_millis() as u64;
        }
        assert_eq!(delays, [250, 500, 1000, 2000, 4000, 5000, 5000]);
        // a resumed connection that stays up ends the trouble
        r.on_up(ms(now));
        assert_eq!(r.on_lost(ms(now) + STABLE_AFTER), Duration::ZERO);
        // a drop while no resume has succeeded (a resume still under way) is not counted quick
        assert_eq!(r.on_lost(ms(now) + STABLE_AFTER), Duration::ZERO);
    }

    #[test]
    fn restarts_until_the_budget_is_spent_then_escalates() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(3, Duration::from_secs(30));
        for i in 0..3 {
            assert_eq!(b.on_failure(t0 + Duration::from_secs(i)), Verdict::Restart);
        }
        assert_eq!(b.on_failure(t0 + Duration::from_secs(4)), Verdict::Escalate);
        assert_eq!(b.recent(), 3);
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut b = RestartBudget::new(2, Duration::from_secs(10));
        assert_eq!(b.on_failure(t0), Verdict::Restart);
        assert_eq!(b.on_failure(t0 + Duration::from_secs(1)), Verdict::Restart);
        assert_eq!(b.on_failure(t0 + Duration::from_secs(2)), Verdict::Escalate);
        // 12 s later the first two are outside the window again
        assert_eq!(b.on_failure(t0 + Duration::from_secs(12)), Verdict::Restart);
    }

    #[test]
    fn zero_budget_always_escalates() {
        let mut b = RestartBudget::new(0, Duration::from_secs(1));
        assert_eq!(b.on_failure(Instant::now()), Verdict::Escalate);
    }

    #[test]
    fn reconnects_back_off_and_give_up() {
        let t0 = Instant::now();
        let give_up = Duration::from_secs(60);
        let mut r = Reconnect::default();
        let delays: Vec<u64> = (0..7)
            .map(|i| r.on_failure(t0 + Duration::from_secs(i), give_up).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        // a connect that fails again at once does not end the trouble
        r.on_up(t0 + Duration::from_secs(30));
        assert_eq!(r.on_failure(t0 + Duration::from_secs(31), give_up), Some(Duration::from_secs(10)));
        assert_eq!(r.on_failure(t0 + Duration::from_secs(60), give_up), None, "60 s of trouble");
    }

    #[test]
    fn a_stable_connection_ends_the_trouble() {
        let t0 = Instant::now();
        let mut r = Reconnect::default();
        for i in 0..4 {
            r.on_failure(t0 + Duration::from_secs(i), Duration::from_secs(60));
        }
        r.on_up(t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(5) + STABLE_AFTER;
        assert_eq!(r.on_failure(later, Duration::from_secs(60)), Some(Duration::from_millis(500)));
        assert_eq!(r.attempts(), 1);
    }
}
