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
//! # Inbox: bounded, and the tick first
//!
//! Events come over two bounded channels ([`Inbox`]), so the audit's memory is bounded
//! whatever the backlog:
//! - the generator's (`Sent`, `Acked`, `Failed`), sized for every order librdkafka may hold
//!   plus room. The delivery report is written on librdkafka's thread, which must never wait:
//!   the generator reserves the report's slot before it hands the order over (an
//!   [`OwnedPermit`](mpsc::OwnedPermit) that travels with the order), so the report always
//!   has room and is never lost. A generator ahead of the audit waits for slots: backpressure
//!   onto the pacing loop, not memory;
//! - the consumer's (`Record`), small: the consumer awaits room, so a backlog in the output
//!   topic stays in the broker until the audit takes it.
//!
//! The ledger needs an order's `Sent` before any sighting of it. The generator queues `Sent`
//! before the order reaches the broker, so before Flink can write it and the consumer read
//! it: applying what the generator's channel holds before each batch of records keeps that
//! order across the two channels.
//!
//! The loop looks at its 1 s tick before any event, and one turn applies at most a batch of
//! records (with the generator's events queued before them, bounded by their channel): under
//! any backlog the orders age and the snapshot drills wait on is published every second, and
//! neither source starves the other.
//!
//! Business gauges derived from the totals are in `business`.

pub mod consumer;
mod failed;
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
    #[serde(with = "crate::config_value::duration")]
    pub sla: Duration,
    /// A missing order still unseen after this time (from its ack) counts as lost. Drills
    /// use their own drain deadline instead.
    #[serde(with = "crate::config_value::duration")]
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

/// Room in the generator's channel beyond one slot per order librdkafka may hold (that slot
/// is its delivery report's): at 100 000 orders/s about half a second of `Sent` events.
pub const ORDER_EVENTS_ROOM: usize = 50_000;

/// Records the consumer may have queued for the audit. A record in the inbox is at most a few
/// hundred bytes (the consumer drops an order id longer than any firedrill writes).
pub const RECORDS_CAPACITY: usize = 4_096;

/// Events applied per turn of the loop before it looks at its tick again.
const BATCH: usize = 512;

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

/// The senders of the audit's two channels; see the module docs.
#[derive(Debug, Clone)]
pub struct Inbox {
    /// The generator's: `Sent`, and the `Acked`/`Failed` its delivery reports turn into.
    pub orders: mpsc::Sender<Event>,
    /// The consumer's: `Record`.
    pub records: mpsc::Sender<Event>,
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
    inbox: IntGaugeVec,
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
            inbox: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "firedrill_audit_inbox_events",
                        "Events queued for the audit at its last tick, by source: generator (orders sent and their delivery reports), consumer (output records).",
                    ),
                    &["source"],
                )
                .expect("valid metric"),
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
        for source in ["generator", "consumer"] {
            self.inbox.with_label_values(&[source]);
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
    orders: mpsc::Receiver<Event>,
    records: mpsc::Receiver<Event>,
    metrics: Metrics,
    business: business::Metrics,
    malformed: u64,
    recent_latencies_ms: std::collections::VecDeque<u64>,
    snapshot: watch::Sender<AuditSnapshot>,
    output: SharedOutput,
}

impl Audit {
    /// An audit of run `run_id`, and the senders the generator and the consumer feed it with.
    /// `max_in_flight` is the most orders the generator's producer may hold at once (each
    /// holds a slot for its delivery report).
    pub fn new(
        config: &Config,
        run_id: &str,
        max_in_flight: usize,
        registry: &Registry,
    ) -> (Audit, Inbox) {
        let (orders_tx, orders) = mpsc::channel(max_in_flight + ORDER_EVENTS_ROOM);
        let (records_tx, records) = mpsc::channel(RECORDS_CAPACITY);
        let ledger = Ledger::new(LedgerConfig {
            sla_ms: config.sla.as_millis() as u64,
            lost_after_ms: config.lost_after.as_millis() as u64,
        });
        let audit = Audit {
            run_id: run_id.to_string(),
            ledger,
            orders,
            records,
            metrics: Metrics::register(registry).init(),
            business: business::Metrics::register(registry),
            malformed: 0,
            recent_latencies_ms: std::collections::VecDeque::with_capacity(RECENT_LATENCIES),
            snapshot: watch::Sender::new(AuditSnapshot::default()),
            output: SharedOutput::default(),
        };
        (
            audit,
            Inbox {
                orders: orders_tx,
                records: records_tx,
            },
        )
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
        let (mut orders, mut records) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let (mut orders_open, mut records_open) = (true, true);
        while orders_open || records_open {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                // Before any event: a backlog never delays aging and the snapshot.
                _ = tick.tick() => self.tick(),
                n = self.orders.recv_many(&mut orders, BATCH), if orders_open => {
                    orders_open = n > 0;
                    orders.drain(..).for_each(|event| self.apply(event));
                    // Records get their turn too, however busy the generator is.
                    self.apply_queued_records(BATCH);
                }
                n = self.records.recv_many(&mut records, BATCH), if records_open => {
                    records_open = n > 0;
                    // These records' orders were announced before they were produced.
                    self.apply_queued_orders();
                    records.drain(..).for_each(|event| self.apply(event));
                }
            }
        }
        // What is queued now, and no more: the consumer stops with the same cancel.
        self.apply_queued_records(RECORDS_CAPACITY);
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

