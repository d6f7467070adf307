//! The subscriber peer connection: one str0m [`Rtc`] in frame mode and one UDP socket.
//!
//! Invariants: the `Rtc` is only driven from the connection task (sans-IO, one owner); every
//! datagram and every timeout goes through [`Peer::handle_datagram`] / [`Peer::handle_timeout`]
//! and every output is drained by [`Peer::poll`]. RED is never enabled (the answer would carry
//! RFC 2198 payloads we do not unwrap); RTX, NACK and PLI are handled by str0m.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpOffer;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;

use super::LiveKitError;

/// How often str0m reports ingress statistics (NACK counts).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Receive buffer asked for the subscriber socket. One socket carries every track of the room:
/// 50 A/V participants are ~4,000 datagrams/s, and the default buffer (208 KiB on Linux, tens of
/// milliseconds of that) overflows whenever the connection task is descheduled briefly, which
/// loses frames that NACK cannot always bring back. 4 MiB holds about a second of it. The
/// kernel caps it at `net.core.rmem_max`.
pub(crate) const RECV_BUFFER: usize = 4 << 20;

/// The receive side of the subscriber PC.
pub(crate) struct Peer {
    rtc: Rtc,
    socket: Arc<UdpSocket>,
    port: u16,
    /// Host candidate addresses (loopback first); the destination of a received datagram is
    /// guessed from its source, since a wildcard-bound socket does not report it.
    local_ips: Vec<IpAddr>,
    /// The main SSRC each m-line last announced (kept while the m-line is idle), to see an
    /// m-line the server reuses for another track.
    mid_ssrc: HashMap<Mid, u32>,
    /// Streams moved to a fresh depacketizer so far (names their private rid).
    fresh_streams: u32,
}

