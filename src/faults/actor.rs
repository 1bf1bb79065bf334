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
//! refused from then on (list and revert are still served), failed reverts are retried for [`SHUTDOWN_GRACE`], and whatever still fails
//! stays in the ledger for the next start. Backend operations run in tasks owned by a
//! `JoinSet`, so aborting `run` (the test's stand-in for SIGKILL) stops them too and leaves
//! the ledger as a crash would.
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

/// Where a fault of the ledger is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The backend is injecting it.
    Injecting,
    /// In effect until `revert_at`.
    Active,
    /// The backend is reverting it.
    Reverting,
    /// The last revert failed; the next attempt is at this instant.
    RetryAt(Instant),
}

/// The runtime side of a ledger entry (the entry itself lives in the ledger).
struct Fault {
    phase: Phase,
    /// The dead-man's switch: when the fault reverts by itself.
    revert_at: Instant,
    /// Whether the injection took effect (for the active gauge).
    effective: bool,
    /// A revert was asked for while injecting; it starts when the inject finishes.
    revert_requested: bool,
    failures: u32,
    last_error: Option<String>,
    inject_reply: Option<Reply<FaultView>>,
    revert_replies: Vec<Reply<FaultView>>,
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
    process: Arc<ProcessBackend>,
    docker: Arc<DockerBackend>,
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
            process: Arc::new(ProcessBackend),
            docker: Arc::new(DockerBackend::new(upstreams)),
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
            if let Some(since) = self.stopping {
                let idle = self.ops.is_empty();
                if idle && self.faults.is_empty() {
                    info!("every fault reverted");
                    return;
                }
                if idle && since.elapsed() >= SHUTDOWN_GRACE {
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
            self.faults.insert(
                entry.id.clone(),
                Fault {
                    phase: Phase::Active,
                    revert_at: Instant::now(),
                    effective: true,
                    revert_requested: false,
                    failures: 0,
                    last_error: None,
                    inject_reply: None,
                    revert_replies: Vec::new(),
                },
            );
            self.start_revert(&entry.id);
        }
    }

