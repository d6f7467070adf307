//! The daemon as users run it: `livekit-recorder serve` as a child process configured by
//! environment variables (against the in-process simulator), killed when dropped. Shared by
//! `recorder_process` and `recorder_cluster`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::sim_support::{KEY, SECRET};

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The daemon child; killed on drop (a failing test never leaves it running).
pub struct Serve {
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `livekit-recorder serve` against `sim` on a free loopback port with `env` on top of the
/// basic settings; returns once it answers `/health-check`.
pub async fn serve(sim: &livekit_recorder::sim::SimHandle, dir: &Path, env: &[(&str, &str)]) -> Serve {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_livekit-recorder"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LIVEKIT_URL", sim.ws_url())
        .env("LIVEKIT_API_KEY", KEY)
        .env("LIVEKIT_API_SECRET", SECRET)
        .env("APP_PORT", port.to_string())
        .env("RECORDINGS_DIR", dir)
        .env("LOG_LEVEL", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn livekit-recorder serve");
    let s = Serve { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while api(s.addr, Method::GET, "/health-check", None).await.0 != 200 {
        assert!(Instant::now() < deadline, "serve did not answer /health-check");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s
}

pub use super::recorder_support::{api_or_down as api, wait_rec};

/// Sends `sig` (`-TERM`, `-9`, ...) to the child.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} failed");
}

/// Waits for the child's exit code.
pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "the daemon did not exit within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
