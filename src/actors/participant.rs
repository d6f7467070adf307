//! `ParticipantRecorder`: records one participant of one room into one file with audio and
//! video (container from the codecs). Parent: the room actor; children: one
//! [`TrackWriterActor`] per track, supervised one_for_one with a budget of 5 restarts / 60 s
//! (a restarted writer's track continues after a short gap in the same file; over budget, this
//! actor fails and the room restarts it). Restart type: transient; a restart of this actor
//! continues in a NEW part file.
//!
//! It waits (event-driven, no polling of LiveKit) until the participant has published and the
//! tracks are subscribed, then opens the part; frames that arrive before are buffered (bounded).
//! A track subscribed after the part is open closes that part and continues in the next one
//! with all tracks (the media session's track set is fixed per file); an unpublished track
//! simply stops sending into the current part. `post_stop` finalizes the part, so stopping the
//! actor never loses what was received. Frames lost to unrepaired network loss (never received,
//! from RTP gaps, see `loss`; or dropped until the next keyframe) go to the recording's
//! `frames_lost`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tracing::Instrument;

mod loss;
mod progress;

use super::media_queue::{MediaQueue, QueuedFrame};
use super::room::RoomMsg;
use super::supervisor::SupervisorMsg;
use super::track_writer::{TrackWriter, TrackWriterActor, TrackWriterArgs, TrackWriterMsg};
use super::RoomSettings;
use crate::ids::TrackSid;
use crate::livekit::{ReceivedFrame, TrackSnapshot};
use crate::media::mux::ContainerKind;
use crate::media::session::SessionConfig;
use crate::media::{Codec, MediaKind};
use crate::metrics::Metrics;
use crate::output::RecordingPart;
use crate::recording::{
    H264Container, Layout, RecorderError, RecordingInfo, RecordingSpec, SkippedTrack, Status,
};
use crate::storage::layout::{relative_path, NameVars};
use crate::supervision::{RestartBudget, Verdict};

/// How long the first part waits for every wanted track to be subscribed before it opens
/// with the tracks that are.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(4);
/// How long a part with only audio or only video published waits for the other kind.
const COMPANION_WAIT: Duration = Duration::from_secs(1);
/// Frames kept while the part is not open yet.
const MAX_BUFFERED: usize = 2048;
/// How often the session is polled (interleaving window, flushes).
const TICK: Duration = Duration::from_millis(200);
/// How long a size roll-over waits for a video keyframe before it rolls anyway.
const ROLL_WAIT: Duration = Duration::from_secs(3);
/// Progress goes to the supervisor every this many ticks.
const PROGRESS_EVERY: u32 = 5;

/// Arguments of a participant recorder.
#[derive(Debug)]
pub struct ParticipantArgs {
    /// What to record.
    pub spec: RecordingSpec,
    /// Part number of the first file this actor writes.
    pub part: u32,
    /// Daemon settings.
    pub settings: Arc<RoomSettings>,
    /// The room actor (keyframe requests).
    pub room: ActorRef<RoomMsg>,
    /// The supervisor (progress).
    pub supervisor: ActorRef<SupervisorMsg>,
    /// The bound on frames on their way here (the room drops frames when it is full).
    pub queue: Arc<MediaQueue>,
}

/// Messages of a participant recorder.
#[derive(Debug)]
pub enum ParticipantMsg {
    /// The participant's published audio/video tracks (complete list).
    Published(Vec<TrackSnapshot>),
    /// A track's media is negotiated.
    TrackSubscribed {
        /// Track sid.
        track_sid: TrackSid,
        /// Codec, if known from the negotiation.
        codec: Option<Codec>,
    },
    /// One frame of a subscribed track (from its track writer).
    Frame {
        /// Track sid.
        track_sid: TrackSid,
        /// The frame, holding its share of the recording's queue until it is handled.
        frame: QueuedFrame,
        /// The track's sender reports agree (its time is on the sender's clock).
        synced: bool,
    },
    /// The participant left: finalize once the track writers have handed over their frames.
    Left,
    /// Finalize now (queued behind the frames the writers flushed); reply if asked to.
    Finish(Option<RpcReplyPort<Result<RecordingInfo, RecorderError>>>),
    /// Timer: poll the session.
    Tick,
    /// Timer: the start timeout passed.
    StartTimedOut,
    /// Finalize and reply (through the supervisor) with the recording.
    Stop {
        /// Where the final recording goes.
        reply: RpcReplyPort<Result<RecordingInfo, RecorderError>>,
    },
    /// The room is going away and will be restarted: close the part (the recording stays
    /// live and continues in a new part under the new room actor), reply, stop.
    Suspend(RpcReplyPort<()>),
    /// Test hook: fail as if the file could not be written.
    #[cfg(feature = "testing")]
    InjectFailure,
    /// Test hook: make the track writer of the first track of this kind fail.
    #[cfg(feature = "testing")]
    InjectTrackFailure(MediaKind),
}