impl Peer {
    /// Binds the UDP socket and registers host candidates for loopback and the interfaces
    /// that route to `signal_host` and to the default route (or exactly `advertise` if given).
    pub(crate) async fn bind(
        bind_ip: Option<IpAddr>,
        advertise: &[IpAddr],
        signal_host: Option<&str>,
    ) -> Result<Self, LiveKitError> {
        let addr = SocketAddr::new(bind_ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()), 0);
        let socket = UdpSocket::bind(addr).await.map_err(|source| LiveKitError::Bind { addr, source })?;
        let port = socket.local_addr().map_err(|source| LiveKitError::Bind { addr, source })?.port();
        grow_recv_buffer(&socket, RECV_BUFFER);
        let local_ips = match (advertise.is_empty(), bind_ip) {
            (false, _) => advertise.to_vec(),
            (true, Some(ip)) if !ip.is_unspecified() => vec![ip],
            _ => discover_ips(signal_host).await,
        };
        let mut rtc = rtc_config().build(Instant::now());
        let mut added = Vec::new();
        for ip in &local_ips {
            match Candidate::host(SocketAddr::new(*ip, port), "udp") {
                Ok(c) => added.extend(rtc.add_local_candidate(c).map(|_| *ip)),
                Err(e) => tracing::debug!(%ip, error = %e, "skipping host candidate"),
            }
        }
        if added.is_empty() {
            return Err(LiveKitError::NoCandidates);
        }
        tracing::debug!(port, ips = ?added, "subscriber socket bound");
        Ok(Peer {
            rtc,
            socket: Arc::new(socket),
            port,
            local_ips: added,
            mid_ssrc: HashMap::new(),
            fresh_streams: 0,
        })
    }

    /// The socket, for the receive loop.
    pub(crate) fn socket(&self) -> Arc<UdpSocket> {
        self.socket.clone()
    }

    /// Applies a subscriber offer and returns the answer SDP.
    pub(crate) fn accept_offer(&mut self, sdp: &str) -> Result<String, LiveKitError> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| LiveKitError::Sdp(e.to_string()))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| LiveKitError::Sdp(e.to_string()))?;
        // two passes: every replaced stream is removed before any new one is declared (an SSRC
        // that moved to another m-line in the same offer must not be removed after it)
        let mut moved = Vec::new();
        for (mid, ssrc) in super::sdp::mid_ssrcs(sdp) {
            let mid = Mid::from(mid.as_str());
            match self.mid_ssrc.insert(mid, ssrc.main) {
                Some(old) if old != ssrc.main => {
                    self.rtc.direct_api().remove_stream_rx(old.into());
                    moved.push((mid, old, ssrc));
                }
                _ => {}
            }
        }
        for (mid, old, ssrc) in moved {
            self.fresh_depacketizer(mid, old, ssrc);
        }
        Ok(answer.to_sdp_string())
    }

    /// An m-line the server reuses for another track (a republish, a new subscription on a
    /// freed transceiver) carries a new SSRC with its own sequence numbers. str0m keeps one
    /// depacketizer per (payload type, rid) of an m-line, which drops every packet numbered
    /// below the old stream's last one: the new track would never be recorded (half the time).
    /// The new SSRC is declared under a rid of its own, which gives it a fresh depacketizer;
    /// the old stream was removed by the caller (so keyframe requests reach the new one).
    fn fresh_depacketizer(&mut self, mid: Mid, old: u32, ssrc: super::sdp::MidSsrc) {
        self.fresh_streams = self.fresh_streams.wrapping_add(1);
        // a rid is at most 8 characters
        let rid = Rid::from(format!("rr{}", self.fresh_streams % 1_000_000).as_str());
        let mut api = self.rtc.direct_api();
        api.remove_stream_rx(ssrc.main.into());
        let stream = api.expect_stream_rx(ssrc.main.into(), ssrc.repair.map(Into::into), mid, Some(rid));
        stream.suppress_nack(ssrc.repair.is_none());
        tracing::debug!(%mid, old, new = ssrc.main, %rid, "m-line reused by another stream: fresh depacketizer");
    }

    /// Adds a trickled remote candidate.
    pub(crate) fn add_remote_candidate(&mut self, c: Candidate) {
        self.rtc.add_remote_candidate(c);
    }

    /// Sends a PLI for `mid`. `false` if the m-line cannot carry one (not receiving, no PLI
    /// feedback negotiated).
    pub(crate) fn request_keyframe(&mut self, mid: Mid) -> bool {
        let Some(mut writer) = self.rtc.writer(mid) else { return false };
        if !writer.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            return false;
        }
        writer.request_keyframe(None, KeyframeRequestKind::Pli).is_ok()
    }

    /// Media kind and direction state of `mid`: `Some(kind)` while it is receiving.
    pub(crate) fn receiving_kind(&self, mid: Mid) -> Option<str0m::media::MediaKind> {
        let media = self.rtc.media(mid)?;
        (media.direction().is_receiving() && !media.disabled()).then(|| media.kind())
    }

    /// The first recordable codec negotiated on `mid`.
    pub(crate) fn negotiated_codec(&mut self, mid: Mid) -> Option<crate::media::Codec> {
        let writer = self.rtc.writer(mid)?;
        let codec = writer.payload_params().find_map(|p| super::events::codec_from_str0m(p.spec().codec));
        codec
    }

    /// Feeds one datagram received from `source`.
    pub(crate) fn handle_datagram(&mut self, source: SocketAddr, data: &[u8]) {
        let destination = SocketAddr::new(self.destination_ip(source.ip()), self.port);
        let Ok(recv) = Receive::new(Protocol::Udp, source, destination, data) else {
            tracing::trace!(%source, "ignoring non-WebRTC datagram");
            return;
        };
        if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), recv)) {
            tracing::debug!(%source, error = %e, "datagram rejected");
        }
    }

    fn destination_ip(&self, source: IpAddr) -> IpAddr {
        let want_loopback = source.is_loopback();
        self.local_ips
            .iter()
            .copied()
            .find(|ip| ip.is_loopback() == want_loopback && ip.is_ipv4() == source.is_ipv4())
            .or_else(|| self.local_ips.first().copied())
            .unwrap_or(Ipv4Addr::LOCALHOST.into())
    }

    /// Advances str0m's clock.
    pub(crate) fn handle_timeout(&mut self) {
        if let Err(e) = self.rtc.handle_input(Input::Timeout(Instant::now())) {
            tracing::debug!(error = %e, "timeout handling failed");
        }
    }

    /// Drains str0m: sends datagrams, collects events, returns the next deadline.
    pub(crate) fn poll(&mut self, events: &mut Vec<Event>) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return t,
                Ok(Output::Transmit(t)) => {
                    if let Err(e) = self.socket.try_send_to(&t.contents, t.destination) {
                        tracing::trace!(dest = %t.destination, error = %e, "datagram not sent");
                    }
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    tracing::debug!(error = %e, "rtc poll failed");
                    return Instant::now() + Duration::from_millis(20);
                }
            }
        }
    }

    /// Whether the peer connection is still usable.
    pub(crate) fn is_alive(&self) -> bool {
        self.rtc.is_alive()
    }

    /// Closes the peer connection (DTLS close, no more output after draining).
    pub(crate) fn disconnect(&mut self) {
        self.rtc.disconnect();
    }
}

