//! Drills through the real daemon's API, and each report held to evidence the test reads
//! itself: the output topic record by record. Shared by the drill tests of both engines
//! (tests/drills.rs on Flink, tests/spark.rs on Spark).

use std::time::Duration;

use super::{eventually, kafka, Daemon};

/// Short phases so a drill takes about a minute; `extra` is appended (more TOML).
pub fn config(state: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[generator]
rate = 20
[kafka]
poll_interval = "1s"
[faults]
ledger = "{state}/faults.json"
[drills]
state_dir = "{state}/reports"
gate = "5s"
baseline = "10s"
fault_duration = "10s"
recovery_timeout = "120s"
drain_timeout = "60s"
# Alertmanager notifies the stack's daemon on :9400, not this one: nothing to expect here
# (tests/alerting.rs scores alerts through the stack's daemon).
[alerts.expected]
{extra}
"#,
        state = state.display()
    )
}

/// `POST /drills` with `body`: the status and the answer.
pub async fn post_drill(daemon: &Daemon, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = daemon
        .http
        .post(daemon.url("/drills"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Drill `id`'s live view.
pub async fn view(daemon: &Daemon, id: &str) -> Option<serde_json::Value> {
    daemon.get(&format!("/drills/{id}")).await.json().await.ok()
}

/// Starts a drill through the API and waits for its report.
pub async fn drill(daemon: &Daemon, body: serde_json::Value) -> serde_json::Value {
    let (status, started) = post_drill(daemon, body).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let view = eventually(
        &format!("drill {id} finished"),
        Duration::from_secs(900),
        || async {
            let view = view(daemon, &id).await?;
            matches!(
                view["state"].as_str(),
                Some("done" | "refused" | "aborted" | "failed")
            )
            .then_some(view)
        },
    )
    .await;
    assert_eq!(view["state"], "done", "{view}");
    daemon
        .get(&format!("/drills/{id}/report?format=json"))
        .await
        .json()
        .await
        .unwrap()
}

pub fn phase(report: &serde_json::Value, name: &str) -> Option<i64> {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["at_ms"].as_i64())
}

/// The drill's output figures recomputed by the test from its own reading of
/// `processed_orders` (record by record, not firedrill's 100 ms buckets), with the report's
/// window and thresholds.
#[derive(Debug)]
pub struct Evidence {
    pub gaps: Vec<(i64, i64)>,
    pub recovered_at: Option<i64>,
    pub downtime_s: f64,
}

pub fn evidence(times: &[kafka::OutputTime], report: &serde_json::Value) -> Evidence {
    let out = &report["output"];
    let from = out["from_ms"].as_i64().expect("output.from_ms");
    let to = out["to_ms"].as_i64().expect("output.to_ms");
    let min_gap = (out["min_gap_s"].as_f64().unwrap() * 1000.0) as i64;
    let band = (out["caught_up_latency_s"].as_f64().unwrap() * 1000.0) as i64;
    let mut sorted: Vec<&kafka::OutputTime> = times.iter().collect();
    sorted.sort_by_key(|t| t.processed_at_ms);
    let mut gaps = Vec::new();
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0].processed_at_ms, pair[1].processed_at_ms);
        if b >= from && b < to && b - a >= min_gap {
            gaps.push((a.max(from), b));
        }
    }
    let window: Vec<&&kafka::OutputTime> = sorted
        .iter()
        .filter(|t| t.processed_at_ms >= from && t.processed_at_ms < to)
        .collect();
    let late = |t: &kafka::OutputTime| t.processed_at_ms - t.event_time_ms > band;
    let caught_up = match window.iter().rposition(|t| late(t)) {
        None if window.is_empty() => None,
        None => Some(from),
        // Records written at the same instant (Spark stamps a whole micro-batch with one
        // time) are one output: caught up is the first output after the last late one's time.
        Some(i) => window[i..]
            .iter()
            .map(|t| t.processed_at_ms)
            .find(|at| *at > window[i].processed_at_ms),
    };
    let recovered_at = caught_up.map(|c| gaps.last().map_or(c, |g| g.1.max(c)));
    let until = recovered_at.unwrap_or(to);
    let downtime_ms: i64 = gaps.iter().map(|(a, b)| ((*b).min(until) - a).max(0)).sum();
    Evidence {
        gaps,
        recovered_at,
        downtime_s: downtime_ms as f64 / 1000.0,
    }
}

