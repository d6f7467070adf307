//! How long ended recordings stay answerable (`GET /recordings/{id}`, `GET /recordings`),
//! across restarts: `HISTORY_MAX_RECORDINGS` and `HISTORY_MAX_AGE`. A pure policy with the
//! time passed in; the supervisor applies it to its table and the journal
//! ([`JobLog::expire`](super::journal::JobLog::expire)), oldest ended first.

use std::time::Duration;

/// Default `HISTORY_MAX_RECORDINGS`.
pub const DEFAULT_MAX_RECORDINGS: usize = 10_000;
/// Default `HISTORY_MAX_AGE` (30 days).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often ended recordings are checked against `HISTORY_MAX_AGE` when nothing else ends (at
/// most: a shorter `HISTORY_MAX_AGE` checks as often as itself).
pub const EXPIRE_EVERY: Duration = Duration::from_secs(600);

/// The retention of ended recordings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many ended recordings are kept (the newest ended).
    pub max_recordings: usize,
    /// Ended recordings older than this (since they ended) are dropped.
    pub max_age: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_recordings: DEFAULT_MAX_RECORDINGS, max_age: DEFAULT_MAX_AGE }
    }
}

impl Retention {
    /// Whether the oldest of `kept` ended recordings, ended at `ended_ms` (ms since the UNIX
    /// epoch), is to be dropped at `now_ms`.
    pub fn drops_oldest(&self, kept: usize, ended_ms: u64, now_ms: u64) -> bool {
        let age = Duration::from_millis(now_ms.saturating_sub(ended_ms));
        kept > self.max_recordings || (kept > 0 && age > self.max_age)
    }

    /// How often to check ages when nothing ends.
    pub fn check_every(&self) -> Duration {
        self.max_age.min(EXPIRE_EVERY).max(Duration::from_millis(100))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_by_count_or_by_age() {
        let r = Retention { max_recordings: 2, max_age: Duration::from_secs(60) };
        assert!(!r.drops_oldest(2, 1_000, 2_000), "at the limit, young");
        assert!(r.drops_oldest(3, 1_000, 2_000), "over the count");
        assert!(!r.drops_oldest(1, 1_000, 61_000), "exactly the max age is kept");
        assert!(r.drops_oldest(1, 1_000, 61_001), "older than the max age");
        assert!(!r.drops_oldest(0, 0, u64::MAX), "nothing to drop");
        assert!(!r.drops_oldest(1, 5_000, 1_000), "a clock that went back keeps it");
        let none = Retention { max_recordings: 0, ..r };
        assert!(none.drops_oldest(1, 1_000, 1_000), "HISTORY_MAX_RECORDINGS=0 keeps none");
    }
}
