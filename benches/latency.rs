//! End-to-end latency at the seed's 10 orders/s on the local stack, and what a shorter fetch
//! wait costs. tansu holds every fetch for its full `fetch.max.wait.ms` even when records
//! arrive (../shared/STACK.md), so each consumer hop of the pipeline (Flink's source, the
//! audit's consumer) adds up to that wait. For each wait (the clients' default 500 ms, then
//! the stack's 20 ms, which is left running):
//!
//! - Flink's job is cancelled and submitted again with `KAFKA_FETCH_MAX_WAIT_MS` (from the
//!   group's committed offsets, as `compose/local/stack submit` does) and a daemon is started
//!   with `kafka.fetch_wait` set the same; the stack's own daemon is stopped meanwhile;
//! - after a settling time, over one window: firedrill's ack-to-seen latency (the share of
//!   orders under 100 ms and 250 ms from its `firedrill_audit_e2e_latency_seconds` buckets),
//!   and the bench's own reading of `processed_orders` (its own consumer, 5 ms fetch wait,
//!   only this run's orders): Flink's `processed_at` minus the order's `event_time`, and the
//!   bench's receive time minus `event_time`, as exact p50 / p99;
//! - the CPU of the broker, Flink's processes and the daemon over the window.
//!
//! Run: `cargo bench --bench latency` (needs the local stack: `make up`; ~7 min); add
//! `-- --quick` (or `FIREDRILL_BENCH_QUICK=1`) for a smoke run.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::Duration,
};

mod support;

use chrono::NaiveDateTime;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig, Message, Offset, TopicPartitionList,
};
use support::{
    daemon::{sample, Daemon, Http},
    loadavg, row,
    stack::{engine_processes, resubmit, Cpu, StackDaemonPaused},
    Rows, BROKER, FLINK,
};

const OUTPUT_TOPIC: &str = "processed_orders";
/// The stack's wait last, so that the stack is left as `compose/local/stack` runs it.
const WAITS_MS: [u32; 2] = [500, 20];
const TARGET_P50_MS: f64 = 100.0;
const TARGET_P99_MS: f64 = 250.0;

struct Plan {
    settle: Duration,
    window: Duration,
}

fn main() {
    let quick = support::quick();
    let plan = if quick {
        Plan {
            settle: Duration::from_secs(5),
            window: Duration::from_secs(15),
        }
    } else {
        Plan {
            settle: Duration::from_secs(20),
            window: Duration::from_secs(120),
        }
    };
    support::require(&[("kafka broker", BROKER), ("flink rest", FLINK)]);
    println!(
        "firedrill latency bench{}: binary {}",
        if quick { " (quick)" } else { "" },
        env!("CARGO_BIN_EXE_firedrill")
    );
    let _paused = StackDaemonPaused::new();
    let mut rows = vec![row("load before", loadavg())];
    for wait_ms in WAITS_MS {
        measure(&plan, wait_ms, &mut rows);
    }
    rows.push(row("load after", loadavg()));
    support::print_table(rows);
}

