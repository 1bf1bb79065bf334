//! The order generator: realistic orders into the orders topic at a governed rate that can
//! be changed at runtime, with every order's delivery report recorded.
//!
//! Every order is announced to the audit (`Sent`) before it is handed to the producer, so
//! the audit can never see an order it was not told about; the delivery report then says
//! `Acked` (partition, offset, ack time; also recorded in the lag monitor's [`AckIndex`]) or
//! `Failed`. librdkafka's queue holds at most `max_in_flight` orders. When it is full, a new
//! order waits up to `queue_full_wait` for room (a broker that is merely slow backpressures
//! the generator, as it would a real shop's checkout); if none frees up it fails "at the
//! door", and so does every following order, at the paced rate and without waiting, until
//! the queue takes one again (a broker that is down costs the orders customers place while it
//! is down, counted, not fewer). Orders that time out in the queue fail too. Memory stays
//! bounded by that queue and production resumes by itself.
//!
//! The audit's channel for the generator's events is bounded (see `audit`): each order
//! reserves a slot for its `Sent` and one for its delivery report before it is handed to the
//! producer, and the report's slot travels with the order ([`Ticket`]) to librdkafka's thread,
//! where the callback fills it without waiting and without any chance of losing the event. An
//! audit that falls behind slows the generator down (backpressure) instead of growing a queue.
//!
//! The loop yields to the scheduler after every order (`consume_budget`): asked for more than
//! the broker takes, the limiter is always ready, and a loop that never yields would starve
//! the tasks it wakes on its worker (the audit actor above all, whose inbox then grows).
//!
//! Does not own the accounting of what happens to orders after the broker acked them
//! (`audit`), nor lag (`kafka`).

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use governor::{clock::Clock, DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
    ClientContext, Message,
};
use serde::Deserialize;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    audit::Event,
    clock::now_ms,
    kafka::{self, lag::AckIndex},
    metrics::register,
    order::{Order, CATALOGUE},
};

/// How often an order waiting for room in a full queue tries again.
const ROOM_POLL: Duration = Duration::from_millis(1);

/// `[generator]`: pacing and the producer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Orders per second at start (changeable with `PUT /generator/rate`).
    pub rate: NonZeroU32,
    /// The highest rate `PUT /generator/rate` accepts.
    pub max_rate: NonZeroU32,
    /// Orders waiting for the broker at most (librdkafka's queue).
    pub max_in_flight: NonZeroU32,
    /// How long a new order waits for room in a full queue before it fails at the door.
    #[serde(with = "crate::config_value::duration")]
    pub queue_full_wait: Duration,
    /// How long an order may wait for the broker's ack before it counts as failed.
    #[serde(with = "crate::config_value::duration")]
    pub delivery_timeout: Duration,
    /// Number of distinct customers orders are drawn from.
    pub customers: NonZeroU32,
    /// Seed of the order randomness (a fixed seed gives the same order stream).
    pub seed: Option<u64>,
    /// Extra librdkafka producer properties, on top of `[kafka].properties`.
    pub producer_properties: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rate: NonZeroU32::new(10).expect("non-zero"),
            max_rate: NonZeroU32::new(100_000).expect("non-zero"),
            max_in_flight: NonZeroU32::new(10_000).expect("non-zero"),
            queue_full_wait: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(10),
            customers: NonZeroU32::new(1_000).expect("non-zero"),
            seed: None,
            producer_properties: BTreeMap::new(),
        }
    }
}

/// The generator's counters; `record_*` verbs are called from the producer's thread too,
/// once per order, so the outcome series are resolved once (no label hashing per order).
#[derive(Clone)]
struct Metrics {
    sent: IntCounter,
    acked: IntCounter,
    failed: IntCounter,
    failures: IntCounterVec,
    in_flight: IntGauge,
    target_rate: IntGauge,
}

impl Metrics {
    fn register(registry: &Registry) -> Self {
        let orders = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "firedrill_generator_orders_total",
                    "Orders by outcome: sent (handed to the producer), acked, failed.",
                ),
                &["outcome"],
            )
            .expect("valid metric"),
        );
        Metrics {
            sent: orders.with_label_values(&["sent"]),
            acked: orders.with_label_values(&["acked"]),
            failed: orders.with_label_values(&["failed"]),
            failures: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "firedrill_generator_failures_total",
                        "Orders that failed at the door, by reason.",
                    ),
                    &["reason"],
                )
                .expect("valid metric"),
            ),
            in_flight: register(
                registry,
                IntGauge::new(
                    "firedrill_generator_in_flight",
                    "Orders handed to the producer and not yet acked or failed.",
                )
                .expect("valid metric"),
            ),
            target_rate: register(
                registry,
                IntGauge::new(
                    "firedrill_generator_target_rate",
                    "The configured order rate, orders per second (0 = paused).",
                )
                .expect("valid metric"),
            ),
        }
    }

    fn record_sent(&self) {
        self.sent.inc();
        self.in_flight.inc();
    }

    fn record_acked(&self) {
        self.acked.inc();
        self.in_flight.dec();
    }

    fn record_failed(&self, reason: &'static str, was_in_flight: bool) {
        self.failed.inc();
        self.failures.with_label_values(&[reason]).inc();
        if was_in_flight {
            self.in_flight.dec();
        }
    }
}

