//! `RecorderSupervisor`: the root. Keeps the table of recordings (what the REST API reads),
//! creates a room actor per room on demand and supervises them one_for_one: a failed room is
//! restarted with its live recordings (they continue in new part files) after a backoff of
//! 0.5 s doubling to 10 s ([`Reconnect`]); after `RESUME_TIMEOUT` of trouble its recordings
//! end. Other rooms are never touched. Spawned from the main runtime, never from an HTTP
//! handler. Everything it accepts or learns is written to the job journal before it acts
//! (`recovery.rs`), and admission (disk full, `MAX_CONCURRENT_RECORDINGS`) is `capacity.rs`.
//!
//! With S3 configured it also owns the uploader pool ([`super::uploader`], linked): a recording
//! that ends `complete` with files becomes `uploading`, its files are queued as one job, and
//! [`SupervisorMsg::UploadFinished`] makes it `complete` (or `failed`). A recording that reaches
//! `complete` or `failed` triggers the result callbacks once (tasks, off this loop).
//!
//! Ended recordings stay in the table, and in the journal's history, for `HISTORY_MAX_AGE` and
//! up to `HISTORY_MAX_RECORDINGS` (oldest ended dropped first, `history.rs`): a restarted
//! daemon answers for them as before, and never resumes them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

mod capacity;
mod cluster;
mod history;
mod hooks;
mod manifests;
mod recovery;
mod uploads;

use super::room::{RoomActor, RoomArgs, RoomMsg};
use super::uploader::{self, UploaderPool};
use super::{Progress, RecorderSettings};
use crate::ids::{Identity, RecordingId, RoomName};
use crate::lifecycle::{End, Lifecycle, Report};
use crate::metrics::Metrics;
use crate::recording::{
    self, Layout, PartInfo, Profile, RecorderError, RecordingInfo, RecordingSpec, Status,
};
use crate::storage::journal::{Event, JobLog};
use crate::storage::s3::UploadReport;
use crate::supervision::Reconnect;
use crate::webhook::{Hook, SeenIds};

/// Webhook event ids remembered for de-duplication.
const SEEN_HOOKS: usize = 4096;
/// How long a shutdown waits for the uploads of the recordings it finalized (and of those
/// already uploading) before it abandons them (their files stay local).
pub const SHUTDOWN_UPLOAD_WAIT: Duration = Duration::from_secs(25);

/// A start request, validated by the HTTP layer.
#[derive(Debug, Clone)]
pub struct StartRequest {
    /// Room name.
    pub room: RoomName,
    /// Participant identity.
    pub identity: Identity,
    /// Tracks to record.
    pub profile: Profile,
    /// One file per participant or per track.
    pub layout: Layout,
    /// File name template.
    pub template: String,
    /// Container for H.264 video.
    pub h264_container: crate::recording::H264Container,
}

/// Which recordings `GET /recordings` wants (validated by the HTTP layer).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this room.
    pub room: Option<RoomName>,
    /// Only this participant identity.
    pub participant: Option<Identity>,
    /// Only this status.
    pub status: Option<Status>,
    /// At most this many.
    pub limit: usize,
    /// Only those after this one in the order (the previous page's last).
    pub after: Option<ListFrom>,
}

/// Where a page starts: after a recording, by id or by its place in the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFrom {
    /// After this recording (it must still be in the table).
    Id(RecordingId),
    /// After this place in the order (a cursor; stays valid when that recording expires).
    Key(ListKey),
}

/// A recording's place in the list order: newest started first, ties by id (descending).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListKey {
    /// Start request, ms since the UNIX epoch.
    pub started_ms: u64,
    /// Recording id.
    pub id: RecordingId,
}

/// One page of `GET /recordings`.
#[derive(Debug, Clone)]
pub struct RecordingPage {
    /// The recordings, newest started first.
    pub recordings: Vec<RecordingInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<ListKey>,
}

