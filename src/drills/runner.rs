//! Runs one drill: steady-state gate -> baseline -> inject -> observe -> revert -> recovery
//! (resubmitting the Flink job after a JobManager loss) -> drain -> report.
//!
//! The gate waits for the steady state ([`gate`]). From the baseline to the drain's end a
//! [`Sampler`] task takes one sample per audit snapshot, whatever the runner awaits, and
//! finds the live phases (degradation, job running, recovery). The drain pauses the generator
//! so that "lost" is exact: every order acked during the drill is either seen by the drain
//! deadline or counted lost; the generator's rate is restored afterwards. When output stopped,
//! resumed and caught up is then read from the output on Flink's clock (`audit::output`).
//! Abort (or shutdown) reverts the fault at once; a revert or resubmission under way runs to
//! its end. Durations are measured on tokio's clock, so the runner runs under paused time.

use std::time::Duration;

use prometheus::IntGaugeVec;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    gate::{self, Gate},
    report::{
        self, Baseline, FaultSummary, FlinkImpact, Orders, Output, OutputGap, Phase, PhaseName,
        Report, Revenue, Throughput, Verdict,
    },
    sampler::{self, unseen, Sampler},
    scenario::{comprehensive, Scenario},
    Config, DrillRequest, DrillState, DrillView,
};
use crate::{
    alerts::{self, score, Alerts},
    audit::{ledger::Totals, output::OutputTimeline, AuditSnapshot, SharedOutput},
    clock::now_ms,
    faults::{self, InjectRequest, TargetView},
    flink::monitor::FlinkStatus,
    generator, grafana,
    kafka::monitor::LagSnapshot,
};

/// Extra time a fault may last beyond the drill's own revert: the fault actor's dead-man's
/// switch, in case the runner itself is gone.
const DEAD_MANS_MARGIN: Duration = Duration::from_secs(30);

/// What drills observe and control; cheap to clone.
#[derive(Clone)]
pub struct Sources {
    /// Audit snapshots (once a second).
    pub audit: watch::Receiver<AuditSnapshot>,
    /// The output on Flink's clock.
    pub output: SharedOutput,
    /// The engine running the pipeline (written into each report).
    pub engine: crate::engine::Kind,
    /// The engine's status (every poll; Spark's in Flink's terms, see `spark::monitor`).
    pub flink: watch::Receiver<FlinkStatus>,
    /// Lag of the watched groups.
    pub lag: watch::Receiver<LagSnapshot>,
    /// The group whose lag the report shows.
    pub lag_group: String,
    /// The generator (paused during the drain).
    pub generator: generator::Handle,
    /// Fault injection.
    pub faults: faults::Handle,
    /// What Alertmanager's webhook said.
    pub alerts: Alerts,
    /// The alerts each scenario is expected to fire, and how long to wait for them.
    pub expected_alerts: alerts::Config,
    /// Region annotations in Grafana (a no-op without `[grafana] url`).
    pub annotations: grafana::Handle,
}

/// Why a drill ended without a report.
type Ended = (DrillState, String);

/// One drill, run by [`Drill::run`].
pub struct Drill {
    /// Drill id.
    pub id: String,
    /// What was asked.
    pub request: DrillRequest,
    /// Timings.
    pub config: Config,
    /// Live sources.
    pub sources: Sources,
    /// The live view, updated as the drill moves.
    pub progress: watch::Sender<DrillView>,
    /// Abort.
    pub cancel: CancellationToken,
    /// `firedrill_drill_state`: 1 for the current state (what Grafana draws regions from).
    pub state_gauge: IntGaugeVec,
}

impl Drill {
    /// Runs the drill to its report, or to the state it ended in and why.
    pub async fn run(mut self) -> Result<Report, Ended> {
        let rate = self.sources.generator.rate();
        let result = match self.request.scenario {
            Scenario::Comprehensive => self.comprehensive().await,
            scenario => self.part(scenario, None).await,
        };
        // A drain that was cut short may have left the generator paused.
        if self.sources.generator.rate() != rate {
            let _ = self.sources.generator.set_rate(rate);
        }
        result
    }

    async fn comprehensive(&mut self) -> Result<Report, Ended> {
        let steps = comprehensive(self.sources.engine);
        let mut parts = Vec::with_capacity(steps.len());
        for (i, scenario) in steps.into_iter().enumerate() {
            parts.push(self.part(scenario, Some((i + 1, steps.len()))).await?);
        }
        Ok(combine(
            &self.id,
            self.request.label.clone(),
            parts,
            self.config.at_least_once,
        ))
    }

