//! The exactly-once audit: every record of the output topic is matched against the orders
//! this run produced, and what it finds is exported.
//!
//! - `ledger`: the pure accounting (first sighting, duplicate, unexpected, invalid, late,
//!   missing, lost) and its running totals;
//! - `consumer`: the I/O shell that reads `processed_orders` with `read_committed`;
//! - this file: the [`Event`]s the generator and the consumer send, and the [`Audit`] actor
//!   that owns the ledger, applies events in arrival order, ages orders once a second,
//!   exports metrics and publishes an [`AuditSnapshot`] for drills.
//!
//! Business gauges derived from the totals are in `business`.

pub mod consumer;
pub mod ledger;
pub mod output;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use self::{
    ledger::{Ledger, LedgerConfig, Outcome, Seen, Totals},
    output::OutputTimeline,
};
use crate::{
    business,
    clock::now_ms,
    metrics::register,
    order::{OrderId, ProcessedOrder, RecordError},
};

/// `[audit]`: service levels of the pipeline as the audit judges them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// An acked order not seen in the output within this time is missing (an SLA breach);
    /// seen later, it is late.
    #[serde(with = "crate::config::duration")]
    pub sla: Duration,
    /// A missing order still unseen after this time (from its ack) counts as lost. Drills
    /// use their own drain deadline instead.
    #[serde(with = "crate::config::duration")]
    pub lost_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sla: Duration::from_secs(30),
            lost_after: Duration::from_secs(120),
        }
    }
}

/// What the generator and the consumer tell the audit, in the order they happened.
#[derive(Debug)]
pub enum Event {
    /// The generator is about to produce order `seq` worth `value_cents`.
    Sent { seq: u64, value_cents: u64 },
    /// The broker acked order `seq` at `ack_ms`.
    Acked { seq: u64, ack_ms: i64 },
    /// Order `seq` failed at the door (never reached the broker).
    Failed { seq: u64 },
    /// A record of the output topic, read at `received_ms`.
    Record {
        record: Result<ProcessedOrder, RecordError>,
        received_ms: i64,
    },
}

/// The output timeline, shared: the audit writes one record at a time, a drill reads it
/// once at its end. A lock rather than an actor: both sides hold it for a bounded moment (one
/// bucket update; one scan of a drill's window) and never across an `.await`.
#[derive(Debug, Clone, Default)]
pub struct SharedOutput(Arc<Mutex<OutputTimeline>>);

impl SharedOutput {
    /// Runs `f` on the timeline.
    pub fn read<T>(&self, f: impl FnOnce(&OutputTimeline) -> T) -> T {
        f(&self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Records one output record, as the audit does; for tests of what reads the timeline.
    #[cfg(test)]
    pub fn record_for_tests(&self, processed_at_ms: i64, latency_ms: i64, received_ms: i64) {
        self.record(processed_at_ms, latency_ms, received_ms);
    }

    fn record(&self, processed_at_ms: i64, latency_ms: i64, received_ms: i64) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .record(processed_at_ms, latency_ms, received_ms);
    }
}

/// The audit's totals at one moment, for drills and the HTTP API.
#[derive(Debug, Clone, Default)]
pub struct AuditSnapshot {
    /// When, unix ms.
    pub at_ms: i64,
    /// Running totals.
    pub totals: Totals,
    /// Records that could not be read at all.
    pub malformed: u64,
    /// Median ack-to-receive latency of the most recent first sightings, seconds.
    pub recent_latency_p50_s: Option<f64>,
    /// 99th percentile of the same, seconds.
    pub recent_latency_p99_s: Option<f64>,
}

/// First sightings whose latency the recent percentiles are computed over.
const RECENT_LATENCIES: usize = 1024;

/// The `q` quantile (0..=1) of `values` by nearest rank; `None` when empty.
fn quantile(values: &std::collections::VecDeque<u64>, q: f64) -> Option<f64> {
    let mut sorted: Vec<u64> = values.iter().copied().collect();
    sorted.sort_unstable();
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).map(|ms| *ms as f64 / 1000.0)
}

