//! A recording's part files over HTTP, for the dashboard's player.
//!
//! `GET /recordings/{id}/parts/{part}/files/{file}` serves one file of one part from the local
//! disk with HTTP range requests (one range: what media elements ask for), streamed in 64 KiB
//! reads, so a `<video>` element can seek without downloading the whole file. (Not actix-files:
//! its `NamedFile` would do it too, but adding it changed the features of `futures-util` and
//! `tokio-util` and so rebuilt half the dependency tree; a single byte range is 30 lines.) The file is found by
//! recording id, part number and index in that part's `files`, never by a path from the
//! request: only files the recorder wrote for a recording it knows can be served.
//!
//! A `<video>` element cannot send `Authorization`, and the API token must never be in a URL
//! (URLs end up in logs, history and `Referer`). So with `API_TOKEN` set, the dashboard asks
//! `GET .../link` (with the token in the header) for a URL signed for that one file:
//! `?exp=<unix s>&sig=<HMAC-SHA256>`, valid [`LINK_TTL`], under a key drawn at start-up (a
//! restart invalidates every link). The signature is not the token and opens nothing else.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody};
use super::routes::authorize;
use super::AppState;
use crate::actors::supervisor::SupervisorMsg;
use crate::ids::RecordingId;
use crate::recording::{rfc3339, unix_ms_now, RecorderError};

/// How long a signed link works. A player that stays paused longer gets a 401 on its next
/// range request; the dashboard asks for a new link each time a file is opened.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);
/// Timeout of the recording lookup.
const QUERY_MS: u64 = 5_000;
/// Bytes read from the file at a time.
const CHUNK: u64 = 64 * 1024;

/// Signs and checks the file links (a key per process).
#[derive(Clone)]
pub struct LinkSigner {
    key: ring::hmac::Key,
}

impl LinkSigner {
    /// A signer with a fresh random key.
    pub fn random() -> LinkSigner {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .expect("the system random generator works");
        LinkSigner { key }
    }

    fn message(id: &str, part: &str, file: &str, exp: u64) -> String {
        format!("{id}\n{part}\n{file}\n{exp}")
    }

    /// The `sig` of the file `(id, part, file)` for a link expiring at `exp` (Unix seconds).
    pub fn sign(&self, id: &str, part: &str, file: &str, exp: u64) -> String {
        use base64::Engine;
        let tag = ring::hmac::sign(&self.key, Self::message(id, part, file, exp).as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `sig` signs this file and `exp` (compared in constant time); expiry is checked
    /// by the caller.
    pub fn verify(&self, id: &str, part: &str, file: &str, exp: u64, sig: &str) -> bool {
        use base64::Engine;
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig) else { return false };
        ring::hmac::verify(&self.key, Self::message(id, part, file, exp).as_bytes(), &tag).is_ok()
    }
}

/// The query of a file request: a signed link's expiry and signature (instead of the token).
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FileQuery {
    /// A signed link's expiry, Unix seconds (from `.../link`). With `sig`, it replaces the
    /// `Authorization` header.
    #[param(value_type = Option<String>, pattern = r"^[0-9]{1,19}$")]
    exp: Option<String>,
    /// A signed link's signature (from `.../link`).
    #[param(value_type = Option<String>, pattern = r"^[A-Za-z0-9_-]{1,128}$")]
    sig: Option<String>,
}

/// The answer of `GET .../link`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FileLink {
    /// The file's path with `?exp=...&sig=...`, relative to the daemon (no token in it).
    pub url: String,
    /// When it stops working (RFC 3339, UTC).
    pub expires_at: String,
    /// The file's content type (`video/webm`, `video/x-matroska`, `video/mp4`, `audio/ogg`).
    pub content_type: String,
}

/// The content type of a part file, by the extension the recorder gave it.
pub fn content_type(path: &std::path::Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("webm") => "video/webm",
        Some("mkv") => "video/x-matroska",
        Some("mp4") => "video/mp4",
        Some("ogg") => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// What to send of a file of `len` bytes for a `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Slice {
    /// The whole file (no `Range`, one we do not take, such as several ranges: RFC 9110
    /// §14.2 lets a server ignore it).
    Whole,
    /// Bytes `start..=end` (206).
    Range {
        /// First byte sent.
        start: u64,
        /// Last byte sent (inclusive, below the file's length).
        end: u64,
    },
    /// No byte of the range is in the file (416).
    Unsatisfiable,
}

