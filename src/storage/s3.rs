//! S3 upload of finished recording files ([`Uploader`]): the object key is `S3_DIRECTORY` + the
//! file's path relative to `RECORDINGS_DIR`; files up to [`PART_SIZE`] go up with one
//! `PutObject`, larger ones as a multipart upload in [`PART_SIZE`] parts (aborted when an
//! attempt fails). Every attempt ends with a `HeadObject` whose content length must equal the
//! local size; only then is the local file removed (unless `S3_KEEP_LOCAL`). Failed attempts are
//! retried with capped exponential backoff ([`BACKOFF_START`] doubling to [`BACKOFF_CAP`]) until
//! `UPLOAD_GIVE_UP` has passed since the first attempt; then the file stays on disk and the
//! upload fails with the last S3 error (a local file that vanished or cannot be read fails at
//! once: retrying cannot help). The SDK's own retries are limited to
//! [`SDK_MAX_ATTEMPTS`] so this loop stays in control of timing. After a file is up, its
//! manifest (`F.json`, see [`crate::storage::manifest`]) goes up beside it under the same key +
//! `.json`, and leaves the disk with the file.
//!
//! The actor side (a pool of workers that run these uploads) is
//! [`crate::actors::uploader`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{timeout::TimeoutConfig, BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::metrics::Metrics;
use crate::storage::manifest;

/// Multipart part size (every part but the last; S3's minimum is 5 MiB). Files up to this size
/// are sent with a single `PutObject`.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// First retry delay.
pub const BACKOFF_START: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Attempts the SDK makes per request before our own retry loop takes over.
pub const SDK_MAX_ATTEMPTS: u32 = 2;
/// Default `UPLOAD_WORKERS`.
pub const DEFAULT_WORKERS: usize = 2;
/// Default `UPLOAD_GIVE_UP`.
pub const DEFAULT_GIVE_UP: Duration = Duration::from_secs(600);
/// Default `S3_REGION`.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Attempts at a part's manifest (`F.json`) after its file went up. Few, and without the
/// file's `UPLOAD_GIVE_UP`: the manifest only describes the file, so a failed one is logged and
/// stays on disk instead of holding the recording back.
pub const MANIFEST_ATTEMPTS: u32 = 3;

/// Static S3 credentials (tests; `serve` uses the standard AWS credential chain).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never logged).
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .finish()
    }
}

/// What the uploader needs (`S3_*`, `UPLOAD_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `S3_BUCKET`.
    pub bucket: String,
    /// `S3_REGION` (default `us-east-1`).
    pub region: String,
    /// `S3_DIRECTORY`: key prefix (a `/` is added when missing; empty: none).
    pub directory: String,
    /// `S3_ENDPOINT`: a custom endpoint (MinIO, moto, R2, ...).
    pub endpoint: Option<String>,
    /// `S3_FORCE_PATH_STYLE`: `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    pub force_path_style: bool,
    /// `S3_KEEP_LOCAL`: keep the local file after a verified upload.
    pub keep_local: bool,
    /// `UPLOAD_WORKERS`: uploads running at the same time (one recording each).
    pub workers: usize,
    /// `UPLOAD_GIVE_UP`: how long a file's upload is retried before it fails for good.
    pub give_up: Duration,
    /// Credentials instead of the standard AWS chain (environment, profile, IMDS, ...).
    pub credentials: Option<StaticCredentials>,
}

impl S3Settings {
    /// Settings for `bucket` with the defaults.
    pub fn new(bucket: &str) -> S3Settings {
        S3Settings {
            bucket: bucket.to_owned(),
            region: DEFAULT_REGION.to_owned(),
            directory: String::new(),
            endpoint: None,
            force_path_style: false,
            keep_local: false,
            workers: DEFAULT_WORKERS,
            give_up: DEFAULT_GIVE_UP,
            credentials: None,
        }
    }
}

