//! Soak and load of the real daemon on the real pipeline (the release `firedrill serve` with
//! the default config: the `orders` topic, Flink's job consuming it, the audit reading
//! `processed_orders`), with the stack's own daemon stopped meanwhile so this one is the only
//! writer:
//!
//! 1. Steps: 10 orders/s, then 1,000 and up until the pipeline stops keeping up. Per step,
//!    after a settling time, one window: acked, processed, failed, the audit's in-flight and
//!    missing orders, the daemon's RSS and CPU, and the broker's and Flink's CPU. A step is
//!    sustained when >= 98 % of the asked rate is acked, >= 95 % is processed, none failed,
//!    none is missing and the audit holds at most 3 s of orders in flight.
//! 2. A clean run of 1,000,000 orders at the highest sustained step: every order acked must be
//!    processed, and the audit must count 0 duplicate, unexpected, invalid, malformed,
//!    missing, lost (its false positives, since nothing is broken). Held to evidence the
//!    daemon did not compute: the growth of `processed_orders`' high watermarks must equal
//!    the records the audit counted.
//! 3. The broker down for 5 minutes at 1,000 orders/s (`compose/local/stack stop kafka`):
//!    RSS sampled every second, then `start kafka` and no call to the daemon: how long the
//!    generator takes to be acked again by itself, and whether every order placed was counted
//!    (sent = acked + failed) and every acked order was processed or counted lost.
//!
//! Run: `cargo bench --bench soak` (needs the local stack: `make up`; ~25 min); add
//! `-- --quick` (or `FIREDRILL_BENCH_QUICK=1`) for a smoke run (~3 min).

use std::{
    path::Path,
    thread,
    time::{Duration, Instant},
};

mod support;

use rdkafka::consumer::Consumer;
use support::{
    daemon::{sample, try_sample, Daemon, Http, ACKED, FAILED},
    loadavg, row,
    stack::{active_job, engine_processes, stack, Cpu, StackDaemonPaused},
    Rows, BROKER, FLINK,
};

const STEPS: [u32; 9] = [10, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 12_000];
const INPUT_TOPIC: &str = "orders";
const OUTPUT_TOPIC: &str = "processed_orders";

struct Plan {
    settle: Duration,
    window: Duration,
    clean_orders: u64,
    outage: Duration,
    outage_rate: u32,
}

fn main() {
    let quick = support::quick();
    let plan = if quick {
        Plan {
            settle: Duration::from_secs(5),
            window: Duration::from_secs(10),
            clean_orders: 20_000,
            outage: Duration::from_secs(20),
            outage_rate: 1_000,
        }
    } else {
        Plan {
            settle: Duration::from_secs(20),
            window: Duration::from_secs(30),
            clean_orders: 1_000_000,
            outage: Duration::from_secs(300),
            outage_rate: 1_000,
        }
    };
    support::require(&[("kafka broker", BROKER), ("flink rest", FLINK)]);
    println!(
        "firedrill soak bench{}: binary {}",
        if quick { " (quick)" } else { "" },
        env!("CARGO_BIN_EXE_firedrill")
    );
    let _paused = StackDaemonPaused::new();
    let mut rows = vec![row("load before", loadavg())];

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/firedrill.toml");
    let daemon = Daemon::start("soak", &config, &[]);
    let mut http = Http::connect(daemon.addr);
    wait_until(
        &mut http,
        Duration::from_secs(120),
        "the audit sees output",
        |m| m.get(PROCESSED) > 0.0,
    );
    println!(
        "daemon pid {} on {}: output flowing",
        daemon.pid(),
        daemon.addr
    );

    let best = steps(&plan, &daemon, &mut http, &mut rows);
    clean_run(&plan, best, &daemon, &mut http, &mut rows);
    outage(&plan, &daemon, &mut http, &mut rows);

    rows.push(row("load after", loadavg()));
    drop(http);
    daemon.stop();
    support::print_table(rows);
}