/// State of a participant recorder.
pub struct ParticipantState {
    args: ParticipantArgs,
    /// The recording's span ([`crate::recording::span`]): every handler runs in it, and the
    /// track writers log in it too.
    span: tracing::Span,
    tracks: Vec<TrackWriter>,
    /// Wanted tracks that cannot be recorded (reported in the recording).
    skipped: Vec<SkippedTrack>,
    /// The open files of the current part: one, or one per track with the `track` layout.
    parts: Vec<RecordingPart>,
    part_no: u32,
    buffered: VecDeque<(TrackSid, ReceivedFrame)>,
    epoch: Instant,
    first_subscribed: Option<Instant>,
    ticks: u32,
    reported_bytes: u64,
    ended: bool,
    writer_budget: RestartBudget,
    /// A size roll-over is waiting for a video keyframe (since).
    roll_requested: Option<Instant>,
    /// The directory of the last part opened.
    part_dir: Option<std::path::PathBuf>,
    /// Loss estimate per track sid (frames never received).
    loss: std::collections::HashMap<TrackSid, loss::LossCounter>,
    /// Frames lost so far: never received, plus dropped after loss in closed parts.
    frames_lost: u64,
    /// How much of the loss the supervisor has been told about.
    reported_lost: u64,
    /// Frames dropped by the room (queue full) already reported.
    reported_dropped: u64,
    /// Whether media keeps arriving into the open part.
    stall: progress::StallWatch,
}

/// The participant recorder actor.
pub struct ParticipantRecorder;

/// Why a participant recorder failed on its own (its exit carries this to the room), typed at
/// the source like the room's [`RoomError`](super::room::RoomError). Errors of the files it
/// writes leave it as they are (`std::io::Error` and the like).
#[derive(Debug, thiserror::Error)]
pub enum ParticipantError {
    /// Its track writers failed more often than their budget allows (the last failure).
    #[error("track writers failed repeatedly: {0}")]
    WritersFailed(String),
    /// Test hook ([`ParticipantMsg::InjectFailure`]).
    #[cfg(feature = "testing")]
    #[error("injected failure")]
    Injected,
}

impl ParticipantError {
    /// Retrying cannot help. Never so for these: a new part with new track writers may well
    /// work, so the room restarts the recorder within its budget. (A full or unwritable disk
    /// does not fail the recorder: its recording ends `failed` with the reason, see
    /// `storage_failure`.)
    pub fn is_permanent(&self) -> bool {
        match self {
            ParticipantError::WritersFailed(_) => false,
            #[cfg(feature = "testing")]
            ParticipantError::Injected => false,
        }
    }
}

