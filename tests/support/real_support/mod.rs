//! Support for tests against the real livekit-server (v1.13.5) and a real publisher
//! (`tests/lkpub`, server-sdk-go). Use as `mod real_support;` from a file in `tests/`.
//!
//! - Binaries: [`server_bin`] (`$LIVEKIT_SERVER_BIN`, else the canonical cache path
//!   [`SERVER_CACHE_PATH`] under `$HOME`), [`publisher_bin`] (built from `tests/lkpub` into
//!   `target/lkpub/lkpub` when missing or stale). `tests/support/real_support/install.sh` makes both.
//! - Network: pion and libwebrtc ignore loopback candidates, so the server's media address is a
//!   private address on a veth pair ([`test_net`]; root needed, nothing leaves the machine).
//! - [`RealServer`]: one server per test, free ports, killed on drop (and by a watchdog if the
//!   test process dies). [`Publisher`]: the Go publisher, driven over stdin/stdout.
//! - Fixture frames as the publisher sends them: [`ivf_frames`], [`ogg_opus_packets`],
//!   [`h264_access_units`].
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The server version the tests are written against.
pub const SERVER_VERSION: &str = "1.13.5";
/// Canonical location of the server binary, relative to `$HOME`.
pub const SERVER_CACHE_PATH: &str = ".cache/livekit-recorder/livekit-server-v1.13.5/server";
/// How to build the server binary into the canonical location.
pub const SERVER_INSTALL: &str = "CGO_ENABLED=0 GOBIN=\"$HOME/.cache/livekit-recorder/livekit-server-v1.13.5\" \
     go install github.com/livekit/livekit-server/cmd/server@v1.13.5   (or: sh tests/support/real_support/install.sh)";
/// Default API key and secret of [`ServerOpts`]: the tests' one pair.
pub use super::sim_support::{KEY as API_KEY, SECRET as API_SECRET};
/// The veth pair [`test_net`] creates, and the address on its first end.
pub const NET_IF: &str = "lkrec0";
pub const NET_PEER_IF: &str = "lkrec1";
pub const NET_ADDR: Ipv4Addr = Ipv4Addr::new(10, 254, 77, 1);

/// The repository root.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture from `src/assets` (`vp8.ivf`, `vp9.ivf`, `av1.ivf`, `h264.h264`, `opus.ogg`).
pub fn asset(name: &str) -> PathBuf {
    repo_dir().join("src/assets").join(name)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else the ancestor of this test binary that
/// holds Cargo's `CACHEDIR.TAG`, else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
            let d = PathBuf::from(d);
            return if d.is_absolute() { d } else { repo_dir().join(d) };
        }
        if let Ok(exe) = std::env::current_exe() {
            if let Some(d) = exe.ancestors().skip(1).find(|d| d.join("CACHEDIR.TAG").is_file()) {
                return d.to_path_buf();
            }
        }
        repo_dir().join("target")
    })
    .clone()
}

/// Where servers' and publishers' logs and configs go: `target/real-lk-logs/`.
pub fn logs_dir() -> PathBuf {
    let d = target_dir().join("real-lk-logs");
    std::fs::create_dir_all(&d).expect("create target/real-lk-logs");
    d
}

/// The livekit-server binary: `$LIVEKIT_SERVER_BIN`, else `$HOME/` + [`SERVER_CACHE_PATH`].
/// Panics with the command that builds it when it is missing.
pub fn server_bin() -> PathBuf {
    let path = match std::env::var_os("LIVEKIT_SERVER_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(SERVER_CACHE_PATH)
        }
    };
    if !path.is_file() {
        panic!(
            "livekit-server v{SERVER_VERSION} not found at {} (set LIVEKIT_SERVER_BIN, or build it \
             with Go >= 1.26: {SERVER_INSTALL})",
            path.display()
        );
    }
    path
}

