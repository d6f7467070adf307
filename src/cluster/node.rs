//! `ClusterActor`: this node's agent in the cluster, a child of the supervisor (temporary: it
//! handles every Redis error itself and never fails). It owns the node's claims:
//!
//! - `Claim`: takes a participant's claim (and writes the pending recording) for a start.
//! - `Publish`: writes a recording's JSON whenever it changes, fenced by its claim's token; a
//!   write Redis refuses (a newer owner) is dropped, one that fails (Redis down) is retried on
//!   every tick until Redis is back. An ended recording gives its claim up.
//! - every third of the lease (`Tick`): the heartbeat ([`NodeInfo`]) and the renewal of every
//!   claim. A claim another node holds now, or one not renewed for a whole lease (Redis
//!   unreachable: another node may take it once it expires), is lost: the supervisor is told
//!   ([`SupervisorMsg::LeaseLost`]) and stops writing that recording. The lease is counted from
//!   the start of the last successful renewal, so this node stops before the key can expire.
//! - failover, on the same tick: the live recordings of nodes without heartbeat whose claims
//!   have expired are taken over (a new claim, a newer fencing token), up to this node's share
//!   and capacity, and handed to the supervisor ([`SupervisorMsg::Adopt`]), which resumes them
//!   in new parts under the same recording id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::store::{Claim, Claimed, NodeInfo, Renewed, Store, StoreError, Stored};
use super::NodeIdentity;
use crate::actors::supervisor::SupervisorMsg;
use crate::ids::{Identity, RecordingId, RoomName};
use crate::recording::{self, RecordingInfo, RecordingSpec};

/// What the cluster actor needs.
pub struct ClusterArgs {
    /// The cluster's Redis.
    pub store: Store,
    /// This node.
    pub node: NodeIdentity,
    /// `MAX_CONCURRENT_RECORDINGS` (published in the heartbeat).
    pub max: Option<usize>,
    /// `HISTORY_MAX_RECORDINGS`, `HISTORY_MAX_AGE` (ended recordings in Redis).
    pub history: crate::storage::history::Retention,
    /// Told when a claim is lost.
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// Messages of the cluster actor.
#[derive(Debug)]
pub enum ClusterMsg {
    /// Claim the participant of this pending recording and write it; replies the claim won or
    /// the holder's.
    Claim {
        /// The pending recording.
        info: RecordingInfo,
        /// What it records.
        spec: RecordingSpec,
        /// The caller.
        reply: RpcReplyPort<Result<Claimed, StoreError>>,
    },
    /// A recording of ours changed: write it (with its fencing token).
    Publish {
        /// The recording.
        info: RecordingInfo,
        /// What it records.
        spec: RecordingSpec,
        /// Its claim's fencing token.
        fence: u64,
    },
    /// Give the claim of a start that did not happen up, and delete its pending JSON.
    Abandon(RecordingId),
    /// Heartbeat, renewals, retries.
    Tick,
    /// A drain hands this node's recordings over: the heartbeat goes now and is not renewed
    /// (claims still are, until each recording is handed off); replies how many other nodes
    /// are alive to take them (0: none, the drain ends them here as one node does).
    Leave(RpcReplyPort<usize>),
    /// A recording whose part this node closed for a drain: written as live (with its closed
    /// part), its claim released and the other nodes told, so one of them resumes it at once.
    HandOff {
        /// The recording as it goes on: live, its parts up to the one this node closed.
        info: RecordingInfo,
        /// What it records.
        spec: RecordingSpec,
        /// Its claim's fencing token.
        fence: u64,
    },
    /// Every [`HANDOFF_WATCH`]: another node handed recordings over? Then look for them now.
    Watch,
    /// Answers once every message queued before it is handled (a drain waits for its
    /// handoffs to be written).
    Flush(RpcReplyPort<()>),
}

/// A claim this node holds.
struct Owned {
    room: RoomName,
    identity: Identity,
    claim: Claim,
    /// The start of the last renewal Redis confirmed.
    renewed: Instant,
}

/// State of the cluster actor.
pub struct ClusterState {
    args: ClusterArgs,
    owned: HashMap<RecordingId, Owned>,
    /// Writes that failed (Redis down), latest per recording, retried on each tick.
    unwritten: HashMap<RecordingId, Stored>,
    /// The last write failed: the first one that works again brings the heartbeat and the
    /// claims up to date at once (a tick), not a third of a lease later.
    down: bool,
    /// This node is draining and hands its recordings over: no heartbeat, no adoption.
    leaving: bool,
    /// The handoff counter last seen ([`Store::handoffs`]).
    handoffs_seen: Option<u64>,
    /// The last look for handed-over recordings left some to the other nodes: look again at
    /// the next watch (a node takes only its share at a time, so that the others get theirs).
    /// A dead node's recordings are looked for on the tick only.
    orphans_left: bool,
    me: ActorRef<ClusterMsg>,
}

/// The cluster actor.
pub struct ClusterActor;

impl Actor for ClusterActor {
    type Msg = ClusterMsg;
    type State = ClusterState;
    type Arguments = ClusterArgs;

