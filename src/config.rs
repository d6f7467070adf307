//! Settings from the environment (the seed's variable names), validated at start-up. A bad
//! value fails fast with an error that names the variable.

use std::path::PathBuf;
use std::time::Duration;

/// Default `START_TIMEOUT`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Default `RESUME_TIMEOUT`.
pub const DEFAULT_RESUME_TIMEOUT: Duration = Duration::from_secs(300);

/// Default `DRAIN_TIMEOUT`.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Lifetime of the recorder's join tokens.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(6 * 3600);

/// How long a participant recorder waits for every published track before it opens the file
/// with the tracks it has.
pub const DEFAULT_TRACK_GRACE: Duration = Duration::from_millis(1500);

/// Default HTTP port (`APP_PORT`).
pub const DEFAULT_PORT: u16 = 8080;
/// Default directory for recordings (`RECORDINGS_DIR`).
pub const DEFAULT_RECORDINGS_DIR: &str = "./recordings";

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the LiveKit server is and the API key pair the recorder signs its tokens with (and
/// checks webhooks and signs result callbacks with): `LIVEKIT_URL`, `LIVEKIT_API_KEY`,
/// `LIVEKIT_API_SECRET`, validated by [`Config::from_env`], passed whole to the daemon and the
/// room actors. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LiveKitSettings {
    /// `LIVEKIT_URL` (`ws://`, `wss://`, `http://` or `https://`).
    pub url: String,
    /// `LIVEKIT_API_KEY`.
    pub api_key: String,
    /// `LIVEKIT_API_SECRET`.
    pub api_secret: String,
}

impl std::fmt::Debug for LiveKitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveKitSettings")
            .field("url", &self.url)
            .field("api_key", &self.api_key)
            .field("api_secret", &"***")
            .finish()
    }
}

/// How recordings are made: the validated settings the actors use as they are (read from the
/// environment by [`Config::from_env`], or built with [`RecordingSettings::new`] by `demo` and
/// the tests), passed whole from here to the actor tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSettings {
    /// Where recordings are written (`RECORDINGS_DIR`, default `./recordings`).
    pub recordings_dir: PathBuf,
    /// How long a start waits for the participant to join and publish (`START_TIMEOUT`,
    /// humantime, default 30s).
    pub start_timeout: Duration,
    /// How long a participant recorder waits for all published tracks before it opens the file
    /// with the tracks it has ([`DEFAULT_TRACK_GRACE`]; not a variable).
    pub track_grace: Duration,
    /// File name template of webhook-started recordings and the default of REST starts
    /// (`FILENAME_TEMPLATE`).
    pub filename_template: String,
    /// Start recording on `participant_joined` webhooks (`AUTO_RECORD_ON_JOIN`, default true).
    pub auto_record_on_join: bool,
    /// `MAX_FILE_SIZE` (bytes, or with a unit: `500MB`, `2GiB`): parts roll over at this size.
    pub max_file_bytes: Option<u64>,
    /// `MAX_RECORDING_DURATION` (humantime): recordings end `complete` at this age.
    pub max_duration: Option<Duration>,
    /// `MEDIA_QUEUE_SIZE` (bytes or with a unit, default 8MiB, at least 64KiB): media queued per
    /// recorded participant before frames are dropped (a slow or stalled disk).
    pub media_queue_bytes: usize,
    /// `MAX_CONCURRENT_RECORDINGS`: starts beyond this many live recordings get 503 (default:
    /// no limit).
    pub max_concurrent: Option<usize>,
    /// `RESUME_TIMEOUT` (humantime, default 5m): how long a recording resumed after a restart
    /// or a lost LiveKit connection waits for its participant before it ends `complete`.
    pub resume_timeout: Duration,
    /// Lifetime of the recorder's join tokens ([`DEFAULT_TOKEN_TTL`]; tests shorten it): a
    /// signal resume after it uses the server's `refresh_token`, a new connection mints a new
    /// token.
    pub token_ttl: Duration,
    /// `HISTORY_MAX_RECORDINGS` (default 10000) and `HISTORY_MAX_AGE` (humantime, default 30d):
    /// the ended recordings that stay answerable, across restarts.
    pub history: crate::storage::history::Retention,
}

