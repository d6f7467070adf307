//! The control API for tests and benchmarks (`/sim/...`, JSON in and out; errors are
//! `{"error": "..."}` with 400/404/409/500).
//!
//! `drop_signal` semantics: for a synthetic participant, the signalling sockets of every
//! client subscribed to one of its tracks are closed (those clients then resume); for a client
//! participant, its own socket is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::faults::NetFaults;
use super::lifecycle::OpError;
use super::publisher::PubCmd;
use super::room::Role;
use super::Sim;
use crate::media::{Codec, MediaKind};

fn error(status: StatusCode, msg: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": msg }))
}

fn op_error(e: OpError) -> HttpResponse {
    match e {
        OpError::Invalid(m) => error(StatusCode::BAD_REQUEST, &m),
        OpError::NotFound(m) => error(StatusCode::NOT_FOUND, &m),
        OpError::Exists(m) => error(StatusCode::CONFLICT, &m),
        OpError::Internal(m) => error(StatusCode::INTERNAL_SERVER_ERROR, &m),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OpError> {
    serde_json::from_slice(body).map_err(|e| OpError::Invalid(format!("bad JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewParticipant {
    room: String,
    identity: String,
    #[serde(default)]
    video: Option<String>,
    #[serde(default)]
    audio: Option<String>,
    #[serde(default)]
    av_offset_ms: i64,
}

fn check(p: &NewParticipant) -> Result<(Option<Codec>, bool, Duration), OpError> {
    if p.room.is_empty() || p.identity.is_empty() {
        return Err(OpError::Invalid("room and identity must be non-empty".into()));
    }
    let video = match p.video.as_deref() {
        None => None,
        Some(v) => match Codec::parse(v) {
            Some(c) if c.kind() == MediaKind::Video => Some(c),
            _ => {
                return Err(OpError::Invalid(format!(
                    "unsupported video codec {v:?} (vp8, vp9, h264, av1 or null)"
                )))
            }
        },
    };
    let audio = match p.audio.as_deref() {
        None => false,
        Some(a) if a.eq_ignore_ascii_case("opus") => true,
        Some(a) => return Err(OpError::Invalid(format!("unsupported audio codec {a:?} (opus or null)"))),
    };
    if !(0..=10_000).contains(&p.av_offset_ms) {
        return Err(OpError::Invalid("av_offset_ms must be within 0..=10000".into()));
    }
    Ok((video, audio, Duration::from_millis(p.av_offset_ms as u64)))
}

/// `POST /sim/participants`.
pub async fn create(body: web::Bytes, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let r = parse::<NewParticipant>(&body).and_then(|p| {
        let (video, audio, offset) = check(&p)?;
        sim.add_synthetic(&p.room, &p.identity, video, audio, offset)
    });
    match r {
        Ok((sid, tracks)) => {
            let tracks: Vec<_> = tracks
                .iter()
                .map(|t| {
                    let kind =
                        if t.r#type == livekit_protocol::TrackType::Audio as i32 { "audio" } else { "video" };
                    let codec = crate::livekit::codec_from_mime(&t.mime_type).map_or("", Codec::as_str);
                    serde_json::json!({ "sid": t.sid, "kind": kind, "codec": codec })
                })
                .collect();
            HttpResponse::Ok().json(serde_json::json!({ "sid": sid, "tracks": tracks }))
        }
        Err(e) => op_error(e),
    }
}

/// `DELETE /sim/participants/{room}/{identity}`.
pub async fn delete(path: web::Path<(String, String)>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let (room, identity) = path.into_inner();
    if sim.remove(&room, &identity, livekit_protocol::DisconnectReason::ParticipantRemoved) {
        HttpResponse::Ok().json(serde_json::json!({}))
    } else {
        error(StatusCode::NOT_FOUND, &format!("no participant {identity:?} in room {room:?}"))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTrack {
    kind: MediaKind,
    codec: String,
}

/// `POST /sim/participants/{room}/{identity}/tracks`.
pub async fn publish(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let (room, identity) = path.into_inner();
    let r = parse::<NewTrack>(&body).and_then(|t| match Codec::parse(&t.codec) {
        Some(c) if c.kind() == t.kind => sim.publish_track(&room, &identity, c),
        _ => Err(OpError::Invalid(format!(
            "unsupported {:?} codec {:?} (video: vp8, vp9, h264, av1; audio: opus)",
            t.kind, t.codec
        ))),
    });
    match r {
        Ok(t) => HttpResponse::Ok().json(serde_json::json!({ "sid": t.sid })),
        Err(e) => op_error(e),
    }
}

/// `DELETE /sim/participants/{room}/{identity}/tracks/{sid}`.
pub async fn unpublish(path: web::Path<(String, String, String)>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let (room, identity, sid) = path.into_inner();
    match sim.unpublish_track(&room, &identity, &sid) {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({})),
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    #[serde(flatten)]
    net: NetFaults,
    #[serde(default)]
    pause_ms: u64,
    #[serde(default)]
    drop_signal: bool,
    #[serde(default)]
    track: Option<String>,
}

/// `POST /sim/participants/{room}/{identity}/faults`.
pub async fn faults(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let (room, identity) = path.into_inner();
    let r = parse::<FaultBody>(&body).and_then(|f| {
        f.net.validate().map_err(OpError::Invalid)?;
        if f.pause_ms > 600_000 {
            return Err(OpError::Invalid("pause_ms must be at most 600000".into()));
        }
        sim.apply_faults(&room, &identity, &f)
    });
    match r {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({})),
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MuteBody {
    kind: MediaKind,
    muted: bool,
}

/// `POST /sim/participants/{room}/{identity}/mute`.
pub async fn mute(
    path: web::Path<(String, String)>,
    body: web::Bytes,
    sim: web::Data<Arc<Sim>>,
) -> HttpResponse {
    let (room, identity) = path.into_inner();
    match parse::<MuteBody>(&body).and_then(|m| sim.mute(&room, &identity, m.kind, m.muted)) {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({})),
        Err(e) => op_error(e),
    }
}

/// `GET /sim/rooms/{room}/sent`.
pub async fn sent(room: web::Path<String>, sim: web::Data<Arc<Sim>>) -> HttpResponse {
    let logs = {
        let rooms = sim.lock();
        match rooms.get(room.as_str()) {
            Some(r) => Some(r.logs.clone()),
            None => sim.archive.lock().unwrap_or_else(|e| e.into_inner()).get(room.as_str()).cloned(),
        }
    };
    match logs {
        Some(logs) => {
            let tracks: Vec<_> = logs.iter().map(|l| l.to_json()).collect();
            HttpResponse::Ok().json(serde_json::json!({ "room": room.as_str(), "tracks": tracks }))
        }
        None => error(StatusCode::NOT_FOUND, &format!("no room {:?}", room.as_str())),
    }
}

/// Fallback for unknown `/sim` routes and other paths.
pub async fn not_found() -> HttpResponse {
    error(StatusCode::NOT_FOUND, "no such route")
}

impl Sim {
    fn apply_faults(&self, room: &str, identity: &str, f: &FaultBody) -> Result<(), OpError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| OpError::NotFound(format!("no room {room:?}")))?;
        let i = r.find(identity).ok_or_else(|| OpError::NotFound(format!("no participant {identity:?}")))?;
        let tracks: Vec<String> = r.members[i]
            .info
            .tracks
            .iter()
            .map(|t| t.sid.clone())
            .filter(|t| f.track.as_ref().is_none_or(|x| x == t))
            .collect();
        if let Some(t) = &f.track {
            if tracks.is_empty() {
                return Err(OpError::NotFound(format!("participant {identity:?} has no track {t:?}")));
            }
        }
        tracks.iter().for_each(|t| self.faults.set(t, f.net));
        match &r.members[i].role {
            Role::Synthetic(s) => {
                if f.pause_ms > 0 {
                    let _ = s.cmd.try_send(PubCmd::Pause(
                        f.track.clone(),
                        Instant::now() + Duration::from_millis(f.pause_ms),
                    ));
                }
                if f.drop_signal {
                    let subs: Vec<String> = tracks.iter().flat_map(|t| s.fanout.subscribers(t)).collect();
                    for m in r.members.iter().filter(|m| subs.contains(&m.info.sid)) {
                        if let Role::Client(c) = &m.role {
                            c.outbox.detach(None);
                        }
                    }
                }
            }
            Role::Client(c) if f.drop_signal => c.outbox.detach(None),
            Role::Client(_) => {}
        }
        tracing::info!(room, identity, ?f.net, f.pause_ms, f.drop_signal, "faults set");
        Ok(())
    }

    fn mute(&self, room: &str, identity: &str, kind: MediaKind, muted: bool) -> Result<(), OpError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| OpError::NotFound(format!("no room {room:?}")))?;
        let i = r.find(identity).ok_or_else(|| OpError::NotFound(format!("no participant {identity:?}")))?;
        let Role::Synthetic(s) = &r.members[i].role else {
            return Err(OpError::Invalid("only synthetic participants can be muted here".into()));
        };
        let _ = s.cmd.try_send(PubCmd::Mute(kind, muted));
        let want = if kind == MediaKind::Audio {
            livekit_protocol::TrackType::Audio
        } else {
            livekit_protocol::TrackType::Video
        } as i32;
        r.members[i].info.tracks.iter_mut().filter(|t| t.r#type == want).for_each(|t| t.muted = muted);
        r.announce(i);
        Ok(())
    }
}
