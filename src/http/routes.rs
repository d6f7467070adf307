//! REST handlers: they parse and validate, send one message to the supervisor with `call_t!`
//! (timeout -> 503), and translate the reply. No recording logic lives here.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::actors::supervisor::{
    self, ListFrom, ListKey, ListQuery, StartRequest, StopTarget, SupervisorMsg,
};
use crate::cluster::forward::{Forwarded, Forwarder};
use crate::ids::RecordingId;
use crate::recording::{H264Container, Layout, Profile, RecorderError, RecordingInfo, Status};

/// Timeout for calls that only read the table.
const QUERY_MS: u64 = 5_000;
/// Timeout for a stop (finalizing a file).
const STOP_MS: u64 = 15_000;
/// Longest accepted room name, identity or template.
const MAX_FIELD: usize = 256;
/// `GET /recordings` without `limit`.
const DEFAULT_LIMIT: usize = 100;
/// The largest `limit` of `GET /recordings`.
const MAX_LIMIT: usize = 1000;
/// The response header with the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// What `POST /recordings/start` takes.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    /// Room name.
    #[schema(schema_with = field_schema)]
    room: String,
    /// Participant identity.
    #[schema(schema_with = field_schema)]
    participant: String,
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    layout: Layout,
    /// File name template (default `FILENAME_TEMPLATE`).
    #[schema(schema_with = optional_field_schema)]
    filename: Option<String>,
    #[serde(default)]
    h264_container: H264Container,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StopBody {
    id: Option<String>,
    room: Option<String>,
    participant: Option<String>,
}

/// What `POST /recordings/stop` takes (the contract of [`StopBody`], which parses it with
/// its own error message): the recording's id, or its room and participant.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged, deny_unknown_fields)]
pub(super) enum StopRequest {
    /// By recording id.
    Id {
        /// Recording id (`RC_...`).
        #[schema(schema_with = field_schema)]
        id: String,
    },
    /// The live (or latest) recording of a participant.
    Participant {
        /// Room name.
        #[schema(schema_with = field_schema)]
        room: String,
        /// Participant identity.
        #[schema(schema_with = field_schema)]
        participant: String,
    },
}

/// A room, identity, id or template as [`field`] accepts it: 1-256 characters (after
/// trimming), at least one that is not white space, none a control character.
pub(super) const FIELD_PATTERN: &str =
    r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$";

fn field_builder() -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_FIELD))
        .pattern(Some(FIELD_PATTERN))
}

/// The schema of a [`field`].
pub(super) fn field_schema() -> utoipa::openapi::Object {
    field_builder().build()
}

/// The schema of an optional [`field`] (absent or `null`).
fn optional_field_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    field_builder().schema_type(SchemaType::from_iter([Type::String, Type::Null])).build()
}

/// Query of `GET /recordings` (an unknown parameter is a 400, not silently ignored).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this room.
    #[param(schema_with = field_schema)]
    room: Option<String>,
    /// Only this participant identity.
    #[param(schema_with = field_schema)]
    participant: Option<String>,
    /// Only this status.
    #[param(inline)]
    status: Option<Status>,
    /// At most this many (default 100): a decimal integer 1-1000. Written in the contract as
    /// the text the daemon parses (a query value is text on the wire: an "integer" schema would
    /// make `limit=1` both valid and, as the string "1", invalid).
    #[param(value_type = Option<String>, pattern = r"^\+?0*(?:[1-9][0-9]{0,2}|1000)$")]
    limit: Option<usize>,
    /// Start after this recording (its id; it must still be in the table). Not with `cursor`.
    #[param(schema_with = field_schema)]
    after: Option<String>,
    /// The `X-Next-Cursor` of the previous page. Not with `after`.
    #[param(schema_with = field_schema)]
    cursor: Option<String>,
}

impl ListParams {
    fn into_query(self) -> Result<ListQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(format!("`limit` must be 1-{MAX_LIMIT}, not {limit}")));
        }
        let after = match (self.after, self.cursor) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("give `after` or `cursor`, not both")),
            (Some(id), None) => Some(ListFrom::Id(field("after", &id)?)),
            (None, Some(c)) => Some(ListFrom::Key(decode_cursor(&c)?)),
            (None, None) => None,
        };
        Ok(ListQuery {
            room: self.room.map(|r| field("room", &r)).transpose()?,
            participant: self.participant.map(|p| field("participant", &p)).transpose()?,
            status: self.status,
            limit,
            after,
        })
    }
}

