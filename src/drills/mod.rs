//! Drills: one at a time, baseline -> fault -> recovery -> drain -> report.
//!
//! - `gate`: the pure steady-state gate a drill waits at before its fault;
//! - `phases`: pure phase detection over per-second observations;
//! - `sampler`: the task that takes those observations from the baseline to the drain;
//! - `scenario`: the scenarios, what each breaks by default, the steps of a comprehensive one;
//! - `runner`: runs one scenario against the live sources (audit, lag, Flink) and faults;
//! - `report`, `render`, `compare`: the versioned report model, its Markdown/HTML renderers
//!   and the comparison of two reports;
//! - `figures`: the one table of a report's figures (name, unit, better direction, how each
//!   is read off a report) that the renderers, `compare` and `firedrill_drill_last` use;
//! - this file: the `[drills]` config, the request and live view types, and the [`Drills`]
//!   actor that owns the drill registry, allows one drill at a time, persists reports in the
//!   state folder and exports the latest figures per scenario.

pub mod compare;
pub mod figures;
pub mod gate;
pub mod phases;
pub mod render;
pub mod report;
pub mod runner;
pub mod sampler;
pub mod scenario;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::{
    figures::FIGURES,
    report::{Report, Verdict},
    runner::Sources,
    scenario::{comprehensive, Scenario},
};
use crate::{clock::now_ms, durable, engine::Kind, faults::TargetView, metrics::register};

/// `[drills]`: timings of the drill runner.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder where reports are kept (one JSON file per drill).
    pub state_dir: PathBuf,
    /// The steady-state gate: the pipeline must be healthy for this long before a fault.
    #[serde(with = "crate::config_value::duration")]
    pub gate: Duration,
    /// How long the gate waits for that steady state (a pipeline still recovering from the
    /// previous drill, a Flink restart backoff not yet reset) before refusing the drill.
    #[serde(with = "crate::config_value::duration")]
    pub gate_timeout: Duration,
    /// The gate also requires the lag of the pipeline's consumer group to be known and its
    /// age (of the oldest uncommitted order) at most this.
    #[serde(with = "crate::config_value::duration")]
    pub gate_max_lag: Duration,
    /// ... and the end-to-end latency p99 of recent orders at most this.
    #[serde(with = "crate::config_value::duration")]
    pub gate_max_latency: Duration,
    /// A pause in the output (on Flink's clock) at least this long is an output gap:
    /// downtime.
    #[serde(with = "crate::config_value::duration")]
    pub output_gap: Duration,
    /// Output has caught up once no record comes out later than this after its event time.
    #[serde(with = "crate::config_value::duration")]
    pub caught_up_latency: Duration,
    /// The live view's throughput (degradation, stall, recovery) is measured over this
    /// window, whole seconds; 1 s measures each second on its own. An engine that writes in
    /// micro-batches needs a window spanning a few of them.
    #[serde(with = "crate::config_value::duration")]
    pub rate_window: Duration,
    /// How long the baseline is measured.
    #[serde(with = "crate::config_value::duration")]
    pub baseline: Duration,
    /// How long a fault lasts when the request gives no duration.
    #[serde(with = "crate::config_value::duration")]
    pub fault_duration: Duration,
    /// How long after the revert recovery may take before the drill says "not recovered".
    #[serde(with = "crate::config_value::duration")]
    pub recovery_timeout: Duration,
    /// How long the audit may take to see every order acked during the drill; what is
    /// still unseen then counts as lost.
    #[serde(with = "crate::config_value::duration")]
    pub drain_timeout: Duration,
    /// Whether the pipeline's sink is at-least-once (duplicates after a failure are then
    /// expected and do not fail the integrity verdict). The local stack's sink is.
    pub at_least_once: bool,
    /// Command that resubmits the Flink job after a JobManager loss (the job is gone without
    /// HA); `{checkpoint}` is replaced by the newest retained checkpoint's path. It should
    /// exit once the job runs (`stack submit` waits for every task to be RUNNING): its run
    /// time is the report's `resubmit_s`. Empty: no resubmission.
    pub resubmit: Vec<String>,
    /// How long the job may be missing after the JobManager is back before it is resubmitted.
    #[serde(with = "crate::config_value::duration")]
    pub resubmit_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(".stack/firedrill/reports"),
            gate: Duration::from_secs(10),
            // Long enough for Flink's restart backoff to reset (1 min on the local stack)
            // after the previous drill, and for a backlog to drain.
            gate_timeout: Duration::from_secs(300),
            // Flink commits offsets per checkpoint (every 10 s): lag is a sawtooth up to it.
            gate_max_lag: Duration::from_secs(30),
            // Every hop waits up to its fetch wait on the local broker: p99 ~1-2 s steady.
            gate_max_latency: Duration::from_secs(5),
            output_gap: Duration::from_secs(2),
            caught_up_latency: Duration::from_secs(3),
            rate_window: Duration::from_secs(1),
            baseline: Duration::from_secs(20),
            fault_duration: Duration::from_secs(30),
            recovery_timeout: Duration::from_secs(120),
            drain_timeout: Duration::from_secs(60),
            at_least_once: true,
            resubmit: [
                "compose/local/stack",
                "submit",
                "--from-checkpoint",
                "{checkpoint}",
            ]
            .map(String::from)
            .to_vec(),
            resubmit_after: Duration::from_secs(5),
        }
    }
}

