//! `GET /rtc`: LiveKit v0 signalling over a WebSocket of binary protobuf messages
//! (LIVEKIT-PROTOCOL.md §1, §2, §5).
//!
//! Invariants: the JoinResponse (or, on resume, the ReconnectResponse) is the first message;
//! everything else the room wants this client to see goes through its outbox, which the
//! session drains in order; a session whose outbox is detached (resume elsewhere,
//! `drop_signal`, removal) closes its socket.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::AggregatedMessage;
use livekit_protocol as proto;
use prost::Message as _;
use proto::signal_request::Message as Req;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;

use super::ids::unix_ms;
use super::lifecycle::OpError;
use super::peer::PeerCmd;
use super::Sim;

/// Largest signal request the simulator reads, in one frame or aggregated from continuations.
///
/// The real server reads with gorilla/websocket and sets no read limit (none in
/// `pkg/service/rtcservice.go` or `wsprotocol.go`), so requests of any size get through. actix-ws
/// would cut at 64 KiB, and a subscriber answer outgrows that at about 30 m-lines (a recorder of
/// 15 A/V participants): the session then dropped at every answer and at the SyncState after
/// each resume, a reconnect storm the real server does not have. 16 MiB is the frame limit of
/// the clients' own WebSocket stack (tungstenite), far above any SDP.
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// Who a session speaks for.
struct Who {
    room: String,
    identity: String,
    sid: String,
}

/// The token from `Authorization: Bearer` or `?access_token=`.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    header.map(|s| s.strip_prefix("Bearer ").unwrap_or(s).trim().to_owned())
}

fn flag(q: &HashMap<String, String>, name: &str, default: bool) -> bool {
    q.get(name).map_or(default, |v| v == "1" || v == "true")
}

fn text(status: actix_web::http::StatusCode, msg: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/plain").body(msg.to_owned())
}

/// Validates the token and upgrades to a WebSocket session.
pub async fn rtc(
    req: HttpRequest,
    body: web::Payload,
    query: web::Query<HashMap<String, String>>,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let Some(token) = bearer(&req).or_else(|| query.get("access_token").cloned()) else {
        return text(StatusCode::UNAUTHORIZED, "no access token");
    };
    let claims = match sim.verifier.verify(&token) {
        Ok(c) => c,
        Err(e) => return text(StatusCode::UNAUTHORIZED, &format!("invalid token: {e}")),
    };
    if !claims.video.room_join || claims.video.room.is_empty() {
        return text(StatusCode::UNAUTHORIZED, "token lacks the roomJoin grant for a room");
    }
    if claims.sub.is_empty() {
        return text(StatusCode::BAD_REQUEST, "token has no identity");
    }
    let (resp, session, stream) = match actix_ws::handle(&req, body) {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_REQUEST, &format!("not a WebSocket upgrade: {e}")),
    };
    let stream = stream
        .max_frame_size(MAX_REQUEST_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_REQUEST_BYTES);
    let sim = sim.get_ref().clone();
    let reconnect = flag(&query, "reconnect", false);
    let auto_subscribe = flag(&query, "auto_subscribe", true);
    actix_web::rt::spawn(async move {
        let (tx, rx) = mpsc::channel(512);
        let (room, identity) = (claims.video.room.clone(), claims.sub.clone());
        let (first, sid, gen) = if reconnect {
            match sim.resume(&room, &identity, tx) {
                Some((sid, gen)) => (None, sid, gen),
                None => return refuse_resume(session).await,
            }
        } else {
            match sim.join(&claims, auto_subscribe, tx) {
                Ok(j) => (Some(Resp::Join(j.join)), j.sid, j.gen),
                Err(e) => return refuse_join(session, e).await,
            }
        };
        let who = Who { room, identity, sid };
        run_session(session, stream, sim, who, gen, rx, first).await;
    });
    resp
}

async fn send(ws: &mut actix_ws::Session, msg: Resp) -> Result<(), actix_ws::Closed> {
    ws.binary(proto::SignalResponse { message: Some(msg) }.encode_to_vec()).await
}

/// Resume of an unknown participant: `leave{STATE_MISMATCH, RECONNECT}`, then close.
async fn refuse_resume(mut ws: actix_ws::Session) {
    let leave = proto::LeaveRequest {
        reason: proto::DisconnectReason::StateMismatch as i32,
        action: proto::leave_request::Action::Reconnect as i32,
        ..Default::default()
    };
    let _ = send(&mut ws, Resp::Leave(leave)).await;
    let _ = ws.close(None).await;
}

