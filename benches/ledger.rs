//! Benchmark of the audit ledger: how fast it classifies a realistic stream, what a tracked
//! order costs in memory, and what compaction leaves once a backlog drains.
//!
//! Owns nothing but its own measurements; it drives `firedrill::audit::ledger` with a
//! simulated clock and reads memory from `approx_bytes()` and `/proc/self/status` (VmRSS).
//!
//! Run: `cargo bench --bench ledger`; add `-- --quick` (or set `FIREDRILL_BENCH_QUICK=1`) for
//! a smoke run with sizes divided by 50.

use std::hint::black_box;
use std::time::{Duration, Instant};

use firedrill::audit::ledger::{Category, Ledger, LedgerConfig, Outcome, Seen};

/// Simulated producer rate: orders per millisecond (10k orders/s).
const ORDERS_PER_MS: u64 = 10;
const SLA_MS: u64 = 5_000;
const LOST_AFTER_MS: u64 = 60_000;
/// The delivery report trails the send by this many orders.
const ACK_LAG: u64 = 4;
/// One order in 100 has a slow delivery report, arriving after its sighting.
const SLOW_ACK_LAG: u64 = 20;
/// Flink's output trails the send by this many orders.
const SEEN_LAG: u64 = 8;
/// One order in 500 is held back past its SLA (+1 s) before Flink emits it.
const LATE_LAG: u64 = (SLA_MS + 1_000) * ORDERS_PER_MS + SEEN_LAG;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("FIREDRILL_BENCH_QUICK").is_some_and(|v| v != "0");
    let scale = if quick { 50 } else { 1 };
    let stream_orders = 5_000_000 / scale;
    let backlog_orders = 10_000_000 / scale;

    println!(
        "firedrill ledger bench{}: {stream_orders} stream orders, {backlog_orders} backlog orders",
        if quick { " (quick)" } else { "" }
    );
    let mut rows = Vec::new();
    stream(stream_orders, &mut rows);
    backlog(backlog_orders, &mut rows);

    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:width$}  value", "measure");
    println!("{:-<width$}  {:-<24}", "", "");
    for (name, value) in rows {
        println!("{name:width$}  {value}");
    }
}