/// The opaque cursor of the page after `key`: URL-safe base64 of `<started ms>:<id>`, a place
/// in the order (valid even when that recording has expired since).
fn encode_cursor(key: &ListKey) -> String {
    use base64::Engine;
    let raw = format!("{}:{}", key.started_ms, key.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(c: &str) -> Result<ListKey, ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request("`cursor` is not one this API returned");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, id) = raw.split_once(':').ok_or_else(bad)?;
    let started_ms = ms.parse().map_err(|_| bad())?;
    Ok(ListKey { started_ms, id: field("cursor", id).map_err(|_| bad())? })
}

/// The `Link` target of the next page: this request's query without its `after`/`cursor`, plus
/// the new cursor.
fn next_link(req: &HttpRequest, cursor: &str) -> String {
    let mut q: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.starts_with("after=") && !kv.starts_with("cursor="))
        .collect();
    let c = format!("cursor={cursor}");
    q.push(&c);
    format!("<{}?{}>; rel=\"next\"", req.path(), q.join("&"))
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// A room, identity, id or template as the API accepts it (webhooks too): no control
/// characters (also not at the ends: a tab or form feed is refused, not trimmed away), then
/// trimmed, 1-256 characters.
pub(super) fn field<T: From<String>>(name: &str, v: &str) -> Result<T, ApiError> {
    let control = v.chars().any(char::is_control);
    let v = v.trim();
    if control || v.is_empty() || v.chars().count() > MAX_FIELD {
        return Err(ApiError::bad_request(format!(
            "`{name}` must be 1-{MAX_FIELD} characters without control characters"
        )));
    }
    Ok(T::from(v.to_owned()))
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
#[utoipa::path(
    post,
    path = "/recordings/start",
    tag = "recordings",
    operation_id = "start",
    request_body = StartBody,
    security(("api_token" = [])),
    responses(
        (status = 201, description = "A new recording (`pending` until the participant has joined and published)", body = RecordingInfo,
            links(
                ("GetRecording" = (operation_id = "get", parameters(("id" = "$response.body#/id")))),
                ("StopRecording" = (operation_id = "stop", request_body = json!({"id": "$response.body#/id"}))),
            )),
        (status = 200, description = "The recording already live for this room and participant", body = RecordingInfo,
            links(
                ("GetRecording" = (operation_id = "get", parameters(("id" = "$response.body#/id")))),
                ("StopRecording" = (operation_id = "stop", request_body = json!({"id": "$response.body#/id"}))),
            )),
        (status = 400, description = "Invalid JSON body or field, or a file name template that cannot be used", body = ErrorBody),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "Shutting down, at `MAX_CONCURRENT_RECORDINGS`, the recorder did not answer in time, or (cluster mode) Redis is unreachable", body = ErrorBody),
        (status = 507, description = "The recordings disk is full or not writable", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/recordings/stop",
    tag = "recordings",
    operation_id = "stop",
    request_body = StopRequest,
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The finalized recording (`complete`, `uploading` with S3, `failed` if it never got media)", body = RecordingInfo,
            links(("GetStopped" = (operation_id = "get", parameters(("id" = "$response.body#/id")))))),
        (status = 400, description = "Invalid JSON body or field, or neither `id` nor `room` and `participant`", body = ErrorBody),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 409, description = "The recording cannot be stopped in its state", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time, or (cluster mode) Redis or the owning node is unreachable", body = ErrorBody),
    )
)]
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
    let Some(c) = state.cluster.as_ref().filter(|_| !forwarded(&req)) else {
        let info = ractor::call_t!(state.supervisor, SupervisorMsg::Stop, STOP_MS, target)??;
        return Ok(HttpResponse::Ok().json(info));
    };
    // cluster mode: a live recording another node owns is stopped there; Redis unreachable,
    // this node still stops its own
    let owner = owner_elsewhere(c, &target).await;
    if let Ok(Some((id, node))) = &owner {
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        let body = serde_json::json!({ "id": id }).to_string().into_bytes();
        return Ok(relay(c.post(node, "/recordings/stop", body, auth).await.map_err(cluster_down)?));
    }
    match ractor::call_t!(state.supervisor, SupervisorMsg::Stop, STOP_MS, target.clone())? {
        Err(RecorderError::NotFound(what)) => match (owner, target) {
            (Err(e), _) => Err(cluster_down(e)),
            // ended on another node: as Redis has it
            (Ok(_), StopTarget::Id(id)) => match c.store().get(&id).await.map_err(cluster_down)? {
                Some(s) => Ok(HttpResponse::Ok().json(s.info)),
                None => Err(RecorderError::NotFound(what).into()),
            },
            (Ok(_), StopTarget::Participant { .. }) => Err(RecorderError::NotFound(what).into()),
        },
        r => Ok(HttpResponse::Ok().json(r?)),
    }
}