/// `POST /drills` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    /// What to break.
    pub scenario: Scenario,
    /// How long the fault lasts (`"30s"`); `[drills] fault_duration` when absent.
    #[serde(default, with = "optional_duration")]
    pub fault_duration: Option<Duration>,
    /// Baseline length; `[drills] baseline` when absent.
    #[serde(default, with = "optional_duration")]
    pub baseline: Option<Duration>,
    /// A fault target other than the scenario's default (e.g. `taskmanager-2`).
    #[serde(default)]
    pub target: Option<String>,
    /// A fault action other than the scenario's default.
    #[serde(default)]
    pub action: Option<crate::faults::Action>,
    /// Free text naming this drill in comparisons.
    #[serde(default)]
    pub label: Option<String>,
}

mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => {
                let parsed = humantime::parse_duration(&s).map_err(|e| {
                    serde::de::Error::custom(format!("not a duration ({e}): {s:?}"))
                })?;
                if parsed.is_zero() {
                    return Err(serde::de::Error::custom(
                        "duration must be greater than zero",
                    ));
                }
                Ok(Some(parsed))
            }
        }
    }
}

/// Where a drill is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillState {
    /// Checking the steady state.
    Gating,
    /// Measuring the baseline.
    Baseline,
    /// The fault is in effect.
    Fault,
    /// Reverted; waiting for recovery.
    Recovering,
    /// Waiting for the audit to see every order.
    Draining,
    /// Finished; the report is available.
    Done,
    /// The steady-state gate refused the drill.
    Refused,
    /// Aborted on request (the fault was reverted).
    Aborted,
    /// Failed (e.g. the fault could not be injected); see `message`.
    Failed,
}

impl DrillState {
    /// The snake_case name, as in JSON and the `state` label of `firedrill_drill_state`.
    pub fn as_str(self) -> &'static str {
        match self {
            DrillState::Gating => "gating",
            DrillState::Baseline => "baseline",
            DrillState::Fault => "fault",
            DrillState::Recovering => "recovering",
            DrillState::Draining => "draining",
            DrillState::Done => "done",
            DrillState::Refused => "refused",
            DrillState::Aborted => "aborted",
            DrillState::Failed => "failed",
        }
    }

    /// Whether the drill has ended.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DrillState::Done | DrillState::Refused | DrillState::Aborted | DrillState::Failed
        )
    }
}

/// What `GET /drills/{id}` shows: live phase and progress.
#[derive(Debug, Clone, Serialize)]
pub struct DrillView {
    /// Drill id.
    pub id: String,
    /// Scenario.
    pub scenario: Scenario,
    /// Operator's label.
    pub label: Option<String>,
    /// Where it is.
    pub state: DrillState,
    /// For comprehensive drills: which part (1-based) of how many.
    pub part: Option<(usize, usize)>,
    /// When it started, unix ms.
    pub started_at_ms: i64,
    /// When the current state began, unix ms.
    pub state_since_ms: i64,
    /// Human-readable progress or the reason it was refused/failed.
    pub message: String,
    /// When done: the integrity verdict.
    pub integrity: Option<Verdict>,
}

