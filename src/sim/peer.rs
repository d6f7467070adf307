//! A subscriber peer connection, SFU side: one tokio task owns one str0m `Rtc` (ICE-lite,
//! server offers) and one UDP socket, takes [`PeerCmd`]s (tracks to add or remove, the
//! client's answer and candidates, frames to send) and talks back through the participant's
//! [`Outbox`](super::room::Outbox).
//!
//! Invariants: at most one offer is outstanding (changes that arrive meanwhile are batched into
//! the next offer, sent after the answer); the first offer always carries the `_reliable` and
//! `_lossy` data channels; our trickles follow the offer and name its real first mid; no RTCP
//! leaves before every new send stream has sent its first RTP packet (str0m would otherwise
//! send sender reports with RTP time 0 for a stream not yet written to, which breaks a
//! receiver's NTP <-> RTP mapping; see [`RTCP_HOLD`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use str0m::change::SdpPendingOffer;
use str0m::format::Codec as WireCodec;
use str0m::media::{Frequency, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::faults::{is_rtcp, rtp_ssrc, FaultRegistry, Netem, Verdict};
use super::net::{candidate_from_init_json, pick_local};
use super::publisher::{MediaFrame, PubCmd};
use super::room::Outbox;
use crate::media::Codec;

mod negotiate;

/// Queue depth of a peer's frame channel; beyond it frames are dropped (and counted).
pub const MEDIA_QUEUE: usize = 1024;

/// How long RTCP is held back waiting for a new stream's first RTP packet (a track that stays
/// silent longer, e.g. muted, gets str0m's RTP-time-0 sender reports after that).
pub const RTCP_HOLD: Duration = Duration::from_secs(3);

/// Changes are batched for this long before an offer (LiveKit: 10 ms).
pub const DEBOUNCE: Duration = Duration::from_millis(10);

/// The two inputs of a peer task.
#[derive(Debug, Clone)]
pub struct PeerHandle {
    /// Signalling-driven commands.
    pub ctl: mpsc::Sender<PeerCmd>,
    /// Frames of subscribed tracks.
    pub media: mpsc::Sender<MediaFrame>,
}

/// Commands to a peer task.
#[derive(Debug)]
pub enum PeerCmd {
    /// Subscribe: add a send-only m-line for this track.
    AddTrack(TrackSpec),
    /// Unsubscribe: the track's m-line goes inactive.
    RemoveTrack(String),
    /// The client's answer to our last offer.
    Answer(String),
    /// A trickled remote candidate (`RTCIceCandidateInit` JSON).
    Candidate(String),
    /// Resume: the next offer restarts ICE.
    IceRestart,
    /// The participant left.
    Close,
}

/// A track to subscribe to.
#[derive(Debug, Clone)]
pub struct TrackSpec {
    /// `TR_` sid.
    pub track: String,
    /// `PA_` sid of the publisher.
    pub participant: String,
    /// The publisher's codec.
    pub codec: Codec,
    /// Where keyframe requests go.
    pub publisher: mpsc::Sender<PubCmd>,
}

/// What a peer needs from its surroundings.
pub struct PeerCtx {
    /// The simulator (to report the participant ACTIVE).
    pub sim: Arc<super::Sim>,
    /// Room name.
    pub room: String,
    /// Participant sid.
    pub sid: String,
    /// Signalling sink of the participant.
    pub outbox: Outbox,
}

struct Sub {
    spec: TrackSpec,
    mid: Option<Mid>,
    active: bool,
}

struct Peer {
    ctx: PeerCtx,
    rtc: Rtc,
    sock: UdpSocket,
    locals: Vec<SocketAddr>,
    cands: Vec<Candidate>,
    pending: Option<SdpPendingOffer>,
    offer_id: u32,
    subs: Vec<Sub>,
    changed: bool,
    restart: bool,
    connected: bool,
    netem: Netem,
    faults: Arc<FaultRegistry>,
    pts: HashMap<Mid, str0m::format::PayloadParams>,
    last_offer: Option<proto::SessionDescription>,
    /// Send SSRCs that have not sent RTP yet, with the end of their RTCP hold.
    silent: HashMap<u32, Instant>,
    known: std::collections::HashSet<u32>,
    refused: std::collections::HashSet<Mid>,
    debounce: Option<Instant>,
}

/// Binds the peer's UDP socket on `bind` and spawns its task on `rt`.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    ctx: PeerCtx,
    bind: std::net::IpAddr,
    advertise: &[std::net::IpAddr],
) -> std::io::Result<PeerHandle> {
    let std_sock = std::net::UdpSocket::bind((bind, 0))?;
    std_sock.set_nonblocking(true)?;
    let port = std_sock.local_addr()?.port();
    let locals: Vec<SocketAddr> = advertise.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    let (ctl, rx) = mpsc::channel(256);
    let (media, media_rx) = mpsc::channel(MEDIA_QUEUE);
    let faults = ctx.sim.faults.clone();
    rt.spawn(async move {
        let sock = match UdpSocket::from_std(std_sock) {
            Ok(s) => s,
            Err(e) => return tracing::warn!("failed to register the media socket: {e}"),
        };
        let peer = Peer::new(ctx, sock, locals, faults);
        peer.run(rx, media_rx).await;
    });
    Ok(PeerHandle { ctl, media })
}

