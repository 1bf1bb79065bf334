//! The runner end to end under paused time: a simulated pipeline publishes what the audit,
//! the Flink monitor and the lag monitor would, and a real fault actor drives a scripted
//! backend that "kills" it. No broker, no Flink, no sleeps on the real clock.

use futures_util::future::BoxFuture;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{IntGaugeVec, Opts, Registry};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{
    audit::{ledger::Totals, AuditSnapshot, SharedOutput},
    faults::{
        backend::{self, ProcessSubject},
        Action, Backend, BackendKind, Backends, Faults, Subject, Target,
    },
    flink::{
        monitor::{FlinkStatus, JobStatus},
        rest::RestartStrategy,
    },
    kafka::{lag::PartitionLag, monitor::LagSnapshot},
};

/// What the scripted backend does to the simulated pipeline.
#[derive(Default)]
struct Switch {
    /// The target is down (killed, not yet restarted).
    down: bool,
    /// Reverts still to fail (a start command that timed out).
    failing_reverts: u32,
    injects: u32,
    reverts: u32,
}

/// A backend whose kill takes the simulated job down and whose revert (a JVM restart)
/// takes `restart`.
struct Scripted {
    switch: Arc<Mutex<Switch>>,
    restart: Duration,
    /// The inject returns this long after the target went down (a graceful stop).
    inject_takes: Duration,
}

impl Backend for Scripted {
    fn kind(&self) -> BackendKind {
        BackendKind::Process
    }

    fn resolve<'a>(
        &'a self,
        target: &'a Target,
        _action: Action,
    ) -> BoxFuture<'a, Result<Subject, backend::Error>> {
        Box::pin(async move {
            let Target::Process(t) = target else {
                unreachable!("process targets only")
            };
            Ok(Subject::Process(ProcessSubject {
                pid: 4242,
                start_ticks: 1,
                pid_file: t.pid_file.clone(),
                start: t.start.clone(),
            }))
        })
    }

    fn inject<'a>(
        &'a self,
        _action: Action,
        _subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), backend::Error>> {
        Box::pin(async move {
            {
                let mut s = self.switch.lock().unwrap();
                s.down = true;
                s.injects += 1;
            }
            tokio::time::sleep(self.inject_takes).await;
            Ok(())
        })
    }

    fn revert<'a>(
        &'a self,
        _action: Action,
        _subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), backend::Error>> {
        Box::pin(async move {
            tokio::time::sleep(self.restart).await;
            let mut s = self.switch.lock().unwrap();
            if s.failing_reverts > 0 {
                s.failing_reverts -= 1;
                return Err(backend::Error::NotRunning("start timed out".into()));
            }
            s.down = false;
            s.reverts += 1;
            Ok(())
        })
    }
}

/// The simulated pipeline's timing.
#[derive(Clone, Copy)]
struct Script {
    /// After the target is back, the job needs this long to run again.
    job_restart: Duration,
    /// Seconds (from the simulation's start) during which the audit publishes nothing.
    silent: Option<(u64, u64)>,
    /// Once the target was killed the job is gone for good (a JobManager without HA):
    /// Flink answers with no job.
    job_lost: bool,
    /// The fault's inject returns this long after the target went down.
    inject_takes: Duration,
}

/// A pipeline at 10 orders/s: while the target is down (and `job_restart` after it is back)
/// the job is RESTARTING and nothing comes out; then the backlog comes out at 40/s, late,
/// until it is gone. One audit snapshot, Flink status and lag snapshot a second.
struct Pipeline {
    audit: watch::Sender<AuditSnapshot>,
    flink: watch::Sender<FlinkStatus>,
    lag: watch::Sender<LagSnapshot>,
    output: SharedOutput,
}

