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

use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
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
    /// `LIVEKIT_URL` (the health check probes it).
    pub livekit_url: String,
}

/// Liveness (200 while the actor tree answers) with the recordings disk's state:
/// `{"status":"ok"}` or `{"status":"degraded","storage":"disk full ..."}`.
#[get("/health-check")]
async fn health_check(state: web::Data<AppState>) -> HttpResponse {
    let health = ractor::call_t!(state.supervisor, SupervisorMsg::GetHealth, 2000);
    match health {
        Ok(h) => {
            // no room connected since the last failure: ask the network whether LiveKit is there
            let livekit = match h.livekit {
                Some(p) => Some(p),
                None => livekit_reachable(&state.livekit_url).await.err(),
            };
            let mut body = serde_json::json!({ "status": "ok" });
            if let Some(p) = &h.storage {
                body["storage"] = p.as_str().into();
            }
            if let Some(p) = &livekit {
                body["livekit"] = p.as_str().into();
            }
            if h.storage.is_some() || livekit.is_some() {
                body["status"] = "degraded".into();
            }
            HttpResponse::Ok().json(body)
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "unavailable", "error": e.to_string() })),
    }
}

/// How long the health check waits for a TCP connection to LiveKit.
const LIVEKIT_PROBE: Duration = Duration::from_secs(1);

/// `Ok` when a TCP connection to the LiveKit URL's host and port opens within
/// [`LIVEKIT_PROBE`]; else what went wrong.
async fn livekit_reachable(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("ws", url));
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let default_port = if matches!(scheme, "wss" | "https") { 443 } else { 80 };
    let addr = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        host.to_owned()
    } else {
        format!("{host}:{default_port}")
    };
    match tokio::time::timeout(LIVEKIT_PROBE, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("LiveKit unreachable at {addr}: {e}")),
        Err(_) => Err(format!("LiveKit unreachable at {addr}: no answer within {LIVEKIT_PROBE:?}")),
    }
}

/// A route with a wrong method: 405 with the JSON error body.
fn only(r: actix_web::Resource) -> actix_web::Resource {
    r.default_service(web::to(routes::method_not_allowed))
}

/// Error responses that actix-web builds itself (413 payload too large, 404/405 from
/// extractors, ...) get the same `{"error": "..."}` body as ours.
fn json_error_body<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let what = res
        .response()
        .error()
        .map(ToString::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_lowercase());
    let (req, _) = res.into_parts();
    let body = HttpResponse::build(status).json(serde_json::json!({ "error": what }));
    Ok(ErrorHandlerResponse::Response(ServiceResponse::new(req, body).map_into_right_body()))
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
            .wrap(ErrorHandlers::new().default_handler(json_error_body))
            .service(health_check)
            .service(only(web::resource("/metrics").route(web::get().to(routes::metrics))))
            .service(only(web::resource("/recordings").route(web::get().to(routes::list))))
            .service(only(web::resource("/recordings/start").route(web::post().to(routes::start))))
            .service(only(web::resource("/recordings/stop").route(web::post().to(routes::stop))))
            .service(only(web::resource("/recordings/webhooks").route(web::post().to(webhooks::receive))))
            .service(only(web::resource("/recordings/{id}").route(web::get().to(routes::get))))
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

/// A dependency-free probe for container health checks: GET /health-check on `bind` (loopback
/// when it is the unspecified address), true on HTTP 200.
pub fn probe(bind: std::net::IpAddr, port: u16, timeout: Duration) -> bool {
    let ip = if bind.is_unspecified() { std::net::IpAddr::from([127, 0, 0, 1]) } else { bind };
    let addr = SocketAddr::new(ip, port);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else { return false };
    let _ = s.set_read_timeout(Some(timeout));
    let req = "GET /health-check HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 16];
    matches!(s.read(&mut head), Ok(n) if head[..n].starts_with(b"HTTP/1.1 200"))
}