impl RecordingSettings {
    /// The defaults of every setting (as `serve` has them with no variable set), writing into
    /// `recordings_dir`.
    pub fn new(recordings_dir: &std::path::Path) -> RecordingSettings {
        RecordingSettings {
            recordings_dir: recordings_dir.to_path_buf(),
            start_timeout: DEFAULT_START_TIMEOUT,
            track_grace: DEFAULT_TRACK_GRACE,
            filename_template: crate::storage::layout::DEFAULT_TEMPLATE.into(),
            auto_record_on_join: true,
            max_file_bytes: None,
            max_duration: None,
            media_queue_bytes: crate::actors::media_queue::DEFAULT_MEDIA_QUEUE_BYTES,
            max_concurrent: None,
            resume_timeout: DEFAULT_RESUME_TIMEOUT,
            token_ttl: DEFAULT_TOKEN_TTL,
            history: crate::storage::history::Retention::default(),
        }
    }
}

/// The daemon's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// HTTP port (`APP_PORT`, default 8080).
    pub app_port: u16,
    /// tracing filter (`LOG_LEVEL`, default `info`; any `EnvFilter` directive).
    pub log_level: String,
    /// `LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// LiveKit server URL (`LIVEKIT_URL`, `ws(s)://` or `http(s)://`); required by `serve`.
    pub livekit_url: Option<String>,
    /// `LIVEKIT_API_KEY`; required by `serve`.
    pub api_key: Option<String>,
    /// `LIVEKIT_API_SECRET`; required by `serve`.
    pub api_secret: Option<Secret>,
    /// `BIND_ADDRESS` (default `0.0.0.0`): the address the HTTP server listens on.
    pub bind_address: std::net::IpAddr,
    /// `API_TOKEN`: when set, `/recordings/*` need `Authorization: Bearer <token>`.
    pub api_token: Option<Secret>,
    /// How recordings are made (`RECORDINGS_DIR`, `START_TIMEOUT`, `FILENAME_TEMPLATE`,
    /// `AUTO_RECORD_ON_JOIN`, `MAX_FILE_SIZE`, `MAX_RECORDING_DURATION`, `MEDIA_QUEUE_SIZE`,
    /// `MAX_CONCURRENT_RECORDINGS`, `RESUME_TIMEOUT`, `HISTORY_*`).
    pub recording: RecordingSettings,
    /// `DRAIN_TIMEOUT` (humantime, default 30s): how long SIGTERM/SIGINT waits for recordings
    /// to be finalized before the process exits anyway.
    pub drain_timeout: Duration,
    /// S3 upload (`S3_BUCKET` set; `S3_*`, `UPLOAD_*`). Credentials come from the standard AWS
    /// chain, so `credentials` is always `None` here.
    pub s3: Option<crate::storage::s3::S3Settings>,
    /// Result callback URLs (`WEBHOOK_URLS`, comma-separated; they may carry credentials, so
    /// `Debug` prints `***`).
    pub webhook_urls: Vec<Secret>,
    /// Cluster mode: `REDIS_URL` set (with `NODE_ID`, `NODE_ADVERTISE_URL`, `CLUSTER_LEASE`).
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

