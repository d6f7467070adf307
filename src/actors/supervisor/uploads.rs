//! The supervisor's upload and result policy: an upload's report makes the recording
//! `complete` or `failed`; a recording that ends triggers the result callbacks once; a dead
//! uploader pool is replaced and its recordings queued again; a shutdown is answered once the
//! last upload ended (or at its deadline).

use std::collections::BTreeSet;
use std::sync::Arc;

use ractor::ActorRef;

use super::uploader::{self, UploadJob};
use super::{SupervisorMsg, SupervisorState};
use crate::cluster::node::{ClusterMsg, CLAIM_WAIT};
use crate::ids::RecordingId;
use crate::lifecycle::Report;
use crate::recording::Status;
use crate::storage::journal::Event;
use crate::storage::s3::UploadReport;

impl SupervisorState {
    pub(super) fn on_upload_finished(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        id: &RecordingId,
        report: UploadReport,
    ) {
        let Some(e) = self.recs.get_mut(id) else { return };
        if e.info.status != Status::Uploading {
            return;
        }
        for u in &report.uploaded {
            if !e.info.outputs.contains(&u.url) {
                e.info.outputs.push(u.url.clone());
            }
            if !u.local_kept {
                e.removed.push(u.path.clone());
            }
        }
        e.info.files = e.local_files();
        if report.failed.is_empty() {
            tracing::info!(recording = %id, outputs = ?e.info.outputs, "recording uploaded");
            self.report(me, id, Report::Uploaded);
        } else {
            let errors: Vec<String> = report.failed.iter().map(ToString::to_string).collect();
            tracing::error!(recording = %id, "upload failed: {}", errors.join("; "));
            self.report(me, id, Report::UploadFailed(errors.join("; ")));
        }
    }

    /// Hands a finished recording's local files to the uploader pool: `uploading` (journaled),
    /// or `failed` with its files kept when the pool cannot take the job.
    pub(super) fn queue_upload(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId) {
        let node = self.cluster.as_ref().map(|c| c.node.id.clone());
        let node = node.as_deref();
        let Some(e) = self.recs.get_mut(id) else { return };
        let files = e.own_files(node);
        if files.is_empty() {
            // everything is in S3 already (removed after a verified upload before a restart),
            // or on the disks of the nodes that wrote it (cluster mode)
            return self.report(me, id, Report::Uploaded);
        }
        let failed = match &self.uploads {
            Some(pool) => {
                let job = UploadJob { files, reply_to: me.clone(), span: e.spec.span() };
                let r = pool.dispatch(id.to_owned(), job);
                r.err().map(|err| format!("cannot queue the upload (files kept): {err}"))
            }
            None => Some("not uploaded: the uploader pool is stopped (shutdown); files kept".into()),
        };
        if let Some(why) = failed {
            self.report(me, id, Report::UploadFailed(why));
        }
    }

    /// Once the recording is `complete` or `failed`: journals the outcome and starts the
    /// result callbacks (skipping URLs that accepted them before a restart). The job is
    /// forgotten when every callback ended.
    pub(super) fn notify_if_ended(&mut self, me: &ActorRef<SupervisorMsg>, id: &RecordingId) {
        self.notify_skipping(me, id, &BTreeSet::new());
    }

    pub(super) fn notify_skipping(
        &mut self,
        me: &ActorRef<SupervisorMsg>,
        id: &RecordingId,
        skip: &BTreeSet<String>,
    ) {
        let Some(e) = self.recs.get_mut(id) else { return };
        if !e.info.status.is_terminal() || e.notified {
            return;
        }
        e.notified = true;
        let Some(e) = self.recs.get_mut(id) else { return };
        if e.handed_off {
            // it goes on on another node, which sends the result when it ends
        } else if let Some(cb) = &self.settings.callbacks {
            let (me, rec) = (me.clone(), id.to_owned());
            let done = Arc::new(move |url: &str, delivered: bool| {
                let msg = SupervisorMsg::CallbackDone { id: rec.clone(), url: url.to_owned(), delivered };
                let _ = me.cast(msg);
            });
            e.callbacks_pending = cb.send(&e.info, skip, done);
        }
        let outputs = e.info.outputs.clone();
        let pending = e.callbacks_pending;
        if !outputs.is_empty() {
            self.journal(Event::Uploaded { id: id.to_owned(), outputs });
        }
        // the history before the job is forgotten: a crash between them leaves both, never none
        let at_ms = self.ended_at_ms(id).unwrap_or_else(crate::recording::unix_ms_now);
        self.remember_ended(id, at_ms);
        if pending == 0 {
            self.journal(Event::Forget { id: id.to_owned() });
        }
    }

