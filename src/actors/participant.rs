//! `ParticipantRecorder`: records one participant of one room into one file with audio and
//! video (container from the codecs). Parent: the room actor; children: none (per-track state
//! lives in [`TrackWriter`]s). Restart type: transient; a restart continues in a NEW part file.
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

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

mod loss;
mod progress;

use super::room::RoomMsg;
use super::supervisor::SupervisorMsg;
use super::track_writer::TrackWriter;
use super::RecorderSettings;
use crate::livekit::{ReceivedFrame, TrackSnapshot};
use crate::media::mux::ContainerKind;
use crate::media::session::SessionConfig;
use crate::media::{Codec, MediaKind};
use crate::metrics::Metrics;
use crate::output::RecordingPart;
use crate::recording::{RecorderError, RecordingInfo, RecordingSpec, Status};
use crate::storage::layout::{relative_path, NameVars};

/// How long the first part waits for sender reports before it opens without them.
const SR_WAIT: Duration = Duration::from_secs(4);
/// Frames kept while the part is not open yet.
const MAX_BUFFERED: usize = 2048;
/// How often the session is polled (interleaving window, flushes).
const TICK: Duration = Duration::from_millis(200);
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
    pub settings: Arc<RecorderSettings>,
    /// The room actor (keyframe requests).
    pub room: ActorRef<RoomMsg>,
    /// The supervisor (progress).
    pub supervisor: ActorRef<SupervisorMsg>,
}

/// Messages of a participant recorder.
#[derive(Debug)]
pub enum ParticipantMsg {
    /// The participant's published audio/video tracks (complete list).
    Published(Vec<TrackSnapshot>),
    /// A track's media is negotiated.
    TrackSubscribed {
        /// Track sid.
        track_sid: String,
        /// Codec, if known from the negotiation.
        codec: Option<Codec>,
    },
    /// One frame of a subscribed track.
    Frame {
        /// Track sid.
        track_sid: String,
        /// The frame.
        frame: ReceivedFrame,
    },
    /// The participant left: finalize.
    Left,
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
}

/// State of a participant recorder.
pub struct ParticipantState {
    args: ParticipantArgs,
    tracks: Vec<TrackWriter>,
    part: Option<RecordingPart>,
    part_no: u32,
    buffered: VecDeque<(String, ReceivedFrame)>,
    epoch: Instant,
    first_subscribed: Option<Instant>,
    ticks: u32,
    reported_bytes: u64,
    ended: bool,
    /// Loss estimate per track sid (frames never received).
    loss: std::collections::HashMap<String, loss::LossCounter>,
    /// Frames lost so far: never received, plus dropped after loss in closed parts.
    frames_lost: u64,
    /// How much of the loss the supervisor has been told about.
    reported_lost: u64,
}

/// The participant recorder actor.
pub struct ParticipantRecorder;

impl Actor for ParticipantRecorder {
    type Msg = ParticipantMsg;
    type State = ParticipantState;
    type Arguments = ParticipantArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Self::Msg>,
        args: ParticipantArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        me.send_interval(TICK, || ParticipantMsg::Tick);
        if args.part == 1 {
            me.send_after(args.settings.start_timeout, || ParticipantMsg::StartTimedOut);
        }
        let part_no = args.part;
        Ok(ParticipantState {
            args,
            tracks: Vec::new(),
            part: None,
            part_no,
            buffered: VecDeque::new(),
            epoch: Instant::now(),
            first_subscribed: None,
            ticks: 0,
            reported_bytes: 0,
            ended: false,
            loss: std::collections::HashMap::new(),
            frames_lost: 0,
            reported_lost: 0,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ParticipantMsg::Published(tracks) => st.on_published(&tracks),
            ParticipantMsg::TrackSubscribed { track_sid, codec } => st.on_subscribed(&track_sid, codec)?,
            ParticipantMsg::Frame { track_sid, frame } => st.on_frame(track_sid, frame)?,
            ParticipantMsg::Left => st.end(&me, Status::Complete, None)?,
            ParticipantMsg::Tick => st.on_tick()?,
            ParticipantMsg::StartTimedOut => st.on_start_timeout(&me)?,
            ParticipantMsg::Stop { reply } => {
                st.end(&me, Status::Complete, None)?;
                let _ =
                    st.args.supervisor.cast(SupervisorMsg::ReplyWith { id: st.args.spec.id.clone(), reply });
            }
            ParticipantMsg::Suspend(reply) => {
                st.close_part()?;
                st.ended = true;
                let _ = reply.send(());
                me.stop(Some("suspended".into()));
            }
            #[cfg(feature = "testing")]
            ParticipantMsg::InjectFailure => return Err("injected failure".into()),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !st.ended {
            st.end(&me, Status::Complete, None)?;
        }
        Ok(())
    }
}

impl ParticipantState {
    fn metrics(&self) -> &Metrics {
        &self.args.settings.metrics
    }

