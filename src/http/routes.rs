//! REST handlers: they parse and validate, send one message to the supervisor with `call_t!`
//! (timeout -> 503), and translate the reply. No recording logic lives here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;
use crate::actors::supervisor::{StartRequest, StopTarget, SupervisorMsg};
use crate::recording::{H264Container, Layout, Profile, RecorderError, Status};

/// Timeout for calls that only read the table.
const QUERY_MS: u64 = 5_000;
/// Timeout for a stop (finalizing a file).
const STOP_MS: u64 = 15_000;
/// Longest accepted room name, identity or template.
const MAX_FIELD: usize = 256;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    room: String,
    participant: String,
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    layout: Layout,
    filename: Option<String>,
    #[serde(default)]
    h264_container: H264Container,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    id: Option<String>,
    room: Option<String>,
    participant: Option<String>,
}

/// Query of `GET /recordings`.
#[derive(Deserialize)]
pub struct ListQuery {
    room: Option<String>,
    status: Option<Status>,
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A room, identity, id or template as the API accepts it (webhooks too): trimmed, 1-256
/// characters, no control characters.
pub(super) fn field(name: &str, v: &str) -> Result<String, ApiError> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be 1-{MAX_FIELD} characters without control characters"
        )));
    }
    Ok(v.to_owned())
}

/// Checks `Authorization: Bearer <API_TOKEN>` when a token is configured.
pub fn authorize(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let Some(want) = &state.api_token else { return Ok(()) };
    let got = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match got {
        Some(t) if constant_time_eq(t.trim().as_bytes(), want.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("wrong API token".into())),
        None => Err(ApiError::Unauthorized("missing `Authorization: Bearer <API_TOKEN>`".into())),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /recordings/start`.
pub async fn start(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let b: StartBody = parse(&body)?;
    let template = match b.filename {
        Some(t) => field("filename", &t)?,
        None => state.filename_template.clone(),
    };
    let start = StartRequest {
        room: field("room", &b.room)?,
        identity: field("participant", &b.participant)?,
        profile: b.profile,
        layout: b.layout,
        template,
        h264_container: b.h264_container,
    };
    let (info, created) = ractor::call_t!(state.supervisor, SupervisorMsg::Start, QUERY_MS, start)??;
    Ok(if created { HttpResponse::Created() } else { HttpResponse::Ok() }.json(info))
}

/// `POST /recordings/stop`.
pub async fn stop(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let b: StopBody = parse(&body)?;
    let target = match (b.id, b.room, b.participant) {
        (Some(id), None, None) => StopTarget::Id(field("id", &id)?),
        (None, Some(room), Some(p)) => {
            StopTarget::Participant { room: field("room", &room)?, identity: field("participant", &p)? }
        }
        _ => return Err(ApiError::bad_request("give either `id`, or `room` and `participant`")),
    };
    let info = ractor::call_t!(state.supervisor, SupervisorMsg::Stop, STOP_MS, target)??;
    Ok(HttpResponse::Ok().json(info))
}

/// `GET /recordings`.
pub async fn list(
    req: HttpRequest,
    q: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let q = q.into_inner();
    let build = |reply| SupervisorMsg::ListRecordings { room: q.room, status: q.status, reply };
    let list = ractor::call_t!(state.supervisor, build, QUERY_MS)?;
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /recordings/{id}`.
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let info = ractor::call_t!(state.supervisor, SupervisorMsg::GetRecording, QUERY_MS, id.into_inner())??;
    Ok(HttpResponse::Ok().json(info))
}

/// `GET /metrics` (Prometheus text).
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = ractor::call_t!(state.supervisor, SupervisorMsg::GetMetrics, QUERY_MS)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}

/// Unknown routes.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(RecorderError::NotFound("no such route".into()).into())
}

/// A known route with a method it does not take.
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    HttpResponse::MethodNotAllowed().json(
        serde_json::json!({ "error": format!("method {} not allowed on {}", req.method(), req.path()) }),
    )
}

/// Malformed query strings (`?status=bogus`) are 400 with the JSON error body.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query: {err}")).into()
}