/// A secret whose `Debug` prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// A setting with a value we cannot use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {name}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let bad = |name, value: String, reason| ConfigError { name, value, reason };
        let app_port = match get("APP_PORT") {
            None => DEFAULT_PORT,
            Some(v) => v.trim().parse().map_err(|_| bad("APP_PORT", v, "expected a port number 0-65535"))?,
        };
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None | Some("") | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(v) => return Err(bad("LOG_FORMAT", v.to_string(), "expected `text` or `json`")),
        };
        let log_level = get("LOG_LEVEL").filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "info".into());
        if !valid_log_filter(&log_level) {
            return Err(bad(
                "LOG_LEVEL",
                log_level,
                "expected a level (error, warn, info, debug, trace, off) or target=level directives",
            ));
        }
        let bind_address = match get("BIND_ADDRESS").map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
            None => DEFAULT_BIND_ADDRESS,
            Some(v) => v
                .parse()
                .map_err(|_| bad("BIND_ADDRESS", v, "expected an IP address such as 127.0.0.1 or ::"))?,
        };
        let api_token = match get("API_TOKEN") {
            None => None,
            Some(v) if v.trim().is_empty() => {
                return Err(bad(
                    "API_TOKEN",
                    v,
                    "is set but empty: unset it to run without a token, or give a token",
                ))
            }
            Some(v) => Some(Secret(v.trim().to_owned())),
        };
        let recordings_dir = match get("RECORDINGS_DIR") {
            None => PathBuf::from(DEFAULT_RECORDINGS_DIR),
            Some(v) if v.trim().is_empty() => return Err(bad("RECORDINGS_DIR", v, "must not be empty")),
            Some(v) => PathBuf::from(v),
        };
        let nonempty = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let livekit_url = nonempty("LIVEKIT_URL");
        if let Some(u) = &livekit_url {
            if !["ws://", "wss://", "http://", "https://"].iter().any(|p| u.starts_with(p)) {
                return Err(bad(
                    "LIVEKIT_URL",
                    u.clone(),
                    "expected a ws://, wss://, http:// or https:// URL",
                ));
            }
        }
        let start_timeout = duration_var(
            &get,
            "START_TIMEOUT",
            Duration::ZERO,
            "expected a positive duration such as 30s or 2m",
        )?
        .unwrap_or(DEFAULT_START_TIMEOUT);
        let filename_template =
            nonempty("FILENAME_TEMPLATE").unwrap_or_else(|| crate::storage::layout::DEFAULT_TEMPLATE.into());
        let auto_record_on_join =
            match nonempty("AUTO_RECORD_ON_JOIN").map(|v| v.to_ascii_lowercase()).as_deref() {
                None | Some("true" | "1" | "yes") => true,
                Some("false" | "0" | "no") => false,
                Some(v) => return Err(bad("AUTO_RECORD_ON_JOIN", v.to_owned(), "expected true or false")),
            };
        let max_file_bytes = match nonempty("MAX_FILE_SIZE") {
            None => None,
            Some(v) => match parse_size(&v) {
                Some(n) if n >= MIN_FILE_SIZE => Some(n),
                _ => {
                    return Err(bad(
                        "MAX_FILE_SIZE",
                        v,
                        "expected a size of at least 1MB such as 500MB or 2GiB",
                    ))
                }
            },
        };
        let media_queue_bytes = match nonempty("MEDIA_QUEUE_SIZE") {
            None => crate::actors::media_queue::DEFAULT_MEDIA_QUEUE_BYTES,
            Some(v) => match parse_size(&v) {
                Some(n) if (MIN_QUEUE as u64..=MAX_QUEUE as u64).contains(&n) => n as usize,
                _ => {
                    return Err(bad("MEDIA_QUEUE_SIZE", v, "expected a size from 64KiB to 1GiB such as 8MiB"))
                }
            },
        };
        let max_duration = duration_var(
            &get,
            "MAX_RECORDING_DURATION",
            Duration::from_secs(1),
            "expected a duration of at least 1s such as 4h",
        )?;
        let drain_timeout =
            duration_var(&get, "DRAIN_TIMEOUT", Duration::ZERO, "expected a positive duration such as 30s")?
                .unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        let resume_timeout =
            duration_var(&get, "RESUME_TIMEOUT", Duration::ZERO, "expected a positive duration such as 5m")?
                .unwrap_or(DEFAULT_RESUME_TIMEOUT);
        let s3 = s3_settings(&get)?;
        let mut webhook_urls = Vec::new();
        for u in get("WEBHOOK_URLS").unwrap_or_default().split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let host = u.split_once("://").map_or("", |(_, rest)| rest);
            if !(u.starts_with("http://") || u.starts_with("https://")) || host.is_empty() {
                return Err(bad(
                    "WEBHOOK_URLS",
                    crate::callbacks::redact(u),
                    "expected comma-separated http:// or https:// URLs",
                ));
            }
            webhook_urls.push(Secret(u.to_owned()));
        }
        let defaults = crate::storage::history::Retention::default();
        let history = crate::storage::history::Retention {
            max_recordings: match nonempty("HISTORY_MAX_RECORDINGS") {
                None => defaults.max_recordings,
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=MAX_HISTORY).contains(&n) => n,
                    _ => return Err(bad("HISTORY_MAX_RECORDINGS", v, "expected a number from 1 to 1000000")),
                },
            },
            max_age: duration_var(
                &get,
                "HISTORY_MAX_AGE",
                Duration::ZERO,
                "expected a positive duration such as 30d",
            )?
            .unwrap_or(defaults.max_age),
        };
        let max_concurrent = match nonempty("MAX_CONCURRENT_RECORDINGS") {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(bad("MAX_CONCURRENT_RECORDINGS", v, "expected a positive number")),
            },
        };
        let cluster = cluster_config(&get)?;
        let recording = RecordingSettings {
            recordings_dir,
            start_timeout,
            track_grace: DEFAULT_TRACK_GRACE,
            filename_template,
            auto_record_on_join,
            max_file_bytes,
            max_duration,
            media_queue_bytes,
            max_concurrent,
            resume_timeout,
            token_ttl: DEFAULT_TOKEN_TTL,
            history,
        };
        Ok(Config {
            cluster,
            drain_timeout,
            s3,
            webhook_urls,
            app_port,
            log_level,
            log_format,
            livekit_url,
            api_key: nonempty("LIVEKIT_API_KEY"),
            api_secret: nonempty("LIVEKIT_API_SECRET").map(Secret),
            api_token,
            bind_address,
            recording,
        })
    }
}