/// Sent, acked and seen orders with the usual disorder: slow acks, late and duplicate
/// sightings, a rare invalid record; ticks every 10 ms of simulated time.
fn stream(orders: u64, rows: &mut Vec<(String, String)>) {
    let mut ledger = Ledger::new(LedgerConfig {
        sla_ms: SLA_MS,
        lost_after_ms: LOST_AFTER_MS,
    });
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let value = |seq: u64| (seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % 250_000;
    let (mut calls, mut first, mut dups, mut peak_tracked) = (0u64, 0u64, 0u64, 0);
    let mut see = |ledger: &mut Ledger, seq: u64, now: u64| {
        let v = value(seq);
        let category = if seq % 100_000 == 77 {
            Category::Premium // a rare corrupted record
        } else {
            Category::of(v)
        };
        let seen = Seen {
            value_cents: v,
            category: Some(category),
        };
        match black_box(ledger.seen(seq, seen, now)) {
            Outcome::Processed { .. } | Outcome::Invalid { .. } => first += 1,
            Outcome::Duplicate => dups += 1,
            Outcome::Unexpected => {}
        }
    };

    let start = Instant::now();
    // Keep going after the last send until the held-back sightings are out.
    for step in 0..orders + LATE_LAG + 1 {
        let now = step / ORDERS_PER_MS;
        if step < orders {
            ledger.sent(step, value(step));
            calls += 1;
        }
        let slow = |seq: u64| seq % 100 == 37;
        let held = |seq: u64| seq % 500 == 123;
        for (lag, pick) in [(ACK_LAG, false), (SLOW_ACK_LAG, true)] {
            if let Some(seq) = step
                .checked_sub(lag)
                .filter(|s| *s < orders && slow(*s) == pick)
            {
                ledger.acked(seq, now);
                calls += 1;
            }
        }
        for (lag, pick) in [(SEEN_LAG, false), (LATE_LAG, true)] {
            if let Some(seq) = step
                .checked_sub(lag)
                .filter(|s| *s < orders && held(*s) == pick)
            {
                see(&mut ledger, seq, now);
                calls += 1;
            }
        }
        // ~1% replays of a recent record (at-least-once sink).
        if rng.next().is_multiple_of(100) {
            if let Some(seq) = step.checked_sub(SEEN_LAG + 1 + rng.next() % 32) {
                if seq < orders {
                    see(&mut ledger, seq, now);
                    calls += 1;
                }
            }
        }
        if step % 100 == 0 {
            ledger.tick(now);
            calls += 1;
            peak_tracked = peak_tracked.max(ledger.tracked());
        }
    }
    let elapsed = start.elapsed();
    let t = ledger.totals();
    assert_eq!(
        (t.sent, t.processed, t.lost, t.in_flight),
        (orders, first, 0, 0)
    );

    rows.push(row("(a) stream: orders", orders));
    rows.push(row("(a) ledger calls", calls));
    rows.push(row("(a) elapsed", fmt_duration(elapsed)));
    rows.push(row("(a) orders classified/s", rate(orders, elapsed)));
    rows.push(row("(a) ledger calls/s", rate(calls, elapsed)));
    rows.push(row(
        "(a) ns per call",
        format!("{:.1}", elapsed.as_nanos() as f64 / calls as f64),
    ));
    rows.push(row(
        "(a) duplicates / late / invalid",
        format!("{dups} / {} / {}", t.late, t.invalid),
    ));
    rows.push(row("(a) sla breaches", t.sla_breaches));
    rows.push(row("(a) peak tracked entries", peak_tracked));
}

/// `orders` acked and not yet seen, then all seen in order.
fn backlog(orders: u64, rows: &mut Vec<(String, String)>) {
    let mut ledger = Ledger::new(LedgerConfig {
        sla_ms: u64::MAX / 4, // nothing ages: the backlog stays in flight
        lost_after_ms: u64::MAX / 4,
    });
    let rss_before = rss_bytes();
    let start = Instant::now();
    for seq in 0..orders {
        ledger.sent(seq, seq % 250_000);
        ledger.acked(seq, seq / ORDERS_PER_MS);
    }
    let fill = start.elapsed();
    let rss_full = rss_bytes();
    let tracked = ledger.tracked();
    let bytes = ledger.approx_bytes();
    assert_eq!(ledger.totals().in_flight, orders);

    rows.push(row("(b) backlog: acked, unseen", orders));
    rows.push(row("(b) sent+acked/s", rate(orders, fill)));
    rows.push(row("(b) tracked entries", tracked));
    rows.push(row("(b) approx_bytes", mib(bytes as u64)));
    rows.push(row(
        "(b) bytes/order (approx_bytes)",
        format!("{:.1}", bytes as f64 / tracked as f64),
    ));
    let rss_growth = rss_before.zip(rss_full).map(|(b, f)| f.saturating_sub(b));
    rows.push(row(
        "(b) VmRSS growth",
        rss_growth.map_or("n/a".into(), mib),
    ));
    rows.push(row(
        "(b) bytes/order (VmRSS)",
        rss_growth.map_or("n/a".into(), |g| format!("{:.1}", g as f64 / orders as f64)),
    ));

    let now = orders / ORDERS_PER_MS;
    let start = Instant::now();
    for seq in 0..orders {
        let v = seq % 250_000;
        let seen = Seen {
            value_cents: v,
            category: Some(Category::of(v)),
        };
        black_box(ledger.seen(seq, seen, now));
    }
    let drain = start.elapsed();
    assert_eq!(ledger.totals().processed, orders);
    rows.push(row("(c) all seen: seen/s", rate(orders, drain)));
    rows.push(row("(c) tracked entries", ledger.tracked()));
    rows.push(row("(c) approx_bytes", ledger.approx_bytes()));
    rows.push(row(
        "(c) VmRSS vs before (b)",
        rss_before.zip(rss_bytes()).map_or("n/a".into(), |(b, a)| {
            format!("{:+.1} MiB", mib_f(a) - mib_f(b))
        }),
    ));
}

fn row(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn rate(n: u64, elapsed: Duration) -> String {
    format!("{:.2} M/s", n as f64 / elapsed.as_secs_f64() / 1e6)
}

fn fmt_duration(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn mib_f(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", mib_f(bytes))
}

/// Resident set size from `/proc/self/status`; `None` off Linux.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// xorshift64: deterministic and cheap next to the ledger calls it drives.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