/// One file that is in S3 now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedFile {
    /// The local file.
    pub path: PathBuf,
    /// Object key.
    pub key: String,
    /// `s3://bucket/key`.
    pub url: String,
    /// Bytes (verified with `HeadObject`).
    pub size: u64,
    /// The object's ETag as S3 returned it (multipart ETags end in `-<parts>`).
    pub etag: Option<String>,
    /// Whether the local file is still on disk.
    pub local_kept: bool,
}

/// Why a file could not be uploaded.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum UploadError {
    /// The file is missing or unreadable (retrying cannot help).
    #[error("cannot upload {path}: {reason}")]
    Unreadable {
        /// The local file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// Every attempt failed until `UPLOAD_GIVE_UP` passed.
    #[error("upload of {path} to {url} failed after {attempts} attempts over {elapsed_s:.1} s: {last}")]
    GaveUp {
        /// The local file (still on disk).
        path: PathBuf,
        /// `s3://bucket/key`.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// Seconds since the first attempt.
        elapsed_s: f64,
        /// The last attempt's error.
        last: String,
    },
    /// The upload task itself died (a bug); the file stays on disk.
    #[error("upload of {path} was interrupted: {reason}")]
    Interrupted {
        /// The local file.
        path: PathBuf,
        /// What happened.
        reason: String,
    },
}

/// What uploading a recording's files gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadReport {
    /// Files now in S3.
    pub uploaded: Vec<UploadedFile>,
    /// Files that could not be uploaded (they stay on disk).
    pub failed: Vec<UploadError>,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("{op}: {detail}")]
    S3 { op: &'static str, detail: String },
    #[error("verification: the object has {got:?} bytes, the file {want}")]
    Verify { want: u64, got: Option<i64> },
}

impl AttemptError {
    /// Retrying cannot help: the local file is gone or unreadable. An S3 error is never
    /// permanent before `UPLOAD_GIVE_UP`: a missing bucket or a denied request is usually
    /// configuration being fixed while the file waits safely on disk.
    fn is_permanent(&self) -> bool {
        matches!(self, AttemptError::Io(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied))
    }
}

fn s3_err<E: std::error::Error>(op: &'static str) -> impl FnOnce(E) -> AttemptError {
    move |e| AttemptError::S3 { op, detail: DisplayErrorContext(&e).to_string() }
}

/// Uploads files to one bucket.
pub struct Uploader {
    client: aws_sdk_s3::Client,
    settings: S3Settings,
    recordings_dir: PathBuf,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("settings", &self.settings)
            .field("recordings_dir", &self.recordings_dir)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// An uploader for `settings`; keys are relative to `recordings_dir`.
    pub async fn new(settings: S3Settings, recordings_dir: PathBuf, metrics: Arc<Metrics>) -> Uploader {
        let region = Region::new(settings.region.clone());
        let mut b = match &settings.credentials {
            Some(c) => aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(
                    &c.access_key_id,
                    &c.secret_access_key,
                    None,
                    None,
                    "livekit-recorder",
                )),
            None => {
                let shared =
                    aws_config::defaults(BehaviorVersion::latest()).region(region.clone()).load().await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        b = b
            .region(region)
            .force_path_style(settings.force_path_style)
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(e) = &settings.endpoint {
            b = b.endpoint_url(e);
        }
        let client = aws_sdk_s3::Client::from_conf(b.build());
        Uploader { client, settings, recordings_dir, metrics }
    }

    /// The settings.
    pub fn settings(&self) -> &S3Settings {
        &self.settings
    }

    /// The object key of a local file: `S3_DIRECTORY` + its path relative to `RECORDINGS_DIR`
    /// with `/` separators (a file outside it keeps only its name).
    pub fn key_for(&self, path: &Path) -> String {
        object_key(&self.settings.directory, &self.recordings_dir, path)
    }

    /// `s3://bucket/key`.
    pub fn url_for(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.settings.bucket)
    }