/// `REDIS_URL` (cluster mode) and its companions; `None` without it.
fn cluster_config(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::cluster::ClusterConfig>, ConfigError> {
    let nonempty = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let Some(url) = nonempty("REDIS_URL") else {
        for name in ["NODE_ID", "NODE_ADVERTISE_URL", "CLUSTER_LEASE"] {
            if let Some(v) = nonempty(name) {
                return Err(ConfigError {
                    name,
                    value: v,
                    reason: "only used in cluster mode: set REDIS_URL too",
                });
            }
        }
        return Ok(None);
    };
    if !(url.starts_with("redis://") || url.starts_with("rediss://"))
        || redis::Client::open(url.as_str()).is_err()
    {
        return Err(ConfigError {
            name: "REDIS_URL",
            value: crate::cluster::redact(&url),
            reason: "expected redis://[[user]:password@]host[:port][/db] or rediss://...",
        });
    }
    let node_id = nonempty("NODE_ID");
    if let Some(id) = &node_id {
        if id.len() > 128 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError {
                name: "NODE_ID",
                value: id.clone(),
                reason: "expected 1-128 characters without spaces",
            });
        }
    }
    let advertise_url = nonempty("NODE_ADVERTISE_URL");
    if let Some(u) = &advertise_url {
        if !(u.starts_with("http://") || u.starts_with("https://"))
            || u.split_once("://").is_some_and(|(_, h)| h.is_empty())
        {
            return Err(ConfigError {
                name: "NODE_ADVERTISE_URL",
                value: u.clone(),
                reason: "expected an http:// or https:// URL",
            });
        }
    }
    let lease = duration_var(
        get,
        "CLUSTER_LEASE",
        Duration::from_secs(3),
        "expected a duration of at least 3s such as 15s",
    )?
    .unwrap_or(crate::cluster::DEFAULT_LEASE);
    Ok(Some(crate::cluster::ClusterConfig { redis_url: url, node_id, advertise_url, lease }))
}

/// Default `BIND_ADDRESS`: every interface (a container's port mapping decides what is
/// reachable).
pub const DEFAULT_BIND_ADDRESS: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// `LOG_LEVEL` as `EnvFilter` directives, where a bare word must be a level: `EnvFilter`
/// reads `verbose` as "everything from target `verbose`", which silences every other log.
fn valid_log_filter(v: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let bare_ok = v.split(',').map(str::trim).filter(|d| !d.is_empty()).all(|d| {
        d.contains('=')
            || d.contains("::")
            || d.contains('[')
            || LEVELS.contains(&d.to_ascii_lowercase().as_str())
    });
    bare_ok && tracing_subscriber::EnvFilter::try_new(v).is_ok()
}

