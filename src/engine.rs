//! Which stream processor runs the pipeline (`[engine] kind`), and its monitor.
//!
//! Owns the choice and the one place that builds the chosen engine's monitor. Both monitors
//! publish the same status (`flink::monitor::FlinkStatus`, whose fields `spark::monitor`
//! maps to Spark's meaning), so the drill runner, the gate and the reports do not know which
//! engine they drill beyond the name written into each report.

use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    flink::{self, monitor::FlinkMonitor, monitor::FlinkStatus},
    metrics::{register, Upstream, Upstreams},
    spark::{self, monitor::SparkMonitor},
};

/// `[engine]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `flink` (sql/orders.sql, monitored through `[flink]`) or `spark`
    /// (sql/orders_spark.py, monitored through `[spark]`).
    pub kind: Kind,
}

/// The engine running the pipeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Apache Flink.
    #[default]
    Flink,
    /// Apache Spark Structured Streaming.
    Spark,
}

impl Kind {
    /// The name in reports, labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Flink => "flink",
            Kind::Spark => "spark",
        }
    }

    /// The upstream whose answers make the daemon ready.
    pub fn upstream(self) -> Upstream {
        match self {
            Kind::Flink => Upstream::Flink,
            Kind::Spark => Upstream::Spark,
        }
    }
}

/// Registers `firedrill_engine_info{engine}`, 1 for the engine `kind` (alert rules pick the
/// engine's alerts by it).
pub fn export_info(kind: Kind, registry: &Registry) {
    let info = register(
        registry,
        IntGaugeVec::new(
            Opts::new(
                "firedrill_engine_info",
                "The stream processor firedrill monitors and drills ([engine] kind); always 1.",
            ),
            &["engine"],
        )
        .expect("valid metric"),
    );
    info.with_label_values(&[kind.as_str()]).set(1);
}

/// The engine-neutral gauges, labelled `engine`: what both engines' status means alike
/// (the engine-specific `firedrill_flink_*` and `firedrill_spark_*` carry the rest; whether
/// the engine answers is `firedrill_upstream_up{upstream="flink"|"spark"}`).
struct Gauges {
    engine: Kind,
    running: GaugeVec,
    restarts: GaugeVec,
    checkpoints: GaugeVec,
    checkpoint_age: GaugeVec,
    workers: GaugeVec,
}

impl Gauges {
    fn register(engine: Kind, registry: &Registry) -> Gauges {
        let gauge = |name: &str, help: &str| {
            register(
                registry,
                GaugeVec::new(Opts::new(name, help), &["engine"]).expect("valid metric"),
            )
        };
        Gauges {
            engine,
            running: gauge(
                "firedrill_engine_job_running",
                "1 when the pipeline's job runs (Flink: job RUNNING; Spark: application RUNNING with an executor), 0 when not, NaN when the engine does not answer.",
            ),
            restarts: gauge(
                "firedrill_engine_job_restarts",
                "Restarts of the running job (Flink: numRestarts; Spark: executors lost and replaced in the application); NaN when unknown.",
            ),
            checkpoints: gauge(
                "firedrill_engine_checkpoints_completed",
                "Progress the job committed durably since it started (Flink: completed checkpoints; Spark: micro-batches committed to the checkpoint); NaN when unknown.",
            ),
            checkpoint_age: gauge(
                "firedrill_engine_checkpoint_age_seconds",
                "Now minus the commit of the job's latest checkpoint (Spark: micro-batch), or since it started when none; NaN when unknown.",
            ),
            workers: gauge(
                "firedrill_engine_workers",
                "Workers registered and alive (Flink: TaskManagers; Spark: workers); NaN when the engine does not answer.",
            ),
        }
    }

    fn export(&self, status: &FlinkStatus) {
        let label = [self.engine.as_str()];
        let set = |vec: &GaugeVec, value: f64| vec.with_label_values(&label).set(value);
        if !status.reachable {
            for vec in [
                &self.running,
                &self.restarts,
                &self.checkpoints,
                &self.checkpoint_age,
                &self.workers,
            ] {
                set(vec, f64::NAN);
            }
            return;
        }
        set(&self.workers, f64::from(status.taskmanagers));
        let job = status.job.as_ref();
        set(
            &self.running,
            f64::from(u8::from(job.is_some_and(|j| j.is_running()))),
        );
        set(
            &self.restarts,
            job.and_then(|j| j.restarts).map_or(f64::NAN, |r| r as f64),
        );
        set(
            &self.checkpoints,
            job.map_or(f64::NAN, |j| j.checkpoints.completed as f64),
        );
        set(
            &self.checkpoint_age,
            job.map_or(f64::NAN, |j| j.checkpoint_age_seconds(status.at_ms)),
        );
    }
}