    /// Uploads each file in turn (see [`Uploader::upload_file`]); a failed file does not stop
    /// the others.
    pub async fn upload_all(&self, files: &[PathBuf]) -> UploadReport {
        let mut report = UploadReport::default();
        for f in files {
            match self.upload_file(f).await {
                Ok(u) => report.uploaded.push(u),
                Err(e) => report.failed.push(e),
            }
        }
        report
    }

    /// Uploads one file with retries until `UPLOAD_GIVE_UP`, verifies it, and removes the local
    /// file unless `S3_KEEP_LOCAL`.
    pub async fn upload_file(&self, path: &Path) -> Result<UploadedFile, UploadError> {
        let key = self.key_for(path);
        let url = self.url_for(&key);
        let size = match tokio::fs::metadata(path).await {
            Ok(m) => m.len(),
            Err(e) => {
                self.metrics.record_upload(false, 0.0);
                return Err(UploadError::Unreadable { path: path.to_owned(), reason: e.to_string() });
            }
        };
        let started = Instant::now();
        let deadline = started + self.settings.give_up;
        let mut backoff = BACKOFF_START;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.attempt(path, &key, size).await {
                Ok(etag) => {
                    let secs = started.elapsed().as_secs_f64();
                    self.metrics.record_upload(true, secs);
                    let manifest_up = self.upload_manifest(path).await;
                    let local_kept = self.settings.keep_local || !self.remove_local(path).await;
                    if !local_kept && manifest_up {
                        let _ = tokio::fs::remove_file(manifest::path_for(path)).await;
                    }
                    tracing::info!(file = %path.display(), %url, size, attempts, secs, "uploaded");
                    return Ok(UploadedFile { path: path.to_owned(), key, url, size, etag, local_kept });
                }
                Err(e) if e.is_permanent() => {
                    self.metrics.record_upload(false, 0.0);
                    let err = UploadError::Unreadable { path: path.to_owned(), reason: e.to_string() };
                    tracing::error!("{err}");
                    return Err(err);
                }
                Err(e) => {
                    let now = Instant::now();
                    if now >= deadline {
                        self.metrics.record_upload(false, 0.0);
                        let err = UploadError::GaveUp {
                            path: path.to_owned(),
                            url,
                            attempts,
                            elapsed_s: started.elapsed().as_secs_f64(),
                            last: e.to_string(),
                        };
                        tracing::error!("{err}");
                        return Err(err);
                    }
                    let wait = backoff.min(deadline - now);
                    tracing::warn!(file = %path.display(), %url, attempts, retry_in = ?wait, error = %e, "upload attempt failed");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                }
            }
        }
    }

    /// Puts the manifest of the part file `file` (`F.json`, when there is one) beside its
    /// object, same key + `.json` ([`MANIFEST_ATTEMPTS`], no upload metrics). Whether it is up.
    async fn upload_manifest(&self, file: &Path) -> bool {
        let path = manifest::path_for(file);
        let Ok(meta) = tokio::fs::metadata(&path).await else { return false };
        let key = self.key_for(&path);
        let mut wait = BACKOFF_START;
        for attempt in 1..=MANIFEST_ATTEMPTS {
            match self.attempt(&path, &key, meta.len()).await {
                Ok(_) => return true,
                Err(e) if attempt == MANIFEST_ATTEMPTS => {
                    let url = self.url_for(&key);
                    tracing::warn!(file = %path.display(), %url, attempt, "manifest not uploaded (kept on disk): {e}");
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        false
    }

    async fn remove_local(&self, path: &Path) -> bool {
        match tokio::fs::remove_file(path).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(file = %path.display(), "uploaded, but the local file could not be removed: {e}");
                false
            }
        }
    }

    /// One attempt: upload, then verify the size. Returns the ETag.
    async fn attempt(&self, path: &Path, key: &str, size: u64) -> Result<Option<String>, AttemptError> {
        if size <= PART_SIZE {
            let body = tokio::fs::read(path).await?;
            if body.len() as u64 != size {
                return Err(AttemptError::Verify { want: size, got: Some(body.len() as i64) });
            }
            self.client
                .put_object()
                .bucket(&self.settings.bucket)
                .key(key)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(s3_err("PutObject"))?;
        } else {
            self.multipart(path, key, size).await?;
        }
        let head = self
            .client
            .head_object()
            .bucket(&self.settings.bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_err("HeadObject"))?;
        match head.content_length() {
            Some(n) if n >= 0 && n as u64 == size => Ok(head.e_tag().map(str::to_owned)),
            got => Err(AttemptError::Verify { want: size, got }),
        }
    }

    async fn multipart(&self, path: &Path, key: &str, size: u64) -> Result<(), AttemptError> {
        let bucket = &self.settings.bucket;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(s3_err("CreateMultipartUpload"))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(AttemptError::S3 { op: "CreateMultipartUpload", detail: "no upload id".into() });
        };
        let result = self.parts(path, key, size, &upload_id).await;
        if result.is_err() {
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await
            {
                tracing::warn!(key, "could not abort the multipart upload: {}", DisplayErrorContext(&e));
            }
        }
        result
    }

    async fn parts(&self, path: &Path, key: &str, size: u64, upload_id: &str) -> Result<(), AttemptError> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut parts = Vec::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < size {
            let len = PART_SIZE.min(size - offset);
            let mut buf = vec![0u8; len as usize];
            file.seek(std::io::SeekFrom::Start(offset)).await?;
            file.read_exact(&mut buf).await?;
            let out = self
                .client
                .upload_part()
                .bucket(&self.settings.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(s3_err("UploadPart"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            offset += len;
            number += 1;
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.settings.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(s3_err("CompleteMultipartUpload"))?;
        Ok(())
    }
}

/// `directory` (with a trailing `/` added, leading `/` removed) + `path` relative to `root`
/// with `/` separators; a path outside `root` keeps only its file name.
pub fn object_key(directory: &str, root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).ok().filter(|r| !r.as_os_str().is_empty());
    let rel: Vec<String> = match rel {
        Some(r) => r
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect(),
        None => path.file_name().map(|n| vec![n.to_string_lossy().into_owned()]).unwrap_or_default(),
    };
    let dir = directory.trim_start_matches('/');
    let sep = if dir.is_empty() || dir.ends_with('/') { "" } else { "/" };
    format!("{dir}{sep}{}", rel.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefix_plus_relative_path() {
        let root = Path::new("/rec");
        assert_eq!(object_key("", root, Path::new("/rec/room/a.webm")), "room/a.webm");
        assert_eq!(object_key("rec", root, Path::new("/rec/room/a.webm")), "rec/room/a.webm");
        assert_eq!(object_key("/x/y/", root, Path::new("/rec/room/a.webm")), "x/y/room/a.webm");
        assert_eq!(object_key("p", root, Path::new("/elsewhere/b.ogg")), "p/b.ogg");
        assert_eq!(object_key("", Path::new("./recordings"), Path::new("./recordings/r/c.mkv")), "r/c.mkv");
    }

    #[tokio::test]
    async fn a_missing_file_fails_at_once() {
        let mut s = S3Settings::new("b");
        s.endpoint = Some("http://127.0.0.1:1".into());
        s.credentials = Some(StaticCredentials { access_key_id: "a".into(), secret_access_key: "b".into() });
        let metrics = Arc::new(Metrics::default());
        let up = Uploader::new(s, PathBuf::from("/nonexistent"), metrics.clone()).await;
        let t0 = Instant::now();
        let e = up.upload_file(Path::new("/nonexistent/r/x.webm")).await.unwrap_err();
        assert!(matches!(e, UploadError::Unreadable { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(metrics.render(0).contains("recorder_uploads_total{result=\"failed\"} 1\n"));
    }

    #[test]
    fn credentials_are_redacted() {
        let c = StaticCredentials { access_key_id: "AK".into(), secret_access_key: "sekrit".into() };
        let mut s = S3Settings::new("b");
        s.credentials = Some(c);
        assert!(!format!("{s:?}").contains("sekrit"));
    }
}
