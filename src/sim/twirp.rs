//! Twirp RoomService (`POST /twirp/livekit.RoomService/{method}`, LIVEKIT-PROTOCOL.md §7):
//! protobuf or protojson bodies (by `Content-Type`), Bearer auth with the grants the real
//! server checks, Twirp JSON errors with `code` and `msg`.
//!
//! Deviation: a token without the needed grant gets `permission_denied` (403); the real
//! server answers `unauthenticated` (401) there.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use livekit_api::access_token::Claims;
use livekit_protocol as proto;
use prost::Message;
use serde::{de::DeserializeOwned, Serialize};

use super::signal::bearer;
use super::Sim;

/// A Twirp error.
#[derive(Debug)]
pub struct TwirpError {
    status: StatusCode,
    code: &'static str,
    msg: String,
}

fn err(status: StatusCode, code: &'static str, msg: impl Into<String>) -> TwirpError {
    TwirpError { status, code, msg: msg.into() }
}

impl TwirpError {
    fn response(&self) -> HttpResponse {
        let body = serde_json::json!({ "code": self.code, "msg": self.msg });
        HttpResponse::build(self.status).content_type("application/json").body(body.to_string())
    }
}

/// Request body format; replies use the same.
#[derive(Clone, Copy)]
struct Format {
    json: bool,
}

impl Format {
    fn decode<T: Message + Default + DeserializeOwned>(self, body: &[u8]) -> Result<T, TwirpError> {
        let r = if self.json {
            serde_json::from_slice(body).map_err(|e| e.to_string())
        } else {
            T::decode(body).map_err(|e| e.to_string())
        };
        r.map_err(|e| err(StatusCode::BAD_REQUEST, "malformed", format!("bad request body: {e}")))
    }

    fn reply<T: Message + Serialize>(self, v: &T) -> Result<HttpResponse, TwirpError> {
        Ok(if self.json {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(serde_json::to_string(v).unwrap_or_default())
        } else {
            HttpResponse::Ok().content_type("application/protobuf").body(v.encode_to_vec())
        })
    }
}

/// The Twirp endpoint.
pub async fn handle(
    req: HttpRequest,
    method: web::Path<String>,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let json = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let claims = match bearer(&req).map(|t| sim.verifier.verify(&t)) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return err(StatusCode::UNAUTHORIZED, "unauthenticated", format!("invalid token: {e}")).response()
        }
        None => {
            return err(StatusCode::UNAUTHORIZED, "unauthenticated", "missing Authorization bearer token")
                .response()
        }
    };
    match dispatch(&sim, &method, &claims, Format { json }, &body) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn need(ok: bool, what: &str) -> Result<(), TwirpError> {
    if ok {
        Ok(())
    } else {
        Err(err(StatusCode::FORBIDDEN, "permission_denied", format!("permissions denied: {what}")))
    }
}

fn admin(c: &Claims, room: &str) -> Result<(), TwirpError> {
    need(c.video.room_admin && c.video.room == room, "needs roomAdmin for this room")
}

fn dispatch(sim: &Sim, method: &str, c: &Claims, f: Format, body: &[u8]) -> Result<HttpResponse, TwirpError> {
    match method {
        "ListRooms" => {
            need(c.video.room_list, "needs roomList")?;
            let r: proto::ListRoomsRequest = f.decode(body)?;
            f.reply(&proto::ListRoomsResponse { rooms: sim.list_rooms(&r.names) })
        }
        "CreateRoom" => {
            need(c.video.room_create, "needs roomCreate")?;
            let r: proto::CreateRoomRequest = f.decode(body)?;
            if r.name.is_empty() {
                return Err(err(StatusCode::BAD_REQUEST, "invalid_argument", "room name is required"));
            }
            f.reply(&sim.create_room(&r.name))
        }
        "DeleteRoom" => {
            need(c.video.room_create, "needs roomCreate")?;
            let r: proto::DeleteRoomRequest = f.decode(body)?;
            found(sim.delete_room(&r.room), "requested room does not exist")?;
            f.reply(&proto::DeleteRoomResponse {})
        }
        _ => room_method(sim, method, c, f, body),
    }
}

fn found(ok: bool, msg: &str) -> Result<(), TwirpError> {
    if ok {
        Ok(())
    } else {
        Err(err(StatusCode::NOT_FOUND, "not_found", msg))
    }
}

fn room_method(
    sim: &Sim,
    method: &str,
    c: &Claims,
    f: Format,
    body: &[u8],
) -> Result<HttpResponse, TwirpError> {
    match method {
        "ListParticipants" => {
            let r: proto::ListParticipantsRequest = f.decode(body)?;
            admin(c, &r.room)?;
            f.reply(&proto::ListParticipantsResponse { participants: sim.participants(&r.room) })
        }
        "GetParticipant" => {
            let r: proto::RoomParticipantIdentity = f.decode(body)?;
            admin(c, &r.room)?;
            let p = sim.participants(&r.room).into_iter().find(|p| p.identity == r.identity);
            f.reply(&p.ok_or_else(|| err(StatusCode::NOT_FOUND, "not_found", "participant does not exist"))?)
        }
        "RemoveParticipant" => {
            let r: proto::RoomParticipantIdentity = f.decode(body)?;
            admin(c, &r.room)?;
            found(
                sim.remove(&r.room, &r.identity, proto::DisconnectReason::ParticipantRemoved),
                "participant does not exist",
            )?;
            f.reply(&proto::RemoveParticipantResponse {})
        }
        "UpdateSubscriptions" => {
            let r: proto::UpdateSubscriptionsRequest = f.decode(body)?;
            admin(c, &r.room)?;
            let mut tracks = r.track_sids.clone();
            tracks.extend(r.participant_tracks.iter().flat_map(|p| p.track_sids.iter().cloned()));
            found(
                sim.update_subscriptions(&r.room, &r.identity, &tracks, r.subscribe),
                "participant does not exist",
            )?;
            f.reply(&proto::UpdateSubscriptionsResponse {})
        }
        other => Err(err(
            StatusCode::NOT_FOUND,
            "bad_route",
            format!("no such method: livekit.RoomService/{other}"),
        )),
    }
}

impl Sim {
    fn list_rooms(&self, names: &[String]) -> Vec<proto::Room> {
        let rooms = self.lock();
        rooms.values().filter(|r| names.is_empty() || names.contains(&r.name)).map(|r| r.info()).collect()
    }

    fn create_room(&self, name: &str) -> proto::Room {
        let mut rooms = self.lock();
        self.ensure(&mut rooms, name).info()
    }

    fn delete_room(&self, name: &str) -> bool {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(name) else { return false };
        while !r.members.is_empty() {
            self.remove_at(r, 0, proto::DisconnectReason::RoomDeleted);
        }
        self.finish(&mut rooms, name);
        true
    }

    fn participants(&self, room: &str) -> Vec<proto::ParticipantInfo> {
        let rooms = self.lock();
        rooms.get(room).map(|r| r.members.iter().map(|m| m.info.clone()).collect()).unwrap_or_default()
    }

    fn update_subscriptions(&self, room: &str, identity: &str, tracks: &[String], on: bool) -> bool {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return false };
        let Some(i) = r.find(identity) else { return false };
        tracks.iter().for_each(|t| r.subscribe(i, t, on));
        true
    }
}