    fn set_state(&self, state: DrillState, message: impl Into<String>) {
        let message = message.into();
        info!(drill = %self.id, ?state, %message, "drill progress");
        let scenario = self.request.scenario.as_str();
        self.progress.send_modify(|v| {
            // The new state first, then the old one removed: a scrape in between sees both
            // rather than no drill at all.
            self.state_gauge
                .with_label_values(&[scenario, state.as_str()])
                .set(1);
            if v.state != state {
                v.state_since_ms = now_ms();
                let _ = self
                    .state_gauge
                    .remove_label_values(&[scenario, v.state.as_str()]);
            }
            v.state = state;
            v.message = message;
        });
    }

    /// Waits `len` (the sampler samples meanwhile); `false` when aborted first.
    async fn wait(&self, len: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(len) => true,
        }
    }

    /// Awaits `work` to its end even when the drill is aborted meanwhile (a revert or a
    /// resubmission is never cut short); the flag says whether it was.
    async fn uncancellable<T>(&self, work: impl std::future::Future<Output = T>) -> (T, bool) {
        tokio::pin!(work);
        tokio::select! {
            out = &mut work => (out, false),
            _ = self.cancel.cancelled() => (work.await, true),
        }
    }

    /// One fault: gate, baseline, fault, recovery, drain, report. The samples are taken by
    /// a [`Sampler`] of their own from the baseline to the drain's end.
    async fn part(
        &mut self,
        scenario: Scenario,
        part: Option<(usize, usize)>,
    ) -> Result<Report, Ended> {
        self.progress.send_modify(|v| v.part = part);
        let aborted = |stage: &str| (DrillState::Aborted, format!("aborted during {stage}"));

        // 1. Steady-state gate.
        self.set_state(
            DrillState::Gating,
            format!("{}: waiting for the steady state", scenario.as_str()),
        );
        let gate = self.gate().await?;

        // 2. Baseline.
        let baseline_len = self.request.baseline.unwrap_or(self.config.baseline);
        self.set_state(
            DrillState::Baseline,
            format!(
                "measuring the baseline for {}",
                humantime::format_duration(baseline_len)
            ),
        );
        let start = self.sources.audit.borrow().clone();
        let flink_before = self.sources.flink.borrow().clone();
        let started_at = now_ms();
        let sampler = Sampler::spawn(
            self.sources.audit.clone(),
            self.sources.flink.clone(),
            self.sources.lag.clone(),
            self.sources.lag_group.clone(),
            sampler::checkpoint_path(&flink_before),
            self.config.rate_window.as_secs().max(1) as usize,
        );
        if !self.wait(baseline_len).await {
            return Err(aborted("the baseline"));
        }
        let baseline_audit = self.sources.audit.borrow().clone();
        let baseline_lag = self.sources.lag.borrow().messages(&self.sources.lag_group);

        // 3. Inject.
        // A comprehensive request names no target or action (`check_request` refuses them).
        let (default_target, default_action) = scenario.fault();
        let target = match self.request.target.clone() {
            Some(target) => target,
            // Killing a TaskManager that runs none of the job's tasks tests nothing.
            None if scenario == Scenario::Taskmanager => busy_target(
                &self.sources.flink.borrow().busy_taskmanagers,
                &self.sources.faults.targets(),
            )
            .unwrap_or_else(|| default_target.to_string()),
            None => default_target.to_string(),
        };
        let action = self.request.action.unwrap_or(default_action);
        let fault_len = self
            .request
            .fault_duration
            .unwrap_or(self.config.fault_duration);
        // The baseline ends where the injection begins: a fault can take effect before its
        // call returns (a broker's stop waits for its shutdown), and those seconds are the
        // fault's, not the steady state's.
        sampler.injected();
        let injected =
            self.sources
                .faults
                .inject(InjectRequest::new(&target).action(action).duration(
                    (fault_len + DEAD_MANS_MARGIN).min(self.sources.faults.max_duration()),
                ))
                .await
                .map_err(|e| (DrillState::Failed, format!("fault not injected: {e}")))?;
        let fault_ends = tokio::time::Instant::now() + fault_len;
        let injected_at = injected.injected_at_ms;
        let report_id = match part {
            Some((i, _)) => format!("{}-{}", self.id, i),
            None => self.id.clone(),
        };
        let mut region = Region::start(
            self.sources.annotations.clone(),
            &report_id,
            injected_at,
            vec![
                "firedrill".to_string(),
                scenario.as_str().to_string(),
                injected.target.clone(),
                report_id.clone(),
            ],
            format!(
                "firedrill {} drill {report_id}: {} {}",
                scenario.as_str(),
                action.as_str(),
                injected.target
            ),
        );
        self.set_state(
            DrillState::Fault,
            format!(
                "{} {} on {}",
                action.as_str(),
                injected.target,
                humantime::format_duration(fault_len)
            ),
        );

        // 4. The fault's time, then the revert (restarting a JVM takes seconds).
        let in_time = tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(fault_ends) => true,
        };
        if !in_time {
            self.revert_quietly(&injected.id).await;
            return Err(aborted("the fault"));
        }
        let revert_started = now_ms();
        let (reverted, aborted_meanwhile) = self
            .uncancellable(self.sources.faults.revert(&injected.id))
            .await;
        if aborted_meanwhile {
            return Err(aborted("the revert"));
        }
        let reverted_at = match reverted {
            Ok(view) => view.reverted_at_ms.unwrap_or_else(now_ms),
            // A restart slower than its start command allows (a JVM on a busy machine): the
            // fault actor retries with backoff; the drill goes on measuring meanwhile.
            Err(error) => {
                self.retried_revert(&injected.id, &error.to_string())
                    .await?
            }
        };
        sampler.reverted(reverted_at);

        // 5. Recovery, resubmitting the job if the JobManager came back without it.
        self.set_state(
            DrillState::Recovering,
            "waiting for throughput and in-flight orders to return to baseline",
        );
        let resubmitted = self.recover(&sampler).await?;
        let live_recovered_at = sampler.phases().borrow().recovered_at;

        // 6. Drain: pause the generator and let the audit see everything acked.
        self.set_state(
            DrillState::Draining,
            "generator paused; waiting for every acked order to be seen",
        );
        let drain_started = now_ms();
        let drained = self.drain().await;
        let drained_at = now_ms();
        let tracker = sampler.finish().await;
        drained?;
        let end = self.sources.audit.borrow().clone();
        let flink_after = self.sources.flink.borrow().clone();
        let p = tracker.phases().clone();

        // The output on Flink's clock, injection to drain (while the generator still ran):
        // when it stopped, resumed and caught up.
        let output = self.sources.output.read(|timeline| {
            output_evidence(
                timeline,
                injected_at,
                drain_started,
                self.config.output_gap,
                self.config.caught_up_latency,
            )
        });
        // Recovered when output resumed and caught up, once the live view saw it recover.
        let recovered_at =
            live_recovered_at.map(|live| timeline_recovered_at(&output).unwrap_or(live));
        region.end(recovered_at.unwrap_or(drain_started));

        // 7. Alerts: wait (bounded) for the expected pages and every all-clear.
        let expected = self.sources.expected_alerts.expected_for(scenario);
        self.await_alerts(&expected, started_at).await?;
        let alerts_ended = now_ms();
        let (alerting, alert_events) = score::score(
            &self.sources.alerts.since(started_at),
            &expected,
            score::Window {
                started_ms: started_at,
                injected_ms: injected_at,
                recovered_ms: recovered_at,
                ended_ms: alerts_ended,
            },
        );

        // 8. Report.
        let mut phases = vec![
            Phase {
                name: PhaseName::BaselineStarted,
                at_ms: started_at,
            },
            Phase {
                name: PhaseName::Injected,
                at_ms: injected_at,
            },
            Phase {
                name: PhaseName::RevertStarted,
                at_ms: revert_started,
            },
            Phase {
                name: PhaseName::Reverted,
                at_ms: reverted_at,
            },
            Phase {
                name: PhaseName::Drained,
                at_ms: drained_at,
            },
        ];
        for (name, at) in [
            (PhaseName::DegradationDetected, p.degraded_at),
            (PhaseName::JobRunning, p.job_running_at),
            (
                PhaseName::FirstOutput,
                output.gaps.first().map(|g| g.end_ms),
            ),
            (PhaseName::Recovered, recovered_at),
            (PhaseName::JobResubmitted, resubmitted.map(|(at, _)| at)),
        ] {
            if let Some(at_ms) = at {
                phases.push(Phase { name, at_ms });
            }
        }
        phases.sort_by_key(|p| p.at_ms);
        let levels = tracker.baseline();
        let orders = orders(&start.totals, &end.totals);
        let during = tracker.mean_rate(injected_at, reverted_at).unwrap_or(0.0);
        // The impact window: the failure until the pipeline recovered (or the drain began).
        let (degradation_pct, worst_drop_pct) = tracker
            .impact(injected_at, recovered_at.unwrap_or(drain_started))
            .map_or((0.0, None), |(lost, worst)| (lost, Some(worst)));
        let after = tracker
            .mean_rate(recovered_at.unwrap_or(reverted_at), drain_started)
            .unwrap_or(0.0);
        let lost_cents = end
            .totals
            .at_risk_cents
            .saturating_sub(start.totals.lost_cents);
        let failed_cents = end
            .totals
            .failed_cents
            .saturating_sub(start.totals.failed_cents);
        let job_before = flink_before.job.as_ref();
        let job_after = flink_after.job.as_ref();
        let same_job = job_before.map(|j| &j.id) == job_after.map(|j| &j.id);
        let restarts_after = job_after.and_then(|j| j.restarts).unwrap_or(0);
        let restarts = if same_job {
            restarts_after.saturating_sub(job_before.and_then(|j| j.restarts).unwrap_or(0))
        } else {
            restarts_after
        };
        let checkpoint_restored = job_after
            .and_then(|j| j.last_restore.as_ref())
            .filter(|r| r.restore_timestamp >= injected_at)
            .map(|r| r.id);
        let integrity = report::integrity(&orders, self.config.at_least_once);
        let ended_at = now_ms();
        Ok(Report {
            schema_version: report::SCHEMA_VERSION,
            id: report_id,
            scenario: scenario.as_str().to_string(),
            engine: self.sources.engine.as_str().to_string(),
            kafka_io: job_after
                .or(job_before)
                .and_then(|j| j.kafka_io)
                .map(str::to_string),
            label: self.request.label.clone(),
            started_at_ms: started_at,
            ended_at_ms: ended_at,
            total_duration_s: (ended_at - started_at) as f64 / 1000.0,
            fault: Some(FaultSummary {
                target: injected.target.clone(),
                action: action.as_str().to_string(),
                duration_s: fault_len.as_secs_f64(),
                revert_s: Some((reverted_at - revert_started).max(0) as f64 / 1000.0),
            }),
            baseline: Baseline {
                orders_per_s: levels.orders_per_s,
                latency_p50_s: baseline_audit.recent_latency_p50_s,
                latency_p99_s: baseline_audit.recent_latency_p99_s,
                lag_messages: baseline_lag,
            },
            phases,
            downtime_s: downtime_s(&output, recovered_at.unwrap_or(drain_started)),
            recovery_time_s: recovered_at.map(|r| (r - injected_at).max(0) as f64 / 1000.0),
            revert_to_recovered_s: recovered_at.map(|r| (r - reverted_at).max(0) as f64 / 1000.0),
            recovered: recovered_at.is_some(),
            revenue: Revenue {
                lost_dollars: lost_cents as f64 / 100.0,
                failed_at_door_dollars: failed_cents as f64 / 100.0,
                delayed_dollars: end
                    .totals
                    .delayed_cents
                    .saturating_sub(start.totals.delayed_cents)
                    as f64
                    / 100.0,
                peak_at_risk_dollars: tracker.peak_at_risk_cents() as f64 / 100.0,
            },
            throughput: Throughput {
                baseline_orders_per_s: levels.orders_per_s,
                during_fault_orders_per_s: during,
                after_recovery_orders_per_s: after,
                degradation_pct,
                worst_drop_pct,
            },
            flink: FlinkImpact {
                restarts,
                checkpoint_restored,
                job_id_before: job_before.map(|j| j.id.clone()),
                job_id_after: job_after.map(|j| j.id.clone()),
                resubmit_s: resubmitted.map(|(_, took)| took),
            },
            integrity,
            orders,
            alerts: alert_events,
            alerting: Some(alerting),
            timeline: tracker.samples().to_vec(),
            parts: Vec::new(),
            gate: Some(gate),
            output: Some(output),
        })
    }

    /// After a failed revert, waits (up to `recovery_timeout`) for the fault actor's retries
    /// to revert fault `id`; when it saw the fault gone (to within a second).
    async fn retried_revert(&self, id: &str, error: &str) -> Result<i64, Ended> {
        warn!(drill = %self.id, fault = id, %error, "revert failed; waiting for the fault actor's retries");
        self.set_state(
            DrillState::Fault,
            format!("revert failed, the fault actor retries: {error}"),
        );
        let deadline = tokio::time::Instant::now() + self.config.recovery_timeout;
        let mut poll = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err((DrillState::Aborted, "aborted while the revert was retried".into()))
                }
                _ = poll.tick() => {}
            }
            if !self.sources.faults.list().await.iter().any(|f| f.id == id) {
                return Ok(now_ms());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err((
                    DrillState::Failed,
                    format!(
                        "revert failed and not retried successfully within {} (the fault \
                         actor keeps retrying): {error}",
                        humantime::format_duration(self.config.recovery_timeout)
                    ),
                ));
            }
        }
    }

    /// Waits (up to `recovery_timeout`) for the live view to see the pipeline recovered,
    /// resubmitting the job once when the JobManager came back without it. The job
    /// resubmission's start and how long it took, if there was one.
    async fn recover(&mut self, sampler: &Sampler) -> Result<Option<(i64, f64)>, Ended> {
        let aborted = |stage: &str| (DrillState::Aborted, format!("aborted during {stage}"));
        let deadline = tokio::time::Instant::now() + self.config.recovery_timeout;
        let mut phases = sampler.phases();
        let mut flink = self.sources.flink.clone();
        let mut missing_since: Option<tokio::time::Instant> = None;
        let mut resubmitted: Option<(i64, f64)> = None;
        loop {
            if phases.borrow_and_update().recovered_at.is_some() {
                return Ok(resubmitted);
            }
            let job_gone = {
                let status = flink.borrow_and_update();
                status.reachable
                    && status
                        .job
                        .as_ref()
                        .is_none_or(|j| crate::flink::rest::is_terminal(&j.state))
            };
            if !job_gone || resubmitted.is_some() || self.config.resubmit.is_empty() {
                missing_since = None;
            } else {
                let since = *missing_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= self.config.resubmit_after {
                    let checkpoint = sampler.checkpoint();
                    self.set_state(
                        DrillState::Recovering,
                        format!(
                            "job gone: resubmitting from {}",
                            checkpoint.as_deref().unwrap_or("no checkpoint")
                        ),
                    );
                    let began = now_ms();
                    let (submitted, aborted_meanwhile) = self
                        .uncancellable(resubmit(&self.config.resubmit, checkpoint.as_deref()))
                        .await;
                    if aborted_meanwhile {
                        return Err(aborted("the resubmission"));
                    }
                    submitted.map_err(|e| {
                        (
                            DrillState::Failed,
                            format!("resubmitting the job failed: {e}"),
                        )
                    })?;
                    resubmitted = Some((began, (now_ms() - began) as f64 / 1000.0));
                    continue;
                }
            }
            let wake = missing_since.map_or(deadline, |since| {
                (since + self.config.resubmit_after).min(deadline)
            });
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(aborted("recovery")),
                _ = tokio::time::sleep_until(wake) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(resubmitted);
                    }
                }
                _ = phases.changed() => {}
                _ = flink.changed() => {}
            }
        }
    }

    /// Pauses the generator until every acked order was seen (or `drain_timeout`), then
    /// restores its rate.
    async fn drain(&mut self) -> Result<(), Ended> {
        let rate = self.sources.generator.rate();
        let _ = self.sources.generator.set_rate(0);
        let deadline = tokio::time::Instant::now() + self.config.drain_timeout;
        let mut audit = self.sources.audit.clone();
        let outcome = loop {
            let done = {
                let audit = audit.borrow_and_update();
                let t = &audit.totals;
                // Nothing waiting for the broker, nothing acked and unseen.
                sampler::unseen(t) == 0 && t.sent == t.acked + t.failed
            };
            if done {
                break Ok(());
            }
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    break Err((DrillState::Aborted, "aborted during the drain".to_string()))
                }
                _ = tokio::time::sleep_until(deadline) => break Ok(()),
                changed = audit.changed() => if changed.is_err() { break Ok(()) },
            }
        };
        let _ = self.sources.generator.set_rate(rate);
        outcome
    }

    /// The steady-state gate (see [`gate`]): waits for one look per audit snapshot until the
    /// pipeline is steady, or refuses. A paused generator is refused at once.
    async fn gate(&mut self) -> Result<gate::Readings, Ended> {
        let refuse = |why: String| (DrillState::Refused, format!("steady-state gate: {why}"));
        let rate = self.sources.generator.rate();
        if rate == 0 {
            return Err(refuse("the generator is paused (rate 0)".into()));
        }
        let settings = gate::Settings {
            window: self.config.gate,
            timeout: self.config.gate_timeout,
            max_lag: self.config.gate_max_lag,
            max_latency: self.config.gate_max_latency,
        };
        let mut audit = self.sources.audit.clone();
        audit.mark_changed();
        let mut gate = Gate::new(settings, rate, now_ms());
        let mut shown = String::new();
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err((DrillState::Aborted, "aborted during the gate".into()))
                }
                changed = audit.changed() => if changed.is_err() {
                    return Err(refuse("the audit stopped".into()));
                },
            }
            let look = self.look(&audit.borrow_and_update());
            match gate.observe(look) {
                gate::Verdict::Open(readings) => return Ok(readings),
                gate::Verdict::Refuse(why) => return Err(refuse(why)),
                gate::Verdict::Wait(why) => {
                    if why != shown {
                        self.set_state(DrillState::Gating, format!("waiting: {why}"));
                        shown = why;
                    }
                }
            }
        }
    }

    /// The gate's look at the pipeline at this audit snapshot.
    fn look(&self, audit: &AuditSnapshot) -> gate::Look {
        let flink = self.sources.flink.borrow();
        let job = match (&flink.job, flink.reachable) {
            (Some(job), _) if job.is_running() => gate::Job::Running {
                since_ms: job.running_since_ms,
            },
            (Some(job), _) => gate::Job::Other(job.state.clone()),
            (None, true) => gate::Job::Missing,
            (None, false) => gate::Job::Unreachable,
        };
        let group = &self.sources.lag_group;
        let lag = self.sources.lag.borrow();
        gate::Look {
            at_ms: audit.at_ms,
            processed: audit.totals.processed,
            missing: audit.totals.missing,
            lost: audit.totals.lost,
            job,
            lag_messages: lag.messages(group),
            lag_s: lag.max_seconds(group),
            latency_p50_s: audit.recent_latency_p50_s,
            latency_p99_s: audit.recent_latency_p99_s,
            restart: flink.restart_strategy.clone(),
        }
    }
    /// Waits until every expected alert has fired and every alert that fired since
    /// `since_ms` has resolved, or `[alerts] resolve_timeout` has passed (scoring then reports
    /// what is still missing or unresolved).
    async fn await_alerts(&mut self, expected: &[String], since_ms: i64) -> Result<(), Ended> {
        let timeout = self.sources.expected_alerts.resolve_timeout;
        let until = tokio::time::Instant::now() + timeout;
        let mut changes = self.sources.alerts.subscribe();
        loop {
            let pending = score::pending(&self.sources.alerts.since(since_ms), expected, since_ms);
            if pending.is_empty() {
                return Ok(());
            }
            self.set_state(
                DrillState::Draining,
                format!(
                    "waiting up to {} for the alerts: {}",
                    humantime::format_duration(timeout),
                    pending.join(", ")
                ),
            );
            tokio::select! {
                _ = self.cancel.cancelled() => {
                    return Err((DrillState::Aborted, "aborted while waiting for alerts".into()))
                }
                _ = tokio::time::sleep_until(until) => return Ok(()),
                changed = changes.changed() => if changed.is_err() { return Ok(()) },
            }
        }
    }

    async fn revert_quietly(&self, id: &str) {
        if let Err(error) = self.sources.faults.revert(id).await {
            warn!(%error, fault = id, "revert on abort failed; the fault actor keeps retrying");
        }
    }
}

