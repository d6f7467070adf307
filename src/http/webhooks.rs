//! `POST /recordings/webhooks`: LiveKit webhooks, verified with livekit-api's
//! [`WebhookReceiver`] (raw JWT in `Authorization` carrying the body's SHA-256; 401 otherwise),
//! turned into a [`Hook`] and sent to the supervisor, which decides (and drops duplicates by
//! event id, see [`SeenIds`](crate::webhook::SeenIds)).

use actix_web::{web, HttpRequest, HttpResponse};
use livekit_api::webhooks::{WebhookError, WebhookReceiver};

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::actors::supervisor::SupervisorMsg;
use crate::cluster::forward::Forwarder;
use crate::webhook::{Hook, HookKind};

/// Timeout for the supervisor's answer.
const HOOK_MS: u64 = 5_000;

fn to_hook(ev: livekit_protocol::WebhookEvent) -> Hook {
    let room = ev.room.map(|r| r.name).unwrap_or_default();
    let (identity, sid) = ev.participant.map(|p| (p.identity, p.sid)).unwrap_or_default();
    let kind = match ev.event.as_str() {
        "participant_joined" => HookKind::Joined { room: room.into(), identity: identity.into() },
        "participant_left" | "participant_connection_aborted" => {
            HookKind::Left { room: room.into(), identity: identity.into(), sid: sid.into() }
        }
        "room_finished" => HookKind::RoomFinished { room: room.into() },
        other => HookKind::Other(other.to_owned()),
    };
    Hook { id: ev.id, kind }
}

/// What a webhook is answered with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WebhookAck {
    /// What the recorder did (`started RC_...`, `ignored: ...`, ...).
    pub action: String,
}

/// `POST /recordings/webhooks`.
#[utoipa::path(
    post,
    path = "/recordings/webhooks",
    tag = "webhooks",
    operation_id = "webhook",
    request_body(content = Object, description = "A LiveKit `WebhookEvent` (protobuf JSON), signed by the token in `Authorization`"),
    security(("livekit_webhook" = [])),
    responses(
        (status = 200, description = "Verified and handled (or ignored: own bot, repeated event id, invalid room or identity)", body = WebhookAck),
        (status = 400, description = "A body that is not UTF-8 or not a webhook event", body = ErrorBody),
        (status = 401, description = "Missing or invalid signature: expired, bad signature, unknown key, altered body", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let auth = auth.strip_prefix("Bearer ").unwrap_or(auth).trim();
    if auth.is_empty() {
        return Err(ApiError::Unauthorized("missing webhook signature (Authorization)".into()));
    }
    let raw = body.clone();
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("webhook body is not UTF-8"))?;
    let event = state.webhooks.receive(body, auth).map_err(|e| {
        let why = rejection(&e);
        tracing::warn!("webhook rejected: {why}");
        match e {
            WebhookError::InvalidData(_) => ApiError::bad_request(why),
            _ => ApiError::Unauthorized(why),
        }
    })?;
    let hook = match validate(to_hook(event)) {
        Ok(hook) => hook,
        Err(why) => {
            // answered (LiveKit must not retry it) and logged; never a recording
            tracing::warn!("webhook ignored: {why}");
            return Ok(HttpResponse::Ok().json(WebhookAck { action: format!("ignored: {why}") }));
        }
    };
    let kind = hook.kind.clone();
    let mut action = ractor::call_t!(state.supervisor, SupervisorMsg::Webhook, HOOK_MS, hook)?;
    if let Some(c) = &state.cluster {
        if !super::routes::forwarded(&req) {
            let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
            action.push_str(&relay_to_owners(c, &kind, raw.to_vec(), auth).await);
        }
    }
    Ok(HttpResponse::Ok().json(WebhookAck { action }))
}

/// Cluster mode: a `participant_left` or `room_finished` also goes, as received (same body and
/// signature), to the nodes that own the recordings it ends; their answers are summed up for the
/// acknowledgement. A start needs no relay: the participant's claim makes it happen once.
async fn relay_to_owners(c: &Forwarder, kind: &HookKind, body: Vec<u8>, auth: Option<&str>) -> String {
    let owners: Result<Vec<String>, String> = match kind {
        HookKind::Left { room, identity, .. } => match c.store().holder(room, identity).await {
            Ok(h) => Ok(h.map(|h| h.node).into_iter().collect()),
            Err(e) => Err(e.to_string()),
        },
        HookKind::RoomFinished { room } => match c.store().all().await {
            Ok(all) => {
                let mut nodes: Vec<String> = all
                    .into_iter()
                    .filter(|s| s.info.room == room && s.info.status.is_live())
                    .map(|s| s.node)
                    .collect();
                nodes.sort();
                nodes.dedup();
                Ok(nodes)
            }
            Err(e) => Err(e.to_string()),
        },
        HookKind::Joined { .. } | HookKind::Other(_) => Ok(Vec::new()),
    };
    let owners = match owners {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!("webhook not relayed to the owning nodes: {e}");
            return format!("; not relayed (cluster mode: {e})");
        }
    };
    let mut out = String::new();
    for node in owners.into_iter().filter(|n| n != c.node_id()) {
        match c.post(&node, "/recordings/webhooks", body.clone(), auth).await {
            Ok(f) if f.status == 200 => out.push_str(&format!("; relayed to {node}")),
            Ok(f) => out.push_str(&format!("; node {node} answered {}", f.status)),
            Err(e) => {
                tracing::warn!(%node, "webhook not relayed: {e}");
                out.push_str(&format!("; not relayed to {node}: {e}"));
            }
        }
    }
    out
}