/// One page of `items` for `q`: filtered, in the list order (newest started first, ties by id
/// descending), at most `q.limit`, with the next page's start. The one definition of the list's
/// semantics, for the supervisor's table and for the cluster's recordings in Redis alike.
pub fn page<'a, I>(items: I, q: ListQuery) -> Result<RecordingPage, RecorderError>
where
    I: Iterator<Item = (ListKey, &'a RecordingInfo)> + Clone,
{
    let after = match q.after {
        None => None,
        Some(ListFrom::Key(k)) => Some(k),
        Some(ListFrom::Id(id)) => match items.clone().find(|(k, _)| k.id == id) {
            Some((k, _)) => Some(k),
            None => {
                return Err(RecorderError::BadRequest(format!(
                    "`after`: no recording {id:?} (expired or unknown; use `cursor`)"
                )))
            }
        },
    };
    let mut found: Vec<(ListKey, &RecordingInfo)> = items
        .filter(|(_, i)| {
            q.room.as_deref().is_none_or(|r| i.room == r)
                && q.participant.as_deref().is_none_or(|p| i.participant == p)
                && q.status.is_none_or(|s| i.status == s)
        })
        .filter(|(k, _)| after.as_ref().is_none_or(|a| k < a))
        .collect();
    found.sort_unstable_by(|a, b| b.0.cmp(&a.0));
    found.truncate(q.limit.saturating_add(1));
    // one more than asked for: there is a next page, which starts after the last shown
    let next = match q.limit {
        0 => None,
        n if found.len() > n => Some(found[n - 1].0.clone()),
        _ => None,
    };
    found.truncate(q.limit);
    Ok(RecordingPage { recordings: found.into_iter().map(|(_, i)| i.clone()).collect(), next })
}

/// Which recording to stop.
#[derive(Debug, Clone)]
pub enum StopTarget {
    /// By id.
    Id(RecordingId),
    /// The live recording of this participant.
    Participant {
        /// Room name.
        room: RoomName,
        /// Participant identity.
        identity: Identity,
    },
}

/// What `/health-check` reports besides liveness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The recordings disk is full or not writable.
    pub storage: Option<String>,
    /// The last LiveKit connection failed (and none succeeded since): why.
    pub livekit: Option<String>,
}

/// Why a room actor failed, as the supervisor needs it: the reason, and whether retrying can
/// help (typed at the source, [`RoomError::is_permanent`](super::room::RoomError::is_permanent)).
#[derive(Debug, Clone)]
pub struct RoomFailure {
    /// What happened.
    pub reason: String,
    /// Retrying cannot help (credentials refused, bad URL).
    pub permanent: bool,
}

impl std::fmt::Display for RoomFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl RoomFailure {
    fn of(err: &ActorProcessingErr) -> RoomFailure {
        let permanent = err.downcast_ref::<super::room::RoomError>().is_some_and(|e| e.is_permanent());
        RoomFailure { reason: err.to_string(), permanent }
    }
}

/// Messages of the supervisor.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A room actor is gone: its recordings still live once the reports queued before this
    /// message are applied end (see `end_orphans`).
    EndOrphans(RoomName),
    /// A room actor failed during a stop: the room's recordings still `finalizing` end.
    EndStopping(RoomName),
    /// Start (or find the live) recording; replies `(recording, created)`.
    Start(StartRequest, RpcReplyPort<Result<(RecordingInfo, bool), RecorderError>>),
    /// Stop a recording; replies once it is final.
    Stop(StopTarget, RpcReplyPort<Result<RecordingInfo, RecorderError>>),
    /// One recording.
    GetRecording(RecordingId, RpcReplyPort<Result<RecordingInfo, RecorderError>>),
    /// A page of recordings, newest started first (`GET /recordings`).
    ListRecordings(ListQuery, RpcReplyPort<Result<RecordingPage, RecorderError>>),
    /// Drop the ended recordings past `HISTORY_MAX_AGE` (a timer).
    ExpireHistory,
    /// `/metrics` text.
    GetMetrics(RpcReplyPort<String>),
    /// A room actor is connected.
    RoomUp(RoomName),
    /// A recording failed writing in this directory (disk full or not writable).
    StorageFailed(std::path::PathBuf),
    /// Health: what is wrong, if anything.
    GetHealth(RpcReplyPort<Health>),
    /// A recording progressed (from its participant recorder).
    Progress(Progress),
    /// Reply with the recording's current state (sent after its final progress).
    ReplyWith {
        /// Recording id.
        id: RecordingId,
        /// The caller.
        reply: RpcReplyPort<Result<RecordingInfo, RecorderError>>,
    },
    /// A verified LiveKit webhook; replies with what was done.
    Webhook(Hook, RpcReplyPort<String>),
    /// A result callback ended (from its delivery task).
    CallbackDone {
        /// Recording id.
        id: RecordingId,
        /// The URL.
        url: String,
        /// Accepted (2xx), or given up.
        delivered: bool,
    },
    /// A recording's upload ended (from an uploader worker).
    UploadFinished {
        /// Recording id.
        id: RecordingId,
        /// What was uploaded and what failed.
        report: UploadReport,
    },
    /// Stop intake, finalize everything and wait (at most [`SHUTDOWN_UPLOAD_WAIT`]) for the
    /// uploads; replies when done.
    Shutdown(RpcReplyPort<()>),
    /// The shutdown stops waiting for uploads.
    ShutdownDeadline,
    /// The shutdown's rooms have all finalized (queued behind their recorders' last reports).
    RoomsDrained,
    /// `START_TIMEOUT` has passed since this recording was requested.
    StartDeadline(RecordingId),
    /// Cluster mode: this node may no longer write this recording (its claim was lost).
    LeaseLost {
        /// Recording id.
        id: RecordingId,
        /// Why.
        why: String,
    },
    /// Cluster mode: write this recording to Redis again (Redis had lost it).
    Republish(RecordingId),
    /// Cluster mode: resume this recording of a dead node here (failover).
    Adopt {
        /// The recording as the dead node last wrote it.
        info: Box<RecordingInfo>,
        /// What it records.
        spec: RecordingSpec,
        /// This node's new claim's fencing token.
        fence: u64,
    },
    /// Test hook: make a recording's participant recorder fail.
    #[cfg(feature = "testing")]
    InjectFailure(RecordingId),
    /// Test hook: make the track writer of a recording's first track of this kind fail.
    #[cfg(feature = "testing")]
    InjectTrackFailure(RecordingId, crate::media::MediaKind),
    /// Test hook: make a room actor fail.
    #[cfg(feature = "testing")]
    InjectRoomFailure(RoomName),
}

