//! The supervisor's side of cluster mode (`REDIS_URL`): it talks to its `ClusterActor` child
//! only by messages.
//!
//! - a start claims the participant cluster-wide first ([`ClusterMsg::Claim`]); a claim held
//!   elsewhere answers as a start on one node does for a participant already recorded: 200 with
//!   that recording (read from Redis). Redis unreachable: 503.
//! - after every message, each recording of ours whose JSON changed is written to Redis
//!   ([`ClusterMsg::Publish`], fenced by its claim's token).
//! - a lost lease ([`SupervisorMsg::LeaseLost`]) stops the recording here: its files are closed
//!   and it ends on this node; Redis keeps whatever the node that holds the claim now writes.
//! - a restart claims the recordings it resumes; one another node records now is not resumed.

use ractor::{Actor, ActorId, ActorRef};

use super::{Entry, StopTarget, SupervisorMsg, SupervisorState};
use crate::actors::room::RoomMsg;
use crate::cluster::node::{ClusterActor, ClusterArgs, ClusterMsg, CLAIM_WAIT};
use crate::cluster::store::{Claimed, Store};
use crate::cluster::NodeIdentity;
use crate::ids::RecordingId;
use crate::lifecycle::Lifecycle;
use crate::lifecycle::{End, Report};
use crate::recording::{PartInfo, RecorderError, RecordingInfo, RecordingSpec, Status};
use crate::storage::journal::Event;
use std::collections::BTreeMap;

/// The cluster of a supervisor.
pub(super) struct ClusterLink {
    pub(super) actor: ActorRef<ClusterMsg>,
    pub(super) store: Store,
    pub(super) node: NodeIdentity,
}

/// What a claim decided for a start.
pub(super) enum Admission {
    /// Ours, with this fencing token.
    Ours(u64),
    /// Already recorded (elsewhere, or by a recording of ours we do not know any more).
    Recorded(Box<RecordingInfo>),
}

impl SupervisorState {
    /// Spawns the cluster actor (linked) when cluster mode is on.
    pub(super) async fn spawn_cluster(
        me: &ActorRef<SupervisorMsg>,
        settings: &super::RecorderSettings,
    ) -> Result<Option<ClusterLink>, ractor::SpawnErr> {
        let Some(c) = &settings.cluster else { return Ok(None) };
        let args = ClusterArgs {
            store: c.store.clone(),
            node: c.node.clone(),
            max: settings.room.recording.max_concurrent,
            history: settings.room.recording.history,
            supervisor: me.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, ClusterActor, args, me.get_cell()).await?;
        Ok(Some(ClusterLink { actor, store: c.store.clone(), node: c.node.clone() }))
    }

    /// The cluster actor's id (its supervision events are not a room's).
    pub(super) fn cluster_id(&self) -> Option<ActorId> {
        self.cluster.as_ref().map(|c| c.actor.get_id())
    }

    /// The cluster actor died (a bug: it handles Redis errors itself): a new one takes over
    /// the claims of the live recordings (their renewals resume at its first tick).
    pub(super) async fn on_cluster_died(&mut self, me: &ActorRef<SupervisorMsg>, why: &str) {
        tracing::error!("cluster actor died: {why}; starting a new one");
        match Self::spawn_cluster(me, &self.settings).await {
            Ok(link) => self.cluster = link,
            Err(e) => tracing::error!("cannot restart the cluster actor: {e}; cluster writes stop"),
        }
        // its successor does not know the claims: they are lost with their leases
        let live: Vec<RecordingId> = self
            .recs
            .values()
            .filter(|e| e.fence.is_some() && e.info.status.is_live())
            .map(|e| e.info.id.clone())
            .collect();
        for id in live {
            self.on_lease_lost(me, &id, "the cluster actor restarted");
        }
    }

