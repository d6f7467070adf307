//! The LiveKit-compatible simulator (`livekit-recorder sim`): one HTTP port serves LiveKit's
//! v0 signalling (`GET /rtc`, WebSocket + protobuf), Twirp RoomService, and a JSON control API
//! for tests; media goes over real ICE-lite/DTLS/SRTP (str0m) from synthetic publishers that
//! replay the embedded encoded loops; room events go out as signed webhooks.
//!
//! Layout (one file per concern): `server` (actix app), `signal` (the `/rtc` session),
//! `room` + `lifecycle` (rooms, members, subscriptions), `peer` (a subscriber
//! `Rtc` per client), `publisher` (synthetic participants), `twirp`, `webhook`,
//! `control` (the `/sim` API), `faults`, `truth` (the `/sent` ground truth), `media`,
//! `net`, `ids`.
//!
//! Threads: actix workers run the HTTP handlers and the WebSocket sessions (their streams
//! are not `Send`); peers, publishers and webhook delivery run on the tokio runtime that
//! called [`start`]. They talk through bounded channels; room state sits behind one mutex that
//! is never held across an `.await`.

mod control;
mod faults;
mod ids;
mod lifecycle;
mod media;
mod net;
mod peer;
mod publisher;
mod room;
mod server;
mod signal;
mod truth;
mod twirp;
mod webhook;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use livekit_api::access_token::TokenVerifier;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// HTTP/WebSocket listen address (`127.0.0.1:0` in tests).
    pub http_addr: SocketAddr,
    /// API key (JWT `iss`).
    pub api_key: String,
    /// API secret (HS256 key).
    pub api_secret: String,
    /// Webhook receivers.
    pub webhook_urls: Vec<String>,
    /// Address the media UDP sockets bind to (default `0.0.0.0`).
    pub media_ip: IpAddr,
    /// Addresses advertised as ICE host candidates; empty = loopback plus the host's
    /// non-loopback IPv4 addresses (or just `media_ip` when it is a specific address).
    pub advertise_ips: Vec<IpAddr>,
    /// Publish VP8 and Opus from `DIR/video.ivf` and `DIR/audio.ogg` instead of the embedded
    /// 320x240 loops (`--media-dir`; the other codecs keep the embedded loops).
    pub media_dir: Option<std::path::PathBuf>,
}

impl SimConfig {
    /// Loopback on an ephemeral port, media on all interfaces, no webhooks.
    pub fn new(api_key: &str, api_secret: &str) -> SimConfig {
        SimConfig {
            http_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            webhook_urls: Vec::new(),
            media_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            advertise_ips: Vec::new(),
            media_dir: None,
        }
    }

    fn advertised(&self) -> Vec<IpAddr> {
        match (&self.advertise_ips[..], self.media_ip.is_unspecified()) {
            ([], true) => net::host_addresses(),
            ([], false) => vec![self.media_ip],
            (ips, _) => ips.to_vec(),
        }
    }
}

/// The shared simulator state.
pub(crate) struct Sim {
    verifier: TokenVerifier,
    rt: tokio::runtime::Handle,
    webhooks: webhook::Webhooks,
    faults: Arc<faults::FaultRegistry>,
    media_ip: IpAddr,
    advertise: Vec<IpAddr>,
    rooms: room::Rooms,
    archive: std::sync::Mutex<std::collections::HashMap<String, Vec<Arc<truth::TrackLog>>>>,
    /// Loops from `--media-dir`, used instead of the embedded ones for their codecs.
    loops: Vec<Arc<media::SharedLoop>>,
}

impl Sim {
    /// The loop synthetic publishers send for `codec`.
    pub(crate) fn shared_loop(&self, codec: crate::media::Codec) -> Result<Arc<media::SharedLoop>, String> {
        match self.loops.iter().find(|l| l.source.codec == codec) {
            Some(l) => Ok(l.clone()),
            None => media::SharedLoop::get(codec),
        }
    }
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    server: actix_web::dev::ServerHandle,
    sim: Arc<Sim>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Starts the simulator; must be called inside a tokio runtime (media tasks run on it).
pub async fn start(cfg: SimConfig) -> std::io::Result<SimHandle> {
    let rt = tokio::runtime::Handle::current();
    // reqwest is built without a rustls provider; livekit's own clients use ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loops = match &cfg.media_dir {
        Some(dir) => media::SharedLoop::load_dir(dir)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
        None => Vec::new(),
    };
    let advertise = cfg.advertised();
    tracing::info!(?advertise, media_ip = %cfg.media_ip, "simulator ICE addresses");
    let sim = Arc::new(Sim {
        verifier: TokenVerifier::with_api_key(&cfg.api_key, &cfg.api_secret),
        webhooks: webhook::Webhooks::start(
            &rt,
            cfg.webhook_urls.clone(),
            cfg.api_key.clone(),
            cfg.api_secret.clone(),
        ),
        rt,
        faults: Arc::default(),
        media_ip: cfg.media_ip,
        advertise,
        rooms: Default::default(),
        archive: Default::default(),
        loops,
    });
    let (addr, server) = server::run(sim.clone(), cfg.http_addr)?;
    tracing::info!(%addr, "simulator listening");
    Ok(SimHandle { addr, server, sim })
}

impl SimHandle {
    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL clients connect to, e.g. `ws://127.0.0.1:7880`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Stops the HTTP server (sessions close; media tasks end as their channels close).
    pub async fn stop(self) {
        self.sim.shutdown();
        self.server.stop(true).await;
    }
}