/// A humantime duration variable of at least `min` (and never zero); `None` when unset.
fn duration_var(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    min: Duration,
    reason: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    match get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match humantime::parse_duration(&v) {
            Ok(d) if d >= min && !d.is_zero() => Ok(Some(d)),
            _ => Err(ConfigError { name, value: v, reason }),
        },
    }
}

/// Bounds of `MEDIA_QUEUE_SIZE`.
const MIN_QUEUE: usize = crate::actors::media_queue::MIN_MEDIA_QUEUE_BYTES;
const MAX_QUEUE: usize = 1 << 30;

/// Largest `HISTORY_MAX_RECORDINGS` (the history is held in memory and in the journal).
const MAX_HISTORY: usize = 1_000_000;

/// Smallest `MAX_FILE_SIZE` (a part must hold at least a keyframe interval).
const MIN_FILE_SIZE: u64 = 1_000_000;

/// `123`, `500MB`, `500 MiB`, `2G`, `2GiB` (decimal units for B/KB/MB/GB/TB, binary for
/// KiB/MiB/GiB/TiB; K/M/G/T alone are decimal).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let mult: u64 = match s[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

fn parse_bool(name: &'static str, v: Option<String>, default: bool) -> Result<bool, ConfigError> {
    match v.as_deref().map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(other) => Err(ConfigError { name, value: other.to_owned(), reason: "expected true or false" }),
    }
}