fn rtc_config() -> RtcConfig {
    RtcConfig::new()
        .set_ice_lite(true)
        .clear_codecs()
        .enable_opus(true, true)
        .enable_vp8(true)
        .enable_vp9(true)
        .enable_h264(true)
        .enable_av1(true)
        // livekit-server sends one sender report every 3 s per downtrack
        .set_rtcp_report_interval_audio(Duration::from_secs(3))
        .set_rtcp_report_interval_video(Duration::from_secs(3))
}

impl Peer {
    fn new(ctx: PeerCtx, sock: UdpSocket, locals: Vec<SocketAddr>, faults: Arc<FaultRegistry>) -> Peer {
        let mut rtc = rtc_config().build(Instant::now());
        let cands: Vec<Candidate> = locals.iter().filter_map(|a| Candidate::host(*a, "udp").ok()).collect();
        for c in &cands {
            rtc.add_local_candidate(c.clone());
        }
        let seed = u64::from(locals.first().map_or(0, |a| a.port()));
        Peer {
            ctx,
            rtc,
            sock,
            locals,
            cands,
            pending: None,
            offer_id: 0,
            subs: Vec::new(),
            changed: true,
            restart: false,
            connected: false,
            netem: Netem::new(seed),
            faults,
            pts: HashMap::new(),
            last_offer: None,
            silent: HashMap::new(),
            known: Default::default(),
            refused: Default::default(),
            debounce: None,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<PeerCmd>, mut media: mpsc::Receiver<MediaFrame>) {
        let mut buf = vec![0u8; 2000];
        loop {
            // Batch whatever is already queued into one negotiation.
            while let Ok(cmd) = rx.try_recv() {
                if !self.handle(cmd) {
                    return self.closed();
                }
            }
            let due = self.negotiation_due(Instant::now());
            let polled = self.drain();
            let deadline = due.map_or(polled, |d| polled.min(d));
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => if !self.handle(cmd) { break },
                    None => break,
                },
                Some(f) = media.recv() => self.write(f),
                r = self.sock.recv_from(&mut buf) => match r {
                    Ok((n, src)) => self.receive(src, &buf[..n]),
                    Err(e) => tracing::debug!("udp receive failed: {e}"),
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.timeout(),
            }
        }
        self.closed();
    }

    /// Negotiates once [`DEBOUNCE`] has passed since the first unsent change (and no offer
    /// is outstanding); returns when to check again, if a change is waiting.
    fn negotiation_due(&mut self, now: Instant) -> Option<Instant> {
        if self.pending.is_some() || !(self.changed || self.restart) {
            self.debounce = None;
            return None;
        }
        let due = *self.debounce.get_or_insert(now + DEBOUNCE);
        if now < due {
            return Some(due);
        }
        self.debounce = None;
        self.negotiate();
        None
    }

    fn closed(&self) {
        tracing::debug!(participant = %self.ctx.sid, lost = self.netem.lost, "peer closed");
    }

    /// Applies one command; false on [`PeerCmd::Close`].
    fn handle(&mut self, cmd: PeerCmd) -> bool {
        match cmd {
            PeerCmd::AddTrack(spec) => self.add(spec),
            PeerCmd::RemoveTrack(t) => {
                if let Some(s) = self.subs.iter_mut().find(|s| s.spec.track == t && s.active) {
                    s.active = false;
                    self.changed = true;
                }
            }
            PeerCmd::Answer(sdp) => self.answer(&sdp),
            PeerCmd::Candidate(json) => match candidate_from_init_json(&json) {
                Some(c) => self.rtc.add_remote_candidate(c),
                None => tracing::debug!("ignoring remote candidate {json:?}"),
            },
            PeerCmd::IceRestart => self.ice_restart(),
            PeerCmd::Close => return false,
        }
        true
    }

