//! The Grafana-first loop on the real local stack, as `make up` leaves it: the stack's own
//! firedrill daemon (127.0.0.1:9400, the one Prometheus scrapes and Alertmanager notifies)
//! runs a taskmanager and a kafka drill; Prometheus evaluates `prometheus/rules/`,
//! Alertmanager routes the alerts to firedrill's webhook, and each report must score the
//! scenario's expected alerts as fired and resolved. The times the reports give are checked
//! against Prometheus' own `ALERTS` series, which firedrill did not compute. Then every
//! dashboard panel, annotation query and recording rule must return data from that
//! Prometheus over the drills' window: an expression that returns nothing is a broken panel.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{eventually, require_stack};

const FIREDRILL: &str = "http://127.0.0.1:9400";
const PROMETHEUS: &str = "http://127.0.0.1:9090";
const ALERTMANAGER: &str = "http://127.0.0.1:9093";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn get(url: &str) -> Option<Value> {
    let response = http().get(url).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json().await.ok()
}

/// Panics with what to run unless the stack's daemon, Prometheus and Alertmanager answer.
async fn require_monitoring() {
    require_stack();
    for (what, url) in [
        (
            "the stack's firedrill daemon",
            format!("{FIREDRILL}/healthz"),
        ),
        ("Prometheus", format!("{PROMETHEUS}/-/ready")),
        ("Alertmanager", format!("{ALERTMANAGER}/-/ready")),
    ] {
        let up = http()
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        assert!(
            up,
            "{what} does not answer at {url}: start everything with `make up` (make test does)"
        );
    }
}

