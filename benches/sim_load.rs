//! Load figures for the simulator: N synthetic VP8 + Opus participants (one room each), each
//! with one subscribing str0m bot, for 10 s; prints the simulator process's CPU per
//! participant (utime + stime from `/proc/<pid>/stat`) and its RSS.
//!
//! The simulator runs as a child process (`livekit-recorder sim`, built with the bench
//! profile) so the bots' own CPU is not counted. `SIM_LOAD_N=10,50` (default) picks the sizes;
//! with `CI` set, or when run by `cargo test` (no `--bench` argument): N = 2 for 2 s.

#[path = "../tests/support/mod.rs"]
mod support;
use support::sim_support;

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sim_support::*;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    num(11) + num(12)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kib.unwrap_or(0.0) / 1024.0
}

/// Kills the simulator child on drop, also when the bench panics.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "simulator did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run(n: usize, measure: Duration) {
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let child = Command::new(env!("CARGO_BIN_EXE_livekit-recorder"))
        .args(["sim", "--port", &port.to_string(), "--api-key", KEY, "--api-secret", SECRET])
        .args(["--media-ip", "127.0.0.1", "--advertise-ip", "127.0.0.1"])
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the simulator");
    let child = Child(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr).await;
    for i in 0..n {
        add_participant(addr, &format!("load-{i}"), "pub", Some("vp8"), true).await;
    }
    let ready = Arc::new(AtomicUsize::new(0));
    let flowing = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(AtomicUsize::new(0));
    let mut bots = Vec::new();
    for i in 0..n {
        let (ready, flowing, url) = (ready.clone(), flowing.clone(), format!("ws://{addr}"));
        let received = received.clone();
        bots.push(tokio::spawn(async move {
            let mut bot = Bot::join(&url, &recorder_token(&format!("load-{i}"), "rec"), true).await;
            if bot.run_until(Duration::from_secs(30), |b| b.frames.len() > 10).await {
                flowing.fetch_add(1, Ordering::SeqCst);
            }
            ready.fetch_add(1, Ordering::SeqCst);
            loop {
                let before = bot.frames.len();
                bot.run_until(Duration::from_millis(500), |_| false).await;
                received.fetch_add(bot.frames.len() - before, Ordering::SeqCst);
                bot.frames.clear();
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while ready.load(Ordering::SeqCst) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (t0, c0, r0) = (Instant::now(), cpu_ticks(child.0.id()), received.load(Ordering::SeqCst));
    tokio::time::sleep(measure).await;
    let (secs, ticks) = (t0.elapsed().as_secs_f64(), cpu_ticks(child.0.id()) - c0);
    let fps = (received.load(Ordering::SeqCst) - r0) as f64 / secs / n as f64;
    let rss = rss_mib(child.0.id());
    bots.iter().for_each(|b| b.abort());
    drop(child);
    let cpu = ticks as f64 / 100.0 / secs; // CLK_TCK = 100 on Linux
    println!(
        "sim_load: N={n:3} participants (VP8+Opus, 1 subscriber each): simulator CPU {:.0} mCPU total, {:.1} mCPU/participant, RSS {rss:.0} MiB, media flowing to {} of {n} bots (ready {}), {fps:.1} frames/s received per bot (sent: 30 video + 50 audio)",
        cpu * 1000.0,
        cpu * 1000.0 / n as f64,
        flowing.load(Ordering::SeqCst),
        ready.load(Ordering::SeqCst),
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this once, small.
    let ci = std::env::var_os("CI").is_some() || !std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("SIM_LOAD_N") {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) if ci => vec![2],
        Err(_) => vec![10, 50],
    };
    let measure = Duration::from_secs(if ci { 2 } else { 10 });
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for n in sizes {
        rt.block_on(run(n, measure));
    }
}
