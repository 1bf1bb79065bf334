//! The Spark monitor: polls the master, the driver and the query's progress events, exports
//! the application's health, and publishes the engine status the drill runner reads (the
//! same [`FlinkStatus`] the Flink monitor publishes, with Spark's meaning of each field):
//!
//! | status field | Spark |
//! |---|---|
//! | `taskmanagers`, `slots_*` | alive workers, their cores (total, free) |
//! | `job.id` | the application id (a restarted driver is a new application) |
//! | `job.state` | `RUNNING` when the application runs with at least one executor; `RESTARTING` while it has none (the worker relaunches a lost one) |
//! | `job.running_since_ms` | when it last became `RUNNING` as seen by this monitor (the application's start, at first sight) |
//! | `job.restarts` | executors lost and replaced in this application |
//! | `job.checkpoints.completed`, `job.last_checkpoint` | micro-batches committed to the checkpoint since the application started, and the latest one (its commit time is the checkpoint's "ack") |
//!
//! The decisions live in [`Tracker`], a pure core fed what each poll read; the I/O shell
//! ([`SparkMonitor`]) only fetches and exports.

use std::collections::BTreeMap;

use prometheus::{Gauge, GaugeVec, IntGaugeVec, Opts, Registry};
use tracing::{debug, info, warn};

use super::{
    api::{self, executor_counts, Executor, Master, Progress, ProgressLog},
    Config,
};
use crate::{
    clock::now_ms,
    flink::{
        monitor::{FlinkStatus, JobStatus},
        rest::{CheckpointCounts, CompletedCheckpoint},
    },
    metrics::{register, Upstream, Upstreams},
};

/// What one poll read.
#[derive(Debug, Default)]
pub struct Poll {
    pub at_ms: i64,
    /// The master's `/json/`; `None` when it did not answer.
    pub master: Option<Master>,
    /// The application's executors; `None` when the driver did not answer.
    pub executors: Option<Vec<Executor>>,
    /// Progress events appended since the last poll.
    pub events: Vec<Progress>,
}

/// The pure core: folds polls into the engine status.
#[derive(Debug, Default)]
pub struct Tracker {
    app_id: Option<String>,
    app_start_ms: i64,
    /// Latest progress of each query of the application, by query name.
    latest: BTreeMap<String, Progress>,
    /// Micro-batches committed in the application.
    batches: u64,
    running_since_ms: Option<i64>,
    /// The application was seen not running (so a return to RUNNING is timed by this
    /// monitor, not by the application's start).
    was_down: bool,
    /// Executors of the application: (active, lost), when the driver answered.
    executors: Option<(u32, u32)>,
    /// How the application reads Kafka, once a progress event said ([`super::kafka_io`]).
    kafka_io: Option<&'static str>,
}

impl Tracker {
    /// The status after `poll`.
    pub fn observe(&mut self, app_name: &str, poll: Poll) -> FlinkStatus {
        let Some(master) = poll.master else {
            return FlinkStatus {
                at_ms: poll.at_ms,
                ..FlinkStatus::default()
            };
        };
        let alive: Vec<_> = master.workers.iter().filter(|w| w.is_alive()).collect();
        let mut status = FlinkStatus {
            at_ms: poll.at_ms,
            reachable: true,
            taskmanagers: alive.len() as u32,
            slots_total: alive.iter().map(|w| w.cores).sum(),
            slots_available: alive
                .iter()
                .map(|w| w.cores - w.coresused.min(w.cores))
                .sum(),
            busy_taskmanagers: Vec::new(),
            job: None,
            restart_strategy: None,
        };
        let Some(app) = master.app(app_name) else {
            *self = Tracker::default();
            return status;
        };
        if self.app_id.as_deref() != Some(&app.id) {
            *self = Tracker {
                app_id: Some(app.id.clone()),
                app_start_ms: app.starttime,
                ..Tracker::default()
            };
        }
        // Events of an earlier application (a restarted driver's predecessor) do not count.
        for event in poll.events {
            if event.started_ms < self.app_start_ms {
                continue;
            }
            self.batches += 1;
            self.kafka_io = super::kafka_io(&event.source).or(self.kafka_io);
            let newer = self
                .latest
                .get(&event.name)
                .is_none_or(|p| p.committed_ms() <= event.committed_ms());
            if newer {
                self.latest.insert(event.name.clone(), event);
            }
        }
        self.executors = poll.executors.as_deref().map(executor_counts);
        let (active, lost) = self.executors.unwrap_or((0, 0));
        let state = if app.state != "RUNNING" {
            app.state.clone()
        } else if active == 0 {
            "RESTARTING".to_string()
        } else {
            "RUNNING".to_string()
        };
        if state == "RUNNING" {
            let since = if self.was_down {
                poll.at_ms
            } else {
                app.starttime
            };
            self.running_since_ms.get_or_insert(since);
        } else {
            self.running_since_ms = None;
            self.was_down = true;
        }
        let last = self.latest.values().max_by_key(|p| p.committed_ms());
        status.job = Some(JobStatus {
            id: app.id.clone(),
            state,
            start_time_ms: app.starttime,
            running_since_ms: self.running_since_ms,
            restarts: self.executors.map(|_| u64::from(lost)),
            checkpoints: CheckpointCounts {
                completed: self.batches,
                ..CheckpointCounts::default()
            },
            last_checkpoint: last.map(|p| CompletedCheckpoint {
                id: p.batch_id,
                latest_ack_timestamp: p.committed_ms(),
                end_to_end_duration: p.duration_ms,
                checkpointed_size: None,
                state_size: None,
                external_path: None,
            }),
            last_restore: None,
            kafka_io: self.kafka_io,
        });
        status
    }

