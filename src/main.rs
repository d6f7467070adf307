//! The `livekit-recorder` binary: `serve`, `demo`, `sim`, `healthcheck`, and the client
//! commands `start`, `stop`, `ls`, `get`, `watch` ([`livekit_recorder::client`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use livekit_recorder::client::{self, ClientCommand};
use livekit_recorder::daemon::{Daemon, DaemonConfig};
use livekit_recorder::{config::Config, demo, http, sim, telemetry};

#[derive(Parser)]
#[command(
    version,
    about = "Records LiveKit participants (audio + video, no transcoding) into crash-tolerant files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (settings from the environment, see README).
    Serve,
    /// Start the simulator with a synthetic VP8 + Opus participant and the recorder against
    /// it, record through the REST API, print the file and the recording JSON.
    Demo {
        /// Run the older offline, media-only demo (no WebRTC).
        #[arg(long)]
        offline: bool,
        /// How long to record (humantime: 10s, 1m30s).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Output directory.
        #[arg(long, default_value = livekit_recorder::config::DEFAULT_RECORDINGS_DIR)]
        out: PathBuf,
    },
    /// Run the LiveKit-compatible simulator until Ctrl-C (see README, "Simulator").
    Sim(SimArgs),
    /// Exit 0 when the daemon on APP_PORT answers GET /health-check (for Docker HEALTHCHECK).
    Healthcheck,
    /// Start recording a participant on a running daemon (POST /recordings/start).
    Start(client::StartArgs),
    /// Stop a recording (POST /recordings/stop); prints it once finalized.
    Stop(client::StopArgs),
    /// List the daemon's recordings (GET /recordings).
    Ls(client::LsArgs),
    /// Show one recording (GET /recordings/{id}).
    Get(client::GetArgs),
    /// Show the live recordings, redrawn every --interval until Ctrl-C.
    Watch(client::WatchArgs),
}

#[derive(clap::Args)]
struct SimArgs {
    /// HTTP/WebSocket port.
    #[arg(long, default_value_t = 7880)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// API key.
    #[arg(long, env = "LIVEKIT_API_KEY")]
    api_key: String,
    /// API secret.
    #[arg(long, env = "LIVEKIT_API_SECRET", hide_env_values = true)]
    api_secret: String,
    /// Webhook receiver (repeatable).
    #[arg(long = "webhook-url")]
    webhook_urls: Vec<String>,
    /// Address the media UDP sockets bind to.
    #[arg(long, default_value = "0.0.0.0")]
    media_ip: std::net::IpAddr,
    /// Address advertised as an ICE host candidate (repeatable; default: loopback and the
    /// host's addresses).
    #[arg(long = "advertise-ip")]
    advertise_ips: Vec<std::net::IpAddr>,
    /// Publish VP8 + Opus from DIR/video.ivf and DIR/audio.ogg instead of the embedded
    /// 320x240 loops.
    #[arg(long, value_name = "DIR")]
    media_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // the client commands need none of the daemon's settings (nor its logging)
    let client_cmd = match cli.command {
        Command::Start(a) => ClientCommand::Start(a),
        Command::Stop(a) => ClientCommand::Stop(a),
        Command::Ls(a) => ClientCommand::Ls(a),
        Command::Get(a) => ClientCommand::Get(a),
        Command::Watch(a) => ClientCommand::Watch(a),
        command => return run_daemon_command(command),
    };
    run_client(client_cmd)
}

fn run_client(cmd: ClientCommand) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("livekit-recorder: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(client::run(cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livekit-recorder: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_daemon_command(command: Command) -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livekit-recorder: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_level, config.log_format);
    match command {
        Command::Serve => serve(&config),
        Command::Demo { offline: true, duration, out } => run_demo(duration, out),
        Command::Demo { offline: false, duration, out } => run_live_demo(duration, out),
        Command::Sim(args) => run_sim(args),
        Command::Healthcheck => {
            match http::probe(config.bind_address, config.app_port, Duration::from_secs(3)) {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            }
        }
        Command::Start(_) | Command::Stop(_) | Command::Ls(_) | Command::Get(_) | Command::Watch(_) => {
            unreachable!("client commands are run by run_client")
        }
    }
}

