//! `RoomActor`: one per room with recordings. Owns the room's [`RoomConnection`] (hidden,
//! subscribe-only bot), turns its events into messages for the participant recorders, and
//! supervises them (one_for_one, 5 restarts / 60 s; a restart continues in a new part file;
//! over budget, that recording fails and the room carries on). Parent: the supervisor.
//!
//! ParticipantsChanged is the source of truth: when a requested participant is present, the
//! room subscribes to exactly its tracks in the recording's profile (selective: several
//! recorders can share a room); tracks published later are subscribed as they appear; a
//! participant who leaves ends its recording. The room leaves LiveKit when its last recording
//! ends. A lost connection fails the actor after its recorders have finalized their parts; the
//! supervisor then starts a new room actor that reconnects and resumes them in new parts.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

mod children;

use super::media_queue::{MediaQueue, QueuedFrame};
use super::participant::{ParticipantArgs, ParticipantMsg, ParticipantRecorder};
use super::supervisor::SupervisorMsg;
use super::track_writer::TrackWriterMsg;
use super::RoomSettings;
use crate::ids::{Identity, ParticipantSid, RecordingId, RoomName, TrackSid};
use crate::livekit::{self, ParticipantSnapshot, ParticipantState, RoomConnection, RoomEvent};
use crate::recording::{RecorderError, RecordingInfo, RecordingSpec};
use crate::supervision::RestartBudget;

/// Arguments of a room actor.
#[derive(Debug)]
pub struct RoomArgs {
    /// Room name.
    pub room: RoomName,
    /// Daemon settings.
    pub settings: Arc<RoomSettings>,
    /// The supervisor (progress goes there).
    pub supervisor: ActorRef<SupervisorMsg>,
    /// Recordings to resume after a restart, with the part number to continue in.
    pub resume: Vec<(RecordingSpec, u32)>,
    /// Wait this long before connecting (backoff after failures).
    pub delay: Duration,
}

/// How long a recording waits after its participant's session left before it ends: a
/// participant rejoining with the same identity gets a new session, announced around then.
pub const REJOIN_GRACE: Duration = Duration::from_secs(3);

/// Messages of a room actor.
#[derive(Debug)]
pub enum RoomMsg {
    /// Record a participant of this room.
    Record(RecordingSpec),
    /// Continue a recording in this part (cluster failover: another node wrote the parts
    /// before it).
    Resume {
        /// The recording.
        spec: RecordingSpec,
        /// The part to write next.
        part: u32,
    },
    /// Stop a recording; the participant recorder replies once the file is final.
    Stop {
        /// Recording id.
        id: RecordingId,
        /// Where the final recording goes.
        reply: RpcReplyPort<Result<RecordingInfo, RecorderError>>,
    },
    /// Frames of this track go to this writer from now on (sent by the writer as it starts).
    Route {
        /// Track sid.
        track_sid: TrackSid,
        /// The track's writer.
        writer: ActorRef<TrackWriterMsg>,
    },
    /// Ask the publisher of this track for a keyframe.
    RequestKeyframe {
        /// Track sid.
        track_sid: TrackSid,
    },
    /// A session of this identity left (a DISCONNECTED update, or a `participant_left`
    /// webhook): its recording ends after [`REJOIN_GRACE`] unless the identity is in the room
    /// again with another session by then.
    Departed {
        /// Participant identity.
        identity: Identity,
        /// The session that left.
        sid: ParticipantSid,
        /// Whether the grace has passed.
        checked: bool,
    },
    /// Something happened on the connection; the permit is the event's place among the
    /// [`ROOM_QUEUE_EVENTS`] the connection's pump may have queued here.
    Event(RoomEvent, OwnedSemaphorePermit),
    /// Finalize every recording, leave the room, reply, stop.
    Shutdown(RpcReplyPort<()>),
    /// Test hook: make a participant recorder fail.
    #[cfg(feature = "testing")]
    InjectFailure {
        /// Recording id.
        id: RecordingId,
    },
    /// Test hook: make a track writer of a recording fail.
    #[cfg(feature = "testing")]
    InjectTrackFailure {
        /// Recording id.
        id: RecordingId,
        /// Which track.
        kind: crate::media::MediaKind,
    },
    /// Test hook: fail this room actor as if its connection was lost.
    #[cfg(feature = "testing")]
    InjectRoomFailure,
}

