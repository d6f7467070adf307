//! Joining, leaving and changing participants: the operations the signalling sessions, the
//! control API and Twirp call on the shared [`Sim`], with the updates and webhooks each one
//! produces (LIVEKIT-PROTOCOL.md §4, §8.2).
//!
//! Invariant: a room exists while it has members (or was made by CreateRoom); when its last
//! member leaves it finishes (`room_finished`) and its ground truth moves to the archive, so
//! `/sent` still answers for it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use livekit_api::access_token::Claims;
use livekit_protocol as proto;
use proto::signal_response::Message as Resp;
use proto::DisconnectReason;
use tokio::sync::mpsc;

use super::ids::{new_id, unix_ms, unix_ns, unix_secs};
use super::media::{mime_type, SharedLoop};
use super::peer::{self, PeerCmd, PeerCtx};
use super::publisher::{self, Clock, Fanout, PubCmd, PubTrack};
use super::room::{Client, Member, Outbox, Role, Room, Synth};
use super::truth::TrackLog;
use super::webhook::short;
use super::Sim;
use crate::media::Codec;

/// Why a request about a participant failed (mapped to HTTP / Twirp codes by the callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// Bad input.
    Invalid(String),
    /// No such room, participant or track.
    NotFound(String),
    /// The identity is taken.
    Exists(String),
    /// Setting up failed on our side.
    Internal(String),
}

/// A client joining over `/rtc`.
pub struct Joined {
    /// The JoinResponse to send first.
    pub join: proto::JoinResponse,
    /// Participant sid.
    pub sid: String,
    /// Outbox generation of this session.
    pub gen: u64,
}

fn server_info() -> proto::ServerInfo {
    proto::ServerInfo {
        edition: proto::server_info::Edition::Standard as i32,
        version: "1.13.5-sim".into(),
        protocol: 17,
        node_id: "sim".into(),
        ..Default::default()
    }
}

fn kind_of(claims: &Claims) -> proto::participant_info::Kind {
    use proto::participant_info::Kind;
    match claims.kind.to_ascii_lowercase().as_str() {
        "egress" => Kind::Egress,
        "ingress" => Kind::Ingress,
        "agent" => Kind::Agent,
        "sip" => Kind::Sip,
        _ => Kind::Standard,
    }
}