struct Metrics {
    records: IntCounterVec,
    malformed: IntCounterVec,
    integrity: IntCounterVec,
    late: prometheus::IntCounter,
    orders: IntGaugeVec,
    tracked: IntGauge,
    tracked_bytes: IntGauge,
    pipeline_latency: Histogram,
    e2e_latency: Histogram,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        let counter_vec = |name: &str, help: &str, label: &str| {
            register(
                registry,
                IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric"),
            )
        };
        let histogram = |name: &str, help: &str| {
            let buckets = vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0,
            ];
            register(
                registry,
                Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                    .expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(registry, IntGauge::new(name, help).expect("valid metric"))
        };
        Metrics {
            records: counter_vec(
                "firedrill_audit_records_total",
                "Output records by verdict: processed (first sighting), duplicate, unexpected (not produced by this run), invalid (wrong value or category).",
                "verdict",
            ),
            malformed: counter_vec(
                "firedrill_audit_malformed_records_total",
                "Output records that could not be read, by reason.",
                "reason",
            ),
            integrity: counter_vec(
                "firedrill_audit_integrity_failures_total",
                "First sightings whose computed field differs from what was produced.",
                "field",
            ),
            late: register(
                registry,
                prometheus::IntCounter::new(
                    "firedrill_audit_late_orders_total",
                    "Orders first seen after the SLA.",
                )
                .expect("valid metric"),
            ),
            orders: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_audit_orders",
                        "Acked orders not yet seen, by state: in_flight (within SLA), missing (past SLA), lost (past lost_after).",
                    ),
                    &["state"],
                )
                .expect("valid metric"),
            ),
            tracked: gauge(
                "firedrill_audit_tracked_orders",
                "Orders the ledger holds in memory (fully processed ranges are compacted away).",
            ),
            tracked_bytes: gauge(
                "firedrill_audit_tracked_bytes",
                "Heap bytes the ledger holds.",
            ),
            pipeline_latency: histogram(
                "firedrill_audit_pipeline_latency_seconds",
                "Flink's processed_at minus the order's event_time.",
            ),
            e2e_latency: histogram(
                "firedrill_audit_e2e_latency_seconds",
                "firedrill's receive time of the output record minus the order's ack time.",
            ),
        }
    }

    /// Creates the bounded series at 0, so that rates and alerts work from the first scrape.
    fn init(self) -> Self {
        for verdict in ["processed", "duplicate", "unexpected", "invalid"] {
            self.records.with_label_values(&[verdict]);
        }
        for field in ["order_value", "order_category"] {
            self.integrity.with_label_values(&[field]);
        }
        for state in ["in_flight", "missing", "lost"] {
            self.orders.with_label_values(&[state]);
        }
        self
    }

    fn record_outcome(&self, outcome: &Outcome, record: &ProcessedOrder) {
        let verdict = match outcome {
            Outcome::Processed {
                late,
                ack_to_seen_ms,
            } => {
                if *late {
                    self.late.inc();
                }
                if let Some(ms) = ack_to_seen_ms {
                    self.e2e_latency.observe(*ms as f64 / 1000.0);
                }
                let pipeline_ms = (record.processed_at_ms - record.event_time_ms).max(0);
                self.pipeline_latency.observe(pipeline_ms as f64 / 1000.0);
                "processed"
            }
            Outcome::Duplicate => "duplicate",
            Outcome::Unexpected => "unexpected",
            Outcome::Invalid {
                value_ok,
                category_ok,
            } => {
                if !value_ok {
                    self.integrity.with_label_values(&["order_value"]).inc();
                }
                if !category_ok {
                    self.integrity.with_label_values(&["order_category"]).inc();
                }
                "invalid"
            }
        };
        self.records.with_label_values(&[verdict]).inc();
    }

    fn export(&self, totals: &Totals, ledger: &Ledger) {
        self.orders
            .with_label_values(&["in_flight"])
            .set(totals.in_flight as i64);
        self.orders
            .with_label_values(&["missing"])
            .set(totals.missing as i64);
        self.orders
            .with_label_values(&["lost"])
            .set(totals.lost as i64);
        self.tracked.set(ledger.tracked() as i64);
        self.tracked_bytes.set(ledger.approx_bytes() as i64);
    }
}

/// Owns the ledger; see the module docs.
pub struct Audit {
    run_id: String,
    ledger: Ledger,
    events: mpsc::UnboundedReceiver<Event>,
    metrics: Metrics,
    business: business::Metrics,
    malformed: u64,
    recent_latencies_ms: std::collections::VecDeque<u64>,
    snapshot: watch::Sender<AuditSnapshot>,
    output: SharedOutput,
}