struct Rec {
    spec: RecordingSpec,
    part: u32,
    actor: ActorRef<ParticipantMsg>,
    /// What is on its way to the participant recorder (see [`MediaQueue`]).
    queue: Arc<MediaQueue>,
}

/// Events the connection's pump may have queued in the room actor's mailbox: when the room
/// actor falls behind, the pump waits, the connection's bounded channel fills and its media
/// frames are dropped there (counted; control events wait), so the mailbox never grows
/// without bound. 16384: about 4 s of a room of 50 A/V participants (some 4000 frames a
/// second), so the burst while 50 recordings start at once (the room actor busy spawning
/// recorders) is absorbed; 1024 dropped frames at that moment (`tests/crowded_room.rs`).
pub const ROOM_QUEUE_EVENTS: usize = 16384;

/// State of a room actor.
pub struct RoomState {
    args: RoomArgs,
    conn: Option<RoomConnection>,
    pump: Option<JoinHandle<()>>,
    /// Participants by sid.
    participants: HashMap<ParticipantSid, ParticipantSnapshot>,
    /// Recordings by identity.
    recs: HashMap<Identity, Rec>,
    by_actor: HashMap<ActorId, Identity>,
    /// Negotiated tracks: sid -> (participant sid, codec).
    subscribed: HashMap<TrackSid, (ParticipantSid, Option<crate::media::Codec>)>,
    requested: HashSet<TrackSid>,
    /// Track sid -> its writer.
    routes: HashMap<TrackSid, ActorRef<TrackWriterMsg>>,
    /// Frames of subscribed tracks whose writer is not (or no longer) registered, bounded.
    unrouted: HashMap<TrackSid, VecDeque<QueuedFrame>>,
    /// Track sid -> frames dropped since its last forwarded frame (its recording's queue was
    /// full).
    dropped: HashMap<TrackSid, u64>,
    budget: RestartBudget,
}

/// Frames kept per track while its writer (re)starts.
const MAX_UNROUTED: usize = 256;

/// The room actor.
pub struct RoomActor;

