//! Synthetic publishers: one tokio task per participant replays the shared encoded loops on
//! one participant clock and fans the frames out to the subscriber peers.
//!
//! Invariants: audio and video of a participant share one clock (`start` + the loop's sender
//! time), so the wallclock handed to str0m, and therefore the RTCP sender reports, agree
//! across its tracks; frame bytes are `Arc` clones of the [`SharedLoop`], never copies; a full
//! subscriber queue drops the frame (counted) instead of blocking the publisher.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::media::SharedLoop;
use super::truth::{SentFrame, TrackLog};
use crate::media::codec::filler;
use crate::media::MediaKind;
use crate::synth::SyntheticTrack;

/// How often the publisher wakes to send the frames that are due.
const TICK: Duration = Duration::from_millis(5);

/// Frames of SFU silence after an audio mute (livekit-server sends 1 s of 20 ms frames).
const SFU_MUTE_FILLER: u32 = 50;

/// livekit-server flushes a closing subscription with about 0.2 s of filler frames.
const SFU_CLOSE_FILLER_S: f64 = 0.2;

/// At most this many frames pass between a keyframe request and the keyframe (an encoder
/// answers within a frame or two; see [`request_keyframe`]).
const KEYFRAME_WITHIN_FRAMES: usize = 5;

/// One frame on its way to a subscriber peer.
#[derive(Debug, Clone)]
pub struct MediaFrame {
    /// The track sid.
    pub track: Arc<str>,
    /// RTP timestamp to put on the wire.
    pub rtp_ts: u32,
    /// The participant-clock instant of the frame (drives SR NTP times).
    pub wallclock: Instant,
    /// The encoded frame.
    pub data: Arc<[u8]>,
}

/// Commands to a publisher task.
#[derive(Debug)]
pub enum PubCmd {
    /// A subscriber asked for a keyframe of this track (PLI/FIR).
    Keyframe(String),
    /// Mute or unmute the tracks of a kind (muted tracks send nothing).
    Mute(MediaKind, bool),
    /// Send nothing on `track` (or all tracks) until the instant; time keeps running.
    Pause(Option<String>, Instant),
    /// Publish one more track on the participant's clock.
    AddTrack(PubTrack),
    /// Unpublish a track: its frames stop.
    RemoveTrack(String),
    /// Leave: the task ends.
    Stop,
}

/// A subscriber's sid and its peer's frame queue.
type Sink = (String, mpsc::Sender<MediaFrame>);

/// Subscriber peers per track, shared between the room state and the publisher task.
#[derive(Debug, Default)]
pub struct Fanout {
    sinks: Mutex<HashMap<String, Vec<Sink>>>,
    /// Frames dropped because a subscriber's queue was full.
    pub dropped: AtomicU64,
}

impl Fanout {
    /// Adds subscriber `sub` to `track` (idempotent).
    pub fn add(&self, track: &str, sub: &str, tx: mpsc::Sender<MediaFrame>) {
        let mut m = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        let v = m.entry(track.to_owned()).or_default();
        if !v.iter().any(|(s, _)| s == sub) {
            v.push((sub.to_owned(), tx));
        }
    }

    /// Removes subscriber `sub` from `track`, or from every track when `track` is `None`.
    pub fn remove(&self, track: Option<&str>, sub: &str) {
        let mut m = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for (t, v) in m.iter_mut() {
            if track.is_none_or(|x| x == t) {
                v.retain(|(s, _)| s != sub);
            }
        }
    }

    /// The subscriber sids of `track`.
    pub fn subscribers(&self, track: &str) -> Vec<String> {
        let m = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        m.get(track).map(|v| v.iter().map(|(s, _)| s.clone()).collect()).unwrap_or_default()
    }