impl Pipeline {
    async fn run(
        self,
        switch: Arc<Mutex<Switch>>,
        generator: generator::Handle,
        script: Script,
        stop: CancellationToken,
    ) {
        let mut totals = Totals::default();
        let mut backlog: u64 = 2;
        let mut back_at: Option<i64> = Some(now_ms() - 3_600_000);
        let mut running_since = now_ms() - 3_600_000;
        let mut killed = false;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for second in 0u64.. {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = now_ms();
            let down = switch.lock().unwrap().down;
            killed |= down;
            let running = if down {
                back_at = None;
                false
            } else {
                let back = *back_at.get_or_insert(now);
                now - back >= script.job_restart.as_millis() as i64
            };
            if running && running_since < back_at.unwrap_or(i64::MAX) {
                running_since = now;
            }
            let rate = u64::from(generator.rate());
            totals.sent += rate;
            totals.acked += rate;
            backlog += rate;
            let out = if running { backlog.min(40) } else { 0 };
            // Orders waiting more than a second came out late.
            let late = out.saturating_sub(rate.max(2));
            for i in 0..out {
                let processed_at = now - 1_000 + (i as i64 * 1_000 / out.max(1) as i64);
                let latency = if i < late { 12_000 } else { 300 };
                self.output.record_for_tests(processed_at, latency, now);
            }
            backlog -= out;
            totals.processed += out;
            totals.in_flight = backlog;
            totals.at_risk_cents = backlog * 1_000;
            if script
                .silent
                .is_some_and(|(from, to)| (from..to).contains(&second))
            {
                continue;
            }
            self.audit.send_replace(AuditSnapshot {
                at_ms: now,
                totals: totals.clone(),
                recent_latency_p50_s: Some(0.3),
                recent_latency_p99_s: Some(if late > 0 { 12.0 } else { 0.9 }),
                ..AuditSnapshot::default()
            });
            self.flink.send_replace(FlinkStatus {
                at_ms: now,
                reachable: true,
                taskmanagers: 2,
                job: (!(script.job_lost && killed)).then(|| JobStatus {
                    id: "job-1".into(),
                    state: if running { "RUNNING" } else { "RESTARTING" }.into(),
                    start_time_ms: 0,
                    running_since_ms: running.then_some(running_since),
                    restarts: Some(0),
                    checkpoints: Default::default(),
                    last_checkpoint: None,
                    last_restore: None,
                    kafka_io: None,
                }),
                restart_strategy: Some(RestartStrategy {
                    kind: "exponential-delay".into(),
                    reset_backoff_threshold_s: Some(60.0),
                    initial_backoff_s: Some(1.0),
                    max_backoff_s: Some(10.0),
                }),
                ..FlinkStatus::default()
            });
            self.lag.send_replace(LagSnapshot {
                at_ms: now,
                groups: vec![(
                    "flink-order-processor".into(),
                    vec![PartitionLag {
                        partition: 0,
                        messages: backlog as i64,
                        seconds: Some(backlog as f64 / 10.0),
                        exact: true,
                    }],
                )],
            });
        }
    }
}

/// Everything a drill needs, simulated; the drill's outcome and what the backend saw.
struct Rig {
    drill: Drill,
    switch: Arc<Mutex<Switch>>,
    cancel: CancellationToken,
    stop: CancellationToken,
    _ledger: tempfile::TempDir,
}

