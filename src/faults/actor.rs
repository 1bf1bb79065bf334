//! The [`Faults`] actor: it owns the ledger and every fault's lifecycle; [`Handle`]s talk to
//! it over a channel.
//!
//! Life of a fault (the order is what makes reverts happen by construction):
//!
//! 1. A request is checked (target, action, duration, one fault per target) and the target
//!    resolved by its backend (pid, container id: no side effects) in a spawned task.
//! 2. The entry is written to the ledger (fsynced) *before* the backend touches anything.
//!    A fault that cannot be recorded is never injected.
//! 3. The backend injects in a spawned task; the actor keeps serving. A failed inject is
//!    reverted like any fault, since it may have half happened.
//! 4. At `revert_by` (at most `max_duration` after 2) the actor reverts the fault by itself;
//!    a client may revert it earlier. Only when the revert succeeded is the entry removed.
//!    A failed revert stays in the ledger and is retried with backoff (1 s doubling to
//!    30 s), exported as `firedrill_fault_revert_failures_total`.
//!
//! `run` starts by reverting whatever the ledger holds (firedrill died with faults in
//! effect), and on cancellation reverts everything before it returns: new faults are
//! refused from then on (list and revert are still served), failed reverts are retried for
//! [`SHUTDOWN_GRACE`], and whatever still fails stays in the ledger for the next start.
//! Backend operations run in tasks owned by a `JoinSet`, so aborting `run` (the test's
//! stand-in for SIGKILL) stops them too and leaves the ledger as a crash would.
//!
//! The actor's map of tracked faults (each with its ledger entry and `Phase`) is its one
//! state; the ledger file mirrors it. Nothing in here panics on that state: should the map
//! and the ledger ever disagree, the fault is reverted or the event logged and dropped,
//! because a panic would kill the very task that must revert. The backends come in as
//! [`Backends`], the real ones from [`Faults::build`], scripted fakes in the tests below
//! (which run on paused time).
//!
//! This module does not know how a backend breaks things (`process`, `docker`) nor how the
//! ledger is stored (`ledger`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures_util::future::join_all;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::{
    sync::{mpsc, oneshot},
    task::{Id, JoinSet},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{
    backend::{self, Backend, BackendKind, Subject},
    config::{free_members, Named},
    docker::DockerBackend,
    ledger::{Entry, Ledger},
    process::ProcessBackend,
    Action, Config, Error, FaultState, FaultView, InjectRequest, Target, TargetView,
};
use crate::{
    clock::now_ms,
    metrics::{register, Upstreams},
};

/// After cancellation, how long failed reverts are still retried before `run` gives up and
/// leaves them in the ledger for the next start.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// First retry delay of a failed revert; doubles per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest delay between revert attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Commands queued before senders wait.
const CHANNEL: usize = 64;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Command {
    Inject(InjectRequest, Reply<FaultView>),
    Revert(String, Reply<FaultView>),
    List(oneshot::Sender<Vec<FaultView>>),
}

/// The actor's handle: cheap to clone, usable from any task.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::Sender<Command>,
    targets: Arc<Vec<TargetView>>,
    max_duration: Duration,
}

impl Handle {
    /// Injects a fault; returns once it is in effect (ledger written, backend done).
    pub async fn inject(&self, request: InjectRequest) -> Result<FaultView, Error> {
        self.ask(|reply| Command::Inject(request, reply)).await?
    }

    /// Reverts fault `id`; returns once reverted (`reverted_at_ms` set). If the revert fails
    /// the error is returned and the fault stays in the ledger, retried with backoff.
    pub async fn revert(&self, id: &str) -> Result<FaultView, Error> {
        self.ask(|reply| Command::Revert(id.to_string(), reply))
            .await?
    }

    /// Reverts every fault in effect (those being requested concurrently excepted). Returns
    /// the reverted faults, or the first failure (the failing ones stay in the ledger and are
    /// retried).
    pub async fn reset(&self) -> Result<Vec<FaultView>, Error> {
        let ids: Vec<String> = self.list().await.into_iter().map(|f| f.id).collect();
        let results = join_all(ids.iter().map(|id| self.revert(id))).await;
        let mut reverted = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in results {
            match result {
                Ok(view) => reverted.push(view),
                // Reverted by its timer or another client in the meantime.
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(reverted),
        }
    }

    /// Every fault in the ledger (in effect, being reverted, or failing to revert).
    pub async fn list(&self) -> Vec<FaultView> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::List(reply)).await.is_err() {
            return Vec::new();
        }
        answer.await.unwrap_or_default()
    }

    /// Configured targets, then groups.
    pub fn targets(&self) -> Vec<TargetView> {
        self.targets.as_ref().clone()
    }

    /// The longest fault accepted (`faults.max_duration`).
    pub fn max_duration(&self) -> Duration {
        self.max_duration
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Result<T, Error>, Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        answer.await.map_err(|_| Error::Stopped)
    }
}

struct Metrics {
    active: IntGaugeVec,
    started: GaugeVec,
    expires: GaugeVec,
    injected: IntCounterVec,
    revert_failures: IntCounterVec,
    reverts: IntCounterVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Metrics {
            active: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_fault_active",
                        "1 while a fault of this action is in effect on the target.",
                    ),
                    &["target", "action"],
                )
                .expect("valid metric"),
            ),
            started: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "firedrill_fault_started_timestamp_seconds",
                        "When the active fault of this action on the target was injected (unix seconds).",
                    ),
                    &["target", "action"],
                )
                .expect("valid metric"),
            ),
            expires: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "firedrill_fault_expires_timestamp_seconds",
                        "When firedrill reverts the active fault by itself at the latest (unix seconds).",
                    ),
                    &["target", "action"],
                )
                .expect("valid metric"),
            ),
            injected: counter(
                "firedrill_faults_injected_total",
                "Faults that took effect.",
                &["target", "action"],
            ),
            revert_failures: counter(
                "firedrill_fault_revert_failures_total",
                "Revert attempts that failed (each is retried with backoff).",
                &["target"],
            ),
            reverts: counter(
                "firedrill_fault_reverts_total",
                "Faults reverted (and removed from the ledger).",
                &["target", "action"],
            ),
        }
    }

    /// Creates every configured target's series at zero, so dashboards see them before the
    /// first fault.
    fn init(&self, config: &Config) {
        for (name, target) in &config.targets {
            for action in target.actions() {
                let labels = [name.as_str(), action.as_str()];
                self.active.with_label_values(&labels).set(0);
                self.injected.with_label_values(&labels);
                self.reverts.with_label_values(&labels);
            }
            self.revert_failures.with_label_values(&[name.as_str()]);
        }
    }

    fn set_active(&self, entry: &Entry, active: bool) {
        let labels = [entry.target.as_str(), entry.action.as_str()];
        self.active
            .with_label_values(&labels)
            .set(i64::from(active));
        // Grafana's region annotations and FaultLeftActive read these; absent when no fault
        // is active, so a stale start time never draws a region.
        if active {
            let seconds = |ms: i64| ms as f64 / 1000.0;
            self.started
                .with_label_values(&labels)
                .set(seconds(entry.injected_at_ms));
            self.expires
                .with_label_values(&labels)
                .set(seconds(entry.revert_by_ms));
        } else {
            let _ = self.started.remove_label_values(&labels);
            let _ = self.expires.remove_label_values(&labels);
        }
    }
}

