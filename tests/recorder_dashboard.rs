//! The web dashboard (`GET /`, `src/http/dashboard/`) and the part-file routes its player uses
//! (`src/http/files.rs`), against the daemon and the in-process simulator with `API_TOKEN` set.
//!
//! - `part_files_are_served_by_id_with_ranges_and_signed_links`: the file route over plain HTTP
//!   (range requests, content type, the token or a signed link, every refusal).
//! - `dashboard_records_and_plays_in_chromium`: Debian's Chromium (`/usr/bin/chromium`, driven by
//!   playwright-core through `tests/browser/dashboard.mjs`) opens the dashboard, enters the
//!   token, starts a recording of a simulator participant, sees it `active` with its bytes
//!   growing, stops it, plays the file in the page's player, and saves screenshots to
//!   `target/tmp/dashboard-live.png` and `target/tmp/dashboard.png`. No request URL the page
//!   made holds the token. Chromium or the npm modules missing is a failure (install them with
//!   `sh tests/browser/install.sh`; `.ci/test` does).

mod support;
use support::{common, recorder_support, sim_support};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use recorder_support::{api, start_daemon, wait_for};
use reqwest::Method;
use serde_json::{json, Value};
use sim_support::{add_participant, start_sim};

const TOKEN: &str = "dashboard-test-token-5f0c2e";
const WAIT: Duration = Duration::from_secs(20);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().expect("client")
}

/// `GET path` with these headers: (status, headers, body bytes).
async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = client().get(format!("http://{addr}{path}")).timeout(WAIT);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, h, resp.bytes().await.expect("body").to_vec())
}

fn error_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("not a JSON error body: {}", String::from_utf8_lossy(body)))
}