/// Why a drill command was refused. (The status the HTTP API answers with is
/// `http::drills`'.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another drill is running.
    #[error("drill {0} is still running; one drill at a time")]
    Busy(String),
    /// No such drill.
    #[error("no drill {0}")]
    NotFound(String),
    /// The drill has not produced a report (yet).
    #[error("drill {id} has no report ({state:?})")]
    NoReport { id: String, state: DrillState },
    /// The report file could not be read or written.
    #[error("report storage: {0}")]
    Storage(String),
    /// The actor is gone (shutting down).
    #[error("drill runner stopped")]
    Stopped,
    /// The request is malformed beyond what its JSON shape says.
    #[error("{0}")]
    Invalid(String),
    /// The drill's fault could not be injected as asked (unknown target, unsupported
    /// action, duration out of bounds): refused before the drill starts.
    #[error(transparent)]
    Fault(#[from] crate::faults::Error),
}

enum Command {
    Start(DrillRequest, oneshot::Sender<Result<DrillView, Error>>),
    Abort(String, oneshot::Sender<Result<DrillView, Error>>),
    Get(String, oneshot::Sender<Result<DrillView, Error>>),
    List(oneshot::Sender<Vec<DrillView>>),
}

/// Talks to the [`Drills`] actor; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    state_dir: PathBuf,
}

impl Handle {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Starts a drill (it runs in the background); refused while another one runs.
    pub async fn start(&self, request: DrillRequest) -> Result<DrillView, Error> {
        self.ask(|tx| Command::Start(request, tx)).await?
    }

    /// Aborts a running drill: its fault is reverted at once.
    pub async fn abort(&self, id: &str) -> Result<DrillView, Error> {
        self.ask(|tx| Command::Abort(id.to_string(), tx)).await?
    }

    /// The live view of a drill.
    pub async fn get(&self, id: &str) -> Result<DrillView, Error> {
        self.ask(|tx| Command::Get(id.to_string(), tx)).await?
    }

    /// Every drill known (running and past), newest first.
    pub async fn list(&self) -> Result<Vec<DrillView>, Error> {
        self.ask(Command::List).await
    }

    /// A finished drill's report, read from the state folder.
    pub async fn report(&self, id: &str) -> Result<Report, Error> {
        let view = self.get(id).await?;
        if view.state != DrillState::Done {
            return Err(Error::NoReport {
                id: id.to_string(),
                state: view.state,
            });
        }
        // Off the runtime: a file read and the parse of a report of up to a few MB.
        let (dir, id) = (self.state_dir.clone(), id.to_string());
        tokio::task::spawn_blocking(move || read_report(&dir, &id))
            .await
            .map_err(|e| Error::Storage(format!("reading the report: {e}")))?
    }
}