impl Audit {
    /// An audit of run `run_id`, and the sender the generator and the consumer feed it with.
    pub fn new(
        config: &Config,
        run_id: &str,
        registry: &Registry,
    ) -> (Audit, mpsc::UnboundedSender<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ledger = Ledger::new(LedgerConfig {
            sla_ms: config.sla.as_millis() as u64,
            lost_after_ms: config.lost_after.as_millis() as u64,
        });
        let audit = Audit {
            run_id: run_id.to_string(),
            ledger,
            events: rx,
            metrics: Metrics::register(registry).init(),
            business: business::Metrics::register(registry),
            malformed: 0,
            recent_latencies_ms: std::collections::VecDeque::with_capacity(RECENT_LATENCIES),
            snapshot: watch::Sender::new(AuditSnapshot::default()),
            output: SharedOutput::default(),
        };
        (audit, tx)
    }

    /// The latest snapshot, published once a second.
    pub fn subscribe(&self) -> watch::Receiver<AuditSnapshot> {
        self.snapshot.subscribe()
    }

    /// The pipeline's output on Flink's clock (every parsed record, any run).
    pub fn output(&self) -> SharedOutput {
        self.output.clone()
    }

    /// Applies events and ages orders until cancelled; on cancel, applies what is already
    /// queued (the generator's last delivery reports) and publishes a final snapshot.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                event = self.events.recv() => match event {
                    Some(event) => self.apply(event),
                    None => break,
                },
                _ = tick.tick() => self.tick(),
            }
        }
        while let Ok(event) = self.events.try_recv() {
            self.apply(event);
        }
        self.tick();
        let t = self.ledger.totals();
        info!(
            acked = t.acked,
            processed = t.processed,
            duplicates = t.duplicates,
            in_flight = t.in_flight,
            missing = t.missing,
            "audit stopped"
        );
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Sent { seq, value_cents } => self.ledger.sent(seq, value_cents),
            Event::Acked { seq, ack_ms } => self.ledger.acked(seq, ack_ms.max(0) as u64),
            Event::Failed { seq } => self.ledger.failed(seq),
            Event::Record {
                record: Err(error), ..
            } => {
                self.malformed += 1;
                self.metrics
                    .malformed
                    .with_label_values(&[error.kind()])
                    .inc();
                debug!(%error, "unreadable output record");
            }
            Event::Record {
                record: Ok(record),
                received_ms,
            } => {
                self.output.record(
                    record.processed_at_ms,
                    record.processed_at_ms - record.event_time_ms,
                    received_ms,
                );
                let outcome = match OrderId::parse(&record.order_id) {
                    Some(id) if id.run_id == self.run_id => self.ledger.seen(
                        id.seq,
                        Seen {
                            value_cents: record.value_cents,
                            category: record.category,
                        },
                        received_ms.max(0) as u64,
                    ),
                    // Another run's order, or not an order id of firedrill's at all.
                    _ => self.ledger.foreign(),
                };
                if let Outcome::Processed {
                    ack_to_seen_ms: Some(ms),
                    ..
                } = outcome
                {
                    if self.recent_latencies_ms.len() == RECENT_LATENCIES {
                        self.recent_latencies_ms.pop_front();
                    }
                    self.recent_latencies_ms.push_back(ms);
                }
                self.metrics.record_outcome(&outcome, &record);
            }
        }
    }

    fn tick(&mut self) {
        let now = now_ms();
        self.ledger.tick(now.max(0) as u64);
        let totals = self.ledger.totals();
        self.metrics.export(&totals, &self.ledger);
        self.business.export(&totals);
        self.snapshot.send_replace(AuditSnapshot {
            at_ms: now,
            totals,
            malformed: self.malformed,
            recent_latency_p50_s: quantile(&self.recent_latencies_ms, 0.5),
            recent_latency_p99_s: quantile(&self.recent_latencies_ms, 0.99),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: std::collections::VecDeque<u64> = (1..=100).map(|v| v * 10).collect();
        assert_eq!(quantile(&values, 0.5), Some(0.5));
        assert_eq!(quantile(&values, 0.99), Some(0.99));
        assert_eq!(quantile(&Default::default(), 0.5), None);
    }
}