/// Bounded label value for a produce failure.
fn failure_reason(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => "queue_full",
        Some(RDKafkaErrorCode::MessageTimedOut) => "timeout",
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => "too_large",
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => "unknown_topic",
        Some(_) => "broker",
        None => "client",
    }
}

/// What travels with an order through librdkafka to its delivery report: its seq and the
/// audit's slot reserved for the report (`None` once the audit is gone, at shutdown).
struct Ticket {
    seq: u64,
    report: Option<mpsc::OwnedPermit<Event>>,
}

impl Ticket {
    /// Tells the audit how the order ended. Never waits: the slot is already reserved.
    fn report(self, event: Event) {
        if let Some(permit) = self.report {
            permit.send(event);
        }
    }
}

/// The producer's context: turns delivery reports into audit events. Runs on librdkafka's
/// polling thread, so it only does non-blocking work.
struct Delivery {
    acks: Arc<Mutex<AckIndex>>,
    metrics: Metrics,
}

impl ClientContext for Delivery {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        kafka::log(level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka::report_error(&error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = Box<Ticket>;

    fn delivery(&self, result: &DeliveryResult<'_>, ticket: Box<Ticket>) {
        let seq = ticket.seq;
        let event = match result {
            Ok(message) => {
                let ack_ms = now_ms();
                // Short lock, no await: shared with the lag monitor, which reads it per poll.
                self.acks
                    .lock()
                    .expect("ack index lock is never poisoned")
                    .record(message.partition(), message.offset(), ack_ms);
                self.metrics.record_acked();
                Event::Acked { seq, ack_ms }
            }
            Err((error, _)) => {
                self.metrics.record_failed(failure_reason(error), true);
                Event::Failed { seq }
            }
        };
        ticket.report(event);
    }
}

/// Why a rate was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    /// Above `generator.max_rate`.
    #[error("rate {rate} is above the maximum of {max} orders per second")]
    TooHigh { rate: u32, max: u32 },
}

/// Controls a running generator: cheap to clone, used by the HTTP API and drills.
#[derive(Clone)]
pub struct Handle {
    rate: Arc<watch::Sender<u32>>,
    max_rate: u32,
    run_id: Arc<str>,
    target_rate: IntGauge,
}

impl Handle {
    /// Sets the rate in orders per second; 0 pauses the generator.
    pub fn set_rate(&self, rate: u32) -> Result<(), RateError> {
        if rate > self.max_rate {
            return Err(RateError::TooHigh {
                rate,
                max: self.max_rate,
            });
        }
        self.rate.send_replace(rate);
        self.target_rate.set(i64::from(rate));
        Ok(())
    }

    /// The current rate.
    pub fn rate(&self) -> u32 {
        *self.rate.borrow()
    }

    /// The highest rate accepted.
    pub fn max_rate(&self) -> u32 {
        self.max_rate
    }