    /// A callback ended: journaled when accepted; the job is forgotten after the last one
    /// (a callback given up on is not retried at the next start).
    pub(super) fn on_callback_done(&mut self, id: &RecordingId, url: String, delivered: bool) {
        let Some(e) = self.recs.get_mut(id) else { return };
        e.callbacks_pending = e.callbacks_pending.saturating_sub(1);
        let last = e.callbacks_pending == 0;
        if delivered {
            self.journal(Event::Delivered { id: id.to_owned(), url });
        }
        if last {
            self.journal(Event::Forget { id: id.to_owned() });
        }
    }

    /// The uploader pool died: a new one takes over every recording still `uploading`.
    pub(super) async fn on_pool_died(&mut self, me: &ActorRef<SupervisorMsg>, why: &str) {
        self.uploads = None;
        let Some(up) = self.settings.uploader.clone() else { return };
        if !self.accepting {
            return;
        }
        tracing::error!("uploader pool ended ({why}); starting a new one");
        let pool = match uploader::spawn_pool(up.clone(), up.settings().workers, me.get_cell()).await {
            Ok(p) => p,
            Err(spawn_err) => {
                tracing::error!("cannot restart the uploader pool: {spawn_err}");
                let ids: Vec<RecordingId> = self
                    .recs
                    .values()
                    .filter(|e| e.info.status == Status::Uploading)
                    .map(|e| e.info.id.clone())
                    .collect();
                for id in ids {
                    let why = format!("upload not done: the uploader pool is gone ({spawn_err})");
                    self.report(me, &id, Report::UploadFailed(why));
                }
                return;
            }
        };
        let node = self.cluster.as_ref().map(|c| c.node.id.clone());
        let node = node.as_deref();
        for e in self.recs.values().filter(|e| e.info.status == Status::Uploading) {
            let job = UploadJob { files: e.own_files(node), reply_to: me.clone(), span: e.spec.span() };
            let _ = pool.dispatch(e.info.id.clone(), job);
        }
        self.uploads = Some(pool);
    }

    /// Answers a waiting shutdown once no recording is live or uploading (or at the deadline:
    /// uploads still running are abandoned, their files stay local), and stops the pool.
    pub(super) fn finish_shutdown(&mut self, deadline: bool) {
        if self.draining.is_none() || !(self.rooms_drained || deadline) {
            return;
        }
        let busy: Vec<&str> = self
            .recs
            .values()
            .filter(|e| e.info.status.is_live() || e.info.status == Status::Uploading)
            .map(|e| e.info.id.as_str())
            .collect();
        if !busy.is_empty() && !deadline && self.uploads.is_some() {
            return;
        }
        if !busy.is_empty() {
            tracing::warn!(recordings = ?busy, "shutdown: not waiting any longer; their files stay local");
        }
        if let Some(pool) = self.uploads.take() {
            // not awaited: a worker finishes its current file first
            pool.stop(Some("shutdown".into()));
        }
        // a drain that handed recordings over answers once the cluster actor has written them
        // (its mailbox is in order: every handoff is queued before this call)
        self.sync_cluster();
        if let Some(reply) = self.draining.take() {
            match (&self.cluster, self.handing_off) {
                (Some(c), true) => {
                    let actor = c.actor.clone();
                    tokio::spawn(async move {
                        let _ = actor.call(ClusterMsg::Flush, Some(CLAIM_WAIT * 2)).await;
                        let _ = reply.send(());
                    });
                }
                _ => {
                    let _ = reply.send(());
                }
            }
        }
    }
}
