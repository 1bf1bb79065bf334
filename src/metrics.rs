//! The one Prometheus [`Registry`] and how it is encoded, plus the upstream health gauges
//! every poller sets.
//!
//! The registry is created once in `main` and passed to every component's
//! `Metrics::register`; nothing registers into prometheus' default registry. This module does
//! not own any component's metrics, only the shared `firedrill_upstream_up` family and the
//! readiness it implies.
//!
//! A component whose series are many and change only when it polls (the lag monitor's, per
//! group and partition) keeps them in a registry of its own and renders them once per poll
//! into a [`Rendered`] block; `/metrics` serves the [`Exposition`]: the one registry, then
//! those blocks as they were last rendered.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, PoisonError, RwLock,
};

use bytes::Bytes;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A fresh registry with firedrill's build info registered.
pub fn registry() -> Registry {
    let registry = Registry::new();
    let info = IntGaugeVec::new(
        Opts::new("firedrill_build_info", "Build information; always 1."),
        &["version"],
    )
    .expect("valid metric");
    info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry
        .register(Box::new(info))
        .expect("first registration");
    registry
}

/// Encodes every metric family of `registry` in the text exposition format.
pub fn encode(registry: &Registry) -> Vec<u8> {
    let mut buf = Vec::with_capacity(16 * 1024);
    TextEncoder::new()
        .encode(&registry.gather(), &mut buf)
        .expect("text encoding into a Vec cannot fail");
    buf
}

/// A block of the exposition rendered by its owner when its values change, not on every
/// scrape. Its families must not also be in the one registry. Cheap to clone.
#[derive(Clone, Default)]
pub struct Rendered(Arc<RwLock<Bytes>>);

impl Rendered {
    /// Replaces the block with every family of `registry`, encoded.
    pub fn render(&self, registry: &Registry) {
        let text = Bytes::from(encode(registry));
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = text;
    }

    fn text(&self) -> Bytes {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What `/metrics` serves: the one registry, encoded at each scrape, then the [`Rendered`]
/// blocks handed out by [`Exposition::block`].
#[derive(Clone)]
pub struct Exposition {
    registry: Registry,
    blocks: Vec<Rendered>,
}

impl Exposition {
    /// An exposition of `registry` with no blocks yet.
    pub fn new(registry: Registry) -> Self {
        Exposition {
            registry,
            blocks: Vec::new(),
        }
    }

    /// A new block, served after the registry (empty until first rendered).
    pub fn block(&mut self) -> Rendered {
        let block = Rendered::default();
        self.blocks.push(block.clone());
        block
    }

    /// The text exposition: the registry's families, then every block.
    pub fn encode(&self) -> Vec<u8> {
        let mut text = encode(&self.registry);
        for block in &self.blocks {
            text.extend_from_slice(&block.text());
        }
        text
    }
}

/// Registers `metric` and returns it, panicking on a duplicate name (a programming error
/// caught by every test that builds the app).
pub fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// An upstream firedrill polls; the label value of `firedrill_upstream_up`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// The Kafka cluster (metadata, watermarks, committed offsets).
    Kafka,
    /// The Flink REST API.
    Flink,
    /// The Spark master's web UI (when Spark is the engine).
    Spark,
    /// Docker engine, when a fault backend uses it.
    Docker,
}

impl Upstream {
    const ALL: [Upstream; 4] = [
        Upstream::Kafka,
        Upstream::Flink,
        Upstream::Spark,
        Upstream::Docker,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Kafka => "kafka",
            Upstream::Flink => "flink",
            Upstream::Spark => "spark",
            Upstream::Docker => "docker",
        }
    }
}

/// `firedrill_upstream_up{upstream}` plus whether each upstream has ever answered, which is
/// what `/readyz` reports. Cheap to clone; atomics only.
#[derive(Clone)]
pub struct Upstreams {
    up: IntGaugeVec,
    polled: Arc<[AtomicBool; 4]>,
    answered: Arc<[AtomicBool; 4]>,
}

impl Upstreams {
    /// Registers `firedrill_upstream_up`.
    pub fn register(registry: &Registry) -> Self {
        let up = register(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "firedrill_upstream_up",
                    "1 if the last poll of the upstream succeeded, 0 if it failed.",
                ),
                &["upstream"],
            )
            .expect("valid metric"),
        );
        Upstreams {
            up,
            polled: Arc::new(Default::default()),
            answered: Arc::new(Default::default()),
        }
    }

    /// Records the outcome of one poll of `upstream`. Returns whether that changed its
    /// state (first poll included), so pollers can log transitions instead of every failure.
    pub fn observe(&self, upstream: Upstream, ok: bool) -> bool {
        let gauge = self.up.with_label_values(&[upstream.as_str()]);
        let first = !self.polled[Self::index(upstream)].swap(true, Ordering::Relaxed);
        let changed = first || gauge.get() != i64::from(ok);
        gauge.set(i64::from(ok));
        if ok {
            self.answered[Self::index(upstream)].store(true, Ordering::Relaxed);
        }
        changed
    }

    /// Whether `upstream` has answered at least once since start.
    pub fn has_answered(&self, upstream: Upstream) -> bool {
        self.answered[Self::index(upstream)].load(Ordering::Relaxed)
    }

    fn index(upstream: Upstream) -> usize {
        Upstream::ALL
            .iter()
            .position(|u| *u == upstream)
            .expect("every upstream is in ALL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_export_and_remember_answers() {
        let registry = registry();
        let upstreams = Upstreams::register(&registry);
        assert!(!upstreams.has_answered(Upstream::Kafka));
        assert!(upstreams.observe(Upstream::Kafka, true));
        assert!(!upstreams.observe(Upstream::Kafka, true));
        assert!(upstreams.observe(Upstream::Kafka, false));
        assert!(upstreams.has_answered(Upstream::Kafka));
        assert!(!upstreams.has_answered(Upstream::Flink));
        let text = String::from_utf8(encode(&registry)).unwrap();
        assert!(
            text.contains("firedrill_upstream_up{upstream=\"kafka\"} 0"),
            "{text}"
        );
        assert!(text.contains("firedrill_build_info{version="), "{text}");
    }

    #[test]
    fn an_exposition_serves_blocks_as_last_rendered() {
        let mut exposition = Exposition::new(registry());
        let block = exposition.block();
        let own = Registry::new();
        let gauge = register(&own, prometheus::IntGauge::new("own_series", "h").unwrap());
        let text = |e: &Exposition| String::from_utf8(e.encode()).unwrap();
        assert!(text(&exposition).contains("firedrill_build_info"));
        assert!(
            !text(&exposition).contains("own_series"),
            "not rendered yet"
        );

        gauge.set(7);
        block.render(&own);
        gauge.set(8);
        let served = text(&exposition);
        assert!(served.contains("own_series 7\n"), "{served}");
        assert!(served.contains("# TYPE own_series gauge"), "{served}");
        assert!(
            served.find("firedrill_build_info") < served.find("own_series"),
            "registry first: {served}"
        );
        block.render(&own);
        assert!(text(&exposition).contains("own_series 8\n"));
    }
}
