//! A subscriber peer connection, SFU side: one tokio task owns one str0m `Rtc` (ICE-lite,
//! server offers) and one UDP socket, takes [`PeerCmd`]s (tracks to add or remove, the
//! client's answer and candidates, frames to send) and talks back through the participant's
//! [`Outbox`](super::room::Outbox).
//!
//! Invariants: at most one offer is outstanding (changes that arrive meanwhile are batched into
//! the next offer, sent after the answer); the first offer always carries the `_reliable` and
//! `_lossy` data channels; our trickles follow the offer and name its real first mid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, Reliability};
use str0m::format::Codec as WireCodec;
use str0m::media::{Direction, Frequency, MediaKind as WireKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::faults::{FaultRegistry, Netem, Verdict};
use super::net::{candidate_from_init_json, candidate_init_json, first_mid, pick_local, ssrcs_by_mid};
use super::publisher::{MediaFrame, PubCmd};
use super::room::Outbox;
use crate::media::Codec;

/// Queue depth of a peer's frame channel; beyond it frames are dropped (and counted).
pub const MEDIA_QUEUE: usize = 1024;

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
        .set_rtcp_report_interval_audio(Duration::from_secs(1))
        .set_rtcp_report_interval_video(Duration::from_secs(1))
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
            if self.pending.is_none() && (self.changed || self.restart) {
                self.negotiate();
            }
            let deadline = self.drain();
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

    /// Resume: restart ICE in the next offer; an offer the client may have lost with its old
    /// socket is sent again first (it must be answered before the next one).
    fn ice_restart(&mut self) {
        self.restart = true;
        if let (Some(_), Some(offer)) = (&self.pending, &self.last_offer) {
            self.ctx.outbox.send(proto::signal_response::Message::Offer(offer.clone()));
        }
    }

    fn add(&mut self, spec: TrackSpec) {
        if let Some(s) = self.subs.iter_mut().find(|s| s.spec.track == spec.track) {
            if !s.active {
                s.active = true;
                s.mid = None; // a new m-line: the old one stays inactive
                self.changed = true;
            }
            return;
        }
        self.subs.push(Sub { spec, mid: None, active: true });
        self.changed = true;
    }

    fn negotiate(&mut self) {
        let first = self.offer_id == 0;
        let mut api = self.rtc.sdp_api();
        if first {
            api.add_channel("_reliable".into());
            let lossy = ChannelConfig {
                label: "_lossy".into(),
                ordered: false,
                reliability: Reliability::MaxRetransmits { retransmits: 0 },
                ..Default::default()
            };
            api.add_channel_with_config(lossy);
        }
        for s in self.subs.iter_mut() {
            match (s.active, s.mid) {
                (true, None) => {
                    let kind = if s.spec.codec == Codec::Opus { WireKind::Audio } else { WireKind::Video };
                    let stream = format!("{}|{}", s.spec.participant, s.spec.track);
                    s.mid = Some(api.add_media(
                        kind,
                        Direction::SendOnly,
                        Some(stream),
                        Some(s.spec.track.clone()),
                        None,
                    ));
                }
                (false, Some(mid)) => api.set_direction(mid, Direction::Inactive),
                _ => {}
            }
        }
        if self.restart {
            api.ice_restart(true);
        }
        let restarted = std::mem::take(&mut self.restart);
        self.changed = false;
        let Some((offer, pending)) = api.apply() else { return };
        self.pending = Some(pending);
        self.offer_id += 1;
        self.send_offer(offer.to_sdp_string(), first || restarted);
    }

    fn send_offer(&mut self, sdp: String, trickle: bool) {
        let mid_to_track_id: HashMap<String, String> = self
            .subs
            .iter()
            .filter(|s| s.active)
            .filter_map(|s| Some((s.mid?.to_string(), s.spec.track.clone())))
            .collect();
        let by_mid: HashMap<String, String> =
            self.subs.iter().filter_map(|s| Some((s.mid?.to_string(), s.spec.track.clone()))).collect();
        let ssrcs = ssrcs_by_mid(&sdp)
            .into_iter()
            .filter_map(|(ssrc, mid)| Some((ssrc, by_mid.get(&mid)?.clone())))
            .collect();
        self.netem.set_ssrcs(ssrcs);
        let mid0 = first_mid(&sdp).unwrap_or("0").to_owned();
        let offer =
            proto::SessionDescription { r#type: "offer".into(), sdp, id: self.offer_id, mid_to_track_id };
        self.ctx.outbox.send(proto::signal_response::Message::Offer(offer));
        if trickle {
            for c in &self.cands {
                let t = proto::TrickleRequest {
                    candidate_init: candidate_init_json(c, &mid0),
                    target: proto::SignalTarget::Subscriber as i32,
                    r#final: false,
                };
                self.ctx.outbox.send(proto::signal_response::Message::Trickle(t));
            }
        }
    }

    fn answer(&mut self, sdp: &str) {
        let Some(pending) = self.pending.take() else {
            return tracing::warn!(participant = %self.ctx.sid, "answer without an outstanding offer");
        };
        let result = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| e.to_string())
            .and_then(|a| self.rtc.sdp_api().accept_answer(pending, a).map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::warn!(participant = %self.ctx.sid, "failed to apply the answer: {e}");
        }
        self.pts.clear();
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
                None => return,
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

    fn transmit(&mut self, to: SocketAddr, data: &[u8]) {
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