struct Entry {
    info: RecordingInfo,
    spec: RecordingSpec,
    /// Its status, the only place that decides it (`info.status`/`info.error` mirror it).
    life: Lifecycle,
    /// The parts by number.
    parts: BTreeMap<u32, PartInfo>,
    /// Local files removed after their verified upload.
    removed: Vec<PathBuf>,
    /// The result callbacks were started.
    notified: bool,
    /// Callback deliveries not ended yet.
    callbacks_pending: usize,
    /// Cluster mode: the fencing token of our claim (`None`: not ours, or single node).
    fence: Option<u64>,
    /// Cluster mode: the JSON last written to Redis.
    published: Option<RecordingInfo>,
    /// Cluster mode: a drain handed it over to another node (which resumes it in a new part):
    /// it ended here, but no result callback goes out from this node.
    handed_off: bool,
}

impl Entry {
    fn new(info: RecordingInfo, spec: RecordingSpec, life: Lifecycle) -> Entry {
        Entry {
            info,
            spec,
            life,
            parts: BTreeMap::new(),
            removed: Vec::new(),
            notified: false,
            callbacks_pending: 0,
            fence: None,
            published: None,
            handed_off: false,
        }
    }

    /// The part files this node wrote and still has (cluster mode: a part another node wrote
    /// is on that node's disk, `node` being the writer).
    fn own_files(&self, node: Option<&str>) -> Vec<PathBuf> {
        self.files_where(|p| p.node.is_none() || p.node.as_deref() == node)
    }

    /// The part files still on disk.
    fn local_files(&self) -> Vec<PathBuf> {
        self.files_where(|_| true)
    }

    /// The files of the parts `keep` picks, but those removed after their upload.
    fn files_where(&self, keep: impl Fn(&PartInfo) -> bool) -> Vec<PathBuf> {
        self.parts
            .values()
            .filter(|p| keep(p))
            .flat_map(|v| v.files.iter().cloned())
            .filter(|f| !self.removed.contains(f))
            .collect()
    }
}

/// State of the supervisor.
pub struct SupervisorState {
    settings: Arc<RecorderSettings>,
    rooms: HashMap<RoomName, ActorRef<RoomMsg>>,
    room_ids: HashMap<ActorId, RoomName>,
    /// Per room: its connection trouble (reconnect backoff, give-up).
    outages: HashMap<RoomName, Reconnect>,
    recs: BTreeMap<RecordingId, Entry>,
    accepting: bool,
    seen_hooks: SeenIds,
    /// Ended recordings with when they ended (ms since the UNIX epoch), oldest first: the
    /// table keeps those that `settings.room.recording.history` retains (`history.rs`).
    ended: std::collections::VecDeque<(RecordingId, u64)>,
    /// The durable job log (`None` only in unit tests of the policy).
    log: Option<JobLog>,
    /// The last probe of the recordings disk.
    probe: capacity::StorageProbe,
    /// The uploader pool (S3 configured).
    uploads: Option<UploaderPool>,
    /// A shutdown waiting for the last uploads.
    draining: Option<RpcReplyPort<()>>,
    /// The shutdown's rooms have finalized their recordings.
    rooms_drained: bool,
    /// Cluster mode: this drain hands the live recordings over to the other nodes.
    handing_off: bool,
    /// Rooms whose actor is connected to LiveKit.
    up: std::collections::HashSet<RoomName>,
    /// The last LiveKit connection failure, until a room connects again.
    livekit_problem: Option<String>,
    /// Cluster mode (`REDIS_URL`): the cluster actor.
    cluster: Option<cluster::ClusterLink>,
}

