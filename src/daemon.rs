//! Starting and stopping the recorder daemon: the actor tree, then the HTTP server. Used by
//! `serve`, by `demo` and by the tests (which bind `127.0.0.1:0`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use crate::actors::supervisor::{RecorderSupervisor, SupervisorMsg};
use crate::actors::RecorderSettings;
use crate::callbacks::Callbacks;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::storage::s3::{S3Settings, Uploader};

/// How long a shutdown waits for result callbacks still being delivered.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(10);

/// What the daemon needs.
#[derive(Clone)]
pub struct DaemonConfig {
    /// LiveKit server URL.
    pub livekit_url: String,
    /// LiveKit API key.
    pub api_key: String,
    /// LiveKit API secret.
    pub api_secret: String,
    /// `RECORDINGS_DIR`.
    pub recordings_dir: PathBuf,
    /// `START_TIMEOUT`.
    pub start_timeout: Duration,
    /// `FILENAME_TEMPLATE`.
    pub filename_template: String,
    /// `API_TOKEN`.
    pub api_token: Option<String>,
    /// `AUTO_RECORD_ON_JOIN`: start recording on a `participant_joined` webhook.
    pub auto_record_on_join: bool,
    /// `S3_*`, `UPLOAD_*`: upload finished recordings (None: files stay local, no `uploading`).
    pub s3: Option<S3Settings>,
    /// `WEBHOOK_URLS`: result callbacks.
    pub webhook_urls: Vec<String>,
}

/// A running daemon.
pub struct Daemon {
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    supervisor: ActorRef<SupervisorMsg>,
    root: tokio::task::JoinHandle<()>,
    callbacks: Option<Arc<Callbacks>>,
}

impl Daemon {
    /// Spawns the supervisor on the current runtime, then serves HTTP on `addr`.
    pub async fn start(cfg: DaemonConfig, addr: SocketAddr) -> std::io::Result<Daemon> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let webhooks = http::webhooks::receiver(&cfg.api_key, &cfg.api_secret);
        let metrics = Arc::new(Metrics::default());
        let uploader = match cfg.s3 {
            Some(s3) => Some(Arc::new(Uploader::new(s3, cfg.recordings_dir.clone(), metrics.clone()).await)),
            None => None,
        };
        let callbacks = match cfg.webhook_urls.is_empty() {
            true => None,
            false => Some(Arc::new(
                Callbacks::new(cfg.webhook_urls, &cfg.api_key, &cfg.api_secret, metrics.clone())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            )),
        };
        let settings = Arc::new(RecorderSettings {
            livekit_url: cfg.livekit_url,
            api_key: cfg.api_key,
            api_secret: cfg.api_secret,
            recordings_dir: cfg.recordings_dir,
            start_timeout: cfg.start_timeout,
            track_grace: Duration::from_millis(1500),
            auto_record_on_join: cfg.auto_record_on_join,
            filename_template: cfg.filename_template.clone(),
            metrics,
            uploader,
            callbacks: callbacks.clone(),
        });
        let (supervisor, root) = Actor::spawn(None, RecorderSupervisor, settings)
            .await
            .map_err(|e| std::io::Error::other(format!("start the supervisor: {e}")))?;
        let state = AppState {
            supervisor: supervisor.clone(),
            api_token: cfg.api_token,
            filename_template: cfg.filename_template,
            webhooks,
        };
        let (addr, server) = http::start(state, addr)?;
        tracing::info!(%addr, "recorder listening");
        Ok(Daemon { addr, server, supervisor, root, callbacks })
    }

    /// The bound HTTP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root actor (tests send it test-hook messages).
    pub fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// Stops HTTP intake, finalizes every recording, waits for the uploads (at most
    /// [`SHUTDOWN_UPLOAD_WAIT`](crate::actors::supervisor::SHUTDOWN_UPLOAD_WAIT)), stops the
    /// actors, and waits for result callbacks still in flight (at most [`CALLBACK_WAIT`]).
    pub async fn shutdown(self) {
        self.server.stop(true).await;
        // rooms finalize (10 s each at most), then uploads get SHUTDOWN_UPLOAD_WAIT
        let wait = Duration::from_secs(40) + crate::actors::supervisor::SHUTDOWN_UPLOAD_WAIT;
        let _ = self.supervisor.call(SupervisorMsg::Shutdown, Some(wait)).await;
        self.supervisor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.root).await;
        if let Some(cb) = &self.callbacks {
            if !cb.wait_idle(CALLBACK_WAIT).await {
                tracing::warn!("shutdown: result callbacks still being retried are dropped");
            }
        }
    }
}