/// Asks for a receive buffer of `want` bytes; says so when the kernel grants less. Returns the
/// size granted (Linux reports twice the usable size: its bookkeeping overhead).
pub(crate) fn grow_recv_buffer(socket: &UdpSocket, want: usize) -> usize {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(want) {
        tracing::debug!(error = %e, "cannot set the UDP receive buffer size");
    }
    let got = sock.recv_buffer_size().unwrap_or(0);
    if got < want {
        tracing::info!(
            bytes = got,
            wanted = want,
            "UDP receive buffer smaller than asked (net.core.rmem_max); crowded rooms may lose packets"
        );
    }
    got
}

/// Frame mode, only the codecs we record (Opus without RED, VP8, VP9, H.264, AV1; RTX comes with
/// the video codecs), ingress stats for NACK counts.
fn rtc_config() -> RtcConfig {
    RtcConfig::new()
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true)
        .enable_av1(true)
        .set_stats_interval(Some(STATS_INTERVAL))
}

/// Loopback plus the interface that routes to the signal server and the default route.
async fn discover_ips(signal_host: Option<&str>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into()];
    let mut targets: Vec<String> = signal_host.map(|h| format!("{h}:9")).into_iter().collect();
    targets.push("192.0.2.1:9".to_owned()); // TEST-NET-1: any routable address; nothing is sent
    for target in targets {
        match route_source(&target).await {
            Ok(ip) if !ip.is_unspecified() && !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(e) => tracing::debug!(%target, error = %e, "no route for candidate discovery"),
        }
    }
    ips
}

/// The local address the kernel picks to reach `target` (UDP connect sends nothing).
async fn route_source(target: &str) -> io::Result<IpAddr> {
    let addr = tokio::net::lookup_host(target)
        .await?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no IPv4 address"))?;
    let probe = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    probe.connect(addr).await?;
    Ok(probe.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The subscriber socket gets the large receive buffer (up to the kernel's cap): with the
    /// default one, a room of 50 A/V participants lost ~5 % of its datagrams (`RcvbufErrors`).
    #[tokio::test]
    async fn subscriber_socket_gets_a_large_receive_buffer() {
        let peer = Peer::bind(Some(Ipv4Addr::LOCALHOST.into()), &[], None).await.expect("bind");
        let granted = socket2::SockRef::from(&*peer.socket()).recv_buffer_size().expect("SO_RCVBUF");
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(RECV_BUFFER);
        let want = RECV_BUFFER.min(cap);
        eprintln!("receive buffer {granted} bytes (asked {RECV_BUFFER}, rmem_max {cap})");
        assert!(granted >= want, "receive buffer {granted} bytes, want at least {want}");
    }
}