/// A room's connection failed.
#[derive(Debug, thiserror::Error)]
pub enum RoomError {
    /// Connecting failed.
    #[error("connect to LiveKit: {0}")]
    Connect(#[from] livekit::LiveKitError),
    /// The token could not be signed.
    #[error("sign the recorder token: {0}")]
    Token(String),
    /// The connection ended.
    #[error("LiveKit connection lost: {0}")]
    Disconnected(String),
}

impl RoomError {
    /// Retrying cannot help: LiveKit refused our credentials (401/403), the URL is wrong, the
    /// token cannot be signed, or no local address can be used. The supervisor fails the
    /// room's recordings at once instead of reconnecting until `RESUME_TIMEOUT`.
    pub fn is_permanent(&self) -> bool {
        match self {
            RoomError::Connect(e) => !e.is_retryable(),
            RoomError::Token(_) => true,
            RoomError::Disconnected(_) => false,
        }
    }
}

impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        args: RoomArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(RoomState {
            args,
            conn: None,
            pump: None,
            participants: HashMap::new(),
            recs: HashMap::new(),
            by_actor: HashMap::new(),
            subscribed: HashMap::new(),
            requested: HashSet::new(),
            routes: HashMap::new(),
            dropped: HashMap::new(),
            unrouted: HashMap::new(),
            budget: RestartBudget::new(5, Duration::from_secs(60)),
        })
    }

    // Joining is fallible and slow: done here so that a failure is supervised.
    async fn post_start(
        &self,
        me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        tokio::time::sleep(st.args.delay).await;
        st.connect(&me).await?;
        let _ = st.args.supervisor.cast(SupervisorMsg::RoomUp(st.args.room.clone()));
        for (spec, part) in std::mem::take(&mut st.args.resume) {
            st.record(&me, spec, part).await?;
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoomMsg::Record(spec) => st.record(&me, spec, 1).await?,
            RoomMsg::Resume { spec, part } => st.record(&me, spec, part).await?,
            RoomMsg::Stop { id, reply } => st.stop_recording(&id, reply),
            RoomMsg::Departed { identity, sid, checked: false } => {
                me.send_after(REJOIN_GRACE, move || RoomMsg::Departed { identity, sid, checked: true });
            }
            RoomMsg::Departed { identity, sid, checked: true } => st.on_departed(&identity, &sid),
            RoomMsg::Route { track_sid, writer } => st.route(track_sid, writer),
            RoomMsg::RequestKeyframe { track_sid } => st.request_keyframe(&track_sid).await,
            RoomMsg::Event(e, _queued) => st.on_event(&me, e).await?,
            RoomMsg::Shutdown(reply) => {
                st.finalize_all().await;
                let _ = reply.send(());
                me.stop(Some("shutdown".into()));
            }
            #[cfg(feature = "testing")]
            RoomMsg::InjectFailure { id } => {
                if let Some(r) = st.recs.values().find(|r| r.spec.id == id) {
                    let _ = r.actor.cast(ParticipantMsg::InjectFailure);
                }
            }
            #[cfg(feature = "testing")]
            RoomMsg::InjectTrackFailure { id, kind } => {
                if let Some(r) = st.recs.values().find(|r| r.spec.id == id) {
                    let _ = r.actor.cast(ParticipantMsg::InjectTrackFailure(kind));
                }
            }
            #[cfg(feature = "testing")]
            RoomMsg::InjectRoomFailure => {
                st.suspend_all().await;
                return Err(RoomError::Disconnected("injected failure".into()).into());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => st.on_child_ended(&me, cell.get_id()).await,
            SupervisionEvent::ActorFailed(cell, err) => {
                st.on_child_failed(&me, cell.get_id(), &err.to_string()).await?
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {}
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        st.finalize_all().await;
        Ok(())
    }
}

impl RoomState {
    async fn connect(&mut self, me: &ActorRef<RoomMsg>) -> Result<(), RoomError> {
        let s = &self.args.settings;
        let identity = crate::recording::new_recording_id().replace("RC_", "");
        let token = livekit::recorder_token(
            &s.livekit.api_key,
            &s.livekit.api_secret,
            &self.args.room,
            &identity,
            s.recording.token_ttl,
        )
        .map_err(|e| RoomError::Token(e.to_string()))?;
        let (conn, mut events) =
            livekit::connect(&s.livekit.url, &token, livekit::ConnectOptions::default()).await?;
        let me = me.clone();
        let queued = Arc::new(Semaphore::new(ROOM_QUEUE_EVENTS));
        self.pump = Some(tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                let Ok(permit) = queued.clone().acquire_owned().await else { break };
                if me.cast(RoomMsg::Event(e, permit)).is_err() {
                    break;
                }
            }
        }));
        self.conn = Some(conn);
        Ok(())
    }

    async fn record(
        &mut self,
        me: &ActorRef<RoomMsg>,
        spec: RecordingSpec,
        part: u32,
    ) -> Result<(), ActorProcessingErr> {
        if self.recs.contains_key(&spec.identity) {
            return Ok(());
        }
        let queue = MediaQueue::new(self.args.settings.recording.media_queue_bytes);
        let args = ParticipantArgs {
            queue: queue.clone(),
            spec: spec.clone(),
            part,
            settings: self.args.settings.clone(),
            room: me.clone(),
            supervisor: self.args.supervisor.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, ParticipantRecorder, args, me.get_cell()).await?;
        self.by_actor.insert(actor.get_id(), spec.identity.clone());
        let identity = spec.identity.clone();
        self.recs.insert(identity.clone(), Rec { spec, part, actor, queue });
        self.sync(&identity).await;
        self.replay_subscriptions(&identity);
        Ok(())
    }

    fn stop_recording(
        &mut self,
        id: &RecordingId,
        reply: RpcReplyPort<Result<RecordingInfo, RecorderError>>,
    ) {
        match self.recs.values().find(|r| r.spec.id == id) {
            Some(r) => {
                if let Err(e) = r.actor.cast(ParticipantMsg::Stop { reply }) {
                    tracing::debug!(recording = %id, "participant recorder gone: {e}");
                }
            }
            None => {
                let _ = reply.send(Err(RecorderError::NotFound(id.to_string())));
            }
        }
    }

    async fn request_keyframe(&self, sid: &TrackSid) {
        if let Some(c) = &self.conn {
            let _ = c.request_keyframe(sid).await;
        }
    }

    async fn on_event(&mut self, me: &ActorRef<RoomMsg>, e: RoomEvent) -> Result<(), RoomError> {
        match e {
            RoomEvent::Frame { track_sid, frame } => self.forward_frame(track_sid, frame),
            RoomEvent::Joined { participants, .. } | RoomEvent::ParticipantsChanged(participants) => {
                for p in participants {
                    self.on_participant(me, p).await;
                }
            }
            RoomEvent::TrackSubscribed { participant_sid, track_sid, codec, .. } => {
                self.subscribed.insert(track_sid.clone(), (participant_sid.clone(), codec));
                if let Some(r) = self.rec_of_sid(&participant_sid) {
                    let _ = r.actor.cast(ParticipantMsg::TrackSubscribed { track_sid, codec });
                }
            }
            RoomEvent::TrackUnsubscribed { track_sid } => {
                self.subscribed.remove(&track_sid);
                self.routes.remove(&track_sid);
                self.unrouted.remove(&track_sid);
                self.dropped.remove(&track_sid);
            }
            RoomEvent::Reconnecting => {
                crate::metrics::Metrics::add(&self.args.settings.metrics.signal_reconnects, 1);
                tracing::info!(room = %self.args.room, "signal reconnecting")
            }
            RoomEvent::Reconnected => tracing::info!(room = %self.args.room, "signal resumed"),
            RoomEvent::Disconnected { reason } => {
                self.suspend_all().await;
                return Err(RoomError::Disconnected(reason));
            }
        }
        Ok(())
    }

    /// Sends a frame to its track's writer, if its recording's queue has room (see
    /// [`MediaQueue`]; otherwise the frame is dropped and counted, and the track's next frame
    /// starts a gap). While the writer (re)starts, frames wait in a bounded queue that the
    /// writer gets when it registers.
    fn forward_frame(&mut self, track_sid: TrackSid, mut frame: livekit::ReceivedFrame) {
        let Some((psid, _)) = self.subscribed.get(&track_sid) else { return };
        let Some(rec) = self.rec_of_sid(psid) else { return };
        let Some(reserved) = rec.queue.try_reserve(frame.payload.len()) else {
            rec.queue.note_dropped();
            crate::metrics::Metrics::add(&self.args.settings.metrics.frames_dropped, 1);
            let n = self.dropped.entry(track_sid).or_default();
            if *n == 0 {
                tracing::warn!(room = %self.args.room, "recording fell behind (queue full): dropping frames");
            }
            *n += 1;
            return;
        };
        let dropped_before = self.dropped.remove(&track_sid).unwrap_or(0);
        if dropped_before > 0 {
            // the frames before this one are missing: the file waits for a keyframe
            frame.contiguous = false;
            tracing::info!(room = %self.args.room, track = %track_sid, dropped_before, "frames go through again");
        }
        let frame = QueuedFrame { frame, dropped_before, reserved: Some(reserved) };
        let frame = match self.routes.get(&track_sid) {
            Some(w) => match w.cast(TrackWriterMsg::Frame(frame)) {
                Ok(()) => return,
                Err(e) => {
                    self.routes.remove(&track_sid);
                    match e {
                        ractor::MessagingErr::SendErr(TrackWriterMsg::Frame(f)) => f,
                        _ => return,
                    }
                }
            },
            None => frame,
        };
        let q = self.unrouted.entry(track_sid).or_default();
        if q.len() == MAX_UNROUTED {
            q.pop_front();
            crate::metrics::Metrics::add(&self.args.settings.metrics.frames_dropped, 1);
        }
        q.push_back(frame);
    }

    fn route(&mut self, track_sid: TrackSid, writer: ActorRef<TrackWriterMsg>) {
        for f in self.unrouted.remove(&track_sid).unwrap_or_default() {
            let _ = writer.cast(TrackWriterMsg::Frame(f));
        }
        self.routes.insert(track_sid, writer);
    }

    fn rec_of_sid(&self, participant_sid: &ParticipantSid) -> Option<&Rec> {
        self.participants.get(participant_sid).and_then(|p| self.recs.get(&p.identity))
    }

    /// The grace after a session left has passed: the recording ends unless the identity
    /// rejoined with a new session (a page reload, a network switch: the server replaces the
    /// old session and may announce the new one after the old one's departure).
    fn on_departed(&mut self, identity: &Identity, sid: &ParticipantSid) {
        let rejoined = self.participants.values().find(|p| p.identity == identity && p.sid != sid);
        if let Some(p) = rejoined {
            tracing::info!(room = %self.args.room, participant = %identity, old = %sid, new = %p.sid, "rejoined: recording goes on");
            return;
        }
        self.participants.remove(sid);
        if let Some(r) = self.recs.get(identity) {
            let _ = r.actor.cast(ParticipantMsg::Left);
        }
    }

    async fn on_participant(&mut self, me: &ActorRef<RoomMsg>, p: ParticipantSnapshot) {
        let identity = p.identity.clone();
        if p.state == ParticipantState::Disconnected {
            self.participants.remove(&p.sid);
            // a server shutting down disconnects everybody: the connection drops next, and the
            // recording resumes when the server and the participant are back
            if p.server_shutdown {
                tracing::info!(room = %self.args.room, participant = %identity, "server shutting down");
                return;
            }
            let _ = me.cast(RoomMsg::Departed { identity, sid: p.sid, checked: false });
            return;
        }
        // the same identity joining again replaces its old session, and the server announces
        // only the new sid (no DISCONNECTED for the old one): forget the stale entry, keep the
        // recording going with the new session's tracks
        let stale: Vec<ParticipantSid> = self
            .participants
            .values()
            .filter(|o| o.identity == identity && o.sid != p.sid)
            .map(|o| o.sid.clone())
            .collect();
        for sid in stale {
            tracing::info!(room = %self.args.room, participant = %identity, old = %sid, new = %p.sid, "participant rejoined");
            self.participants.remove(&sid);
        }
        self.participants.insert(p.sid.clone(), p);
        self.sync(&identity).await;
    }

    /// Subscribes to the recorded participant's wanted tracks and tells its recorder.
    async fn sync(&mut self, identity: &Identity) {
        let Some(rec) = self.recs.get(identity) else { return };
        let Some(p) = self.participants.values().find(|p| p.identity == identity) else { return };
        // every wanted track goes to the recorder (it names those it cannot record in the
        // recording); only the recordable ones are subscribed
        let wanted: Vec<_> = p.tracks.iter().filter(|t| rec.spec.profile.wants(t.kind)).cloned().collect();
        let new: Vec<TrackSid> = wanted
            .iter()
            .filter(|t| t.unrecordable().is_none())
            .map(|t| t.sid.clone())
            .filter(|sid| !self.requested.contains(sid))
            .collect();
        let _ = rec.actor.cast(ParticipantMsg::Published(wanted));
        if new.is_empty() {
            return;
        }
        if let Some(c) = &self.conn {
            if let Err(e) = c.subscribe(&p.sid, &new, true).await {
                tracing::warn!(room = %self.args.room, "subscribe failed: {e}");
                return;
            }
        }
        self.requested.extend(new);
    }

    /// A restarted recorder learns about tracks that are already negotiated.
    fn replay_subscriptions(&self, identity: &Identity) {
        let Some(rec) = self.recs.get(identity) else { return };
        for (sid, (psid, codec)) in &self.subscribed {
            if self.participants.get(psid).is_some_and(|p| p.identity == identity) {
                let _ =
                    rec.actor.cast(ParticipantMsg::TrackSubscribed { track_sid: sid.clone(), codec: *codec });
            }
        }
    }
}
