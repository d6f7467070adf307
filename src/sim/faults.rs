//! Fault injection on the media sent to subscribers.
//!
//! A [`FaultRegistry`] maps track sids to the network faults (`loss_pct`, `reorder_pct`,
//! `duplicate_pct`, `delay_ms`, `jitter_ms`) set through the control API. Each subscriber peer
//! owns a [`Netem`]: it classifies every outgoing datagram by the clear RTP header of the SRTP
//! packet (SSRC at bytes 8..12; RTCP, with packet type 200..=206 in byte 1, and DTLS/STUN
//! are never touched), maps the SSRC to its track, and drops, duplicates or delays it with a
//! seeded RNG. Retransmissions (RTX SSRCs) are subject to the same faults.
//!
//! Invariant: the per-datagram cost with no faults set is one atomic load.

use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::ids::Rng;

/// The network part of a `POST .../faults` body; all zero = no faults.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct NetFaults {
    /// Percent of datagrams dropped.
    pub loss_pct: f64,
    /// Percent of datagrams held back so that later ones overtake them.
    pub reorder_pct: f64,
    /// Percent of datagrams sent twice.
    pub duplicate_pct: f64,
    /// Constant extra delay.
    pub delay_ms: u64,
    /// Uniform random extra delay on top of `delay_ms`.
    pub jitter_ms: u64,
}

impl NetFaults {
    /// An error message when a value is out of range.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("loss_pct", self.loss_pct),
            ("reorder_pct", self.reorder_pct),
            ("duplicate_pct", self.duplicate_pct),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} must be within 0..=100, got {v}"));
            }
        }
        if self.delay_ms > 10_000 || self.jitter_ms > 10_000 {
            return Err("delay_ms and jitter_ms must be at most 10000".into());
        }
        Ok(())
    }

    fn is_none(&self) -> bool {
        *self == NetFaults::default()
    }
}

/// Network faults per track sid, shared by all peers.
#[derive(Debug, Default)]
pub struct FaultRegistry {
    generation: AtomicU64,
    by_track: Mutex<HashMap<String, NetFaults>>,
}

impl FaultRegistry {
    /// Sets (or, when all zero, clears) the faults of `track`.
    pub fn set(&self, track: &str, faults: NetFaults) {
        let mut m = self.by_track.lock().unwrap_or_else(|e| e.into_inner());
        if faults.is_none() {
            m.remove(track);
        } else {
            m.insert(track.to_owned(), faults);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn snapshot(&self) -> (u64, HashMap<String, NetFaults>) {
        let g = self.generation.load(Ordering::Acquire);
        (g, self.by_track.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}

/// A datagram held back by a delay.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    due: Instant,
    seq: u64,
    to: SocketAddr,
    data: Vec<u8>,
}

impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq)) // min-heap
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

/// What to do with one datagram.
#[derive(Debug)]
pub enum Verdict {
    /// Send it now (`true`: send it twice).
    Send(bool),
    /// Dropped or held back: nothing to send now.
    Hold,
}

/// One peer's fault state: which SSRC is which track, the cached faults, held datagrams.
#[derive(Debug)]
pub struct Netem {
    ssrc_track: HashMap<u32, String>,
    seen_generation: u64,
    faults: HashMap<String, NetFaults>,
    held: BinaryHeap<Held>,
    rng: Rng,
    seq: u64,
    /// Datagrams dropped by `loss_pct` so far.
    pub lost: u64,
}

impl Netem {
    /// A fresh state with a seeded RNG.
    pub fn new(seed: u64) -> Netem {
        Netem {
            ssrc_track: HashMap::new(),
            seen_generation: u64::MAX,
            faults: HashMap::new(),
            held: BinaryHeap::new(),
            rng: Rng::seeded(seed),
            seq: 0,
            lost: 0,
        }
    }

    /// Replaces the SSRC -> track map (after each negotiation).
    pub fn set_ssrcs(&mut self, map: HashMap<u32, String>) {
        self.ssrc_track = map;
    }