/// Reads `Range: bytes=a-b | a- | -n` (RFC 9110 §14.1.2) for a file of `len` bytes.
pub fn slice(range: Option<&str>, len: u64) -> Slice {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else { return Slice::Whole };
    if spec.contains(',') {
        return Slice::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return Slice::Whole };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => match num(n) {
            Some(0) => Slice::Unsatisfiable,
            Some(_) if len == 0 => Slice::Unsatisfiable,
            Some(n) => Slice::Range { start: len.saturating_sub(n), end: len - 1 },
            None => Slice::Whole,
        },
        (a, b) => match (num(a), if b.is_empty() { Some(None) } else { num(b).map(Some) }) {
            (Some(start), Some(_)) if start >= len => Slice::Unsatisfiable,
            (Some(start), Some(None)) => Slice::Range { start, end: len - 1 },
            (Some(start), Some(Some(end))) if end >= start => Slice::Range { start, end: end.min(len - 1) },
            _ => Slice::Whole,
        },
    }
}

/// The response with `slice` of the open file `f` of `len` bytes, read in [`CHUNK`]s.
async fn send(
    mut f: tokio::fs::File,
    len: u64,
    slice: Slice,
    content_type: &str,
) -> std::io::Result<HttpResponse> {
    use actix_web::http::header;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let (mut resp, start, count) = match slice {
        Slice::Whole => (HttpResponse::Ok(), 0, len),
        Slice::Range { start, end } => {
            let mut r = HttpResponse::PartialContent();
            r.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")));
            (r, start, end - start + 1)
        }
        Slice::Unsatisfiable => {
            return Ok(HttpResponse::RangeNotSatisfiable()
                .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
                .json(ErrorBody { error: format!("the range is not in the file ({len} bytes)") }))
        }
    };
    f.seek(std::io::SeekFrom::Start(start)).await?;
    let chunks = futures_util::stream::unfold((f, count), |(mut f, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(CHUNK) as usize];
        match f.read(&mut buf).await {
            Ok(0) => None, // shorter than it was: the response ends early (never for a closed part)
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(web::Bytes::from(buf)), (f, left - n as u64)))
            }
            Err(e) => Some((Err(e), (f, 0))),
        }
    });
    Ok(resp
        .content_type(content_type)
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .body(actix_web::body::SizedStream::new(count, chunks)))
}

fn index(name: &str, v: &str, min: u64) -> Result<u64, ApiError> {
    match v.parse::<u64>() {
        Ok(n) if n >= min && n <= u64::from(u32::MAX) => Ok(n),
        _ => Err(ApiError::bad_request(format!("`{name}` must be an integer from {min}, not {v:?}"))),
    }
}

/// The local path of file `file` of part `part` of recording `id`: 404 when there is no
/// such recording, part or file, or the file has left the disk (uploaded); 409 while the part
/// is still being written.
async fn locate(state: &AppState, id: &str, part: &str, file: &str) -> Result<PathBuf, ApiError> {
    let (part_no, file_no) = (index("part", part, 1)?, index("file", file, 0)?);
    let info =
        ractor::call_t!(state.supervisor, SupervisorMsg::GetRecording, QUERY_MS, RecordingId::from(id))??;
    let not_found = |what: String| ApiError::Recorder(RecorderError::NotFound(what));
    let p = info
        .parts
        .iter()
        .find(|p| u64::from(p.part) == part_no)
        .ok_or_else(|| not_found(format!("{id} has no part {part_no}")))?;
    let path = usize::try_from(file_no)
        .ok()
        .and_then(|n| p.files.get(n))
        .ok_or_else(|| not_found(format!("{id} part {part_no} has no file {file_no}")))?;
    if info.status.is_live() && p.ended_at.is_none() {
        return Err(ApiError::Recorder(RecorderError::Conflict(format!(
            "{id} part {part_no} is still being written"
        ))));
    }
    match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => Ok(path.clone()),
        _ => Err(not_found(format!(
            "{id} part {part_no} file {file_no} is no longer on the local disk{}",
            if info.outputs.is_empty() {
                String::new()
            } else {
                format!(" (uploaded: {})", info.outputs.join(", "))
            }
        ))),
    }
}