/// A drill's region annotation in Grafana: started at the injection, ended at recovery, or
/// when dropped (an abort, a failure) at that moment, so no region is left open.
struct Region {
    annotations: grafana::Handle,
    key: String,
    ended: bool,
}

impl Region {
    fn start(
        annotations: grafana::Handle,
        key: &str,
        at_ms: i64,
        tags: Vec<String>,
        text: String,
    ) -> Self {
        annotations.start(key, at_ms, tags, text);
        Region {
            annotations,
            key: key.to_string(),
            ended: false,
        }
    }

    fn end(&mut self, at_ms: i64) {
        if !self.ended {
            self.annotations.end(&self.key, at_ms);
            self.ended = true;
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        self.end(now_ms());
    }
}

/// The first TaskManager running tasks (by Flink's resource id) that is also a configured
/// fault target; `None` when none is (then the scenario's group picks any member).
fn busy_target(busy: &[String], targets: &[TargetView]) -> Option<String> {
    busy.iter()
        .find(|id| {
            targets
                .iter()
                .any(|t| &t.name == *id && t.members.is_empty())
        })
        .cloned()
}

/// Counts over the drill window: differences of the ledger's cumulative totals, and the
/// orders still unseen after the drain (minus those already lost before the drill).
fn orders(start: &Totals, end: &Totals) -> Orders {
    let d = |f: fn(&Totals) -> u64| f(end).saturating_sub(f(start));
    Orders {
        sent: d(|t| t.sent),
        acked: d(|t| t.acked),
        in_flight_at_start: unseen(start).saturating_sub(start.lost),
        failed_at_door: d(|t| t.failed),
        processed: d(|t| t.processed),
        duplicates: d(|t| t.duplicates),
        // The gate made sure nothing was missing at the start.
        lost: unseen(end).saturating_sub(start.lost),
        delayed: d(|t| t.late),
        unexpected: d(|t| t.unexpected),
        invalid: d(|t| t.invalid),
    }
}

/// The output evidence over `[from_ms, to_ms)`: gaps (clipped to start no earlier than
/// `from_ms`) and when output caught up.
fn output_evidence(
    timeline: &OutputTimeline,
    from_ms: i64,
    to_ms: i64,
    min_gap: Duration,
    caught_up_latency: Duration,
) -> Output {
    let min_gap_ms = min_gap.as_millis() as i64;
    let band_ms = caught_up_latency.as_millis() as i64;
    Output {
        from_ms,
        to_ms,
        records: timeline.records(from_ms, to_ms),
        min_gap_s: min_gap.as_secs_f64(),
        caught_up_latency_s: caught_up_latency.as_secs_f64(),
        gaps: timeline
            .gaps(from_ms, to_ms, min_gap_ms)
            .into_iter()
            .map(|g| OutputGap {
                start_ms: g.start_ms.max(from_ms),
                end_ms: g.end_ms,
            })
            .filter(|g| g.end_ms > g.start_ms)
            .collect(),
        caught_up_at_ms: timeline.caught_up(from_ms, to_ms, band_ms),
        stalled_since_ms: timeline
            .last_output_before(to_ms)
            .filter(|last| to_ms - last >= min_gap_ms)
            .map(|last| last.max(from_ms)),
    }
}

/// Downtime: the output's gaps up to `until`, and a gap still open at the window's end.
fn downtime_s(output: &Output, until: i64) -> Option<f64> {
    if output.records == 0 && output.stalled_since_ms.is_none() {
        return None;
    }
    let closed: i64 = output
        .gaps
        .iter()
        .map(|g| (g.end_ms.min(until) - g.start_ms).max(0))
        .sum();
    let open = output
        .stalled_since_ms
        .map_or(0, |since| (until.min(output.to_ms) - since).max(0));
    Some((closed + open) as f64 / 1000.0)
}

/// When the pipeline recovered by the output evidence: output resumed after its last gap
/// and caught up, whichever came later; `None` when it never caught up in the window.
fn timeline_recovered_at(output: &Output) -> Option<i64> {
    let caught_up = output.caught_up_at_ms?;
    Some(
        output
            .gaps
            .last()
            .map_or(caught_up, |g| g.end_ms.max(caught_up)),
    )
}

/// Runs the resubmit command, `{checkpoint}` replaced; without a checkpoint the argument
/// that names it (and a `--from-checkpoint`-style flag before it) is dropped.
async fn resubmit(argv: &[String], checkpoint: Option<&str>) -> Result<(), String> {
    let mut args: Vec<String> = Vec::with_capacity(argv.len());
    for arg in argv {
        match (arg.contains("{checkpoint}"), checkpoint) {
            (true, Some(path)) => args.push(arg.replace("{checkpoint}", path)),
            (true, None) => {
                if args.last().is_some_and(|a| a.starts_with("--")) {
                    args.pop();
                }
            }
            (false, _) => args.push(arg.clone()),
        }
    }
    let (program, rest) = args.split_first().ok_or("empty resubmit command")?;
    let output = tokio::process::Command::new(program)
        .args(rest)
        .output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(format!(
            "{} exited {}: {}",
            args.join(" "),
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// The alert verdicts of a comprehensive drill's parts as one: FAIL if any part failed;
/// names and findings carry the part's scenario.
fn combine_alerting(parts: &[Report]) -> Option<report::Alerting> {
    let scored: Vec<(&str, &report::Alerting)> = parts
        .iter()
        .filter_map(|r| Some((r.scenario.as_str(), r.alerting.as_ref()?)))
        .collect();
    if scored.is_empty() {
        return None;
    }
    let tagged = |f: fn(&report::Alerting) -> &Vec<String>| {
        scored
            .iter()
            .flat_map(|(s, a)| f(a).iter().map(move |x| format!("{s}: {x}")))
            .collect::<Vec<_>>()
    };
    Some(report::Alerting {
        verdict: if scored.iter().all(|(_, a)| a.verdict == Verdict::Pass) {
            Verdict::Pass
        } else {
            Verdict::Fail
        },
        expected: tagged(|a| &a.expected),
        alerts: scored
            .iter()
            .flat_map(|(_, a)| a.alerts.iter().cloned())
            .collect(),
        missing: tagged(|a| &a.missing),
        unresolved: tagged(|a| &a.unresolved),
        details: tagged(|a| &a.details),
    })
}

/// A comprehensive report from its parts.
fn combine(id: &str, label: Option<String>, parts: Vec<Report>, at_least_once: bool) -> Report {
    let sum = |f: fn(&Report) -> u64| parts.iter().map(f).sum::<u64>();
    let sum_f = |f: fn(&Report) -> f64| parts.iter().map(f).sum::<f64>();
    let opt_sum = |f: fn(&Report) -> Option<f64>| parts.iter().map(f).sum::<Option<f64>>();
    let orders = Orders {
        sent: sum(|r| r.orders.sent),
        acked: sum(|r| r.orders.acked),
        in_flight_at_start: sum(|r| r.orders.in_flight_at_start),
        failed_at_door: sum(|r| r.orders.failed_at_door),
        processed: sum(|r| r.orders.processed),
        duplicates: sum(|r| r.orders.duplicates),
        lost: sum(|r| r.orders.lost),
        delayed: sum(|r| r.orders.delayed),
        unexpected: sum(|r| r.orders.unexpected),
        invalid: sum(|r| r.orders.invalid),
    };
    let mut integrity = report::integrity(&orders, at_least_once);
    for part in &parts {
        for detail in &part.integrity.details {
            integrity
                .details
                .push(format!("{}: {detail}", part.scenario));
        }
    }
    let first = parts.first().expect("a comprehensive drill has parts");
    let started = first.started_at_ms;
    let ended = parts.last().expect("parts").ended_at_ms;
    let baseline = first.baseline.clone();
    let during = sum_f(|r| r.throughput.during_fault_orders_per_s) / parts.len() as f64;
    Report {
        schema_version: report::SCHEMA_VERSION,
        id: id.to_string(),
        scenario: Scenario::Comprehensive.as_str().to_string(),
        engine: first.engine.clone(),
        kafka_io: first.kafka_io.clone(),
        label,
        started_at_ms: started,
        ended_at_ms: ended,
        total_duration_s: (ended - started) as f64 / 1000.0,
        fault: None,
        phases: parts.iter().flat_map(|r| r.phases.clone()).collect(),
        downtime_s: opt_sum(|r| r.downtime_s),
        recovery_time_s: opt_sum(|r| r.recovery_time_s),
        revert_to_recovered_s: opt_sum(|r| r.revert_to_recovered_s),
        recovered: parts.iter().all(|r| r.recovered),
        revenue: Revenue {
            lost_dollars: sum_f(|r| r.revenue.lost_dollars),
            failed_at_door_dollars: sum_f(|r| r.revenue.failed_at_door_dollars),
            delayed_dollars: sum_f(|r| r.revenue.delayed_dollars),
            peak_at_risk_dollars: parts
                .iter()
                .map(|r| r.revenue.peak_at_risk_dollars)
                .fold(0.0, f64::max),
        },
        throughput: Throughput {
            baseline_orders_per_s: baseline.orders_per_s,
            during_fault_orders_per_s: during,
            after_recovery_orders_per_s: parts
                .last()
                .expect("parts")
                .throughput
                .after_recovery_orders_per_s,
            degradation_pct: parts
                .iter()
                .map(|r| r.throughput.degradation_pct)
                .fold(0.0, f64::max),
            worst_drop_pct: parts
                .iter()
                .filter_map(|r| r.throughput.worst_drop_pct)
                .reduce(f64::max),
        },
        flink: FlinkImpact {
            restarts: sum(|r| r.flink.restarts),
            checkpoint_restored: parts.iter().rev().find_map(|r| r.flink.checkpoint_restored),
            job_id_before: first.flink.job_id_before.clone(),
            job_id_after: parts.last().expect("parts").flink.job_id_after.clone(),
            resubmit_s: parts.iter().find_map(|r| r.flink.resubmit_s),
        },
        baseline,
        integrity,
        orders,
        alerts: parts.iter().flat_map(|r| r.alerts.clone()).collect(),
        alerting: combine_alerting(&parts),
        timeline: parts.iter().flat_map(|r| r.timeline.clone()).collect(),
        parts,
        gate: None,
        output: None,
    }
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod paused;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::Action;

    #[test]
    fn drill_orders_are_exact_differences_and_lost_is_what_stayed_unseen() {
        let start = Totals {
            sent: 100,
            acked: 100,
            processed: 98,
            in_flight: 2,
            duplicates: 1,
            ..Totals::default()
        };
        let end = Totals {
            sent: 400,
            acked: 390,
            failed: 10,
            processed: 385,
            in_flight: 0,
            missing: 0,
            lost: 3,
            duplicates: 21,
            late: 40,
            ..Totals::default()
        };
        let o = orders(&start, &end);
        assert_eq!(
            (o.sent, o.acked, o.failed_at_door, o.processed),
            (300, 290, 10, 287)
        );
        assert_eq!((o.duplicates, o.delayed, o.lost), (20, 40, 3));
    }

    #[tokio::test]
    async fn resubmit_substitutes_or_drops_the_checkpoint() {
        let argv: Vec<String> = ["sh", "-c", "test \"$0\" = /chk-7 || exit 3", "{checkpoint}"]
            .map(String::from)
            .to_vec();
        resubmit(&argv, Some("/chk-7")).await.unwrap();
        let err = resubmit(&argv, Some("/other")).await.unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
        let flagged: Vec<String> = ["true", "--from-checkpoint", "{checkpoint}"]
            .map(String::from)
            .to_vec();
        resubmit(&flagged, None).await.unwrap();
    }

    #[test]
    fn a_taskmanager_drill_hits_a_taskmanager_that_runs_tasks() {
        let target = |name: &str, members: &[&str]| TargetView {
            name: name.into(),
            backend: "process",
            default_action: Some(Action::Kill),
            actions: vec![Action::Kill],
            group: None,
            members: members.iter().map(|m| m.to_string()).collect(),
        };
        let targets = [
            target("kafka", &[]),
            target("taskmanager-1", &[]),
            target("taskmanager-2", &[]),
            target("taskmanager", &["taskmanager-1", "taskmanager-2"]),
        ];
        let busy = |ids: &[&str]| ids.iter().map(|i| i.to_string()).collect::<Vec<_>>();
        assert_eq!(
            busy_target(&busy(&["taskmanager-2"]), &targets).as_deref(),
            Some("taskmanager-2")
        );
        // A TaskManager firedrill cannot reach (another resource id scheme), or none busy:
        // the group decides.
        assert_eq!(busy_target(&busy(&["10.0.0.7:6122-abc"]), &targets), None);
        assert_eq!(busy_target(&[], &targets), None);
    }
}