/// Downtime, time to recover and first output agree with the test's own reading of the
/// output within 1 s; returns the evidence for further checks.
pub fn assert_output_evidence(report: &serde_json::Value, times: &[kafka::OutputTime]) -> Evidence {
    let ev = evidence(times, report);
    let injected = phase(report, "injected").unwrap();
    let downtime = report["downtime_s"].as_f64().expect("downtime_s");
    assert!(
        (downtime - ev.downtime_s).abs() <= 1.0,
        "downtime {downtime} s vs {} s in processed_orders (gaps {:?}; report {})",
        ev.downtime_s,
        ev.gaps,
        report["output"]
    );
    let recovered = phase(report, "recovered").expect("recovered");
    let ev_recovered = ev.recovered_at.expect("the output caught up in the window");
    let (to_recover, ev_to_recover) = (
        report["recovery_time_s"].as_f64().unwrap(),
        (ev_recovered - injected) as f64 / 1000.0,
    );
    assert!(
        (to_recover - ev_to_recover).abs() <= 1.0,
        "time to recover {to_recover} s vs {ev_to_recover} s in processed_orders (recovered \
         at {recovered} vs {ev_recovered}; report {})",
        report["output"]
    );
    match (phase(report, "first_output"), ev.gaps.first()) {
        (Some(first), Some((_, end))) => assert!(
            (first - end).abs() <= 1_000,
            "first output at {first} vs {end} in processed_orders"
        ),
        (None, None) => {}
        (first, gap) => panic!("first output {first:?} vs the first gap {gap:?}"),
    }
    // One consistent set of orders: processed may exceed acked only by the orders acked
    // before the drill and still in flight at its start.
    let o = &report["orders"];
    assert!(
        o["processed"].as_u64().unwrap()
            <= o["acked"].as_u64().unwrap() + o["in_flight_at_start"].as_u64().unwrap(),
        "{o}"
    );
    eprintln!(
        "{} drill: downtime {downtime} s (evidence {:.1}), time to recover {to_recover} s \
         (evidence {ev_to_recover:.1}), gaps {:?}",
        report["scenario"].as_str().unwrap_or("?"),
        ev.downtime_s,
        ev.gaps
    );
    ev
}

/// The generator run of `daemon`: its orders' ids start with it and a dash.
pub async fn run_id(daemon: &Daemon) -> String {
    daemon
        .get("/generator")
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["run_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The report's baseline throughput within 10 % of run `run`'s orders that the output topic
/// holds with a processing time in the baseline (`baseline_started` -> `injected`), per
/// second. For an engine that writes record by record (Flink): a micro-batch every few
/// seconds puts a whole batch on either side of an edge.
pub fn assert_baseline_throughput(
    report: &serde_json::Value,
    times: &[kafka::OutputTime],
    run: &str,
) {
    let (from, to) = (
        phase(report, "baseline_started").unwrap(),
        phase(report, "injected").unwrap(),
    );
    let prefix = format!("{run}-");
    let seen = times
        .iter()
        .filter(|t| t.order_id.starts_with(&prefix) && (from..to).contains(&t.processed_at_ms))
        .count();
    let evidence = seen as f64 / ((to - from) as f64 / 1000.0);
    let reported = report["baseline"]["orders_per_s"].as_f64().unwrap();
    eprintln!("baseline {reported:.2} orders/s, {evidence:.2} in processed_orders");
    assert!(
        (reported - evidence).abs() <= evidence * 0.1,
        "baseline {reported:.1} orders/s vs {evidence:.1} in processed_orders ({seen} orders of \
         run {run} in {:.1} s)",
        (to - from) as f64 / 1000.0
    );
}

pub fn assert_common(report: &serde_json::Value) {
    for name in [
        "baseline_started",
        "injected",
        "revert_started",
        "reverted",
        "recovered",
        "drained",
    ] {
        assert!(
            phase(report, name).is_some(),
            "phase {name} missing: {}",
            report["phases"]
        );
    }
    assert_eq!(report["recovered"], true);
    assert_eq!(
        report["orders"]["lost"], 0,
        "no order lost: {}",
        report["orders"]
    );
    assert_eq!(report["orders"]["invalid"], 0);
    assert_eq!(
        report["integrity"]["verdict"], "PASS",
        "{}",
        report["integrity"]
    );
    assert!(report["baseline"]["orders_per_s"].as_f64().unwrap() > 10.0);
    assert!(report["timeline"].as_array().unwrap().len() > 20);
    // Time figures as users read them (schema 2): time to recover from the failure, the
    // revert as a phase of its own, degradation over the impact window.
    let at = |name| phase(report, name).unwrap();
    let s = |ms: i64| ms as f64 / 1000.0;
    assert_eq!(
        report["recovery_time_s"].as_f64(),
        Some(s(at("recovered") - at("injected")))
    );
    assert_eq!(
        report["revert_to_recovered_s"].as_f64(),
        Some(s((at("recovered") - at("reverted")).max(0)))
    );
    assert!(at("revert_started") <= at("reverted"));
    assert_eq!(
        report["fault"]["revert_s"].as_f64(),
        Some(s(at("reverted") - at("revert_started")))
    );
    let degradation = report["throughput"]["degradation_pct"].as_f64().unwrap();
    match report["throughput"]["worst_drop_pct"].as_f64() {
        Some(worst) => {
            assert!((0.0..=100.0).contains(&degradation) && degradation <= worst + 1e-9)
        }
        // Absent only when no sample measured the impact window (the schema's "null when"):
        // the output recovered before the first sample after the injection (an executor
        // loss Spark's next micro-batch hid), so nothing counts as lost either.
        None => {
            let (from, to) = (at("injected"), at("recovered"));
            let measured: Vec<&serde_json::Value> = report["timeline"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["missed"].is_null())
                .filter(|s| (from + 1..=to).contains(&s["at_ms"].as_i64().unwrap()))
                .collect();
            assert!(
                measured.is_empty(),
                "worst_drop_pct null with samples in the impact window: {measured:?}"
            );
            assert_eq!(degradation, 0.0);
        }
    }
}