const SENT: &str = "firedrill_generator_orders_total{outcome=\"sent\"}";
const GEN_IN_FLIGHT: &str = "firedrill_generator_in_flight";
const PROCESSED: &str = "firedrill_audit_records_total{verdict=\"processed\"}";
const DUPLICATE: &str = "firedrill_audit_records_total{verdict=\"duplicate\"}";
const UNEXPECTED: &str = "firedrill_audit_records_total{verdict=\"unexpected\"}";
const INVALID: &str = "firedrill_audit_records_total{verdict=\"invalid\"}";
const IN_FLIGHT: &str = "firedrill_audit_orders{state=\"in_flight\"}";
const MISSING: &str = "firedrill_audit_orders{state=\"missing\"}";
const LOST: &str = "firedrill_audit_orders{state=\"lost\"}";
const LATE: &str = "firedrill_audit_late_orders_total";
const LEDGER_BYTES: &str = "firedrill_audit_tracked_bytes";
const LEDGER_TRACKED: &str = "firedrill_audit_tracked_orders";
const MIB: f64 = 1024.0 * 1024.0;

/// One scrape of the daemon, with the CPU and RSS read at the same moment.
struct Reading {
    at: Instant,
    body: String,
    cpu: Cpu,
    rss_mib: f64,
}

impl Reading {
    fn take(daemon: &Daemon, http: &mut Http) -> Reading {
        let mut processes = engine_processes();
        processes.push(("firedrill".into(), daemon.pid().to_string()));
        Reading {
            at: Instant::now(),
            body: http.get("/metrics"),
            cpu: Cpu::now(&processes),
            rss_mib: daemon.rss_mib(),
        }
    }

    fn get(&self, series: &str) -> f64 {
        sample(&self.body, series)
    }

    /// The sum of every series of `family` (all label values).
    fn sum(&self, family: &str) -> f64 {
        self.body
            .lines()
            .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

/// Nothing in flight anywhere: the generator's queue, the audit's in-flight and missing.
fn drained(m: &Scrape) -> bool {
    m.get(GEN_IN_FLIGHT) == 0.0 && m.get(IN_FLIGHT) == 0.0 && m.get(MISSING) == 0.0
}

/// Polls `/metrics` every 500 ms until `done` holds; panics naming `what` after `deadline`.
fn wait_until(
    http: &mut Http,
    deadline: Duration,
    what: &str,
    mut done: impl FnMut(&Scrape) -> bool,
) -> Scrape {
    let started = Instant::now();
    loop {
        let scrape = Scrape(http.get("/metrics"));
        if done(&scrape) {
            return scrape;
        }
        assert!(
            started.elapsed() < deadline,
            "not after {deadline:?}: {what}"
        );
        thread::sleep(Duration::from_millis(500));
    }
}

/// A `/metrics` body.
struct Scrape(String);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        try_sample(&self.0, series).unwrap_or(0.0)
    }
}