/// Prometheus' instant query `expr` at `at` (unix seconds): the result vector.
async fn instant(expr: &str, at: f64) -> Vec<Value> {
    let body = http()
        .get(format!("{PROMETHEUS}/api/v1/query"))
        .query(&[("query", expr), ("time", &at.to_string())])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Prometheus' range query `expr` over `[start, end]` (unix seconds) at `step` seconds.
async fn range(expr: &str, start: f64, end: f64, step: f64) -> Result<Vec<Value>, String> {
    let body = http()
        .get(format!("{PROMETHEUS}/api/v1/query_range"))
        .query(&[
            ("query", expr),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", &step.to_string()),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json::<Value>()
        .await
        .map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Runs `scenario` on the stack's daemon and returns its report. A drill the steady-state
/// gate refuses (the pipeline still catching up from an earlier test's fault) is retried.
async fn drill(scenario: &str) -> Value {
    for attempt in 1..=4 {
        let response = http()
            .post(format!("{FIREDRILL}/drills"))
            .json(&json!({
                "scenario": scenario,
                "fault_duration": "20s",
                "baseline": "10s",
                "label": "tests/alerting.rs",
            }))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let started: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "POST /drills {scenario}: {started}");
        let id = started["id"].as_str().unwrap().to_string();
        let view = eventually(
            &format!("{scenario} drill {id} finished"),
            Duration::from_secs(480),
            || async {
                let view = get(&format!("{FIREDRILL}/drills/{id}")).await?;
                matches!(
                    view["state"].as_str(),
                    Some("done" | "refused" | "aborted" | "failed")
                )
                .then_some(view)
            },
        )
        .await;
        if view["state"] == "refused" && attempt < 4 {
            eprintln!(
                "{scenario} drill refused (attempt {attempt}): {}",
                view["message"]
            );
            // Polled, not slept: the gate itself measures the pipeline for `drills.gate`.
            continue;
        }
        assert_eq!(view["state"], "done", "{view}");
        return get(&format!("{FIREDRILL}/drills/{id}/report?format=json"))
            .await
            .expect("the report of a done drill");
    }
    unreachable!()
}

/// The first time (unix ms) Prometheus' `ALERTS` series shows `alert` firing in the report's
/// window, at a 1 s resolution.
async fn prometheus_firing_since(alert: &str, report: &Value) -> Option<i64> {
    let start = report["started_at_ms"].as_f64().unwrap() / 1000.0;
    let end = report["ended_at_ms"].as_f64().unwrap() / 1000.0;
    let series = range(
        &format!(r#"ALERTS{{alertname="{alert}", alertstate="firing"}}"#),
        start,
        end,
        1.0,
    )
    .await
    .unwrap();
    series
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v[0].as_f64())
        .map(|t| (t * 1000.0) as i64)
        .min()
}

/// Prometheus' evaluation interval, in ms.
async fn evaluation_interval_ms() -> i64 {
    let config = get(&format!("{PROMETHEUS}/api/v1/status/config"))
        .await
        .expect("prometheus config");
    let yaml = config["data"]["yaml"].as_str().unwrap();
    let line = yaml
        .lines()
        .find(|l| l.trim_start().starts_with("evaluation_interval:"))
        .expect("evaluation_interval in the loaded config");
    let value = line.split(':').nth(1).unwrap().trim();
    humantime::parse_duration(value).unwrap().as_millis() as i64
}

/// Checks the report's alert scoring: every expected alert fired after the fault and
/// resolved, and each fired at the time Prometheus' own `ALERTS` series says.
async fn check_alerting(report: &Value) -> Vec<String> {
    let scenario = report["scenario"].as_str().unwrap();
    let alerting = &report["alerting"];
    let expected: Vec<&str> = alerting["expected"]
        .as_array()
        .expect("alerting.expected")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(!expected.is_empty(), "{scenario}: no expected alerts");
    assert_eq!(
        alerting["verdict"], "PASS",
        "{scenario}: alerting {}",
        alerting["details"]
    );
    let eval = evaluation_interval_ms().await;
    let injected = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "injected")
        .and_then(|p| p["at_ms"].as_i64())
        .unwrap();
    let mut lines = Vec::new();
    for name in expected {
        let outcome = alerting["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{scenario}: {name} not in {}", alerting["alerts"]));
        let fired = outcome["fired_at_ms"].as_i64().unwrap();
        let resolved = outcome["resolved_at_ms"]
            .as_i64()
            .unwrap_or_else(|| panic!("{scenario}: {name} never resolved"));
        let detect = outcome["detect_s"].as_f64().unwrap();
        assert!(
            fired >= injected,
            "{scenario}: {name} fired before the fault"
        );
        assert_eq!(detect, (fired - injected) as f64 / 1000.0);
        assert!(resolved > fired);
        // Both transitions are in the report's transition list with the same times.
        for (status, at) in [("firing", fired), ("resolved", resolved)] {
            assert!(
                report["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["name"] == name
                        && e["status"] == status
                        && e["at_ms"].as_i64() == Some(at)),
                "{scenario}: no {status} transition of {name} at {at} in {}",
                report["alerts"]
            );
        }
        // Independent evidence: Prometheus' ALERTS series for the same alert.
        let seen = prometheus_firing_since(name, report)
            .await
            .unwrap_or_else(|| panic!("{scenario}: Prometheus never showed {name} firing"));
        assert!(
            (seen - fired).abs() <= 2 * eval + 1000,
            "{scenario}: {name} fired at {fired} per the report, Prometheus' ALERTS from {seen}"
        );
        lines.push(format!(
            "{scenario}: {name} detect {detect:.1} s, resolve {} (Prometheus firing from {:+.1} s of the report's time)",
            outcome["resolve_s"]
                .as_f64()
                .map_or("n/a".to_string(), |s| format!("{s:.1} s")),
            (seen - fired) as f64 / 1000.0
        ));
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn drills_are_paged_and_unpaged_and_every_panel_has_data() {
    require_monitoring().await;
    eventually(
        "the stack's firedrill ready",
        Duration::from_secs(120),
        || async {
            let ready = http()
                .get(format!("{FIREDRILL}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ready.then_some(())
        },
    )
    .await;
    let window_start = chrono_now_s();
    let mut summary = Vec::new();
    for scenario in ["taskmanager", "kafka"] {
        let report = drill(scenario).await;
        summary.extend(check_alerting(&report).await);
    }
    let window_end = chrono_now_s();
    for line in &summary {
        eprintln!("{line}");
    }

    // Every expression a user sees, over the drills' window.
    let expressions = support::dashboards::expressions(&support::repo());
    assert!(
        expressions.len() > 30,
        "only {} expressions",
        expressions.len()
    );
    let mut empty = Vec::new();
    let mut checked = 0;
    for (place, expr) in &expressions {
        if place.contains(": alert ") {
            continue; // an alerting rule returns data only while it fires
        }
        if expr.contains("firedrill_spark_") {
            continue; // the Spark engine's row: tests/spark.rs checks it on Spark
        }
        checked += 1;
        match range(expr, window_start, window_end, 5.0).await {
            Ok(series) if !series.is_empty() => {}
            Ok(_) => empty.push(format!("{place}: {expr}")),
            Err(e) => empty.push(format!("{place}: {expr}: query failed: {e}")),
        }
    }
    eprintln!("{checked} panel, annotation and recording-rule expressions checked");
    assert!(
        empty.is_empty(),
        "{} expressions returned no data during the drills:\n{}",
        empty.len(),
        empty.join("\n")
    );
    // And right now, after the drills, the healthy pipeline fires nothing.
    let firing = instant(r#"ALERTS{alertstate="firing"}"#, chrono_now_s()).await;
    assert!(
        firing.is_empty(),
        "alerts still firing after both drills recovered: {firing:?}"
    );
}

fn chrono_now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}
