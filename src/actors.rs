//! The recorder's actor tree (ractor). Only messages pass between actors; HTTP handlers reach
//! them through [`supervisor::SupervisorMsg`] with `call_t!` and a timeout.
//!
//! ```text
//! RecorderSupervisor   one_for_one over rooms, reconnect with backoff until RESUME_TIMEOUT,
//! │                    then that room's recordings end (other rooms are never touched)
//! └─ RoomActor ×N      owns one RoomConnection; one_for_one over participants, 5 / 60 s
//!    └─ ParticipantRecorder ×M   owns the RecordingPart (one file, audio + video);
//!                                restart = a NEW part file (-part2, ...)
//!       │                        one_for_one over track writers, 5 / 60 s
//!       └─ TrackWriterActor ×K   per track: frames routed to it by the room; restart = a
//!                                short gap in the same file (see track_writer.rs)
//! └─ uploader pool (S3 only)     ractor factory of UPLOAD_WORKERS UploadWorkers; a dead
//!                                worker is replaced by the factory, a dead factory by the
//!                                supervisor (see uploader.rs)
//! ```

pub mod media_queue;
pub mod participant;
pub mod room;
pub mod supervisor;
pub mod track_writer;
pub mod uploader;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;

/// What every actor of the tree needs to know (read-only).
#[derive(Clone)]
pub struct RecorderSettings {
    /// LiveKit server URL (`ws://...`).
    pub livekit_url: String,
    /// LiveKit API key.
    pub api_key: String,
    /// LiveKit API secret (never logged).
    pub api_secret: String,
    /// Where recordings are written.
    pub recordings_dir: PathBuf,
    /// How long a start waits for the participant to join and publish.
    pub start_timeout: Duration,
    /// How long a participant recorder waits for all published tracks before it opens the
    /// file with the tracks it has.
    pub track_grace: Duration,
    /// Start recording on a `participant_joined` webhook.
    pub auto_record_on_join: bool,
    /// Default file name template (webhook-started recordings).
    pub filename_template: String,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `MAX_FILE_SIZE`: a part that reaches this size rolls over to the next part.
    pub max_file_bytes: Option<u64>,
    /// `MAX_RECORDING_DURATION`: a recording this old ends `complete`.
    pub max_duration: Option<Duration>,
    /// `MAX_CONCURRENT_RECORDINGS`: starts beyond this many live recordings get 503.
    pub max_concurrent: Option<usize>,
    /// `RESUME_TIMEOUT`: how long a recording resumed after a restart or reconnect waits for
    /// its participant before it ends `complete` with the parts it has.
    pub resume_timeout: Duration,
    /// Lifetime of the recorder's join tokens (a signal resume after it uses the server's
    /// `refresh_token`; a new connection mints a new token).
    pub token_ttl: Duration,
    /// S3 uploads (`S3_BUCKET` set).
    pub uploader: Option<Arc<crate::storage::s3::Uploader>>,
    /// Result callbacks (`WEBHOOK_URLS` set).
    pub callbacks: Option<Arc<crate::callbacks::Callbacks>>,
    /// `HISTORY_MAX_RECORDINGS`, `HISTORY_MAX_AGE`: how many ended recordings stay answerable,
    /// and how long.
    pub history: crate::storage::history::Retention,
    /// `MEDIA_QUEUE_SIZE`: media queued per recorded participant before the room drops frames
    /// (see [`media_queue`]).
    pub media_queue_bytes: usize,
    /// Cluster mode (`REDIS_URL` set).
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl std::fmt::Debug for RecorderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderSettings")
            .field("livekit_url", &self.livekit_url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .field("recordings_dir", &self.recordings_dir)
            .field("start_timeout", &self.start_timeout)
            .field("uploader", &self.uploader)
            .field("callbacks", &self.callbacks)
            .finish_non_exhaustive()
    }
}

/// Progress of one recording, from its participant recorder to the supervisor's table.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Recording id.
    pub id: String,
    /// Part number (1, 2, ...).
    pub part: u32,
    /// New status, if it changed.
    pub status: Option<crate::recording::Status>,
    /// Tracks in the current part.
    pub tracks: Vec<crate::recording::TrackInfo>,
    /// Wanted tracks that cannot be recorded, and why.
    pub skipped_tracks: Vec<crate::recording::SkippedTrack>,
    /// The part's files, once opened (one, or one per track with the `track` layout).
    pub files: Vec<PathBuf>,
    /// Bytes in the part's file.
    pub bytes: u64,
    /// Media time written to the part, seconds.
    pub duration_s: f64,
    /// Why it failed; in a periodic report (no status, no files), the live notice (no media
    /// arriving), `None` when all is well.
    pub error: Option<String>,
    /// Frames written into the part (its container) so far: what tells a recording with
    /// media from one that holds nothing.
    pub frames: u64,
    /// Frames lost (never received, or dropped after loss until the next keyframe) since the
    /// previous report; the supervisor adds them up.
    pub frames_lost: u64,
    /// Frames the recorder dropped because its queue for this recording was full (the file
    /// fell behind: a slow or stalled disk) since the previous report; the supervisor adds them
    /// up.
    pub frames_dropped: u64,
}

impl Progress {
    /// Only a status change (and why), for a recording whose recorder cannot report it itself.
    pub fn status_only(
        id: String,
        part: u32,
        status: crate::recording::Status,
        error: Option<String>,
    ) -> Progress {
        Progress {
            id,
            part,
            status: Some(status),
            tracks: vec![],
            skipped_tracks: vec![],
            files: vec![],
            bytes: 0,
            duration_s: 0.0,
            error,
            frames: 0,
            frames_lost: 0,
            frames_dropped: 0,
        }
    }
}
