//! The recording as the API shows it ([`RecordingInfo`]), what a start asks for
//! ([`RecordingSpec`]), and the daemon's typed errors ([`RecorderError`]; `http/error.rs` maps
//! them to status codes in one place).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ids::{Identity, RecordingId, RoomName, TrackSid};
use crate::media::MediaKind;

/// Which tracks of a participant to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Audio and video (default).
    #[default]
    Av,
    /// Audio only.
    Audio,
    /// Video only.
    Video,
}

impl Profile {
    /// Whether tracks of `kind` are recorded.
    pub fn wants(self, kind: MediaKind) -> bool {
        matches!(
            (self, kind),
            (Profile::Av, _) | (Profile::Audio, MediaKind::Audio) | (Profile::Video, MediaKind::Video)
        )
    }

    /// `av`, `audio` or `video` (the `{track_type}` placeholder).
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Av => "av",
            Profile::Audio => "audio",
            Profile::Video => "video",
        }
    }
}

/// How a participant's tracks are laid out in files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One file per participant with all its tracks, lip-synced (default).
    #[default]
    Participant,
    /// One file per track (video-only WebM/MKV/MP4, audio-only Ogg), all on the same clock.
    Track,
}

/// The container of a file with H.264 video (other video codecs go to WebM, audio alone to Ogg).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum H264Container {
    /// Matroska (`.mkv`, default): H.264 with Opus.
    #[default]
    Mkv,
    /// Fragmented MP4 (`.mp4`): H.264 with Opus, what most players and editors open.
    Mp4,
}

/// Lifecycle of a recording: `pending` → `active` → `finalizing` → (`uploading`, when S3 is
/// configured) → `complete`, or `failed` from any of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the participant to join or publish.
    Pending,
    /// Writing.
    Active,
    /// Stop requested; the file is being closed.
    Finalizing,
    /// The files are closed and being uploaded to S3 (only with `S3_BUCKET`).
    Uploading,
    /// The files are closed (and uploaded, with S3).
    Complete,
    /// Ended with an error (see `error`).
    Failed,
}

impl Status {
    /// Still recording (`pending`, `active`, `finalizing`). An `uploading` recording is not
    /// live: a new start for the same participant creates a new recording.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Pending | Status::Active | Status::Finalizing)
    }

    /// Ended for good (`complete`, `failed`): result callbacks are sent.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Complete | Status::Failed)
    }
}

/// One recorded track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackInfo {
    /// Track sid.
    #[schema(value_type = String)]
    pub sid: TrackSid,
    /// `audio` or `video`.
    pub kind: String,
    /// Codec name (`vp8`, `opus`, ...).
    pub codec: String,
}

/// A wanted track the recorder cannot record (end-to-end encrypted, or a codec it does not
/// write), named in the recording so that `complete` never hides a missing track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkippedTrack {
    /// Track sid.
    #[schema(value_type = String)]
    pub sid: TrackSid,
    /// `audio` or `video`.
    pub kind: String,
    /// The mime type the server announced.
    pub mime: String,
    /// Why it is not recorded.
    pub reason: String,
}

/// One part of a recording: the file(s) written by one run of its participant recorder
/// (a restart, a reconnect, a new track or the size limit starts the next part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartInfo {
    /// Part number (1, 2, ...).
    pub part: u32,
    /// Its files (one, or one per track with the `track` layout), as written.
    #[schema(value_type = Vec<String>)]
    pub files: Vec<PathBuf>,
    /// When it opened (RFC 3339, UTC).
    pub started_at: Option<String>,
    /// When it was closed (RFC 3339, UTC); `None` while open, or when the process died with it
    /// open (it was repaired at the next start).
    pub ended_at: Option<String>,
    /// Media time in it, seconds (0 for a part repaired after a crash).
    pub duration_s: f64,
    /// Bytes in it.
    pub bytes: u64,
    /// Cluster mode: the node that wrote it (`NODE_ID`); absent on a single node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A recording as `GET /recordings/{id}` returns it.
/// Deserialized from the journal's history (`storage::journal::Event::Ended`): every field but
/// the identity and status has a default, so a history written by another version still reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordingInfo {
    /// Recording id (`RC_...`).
    #[schema(value_type = String)]
    pub id: RecordingId,
    /// Room name.
    #[schema(value_type = String)]
    pub room: RoomName,
    /// Participant identity.
    #[schema(value_type = String)]
    pub participant: Identity,
    /// Lifecycle state.
    pub status: Status,
    /// The tracks in the file(s), over all parts (a republished track is a new track).
    #[serde(default)]
    pub tracks: Vec<TrackInfo>,
    /// Published tracks the recording wanted but cannot record, with the reason.
    #[serde(default)]
    pub skipped_tracks: Vec<SkippedTrack>,
    /// When the start was requested (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended (RFC 3339, UTC).
    #[serde(default)]
    pub ended_at: Option<String>,
    /// Media time written, seconds (all parts).
    #[serde(default)]
    pub duration_s: f64,
    /// Bytes written (all parts).
    #[serde(default)]
    pub bytes: u64,
    /// Local files, oldest first (a restart continues in a new part). A file removed after its
    /// verified upload (S3 without `S3_KEEP_LOCAL`) leaves this list; see `outputs`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub files: Vec<PathBuf>,
    /// The parts, with their files and time ranges.
    #[serde(default)]
    pub parts: Vec<PartInfo>,
    /// Uploaded objects (`s3://bucket/key`), oldest first; empty without S3.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Frames lost to network loss that retransmission could not repair: never received, or
    /// dropped until the next keyframe (all parts).
    #[serde(default)]
    pub frames_lost: u64,
    /// Frames the recorder dropped itself because writing fell behind (a slow or stalled
    /// disk: more than `MEDIA_QUEUE_SIZE` of media waiting), all parts. Each drop leaves a gap
    /// up to the next keyframe in the file.
    #[serde(default)]
    pub frames_dropped: u64,
}