/// Part 1: returns the highest sustained step above the seed's 10/s.
fn steps(plan: &Plan, daemon: &Daemon, http: &mut Http, rows: &mut Rows) -> u32 {
    let mut best = STEPS[1];
    for rate in STEPS {
        http.set_rate(rate);
        thread::sleep(plan.settle);
        let before = Reading::take(daemon, http);
        let mut rss_max = before.rss_mib;
        let started = Instant::now();
        while started.elapsed() < plan.window {
            thread::sleep(Duration::from_secs(1));
            rss_max = rss_max.max(daemon.rss_mib());
        }
        let after = Reading::take(daemon, http);
        let wall = started.elapsed().as_secs_f64();
        let per_s = |series: &str| (after.get(series) - before.get(series)) / wall;
        let (acked, processed, failed) = (per_s(ACKED), per_s(PROCESSED), per_s(FAILED));
        let in_flight = after.get(IN_FLIGHT);
        let missing = after.get(MISSING);
        let sustained = acked >= 0.98 * f64::from(rate)
            && processed >= 0.95 * f64::from(rate)
            && failed == 0.0
            && missing == 0.0
            && in_flight <= 3.0 * f64::from(rate).max(10.0);
        println!(
            "(1) {rate}/s: acked {acked:.0}/s, processed {processed:.0}/s, in flight {in_flight}, \
             missing {missing}: {}",
            if sustained {
                "sustained"
            } else {
                "NOT sustained"
            }
        );
        rows.push(row(
            &format!("(1) {rate} orders/s asked"),
            format!(
                "acked {acked:.0}/s, processed {processed:.0}/s, failed {failed:.0}/s, audit in \
                 flight {in_flight} / missing {missing}, inbox {} + {}: {}",
                after.get("firedrill_audit_inbox_events{source=\"generator\"}"),
                after.get("firedrill_audit_inbox_events{source=\"consumer\"}"),
                if sustained {
                    "sustained"
                } else {
                    "NOT sustained"
                }
            ),
        ));
        rows.push(row(
            &format!("(1) {rate} orders/s: daemon RSS max, CPU"),
            format!(
                "{rss_max:.1} MiB; CPU over {wall:.0} s: {}",
                after.cpu.since(&before.cpu)
            ),
        ));
        if !sustained {
            break;
        }
        if rate > STEPS[1] {
            best = rate;
        }
    }
    rows.push(row(
        "(1) highest sustained step",
        format!("{best} orders/s"),
    ));
    best
}

/// Part 2: `plan.clean_orders` at `rate` with nothing broken: the audit's false positives.
fn clean_run(plan: &Plan, rate: u32, daemon: &Daemon, http: &mut Http, rows: &mut Rows) {
    // From a still pipeline, so that the counts before and after are exact: whatever the
    // last step left behind is drained first.
    http.set_rate(0);
    wait_until(
        http,
        Duration::from_secs(300),
        "the backlog drains",
        drained,
    );
    thread::sleep(Duration::from_secs(2));
    let watermarks0 = output_watermarks();
    let before = Reading::take(daemon, http);
    http.set_rate(rate);
    let started = Instant::now();
    println!(
        "(2) clean run: {} orders at {rate}/s (about {:.0} s)",
        plan.clean_orders,
        plan.clean_orders as f64 / f64::from(rate)
    );
    let mut rss_max = before.rss_mib;
    let mut rss_min = before.rss_mib;
    loop {
        thread::sleep(Duration::from_secs(1));
        let rss = daemon.rss_mib();
        rss_max = rss_max.max(rss);
        rss_min = rss_min.min(rss);
        let now = Scrape(http.get("/metrics"));
        if now.get(SENT) - before.get(SENT) >= plan.clean_orders as f64 {
            break;
        }
    }
    http.set_rate(0);
    let placing = started.elapsed().as_secs_f64();
    let during = Reading::take(daemon, http);
    let drain = Instant::now();
    wait_until(
        http,
        Duration::from_secs(600),
        "every order is processed",
        drained,
    );
    // Records of the last orders that Flink wrote twice, if any, have arrived too.
    thread::sleep(Duration::from_secs(2));
    let after = Reading::take(daemon, http);
    let watermarks1 = output_watermarks();
    let read = IdCount::read(OUTPUT_TOPIC, &watermarks0, &watermarks1);

    let delta = |series: &str| after.get(series) - before.get(series);
    let (sent, acked, failed) = (delta(SENT), delta(ACKED), delta(FAILED));
    let processed = delta(PROCESSED);
    let (duplicates, unexpected, invalid) = (delta(DUPLICATE), delta(UNEXPECTED), delta(INVALID));
    let malformed = after.sum("firedrill_audit_malformed_records_total")
        - before.sum("firedrill_audit_malformed_records_total");
    let (missing, lost, late) = (after.get(MISSING), after.get(LOST), delta(LATE));
    // Started and ended still: every order acked in the window is due in it.
    let expected = acked;
    let appended = appended(&watermarks1, &watermarks0);
    let audited = processed + duplicates + unexpected + invalid + malformed;
    let false_positives = duplicates + unexpected + invalid + malformed + missing + lost;
    let clean = false_positives == 0.0 && processed == expected && failed == 0.0;
    rows.push(row(
        "(2) clean run: orders sent / acked / failed",
        format!(
            "{sent} / {acked} / {failed} at {rate}/s asked: {:.0} acked/s over {placing:.0} s, \
             drained in {:.1} s",
            acked / placing,
            drain.elapsed().as_secs_f64()
        ),
    ));
    rows.push(row(
        "(2) clean run: processed / expected",
        format!("{processed} / {expected} (acked in the run, from a still pipeline)"),
    ));
    rows.push(row(
        "(2) clean run: duplicate, unexpected, invalid, malformed, missing, lost (late)",
        format!(
            "{duplicates}, {unexpected}, {invalid}, {malformed}, {missing}, {lost} ({late}): \
             {false_positives} counted where nothing was broken on purpose (false positives, or \
             faults of the pipeline itself: see the appended row): {}",
            if clean { "PASS" } else { "FAIL" }
        ),
    ));
    rows.push(row(
        "(2) clean run: records appended to processed_orders / audited",
        format!(
            "{appended} / {audited}: {}",
            if appended as f64 == audited {
                "equal"
            } else {
                "DIFFER"
            }
        ),
    ));
    rows.push(row(
        "(2) clean run: an independent read of processed_orders over the run: records / \
         distinct order ids / sightings of an id already read (not JSON or no id)",
        format!(
            "{} / {} / {} ({}): {}",
            read.records,
            read.distinct,
            read.repeated,
            read.other,
            if read.distinct as f64 == processed + invalid
                && read.repeated as f64 == duplicates
                && read.other as f64 == malformed
            {
                "agrees with the audit's processed + invalid / duplicates, order by order count"
            } else {
                "DIFFERS from the audit's processed + invalid / duplicates"
            }
        ),
    ));
    rows.push(row(
        "(2) clean run: daemon RSS min / max, CPU while placing",
        format!(
            "{rss_min:.1} / {rss_max:.1} MiB; {}",
            during.cpu.since(&before.cpu)
        ),
    ));
}

