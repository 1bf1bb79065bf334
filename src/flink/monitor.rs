//! The Flink monitor: at each poll (`engine::Monitor` runs the loop and publishes), reads the
//! REST API, exports job health and checkpoint age, and returns the [`FlinkStatus`] the drill
//! runner reads.
//!
//! Copes with no job (job series absent), a resubmitted job (the newest non-terminal job of
//! the configured name is followed; a new job id shows in `firedrill_flink_job_info`) and the
//! JobManager being down (`firedrill_upstream_up{upstream="flink"} 0`, job series absent).

use prometheus::{Gauge, IntGaugeVec, Opts, Registry};
use tracing::{debug, info, warn};

use super::{
    rest::{self, CheckpointCounts, CompletedCheckpoint, RestartStrategy, RestoredCheckpoint},
    Config,
};
use crate::{
    clock::now_ms,
    metrics::{register, Upstream, Upstreams},
};

/// Every job status Flink 2.0 reports; the label values of `firedrill_flink_job_state`.
pub const JOB_STATES: &[&str] = &[
    "INITIALIZING",
    "CREATED",
    "RUNNING",
    "FAILING",
    "FAILED",
    "CANCELLING",
    "CANCELED",
    "FINISHED",
    "RESTARTING",
    "SUSPENDED",
    "RECONCILING",
];

/// What the monitor saw at one poll.
#[derive(Debug, Clone, Default)]
pub struct FlinkStatus {
    /// When, unix ms.
    pub at_ms: i64,
    /// Whether the REST API answered.
    pub reachable: bool,
    /// Registered TaskManagers.
    pub taskmanagers: u32,
    /// Slots over all TaskManagers.
    pub slots_total: u32,
    /// Free slots.
    pub slots_available: u32,
    /// Resource ids of the TaskManagers with slots in use: the ones running tasks.
    pub busy_taskmanagers: Vec<String>,
    /// The watched job, if there is one.
    pub job: Option<JobStatus>,
    /// The cluster's restart strategy, read once per watched job (`None` until read).
    pub restart_strategy: Option<RestartStrategy>,
}

/// The watched job.
#[derive(Debug, Clone)]
pub struct JobStatus {
    /// Job id.
    pub id: String,
    /// Job status, e.g. `RUNNING`.
    pub state: String,
    /// Submission time, unix ms.
    pub start_time_ms: i64,
    /// When the job last entered RUNNING, if it is running.
    pub running_since_ms: Option<i64>,
    /// `numRestarts`.
    pub restarts: Option<u64>,
    /// Checkpoint counters.
    pub checkpoints: CheckpointCounts,
    /// Latest completed checkpoint.
    pub last_checkpoint: Option<CompletedCheckpoint>,
    /// Latest restore.
    pub last_restore: Option<RestoredCheckpoint>,
    /// How the job reads and writes Kafka when the engine's own account says
    /// (`spark::kafka_io`); `None` for Flink, whose SQL job always runs Flink's Kafka
    /// connector.
    pub kafka_io: Option<&'static str>,
}

impl JobStatus {
    /// Whether the job is RUNNING.
    pub fn is_running(&self) -> bool {
        self.state == "RUNNING"
    }

    /// now - ack time of the latest completed checkpoint; since submission when none
    /// completed yet (the job has gone that long without one).
    pub fn checkpoint_age_seconds(&self, now_ms: i64) -> f64 {
        let since = self
            .last_checkpoint
            .as_ref()
            .map_or(self.start_time_ms, |c| c.latest_ack_timestamp);
        (now_ms - since).max(0) as f64 / 1000.0
    }
}