    fn on_published(&mut self, tracks: &[TrackSnapshot]) {
        for t in tracks {
            let Some(codec) = t.codec else { continue };
            if self.args.spec.profile.wants(t.kind) && !self.tracks.iter().any(|w| w.sid == t.sid) {
                self.tracks.push(TrackWriter::published(t, codec));
            }
        }
    }

    fn on_subscribed(&mut self, sid: &str, codec: Option<Codec>) -> Result<(), ActorProcessingErr> {
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid) else { return Ok(()) };
        w.subscribed = true;
        if let Some(c) = codec {
            w.codec = c;
        }
        self.first_subscribed.get_or_insert_with(Instant::now);
        match &self.part {
            None if self.ready() => self.open_part(),
            Some(_) if self.tracks.iter().any(|w| w.subscribed && w.index.is_none()) => self.rotate(),
            _ => Ok(()),
        }
    }

    fn on_frame(&mut self, sid: String, frame: ReceivedFrame) -> Result<(), ActorProcessingErr> {
        let Some(part) = self.part.as_mut() else {
            return self.hold(sid, frame);
        };
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid) else { return Ok(()) };
        let Some(index) = w.index else { return Ok(()) };
        w.frames += 1;
        let lost = self.loss.entry(sid.clone()).or_default().observe(frame.rtp_time, frame.contiguous);
        if lost > 0 {
            tracing::info!(recording = %self.args.spec.id, track = %sid, lost, "frames lost");
            Metrics::add(&self.args.settings.metrics.frames_lost, lost);
            self.frames_lost += lost;
        }
        let outcome = part.push(index, &frame.as_frame_in(self.epoch))?;
        if outcome.request_keyframe {
            self.request_keyframe(&sid);
        }
        Ok(())
    }

    /// Before the part opens: keep the frame (bounded). Frames are dropped until the track has
    /// two agreeing sender reports (for up to [`SR_WAIT`]), so the file starts on the sender's
    /// clock instead of re-timing everything when the first (or a bogus) report comes.
    fn hold(&mut self, sid: String, frame: ReceivedFrame) -> Result<(), ActorProcessingErr> {
        let waiting = self.first_subscribed.is_some_and(|t| t.elapsed() < SR_WAIT);
        let part_no = self.part_no;
        let Some(w) = self.tracks.iter_mut().find(|w| w.sid == sid) else { return Ok(()) };
        w.seen = true;
        w.observe_sr(frame.sender_report);
        // after a restart the connection's reports are long established: one is enough
        w.synced |= part_no > 1 && frame.sender_report.is_some();
        if !w.synced && waiting {
            return Ok(());
        }
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

    /// Every wanted track is subscribed, and every track that sent frames has a sender report.
    fn ready(&self) -> bool {
        let subscribed = self.tracks.iter().all(|w| w.subscribed);
        let synced = self.tracks.iter().filter(|w| w.seen).all(|w| w.synced);
        subscribed && synced && self.tracks.iter().any(|w| w.synced)
    }

    fn on_tick(&mut self) -> Result<(), ActorProcessingErr> {
        if self.part.is_none() {
            let grace = self.args.settings.track_grace.max(SR_WAIT);
            let waited = self.first_subscribed.is_some_and(|t| t.elapsed() >= grace);
            if waited {
                self.open_part()?;
            }
            return Ok(());
        }
        let now = self.now_ns();
        if let Some(part) = self.part.as_mut() {
            let outcome = part.poll(now)?;
            let _ = outcome; // keyframe requests come with frames
        }
        self.ticks += 1;
        if self.ticks % PROGRESS_EVERY == 0 {
            self.report(None, None);
        }
        Ok(())
    }

    fn on_start_timeout(&mut self, me: &ActorRef<ParticipantMsg>) -> Result<(), ActorProcessingErr> {
        if self.part.is_some() || self.ended {
            return Ok(());
        }
        let who = &self.args.spec.identity;
        let secs = self.args.settings.start_timeout.as_secs_f64();
        let error = if self.tracks.is_empty() {
            format!("participant {who:?} did not join and publish within {secs} s")
        } else {
            format!("tracks of participant {who:?} were not received within {secs} s")
        };
        tracing::warn!(recording = %self.args.spec.id, "{error}");
        self.end(me, Status::Failed, Some(error))
    }

    /// Opens a part with every subscribed track (video first) and replays buffered frames.
    fn open_part(&mut self) -> Result<(), ActorProcessingErr> {
        let mut order: Vec<usize> = (0..self.tracks.len()).filter(|&i| self.tracks[i].subscribed).collect();
        if order.is_empty() {
            return Ok(());
        }
        order.sort_by_key(|&i| self.tracks[i].kind == MediaKind::Audio);
        let codecs: Vec<Codec> = order.iter().map(|&i| self.tracks[i].codec).collect();
        let first = |k| order.iter().map(|&i| &self.tracks[i]).find(|w| w.kind == k).map(|w| w.codec);
        let kind = ContainerKind::for_codecs(first(MediaKind::Video), first(MediaKind::Audio));
        let spec = &self.args.spec;
        let vars = NameVars {
            room: &spec.room,
            identity: &spec.identity,
            recording_id: &spec.id,
            track_type: spec.profile.as_str(),
            unix_ms: spec.started_unix_ms,
        };
        let rel = relative_path(&spec.template, &vars, self.part_no, kind.extension());
        let path = self.args.settings.recordings_dir.join(rel);
        self.part = Some(RecordingPart::create(&path, SessionConfig::new(kind, codecs))?);
        self.reported_bytes = 0;
        for (n, &i) in order.iter().enumerate() {
            self.tracks[i].index = Some(n);
        }
        tracing::info!(recording = %spec.id, part = self.part_no, path = %path.display(), "recording part opened");
        let videos: Vec<String> = self
            .tracks
            .iter()
            .filter(|w| w.kind == MediaKind::Video && w.index.is_some())
            .map(|w| w.sid.clone())
            .collect();
        for sid in videos {
            self.request_keyframe(&sid);
        }
        self.report(Some(Status::Active), Some(path));
        for (sid, frame) in std::mem::take(&mut self.buffered) {
            self.on_frame(sid, frame)?;
        }
        Ok(())
    }

    /// Closes the current part and opens the next with all subscribed tracks.
    fn rotate(&mut self) -> Result<(), ActorProcessingErr> {
        self.close_part()?;
        self.part_no += 1;
        self.open_part()
    }

    fn close_part(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(part) = self.part.take() else { return Ok(()) };
        let duration_ns = part.last_written_ns().unwrap_or(0);
        let (path, stats) = part.finish()?;
        let dropped = stats.dropped_before_keyframe + stats.dropped_after_loss + stats.dropped_audio_overlap;
        Metrics::add(&self.metrics().frames_dropped, dropped);
        self.frames_lost += stats.dropped_after_loss;
        let size = std::fs::metadata(&path).map_or(stats.bytes, |m| m.len());
        Metrics::add(&self.metrics().bytes_written, size.saturating_sub(self.reported_bytes));
        self.reported_bytes = size;
        self.report_final(path, duration_ns);
        for w in &mut self.tracks {
            w.index = None;
        }
        Ok(())
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
        let had_part = self.part.is_some();
        self.close_part()?;
        let (status, error) = match (status, had_part || self.part_no > 1, error) {
            (Status::Complete, false, None) => {
                (Status::Failed, Some("stopped before any media was received".into()))
            }
            (s, _, e) => (s, e),
        };
        let mut p = self.progress(Some(status), None);
        p.error = error;
        p.frames_lost = self.take_lost();
        let _ = self.args.supervisor.cast(SupervisorMsg::Progress(p));
        me.stop(None);
        Ok(())
    }

    fn request_keyframe(&self, sid: &str) {
        Metrics::add(&self.metrics().plis_requested, 1);
        let _ = self.args.room.cast(RoomMsg::RequestKeyframe { track_sid: sid.to_owned() });
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}