/// The backends the actor breaks targets with, one per [`BackendKind`]. The daemon uses the
/// real ones ([`Backends::real`]); tests hand in scripted fakes, so that retries, backoff,
/// maximum durations and shutdown run without processes, containers or real time.
#[derive(Clone)]
pub struct Backends {
    process: Arc<dyn Backend>,
    docker: Arc<dyn Backend>,
}

impl Backends {
    /// `process` handles process targets and subjects, `docker` Docker ones (each should
    /// report that [`Backend::kind`]).
    pub fn new(process: Arc<dyn Backend>, docker: Arc<dyn Backend>) -> Self {
        Backends { process, docker }
    }

    /// Signals to local processes, and the Docker engine (reporting its health to
    /// `upstreams`, `firedrill_upstream_up{upstream="docker"}`).
    pub fn real(upstreams: Option<Upstreams>) -> Self {
        Backends::new(
            Arc::new(ProcessBackend),
            Arc::new(DockerBackend::new(upstreams)),
        )
    }

    fn get(&self, kind: BackendKind) -> Arc<dyn Backend> {
        match kind {
            BackendKind::Process => self.process.clone(),
            BackendKind::Docker => self.docker.clone(),
        }
    }
}

/// Where a fault is in its lifecycle. The transitions:
///
/// ```text
/// Injecting --ok--> Active --revert_at, client, shutdown--> Reverting --ok--> (gone)
///     |                                                   ^      |
///     +--failed (may have half happened)------------------+      +--failed--> RetryAt
///                                                         +--------due--------+
/// ```
enum Phase {
    /// The backend is injecting it.
    Injecting {
        /// Answers the inject request once the backend is done.
        reply: Option<Reply<FaultView>>,
        /// A revert (a client's, or shutdown) arrived meanwhile; it starts when the inject
        /// finishes.
        revert_requested: bool,
    },
    /// In effect until `revert_at`.
    Active,
    /// The backend is reverting it.
    Reverting,
    /// The last revert failed; the next attempt is at this instant.
    RetryAt(Instant),
}

/// A fault the actor tracks: its ledger entry and where it is in its lifecycle. The actor's
/// map of these is the one source of truth; the ledger file mirrors their entries (written
/// before a fault is tracked, removed once it is reverted).
struct Fault {
    entry: Entry,
    phase: Phase,
    /// The dead-man's switch: when the fault reverts by itself.
    revert_at: Instant,
    failures: u32,
    last_error: Option<String>,
    revert_replies: Vec<Reply<FaultView>>,
}

impl Fault {
    /// A fault whose revert is due now: what the ledger held at startup, or (never expected)
    /// an entry the actor had lost track of.
    fn adopted(entry: Entry) -> Self {
        Fault {
            entry,
            phase: Phase::Active,
            revert_at: Instant::now(),
            failures: 0,
            last_error: None,
            revert_replies: Vec::new(),
        }
    }

    /// How clients see it while it is tracked (in effect, or failing to revert).
    fn view(&self) -> FaultView {
        view(&self.entry, None, self.last_error.clone())
    }
}

/// How clients see a fault: reverted when `reverted_at_ms` is set, else failing to revert
/// while there is a `last_error`, else active.
fn view(entry: &Entry, reverted_at_ms: Option<i64>, last_error: Option<String>) -> FaultView {
    let state = match (reverted_at_ms, &last_error) {
        (Some(_), _) => FaultState::Reverted,
        (None, Some(_)) => FaultState::RevertFailing,
        (None, None) => FaultState::Active,
    };
    FaultView {
        id: entry.id.clone(),
        target: entry.target.clone(),
        action: entry.action,
        backend: entry.subject.backend().as_str(),
        injected_at_ms: entry.injected_at_ms,
        revert_by_ms: entry.revert_by_ms,
        reverted_at_ms,
        state,
        last_error: last_error.filter(|_| reverted_at_ms.is_none()),
    }
}

/// A request whose target is being resolved; not in the ledger yet.
struct Preparing {
    /// The target it occupies, when it named one (a group's member is known only later).
    target: Option<String>,
    duration: Duration,
    reply: Reply<FaultView>,
}

/// A request that passed its checks.
struct Checked {
    /// (target, its config, action) to resolve in order; the first that resolves is taken.
    candidates: Vec<(String, Target, Action)>,
    duration: Duration,
    /// The target it occupies while being prepared (a group's member is known only later).
    occupies: Option<String>,
}

/// What a spawned backend operation reports.
enum Op {
    /// Resolved `target` to `subject` for `action`.
    Prepared {
        id: String,
        result: Result<(String, Action, Subject), Error>,
    },
    Injected {
        id: String,
        result: Result<(), backend::Error>,
    },
    Reverted {
        id: String,
        result: Result<(), backend::Error>,
    },
}

/// The fault injection actor; see the module docs.
pub struct Faults {
    config: Arc<Config>,
    ledger: Ledger,
    backends: Backends,
    metrics: Metrics,
    commands: mpsc::Receiver<Command>,
    faults: HashMap<String, Fault>,
    preparing: HashMap<String, Preparing>,
    /// Spawned backend operations, and which fault each belongs to (for a panicking one).
    ops: JoinSet<Op>,
    op_faults: HashMap<Id, (String, OpKind)>,
    next_seq: u64,
    stopping: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
enum OpKind {
    Prepare,
    Inject,
    Revert,
}

impl Faults {
    /// Validates `config`, opens the ledger (creating its directory; an unreadable ledger is
    /// an error, never discarded) and registers metrics. Touches no target.
    pub fn build(config: &Config, registry: &Registry) -> Result<(Faults, Handle), Error> {
        Faults::build_with_upstreams(config, registry, None)
    }

    /// [`Faults::build`], with the Docker backend reporting the engine's health to
    /// `upstreams` (`firedrill_upstream_up{upstream="docker"}`).
    pub fn build_with_upstreams(
        config: &Config,
        registry: &Registry,
        upstreams: Option<Upstreams>,
    ) -> Result<(Faults, Handle), Error> {
        Faults::build_with_backends(config, registry, Backends::real(upstreams))
    }

