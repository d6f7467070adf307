//! LiveKit webhooks as the recorder's domain sees them: a verified event reduced to what the
//! supervisor acts on ([`Hook`]), and the bounded memory of event ids that drops LiveKit's
//! retries ([`SeenIds`]). The HTTP side (signature check, parsing) is `http/webhooks.rs`; these
//! types live outside `http` so that the actors never depend on the HTTP layer.

use std::collections::{HashSet, VecDeque};

use crate::ids::{Identity, ParticipantSid, RoomName};

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
        room: RoomName,
        /// Participant identity.
        identity: Identity,
    },
    /// `participant_left`.
    Left {
        /// Room name.
        room: RoomName,
        /// Participant identity.
        identity: Identity,
        /// The session that left (a participant that rejoined with the same identity has a
        /// new sid, and its old session's `participant_left` must not stop its recording).
        sid: ParticipantSid,
    },
    /// `room_finished`.
    RoomFinished {
        /// Room name.
        room: RoomName,
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
}
