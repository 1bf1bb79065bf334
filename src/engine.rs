//! Which stream processor runs the pipeline (`[engine] kind`), and its monitor.
//!
//! Owns the choice and the one place that builds the chosen engine's monitor. Both monitors
//! publish the same status (`flink::monitor::FlinkStatus`, whose fields `spark::monitor`
//! maps to Spark's meaning), so the drill runner, the gate and the reports do not know which
//! engine they drill beyond the name written into each report.

use prometheus::{IntGaugeVec, Opts, Registry};
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

/// The chosen engine's monitor, polled by [`Monitor::run`], which publishes each status.
pub struct Monitor {
    poller: Poller,
    status: watch::Sender<FlinkStatus>,
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
}
