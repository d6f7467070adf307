//! The `livekit-recorder` binary: `serve`, `demo`, `healthcheck`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use livekit_recorder::{config::Config, demo, http, telemetry};

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
    /// Record a synthetic VP8 + Opus publisher into a WebM file and print where it is.
    Demo {
        /// How long to record (humantime: 10s, 1m30s).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Output directory.
        #[arg(long, default_value = livekit_recorder::config::DEFAULT_RECORDINGS_DIR)]
        out: PathBuf,
    },
    /// Exit 0 when the daemon on APP_PORT answers GET /health-check (for Docker HEALTHCHECK).
    Healthcheck,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("livekit-recorder: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log_level, config.log_format);
    match cli.command {
        Command::Serve => serve(&config),
        Command::Demo { duration, out } => run_demo(duration, out),
        Command::Healthcheck => match http::probe(config.app_port, Duration::from_secs(3)) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        },
    }
}

fn serve(config: &Config) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("failed to start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(http::serve(config.app_port)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(port = config.app_port, "failed to serve HTTP: {e}");
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