fn measure(plan: &Plan, wait_ms: u32, rows: &mut Rows) {
    let wait = wait_ms.to_string();
    println!("fetch wait {wait_ms} ms: submitting Flink's job again");
    resubmit(&[("KAFKA_FETCH_MAX_WAIT_MS", &wait)]);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/firedrill.toml");
    let daemon = Daemon::start(
        &format!("latency-{wait_ms}ms"),
        &config,
        &[("FIREDRILL_KAFKA__FETCH_WAIT", &format!("{wait_ms}ms"))],
    );
    let mut http = Http::connect(daemon.addr);
    let generator: serde_json::Value =
        serde_json::from_str(&http.get("/generator")).expect("GET /generator is JSON");
    let run_id = generator["run_id"].as_str().expect("run_id").to_string();
    let tail = Tail::start(&format!("{run_id}-"));
    thread::sleep(plan.settle);

    let mut processes = engine_processes();
    processes.push(("firedrill".into(), daemon.pid().to_string()));
    let before = http.get("/metrics");
    let cpu0 = Cpu::now(&processes);
    tail.clear();
    thread::sleep(plan.window);
    let after = http.get("/metrics");
    let cpu1 = Cpu::now(&processes);
    let times = tail.stop();
    drop(http);
    daemon.stop();

    let bucket = |body: &str, le: &str| {
        sample(
            body,
            &format!("firedrill_audit_e2e_latency_seconds_bucket{{le=\"{le}\"}}"),
        )
    };
    let count = sample(&after, "firedrill_audit_e2e_latency_seconds_count")
        - sample(&before, "firedrill_audit_e2e_latency_seconds_count");
    let share = |le: &str| (bucket(&after, le) - bucket(&before, le)) / count * 100.0;
    let (under_100, under_250) = (share("0.1"), share("0.25"));
    rows.push(row(
        &format!("fetch wait {wait_ms} ms: firedrill ack-to-seen"),
        format!(
            "{count} orders: {under_100:.1} % under 100 ms, {under_250:.1} % under 250 ms \
             (p50 < {TARGET_P50_MS} ms: {}, p99 < {TARGET_P99_MS} ms: {})",
            verdict(under_100 >= 50.0),
            verdict(under_250 >= 99.0)
        ),
    ));
    let flink: Vec<f64> = times.iter().map(|t| t.processed_ms - t.event_ms).collect();
    let seen: Vec<f64> = times.iter().map(|t| t.received_ms - t.event_ms).collect();
    rows.push(row(
        &format!("fetch wait {wait_ms} ms: Flink processed_at - event_time"),
        percentiles(flink),
    ));
    let (p50, p99) = (quantile(&seen, 0.5), quantile(&seen, 0.99));
    rows.push(row(
        &format!("fetch wait {wait_ms} ms: bench's receive - event_time"),
        format!(
            "{}  (p50 < {TARGET_P50_MS} ms: {}, p99 < {TARGET_P99_MS} ms: {})",
            percentiles(seen.clone()),
            verdict(p50.is_some_and(|p| p < TARGET_P50_MS)),
            verdict(p99.is_some_and(|p| p < TARGET_P99_MS))
        ),
    ));
    rows.push(row(
        &format!("fetch wait {wait_ms} ms: CPU, % of one core"),
        cpu1.since(&cpu0),
    ));
}

fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 * q).ceil() as usize).checked_sub(1)?;
    sorted.get(index).copied()
}

fn percentiles(values: Vec<f64>) -> String {
    match (quantile(&values, 0.5), quantile(&values, 0.99)) {
        (Some(p50), Some(p99)) => format!(
            "{} records: p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
            values.len(),
            values.iter().copied().fold(f64::MIN, f64::max)
        ),
        _ => "no records".into(),
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The times of one output record, unix ms.
struct Times {
    event_ms: f64,
    processed_ms: f64,
    received_ms: f64,
}

/// The bench's own consumer of the output topic, from its end, keeping the times of the
/// records whose order id starts with `prefix` (this run's orders).
struct Tail {
    times: Arc<Mutex<Vec<Times>>>,
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl Tail {
    fn start(prefix: &str) -> Tail {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", BROKER)
            .set("group.id", "firedrill-bench-latency")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "5")
            .create()
            .expect("kafka consumer");
        let metadata = consumer
            .fetch_metadata(Some(OUTPUT_TOPIC), Duration::from_secs(10))
            .expect("metadata of the output topic");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics()[0].partitions() {
            assignment
                .add_partition_offset(OUTPUT_TOPIC, partition.id(), Offset::End)
                .expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let times = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let prefix = prefix.to_string();
        let thread = {
            let (times, stop) = (times.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) else {
                        continue;
                    };
                    let received_ms = chrono::Utc::now().timestamp_millis() as f64;
                    if let Some(t) = message.payload().and_then(|p| read(p, &prefix)) {
                        times.lock().unwrap().push(Times { received_ms, ..t });
                    }
                }
            })
        };
        Tail {
            times,
            stop,
            thread,
        }
    }

    fn clear(&self) {
        self.times.lock().unwrap().clear();
    }

    fn stop(self) -> Vec<Times> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("tail thread");
        Arc::try_unwrap(self.times)
            .ok()
            .expect("tail thread joined")
            .into_inner()
            .unwrap()
    }
}

/// `event_time` and `processed_at` of a record of this run, read independently of
/// firedrill's parser (Flink writes "yyyy-MM-dd HH:mm:ss.SSS", UTC).
fn read(payload: &[u8], prefix: &str) -> Option<Times> {
    let record: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if !record["order_id"].as_str()?.starts_with(prefix) {
        return None;
    }
    let ms = |field: &str| {
        NaiveDateTime::parse_from_str(record[field].as_str()?, "%Y-%m-%d %H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc().timestamp_millis() as f64)
    };
    Some(Times {
        event_ms: ms("event_time")?,
        processed_ms: ms("processed_at")?,
        received_ms: 0.0,
    })
}
