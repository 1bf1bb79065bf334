//! The audit actor's own ceiling, without Kafka or Flink: the real `Audit` (its two bounded
//! channels, the ledger, the metrics, the output timeline, the 1 s tick) fed as the daemon
//! feeds it, flat out:
//!
//! - a generator task on the runtime sends `Sent` then `Acked` for each order (as the
//!   generator and its delivery callback do) and publishes how far it got;
//! - a consumer thread (as the audit's consumer thread) writes the record Flink would write
//!   for each announced order (JSON, value and category computed), parses it with
//!   `ProcessedOrder::parse` as the consumer does, and sends it.
//!
//! Measured: orders per second until the audit's snapshot counts every order processed; the
//! same feeders with the audit replaced by a task that only drains the channels (so whether
//! the audit or its feeders were the limit shows); the longest gap between two snapshots
//! while flooded (the tick must keep running under any backlog); RSS growth. The pure
//! ledger alone is `benches/ledger.rs`.
//!
//! Run: `cargo bench --bench audit` (no stack needed); add `-- --quick` for a smoke run.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

mod support;

use firedrill::{
    audit::{self, Audit, Event},
    clock::now_ms,
    order::{Category, ProcessedOrder},
};
use support::row;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const RUN_ID: &str = "bench";
const MAX_IN_FLIGHT: usize = 10_000;