/// `S3_*` and `UPLOAD_*`; `None` without `S3_BUCKET` (then no other `S3_` variable may be set).
fn s3_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::storage::s3::S3Settings>, ConfigError> {
    use crate::storage::s3::{S3Settings, DEFAULT_GIVE_UP, DEFAULT_WORKERS};
    let bad = |name, value: String, reason| ConfigError { name, value, reason };
    let nonempty = |k: &str| get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let Some(bucket) = nonempty("S3_BUCKET") else {
        for name in ["S3_REGION", "S3_DIRECTORY", "S3_ENDPOINT", "S3_FORCE_PATH_STYLE", "S3_KEEP_LOCAL"] {
            if let Some(v) = nonempty(name) {
                return Err(bad(name, v, "is set but S3_BUCKET is not (S3_BUCKET enables uploads)"));
            }
        }
        return Ok(None);
    };
    let mut s = S3Settings::new(&bucket);
    if let Some(r) = nonempty("S3_REGION") {
        s.region = r;
    }
    s.directory = nonempty("S3_DIRECTORY").unwrap_or_default();
    if let Some(e) = nonempty("S3_ENDPOINT") {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(bad("S3_ENDPOINT", e, "expected an http:// or https:// URL"));
        }
        s.endpoint = Some(e);
    }
    s.force_path_style = parse_bool("S3_FORCE_PATH_STYLE", get("S3_FORCE_PATH_STYLE"), false)?;
    s.keep_local = parse_bool("S3_KEEP_LOCAL", get("S3_KEEP_LOCAL"), false)?;
    s.workers = match nonempty("UPLOAD_WORKERS") {
        None => DEFAULT_WORKERS,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=64).contains(&n) => n,
            _ => return Err(bad("UPLOAD_WORKERS", v, "expected a number of workers from 1 to 64")),
        },
    };
    s.give_up = duration_var(
        get,
        "UPLOAD_GIVE_UP",
        Duration::ZERO,
        "expected a positive duration such as 10m or 90s",
    )?
    .unwrap_or(DEFAULT_GIVE_UP);
    Ok(Some(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = load(&[]).unwrap();
        assert_eq!(c.app_port, DEFAULT_PORT);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.recording.recordings_dir, PathBuf::from("./recordings"));
        assert_eq!(c.bind_address.to_string(), "0.0.0.0");
        assert_eq!(c.api_token, None);
        assert_eq!(c.recording.history.max_recordings, 10_000);
        assert_eq!(c.recording.history.max_age, Duration::from_secs(30 * 24 * 3600));
        let h =
            load(&[("HISTORY_MAX_RECORDINGS", "1"), ("HISTORY_MAX_AGE", "12h")]).unwrap().recording.history;
        assert_eq!((h.max_recordings, h.max_age), (1, Duration::from_secs(12 * 3600)));
        let c = load(&[("BIND_ADDRESS", "127.0.0.1"), ("API_TOKEN", "t")]).unwrap();
        assert_eq!((c.bind_address.to_string(), c.api_token), ("127.0.0.1".into(), Some(Secret("t".into()))));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("APP_PORT", "80a")]).unwrap_err();
        assert_eq!(e.name, "APP_PORT");
        assert!(e.to_string().contains("APP_PORT=\"80a\""), "{e}");
        assert_eq!(load(&[("LOG_FORMAT", "xml")]).unwrap_err().name, "LOG_FORMAT");
        assert_eq!(load(&[("LOG_LEVEL", "info,,=[")]).unwrap_err().name, "LOG_LEVEL");
        // an unknown level used to parse as a target name and silence every log
        let e = load(&[("LOG_LEVEL", "verbose")]).unwrap_err();
        assert!(e.to_string().contains("LOG_LEVEL=\"verbose\""), "{e}");
        assert_eq!(load(&[("LOG_LEVEL", "info,loud")]).unwrap_err().name, "LOG_LEVEL");
        for ok in ["debug", "WARN", "info,livekit_recorder=debug", "livekit_recorder::actors=trace"] {
            assert!(load(&[("LOG_LEVEL", ok)]).is_ok(), "{ok}");
        }
        assert_eq!(load(&[("API_TOKEN", "")]).unwrap_err().name, "API_TOKEN");
        assert_eq!(load(&[("API_TOKEN", "  ")]).unwrap_err().name, "API_TOKEN");
        assert_eq!(load(&[("BIND_ADDRESS", "localhost")]).unwrap_err().name, "BIND_ADDRESS");
        assert_eq!(load(&[("RECORDINGS_DIR", " ")]).unwrap_err().name, "RECORDINGS_DIR");
        assert_eq!(load(&[("START_TIMEOUT", "soon")]).unwrap_err().name, "START_TIMEOUT");
        assert_eq!(load(&[("AUTO_RECORD_ON_JOIN", "maybe")]).unwrap_err().name, "AUTO_RECORD_ON_JOIN");
        assert_eq!(load(&[("START_TIMEOUT", "0s")]).unwrap_err().name, "START_TIMEOUT");
        assert_eq!(load(&[("LIVEKIT_URL", "localhost:7880")]).unwrap_err().name, "LIVEKIT_URL");
        assert_eq!(load(&[("MAX_FILE_SIZE", "12 parsecs")]).unwrap_err().name, "MAX_FILE_SIZE");
        assert_eq!(load(&[("MAX_FILE_SIZE", "10KB")]).unwrap_err().name, "MAX_FILE_SIZE");
        let e = load(&[("MAX_CONCURRENT_RECORDINGS", "0")]).unwrap_err();
        assert_eq!(e.name, "MAX_CONCURRENT_RECORDINGS");
        assert_eq!(load(&[("HISTORY_MAX_RECORDINGS", "0")]).unwrap_err().name, "HISTORY_MAX_RECORDINGS");
        assert_eq!(
            load(&[("HISTORY_MAX_RECORDINGS", "2000000")]).unwrap_err().name,
            "HISTORY_MAX_RECORDINGS"
        );
        assert_eq!(load(&[("HISTORY_MAX_AGE", "forever")]).unwrap_err().name, "HISTORY_MAX_AGE");
        assert_eq!(load(&[("HISTORY_MAX_AGE", "0s")]).unwrap_err().name, "HISTORY_MAX_AGE");
        assert_eq!(load(&[("MAX_RECORDING_DURATION", "0s")]).unwrap_err().name, "MAX_RECORDING_DURATION");
        let b = ("S3_BUCKET", "rec");
        assert_eq!(load(&[b, ("S3_ENDPOINT", "minio:9000")]).unwrap_err().name, "S3_ENDPOINT");
        assert_eq!(load(&[b, ("S3_FORCE_PATH_STYLE", "sure")]).unwrap_err().name, "S3_FORCE_PATH_STYLE");
        assert_eq!(load(&[b, ("S3_KEEP_LOCAL", "2")]).unwrap_err().name, "S3_KEEP_LOCAL");
        assert_eq!(load(&[b, ("UPLOAD_WORKERS", "0")]).unwrap_err().name, "UPLOAD_WORKERS");
        assert_eq!(load(&[b, ("UPLOAD_GIVE_UP", "never")]).unwrap_err().name, "UPLOAD_GIVE_UP");
        assert_eq!(load(&[("S3_ENDPOINT", "http://x")]).unwrap_err().name, "S3_ENDPOINT");
        assert_eq!(load(&[("WEBHOOK_URLS", "http://a/x, ftp://b")]).unwrap_err().name, "WEBHOOK_URLS");
        let e = load(&[("WEBHOOK_URLS", "ftp://user:pw@b")]).unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn s3_and_callbacks_are_read() {
        let c = load(&[]).unwrap();
        assert_eq!((c.s3, c.webhook_urls.len()), (None, 0));
        let c = load(&[
            ("S3_BUCKET", "rec"),
            ("S3_DIRECTORY", "lk/"),
            ("S3_ENDPOINT", "http://127.0.0.1:9000"),
            ("S3_FORCE_PATH_STYLE", "true"),
            ("UPLOAD_WORKERS", "4"),
            ("UPLOAD_GIVE_UP", "90s"),
            ("WEBHOOK_URLS", "http://a/x, https://b/y"),
        ])
        .unwrap();
        let s3 = c.s3.expect("s3");
        assert_eq!(
            (s3.bucket.as_str(), s3.region.as_str(), s3.directory.as_str()),
            ("rec", "us-east-1", "lk/")
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(s3.force_path_style && !s3.keep_local);
        assert_eq!((s3.workers, s3.give_up), (4, Duration::from_secs(90)));
        let urls: Vec<&str> = c.webhook_urls.iter().map(|u| u.0.as_str()).collect();
        assert_eq!(urls, ["http://a/x", "https://b/y"]);
        let s3 = load(&[("S3_BUCKET", "rec")]).unwrap().s3.expect("s3");
        assert_eq!((s3.workers, s3.give_up), (2, Duration::from_secs(600)));
    }

    #[test]
    fn values_are_read() {
        let c = load(&[("APP_PORT", "9000"), ("LOG_FORMAT", "json"), ("RECORDINGS_DIR", "/data")]).unwrap();
        assert_eq!((c.app_port, c.log_format), (9000, LogFormat::Json));
        assert_eq!(c.recording.recordings_dir, PathBuf::from("/data"));
        let c = load(&[("START_TIMEOUT", "1m 5s"), ("LIVEKIT_API_SECRET", "s3cret"), ("API_TOKEN", "t")])
            .unwrap();
        assert_eq!(c.recording.start_timeout, Duration::from_secs(65));
        assert!(!format!("{c:?}").contains("s3cret"), "secrets are redacted in Debug");
        assert_eq!(c.recording.filename_template, "{room_name}/{publisher_identity}-{time}");
        let c = load(&[("MAX_FILE_SIZE", "2GiB"), ("MAX_RECORDING_DURATION", "4h")]).unwrap();
        assert_eq!(c.recording.max_file_bytes, Some(2 << 30));
        assert_eq!(c.recording.media_queue_bytes, 8 << 20, "default");
        assert_eq!(load(&[("MEDIA_QUEUE_SIZE", "256KiB")]).unwrap().recording.media_queue_bytes, 256 << 10);
        for bad in ["1KiB", "2GiB", "lots"] {
            let e = load(&[("MEDIA_QUEUE_SIZE", bad)]).unwrap_err().to_string();
            assert!(e.contains("MEDIA_QUEUE_SIZE"), "{bad}: {e}");
        }
        assert_eq!(c.recording.max_duration, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(
            (parse_size("500MB"), parse_size("7"), parse_size("x")),
            (Some(500_000_000), Some(7), None)
        );
    }
}