fn report_path(dir: &std::path::Path, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

fn read_report(dir: &std::path::Path, id: &str) -> Result<Report, Error> {
    let text = std::fs::read_to_string(report_path(dir, id))
        .map_err(|e| Error::Storage(format!("{id}: {e}")))?;
    Report::from_json(&text).map_err(|e| Error::Storage(format!("{id}: {e}")))
}

/// `firedrill_drill_last`'s help: the figures marked `metric` in [`FIGURES`] (a test keeps
/// the two, and docs/metrics.md, naming the same figures).
const LAST_HELP: &str = "Figures of the latest finished drill per scenario: downtime_seconds, recovery_seconds (injection to recovered), revert_to_recovered_seconds, lost_orders, duplicate_orders, revenue_lost_dollars, revenue_delayed_dollars, degradation_percent, integrity_pass (1/0), alerting_pass (1/0).";

/// Latest figures per scenario, and drill counts.
#[derive(Clone)]
struct Metrics {
    running: IntGauge,
    state: IntGaugeVec,
    guarantee: IntGaugeVec,
    drills: IntCounterVec,
    last: GaugeVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        Metrics {
            running: register(
                registry,
                IntGauge::new("firedrill_drill_running", "1 while a drill runs.")
                    .expect("valid metric"),
            ),
            state: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_drill_state",
                        "1 for the running drill's current state (gating, baseline, fault, recovering, draining).",
                    ),
                    &["scenario", "state"],
                )
                .expect("valid metric"),
            ),
            guarantee: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_pipeline_delivery_guarantee",
                        "1 for the sink guarantee drills assume (drills.at_least_once): at_least_once or exactly_once.",
                    ),
                    &["guarantee"],
                )
                .expect("valid metric"),
            ),
            drills: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "firedrill_drills_total",
                        "Drills by scenario and how they ended (done, refused, aborted, failed).",
                    ),
                    &["scenario", "state"],
                )
                .expect("valid metric"),
            ),
            last: register(
                registry,
                GaugeVec::new(
                    Opts::new("firedrill_drill_last", LAST_HELP),
                    &["scenario", "figure"],
                )
                .expect("valid metric"),
            ),
        }
    }

    /// Records `report` and, for a comprehensive one, first each part under its own scenario.
    fn record_report_and_parts(&self, report: &Report) {
        for part in &report.parts {
            self.record_report(part);
        }
        self.record_report(report);
    }

    /// Sets every figure the metric publishes; one the report has no value for is removed,
    /// so that an older drill's value does not stand in for it.
    fn record_report(&self, report: &Report) {
        let s = report.scenario.as_str();
        for figure in FIGURES.iter().filter(|f| f.metric) {
            match (figure.value)(report) {
                Some(v) => self.last.with_label_values(&[s, figure.name]).set(v),
                None => {
                    let _ = self.last.remove_label_values(&[s, figure.name]);
                }
            }
        }
    }
}

struct Current {
    id: String,
    cancel: CancellationToken,
    view: watch::Receiver<DrillView>,
    done: tokio::task::JoinHandle<()>,
}

/// Owns the drill registry and runs one drill at a time.
pub struct Drills {
    config: Config,
    sources: Sources,
    metrics: Metrics,
    commands: mpsc::Receiver<Command>,
    finished: BTreeMap<String, DrillView>,
    current: Option<Current>,
    next: u32,
}