    async fn pre_start(
        &self,
        me: ActorRef<ClusterMsg>,
        args: ClusterArgs,
    ) -> Result<ClusterState, ActorProcessingErr> {
        me.send_interval(args.store.lease() / 3, || ClusterMsg::Tick);
        me.send_interval(HANDOFF_WATCH, || ClusterMsg::Watch);
        let _ = me.cast(ClusterMsg::Tick);
        Ok(ClusterState {
            args,
            owned: HashMap::new(),
            unwritten: HashMap::new(),
            down: false,
            leaving: false,
            handoffs_seen: None,
            orphans_left: false,
            me,
        })
    }

    async fn handle(
        &self,
        _me: ActorRef<ClusterMsg>,
        msg: ClusterMsg,
        st: &mut ClusterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ClusterMsg::Claim { info, spec, reply } => {
                let _ = reply.send(st.claim(info, &spec).await);
            }
            ClusterMsg::Publish { info, spec, fence } => {
                let started_ms = spec.started_unix_ms;
                let s = Stored { fence, node: st.args.node.id.clone(), started_ms, info, spec: Some(spec) };
                st.unwritten.remove(&s.info.id);
                st.publish(s).await;
            }
            ClusterMsg::Abandon(id) => st.abandon(&id).await,
            ClusterMsg::Tick => st.tick().await,
            ClusterMsg::Leave(reply) => {
                let _ = reply.send(st.leave().await);
            }
            ClusterMsg::HandOff { info, spec, fence } => st.hand_off(info, spec, fence).await,
            ClusterMsg::Watch => st.watch().await,
            ClusterMsg::Flush(reply) => {
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl ClusterState {
    async fn claim(&mut self, info: RecordingInfo, spec: &RecordingSpec) -> Result<Claimed, StoreError> {
        let at = Instant::now();
        let r = match self.args.store.claim(&self.args.node.id, &info, spec).await? {
            // ours from before a restart of this node (within the lease): ours again
            Claimed::Held(c) if c.node == self.args.node.id && c.id == info.id => Claimed::Won(c),
            r => r,
        };
        if let Claimed::Won(c) = &r {
            let owned = Owned {
                room: info.room.clone(),
                identity: info.participant.clone(),
                claim: c.clone(),
                renewed: at,
            };
            self.owned.insert(info.id, owned);
        }
        Ok(r)
    }

    async fn abandon(&mut self, id: &str) {
        let Some(o) = self.owned.remove(id) else { return };
        if let Err(e) = self.args.store.release(&o.room, &o.identity, &o.claim).await {
            tracing::warn!(recording = %id, "cluster: cannot release the claim of a start that failed (it expires with its lease): {e}");
        }
        if let Err(e) = self.args.store.forget(&[id.to_owned()]).await {
            tracing::warn!(recording = %id, "cluster: the pending JSON of a start that failed stays: {e}");
        }
    }

    async fn publish(&mut self, s: Stored) {
        let ended_ms = (!s.info.status.is_live()).then(recording::unix_ms_now);
        let terminal = s.info.status.is_terminal();
        match self.args.store.publish(&s, ended_ms, self.args.history.max_age).await {
            Ok(true) => {
                if std::mem::take(&mut self.down) {
                    let _ = self.me.cast(ClusterMsg::Tick);
                }
            }
            Ok(false) => {
                tracing::warn!(recording = %s.info.id, "cluster: another node owns this recording now; not written");
                return;
            }
            Err(e) => {
                tracing::debug!(recording = %s.info.id, "cluster: write deferred: {e}");
                self.down = true;
                self.unwritten.insert(s.info.id.clone(), s);
                return;
            }
        }
        // no longer live: nothing more to record for this participant here
        if ended_ms.is_some() {
            if let Some(o) = self.owned.remove(&s.info.id) {
                if let Err(e) = self.args.store.release(&o.room, &o.identity, &o.claim).await {
                    tracing::debug!(recording = %s.info.id, "cluster: claim not released (it expires): {e}");
                }
            }
        }
        if terminal {
            if let Err(e) = self.args.store.trim_history(self.args.history.max_recordings).await {
                tracing::debug!("cluster: history not trimmed: {e}");
            }
        }
    }

    async fn tick(&mut self) {
        if self.leaving {
            // no heartbeat (the node is gone for the others), no adoption: only the claims of
            // the recordings not handed off yet are kept
            self.renew_all().await;
            return;
        }
        let beat = NodeInfo {
            id: self.args.node.id.clone(),
            url: self.args.node.url.clone(),
            live: self.owned.len(),
            max: self.args.max,
            at_ms: recording::unix_ms_now(),
        };
        // the first call after Redis came back may fail on the old connection: once more
        let beat_failed = self.args.store.heartbeat(&beat).await.is_err();
        self.renew_all().await;
        if beat_failed {
            if let Err(e) = self.args.store.heartbeat(&beat).await {
                tracing::warn!("cluster: heartbeat failed: {e}");
            }
        }
        if let Err(e) = self.adopt(false).await {
            tracing::warn!("cluster: cannot look for recordings of dead nodes: {e}");
        }
        let retry: Vec<Stored> = self.unwritten.drain().map(|(_, s)| s).collect();
        for s in retry {
            self.publish(s).await;
        }
    }

    async fn renew_all(&mut self) {
        let lease = self.args.store.lease();
        let ids: Vec<RecordingId> = self.owned.keys().cloned().collect();
        for id in ids {
            let Some(o) = self.owned.get(&id) else { continue };
            let at = Instant::now();
            let lost = match self.args.store.renew(&o.room, &o.identity, &o.claim).await {
                Ok(r @ (Renewed::Kept | Renewed::Retaken)) => {
                    if let Some(o) = self.owned.get_mut(&id) {
                        o.renewed = at;
                    }
                    if r == Renewed::Retaken {
                        tracing::info!(recording = %id, "cluster: claim taken again (Redis had lost it); rewriting the recording");
                        let _ = self.args.supervisor.cast(SupervisorMsg::Republish(id.clone()));
                    }
                    None
                }
                Ok(Renewed::Lost) => Some("another node holds its claim now".to_owned()),
                // stop one renewal period before the key can expire in Redis
                Err(e) if o.renewed.elapsed() + lease / 3 >= lease => {
                    Some(format!("its claim could not be renewed for {:?} ({e})", o.renewed.elapsed()))
                }
                Err(e) => {
                    tracing::warn!(recording = %id, "cluster: claim renewal failed (retrying): {e}");
                    None
                }
            };
            if let Some(why) = lost {
                tracing::warn!(recording = %id, "cluster: lease lost: {why}; this node stops writing it");
                self.owned.remove(&id);
                let _ = self.args.supervisor.cast(SupervisorMsg::LeaseLost { id, why });
            }
        }
    }
}

impl ClusterState {
    async fn leave(&mut self) -> usize {
        self.leaving = true;
        if let Err(e) = self.args.store.leave(&self.args.node.id).await {
            tracing::warn!("cluster: cannot leave (Redis): {e}; the recordings end here");
            return 0;
        }
        match self.args.store.nodes().await {
            Ok(nodes) => nodes.iter().filter(|n| n.id != self.args.node.id).count(),
            Err(e) => {
                tracing::warn!("cluster: cannot list the other nodes (Redis): {e}; the recordings end here");
                0
            }
        }
    }

    async fn hand_off(&mut self, info: RecordingInfo, spec: RecordingSpec, fence: u64) {
        let id = info.id.clone();
        let started_ms = spec.started_unix_ms;
        let s = Stored { fence, node: self.args.node.id.clone(), started_ms, info, spec: Some(spec) };
        self.unwritten.remove(&id);
        match self.args.store.publish(&s, None, self.args.history.max_age).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(recording = %id, "cluster: handoff: another node owns this recording already");
                self.owned.remove(&id);
                return;
            }
            Err(e) => {
                // its claim expires with the lease: another node takes it over then
                tracing::warn!(recording = %id, "cluster: handoff not written ({e}); another node takes it over when its claim expires");
                return;
            }
        }
        if let Some(o) = self.owned.remove(&id) {
            if let Err(e) = self.args.store.release(&o.room, &o.identity, &o.claim).await {
                tracing::warn!(recording = %id, "cluster: handoff: claim not released ({e}); taken over when it expires");
                return;
            }
        }
        match self.args.store.signal_handoff().await {
            Ok(_) => tracing::info!(recording = %id, "cluster: handed over to the other nodes"),
            Err(e) => {
                tracing::warn!(recording = %id, "cluster: handoff released but not signalled ({e}); taken over at the next tick")
            }
        }
    }

    async fn watch(&mut self) {
        if self.leaving {
            return;
        }
        let Ok(n) = self.args.store.handoffs().await else { return };
        let signalled = self.handoffs_seen.replace(n).is_some_and(|seen| seen != n);
        if signalled || self.orphans_left {
            if let Err(e) = self.adopt(true).await {
                tracing::warn!("cluster: cannot take over handed-off recordings: {e}");
            }
        }
    }
}

impl ClusterState {
    /// Failover: takes over the live recordings of nodes whose heartbeat and claims have
    /// expired, up to this node's free capacity and its share of them (the dead nodes'
    /// recordings over the live nodes), and hands each to the supervisor, which resumes it in a
    /// new part.
    async fn adopt(&mut self, handoff: bool) -> Result<(), StoreError> {
        let me = self.args.node.id.clone();
        let mut orphans = self.args.store.orphans(&me).await?;
        if handoff {
            self.orphans_left = false;
        }
        if orphans.is_empty() {
            return Ok(());
        }
        let seen = orphans.len();
        let alive = self.args.store.nodes().await?.len().max(1);
        let free = self.args.max.map_or(usize::MAX, |m| m.saturating_sub(self.owned.len()));
        let share = orphans.len().div_ceil(alive).min(free);
        // each node tries them in its own order, so that the survivors take different ones
        orphans.sort_by_key(|s| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&me, &s.info.id).hash(&mut h);
            h.finish()
        });
        let mut taken = 0;
        for s in orphans {
            if taken >= share {
                break;
            }
            let Some((claim, stored)) = self.args.store.take(&me, &s).await? else { continue };
            let Some(spec) = stored.spec.clone() else { continue };
            taken += 1;
            tracing::warn!(recording = %stored.info.id, dead = %stored.node, "cluster: taking over a recording of a node without heartbeat");
            let owned = Owned {
                room: stored.info.room.clone(),
                identity: stored.info.participant.clone(),
                claim: claim.clone(),
                renewed: Instant::now(),
            };
            self.owned.insert(stored.info.id.clone(), owned);
            let msg = SupervisorMsg::Adopt { info: Box::new(stored.info), spec, fence: claim.fence };
            let _ = self.args.supervisor.cast(msg);
        }
        if handoff {
            self.orphans_left = taken < seen;
        }
        Ok(())
    }
}

/// How often a node looks for recordings another node handed over (one Redis `GET`).
pub const HANDOFF_WATCH: Duration = Duration::from_millis(200);

/// How long the supervisor waits for a claim (Redis calls are bounded well below it).
pub const CLAIM_WAIT: Duration = Duration::from_secs(4);