struct Metrics {
    state: IntGaugeVec,
    info: IntGaugeVec,
    uptime: Gauge,
    // Plain (f64) gauges, not IntGauge, so that unknown can be NaN rather than a stale or
    // misleading value.
    restarts: Gauge,
    taskmanagers: Gauge,
    slots: IntGaugeVec,
    checkpoints: IntGaugeVec,
    checkpoint_age: Gauge,
    checkpoint_duration: Gauge,
    checkpoint_size: Gauge,
    restore_time: Gauge,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            register(registry, Gauge::new(name, help).expect("valid metric"))
        };
        let int_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        Metrics {
            state: int_vec(
                "firedrill_flink_job_state",
                "1 for the watched job's current status, 0 for the others.",
                &["state"],
            ),
            info: int_vec(
                "firedrill_flink_job_info",
                "The watched job's id; always 1.",
                &["job_id"],
            ),
            uptime: gauge(
                "firedrill_flink_job_uptime_seconds",
                "Time since the watched job last entered RUNNING; 0 when not running.",
            ),
            restarts: gauge(
                "firedrill_flink_job_restarts",
                "Restarts of the watched job (Flink's numRestarts; a new job starts at 0).",
            ),
            taskmanagers: gauge(
                "firedrill_flink_taskmanagers",
                "TaskManagers registered with the JobManager.",
            ),
            slots: int_vec(
                "firedrill_flink_slots",
                "Task slots, by state (total, available).",
                &["state"],
            ),
            checkpoints: int_vec(
                "firedrill_flink_checkpoints",
                "Checkpoints of the watched job, by status (completed, failed, in_progress, restored).",
                &["status"],
            ),
            checkpoint_age: gauge(
                "firedrill_flink_checkpoint_age_seconds",
                "Now minus the ack time of the latest completed checkpoint (since submission when none).",
            ),
            checkpoint_duration: gauge(
                "firedrill_flink_last_checkpoint_duration_seconds",
                "Trigger-to-completion time of the latest completed checkpoint.",
            ),
            checkpoint_size: gauge(
                "firedrill_flink_last_checkpoint_size_bytes",
                "State size of the latest completed checkpoint.",
            ),
            restore_time: gauge(
                "firedrill_flink_last_restore_timestamp_seconds",
                "When the watched job last restored from a checkpoint, unix seconds.",
            ),
        }
    }

    fn export(&self, status: &FlinkStatus) {
        self.taskmanagers.set(f64::from(status.taskmanagers));
        self.slots
            .with_label_values(&["total"])
            .set(i64::from(status.slots_total));
        self.slots
            .with_label_values(&["available"])
            .set(i64::from(status.slots_available));
        let Some(job) = &status.job else {
            self.clear_job();
            return;
        };
        for state in JOB_STATES {
            self.state
                .with_label_values(&[state])
                .set(i64::from(*state == job.state));
        }
        self.info.reset();
        self.info.with_label_values(&[&job.id]).set(1);
        let uptime = job
            .running_since_ms
            .map_or(0.0, |t| (status.at_ms - t).max(0) as f64 / 1000.0);
        self.uptime.set(uptime);
        self.restarts
            .set(job.restarts.map_or(f64::NAN, |restarts| restarts as f64));
        let counts = &job.checkpoints;
        for (label, value) in [
            ("completed", counts.completed),
            ("failed", counts.failed),
            ("in_progress", counts.in_progress),
            ("restored", counts.restored),
        ] {
            self.checkpoints
                .with_label_values(&[label])
                .set(value as i64);
        }
        self.checkpoint_age
            .set(job.checkpoint_age_seconds(status.at_ms));
        // A job without a completed checkpoint or a restore (a new job after a resubmission,
        // too) has none: NaN, not the previous job's figures.
        let checkpoint = job.last_checkpoint.as_ref();
        self.checkpoint_duration
            .set(checkpoint.map_or(f64::NAN, |c| c.end_to_end_duration as f64 / 1000.0));
        self.checkpoint_size.set(
            checkpoint
                .and_then(|c| c.state_size.or(c.checkpointed_size))
                .map_or(f64::NAN, |bytes| bytes as f64),
        );
        self.restore_time.set(
            job.last_restore
                .as_ref()
                .map_or(f64::NAN, |r| r.restore_timestamp as f64 / 1000.0),
        );
    }

    fn clear_job(&self) {
        self.state.reset();
        self.info.reset();
        self.checkpoints.reset();
        for g in [
            &self.uptime,
            &self.restarts,
            &self.checkpoint_age,
            &self.checkpoint_duration,
            &self.checkpoint_size,
            &self.restore_time,
        ] {
            g.set(f64::NAN);
        }
    }

    fn clear(&self) {
        self.clear_job();
        self.taskmanagers.set(f64::NAN);
        self.slots.reset();
    }
}

