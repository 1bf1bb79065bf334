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

/// The chosen engine's monitor.
pub enum Monitor {
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
        Ok(match kind {
            Kind::Flink => {
                Monitor::Flink(Box::new(FlinkMonitor::build(flink, registry, upstreams)?))
            }
            Kind::Spark => {
                Monitor::Spark(Box::new(SparkMonitor::build(spark, registry, upstreams)?))
            }
        })
    }

    /// The latest engine status, updated after every poll.
    pub fn subscribe(&self) -> watch::Receiver<FlinkStatus> {
        match self {
            Monitor::Flink(m) => m.subscribe(),
            Monitor::Spark(m) => m.subscribe(),
        }
    }

    /// Polls until cancelled.
    pub async fn run(self, cancel: CancellationToken) {
        match self {
            Monitor::Flink(m) => m.run(cancel).await,
            Monitor::Spark(m) => m.run(cancel).await,
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
