//! A drill's samples, taken in a task of their own from the baseline to the end of the drain,
//! whatever the runner is awaiting meanwhile (an injection, a revert, a resubmission, a slow
//! REST call): one observation per audit snapshot (once a second), fed to the [`Tracker`].
//! A second without a snapshot is recorded as a missed sample, not skipped. The newest
//! retained checkpoint seen is kept for a resubmission.

use std::time::Duration;

use tokio::{
    sync::{mpsc, watch},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::phases::{Observation, Phases, Tracker};
use crate::{
    audit::{ledger::Totals, AuditSnapshot},
    clock::now_ms,
    flink::monitor::FlinkStatus,
    kafka::monitor::LagSnapshot,
};

/// A snapshot later than this counts as missed.
const MISSED_AFTER: Duration = Duration::from_millis(2500);

/// What the runner tells the sampler.
enum Mark {
    Injected,
    Reverted(i64),
}

/// The handle of the sampling task.
pub struct Sampler {
    marks: mpsc::UnboundedSender<Mark>,
    phases: watch::Receiver<Phases>,
    checkpoint: watch::Receiver<Option<String>>,
    stop: CancellationToken,
    task: Option<JoinHandle<Tracker>>,
}

impl Sampler {
    /// Starts sampling the audit, Flink and the lag of `lag_group`; `checkpoint` is the
    /// newest retained checkpoint known so far; throughput is judged over `rate_window`
    /// observations.
    pub fn spawn(
        audit: watch::Receiver<AuditSnapshot>,
        flink: watch::Receiver<FlinkStatus>,
        lag: watch::Receiver<LagSnapshot>,
        lag_group: String,
        checkpoint: Option<String>,
        rate_window: usize,
    ) -> Sampler {
        let (marks, marks_rx) = mpsc::unbounded_channel();
        let (phases_tx, phases) = watch::channel(Phases::default());
        let (checkpoint_tx, checkpoint) = watch::channel(checkpoint);
        let stop = CancellationToken::new();
        let task = Task {
            audit,
            flink,
            lag,
            lag_group,
            tracker: Tracker::measuring().with_rate_window(rate_window),
            marks: marks_rx,
            phases: phases_tx,
            checkpoint: checkpoint_tx,
        };
        Sampler {
            marks,
            phases,
            checkpoint,
            task: Some(tokio::spawn(task.run(stop.clone()))),
            stop,
        }
    }

    /// The fault is in: later samples count towards degradation and recovery, and the
    /// baseline is fixed.
    pub fn injected(&self) {
        let _ = self.marks.send(Mark::Injected);
    }

    /// The fault was reverted at `at_ms`.
    pub fn reverted(&self, at_ms: i64) {
        let _ = self.marks.send(Mark::Reverted(at_ms));
    }

    /// The phases found so far, updated as they are.
    pub fn phases(&self) -> watch::Receiver<Phases> {
        self.phases.clone()
    }

    /// The newest retained checkpoint seen so far.
    pub fn checkpoint(&self) -> Option<String> {
        self.checkpoint.borrow().clone()
    }

    /// Stops sampling and hands back the tracker with every sample.
    pub async fn finish(mut self) -> Tracker {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => task.await.unwrap_or_else(|_| Tracker::measuring()),
            None => Tracker::measuring(),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        // An aborted or failed drill drops its sampler: stop the task with it.
        self.stop.cancel();
    }
}

struct Task {
    audit: watch::Receiver<AuditSnapshot>,
    flink: watch::Receiver<FlinkStatus>,
    lag: watch::Receiver<LagSnapshot>,
    lag_group: String,
    tracker: Tracker,
    marks: mpsc::UnboundedReceiver<Mark>,
    phases: watch::Sender<Phases>,
    checkpoint: watch::Sender<Option<String>>,
}

impl Task {
    async fn run(mut self, stop: CancellationToken) -> Tracker {
        self.audit.mark_unchanged();
        self.sample();
        let mut last = Instant::now();
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Some(mark) = self.marks.recv() => match mark {
                    Mark::Injected => {
                        self.tracker.injected();
                    }
                    Mark::Reverted(at_ms) => self.tracker.reverted(at_ms),
                },
                changed = self.audit.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.sample();
                    last = Instant::now();
                }
                _ = watchdog.tick() => {
                    let silent = last.elapsed();
                    if silent >= MISSED_AFTER {
                        self.tracker.missed(
                            now_ms(),
                            format!("no audit snapshot for {:.1} s", silent.as_secs_f64()),
                        );
                        last = Instant::now();
                    }
                }
            }
        }
        self.tracker
    }

    fn sample(&mut self) {
        let obs = observe(
            &self.audit.borrow(),
            &self.flink.borrow(),
            &self.lag.borrow(),
            &self.lag_group,
        );
        self.tracker.observe(obs);
        if let Some(path) = checkpoint_path(&self.flink.borrow()) {
            self.checkpoint.send_if_modified(|known| {
                let changed = known.as_deref() != Some(path.as_str());
                *known = Some(path);
                changed
            });
        }
        let phases = self.tracker.phases().clone();
        self.phases.send_if_modified(|p| {
            let changed = *p != phases;
            *p = phases;
            changed
        });
    }
}

/// One observation from the sources.
pub fn observe(
    audit: &AuditSnapshot,
    flink: &FlinkStatus,
    lag: &LagSnapshot,
    group: &str,
) -> Observation {
    let (job_running, job_running_since_ms) = match &flink.job {
        Some(job) if job.is_running() => (true, job.running_since_ms),
        _ => (false, None),
    };
    Observation {
        at_ms: audit.at_ms,
        processed: audit.totals.processed,
        unseen: unseen(&audit.totals),
        at_risk_cents: audit.totals.at_risk_cents,
        lag_messages: lag.messages(group),
        job_running,
        job_running_since_ms,
        flink_reachable: flink.reachable,
    }
}

/// Acked orders not yet seen.
pub fn unseen(t: &Totals) -> u64 {
    t.in_flight + t.missing + t.lost
}

/// The path of the latest completed checkpoint of the job in `status`, if it has one (a
/// status without a job, the JobManager down or back without it, has none: the last one
/// known stays).
pub fn checkpoint_path(status: &FlinkStatus) -> Option<String> {
    let path = status
        .job
        .as_ref()?
        .last_checkpoint
        .as_ref()?
        .external_path
        .as_ref()?;
    Some(path.trim_start_matches("file:").to_string())
}