/// Polls Flink and exports; see the module docs.
pub struct FlinkMonitor {
    config: Config,
    client: rest::Client,
    metrics: Metrics,
    upstreams: Upstreams,
    watched_job: Option<String>,
    restart_strategy: Option<RestartStrategy>,
}

impl FlinkMonitor {
    /// Builds the REST client (no request is made yet).
    pub fn build(
        config: &Config,
        registry: &Registry,
        upstreams: Upstreams,
    ) -> Result<FlinkMonitor, reqwest::Error> {
        Ok(FlinkMonitor {
            config: config.clone(),
            client: rest::Client::new(config)?,
            metrics: Metrics::register(registry),
            upstreams,
            watched_job: None,
            restart_strategy: None,
        })
    }

    /// How often `engine::Monitor` calls [`Self::poll`].
    pub fn poll_interval(&self) -> std::time::Duration {
        self.config.poll_interval
    }

    /// One poll: reads, exports, and returns the status to publish.
    pub async fn poll(&mut self) -> FlinkStatus {
        match poll(&self.client, &self.config.job_name).await {
            Ok(mut status) => {
                if self.upstreams.observe(Upstream::Flink, true) {
                    info!("flink answers");
                }
                self.metrics.export(&status);
                let job_id = status.job.as_ref().map(|j| j.id.clone());
                if job_id != self.watched_job {
                    info!(
                        job_id = job_id.as_deref().unwrap_or("none"),
                        "watching flink job"
                    );
                    self.watched_job = job_id;
                    // A new job (or a JobManager restarted with another config): read again.
                    self.restart_strategy = None;
                }
                if self.restart_strategy.is_none() {
                    match self.client.jobmanager_config().await {
                        Ok(entries) => {
                            self.restart_strategy = Some(RestartStrategy::from_config(&entries))
                        }
                        Err(error) => debug!(%error, "flink config not read; retried next poll"),
                    }
                }
                status.restart_strategy = self.restart_strategy.clone();
                debug!(taskmanagers = status.taskmanagers, "flink polled");
                status
            }
            Err(error) => {
                self.metrics.clear();
                if self.upstreams.observe(Upstream::Flink, false) {
                    warn!(%error, kind = error.kind(), "flink poll failed; job state unknown until it answers");
                } else {
                    debug!(%error, kind = error.kind(), "flink poll failed");
                }
                FlinkStatus {
                    at_ms: now_ms(),
                    ..FlinkStatus::default()
                }
            }
        }
    }
}