    /// This run's id: the prefix of every order id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A handle of no generator, for tests of what drives one (drills).
    #[cfg(test)]
    pub fn detached(rate: u32, max_rate: u32) -> Handle {
        Handle {
            rate: Arc::new(watch::Sender::new(rate)),
            max_rate,
            run_id: "test".into(),
            target_rate: IntGauge::new("test_target_rate", "test").expect("valid metric"),
        }
    }
}

/// Produces orders; see the module docs.
pub struct Generator {
    producer: ThreadedProducer<Delivery>,
    topic: String,
    run_id: String,
    next_seq: u64,
    customers: u32,
    rng: fastrand::Rng,
    rate: watch::Receiver<u32>,
    events: mpsc::Sender<Event>,
    metrics: Metrics,
    flush_timeout: Duration,
    json: String,
    queue_full_wait: Duration,
    /// The last order found the queue full and waited in vain: fail at once until it has room.
    door_shut: bool,
}

impl Generator {
    /// Creates the producer (librdkafka connects lazily). `events` is the audit's channel for
    /// the generator ([`Inbox::orders`](crate::audit::Inbox), with room for `max_in_flight`
    /// delivery reports) and `acks` the lag monitor's ack index.
    pub fn build(
        config: &Config,
        kafka: &kafka::Config,
        run_id: &str,
        events: mpsc::Sender<Event>,
        acks: Arc<Mutex<AckIndex>>,
        registry: &Registry,
    ) -> Result<(Generator, Handle), KafkaError> {
        let metrics = Metrics::register(registry);
        let mut client = kafka.client_config();
        client
            // tansu's sqlite engine panicked when idempotent producers reconnected after a
            // broker restart; at-least-once is what the audit measures anyway.
            .set("enable.idempotence", "false")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set(
                "queue.buffering.max.messages",
                config.max_in_flight.to_string(),
            )
            .set(
                "message.timeout.ms",
                config.delivery_timeout.as_millis().to_string(),
            );
        for (key, value) in &config.producer_properties {
            client.set(key, value);
        }
        let producer = client.create_with_context(Delivery {
            acks,
            metrics: metrics.clone(),
        })?;
        let (rate_tx, rate_rx) = watch::channel(config.rate.get());
        metrics.target_rate.set(i64::from(config.rate.get()));
        let generator = Generator {
            producer,
            topic: kafka.orders_topic.as_str().to_string(),
            run_id: run_id.to_string(),
            next_seq: 0,
            customers: config.customers.get(),
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            rate: rate_rx,
            events,
            metrics,
            flush_timeout: config.delivery_timeout,
            json: String::with_capacity(256),
            queue_full_wait: config.queue_full_wait,
            door_shut: false,
        };
        let handle = Handle {
            rate: Arc::new(rate_tx),
            max_rate: config.max_rate.get(),
            run_id: run_id.into(),
            target_rate: generator.metrics.target_rate.clone(),
        };
        Ok((generator, handle))
    }

    /// Produces at the current rate until cancelled, then flushes what is in flight.
    pub async fn run(mut self, cancel: CancellationToken) {
        info!(run_id = %self.run_id, rate = *self.rate.borrow(), "generator started");
        loop {
            let rate = *self.rate.borrow_and_update();
            let Some(rate) = NonZeroU32::new(rate) else {
                // Paused: wait for a new rate.
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = self.rate.changed() => if changed.is_err() { break } else { continue },
                }
            };
            // A burst of 1/20 s keeps pacing smooth at low rates and cheap at high ones.
            let burst = NonZeroU32::new(rate.get() / 20).unwrap_or(NonZeroU32::MIN);
            let limiter = RateLimiter::direct(Quota::per_second(rate).allow_burst(burst));
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return self.flush().await,
                    changed = self.rate.changed() => {
                        if changed.is_err() { return self.flush().await }
                        info!(rate = *self.rate.borrow(), "generator rate changed");
                        break;
                    }
                    _ = admitted(&limiter) => {
                        self.produce_one().await;
                        tokio::task::consume_budget().await;
                    }
                }
            }
        }
        self.flush().await;
    }

    fn next_order(&mut self, now_ms: i64) -> Order {
        let product = self.rng.usize(..CATALOGUE.len());
        // Mostly single units, sometimes more: every category occurs.
        let quantity = match self.rng.u8(..10) {
            0..=5 => 1,
            6..=8 => 2,
            _ => self.rng.u32(3..=5),
        };
        let order = Order {
            run_id: self.run_id.clone(),
            seq: self.next_seq,
            customer: self.rng.u32(..self.customers),
            product,
            quantity,
            price_cents: CATALOGUE[product].price_cents,
            event_time_ms: now_ms,
        };
        self.next_seq += 1;
        order
    }

    async fn produce_one(&mut self) {
        let order = self.next_order(now_ms());
        order.write_json(&mut self.json);
        let key = order.key();
        let seq = order.seq;
        // Announced before the send, so the audit hears of it before any ack or sighting. A
        // closed channel means the audit is gone (shutdown): nothing left to account to.
        let _ = self
            .events
            .send(Event::Sent {
                seq,
                value_cents: order.value_cents(),
            })
            .await;
        let mut ticket = Box::new(Ticket {
            seq,
            report: self.events.clone().reserve_owned().await.ok(),
        });
        let mut wait_until = None;
        let error = loop {
            let record = BaseRecord::with_opaque_to(&self.topic, ticket)
                .key(&key)
                .payload(&self.json);
            let error = match self.producer.send(record) {
                Ok(()) => {
                    self.door_shut = false;
                    self.metrics.record_sent();
                    return;
                }
                Err((error, record)) => {
                    ticket = record.delivery_opaque;
                    error
                }
            };
            let queue_full = error.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull);
            if !queue_full || self.door_shut {
                break error;
            }
            let now = Instant::now();
            let until = *wait_until.get_or_insert(now + self.queue_full_wait);
            if now >= until {
                self.door_shut = true;
                break error;
            }
            // Polled, not signalled: librdkafka frees a slot only after the delivery report
            // callback has returned, so a wake-up from the callback could find no room yet.
            tokio::time::sleep(ROOM_POLL.min(until - now)).await;
        };
        self.metrics.record_failed(failure_reason(&error), false);
        ticket.report(Event::Failed { seq });
    }

    async fn flush(self) {
        let producer = self.producer;
        let timeout = self.flush_timeout;
        info!(
            sent = self.next_seq,
            "generator stopping; flushing in-flight orders"
        );
        let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
        if let Ok(Err(error)) = flushed {
            warn!(%error, "orders still in flight at shutdown");
        }
    }
}

