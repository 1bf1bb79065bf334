//! A property-based fuzz run of the admin API (`scripts/fuzz-api`: schemathesis from PyPI,
//! driven by the daemon's own `GET /openapi.json`) against a test daemon that cannot hurt
//! anything: its one fault target is a `sleep` process of the test's own, its upstreams are
//! closed ports (no stack needed, no order produced). No answer may be a 5xx, the daemon must
//! survive, and the invalid requests must have changed nothing: no fault injected (the victim
//! untouched, the ledger empty), no drill started, the rate as configured.

#[path = "support/faults.rs"]
mod faults_support;
mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use faults_support::{ledger_ids, state, ProcessStack};
use support::{repo, Daemon};

const TOKEN: &str = "fuzz-token-of-the-tests";
const RATE: u64 = 7;
/// The script bounds each of its two runs to 50 s; installing schemathesis on a fresh
/// machine takes about a minute more.
const DEADLINE: Duration = Duration::from_secs(300);

fn config(stack: &ProcessStack) -> String {
    let reports = stack.dir.path().join("reports");
    format!(
        r#"
[kafka]
bootstrap_servers = "127.0.0.1:1"
request_timeout = "500ms"
[flink]
rest_url = "http://127.0.0.1:1"
[generator]
rate = {RATE}
max_rate = 1000
[drills]
state_dir = "{reports}"
[faults]
ledger = "{ledger}"
max_duration = "5m"
[faults.targets.victim]
backend = "process"
pid_file = "{pid_file}"
start = ["{script}", "{pid_file}"]
default_action = "kill"
[http]
mutations_per_minute = 100000
"#,
        reports = reports.display(),
        ledger = stack.ledger().display(),
        pid_file = stack.pid_file("victim").display(),
        script = stack.script().display(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fuzzed_requests_get_no_5xx_and_invalid_ones_change_nothing() {
    let stack = ProcessStack::new();
    let pid = stack.start("victim");
    let mut daemon = Daemon::start_with_env(&config(&stack), &[("FIREDRILL_HTTP__TOKEN", TOKEN)]);
    let base = daemon.url("");

    let mut fuzz = Command::new(repo().join("scripts/fuzz-api"))
        .args([base.as_str(), TOKEN])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/fuzz-api");
    let until = Instant::now() + DEADLINE;
    while fuzz.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            let _ = fuzz.kill();
            panic!("scripts/fuzz-api still running after {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = fuzz.wait_with_output().unwrap();
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        out.status.code(),
        Some(2),
        "fuzz-api setup failed:\n{report}"
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
    // Both runs sent requests (a run that tested nothing would pass too).
    assert_eq!(report.matches("== fuzz-api:").count(), 2, "{report}");
    assert!(!report.contains("No operations"), "{report}");

    // The daemon survived and still answers.
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "firedrill exited"
    );
    assert_eq!(daemon.get("/healthz").await.status(), 200);
    // Nothing happened: no fault, the victim untouched, no drill, the rate as configured.
    let faults: serde_json::Value = daemon.get("/faults").await.json().await.unwrap();
    assert_eq!(faults, serde_json::json!([]));
    assert_eq!(state(pid), Some('S'));
    assert!(ledger_ids(&stack.ledger()).is_empty());
    let drills: serde_json::Value = daemon.get("/drills").await.json().await.unwrap();
    assert_eq!(drills, serde_json::json!([]));
    let generator: serde_json::Value = daemon.get("/generator").await.json().await.unwrap();
    assert_eq!(generator["orders_per_second"], RATE, "{generator}");
    let scrape = daemon.scrape().await;
    assert_eq!(
        scrape.metric("firedrill_generator_target_rate").value(),
        Some(RATE as f64)
    );
    assert!(daemon.terminate().success());
}