async fn poll(client: &rest::Client, job_name: &str) -> Result<FlinkStatus, rest::Error> {
    let (overview, taskmanagers) = tokio::join!(client.overview(), client.taskmanagers());
    let overview = overview?;
    // Only drills use this; a failure here must not hide the job's health.
    let busy_taskmanagers = taskmanagers.map_or_else(
        |_| Vec::new(),
        |t| {
            t.taskmanagers
                .into_iter()
                .filter(|tm| tm.free_slots < tm.slots)
                .map(|tm| tm.id)
                .collect()
        },
    );
    let jobs = client.jobs().await?;
    let job = match rest::select_job(&jobs.jobs, job_name) {
        None => None,
        Some(summary) => {
            let id = summary.jid.as_str();
            let (details, checkpoints, restarts) =
                tokio::join!(client.job(id), client.checkpoints(id), client.restarts(id));
            let details = details?;
            // A job that never checkpointed (or was just archived) may answer 404 here.
            let checkpoints = checkpoints.ok();
            let running_since_ms = (details.state == "RUNNING")
                .then(|| details.timestamps.get("RUNNING").copied())
                .flatten()
                .filter(|t| *t > 0);
            Some(JobStatus {
                id: details.jid,
                state: details.state,
                start_time_ms: details.start_time,
                running_since_ms,
                restarts: restarts.ok().flatten(),
                checkpoints: checkpoints.as_ref().map(|c| c.counts).unwrap_or_default(),
                last_checkpoint: checkpoints
                    .as_ref()
                    .and_then(|c| c.latest.completed.clone()),
                last_restore: checkpoints.and_then(|c| c.latest.restored),
                kafka_io: None,
            })
        }
    };
    Ok(FlinkStatus {
        at_ms: now_ms(),
        reachable: true,
        taskmanagers: overview.taskmanagers,
        slots_total: overview.slots_total,
        slots_available: overview.slots_available,
        busy_taskmanagers,
        job,
        restart_strategy: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: &str, last_ack: Option<i64>) -> JobStatus {
        JobStatus {
            id: "j".into(),
            state: state.into(),
            start_time_ms: 1_000,
            running_since_ms: Some(2_000),
            restarts: Some(3),
            checkpoints: CheckpointCounts::default(),
            last_checkpoint: last_ack.map(|t| CompletedCheckpoint {
                id: 1,
                latest_ack_timestamp: t,
                end_to_end_duration: 150,
                checkpointed_size: None,
                state_size: Some(4096),
                external_path: None,
            }),
            last_restore: None,
            kafka_io: None,
        }
    }

    #[test]
    fn checkpoint_age_counts_from_the_last_ack_or_the_submission() {
        assert_eq!(
            job("RUNNING", Some(9_000)).checkpoint_age_seconds(10_500),
            1.5
        );
        assert_eq!(job("RUNNING", None).checkpoint_age_seconds(10_000), 9.0);
    }

    #[test]
    fn export_is_one_hot_and_clears_without_a_job() {
        let registry = crate::metrics::registry();
        let metrics = Metrics::register(&registry);
        // The exposition's lines, compared whole (a prefix would let 10 pass for 1).
        let lines = || {
            let text = String::from_utf8(crate::metrics::encode(&registry)).unwrap();
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let has = |lines: &[String], line: &str| lines.iter().any(|l| l == line);
        let status = FlinkStatus {
            at_ms: 12_000,
            reachable: true,
            taskmanagers: 2,
            slots_total: 4,
            slots_available: 2,
            busy_taskmanagers: vec!["taskmanager-2".into()],
            job: Some(job("RESTARTING", Some(11_000))),
            restart_strategy: None,
        };
        metrics.export(&status);
        let now = lines();
        for line in [
            "firedrill_flink_job_state{state=\"RESTARTING\"} 1",
            "firedrill_flink_job_state{state=\"RUNNING\"} 0",
            "firedrill_flink_checkpoint_age_seconds 1",
            "firedrill_flink_job_uptime_seconds 10",
            "firedrill_flink_job_restarts 3",
            "firedrill_flink_last_checkpoint_size_bytes 4096",
            "firedrill_flink_last_checkpoint_duration_seconds 0.15",
            "firedrill_flink_last_restore_timestamp_seconds NaN",
            "firedrill_flink_taskmanagers 2",
            "firedrill_flink_slots{state=\"available\"} 2",
        ] {
            assert!(has(&now, line), "{line} not in {now:#?}");
        }

        // No job: nothing of the old one survives.
        metrics.export(&FlinkStatus {
            job: None,
            ..status.clone()
        });
        let now = lines();
        assert!(!now
            .iter()
            .any(|l| l.starts_with("firedrill_flink_job_state{")));
        for line in [
            "firedrill_flink_checkpoint_age_seconds NaN",
            "firedrill_flink_job_restarts NaN",
            "firedrill_flink_last_checkpoint_size_bytes NaN",
            "firedrill_flink_taskmanagers 2",
        ] {
            assert!(has(&now, line), "{line} not in {now:#?}");
        }

        // A resubmitted job without a checkpoint yet: not the previous job's figures.
        metrics.export(&status);
        metrics.export(&FlinkStatus {
            job: Some(job("RUNNING", None)),
            ..status
        });
        let now = lines();
        assert!(has(&now, "firedrill_flink_last_checkpoint_size_bytes NaN"));
        assert!(has(
            &now,
            "firedrill_flink_last_checkpoint_duration_seconds NaN"
        ));

        // The JobManager unreachable: TaskManagers unknown too.
        metrics.clear();
        let now = lines();
        assert!(has(&now, "firedrill_flink_taskmanagers NaN"), "{now:#?}");
        assert!(!now.iter().any(|l| l.starts_with("firedrill_flink_slots{")));
    }
}
