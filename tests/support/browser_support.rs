//! A browser publisher for the real-server tests: headless Debian Chromium running
//! livekit-client (npm) on the page `tests/browser/page.html`, driven by
//! `tests/browser/driver.mjs` (Node + playwright-core) over JSON lines on stdin/stdout, like the
//! Go publisher of `real_support`. `sh tests/browser/install.sh` (run by `.ci/test`) installs
//! what it needs. Also the judge of what the page draws: the frame counter read back from a
//! recording's decoded video. Use as `mod browser_support;` beside `mod real_support;`.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::real_support::{file_tail, logs_dir, repo_dir, RealServer};

pub use super::common::{node_modules, CHROMIUM};

/// Bits of the page's counter (two rows of this many blocks at the top of the picture).
pub const COUNTER_BITS: usize = 16;
/// The counter's two rows take this fraction of the picture's height (each `1/15`).
pub const COUNTER_ROWS_FRACTION: (u32, u32) = (2, 15);

#[derive(Default)]
struct State {
    events: Vec<Value>,
    replies: VecDeque<Value>,
    closed: bool,
}

/// The browser publisher in a room: events (`ready`, `joined`, `published`, `started`,
/// `disconnected`, `error`) in order, one reply per command. Dropping it closes its stdin (the
/// page leaves and the browser closes) and kills its process group if it is still there
/// after 5 s.
pub struct Browser {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<(Mutex<State>, Condvar)>,
    log_path: PathBuf,
    pub identity: String,
}

/// How long a command may take (a reload included).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(40);

impl Browser {
    /// Starts the driver with the page's config `page` (merged over `url` and a publish token
    /// for `identity` in `room`): `publish` (livekit-client publish options for the camera;
    /// none = its defaults), `width`/`height` (default 640x360), `screen`
    /// (`{fps, width, height}`: a screen share too), `camera`/`microphone` (false = not
    /// published), `log_level`.
    pub fn spawn(server: &RealServer, room: &str, identity: &str, page: Value) -> Browser {
        use std::os::unix::process::CommandExt;
        let modules = node_modules();
        let token = server.token(room, identity, |g| {
            g.can_publish = Some(true);
            g.can_subscribe = Some(true);
        });
        let mut cfg = json!({ "url": server.ws_url(), "token": token, "chromium": CHROMIUM });
        if let Value::Object(m) = page {
            cfg.as_object_mut().expect("object").extend(m);
        }
        let tag =
            std::thread::current().name().unwrap_or("test").rsplit("::").next().unwrap_or("test").to_owned();
        let log_path = logs_dir().join(format!("{tag}-{}-browser-{identity}.log", server.port()));
        let log = File::create(&log_path).expect("create browser log");
        let mut child = Command::new("node")
            .arg(repo_dir().join("tests/browser/driver.mjs"))
            .arg(&modules)
            .arg(cfg.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0) // the driver and its browser: killed together on drop
            .spawn()
            .expect("start node (the browser tests need Node.js >= 20)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let sh = shared.clone();
        std::thread::Builder::new()
            .name(format!("browser-{identity}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut st = sh.0.lock().unwrap();
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v.get("reply").is_some() => st.replies.push_back(v),
                        Ok(v) => st.events.push(v),
                        Err(_) => st.events.push(json!({ "event": "stdout", "line": line })),
                    }
                    sh.1.notify_all();
                }
                sh.0.lock().unwrap().closed = true;
                sh.1.notify_all();
            })
            .expect("spawn reader");
        Browser { child, stdin: Mutex::new(stdin), shared, log_path, identity: identity.into() }
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn diag(&self) -> String {
        let st = self.shared.0.lock().unwrap();
        let last: Vec<String> = st.events.iter().rev().take(10).rev().map(|e| e.to_string()).collect();
        format!(
            "browser {}: last events:\n  {}\ndriver log tail ({}):\n{}",
            self.identity,
            last.join("\n  "),
            self.log_path.display(),
            file_tail(&self.log_path, 3000)
        )
    }

    /// All events so far.
    pub fn events(&self) -> Vec<Value> {
        self.shared.0.lock().unwrap().events.clone()
    }

