//! `POST /recordings/webhooks`: LiveKit webhooks, verified with livekit-api's
//! [`WebhookReceiver`] (raw JWT in `Authorization` carrying the body's SHA-256; 401 otherwise),
//! turned into a [`Hook`] and sent to the supervisor, which decides (and drops duplicates by
//! event id, see [`SeenIds`]).

use std::collections::{HashSet, VecDeque};

use actix_web::{web, HttpRequest, HttpResponse};
use livekit_api::webhooks::WebhookReceiver;

use super::error::ApiError;
use super::AppState;
use crate::actors::supervisor::SupervisorMsg;

/// Timeout for the supervisor's answer.
const HOOK_MS: u64 = 5_000;

/// A verified webhook, reduced to what the recorder acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// Event id (`EV_...`), for de-duplication.
    pub id: String,
    /// What happened.
    pub kind: HookKind,
}

/// The events the recorder acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookKind {
    /// `participant_joined`.
    Joined {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
    },
    /// `participant_left`.
    Left {
        /// Room name.
        room: String,
        /// Participant identity.
        identity: String,
        /// The session that left (a participant that rejoined with the same identity has a
        /// new sid, and its old session's `participant_left` must not stop its recording).
        sid: String,
    },
    /// `room_finished`.
    RoomFinished {
        /// Room name.
        room: String,
    },
    /// Anything else (ignored).
    Other(String),
}

/// The last `cap` event ids seen (a bounded LRU by insertion).
#[derive(Debug)]
pub struct SeenIds {
    cap: usize,
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl SeenIds {
    /// Remembers at most `cap` ids.
    pub fn new(cap: usize) -> SeenIds {
        SeenIds { cap: cap.max(1), order: VecDeque::new(), set: HashSet::new() }
    }

    /// Records `id`; false if it was seen already.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_owned());
        self.set.insert(id.to_owned());
        true
    }
}

fn to_hook(ev: livekit_protocol::WebhookEvent) -> Hook {
    let room = ev.room.map(|r| r.name).unwrap_or_default();
    let (identity, sid) = ev.participant.map(|p| (p.identity, p.sid)).unwrap_or_default();
    let kind = match ev.event.as_str() {
        "participant_joined" => HookKind::Joined { room, identity },
        "participant_left" | "participant_connection_aborted" => HookKind::Left { room, identity, sid },
        "room_finished" => HookKind::RoomFinished { room },
        other => HookKind::Other(other.to_owned()),
    };
    Hook { id: ev.id, kind }
}

/// `POST /recordings/webhooks`.
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
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::bad_request("webhook body is not UTF-8"))?;
    let event = state.webhooks.receive(body, auth).map_err(|e| match e {
        livekit_api::webhooks::WebhookError::InvalidData(e) => {
            ApiError::bad_request(format!("invalid webhook body: {e}"))
        }
        e => ApiError::Unauthorized(format!("webhook rejected: {e}")),
    })?;
    let action = ractor::call_t!(state.supervisor, SupervisorMsg::Webhook, HOOK_MS, to_hook(event))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "action": action })))
}

/// A receiver for webhooks signed with this key pair.
pub fn receiver(api_key: &str, api_secret: &str) -> WebhookReceiver {
    WebhookReceiver::new(livekit_api::access_token::TokenVerifier::with_api_key(api_key, api_secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_ids_are_bounded_and_detect_duplicates() {
        let mut s = SeenIds::new(2);
        assert!(s.insert("a"));
        assert!(!s.insert("a"));
        assert!(s.insert("b"));
        assert!(s.insert("c")); // evicts "a"
        assert!(s.insert("a"));
        assert!(!s.insert("c"));
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