/// What a consumer of its own, not firedrill's, reads of a topic between two sets of
/// watermarks: the evidence the audit's counts are held to.
struct IdCount {
    records: u64,
    /// Distinct `order_id`s.
    distinct: u64,
    /// Records whose `order_id` was read before.
    repeated: u64,
    /// Records that are not JSON or carry no `order_id`.
    other: u64,
}

impl IdCount {
    /// Reads every partition of `topic` from `from[p]` up to `to[p]`.
    fn read(topic: &str, from: &[i64], to: &[i64]) -> IdCount {
        use rdkafka::{consumer::BaseConsumer, ClientConfig, Message, Offset, TopicPartitionList};
        use std::collections::HashSet;

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", BROKER)
            .set("group.id", "firedrill-bench-evidence")
            .set("enable.auto.commit", "false")
            .create()
            .expect("evidence consumer");
        let mut tpl = TopicPartitionList::new();
        let mut left = 0;
        for (p, (&from, &to)) in (0..).zip(from.iter().zip(to)) {
            tpl.add_partition_offset(topic, p, Offset::Offset(from))
                .expect("partition offset");
            left += to - from;
        }
        consumer.assign(&tpl).expect("assign");
        let mut ids = HashSet::new();
        let mut count = IdCount {
            records: 0,
            distinct: 0,
            repeated: 0,
            other: 0,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while left > 0 {
            assert!(
                Instant::now() < deadline,
                "{left} records of {topic} not read in 600 s"
            );
            let Some(message) = consumer.poll(Duration::from_millis(500)) else {
                continue;
            };
            let message = message.expect("evidence consumer error");
            let p = usize::try_from(message.partition()).expect("partition");
            if message.offset() >= to[p] {
                continue;
            }
            left -= 1;
            count.records += 1;
            let id = message
                .payload()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v.get("order_id")?.as_str().map(str::to_owned));
            match id.map(|id| ids.insert(id)) {
                Some(true) => count.distinct += 1,
                Some(false) => count.repeated += 1,
                None => count.other += 1,
            }
        }
        count
    }
}

