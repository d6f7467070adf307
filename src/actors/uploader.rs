//! The uploader pool: a `ractor::factory` of `UPLOAD_WORKERS` [`UploadWorker`]s, spawned and
//! linked by the [`RecorderSupervisor`](super::supervisor::RecorderSupervisor). A job is one
//! recording's finished part files (key: the recording id); any free worker takes the next job
//! (queuer routing, jobs wait in the factory's queue). The worker runs
//! [`Uploader::upload_all`](crate::storage::s3::Uploader::upload_all) and tells the supervisor
//! [`SupervisorMsg::UploadFinished`].
//!
//! Restart policy: the upload runs in its own task, so a panic in it is caught by the worker
//! and reported as a failed upload of that recording (files stay on disk). A worker actor that
//! dies anyway is replaced by the factory (same worker id, queued jobs kept; its in-flight job
//! is lost). If the factory itself dies, the supervisor spawns a new one and dispatches every
//! recording that is still `uploading` again.

use std::path::PathBuf;
use std::sync::Arc;

use ractor::factory::{
    queues, routing, worker_builder, Factory, FactoryArguments, FactoryMessage, FactoryRef, Job, Worker,
    WorkerId,
};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tracing::Instrument;

use super::supervisor::SupervisorMsg;
use crate::ids::RecordingId;
use crate::storage::s3::{UploadError, UploadReport, Uploader};

/// Upload a recording's files.
pub struct UploadJob {
    /// The recording's local files, oldest first.
    pub files: Vec<PathBuf>,
    /// Who is told the result.
    pub reply_to: ActorRef<SupervisorMsg>,
    /// The recording's span ([`crate::recording::span`]): the upload logs in it.
    pub span: tracing::Span,
}

/// The pool's handle.
pub type UploaderPool = FactoryRef<RecordingId, UploadJob>;

/// One worker of the pool (stateless: the shared [`Uploader`] is its state).
pub struct UploadWorker;

impl Worker for UploadWorker {
    type Key = RecordingId;
    type Message = UploadJob;
    type Arguments = Arc<Uploader>;
    type State = Arc<Uploader>;

    async fn pre_start(
        &self,
        _wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<RecordingId, UploadJob>>,
        uploader: Arc<Uploader>,
    ) -> Result<Arc<Uploader>, ActorProcessingErr> {
        Ok(uploader)
    }

    async fn handle(
        &self,
        wid: WorkerId,
        _factory: &ActorRef<FactoryMessage<RecordingId, UploadJob>>,
        Job { key, msg, .. }: Job<RecordingId, UploadJob>,
        uploader: &mut Arc<Uploader>,
    ) -> Result<RecordingId, ActorProcessingErr> {
        let span = msg.span.clone();
        span.in_scope(|| tracing::info!(worker = wid, files = msg.files.len(), "upload started"));
        let (up, files) = (uploader.clone(), msg.files.clone());
        let upload = async move { up.upload_all(&files).await }.instrument(span);
        let report = match tokio::spawn(upload).await {
            Ok(r) => r,
            Err(e) => UploadReport {
                uploaded: Vec::new(),
                failed: msg
                    .files
                    .iter()
                    .map(|f| UploadError::Interrupted { path: f.clone(), reason: e.to_string() })
                    .collect(),
            },
        };
        let _ = msg.reply_to.cast(SupervisorMsg::UploadFinished { id: key.clone(), report });
        Ok(key)
    }
}

/// Spawns the pool with `workers` workers, linked to `supervisor`.
pub async fn spawn_pool(
    uploader: Arc<Uploader>,
    workers: usize,
    supervisor: ActorCell,
) -> Result<UploaderPool, SpawnErr> {
    let factory = Factory::<
        RecordingId,
        UploadJob,
        Arc<Uploader>,
        UploadWorker,
        routing::QueuerRouting<RecordingId, UploadJob>,
        queues::DefaultQueue<RecordingId, UploadJob>,
    >::default();
    let args = FactoryArguments::builder()
        .worker_builder(Box::new(worker_builder(move |_wid| (UploadWorker, uploader.clone()))))
        .queue(Default::default())
        .router(Default::default())
        .num_initial_workers(workers.max(1))
        .build();
    let (pool, _) = Actor::spawn_linked(None, factory, args, supervisor).await?;
    Ok(pool)
}
