//! Garbage on the wire and on disk: what firedrill reads that it did not write right.
//!
//! - Records in `processed_orders` that are not JSON, empty, 1 MiB, wrongly typed, with
//!   unreadable money or times, or of another run: each is counted under its metric
//!   (`firedrill_audit_malformed_records_total{reason}`, or
//!   `firedrill_audit_records_total{verdict="unexpected"}`), the daemon keeps serving and
//!   auditing, and nothing it had recorded is lost. Needs the local stack.
//! - A fault ledger truncated on disk: the daemon refuses to start, says why and what to do,
//!   and leaves the file for a human (it may list faults still in effect).
//! - Drill reports truncated or corrupt on disk: skipped at start with the others still
//!   served; a report that breaks while the daemon runs is answered with an error naming it.
//!   The daemon keeps serving throughout. These two need no stack (closed upstream ports).

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::{
    producer::{FutureProducer, FutureRecord},
    ClientConfig,
};
use support::{eventually, require_stack, Daemon, Scrape, BROKER};

const TOPIC: &str = "processed_orders";

/// A plain producer allowed records of a few MiB (librdkafka's default stops at 1 MB).
fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("enable.idempotence", "false")
        .set("message.max.bytes", "4000000")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("test producer")
}

async fn send(producer: &FutureProducer, what: &str, value: Option<&[u8]>) {
    let mut record = FutureRecord::<str, [u8]>::to(TOPIC).key(what);
    if let Some(value) = value {
        record = record.payload(value);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap_or_else(|(e, _)| panic!("the broker refused the {what} record: {e}"));
}

/// A `processed_orders` record as the job writes it, with `order_id` and `price` as given
/// (raw JSON) and `event_time` as given.
fn processed(order_id: &str, price: &str, event_time: &str) -> String {
    format!(
        r#"{{"order_id":{order_id},"customer_id":"cust-1","product":"pen","quantity":1,"price":{price},"order_value":2.5,"order_category":"basic","event_time":"{event_time}","processed_at":"2026-01-01 10:00:00.500"}}"#
    )
}

const OK_TIME: &str = "2026-01-01 10:00:00.000";

/// One garbage record: its key, its value (`None`: a tombstone), and the reason it is
/// malformed, or `None` when it reads but is not this run's order.
type Garbage<'a> = (&'a str, Option<Vec<u8>>, Option<&'a str>);

fn malformed(s: &Scrape, reason: &str) -> f64 {
    s.metric("firedrill_audit_malformed_records_total")
        .label("reason", reason)
        .value()
        .unwrap_or(0.0)
}

fn verdict(s: &Scrape, verdict: &str) -> f64 {
    s.metric("firedrill_audit_records_total")
        .label("verdict", verdict)
        .value()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_records_are_counted_and_nothing_recorded_is_lost() {
    require_stack();
    let daemon = Daemon::start_with_env("", &[("FIREDRILL_GENERATOR__RATE", "20")]);
    // The pipeline flows through this daemon's audit.
    eventually(
        "the audit sees this run's orders",
        Duration::from_secs(120),
        || async { (verdict(&daemon.scrape().await, "processed") > 0.0).then_some(()) },
    )
    .await;
    let before = daemon.scrape().await;

    let producer = producer();
    let huge = vec![b'x'; 1 << 20];
    let huge_id = format!("\"r{}-1\"", "9".repeat(1 << 20));
    let foreign = processed("\"rforeignrun0000-1\"", "2.5", OK_TIME);
    let garbage: Vec<Garbage> = vec![
        ("not-json", Some(b"{order_id: 1,".to_vec()), Some("json")),
        ("empty", None, Some("empty")),
        ("oversized", Some(huge), Some("json")),
        (
            "id-a-number",
            Some(processed("42", "2.5", OK_TIME).into_bytes()),
            Some("json"),
        ),
        (
            "price-a-string",
            Some(processed("\"r1-1\"", "\"2.50\"", OK_TIME).into_bytes()),
            Some("json"),
        ),
        (
            "price-not-cents",
            Some(processed("\"r1-1\"", "2.505", OK_TIME).into_bytes()),
            Some("money"),
        ),
        (
            "time-not-a-time",
            Some(processed("\"r1-1\"", "2.5", "yesterday").into_bytes()),
            Some("time"),
        ),
        ("foreign", Some(foreign.into_bytes()), None),
        (
            "oversized-id",
            Some(processed(&huge_id, "2.5", OK_TIME).into_bytes()),
            None,
        ),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    let mut foreign_sent = 0.0;
    for (what, value, reason) in &garbage {
        send(&producer, what, value.as_deref()).await;
        match reason {
            Some(reason) => *expected.entry(reason).or_default() += 1.0,
            None => foreign_sent += 1.0,
        }
    }

    // Each is counted under its reason, exactly (nothing else writes garbage there)...
    let after = eventually(
        "every garbage record counted",
        Duration::from_secs(60),
        || async {
            let s = daemon.scrape().await;
            let all = expected
                .iter()
                .all(|(reason, n)| malformed(&s, reason) - malformed(&before, reason) >= *n);
            all.then_some(s)
        },
    )
    .await;
    for (reason, n) in &expected {
        assert_eq!(
            malformed(&after, reason) - malformed(&before, reason),
            *n,
            "malformed records with reason {reason}"
        );
    }
    // ...and those of another run as unexpected (other daemons' orders count there too).
    eventually(
        "the foreign records counted as unexpected",
        Duration::from_secs(60),
        || async {
            let s = daemon.scrape().await;
            let unexpected = verdict(&s, "unexpected") - verdict(&before, "unexpected");
            (unexpected >= foreign_sent).then_some(())
        },
    )
    .await;

    // Nothing recorded is lost, and the audit goes on: this run's orders keep being
    // processed after the garbage, and the daemon answers.
    let processed_before = verdict(&before, "processed");
    assert!(verdict(&after, "processed") >= processed_before);
    let seen = verdict(&after, "processed");
    eventually(
        "this run's orders still processed after the garbage",
        Duration::from_secs(120),
        || async { (verdict(&daemon.scrape().await, "processed") > seen).then_some(()) },
    )
    .await;
    assert_eq!(daemon.get("/healthz").await.status(), 200);
    let generator: serde_json::Value = daemon.get("/generator").await.json().await.unwrap();
    assert_eq!(generator["orders_per_second"], 20);
}

/// A daemon config with closed upstream ports and `extra` appended.
fn offline_config(extra: &str) -> String {
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:1"
request_timeout = "500ms"
[flink]
rest_url = "http://127.0.0.1:1"
{extra}
"#
    )
}

#[test]
fn a_truncated_fault_ledger_is_refused_with_what_to_do_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("faults.json");
    // A ledger cut short mid-entry (a disk that lost the tail of the file).
    let truncated = br#"{"version": 1, "faults": [{"id": "f-1", "target": "kafka", "act"#;
    std::fs::write(&ledger, truncated).unwrap();
    let config = dir.path().join("firedrill.toml");
    let body = offline_config(&format!(
        "[faults]\nledger = \"{}\"\n[drills]\nstate_dir = \"{}\"",
        ledger.display(),
        dir.path().join("reports").display()
    ));
    std::fs::write(&config, body).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("FIREDRILL_HTTP__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = child.kill();
            panic!("firedrill kept running on a corrupt fault ledger");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stderr}");
    assert!(!stdout.contains("listening"), "it served: {stdout}");
    for says in [
        "fault ledger",
        ledger.to_str().unwrap(),
        "unreadable",
        "revert them by hand",
    ] {
        assert!(stderr.contains(says), "{stderr:?} should say {says:?}");
    }
    // Left alone: it may list faults still in effect.
    assert_eq!(std::fs::read(&ledger).unwrap(), truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_reports_are_skipped_or_refused_and_the_rest_is_served() {
    let reports = tempfile::tempdir().unwrap();
    let good = firedrill::drills::report::sample_for_docs();
    let json = good.to_json();
    let path = |id: &str| reports.path().join(format!("{id}.json"));
    std::fs::write(path(&good.id), &json).unwrap();
    std::fs::write(path("d-truncated"), &json[..json.len() / 2]).unwrap();
    std::fs::write(path("d-garbage"), [0xff, 0xfe, 0x00, b'{']).unwrap();
    std::fs::write(path("d-empty"), "").unwrap();

    let daemon = Daemon::start(&offline_config(&format!(
        "[drills]\nstate_dir = \"{}\"",
        reports.path().display()
    )));
    // The readable report is served; the others are skipped (a warning each), not fatal.
    let drills: serde_json::Value = daemon.get("/drills").await.json().await.unwrap();
    let ids: Vec<&str> = drills
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [good.id.as_str()]);
    let response = daemon.get(&format!("/drills/{}/report", good.id)).await;
    assert_eq!(response.status(), 200);
    for id in ["d-truncated", "d-garbage", "d-empty"] {
        let response = daemon.get(&format!("/drills/{id}/report")).await;
        assert_eq!(response.status(), 404, "{id}");
    }

    // Broken while the daemon runs: an error that names the report and the problem, for
    // every format, and the daemon keeps serving.
    std::fs::write(path(&good.id), &json[..json.len() / 3]).unwrap();
    for format in ["json", "md", "html"] {
        let response = daemon
            .get(&format!("/drills/{}/report?format={format}", good.id))
            .await;
        assert_eq!(response.status(), 500, "{format}");
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(&good.id) && message.contains("EOF"),
            "{format}: {message:?}"
        );
    }
    assert_eq!(daemon.get("/healthz").await.status(), 200);
    let drills: serde_json::Value = daemon.get("/drills").await.json().await.unwrap();
    assert_eq!(drills.as_array().unwrap().len(), 1);
}