/// `GET /recordings/{id}/parts/{part}/files/{file}`.
#[utoipa::path(
    get,
    path = "/recordings/{id}/parts/{part}/files/{file}",
    tag = "recordings",
    operation_id = "part_file",
    params(
        ("id" = String, Path, min_length = 1, description = "Recording id (`RC_...`)"),
        ("part" = u32, Path, minimum = 1, description = "Part number (`parts[].part`)"),
        ("file" = u32, Path, minimum = 0, description = "Index in that part's `files`, from 0"),
        FileQuery,
    ),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "The whole file (`video/webm`, `video/x-matroska`, `video/mp4`, `audio/ogg`)", content(("video/webm"), ("video/x-matroska"), ("video/mp4"), ("audio/ogg"))),
        (status = 206, description = "The range asked for with `Range: bytes=a-b`, `bytes=a-` or `bytes=-n` (one range; several ranges or another unit get the whole file, 200), with `Content-Range`. The `Range` header is not a declared parameter: an empty one is refused by the HTTP layer before the daemon sees it (400 without a body)", content(("video/webm"), ("video/x-matroska"), ("video/mp4"), ("audio/ogg"))),
        (status = 400, description = "`part` or `file` is not a number in range, or an invalid or unknown query parameter", body = ErrorBody),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`, and no valid unexpired signed link", body = ErrorBody),
        (status = 404, description = "No such recording, part or file, or the file is no longer on the local disk", body = ErrorBody),
        (status = 409, description = "The part is still being written", body = ErrorBody),
        (status = 416, description = "The range is not in the file", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn part_file(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    q: web::Query<FileQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (id, part, file) = path.into_inner();
    let q = q.into_inner();
    let signed = q.exp.is_some() || q.sig.is_some();
    if state.api_token.is_some() && req.headers().get("authorization").is_none() && signed {
        let (Some(exp), Some(sig)) = (q.exp, q.sig) else {
            return Err(ApiError::Unauthorized("a signed link needs both `exp` and `sig`".into()));
        };
        let exp = exp.parse::<u64>().map_err(|_| ApiError::Unauthorized("bad `exp`".into()))?;
        if !state.links.verify(&id, &part, &file, exp, &sig) {
            return Err(ApiError::Unauthorized("the link's signature does not match".into()));
        }
        if exp.saturating_mul(1000) < unix_ms_now() {
            return Err(ApiError::Unauthorized("the link has expired".into()));
        }
    } else {
        authorize(&req, &state)?;
    }
    let path = locate(&state, &id, &part, &file).await?;
    let gone = |e: std::io::Error| {
        ApiError::Recorder(RecorderError::NotFound(format!("{id} part {part} file {file}: {e}")))
    };
    let f = tokio::fs::File::open(&path).await.map_err(gone)?;
    let len = f.metadata().await.map_err(gone)?.len();
    let range = req.headers().get(actix_web::http::header::RANGE).and_then(|v| v.to_str().ok());
    send(f, len, slice(range, len), content_type(&path)).await.map_err(gone)
}

/// `GET /recordings/{id}/parts/{part}/files/{file}/link`.
#[utoipa::path(
    get,
    path = "/recordings/{id}/parts/{part}/files/{file}/link",
    tag = "recordings",
    operation_id = "part_file_link",
    params(
        ("id" = String, Path, min_length = 1, description = "Recording id (`RC_...`)"),
        ("part" = u32, Path, minimum = 1, description = "Part number (`parts[].part`)"),
        ("file" = u32, Path, minimum = 0, description = "Index in that part's `files`, from 0"),
    ),
    security(("api_token" = [])),
    responses(
        (status = 200, description = "A URL for this one file, signed for 15 minutes (for a `<video>` element, which cannot send `Authorization`)", body = FileLink),
        (status = 400, description = "`part` or `file` is not a number in range", body = ErrorBody),
        (status = 401, description = "Missing or wrong `Authorization: Bearer <API_TOKEN>`", body = ErrorBody),
        (status = 404, description = "No such recording, part or file, or the file is no longer on the local disk", body = ErrorBody),
        (status = 409, description = "The part is still being written", body = ErrorBody),
        (status = 503, description = "The recorder did not answer in time", body = ErrorBody),
    )
)]
pub async fn part_file_link(
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, &state)?;
    let (id, part, file) = path.into_inner();
    let local = locate(&state, &id, &part, &file).await?;
    let exp = unix_ms_now() / 1000 + LINK_TTL.as_secs();
    let sig = state.links.sign(&id, &part, &file, exp);
    // the path segments are the recorder's own (an id it made, two numbers) but may hold
    // characters a URL needs escaped: take them from the request's own (escaped) path
    let base = req.path().strip_suffix("/link").unwrap_or(req.path());
    Ok(HttpResponse::Ok().json(FileLink {
        url: format!("{base}?exp={exp}&sig={sig}"),
        expires_at: rfc3339(exp * 1000),
        content_type: content_type(&local).to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_signs_one_file_and_one_expiry() {
        let s = LinkSigner::random();
        let sig = s.sign("RC_1", "1", "0", 100);
        assert!(s.verify("RC_1", "1", "0", 100, &sig));
        for (id, part, file, exp) in [
            ("RC_2", "1", "0", 100),
            ("RC_1", "2", "0", 100),
            ("RC_1", "1", "1", 100),
            ("RC_1", "1", "0", 101),
        ] {
            assert!(!s.verify(id, part, file, exp, &sig), "{id} {part} {file} {exp}");
        }
        // the fields cannot be shifted into each other ("1\n10" vs "11\n0")
        assert!(!s.verify("RC_1", "10", "", 100, &s.sign("RC_1", "1", "0", 100)));
        assert!(!s.verify("RC_1", "1", "0", 100, "not base64!"));
        assert!(!LinkSigner::random().verify("RC_1", "1", "0", 100, &sig), "another process's key");
    }

    #[test]
    fn content_types_follow_the_extension() {
        use std::path::Path;
        assert_eq!(content_type(Path::new("a/b.webm")), "video/webm");
        assert_eq!(content_type(Path::new("a/b.mkv")), "video/x-matroska");
        assert_eq!(content_type(Path::new("a/b.mp4")), "video/mp4");
        assert_eq!(content_type(Path::new("a/b-audio.ogg")), "audio/ogg");
        assert_eq!(content_type(Path::new("a/b")), "application/octet-stream");
    }

    #[test]
    fn ranges() {
        use Slice::*;
        let r = |s: &str| slice(Some(s), 1000);
        assert_eq!(slice(None, 1000), Whole);
        assert_eq!(r("bytes=0-"), Range { start: 0, end: 999 });
        assert_eq!(r("bytes=100-299"), Range { start: 100, end: 299 });
        assert_eq!(r("bytes=990-2000"), Range { start: 990, end: 999 });
        assert_eq!(r("bytes=-50"), Range { start: 950, end: 999 });
        assert_eq!(r("bytes=-5000"), Range { start: 0, end: 999 });
        assert_eq!(r("bytes=1000-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(slice(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(slice(Some("bytes=-5"), 0), Unsatisfiable);
        for ignored in
            ["bytes=0-1,5-6", "items=0-1", "bytes=5-1", "bytes=x-", "bytes=-", "bytes=+1-2", "bytes=1"]
        {
            assert_eq!(r(ignored), Whole, "{ignored}");
        }
    }

    #[test]
    fn indexes_are_bounded_integers() {
        assert_eq!(index("part", "1", 1).ok(), Some(1));
        assert!(index("part", "0", 1).is_err());
        assert!(index("file", "-1", 0).is_err());
        assert!(index("file", "4294967296", 0).is_err());
        assert!(index("file", "x", 0).is_err());
    }
}
