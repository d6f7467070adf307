//! The command-line client: `livekit-recorder start|stop|ls|get|watch` talk to a running
//! daemon's REST API (`--url`, default [`DEFAULT_URL`]; the bearer token from
//! `LIVEKIT_RECORDER_TOKEN` or `API_TOKEN`, never from an argument, so it stays out of `ps`).
//! Tables by default, the daemon's JSON with `--json`. Errors name what failed and choose the
//! exit code ([`ClientError::exit_code`]): a script can tell "daemon down" from "wrong token"
//! from "no such recording".
//!
//! `GET /recordings` is read page by page (`limit=1000`): a bare array with the next page's
//! cursor in `X-Next-Cursor` (what the daemon answers), or `{"recordings":[...],"next_cursor":..}`;
//! the cursor is followed with `?cursor=` until the daemon has no more.

use std::time::Duration;

use serde_json::Value;

/// The daemon's address when `--url` and `LIVEKIT_RECORDER_URL` are not given: the default
/// `APP_PORT` on loopback.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// Environment variables the token is read from, first set (and non-empty) wins.
pub const TOKEN_VARS: [&str; 2] = ["LIVEKIT_RECORDER_TOKEN", "API_TOKEN"];
/// Timeout of a request; a stop waits for the files to be finalized, so it gets longer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// `watch` redraws at least this far apart, and at most this far apart.
pub const WATCH_MIN: Duration = Duration::from_millis(200);
/// See [`WATCH_MIN`].
pub const WATCH_MAX: Duration = Duration::from_secs(60);
/// Pages of `GET /recordings` followed at most (a daemon keeps 10,000 ended recordings).
const MAX_PAGES: usize = 1000;

/// Where the daemon is and how to print.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientOpts {
    /// The daemon's base URL.
    #[arg(long, env = "LIVEKIT_RECORDER_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// Print the daemon's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `start`: `POST /recordings/start`.
#[derive(clap::Args, Debug, Clone)]
pub struct StartArgs {
    /// Room name.
    #[arg(long)]
    pub room: String,
    /// Participant identity.
    #[arg(long)]
    pub participant: String,
    /// `av`, `audio` or `video`.
    #[arg(long)]
    pub profile: Option<String>,
    /// `participant` (one file) or `track` (one file per track).
    #[arg(long)]
    pub layout: Option<String>,
    /// File name template (see FILENAME_TEMPLATE).
    #[arg(long)]
    pub filename: Option<String>,
    /// `mkv` or `mp4` for H.264 video.
    #[arg(long)]
    pub h264_container: Option<String>,
    /// Where the daemon is, how to print.
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// `stop`: `POST /recordings/stop`, by id or by room and participant.
#[derive(clap::Args, Debug, Clone)]
pub struct StopArgs {
    /// Recording id (or give --room and --participant).
    #[arg(required_unless_present_all = ["room", "participant"], conflicts_with_all = ["room", "participant"])]
    pub id: Option<String>,
    /// Room name.
    #[arg(long, requires = "participant")]
    pub room: Option<String>,
    /// Participant identity.
    #[arg(long, requires = "room")]
    pub participant: Option<String>,
    /// Where the daemon is, how to print.
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// `ls`: `GET /recordings`.
#[derive(clap::Args, Debug, Clone)]
pub struct LsArgs {
    /// Only this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Only this status (pending, active, finalizing, uploading, complete, failed).
    #[arg(long)]
    pub status: Option<String>,
    /// Where the daemon is, how to print.
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// `get`: `GET /recordings/{id}`.
#[derive(clap::Args, Debug, Clone)]
pub struct GetArgs {
    /// Recording id.
    pub id: String,
    /// Where the daemon is, how to print.
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// `watch`: the live recordings, redrawn every `--interval` until Ctrl-C.
#[derive(clap::Args, Debug, Clone)]
pub struct WatchArgs {
    /// Time between redraws (humantime; 200ms to 60s).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Exit after this many redraws.
    #[arg(long)]
    pub count: Option<u64>,
    /// Draw once and exit (`--count 1`).
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
    /// Only this room.
    #[arg(long)]
    pub room: Option<String>,
    /// Where the daemon is, how to print.
    #[command(flatten)]
    pub opts: ClientOpts,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer from the daemon (down, wrong `--url`, firewall).
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The connection error.
        reason: String,
    },
    /// 401: no token, or not the daemon's `API_TOKEN`.
    #[error("unauthorized (401): {0} (set LIVEKIT_RECORDER_TOKEN or API_TOKEN to the daemon's API_TOKEN)")]
    Unauthorized(String),
    /// 404: no such recording.
    #[error("not found (404): {0}")]
    NotFound(String),
    /// Any other non-2xx answer.
    #[error("the daemon answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The daemon's `error`, or its body.
        message: String,
    },
    /// A 2xx answer that is not what the API returns, or a bad `--url`.
    #[error("{0}")]
    Invalid(String),
}

impl ClientError {
    /// The process exit code: 3 unreachable, 4 unauthorized, 5 not found, 1 anything else
    /// (2 is clap's, for bad arguments).
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Unreachable { .. } => 3,
            ClientError::Unauthorized(_) => 4,
            ClientError::NotFound(_) => 5,
            ClientError::Status { .. } | ClientError::Invalid(_) => 1,
        }
    }
}