    /// [`Faults::build`] with the given backends (the real ones, or fakes in tests).
    pub fn build_with_backends(
        config: &Config,
        registry: &Registry,
        backends: Backends,
    ) -> Result<(Faults, Handle), Error> {
        config.validate()?;
        let ledger = Ledger::open(&config.ledger)?;
        let metrics = Metrics::register(registry);
        metrics.init(config);
        let (commands, receiver) = mpsc::channel(CHANNEL);
        let handle = Handle {
            commands,
            targets: Arc::new(target_views(config)),
            max_duration: config.max_duration,
        };
        let faults = Faults {
            config: Arc::new(config.clone()),
            ledger,
            backends,
            metrics,
            commands: receiver,
            faults: HashMap::new(),
            preparing: HashMap::new(),
            ops: JoinSet::new(),
            op_faults: HashMap::new(),
            next_seq: 0,
            stopping: None,
        };
        Ok((faults, handle))
    }

    /// Reverts what the ledger holds, then serves commands and timers until `cancel`, then
    /// reverts everything in effect and returns.
    pub async fn run(mut self, cancel: CancellationToken) {
        self.recover();
        let mut commands_open = true;
        loop {
            if self.stopping.is_some() && self.ops.is_empty() {
                if self.faults.is_empty() {
                    info!("every fault reverted");
                    return;
                }
                if self.past_grace(Instant::now()) {
                    error!(
                        faults = self.faults.len(),
                        ledger = %self.ledger.path().display(),
                        "reverts still failing at shutdown; the ledger keeps them for the next start"
                    );
                    return;
                }
            }
            let wake = self.next_wake();
            tokio::select! {
                _ = cancel.cancelled(), if self.stopping.is_none() => self.begin_shutdown(),
                // Still served while stopping (list, revert), but new faults are refused.
                command = self.commands.recv(), if commands_open => {
                    match command {
                        Some(command) => self.handle(command),
                        // Every handle is gone; timers still revert what is in effect.
                        None => commands_open = false,
                    }
                }
                Some(done) = self.ops.join_next_with_id(), if !self.ops.is_empty() => {
                    self.finished(done);
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {
                    self.on_timer();
                }
            }
        }
    }

    /// Startup: whatever the ledger holds was in effect when firedrill last stopped.
    fn recover(&mut self) {
        let entries = self.ledger.entries().to_vec();
        if entries.is_empty() {
            return;
        }
        warn!(
            faults = entries.len(),
            ledger = %self.ledger.path().display(),
            "reverting faults left in effect by a previous run"
        );
        for entry in entries {
            self.metrics.set_active(&entry, true);
            let id = entry.id.clone();
            self.faults.insert(id.clone(), Fault::adopted(entry));
            self.start_revert(&id);
        }
    }

    fn begin_shutdown(&mut self) {
        self.stopping = Some(Instant::now());
        info!(
            faults = self.faults.len(),
            "stopping: reverting every fault"
        );
        let mut due = Vec::new();
        for (id, fault) in &mut self.faults {
            match &mut fault.phase {
                Phase::Injecting {
                    revert_requested, ..
                } => *revert_requested = true,
                Phase::Active | Phase::RetryAt(_) => due.push(id.clone()),
                Phase::Reverting => {}
            }
        }
        for id in due {
            self.start_revert(&id);
        }
    }

    /// Whether the shutdown grace is over (failed reverts are no longer retried).
    fn past_grace(&self, now: Instant) -> bool {
        self.stopping
            .is_some_and(|since| now >= since + SHUTDOWN_GRACE)
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Inject(request, reply) => self.inject(request, reply),
            Command::Revert(id, reply) => self.revert(&id, reply),
            Command::List(reply) => {
                let mut faults: Vec<&Fault> = self.faults.values().collect();
                faults.sort_by(|a, b| {
                    (a.entry.injected_at_ms, &a.entry.id)
                        .cmp(&(b.entry.injected_at_ms, &b.entry.id))
                });
                let _ = reply.send(faults.into_iter().map(|f| f.view()).collect());
            }
        }
    }