/// The root actor.
pub struct RecorderSupervisor;

impl Actor for RecorderSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<RecorderSettings>;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        settings: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        // an unusable recordings directory stops the daemon here, with the path and the reason
        let log = Some(JobLog::open(&settings.room.recording.recordings_dir)?);
        let uploads = match &settings.uploader {
            Some(up) => Some(uploader::spawn_pool(up.clone(), up.settings().workers, me.get_cell()).await?),
            None => None,
        };
        let cluster = SupervisorState::spawn_cluster(&me, &settings).await?;
        Ok(SupervisorState {
            cluster,
            probe: capacity::StorageProbe::default(),
            log,
            settings,
            rooms: HashMap::new(),
            room_ids: HashMap::new(),
            outages: HashMap::new(),
            recs: BTreeMap::new(),
            accepting: true,
            seen_hooks: SeenIds::new(SEEN_HOOKS),
            ended: std::collections::VecDeque::new(),
            uploads,
            draining: None,
            rooms_drained: false,
            handing_off: false,
            up: std::collections::HashSet::new(),
            livekit_problem: None,
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        st.recover(&me).await;
        // ages are checked when a recording ends, and on this timer when none does
        me.send_interval(st.settings.room.recording.history.check_every(), || SupervisorMsg::ExpireHistory);
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Start(req, reply) => {
                let _ = reply.send(st.start(&me, req).await);
            }
            SupervisorMsg::Stop(target, reply) => st.stop(&me, target, reply),
            SupervisorMsg::GetRecording(id, reply) => {
                let _ = reply.send(st.get(&id));
            }
            SupervisorMsg::ListRecordings(query, reply) => {
                let _ = reply.send(st.list(query));
            }
            SupervisorMsg::ExpireHistory => st.expire_history(recording::unix_ms_now()),
            SupervisorMsg::StorageFailed(dir) => st.probe.failed(dir),
            SupervisorMsg::RoomUp(room) => st.on_room_up(&me, room),
            SupervisorMsg::GetHealth(reply) => {
                let health = Health { storage: st.storage_problem(), livekit: st.livekit_problem.clone() };
                let _ = reply.send(health);
            }
            SupervisorMsg::StartDeadline(id) => st.on_start_deadline(&me, &id),
            SupervisorMsg::EndStopping(room) => {
                let ids: Vec<RecordingId> = st
                    .recs
                    .values()
                    .filter(|e| e.spec.room == room && e.info.status == Status::Finalizing)
                    .map(|e| e.info.id.clone())
                    .collect();
                for id in ids {
                    st.report(&me, &id, Report::Ended(End::Finished));
                }
            }
            SupervisorMsg::EndOrphans(room) => {
                if !st.rooms.contains_key(&room) {
                    st.end_orphans(&me, &room, "the LiveKit room closed");
                }
            }
            SupervisorMsg::RoomsDrained => {
                st.rooms_drained = true;
                st.on_rooms_drained(&me);
            }
            SupervisorMsg::GetMetrics(reply) => {
                let active = st.recs.values().filter(|e| e.info.status.is_live()).count();
                let _ = reply.send(st.settings.room.metrics.render(active));
            }
            SupervisorMsg::Progress(p) => {
                st.on_progress(&me, p);
                st.finish_shutdown(false);
            }
            SupervisorMsg::CallbackDone { id, url, delivered } => st.on_callback_done(&id, url, delivered),
            SupervisorMsg::UploadFinished { id, report } => {
                st.on_upload_finished(&me, &id, report);
                st.finish_shutdown(false);
            }
            SupervisorMsg::ReplyWith { id, reply } => {
                let _ = reply.send(st.get(&id));
            }
            SupervisorMsg::Webhook(hook, reply) => {
                let _ = reply.send(st.on_hook(&me, hook).await);
            }
            SupervisorMsg::Shutdown(reply) => st.shutdown(&me, reply).await,
            SupervisorMsg::ShutdownDeadline => st.finish_shutdown(true),
            SupervisorMsg::LeaseLost { id, why } => st.on_lease_lost(&me, &id, &why),
            SupervisorMsg::Adopt { info, spec, fence } => st.adopt(&me, *info, spec, fence).await,
            SupervisorMsg::Republish(id) => {
                if let Some(e) = st.recs.get_mut(&id) {
                    e.published = None;
                }
            }
            #[cfg(feature = "testing")]
            SupervisorMsg::InjectFailure(id) => {
                if let Some(room) = st.recs.get(&id).and_then(|e| st.rooms.get(&e.spec.room)) {
                    let _ = room.cast(RoomMsg::InjectFailure { id });
                }
            }
            #[cfg(feature = "testing")]
            SupervisorMsg::InjectTrackFailure(id, kind) => {
                if let Some(room) = st.recs.get(&id).and_then(|e| st.rooms.get(&e.spec.room)) {
                    let _ = room.cast(RoomMsg::InjectTrackFailure { id, kind });
                }
            }
            #[cfg(feature = "testing")]
            SupervisorMsg::InjectRoomFailure(room) => {
                if let Some(r) = st.rooms.get(&room) {
                    let _ = r.cast(RoomMsg::InjectRoomFailure);
                }
            }
        }
        st.sync_cluster();
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let pool_id = st.uploads.as_ref().map(|p| p.get_id());
        let cluster_id = st.cluster_id();
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, reason) if Some(cell.get_id()) == cluster_id => {
                if st.accepting {
                    st.on_cluster_died(&me, &format!("stopped: {reason:?}")).await
                }
            }
            SupervisionEvent::ActorFailed(cell, err) if Some(cell.get_id()) == cluster_id => {
                st.on_cluster_died(&me, &err.to_string()).await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) if Some(cell.get_id()) == pool_id => {
                st.on_pool_died(&me, &format!("stopped: {reason:?}")).await
            }
            SupervisionEvent::ActorFailed(cell, err) if Some(cell.get_id()) == pool_id => {
                st.on_pool_died(&me, &err.to_string()).await
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                if let Some(room) = st.room_ids.remove(&cell.get_id()) {
                    st.up.remove(&room);
                    st.rooms.remove(&room);
                    // a room actor that ended on its own (the room was closed) takes its
                    // recordings with it: none may stay live without a recorder. Checked
                    // behind the reports its recorders sent before it ended (supervision
                    // events overtake messages); a drain ends them itself.
                    if st.accepting {
                        let _ = me.cast(SupervisorMsg::EndOrphans(room));
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(room) = st.room_ids.get(&cell.get_id()) {
                    st.up.remove(room);
                }
                st.on_room_failed(&me, cell.get_id(), &RoomFailure::of(&err)).await
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => {}
        }
        Ok(())
    }
}