/// A connection to one daemon.
pub struct Client {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base.as_str()).field("token", &"***").finish()
    }
}

/// The token from [`TOKEN_VARS`].
pub fn token_from_env() -> Option<String> {
    TOKEN_VARS.iter().filter_map(|v| std::env::var(v).ok()).find(|t| !t.is_empty())
}

impl Client {
    /// A client for the daemon at `url` (`http(s)://host:port`).
    pub fn new(url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| ClientError::Invalid(format!("--url {url:?} is not an http(s):// URL")))?;
        // reqwest is built without a rustls provider (see Cargo.toml): install ring's first
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { base, token, http })
    }

    fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        Ok(self.call_paged(method, url, body, timeout).await?.0)
    }

    /// [`Self::call`], with the next page's cursor from the `X-Next-Cursor` header.
    async fn call_paged(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(Value, Option<String>), ClientError> {
        let mut req = self.http.request(method, url.clone()).timeout(timeout);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_string());
        }
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.to_string(),
            reason: error_chain(&e),
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let next = resp
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let text = resp.text().await.map_err(unreachable)?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if (200..300).contains(&status) {
            return json
                .map(|v| (v, next))
                .ok_or_else(|| ClientError::Invalid(format!("{url}: the answer is not JSON: {text}")));
        }
        let message = json
            .as_ref()
            .and_then(|v| v["error"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().to_owned());
        Err(match status {
            401 => ClientError::Unauthorized(message),
            404 => ClientError::NotFound(message),
            _ => ClientError::Status { status, message },
        })
    }

    /// `POST /recordings/start`.
    pub async fn start(&self, a: &StartArgs) -> Result<Value, ClientError> {
        let mut body = serde_json::json!({ "room": a.room, "participant": a.participant });
        for (k, v) in [
            ("profile", &a.profile),
            ("layout", &a.layout),
            ("filename", &a.filename),
            ("h264_container", &a.h264_container),
        ] {
            if let Some(v) = v {
                body[k] = v.as_str().into();
            }
        }
        let url = self.url(&["recordings", "start"], &[]);
        self.call(reqwest::Method::POST, url, Some(&body), REQUEST_TIMEOUT).await
    }

    /// `POST /recordings/stop`: replies once the recording is finalized.
    pub async fn stop(&self, a: &StopArgs) -> Result<Value, ClientError> {
        let body = match (&a.id, &a.room, &a.participant) {
            (Some(id), _, _) => serde_json::json!({ "id": id }),
            (None, Some(room), Some(p)) => serde_json::json!({ "room": room, "participant": p }),
            _ => return Err(ClientError::Invalid("give a recording id, or --room and --participant".into())),
        };
        let url = self.url(&["recordings", "stop"], &[]);
        self.call(reqwest::Method::POST, url, Some(&body), STOP_TIMEOUT).await
    }

    /// `GET /recordings/{id}`.
    pub async fn get(&self, id: &str) -> Result<Value, ClientError> {
        let url = self.url(&["recordings", id], &[]);
        self.call(reqwest::Method::GET, url, None, REQUEST_TIMEOUT).await
    }

    /// `GET /recordings`, every page.
    pub async fn list(&self, room: Option<&str>, status: Option<&str>) -> Result<Vec<Value>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, &str)> = vec![("limit", "1000")];
            if let Some(r) = room {
                query.push(("room", r));
            }
            if let Some(s) = status {
                query.push(("status", s));
            }
            if let Some(c) = &cursor {
                query.push(("cursor", c));
            }
            let url = self.url(&["recordings"], &query);
            let (page, header_next) =
                self.call_paged(reqwest::Method::GET, url, None, REQUEST_TIMEOUT).await?;
            let (recs, body_next) = recordings_page(page)?;
            let next = body_next.or(header_next);
            all.extend(recs);
            match next {
                Some(n) if cursor.as_deref() != Some(n.as_str()) => cursor = Some(n),
                _ => break,
            }
        }
        Ok(all)
    }
}