    /// Checks the request and spawns the resolution of its target.
    fn inject(&mut self, request: InjectRequest, reply: Reply<FaultView>) {
        if self.stopping.is_some() {
            let _ = reply.send(Err(Error::Stopped));
            return;
        }
        let checked = self.check(&request);
        let Checked {
            candidates,
            duration,
            occupies,
        } = match checked {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let id = self.next_id();
        self.preparing.insert(
            id.clone(),
            Preparing {
                target: occupies.clone(),
                duration,
                reply,
            },
        );
        let backends = self.backends.clone();
        let group = request.target.clone();
        let is_group = occupies.is_none();
        let task_id = id.clone();
        let task = self.ops.spawn(async move {
            let mut reasons = Vec::new();
            for (name, target, action) in &candidates {
                let backend = backends.get(target.backend());
                match backend.resolve(target, *action).await {
                    Ok(subject) => {
                        return Op::Prepared {
                            id: task_id,
                            result: Ok((name.clone(), *action, subject)),
                        }
                    }
                    Err(e) if !is_group => {
                        return Op::Prepared {
                            id: task_id,
                            result: Err(Error::Backend {
                                target: name.clone(),
                                action: *action,
                                source: Arc::new(e),
                            }),
                        }
                    }
                    Err(e) => reasons.push(format!("{name}: {e}")),
                }
            }
            Op::Prepared {
                id: task_id,
                result: Err(Error::NoEligibleMember {
                    group,
                    reason: format!("no free member is running ({})", reasons.join("; ")),
                }),
            }
        });
        self.op_faults.insert(task.id(), (id, OpKind::Prepare));
    }

    /// Validates a request: the candidates to try (target, config, action), the duration,
    /// and the target it occupies while being prepared.
    fn check(&self, request: &InjectRequest) -> Result<Checked, Error> {
        let name = request.target.as_str();
        let named = self
            .config
            .named(name)
            .ok_or_else(|| Error::UnknownTarget(name.to_string()))?;
        // What is wrong with the request itself comes before conflicts with other faults.
        let duration = request.duration.unwrap_or(self.config.default_duration);
        if duration.is_zero() {
            return Err(Error::ZeroDuration);
        }
        if duration > self.config.max_duration {
            return Err(Error::DurationTooLong {
                requested: duration,
                max: self.config.max_duration,
            });
        }
        let busy = self.busy();
        let candidates: Vec<(String, Target, Action)> = match named {
            Named::Target(target) => {
                let action = request.action.unwrap_or(target.default_action());
                supported(name, target, action)?;
                if let Some(fault_id) = busy.get(name) {
                    return Err(Error::Conflict {
                        target: name.to_string(),
                        fault_id: fault_id.clone(),
                    });
                }
                vec![(name.to_string(), target.clone(), action)]
            }
            Named::Group => {
                let members = self.config.members(name);
                let able: Vec<&str> = members
                    .iter()
                    .copied()
                    .filter(|m| {
                        let target = &self.config.targets[*m];
                        let action = request.action.unwrap_or(target.default_action());
                        target.supports(action).is_ok()
                    })
                    .collect();
                if able.is_empty() {
                    let first = &self.config.targets[members[0]];
                    let action = request.action.unwrap_or(first.default_action());
                    supported(name, first, action)?;
                }
                free_members(&able, &busy)
                    .map_err(|reason| Error::NoEligibleMember {
                        group: name.to_string(),
                        reason,
                    })?
                    .into_iter()
                    .map(|m| {
                        let target = self.config.targets[m].clone();
                        let action = request.action.unwrap_or(target.default_action());
                        (m.to_string(), target, action)
                    })
                    .collect()
            }
        };
        let occupies = matches!(named, Named::Target(_)).then(|| name.to_string());
        Ok(Checked {
            candidates,
            duration,
            occupies,
        })
    }

    /// Target -> the fault occupying it (tracked, or a request naming it being prepared).
    fn busy(&self) -> HashMap<String, String> {
        let mut busy: HashMap<String, String> = self
            .faults
            .values()
            .map(|f| (f.entry.target.clone(), f.entry.id.clone()))
            .collect();
        for (id, p) in &self.preparing {
            if let Some(target) = &p.target {
                busy.insert(target.clone(), id.clone());
            }
        }
        busy
    }

    fn revert(&mut self, id: &str, reply: Reply<FaultView>) {
        let Some(fault) = self.faults.get_mut(id) else {
            let _ = reply.send(Err(Error::NotFound(id.to_string())));
            return;
        };
        fault.revert_replies.push(reply);
        match &mut fault.phase {
            Phase::Injecting {
                revert_requested, ..
            } => *revert_requested = true,
            Phase::Reverting => {}
            Phase::Active | Phase::RetryAt(_) => self.start_revert(id),
        }
    }

    fn finished(&mut self, done: Result<(Id, Op), tokio::task::JoinError>) {
        let op = match done {
            Ok((task, op)) => {
                self.op_faults.remove(&task);
                op
            }
            Err(join_error) => {
                // A backend panicked: report it as that operation's failure.
                let Some((id, kind)) = self.op_faults.remove(&join_error.id()) else {
                    error!(error = %join_error, "an untracked fault operation panicked");
                    return;
                };
                error!(fault = %id, ?kind, error = %join_error, "fault operation panicked");
                let failed = || {
                    Err(backend::Error::Unsupported(format!(
                        "panicked: {join_error}"
                    )))
                };
                match kind {
                    OpKind::Prepare => Op::Prepared {
                        id,
                        result: Err(Error::Stopped),
                    },
                    OpKind::Inject => Op::Injected {
                        id,
                        result: failed(),
                    },
                    OpKind::Revert => Op::Reverted {
                        id,
                        result: failed(),
                    },
                }
            }
        };
        match op {
            Op::Prepared { id, result } => self.prepared(id, result),
            Op::Injected { id, result } => self.injected(&id, result),
            Op::Reverted { id, result } => self.reverted(&id, result),
        }
    }

    /// The target is resolved: record the fault in the ledger, then inject.
    fn prepared(&mut self, id: String, result: Result<(String, Action, Subject), Error>) {
        let Some(preparing) = self.preparing.remove(&id) else {
            warn!(fault = %id, "resolved a request the actor no longer tracks; ignoring");
            return;
        };
        let (target, action, subject) = match result {
            Ok(resolved) => resolved,
            Err(e) => {
                let _ = preparing.reply.send(Err(e));
                return;
            }
        };
        if self.stopping.is_some() {
            let _ = preparing.reply.send(Err(Error::Stopped));
            return;
        }
        // A group request did not occupy its member while resolving.
        if let Some(other) = self.faults.values().find(|f| f.entry.target == target) {
            let _ = preparing.reply.send(Err(Error::Conflict {
                target,
                fault_id: other.entry.id.clone(),
            }));
            return;
        }
        let now = now_ms();
        let entry = Entry {
            id: id.clone(),
            target,
            action,
            injected_at_ms: now,
            revert_by_ms: now.saturating_add(preparing.duration.as_millis() as i64),
            subject,
        };
        // Before anything is touched: a fault that is not recorded is never injected. The
        // write is synchronous on purpose: a small file, and nothing may happen before it is
        // durable.
        if let Err(e) = self.ledger.insert(entry.clone()) {
            error!(error = %e, "cannot record fault; not injecting");
            let _ = preparing.reply.send(Err(e.into()));
            return;
        }
        info!(fault = %id, target = %entry.target, action = %action, revert_by_ms = entry.revert_by_ms, "injecting fault");
        let backend = self.backends.get(entry.subject.backend());
        self.faults.insert(
            id.clone(),
            Fault {
                entry: entry.clone(),
                phase: Phase::Injecting {
                    reply: Some(preparing.reply),
                    revert_requested: false,
                },
                revert_at: Instant::now() + preparing.duration,
                failures: 0,
                last_error: None,
                revert_replies: Vec::new(),
            },
        );
        let task = self.ops.spawn(async move {
            let result = backend.inject(action, &entry.subject).await;
            Op::Injected {
                id: entry.id,
                result,
            }
        });
        self.op_faults.insert(task.id(), (id, OpKind::Inject));
    }

    fn injected(&mut self, id: &str, result: Result<(), backend::Error>) {
        let stopping = self.stopping.is_some();
        let Some(fault) = self.tracked(id) else {
            return;
        };
        let (reply, revert_requested) = match std::mem::replace(&mut fault.phase, Phase::Active) {
            Phase::Injecting {
                reply,
                revert_requested,
            } => (reply, revert_requested),
            // Never expected (one inject per fault); the fault is now `Active`, so its timer
            // reverts it at the latest.
            other => {
                warn!(fault = %id, "inject finished for a fault that was not injecting");
                fault.phase = other;
                return;
            }
        };
        let entry = fault.entry.clone();
        let in_effect = fault.view();
        match result {
            Ok(()) => {
                self.metrics
                    .injected
                    .with_label_values(&[entry.target.as_str(), entry.action.as_str()])
                    .inc();
                self.metrics.set_active(&entry, true);
                info!(fault = %id, target = %entry.target, action = %entry.action, "fault in effect");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(in_effect));
                }
                if revert_requested || stopping {
                    self.start_revert(id);
                }
            }
            Err(e) => {
                // It may have half happened (SIGTERM sent, never exited): revert it anyway.
                warn!(fault = %id, target = %entry.target, action = %entry.action, error = %e, "inject failed; reverting");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(Error::Backend {
                        target: entry.target.clone(),
                        action: entry.action,
                        source: Arc::new(e),
                    }));
                }
                self.start_revert(id);
            }
        }
    }

    fn start_revert(&mut self, id: &str) {
        let Some(fault) = self.tracked(id) else {
            return;
        };
        fault.phase = Phase::Reverting;
        let entry = fault.entry.clone();
        let backend = self.backends.get(entry.subject.backend());
        let task = self.ops.spawn(async move {
            let result = backend.revert(entry.action, &entry.subject).await;
            Op::Reverted {
                id: entry.id,
                result,
            }
        });
        self.op_faults
            .insert(task.id(), (id.to_string(), OpKind::Revert));
    }

    fn reverted(&mut self, id: &str, result: Result<(), backend::Error>) {
        match result {
            Ok(()) => {
                let fault = self.faults.remove(id);
                // Only now may the entry go: the revert is done.
                let removed = match self.ledger.remove(id) {
                    Ok(removed) => removed,
                    Err(e) => {
                        error!(fault = %id, error = %e, "reverted, but the ledger file still lists it; a restart reverts it again (harmlessly)");
                        None
                    }
                };
                let (entry, replies) = match (fault, removed) {
                    (Some(fault), _) => (fault.entry, fault.revert_replies),
                    // Never expected: a revert runs only for a tracked fault. The revert
                    // succeeded, so it is reverted either way.
                    (None, Some(entry)) => {
                        warn!(fault = %id, "reverted a fault the actor no longer tracked");
                        (entry, Vec::new())
                    }
                    (None, None) => {
                        warn!(fault = %id, "revert finished for an unknown fault; ignoring");
                        return;
                    }
                };
                let labels = [entry.target.as_str(), entry.action.as_str()];
                self.metrics.reverts.with_label_values(&labels).inc();
                self.metrics.set_active(&entry, false);
                info!(fault = %id, target = %entry.target, action = %entry.action, "fault reverted");
                let view = view(&entry, Some(now_ms()), None);
                for reply in replies {
                    let _ = reply.send(Ok(view.clone()));
                }
            }
            Err(e) => {
                let Some(fault) = self.tracked(id) else {
                    return;
                };
                fault.failures += 1;
                let backoff = backoff(fault.failures);
                fault.phase = Phase::RetryAt(Instant::now() + backoff);
                fault.last_error = Some(e.to_string());
                let replies = std::mem::take(&mut fault.revert_replies);
                let entry = fault.entry.clone();
                self.metrics
                    .revert_failures
                    .with_label_values(&[entry.target.as_str()])
                    .inc();
                warn!(fault = %id, target = %entry.target, action = %entry.action, error = %e, kind = e.kind(), retry_in = ?backoff, "revert failed; retrying");
                let error = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(Error::Backend {
                        target: entry.target.clone(),
                        action: entry.action,
                        source: error.clone(),
                    }));
                }
            }
        }
    }

    /// The tracked fault `id`. Should the actor have lost track of a fault the ledger still
    /// lists (never expected), it adopts it as due for revert rather than leave it in effect;
    /// an id in neither is logged and ignored. Never panics: this actor is what reverts.
    fn tracked(&mut self, id: &str) -> Option<&mut Fault> {
        if !self.faults.contains_key(id) {
            let Some(entry) = self.ledger.get(id).cloned() else {
                warn!(fault = %id, "operation finished for an unknown fault; ignoring");
                return None;
            };
            error!(fault = %id, target = %entry.target, "the ledger lists a fault the actor lost track of; reverting it");
            self.faults.insert(id.to_string(), Fault::adopted(entry));
        }
        self.faults.get_mut(id)
    }

    /// The earliest instant a timer must fire: a fault's `revert_at`, a retry, the end of
    /// the shutdown grace. Once the grace is over nothing is retried, so only reverts still
    /// running (not timers) keep `run` going.
    fn next_wake(&self) -> Option<Instant> {
        let past_grace = self.past_grace(Instant::now());
        let faults = self.faults.values().filter_map(|f| match f.phase {
            Phase::Active => Some(f.revert_at),
            Phase::RetryAt(at) if !past_grace => Some(at),
            Phase::RetryAt(_) | Phase::Injecting { .. } | Phase::Reverting => None,
        });
        let grace = self
            .stopping
            .filter(|_| !past_grace)
            .map(|since| since + SHUTDOWN_GRACE);
        faults.chain(grace).min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let past_grace = self.past_grace(now);
        let mut due = Vec::new();
        for (id, fault) in &self.faults {
            match fault.phase {
                Phase::Active if fault.revert_at <= now => {
                    info!(fault = %id, "fault reached its duration; reverting");
                    due.push(id.clone());
                }
                Phase::RetryAt(at) if at <= now && !past_grace => due.push(id.clone()),
                _ => {}
            }
        }
        for id in due {
            self.start_revert(&id);
        }
    }

    fn next_id(&mut self) -> String {
        self.next_seq += 1;
        format!("f-{:x}-{}", now_ms(), self.next_seq)
    }
}