/// Starts a recording of `participant` by REST and waits until it has written bytes.
async fn record(addr: SocketAddr, room: &str, participant: &str) -> String {
    let body = json!({ "room": room, "participant": participant }).to_string();
    let (status, rec) = api(addr, Method::POST, "/recordings/start", Some(&body), Some(TOKEN)).await;
    assert_eq!(status, 201, "{rec}");
    let id = rec["id"].as_str().expect("id").to_owned();
    wait_for(addr, &id, Some(TOKEN), WAIT, |r| r["status"] == "active" && r["bytes"].as_u64() > Some(0))
        .await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn part_files_are_served_by_id_with_ranges_and_signed_links() {
    let sim = start_sim(vec![]).await;
    add_participant(sim.http_addr(), "dash", "alice", Some("vp8"), true).await;
    add_participant(sim.http_addr(), "dash", "bob", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), Some(TOKEN)).await;
    let addr = daemon.addr();
    let auth = format!("Bearer {TOKEN}");
    let bearer = [("authorization", auth.as_str())];

    // the page and its assets are open (they hold no data), with a strict CSP
    for (path, ct) in
        [("/", "text/html"), ("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")]
    {
        let (status, h, body) = get(addr, path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(h["content-type"].to_str().unwrap().starts_with(ct), "{path}: {h:?}");
        assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"), "{h:?}");
        assert!(!body.is_empty());
    }

    let id = record(addr, "dash", "alice").await;
    let base = format!("/recordings/{id}/parts/1/files/0");
    // a part still being written is refused (409), with the token and without a link
    let (status, _, body) = get(addr, &format!("{base}/link"), &bearer).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(error_of(&body).contains("still being written"));

    let (status, done) =
        api(addr, Method::POST, "/recordings/stop", Some(&json!({ "id": id }).to_string()), Some(TOKEN))
            .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["status"], "complete", "{done}");
    let file = PathBuf::from(done["parts"][0]["files"][0].as_str().expect("a part file"));
    let on_disk = std::fs::read(&file).expect("read the part file");
    assert!(on_disk.len() > 1000, "{} bytes", on_disk.len());

    // no token, a wrong one: 401
    for headers in [&[][..], &[("authorization", "Bearer nope")][..]] {
        let (status, _, body) = get(addr, &base, headers).await;
        assert_eq!(status, 401, "{headers:?}: {}", String::from_utf8_lossy(&body));
        let (status, _, _) = get(addr, &format!("{base}/link"), headers).await;
        assert_eq!(status, 401, "{headers:?}");
    }

    // with the token: the whole file, and a range of it (206, Content-Range), as video/webm
    let (status, h, body) = get(addr, &base, &bearer).await;
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "video/webm");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(body, on_disk);
    let (status, h, body) = get(addr, &base, &[bearer[0], ("range", "bytes=100-299")]).await;
    assert_eq!(status, 206);
    assert_eq!(h["content-range"].to_str().unwrap(), format!("bytes 100-299/{}", on_disk.len()));
    assert_eq!(body, on_disk[100..300]);
    let (status, h, body) = get(addr, &base, &[bearer[0], ("range", "bytes=-50")]).await;
    assert_eq!((status, body.as_slice()), (206, &on_disk[on_disk.len() - 50..]), "{h:?}");
    let past = format!("bytes={}-", on_disk.len() + 10);
    let (status, _, body) = get(addr, &base, &[bearer[0], ("range", past.as_str())]).await;
    assert_eq!(status, 416, "{}", String::from_utf8_lossy(&body));
    error_of(&body);

    // a signed link: works without the token, for this file only, and holds no token
    let (status, _, body) = get(addr, &format!("{base}/link"), &bearer).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let link: Value = serde_json::from_slice(&body).expect("json");
    let url = link["url"].as_str().expect("url");
    assert!(url.starts_with(&format!("{base}?exp=")) && url.contains("&sig="), "{link}");
    assert!(!url.contains(TOKEN), "{url}");
    assert_eq!(link["content_type"], "video/webm");
    let (status, _, body) = get(addr, url, &[]).await;
    assert_eq!((status, body.len()), (200, on_disk.len()));
    let (status, _, body) = get(addr, url, &[("range", "bytes=0-9")]).await;
    assert_eq!((status, body.as_slice()), (206, &on_disk[..10]));
    let query = url.split_once('?').expect("query").1;
    let (exp, sig) = query.split_once("&sig=").expect("sig");
    let exp: u64 = exp.trim_start_matches("exp=").parse().expect("exp");
    let tampered = [
        format!("{base}?exp={}&sig={sig}", exp + 3600), // a later expiry
        format!("/recordings/{id}/parts/1/files/1?{query}"), // another file
        format!("/recordings/{id}/parts/2/files/0?{query}"), // another part
        format!("{base}?exp={exp}&sig=AAAA{}", &sig[4..]), // another signature
        format!("{base}?exp={exp}"),                    // half a link
        format!("{base}?sig={sig}"),
    ];
    for u in &tampered {
        let (status, _, body) = get(addr, u, &[]).await;
        assert_eq!(status, 401, "{u}: {}", String::from_utf8_lossy(&body));
    }
    // a token that is wrong is not rescued by a valid link
    let (status, _, _) = get(addr, url, &[("authorization", "Bearer nope")]).await;
    assert_eq!(status, 401);

    // unknown recording, part or file: 404; not a number: 400; unknown parameter: 400
    for (path, want) in [
        ("/recordings/RC_000000000000/parts/1/files/0".to_owned(), 404),
        (format!("/recordings/{id}/parts/9/files/0"), 404),
        (format!("/recordings/{id}/parts/1/files/5"), 404),
        (format!("/recordings/{id}/parts/0/files/0"), 400),
        (format!("/recordings/{id}/parts/x/files/0"), 400),
        (format!("/recordings/{id}/parts/1/files/-1"), 400),
        (format!("{base}?path=/etc/passwd"), 400),
    ] {
        let (status, _, body) = get(addr, &path, &bearer).await;
        assert_eq!(status, want, "{path}: {}", String::from_utf8_lossy(&body));
        error_of(&body);
    }
    // a file that left the disk (as after an upload without S3_KEEP_LOCAL): 404, saying so
    std::fs::remove_file(&file).expect("remove the part file");
    let (status, _, body) = get(addr, &base, &bearer).await;
    assert_eq!(status, 404);
    assert!(error_of(&body).contains("no longer on the local disk"), "{}", String::from_utf8_lossy(&body));

    // another recording's link does not open this one
    let other = record(addr, "dash", "bob").await;
    api(addr, Method::POST, "/recordings/stop", Some(&json!({ "id": other }).to_string()), Some(TOKEN)).await;
    let (status, _, _) = get(addr, &format!("/recordings/{other}/parts/1/files/0?{query}"), &[]).await;
    assert_eq!(status, 401);
    daemon.shutdown().await;
}