    /// The latest progress of each query, by name.
    pub fn queries(&self) -> &BTreeMap<String, Progress> {
        &self.latest
    }
}

struct Metrics {
    workers: IntGaugeVec,
    executors: IntGaugeVec,
    app: IntGaugeVec,
    running: Gauge,
    batches: Gauge,
    batch_age: GaugeVec,
    batch_duration: GaugeVec,
    input_rate: GaugeVec,
    processed_rate: GaugeVec,
}

impl Metrics {
    fn register(registry: &Registry) -> Metrics {
        let gauge = |name: &str, help: &str| {
            register(registry, Gauge::new(name, help).expect("valid metric"))
        };
        let int_vec = |name: &str, help: &str, label: &str| {
            register(
                registry,
                IntGaugeVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let by_query = |name: &str, help: &str| {
            register(
                registry,
                GaugeVec::new(Opts::new(name, help), &["query"]).expect("valid metric"),
            )
        };
        Metrics {
            workers: int_vec(
                "firedrill_spark_workers",
                "Workers registered with the master, by state (alive, dead).",
                "state",
            ),
            executors: int_vec(
                "firedrill_spark_executors",
                "Executors of the pipeline's application, by state (active, lost).",
                "state",
            ),
            app: int_vec(
                "firedrill_spark_app_info",
                "The pipeline's application id; always 1.",
                "app_id",
            ),
            running: gauge(
                "firedrill_spark_app_running",
                "1 when the pipeline's application runs with at least one executor, 0 when not, NaN when the master does not answer.",
            ),
            batches: gauge(
                "firedrill_spark_batches",
                "Micro-batches the application's queries committed since it started.",
            ),
            batch_age: by_query(
                "firedrill_spark_last_batch_age_seconds",
                "Now minus the commit time of the query's latest micro-batch.",
            ),
            batch_duration: by_query(
                "firedrill_spark_last_batch_duration_seconds",
                "Trigger-to-commit time of the query's latest micro-batch.",
            ),
            input_rate: by_query(
                "firedrill_spark_input_rows_per_second",
                "Rows per second arriving at the query, over its latest micro-batch.",
            ),
            processed_rate: by_query(
                "firedrill_spark_processed_rows_per_second",
                "Rows per second the query processed in its latest micro-batch.",
            ),
        }
    }

    fn export(&self, status: &FlinkStatus, master: Option<&Master>, tracker: &Tracker) {
        self.workers.reset();
        self.executors.reset();
        self.app.reset();
        for vec in [
            &self.batch_age,
            &self.batch_duration,
            &self.input_rate,
            &self.processed_rate,
        ] {
            vec.reset();
        }
        let Some(master) = master else {
            self.running.set(f64::NAN);
            self.batches.set(f64::NAN);
            return;
        };
        let alive = master.workers.iter().filter(|w| w.is_alive()).count() as i64;
        self.workers.with_label_values(&["alive"]).set(alive);
        self.workers
            .with_label_values(&["dead"])
            .set(master.workers.len() as i64 - alive);
        let Some(job) = &status.job else {
            self.running.set(0.0);
            self.batches.set(f64::NAN);
            return;
        };
        self.app.with_label_values(&[&job.id]).set(1);
        self.running.set(f64::from(u8::from(job.is_running())));
        self.batches.set(job.checkpoints.completed as f64);
        if let Some((active, lost)) = tracker.executors {
            self.executors
                .with_label_values(&["active"])
                .set(i64::from(active));
            self.executors
                .with_label_values(&["lost"])
                .set(i64::from(lost));
        }
        for (query, p) in tracker.queries() {
            let age = (status.at_ms - p.committed_ms()).max(0) as f64 / 1000.0;
            self.batch_age.with_label_values(&[query]).set(age);
            self.batch_duration
                .with_label_values(&[query])
                .set(p.duration_ms as f64 / 1000.0);
            self.input_rate
                .with_label_values(&[query])
                .set(p.input_rows_per_second);
            self.processed_rate
                .with_label_values(&[query])
                .set(p.processed_rows_per_second);
        }
    }
}

/// Polls Spark and exports; see the module docs.
pub struct SparkMonitor {
    config: Config,
    client: api::Client,
    log: ProgressLog,
    tracker: Tracker,
    metrics: Metrics,
    upstreams: Upstreams,
}

impl SparkMonitor {
    /// Builds the HTTP client (no request is made yet).
    pub fn build(
        config: &Config,
        registry: &Registry,
        upstreams: Upstreams,
    ) -> Result<SparkMonitor, reqwest::Error> {
        Ok(SparkMonitor {
            config: config.clone(),
            client: api::Client::new(config)?,
            log: ProgressLog::new(config.progress_file.clone()),
            tracker: Tracker::default(),
            metrics: Metrics::register(registry),
            upstreams,
        })
    }

    /// How often `engine::Monitor` calls [`Self::poll`].
    pub fn poll_interval(&self) -> std::time::Duration {
        self.config.poll_interval
    }

    /// One poll: reads, exports, and returns the status to publish.
    pub async fn poll(&mut self) -> FlinkStatus {
        let master = match self.client.master().await {
            Ok(master) => {
                if self.upstreams.observe(Upstream::Spark, true) {
                    info!("spark master answers");
                }
                Some(master)
            }
            Err(error) => {
                if self.upstreams.observe(Upstream::Spark, false) {
                    warn!(%error, "spark master poll failed; application state unknown until it answers");
                }
                None
            }
        };
        let app = master
            .as_ref()
            .and_then(|m| m.app(&self.config.app_name))
            .map(|a| a.id.clone());
        let executors = match &app {
            Some(id) => self
                .client
                .executors(id)
                .await
                .inspect_err(|error| debug!(%error, "spark driver not read"))
                .ok(),
            None => None,
        };
        // Reading a local file: small and bounded (only what was appended since).
        let log = &mut self.log;
        let events = tokio::task::block_in_place(|| log.read_new()).unwrap_or_else(|error| {
            debug!(%error, "spark progress file not read");
            Vec::new()
        });
        let poll = Poll {
            at_ms: now_ms(),
            master: master.clone(),
            executors,
            events,
        };
        let status = self.tracker.observe(&self.config.app_name, poll);
        self.metrics.export(&status, master.as_ref(), &self.tracker);
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spark::api::{App, Worker};

    fn master(app: Option<(&str, i64)>, alive: usize) -> Master {
        Master {
            workers: (0..2)
                .map(|i| Worker {
                    id: format!("worker-{i}"),
                    state: if i < alive { "ALIVE" } else { "DEAD" }.into(),
                    cores: 1,
                    coresused: 1,
                })
                .collect(),
            activeapps: app
                .map(|(id, start)| App {
                    id: id.into(),
                    name: "firedrill-orders".into(),
                    starttime: start,
                    state: "RUNNING".into(),
                })
                .into_iter()
                .collect(),
        }
    }

    fn executors(active: usize, lost: usize) -> Vec<Executor> {
        let e = |id: String, is_active| Executor { id, is_active };
        std::iter::once(e("driver".into(), true))
            .chain((0..active).map(|i| e(i.to_string(), true)))
            .chain((0..lost).map(|i| e(format!("{}", 100 + i), false)))
            .collect()
    }

    fn batch(name: &str, id: u64, started_ms: i64) -> Progress {
        Progress {
            name: name.into(),
            run_id: "run".into(),
            batch_id: id,
            started_ms,
            duration_ms: 200,
            input_rows: 10,
            input_rows_per_second: 10.0,
            processed_rows_per_second: 50.0,
            source: "PythonMicroBatchStream".into(),
        }
    }

    fn poll(
        at_ms: i64,
        master: Option<Master>,
        ex: Option<Vec<Executor>>,
        events: Vec<Progress>,
    ) -> Poll {
        Poll {
            at_ms,
            master,
            executors: ex,
            events,
        }
    }

    #[test]
    fn batches_are_the_checkpoints_and_the_latest_commit_is_the_ack() {
        let mut t = Tracker::default();
        let events = vec![
            batch("processed_orders", 1, 5_000),
            batch("order_stats", 1, 5_100),
            batch("processed_orders", 2, 6_000),
        ];
        let s = t.observe(
            "firedrill-orders",
            poll(
                7_000,
                Some(master(Some(("app-1", 1_000)), 2)),
                Some(executors(2, 0)),
                events,
            ),
        );
        assert_eq!(
            (s.taskmanagers, s.slots_total, s.slots_available),
            (2, 2, 0)
        );
        let job = s.job.unwrap();
        assert_eq!((job.id.as_str(), job.state.as_str()), ("app-1", "RUNNING"));
        assert_eq!(job.checkpoints.completed, 3);
        let last = job.last_checkpoint.unwrap();
        assert_eq!((last.id, last.latest_ack_timestamp), (2, 6_200));
        assert_eq!(job.restarts, Some(0));
        assert_eq!(
            job.running_since_ms,
            Some(1_000),
            "the application's start, at first sight"
        );
    }

    #[test]
    fn a_lost_executor_is_a_restart_and_running_resumes_when_one_is_back() {
        let mut t = Tracker::default();
        let m = || Some(master(Some(("app-1", 1_000)), 2));
        t.observe(
            "firedrill-orders",
            poll(2_000, m(), Some(executors(2, 0)), vec![]),
        );
        let s = t.observe(
            "firedrill-orders",
            poll(3_000, m(), Some(executors(0, 2)), vec![]),
        );
        let job = s.job.unwrap();
        assert_eq!((job.state.as_str(), job.restarts), ("RESTARTING", Some(2)));
        assert_eq!(job.running_since_ms, None);
        let s = t.observe(
            "firedrill-orders",
            poll(4_000, m(), Some(executors(1, 2)), vec![]),
        );
        assert_eq!(s.job.unwrap().running_since_ms, Some(4_000));
    }

    #[test]
    fn a_restarted_driver_is_a_new_job_and_old_events_do_not_count() {
        let mut t = Tracker::default();
        t.observe(
            "firedrill-orders",
            poll(
                2_000,
                Some(master(Some(("app-1", 1_000)), 2)),
                Some(executors(2, 0)),
                vec![batch("processed_orders", 7, 1_500)],
            ),
        );
        // The driver is gone: no application, no job.
        let s = t.observe(
            "firedrill-orders",
            poll(3_000, Some(master(None, 2)), None, vec![]),
        );
        assert!(s.job.is_none() && s.reachable);
        // Resubmitted: a new application; a late event of the old one is not its batch.
        let s = t.observe(
            "firedrill-orders",
            poll(
                9_000,
                Some(master(Some(("app-2", 8_000)), 2)),
                Some(executors(2, 0)),
                vec![
                    batch("processed_orders", 7, 2_500),
                    batch("processed_orders", 8, 8_500),
                ],
            ),
        );
        let job = s.job.unwrap();
        assert_eq!((job.id.as_str(), job.checkpoints.completed), ("app-2", 1));
        assert_eq!(job.last_checkpoint.unwrap().id, 8);
    }

    #[test]
    fn an_unreachable_master_is_an_unreachable_engine() {
        let mut t = Tracker::default();
        let s = t.observe("firedrill-orders", poll(1_000, None, None, vec![]));
        assert!(!s.reachable && s.job.is_none());
    }

    #[test]
    fn export_per_query_and_clear_when_the_master_is_gone() {
        let registry = crate::metrics::registry();
        let metrics = Metrics::register(&registry);
        let mut t = Tracker::default();
        let m = master(Some(("app-1", 1_000)), 1);
        let s = t.observe(
            "firedrill-orders",
            poll(
                7_000,
                Some(m.clone()),
                Some(executors(1, 1)),
                vec![batch("order_stats", 3, 5_000)],
            ),
        );
        metrics.export(&s, Some(&m), &t);
        let text = String::from_utf8(crate::metrics::encode(&registry)).unwrap();
        for line in [
            "firedrill_spark_workers{state=\"alive\"} 1",
            "firedrill_spark_workers{state=\"dead\"} 1",
            "firedrill_spark_app_running 1",
            "firedrill_spark_app_info{app_id=\"app-1\"} 1",
            "firedrill_spark_last_batch_age_seconds{query=\"order_stats\"} 1.8",
            "firedrill_spark_last_batch_duration_seconds{query=\"order_stats\"} 0.2",
            "firedrill_spark_executors{state=\"lost\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in {text}");
        }
        metrics.export(&FlinkStatus::default(), None, &Tracker::default());
        let text = String::from_utf8(crate::metrics::encode(&registry)).unwrap();
        assert!(text.lines().any(|l| l == "firedrill_spark_app_running NaN"));
        assert!(!text.contains("firedrill_spark_last_batch_age_seconds{"));
    }
}