/// Newest modification time of the publisher's sources.
fn publisher_sources_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).expect("read tests/lkpub") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.ends_with(".go") || name == "go.mod" || name == "go.sum" {
            let m = path.metadata().and_then(|m| m.modified()).expect("mtime");
            newest = newest.max(m);
        }
    }
    newest
}

/// The Go publisher, built from `tests/lkpub` into `target/lkpub/lkpub` when missing or older
/// than its sources (once per test process; parallel processes build into temporary names and
/// rename, so they never see a half-written binary).
pub fn publisher_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = repo_dir().join("tests/lkpub");
        let out_dir = target_dir().join("lkpub");
        let bin = out_dir.join("lkpub");
        let fresh = bin
            .metadata()
            .and_then(|m| m.modified())
            .map(|m| m >= publisher_sources_mtime(&src))
            .unwrap_or(false);
        if fresh {
            return bin;
        }
        match Command::new("go").arg("version").output() {
            Ok(o) if o.status.success() => {}
            _ => panic!(
                "`go` (>= 1.26.8) is needed to build the test publisher tests/lkpub (or build it \
                 yourself: cd tests/lkpub && go build -o {} .)",
                bin.display()
            ),
        }
        std::fs::create_dir_all(&out_dir).expect("create target/lkpub");
        let tmp = out_dir.join(format!("lkpub.tmp-{}", std::process::id()));
        let started = Instant::now();
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&tmp)
            .arg(".")
            .current_dir(&src)
            .output()
            .expect("run go build");
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            panic!(
                "go build of tests/lkpub failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::fs::rename(&tmp, &bin).expect("rename the publisher binary into place");
        eprintln!("built {} in {:.1?}", bin.display(), started.elapsed());
        bin
    })
    .clone()
}

fn run_ip(args: &[&str]) -> (bool, String) {
    match Command::new("ip").args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, format!("cannot run `ip`: {e}")),
    }
}

fn net_ready(addr: Ipv4Addr) -> bool {
    let (ok, out) = run_ip(&["-o", "-4", "addr", "show", "dev", NET_IF]);
    let (ok2, link) = run_ip(&["-o", "link", "show", "dev", NET_IF]);
    ok && ok2
        && out.contains(&format!("inet {addr}/"))
        && link.contains(",UP")
        && UdpSocket::bind((addr, 0)).is_ok()
}

/// The address the server's media should use: `$LIVEKIT_TEST_IP` when set (nothing is
/// created), else [`NET_ADDR`] on the veth pair [`NET_IF`]/[`NET_PEER_IF`], which this creates
/// when missing (idempotent; racing test processes are fine: every step may fail with "exists",
/// the end state is checked). Needs root.
pub fn test_net() -> IpAddr {
    static ADDR: OnceLock<IpAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        if let Ok(s) = std::env::var("LIVEKIT_TEST_IP") {
            return s.parse().expect("LIVEKIT_TEST_IP is not an IP address");
        }
        let addr = NET_ADDR;
        let cidr = format!("{addr}/32");
        let mut log = String::new();
        for attempt in 0..10 {
            if net_ready(addr) {
                return IpAddr::V4(addr);
            }
            for args in [
                &["link", "add", NET_IF, "type", "veth", "peer", "name", NET_PEER_IF][..],
                &["addr", "add", &cidr, "dev", NET_IF][..],
                &["link", "set", NET_IF, "up"][..],
                &["link", "set", NET_PEER_IF, "up"][..],
            ] {
                let (ok, out) = run_ip(args);
                if !ok {
                    log.push_str(&format!("ip {}: {}", args.join(" "), out));
                }
            }
            std::thread::sleep(Duration::from_millis(50 * (attempt + 1)));
        }
        panic!(
            "cannot set up the test network ({NET_IF} with {cidr}; needs root and veth support, or \
             set LIVEKIT_TEST_IP to a local non-loopback address):\n{log}"
        );
    })
}

/// A free TCP port on 127.0.0.1.
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A free UDP port on `ip`.
pub fn free_udp_port(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0)).expect("bind udp").local_addr().expect("addr").port()
}

