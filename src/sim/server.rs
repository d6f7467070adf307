//! The actix-web application: routes, and starting the HTTP server.
//!
//! Routes: `GET /` (health), `GET /rtc`, `GET /rtc/validate`, `/rtc/v1` (404, so clients
//! fall back to v0), Twirp under `/twirp/livekit.RoomService/`, the control API under `/sim`.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

use super::signal::bearer;
use super::{control, signal, twirp, Sim};

async fn validate(
    req: HttpRequest,
    query: web::Query<std::collections::HashMap<String, String>>,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let token = bearer(&req).or_else(|| query.get("access_token").cloned());
    match token.map(|t| sim.verifier.verify(&t)) {
        Some(Ok(c)) if c.video.room_join => HttpResponse::Ok().body("success"),
        Some(Ok(_)) => HttpResponse::Unauthorized().body("token lacks the roomJoin grant"),
        Some(Err(e)) => HttpResponse::Unauthorized().body(format!("invalid token: {e}")),
        None => HttpResponse::Unauthorized().body("no access token"),
    }
}

/// Binds and runs the server on the current runtime; returns the bound address.
pub fn run(sim: Arc<Sim>, addr: SocketAddr) -> std::io::Result<(SocketAddr, actix_web::dev::ServerHandle)> {
    let data = web::Data::new(sim);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .route("/", web::get().to(|| async { "OK" }))
            .route("/rtc", web::get().to(signal::rtc))
            .route("/rtc/validate", web::get().to(validate))
            .route("/rtc/v1", web::get().to(HttpResponse::NotFound))
            .route("/twirp/livekit.RoomService/{method}", web::post().to(twirp::handle))
            .route("/sim/participants", web::post().to(control::create))
            .route("/sim/participants/{room}/{identity}", web::delete().to(control::delete))
            .route("/sim/participants/{room}/{identity}/faults", web::post().to(control::faults))
            .route("/sim/participants/{room}/{identity}/mute", web::post().to(control::mute))
            .route("/sim/participants/{room}/{identity}/tracks", web::post().to(control::publish))
            .route("/sim/participants/{room}/{identity}/tracks/{sid}", web::delete().to(control::unpublish))
            .route("/sim/rooms/{room}/sent", web::get().to(control::sent))
            .default_service(web::to(control::not_found))
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