impl Sim {
    pub(super) fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The room `name`, created (with `room_started`) if needed.
    pub(super) fn ensure<'a>(&self, rooms: &'a mut HashMap<String, Room>, name: &str) -> &'a mut Room {
        rooms.entry(name.to_owned()).or_insert_with(|| {
            let mut room = Room::new(name);
            room.logs =
                self.archive.lock().unwrap_or_else(|e| e.into_inner()).remove(name).unwrap_or_default();
            self.webhooks.emit("room_started", Some(room.info()), None, None);
            tracing::info!(room = name, sid = %room.sid, "room started");
            room
        })
    }

    /// Adds a synthetic publisher; returns its sid and tracks.
    pub(super) fn add_synthetic(
        &self,
        room: &str,
        identity: &str,
        video: Option<Codec>,
        audio: bool,
        av_offset: Duration,
    ) -> Result<(String, Vec<proto::TrackInfo>), OpError> {
        let mut rooms = self.lock();
        let r = self.ensure(&mut rooms, room);
        if r.find(identity).is_some() {
            return Err(OpError::Exists(format!("participant {identity:?} already exists in room {room:?}")));
        }
        let sid = new_id("PA_");
        let (mut infos, mut tracks, mut codecs) = (Vec::new(), Vec::new(), HashMap::new());
        let wanted = video.into_iter().chain(audio.then_some(Codec::Opus));
        for codec in wanted {
            let shared = self.shared_loop(codec).map_err(OpError::Internal)?;
            let info = track_info(codec, &shared);
            let log = Arc::new(TrackLog::new(&info.sid, identity, codec));
            let offset = if codec == Codec::Opus { av_offset } else { Duration::ZERO };
            tracks.push(PubTrack::new(&info.sid, shared, log.clone(), offset));
            r.logs.push(log);
            codecs.insert(info.sid.clone(), codec);
            infos.push(info);
        }
        let clock = Clock { start: Instant::now(), start_unix_ns: unix_ns() };
        let fanout = Arc::new(Fanout::default());
        let cmd = publisher::spawn(&self.rt, tracks, fanout.clone(), clock);
        let info = participant_info(&sid, identity, infos.clone(), proto::participant_info::State::Active);
        r.members.push(Member {
            info: info.clone(),
            hidden: false,
            role: Role::Synthetic(Synth { cmd, fanout, codecs, clock }),
        });
        let idx = r.members.len() - 1;
        r.announce(idx);
        self.webhooks.emit("participant_joined", Some(r.info()), Some(info.clone()), None);
        for t in &infos {
            self.webhooks.emit("track_published", Some(r.info()), Some(short(&info)), Some(t.clone()));
        }
        r.auto_subscribe_to(idx);
        tracing::info!(room, identity, %sid, tracks = infos.len(), "synthetic participant joined");
        Ok((sid, infos))
    }

    /// Publishes a `codec` track on synthetic participant `identity` (at most one per kind), on
    /// its clock: ParticipantUpdate, `track_published`, auto-subscribers get it offered.
    pub(super) fn publish_track(
        &self,
        room: &str,
        identity: &str,
        codec: Codec,
    ) -> Result<proto::TrackInfo, OpError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| OpError::NotFound(format!("no room {room:?}")))?;
        let i = r.find(identity).ok_or_else(|| OpError::NotFound(format!("no participant {identity:?}")))?;
        let shared = SharedLoop::get(codec).map_err(OpError::Internal)?;
        let info = track_info(codec, &shared);
        let m = &mut r.members[i];
        let Role::Synthetic(s) = &mut m.role else {
            return Err(OpError::Invalid("only synthetic participants publish here".into()));
        };
        if m.info.tracks.iter().any(|t| t.r#type == info.r#type) {
            return Err(OpError::Exists(format!(
                "participant {identity:?} already publishes a {:?} track",
                codec.kind()
            )));
        }
        let log = Arc::new(TrackLog::new(&info.sid, identity, codec));
        let track = PubTrack::late(&info.sid, shared, log.clone(), s.clock.start.elapsed());
        s.cmd.try_send(PubCmd::AddTrack(track)).map_err(|e| OpError::Internal(format!("publisher: {e}")))?;
        s.codecs.insert(info.sid.clone(), codec);
        m.info.tracks.push(info.clone());
        m.info.is_publisher = true;
        r.logs.push(log);
        r.announce(i);
        let who = short(&r.members[i].info);
        self.webhooks.emit("track_published", Some(r.info()), Some(who), Some(info.clone()));
        for j in 0..r.members.len() {
            if matches!(&r.members[j].role, Role::Client(c) if c.auto_subscribe) {
                r.subscribe(j, &info.sid, true);
            }
        }
        tracing::info!(room, identity, track = %info.sid, %codec, "track published");
        Ok(info)
    }

    /// Unpublishes track `sid` of synthetic participant `identity`: its frames stop, its
    /// subscribers' m-lines go inactive, ParticipantUpdate, `track_unpublished`.
    pub(super) fn unpublish_track(&self, room: &str, identity: &str, sid: &str) -> Result<(), OpError> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room).ok_or_else(|| OpError::NotFound(format!("no room {room:?}")))?;
        let i = r.find(identity).ok_or_else(|| OpError::NotFound(format!("no participant {identity:?}")))?;
        let m = &mut r.members[i];
        let Role::Synthetic(s) = &mut m.role else {
            return Err(OpError::Invalid("only synthetic participants unpublish here".into()));
        };
        let pos = m
            .info
            .tracks
            .iter()
            .position(|t| t.sid == sid)
            .ok_or_else(|| OpError::NotFound(format!("participant {identity:?} has no track {sid:?}")))?;
        let _ = s.cmd.try_send(PubCmd::RemoveTrack(sid.to_owned()));
        s.codecs.remove(sid);
        let subs = s.fanout.subscribers(sid);
        subs.iter().for_each(|sub| s.fanout.remove(Some(sid), sub));
        let track = m.info.tracks.remove(pos);
        m.info.is_publisher = !m.info.tracks.is_empty();
        for sub in subs {
            if let Some(j) = r.find_sid(&sub) {
                r.drop_track(j, sid);
            }
        }
        r.announce(i);
        let who = short(&r.members[i].info);
        self.webhooks.emit("track_unpublished", Some(r.info()), Some(who), Some(track));
        tracing::info!(room, identity, track = sid, "track unpublished");
        Ok(())
    }

    /// A client joins over `/rtc` (a client with the same identity is replaced).
    pub(super) fn join(
        self: &Arc<Self>,
        claims: &Claims,
        auto_subscribe: bool,
        tx: mpsc::Sender<Resp>,
    ) -> Result<Joined, OpError> {
        let (room, identity) = (claims.video.room.as_str(), claims.sub.as_str());
        let mut rooms = self.lock();
        let r = self.ensure(&mut rooms, room);
        if let Some(i) = r.find(identity) {
            if matches!(r.members[i].role, Role::Synthetic(_)) {
                return Err(OpError::Exists(format!("identity {identity:?} is a synthetic participant")));
            }
            self.remove_at(r, i, DisconnectReason::DuplicateIdentity);
        }
        let sid = new_id("PA_");
        let outbox = Outbox::default();
        let gen = outbox.replace(tx);
        let ctx = PeerCtx { sim: self.clone(), room: room.into(), sid: sid.clone(), outbox: outbox.clone() };
        let peer = peer::spawn(&self.rt, ctx, self.media_ip, &self.advertise)
            .map_err(|e| OpError::Internal(format!("bind media socket: {e}")))?;
        let mut info = participant_info(&sid, identity, Vec::new(), proto::participant_info::State::Joined);
        info.name.clone_from(&claims.name);
        info.kind = kind_of(claims) as i32;
        let hidden = claims.video.hidden;
        r.members.push(Member {
            info: info.clone(),
            hidden,
            role: Role::Client(Client { outbox, peer, auto_subscribe, subs: HashSet::new() }),
        });
        let idx = r.members.len() - 1;
        let join = proto::JoinResponse {
            room: Some(r.info()),
            participant: Some(info),
            other_participants: r.visible_to(&sid),
            server_version: "1.13.5-sim".into(),
            subscriber_primary: true,
            ping_interval: 5,
            ping_timeout: 15,
            server_info: Some(server_info()),
            ..Default::default()
        };
        r.announce(idx);
        if auto_subscribe {
            r.auto_subscribe_all(idx);
        }
        tracing::info!(room, identity, %sid, hidden, auto_subscribe, "client joined");
        Ok(Joined { join, sid, gen })
    }

    /// A client resumes (`reconnect=1`): looked up by identity; the new socket gets
    /// ReconnectResponse, the participants, the room, then an ICE-restart offer.
    pub(super) fn resume(&self, room: &str, identity: &str, tx: mpsc::Sender<Resp>) -> Option<(String, u64)> {
        let mut rooms = self.lock();
        let r = rooms.get_mut(room)?;
        let m = &r.members[r.find(identity)?];
        let Role::Client(c) = &m.role else { return None };
        let gen = c.outbox.replace(tx);
        let sid = m.info.sid.clone();
        c.outbox.send(Resp::Reconnect(proto::ReconnectResponse {
            server_info: Some(server_info()),
            ..Default::default()
        }));
        c.outbox.send(Resp::Update(proto::ParticipantUpdate { participants: r.visible_to(&sid) }));
        c.outbox.send(Resp::RoomUpdate(proto::RoomUpdate { room: Some(r.info()) }));
        let _ = c.peer.ctl.try_send(PeerCmd::IceRestart);
        tracing::info!(room, identity, "client resumed");
        Some((sid, gen))
    }

    /// The client's subscriber PC connected: it is ACTIVE.
    pub(crate) fn client_active(&self, room: &str, sid: &str) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return };
        let Some(i) = r.find_sid(sid) else { return };
        if r.members[i].info.state == proto::participant_info::State::Active as i32 {
            return;
        }
        r.members[i].info.state = proto::participant_info::State::Active as i32;
        r.announce(i);
        self.webhooks.emit("participant_joined", Some(r.info()), Some(r.members[i].info.clone()), None);
    }

    /// The signalling socket of generation `gen` is gone (the participant stays, to resume).
    pub(super) fn signal_closed(&self, room: &str, sid: &str, gen: u64) {
        let rooms = self.lock();
        let member = rooms.get(room).and_then(|r| r.find_sid(sid).map(|i| &r.members[i]));
        if let Some(Member { role: Role::Client(c), .. }) = member {
            c.outbox.detach(Some(gen));
        }
    }

    /// Sends `cmd` to the peer of client `sid`.
    pub(super) fn to_peer(&self, room: &str, sid: &str, cmd: PeerCmd) {
        let rooms = self.lock();
        let member = rooms.get(room).and_then(|r| r.find_sid(sid).map(|i| &r.members[i]));
        if let Some(Member { role: Role::Client(c), .. }) = member {
            if c.peer.ctl.try_send(cmd).is_err() {
                tracing::warn!(participant = sid, "peer command queue full: command dropped");
            }
        }
    }

    /// (Un)subscribes client `sid` to `tracks`.
    pub(super) fn subscription(&self, room: &str, sid: &str, tracks: &[String], on: bool) {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return };
        let Some(i) = r.find_sid(sid) else { return };
        tracks.iter().for_each(|t| r.subscribe(i, t, on));
    }

    /// Removes participant `identity`; false if absent.
    pub(super) fn remove(&self, room: &str, identity: &str, reason: DisconnectReason) -> bool {
        let mut rooms = self.lock();
        let Some(r) = rooms.get_mut(room) else { return false };
        let Some(i) = r.find(identity) else { return false };
        self.remove_at(r, i, reason);
        if r.members.is_empty() {
            self.finish(&mut rooms, room);
        }
        true
    }

    pub(super) fn remove_at(&self, r: &mut Room, i: usize, reason: DisconnectReason) {
        let mut m = r.members.remove(i);
        match &m.role {
            Role::Synthetic(s) => {
                let _ = s.cmd.try_send(PubCmd::Stop);
                for t in &m.info.tracks {
                    for sub in s.fanout.subscribers(&t.sid) {
                        if let Some(j) = r.find_sid(&sub) {
                            r.drop_track(j, &t.sid);
                        }
                    }
                    self.webhooks.emit(
                        "track_unpublished",
                        Some(r.info()),
                        Some(short(&m.info)),
                        Some(t.clone()),
                    );
                }
            }
            Role::Client(c) => {
                if reason != DisconnectReason::ClientInitiated {
                    let action = proto::leave_request::Action::Disconnect as i32;
                    c.outbox.send(Resp::Leave(proto::LeaveRequest {
                        reason: reason as i32,
                        action,
                        ..Default::default()
                    }));
                }
                c.outbox.detach(None);
                let _ = c.peer.ctl.try_send(PeerCmd::Close);
                for other in &r.members {
                    if let Role::Synthetic(s) = &other.role {
                        s.fanout.remove(None, &m.info.sid);
                    }
                }
            }
        }
        m.info.state = proto::participant_info::State::Disconnected as i32;
        m.info.disconnect_reason = reason as i32;
        m.info.version += 1;
        if !m.hidden {
            r.to_clients(
                &m.info.sid,
                &Resp::Update(proto::ParticipantUpdate { participants: vec![m.info.clone()] }),
            );
        }
        self.webhooks.emit("participant_left", Some(r.info()), Some(m.info.clone()), None);
        tracing::info!(room = %r.name, identity = %m.info.identity, ?reason, "participant left");
    }

    /// Closes room `name` (members must already be gone): `room_finished`, logs archived.
    pub(super) fn finish(&self, rooms: &mut HashMap<String, Room>, name: &str) {
        if let Some(r) = rooms.remove(name) {
            self.webhooks.emit("room_finished", Some(r.info()), None, None);
            self.archive.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_owned(), r.logs);
            tracing::info!(room = name, "room finished");
        }
    }

    /// Stops every publisher and peer (for [`super::SimHandle::stop`]).
    pub(super) fn shutdown(&self) {
        let mut rooms = self.lock();
        let names: Vec<String> = rooms.keys().cloned().collect();
        for name in names {
            if let Some(r) = rooms.get_mut(&name) {
                while !r.members.is_empty() {
                    self.remove_at(r, 0, DisconnectReason::ServerShutdown);
                }
            }
            self.finish(&mut rooms, &name);
        }
    }
}