    /// Number of events so far (a cursor for [`Browser::wait_event`]).
    pub fn event_count(&self) -> usize {
        self.shared.0.lock().unwrap().events.len()
    }

    /// The first event at index `since` or later that matches; panics after `timeout`, or at
    /// once when the page reports an error.
    pub async fn wait_event(&self, since: usize, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let st = self.shared.0.lock().unwrap();
                let new = st.events.iter().skip(since);
                if let Some(e) = new.clone().find(|e| pred(e)) {
                    return e.clone();
                }
                if let Some(e) = new.clone().find(|e| e["event"] == "error" || e["event"] == "crashed") {
                    let e = e.clone();
                    drop(st);
                    panic!("the browser publisher failed: {e}\n{}", self.diag());
                }
                if st.closed || Instant::now() >= deadline {
                    let closed = st.closed;
                    drop(st);
                    panic!(
                        "no matching browser event in {timeout:?}{}\n{}",
                        if closed { " (driver exited)" } else { "" },
                        self.diag()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the page's `started` (joined, every track published) at `since` or later.
    pub async fn wait_started(&self, since: usize) -> Value {
        self.wait_event(since, |e| e["event"] == "started", Duration::from_secs(60)).await
    }

    /// Sends a command (`status`, `reload`, `leave`, `mute audio`, `unmute audio`) and returns
    /// its reply; panics when it fails or no reply comes.
    pub async fn command(&self, line: &str) -> Value {
        {
            let mut stdin = self.stdin.lock().unwrap();
            let ok = stdin.as_mut().is_some_and(|s| writeln!(s, "{line}").and_then(|_| s.flush()).is_ok());
            if !ok {
                drop(stdin);
                panic!("cannot send {line:?}: the driver's stdin is closed\n{}", self.diag());
            }
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            {
                let mut st = self.shared.0.lock().unwrap();
                if let Some(i) = st.replies.iter().position(|r| r["reply"] == line) {
                    let r = st.replies.remove(i).expect("reply");
                    drop(st);
                    assert_eq!(r["ok"], true, "{line:?} failed: {r}\n{}", self.diag());
                    return r;
                }
                let closed = st.closed;
                drop(st);
                if closed || Instant::now() >= deadline {
                    panic!(
                        "no reply to {line:?}{}\n{}",
                        if closed { " (driver exited)" } else { "" },
                        self.diag()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The sid of the track the page published from `source` (`camera`, `microphone`,
    /// `screen`), the last one published.
    pub fn track_sid(&self, source: &str) -> Option<String> {
        let st = self.shared.0.lock().unwrap();
        st.events
            .iter()
            .rev()
            .find(|e| e["event"] == "published" && e["source"] == source)
            .and_then(|e| e["track_sid"].as_str())
            .map(Into::into)
    }

    /// The current participant sid (the last `joined`).
    pub fn participant_sid(&self) -> Option<String> {
        let st = self.shared.0.lock().unwrap();
        st.events
            .iter()
            .rev()
            .find(|e| e["event"] == "joined")
            .and_then(|e| e["participant_sid"].as_str())
            .map(Into::into)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stdin.lock().unwrap().take(); // EOF: the page leaves, the browser closes
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Still there: SIGKILL to its process group (the driver and the browser it started),
        // while the driver, the group's leader, is not yet reaped. `--` is needed: procps-ng
        // 4.0's kill takes `-9 -PGID` for something else (it does not signal the group).
        let pgid = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-s", "KILL", "--", &pgid]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One decoded video frame of a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoFrame {
    /// Presentation time, s.
    pub t: f64,
    pub width: u32,
    pub height: u32,
    /// The page's frame counter (its low 12 bits), when both rows are readable (complementary
    /// blocks) and its check matches.
    pub counter: Option<u32>,
}

/// The 4-bit check the page draws after its counter's 12 bits (`check` in page.js): nibbles
/// weighted 1, 3, 5 (odd, so a flipped bit in any nibble changes it), plus 7.
pub fn counter_check(c: u32) -> u32 {
    ((c & 15) + 3 * ((c >> 4) & 15) + 5 * ((c >> 8) & 15) + 7) & 15
}

/// The counter in a 16-bit word read from a picture, if its check matches.
pub fn checked_counter(word: u32) -> Option<u32> {
    let counter = word >> 4;
    (word & 15 == counter_check(counter)).then_some(counter)
}

/// Every decoded frame of the first video stream, with its size and the page's counter, read
/// by ffmpeg (the counter's strip scaled to one pixel per block) and ffprobe (times, sizes).
pub fn video_frames(path: &Path) -> Vec<VideoFrame> {
    let (num, den) = COUNTER_ROWS_FRACTION;
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time,width,height"])
        .args(["-of", "json"])
        .arg(path)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let meta: Vec<(f64, u32, u32)> = v["frames"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let t = f["pts_time"].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN);
                    (t, f["width"].as_u64().unwrap_or(0) as u32, f["height"].as_u64().unwrap_or(0) as u32)
                })
                .collect()
        })
        .unwrap_or_default();
    let filter = format!("crop=iw:ih*{num}/{den}:0:0,scale={COUNTER_BITS}:2:flags=area,format=gray");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vf", &filter, "-fps_mode", "passthrough", "-f", "rawvideo", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
    let px = out.stdout;
    let per = 2 * COUNTER_BITS;
    assert_eq!(
        px.len() / per,
        meta.len(),
        "{}: ffmpeg decoded {} frames, ffprobe {}",
        path.display(),
        px.len() / per,
        meta.len()
    );
    meta.into_iter()
        .zip(px.chunks_exact(per))
        .map(|((t, width, height), p)| {
            let (hi, lo) = p.split_at(COUNTER_BITS);
            let readable = hi.iter().zip(lo).all(|(&a, &b)| (a as i32 - b as i32).abs() > 100);
            let counter = readable
                .then(|| hi.iter().zip(lo).fold(0u32, |n, (&a, &b)| n * 2 + u32::from(a > b)))
                .and_then(checked_counter);
            VideoFrame { t, width, height, counter }
        })
        .collect()
}

/// What livekit-server's stream tracker said of a simulcast track's layers, from its log at
/// `debug` ("stream tracker status changed"): `(ms after the first such line, layer, status)`,
/// status `active` or `stopped`. The server forwards only layers it holds active.
pub fn server_layer_events(server_log: &Path, track_sid: &str) -> Vec<(i64, u32, String)> {
    let text = std::fs::read_to_string(server_log).unwrap_or_default();
    let needle = format!("\"trackID\": \"{track_sid}\"");
    let field = |line: &str, key: &str| -> Option<String> {
        let at = line.find(&format!("\"{key}\": "))? + key.len() + 4;
        let rest = line[at..].trim_start_matches('"');
        let end = rest.find(['"', ',', '}']).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    };
    // "2026-12-08T02:15:11.740Z": ms of the day
    let ms_of_day = |line: &str| -> Option<i64> {
        let t = line.get(11..23)?;
        let (h, m, s) = (t.get(0..2)?.parse::<i64>().ok()?, t.get(3..5)?.parse::<i64>().ok()?, t.get(6..12)?);
        let s: f64 = s.parse().ok()?;
        Some((h * 3600 + m * 60) * 1000 + (s * 1000.0).round() as i64)
    };
    let mut out = Vec::new();
    let mut first = None;
    for line in text.lines().filter(|l| l.contains("stream tracker status changed") && l.contains(&needle)) {
        let (Some(t), Some(layer), Some(status)) =
            (ms_of_day(line), field(line, "layer"), field(line, "status"))
        else {
            continue;
        };
        let Ok(layer) = layer.parse() else { continue };
        let t0 = *first.get_or_insert(t);
        out.push((t - t0, layer, status));
    }
    out
}

/// Whether the server's stream tracker judged the track's top layer (the highest one it ever
/// held active) stopped after the first second (at the start every layer flips within ms).
pub fn server_stopped_the_top_layer(events: &[(i64, u32, String)]) -> bool {
    let top = events.iter().filter(|e| e.2 == "active").map(|e| e.1).max();
    top.is_some_and(|top| {
        events.iter().any(|(t, layer, status)| *t > 1_000 && *layer == top && status == "stopped")
    })
}