fn serve(config: &Config) -> ExitCode {
    let Some(cfg) = daemon_config(config) else { return ExitCode::from(2) };
    let drain_timeout = config.drain_timeout;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = std::net::SocketAddr::new(config.bind_address, config.app_port);
    if config.api_token.is_none() && !config.bind_address.is_loopback() {
        tracing::warn!(
            %addr,
            "API_TOKEN is not set: anyone who can reach this address can start, stop and list recordings \
             (the webhook route is always signature-checked); set API_TOKEN or BIND_ADDRESS=127.0.0.1"
        );
    }
    rt.block_on(async move {
        let daemon = match Daemon::start(cfg, addr).await {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                eprintln!("livekit-recorder: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                tracing::error!(%addr, "failed to start: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        let timeout = drain_timeout;
        tracing::info!(?timeout, "stopping: new starts are refused, active recordings are finalized");
        tokio::select! {
            drained = daemon.drain(timeout) => {
                if drained {
                    tracing::info!("drained");
                    ExitCode::SUCCESS
                } else {
                    tracing::warn!("drain timeout: what is left is recovered at the next start");
                    ExitCode::FAILURE
                }
            }
            _ = wait_for_signal() => {
                tracing::warn!("second signal: exiting now; the files stay readable up to their last flush");
                ExitCode::from(130)
            }
        }
    })
}

/// The daemon settings, or a message naming the missing variable.
fn daemon_config(config: &Config) -> Option<DaemonConfig> {
    let missing = |name: &str| eprintln!("livekit-recorder: {name} must be set for `serve`");
    let (Some(url), Some(key), Some(secret)) = (&config.livekit_url, &config.api_key, &config.api_secret)
    else {
        for (name, set) in [
            ("LIVEKIT_URL", config.livekit_url.is_some()),
            ("LIVEKIT_API_KEY", config.api_key.is_some()),
            ("LIVEKIT_API_SECRET", config.api_secret.is_some()),
        ] {
            if !set {
                missing(name);
            }
        }
        return None;
    };
    Some(DaemonConfig {
        livekit: livekit_recorder::config::LiveKitSettings {
            url: url.clone(),
            api_key: key.clone(),
            api_secret: secret.0.clone(),
        },
        api_token: config.api_token.as_ref().map(|t| t.0.clone()),
        recording: config.recording.clone(),
        s3: config.s3.clone(),
        webhook_urls: config.webhook_urls.iter().map(|u| u.0.clone()).collect(),
        cluster: config.cluster.clone(),
    })
}

/// SIGTERM or SIGINT.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn run_live_demo(duration: Duration, dir: PathBuf) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo failed: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(demo::live::run(duration, dir)) {
        Ok(report) => {
            println!("recorded {}", report.path.display());
            println!("{}", serde_json::to_string_pretty(&report.recording).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_demo(duration: Duration, dir: PathBuf) -> ExitCode {
    let start_unix_ns = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    match demo::run(&demo::DemoOptions { duration, dir, start_unix_ns }) {
        Ok(report) => {
            println!("recorded {}", report.path.display());
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_sim(args: SimArgs) -> ExitCode {
    let mut cfg = sim::SimConfig::new(&args.api_key, &args.api_secret);
    cfg.http_addr = std::net::SocketAddr::new(args.bind, args.port);
    cfg.webhook_urls = args.webhook_urls;
    cfg.media_ip = args.media_ip;
    cfg.advertise_ips = args.advertise_ips;
    cfg.media_dir = args.media_dir;
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let handle = match sim::start(cfg).await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(port = args.port, "failed to start the simulator: {e}");
                eprintln!("livekit-recorder sim: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("simulator listening on {}", handle.ws_url());
        let _ = tokio::signal::ctrl_c().await;
        handle.stop().await;
        ExitCode::SUCCESS
    })
}