fn rig(script: Script, revert_takes: Duration, resubmit: Vec<String>) -> Rig {
    let registry = Registry::new();
    let switch = Arc::new(Mutex::new(Switch::default()));
    let backend: Arc<dyn Backend> = Arc::new(Scripted {
        switch: switch.clone(),
        restart: revert_takes,
        inject_takes: script.inject_takes,
    });
    let ledger = tempfile::tempdir().unwrap();
    let config = crate::faults::Config {
        ledger: ledger.path().join("faults.json"),
        ..crate::faults::Config::default()
    };
    let (faults, handle) =
        Faults::build_with_backends(&config, &registry, Backends::new(backend.clone(), backend))
            .unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(faults.run(stop.clone()));
    let generator = generator::Handle::detached(10, 100);
    let pipeline = Pipeline {
        audit: watch::Sender::new(AuditSnapshot::default()),
        flink: watch::Sender::new(FlinkStatus::default()),
        lag: watch::Sender::new(LagSnapshot::default()),
        output: SharedOutput::default(),
    };
    let sources = Sources {
        audit: pipeline.audit.subscribe(),
        output: pipeline.output.clone(),
        engine: crate::engine::Kind::Flink,
        flink: pipeline.flink.subscribe(),
        lag: pipeline.lag.subscribe(),
        lag_group: "flink-order-processor".into(),
        generator: generator.clone(),
        faults: handle,
        alerts: Alerts::new(&registry),
        expected_alerts: alerts::Config {
            expected: Default::default(),
            resolve_timeout: Duration::from_secs(1),
        },
        annotations: grafana::Handle::disabled(),
    };
    tokio::spawn(pipeline.run(switch.clone(), generator, script, stop.clone()));
    let cancel = CancellationToken::new();
    let request = DrillRequest {
        scenario: Scenario::Taskmanager,
        fault_duration: Some(Duration::from_secs(10)),
        baseline: None,
        target: Some("taskmanager-1".into()),
        action: None,
        label: None,
    };
    let (progress, _) = watch::channel(DrillView {
        id: "d-test".into(),
        scenario: request.scenario,
        label: None,
        state: DrillState::Gating,
        part: None,
        started_at_ms: 0,
        state_since_ms: 0,
        message: String::new(),
        integrity: None,
    });
    let drill = Drill {
        id: "d-test".into(),
        request,
        config: Config {
            gate: Duration::from_secs(5),
            baseline: Duration::from_secs(10),
            resubmit,
            ..Config::default()
        },
        sources,
        progress,
        cancel: cancel.clone(),
        state_gauge: IntGaugeVec::new(Opts::new("state", "state"), &["scenario", "state"]).unwrap(),
    };
    Rig {
        drill,
        switch,
        cancel,
        stop,
        _ledger: ledger,
    }
}

const NORMAL: Script = Script {
    job_restart: Duration::from_secs(4),
    silent: None,
    job_lost: false,
    inject_takes: Duration::ZERO,
};

#[tokio::test(start_paused = true)]
async fn a_taskmanager_drill_measures_what_the_pipeline_did() {
    // The TaskManager's JVM takes 13 s to come back, the job 4 s more.
    let rig = rig(NORMAL, Duration::from_secs(13), Vec::new());
    let report = rig.drill.run().await.expect("a report");
    rig.stop.cancel();
    let s = rig.switch.lock().unwrap();
    assert_eq!((s.injects, s.reverts, s.down), (1, 1, false));

    let at = |name| report.phase(name).unwrap_or_else(|| panic!("{name:?}"));
    let injected = at(PhaseName::Injected);
    // The fault lasted 10 s, then the revert took 13 s.
    assert_eq!(report.fault.as_ref().unwrap().revert_s, Some(13.0));
    let reverted = at(PhaseName::Reverted);
    assert!(
        (reverted - injected - 23_000).abs() <= 1_000,
        "{}",
        reverted - injected
    );
    // Output stopped at the kill and resumed when the job ran again, 4 s after the revert
    // (seen within a tick): 27 s give or take the simulation's one-second ticks, from the
    // output on the pipeline's clock.
    let downtime = report.downtime_s.unwrap();
    assert!((25.0..=29.0).contains(&downtime), "downtime {downtime}");
    let first_output = at(PhaseName::FirstOutput);
    assert!((first_output - reverted - 4_000).abs() <= 1_500);
    // Recovered when the late backlog was out: after first output, before the drain.
    let recovered = at(PhaseName::Recovered);
    assert!(recovered > first_output && recovered < at(PhaseName::Drained));
    assert_eq!(
        report.recovery_time_s,
        Some((recovered - injected) as f64 / 1000.0)
    );
    // The samples never stopped, through the 13 s revert included: one a second.
    let t = &report.timeline;
    let gaps: Vec<i64> = t.windows(2).map(|w| w[1].at_ms - w[0].at_ms).collect();
    assert!(gaps.iter().all(|g| *g <= 1_000), "{gaps:?}");
    assert!(t
        .iter()
        .any(|s| s.at_ms > injected + 10_000 && s.at_ms < reverted));
    // The gate's readings: the job has run an hour, everything in its bands.
    let gate = report.gate.unwrap();
    assert_eq!(gate.backoff_reset, Some(true));
    assert_eq!(report.baseline.orders_per_s, 10.0);
    assert_eq!(report.orders.lost, 0);
}

