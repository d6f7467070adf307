//! The subscribe-only LiveKit client the recorder receives media with.
//!
//! [`connect`] joins a room with a recorder token (see [`token`]) through livekit-signaling,
//! answers the server's subscriber offers with one str0m `Rtc` in frame mode on one UDP socket,
//! and turns everything into typed [`RoomEvent`]s on a bounded channel. A [`RoomConnection`]
//! handle sends commands (subscribe, keyframe request, close) and reads counters.
//!
//! ```text
//! RoomConnection ──commands──▶ connection task ──RoomEvent──▶ consumer (RoomActor)
//!                                │  ├─ signal pump (SignalClient: send, resume)
//!                                │  └─ Peer (str0m Rtc + UDP socket)
//! ```
//!
//! Invariant: this module is the only importer of livekit-signaling and str0m; nothing in its
//! public API exposes their types. Layout: `token` (JWT), `signal` (SignalClient + pump),
//! `peer` (str0m), `sdp` (pure SDP/trickle helpers), `events` (typed events and conversions),
//! `sink` (bounded delivery), `session` + `tracks` (the connection task).

mod events;
mod peer;
mod sdp;
mod session;
mod signal;
mod sink;
pub mod token;
mod tracks;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument as _;

use crate::ids::{ParticipantSid, TrackSid};

pub use events::{
    codec_from_mime, ParticipantSnapshot, ParticipantState, ReceivedFrame, RoomEvent, TrackSnapshot,
};
pub use token::{is_recorder_identity, recorder_token, RECORDER_IDENTITY_PREFIX};

/// Default capacity of the event channel.
pub const DEFAULT_EVENT_CAPACITY: usize = 1024;

/// Capacity of the command channel of a [`RoomConnection`].
const COMMAND_CAPACITY: usize = 64;

/// Why connecting or talking to LiveKit failed.
#[derive(Debug, thiserror::Error)]
pub enum LiveKitError {
    /// The signal connection failed (WebSocket, HTTP status, JoinResponse timeout, ...).
    #[error("signal connection failed: {reason}")]
    Signal {
        /// What livekit-signaling reported.
        reason: String,
        /// Whether trying again may succeed (not for auth or configuration errors).
        retryable: bool,
    },
    /// The JoinResponse lacked something the client needs.
    #[error("invalid JoinResponse: {0}")]
    InvalidJoin(&'static str),
    /// The UDP socket for media could not be bound.
    #[error("cannot bind the media socket on {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No local address could be used as an ICE host candidate.
    #[error("no usable local address for ICE candidates")]
    NoCandidates,
    /// An SDP offer could not be parsed or answered.
    #[error("cannot answer the subscriber offer: {0}")]
    Sdp(String),
    /// The connection has ended (closed, disconnected or its task is gone).
    #[error("the LiveKit connection is closed")]
    Closed,
}

impl LiveKitError {
    /// Whether connecting again may help (network trouble, timeouts, a closed connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            LiveKitError::Signal { retryable, .. } => *retryable,
            LiveKitError::Closed | LiveKitError::Sdp(_) | LiveKitError::InvalidJoin(_) => true,
            LiveKitError::Bind { .. } | LiveKitError::NoCandidates => false,
        }
    }

    pub(crate) fn from_signal(e: livekit_signaling::SignalError) -> Self {
        let retryable = signal::signal_error_retryable(&e);
        LiveKitError::Signal { reason: e.to_string(), retryable }
    }
}

/// Settings of one connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Capacity of the event channel. When it is full, media frames are dropped and counted
    /// ([`ConnectionStats::frames_dropped`]); control events are never dropped (they wait, in
    /// order, and frames are dropped until they are delivered). 1024 holds several seconds of
    /// one participant's audio and video.
    pub event_capacity: usize,
    /// IP to bind the media socket to; `None` binds `0.0.0.0`.
    pub bind_ip: Option<IpAddr>,
    /// Host candidate IPs to advertise; empty means loopback plus the interfaces that route
    /// to the server and to the default route.
    pub advertise_ips: Vec<IpAddr>,
    /// Signal resume attempts before the connection gives up.
    pub resume_attempts: usize,
    /// Minimum time between two PLIs for one track.
    pub min_keyframe_interval: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            event_capacity: DEFAULT_EVENT_CAPACITY,
            bind_ip: None,
            advertise_ips: Vec::new(),
            resume_attempts: 6,
            min_keyframe_interval: Duration::from_millis(500),
        }
    }
}

/// Counters shared by the connection task and its handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) frames_received: AtomicU64,
    pub(crate) frames_dropped: AtomicU64,
    pub(crate) plis_sent: AtomicU64,
    pub(crate) nacks_sent: AtomicU64,
    pub(crate) resumes: AtomicU64,
}

/// A snapshot of a connection's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    /// Frames delivered to the event channel.
    pub frames_received: u64,
    /// Frames dropped: channel full, or no track known for their m-line.
    pub frames_dropped: u64,
    /// PLIs sent.
    pub plis_sent: u64,
    /// NACKs sent (from str0m's ingress statistics, updated every second).
    pub nacks_sent: u64,
    /// Signal resumes started.
    pub resumes: u64,
}