impl SupervisorState {
    async fn start(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        req: StartRequest,
    ) -> Result<(RecordingInfo, bool), RecorderError> {
        if !self.accepting {
            return Err(RecorderError::Unavailable("shutting down: no new recordings are accepted".into()));
        }
        if let Some(e) = self.live(&req.room, &req.identity) {
            return Ok((e.info.clone(), false));
        }
        if self.cluster.is_none() {
            self.admit()?;
        }
        let spec = RecordingSpec {
            id: recording::new_recording_id(),
            room: req.room,
            identity: req.identity,
            profile: req.profile,
            layout: req.layout,
            template: req.template,
            started_unix_ms: recording::unix_ms_now(),
            h264_container: req.h264_container,
        };
        let info = RecordingInfo::pending(&spec);
        // cluster mode: one live recording per participant cluster-wide, then local admission
        let fence = match self.claim(&spec).await? {
            cluster::Admission::Recorded(other) => return Ok((*other, false)),
            cluster::Admission::Ours(fence) => fence,
        };
        if self.cluster.is_some() {
            if let Err(e) = self.admit() {
                self.abandon_claim(&spec.id);
                return Err(e);
            }
        }
        self.journal(Event::Started { spec: spec.clone() });
        let room = match self.room(me, &spec.room, Vec::new()).await {
            Ok(r) => r,
            Err(e) => {
                self.abandon_claim(&spec.id);
                return Err(e);
            }
        };
        if room.cast(RoomMsg::Record(spec.clone())).is_err() {
            self.abandon_claim(&spec.id);
            return Err(RecorderError::Unavailable("room actor is gone".into()));
        }
        tracing::info!(recording = %spec.id, room = %spec.room, "recording requested");
        let life = Lifecycle::new(self.settings.uploader.is_some());
        let id = spec.id.clone();
        let mut entry = Entry::new(info.clone(), spec, life);
        if self.cluster.is_some() {
            cluster::set_fence(&mut entry, fence);
            // the claim wrote this pending state already
            entry.published = Some(info.clone());
        }
        self.recs.insert(id.clone(), entry);
        // a start that never gets media is bounded by START_TIMEOUT even while the room cannot
        // connect (the participant recorder, which has its own timer, does not exist then)
        me.send_after(self.settings.room.recording.start_timeout, move || SupervisorMsg::StartDeadline(id));
        Ok((info, true))
    }