impl Drills {
    /// Creates the state folder and reads the reports already in it.
    pub fn build(
        config: &Config,
        sources: Sources,
        registry: &Registry,
    ) -> Result<(Drills, Handle), Error> {
        std::fs::create_dir_all(&config.state_dir)
            .map_err(|e| Error::Storage(format!("{}: {e}", config.state_dir.display())))?;
        let mut finished = BTreeMap::new();
        let mut reports = Vec::new();
        let entries = std::fs::read_dir(&config.state_dir)
            .map_err(|e| Error::Storage(format!("{}: {e}", config.state_dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue; // a temp file left by a crash mid-write, or something else
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            match read_report(&config.state_dir, id) {
                Ok(report) => {
                    finished.insert(id.to_string(), view_of_report(&report));
                    reports.push(report);
                }
                Err(error) => warn!(%error, "skipping unreadable report"),
            }
        }
        // The latest figures per scenario survive a restart: oldest first, newest wins.
        let metrics = Metrics::register(registry);
        let guarantee = if config.at_least_once {
            "at_least_once"
        } else {
            "exactly_once"
        };
        metrics.guarantee.with_label_values(&[guarantee]).set(1);
        // Every scenario's outcome series from the start, so dashboards and `increase()` see
        // the first drill of each kind as a step from 0.
        for scenario in Scenario::ALL {
            for state in [
                DrillState::Done,
                DrillState::Refused,
                DrillState::Aborted,
                DrillState::Failed,
            ] {
                metrics
                    .drills
                    .with_label_values(&[scenario.as_str(), state_label(state)]);
            }
        }
        reports.sort_by_key(|r| r.ended_at_ms);
        for report in &reports {
            metrics.record_report_and_parts(report);
        }
        let (tx, rx) = mpsc::channel(16);
        let drills = Drills {
            config: config.clone(),
            sources,
            metrics,
            commands: rx,
            finished,
            current: None,
            next: 0,
        };
        let handle = Handle {
            commands: tx,
            state_dir: config.state_dir.clone(),
        };
        Ok((drills, handle))
    }

    /// Serves commands until cancelled; a running drill is aborted (its fault reverted)
    /// before this returns.
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                command = self.commands.recv() => match command {
                    Some(command) => self.serve(command),
                    None => break,
                },
            }
        }
        if let Some(current) = self.current.take() {
            info!(drill = %current.id, "aborting the running drill for shutdown");
            current.cancel.cancel();
            let _ = current.done.await;
        }
    }

    fn serve(&mut self, command: Command) {
        self.reap();
        match command {
            Command::Start(request, reply) => {
                let _ = reply.send(self.start(request));
            }
            Command::Abort(id, reply) => {
                let result = match &self.current {
                    Some(c) if c.id == id => {
                        c.cancel.cancel();
                        Ok(c.view.borrow().clone())
                    }
                    _ => self.view(&id),
                };
                let _ = reply.send(result);
            }
            Command::Get(id, reply) => {
                let _ = reply.send(self.view(&id));
            }
            Command::List(reply) => {
                let mut all: Vec<DrillView> = self.finished.values().cloned().collect();
                if let Some(c) = &self.current {
                    all.push(c.view.borrow().clone());
                }
                all.sort_by_key(|v| std::cmp::Reverse(v.started_at_ms));
                let _ = reply.send(all);
            }
        }
    }

    fn view(&self, id: &str) -> Result<DrillView, Error> {
        match &self.current {
            Some(c) if c.id == id => Ok(c.view.borrow().clone()),
            _ => self
                .finished
                .get(id)
                .cloned()
                .ok_or_else(|| Error::NotFound(id.to_string())),
        }
    }

    /// Moves a finished drill from `current` to `finished`.
    fn reap(&mut self) {
        let ended = self
            .current
            .as_ref()
            .is_some_and(|c| c.view.borrow().state.is_final() && c.done.is_finished());
        if ended {
            let current = self.current.take().expect("checked");
            let view = current.view.borrow().clone();
            self.finished.insert(current.id, view);
        }
    }

    fn start(&mut self, request: DrillRequest) -> Result<DrillView, Error> {
        check_request(
            &request,
            self.sources.engine,
            &self.config,
            &self.sources.faults.targets(),
            self.sources.faults.max_duration(),
        )?;
        if let Some(c) = &self.current {
            return Err(Error::Busy(c.id.clone()));
        }
        self.next += 1;
        let id = format!("d-{:x}-{}", now_ms(), self.next);
        let now = now_ms();
        let view = DrillView {
            id: id.clone(),
            scenario: request.scenario,
            label: request.label.clone(),
            state: DrillState::Gating,
            part: None,
            started_at_ms: now,
            state_since_ms: now,
            message: "checking the steady state".to_string(),
            integrity: None,
        };
        let (tx, rx) = watch::channel(view.clone());
        let cancel = CancellationToken::new();
        let drill = runner::Drill {
            id: id.clone(),
            request,
            config: self.config.clone(),
            sources: self.sources.clone(),
            progress: tx,
            cancel: cancel.clone(),
            state_gauge: self.metrics.state.clone(),
        };
        let state_dir = self.config.state_dir.clone();
        let metrics = self.metrics.clone();
        metrics.running.set(1);
        let done = tokio::spawn(async move {
            let scenario = drill.request.scenario;
            let progress = drill.progress.clone();
            let state_gauge = drill.state_gauge.clone();
            let outcome = drill.run().await;
            state_gauge.reset();
            let state = match outcome {
                Ok(report) => {
                    let path = report_path(&state_dir, &report.id);
                    match durable::write(&path, report.to_json().as_bytes()) {
                        Ok(()) => {
                            metrics.record_report_and_parts(&report);
                            info!(drill = %report.id, verdict = report.integrity.verdict.as_str(), path = %path.display(), "drill done");
                            progress.send_modify(|v| {
                                v.state = DrillState::Done;
                                v.integrity = Some(report.integrity.verdict);
                                v.message = format!(
                                    "done: integrity {}",
                                    report.integrity.verdict.as_str()
                                );
                            });
                            DrillState::Done
                        }
                        Err((step, error)) => {
                            let message =
                                format!("report not saved to {} ({step}): {error}", path.display());
                            progress.send_modify(|v| {
                                v.state = DrillState::Failed;
                                v.message = message;
                            });
                            DrillState::Failed
                        }
                    }
                }
                Err((state, message)) => {
                    warn!(%message, ?state, "drill ended without a report");
                    progress.send_modify(|v| {
                        v.state = state;
                        v.message = message;
                    });
                    state
                }
            };
            progress.send_modify(|v| v.state_since_ms = now_ms());
            metrics
                .drills
                .with_label_values(&[scenario.as_str(), state_label(state)])
                .inc();
            metrics.running.set(0);
        });
        self.current = Some(Current {
            id,
            cancel,
            view: rx,
            done,
        });
        Ok(view)
    }
}

