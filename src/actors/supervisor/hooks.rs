//! The supervisor's webhook policy: `participant_joined` starts (if enabled),
//! `participant_left` (or `participant_connection_aborted`) stops unless the identity has
//! rejoined with a new session, `room_finished` stops all in the room; our own bots and repeated
//! event ids are ignored.

use ractor::ActorRef;

use super::{StartRequest, StopTarget, SupervisorMsg, SupervisorState};
use crate::actors::room::RoomMsg;
use crate::http::webhooks::{Hook, HookKind};
use crate::livekit;
use crate::recording::{Layout, Profile};

/// How long the supervisor waits for a room actor to say which session an identity has.
const SESSION_QUERY_MS: u64 = 1_000;

impl SupervisorState {
    /// The participant sid the room actor currently sees for `identity`, if any.
    async fn session_of(&self, room: &str, identity: &str) -> Option<String> {
        let actor = self.rooms.get(room)?;
        let identity = identity.to_owned();
        ractor::call_t!(actor, |reply| RoomMsg::SessionOf { identity, reply }, SESSION_QUERY_MS)
            .ok()
            .flatten()
    }

    /// Acts on a webhook: joined starts (if enabled), left stops, room finished stops all.
    /// Our own bots and repeated event ids are ignored.
    pub(super) async fn on_hook(&mut self, me: &ActorRef<SupervisorMsg>, hook: Hook) -> String {
        if !hook.id.is_empty() && !self.seen_hooks.insert(&hook.id) {
            return "duplicate".into();
        }
        let targets = match hook.kind {
            HookKind::Joined { identity, .. } | HookKind::Left { identity, .. }
                if livekit::is_recorder_identity(&identity) =>
            {
                return "ignored: recorder bot".into()
            }
            HookKind::Joined { room, identity } => {
                if !self.settings.auto_record_on_join {
                    return "ignored: AUTO_RECORD_ON_JOIN is off".into();
                }
                let template = self.settings.filename_template.clone();
                let req = StartRequest {
                    room,
                    identity,
                    profile: Profile::Av,
                    layout: Layout::Participant,
                    template,
                };
                return match self.start(me, req).await {
                    Ok((info, _)) => format!("recording {}", info.id),
                    Err(e) => format!("start failed: {e}"),
                };
            }
            HookKind::Left { room, identity, sid } => {
                if let Some(current) = self.session_of(&room, &identity).await {
                    if !sid.is_empty() && current != sid {
                        return format!("ignored: {identity} rejoined as {current}");
                    }
                }
                vec![StopTarget::Participant { room, identity }]
            }
            HookKind::RoomFinished { room } => self
                .recs
                .values()
                .filter(|e| e.spec.room == room && e.info.status.is_live())
                .map(|e| StopTarget::Id(e.info.id.clone()))
                .collect(),
            HookKind::Other(event) => return format!("ignored: {event}"),
        };
        let n = targets.len();
        for t in targets {
            // nobody waits for this reply: the webhook is acknowledged at once
            let (tx, _rx) = ractor::concurrency::oneshot();
            self.stop(me, t, tx.into());
        }
        format!("stopping {n}")
    }
}
