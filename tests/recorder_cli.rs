//! The operator's view: `livekit-recorder serve` as a child process (JSON logs, `API_TOKEN`)
//! against the in-process simulator, driven only through the built binary's client commands
//! (`start`, `ls`, `get`, `watch`, `stop`, tables and `--json`, with their exit codes for a
//! daemon that is down, a wrong token and an unknown id). Then what the recording left behind:
//! one `.json` manifest beside each part file describing the recording, and JSON log lines from
//! inside its participant recorder that carry its id, room and participant, with no token or
//! secret anywhere in the log.

mod support;
use support::sim_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sim_support::{start_sim, KEY, SECRET};

const TOKEN: &str = "cli-test-token-0123456789";
const BIN: &str = env!("CARGO_BIN_EXE_livekit-recorder");

/// The daemon child; killed on drop (a failing test never leaves it running).
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// What one client command did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `livekit-recorder <args>` with only `env` set (besides PATH), off the runtime's threads.
async fn cli(env: &[(&str, &str)], args: &[&str]) -> Run {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("run the client");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("client task")
}

fn json_of(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"))
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_drives_the_daemon_and_the_recording_explains_itself() {
    let sim = start_sim(vec![]).await;
    sim_support::add_participant(sim.http_addr(), "cli", "alice", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rec_dir = dir.path().join("recordings");
    let log_path = dir.path().join("serve.log");
    let port = free_port();
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIVEKIT_URL", sim.ws_url())
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", SECRET)
        .env("APP_PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("RECORDINGS_DIR", &rec_dir)
        .env("API_TOKEN", TOKEN)
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info,livekit_recorder=debug,livekit_signaling=debug,livekit_api=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn livekit-recorder serve");
    let mut serve = Serve(child);
    let url = format!("http://127.0.0.1:{port}");
    let with_token = [("LIVEKIT_RECORDER_URL", url.as_str()), ("LIVEKIT_RECORDER_TOKEN", TOKEN)];
    // API_TOKEN works as well (the daemon's own variable)
    let api_token = [("LIVEKIT_RECORDER_URL", url.as_str()), ("API_TOKEN", TOKEN)];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = cli(&api_token, &["ls"]).await;
        if r.code == 0 {
            assert!(r.stdout.starts_with("ID "), "an empty table still has its header: {r:?}");
            break;
        }
        assert_eq!(r.code, 3, "only 'unreachable' while the daemon starts: {r:?}");
        assert!(Instant::now() < deadline, "serve did not come up: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // errors: exit codes and messages
    let down = format!("http://127.0.0.1:{}", free_port());
    let r = cli(&[("LIVEKIT_RECORDER_TOKEN", TOKEN)], &["ls", "--url", &down]).await;
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot reach the daemon"), "{r:?}");
    let r = cli(&[("LIVEKIT_RECORDER_URL", url.as_str())], &["ls"]).await;
    assert_eq!(r.code, 4, "no token: {r:?}");
    assert!(r.stderr.contains("401"), "{r:?}");
    let r = cli(&[("LIVEKIT_RECORDER_URL", url.as_str()), ("API_TOKEN", "wrong")], &["get", "RC_x"]).await;
    assert_eq!(r.code, 4, "wrong token: {r:?}");
    let r = cli(&with_token, &["get", "RC_nope"]).await;
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("404"), "{r:?}");
    let r = cli(&with_token, &["stop", "RC_nope"]).await;
    assert_eq!(r.code, 5, "{r:?}");

    // start (JSON), start again (the same recording, table-free details)
    let rec =
        json_of(&cli(&with_token, &["start", "--room", "cli", "--participant", "alice", "--json"]).await);
    let id = rec["id"].as_str().expect("id").to_owned();
    assert_eq!((rec["room"].as_str(), rec["participant"].as_str()), (Some("cli"), Some("alice")));
    let r = cli(&with_token, &["start", "--room", "cli", "--participant", "alice"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.lines().any(|l| l.starts_with("id") && l.ends_with(&id)), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let rec = json_of(&cli(&with_token, &["get", &id, "--json"]).await);
        if rec["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "not active: {rec}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // ls: table and JSON
    let r = cli(&with_token, &["ls"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "header + one recording: {r:?}");
    for col in ["ID", "ROOM", "PARTICIPANT", "STATUS", "DURATION", "SIZE"] {
        assert!(lines[0].contains(col), "{r:?}");
    }
    assert!(lines[1].starts_with(&id) && lines[1].contains("alice") && lines[1].contains("active"), "{r:?}");
    let status_col = lines[0].find("STATUS").expect("STATUS");
    assert_eq!(lines[1].find("active"), Some(status_col), "columns line up: {r:?}");
    let list = json_of(&cli(&with_token, &["ls", "--json", "--room", "cli"]).await);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"].as_str(), Some(id.as_str()));
    let none = json_of(&cli(&with_token, &["ls", "--json", "--status", "failed"]).await);
    assert_eq!(none.as_array().map(Vec::len), Some(0), "{none}");

    // get: human details
    let r = cli(&with_token, &["get", &id]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("participant     alice") && r.stdout.contains("status          active"),
        "{r:?}"
    );
    assert!(r.stdout.contains("video vp8") && r.stdout.contains("audio opus"), "{r:?}");
    assert!(r.stdout.contains("PART") && r.stdout.contains("FILES"), "the parts table: {r:?}");

    // watch: one redraw, as a table and as JSON
    let t0 = Instant::now();
    let r = cli(&with_token, &["watch", "--count", "1"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "--count 1 does not wait for the next redraw");
    assert!(r.stdout.contains("1 live") && r.stdout.contains(&id), "{r:?}");
    assert!(!r.stdout.contains('\x1b'), "no screen control codes when stdout is not a terminal: {r:?}");
    let r = cli(&with_token, &["watch", "--once", "--json", "--interval", "1s"]).await;
    let frames: Vec<&str> = r.stdout.lines().collect();
    assert_eq!((r.code, frames.len()), (0, 1), "{r:?}");
    let live: Value = serde_json::from_str(frames[0]).expect("json");
    assert_eq!(live[0]["id"].as_str(), Some(id.as_str()), "{live}");

    // stop: the finalized recording
    let done = json_of(&cli(&with_token, &["stop", &id, "--json"]).await);
    assert_eq!(done["status"], "complete", "{done}");
    let r = cli(&with_token, &["watch", "--once"]).await;
    assert!(r.code == 0 && r.stdout.contains("0 live") && !r.stdout.contains(&id), "{r:?}");
    let r = cli(&with_token, &["stop", "--room", "cli", "--participant", "alice"]).await;
    assert_eq!(r.code, 5, "nothing live to stop any more: {r:?}");

    // manifests: one beside each part file, the recording as it ended
    let parts = done["parts"].as_array().expect("parts");
    let part_files: Vec<PathBuf> = parts
        .iter()
        .flat_map(|p| {
            p["files"].as_array().expect("files").iter().map(|f| PathBuf::from(f.as_str().expect("path")))
        })
        .collect();
    assert!(!part_files.is_empty(), "{done}");
    let on_disk = files_under(&rec_dir);
    let manifests: Vec<&PathBuf> =
        on_disk.iter().filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    assert_eq!(manifests.len(), part_files.len(), "one manifest per part file: {on_disk:?}");
    for f in &part_files {
        let path = PathBuf::from(format!("{}.json", f.display()));
        let m: Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
                .expect("manifest is JSON");
        assert_eq!(m["id"], done["id"]);
        assert_eq!((m["room"].as_str(), m["participant"].as_str()), (Some("cli"), Some("alice")));
        assert_eq!(m["parts"], done["parts"], "the manifest lists the parts as GET does");
        assert_eq!(m["tracks"], done["tracks"]);
        assert_eq!(m["status"], "complete", "rewritten when the recording ended: {m}");
    }
    assert!(
        on_disk.iter().all(|p| !p.to_string_lossy().ends_with(".tmp")),
        "no temporary manifest left: {on_disk:?}"
    );

    // logs: the participant recorder's lines carry the recording's span; no secret anywhere
    let ok =
        Command::new("kill").args(["-TERM", &serve.0.id().to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill -TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while serve.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "serve did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log_path).expect("log");
    let lines: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(lines.len() > 5 && lines.len() == text.lines().count(), "every log line is JSON");
    let in_span = |l: &Value| {
        l["span"]["name"] == "recording"
            && l["span"]["recording_id"].as_str() == Some(id.as_str())
            && l["span"]["room"] == "cli"
            && l["span"]["participant"] == "alice"
    };
    let from_participant: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"].as_str().is_some_and(|t| t.starts_with("livekit_recorder::actors::participant"))
        })
        .collect();
    assert!(!from_participant.is_empty(), "the participant recorder logged: {text}");
    assert!(
        from_participant.iter().all(|l| in_span(l)),
        "every participant recorder line carries the recording span: {from_participant:?}"
    );
    eprintln!(
        "measured: {} log lines, {} in the recording's span",
        lines.len(),
        lines.iter().filter(|l| in_span(l)).count()
    );
    eprintln!("a participant recorder line: {}", from_participant[0]);
    for secret in [TOKEN, SECRET, "eyJ"] {
        assert!(!text.contains(secret), "the log holds a secret ({secret}): {text}");
    }
    sim.stop().await;
}