/// The last `max` bytes of a file, as text.
pub fn file_tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = Vec::new();
    use std::io::Seek;
    let _ = f.seek(std::io::SeekFrom::Start(len.saturating_sub(max)));
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A short name for files of the current test (the test thread's name).
fn test_tag() -> String {
    let name = std::thread::current().name().unwrap_or("test").to_string();
    let tag: String = name
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    if tag.is_empty() {
        "test".into()
    } else {
        tag
    }
}

/// Kills `pid` with SIGKILL when its stdin reaches EOF (this test process died); killed
/// itself first on the normal paths, so it never outlives the process it guards.
fn spawn_watchdog(pid: u32) -> Option<Child> {
    Command::new("sh")
        .args(["-c", "read _x; kill -9 \"$0\" 2>/dev/null", &pid.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn stop_watchdog(w: &mut Option<Child>) {
    if let Some(mut w) = w.take() {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// Options of [`RealServer::start`].
#[derive(Debug, Clone)]
pub struct ServerOpts {
    /// `webhook.urls` (signed with `api_key`).
    pub webhook_url: Option<String>,
    /// `room.departure_timeout`, seconds (server default 20).
    pub departure_timeout: Option<u32>,
    /// `room.empty_timeout`, seconds (server default 300).
    pub empty_timeout: Option<u32>,
    pub api_key: String,
    pub api_secret: String,
    /// `logging.level` (default "info").
    pub log_level: String,
    /// Extra top-level YAML appended to the config (keys must not repeat ours).
    pub extra_yaml: String,
}

impl Default for ServerOpts {
    fn default() -> Self {
        ServerOpts {
            webhook_url: None,
            departure_timeout: None,
            empty_timeout: None,
            api_key: API_KEY.into(),
            api_secret: API_SECRET.into(),
            log_level: "info".into(),
            extra_yaml: String::new(),
        }
    }
}

/// A livekit-server process (single node, no Redis), HTTP/WebSocket on 127.0.0.1, media (one
/// UDP port, no TCP) on [`test_net`]'s address. Killed on drop.
pub struct RealServer {
    opts: ServerOpts,
    port: u16,
    udp_port: u16,
    node_ip: IpAddr,
    config_path: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    watchdog: Option<Child>,
}

/// The config file for these options (strict parsing: only known keys).
fn server_config(opts: &ServerOpts, port: u16, udp_port: u16, ip: IpAddr) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("json string");
    let mut y = format!(
        "port: {port}\n\
         bind_addresses: [\"127.0.0.1\"]\n\
         rtc:\n  udp_port: {udp_port}\n  tcp_port: 0\n  use_external_ip: false\n  node_ip: {ip}\n  \
         ips:\n    includes: [\"{ip}/32\"]\n\
         keys:\n  {}: {}\n\
         logging:\n  level: {}\n  pion_level: error\n",
        q(&opts.api_key),
        q(&opts.api_secret),
        q(&opts.log_level),
    );
    if let Some(url) = &opts.webhook_url {
        y.push_str(&format!("webhook:\n  api_key: {}\n  urls: [{}]\n", q(&opts.api_key), q(url)));
    }
    if opts.departure_timeout.is_some() || opts.empty_timeout.is_some() {
        y.push_str("room:\n");
        if let Some(t) = opts.empty_timeout {
            y.push_str(&format!("  empty_timeout: {t}\n"));
        }
        if let Some(t) = opts.departure_timeout {
            y.push_str(&format!("  departure_timeout: {t}\n"));
        }
    }
    if !opts.extra_yaml.is_empty() {
        y.push_str(&opts.extra_yaml);
        if !y.ends_with('\n') {
            y.push('\n');
        }
    }
    y
}

/// One HTTP/1.0 GET on 127.0.0.1:port; the status code.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(1000))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    head.split_whitespace().nth(1)?.parse().ok()
}

impl RealServer {
    /// Starts a server on free ports and waits (20 s) until `GET /` answers 200. Panics with
    /// the log's tail when it does not come up.
    pub fn start(opts: ServerOpts) -> RealServer {
        server_bin(); // panics early, with the build command, when missing
        let node_ip = test_net();
        let tag = test_tag();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_tcp_port();
            let udp_port = free_udp_port(node_ip);
            let base = logs_dir().join(format!("{tag}-{port}"));
            let config_path = base.with_extension("yaml");
            let log_path = base.with_extension("log");
            std::fs::write(&config_path, server_config(&opts, port, udp_port, node_ip))
                .expect("write server config");
            let mut server = RealServer {
                opts: opts.clone(),
                port,
                udp_port,
                node_ip,
                config_path,
                log_path,
                child: None,
                watchdog: None,
            };
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(e) if e.contains("address already in use") => last_err = e, // port race: retry
                Err(e) => panic!("{e}"),
            }
        }
        panic!("{last_err}");
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log = File::options().create(true).append(true).open(&self.log_path).expect("open server log");
        let child = Command::new(server_bin())
            .arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server_bin().display()))?;
        self.watchdog = spawn_watchdog(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if http_status(self.port, "/") == Some(200) {
                return Ok(());
            }
            let exited = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                let why = match exited {
                    Some(st) => format!("exited with {st}"),
                    None => "did not answer GET / with 200 within 20 s".into(),
                };
                self.kill();
                return Err(format!(
                    "livekit-server (port {}, udp {}) {why}; config {}, log {}:\n{}",
                    self.port,
                    self.udp_port,
                    self.config_path.display(),
                    self.log_path.display(),
                    file_tail(&self.log_path, 4000)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ws://127.0.0.1:<port>`.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }

    /// The media address (`rtc.node_ip`).
    pub fn node_ip(&self) -> IpAddr {
        self.node_ip
    }

    pub fn api_key(&self) -> &str {
        &self.opts.api_key
    }

    pub fn api_secret(&self) -> &str {
        &self.opts.api_secret
    }

    pub fn opts(&self) -> &ServerOpts {
        &self.opts
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The last `max` bytes of the log.
    pub fn log_tail(&self, max: u64) -> String {
        file_tail(&self.log_path, max)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL (no goodbye to anyone), waiting until the process is gone.
    pub fn kill(&mut self) {
        stop_watchdog(&mut self.watchdog);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills the server if it runs and starts it again on the same ports and config.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                // The old sockets can linger for a moment.
                Err(e) if e.contains("address already in use") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("restart: {e}"),
            }
        }
    }

    /// A Twirp RoomService client for this server (installs rustls' ring provider first, as
    /// the crate's HTTP client needs one).
    pub fn room_client(&self) -> livekit_api::services::room::RoomClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        livekit_api::services::room::RoomClient::with_api_key(
            &self.http_url(),
            &self.opts.api_key,
            &self.opts.api_secret,
        )
    }

    /// A join token for `identity` in `room` with the given grants adjusted by `grants`.
    pub fn token(
        &self,
        room: &str,
        identity: &str,
        grants: impl FnOnce(&mut livekit_api::access_token::VideoGrants),
    ) -> String {
        let mut g = livekit_api::access_token::VideoGrants {
            room_join: true,
            room: room.into(),
            ..Default::default()
        };
        grants(&mut g);
        livekit_api::access_token::AccessToken::with_api_key(&self.opts.api_key, &self.opts.api_secret)
            .with_identity(identity)
            .with_grants(g)
            .to_jwt()
            .expect("token")
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Options of [`Publisher::spawn`].
#[derive(Debug, Clone, Default)]
pub struct PublisherOpts {
    pub video: Option<PathBuf>,
    pub audio: Option<PathBuf>,
    /// Times to play the files; 0 = until told to leave.
    pub loops: u32,
    /// Publish the audio as `audio/red`.
    pub red: bool,
    /// More command-line arguments (`--token-ttl 10m`, `--fps 25`...).
    pub extra_args: Vec<String>,
}

impl PublisherOpts {
    /// `video` and/or `audio` from `src/assets` (e.g. `("vp8.ivf", "opus.ogg")`), looping
    /// until told to leave.
    pub fn assets(video: Option<&str>, audio: Option<&str>) -> Self {
        PublisherOpts { video: video.map(asset), audio: audio.map(asset), ..Default::default() }
    }

    pub fn vp8_opus() -> Self {
        Self::assets(Some("vp8.ivf"), Some("opus.ogg"))
    }

    pub fn loops(mut self, n: u32) -> Self {
        self.loops = n;
        self
    }

    pub fn red(mut self, on: bool) -> Self {
        self.red = on;
        self
    }
}

#[derive(Default)]
struct PubState {
    events: Vec<Value>,
    replies: VecDeque<Value>,
    /// Lines on stdout that are not JSON.
    other: Vec<String>,
    closed: bool,
}

struct PubShared {
    state: Mutex<PubState>,
    cv: Condvar,
}

/// The Go publisher (`tests/lkpub`) in a room. Events (JSON lines with `"event"`) are kept in
/// order; commands are answered by one reply each. Dropping it closes its stdin (it leaves the
/// room) and kills it if it is still there after 2 s; if the test process dies, the closed
/// stdin makes it leave and exit too.
pub struct Publisher {
    child: Child,
    stdin: Mutex<Option<ChildStdin>>,
    shared: Arc<PubShared>,
    log_path: PathBuf,
    pub room: String,
    pub identity: String,
}

/// How long [`Publisher::command`] waits for its reply.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

impl Publisher {
    /// Starts the publisher (does not wait for it to join: see [`Publisher::wait_started`]).
    pub fn spawn(server: &RealServer, room: &str, identity: &str, opts: PublisherOpts) -> Publisher {
        let bin = publisher_bin();
        let log_path = logs_dir().join(format!("{}-{}-pub-{identity}.log", test_tag(), server.port()));
        let log = File::create(&log_path).expect("create publisher log");
        let mut cmd = Command::new(bin);
        cmd.args(["--url", &server.ws_url()])
            .args(["--api-key", server.api_key()])
            .args(["--api-secret", server.api_secret()])
            .args(["--room", room])
            .args(["--identity", identity])
            .args(["--loops", &opts.loops.to_string()]);
        if let Some(v) = &opts.video {
            cmd.arg("--video").arg(v);
        }
        if let Some(a) = &opts.audio {
            cmd.arg("--audio").arg(a);
        }
        if opts.red {
            cmd.arg("--red");
        }
        cmd.args(&opts.extra_args);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the publisher");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let shared = Arc::new(PubShared { state: Mutex::new(PubState::default()), cv: Condvar::new() });
        let sh = shared.clone();
        std::thread::Builder::new()
            .name(format!("lkpub-{identity}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let mut st = sh.state.lock().unwrap();
                    match serde_json::from_str::<Value>(&line) {
                        Ok(v) if v.get("reply").is_some() => st.replies.push_back(v),
                        Ok(v) if v.get("event").is_some() => st.events.push(v),
                        _ => st.other.push(line),
                    }
                    sh.cv.notify_all();
                }
                sh.state.lock().unwrap().closed = true;
                sh.cv.notify_all();
            })
            .expect("spawn reader");
        Publisher {
            child,
            stdin: Mutex::new(stdin),
            shared,
            log_path,
            room: room.into(),
            identity: identity.into(),
        }
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn diag(&self) -> String {
        let st = self.shared.state.lock().unwrap();
        let last: Vec<String> = st.events.iter().rev().take(8).rev().map(|e| e.to_string()).collect();
        format!(
            "publisher {}: last events:\n  {}\nstderr tail ({}):\n{}",
            self.identity,
            last.join("\n  "),
            self.log_path.display(),
            file_tail(&self.log_path, 2000)
        )
    }

    fn send_line(&self, line: &str) {
        let mut stdin = self.stdin.lock().unwrap();
        let ok = stdin.as_mut().is_some_and(|s| writeln!(s, "{line}").and_then(|_| s.flush()).is_ok());
        if !ok {
            drop(stdin);
            panic!("cannot send {line:?}: the publisher's stdin is closed\n{}", self.diag());
        }
    }

    fn take_reply(&self, line: &str) -> Option<Result<Value, ()>> {
        let mut st = self.shared.state.lock().unwrap();
        if let Some(i) = st.replies.iter().position(|r| r["reply"] == line) {
            return st.replies.remove(i).map(Ok);
        }
        if st.closed {
            return Some(Err(()));
        }
        None
    }

    /// Sends one command (`mute audio`, `unpublish video`, `publish video`, `reconnect`,
    /// `status`, `leave`...) and returns its reply (`{"reply":..,"ok":bool,...}`). Blocks the
    /// thread (see [`Publisher::command_async`]); panics when no reply comes in 30 s.
    pub fn command(&self, line: &str) -> Value {
        self.send_line(line);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match self.take_reply(line) {
                Some(Ok(v)) => return v,
                Some(Err(())) => panic!("publisher exited before answering {line:?}\n{}", self.diag()),
                None => {}
            }
            if Instant::now() >= deadline {
                panic!("no reply to {line:?} in {COMMAND_TIMEOUT:?}\n{}", self.diag());
            }
            let st = self.shared.state.lock().unwrap();
            let _ = self.shared.cv.wait_timeout(st, Duration::from_millis(20)).unwrap();
        }
    }

    /// [`Publisher::command`] for async tests (polls; does not block the runtime).
    pub async fn command_async(&self, line: &str) -> Value {
        self.send_line(line);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            match self.take_reply(line) {
                Some(Ok(v)) => return v,
                Some(Err(())) => panic!("publisher exited before answering {line:?}\n{}", self.diag()),
                None => {}
            }
            if Instant::now() >= deadline {
                panic!("no reply to {line:?} in {COMMAND_TIMEOUT:?}\n{}", self.diag());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// All events so far, in order.
    pub fn events(&self) -> Vec<Value> {
        self.shared.state.lock().unwrap().events.clone()
    }

    /// Number of events so far (a cursor for [`Publisher::wait_event_since`]).
    pub fn event_count(&self) -> usize {
        self.shared.state.lock().unwrap().events.len()
    }

    fn find_event(&self, since: usize, pred: &impl Fn(&Value) -> bool) -> Option<Value> {
        let st = self.shared.state.lock().unwrap();
        st.events.iter().skip(since).find(|e| pred(e)).cloned()
    }

    /// The first event (from the start) that matches, waiting up to `timeout`; panics with
    /// the publisher's last events and stderr otherwise.
    pub fn wait_event(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.wait_event_since(0, pred, timeout)
    }

    /// The first matching event at index `since` or later.
    pub fn wait_event_since(&self, since: usize, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find_event(since, &pred) {
                return e;
            }
            let closed = self.shared.state.lock().unwrap().closed;
            if closed || Instant::now() >= deadline {
                if let Some(e) = self.find_event(since, &pred) {
                    return e;
                }
                panic!(
                    "no matching publisher event in {timeout:?}{}\n{}",
                    if closed { " (publisher exited)" } else { "" },
                    self.diag()
                );
            }
            let st = self.shared.state.lock().unwrap();
            let _ = self.shared.cv.wait_timeout(st, Duration::from_millis(20)).unwrap();
        }
    }

    /// [`Publisher::wait_event_since`] for async tests.
    pub async fn wait_event_async(
        &self,
        since: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.find_event(since, &pred) {
                return e;
            }
            let closed = self.shared.state.lock().unwrap().closed;
            if closed || Instant::now() >= deadline {
                panic!("no matching publisher event in {timeout:?}\n{}", self.diag());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the `started` event (joined, every track published and bound, the publisher
    /// PeerConnection connected; the media clock starts here). Returns it (`unix_ms`).
    pub fn wait_started(&self, timeout: Duration) -> Value {
        self.wait_event(|e| e["event"] == "started", timeout)
    }

    /// Async [`Publisher::wait_started`].
    pub async fn wait_started_async(&self, timeout: Duration) -> Value {
        self.wait_event_async(0, |e| e["event"] == "started", timeout).await
    }

    /// The current participant sid (last `joined`).
    pub fn participant_sid(&self) -> Option<String> {
        let st = self.shared.state.lock().unwrap();
        st.events
            .iter()
            .rev()
            .find(|e| e["event"] == "joined")
            .and_then(|e| e["participant_sid"].as_str())
            .map(Into::into)
    }

    /// The sid of the currently published track of `kind` ("audio"/"video"): the last
    /// `published` one unless an `unpublished` for it came later.
    pub fn track_sid(&self, kind: &str) -> Option<String> {
        let st = self.shared.state.lock().unwrap();
        let (i, e) = st
            .events
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| e["event"] == "published" && e["kind"] == kind)?;
        let sid = e["track_sid"].as_str()?.to_string();
        let gone =
            st.events[i..].iter().any(|e| e["event"] == "unpublished" && e["track_sid"] == sid.as_str());
        (!gone).then_some(sid)
    }

    /// Frames of `kind` written so far (the last `sent` event).
    pub fn sent(&self, kind: &str) -> u64 {
        let st = self.shared.state.lock().unwrap();
        st.events
            .iter()
            .rev()
            .find(|e| e["event"] == "sent" && e["kind"] == kind)
            .and_then(|e| e["frames"].as_u64())
            .unwrap_or(0)
    }

    /// Whether the process has exited.
    pub fn has_exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for the process to exit (after `leave` or the last loop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.has_exited() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL: the publisher vanishes without leaving (the server notices after its timeouts).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stdin.lock().unwrap().take(); // EOF: it leaves and exits
        if self.wait_exit(Duration::from_secs(2)).is_none() {
            self.kill();
        }
    }
}

/// The frames of an IVF file (VP8, VP9, AV1), exactly as the publisher sends them.
pub fn ivf_frames(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("read IVF");
    let s = livekit_recorder::media::source::ivf::read(&data).expect("parse IVF");
    s.frames.into_iter().map(|f| f.data).collect()
}

/// The Opus packets of an Ogg Opus file (headers excluded), as the publisher sends them (and
/// as the primary blocks of its RED payloads).
pub fn ogg_opus_packets(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).expect("read Ogg");
    let s = livekit_recorder::media::source::oggopus::read(&data).expect("parse Ogg Opus");
    s.frames.into_iter().map(|f| f.data).collect()
}

/// The access units of an H.264 Annex-B file as the publisher sends them: the file's bytes of
/// each unit minus its AUD NAL units (type 9), start codes as in the file. (pion then sends
/// SPS+PPS as one STAP-A and each other NAL unit alone or as FU-A.) Compare NAL units with
/// [`h264_nals`], which ignores start-code lengths.
pub fn h264_access_units(path: &Path) -> Vec<Vec<u8>> {
    use livekit_recorder::media::codec::h264;
    let data = std::fs::read(path).expect("read H.264");
    let aus = livekit_recorder::media::source::annexb::read(&data, 30).expect("parse H.264");
    aus.into_iter()
        .map(|au| {
            let units: Vec<(usize, &[u8])> = h264::nal_units(&au.data).collect();
            let mut out = Vec::with_capacity(au.data.len());
            for (i, &(offset, nal)) in units.iter().enumerate() {
                let end = units.get(i + 1).map_or(au.data.len(), |u| u.0);
                if h264::nal_type(nal) != Some(9) {
                    out.extend_from_slice(&au.data[offset..end]);
                }
            }
            out
        })
        .collect()
}

/// The NAL units of an Annex-B access unit, without start codes.
pub fn h264_nals(frame: &[u8]) -> Vec<Vec<u8>> {
    livekit_recorder::media::codec::h264::nal_units(frame).map(|(_, n)| n.to_vec()).collect()
}