    fn live(&self, room: &RoomName, identity: &Identity) -> Option<&Entry> {
        self.recs
            .values()
            .find(|e| e.spec.room == room && e.spec.identity == identity && e.info.status.is_live())
    }

    /// The room's actor, spawned (and linked to us) if there is none.
    async fn room(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        room: &RoomName,
        resume: Vec<(RecordingSpec, u32)>,
    ) -> Result<ActorRef<RoomMsg>, RecorderError> {
        if let Some(r) = self.rooms.get(room) {
            return Ok(r.clone());
        }
        self.room_with_delay(me, room, resume, Duration::ZERO).await
    }

    async fn room_with_delay(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        room: &RoomName,
        resume: Vec<(RecordingSpec, u32)>,
        delay: Duration,
    ) -> Result<ActorRef<RoomMsg>, RecorderError> {
        let args = RoomArgs {
            room: room.to_owned(),
            settings: self.settings.room.clone(),
            supervisor: me.clone(),
            resume,
            delay,
        };
        let (actor, _) = Actor::spawn_linked(None, RoomActor, args, me.get_cell())
            .await
            .map_err(|e| RecorderError::Unavailable(format!("cannot start the room actor: {e}")))?;
        self.room_ids.insert(actor.get_id(), room.to_owned());
        self.rooms.insert(room.to_owned(), actor.clone());
        Ok(actor)
    }

    fn stop(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        target: StopTarget,
        reply: RpcReplyPort<Result<RecordingInfo, RecorderError>>,
    ) {
        let entry = match &target {
            StopTarget::Id(id) => self.recs.get(id),
            StopTarget::Participant { room, identity } => self.live(room, identity),
        };
        let Some(entry) = entry else {
            let what = match target {
                StopTarget::Id(id) => id.to_string(),
                StopTarget::Participant { room, identity } => {
                    format!("no live recording of {identity:?} in {room:?}")
                }
            };
            let _ = reply.send(Err(RecorderError::NotFound(what)));
            return;
        };
        if !entry.info.status.is_live() {
            let _ = reply.send(Ok(entry.info.clone()));
            return;
        }
        let id = entry.info.id.clone();
        match self.rooms.get(&entry.spec.room) {
            Some(room) => {
                let room = room.clone();
                self.report(me, &id, Report::StopRequested);
                let _ = room.cast(RoomMsg::Stop { id, reply });
            }
            None => {
                let _ = reply.send(Err(RecorderError::Conflict(format!("recording {id} has no room actor"))));
            }
        }
    }

    fn get(&self, id: &RecordingId) -> Result<RecordingInfo, RecorderError> {
        self.recs.get(id).map(|e| e.info.clone()).ok_or_else(|| RecorderError::NotFound(id.to_string()))
    }

    /// A page of the table in the list order (newest started first, ties by id), filtered.
    fn list(&self, q: ListQuery) -> Result<RecordingPage, RecorderError> {
        let items = self
            .recs
            .values()
            .map(|e| (ListKey { started_ms: e.spec.started_unix_ms, id: e.info.id.clone() }, &e.info));
        page(items, q)
    }