fn track_info(codec: Codec, shared: &SharedLoop) -> proto::TrackInfo {
    let video = codec != Codec::Opus;
    let (w, h) = shared.size.unwrap_or((0, 0));
    proto::TrackInfo {
        sid: new_id(if video { "TR_VC" } else { "TR_AM" }),
        r#type: if video { proto::TrackType::Video } else { proto::TrackType::Audio } as i32,
        name: if video { "camera" } else { "microphone" }.into(),
        source: if video { proto::TrackSource::Camera } else { proto::TrackSource::Microphone } as i32,
        // as browsers and the SDKs publish audio (RED on by default): the subscriber's answer
        // decides whether it gets RED or the primary Opus stream
        mime_type: if video { mime_type(codec) } else { "audio/red" }.into(),
        width: w,
        height: h,
        stream: if video { "camera" } else { "microphone" }.into(),
        ..Default::default()
    }
}

fn participant_info(
    sid: &str,
    identity: &str,
    tracks: Vec<proto::TrackInfo>,
    state: proto::participant_info::State,
) -> proto::ParticipantInfo {
    proto::ParticipantInfo {
        sid: sid.into(),
        identity: identity.into(),
        name: identity.into(),
        state: state as i32,
        is_publisher: !tracks.is_empty(),
        tracks,
        joined_at: unix_secs(),
        joined_at_ms: unix_ms(),
        version: 1,
        permission: Some(proto::ParticipantPermission {
            can_subscribe: true,
            can_publish: true,
            can_publish_data: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}
