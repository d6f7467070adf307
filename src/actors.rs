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

pub use crate::config::{LiveKitSettings, RecordingSettings};
use crate::ids::RecordingId;
use crate::metrics::Metrics;

/// What the supervisor needs (read-only): the settings it hands to every room
/// ([`RoomSettings`]), and the services only it uses: uploads, result callbacks, the cluster.
#[derive(Clone)]
pub struct RecorderSettings {
    /// What the rooms and their children get.
    pub room: Arc<RoomSettings>,
    /// S3 uploads (`S3_BUCKET` set).
    pub uploader: Option<Arc<crate::storage::s3::Uploader>>,
    /// Result callbacks (`WEBHOOK_URLS` set).
    pub callbacks: Option<Arc<crate::callbacks::Callbacks>>,
    /// Cluster mode (`REDIS_URL` set).
    pub cluster: Option<crate::cluster::ClusterSettings>,
}

impl std::fmt::Debug for RecorderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderSettings")
            .field("room", &self.room)
            .field("uploader", &self.uploader)
            .field("callbacks", &self.callbacks)
            .field("cluster", &self.cluster.as_ref().map(|c| &c.node))
            .finish()
    }
}

/// What a room actor, its participant recorders and their track writers need (read-only):
/// where LiveKit is, how recordings are made, and the counters they add to.
#[derive(Debug)]
pub struct RoomSettings {
    /// The LiveKit server and the API key pair the room's token is signed with.
    pub livekit: LiveKitSettings,
    /// How recordings are made (from the environment, validated, as they are).
    pub recording: RecordingSettings,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// Progress of one recording, from its participant recorder to the supervisor's table.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Recording id.
    pub id: RecordingId,
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
        id: RecordingId,
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