    /// Applies the generator's events queued now (not those queued meanwhile: bounded work).
    fn apply_queued_orders(&mut self) {
        for _ in 0..self.orders.len() {
            match self.orders.try_recv() {
                Ok(event) => self.apply(event),
                Err(_) => break,
            }
        }
    }

    /// Applies up to `max` records queued now, after the generator's events queued before them.
    fn apply_queued_records(&mut self, max: usize) {
        self.apply_queued_orders();
        for _ in 0..self.records.len().min(max) {
            match self.records.try_recv() {
                Ok(event) => self.apply(event),
                Err(_) => break,
            }
        }
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
        self.metrics
            .inbox
            .with_label_values(&["generator"])
            .set(self.orders.len() as i64);
        self.metrics
            .inbox
            .with_label_values(&["consumer"])
            .set(self.records.len() as i64);
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
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;

    /// A record of another run, as the consumer would queue it.
    fn foreign_record() -> Event {
        Event::Record {
            record: Ok(ProcessedOrder {
                order_id: "other-1".into(),
                quantity: 1,
                price_cents: 100,
                value_cents: 100,
                category: Some(crate::order::Category::Basic),
                event_time_ms: 0,
                processed_at_ms: 0,
            }),
            received_ms: now_ms(),
        }
    }

    /// A record of order `seq` of run `r`, correct for a value of 100 cents.
    fn record_of(seq: u64) -> Event {
        match foreign_record() {
            Event::Record {
                record: Ok(mut record),
                received_ms,
            } => {
                record.order_id = format!("r-{seq}");
                Event::Record {
                    record: Ok(record),
                    received_ms,
                }
            }
            _ => unreachable!(),
        }
    }

    /// Lets the other tasks run until `done` holds, at most `turns` times; whether it held.
    async fn within_turns(turns: usize, mut done: impl FnMut() -> bool) -> bool {
        for _ in 0..turns {
            if done() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        done()
    }

    /// Polls `future` once, in the calling task.
    async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) {
        std::future::poll_fn(|cx| {
            let _ = std::pin::Pin::new(&mut *future).poll(cx);
            std::task::Poll::Ready(())
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_events_never_starves_the_tick_and_stays_bounded() {
        // Room for a backlog of the generator's events far beyond what one poll of the audit
        // takes (the coop budget: 128 batches).
        let backlog = 200_000;
        let (audit, inbox) = Audit::new(&Config::default(), "r", backlog, &Registry::new());
        let mut snapshots = audit.subscribe();
        let cancel = CancellationToken::new();
        // Polled by hand, so each step below sees exactly one poll of it.
        let mut audit = Box::pin(audit.run(cancel.clone()));

        // Consumers that never run dry and a generator whose every order is acked, as fast as
        // the audit takes them.
        let records_sent = Arc::new(AtomicU64::new(0));
        let mut floods = Vec::new();
        for _ in 0..2 {
            let (records, sent) = (inbox.records.clone(), records_sent.clone());
            floods.push(tokio::spawn(async move {
                while records.send(foreign_record()).await.is_ok() {
                    sent.fetch_add(1, Relaxed);
                }
            }));
        }
        floods.push(tokio::spawn({
            let orders = inbox.orders.clone();
            async move {
                for seq in 0.. {
                    let sent = Event::Sent {
                        seq,
                        value_cents: 100,
                    };
                    let Ok(()) = orders.send(sent).await else {
                        return;
                    };
                    let Ok(report) = orders.clone().reserve_owned().await else {
                        return;
                    };
                    report.send(Event::Acked {
                        seq,
                        ack_ms: now_ms(),
                    });
                }
            }
        }));

        let start = tokio::time::Instant::now();
        let mut unknown_sent = 0;
        poll_once(&mut audit).await;
        for second in 1..=5u64 {
            // The consumers fill the records' channel and wait for room, the tick becomes due...
            assert!(within_turns(100, || inbox.records.capacity() == 0).await);
            tokio::time::advance(Duration::from_secs(1)).await;
            // ...while the generator's channel holds a backlog of delivery reports of no order.
            while inbox.orders.max_capacity() - inbox.orders.capacity() < backlog {
                let unknown = Event::Failed { seq: u64::MAX };
                inbox.orders.try_send(unknown).unwrap();
                unknown_sent += 1;
            }

            poll_once(&mut audit).await;
            // The snapshot is published at once, before the backlog is applied...
            assert!(
                snapshots.has_changed().unwrap(),
                "no snapshot in second {second}"
            );
            let snapshot = snapshots.borrow_and_update().clone();
            assert_eq!(start.elapsed(), Duration::from_secs(second));
            assert_eq!(snapshot.at_ms, now_ms());
            let t = snapshot.totals;
            assert!(unknown_sent - t.rejected >= backlog as u64 / 2, "{t:?}");
            if second > 1 {
                assert!(t.acked > 0 && t.sent >= t.acked, "{t:?}");
                assert!(t.unexpected > 0, "{t:?}");
            }
            // ...and what the consumers queued is bounded: they waited for room.
            let waiting = records_sent.load(Relaxed) - t.unexpected;
            assert!(
                waiting <= RECORDS_CAPACITY as u64,
                "{waiting} records queued"
            );
            // In the same poll, records had their turn too, backlog or not.
            assert!(inbox.records.capacity() > 0, "no record applied");

            // Let the audit and the floods work for a while.
            for _ in 0..3 {
                tokio::task::yield_now().await;
                poll_once(&mut audit).await;
            }
        }

        cancel.cancel();
        audit.await;
        drop(inbox);
        for flood in floods {
            flood.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_record_is_applied_after_the_orders_queued_before_it() {
        let (audit, inbox) = Audit::new(&Config::default(), "r", 16, &Registry::new());
        let snapshots = audit.subscribe();
        // Many orders queued, then a record of the last one: were the record applied first,
        // it would be unexpected (never sent).
        let orders = 5 * BATCH as u64;
        for seq in 0..orders {
            let sent = Event::Sent {
                seq,
                value_cents: 100,
            };
            inbox.orders.try_send(sent).unwrap();
        }
        inbox.records.try_send(record_of(orders - 1)).unwrap();
        let cancel = CancellationToken::new();
        let audit = tokio::spawn(audit.run(cancel.clone()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(within_turns(50, || snapshots.has_changed().unwrap()).await);
        let t = snapshots.borrow().totals.clone();
        assert_eq!((t.sent, t.unexpected, t.processed), (orders, 0, 1));
        cancel.cancel();
        audit.await.unwrap();
    }

    #[tokio::test]
    async fn on_cancel_what_is_queued_is_applied() {
        let (audit, inbox) = Audit::new(&Config::default(), "r", 16, &Registry::new());
        let snapshots = audit.subscribe();
        for seq in 0..3 {
            let sent = Event::Sent {
                seq,
                value_cents: 100,
            };
            inbox.orders.try_send(sent).unwrap();
            inbox.records.try_send(record_of(seq)).unwrap();
        }
        let cancel = CancellationToken::new();
        cancel.cancel();
        audit.run(cancel).await;
        let t = snapshots.borrow().totals.clone();
        assert_eq!((t.sent, t.processed, t.unexpected), (3, 3, 0));
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let values: std::collections::VecDeque<u64> = (1..=100).map(|v| v * 10).collect();
        assert_eq!(quantile(&values, 0.5), Some(0.5));
        assert_eq!(quantile(&values, 0.99), Some(0.99));
        assert_eq!(quantile(&Default::default(), 0.5), None);
    }
}