impl Actor for ParticipantRecorder {
    type Msg = ParticipantMsg;
    type State = ParticipantState;
    type Arguments = ParticipantArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: ParticipantArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let span = args.spec.span();
        let _in = span.enter(); // nothing is awaited below
        me.send_interval(TICK, || ParticipantMsg::Tick);
        let timeout = if args.part == 1 {
            args.settings.recording.start_timeout
        } else {
            args.settings.recording.resume_timeout
        };
        me.send_after(timeout, || ParticipantMsg::StartTimedOut);
        let part_no = args.part;
        Ok(ParticipantState {
            span: span.clone(),
            args,
            tracks: Vec::new(),
            parts: Vec::new(),
            part_no,
            buffered: VecDeque::new(),
            epoch: Instant::now(),
            first_subscribed: None,
            ticks: 0,
            reported_bytes: 0,
            ended: false,
            writer_budget: RestartBudget::new(5, Duration::from_secs(60)),
            roll_requested: None,
            part_dir: None,
            loss: std::collections::HashMap::new(),
            frames_lost: 0,
            reported_lost: 0,
            reported_dropped: 0,
            skipped: Vec::new(),
            stall: progress::StallWatch::new(Instant::now()),
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = st.span.clone();
        Self::handle_in_span(&me, msg, st).instrument(span).await
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(cell, err) = evt {
            let span = st.span.clone();
            st.on_writer_failed(&me, cell.get_id(), &err.to_string()).instrument(span).await?;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let span = st.span.clone();
        let _in = span.enter(); // nothing is awaited below
        if !st.ended {
            st.end(&me, Status::Complete, None)?;
        }
        Ok(())
    }
}

impl ParticipantRecorder {
    async fn handle_in_span(
        me: &ActorRef<ParticipantMsg>,
        msg: ParticipantMsg,
        st: &mut ParticipantState,
    ) -> Result<(), ActorProcessingErr> {
        match st.dispatch(me, msg).await {
            Err(e) if st.ended => Err(e),
            Err(e) => match storage_failure(&*e) {
                // a restart would hit the same full or unwritable disk: fail this recording
                // (the files keep what was flushed) and leave the others alone
                Some(reason) => st.fail_storage(me, reason),
                None => Err(e),
            },
            Ok(()) => Ok(()),
        }
    }
}

/// Why writing failed, when it is the disk's fault (full, over quota, read-only, no
/// permission): a restart would not help.
fn storage_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let io = e.downcast_ref::<std::io::Error>()?;
    use std::io::ErrorKind as K;
    let full = matches!(io.kind(), K::StorageFull | K::QuotaExceeded | K::FileTooLarge)
        || matches!(io.raw_os_error(), Some(28 | 122 | 27));
    let unwritable = matches!(io.kind(), K::PermissionDenied | K::ReadOnlyFilesystem);
    match (full, unwritable) {
        (true, _) => Some(format!("disk full: {io}")),
        (_, true) => Some(format!("recordings directory not writable: {io}")),
        _ => None,
    }
}

impl ParticipantState {
    async fn dispatch(
        &mut self,
        me: &ActorRef<ParticipantMsg>,
        msg: ParticipantMsg,
    ) -> Result<(), ActorProcessingErr> {
        let (me, st) = (me.clone(), self);
        match msg {
            ParticipantMsg::Published(tracks) => st.on_published(&me, &tracks).await?,
            ParticipantMsg::TrackSubscribed { track_sid, codec } => st.on_subscribed(&track_sid, codec)?,
            ParticipantMsg::Frame { track_sid, frame, synced } => {
                let QueuedFrame { frame, dropped_before, reserved } = frame;
                st.on_frame(track_sid, frame, synced, dropped_before)?;
                drop(reserved); // handled: its room in the queue comes back
            }
            ParticipantMsg::Left => {
                st.flush_writers().await;
                let _ = me.cast(ParticipantMsg::Finish(None));
            }
            ParticipantMsg::Finish(reply) => {
                st.end(&me, Status::Complete, None)?;
                if let Some(reply) = reply {
                    let id = st.args.spec.id.clone();
                    let _ = st.args.supervisor.cast(SupervisorMsg::ReplyWith { id, reply });
                }
            }
            ParticipantMsg::Tick => st.on_tick(&me)?,
            ParticipantMsg::StartTimedOut => st.on_start_timeout(&me)?,
            ParticipantMsg::Stop { reply } => {
                // everything the room received before the stop is in the writers' mailboxes:
                // let them hand it over, then finish behind it
                st.flush_writers().await;
                let _ = me.cast(ParticipantMsg::Finish(Some(reply)));
            }
            ParticipantMsg::Suspend(reply) => {
                st.close_part()?;
                st.ended = true;
                let _ = reply.send(());
                me.stop(Some("suspended".into()));
            }
            #[cfg(feature = "testing")]
            ParticipantMsg::InjectFailure => return Err(ParticipantError::Injected.into()),
            #[cfg(feature = "testing")]
            ParticipantMsg::InjectTrackFailure(kind) => {
                if let Some(a) = st.tracks.iter().find(|w| w.kind == kind).and_then(|w| w.actor.as_ref()) {
                    let _ = a.cast(TrackWriterMsg::InjectFailure);
                }
            }
        }
        Ok(())
    }