fn supported(name: &str, target: &Target, action: Action) -> Result<(), Error> {
    target
        .supports(action)
        .map_err(|reason| Error::UnsupportedAction {
            target: name.to_string(),
            action,
            backend: target.backend().as_str(),
            reason: Some(reason),
        })
}

/// Delay before retry number `failures` (1-based): 1 s doubling, capped at 30 s.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

fn target_views(config: &Config) -> Vec<TargetView> {
    let mut views: Vec<TargetView> = config
        .targets
        .iter()
        .map(|(name, target)| TargetView {
            name: name.clone(),
            backend: target.backend().as_str(),
            default_action: Some(target.default_action()),
            actions: target.actions(),
            group: target.group().map(String::from),
            members: Vec::new(),
        })
        .collect();
    for (group, members) in config.groups() {
        let targets: Vec<&Target> = members.iter().map(|m| &config.targets[*m]).collect();
        let first = targets[0];
        let default_action = targets
            .iter()
            .all(|t| t.default_action() == first.default_action())
            .then(|| first.default_action());
        let actions = first
            .actions()
            .into_iter()
            .filter(|a| targets.iter().all(|t| t.supports(*a).is_ok()))
            .collect();
        views.push(TargetView {
            name: group.to_string(),
            backend: first.backend().as_str(),
            default_action,
            actions,
            group: None,
            members: members.iter().map(|m| m.to_string()).collect(),
        });
    }
    views
}

#[cfg(test)]
mod tests {
    use std::{
        collections::VecDeque,
        path::{Path, PathBuf},
        sync::Mutex,
    };

    use futures_util::future::BoxFuture;
    use tokio::{sync::watch, task::JoinHandle};