/// Work for the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe { participant_sid: ParticipantSid, track_sids: Vec<TrackSid>, subscribe: bool },
    RequestKeyframe(TrackSid),
    Close,
}

/// Handle to a running connection. Dropping it closes the connection.
#[derive(Debug)]
pub struct RoomConnection {
    room_name: String,
    local_sid: String,
    commands: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl RoomConnection {
    /// The room's name.
    pub fn room_name(&self) -> &str {
        &self.room_name
    }

    /// The bot's participant sid.
    pub fn local_sid(&self) -> &str {
        &self.local_sid
    }

    /// Subscribes to (or unsubscribes from) exactly these tracks of one participant. Repeating
    /// a request is harmless. Video is requested at the highest simulcast layer.
    pub async fn subscribe(
        &self,
        participant_sid: &ParticipantSid,
        track_sids: &[TrackSid],
        subscribe: bool,
    ) -> Result<(), LiveKitError> {
        let (participant_sid, track_sids) = (participant_sid.clone(), track_sids.to_vec());
        self.command(Command::Subscribe { participant_sid, track_sids, subscribe }).await
    }

    /// Asks the publisher for a keyframe (PLI); at most one per track per
    /// [`ConnectOptions::min_keyframe_interval`], extra requests are ignored.
    pub async fn request_keyframe(&self, track_sid: &TrackSid) -> Result<(), LiveKitError> {
        self.command(Command::RequestKeyframe(track_sid.clone())).await
    }

    /// Sends Leave, closes the connection and waits (up to 2 s) for the task to end.
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }

    /// Whether the connection task has ended.
    pub fn is_closed(&self) -> bool {
        self.task.is_finished()
    }

    /// Current counters.
    pub fn stats(&self) -> ConnectionStats {
        let c = &self.counters;
        ConnectionStats {
            frames_received: c.frames_received.load(Ordering::Relaxed),
            frames_dropped: c.frames_dropped.load(Ordering::Relaxed),
            plis_sent: c.plis_sent.load(Ordering::Relaxed),
            nacks_sent: c.nacks_sent.load(Ordering::Relaxed),
            resumes: c.resumes.load(Ordering::Relaxed),
        }
    }

    async fn command(&self, cmd: Command) -> Result<(), LiveKitError> {
        self.commands.send(cmd).await.map_err(|_| LiveKitError::Closed)
    }
}

/// Joins the room `token` grants and starts the connection task.
///
/// `url` is the server's `ws(s)://` or `http(s)://` base URL. The first event is always
/// [`RoomEvent::Joined`]; the last is [`RoomEvent::Disconnected`]. Nothing is subscribed
/// until [`RoomConnection::subscribe`] is called.
pub async fn connect(
    url: &str,
    token: &str,
    opts: ConnectOptions,
) -> Result<(RoomConnection, mpsc::Receiver<RoomEvent>), LiveKitError> {
    let peer = peer::Peer::bind(opts.bind_ip, &opts.advertise_ips, url_host(url)).await?;
    let (client, join, signal_events) = signal::connect(url, token).await?;
    let room_name = join.room.as_ref().map(|r| r.name.clone()).unwrap_or_default();
    let local_sid = join.participant.as_ref().map(|p| p.sid.clone()).unwrap_or_default();
    let span = tracing::info_span!("livekit", room = %room_name, participant = %local_sid);
    let (signal_tx, resumes, _pump) = span.in_scope(|| signal::spawn_pump(client));
    let counters = Arc::new(Counters::default());
    let (event_tx, event_rx) = mpsc::channel(opts.event_capacity.max(1));
    let sink = sink::EventSink::new(event_tx, counters.clone());
    let mut session = session::Session::new(local_sid.clone(), peer, signal_tx, sink, counters.clone(), opts);
    let participants = join.other_participants.iter().map(events::participant_snapshot).collect();
    let joined = RoomEvent::Joined {
        room_name: room_name.clone().into(),
        local_sid: local_sid.clone().into(),
        participants,
    };
    let _ = session.emit(joined);
    for p in join.other_participants {
        session.participants.insert(p.sid.clone(), p);
    }
    let (commands, command_rx) = mpsc::channel(COMMAND_CAPACITY);
    let inputs = session::Inputs { signal: signal_events, commands: command_rx, resumes };
    tracing::info!(parent: &span, "joined room");
    let task = tokio::spawn(session.run(inputs).instrument(span));
    Ok((RoomConnection { room_name, local_sid, commands, counters, task }, event_rx))
}

/// The host part of a `ws://host:port/...` URL, for picking the outbound interface.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_host_handles_ports_paths_and_ipv6() {
        assert_eq!(url_host("ws://127.0.0.1:7880"), Some("127.0.0.1"));
        assert_eq!(url_host("wss://lk.example.com/rtc?x=1"), Some("lk.example.com"));
        assert_eq!(url_host("http://[::1]:7880"), Some("::1"));
        assert_eq!(url_host("ws://"), None);
    }

    #[test]
    fn auth_and_setup_errors_are_not_retryable() {
        assert!(!LiveKitError::NoCandidates.is_retryable());
        assert!(LiveKitError::Closed.is_retryable());
        let e = LiveKitError::Signal { reason: "401".into(), retryable: false };
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("401"));
    }
}