    /// Claims the participant of `spec` cluster-wide (and writes its pending JSON).
    pub(super) async fn claim(&self, spec: &RecordingSpec) -> Result<Admission, RecorderError> {
        let Some(c) = &self.cluster else { return Ok(Admission::Ours(0)) };
        let info = RecordingInfo::pending(spec);
        let id = spec.id.clone();
        let spec = spec.clone();
        let claimed =
            c.actor.call(|reply| ClusterMsg::Claim { info, spec, reply }, Some(CLAIM_WAIT)).await.map_err(
                |e| {
                    RecorderError::Unavailable(format!("cluster mode: the cluster actor did not answer: {e}"))
                },
            )?;
        let claimed = match claimed {
            ractor::rpc::CallResult::Success(r) => r.map_err(|e| {
                RecorderError::Unavailable(format!("cluster mode: cannot claim the participant: {e}"))
            })?,
            _ => {
                // the claim may still be won after this answer: give it up (queued behind it)
                self.abandon_claim(&id);
                return Err(RecorderError::Unavailable(
                    "cluster mode: no claim from Redis in time (Redis slow or unreachable)".into(),
                ));
            }
        };
        match claimed {
            Claimed::Won(claim) => Ok(Admission::Ours(claim.fence)),
            Claimed::Held(claim) => match c.store.get(&claim.id).await {
                Ok(Some(s)) => Ok(Admission::Recorded(Box::new(s.info))),
                Ok(None) => Err(RecorderError::Unavailable(format!(
                    "cluster mode: the participant is claimed by node {:?} for {}, whose state is not in Redis (yet); retry",
                    claim.node, claim.id
                ))),
                Err(e) => Err(RecorderError::Unavailable(format!("cluster mode: {e}"))),
            },
        }
    }

    /// A drain in cluster mode: leaves the cluster (the heartbeat goes) and says whether other
    /// nodes are alive to take the live recordings over.
    pub(super) async fn leave_cluster(&self) -> bool {
        let Some(c) = &self.cluster else { return false };
        if !self.recs.values().any(|e| e.fence.is_some() && e.info.status.is_live()) {
            return false;
        }
        match c.actor.call(ClusterMsg::Leave, Some(CLAIM_WAIT)).await {
            Ok(ractor::rpc::CallResult::Success(others)) if others > 0 => {
                tracing::info!(nodes = others, "drain: handing the live recordings over to the other nodes");
                true
            }
            Ok(ractor::rpc::CallResult::Success(_)) => {
                tracing::info!("drain: no other node is alive; the recordings end here");
                false
            }
            _ => {
                tracing::warn!("drain: the cluster actor did not answer; the recordings end here");
                false
            }
        }
    }

    /// A start claimed the participant but did not happen: give the claim up.
    pub(super) fn abandon_claim(&self, id: &RecordingId) {
        if let Some(c) = &self.cluster {
            let _ = c.actor.cast(ClusterMsg::Abandon(id.to_owned()));
        }
    }

    /// Writes every recording of ours whose JSON changed since it was last written. During a
    /// drain that hands over, a recording that ended here (its part closed) is written as live
    /// instead, with that part, and handed over ([`ClusterMsg::HandOff`]); nothing more of it
    /// is written from here.
    pub(super) fn sync_cluster(&mut self) {
        let Some(c) = &self.cluster else { return };
        for e in self.recs.values_mut() {
            let Some(fence) = e.fence else { continue };
            if self.handing_off && !e.info.status.is_live() {
                let mut info = e.info.clone();
                let media = info.bytes > 0 || info.parts.iter().any(|p| p.bytes > 0);
                info.status = if media { Status::Active } else { Status::Pending };
                info.ended_at = None;
                info.error = None;
                info.outputs.clear();
                e.fence = None;
                e.handed_off = true;
                let _ = c.actor.cast(ClusterMsg::HandOff { info, spec: e.spec.clone(), fence });
                continue;
            }
            if e.published.as_ref() == Some(&e.info) {
                continue;
            }
            e.published = Some(e.info.clone());
            let msg = ClusterMsg::Publish { info: e.info.clone(), spec: e.spec.clone(), fence };
            let _ = c.actor.cast(msg);
        }
    }