/// The chosen engine's monitor, polled by [`Monitor::run`], which publishes each status and
/// exports the engine-neutral gauges (`firedrill_engine_*{engine}`).
pub struct Monitor {
    poller: Poller,
    status: watch::Sender<FlinkStatus>,
    gauges: Gauges,
}

enum Poller {
    Flink(Box<FlinkMonitor>),
    Spark(Box<SparkMonitor>),
}

impl Monitor {
    /// Builds the monitor of `kind` (no request is made yet).
    pub fn build(
        kind: Kind,
        flink: &flink::Config,
        spark: &spark::Config,
        registry: &Registry,
        upstreams: Upstreams,
    ) -> Result<Monitor, reqwest::Error> {
        let poller = match kind {
            Kind::Flink => {
                Poller::Flink(Box::new(FlinkMonitor::build(flink, registry, upstreams)?))
            }
            Kind::Spark => {
                Poller::Spark(Box::new(SparkMonitor::build(spark, registry, upstreams)?))
            }
        };
        Ok(Monitor {
            poller,
            status: watch::Sender::new(FlinkStatus::default()),
            gauges: Gauges::register(kind, registry),
        })
    }

    /// The latest engine status, updated after every poll.
    pub fn subscribe(&self) -> watch::Receiver<FlinkStatus> {
        self.status.subscribe()
    }

    /// Polls every `poll_interval` of the engine's config until cancelled.
    pub async fn run(mut self, cancel: CancellationToken) {
        let interval = match &self.poller {
            Poller::Flink(m) => m.poll_interval(),
            Poller::Spark(m) => m.poll_interval(),
        };
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    let status = match &mut self.poller {
                        Poller::Flink(m) => m.poll().await,
                        Poller::Spark(m) => m.poll().await,
                    };
                    self.gauges.export(&status);
                    self.status.send_replace(status);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_is_chosen_by_name_and_exported() {
        let config: Config = toml::from_str("kind = \"spark\"").unwrap();
        assert_eq!(config.kind, Kind::Spark);
        assert!(toml::from_str::<Config>("kind = \"storm\"").is_err());
        assert_eq!(Config::default().kind, Kind::Flink);
        let registry = crate::metrics::registry();
        export_info(Kind::Spark, &registry);
        let text = String::from_utf8(crate::metrics::encode(&registry)).unwrap();
        assert!(text
            .lines()
            .any(|l| l == "firedrill_engine_info{engine=\"spark\"} 1"));
        assert_eq!(Kind::Spark.upstream(), Upstream::Spark);
    }

    fn gauges_of(kind: Kind, status: &FlinkStatus) -> Vec<String> {
        let registry = crate::metrics::registry();
        Gauges::register(kind, &registry).export(status);
        String::from_utf8(crate::metrics::encode(&registry))
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("firedrill_engine_"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_engine_gauges_say_the_same_thing_for_either_engine() {
        use crate::flink::{
            monitor::JobStatus,
            rest::{CheckpointCounts, CompletedCheckpoint},
        };
        let status = FlinkStatus {
            at_ms: 60_000,
            reachable: true,
            taskmanagers: 2,
            job: Some(JobStatus {
                id: "app-1".into(),
                state: "RUNNING".into(),
                start_time_ms: 1_000,
                running_since_ms: Some(1_000),
                restarts: Some(1),
                checkpoints: CheckpointCounts {
                    completed: 42,
                    ..CheckpointCounts::default()
                },
                last_checkpoint: Some(CompletedCheckpoint {
                    id: 42,
                    latest_ack_timestamp: 57_500,
                    end_to_end_duration: 300,
                    checkpointed_size: None,
                    state_size: None,
                    external_path: None,
                }),
                last_restore: None,
                kafka_io: None,
            }),
            ..FlinkStatus::default()
        };
        assert_eq!(
            gauges_of(Kind::Spark, &status),
            [
                "firedrill_engine_checkpoint_age_seconds{engine=\"spark\"} 2.5",
                "firedrill_engine_checkpoints_completed{engine=\"spark\"} 42",
                "firedrill_engine_job_restarts{engine=\"spark\"} 1",
                "firedrill_engine_job_running{engine=\"spark\"} 1",
                "firedrill_engine_workers{engine=\"spark\"} 2",
            ]
        );
        let no_job = FlinkStatus {
            job: None,
            ..status.clone()
        };
        let lines = gauges_of(Kind::Flink, &no_job);
        assert!(lines.contains(&"firedrill_engine_job_running{engine=\"flink\"} 0".to_string()));
        assert!(lines.contains(
            &"firedrill_engine_checkpoint_age_seconds{engine=\"flink\"} NaN".to_string()
        ));
        let down = gauges_of(Kind::Flink, &FlinkStatus::default());
        assert!(down.contains(&"firedrill_engine_job_running{engine=\"flink\"} NaN".to_string()));
        assert!(down.contains(&"firedrill_engine_workers{engine=\"flink\"} NaN".to_string()));
    }
}
