//! The connection task: one loop that owns the signal events, the subscriber [`Peer`] and the
//! command queue of a [`RoomConnection`](super::RoomConnection).
//!
//! Invariants: every input (signal message, datagram, timer, command, resume outcome) is handled
//! to completion before the next one; str0m is drained after each. Bad input from the network
//! (garbage candidates, unknown mids) is logged at debug and ignored; an offer we cannot answer
//! ends the session with the reason. The task
//! ends on `close()`, when the handle is dropped, on a terminal signal error, or when the peer
//! connection dies, and always emits `Disconnected` last (if the consumer still listens).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_protocol as proto;
use livekit_signaling::{SignalEvent, SignalEvents};
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use str0m::{Candidate, Event};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::events::{participant_snapshot, RoomEvent};
use super::peer::Peer;
use super::sdp::{self, TrackRef};
use super::signal::{ResumeOutcome, SignalCmd};
use super::sink::{EventSink, Stalled};
use super::tracks::Tracks;
use super::{Command, ConnectOptions, Counters};
use crate::supervision::Resumes;

/// Remote candidates kept while no offer has been applied yet.
const MAX_PENDING_CANDIDATES: usize = 64;

/// How long the ended task waits for the consumer to take its last control events.
const FINAL_FLUSH: Duration = Duration::from_secs(5);

/// How the loop ended.
type Exit = String;

/// State of one connection.
pub(crate) struct Session {
    pub(crate) local_sid: String,
    pub(crate) peer: Peer,
    pub(crate) signal_tx: mpsc::Sender<SignalCmd>,
    pub(crate) sink: EventSink,
    pub(crate) counters: Arc<Counters>,
    pub(crate) opts: ConnectOptions,
    pub(crate) participants: HashMap<String, proto::ParticipantInfo>,
    pub(crate) tracks: Tracks,
    pending_candidates: Vec<Candidate>,
    have_offer: bool,
    trickled_ufrag: Option<String>,
    last_offer: Option<proto::SessionDescription>,
    last_answer: Option<proto::SessionDescription>,
    resuming: bool,
    /// Backoff of resumes that follow each other closely (a socket dropped after every resume).
    resume_backoff: Resumes,
}

/// The inputs the loop waits on.
pub(crate) struct Inputs {
    pub(crate) signal: SignalEvents,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) resumes: mpsc::Receiver<ResumeOutcome>,
}

impl Session {
    /// A session for a fresh join; `participants` are the JoinResponse's others.
    pub(crate) fn new(
        local_sid: String,
        peer: Peer,
        signal_tx: mpsc::Sender<SignalCmd>,
        sink: EventSink,
        counters: Arc<Counters>,
        opts: ConnectOptions,
    ) -> Self {
        Session {
            local_sid,
            peer,
            signal_tx,
            sink,
            counters,
            opts,
            participants: HashMap::new(),
            tracks: Tracks::default(),
            pending_candidates: Vec::new(),
            have_offer: false,
            trickled_ufrag: None,
            last_offer: None,
            last_answer: None,
            resuming: false,
            resume_backoff: Resumes::default(),
        }
    }

