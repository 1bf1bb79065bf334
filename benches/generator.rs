//! Benchmark of the order generator's ceiling: the highest sustained rate of acked orders
//! firedrill's real `generator::Generator` reaches against the local broker, next to a plain
//! librdkafka producer sending records of the same size with the same producer settings, in
//! the same run.
//!
//! Owns nothing but its own measurements. Both sides write into a dedicated topic
//! (`bench-orders`, 2 partitions, created when missing), never the pipeline's `orders`, so
//! Flink is not loaded. Each side runs 3 times, alternating which goes first, and the median
//! is reported: neither side gets all the warm broker. A last run paces firedrill at 0.8 x the
//! plain median, to see whether it sustains the target rate with nothing failing.
//!
//! - firedrill: `Generator::build` as `app.rs` builds it (rate = max_rate = 1,000,000/s, an
//!   audit `Event` channel drained here, an `AckIndex`), counting `Event::Acked`.
//! - plain: a `BaseProducer` loop, one real order's JSON as the payload, keys shaped like
//!   firedrill's, `poll(0)` after each send and, on `QueueFull`, poll then retry; counting
//!   successful delivery reports.
//!
//! Each measurement discards a warm-up, then counts over a fixed window, and also reads the
//! CPU of this process and of the broker (same 2 cores) from `/proc`. A full run writes
//! about 7 million records (~1.5 GB in tansu's sqlite file) into `bench-orders`; the broker
//! keeps them (`compose/local/stack down --purge` resets its data).
//!
//! Run: `cargo bench --bench generator` (needs the local stack: `compose/local/stack up`); add
//! `-- --quick` (or set `FIREDRILL_BENCH_QUICK=1`) for a one-round smoke run with short windows.