    use super::*;
    use crate::faults::backend::{DockerSubject, ProcessSubject};

    #[test]
    fn backoff_doubles_to_thirty_seconds() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn default_targets_and_the_taskmanager_group_are_listed() {
        let views = target_views(&Config::default());
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "jobmanager",
                "kafka",
                "taskmanager-1",
                "taskmanager-2",
                "taskmanager"
            ]
        );
        let group = views.last().unwrap();
        assert_eq!(group.members, ["taskmanager-1", "taskmanager-2"]);
        assert_eq!(group.default_action, Some(Action::Kill));
        assert_eq!(group.actions, [Action::Stop, Action::Kill, Action::Pause]);
        assert_eq!(views[1].default_action, Some(Action::Stop));
    }

    fn actor(config: Config) -> (Faults, Handle, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            ledger: dir.path().join("faults.json"),
            ..config
        };
        let (faults, handle) = Faults::build(&config, &Registry::new()).unwrap();
        (faults, handle, dir)
    }

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let (faults, _handle, _dir) = actor(Config::default());
        let check = |req: InjectRequest| {
            faults
                .check(&req)
                .map(|c| (c.candidates.len(), c.duration, c.occupies))
        };
        assert_eq!(
            check(InjectRequest::new("kafka")).unwrap(),
            (1, Duration::from_secs(30), Some("kafka".to_string()))
        );
        assert_eq!(
            check(InjectRequest::new("taskmanager")).unwrap(),
            (2, Duration::from_secs(30), None)
        );
        assert_eq!(
            check(InjectRequest::new("nope")).unwrap_err().kind(),
            "unknown_target"
        );
        let err = check(InjectRequest::new("kafka").action(Action::Disconnect)).unwrap_err();
        assert_eq!(err.kind(), "unsupported_action");
        let err =
            check(InjectRequest::new("kafka").duration(Duration::from_secs(601))).unwrap_err();
        assert_eq!(err.to_string(), "duration 10m 1s exceeds max_duration 10m");
        let err = check(InjectRequest::new("kafka").duration(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), "zero_duration");
        assert!(check(InjectRequest::new("kafka").duration(Duration::from_secs(600))).is_ok());
    }

    /// An operation the fake backend was asked for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Call {
        Resolve,
        Inject,
        Revert,
    }

    /// How the fake answers one call.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Fail,
        Panic,
        /// Succeeds after this long (on the paused clock).
        After(Duration),
    }

    /// A backend that records every call with the (paused) clock's time and answers from a
    /// script: the next scripted answer for that operation, success once there is none.
    struct Fake {
        kind: BackendKind,
        script: Mutex<HashMap<Call, VecDeque<Answer>>>,
        calls: watch::Sender<Vec<(Call, Action, Instant)>>,
    }

    impl Fake {
        fn new(kind: BackendKind) -> Arc<Fake> {
            Arc::new(Fake {
                kind,
                script: Mutex::default(),
                calls: watch::Sender::new(Vec::new()),
            })
        }

        /// Answers the next calls of `call` with `answers`, in order.
        fn script(&self, call: Call, answers: impl IntoIterator<Item = Answer>) {
            self.script
                .lock()
                .unwrap()
                .entry(call)
                .or_default()
                .extend(answers);
        }

        /// Every call so far, in order.
        fn calls(&self) -> Vec<(Call, Action)> {
            self.calls.borrow().iter().map(|c| (c.0, c.1)).collect()
        }

        /// Waits until `call` happened `n` times; when each happened.
        async fn wait_for(&self, call: Call, n: usize) -> Vec<Instant> {
            let mut calls = self.calls.subscribe();
            let calls = calls
                .wait_for(|calls| calls.iter().filter(|c| c.0 == call).count() >= n)
                .await
                .unwrap();
            calls.iter().filter(|c| c.0 == call).map(|c| c.2).collect()
        }

        async fn answer(&self, call: Call, action: Action) -> Result<(), backend::Error> {
            self.calls
                .send_modify(|calls| calls.push((call, action, Instant::now())));
            let answer = self
                .script
                .lock()
                .unwrap()
                .get_mut(&call)
                .and_then(VecDeque::pop_front);
            match answer {
                None => Ok(()),
                Some(Answer::Fail) => Err(backend::Error::NotRunning(format!(
                    "scripted {call:?} failure"
                ))),
                Some(Answer::Panic) => panic!("scripted {call:?} panic"),
                Some(Answer::After(delay)) => {
                    tokio::time::sleep(delay).await;
                    Ok(())
                }
            }
        }
    }

    impl Backend for Fake {
        fn kind(&self) -> BackendKind {
            self.kind
        }

        fn resolve<'a>(
            &'a self,
            target: &'a Target,
            action: Action,
        ) -> BoxFuture<'a, Result<Subject, backend::Error>> {
            Box::pin(async move {
                self.answer(Call::Resolve, action).await?;
                Ok(match target {
                    Target::Process(t) => Subject::Process(ProcessSubject {
                        pid: 4242,
                        start_ticks: 1,
                        pid_file: t.pid_file.clone(),
                        start: t.start.clone(),
                    }),
                    Target::Docker(t) => Subject::Docker(container(
                        t.container
                            .as_deref()
                            .or(t.service.as_deref())
                            .unwrap_or("x"),
                    )),
                })
            })
        }

        fn inject<'a>(
            &'a self,
            action: Action,
            _subject: &'a Subject,
        ) -> BoxFuture<'a, Result<(), backend::Error>> {
            Box::pin(async move { self.answer(Call::Inject, action).await })
        }

        fn revert<'a>(
            &'a self,
            action: Action,
            _subject: &'a Subject,
        ) -> BoxFuture<'a, Result<(), backend::Error>> {
            Box::pin(async move { self.answer(Call::Revert, action).await })
        }
    }

    fn container(name: &str) -> DockerSubject {
        DockerSubject {
            container_id: format!("{name}-id"),
            container_name: name.to_string(),
            service: None,
            network: None,
            aliases: Vec::new(),
        }
    }

    /// The default targets (process: kafka, jobmanager, taskmanager-1/2) with the ledger in
    /// `dir`.
    fn fake_config(dir: &Path) -> Config {
        Config {
            ledger: dir.join("faults.json"),
            ..Config::default()
        }
    }

    /// An actor on fake backends, running.
    struct Running {
        handle: Handle,
        process: Arc<Fake>,
        docker: Arc<Fake>,
        registry: Registry,
        cancel: CancellationToken,
        task: JoinHandle<()>,
        ledger: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl Running {
        /// Builds the actor with `fake_config` on `dir` (whose ledger may already hold
        /// faults) and fakes scripted by `script(process, docker)`, and spawns `run`.
        fn start(dir: tempfile::TempDir, script: impl FnOnce(&Fake, &Fake)) -> Running {
            let config = fake_config(dir.path());
            let (process, docker) = (
                Fake::new(BackendKind::Process),
                Fake::new(BackendKind::Docker),
            );
            script(&process, &docker);
            let registry = Registry::new();
            let backends = Backends::new(process.clone(), docker.clone());
            let (faults, handle) =
                Faults::build_with_backends(&config, &registry, backends).unwrap();
            let cancel = CancellationToken::new();
            let task = tokio::spawn(faults.run(cancel.clone()));
            Running {
                handle,
                process,
                docker,
                registry,
                cancel,
                task,
                ledger: config.ledger,
                _dir: dir,
            }
        }

        /// Cancels `run` and waits for it to return.
        async fn stop(&mut self) {
            self.cancel.cancel();
            (&mut self.task).await.unwrap();
        }

        /// What the ledger file holds.
        fn ledger(&self) -> Vec<Entry> {
            Ledger::open(&self.ledger).unwrap().entries().to_vec()
        }

        /// The value of counter `name` in the series with these label values (0 if absent).
        fn counter(&self, name: &str, labels: &[&str]) -> u64 {
            self.series(name, labels)
                .map_or(0, |m| m.get_counter().get_value() as u64)
        }

        /// `firedrill_fault_active{target, action}`.
        fn active(&self, target: &str, action: Action) -> i64 {
            self.series("firedrill_fault_active", &[target, action.as_str()])
                .map_or(0, |m| m.get_gauge().get_value() as i64)
        }

        fn series(&self, name: &str, labels: &[&str]) -> Option<prometheus::proto::Metric> {
            self.registry
                .gather()
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric())
                .find(|m| {
                    labels
                        .iter()
                        .all(|v| m.get_label().iter().any(|l| l.value() == *v))
                })
                .cloned()
        }
    }

    /// Waits until fault `id` has been reverted, if a revert was already under way: a
    /// revert request joins the one in flight, or finds the fault gone.
    async fn reverted(handle: &Handle, id: &str) {
        match handle.revert(id).await {
            Ok(view) => assert_eq!(view.state, FaultState::Reverted),
            Err(Error::NotFound(_)) => {}
            Err(e) => panic!("revert of {id} failed: {e}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_revert_is_retried_with_backoff_until_it_succeeds() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Revert, [Answer::Fail; 3]);
        });
        let request = InjectRequest::new("kafka").duration(Duration::from_secs(300));
        let fault = actor.handle.inject(request).await.unwrap();
        assert_eq!(
            (fault.state, fault.action),
            (FaultState::Active, Action::Stop)
        );
        assert_eq!(actor.active("kafka", Action::Stop), 1);

        // The client's revert fails: it is told, and the fault stays, failing.
        let err = actor.handle.revert(&fault.id).await.unwrap_err();
        assert_eq!(err.kind(), "backend");
        assert!(err.to_string().contains("scripted Revert failure"), "{err}");
        let listed = actor.handle.list().await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, FaultState::RevertFailing);
        assert!(listed[0].last_error.is_some());
        assert_eq!(actor.ledger().len(), 1);
        let failures =
            |actor: &Running| actor.counter("firedrill_fault_revert_failures_total", &["kafka"]);
        assert_eq!(failures(&actor), 1);

        // Retried after 1 s, 2 s and 4 s; the fourth attempt succeeds.
        let attempts = actor.process.wait_for(Call::Revert, 4).await;
        let gaps: Vec<u64> = attempts
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs())
            .collect();
        assert_eq!(gaps, [1, 2, 4]);
        reverted(&actor.handle, &fault.id).await;
        assert!(actor.handle.list().await.is_empty());
        assert!(actor.ledger().is_empty());
        assert_eq!(failures(&actor), 3);
        let labels = ["kafka", "stop"];
        assert_eq!(actor.counter("firedrill_fault_reverts_total", &labels), 1);
        assert_eq!(actor.counter("firedrill_faults_injected_total", &labels), 1);
        assert_eq!(actor.active("kafka", Action::Stop), 0);
        actor.stop().await;
        assert_eq!(actor.process.calls().len(), 6, "resolve, inject, 4 reverts");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_reverts_itself_when_its_duration_runs_out() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |_, _| {});
        let max = actor.handle.max_duration();
        let request = InjectRequest::new("taskmanager").duration(max);
        let fault = actor.handle.inject(request).await.unwrap();
        assert_eq!(fault.target, "taskmanager-1");
        assert_eq!(
            fault.revert_by_ms - fault.injected_at_ms,
            max.as_millis() as i64
        );

        let injected = actor.process.wait_for(Call::Inject, 1).await[0];
        let reverted_at = actor.process.wait_for(Call::Revert, 1).await[0];
        assert_eq!(reverted_at - injected, max);
        reverted(&actor.handle, &fault.id).await;
        assert!(actor.ledger().is_empty());
        let labels = ["taskmanager-1", "kill"];
        assert_eq!(actor.counter("firedrill_fault_reverts_total", &labels), 1);
        assert_eq!(actor.active("taskmanager-1", Action::Kill), 0);
        // Longer than max_duration is refused before anything runs.
        let too_long = InjectRequest::new("kafka").duration(max + Duration::from_secs(1));
        let err = actor.handle.inject(too_long).await.unwrap_err();
        assert_eq!(err.kind(), "duration_too_long");
        actor.stop().await;
        assert_eq!(
            actor.process.calls(),
            [
                (Call::Resolve, Action::Kill),
                (Call::Inject, Action::Kill),
                (Call::Revert, Action::Kill)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_reverts_an_active_fault_before_run_returns() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |_, _| {});
        let request = InjectRequest::new("kafka").action(Action::Pause);
        let fault = actor.handle.inject(request).await.unwrap();
        assert_eq!(actor.ledger().len(), 1);
        let start = Instant::now();

        actor.stop().await;
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "no wait for the fault's duration"
        );
        assert_eq!(
            actor.process.calls(),
            [
                (Call::Resolve, Action::Pause),
                (Call::Inject, Action::Pause),
                (Call::Revert, Action::Pause)
            ]
        );
        assert!(actor.ledger().is_empty());
        let labels = ["kafka", "pause"];
        assert_eq!(actor.counter("firedrill_fault_reverts_total", &labels), 1);
        assert_eq!(actor.active("kafka", Action::Pause), 0);
        let err = actor.handle.revert(&fault.id).await.unwrap_err();
        assert_eq!(err.kind(), "stopped");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_retries_failing_reverts_for_the_grace_then_leaves_them_in_the_ledger() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Revert, [Answer::Fail; 100]);
        });
        let fault = actor
            .handle
            .inject(InjectRequest::new("jobmanager"))
            .await
            .unwrap();
        let start = Instant::now();

        actor.stop().await;
        assert_eq!(start.elapsed(), SHUTDOWN_GRACE);
        // At 0, 1, 3, 7, 15 and 31 s; the next (61 s) is past the grace.
        let attempts = actor.process.wait_for(Call::Revert, 6).await;
        assert_eq!(attempts.len(), 6);
        assert_eq!(
            actor.counter("firedrill_fault_revert_failures_total", &["jobmanager"]),
            6
        );
        let left: Vec<String> = actor.ledger().into_iter().map(|e| e.id).collect();
        assert_eq!(left, [fault.id]);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_during_an_inject_reverts_once_the_inject_is_done() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Inject, [Answer::After(Duration::from_secs(5))]);
        });
        let handle = actor.handle.clone();
        let inject = tokio::spawn(async move { handle.inject(InjectRequest::new("kafka")).await });
        let start = actor.process.wait_for(Call::Inject, 1).await[0];

        actor.stop().await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        let fault = inject.await.unwrap().unwrap();
        assert_eq!(fault.state, FaultState::Active, "it did take effect");
        let calls: Vec<Call> = actor.process.calls().into_iter().map(|c| c.0).collect();
        assert_eq!(calls, [Call::Resolve, Call::Inject, Call::Revert]);
        assert!(actor.ledger().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_revert_still_running_when_the_grace_ends_is_awaited() {
        let slow = SHUTDOWN_GRACE + Duration::from_secs(40);
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Revert, [Answer::After(slow)]);
        });
        actor
            .handle
            .inject(InjectRequest::new("kafka"))
            .await
            .unwrap();
        let start = Instant::now();

        // Past the grace only the running revert keeps `run` going: no timer is due, so the
        // paused clock can move on to the revert's end (a due timer would spin).
        actor.stop().await;
        assert_eq!(start.elapsed(), slow);
        assert!(actor.ledger().is_empty());
        assert_eq!(actor.process.wait_for(Call::Revert, 1).await.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn startup_reverts_what_the_ledger_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&fake_config(dir.path()).ledger).unwrap();
        let left = |id: &str, target: &str, action, subject| Entry {
            id: id.to_string(),
            target: target.to_string(),
            action,
            injected_at_ms: 1_000,
            revert_by_ms: 31_000,
            subject,
        };
        let kafka = Subject::Process(ProcessSubject {
            pid: 77,
            start_ticks: 5,
            pid_file: ".stack/pids/kafka.pid".into(),
            start: vec!["start-kafka".into()],
        });
        ledger
            .insert(left("f-1", "kafka", Action::Stop, kafka))
            .unwrap();
        let db = Subject::Docker(container("db"));
        ledger.insert(left("f-2", "db", Action::Pause, db)).unwrap();
        drop(ledger);

        let mut actor = Running::start(dir, |_, docker| {
            docker.script(Call::Revert, [Answer::Fail]);
        });
        actor.process.wait_for(Call::Revert, 1).await;
        let attempts = actor.docker.wait_for(Call::Revert, 2).await;
        assert_eq!(attempts[1] - attempts[0], Duration::from_secs(1));
        reverted(&actor.handle, "f-1").await;
        reverted(&actor.handle, "f-2").await;
        assert!(actor.ledger().is_empty());
        assert_eq!(actor.process.calls(), [(Call::Revert, Action::Stop)]);
        assert_eq!(
            actor.docker.calls(),
            [(Call::Revert, Action::Pause), (Call::Revert, Action::Pause)]
        );
        assert_eq!(
            actor.counter("firedrill_fault_reverts_total", &["db", "pause"]),
            1
        );
        assert_eq!(
            actor.counter("firedrill_fault_revert_failures_total", &["db"]),
            1
        );
        assert_eq!(actor.active("kafka", Action::Stop), 0);
        actor.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_inject_is_reverted_anyway() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Inject, [Answer::Fail]);
        });
        let err = actor
            .handle
            .inject(InjectRequest::new("kafka"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), "backend");
        actor.process.wait_for(Call::Revert, 1).await;
        actor.stop().await;
        assert!(actor.ledger().is_empty());
        let labels = ["kafka", "stop"];
        assert_eq!(actor.counter("firedrill_faults_injected_total", &labels), 0);
        assert_eq!(actor.counter("firedrill_fault_reverts_total", &labels), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_revert_counts_as_a_failure_and_is_retried() {
        let mut actor = Running::start(tempfile::tempdir().unwrap(), |process, _| {
            process.script(Call::Revert, [Answer::Panic]);
        });
        let fault = actor
            .handle
            .inject(InjectRequest::new("kafka"))
            .await
            .unwrap();
        let err = actor.handle.revert(&fault.id).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        actor.process.wait_for(Call::Revert, 2).await;
        reverted(&actor.handle, &fault.id).await;
        assert!(actor.ledger().is_empty());
        assert_eq!(
            actor.counter("firedrill_fault_revert_failures_total", &["kafka"]),
            1
        );
        actor.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn state_out_of_step_is_reverted_or_logged_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let config = fake_config(dir.path());
        let mut ledger = Ledger::open(&config.ledger).unwrap();
        let entry = Entry {
            id: "f-lost".into(),
            target: "db".into(),
            action: Action::Pause,
            injected_at_ms: 1_000,
            revert_by_ms: 2_000,
            subject: Subject::Docker(container("db")),
        };
        ledger.insert(entry).unwrap();
        drop(ledger);
        let docker = Fake::new(BackendKind::Docker);
        let backends = Backends::new(Fake::new(BackendKind::Process), docker.clone());
        let (mut faults, _handle) =
            Faults::build_with_backends(&config, &Registry::new(), backends).unwrap();
        // The actor never tracked "f-lost" (run would have), yet the ledger lists it.
        let failed = || Err(backend::Error::NotRunning("still paused".into()));

        faults.reverted("f-lost", failed());
        let fault = &faults.faults["f-lost"];
        assert!(matches!(fault.phase, Phase::RetryAt(_)));
        assert_eq!(fault.failures, 1);
        faults.injected("f-lost", Ok(()));
        assert!(matches!(faults.faults["f-lost"].phase, Phase::RetryAt(_)));
        faults.reverted("f-lost", Ok(()));
        assert!(faults.faults.is_empty());
        assert!(faults.ledger.entries().is_empty());

        // Ids nobody knows: logged and dropped.
        faults.reverted("f-ghost", Ok(()));
        faults.reverted("f-ghost", failed());
        faults.injected("f-ghost", Ok(()));
        faults.start_revert("f-ghost");
        faults.prepared("f-ghost".into(), Err(Error::Stopped));
        assert!(faults.faults.is_empty() && faults.ops.is_empty());
        assert!(docker.calls().is_empty());
    }
}