    /// Runs until the connection ends.
    pub(crate) async fn run(mut self, mut inputs: Inputs) {
        let socket = self.peer.socket();
        let reason = self.run_loop(&mut inputs, &socket).await;
        tracing::info!(%reason, "livekit connection ended");
        self.peer.disconnect();
        let mut events = Vec::new();
        self.peer.poll(&mut events);
        let _ = self.signal_tx.try_send(SignalCmd::Close);
        let _ = self.sink.control(RoomEvent::Disconnected { reason });
        let flush = async {
            while let Some(event) = self.sink.backlog.pop_front() {
                if self.sink.tx.send(event).await.is_err() {
                    break;
                }
            }
        };
        if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
            tracing::warn!("consumer did not take the last events; dropping them");
        }
    }

    async fn run_loop(&mut self, inputs: &mut Inputs, socket: &UdpSocket) -> Exit {
        let mut buf = vec![0u8; 2048];
        let mut events = Vec::new();
        loop {
            if let Err(reason) = self.step(inputs, socket, &mut buf, &mut events).await {
                return reason;
            }
        }
    }

    /// Drains str0m, then waits for and handles one input.
    async fn step(
        &mut self,
        inputs: &mut Inputs,
        socket: &UdpSocket,
        buf: &mut [u8],
        events: &mut Vec<Event>,
    ) -> Result<(), Exit> {
        let deadline = self.peer.poll(events);
        for event in events.drain(..) {
            self.on_rtc_event(event)?;
        }
        if !self.peer.is_alive() {
            return Err("media transport closed".into());
        }
        let flush = self.sink.has_backlog().then(|| self.sink.tx.clone());
        tokio::select! {
            ev = inputs.signal.recv() => self.on_signal(ev),
            r = socket.recv_from(buf) => {
                self.on_datagram(r, buf);
                Ok(())
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                self.peer.handle_timeout();
                Ok(())
            }
            cmd = inputs.commands.recv() => self.on_command(cmd),
            Some(outcome) = inputs.resumes.recv() => self.on_resumed(outcome),
            permit = reserve(flush) => {
                let (Some(permit), Some(ev)) = (permit, self.sink.backlog.pop_front()) else {
                    return Err("event receiver dropped".into());
                };
                permit.send(ev);
                Ok(())
            }
        }
    }

    fn on_datagram(&mut self, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        match r {
            Ok((len, src)) => self.peer.handle_datagram(src, &buf[..len]),
            Err(e) => tracing::debug!(error = %e, "udp receive failed"),
        }
    }

    /// Queues an outgoing signal message (never blocks the media path).
    pub(crate) fn send(&self, msg: Req) {
        if let Err(e) = self.signal_tx.try_send(SignalCmd::Send(Box::new(msg))) {
            tracing::warn!(error = %e, "signal queue full or closed; message dropped");
        }
    }

    /// Emits a control event; a stalled consumer ends the connection.
    pub(crate) fn emit(&mut self, event: RoomEvent) -> Result<(), Exit> {
        self.sink.control(event).map_err(|Stalled| Exit::from("event consumer stalled"))
    }

    fn on_signal(&mut self, ev: Option<SignalEvent>) -> Result<(), Exit> {
        match ev {
            Some(SignalEvent::Message(msg)) => self.on_message(*msg),
            Some(SignalEvent::Close(reason)) => {
                tracing::info!(%reason, "signal connection lost");
                self.start_resume()
            }
            None => Err("signal client gone".into()),
        }
    }

    fn on_message(&mut self, msg: Resp) -> Result<(), Exit> {
        match msg {
            Resp::Offer(sd) => self.on_offer(sd),
            Resp::Trickle(t) => {
                self.on_trickle(t);
                Ok(())
            }
            Resp::Update(u) => self.on_participants(u.participants),
            Resp::Leave(l) => self.on_leave(l),
            other => {
                tracing::trace!(kind = ?std::mem::discriminant(&other), "ignored signal message");
                Ok(())
            }
        }
    }

    fn on_offer(&mut self, sd: proto::SessionDescription) -> Result<(), Exit> {
        let answer = match self.peer.accept_offer(&sd.sdp) {
            Ok(answer) => answer,
            Err(e) => {
                // unanswered, the server would wait 15 s and force a reconnect, again and
                // again: end the session now with the reason (the room actor reconnects with
                // backoff and the recordings show the error)
                tracing::warn!(offer_id = sd.id, error = %e, "cannot answer subscriber offer");
                return Err(format!("cannot answer LiveKit's subscriber offer {}: {e}", sd.id));
            }
        };
        if sdp::has_codec(&answer, "red") {
            tracing::warn!(offer_id = sd.id, "answer accepted RED; audio frames will be RFC 2198");
        }
        tracing::debug!(offer_id = sd.id, "answering subscriber offer");
        let reply = proto::SessionDescription {
            r#type: "answer".into(),
            sdp: answer,
            id: sd.id,
            ..Default::default()
        };
        self.send(Req::Answer(reply.clone()));
        self.trickle_local(&reply.sdp);
        self.have_offer = true;
        for c in self.pending_candidates.drain(..) {
            self.peer.add_remote_candidate(c);
        }
        let map: HashMap<String, TrackRef> = sdp::track_map(&sd.sdp, &sd.mid_to_track_id);
        self.tracks.set_offer_map(map);
        self.last_offer = Some(sd);
        self.last_answer = Some(reply);
        self.reconcile()
    }

    /// Trickles our candidates once per ICE credential set (first answer, ICE restarts).
    fn trickle_local(&mut self, answer: &str) {
        let ufrag = sdp::ice_ufrag(answer).map(str::to_owned);
        if ufrag.is_some() && ufrag == self.trickled_ufrag {
            return;
        }
        let mid = sdp::first_mid(answer).unwrap_or_else(|| "0".into());
        for line in sdp::candidates(answer) {
            let candidate_init = sdp::candidate_init_json(&line, &mid, 0);
            let target = proto::SignalTarget::Subscriber as i32;
            self.send(Req::Trickle(proto::TrickleRequest { candidate_init, target, r#final: false }));
        }
        self.trickled_ufrag = ufrag;
    }

    fn on_trickle(&mut self, t: proto::TrickleRequest) {
        if t.target != proto::SignalTarget::Subscriber as i32 {
            tracing::debug!(target = t.target, "ignoring publisher trickle");
            return;
        }
        let Some(candidate) = sdp::parse_candidate_init(&t.candidate_init) else {
            tracing::debug!("ignoring unusable trickle candidate");
            return;
        };
        if self.have_offer {
            self.peer.add_remote_candidate(candidate);
        } else if self.pending_candidates.len() < MAX_PENDING_CANDIDATES {
            self.pending_candidates.push(candidate);
        }
    }

    /// Applies a ParticipantUpdate (ours and stale versions skipped) and reports the changes.
    pub(crate) fn on_participants(&mut self, infos: Vec<proto::ParticipantInfo>) -> Result<(), Exit> {
        let mut changed = Vec::new();
        for info in infos {
            if info.sid == self.local_sid || info.sid.is_empty() {
                continue;
            }
            if self.participants.get(&info.sid).is_some_and(|known| known.version > info.version) {
                tracing::debug!(participant = %info.sid, "stale participant update");
                continue;
            }
            changed.push(participant_snapshot(&info));
            if info.state == proto::participant_info::State::Disconnected as i32 {
                self.participants.remove(&info.sid);
            } else {
                self.participants.insert(info.sid.clone(), info);
            }
        }
        if changed.is_empty() {
            return Ok(());
        }
        self.emit(RoomEvent::ParticipantsChanged(changed))?;
        self.reconcile()
    }

    fn on_leave(&mut self, l: proto::LeaveRequest) -> Result<(), Exit> {
        let reason = proto::DisconnectReason::try_from(l.reason).unwrap_or_default();
        if l.action == proto::leave_request::Action::Resume as i32 {
            tracing::info!(?reason, "server asked for a resume");
            return self.start_resume();
        }
        Err(format!("server asked to leave: {reason:?}"))
    }

    fn start_resume(&mut self) -> Result<(), Exit> {
        if self.resuming {
            return Ok(());
        }
        self.resuming = true;
        self.counters.resumes.fetch_add(1, Ordering::Relaxed);
        self.emit(RoomEvent::Reconnecting)?;
        let delay = self.resume_backoff.on_lost(Instant::now());
        if !delay.is_zero() {
            tracing::info!(?delay, "signal dropped again soon after a resume; waiting before the next");
        }
        let cmd = SignalCmd::Resume { attempts: self.opts.resume_attempts, delay };
        self.signal_tx.try_send(cmd).map_err(|_| Exit::from("signal pump gone"))
    }

    fn on_resumed(&mut self, outcome: ResumeOutcome) -> Result<(), Exit> {
        self.resuming = false;
        if let Err(e) = outcome {
            return Err(format!("resume failed: {e}"));
        }
        let sync = proto::SyncState {
            answer: self.last_answer.clone(),
            offer: self.last_offer.clone(),
            subscription: Some(self.tracks.subscription_state()),
            ..Default::default()
        };
        self.resume_backoff.on_up(Instant::now());
        self.send(Req::SyncState(sync));
        let _ = self.signal_tx.try_send(SignalCmd::SetReconnected);
        self.emit(RoomEvent::Reconnected)
    }

    fn on_command(&mut self, cmd: Option<Command>) -> Result<(), Exit> {
        match cmd {
            Some(Command::Subscribe { participant_sid, track_sids, subscribe }) => {
                // the wire carries plain strings
                let track_sids = track_sids.iter().map(|t| t.to_string()).collect();
                self.subscribe(&participant_sid, track_sids, subscribe);
                Ok(())
            }
            Some(Command::RequestKeyframe(track_sid)) => {
                self.request_keyframe(&track_sid, Instant::now());
                Ok(())
            }
            Some(Command::Close) | None => {
                let leave = proto::LeaveRequest {
                    reason: proto::DisconnectReason::ClientInitiated as i32,
                    action: proto::leave_request::Action::Disconnect as i32,
                    ..Default::default()
                };
                self.send(Req::Leave(leave));
                Err("closed by client".into())
            }
        }
    }

    fn on_rtc_event(&mut self, event: Event) -> Result<(), Exit> {
        match event {
            Event::MediaAdded(_) | Event::MediaChanged(_) => self.reconcile(),
            Event::MediaData(data) => {
                self.on_media(data);
                Ok(())
            }
            Event::MediaIngressStats(s) => {
                self.tracks.record_nacks(s.mid, s.rid.map(|r| r.to_string()), s.nacks);
                let total = self.tracks.nacks_total();
                self.counters.nacks_sent.store(total, Ordering::Relaxed);
                Ok(())
            }
            Event::IceConnectionStateChange(state) => {
                tracing::debug!(?state, "ice state");
                Ok(())
            }
            Event::Connected => {
                tracing::info!("subscriber peer connection established");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// A slot in the event channel, or never when there is nothing to flush.
async fn reserve(tx: Option<mpsc::Sender<RoomEvent>>) -> Option<mpsc::OwnedPermit<RoomEvent>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
