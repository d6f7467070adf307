//! The room's side of supervision: a participant recorder ended or failed (restart budget,
//! new part), and tearing down (suspend for a restart, finalize for a shutdown).

use std::time::{Duration, Instant};

use ractor::{ActorId, ActorProcessingErr, ActorRef};

use super::{RoomMsg, RoomState};
use crate::actors::participant::ParticipantMsg;
use crate::actors::supervisor::SupervisorMsg;
use crate::actors::Progress;
use crate::ids::{Identity, TrackSid};
use crate::metrics::Metrics;
use crate::recording::Status;
use crate::supervision::Verdict;

impl RoomState {
    pub(super) async fn on_child_ended(&mut self, me: &ActorRef<RoomMsg>, id: ActorId) {
        let Some(identity) = self.by_actor.remove(&id) else { return };
        self.recs.remove(&identity);
        self.unsubscribe(&identity).await;
        if self.recs.is_empty() {
            tracing::info!(room = %self.args.room, "no recordings left; leaving the room");
            me.stop(Some("idle".into()));
        }
    }

    pub(super) async fn on_child_failed(
        &mut self,
        me: &ActorRef<RoomMsg>,
        id: ActorId,
        err: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(identity) = self.by_actor.remove(&id) else { return Ok(()) };
        let Some(rec) = self.recs.remove(&identity) else { return Ok(()) };
        match self.budget.on_failure(Instant::now()) {
            Verdict::Restart => {
                tracing::warn!(recording = %rec.spec.id, error = %err, "participant recorder failed; continuing in a new part");
                Metrics::add(&self.args.settings.metrics.restarts_participant, 1);
                self.record(me, rec.spec, rec.part + 1).await?;
            }
            Verdict::Escalate => {
                tracing::error!(recording = %rec.spec.id, error = %err, "participant recorder exceeded its restart budget");
                let error = Some(format!("recorder failed repeatedly: {err}"));
                let p = Progress::status_only(rec.spec.id, rec.part, Status::Failed, error);
                let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
                self.unsubscribe(&identity).await;
            }
        }
        Ok(())
    }

    pub(super) async fn unsubscribe(&mut self, identity: &Identity) {
        let Some(p) = self.participants.values().find(|p| p.identity == identity) else { return };
        let sids: Vec<TrackSid> =
            p.tracks.iter().map(|t| t.sid.clone()).filter(|s| self.requested.remove(s)).collect();
        if let (Some(c), false) = (&self.conn, sids.is_empty()) {
            let _ = c.subscribe(&p.sid, &sids, false).await;
        }
    }

    /// Before failing: every recorder closes its part but its recording stays live, so the
    /// restarted room resumes it in a new part. Then leaves the room.
    pub(super) async fn suspend_all(&mut self) {
        for (_, r) in self.recs.drain() {
            let _ = r.actor.call(ParticipantMsg::Suspend, Some(Duration::from_secs(5))).await;
        }
        self.by_actor.clear();
        self.leave().await;
    }

    async fn leave(&mut self) {
        if let Some(p) = self.pump.take() {
            p.abort();
        }
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }

    /// Stops every recorder (each finalizes its part in `post_stop`) and leaves the room.
    pub(super) async fn finalize_all(&mut self) {
        for (_, r) in self.recs.drain() {
            // drain, not stop: Stop would pre-empt the frames still queued in its mailbox
            let _ = r.actor.drain_and_wait(Some(Duration::from_secs(5))).await;
        }
        self.by_actor.clear();
        self.leave().await;
    }
}