/// Waits until `limiter` admits one more order. Sleeps on tokio's timer rather than using
/// governor's `until_ready`, whose timer thread wakes this task once per order: at high rates
/// orders then leave in small bursts, with at most one wake-up per millisecond (tokio's timer
/// resolution) instead of one per order.
async fn admitted(limiter: &DefaultDirectRateLimiter) {
    while let Err(not_until) = limiter.check() {
        tokio::time::sleep(not_until.wait_time_from(limiter.clock().now())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reasons_are_bounded() {
        let queue_full = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(failure_reason(&queue_full), "queue_full");
        let timeout = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        assert_eq!(failure_reason(&timeout), "timeout");
        assert_eq!(failure_reason(&KafkaError::Canceled), "client");
    }

    /// A generator whose broker never answers (nothing listens on port 1), with room for one
    /// order in its queue.
    fn unreachable(
        queue_full_wait: Duration,
        delivery_timeout: Duration,
    ) -> (Generator, mpsc::Receiver<Event>) {
        let config = Config {
            max_in_flight: NonZeroU32::MIN,
            queue_full_wait,
            delivery_timeout,
            ..Config::default()
        };
        let kafka = kafka::Config {
            bootstrap_servers: "127.0.0.1:1".into(),
            ..kafka::Config::default()
        };
        let (events, inbox) = mpsc::channel(16);
        let acks = Arc::new(Mutex::new(AckIndex::with_capacity(16)));
        let (generator, _) =
            Generator::build(&config, &kafka, "r", events, acks, &Registry::new()).unwrap();
        (generator, inbox)
    }

    fn queue_full_failures(generator: &Generator) -> u64 {
        generator
            .metrics
            .failures
            .with_label_values(&["queue_full"])
            .get()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_waits_once_then_fails_every_order_at_the_door() {
        let wait = Duration::from_secs(7);
        let (mut generator, _inbox) = unreachable(wait, Duration::from_secs(600));
        let start = Instant::now();

        generator.produce_one().await;
        assert_eq!(generator.metrics.sent.get(), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);

        // The queue is full and nothing is delivered: the order waits its grace, then fails.
        generator.produce_one().await;
        assert_eq!(queue_full_failures(&generator), 1);
        assert_eq!(start.elapsed(), wait);

        // The door is shut: the next orders fail at once, so an outage costs every order.
        generator.produce_one().await;
        generator.produce_one().await;
        assert_eq!(queue_full_failures(&generator), 3);
        assert_eq!(start.elapsed(), wait);
        assert_eq!(generator.metrics.sent.get(), 1);
    }

    #[tokio::test]
    async fn a_full_queue_takes_the_order_as_soon_as_a_delivery_frees_room() {
        // The first order times out in the queue (a delivery report, failed), which frees the
        // room the second order waits for, well within its grace.
        let (mut generator, mut inbox) =
            unreachable(Duration::from_secs(120), Duration::from_millis(200));
        generator.produce_one().await;
        generator.produce_one().await;

        assert_eq!(generator.metrics.sent.get(), 2);
        assert_eq!(queue_full_failures(&generator), 0);
        assert_eq!(
            generator
                .metrics
                .failures
                .with_label_values(&["timeout"])
                .get(),
            1
        );
        let mut events = Vec::new();
        while let Ok(event) = inbox.try_recv() {
            events.push(match event {
                Event::Sent { seq, .. } => format!("sent {seq}"),
                Event::Failed { seq } => format!("failed {seq}"),
                other => format!("{other:?}"),
            });
        }
        // Order 1 is announced before it waits; order 0's failure is what let it in.
        assert_eq!(events, ["sent 0", "sent 1", "failed 0"]);
    }

    #[test]
    fn the_rate_is_bounded_and_zero_pauses() {
        let (tx, rx) = watch::channel(10);
        let handle = Handle {
            rate: Arc::new(tx),
            max_rate: 100,
            run_id: "r".into(),
            target_rate: IntGauge::new("t", "t").unwrap(),
        };
        assert_eq!(
            handle.set_rate(101),
            Err(RateError::TooHigh {
                rate: 101,
                max: 100
            })
        );
        assert_eq!(*rx.borrow(), 10);
        handle.set_rate(0).unwrap();
        assert_eq!(*rx.borrow(), 0);
        assert_eq!(handle.rate(), 0);
    }
}