use std::{
    fmt::Write as _,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

mod support;

use firedrill::{
    audit::Event,
    generator::{self, Generator},
    kafka::{self, lag::AckIndex, TopicName},
    order::Order,
};
use prometheus::Registry;
use rdkafka::{
    error::{KafkaError, RDKafkaErrorCode},
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
    ClientConfig, ClientContext,
};
use support::{clock_ticks, cpu_ticks, ensure_topic, loadavg, other_daemons, row, BROKER};
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "bench-orders";
const PARTITIONS: i32 = 2;
/// What `app.rs` gives the generator's ack index.
const ACK_INDEX_CAPACITY: usize = 1_000_000;
/// Above anything the local broker can take: the generator runs flat out.
const UNBOUNDED_RATE: u32 = 1_000_000;
/// firedrill >= this x the plain producer.
const TARGET_RATIO: f64 = 0.8;

/// How long each measurement runs.
struct Plan {
    rounds: usize,
    warm_up: Duration,
    window: Duration,
}

/// Counters one side's delivery path increments.
#[derive(Default)]
struct Counts {
    acked: AtomicU64,
    failed: AtomicU64,
}

/// One measurement's result.
struct Run {
    acked_per_s: f64,
    failed_per_s: f64,
    /// CPU of this process (the side being measured), % of one core.
    own_cpu: f64,
    /// CPU of the broker process, % of one core (it shares the 2 cores), if its pid is known.
    broker_cpu: Option<f64>,
}

fn main() {
    let quick = support::quick();
    let plan = if quick {
        Plan {
            rounds: 1,
            warm_up: Duration::from_secs(1),
            window: Duration::from_secs(3),
        }
    } else {
        Plan {
            rounds: 3,
            warm_up: Duration::from_secs(3),
            window: Duration::from_secs(10),
        }
    };
    support::require(&[("kafka broker", BROKER)]);
    ensure_topic(TOPIC, PARTITIONS);

    let payload = sample_payload();
    println!(
        "firedrill generator bench{}: topic {TOPIC} ({PARTITIONS} partitions), payload {} bytes, \
         {} round(s) per side, {:?} warm-up + {:?} window each",
        if quick { " (quick)" } else { "" },
        payload.len(),
        plan.rounds,
        plan.warm_up,
        plan.window,
    );
    println!(
        "load before: {}; other firedrill daemons running: {}",
        loadavg(),
        other_daemons()
    );

    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut rows = Vec::new();
    for round in 0..plan.rounds {
        // Alternate who goes first, so neither side always gets the warmer broker.
        let order: [bool; 2] = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for firedrill_side in order {
            let run = if firedrill_side {
                run_firedrill(&plan, round, UNBOUNDED_RATE)
            } else {
                run_plain(&plan, &payload)
            };
            let side = if firedrill_side {
                "firedrill Generator"
            } else {
                "plain BaseProducer"
            };
            rows.push((
                format!("round {} {side}", round + 1),
                format!(
                    "{:>6.0} acked/s, {:>6.0}/s failed at the door; CPU: bench {:>3.0} %, broker {}",
                    run.acked_per_s,
                    run.failed_per_s,
                    run.own_cpu,
                    run.broker_cpu.map_or("n/a".into(), |c| format!("{c:>3.0} %")),
                ),
            ));
            if firedrill_side {
                ours.push(run.acked_per_s);
            } else {
                plain.push(run.acked_per_s);
            }
        }
    }
    let ours = median(&mut ours);
    let plain = median(&mut plain);
    let ratio = ours / plain;
    rows.push(row(
        "median firedrill Generator",
        format!("{ours:>9.0} acked/s"),
    ));
    rows.push(row(
        "median plain BaseProducer",
        format!("{plain:>9.0} acked/s"),
    ));
    rows.push(row(
        "ratio firedrill / plain",
        format!(
            "{ratio:.2}  (target >= {TARGET_RATIO}: {})",
            if ratio >= TARGET_RATIO {
                "PASS"
            } else {
                "FAIL"
            }
        ),
    ));
    // The ratio above is the generator flat out, held back by its full queue. Can it also
    // *sustain* the target rate, paced, with nothing failing?
    let paced = (plain * TARGET_RATIO).round() as u32;
    let run = run_firedrill(&plan, plan.rounds, paced);
    let sustained = run.acked_per_s >= 0.98 * f64::from(paced) && run.failed_per_s == 0.0;
    rows.push(row(
        &format!("firedrill paced at {TARGET_RATIO} x plain"),
        format!(
            "{paced}/s asked: {:.0} acked/s, {:.0}/s failed ({}); CPU: bench {:.0} %, broker {}",
            run.acked_per_s,
            run.failed_per_s,
            if sustained {
                "sustained"
            } else {
                "NOT sustained"
            },
            run.own_cpu,
            run.broker_cpu.map_or("n/a".into(), |c| format!("{c:.0} %")),
        ),
    ));
    rows.push(row(
        "load after / other daemons",
        format!("{} / {}", loadavg(), other_daemons()),
    ));

    support::print_table(rows);
}

/// firedrill's real generator, built as `app.rs` builds it, at `rate` for one measurement.
fn run_firedrill(plan: &Plan, round: usize, rate: u32) -> Run {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let kafka = kafka_config();
    let rate = NonZeroU32::new(rate).expect("non-zero rate");
    let config = generator::Config {
        rate,
        max_rate: rate,
        ..generator::Config::default()
    };
    // The audit's channel for the generator, sized as `Audit::new` sizes it.
    let (events_tx, mut events) = tokio::sync::mpsc::channel(
        config.max_in_flight.get() as usize + firedrill::audit::ORDER_EVENTS_ROOM,
    );
    let acks = Arc::new(Mutex::new(AckIndex::with_capacity(ACK_INDEX_CAPACITY)));
    let registry = Registry::new();
    let run_id = format!("rbench{round}");
    let (generator, _handle) =
        Generator::build(&config, &kafka, &run_id, events_tx, acks, &registry)
            .expect("build the generator");

    let counts = Arc::new(Counts::default());
    let drained = counts.clone();
    // The audit's side of the channel, counting outcomes as fast as they come: a task on the
    // generator's runtime, as the audit actor is in the daemon (the generator yields after
    // every order, so the drain keeps up even flat out).
    let drain = runtime.spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                Event::Acked { .. } => drained.acked.fetch_add(1, Ordering::Relaxed),
                Event::Failed { .. } => drained.failed.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
    });
    let cancel = CancellationToken::new();
    let running = runtime.spawn(generator.run(cancel.clone()));
    let run = measure(plan, &counts);
    cancel.cancel();
    // The generator flushes what is in flight; then the producer (and its sender) drop.
    runtime.block_on(running).expect("generator task");
    runtime.block_on(drain).expect("drain task");
    run
}

