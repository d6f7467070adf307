//! A minimal LiveKit-compatible server for the client's integration tests, trimmed from the
//! scratch verification crate: actix-web + actix-ws `/rtc` (protobuf signalling, Bearer token)
//! and a str0m ICE-lite SFU side that offers RED+Opus and VP8+RTX like LiveKit, adds an m-line
//! per subscribed track, writes numbered frames and records every frame it wrote (`room.rs`).
//!
//! The room (one `Rtc`, one UDP socket) outlives WebSocket sessions, so a test can close the
//! WebSocket and watch the client resume while media keeps flowing.
#![allow(dead_code)]

mod room;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use livekit_api::access_token::TokenVerifier;
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::{mpsc, Notify};

pub use super::sim_support::{KEY, SECRET};
pub const ROOM: &str = "room1";
pub const PUBLISHER: &str = "PA_pub0001";
pub const AUDIO: &str = "TR_AMaudio1";
pub const VIDEO: &str = "TR_VCvideo1";
const BOT_SID: &str = "PA_bot0001";

/// What the server saw.
#[derive(Default)]
pub struct Stats {
    pub answers: AtomicUsize,
    pub answers_with_red: AtomicUsize,
    pub answers_with_rtx: AtomicUsize,
    pub answer_id_mismatches: AtomicUsize,
    pub trickles: AtomicUsize,
    pub subscriptions: AtomicUsize,
    pub track_settings: AtomicUsize,
    pub plis: AtomicUsize,
    pub resumes: AtomicUsize,
    pub sync_states: AtomicUsize,
    pub leaves: AtomicUsize,
    pub last_query: Mutex<String>,
    /// Every frame written: (track sid, bytes).
    pub sent: Mutex<Vec<(String, Vec<u8>)>>,
}

impl Stats {
    pub fn get(&self, c: &AtomicUsize) -> usize {
        c.load(Ordering::SeqCst)
    }
}

enum RoomInput {
    Ws { tx: mpsc::UnboundedSender<Resp>, reconnect: bool },
    Req(Box<Req>),
    PublisherLeaves,
}

struct AppState {
    verifier: TokenVerifier,
    room: mpsc::UnboundedSender<RoomInput>,
    stats: Arc<Stats>,
    kick: Arc<Notify>,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    kick: Arc<Notify>,
    room: mpsc::UnboundedSender<RoomInput>,
    handle: actix_web::dev::ServerHandle,
}

impl TestServer {
    /// Starts the HTTP server and the room on 127.0.0.1.
    pub async fn start() -> TestServer {
        for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"] {
            std::env::remove_var(var);
        }
        let stats = Arc::new(Stats::default());
        let (room_tx, room_rx) = mpsc::unbounded_channel();
        tokio::spawn(room::run_room(room_rx, stats.clone()));
        let kick = Arc::new(Notify::new());
        let state = web::Data::new(AppState {
            verifier: TokenVerifier::with_api_key(KEY, SECRET),
            room: room_tx.clone(),
            stats: stats.clone(),
            kick: kick.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/rtc", web::get().to(rtc_handler))
                .route("/rtc/validate", web::get().to(validate_handler))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind test server");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        TestServer { addr, stats, kick, room: room_tx, handle }
    }

    /// The URL the client connects to.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Closes the current WebSocket (the room and its media stay).
    pub fn kick(&self) {
        self.kick.notify_waiters();
    }

    /// Sends a ParticipantUpdate saying the publisher left.
    pub fn publisher_leaves(&self) {
        let _ = self.room.send(RoomInput::PublisherLeaves);
    }

    /// Frames the server wrote for `track`.
    pub fn sent(&self, track: &str) -> Vec<Vec<u8>> {
        let sent = self.stats.sent.lock().unwrap();
        sent.iter().filter(|(t, _)| t == track).map(|(_, b)| b.clone()).collect()
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(str::to_owned)
}

async fn validate_handler(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    match bearer(&req).map(|t| state.verifier.verify(&t)) {
        Some(Ok(_)) => HttpResponse::Ok().body("success"),
        _ => HttpResponse::Unauthorized().body("invalid token"),
    }
}

async fn rtc_handler(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<HashMap<String, String>>,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    *state.stats.last_query.lock().unwrap() = req.query_string().to_owned();
    let token = bearer(&req).or_else(|| query.get("access_token").cloned());
    let claims = match token.map(|t| state.verifier.verify(&t)) {
        Some(Ok(c)) if c.video.room_join => c,
        _ => return Ok(HttpResponse::Unauthorized().body("bad token")),
    };
    let reconnect = query.get("reconnect").is_some_and(|v| v == "1");
    let (resp, session, stream) = actix_ws::handle(&req, body)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = state.room.send(RoomInput::Ws { tx, reconnect });
    let _ = claims;
    actix_web::rt::spawn(ws_session(session, stream, rx, state.into_inner()));
    Ok(resp)
}

async fn ws_session(
    mut session: actix_ws::Session,
    mut stream: actix_ws::MessageStream,
    mut rx: mpsc::UnboundedReceiver<Resp>,
    state: Arc<AppState>,
) {
    let kicked = state.kick.clone();
    loop {
        tokio::select! {
            msg = stream.recv() => {
                let Some(Ok(actix_ws::Message::Binary(b))) = msg else {
                    if matches!(msg, Some(Ok(_))) { continue } else { break }
                };
                if let Ok(proto::SignalRequest { message: Some(m) }) = proto::SignalRequest::decode(b) {
                    let _ = state.room.send(RoomInput::Req(Box::new(m)));
                }
            }
            out = rx.recv() => {
                let Some(m) = out else { break };
                let bytes = proto::SignalResponse { message: Some(m) }.encode_to_vec();
                if session.binary(bytes).await.is_err() { break }
            }
            _ = kicked.notified() => break,
        }
    }
    let _ = session.close(None).await;
}
