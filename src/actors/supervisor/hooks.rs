//! The supervisor's webhook policy: `participant_joined` starts (if enabled),
//! `participant_left` (or `participant_connection_aborted`) stops unless the identity has
//! rejoined with a new session, `room_finished` stops all in the room; our own bots and repeated
//! event ids are ignored.

use ractor::ActorRef;

use super::{StartRequest, StopTarget, SupervisorMsg, SupervisorState};
use crate::actors::room::RoomMsg;
use crate::livekit;
use crate::recording::{H264Container, Layout, Profile};
use crate::webhook::{Hook, HookKind};

impl SupervisorState {
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
                if !self.settings.room.recording.auto_record_on_join {
                    return "ignored: AUTO_RECORD_ON_JOIN is off".into();
                }
                let template = self.settings.room.recording.filename_template.clone();
                let req = StartRequest {
                    room,
                    identity,
                    profile: Profile::Av,
                    layout: Layout::Participant,
                    template,
                    h264_container: H264Container::default(),
                };
                return match self.start(me, req).await {
                    Ok((info, _)) => format!("recording {}", info.id),
                    Err(e) => format!("start failed: {e}"),
                };
            }
            HookKind::Left { room, identity, sid } => match self.rooms.get(&room) {
                // the room actor sees the room: it ends the recording after the rejoin grace
                // unless the identity came back with a new session
                Some(actor) if !sid.is_empty() => {
                    let _ = actor.cast(RoomMsg::Departed { identity, sid, checked: false });
                    return "stopping after the rejoin grace".into();
                }
                _ => vec![StopTarget::Participant { room, identity }],
            },
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