/// A plain librdkafka producer loop with firedrill's producer settings.
fn run_plain(plan: &Plan, payload: &str) -> Run {
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producer: BaseProducer<Counting> = producer_config()
        .create_with_context(Counting(counts.clone()))
        .expect("create the plain producer");
    let sender = {
        let stop = stop.clone();
        let payload = payload.to_string();
        thread::spawn(move || {
            let mut key = String::with_capacity(32);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // Same shape and size as firedrill's keys (`run-seq`): same spread over
                // partitions.
                key.clear();
                let _ = write!(key, "rplain0-{seq}");
                seq += 1;
                let mut record = BaseRecord::to(TOPIC).key(&key).payload(&payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            producer.poll(Duration::from_millis(10));
                            record = r;
                        }
                        Err((error, _)) => {
                            counts_failed(&producer, &error);
                            break;
                        }
                    }
                }
                producer.poll(Duration::ZERO);
            }
            if let Err(error) = producer.flush(Duration::from_secs(10)) {
                eprintln!("plain producer: records still in flight at the end: {error}");
            }
        })
    };
    let run = measure(plan, &counts);
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("plain producer thread");
    run
}

fn counts_failed(producer: &BaseProducer<Counting>, error: &KafkaError) {
    producer.context().0.failed.fetch_add(1, Ordering::Relaxed);
    eprintln!("plain producer: send failed: {error}");
}

/// Waits out the warm-up, then returns the rates over the window.
fn measure(plan: &Plan, counts: &Counts) -> Run {
    thread::sleep(plan.warm_up);
    let broker = broker_pid();
    let (acked0, failed0) = (
        counts.acked.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let (own0, broker0) = (cpu_ticks("self"), broker.as_deref().and_then(cpu_ticks));
    let start = Instant::now();
    thread::sleep(plan.window);
    let (acked1, failed1) = (
        counts.acked.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    let (own1, broker1) = (cpu_ticks("self"), broker.as_deref().and_then(cpu_ticks));
    let secs = start.elapsed().as_secs_f64();
    let pct = |t0: u64, t1: u64| (t1 - t0) as f64 / clock_ticks() / secs * 100.0;
    Run {
        acked_per_s: (acked1 - acked0) as f64 / secs,
        failed_per_s: (failed1 - failed0) as f64 / secs,
        own_cpu: own0.zip(own1).map_or(f64::NAN, |(a, b)| pct(a, b)),
        broker_cpu: broker0.zip(broker1).map(|(a, b)| pct(a, b)),
    }
}

/// The local stack's broker, from its pid file.
fn broker_pid() -> Option<String> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".stack/pids/kafka.pid");
    Some(std::fs::read_to_string(file).ok()?.trim().to_string())
}

/// Counts successful and failed delivery reports.
struct Counting(Arc<Counts>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.0.acked
        } else {
            &self.0.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `[kafka]` section the generator gets, pointed at the bench topic.
fn kafka_config() -> kafka::Config {
    kafka::Config {
        bootstrap_servers: BROKER.to_string(),
        orders_topic: TopicName::new(TOPIC).expect("valid topic name"),
        ..kafka::Config::default()
    }
}

/// firedrill's client settings plus the producer settings `Generator::build` applies (kept in
/// step with src/generator.rs by hand).
fn producer_config() -> ClientConfig {
    let defaults = generator::Config::default();
    let mut config = kafka_config().client_config();
    config
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set(
            "queue.buffering.max.messages",
            defaults.max_in_flight.to_string(),
        )
        .set(
            "message.timeout.ms",
            defaults.delivery_timeout.as_millis().to_string(),
        );
    config
}

/// One real order's JSON, so both sides send the same size.
fn sample_payload() -> String {
    let order = Order {
        run_id: "rbench0".to_string(),
        seq: 1_234_567,
        customer: 417,
        product: 3,
        quantity: 2,
        price_cents: firedrill::order::CATALOGUE[3].price_cents,
        event_time_ms: 1_764_000_000_000,
    };
    let mut json = String::new();
    order.write_json(&mut json);
    json
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
