//! The HTTP surface (actix-web): liveness (`GET /health-check`), the REST API under
//! `/recordings` (see [`routes`]), the part files for the player (see [`files`]), `GET /metrics`,
//! and the web dashboard at `GET /` (see [`dashboard`]). Handlers only send messages to the
//! [`RecorderSupervisor`](crate::actors::supervisor::RecorderSupervisor); every error becomes
//! `{"error": "..."}` with its status code in [`error`].

pub mod dashboard;
pub mod error;
pub mod files;
pub mod openapi;
pub mod routes;
pub mod webhooks;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::http::{header, Method};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, FromRequest, Handler, HttpResponse, HttpServer, Responder};
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
    /// Cluster mode: Redis, and the way to the other nodes.
    pub cluster: Option<crate::cluster::forward::Forwarder>,
    /// Signs the dashboard player's file links (a random key per process).
    pub links: files::LinkSigner,
}

/// The answer of `GET /health-check`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `degraded` (storage or LiveKit in trouble) or `unavailable` (503).
    pub status: HealthStatus,
    /// Why the recordings disk is not usable (degraded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
    /// Why LiveKit is unreachable or refuses the recorder (degraded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub livekit: Option<String>,
    /// Cluster mode: why Redis cannot be used (degraded: recordings go on, starts and remote
    /// stops answer 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Why the actor tree did not answer (unavailable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// [`Health::status`].
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// All is well.
    Ok,
    /// Serving, but the recordings disk, LiveKit or (cluster mode) Redis is in trouble.
    Degraded,
    /// The actor tree does not answer.
    Unavailable,
}

/// Liveness (200 while the actor tree answers) with the recordings disk's state:
/// `{"status":"ok"}` or `{"status":"degraded","storage":"disk full ..."}`.
#[utoipa::path(
    get,
    path = "/health-check",
    tag = "operations",
    operation_id = "health_check",
    responses(
        (status = 200, description = "The actor tree answers: `ok`, or `degraded` with what is wrong", body = Health),
        (status = 503, description = "The actor tree does not answer (`unavailable`)", body = Health),
    )
)]
pub async fn health_check(state: web::Data<AppState>) -> HttpResponse {
    let health = ractor::call_t!(state.supervisor, SupervisorMsg::GetHealth, 2000);
    match health {
        Ok(h) => {
            // no room connected since the last failure: ask the network whether LiveKit is there
            let livekit = match h.livekit {
                Some(p) => Some(p),
                None => livekit_reachable(&state.livekit_url).await.err(),
            };
            let storage = h.storage.map(|p| p.as_str().to_owned());
            let redis = match &state.cluster {
                Some(c) => c.store().ping().await.err().map(|e| e.to_string()),
                None => None,
            };
            let degraded = storage.is_some() || livekit.is_some() || redis.is_some();
            let status = if degraded { HealthStatus::Degraded } else { HealthStatus::Ok };
            HttpResponse::Ok().json(Health { status, storage, livekit, redis, error: None })
        }
        Err(e) => HttpResponse::ServiceUnavailable().json(Health {
            status: HealthStatus::Unavailable,
            storage: None,
            livekit: None,
            redis: None,
            error: Some(e.to_string()),
        }),
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

/// A route with a wrong method: 405 with the JSON error body and `Allow: <its methods>`.
fn only(r: actix_web::Resource, allow: String) -> actix_web::Resource {
    r.default_service(web::to(move |req| routes::method_not_allowed(req, allow.clone())))
}

/// One registered route: method, path (actix and OpenAPI spell `{id}` alike), handler.
type Entry = (Method, &'static str, actix_web::Route);

fn entry<F, Args>(method: Method, path: &'static str, handler: F) -> Entry
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    (method.clone(), path, web::route().method(method).to(handler))
}

/// Every route the app serves, in matching order (`/recordings/{id}` after the fixed
/// `/recordings/...` paths). The app is built from this table and `tests/recorder_openapi.rs`
/// checks it against the OpenAPI document, so neither can drift from the other.
fn table() -> Vec<Entry> {
    vec![
        entry(Method::GET, "/", dashboard::index),
        entry(Method::GET, "/dashboard.js", dashboard::script),
        entry(Method::GET, "/dashboard.css", dashboard::style),
        entry(Method::GET, "/health-check", health_check),
        entry(Method::GET, "/openapi.json", openapi::serve),
        entry(Method::GET, "/metrics", routes::metrics),
        entry(Method::GET, "/recordings", routes::list),
        entry(Method::POST, "/recordings/start", routes::start),
        entry(Method::POST, "/recordings/stop", routes::stop),
        entry(Method::POST, "/recordings/webhooks", webhooks::receive),
        entry(Method::GET, "/recordings/{id}", routes::get),
        entry(Method::GET, "/recordings/{id}/parts/{part}/files/{file}", files::part_file),
        entry(Method::GET, "/recordings/{id}/parts/{part}/files/{file}/link", files::part_file_link),
    ]
}

/// The `(method, path)` of every registered route.
pub fn registered_routes() -> Vec<(Method, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// Registers [`table`]: one resource per path (a wrong method is a 405).
fn register(cfg: &mut web::ServiceConfig) {
    let mut paths: Vec<(&'static str, Vec<Method>, Vec<actix_web::Route>)> = Vec::new();
    for (method, path, route) in table() {
        match paths.iter_mut().find(|(p, _, _)| *p == path) {
            Some((_, methods, routes)) => {
                methods.push(method);
                routes.push(route);
            }
            None => paths.push((path, vec![method], vec![route])),
        }
    }
    for (path, methods, routes) in paths {
        let resource = routes.into_iter().fold(web::resource(path), |r, route| r.route(route));
        let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        cfg.service(only(resource, allow));
    }
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
            .configure(register)
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