/// Refuses what could only fail later, after the gate and the baseline: a scenario of the
/// other engine, a fault duration out of bounds, an unknown target, an action the target
/// cannot do.
fn check_request(
    request: &DrillRequest,
    engine: Kind,
    config: &Config,
    targets: &[TargetView],
    max_duration: Duration,
) -> Result<(), Error> {
    use crate::faults::Error as Fault;
    // Zero durations never get here: the request's deserializer refuses them.
    let fault_len = request.fault_duration.unwrap_or(config.fault_duration);
    if fault_len > max_duration {
        return Err(Fault::DurationTooLong {
            requested: fault_len,
            max: max_duration,
        }
        .into());
    }
    let scenarios: &[Scenario] = match request.scenario {
        Scenario::Comprehensive if request.target.is_some() || request.action.is_some() => {
            return Err(Error::Invalid(
                "a comprehensive drill uses each scenario's own target and action: leave \
                 target and action out"
                    .into(),
            ))
        }
        Scenario::Comprehensive => &comprehensive(engine),
        ref single => std::slice::from_ref(single),
    };
    if let Some(other) = request.scenario.engine().filter(|e| *e != engine) {
        return Err(Error::Invalid(format!(
            "the {} scenario breaks {}, and this daemon's engine is {} ([engine] kind); its \
             scenarios: {}",
            request.scenario.as_str(),
            other.as_str(),
            engine.as_str(),
            Scenario::ALL
                .iter()
                .filter(|s| s.engine().is_none_or(|e| e == engine))
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for scenario in scenarios {
        let (default_target, default_action) = scenario.fault();
        let name = request.target.as_deref().unwrap_or(default_target);
        let action = request.action.unwrap_or(default_action);
        let target = targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Fault::UnknownTarget(name.to_string()))?;
        if !target.actions.contains(&action) {
            return Err(Fault::UnsupportedAction {
                target: name.to_string(),
                action,
                backend: target.backend,
                reason: None,
            }
            .into());
        }
    }
    Ok(())
}

/// How a drill ended, as the `state` label of `firedrill_drills_total`.
fn state_label(state: DrillState) -> &'static str {
    if state.is_final() {
        state.as_str()
    } else {
        "failed"
    }
}

fn view_of_report(report: &Report) -> DrillView {
    DrillView {
        id: report.id.clone(),
        scenario: Scenario::parse(&report.scenario).unwrap_or(Scenario::Comprehensive),
        label: report.label.clone(),
        state: DrillState::Done,
        part: None,
        started_at_ms: report.started_at_ms,
        state_since_ms: report.ended_at_ms,
        message: format!("done: integrity {}", report.integrity.verdict.as_str()),
        integrity: Some(report.integrity.verdict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Action;

    fn target(name: &str, actions: &[Action]) -> TargetView {
        TargetView {
            name: name.into(),
            backend: "process",
            default_action: None,
            actions: actions.to_vec(),
            group: None,
            members: Vec::new(),
        }
    }

    fn request(json: serde_json::Value) -> DrillRequest {
        serde_json::from_value(json).unwrap()
    }

    fn check(json: serde_json::Value) -> Result<(), Error> {
        let targets = [
            target("kafka", &[Action::Stop, Action::Pause]),
            target("jobmanager", &[Action::Kill]),
            target("taskmanager", &[Action::Kill, Action::Stop]),
            target("taskmanager-2", &[Action::Kill]),
        ];
        check_request(
            &request(json),
            Kind::Flink,
            &Config::default(),
            &targets,
            Duration::from_secs(120),
        )
    }

    /// What a refusal is (the fault error's kind, or `invalid`) and what it says.
    fn refused(json: serde_json::Value) -> (&'static str, String) {
        let error = check(json).unwrap_err();
        let kind = match &error {
            Error::Fault(fault) => fault.kind(),
            Error::Invalid(_) => "invalid",
            other => panic!("not a refusal: {other}"),
        };
        (kind, error.to_string())
    }

    #[test]
    fn a_scenario_of_the_other_engine_is_refused_with_this_engines_scenarios() {
        let (kind, message) = refused(serde_json::json!({"scenario": "driver"}));
        assert_eq!(kind, "invalid");
        assert_eq!(
            message,
            "the driver scenario breaks spark, and this daemon's engine is flink ([engine] \
             kind); its scenarios: taskmanager, jobmanager, kafka, comprehensive"
        );
    }

    #[test]
    fn a_drill_that_could_only_fail_later_is_refused_up_front() {
        use serde_json::json;
        check(json!({"scenario": "comprehensive"})).unwrap();
        check(
            json!({"scenario": "taskmanager", "target": "taskmanager-2", "fault_duration": "2m"}),
        )
        .unwrap();
        assert_eq!(
            refused(json!({"scenario": "kafka", "fault_duration": "121s"})),
            (
                "duration_too_long",
                "duration 2m 1s exceeds max_duration 2m".into()
            )
        );
        assert_eq!(
            refused(json!({"scenario": "taskmanager", "target": "taskmanager-9"})),
            (
                "unknown_target",
                "unknown fault target \"taskmanager-9\"".into()
            )
        );
        assert_eq!(
            refused(json!({"scenario": "jobmanager", "action": "pause"})),
            (
                "unsupported_action",
                "target jobmanager (process) does not support action pause".into()
            )
        );
        assert_eq!(
            refused(json!({"scenario": "comprehensive", "target": "kafka"})).0,
            "invalid"
        );
        for zero in [json!({"fault_duration": "0s"}), json!({"baseline": "0s"})] {
            let mut body = zero.clone();
            body["scenario"] = json!("kafka");
            let error = serde_json::from_value::<DrillRequest>(body).unwrap_err();
            assert!(error.to_string().contains("greater than zero"), "{error}");
        }
    }

    #[test]
    fn a_comprehensive_drill_needs_every_scenario_target() {
        let only_kafka = [target("kafka", &[Action::Stop])];
        let error = check_request(
            &request(serde_json::json!({"scenario": "comprehensive"})),
            Kind::Flink,
            &Config::default(),
            &only_kafka,
            Duration::from_secs(600),
        )
        .unwrap_err();
        assert_eq!(error.to_string(), "unknown fault target \"taskmanager\"");
    }

    #[test]
    fn the_last_figures_help_and_docs_name_the_figures_the_metric_publishes() {
        let published: Vec<&str> = FIGURES
            .iter()
            .filter(|f| f.metric)
            .map(|f| f.name)
            .collect();
        // "a, b (why), c." -> [a, b, c]
        let names = |list: &str| -> Vec<String> {
            list.split(", ")
                .map(|item| item.split([' ', '.']).next().unwrap().to_string())
                .collect()
        };
        let help = LAST_HELP.split_once(": ").unwrap().1;
        assert_eq!(names(help), published);
        let docs = include_str!("../../docs/metrics.md");
        let row = docs
            .lines()
            .find(|l| l.starts_with("| `firedrill_drill_last` |"))
            .unwrap();
        let labels = row.split(" | ").nth(2).unwrap();
        let figures = labels.split_once("`figure` = ").unwrap().1;
        assert_eq!(names(figures), published);
    }
}