    fn begin_shutdown(&mut self) {
        self.stopping = Some(Instant::now());
        info!(
            faults = self.faults.len(),
            "stopping: reverting every fault"
        );
        let ids: Vec<String> = self.faults.keys().cloned().collect();
        for id in ids {
            let fault = self.faults.get_mut(&id).expect("listed above");
            match fault.phase {
                Phase::Injecting => fault.revert_requested = true,
                Phase::Active | Phase::RetryAt(_) => self.start_revert(&id),
                Phase::Reverting => {}
            }
        }
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Inject(request, reply) => self.inject(request, reply),
            Command::Revert(id, reply) => self.revert(&id, reply),
            Command::List(reply) => {
                let views = self
                    .ledger
                    .entries()
                    .iter()
                    .map(|e| self.view(e, None))
                    .collect();
                let _ = reply.send(views);
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
        let process = self.process.clone();
        let docker = self.docker.clone();
        let group = request.target.clone();
        let is_group = occupies.is_none();
        let task_id = id.clone();
        let task = self.ops.spawn(async move {
            let mut reasons = Vec::new();
            for (name, target, action) in &candidates {
                let backend: &dyn Backend = match target.backend() {
                    BackendKind::Process => process.as_ref(),
                    BackendKind::Docker => docker.as_ref(),
                };
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

    /// Target -> the fault occupying it (in the ledger, or a request naming it being
    /// prepared).
    fn busy(&self) -> HashMap<String, String> {
        let mut busy: HashMap<String, String> = self
            .ledger
            .entries()
            .iter()
            .map(|e| (e.target.clone(), e.id.clone()))
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
        match fault.phase {
            Phase::Injecting => fault.revert_requested = true,
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
        if let Some(other) = self.ledger.entries().iter().find(|e| e.target == target) {
            let _ = preparing.reply.send(Err(Error::Conflict {
                target,
                fault_id: other.id.clone(),
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
        self.faults.insert(
            id.clone(),
            Fault {
                phase: Phase::Injecting,
                revert_at: Instant::now() + preparing.duration,
                effective: false,
                revert_requested: false,
                failures: 0,
                last_error: None,
                inject_reply: Some(preparing.reply),
                revert_replies: Vec::new(),
            },
        );
        let backend = self.backend(entry.subject.backend());
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
        let Some(entry) = self.ledger.get(id).cloned() else {
            return;
        };
        let Some(fault) = self.faults.get_mut(id) else {
            return;
        };
        let reply = fault.inject_reply.take();
        match result {
            Ok(()) => {
                fault.effective = true;
                fault.phase = Phase::Active;
                self.metrics
                    .injected
                    .with_label_values(&[entry.target.as_str(), entry.action.as_str()])
                    .inc();
                self.metrics.set_active(&entry, true);
                info!(fault = %id, target = %entry.target, action = %entry.action, "fault in effect");
                let revert_now = fault.revert_requested || self.stopping.is_some();
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(self.view(&entry, None)));
                }
                if revert_now {
                    self.start_revert(id);
                }
            }
            Err(e) => {
                // It may have half happened (SIGTERM sent, never exited): revert it anyway.
                warn!(fault = %id, target = %entry.target, action = %entry.action, error = %e, "inject failed; reverting");
                fault.phase = Phase::Active;
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
        let Some(entry) = self.ledger.get(id).cloned() else {
            return;
        };
        let Some(fault) = self.faults.get_mut(id) else {
            return;
        };
        fault.phase = Phase::Reverting;
        fault.revert_requested = false;
        let backend = self.backend(entry.subject.backend());
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
        let Some(entry) = self.ledger.get(id).cloned() else {
            return;
        };
        let labels = [entry.target.as_str(), entry.action.as_str()];
        match result {
            Ok(()) => {
                let fault = self.faults.remove(id).expect("a ledger entry has a fault");
                // Only now may the entry go: the revert is done.
                if let Err(e) = self.ledger.remove(id) {
                    error!(fault = %id, error = %e, "reverted, but the ledger still lists it; a restart reverts it again (harmlessly)");
                }
                self.metrics.reverts.with_label_values(&labels).inc();
                self.metrics.set_active(&entry, false);
                info!(fault = %id, target = %entry.target, action = %entry.action, "fault reverted");
                let view = self.view(&entry, Some(now_ms()));
                for reply in fault.revert_replies {
                    let _ = reply.send(Ok(view.clone()));
                }
            }
            Err(e) => {
                let fault = self.faults.get_mut(id).expect("a ledger entry has a fault");
                fault.failures += 1;
                let backoff = backoff(fault.failures);
                fault.phase = Phase::RetryAt(Instant::now() + backoff);
                fault.last_error = Some(e.to_string());
                self.metrics
                    .revert_failures
                    .with_label_values(&[entry.target.as_str()])
                    .inc();
                warn!(fault = %id, target = %entry.target, action = %entry.action, error = %e, kind = e.kind(), retry_in = ?backoff, "revert failed; retrying");
                let replies = std::mem::take(&mut fault.revert_replies);
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

    /// The earliest instant a timer must fire: a fault's `revert_at`, a retry, the end of
    /// the shutdown grace.
    fn next_wake(&self) -> Option<Instant> {
        let faults = self.faults.values().filter_map(|f| match f.phase {
            Phase::Active => Some(f.revert_at),
            Phase::RetryAt(at) => Some(at),
            Phase::Injecting | Phase::Reverting => None,
        });
        let grace = self.stopping.map(|since| since + SHUTDOWN_GRACE);
        faults.chain(grace).min()
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        let past_grace = self
            .stopping
            .is_some_and(|since| now >= since + SHUTDOWN_GRACE);
        let due: Vec<String> = self
            .faults
            .iter()
            .filter(|(_, f)| match f.phase {
                Phase::Active => f.revert_at <= now,
                Phase::RetryAt(at) => at <= now && !past_grace,
                Phase::Injecting | Phase::Reverting => false,
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            if self.faults[&id].phase == Phase::Active {
                info!(fault = %id, "fault reached its duration; reverting");
            }
            self.start_revert(&id);
        }
    }

    fn backend(&self, kind: BackendKind) -> Arc<dyn Backend> {
        match kind {
            BackendKind::Process => self.process.clone(),
            BackendKind::Docker => self.docker.clone(),
        }
    }

    fn next_id(&mut self) -> String {
        self.next_seq += 1;
        format!("f-{:x}-{}", now_ms(), self.next_seq)
    }

    fn view(&self, entry: &Entry, reverted_at_ms: Option<i64>) -> FaultView {
        let fault = self.faults.get(&entry.id);
        let last_error = fault.and_then(|f| f.last_error.clone());
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
            last_error: if reverted_at_ms.is_some() {
                None
            } else {
                last_error
            },
        }
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
    use super::*;

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
            check(InjectRequest::new("nope")).unwrap_err().http_status(),
            404
        );
        let err = check(InjectRequest::new("kafka").action(Action::Disconnect)).unwrap_err();
        assert_eq!(err.http_status(), 400);
        let err =
            check(InjectRequest::new("kafka").duration(Duration::from_secs(601))).unwrap_err();
        assert_eq!(err.to_string(), "duration 10m 1s exceeds max_duration 10m");
        let err = check(InjectRequest::new("kafka").duration(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), "zero_duration");
        assert!(check(InjectRequest::new("kafka").duration(Duration::from_secs(600))).is_ok());
    }
}