/// The driver's process group, killed when the test ends (also when it fails).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // `--`: procps-ng's kill takes `-9 -PGID` for something else
            let pgid = format!("-{}", self.0.id());
            let _ = Command::new("kill").args(["-s", "KILL", "--", &pgid]).stderr(Stdio::null()).status();
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs `tests/browser/dashboard.mjs` against the dashboard at `url` and returns what it saw.
async fn drive_dashboard(url: &str, room: &str, participant: &str, out: &Path) -> Value {
    use std::os::unix::process::CommandExt;
    let modules = common::node_modules(); // panics (with the install command) when missing
    let cfg = json!({
        "url": url, "token": TOKEN, "room": room, "participant": participant,
        "chromium": common::CHROMIUM,
        "screenshot_live": out.join("dashboard-live.png"),
        "screenshot": out.join("dashboard.png"),
    });
    let stdout_path = out.join("dashboard-driver.json");
    let log_path = out.join("dashboard-driver.log");
    let child = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs"))
        .arg(&modules)
        .arg(cfg.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("driver stdout"))
        .stderr(std::fs::File::create(&log_path).expect("driver log"))
        .process_group(0) // the driver and its Chromium: killed together
        .spawn()
        .expect("start node (the browser tests need Node.js >= 20)");
    let mut driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = driver.0.try_wait().expect("wait for the driver") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard driver did not finish in 180 s; log {}",
            log_path.display()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let text = std::fs::read_to_string(&stdout_path).expect("driver output");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let seen: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {text}\nlog:\n{log}"));
    assert!(
        status.success() && seen.get("error").is_none(),
        "the dashboard driver failed ({status}): {}\nsteps: {}\nlog:\n{log}",
        seen["error"],
        seen["steps"]
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_records_and_plays_in_chromium() {
    let sim = start_sim(vec![]).await;
    add_participant(sim.http_addr(), "dashboard", "alice", Some("vp8"), true).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = start_daemon(&sim, dir.path(), Some(TOKEN)).await;
    let addr = daemon.addr();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let seen = drive_dashboard(&format!("http://{addr}"), "dashboard", "alice", out).await;
    let step = |name: &str| -> Value {
        seen["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name:?}: {}", seen["steps"]))
    };

    // the page asked for the token before showing anything
    assert_eq!(step("token asked")["main_hidden"], true);
    assert_eq!(step("token accepted")["token_form_hidden"], true);
    // the recording the page started: active, with its bytes growing in the page
    let id = step("started")["id"].as_str().expect("id").to_owned();
    let bytes: Vec<u64> = step("bytes read")["bytes"]
        .as_array()
        .expect("bytes")
        .iter()
        .map(|b| b.as_u64().expect("n"))
        .collect();
    // (the first samples may be 0: `active` comes with the first frame, bytes with the first flush)
    assert!(*bytes.last().expect("a sample") > 0, "{bytes:?}");
    assert!(bytes.windows(2).all(|w| w[1] >= w[0]), "bytes never shrink: {bytes:?}");
    assert!(bytes.windows(2).filter(|w| w[1] > w[0]).count() >= 2, "bytes grew twice: {bytes:?}");
    let bitrate = step("bytes read")["bitrate"].as_str().expect("bitrate").to_owned();
    let kbps: f64 = bitrate.trim_end_matches(" kbit/s").parse().expect("a bitrate");
    assert!(kbps > 10.0, "{bitrate}");
    assert!(step("bytes read")["tracks"].as_str().expect("tracks").contains("video vp8"), "{seen}");
    // stopped from the page: complete, as the API says too
    let (status, rec) = api(addr, Method::GET, &format!("/recordings/{id}"), None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    assert_eq!(rec["status"], "complete", "{rec}");
    assert!(rec["bytes"].as_u64().expect("bytes") >= *bytes.last().expect("a sample"), "{rec}");
    assert_eq!(step("in the history")["status"], "complete");
    // played in the page's player: data for the current frame, a finite duration, a picture
    let player = &seen["player"];
    assert!(player["ready_state"].as_u64().expect("readyState") >= 2, "{player}");
    let duration: f64 = player["duration"].as_str().expect("duration").parse().expect("a number");
    assert!(duration > 0.0 && duration.is_finite(), "{player}");
    assert!(player["width"].as_u64() > Some(0), "{player}");
    assert!(player["error"].is_null(), "{player}");

    // the token never went into a URL; the API calls carried it in the header; the player's
    // file was fetched with a signed link and answered with ranges (206)
    let requests = seen["requests"].as_array().expect("requests");
    let mut without_header = Vec::new();
    for r in requests {
        let url = r["url"].as_str().expect("url");
        assert!(!url.contains(TOKEN), "the token is in a URL: {url}");
        if url.contains("/recordings") && !url.contains("sig=") && r["authorization"] != true {
            without_header.push(url);
        }
    }
    // only the page's first probe, before it had a token (answered 401: it then asked for it)
    assert_eq!(without_header, [format!("http://{addr}/recordings?limit=1")], "API calls without the header");
    let file = format!("/recordings/{id}/parts/1/files/0?exp=");
    let media: Vec<&Value> = seen["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .filter(|r| r["url"].as_str().unwrap_or("").contains(&file))
        .collect();
    assert!(!media.is_empty(), "the player fetched the file: {}", seen["responses"]);
    assert!(media.iter().any(|r| r["status"] == 206), "a range answer: {media:?}");
    assert!(media.iter().all(|r| r["content_type"] == "video/webm"), "{media:?}");
    assert!(seen["page_errors"].as_array().expect("errors").is_empty(), "{}", seen["page_errors"]);
    assert_eq!(seen["storage"]["local"], json!([]), "the token is kept in sessionStorage only");

    for shot in ["dashboard-live.png", "dashboard.png"] {
        let png = std::fs::read(out.join(shot)).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{shot}: {} bytes", png.len());
    }
    println!(
        "screenshots: {}/dashboard-live.png, {}/dashboard.png; {}",
        out.display(),
        out.display(),
        seen["steps"]
    );
    daemon.shutdown().await;
}
