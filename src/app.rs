//! Builds every component from the [`Config`], spawns them, and shuts them down in order.
//!
//! `App::build` creates every client and binds the HTTP port, so a bad setting fails before
//! anything runs. `App::spawn` starts the tasks in stages; `Running::shutdown` stops the
//! stages in the drain order: the drill runner (aborting a drill reverts its fault), the
//! fault actor (reverts every fault still active), the generator (no new orders), the audit
//! and the monitors (the audit applies the generator's last delivery reports), then HTTP.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use prometheus::Registry;
use tokio::time::Instant;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, info_span, warn, Instrument};

use crate::{
    alerts::Alerts,
    audit::{consumer::Consumer, Audit},
    config::Config,
    drills::{runner::Sources, Drills},
    engine,
    faults::{self, Faults},
    generator::Generator,
    grafana::Annotator,
    http,
    kafka::{lag::AckIndex, monitor::LagMonitor},
    metrics::{Exposition, Upstreams},
};

/// Acks held per partition for exact time lag before falling back to interpolation.
const ACK_INDEX_CAPACITY: usize = 1_000_000;

/// Every component, built and not yet running.
pub struct App {
    run_id: String,
    http: http::Server,
    generator: Generator,
    audit: Audit,
    consumer: Consumer,
    lag: LagMonitor,
    engine: engine::Monitor,
    faults: Faults,
    drills: Drills,
    annotator: Option<Annotator>,
}

impl App {
    /// Builds every component. Nothing runs yet; errors name the component.
    pub async fn build(config: &Config, registry: &Registry) -> anyhow::Result<App> {
        let run_id = new_run_id();
        let upstreams = Upstreams::register(registry);
        let acks = Arc::new(Mutex::new(AckIndex::with_capacity(ACK_INDEX_CAPACITY)));
        let (audit, inbox) = Audit::new(
            &config.audit,
            &run_id,
            config.generator.max_in_flight.get() as usize,
            registry,
        );
        let consumer =
            Consumer::build(&config.kafka, &run_id, inbox.records).context("audit consumer")?;
        let (generator, generator_handle) = Generator::build(
            &config.generator,
            &config.kafka,
            &run_id,
            inbox.orders,
            acks.clone(),
            registry,
        )
        .context("generator producer")?;
        let mut exposition = Exposition::new(registry.clone());
        let lag = LagMonitor::build(
            &config.kafka,
            acks,
            registry,
            exposition.block(),
            upstreams.clone(),
        )
        .context("kafka lag monitor")?;
        let kind = config.engine.kind;
        engine::export_info(kind, registry);
        let engine = engine::Monitor::build(
            kind,
            &config.flink,
            &config.spark,
            registry,
            upstreams.clone(),
        )
        .with_context(|| format!("{} monitor", kind.as_str()))?;
        let (faults, faults_handle) =
            Faults::build_with_upstreams(&config.faults, registry, Some(upstreams.clone()))
                .context("faults")?;
        let alerts = Alerts::new(registry);
        let (annotator, annotations) =
            Annotator::build(&config.grafana, registry).context("grafana annotations")?;
        let sources = Sources {
            audit: audit.subscribe(),
            output: audit.output(),
            engine: kind,
            flink: engine.subscribe(),
            lag: lag.subscribe(),
            lag_group: config
                .kafka
                .consumer_groups
                .first()
                .cloned()
                .unwrap_or_default(),
            generator: generator_handle.clone(),
            faults: faults_handle.clone(),
            alerts: alerts.clone(),
            expected_alerts: config.alerts.clone(),
            annotations,
        };
        let (drills, drills_handle) =
            Drills::build(&config.drills, sources, registry).context("drills")?;
        let state = http::State {
            exposition,
            upstreams,
            engine: kind,
            generator: generator_handle,
            faults: faults_handle,
            drills: drills_handle,
            alerts,
            token: config.http.token.clone(),
            limiter: config.http.limiter(),
        };
        let http = http::Server::bind(&config.http, state)
            .await
            .with_context(|| format!("http.listen: cannot bind {}", config.http.listen))?;
        Ok(App {
            run_id,
            http,
            generator,
            audit,
            consumer,
            lag,
            engine,
            faults,
            drills,
            annotator,
        })
    }

