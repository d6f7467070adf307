//! Room state: rooms, their members (synthetic publishers and signalling clients), who is
//! subscribed to what, and the messages every change produces.
//!
//! Invariants: one `Mutex` guards all rooms and is never held across an `.await` (all sends
//! inside are `try_send`); hidden participants never appear in anything sent to others;
//! a subscriber gets the publisher's `ParticipantUpdate` before the `AddTrack` that leads to
//! the offer carrying the track.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use tokio::sync::mpsc;

use super::ids::{new_id, unix_ms, unix_secs};
use super::peer::{PeerCmd, PeerHandle, TrackSpec};
use super::publisher::{Clock, Fanout, PubCmd};
use super::truth::TrackLog;
use crate::media::Codec;

/// The signalling sink of a client; swapped on resume, emptied to drop the signal socket.
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<Option<Attached>>>);

/// A socket generation and its queue.
type Attached = (u64, mpsc::Sender<Resp>);

impl Outbox {
    /// Queues `msg` for the current socket (dropped, with a log line, if none or full).
    pub fn send(&self, msg: Resp) {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, tx)) = g.as_ref() {
            if tx.try_send(msg).is_err() {
                tracing::warn!("signal queue full or closed: message dropped");
            }
        }
    }

    /// Installs a new socket's sender; returns its generation.
    pub fn replace(&self, tx: mpsc::Sender<Resp>) -> u64 {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let gen = g.as_ref().map_or(1, |(n, _)| n + 1);
        *g = Some((gen, tx));
        gen
    }

    /// Detaches the socket of generation `gen` (if still current): its session ends.
    pub fn detach(&self, gen: Option<u64>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if gen.is_none() || g.as_ref().map(|(n, _)| *n) == gen {
            *g = None;
        }
    }
}

/// A synthetic publisher's handles.
#[derive(Debug)]
pub struct Synth {
    /// Commands (keyframes, mute, pause, stop).
    pub cmd: mpsc::Sender<PubCmd>,
    /// Its subscribers per track.
    pub fanout: Arc<Fanout>,
    /// Codec per track sid.
    pub codecs: HashMap<String, Codec>,
    /// The participant clock (tracks published later start on it).
    pub clock: Clock,
}

/// A signalling client's handles.
#[derive(Debug)]
pub struct Client {
    /// Signalling sink.
    pub outbox: Outbox,
    /// Its subscriber peer.
    pub peer: PeerHandle,
    /// Whether it subscribes to every track automatically.
    pub auto_subscribe: bool,
    /// Track sids it is subscribed to.
    pub subs: HashSet<String>,
}

/// What a member is.
#[derive(Debug)]
pub enum Role {
    /// Built-in publisher.
    Synthetic(Synth),
    /// A real client on `/rtc`.
    Client(Client),
}

/// A participant.
#[derive(Debug)]
pub struct Member {
    /// What others see (tracks included).
    pub info: proto::ParticipantInfo,
    /// Hidden (recorder) participants are invisible to others.
    pub hidden: bool,
    /// Publisher or client.
    pub role: Role,
}

/// A room.
#[derive(Debug)]
pub struct Room {
    /// `RM_` sid.
    pub sid: String,
    /// Name.
    pub name: String,
    created: i64,
    created_ms: i64,
    /// Participants in join order.
    pub members: Vec<Member>,
    /// Ground truth of every synthetic track ever published here.
    pub logs: Vec<Arc<TrackLog>>,
}