    fn send(&self, frame: &MediaFrame) {
        let m = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in m.get(&*frame.track).into_iter().flatten() {
            if tx.try_send(frame.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A track as the publisher task drives it.
#[derive(Debug)]
pub struct PubTrack {
    /// Track sid.
    pub sid: Arc<str>,
    /// The shared loop.
    pub shared: Arc<SharedLoop>,
    /// Position in the loop and RTP base.
    pub synth: SyntheticTrack,
    /// Ground-truth log.
    pub log: Arc<TrackLog>,
    muted: bool,
    paused_until: Option<Instant>,
    /// SFU filler frames still to send in place of muted frames (see [`SFU_MUTE_FILLER`]).
    filler_left: u32,
    /// A keyframe asked for: at this capture time (participant-clock ns) the loop moves this
    /// far ahead (ns), so the frame sent then is the loop's next keyframe.
    keyframe_at: Option<(u64, u64)>,
}

impl PubTrack {
    /// A track with a random RTP base; audio starts `offset` after the participant clock.
    pub fn new(sid: &str, shared: Arc<SharedLoop>, log: Arc<TrackLog>, offset: Duration) -> PubTrack {
        let mut synth = SyntheticTrack::new(shared.source.clone(), super::ids::random_u32(), 0);
        synth.skip_to_time(offset.as_nanos() as u64);
        PubTrack {
            sid: sid.into(),
            shared,
            synth,
            log,
            muted: false,
            paused_until: None,
            filler_left: 0,
            keyframe_at: None,
        }
    }

    /// A track published while its participant is already sending: it starts at `elapsed` on
    /// the participant clock (so SR-based sync with the other tracks stays exact), video at the
    /// loop's next keyframe, as a real encoder's first frame is.
    pub fn late(sid: &str, shared: Arc<SharedLoop>, log: Arc<TrackLog>, elapsed: Duration) -> PubTrack {
        let mut t = PubTrack::new(sid, shared, log, elapsed);
        if t.kind() == MediaKind::Video {
            let next = t.synth.clone().next_frame().loop_index;
            if let Some(k) = t.shared.next_keyframe(next) {
                t.synth.skip_to(k);
            }
        }
        t
    }

    fn kind(&self) -> MediaKind {
        self.synth.codec().kind()
    }
}

/// The participant clock: an instant and the UNIX time it stands for.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Instant of sender time 0.
    pub start: Instant,
    /// UNIX ns of sender time 0.
    pub start_unix_ns: u64,
}

/// Spawns the publisher task on `rt`; it ends on [`PubCmd::Stop`] or when every sender of
/// its command channel is gone.
pub fn spawn(
    rt: &tokio::runtime::Handle,
    tracks: Vec<PubTrack>,
    fanout: Arc<Fanout>,
    clock: Clock,
) -> mpsc::Sender<PubCmd> {
    let (tx, rx) = mpsc::channel(64);
    rt.spawn(run(tracks, fanout, clock, rx));
    tx
}

async fn run(mut tracks: Vec<PubTrack>, fanout: Arc<Fanout>, clock: Clock, mut rx: mpsc::Receiver<PubCmd>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => emit_due(&mut tracks, &fanout, &clock, Instant::now()),
            cmd = rx.recv() => match cmd {
                Some(PubCmd::Stop) => {
                    // the subscriptions close: each is flushed with the SFU's filler frames
                    tracks.iter_mut().for_each(|t| send_close_filler(t, &fanout, &clock));
                    break;
                }
                None => break,
                Some(PubCmd::RemoveTrack(sid)) => {
                    tracks.iter_mut().filter(|t| *t.sid == *sid).for_each(|t| send_close_filler(t, &fanout, &clock));
                    tracks.retain(|t| *t.sid != *sid);
                }
                Some(cmd) => handle(&mut tracks, cmd),
            },
        }
    }
}

fn handle(tracks: &mut Vec<PubTrack>, cmd: PubCmd) {
    match cmd {
        PubCmd::Keyframe(sid) => request_keyframe(tracks, &sid),
        PubCmd::Mute(kind, muted) => {
            for t in tracks.iter_mut().filter(|t| t.kind() == kind && t.muted != muted) {
                t.muted = muted;
                // as livekit-server does on an audio mute: 1 s of silence in the muted time
                let audio = kind == MediaKind::Audio && filler::sfu_filler(t.synth.codec()).is_some();
                t.filler_left = if muted && audio { SFU_MUTE_FILLER } else { 0 };
            }
        }
        PubCmd::Pause(sid, until) => {
            for t in tracks.iter_mut().filter(|t| sid.as_deref().is_none_or(|s| s == &*t.sid)) {
                t.paused_until = Some(until);
            }
        }
        PubCmd::AddTrack(t) => tracks.push(t),
        PubCmd::RemoveTrack(sid) => tracks.retain(|t| *t.sid != *sid),
        PubCmd::Stop => {}
    }
}

/// The SFU's flush of a closing subscription: about 0.2 s of filler frames (8x8 VP8 or 2x2
/// H.264 keyframes, Opus silence) after the last real frame, at the track's frame rate. None
/// for VP9 and AV1, as with livekit-server. Never in the ground-truth log.
fn send_close_filler(t: &mut PubTrack, fanout: &Fanout, clock: &Clock) {
    let Some(data) = filler::sfu_filler(t.synth.codec()) else { return };
    let data: Arc<[u8]> = data.into();
    let per_s = if t.kind() == MediaKind::Audio { 50.0 } else { 30.0 };
    for _ in 0..(per_s * SFU_CLOSE_FILLER_S) as u32 {
        let f = t.synth.next_frame();
        let wallclock = clock.start + Duration::from_nanos(f.sender_ns);
        fanout.send(&MediaFrame { track: t.sid.clone(), rtp_ts: f.rtp_time, wallclock, data: data.clone() });
    }
}

/// A keyframe request, answered as an encoder does: within a few frames the frame sent is a
/// keyframe, at its regular capture time (no hole). The loop's next keyframe is sent in place
/// of a regular frame and the loop goes on from there; the participant's audio moves ahead in
/// its loop by the same time, so the sync markers of audio and video stay aligned. The keyframe
/// comes at the first frame (of the next [`KEYFRAME_WITHIN_FRAMES`]) from which the move is a
/// whole number of audio frames too (every third 30 fps frame for 20 ms audio). A participant
/// with several video tracks, or loops on which no such frame exists, skip ahead in real time
/// to the loop's next keyframe instead (the frames in between are never sent).
fn request_keyframe(tracks: &mut [PubTrack], sid: &str) {
    let Some(v) = tracks.iter().position(|t| *t.sid == *sid && t.kind() == MediaKind::Video) else { return };
    if tracks[v].keyframe_at.is_some() {
        return; // one is on its way
    }
    if tracks.iter().filter(|t| t.kind() == MediaKind::Video).count() == 1 {
        let mut probe = tracks[v].synth.clone();
        for _ in 0..=KEYFRAME_WITHIN_FRAMES {
            let next = probe.clone().next_frame().loop_index;
            let Some(k) = tracks[v].shared.next_keyframe(next) else { break };
            let ahead = probe.ahead_to(k);
            if ahead == 0 && probe.next_sender_ns() == tracks[v].synth.next_sender_ns() {
                return; // the next frame is a keyframe anyway
            }
            let audio_follows = tracks
                .iter()
                .filter(|t| t.kind() == MediaKind::Audio)
                .all(|a| a.synth.clone().content_ahead(ahead));
            if audio_follows {
                tracks[v].keyframe_at = Some((probe.next_sender_ns(), ahead));
                tracing::debug!(track = %sid, keyframe = k, "keyframe requested");
                return;
            }
            probe.next_frame();
        }
    }
    jump_to_keyframe(&mut tracks[v]);
}

/// Sends the keyframe asked for by [`request_keyframe`] now: track `v`'s loop and the
/// participant's audio loops move ahead together.
fn keyframe_now(tracks: &mut [PubTrack], v: usize) {
    let Some((_, ahead)) = tracks[v].keyframe_at.take() else { return };
    let audio_follows =
        tracks.iter().filter(|t| t.kind() == MediaKind::Audio).all(|a| a.synth.clone().content_ahead(ahead));
    if audio_follows && tracks[v].synth.content_ahead(ahead) {
        for a in tracks.iter_mut().filter(|t| t.kind() == MediaKind::Audio) {
            a.synth.content_ahead(ahead);
        }
    } else {
        jump_to_keyframe(&mut tracks[v]);
    }
}

fn jump_to_keyframe(t: &mut PubTrack) {
    // the loop index of the next frame due (a track published late may not have sent anything
    // yet: it must not jump a whole loop ahead to index 0)
    let next = t.synth.clone().next_frame().loop_index;
    if let Some(k) = t.shared.next_keyframe(next) {
        t.synth.skip_to(k);
        tracing::debug!(track = %t.sid, keyframe = k, "keyframe requested (skipping ahead)");
    }
}

fn emit_due(tracks: &mut [PubTrack], fanout: &Fanout, clock: &Clock, now: Instant) {
    let elapsed = now.saturating_duration_since(clock.start).as_nanos() as u64;
    for i in 0..tracks.len() {
        while tracks[i].synth.next_sender_ns() <= elapsed {
            if tracks[i].keyframe_at.is_some_and(|(at, _)| tracks[i].synth.next_sender_ns() >= at) {
                keyframe_now(tracks, i);
            }
            let t = &mut tracks[i];
            let f = t.synth.next_frame();
            let (idx, sender_ns, rtp_ts) = (f.loop_index, f.sender_ns, f.rtp_time);
            let paused = t.paused_until.is_some_and(|u| now < u);
            if t.muted && t.filler_left > 0 {
                t.filler_left -= 1;
                if let Some(data) = filler::sfu_filler(t.synth.codec()) {
                    // not the publisher's: never in the ground-truth log
                    let wallclock = clock.start + Duration::from_nanos(sender_ns);
                    fanout.send(&MediaFrame { track: t.sid.clone(), rtp_ts, wallclock, data: data.into() });
                }
                continue;
            }
            if t.muted || paused {
                continue;
            }
            let data = t.shared.frames[idx].clone();
            t.log.push(SentFrame {
                rtp_ts,
                ntp_ns: clock.start_unix_ns + sender_ns,
                size: data.len(),
                keyframe: t.shared.keyframes[idx],
                sha256: t.shared.hashes[idx].clone(),
            });
            let wallclock = clock.start + Duration::from_nanos(sender_ns);
            fanout.send(&MediaFrame { track: t.sid.clone(), rtp_ts, wallclock, data });
        }
    }
}