    /// The disk failed under this recording: count it, give up the open files without
    /// writing more (they hold everything up to the last flush point) and end `failed`.
    fn fail_storage(
        &mut self,
        me: &ActorRef<ParticipantMsg>,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        self.note_storage_failure(&reason);
        let parts = std::mem::take(&mut self.parts);
        let frames = parts.iter().map(|p| p.stats().frames_at_last_flush).sum();
        let files: Vec<_> = parts.into_iter().map(|p| p.path().to_owned()).collect();
        if !files.is_empty() {
            self.report_final(files, 0, frames);
        }
        self.end(me, Status::Failed, Some(reason))
    }

    fn note_storage_failure(&self, reason: &str) {
        tracing::error!(recording = %self.args.spec.id, %reason, "recording failed: storage");
        Metrics::add(&self.metrics().storage_failures, 1);
        let dir =
            self.part_dir.clone().unwrap_or_else(|| self.args.settings.recording.recordings_dir.clone());
        let _ = self.args.supervisor.cast(SupervisorMsg::StorageFailed(dir));
    }

    fn metrics(&self) -> &Metrics {
        &self.args.settings.metrics
    }

    async fn on_published(
        &mut self,
        me: &ActorRef<ParticipantMsg>,
        tracks: &[TrackSnapshot],
    ) -> Result<(), ActorProcessingErr> {
        // the list is the participant's current session's tracks: the others are gone (an
        // unpublish, or a rejoin that replaced the session) and stay out of later parts
        for w in &mut self.tracks {
            if !w.gone && !tracks.iter().any(|t| t.sid == w.sid) {
                tracing::info!(recording = %self.args.spec.id, track = %w.sid, "track gone");
                w.gone = true;
                w.subscribed = false;
            }
        }
        // every track of the open part is gone (the session was replaced): the part closes,
        // and the next opens like the first, once the new tracks are there
        let in_part = || self.tracks.iter().filter(|w| w.slot.is_some());
        if !self.parts.is_empty() && in_part().count() > 0 && in_part().all(|w| w.gone) {
            self.close_part()?;
            self.part_no += 1;
            self.first_subscribed = None;
        }
        for t in tracks {
            if let Some(reason) = t.unrecordable() {
                if self.args.spec.profile.wants(t.kind) && !self.skipped.iter().any(|s| s.sid == t.sid) {
                    tracing::warn!(recording = %self.args.spec.id, track = %t.sid, %reason, "track not recorded");
                    self.skipped.push(SkippedTrack {
                        sid: t.sid.clone(),
                        kind: if t.kind == MediaKind::Audio { "audio" } else { "video" }.to_owned(),
                        mime: t.mime.clone(),
                        reason,
                    });
                    self.report(None, Vec::new());
                }
                continue;
            }
            let Some(codec) = t.codec else { continue };
            if self.args.spec.profile.wants(t.kind) && !self.tracks.iter().any(|w| w.sid == t.sid) {
                let mut w = TrackWriter::published(t, codec);
                w.actor = Some(self.spawn_writer(me, &w, false).await?);
                self.tracks.push(w);
            }
        }
        Ok(())
    }

    /// Starts the writer actor of a track; it registers its route with the room itself.
    async fn spawn_writer(
        &self,
        me: &ActorRef<ParticipantMsg>,
        w: &TrackWriter,
        restarted: bool,
    ) -> Result<ActorRef<TrackWriterMsg>, ActorProcessingErr> {
        let args = TrackWriterArgs {
            recording: self.args.spec.id.clone(),
            span: self.span.clone(),
            sid: w.sid.clone(),
            codec: w.codec,
            restarted,
            participant: me.clone(),
            room: self.args.room.clone(),
            settings: self.args.settings.clone(),
        };
        let (actor, _) = Actor::spawn_linked(None, TrackWriterActor, args, me.get_cell()).await?;
        Ok(actor)
    }

    /// A track writer failed: restart it within the budget (its track continues after a gap
    /// in the same part), else fail this actor (the room continues in a new part).
    async fn on_writer_failed(
        &mut self,
        me: &ActorRef<ParticipantMsg>,
        id: ractor::ActorId,
        err: &str,
    ) -> Result<(), ActorProcessingErr> {
        let Some(i) = self.tracks.iter().position(|w| w.actor.as_ref().is_some_and(|a| a.get_id() == id))
        else {
            return Ok(());
        };
        self.tracks[i].actor = None;
        let (recording, track) = (&self.args.spec.id, &self.tracks[i].sid);
        match self.writer_budget.on_failure(Instant::now()) {
            Verdict::Restart => {
                tracing::warn!(%recording, %track, error = %err, "track writer failed; restarting it");
                Metrics::add(&self.metrics().restarts_track, 1);
                let actor = self.spawn_writer(me, &self.tracks[i], true).await?;
                self.tracks[i].actor = Some(actor);
                Ok(())
            }
            Verdict::Escalate => Err(ParticipantError::WritersFailed(err.to_owned()).into()),
        }
    }