    fn on_progress(&mut self, me: &ActorRef<SupervisorMsg>, p: Progress) {
        let now_ms = recording::unix_ms_now();
        let new_part = !p.files.is_empty()
            && self.recs.get(&p.id).is_some_and(|e| e.parts.get(&p.part).map(|v| &v.files) != Some(&p.files));
        if new_part {
            self.journal(Event::Part {
                id: p.id.clone(),
                part: p.part,
                files: p.files.clone(),
                at_ms: now_ms,
            });
        }
        let Some(e) = self.recs.get_mut(&p.id) else { return };
        let id = p.id.clone();
        if new_part {
            let part = PartInfo {
                part: p.part,
                files: p.files.clone(),
                started_at: Some(recording::rfc3339(now_ms)),
                ended_at: None,
                duration_s: 0.0,
                bytes: 0,
                node: self.cluster.as_ref().map(|c| c.node.id.clone()),
            };
            e.parts.insert(p.part, part);
        }
        // the part's final report: its files again, without a status change
        let part_closed = !new_part && !p.files.is_empty() && p.status.is_none();
        let mut closed = None;
        if let Some(part) = e.parts.get_mut(&p.part) {
            // a status report sent after the part closed carries no stats: they only grow
            part.bytes = part.bytes.max(p.bytes);
            part.duration_s = part.duration_s.max(p.duration_s);
            if part_closed {
                part.ended_at = Some(recording::rfc3339(now_ms));
                closed = Some(Event::PartEnded {
                    id: id.clone(),
                    part: p.part,
                    duration_s: part.duration_s,
                    bytes: part.bytes,
                    frames: p.frames,
                    at_ms: now_ms,
                });
            }
        }
        // every track recorded over all parts (a republished track is a new track)
        for t in p.tracks {
            if !e.info.tracks.iter().any(|x| x.sid == t.sid) {
                e.info.tracks.push(t);
            }
        }
        for t in p.skipped_tracks {
            if !e.info.skipped_tracks.iter().any(|s| s.sid == t.sid) {
                e.info.skipped_tracks.push(t);
            }
        }
        e.info.files = e.local_files();
        e.info.bytes = e.parts.values().map(|v| v.bytes).sum();
        e.info.duration_s = e.parts.values().fold(0.0, |a, v| a + v.duration_s);
        e.info.parts = e.parts.values().cloned().collect();
        e.info.frames_lost += p.frames_lost;
        e.info.frames_dropped += p.frames_dropped;
        let closed_part = closed.as_ref().map(|_| p.part);
        if let Some(ev) = closed {
            self.journal(ev);
        }
        if let Some(part) = closed_part {
            self.write_manifests(&id, Some(part));
        }
        self.report(me, &id, Report::Wrote { frames: p.frames });
        let report = match p.status {
            Some(Status::Active) => Report::PartOpened,
            Some(Status::Complete) => Report::Ended(match p.error {
                None => End::Finished,
                Some(why) => End::GaveUp(why),
            }),
            Some(Status::Failed) => {
                Report::Ended(End::Failed(p.error.unwrap_or_else(|| "recorder failed".into())))
            }
            Some(Status::Pending | Status::Finalizing | Status::Uploading) => return,
            // a periodic report: its notice (no media arriving), or none
            None if p.files.is_empty() => Report::Notice(p.error),
            None => return,
        };
        self.report(me, &id, report);
    }

    /// The one place a recording's status changes: applies `r` to its lifecycle, journals the
    /// transition before acting on it, and starts what the new status needs (upload, result
    /// callbacks).
    pub(super) fn report(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId, r: Report) {
        let Some(e) = self.recs.get_mut(id) else { return };
        let t = e.life.apply(id, r);
        e.info.error = e.life.error().map(str::to_owned);
        let Some(t) = t else { return };
        e.info.status = t.to;
        if t.from.is_live() && !t.to.is_live() {
            e.info.ended_at = Some(recording::rfc3339(recording::unix_ms_now()));
        }
        self.journal(t.record);
        if !t.to.is_live() {
            // before the upload is queued: the manifests go up with the files
            self.write_manifests(id, None);
        }
        match t.to {
            Status::Uploading => self.queue_upload(me, id),
            s if s.is_terminal() => self.notify_if_ended(me, id),
            _ => {}
        }
    }

    /// Ends the live recordings of a room whose actor is gone: those being stopped end as
    /// stopped (complete with their media), the others as given up with `why`.
    fn end_orphans(&mut self, me: &ActorRef<SupervisorMsg>, room: &RoomName, why: &str) {
        for id in self.live_in(room) {
            let stopping = self.recs.get(&id).is_some_and(|e| e.info.status == Status::Finalizing);
            let end = if stopping { End::Finished } else { End::GaveUp(why.to_owned()) };
            self.report(me, &id, Report::Ended(end));
        }
    }

    async fn on_room_failed(&mut self, me: &ActorRef<SupervisorMsg>, id: ActorId, err: &RoomFailure) {
        let Some(room) = self.room_ids.remove(&id) else { return };
        self.rooms.remove(&room);
        // a stop under way is not resumed in a new part: it ends with what was written, once
        // the reports queued before this are applied
        let stopping = self.recs.values().any(|e| e.spec.room == room && e.info.status == Status::Finalizing);
        if stopping {
            let _ = me.cast(SupervisorMsg::EndStopping(room.clone()));
        }
        self.livekit_problem = Some(err.to_string());
        let give_up = self.settings.room.recording.resume_timeout;
        let verdict = self.outages.entry(room.clone()).or_default().on_failure(Instant::now(), give_up);
        let live: Vec<(RecordingSpec, u32)> = self
            .recs
            .values()
            .filter(|e| e.spec.room == room && e.info.status.is_live() && e.info.status != Status::Finalizing)
            .map(|e| (e.spec.clone(), e.parts.keys().max().map_or(1, |p| p + 1)))
            .collect();
        if live.is_empty() {
            return;
        }
        if err.permanent {
            // retrying cannot help (credentials refused, bad URL): say so at once
            tracing::error!(%room, error = %err.reason, "LiveKit refused the recorder; the room's recordings end");
            self.outages.remove(&room);
            self.end_room(me, &room, &format!("LiveKit refused the connection: {}", err.reason));
            return;
        }
        match verdict {
            Some(delay) => {
                tracing::warn!(%room, error = %err.reason, ?delay, "room actor failed; reconnecting");
                Metrics::add(&self.settings.room.metrics.restarts_room, 1);
                let notice = format!("LiveKit unreachable, retrying: {}", err.reason);
                let ids: Vec<RecordingId> = live.iter().map(|(s, _)| s.id.clone()).collect();
                for id in ids {
                    self.report(me, &id, Report::Notice(Some(notice.clone())));
                }
                if let Err(e) = self.room_with_delay(me, &room, live, delay).await {
                    self.fail_room(me, &room, &e.to_string());
                }
            }
            None => {
                tracing::error!(%room, error = %err.reason, ?give_up, "room unreachable for RESUME_TIMEOUT; its recordings end");
                self.outages.remove(&room);
                self.end_room(
                    me,
                    &room,
                    &format!("LiveKit room unreachable for {give_up:?}: {}", err.reason),
                );
            }
        }
    }

