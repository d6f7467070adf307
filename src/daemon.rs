//! Starting and stopping the recorder daemon: the actor tree, then the HTTP server. Used by
//! `serve`, by `demo` and by the tests (which bind `127.0.0.1:0`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};

use crate::actors::supervisor::{RecorderSupervisor, SupervisorMsg};
use crate::actors::{RecorderSettings, RoomSettings};
use crate::callbacks::Callbacks;
use crate::config::LiveKitSettings;
use crate::config::RecordingSettings;
use crate::http::{self, AppState};
use crate::metrics::Metrics;
use crate::storage::s3::{S3Settings, Uploader};

/// How long a shutdown waits for result callbacks still being delivered.
pub const CALLBACK_WAIT: Duration = Duration::from_secs(10);

pub use crate::config::DEFAULT_TOKEN_TTL;

/// What the daemon needs.
#[derive(Clone)]
pub struct DaemonConfig {
    /// The LiveKit server and its API key pair.
    pub livekit: LiveKitSettings,
    /// How recordings are made, passed whole to the actor tree.
    pub recording: RecordingSettings,
    /// `API_TOKEN`.
    pub api_token: Option<String>,
    /// `S3_*`, `UPLOAD_*`: upload finished recordings (None: files stay local, no `uploading`).
    pub s3: Option<S3Settings>,
    /// `WEBHOOK_URLS`: result callbacks.
    pub webhook_urls: Vec<String>,
    /// `REDIS_URL` and companions: cluster mode.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl DaemonConfig {
    /// The defaults of every optional setting (as `serve` has them with no variable set).
    pub fn new(
        livekit_url: &str,
        api_key: &str,
        api_secret: &str,
        recordings_dir: &std::path::Path,
    ) -> DaemonConfig {
        DaemonConfig {
            livekit: LiveKitSettings {
                url: livekit_url.to_owned(),
                api_key: api_key.to_owned(),
                api_secret: api_secret.to_owned(),
            },
            recording: RecordingSettings::new(recordings_dir),
            api_token: None,
            s3: None,
            webhook_urls: Vec::new(),
            cluster: None,
        }
    }
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
        check_recordings_dir(&cfg.recording.recordings_dir)?;
        let webhooks = http::webhooks::receiver(&cfg.livekit.api_key, &cfg.livekit.api_secret);
        let metrics = Arc::new(Metrics::default());
        let uploader = match cfg.s3 {
            Some(s3) => {
                Some(Arc::new(Uploader::new(s3, cfg.recording.recordings_dir.clone(), metrics.clone()).await))
            }
            None => None,
        };
        let callbacks = match cfg.webhook_urls.is_empty() {
            true => None,
            false => Some(Arc::new(
                Callbacks::new(
                    cfg.webhook_urls,
                    &cfg.livekit.api_key,
                    &cfg.livekit.api_secret,
                    metrics.clone(),
                )
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            )),
        };
        let livekit_url = cfg.livekit.url.clone();
        let filename_template = cfg.recording.filename_template.clone();
        let cluster = match &cfg.cluster {
            None => None,
            Some(c) => {
                let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
                let node = crate::cluster::NodeIdentity::resolve(c, addr).map_err(invalid)?;
                let store = crate::cluster::store::Store::new(&c.redis_url, c.lease).map_err(invalid)?;
                tracing::info!(node = %node.id, url = %node.url, redis = %crate::cluster::redact(&c.redis_url), "cluster mode");
                Some(crate::cluster::ClusterSettings { store, node })
            }
        };
        let forwarder =
            cluster.as_ref().map(|c| crate::cluster::forward::Forwarder::new(c.store.clone(), &c.node.id));
        let settings = Arc::new(RecorderSettings {
            room: Arc::new(RoomSettings { livekit: cfg.livekit, recording: cfg.recording, metrics }),
            uploader,
            callbacks: callbacks.clone(),
            cluster,
        });
        let (supervisor, root) = Actor::spawn(None, RecorderSupervisor, settings)
            .await
            .map_err(|e| std::io::Error::other(format!("start the supervisor: {e}")))?;
        let state = AppState {
            supervisor: supervisor.clone(),
            api_token: cfg.api_token,
            filename_template,
            webhooks,
            livekit_url,
            cluster: forwarder,
            links: http::files::LinkSigner::random(),
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

    /// Drains: new starts are refused (503; the HTTP server stays up meanwhile), every
    /// recording is finalized, its uploads finish (S3) and result callbacks are sent, then HTTP
    /// and the actors stop. Gives up at `timeout` (files stay crash-tolerant and the journal
    /// keeps what is left for the next start); returns whether everything finished in time.
    pub async fn drain(self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let call = self.supervisor.call(SupervisorMsg::Shutdown, Some(timeout));
        let mut drained = matches!(call.await, Ok(ractor::rpc::CallResult::Success(())));
        self.server.stop(true).await;
        self.supervisor.stop(None);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.root).await;
        if let Some(cb) = &self.callbacks {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !cb.wait_idle(left.min(CALLBACK_WAIT)).await {
                tracing::warn!("drain: result callbacks still being retried are left for the next start");
                drained = false;
            }
        }
        drained
    }

    /// [`Daemon::drain`] with room for the uploads
    /// ([`SHUTDOWN_UPLOAD_WAIT`](crate::actors::supervisor::SHUTDOWN_UPLOAD_WAIT)) and callbacks.
    pub async fn shutdown(self) {
        self.drain(Duration::from_secs(40) + crate::actors::supervisor::SHUTDOWN_UPLOAD_WAIT).await;
    }
}

/// `RECORDINGS_DIR` exists (or can be created) and is a directory: checked before any actor
/// starts, so a wrong path is one clear message naming the setting.
pub fn check_recordings_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let bad = |why: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("RECORDINGS_DIR={}: {why}", dir.display()),
        )
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(bad("exists and is not a directory".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create it: {e}")))
        }
        Err(e) => Err(bad(format!("cannot read it: {e}"))),
    }
}