impl Room {
    /// A new room.
    pub fn new(name: &str) -> Room {
        Room {
            sid: new_id("RM_"),
            name: name.into(),
            created: unix_secs(),
            created_ms: unix_ms(),
            members: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// The protobuf `Room`.
    pub fn info(&self) -> proto::Room {
        let visible = self.members.iter().filter(|m| !m.hidden);
        proto::Room {
            sid: self.sid.clone(),
            name: self.name.clone(),
            empty_timeout: 300,
            departure_timeout: 20,
            creation_time: self.created,
            creation_time_ms: self.created_ms,
            num_participants: visible.clone().count() as u32,
            num_publishers: visible.filter(|m| !m.info.tracks.is_empty()).count() as u32,
            active_recording: self.members.iter().any(|m| m.hidden),
            ..Default::default()
        }
    }

    /// Index of the member with `identity`.
    pub fn find(&self, identity: &str) -> Option<usize> {
        self.members.iter().position(|m| m.info.identity == identity)
    }

    /// Index of the member with sid `sid`.
    pub fn find_sid(&self, sid: &str) -> Option<usize> {
        self.members.iter().position(|m| m.info.sid == sid)
    }

    /// Everyone `viewer` may see (not hidden, not itself).
    pub fn visible_to(&self, viewer: &str) -> Vec<proto::ParticipantInfo> {
        self.members.iter().filter(|m| !m.hidden && m.info.sid != viewer).map(|m| m.info.clone()).collect()
    }

    /// Sends `msg` to every client but `except`.
    pub fn to_clients(&self, except: &str, msg: &Resp) {
        for m in self.members.iter().filter(|m| m.info.sid != except) {
            if let Role::Client(c) = &m.role {
                c.outbox.send(msg.clone());
            }
        }
    }

    /// Bumps the version of member `idx` and tells the others (unless it is hidden).
    pub fn announce(&mut self, idx: usize) {
        let m = &mut self.members[idx];
        m.info.version += 1;
        if m.hidden {
            return;
        }
        let msg = Resp::Update(proto::ParticipantUpdate { participants: vec![m.info.clone()] });
        let sid = m.info.sid.clone();
        self.to_clients(&sid, &msg);
    }

    /// The publisher index and codec of `track`.
    fn track_owner(&self, track: &str) -> Option<(usize, Codec)> {
        self.members.iter().enumerate().find_map(|(i, m)| match &m.role {
            Role::Synthetic(s) => s.codecs.get(track).map(|c| (i, *c)),
            Role::Client(_) => None,
        })
    }

    /// Subscribes (or unsubscribes) client `sub` to `track`; idempotent. An unknown track is
    /// answered at once with `SubscriptionResponse{SE_TRACK_NOTFOUND}` (the real server waits
    /// a minute first).
    pub fn subscribe(&mut self, sub: usize, track: &str, on: bool) {
        let Some((owner, codec)) = self.track_owner(track) else {
            if let (true, Role::Client(c)) = (on, &self.members[sub].role) {
                let err = proto::SubscriptionError::SeTrackNotfound as i32;
                c.outbox.send(Resp::SubscriptionResponse(proto::SubscriptionResponse {
                    track_sid: track.into(),
                    err,
                }));
            }
            return tracing::debug!(track, "subscription to an unknown track");
        };
        if owner == sub {
            return;
        }
        let pub_info = self.members[owner].info.clone();
        let Role::Synthetic(synth) = &self.members[owner].role else { return };
        let (fanout, cmd) = (synth.fanout.clone(), synth.cmd.clone());
        let sub_sid = self.members[sub].info.sid.clone();
        let Role::Client(c) = &mut self.members[sub].role else { return };
        if on && c.subs.insert(track.to_owned()) {
            c.outbox.send(Resp::Update(proto::ParticipantUpdate { participants: vec![pub_info.clone()] }));
            let spec =
                TrackSpec { track: track.into(), participant: pub_info.sid.clone(), codec, publisher: cmd };
            let _ = c.peer.ctl.try_send(PeerCmd::AddTrack(spec));
            fanout.add(track, &sub_sid, c.peer.media.clone());
        } else if !on && c.subs.remove(track) {
            fanout.remove(Some(track), &sub_sid);
            let _ = c.peer.ctl.try_send(PeerCmd::RemoveTrack(track.into()));
        }
    }

    /// Ends client `sub`'s subscription to `track` of a publisher that is gone.
    pub fn drop_track(&mut self, sub: usize, track: &str) {
        if let Role::Client(c) = &mut self.members[sub].role {
            if c.subs.remove(track) {
                let _ = c.peer.ctl.try_send(PeerCmd::RemoveTrack(track.into()));
            }
        }
    }

    /// Subscribes every auto-subscribing client to the tracks of member `publisher`.
    pub fn auto_subscribe_to(&mut self, publisher: usize) {
        let tracks: Vec<String> = self.members[publisher].info.tracks.iter().map(|t| t.sid.clone()).collect();
        for i in 0..self.members.len() {
            if matches!(&self.members[i].role, Role::Client(c) if c.auto_subscribe) {
                tracks.iter().for_each(|t| self.subscribe(i, t, true));
            }
        }
    }

    /// Subscribes client `sub` to every published track.
    pub fn auto_subscribe_all(&mut self, sub: usize) {
        let tracks: Vec<String> =
            self.members.iter().flat_map(|m| m.info.tracks.iter().map(|t| t.sid.clone())).collect();
        tracks.iter().for_each(|t| self.subscribe(sub, t, true));
    }
}

/// All rooms by name.
pub type Rooms = Mutex<HashMap<String, Room>>;