/// High watermark of every partition of the output topic.
fn output_watermarks() -> Vec<i64> {
    watermarks(OUTPUT_TOPIC)
}

/// Records appended to `topic` between two readings of [`watermarks`].
fn appended(now: &[i64], then: &[i64]) -> i64 {
    now.iter().zip(then).map(|(now, then)| now - then).sum()
}

/// High watermark of every partition of `topic`.
fn watermarks(topic: &str) -> Vec<i64> {
    let probe = support::probe();
    let metadata = probe
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata of the topic");
    let partitions = metadata.topics()[0].partitions().len() as i32;
    (0..partitions)
        .map(|p| {
            probe
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks of the topic")
                .1
        })
        .collect()
}

/// Part 3: the broker down for `plan.outage` at `plan.outage_rate`.
fn outage(plan: &Plan, daemon: &Daemon, http: &mut Http, rows: &mut Rows) {
    let rate = plan.outage_rate;
    http.set_rate(rate);
    wait_until(
        http,
        Duration::from_secs(300),
        "steady before the outage",
        |m| m.get(IN_FLIGHT) <= 3.0 * f64::from(rate) && m.get(MISSING) == 0.0,
    );
    thread::sleep(plan.settle);
    let orders0 = watermarks(INPUT_TOPIC);
    let before = Reading::take(daemon, http);
    println!("(3) stopping the broker for {:?} at {rate}/s", plan.outage);
    stack(&["stop", "kafka"], &[]);
    let down_at = Instant::now();
    let mut rss = Vec::new();
    while down_at.elapsed() < plan.outage {
        thread::sleep(Duration::from_secs(1));
        rss.push(daemon.rss_mib());
    }
    let at_end = Reading::take(daemon, http);
    stack(&["start", "kafka"], &[]);
    let restarted = Instant::now();
    println!(
        "(3) broker started again after {:.0} s",
        down_at.elapsed().as_secs_f64()
    );
    // Resumed by itself: acked again at >= 90 % of the rate over 5 s, with no call made.
    let mut last = (Instant::now(), Scrape(http.get("/metrics")).get(ACKED));
    let resumed = loop {
        thread::sleep(Duration::from_secs(1));
        let acked = Scrape(http.get("/metrics")).get(ACKED);
        let (at, then) = last;
        if at.elapsed() >= Duration::from_secs(5) {
            if (acked - then) / at.elapsed().as_secs_f64() >= 0.9 * f64::from(rate) {
                break restarted.elapsed().as_secs_f64() - at.elapsed().as_secs_f64();
            }
            last = (Instant::now(), acked);
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(300),
            "the generator was not acked at {rate}/s within 300 s of the broker's restart"
        );
    };
    // Flink's job fails while its sink cannot write; it restarts on its own, and `stack up`
    // resubmits it only if it gave up.
    let job_deadline = Instant::now() + Duration::from_secs(180);
    let mut resubmitted = false;
    while active_job().is_none_or(|(_, state)| state != "RUNNING") {
        if Instant::now() > job_deadline && !resubmitted {
            stack(&["up"], &[]);
            resubmitted = true;
        }
        thread::sleep(Duration::from_secs(1));
    }
    http.set_rate(0);
    let paced = before.at.elapsed().as_secs_f64();
    let drain = Instant::now();
    wait_until(
        http,
        Duration::from_secs(900),
        "every acked order is accounted for",
        drained,
    );
    let after = Reading::take(daemon, http);
    http.set_rate(10);
    // Read after the drain: what the broker holds of the orders, whatever the daemon says.
    let orders_appended = appended(&watermarks(INPUT_TOPIC), &orders0);

    let delta = |series: &str| after.get(series) - before.get(series);
    let (acked, failed) = (delta(ACKED), delta(FAILED));
    // The generator paces orders on its own clock: rate x time is what it was asked to place.
    let paced_orders = f64::from(rate) * paced;
    let sent = delta(SENT);
    let counted = acked + failed - before.get(GEN_IN_FLIGHT);
    let seen_or_lost = delta(PROCESSED) + delta(LOST);
    let acked_due = acked + before.get(IN_FLIGHT) + before.get(MISSING);
    let rss_max = rss.iter().copied().fold(before.rss_mib, f64::max);
    let rss_min = rss.iter().copied().fold(before.rss_mib, f64::min);
    rows.push(row(
        "(3) outage: broker down",
        format!(
            "{:.0} s at {rate} orders/s; generator acked again {resumed:.1} s after the broker \
             started, by itself; Flink's job {}",
            plan.outage.as_secs_f64(),
            if resubmitted {
                "had to be resubmitted (stack up)"
            } else {
                "recovered by itself"
            }
        ),
    ));
    let at = |s: usize| {
        rss.get(s.min(rss.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let n = rss.len();
    rows.push(row(
        "(3) outage: daemon RSS at 1/4, 1/2, 3/4 and the end of the outage",
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} MiB",
            at(n / 4),
            at(n / 2),
            at(3 * n / 4),
            at(n)
        ),
    ));
    rows.push(row(
        "(3) outage: daemon RSS before / min / max during / after",
        format!(
            "{:.1} / {rss_min:.1} / {rss_max:.1} / {:.1} MiB",
            before.rss_mib, after.rss_mib
        ),
    ));
    rows.push(row(
        "(3) outage: the audit's ledger (approx. heap) before / at the end of the outage / \
         after",
        format!(
            "{:.2} / {:.2} / {:.2} MiB, {} orders tracked at the end of the outage",
            before.get(LEDGER_BYTES) / MIB,
            at_end.get(LEDGER_BYTES) / MIB,
            after.get(LEDGER_BYTES) / MIB,
            at_end.get(LEDGER_TRACKED)
        ),
    ));
    rows.push(row(
        "(3) outage: orders made / acked + failed",
        format!(
            "acked {acked} + failed {failed} (- {} in flight at the start) = {counted}, {sent} \
             of them handed to the producer, {} failed while down; paced at {:.1} % of rate x \
             time ({paced_orders:.0} over {paced:.0} s)",
            before.get(GEN_IN_FLIGHT),
            at_end.get(FAILED) - before.get(FAILED),
            counted / paced_orders * 100.0
        ),
    ));
    rows.push(row(
        "(3) outage: appended to `orders` (broker's watermarks) / acked",
        format!(
            "{orders_appended} / {acked}: {}",
            if orders_appended as f64 >= acked && orders_appended as f64 <= acked + failed {
                format!(
                    "every acked order is in the topic, and {} counted failed are too (ack lost)",
                    orders_appended as f64 - acked
                )
            } else {
                "DIFFER".to_owned()
            }
        ),
    ));
    rows.push(row(
        "(3) outage: acked due / processed + lost",
        format!(
            "{acked_due} / {seen_or_lost} (duplicates {}, late {}), drained in {:.0} s: {}",
            delta(DUPLICATE),
            delta(LATE),
            drain.elapsed().as_secs_f64(),
            if seen_or_lost < acked_due {
                "DIFFER: acked orders unaccounted for".to_owned()
            } else if seen_or_lost == acked_due {
                "every acked order accounted for".to_owned()
            } else {
                format!(
                    "every acked order accounted for, and {} failed at the door were processed \
                     (their ack was lost when the broker stopped)",
                    seen_or_lost - acked_due
                )
            }
        ),
    ));
    rows.push(row(
        "(3) outage: CPU while the broker was down",
        at_end.cpu.since(&before.cpu),
    ));
}
