//! The HTTP surface (actix-web): liveness (`GET /health-check`), the REST API under
//! `/recordings` (see [`routes`]), and `GET /metrics`. Handlers only send messages to the
//! [`RecorderSupervisor`](crate::actors::supervisor::RecorderSupervisor); every error becomes
//! `{"error": "..."}` with its status code in [`error`].

pub mod error;
pub mod routes;
pub mod webhooks;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix_web::{get, web, App, HttpResponse, HttpServer};
use ractor::ActorRef;

use crate::actors::supervisor::SupervisorMsg;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The root actor.
    pub supervisor: ActorRef<SupervisorMsg>,
    /// `API_TOKEN`, when set (never logged).
    pub api_token: Option<String>,
    /// Default `FILENAME_TEMPLATE`.
    pub filename_template: String,
    /// Verifies LiveKit webhooks.
    pub webhooks: livekit_api::webhooks::WebhookReceiver,
}

/// Liveness (200 while the actor tree answers) with the recordings disk's state:
/// `{"status":"ok"}` or `{"status":"degraded","storage":"disk full ..."}`.
#[get("/health-check")]
async fn health_check(state: web::Data<AppState>) -> HttpResponse {
    match ractor::call_t!(state.supervisor, SupervisorMsg::GetHealth, 2000) {
        Ok(None) => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        Ok(Some(problem)) => {
            HttpResponse::Ok().json(serde_json::json!({ "status": "degraded", "storage": problem }))
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
    }
}

/// Binds `addr` and starts serving on the current runtime (actix signal handling off: the
/// caller owns shutdown). Returns the bound address and the server handle.
pub fn start(
    state: AppState,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::QueryConfig::default().error_handler(routes::query_error))
            .app_data(web::PayloadConfig::new(1 << 20))
            .service(health_check)
            .route("/metrics", web::get().to(routes::metrics))
            .route("/recordings", web::get().to(routes::list))
            .route("/recordings/start", web::post().to(routes::start))
            .route("/recordings/stop", web::post().to(routes::stop))
            .route("/recordings/webhooks", web::post().to(webhooks::receive))
            .route("/recordings/{id}", web::get().to(routes::get))
            .default_service(web::to(routes::not_found))
    })
    .workers(2)
    .disable_signals()
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    let running = server.run();
    let handle = running.handle();
    tokio::spawn(running);
    Ok((bound, handle))
}

/// A dependency-free probe for container health checks: GET /health-check on loopback, true
/// on HTTP 200.
pub fn probe(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = s.set_read_timeout(Some(timeout));
    let req = "GET /health-check HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    matches!(s.read(&mut head), Ok(n) if head[..n].starts_with(b"HTTP/1.1 200"))
}
