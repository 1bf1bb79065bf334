//! The `firedrill` command: parse the CLI, load the config, init tracing, build, run until
//! SIGINT/SIGTERM, drain with a deadline. Only this file exits the process.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use firedrill::{app::App, config::Config, metrics, telemetry};
use tracing::{error, info};

/// Exit code for a configuration error (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    version,
    about = "Disaster-recovery drills on a streaming pipeline, measured"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: generate orders, monitor, audit, serve /metrics and the admin API.
    Serve {
        /// Config file (TOML); FIREDRILL_<SECTION>__<KEY> variables override it.
        #[arg(long, short)]
        config: PathBuf,
        /// How long shutdown may take before the process exits anyway.
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        shutdown_timeout: Duration,
    },
    /// Validate a config file (with environment overrides) and exit.
    CheckConfig {
        /// Config file (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Serve {
            config,
            shutdown_timeout,
        } => {
            let config = match Config::load(&config) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            if let Err(e) = telemetry::init(&config.log) {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            match runtime.block_on(serve(config, shutdown_timeout)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config, shutdown_timeout: Duration) -> anyhow::Result<()> {
    let registry = metrics::registry();
    let app = App::build(&config, &registry).await?;
    let running = app.spawn();
    // Scripts and tests read this line to find the port when listening on port 0.
    println!("firedrill listening on http://{}", running.http_addr);
    shutdown_signal().await?;
    info!("shutting down");
    let late = running.shutdown(shutdown_timeout).await;
    if !late.is_empty() {
        anyhow::bail!(
            "shutdown deadline passed; still running: {}",
            late.join(", ")
        );
    }
    Ok(())
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = term.recv() => Ok(()),
    }
}