    /// Waits (bounded) until every writer has handed its queued frames to this actor's mailbox.
    async fn flush_writers(&self) {
        for a in self.tracks.iter().filter_map(|w| w.actor.as_ref()) {
            let _ = a.call(TrackWriterMsg::Flush, Some(Duration::from_secs(1))).await;
        }
    }

    fn on_subscribed(&mut self, sid: &TrackSid, codec: Option<Codec>) -> Result<(), ActorProcessingErr> {
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid && !w.gone) else { return Ok(()) };
        w.subscribed = true;
        if let Some(c) = codec {
            w.codec = c;
        }
        self.first_subscribed.get_or_insert_with(Instant::now);
        // with a part open, the track joins the next part at its first frame (see `on_frame`)
        if self.parts.is_empty() && self.ready() {
            self.open_part()
        } else {
            Ok(())
        }
    }

    fn on_frame(
        &mut self,
        sid: TrackSid,
        frame: ReceivedFrame,
        synced: bool,
        dropped_before: u64,
    ) -> Result<(), ActorProcessingErr> {
        if self.parts.is_empty() {
            return self.hold(sid, frame, synced);
        }
        // a size roll-over waits for a video keyframe, so the next part starts with it and
        // no video is lost at the seam
        let keyframe = frame.keyframe == Some(true);
        if keyframe
            && self.roll_requested.is_some()
            && self.tracks.iter().any(|w| w.sid == sid && w.slot.is_some())
        {
            self.roll_requested = None;
            self.rotate()?;
        }
        // a track subscribed while the part is open joins at its first frame (video: its first
        // keyframe): the next part starts there, so its header has the track's configuration
        // and the track is never an empty or sizeless one
        let joining =
            self.tracks.iter().find(|w| w.sid == sid && w.subscribed && !w.gone && w.slot.is_none());
        if let Some(kind) = joining.map(|w| w.kind) {
            if kind == MediaKind::Video && !keyframe {
                self.request_keyframe(&sid);
                return Ok(());
            }
            self.rotate()?;
        }
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid) else { return Ok(()) };
        let Some((file, index)) = w.slot else { return Ok(()) };
        w.frames += 1;
        // frames the room dropped (queue full) are counted as dropped, not lost
        let lost = self.loss.entry(sid.clone()).or_default().observe(frame.rtp_time, frame.contiguous);
        let lost = lost.saturating_sub(dropped_before);
        if lost > 0 {
            tracing::info!(recording = %self.args.spec.id, track = %sid, lost, "frames lost");
            Metrics::add(&self.args.settings.metrics.frames_lost, lost);
            self.frames_lost += lost;
        }
        let outcome = self.parts[file].push(index, &frame.as_frame_in(self.epoch))?;
        if outcome.request_keyframe {
            self.request_keyframe(&sid);
        }
        Ok(())
    }

    /// Before the part opens: keep the frame (bounded). The part opens once every wanted
    /// track is subscribed (or after [`SUBSCRIBE_WAIT`]); the frames kept meanwhile are
    /// replayed (with the latest sender report when there is one), so the file still begins
    /// with the keyframe asked for at the start.
    fn hold(&mut self, sid: TrackSid, frame: ReceivedFrame, synced: bool) -> Result<(), ActorProcessingErr> {
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid) else { return Ok(()) };
        w.seen = true;
        // one report is enough to open: the frames kept are re-timed by the latest one, and a
        // later report that disagrees is corrected by the media timeline like clock drift
        w.synced |= synced || frame.sender_report.is_some();
        if frame.sender_report.is_some() {
            w.latest_sr = frame.sender_report;
        }
        // kept while the reports are not trusted yet (the keyframe asked for at the start is
        // among them): the part opens with every frame re-timed by the latest report
        if self.buffered.len() == MAX_BUFFERED {
            self.buffered.pop_front();
            Metrics::add(&self.args.settings.metrics.frames_dropped, 1);
        }
        self.buffered.push_back((sid, frame));
        if self.ready() {
            self.open_part()?;
        }
        Ok(())
    }

    /// Every wanted track is subscribed and one sent a frame: the part opens at once (it
    /// does not wait for sender reports; its media session waits for the video keyframes).
    /// With only one of audio and video published, it gives the other [`COMPANION_WAIT`] to
    /// appear (publishers start both within a moment), so that it is not left to a part 2.
    fn ready(&self) -> bool {
        let live = || self.tracks.iter().filter(|w| !w.gone);
        let subscribed = live().all(|w| w.subscribed) && live().any(|w| w.seen);
        let profile = &self.args.spec.profile;
        let missing_kind = [MediaKind::Audio, MediaKind::Video]
            .into_iter()
            .any(|k| profile.wants(k) && !live().any(|w| w.kind == k));
        let waited = self.first_subscribed.is_some_and(|t| t.elapsed() >= COMPANION_WAIT);
        subscribed && (!missing_kind || waited)
    }

    fn on_tick(&mut self, me: &ActorRef<ParticipantMsg>) -> Result<(), ActorProcessingErr> {
        if self.parts.is_empty() {
            let grace = self.args.settings.recording.track_grace.max(SUBSCRIBE_WAIT);
            let waited = self.first_subscribed.is_some_and(|t| t.elapsed() >= grace);
            if waited || self.ready() {
                self.open_part()?;
            }
            return Ok(());
        }
        let now = self.now_ns();
        for part in &mut self.parts {
            let _ = part.poll(now)?; // keyframe requests come with frames
        }
        self.ticks += 1;
        if self.ticks % PROGRESS_EVERY == 0 {
            self.report(None, Vec::new());
        }
        self.enforce_limits(me)
    }

    /// `MAX_FILE_SIZE`: the part rolls over to the next (starting at a keyframe);
    /// `MAX_RECORDING_DURATION`: the recording ends `complete`.
    fn enforce_limits(&mut self, me: &ActorRef<ParticipantMsg>) -> Result<(), ActorProcessingErr> {
        let s = &self.args.settings;
        let elapsed_ms = crate::recording::unix_ms_now().saturating_sub(self.args.spec.started_unix_ms);
        if s.recording.max_duration.is_some_and(|max| u128::from(elapsed_ms) >= max.as_millis()) {
            tracing::info!(recording = %self.args.spec.id, "maximum recording duration reached");
            return self.end(me, Status::Complete, None);
        }
        let size: u64 = self.parts.iter().map(RecordingPart::len).sum();
        if s.recording.max_file_bytes.is_none_or(|max| size < max) {
            return Ok(());
        }
        let videos: Vec<TrackSid> = self
            .tracks
            .iter()
            .filter(|w| w.kind == MediaKind::Video && w.slot.is_some())
            .map(|w| w.sid.clone())
            .collect();
        match self.roll_requested {
            None if !videos.is_empty() => {
                tracing::info!(recording = %self.args.spec.id, size, "maximum file size reached; next part at the next keyframe");
                self.roll_requested = Some(Instant::now());
                for sid in videos {
                    self.request_keyframe(&sid);
                }
                Ok(())
            }
            // no video, or no keyframe came: roll now
            Some(t) if t.elapsed() < ROLL_WAIT => Ok(()),
            _ => {
                self.roll_requested = None;
                self.rotate()
            }
        }
    }

    fn on_start_timeout(&mut self, me: &ActorRef<ParticipantMsg>) -> Result<(), ActorProcessingErr> {
        if !self.parts.is_empty() || self.ended {
            return Ok(());
        }
        let who = &self.args.spec.identity;
        if self.part_no > 1 {
            // a resumed recording whose participant did not come back: it ends with its parts
            let secs = self.args.settings.recording.resume_timeout.as_secs_f64();
            let why = format!("participant {who:?} did not return within {secs} s");
            tracing::info!(recording = %self.args.spec.id, "{why}; recording ends");
            return self.end(me, Status::Complete, Some(why));
        }
        let secs = self.args.settings.recording.start_timeout.as_secs_f64();
        let error = if self.tracks.is_empty() {
            format!("participant {who:?} did not join and publish within {secs} s")
        } else {
            format!("tracks of participant {who:?} were not received within {secs} s")
        };
        tracing::warn!(recording = %self.args.spec.id, "{error}");
        self.end(me, Status::Failed, Some(error))
    }

    /// Opens a part with every subscribed track (video first; one file, or one per track with
    /// the `track` layout) and replays buffered frames.
    fn open_part(&mut self) -> Result<(), ActorProcessingErr> {
        let mut order: Vec<usize> = (0..self.tracks.len()).filter(|&i| self.tracks[i].subscribed).collect();
        if order.is_empty() {
            return Ok(());
        }
        order.sort_by_key(|&i| self.tracks[i].kind == MediaKind::Audio);
        let groups: Vec<Vec<usize>> = match self.args.spec.layout {
            Layout::Participant => vec![order],
            Layout::Track => order.into_iter().map(|i| vec![i]).collect(),
        };
        self.reported_bytes = 0;
        let mut paths = Vec::new();
        for group in &groups {
            let path = self.part_path(group);
            let codecs: Vec<Codec> = group.iter().map(|&i| self.tracks[i].codec).collect();
            let first = |k| group.iter().map(|&i| &self.tracks[i]).find(|w| w.kind == k).map(|w| w.codec);
            let kind = match ContainerKind::for_codecs(first(MediaKind::Video), first(MediaKind::Audio)) {
                ContainerKind::Mkv if self.args.spec.h264_container == H264Container::Mp4 => {
                    ContainerKind::Mp4
                }
                kind => kind,
            };
            let path = path.with_extension(kind.extension());
            self.part_dir = path.parent().map(std::path::Path::to_path_buf);
            // the file starts at the first keyframe, without waiting for sender reports (the
            // real server sends its first one up to 3 s late): the timeline corrects itself
            // when they come
            let cfg = SessionConfig { max_sync_wait_ns: 0, ..SessionConfig::new(kind, codecs) };
            let part = RecordingPart::create_unique(&path, &self.args.spec.id, cfg)?;
            let path = part.path().to_owned();
            self.parts.push(part);
            for (n, &i) in group.iter().enumerate() {
                self.tracks[i].slot = Some((self.parts.len() - 1, n));
            }
            tracing::info!(recording = %self.args.spec.id, part = self.part_no, path = %path.display(), "recording part opened");
            paths.push(path);
        }
        // a keyframe is asked for unless one is among the frames kept (asking again would make
        // the publisher skip ahead to a new keyframe: a gap at the start)
        let with_key: std::collections::HashSet<TrackSid> =
            self.buffered.iter().filter(|(_, f)| f.keyframe == Some(true)).map(|(s, _)| s.clone()).collect();
        let videos: Vec<TrackSid> = self
            .tracks
            .iter()
            .filter(|w| w.kind == MediaKind::Video && w.slot.is_some() && !with_key.contains(&w.sid))
            .map(|w| w.sid.clone())
            .collect();
        for sid in videos {
            self.request_keyframe(&sid);
        }
        self.report(Some(Status::Active), paths);
        // video frames kept from before the track's first keyframe cannot be decoded: left out
        // here rather than dropped by the session, which would ask for yet another keyframe
        let mut keyed: std::collections::HashSet<TrackSid> = std::collections::HashSet::new();
        let mut frames = std::mem::take(&mut self.buffered);
        frames.retain(|(sid, f)| {
            if f.keyframe == Some(true) {
                keyed.insert(sid.clone());
            }
            f.keyframe.is_none() || keyed.contains(sid) || !with_key.contains(sid)
        });
        for (sid, mut frame) in frames {
            // one report describes the sender's RTP <-> NTP line for earlier frames too
            if let Some(w) = self.tracks.iter().find(|w| w.sid == sid && w.synced) {
                frame.sender_report = w.latest_sr.or(frame.sender_report);
            }
            self.on_frame(sid, frame, true, 0)?;
        }
        Ok(())
    }

    /// Closes the current part and opens the next with all subscribed tracks.
    fn rotate(&mut self) -> Result<(), ActorProcessingErr> {
        self.close_part()?;
        self.part_no += 1;
        self.open_part()
    }

    /// The part's path for these tracks, without extension: the template; with the `track`
    /// layout plus `-{track_type}` (unless the template has it) and the track sid when the
    /// participant has several tracks of that kind.
    fn part_path(&self, group: &[usize]) -> std::path::PathBuf {
        let spec = &self.args.spec;
        let mut template = spec.template.clone();
        let mut track_type = spec.profile.as_str();
        if let (Layout::Track, [i]) = (spec.layout, group) {
            let w = &self.tracks[*i];
            track_type = match w.kind {
                MediaKind::Audio => "audio",
                MediaKind::Video => "video",
            };
            if !template.contains("{track_type}") {
                template.push_str("-{track_type}");
            }
            if self.tracks.iter().filter(|o| o.subscribed && o.kind == w.kind).count() > 1 {
                template.push('-');
                template.push_str(&w.sid);
            }
        }
        let vars = NameVars {
            room: &spec.room,
            identity: &spec.identity,
            recording_id: &spec.id,
            track_type,
            unix_ms: spec.started_unix_ms,
        };
        self.args.settings.recording.recordings_dir.join(relative_path(&template, &vars, self.part_no, "x"))
    }

    fn close_part(&mut self) -> Result<(), ActorProcessingErr> {
        if self.parts.is_empty() {
            return Ok(());
        }
        let mut duration_ns = 0;
        let mut frames = 0;
        let mut size = 0;
        let mut paths = Vec::new();
        let mut failed = None;
        // every file is closed and reported even if one fails (it keeps what was flushed)
        for part in std::mem::take(&mut self.parts) {
            duration_ns = duration_ns.max(part.last_written_ns().unwrap_or(0));
            let path = part.path().to_owned();
            match part.finish() {
                Ok((_, stats)) => {
                    frames += stats.frames_written;
                    let dropped = stats.dropped_before_keyframe
                        + stats.dropped_after_loss
                        + stats.dropped_audio_overlap;
                    Metrics::add(&self.metrics().frames_dropped, dropped);
                    self.frames_lost += stats.dropped_after_loss;
                }
                Err(e) => failed = failed.or(Some(e)),
            }
            size += std::fs::metadata(&path).map_or(0, |m| m.len());
            paths.push(path);
        }
        Metrics::add(&self.metrics().bytes_written, size.saturating_sub(self.reported_bytes));
        self.reported_bytes = size;
        self.report_final(paths, duration_ns, frames);
        for w in &mut self.tracks {
            w.slot = None;
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Finalizes (closing the part) and stops the actor; `status` is the final status.
    fn end(
        &mut self,
        me: &ActorRef<ParticipantMsg>,
        status: Status,
        error: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        if self.ended {
            return Ok(());
        }
        self.ended = true;
        let had_part = !self.parts.is_empty();
        let closed = self.close_part();
        let (status, error) = match (status, had_part || self.part_no > 1, error, closed) {
            (_, _, _, Err(e)) => match storage_failure(&*e) {
                Some(reason) => {
                    self.note_storage_failure(&reason);
                    (Status::Failed, Some(reason))
                }
                None => (Status::Failed, Some(format!("finalizing the file failed: {e}"))),
            },
            (Status::Complete, false, None, Ok(())) => {
                (Status::Failed, Some("stopped before any media was received".into()))
            }
            (s, _, e, Ok(())) => (s, e),
        };
        let mut p = self.progress(Some(status), Vec::new());
        p.error = error;
        p.frames_lost = self.take_lost();
        p.frames_dropped = self.take_dropped();
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
        me.stop(None);
        Ok(())
    }

    fn request_keyframe(&self, sid: &TrackSid) {
        Metrics::add(&self.metrics().plis_requested, 1);
        let _ = self.args.room.cast(RoomMsg::RequestKeyframe { track_sid: sid.clone() });
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The failures a participant recorder's exit carries to its room: the same words as
    /// before they were typed (they end up in a recording's `error`), none permanent, and the
    /// room can tell them apart from any other error.
    #[test]
    fn participant_failures_keep_their_words_and_are_transient() {
        let e = ParticipantError::WritersFailed("injected track writer failure".into());
        assert_eq!(e.to_string(), "track writers failed repeatedly: injected track writer failure");
        assert!(!e.is_permanent());
        #[cfg(feature = "testing")]
        {
            let injected = ParticipantError::Injected;
            assert_eq!(injected.to_string(), "injected failure");
            assert!(!injected.is_permanent());
        }
        let boxed: ActorProcessingErr = e.into();
        assert!(boxed.downcast_ref::<ParticipantError>().is_some_and(|e| !e.is_permanent()));
        let other: ActorProcessingErr = std::io::Error::other("disk").into();
        assert!(other.downcast_ref::<ParticipantError>().is_none());
    }
}
