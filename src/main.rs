//! The `firedrill` command: parse the CLI, load the config, init tracing, build, run until
//! SIGINT/SIGTERM, drain with a deadline. Only this file exits the process.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{error::ErrorKind, CommandFactory, Parser, Subcommand};
use firedrill::{
    app::App,
    cli::{self, Asked},
    config::Config,
    metrics, telemetry,
};
use tracing::{error, info};

/// Exit code for a configuration error, or `drill` with no scenario and no terminal to ask
/// one on (EX_USAGE).
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
        /// How long shutdown may take before the process exits anyway (reverting active
        /// faults gets at least 60 s of it).
        #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
        shutdown_timeout: Duration,
    },
    /// Validate a config file (with environment overrides) and exit.
    CheckConfig {
        /// Config file (TOML).
        file: PathBuf,
    },
    /// Run a drill on the daemon, show its progress and print the report. Without a
    /// scenario, asks for one in a menu when stdin is a terminal. Exits 1 when data
    /// integrity FAILs, 2 when the drill does not finish (or the menu is quit), 64 without a
    /// scenario when stdin is not a terminal.
    Drill {
        /// taskmanager, jobmanager, kafka or comprehensive; absent: a menu asks.
        #[arg(value_parser = cli::parse_scenario)]
        scenario: Option<String>,
        /// How long the fault lasts: seconds (60) or e.g. 90s, 2m (the daemon's default when
        /// absent).
        #[arg(value_parser = cli::parse_duration)]
        fault_duration: Option<String>,
        /// Baseline length: seconds (20) or e.g. 20s.
        #[arg(long, value_parser = cli::parse_duration)]
        baseline: Option<String>,
        /// A fault target other than the scenario's default, e.g. taskmanager-2.
        #[arg(long)]
        target: Option<String>,
        /// A fault action other than the scenario's default: stop, kill, pause, disconnect.
        #[arg(long)]
        action: Option<String>,
        /// Free text naming this drill in comparisons.
        #[arg(long)]
        label: Option<String>,
        /// Report format printed at the end: md, json or html.
        #[arg(long, default_value = "md")]
        format: String,
        #[command(flatten)]
        api: Api,
    },
    /// Inject a fault now (reverted after its duration), or revert everything with --reset.
    Fault {
        /// kafka, jobmanager, taskmanager (any one), taskmanager-1, ...
        target: Option<String>,
        /// stop, kill, pause or disconnect (the target's default when absent).
        #[arg(long)]
        action: Option<String>,
        /// e.g. 30s.
        #[arg(long)]
        duration: Option<String>,
        /// Revert every active fault.
        #[arg(long)]
        reset: bool,
        #[command(flatten)]
        api: Api,
    },
    /// Print a drill's report.
    Report {
        /// Drill id.
        id: String,
        /// md, json or html.
        #[arg(long, default_value = "md")]
        format: String,
        #[command(flatten)]
        api: Api,
    },
    /// Compare report files (JSON): per metric both sides' values, the winner, the improvement,
    /// and a recommendation. `A.json B.json` compares two drills; `A1.json A2.json vs B1.json
    /// B2.json` compares the medians of several runs per side.
    Compare {
        /// The reports: two files, or side A's files, the word `vs`, side B's files.
        #[arg(required = true, num_args = 2..)]
        files: Vec<PathBuf>,
        /// md or json.
        #[arg(long, default_value = "md")]
        format: String,
    },
}

/// Where the daemon's admin API is.
#[derive(clap::Args)]
struct Api {
    /// The daemon's base URL.
    #[arg(long, env = "FIREDRILL_URL", default_value = "http://127.0.0.1:9400")]
    url: String,
    /// Bearer token of the admin API (http.token).
    #[arg(long, env = "FIREDRILL_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl Api {
    fn client(&self) -> cli::Client {
        cli::Client::new(&self.url, self.token.clone())
    }
}

/// `drill` without a scenario and without a terminal: clap's usage error, exit 64 rather than
/// waiting on a stdin nobody types into.
fn drill_usage_error() -> ExitCode {
    usage_error(
        "drill",
        ErrorKind::MissingRequiredArgument,
        "name a scenario (taskmanager, jobmanager, kafka or comprehensive); \
         without one the menu needs stdin to be a terminal",
    )
}

/// A usage error of `subcommand` that clap's parsing cannot see, printed as clap's own.
fn usage_error(subcommand: &str, kind: ErrorKind, message: &str) -> ExitCode {
    let mut command = Cli::command();
    command.build();
    let error = command
        .find_subcommand_mut(subcommand)
        .expect("a subcommand of the CLI")
        .error(kind, message);
    let _ = error.print();
    ExitCode::from(EXIT_CONFIG)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(future)
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
        Command::Drill {
            scenario,
            fault_duration,
            baseline,
            target,
            action,
            label,
            format,
            api,
        } => {
            let (scenario, fault_duration) = match scenario {
                Some(scenario) => (scenario, fault_duration),
                None => match cli::ask_drill() {
                    Ok(Asked::Drill(choice)) => {
                        (choice.scenario.as_str().to_string(), choice.fault_duration)
                    }
                    Ok(Asked::Quit) => {
                        eprintln!("no drill started");
                        return ExitCode::from(cli::EXIT_ERROR);
                    }
                    Ok(Asked::NoTerminal) => return drill_usage_error(),
                    Err(e) => {
                        eprintln!("error: reading the menu's answers: {e}");
                        return ExitCode::from(cli::EXIT_ERROR);
                    }
                },
            };
            let body = serde_json::json!({
                "scenario": scenario,
                "fault_duration": fault_duration,
                "baseline": baseline,
                "target": target,
                "action": action,
                "label": label,
            });
            let body = body.as_object().expect("an object").clone();
            block_on(cli::drill(&api.client(), body, &format))
        }
        Command::Fault {
            target,
            action,
            duration,
            reset,
            api,
        } => block_on(cli::fault(
            &api.client(),
            target.as_deref(),
            action.as_deref(),
            duration.as_deref(),
            reset,
        )),
        Command::Report { id, format, api } => block_on(cli::report(&api.client(), &id, &format)),
        Command::Compare { files, format } => match cli::sides(&files) {
            Ok((a, b)) => cli::compare(a, b, &format),
            Err(e) => usage_error("compare", ErrorKind::WrongNumberOfValues, &e),
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
