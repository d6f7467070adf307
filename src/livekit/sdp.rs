//! Pure helpers over SDP text and trickle JSON (no I/O, no str0m state).
//!
//! Invariant: nothing here panics on malformed input; bad lines are skipped and the callers
//! decide what a missing value means. The trickle JSON is built by hand because libwebrtc-based
//! LiveKit clients unwrap `sdpMid` as a string and `sdpMLineIndex` as a number (never `null`).

use std::collections::HashMap;

use str0m::Candidate;

/// Where an m-line's media comes from, as the offer names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackRef {
    /// The LiveKit track sid (`TR_...`).
    pub track_sid: String,
    /// The publisher's sid (`PA_...`) when the msid stream id carries it.
    pub participant_sid: Option<String>,
}

/// One m-section of an SDP, reduced to what the client needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Section {
    kind: String,
    mid: Option<String>,
    msid: Option<(String, String)>,
    /// `a=ssrc:` ids in order of appearance (deduplicated).
    ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID main repair` pairs.
    fid: Vec<(u32, u32)>,
}

/// W3C `RTCIceCandidateInit` JSON for a candidate line (`candidate:...` or `a=candidate:...`).
pub(crate) fn candidate_init_json(candidate: &str, sdp_mid: &str, mline_index: u32) -> String {
    let line = candidate.strip_prefix("a=").unwrap_or(candidate);
    serde_json::json!({
        "candidate": line,
        "sdpMid": sdp_mid,
        "sdpMLineIndex": mline_index,
    })
    .to_string()
}

/// Parses a trickled `RTCIceCandidateInit` JSON. `None` for garbage and end-of-candidates.
pub(crate) fn parse_candidate_init(json: &str) -> Option<Candidate> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let line = value.get("candidate")?.as_str()?.trim();
    let line = line.strip_prefix("a=").unwrap_or(line);
    if line.is_empty() {
        return None;
    }
    if line.starts_with("candidate:") {
        Candidate::from_sdp_string(line).ok()
    } else {
        Candidate::from_sdp_string(&format!("candidate:{line}")).ok()
    }
}

fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("m=") {
            let kind = rest.split_whitespace().next().unwrap_or_default();
            out.push(Section { kind: kind.to_owned(), ..Default::default() });
        } else if let Some(current) = out.last_mut() {
            parse_section_attr(current, line);
        }
    }
    out
}

fn parse_section_attr(section: &mut Section, line: &str) {
    if let Some(mid) = line.strip_prefix("a=mid:") {
        section.mid = Some(mid.trim().to_owned());
    } else if let Some(msid) = line.strip_prefix("a=msid:") {
        let mut parts = msid.split_whitespace();
        let stream = parts.next().unwrap_or_default().to_owned();
        let track = parts.next().unwrap_or_default().to_owned();
        section.msid = Some((stream, track));
    } else if let Some(rest) = line.strip_prefix("a=ssrc-group:FID ") {
        let ids: Vec<u32> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if let [main, repair] = ids[..] {
            section.fid.push((main, repair));
        }
    } else if let Some(rest) = line.strip_prefix("a=ssrc:") {
        if let Some(ssrc) = rest.split_whitespace().next().and_then(|v| v.parse().ok()) {
            if !section.ssrcs.contains(&ssrc) {
                section.ssrcs.push(ssrc);
            }
        }
    }
}

/// The SSRCs an offer announces for one m-line (non-simulcast: one main stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MidSsrc {
    /// The main (media) SSRC.
    pub main: u32,
    /// Its retransmission (RTX) SSRC, from `a=ssrc-group:FID`.
    pub repair: Option<u32>,
}

/// The main SSRC (and its RTX) of every audio/video m-line that announces one, by mid.
/// Sections announcing several main SSRCs (simulcast by SSRC) are left out.
pub(crate) fn mid_ssrcs(sdp: &str) -> HashMap<String, MidSsrc> {
    let mut out = HashMap::new();
    for s in sections(sdp) {
        let (true, Some(mid)) = (s.kind == "audio" || s.kind == "video", s.mid) else {
            continue;
        };
        let repairs: Vec<u32> = s.fid.iter().map(|&(_, r)| r).collect();
        let mains: Vec<u32> = s.ssrcs.iter().copied().filter(|x| !repairs.contains(x)).collect();
        if let [main] = mains[..] {
            let repair = s.fid.iter().find(|&&(m, _)| m == main).map(|&(_, r)| r);
            out.insert(mid, MidSsrc { main, repair });
        }
    }
    out
}

/// Maps every audio/video mid of an offer to its track: `mid_to_track_id` first, else the msid
/// (`PA_x|TR_y TR_y`, or `PA_x|camera TR_y` with sync streams). Sections without either are
/// left out.
pub(crate) fn track_map(sdp: &str, mid_to_track_id: &HashMap<String, String>) -> HashMap<String, TrackRef> {
    let mut map = HashMap::new();
    for s in sections(sdp) {
        let (true, Some(mid)) = (s.kind == "audio" || s.kind == "video", s.mid) else {
            continue;
        };
        let from_msid = s.msid.as_ref().and_then(|(stream, track)| msid_track(stream, track));
        let participant_sid = from_msid.as_ref().and_then(|t| t.participant_sid.clone());
        let track_sid = match mid_to_track_id.get(&mid) {
            Some(sid) if !sid.is_empty() => sid.clone(),
            _ => match from_msid {
                Some(t) => t.track_sid,
                None => continue,
            },
        };
        map.insert(mid, TrackRef { track_sid, participant_sid });
    }
    map
}

fn msid_track(stream: &str, track: &str) -> Option<TrackRef> {
    let mut parts = stream.splitn(2, '|');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    let participant_sid = first.starts_with("PA_").then(|| first.to_owned());
    let track_sid = if second.starts_with("TR_") {
        second
    } else if track.starts_with("TR_") {
        track
    } else {
        return None;
    };
    Some(TrackRef { track_sid: track_sid.to_owned(), participant_sid })
}

/// The `a=candidate:` lines of an SDP, without the `a=` prefix.
pub(crate) fn candidates(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|l| l.trim().strip_prefix("a="))
        .filter(|l| l.starts_with("candidate:"))
        .map(str::to_owned)
        .collect()
}

/// The first `a=ice-ufrag:` value of an SDP.
pub(crate) fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines().find_map(|l| l.trim().strip_prefix("a=ice-ufrag:")).map(str::trim)
}

/// The mid of the first m-section (the bundle tag), used as the trickle `sdpMid`.
pub(crate) fn first_mid(sdp: &str) -> Option<String> {
    sections(sdp).into_iter().find_map(|s| s.mid)
}

/// Whether any `a=rtpmap` of the SDP names `codec` (case-insensitive), e.g. `red`.
pub(crate) fn has_codec(sdp: &str, codec: &str) -> bool {
    let needle = format!(" {}/", codec.to_ascii_lowercase());
    sdp.lines()
        .filter(|l| l.trim().starts_with("a=rtpmap:"))
        .any(|l| l.to_ascii_lowercase().contains(&needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=ice-ufrag:abcd\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 63 111\r\na=mid:1\r\n\
        a=msid:PA_pub|TR_AM1 TR_AM1\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:63 red/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=msid:PA_pub|camera TR_VC1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=msid:- foo\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:4\r\n";

    #[test]
    fn track_map_uses_msid_and_sync_stream_form() {
        let map = track_map(OFFER, &HashMap::new());
        assert_eq!(map.len(), 2);
        assert_eq!(map["1"].track_sid, "TR_AM1");
        assert_eq!(map["1"].participant_sid.as_deref(), Some("PA_pub"));
        assert_eq!(map["2"].track_sid, "TR_VC1");
        assert!(!map.contains_key("0"), "data channel section is not a track");
    }

    #[test]
    fn mid_to_track_id_wins_over_msid() {
        let m2t = HashMap::from([("1".to_owned(), "TR_X".to_owned()), ("4".into(), "TR_Y".into())]);
        let map = track_map(OFFER, &m2t);
        assert_eq!(map["1"].track_sid, "TR_X");
        assert_eq!(map["1"].participant_sid.as_deref(), Some("PA_pub"));
        assert_eq!(map["4"].track_sid, "TR_Y");
        assert_eq!(map["4"].participant_sid, None);
    }

    #[test]
    fn mid_ssrcs_pair_main_and_repair_and_skip_sections_without_one() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=ssrc:11 cname:x\r\n\
                   a=ssrc:11 msid:PA_a TR_a\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\n\
                   a=ssrc-group:FID 21 22\r\na=ssrc:21 cname:x\r\na=ssrc:22 cname:x\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=ssrc:31 x\r\na=ssrc:32 x\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\na=ssrc:41 x\r\n";
        let m = mid_ssrcs(sdp);
        assert_eq!(m.get("0"), Some(&MidSsrc { main: 11, repair: None }));
        assert_eq!(m.get("1"), Some(&MidSsrc { main: 21, repair: Some(22) }));
        assert_eq!(m.len(), 2, "{m:?}");
        assert!(mid_ssrcs("a=ssrc:oops\r\nm=video\r\na=ssrc-group:FID 1\r\na=ssrc:\r\n").is_empty());
    }

    #[test]
    fn garbage_sdp_gives_empty_results() {
        assert!(track_map("m=\r\na=msid:\r\nnonsense", &HashMap::new()).is_empty());
        assert!(candidates("").is_empty());
        assert_eq!(ice_ufrag("x"), None);
        assert_eq!(first_mid("m=audio"), None);
    }

    #[test]
    fn red_detection_and_first_mid() {
        assert!(has_codec(OFFER, "red"));
        assert!(!has_codec(OFFER, "h264"));
        assert_eq!(first_mid(OFFER).as_deref(), Some("0"));
        assert_eq!(ice_ufrag(OFFER), Some("abcd"));
    }

    #[test]
    fn candidate_json_round_trip() {
        let line = "candidate:1 1 udp 2130706431 127.0.0.1 51234 typ host";
        let json = candidate_init_json(&format!("a={line}"), "0", 0);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["candidate"], line);
        assert_eq!(v["sdpMid"], "0");
        assert_eq!(v["sdpMLineIndex"], 0);
        let c = parse_candidate_init(&json).unwrap();
        assert_eq!(c.addr(), "127.0.0.1:51234".parse().unwrap());
    }

    #[test]
    fn candidate_json_accepts_missing_prefix_and_rejects_garbage() {
        let json = r#"{"candidate":"1 1 udp 2130706431 10.0.0.1 5000 typ host","sdpMid":null}"#;
        assert!(parse_candidate_init(json).is_some());
        assert!(parse_candidate_init(r#"{"candidate":""}"#).is_none());
        assert!(parse_candidate_init(r#"{"candidate":"candidate:garbage"}"#).is_none());
        assert!(parse_candidate_init("not json").is_none());
        assert!(parse_candidate_init(r#"{"sdpMid":"0"}"#).is_none());
    }

    #[test]
    fn pion_style_candidates_parse() {
        let lines = [
            "candidate:1907398155 1 udp 2130706431 192.168.1.5 51234 typ host generation 0",
            "candidate:2 1 udp 1694498815 203.0.113.7 40000 typ srflx raddr 10.0.0.2 rport 40000",
            "candidate:3 1 udp 2130706431 10.0.0.2 7882 typ host ufrag abcd",
        ];
        for line in lines {
            let json = candidate_init_json(line, "0", 0);
            assert!(parse_candidate_init(&json).is_some(), "{line}");
        }
    }

    #[test]
    fn candidates_are_listed_without_a_prefix() {
        let sdp = "a=candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=candidate:2 1 udp 1 ::1 5 typ host\r\n";
        assert_eq!(candidates(sdp).len(), 2);
        assert!(candidates(sdp)[0].starts_with("candidate:1"));
    }
}
