//! OTP-style restart intensity as a pure value: "at most `max` restarts within `window`".
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