    /// Gives up on a room: recordings with media end `complete` with it, the others `failed`
    /// with `err`.
    fn end_room(&mut self, me: &ActorRef<SupervisorMsg>, room: &RoomName, err: &str) {
        for id in self.live_in(room) {
            self.report(me, &id, Report::Ended(End::GaveUp(err.to_owned())));
        }
    }

    fn fail_room(&mut self, me: &ActorRef<SupervisorMsg>, room: &RoomName, err: &str) {
        for id in self.live_in(room) {
            self.report(me, &id, Report::Ended(End::Failed(err.to_owned())));
        }
    }

    fn live_in(&self, room: &RoomName) -> Vec<RecordingId> {
        self.recs
            .values()
            .filter(|e| e.spec.room == room && e.info.status.is_live())
            .map(|e| e.info.id.clone())
            .collect()
    }

    fn on_room_up(&mut self, me: &ActorRef<SupervisorMsg>, room: RoomName) {
        self.outages.entry(room.clone()).or_default().on_up(Instant::now());
        self.livekit_problem = None;
        for id in self.live_in(&room) {
            self.report(me, &id, Report::Notice(None));
        }
        self.up.insert(room);
    }

    /// `START_TIMEOUT` after a start: a recording still without media whose room is not
    /// connected (so no participant recorder watches the time) fails with the last error.
    fn on_start_deadline(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId) {
        let Some(e) = self.recs.get(id) else { return };
        if e.info.status != Status::Pending || self.up.contains(&e.spec.room) {
            return;
        }
        let secs = self.settings.room.recording.start_timeout.as_secs_f64();
        let why = match e.life.error() {
            Some(last) => format!("not started within START_TIMEOUT ({secs} s): {last}"),
            None => format!("not started within START_TIMEOUT ({secs} s)"),
        };
        tracing::warn!(recording = %id, "{why}");
        self.report(me, id, Report::Ended(End::Failed(why)));
    }

    async fn shutdown(&mut self, me: &ActorRef<SupervisorMsg>, reply: RpcReplyPort<()>) {
        self.accepting = false;
        self.handing_off = self.leave_cluster().await;
        for (_, room) in self.rooms.drain() {
            let _ = room.call(RoomMsg::Shutdown, Some(Duration::from_secs(10))).await;
        }
        // the finalized recordings' last reports are queued behind this message: they start
        // their uploads, and the reply goes out once nothing is live or uploading any more
        self.draining = Some(reply);
        let _ = me.cast(SupervisorMsg::RoomsDrained);
        if self.uploads.is_some() {
            me.send_after(SHUTDOWN_UPLOAD_WAIT, || SupervisorMsg::ShutdownDeadline);
        }
    }

    /// Every room has finalized its recorders, and their final reports (queued before this
    /// message) are applied: a recording still live had no recorder that could end it (its room
    /// was reconnecting, or a recorder did not answer in time). It ends now, in the journal too,
    /// so the next start does not resume it without a request.
    fn on_rooms_drained(&mut self, me: &ActorRef<SupervisorMsg>) {
        let live: Vec<RecordingId> =
            self.recs.values().filter(|e| e.info.status.is_live()).map(|e| e.info.id.clone()).collect();
        for id in live {
            tracing::info!(recording = %id, "shutdown: ended without its recorder");
            self.report(me, &id, Report::Ended(End::GaveUp("the recorder shut down".into())));
        }
        self.finish_shutdown(false);
    }
}
