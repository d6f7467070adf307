//! Small network helpers: the host addresses to advertise as ICE candidates, the W3C
//! `RTCIceCandidateInit` JSON LiveKit trickles, and what an SDP says about mids and SSRCs.
//!
//! Pure apart from reading `/proc/net/fib_trie` and one unconnected-UDP probe.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use str0m::Candidate;

/// Loopback plus the host's non-loopback IPv4 addresses (from `/proc/net/fib_trie`, else the
/// address of the interface that routes to a private network).
pub fn host_addresses() -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let mut local =
        std::fs::read_to_string("/proc/net/fib_trie").map(|t| parse_fib_trie(&t)).unwrap_or_default();
    if local.is_empty() {
        local.extend(outbound_ip());
    }
    for ip in local {
        if !ip.is_loopback() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// The local addresses (`/32 host LOCAL` entries) listed in a `/proc/net/fib_trie` dump.
pub fn parse_fib_trie(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last.take() {
                if !out.contains(&IpAddr::V4(ip)) {
                    out.push(IpAddr::V4(ip));
                }
            }
        }
    }
    out
}

fn outbound_ip() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.254:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Of `candidates`, the local address a datagram from `src` most likely went to (the socket
/// is bound to one address or to the wildcard, and we cannot read the packet's destination).
pub fn pick_local(candidates: &[SocketAddr], src: SocketAddr) -> Option<SocketAddr> {
    let score = |c: &SocketAddr| match (c.ip(), src.ip()) {
        (a, b) if a == b => 64,
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) ^ u32::from(b)).leading_zeros(),
        _ => 0,
    };
    candidates.iter().filter(|c| c.is_ipv4() == src.is_ipv4()).max_by_key(|c| score(c)).copied()
}

/// `{"candidate":"candidate:...","sdpMid":"<mid>","sdpMLineIndex":0}` (never null fields).
pub fn candidate_init_json(c: &Candidate, mid: &str) -> String {
    serde_json::json!({ "candidate": c.to_sdp_string(), "sdpMid": mid, "sdpMLineIndex": 0 }).to_string()
}

/// The candidate inside a trickled `RTCIceCandidateInit` JSON; `None` for end-of-candidates
/// or anything malformed.
pub fn candidate_from_init_json(s: &str) -> Option<Candidate> {
    let v: serde_json::Value = serde_json::from_str(s).ok()?;
    let c = v.get("candidate")?.as_str()?;
    if c.is_empty() {
        return None;
    }
    Candidate::from_sdp_string(c).ok()
}

/// The first `a=mid:` of an SDP.
pub fn first_mid(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim_end().strip_prefix("a=mid:"))
}

/// SSRC -> mid for every `a=ssrc:` line of an SDP (primary and RTX SSRCs).
pub fn ssrcs_by_mid(sdp: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    let mut mid = None;
    for l in sdp.lines().map(str::trim_end) {
        if l.starts_with("m=") {
            mid = None;
        } else if let Some(m) = l.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let (Some(rest), Some(m)) = (l.strip_prefix("a=ssrc:"), &mid) {
            if let Some(ssrc) = rest.split(' ').next().and_then(|s| s.parse().ok()) {
                out.insert(ssrc, m.clone());
            }
        }
    }
    out
}

/// The RTX (repair) SSRCs of an SDP: the second SSRC of each `a=ssrc-group:FID` line.
pub fn rtx_ssrcs(sdp: &str) -> Vec<u32> {
    let fid = sdp.lines().filter_map(|l| l.trim_end().strip_prefix("a=ssrc-group:FID "));
    fid.filter_map(|g| g.split(' ').nth(1)?.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_trie_local_hosts() {
        let t = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 10.0.2.15\n        /32 host LOCAL\n     |-- 10.0.2.255\n        /32 link BROADCAST\n     |-- 127.0.0.1\n        /32 host LOCAL\n";
        let ips = parse_fib_trie(t);
        assert_eq!(ips, vec![IpAddr::from([10, 0, 2, 15]), IpAddr::from([127, 0, 0, 1])]);
    }

    #[test]
    fn ssrc_lines_map_to_mids() {
        let sdp = "v=0\r\nm=audio 9 x 111\r\na=mid:ab\r\na=ssrc:11 cname:x\r\nm=video 9 x 96\r\na=mid:cd\r\na=ssrc:22 cname:x\r\na=ssrc:23 cname:x\r\n";
        let m = ssrcs_by_mid(sdp);
        assert_eq!(m.get(&11).map(String::as_str), Some("ab"));
        assert_eq!(m.get(&23).map(String::as_str), Some("cd"));
        assert_eq!(first_mid(sdp), Some("ab"));
        assert_eq!(rtx_ssrcs("a=ssrc-group:FID 22 23\r\n"), vec![23]);
    }

    #[test]
    fn picks_loopback_for_loopback_sources() {
        let c: Vec<SocketAddr> = vec!["127.0.0.1:5".parse().expect("a"), "10.0.0.2:5".parse().expect("a")];
        assert_eq!(pick_local(&c, "127.0.0.1:9".parse().expect("a")), Some(c[0]));
        assert_eq!(pick_local(&c, "10.0.0.7:9".parse().expect("a")), Some(c[1]));
    }

    #[test]
    fn bad_candidate_json_is_none() {
        assert!(candidate_from_init_json("{").is_none());
        assert!(candidate_from_init_json(r#"{"candidate":""}"#).is_none());
    }
}