    fn write(&mut self, f: MediaFrame) {
        if !self.connected {
            return;
        }
        let Some(sub) = self.subs.iter().find(|s| s.active && *s.spec.track == *f.track) else { return };
        let (Some(mid), codec) = (sub.mid, sub.spec.codec) else { return };
        let Some(writer) = self.rtc.writer(mid) else { return };
        let params = match self.pts.get(&mid) {
            Some(p) => *p,
            None => match writer.payload_params().find(|p| p.spec().codec == wire_codec(codec)) {
                Some(p) => *self.pts.entry(mid).or_insert(*p),
                None => {
                    // The answer left out the publisher's codec: say so once per m-line.
                    if self.refused.insert(mid) {
                        tracing::warn!(participant = %self.ctx.sid, %mid, %codec, "subscriber declined the publisher's codec: no media on this m-line");
                    }
                    return;
                }
            },
        };
        let freq = if codec == Codec::Opus { Frequency::FORTY_EIGHT_KHZ } else { Frequency::NINETY_KHZ };
        if let Err(e) =
            writer.write(params.pt(), f.wallclock, MediaTime::new(u64::from(f.rtp_ts), freq), f.data)
        {
            tracing::debug!(track = %f.track, "failed to write a frame: {e}");
        }
    }

    fn receive(&mut self, src: SocketAddr, data: &[u8]) {
        let Some(local) = pick_local(&self.locals, src) else { return };
        let Ok(r) = Receive::new(Protocol::Udp, src, local, data) else { return };
        if let Err(e) = self.rtc.handle_input(Input::Receive(Instant::now(), r)) {
            tracing::debug!(participant = %self.ctx.sid, "rtc input failed: {e}");
        }
    }

    fn timeout(&mut self) {
        let now = Instant::now();
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(participant = %self.ctx.sid, "rtc timeout failed: {e}");
        }
        let mut due = Vec::new();
        self.netem.take_due(now, &mut due);
        for (to, d) in due {
            let _ = self.sock.try_send_to(&d, to);
        }
    }

    /// Polls str0m until it wants a timeout: sends datagrams (through the faults), handles
    /// events. Returns when to wake up next.
    fn drain(&mut self) -> Instant {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => return self.netem.next_due().map_or(t, |d| d.min(t)),
                Ok(Output::Transmit(t)) => self.transmit(t.destination, &t.contents),
                Ok(Output::Event(e)) => self.event(e),
                Err(e) => {
                    tracing::warn!(participant = %self.ctx.sid, "rtc failed: {e}");
                    return Instant::now() + Duration::from_millis(50);
                }
            }
        }
    }

    /// Whether RTCP must wait: a new send stream has not sent its first RTP packet yet.
    fn hold_rtcp(&mut self, now: Instant) -> bool {
        self.silent.retain(|_, until| *until > now);
        !self.silent.is_empty()
    }

    fn transmit(&mut self, to: SocketAddr, data: &[u8]) {
        match rtp_ssrc(data) {
            Some(ssrc) => {
                self.silent.remove(&ssrc);
            }
            None if is_rtcp(data) && self.hold_rtcp(Instant::now()) => return,
            None => {}
        }
        match self.netem.filter(&self.faults, Instant::now(), to, data) {
            Verdict::Send(dup) => {
                let _ = self.sock.try_send_to(data, to);
                if dup {
                    let _ = self.sock.try_send_to(data, to);
                }
            }
            Verdict::Hold => {}
        }
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.ctx.sim.client_active(&self.ctx.room, &self.ctx.sid);
            }
            Event::KeyframeRequest(k) => {
                let sub = self.subs.iter().find(|s| s.mid == Some(k.mid) && s.spec.codec != Codec::Opus);
                if let Some(s) = sub {
                    let _ = s.spec.publisher.try_send(PubCmd::Keyframe(s.spec.track.clone()));
                }
            }
            Event::IceConnectionStateChange(s) => tracing::debug!(participant = %self.ctx.sid, "ice {s:?}"),
            _ => {}
        }
    }
}

fn wire_codec(c: Codec) -> WireCodec {
    match c {
        Codec::Vp8 => WireCodec::Vp8,
        Codec::Vp9 => WireCodec::Vp9,
        Codec::H264 => WireCodec::H264,
        Codec::Av1 => WireCodec::Av1,
        Codec::Opus => WireCodec::Opus,
    }
}
