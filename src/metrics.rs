//! The one Prometheus [`Registry`] and how it is encoded, plus the upstream health gauges
//! every poller sets.
//!
//! The registry is created once in `main` and passed to every component's
//! `Metrics::register`; nothing registers into prometheus' default registry. This module does
//! not own any component's metrics, only the shared `firedrill_upstream_up` family and the
//! readiness it implies.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

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
    /// Docker engine, when a fault backend uses it.
    Docker,
}

impl Upstream {
    const ALL: [Upstream; 3] = [Upstream::Kafka, Upstream::Flink, Upstream::Docker];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Kafka => "kafka",
            Upstream::Flink => "flink",
            Upstream::Docker => "docker",
        }
    }
}

/// `firedrill_upstream_up{upstream}` plus whether each upstream has ever answered, which is
/// what `/readyz` reports. Cheap to clone; atomics only.
#[derive(Clone)]
pub struct Upstreams {
    up: IntGaugeVec,
    polled: Arc<[AtomicBool; 3]>,
    answered: Arc<[AtomicBool; 3]>,
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
}