fn main() {
    let quick = support::quick();
    let orders: u64 = if quick { 200_000 } else { 2_000_000 };
    println!(
        "firedrill audit bench{}: {orders} orders through the audit actor",
        if quick { " (quick)" } else { "" }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut rows = Vec::new();
    let rss0 = rss_mib();
    runtime.block_on(feeders_alone(orders, &mut rows));
    runtime.block_on(audit(orders, &mut rows));
    rows.push(row(
        "process VmRSS growth over both runs",
        format!("{:.1} MiB", rss_mib() - rss0),
    ));
    support::print_table(rows);
}

/// Feeds `orders` into `inbox`; returns when the last record is sent.
async fn feed(orders: u64, inbox: audit::Inbox) {
    let announced = Arc::new(AtomicU64::new(0));
    let consumer = {
        let announced = announced.clone();
        let records = inbox.records.clone();
        thread::spawn(move || {
            let mut json = String::with_capacity(512);
            for seq in 0..orders {
                while announced.load(Ordering::Acquire) <= seq {
                    std::hint::spin_loop();
                }
                flink_record(seq, &mut json);
                let record = ProcessedOrder::parse(Some(json.as_bytes()));
                let event = Event::Record {
                    record,
                    received_ms: now_ms(),
                };
                if records.blocking_send(event).is_err() {
                    return;
                }
            }
        })
    };
    for seq in 0..orders {
        let (quantity, price_cents) = order(seq);
        let sent = Event::Sent {
            seq,
            value_cents: quantity * price_cents,
        };
        let acked = Event::Acked {
            seq,
            ack_ms: now_ms(),
        };
        if inbox.orders.send(sent).await.is_err() || inbox.orders.send(acked).await.is_err() {
            break;
        }
        announced.store(seq + 1, Ordering::Release);
        if seq % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::task::spawn_blocking(move || consumer.join().expect("consumer thread"))
        .await
        .expect("join");
}

/// Quantity and unit price (cents) of order `seq`: a spread over the three categories.
fn order(seq: u64) -> (u64, u64) {
    (1 + seq % 3, [1_999, 8_950, 129_900][(seq % 7 % 3) as usize])
}

/// The record Flink writes for order `seq` of this run, into `out`.
fn flink_record(seq: u64, out: &mut String) {
    use std::fmt::Write;
    let (quantity, price_cents) = order(seq);
    let value = quantity * price_cents;
    out.clear();
    write!(
        out,
        r#"{{"order_id":"{RUN_ID}-{seq}","customer_id":"cust-{}","product":"laptop","quantity":{quantity},"price":{}.{:02},"order_value":{}.{:02},"order_category":"{}","event_time":"2026-12-03 04:00:00.000","processed_at":"2026-12-03 04:00:00.250"}}"#,
        seq % 1000,
        price_cents / 100,
        price_cents % 100,
        value / 100,
        value % 100,
        Category::of(value).as_str()
    )
    .expect("write to a String");
}

/// The feeders with a drain in place of the audit: the ceiling of the feeding alone.
async fn feeders_alone(orders: u64, rows: &mut Vec<(String, String)>) {
    let (orders_tx, mut orders_rx) = mpsc::channel(MAX_IN_FLIGHT + audit::ORDER_EVENTS_ROOM);
    let (records_tx, mut records_rx) = mpsc::channel(audit::RECORDS_CAPACITY);
    let drain = tokio::spawn(async move {
        let (mut a, mut b) = (Vec::with_capacity(512), Vec::with_capacity(512));
        let mut records = 0u64;
        loop {
            tokio::select! {
                n = orders_rx.recv_many(&mut a, 512) => { if n == 0 { break } a.clear() }
                n = records_rx.recv_many(&mut b, 512) => { records += n as u64; b.clear() }
            }
        }
        while let Some(_record) = records_rx.recv().await {
            records += 1;
        }
        records
    });
    let started = Instant::now();
    feed(
        orders,
        audit::Inbox {
            orders: orders_tx,
            records: records_tx,
        },
    )
    .await;
    let records = drain.await.expect("drain");
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(records, orders, "every record reached the drain");
    rows.push(row(
        "feeders alone (audit replaced by a drain)",
        format!(
            "{orders} orders in {wall:.2} s = {:.0} orders/s",
            orders as f64 / wall
        ),
    ));
}

/// The real audit actor, fed flat out until its snapshot counts every order processed.
async fn audit(orders: u64, rows: &mut Vec<(String, String)>) {
    let registry = firedrill::metrics::registry();
    let (audit, inbox) = Audit::new(&audit::Config::default(), RUN_ID, MAX_IN_FLIGHT, &registry);
    let mut snapshots = audit.subscribe();
    let cancel = CancellationToken::new();
    let actor = tokio::spawn(audit.run(cancel.clone()));
    // The tick under the flood: the longest wait between two published snapshots.
    let ticks = tokio::spawn(async move {
        let mut last = Instant::now();
        let mut longest = Duration::ZERO;
        while snapshots.changed().await.is_ok() {
            longest = longest.max(last.elapsed());
            last = Instant::now();
            if snapshots.borrow_and_update().totals.processed >= orders {
                break;
            }
        }
        (longest, snapshots.borrow().totals.clone())
    });
    let started = Instant::now();
    let feeding = tokio::spawn(feed(orders, inbox));
    // The processed counter moves with every record applied (the snapshot only once a second).
    while processed(&registry) < orders as f64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    feeding.await.expect("feeder");
    let (longest_gap, totals) = ticks.await.expect("tick watcher");
    cancel.cancel();
    actor.await.expect("audit actor");
    rows.push(row(
        "audit actor: every order processed",
        format!(
            "{orders} orders in {wall:.2} s = {:.0} orders/s",
            orders as f64 / wall
        ),
    ));
    rows.push(row(
        "audit actor: duplicate / unexpected / invalid / missing",
        format!(
            "{} / {} / {} / {}",
            totals.duplicates, totals.unexpected, totals.invalid, totals.missing
        ),
    ));
    rows.push(row(
        "audit actor: longest gap between snapshots while flooded",
        format!(
            "{:.0} ms (tick every 1000 ms)",
            longest_gap.as_secs_f64() * 1e3
        ),
    ));
}

/// `firedrill_audit_records_total{verdict="processed"}` in `registry`.
fn processed(registry: &prometheus::Registry) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == "firedrill_audit_records_total")
        .flat_map(|family| family.get_metric())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "verdict" && l.value() == "processed")
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