/// What a start asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingSpec {
    /// Recording id.
    pub id: RecordingId,
    /// Room name.
    pub room: RoomName,
    /// Participant identity.
    pub identity: Identity,
    /// Tracks to record.
    pub profile: Profile,
    /// One file per participant or per track.
    pub layout: Layout,
    /// File name template.
    pub template: String,
    /// Start time, ms since the UNIX epoch.
    pub started_unix_ms: u64,
    /// Container for H.264 video (journals written before it existed read as the default).
    #[serde(default)]
    pub h264_container: H264Container,
}

impl RecordingSpec {
    /// This recording's tracing span (see [`span`]).
    pub fn span(&self) -> tracing::Span {
        span(&self.id, &self.room, &self.identity)
    }
}

/// The tracing span of one recording: every log line emitted inside its participant recorder,
/// its track writers and the upload of its parts carries `recording_id`, `room` and
/// `participant` (text: `recording{recording_id=.. room=.. participant=..}:` before the
/// message; JSON: the `span` and `spans` fields). ERROR level so that it is enabled whenever
/// any line is (with `LOG_LEVEL=warn` a warning still carries it). Room and identity were
/// checked by the API (bounded, no control characters); they are names, not secrets: no token
/// or key is ever a field of it.
pub fn span(id: &RecordingId, room: &RoomName, participant: &Identity) -> tracing::Span {
    tracing::error_span!("recording", recording_id = %id, room = %room, participant = %participant)
}

impl RecordingInfo {
    /// A new, pending recording.
    pub fn pending(spec: &RecordingSpec) -> RecordingInfo {
        RecordingInfo {
            id: spec.id.clone(),
            room: spec.room.clone(),
            participant: spec.identity.clone(),
            status: Status::Pending,
            tracks: Vec::new(),
            skipped_tracks: Vec::new(),
            started_at: rfc3339(spec.started_unix_ms),
            ended_at: None,
            duration_s: 0.0,
            bytes: 0,
            files: Vec::new(),
            parts: Vec::new(),
            outputs: Vec::new(),
            error: None,
            frames_lost: 0,
            frames_dropped: 0,
        }
    }
}

/// Why a request to the recorder failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecorderError {
    /// A request field is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No recording with that id (or none active for that room and participant).
    #[error("no such recording: {0}")]
    NotFound(String),
    /// The recording is not in a state that allows this.
    #[error("{0}")]
    Conflict(String),
    /// The recordings disk is full or not writable.
    #[error("insufficient storage: {0}")]
    InsufficientStorage(String),
    /// The daemon is shutting down or an actor did not answer in time.
    #[error("recorder unavailable: {0}")]
    Unavailable(String),
}

/// Now, ms since the UNIX epoch.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// `2025-11-24T16:00:00.123Z` for ms since the UNIX epoch.
pub fn rfc3339(unix_ms: u64) -> String {
    let stamp = crate::storage::layout::utc_stamp(unix_ms / 1000);
    // YYYYMMDDTHHMMSSZ -> YYYY-MM-DDTHH:MM:SS.mmmZ
    let b = stamp.as_bytes();
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&b[r]).unwrap_or("00");
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}Z",
        s(0..4),
        s(4..6),
        s(6..8),
        s(9..11),
        s(11..13),
        s(13..15),
        unix_ms % 1000
    )
}

/// A fresh recording id: `RC_` + 12 hex digits from the clock and a counter.
pub fn new_recording_id() -> RecordingId {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos() as u64;
    RecordingId::from(format!("RC_{:012x}", (t ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) & 0xffff_ffff_ffff))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc() {
        assert_eq!(rfc3339(1_764_000_000_123), "2025-11-24T16:00:00.123Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn ids_differ() {
        assert_ne!(new_recording_id(), new_recording_id());
    }

    #[test]
    fn profiles_pick_kinds() {
        assert!(Profile::Av.wants(MediaKind::Audio) && Profile::Av.wants(MediaKind::Video));
        assert!(!Profile::Audio.wants(MediaKind::Video));
        assert!(!Profile::Video.wants(MediaKind::Audio));
    }
}