/// Whether another node forwarded this request (it is answered here, never forwarded again).
pub(super) fn forwarded(req: &HttpRequest) -> bool {
    req.headers().contains_key(crate::cluster::FORWARDED)
}

/// 503 for a cluster that cannot be asked.
pub(super) fn cluster_down(e: impl std::fmt::Display) -> ApiError {
    ApiError::Recorder(RecorderError::Unavailable(format!("cluster mode: {e}")))
}

/// The owner's answer, passed on.
pub(super) fn relay(f: Forwarded) -> HttpResponse {
    let status =
        actix_web::http::StatusCode::from_u16(f.status).unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY);
    HttpResponse::build(status).content_type("application/json").body(f.body)
}

/// The live recording `target` names and its node, when that node is another one.
async fn owner_elsewhere(
    c: &Forwarder,
    target: &StopTarget,
) -> Result<Option<(RecordingId, String)>, crate::cluster::store::StoreError> {
    let store = c.store();
    let found = match target {
        StopTarget::Id(id) => {
            store.get(id).await?.filter(|s| s.info.status.is_live()).map(|s| (s.info.id, s.node))
        }
        StopTarget::Participant { room, identity } => {
            store.holder(room, identity).await?.map(|h| (h.id, h.node))
        }
    };
    Ok(found.filter(|(_, node)| node != c.node_id()))
}

/// `GET /recordings`: a JSON array (newest started first), at most `limit`; when there is
/// more, the `X-Next-Cursor` header (and `Link: <...>; rel="next"`) says where it goes on.
#[utoipa::path(
    get,
    path = "/recordings",
    tag = "recordings",
    operation_id = "list",
    params(ListParams),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "Recordings, newest started first, at most `limit`", body = Vec<RecordingInfo>,
            headers(
                ("X-Next-Cursor" = String, description = "Only when more match: the `cursor` of the next page"),
                ("Link" = String, description = "Only when more match: `</recordings?<same query>&cursor=<cursor>>; rel=\"next\"`"),
            )),
        (status = 400, description = "`limit` outside 1-1000 or not a number, an unknown `status` or parameter, an invalid field, a cursor this API did not return, `after` an unknown id, or `after` and `cursor` together", body = ErrorBody),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn list(
    req: HttpRequest,
    q: web::Query<ListParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let query = q.into_inner().into_query()?;
    let page = match &state.cluster {
        // cluster mode: every node answers from Redis, with the single node's semantics
        Some(c) => {
            let all = c.store().all().await.map_err(cluster_down)?;
            let items =
                all.iter().map(|s| (ListKey { started_ms: s.started_ms, id: s.info.id.clone() }, &s.info));
            supervisor::page(items, query)?
        }
        None => ractor::call_t!(state.supervisor, SupervisorMsg::ListRecordings, QUERY_MS, query)??,
    };
    let mut resp = HttpResponse::Ok();
    if let Some(next) = &page.next {
        let cursor = encode_cursor(next);
        resp.insert_header(("link", next_link(&req, &cursor)));
        resp.insert_header((NEXT_CURSOR, cursor));
    }
    Ok(resp.json(page.recordings))
}

/// `GET /recordings/{id}`.
#[utoipa::path(
    get,
    path = "/recordings/{id}",
    tag = "recordings",
    operation_id = "get",
    params(("id" = String, Path, min_length = 1, description = "Recording id (`RC_...`)")),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The recording", body = RecordingInfo),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`", body = ErrorBody),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let id = RecordingId::from(id.into_inner());
    let info = match &state.cluster {
        Some(c) => match c.store().get(&id).await.map_err(cluster_down)? {
            Some(s) => s.info,
            None => return Err(RecorderError::NotFound(id.to_string()).into()),
        },
        None => ractor::call_t!(state.supervisor, SupervisorMsg::GetRecording, QUERY_MS, id)??,
    };
    Ok(HttpResponse::Ok().json(info))
}

/// `GET /metrics` (Prometheus text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain"),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = ractor::call_t!(state.supervisor, SupervisorMsg::GetMetrics, QUERY_MS)?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}

/// Unknown routes.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody { error: format!("no such route: {}", req.path()) })
}

/// A known route with a method it does not take: 405 with `Allow: <the methods it takes>`.
pub async fn method_not_allowed(req: HttpRequest, allow: String) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .json(ErrorBody { error: format!("method {} not allowed on {}", req.method(), req.path()) })
}

/// Malformed query strings (`?status=bogus`) are 400 with the JSON error body.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request(format!("invalid query: {err}")).into()
}