/// The full cause of a reqwest error ("error sending request" alone says nothing).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

/// One page of `GET /recordings`: a bare array, or `{"recordings":[...],"next_cursor":...}`.
pub fn recordings_page(v: Value) -> Result<(Vec<Value>, Option<String>), ClientError> {
    match v {
        Value::Array(recs) => Ok((recs, None)),
        Value::Object(mut o) => {
            let next = match o.get("next_cursor") {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            match o.remove("recordings") {
                Some(Value::Array(recs)) => Ok((recs, next)),
                _ => Err(ClientError::Invalid("GET /recordings: no `recordings` array in the answer".into())),
            }
        }
        other => Err(ClientError::Invalid(format!("GET /recordings: unexpected answer {other}"))),
    }
}

/// Still recording, or uploading: what `watch` shows.
pub fn is_live(rec: &Value) -> bool {
    matches!(rec["status"].as_str(), Some("pending" | "active" | "finalizing" | "uploading"))
}

/// A client command, parsed.
#[derive(Debug, Clone)]
pub enum ClientCommand {
    /// `start`.
    Start(StartArgs),
    /// `stop`.
    Stop(StopArgs),
    /// `ls`.
    Ls(LsArgs),
    /// `get`.
    Get(GetArgs),
    /// `watch`.
    Watch(WatchArgs),
}

/// Runs `cmd` against the daemon, printing to stdout.
pub async fn run(cmd: ClientCommand) -> Result<(), ClientError> {
    let opts = match &cmd {
        ClientCommand::Start(a) => &a.opts,
        ClientCommand::Stop(a) => &a.opts,
        ClientCommand::Ls(a) => &a.opts,
        ClientCommand::Get(a) => &a.opts,
        ClientCommand::Watch(a) => &a.opts,
    };
    let client = Client::new(&opts.url, token_from_env())?;
    let json = opts.json;
    let one = |rec: Value| {
        if json {
            println!("{}", serde_json::to_string_pretty(&rec).unwrap_or_default());
        } else {
            print!("{}", recording_details(&rec));
        }
    };
    match &cmd {
        ClientCommand::Start(a) => one(client.start(a).await?),
        ClientCommand::Stop(a) => one(client.stop(a).await?),
        ClientCommand::Get(a) => one(client.get(&a.id).await?),
        ClientCommand::Ls(a) => {
            let recs = client.list(a.room.as_deref(), a.status.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&Value::Array(recs)).unwrap_or_default());
            } else {
                print!("{}", recordings_table(&recs));
            }
        }
        ClientCommand::Watch(a) => watch(&client, a).await?,
    }
    Ok(())
}