#[tokio::test(start_paused = true)]
async fn the_baseline_ends_where_the_injection_begins() {
    // A broker's stop: the output stops at once, and the call returns 5 s later, when the
    // shutdown is done.
    let script = Script {
        inject_takes: Duration::from_secs(5),
        ..NORMAL
    };
    let rig = rig(script, Duration::from_secs(2), Vec::new());
    let report = rig.drill.run().await.expect("a report");
    rig.stop.cancel();
    // 10 orders/s until the stop began; the 5 s it took count as the fault's.
    assert_eq!(report.baseline.orders_per_s, 10.0);
    assert_eq!(report.throughput.baseline_orders_per_s, 10.0);
    let injected = report.phase(PhaseName::Injected).unwrap();
    let degraded = report.phase(PhaseName::DegradationDetected).unwrap();
    assert!(
        degraded - injected <= 2_000,
        "degradation seen {} ms after the injection",
        degraded - injected
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_revert_retried_by_the_fault_actor_does_not_end_the_drill() {
    let rig = rig(NORMAL, Duration::from_secs(5), Vec::new());
    rig.switch.lock().unwrap().failing_reverts = 2;
    let report = rig
        .drill
        .run()
        .await
        .expect("a report despite two failed reverts");
    rig.stop.cancel();
    let s = rig.switch.lock().unwrap();
    assert_eq!((s.failing_reverts, s.reverts, s.down), (0, 1, false));
    // Three attempts of 5 s with 1 s and 2 s of backoff between them: the revert phase
    // covers them all (to within the runner's one-second poll).
    let revert_s = report.fault.unwrap().revert_s.unwrap();
    assert!(
        (18.0..=19.5).contains(&revert_s),
        "revert took {revert_s} s"
    );
    assert!(report.recovered);
}

#[tokio::test(start_paused = true)]
async fn a_second_without_an_audit_snapshot_is_a_missed_sample() {
    // The audit says nothing from 20 s to 24 s of the simulation (the fault's time).
    let script = Script {
        silent: Some((20, 24)),
        ..NORMAL
    };
    let rig = rig(script, Duration::from_secs(2), Vec::new());
    let report = rig.drill.run().await.expect("a report");
    rig.stop.cancel();
    let missed: Vec<_> = report
        .timeline
        .iter()
        .filter(|s| s.missed.is_some())
        .collect();
    assert!(!missed.is_empty(), "no missed sample recorded");
    assert!(missed[0]
        .missed
        .as_deref()
        .unwrap()
        .contains("no audit snapshot"));
}

#[tokio::test(start_paused = true)]
async fn an_abort_in_any_phase_reverts_the_fault_and_ends_the_drill() {
    // Seconds after the start: gate (0-5), baseline (5-15), fault (15-25), revert (25-38),
    // recovery and drain after it.
    for abort_after in [2u64, 8, 18, 30, 42] {
        let rig = rig(NORMAL, Duration::from_secs(13), Vec::new());
        let cancel = rig.cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(abort_after)).await;
            cancel.cancel();
        });
        let outcome = rig.drill.run().await;
        rig.stop.cancel();
        let (state, message) = outcome
            .err()
            .unwrap_or_else(|| panic!("aborted after {abort_after} s, yet a report"));
        assert_eq!(state, DrillState::Aborted, "{abort_after} s: {message}");
        let s = rig.switch.lock().unwrap();
        assert!(
            !s.down,
            "{abort_after} s ({message}): the fault is still in effect"
        );
        assert_eq!(s.injects, s.reverts, "{abort_after} s: {message}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_job_gone_for_good_is_resubmitted_and_a_failing_resubmission_fails_the_drill() {
    // The job never runs again by itself (a JobManager without HA): resubmission is the
    // only way back, and it fails.
    let script = Script {
        job_lost: true,
        ..NORMAL
    };
    let rig = rig(
        script,
        Duration::from_secs(1),
        vec!["false".into(), "{checkpoint}".into()],
    );
    let outcome = tokio::time::timeout(Duration::from_secs(600), rig.drill.run()).await;
    rig.stop.cancel();
    // The fault was reverted before the resubmission.
    assert_eq!(rig.switch.lock().unwrap().reverts, 1);
    match outcome {
        Ok(Err((state, message))) => {
            assert_eq!(state, DrillState::Failed, "{message}");
            assert!(message.contains("resubmitting the job failed"), "{message}");
        }
        other => panic!(
            "expected a failed resubmission, got {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    }
}
