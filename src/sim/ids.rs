//! Identifiers and randomness for the simulator: LiveKit-style ids (`RM_`, `PA_`, `TR_`,
//! `EV_`), random RTP bases, and a small seeded generator for fault injection.
//!
//! Not cryptographic: ids only need to be unique within one process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// SplitMix64: tiny, fast, good enough for ids and packet-loss dice.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed (reproducible fault patterns).
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded from the process-wide sequence (distinct per call).
    pub fn fresh() -> Rng {
        Rng(next_global())
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && (self.next_u64() % 10_000) as f64 / 100.0 < pct
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

fn next_global() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    if seed == 0 {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        let _ = STATE.compare_exchange(0x9E37_79B9_7F4A_7C15, t, Ordering::Relaxed, Ordering::Relaxed);
        seed = t ^ u64::from(std::process::id());
    }
    Rng(seed).next_u64()
}

/// A random u32 (RTP timestamp bases).
pub fn random_u32() -> u32 {
    next_global() as u32
}

/// `prefix` followed by 12 random base62 characters, e.g. `PA_3ZVgd6nKfJwC`.
pub fn new_id(prefix: &str) -> String {
    let mut rng = Rng::fresh();
    let mut s = String::with_capacity(prefix.len() + 12);
    s.push_str(prefix);
    for _ in 0..12 {
        s.push(ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char);
    }
    s
}

/// Seconds since the UNIX epoch.
pub fn unix_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Nanoseconds since the UNIX epoch.
pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Milliseconds since the UNIX epoch.
pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_differ() {
        let (a, b) = (new_id("PA_"), new_id("PA_"));
        assert!(a.starts_with("PA_") && a.len() == 15);
        assert_ne!(a, b);
    }

    #[test]
    fn chance_is_roughly_right() {
        let mut r = Rng::seeded(7);
        let hits = (0..10_000).filter(|_| r.chance(10.0)).count();
        assert!((800..1200).contains(&hits), "{hits}");
        assert!(!(0..1000).any(|_| r.chance(0.0)));
    }
}