/// Polls the live recordings every `--interval` and redraws (clears the screen first when
/// stdout is a terminal; with `--json`, one JSON array per line). Ends after `--count`
/// redraws, or on Ctrl-C (exit 0).
async fn watch(client: &Client, a: &WatchArgs) -> Result<(), ClientError> {
    use std::io::{IsTerminal, Write};
    let interval = a.interval.clamp(WATCH_MIN, WATCH_MAX);
    let count = if a.once { Some(1) } else { a.count };
    let tty = std::io::stdout().is_terminal();
    let mut drawn = 0u64;
    loop {
        let poll = async {
            let all = client.list(a.room.as_deref(), None).await?;
            Ok::<_, ClientError>(all.into_iter().filter(is_live).collect::<Vec<_>>())
        };
        let live = tokio::select! {
            r = poll => r?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let frame = if a.opts.json {
            format!("{}\n", Value::Array(live))
        } else {
            let now = crate::recording::rfc3339(crate::recording::unix_ms_now());
            let head = format!(
                "{}  {} live  (every {}, Ctrl-C to quit)\n\n",
                short_time(&Value::String(now)),
                live.len(),
                humantime::format_duration(interval)
            );
            let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
            format!("{clear}{head}{}", recordings_table(&live))
        };
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(frame.as_bytes()).and_then(|_| out.flush());
        drop(out);
        drawn += 1;
        if count.is_some_and(|c| drawn >= c) {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// human-readable output

/// `1.5 KiB`, `12.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `4.2s`, `3m07s`, `2h05m`.
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let whole = secs as u64;
    match whole {
        0..=59 => format!("{secs:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

/// `2026-12-02T13:50:37.123Z` → `2026-12-02 13:50:37`.
fn short_time(v: &Value) -> String {
    match v.as_str() {
        Some(t) if t.len() >= 19 => t[..19].replace('T', " "),
        Some(t) => t.to_owned(),
        None => "-".into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// At most `max` characters, `…` when cut.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Left-aligned columns, two spaces apart.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                out.push_str(c);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

/// The recordings as a table, one row each.
pub fn recordings_table(recs: &[Value]) -> String {
    let header = ["ID", "ROOM", "PARTICIPANT", "STATUS", "STARTED", "DURATION", "SIZE", "PARTS", "ERROR"];
    let rows: Vec<Vec<String>> = recs
        .iter()
        .map(|r| {
            vec![
                text(&r["id"]),
                clip(&text(&r["room"]), 32),
                clip(&text(&r["participant"]), 32),
                text(&r["status"]),
                short_time(&r["started_at"]),
                human_duration(r["duration_s"].as_f64().unwrap_or(0.0)),
                human_bytes(r["bytes"].as_u64().unwrap_or(0)),
                r["parts"].as_array().map_or(0, Vec::len).to_string(),
                r["error"].as_str().map_or_else(|| "-".into(), |e| clip(e, 60)),
            ]
        })
        .collect();
    render_table(&header, &rows)
}

/// One recording, field by field, with its tracks, parts and outputs.
pub fn recording_details(r: &Value) -> String {
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<16}{v}\n"));
    field("id", text(&r["id"]));
    field("room", text(&r["room"]));
    field("participant", text(&r["participant"]));
    field("status", text(&r["status"]));
    field("started_at", text(&r["started_at"]));
    field("ended_at", text(&r["ended_at"]));
    field("duration", human_duration(r["duration_s"].as_f64().unwrap_or(0.0)));
    field("size", human_bytes(r["bytes"].as_u64().unwrap_or(0)));
    field("frames_lost", text(&r["frames_lost"]));
    field("frames_dropped", text(&r["frames_dropped"]));
    field("error", text(&r["error"]));
    let tracks: Vec<String> = r["tracks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| format!("{} {} {}", text(&t["kind"]), text(&t["codec"]), text(&t["sid"])))
                .collect()
        })
        .unwrap_or_default();
    field("tracks", if tracks.is_empty() { "-".into() } else { tracks.join(", ") });
    if let Some(skipped) = r["skipped_tracks"].as_array().filter(|s| !s.is_empty()) {
        for s in skipped {
            field(
                "skipped",
                format!(
                    "{} {} ({}): {}",
                    text(&s["kind"]),
                    text(&s["sid"]),
                    text(&s["mime"]),
                    text(&s["reason"])
                ),
            );
        }
    }
    let parts = r["parts"].as_array().cloned().unwrap_or_default();
    if !parts.is_empty() {
        let rows: Vec<Vec<String>> = parts
            .iter()
            .map(|p| {
                let files: Vec<String> =
                    p["files"].as_array().map(|fs| fs.iter().map(text).collect()).unwrap_or_default();
                vec![
                    text(&p["part"]),
                    short_time(&p["started_at"]),
                    short_time(&p["ended_at"]),
                    human_duration(p["duration_s"].as_f64().unwrap_or(0.0)),
                    human_bytes(p["bytes"].as_u64().unwrap_or(0)),
                    files.join(" "),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&render_table(&["PART", "STARTED", "ENDED", "DURATION", "SIZE", "FILES"], &rows));
    }
    if let Some(outputs) = r["outputs"].as_array().filter(|o| !o.is_empty()) {
        out.push_str("\noutputs\n");
        for o in outputs {
            out.push_str(&format!("  {}\n", text(o)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_url_is_the_default_port() {
        assert_eq!(DEFAULT_URL, format!("http://127.0.0.1:{}", crate::config::DEFAULT_PORT));
    }

    #[test]
    fn both_list_shapes_are_read() {
        let bare = json!([{ "id": "RC_1" }]);
        assert_eq!(recordings_page(bare).expect("bare").0.len(), 1);
        let paged = json!({ "recordings": [{ "id": "RC_1" }, { "id": "RC_2" }], "next_cursor": "c2" });
        let (recs, next) = recordings_page(paged).expect("paged");
        assert_eq!((recs.len(), next.as_deref()), (2, Some("c2")));
        let last = json!({ "recordings": [], "next_cursor": null });
        assert_eq!(recordings_page(last).expect("last page").1, None);
        assert!(recordings_page(json!({ "items": [] })).is_err());
    }

    #[test]
    fn urls_escape_ids_and_queries() {
        let c = Client::new("http://127.0.0.1:9/", None).expect("client");
        assert_eq!(c.url(&["recordings", "a/b"], &[]).as_str(), "http://127.0.0.1:9/recordings/a%2Fb");
        let u = c.url(&["recordings"], &[("room", "a b&c")]);
        assert_eq!(u.as_str(), "http://127.0.0.1:9/recordings?room=a+b%26c");
        assert!(Client::new("127.0.0.1:8080", None).is_err(), "a URL needs its scheme");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_duration(4.25), "4.2s");
        assert_eq!(human_duration(187.0), "3m07s");
        assert_eq!(human_duration(7500.0), "2h05m");
    }

    #[test]
    fn table_columns_line_up() {
        let recs = vec![
            json!({ "id": "RC_1", "room": "r", "participant": "alice", "status": "active",
                    "started_at": "2026-12-02T13:50:37.123Z", "duration_s": 4.0, "bytes": 2048,
                    "parts": [{}], "error": null }),
            json!({ "id": "RC_22", "room": "room-two", "participant": "bob", "status": "failed",
                    "started_at": "2026-12-02T13:51:00.000Z", "duration_s": 0.0, "bytes": 0,
                    "parts": [], "error": "no media" }),
        ];
        let t = recordings_table(&recs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        let col = |l: &str| l.find("STATUS").or_else(|| l.find("active")).or_else(|| l.find("failed"));
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[1].contains("2026-12-02 13:50:37") && lines[1].contains("2.0 KiB"), "{t}");
    }
}