    /// This node may no longer write `id` (its claim is gone or another node holds it): its
    /// files are closed now.
    pub(super) fn on_lease_lost(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId, why: &str) {
        let Some(e) = self.recs.get(id) else { return };
        if !e.info.status.is_live() {
            return;
        }
        tracing::warn!(recording = %id, "cluster lease lost ({why}): stopping it on this node");
        self.report(me, id, Report::Notice(Some(format!("cluster lease lost: {why}"))));
        let (tx, _rx) = ractor::concurrency::oneshot();
        self.stop(me, StopTarget::Id(id.to_owned()), tx.into());
        // no room actor to stop it: it ends here at once
        if self
            .recs
            .get(id)
            .is_some_and(|e| e.info.status.is_live() && !self.rooms.contains_key(&e.spec.room))
        {
            self.report(me, id, Report::Ended(End::GaveUp(format!("cluster lease lost: {why}"))));
        }
    }

    /// Start-up in cluster mode: claims the recordings about to resume; one whose participant
    /// another node records now ends here instead.
    pub(super) async fn claim_resumed(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        list: Vec<(RecordingSpec, u32)>,
    ) -> Vec<(RecordingSpec, u32)> {
        if self.cluster.is_none() {
            return list;
        }
        let mut keep = Vec::new();
        for (spec, part) in list {
            match self.claim(&spec).await {
                Ok(Admission::Ours(fence)) => {
                    if let Some(e) = self.recs.get_mut(&spec.id) {
                        set_fence(e, fence);
                    }
                    keep.push((spec, part));
                }
                Ok(Admission::Recorded(other)) => {
                    let why = format!("after a restart: {} records this participant now", other.id);
                    self.report(me, &spec.id, Report::Ended(End::GaveUp(why)));
                }
                Err(e) => {
                    // Redis down at start-up: resumed without a claim (not shown in Redis)
                    tracing::warn!(recording = %spec.id, "resuming without a cluster claim: {e}");
                    keep.push((spec, part));
                }
            }
        }
        keep
    }
}

impl SupervisorState {
    /// Failover: the cluster actor took over `info` from a node without heartbeat; it resumes
    /// here in the next part, under the same id, with the dead node's parts listed before it.
    pub(super) async fn adopt(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        info: RecordingInfo,
        spec: RecordingSpec,
        fence: u64,
    ) {
        if let Some(e) = self.recs.get_mut(&spec.id) {
            if e.info.status.is_live() {
                set_fence(e, fence);
                return;
            }
        }
        let parts: BTreeMap<u32, PartInfo> = info.parts.iter().map(|p| (p.part, p.clone())).collect();
        let next = parts.keys().max().map_or(1, |p| p + 1);
        let media = info.bytes > 0 || parts.values().any(|p| p.bytes > 0);
        let life =
            Lifecycle::recovered(info.status, media, info.error.clone(), self.settings.uploader.is_some());
        let mut entry = Entry::new(info, spec.clone(), life);
        entry.parts = parts;
        set_fence(&mut entry, fence);
        tracing::warn!(recording = %spec.id, room = %spec.room, part = next, "cluster: resuming a recording of a dead node");
        self.journal(Event::Started { spec: spec.clone() });
        let id = spec.id.clone();
        let room = spec.room.clone();
        self.recs.insert(id.clone(), entry);
        let sent = match self.rooms.get(&room) {
            Some(r) => r.cast(RoomMsg::Resume { spec, part: next }).is_ok(),
            None => self.room(me, &room, vec![(spec, next)]).await.is_ok(),
        };
        if !sent {
            self.report(
                me,
                &id,
                Report::Ended(End::Failed("cluster failover: cannot start the room actor".into())),
            );
        }
    }
}

/// Marks `e` as ours in the cluster (written to Redis from now on).
pub(super) fn set_fence(e: &mut Entry, fence: u64) {
    e.fence = Some(fence);
    e.published = None;
}