/// The room and identity of an event the recorder acts on get the REST API's checks.
fn validate(mut hook: Hook) -> Result<Hook, String> {
    fn check<T: From<String> + std::ops::Deref<Target = str>>(
        what: &str,
        name: &str,
        v: &mut T,
    ) -> Result<(), String> {
        super::routes::field(name, v).map(|ok| *v = ok).map_err(|e| format!("invalid {what} webhook: {e}"))
    }
    match &mut hook.kind {
        HookKind::Joined { room, identity } => {
            check("participant_joined", "room", room)?;
            check("participant_joined", "participant", identity)?;
        }
        HookKind::Left { room, identity, .. } => {
            check("participant_left", "room", room)?;
            check("participant_left", "participant", identity)?;
        }
        HookKind::RoomFinished { room } => check("room_finished", "room", room)?,
        HookKind::Other(_) => {}
    }
    Ok(hook)
}

/// What failed in a webhook's verification, in words (livekit-api says "failed to encode jwt"
/// for every token problem).
fn rejection(e: &WebhookError) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    use livekit_api::access_token::AccessTokenError as A;
    match e {
        WebhookError::InvalidSignature => "the body does not match the signed sha256 (altered body)".into(),
        WebhookError::InvalidBase64(_) => "the token's sha256 claim is not base64".into(),
        WebhookError::InvalidData(e) => format!("invalid webhook body: {e}"),
        WebhookError::InvalidAuth(A::Encoding(jwt)) => match jwt.kind() {
            K::ExpiredSignature => "the signature token has expired".into(),
            K::ImmatureSignature => "the signature token is not valid yet (nbf)".into(),
            K::InvalidSignature => "bad signature: not signed with LIVEKIT_API_SECRET".into(),
            K::InvalidIssuer => "unknown API key: the token is not issued by LIVEKIT_API_KEY".into(),
            K::InvalidAlgorithm => "the signature token uses an unexpected algorithm".into(),
            K::MissingRequiredClaim(c) => format!("the signature token lacks the `{c}` claim"),
            _ => format!("malformed signature token: {jwt}"),
        },
        WebhookError::InvalidAuth(e) => format!("cannot verify the signature token: {e}"),
    }
}

/// A receiver for webhooks signed with this key pair.
pub fn receiver(api_key: &str, api_secret: &str) -> WebhookReceiver {
    WebhookReceiver::new(livekit_api::access_token::TokenVerifier::with_api_key(api_key, api_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_get_the_rest_checks() {
        let joined = |room: &str, identity: &str| Hook {
            id: "EV_1".into(),
            kind: HookKind::Joined { room: room.into(), identity: identity.into() },
        };
        assert!(validate(joined("r", "alice")).is_ok());
        let e = validate(joined("", "alice")).unwrap_err();
        assert!(e.contains("participant_joined") && e.contains("room"), "{e}");
        assert!(validate(joined("r", "")).unwrap_err().contains("participant"));
        assert!(validate(joined("r", "a\u{7}b")).is_err());
        assert!(validate(joined(&"x".repeat(300), "a")).is_err());
        let finished = Hook { id: "EV_2".into(), kind: HookKind::RoomFinished { room: " ".into() } };
        assert!(validate(finished).is_err());
        let other = Hook { id: "EV_3".into(), kind: HookKind::Other("track_published".into()) };
        assert!(validate(other).is_ok());
    }

    #[test]
    fn verification_errors_say_what_failed() {
        let r = receiver("key", "secret-secret-secret-secret-0123");
        let body = "{}";
        let sign = |key: &str, secret: &str, ttl: std::time::Duration| {
            use sha2::Digest;
            let sha = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                sha2::Sha256::digest(body),
            );
            livekit_api::access_token::AccessToken::with_api_key(key, secret)
                .with_ttl(ttl)
                .with_sha256(&sha)
                .to_jwt()
                .unwrap()
        };
        let ok = std::time::Duration::from_secs(60);
        let msg = |tok: &str| rejection(&r.receive(body, tok).unwrap_err());
        assert!(msg(&sign("key", "wrong-wrong-wrong-wrong-wrong-0123", ok)).contains("bad signature"));
        assert!(msg(&sign("other", "secret-secret-secret-secret-0123", ok)).contains("unknown API key"));
        assert!(msg("not.a.jwt").contains("malformed"));
        let good = sign("key", "secret-secret-secret-secret-0123", ok);
        assert!(rejection(&r.receive("{ }", &good).unwrap_err()).contains("altered body"));
    }

    #[test]
    fn events_map_to_hooks() {
        let ev = livekit_protocol::WebhookEvent {
            event: "participant_left".into(),
            id: "EV_1".into(),
            room: Some(livekit_protocol::Room { name: "r".into(), ..Default::default() }),
            participant: Some(livekit_protocol::ParticipantInfo {
                identity: "alice".into(),
                sid: "PA_1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let left = HookKind::Left { room: "r".into(), identity: "alice".into(), sid: "PA_1".into() };
        assert_eq!(to_hook(ev.clone()).kind, left);
        let aborted = livekit_protocol::WebhookEvent { event: "participant_connection_aborted".into(), ..ev };
        assert_eq!(to_hook(aborted).kind, left, "a connection that never became active ends like a leave");
    }
}