    /// Decides the fate of `data` bound for `to`; held copies are kept inside.
    pub fn filter(&mut self, reg: &FaultRegistry, now: Instant, to: SocketAddr, data: &[u8]) -> Verdict {
        if reg.generation.load(Ordering::Acquire) != self.seen_generation {
            (self.seen_generation, self.faults) = reg.snapshot();
        }
        if self.faults.is_empty() {
            return Verdict::Send(false);
        }
        let Some(f) =
            rtp_ssrc(data).and_then(|s| self.ssrc_track.get(&s)).and_then(|t| self.faults.get(t)).copied()
        else {
            return Verdict::Send(false);
        };
        self.apply(&f, now, to, data)
    }

    fn apply(&mut self, f: &NetFaults, now: Instant, to: SocketAddr, data: &[u8]) -> Verdict {
        if self.rng.chance(f.loss_pct) {
            self.lost += 1;
            return Verdict::Hold;
        }
        let dup = self.rng.chance(f.duplicate_pct);
        let mut delay = f.delay_ms + self.rng.upto(f.jitter_ms);
        if self.rng.chance(f.reorder_pct) {
            delay += 30;
        }
        if delay == 0 {
            return Verdict::Send(dup);
        }
        let due = now + Duration::from_millis(delay);
        for _ in 0..(1 + usize::from(dup)) {
            self.seq += 1;
            self.held.push(Held { due, seq: self.seq, to, data: data.to_vec() });
        }
        Verdict::Hold
    }

    /// When the next held datagram is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.peek().map(|h| h.due)
    }

    /// Takes the held datagrams due at `now`.
    pub fn take_due(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        while self.held.peek().is_some_and(|h| h.due <= now) {
            if let Some(h) = self.held.pop() {
                out.push((h.to, h.data));
            }
        }
    }
}

/// Whether a datagram is (S)RTCP (RFC 5761 demultiplexing: packet type 200..=206).
pub fn is_rtcp(d: &[u8]) -> bool {
    d.len() >= 8 && d[0] >> 6 == 2 && (200..=206).contains(&d[1])
}

/// The SSRC of an (S)RTP packet; `None` for RTCP, STUN, DTLS or garbage.
pub fn rtp_ssrc(d: &[u8]) -> Option<u32> {
    if d.len() < 12 || d[0] >> 6 != 2 || (200..=206).contains(&d[1]) {
        return None;
    }
    Some(u32::from_be_bytes([d[8], d[9], d[10], d[11]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn classifies_rtp_and_rtcp() {
        assert_eq!(rtp_ssrc(&rtp(42)), Some(42));
        let mut sr = rtp(42);
        sr[1] = 200;
        assert_eq!(rtp_ssrc(&sr), None);
        assert!(is_rtcp(&sr) && !is_rtcp(&rtp(42)));
        assert_eq!(rtp_ssrc(&[0x16, 0xfe, 0xfd]), None);
    }

    #[test]
    fn loss_applies_only_to_the_faulty_track() {
        let reg = FaultRegistry::default();
        reg.set("TR_a", NetFaults { loss_pct: 100.0, ..Default::default() });
        let mut n = Netem::new(1);
        n.set_ssrcs(HashMap::from([(1, "TR_a".to_string()), (2, "TR_b".to_string())]));
        let to: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let now = Instant::now();
        assert!(matches!(n.filter(&reg, now, to, &rtp(1)), Verdict::Hold));
        assert!(matches!(n.filter(&reg, now, to, &rtp(2)), Verdict::Send(false)));
        assert_eq!(n.lost, 1);
    }

    #[test]
    fn delay_holds_until_due() {
        let reg = FaultRegistry::default();
        reg.set("TR_a", NetFaults { delay_ms: 50, ..Default::default() });
        let mut n = Netem::new(1);
        n.set_ssrcs(HashMap::from([(1, "TR_a".to_string())]));
        let to: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let now = Instant::now();
        assert!(matches!(n.filter(&reg, now, to, &rtp(1)), Verdict::Hold));
        let mut out = Vec::new();
        n.take_due(now, &mut out);
        assert!(out.is_empty());
        n.take_due(now + Duration::from_millis(60), &mut out);
        assert_eq!(out.len(), 1);
    }
}