    /// The address `/metrics` and the admin API answer on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// Spawns every task; each stage has its own cancellation and tracker.
    pub fn spawn(self) -> Running {
        info!(run_id = %self.run_id, "firedrill starting");
        let http_addr = self.http_addr();
        let drills = Stage::new("drills");
        // Reverts are not cut short by the shutdown deadline: a target left half-restarted
        // would wait for the next start to be reverted.
        let faults = Stage::new("faults").at_least(faults::SHUTDOWN_GRACE);
        let generator = Stage::new("generator");
        let pipeline = Stage::new("audit and monitors");
        let serving = Stage::new("http");

        let mut consumer_ready = self.consumer.ready();
        // Startup reverts whatever the fault ledger still holds (a previous crash).
        faults.spawn("faults", self.faults.run(faults.cancel.clone()));
        drills.spawn("drills", self.drills.run(drills.cancel.clone()));
        pipeline.spawn("audit", self.audit.run(pipeline.cancel.clone()));
        pipeline.spawn("audit_consumer", self.consumer.run(pipeline.cancel.clone()));
        pipeline.spawn("kafka_lag", self.lag.run(pipeline.cancel.clone()));
        pipeline.spawn("engine_monitor", self.engine.run(pipeline.cancel.clone()));
        let cancel = generator.cancel.clone();
        let run = self.generator.run(cancel.clone());
        generator.spawn("generator", async move {
            // No order before the audit is positioned: its output would go unseen.
            tokio::select! {
                _ = cancel.cancelled() => return,
                ready = consumer_ready.wait_for(|ready| *ready) => if ready.is_err() { return },
            }
            run.await
        });
        serving.spawn("http", self.http.run(serving.cancel.clone()));
        // Stopped last: the region of a drill aborted at shutdown still gets its end.
        if let Some(annotator) = self.annotator {
            serving.spawn("grafana_annotations", annotator.run(serving.cancel.clone()));
        }
        Running {
            http_addr,
            stages: vec![drills, faults, generator, pipeline, serving],
        }
    }
}

/// A group of tasks stopped together.
struct Stage {
    name: &'static str,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// How long the stage may take to stop, whatever the overall deadline has left.
    at_least: Duration,
}

impl Stage {
    fn new(name: &'static str) -> Stage {
        Stage {
            name,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
            at_least: Duration::ZERO,
        }
    }

    fn at_least(mut self, at_least: Duration) -> Stage {
        self.at_least = at_least;
        self
    }

    fn spawn(
        &self,
        task: &'static str,
        future: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.tracker
            .spawn(future.instrument(info_span!("task", name = task)));
    }
}

/// The running daemon.
pub struct Running {
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    stages: Vec<Stage>,
}

impl Running {
    /// Stops the stages in order, giving all of them together at most `deadline` (a stage
    /// with a longer `at_least` gets that from when it is stopped). Returns the names of
    /// stages that did not finish in time.
    pub async fn shutdown(self, deadline: Duration) -> Vec<&'static str> {
        shutdown(self.stages, deadline).await
    }
}

async fn shutdown(stages: Vec<Stage>, deadline: Duration) -> Vec<&'static str> {
    let until = Instant::now() + deadline;
    let mut late = Vec::new();
    for stage in stages {
        stage.cancel.cancel();
        stage.tracker.close();
        let stage_until = until.max(Instant::now() + stage.at_least);
        if tokio::time::timeout_at(stage_until, stage.tracker.wait())
            .await
            .is_err()
        {
            warn!(stage = stage.name, "stage did not stop before the deadline");
            late.push(stage.name);
        } else {
            info!(stage = stage.name, "stopped");
        }
    }
    late
}

/// A run id: unique per start, no `-` (order ids are `run-seq`).
fn new_run_id() -> String {
    format!("r{:x}{:04x}", crate::clock::now_ms(), fastrand::u16(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stage_with_a_longer_bound_is_not_cut_by_the_deadline() {
        let stage = |name, takes: Duration| {
            let stage = Stage::new(name);
            let cancel = stage.cancel.clone();
            stage.spawn(name, async move {
                cancel.cancelled().await;
                tokio::time::sleep(takes).await;
            });
            stage
        };
        let reverts = stage("faults", Duration::from_secs(40)).at_least(Duration::from_secs(60));
        let slow = stage("slow", Duration::from_secs(30));
        let start = Instant::now();

        let late = shutdown(vec![reverts, slow], Duration::from_secs(20)).await;

        // The faults stage took its 40 s; the next one had nothing left of the 20 s.
        assert_eq!(late, ["slow"]);
        assert_eq!(start.elapsed(), Duration::from_secs(40));
    }
}