async fn refuse_join(mut ws: actix_ws::Session, e: OpError) {
    tracing::warn!("join refused: {e:?}");
    let leave =
        proto::LeaveRequest { reason: proto::DisconnectReason::JoinFailure as i32, ..Default::default() };
    let _ = send(&mut ws, Resp::Leave(leave)).await;
    let _ = ws.close(None).await;
}

enum End {
    /// The socket broke or the client closed it: keep the participant for a resume.
    Lost,
    /// Our side detached it (resume elsewhere, drop_signal, removal) or the client left.
    Done,
}

async fn run_session(
    mut ws: actix_ws::Session,
    mut stream: actix_ws::AggregatedMessageStream,
    sim: Arc<Sim>,
    who: Who,
    gen: u64,
    mut rx: mpsc::Receiver<Resp>,
    first: Option<Resp>,
) {
    if let Some(m) = first {
        if send(&mut ws, m).await.is_err() {
            return sim.signal_closed(&who.room, &who.sid, gen);
        }
    }
    let end = loop {
        tokio::select! {
            out = rx.recv() => match out {
                Some(m) => if send(&mut ws, m).await.is_err() { break End::Lost },
                None => break End::Done,
            },
            msg = stream.recv() => match msg {
                Some(Ok(AggregatedMessage::Binary(b))) => {
                    if !request(&sim, &who, &mut ws, &b).await { break End::Done }
                }
                Some(Ok(AggregatedMessage::Ping(p))) => { let _ = ws.pong(&p).await; }
                Some(Err(e)) => {
                    tracing::warn!(room = %who.room, identity = %who.identity, "signal read failed: {e}");
                    break End::Lost
                }
                Some(Ok(AggregatedMessage::Close(_))) | None => break End::Lost,
                Some(Ok(_)) => {}
            },
        }
    };
    if matches!(end, End::Lost) {
        tracing::info!(room = %who.room, identity = %who.identity, "signal connection lost");
        sim.signal_closed(&who.room, &who.sid, gen);
    }
    let _ = ws.close(None).await;
}

/// Handles one request; false when the client left.
async fn request(sim: &Sim, who: &Who, ws: &mut actix_ws::Session, bytes: &[u8]) -> bool {
    let msg = match proto::SignalRequest::decode(bytes) {
        Ok(proto::SignalRequest { message: Some(m) }) => m,
        Ok(_) => return true,
        Err(e) => {
            tracing::debug!(identity = %who.identity, "undecodable signal request: {e}");
            return true;
        }
    };
    match msg {
        Req::PingReq(p) => {
            let _ = send(
                ws,
                Resp::PongResp(proto::Pong { last_ping_timestamp: p.timestamp, timestamp: unix_ms() }),
            )
            .await;
        }
        Req::Ping(_) => {
            let _ = send(ws, Resp::Pong(unix_ms())).await;
        }
        Req::Answer(sd) => sim.to_peer(&who.room, &who.sid, PeerCmd::Answer(sd.sdp)),
        Req::Trickle(t) if t.target == proto::SignalTarget::Subscriber as i32 => {
            sim.to_peer(&who.room, &who.sid, PeerCmd::Candidate(t.candidate_init))
        }
        Req::Subscription(s) => subscription(sim, who, &s),
        Req::SyncState(s) => {
            if let Some(sub) = &s.subscription {
                subscription(sim, who, sub);
            }
        }
        Req::TrackSetting(s) => {
            tracing::debug!(identity = %who.identity, tracks = ?s.track_sids, disabled = s.disabled, "track settings accepted")
        }
        Req::Leave(_) => {
            sim.remove(&who.room, &who.identity, proto::DisconnectReason::ClientInitiated);
            return false;
        }
        other => tracing::debug!(identity = %who.identity, "ignoring signal request {other:?}"),
    }
    true
}

fn subscription(sim: &Sim, who: &Who, s: &proto::UpdateSubscription) {
    let mut tracks: Vec<String> = s.track_sids.clone();
    tracks.extend(s.participant_tracks.iter().flat_map(|p| p.track_sids.iter().cloned()));
    tracks.dedup();
    sim.subscription(&who.room, &who.sid, &tracks, s.subscribe);
}
