//! The daemon as a user runs it: config validation from the CLI, and the HTTP surface
//! (`/metrics`, `/healthz`, `/readyz`, 404, 405, bad bodies) of `firedrill serve`. Upstreams
//! point at closed ports, so these tests need no stack and show that a dead upstream never
//! blocks a scrape.

mod support;

use std::{process::Command, time::Duration};

use support::{eventually, repo, Daemon};

/// Kafka and Flink on ports nothing listens on.
const DEAD_UPSTREAMS: &str = r#"
[kafka]
bootstrap_servers = "127.0.0.1:1"
request_timeout = "500ms"
poll_interval = "500ms"
[flink]
rest_url = "http://127.0.0.1:1"
poll_interval = "500ms"
"#;

fn firedrill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_the_reference_config() {
    let path = repo().join("config/firedrill.toml");
    let out = firedrill(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_bad_config_fails_with_the_key_in_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[flink]\nrest_url = \"::nope\"\n",
            "flink.rest_url: not a URL",
        ),
        ("[generator]\nrate = -5\n", "generator.rate: "),
        (
            "[kafka]\npoll_interval = \"soon\"\n",
            "kafka.poll_interval: not a duration",
        ),
        ("[http]\nlisten = \"localhost\"\n", "http.listen: "),
        (
            "[audit]\nsla = \"5m\"\n",
            "audit.lost_after: must be at least audit.sla",
        ),
        (
            "[kafka]\norders_topic = \"a b\"\n",
            "kafka.orders_topic: not a Kafka topic name",
        ),
        ("[generatr]\nrate = 1\n", "generatr: unknown field"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        for command in ["check-config", "serve"] {
            let args: Vec<&str> = match command {
                "serve" => vec!["serve", "--config", path.to_str().unwrap()],
                _ => vec!["check-config", path.to_str().unwrap()],
            };
            let out = firedrill(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{command} {text:?}: {stderr}");
            assert!(
                stderr.contains(expected),
                "{command} {text:?}: expected {expected:?} in {stderr:?}"
            );
        }
    }
}

#[test]
fn an_environment_override_is_validated_like_the_file() {
    let path = repo().join("config/firedrill.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_firedrill"))
        .args(["check-config", path.to_str().unwrap()])
        .env("FIREDRILL_GENERATOR__RATE", "fast")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("generator.rate: "));
}

#[tokio::test]
async fn serve_answers_metrics_health_404_and_405() {
    let mut daemon = Daemon::start(DEAD_UPSTREAMS);

    let metrics = daemon.get("/metrics").await;
    assert_eq!(metrics.status(), 200);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let body = metrics.text().await.unwrap();
    assert!(
        body.contains("# TYPE firedrill_generator_orders_total counter"),
        "{body}"
    );

    let health = daemon.get("/healthz").await;
    assert_eq!(health.status(), 200);

    let missing = daemon.get("/nope").await;
    assert_eq!(missing.status(), 404);
    let error: serde_json::Value = missing.json().await.unwrap();
    assert!(error["error"].as_str().unwrap().contains("/nope"));

    let wrong = daemon
        .http
        .post(daemon.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 405);
    assert_eq!(wrong.headers()["allow"], "GET");

    // Neither upstream has answered: not ready, and it says which.
    let ready = daemon.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["waiting_for"], serde_json::json!(["kafka", "flink"]));

    let status = daemon.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
}

#[tokio::test]
async fn a_dead_upstream_is_unknown_not_zero_and_never_blocks_a_scrape() {
    let daemon = Daemon::start(DEAD_UPSTREAMS);
    let scrape = eventually(
        "both upstreams reported down",
        Duration::from_secs(15),
        || async {
            let s = daemon.scrape().await;
            let kafka = s
                .metric("firedrill_upstream_up")
                .label("upstream", "kafka")
                .value();
            let flink = s
                .metric("firedrill_upstream_up")
                .label("upstream", "flink")
                .value();
            (kafka == Some(0.0) && flink == Some(0.0)).then_some(s)
        },
    )
    .await;
    assert!(scrape
        .metric("firedrill_kafka_consumer_lag_messages")
        .values()
        .is_empty());
    assert!(scrape
        .metric("firedrill_flink_job_state")
        .values()
        .is_empty());
    // Scrapes are served from memory while the upstreams time out in the background.
    for _ in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(daemon.get("/metrics").await.status(), 200);
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "scrape took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn the_generator_rate_is_validated_and_applied() {
    let daemon = Daemon::start(DEAD_UPSTREAMS);
    let put = |body: &'static str| {
        daemon
            .http
            .put(daemon.url("/generator/rate"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for (body, expected) in [
        ("{", "invalid JSON body"),
        (r#"{"orders_per_second": -1}"#, "invalid value"),
        (r#"{"orders_per_second": "fast"}"#, "invalid type"),
        (r#"{"rate": 5}"#, "unknown field `rate`"),
        (
            r#"{"orders_per_second": 100001}"#,
            "above the maximum of 100000",
        ),
    ] {
        let response = put(body).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{body}: {error}"
        );
    }
    let ok = put(r#"{"orders_per_second": 42}"#).await.unwrap();
    assert_eq!(ok.status(), 200);
    let now: serde_json::Value = daemon.get("/generator").await.json().await.unwrap();
    assert_eq!(now["orders_per_second"], 42);
    let scrape = daemon.scrape().await;
    eventually("target rate exported", Duration::from_secs(5), || async {
        let s = daemon.scrape().await;
        (s.metric("firedrill_generator_target_rate").value() == Some(42.0)).then_some(())
    })
    .await;
    drop(scrape);
}

#[tokio::test]
async fn every_exported_metric_is_documented() {
    let daemon = Daemon::start(DEAD_UPSTREAMS);
    let docs = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    // Wait until the pollers have set their families at least once.
    let scrape = eventually(
        "upstream gauges exported",
        Duration::from_secs(10),
        || async {
            let s = daemon.scrape().await;
            (!s.metric("firedrill_upstream_up").values().is_empty()).then_some(s)
        },
    )
    .await;
    let undocumented: Vec<&str> = scrape
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|name| !docs.contains(&format!("`{name}`")))
        .collect();
    assert!(
        undocumented.is_empty(),
        "not in docs/metrics.md: {undocumented:?}"
    );
}

/// An Alertmanager notification with one alert.
fn notification(name: &str, status: &str, ends: Option<&str>) -> String {
    let ends = ends.map_or(String::new(), |e| format!(r#", "endsAt": "{e}""#));
    format!(
        r#"{{"version": "4", "status": "{status}", "receiver": "firedrill", "groupKey": "{{}}",
            "truncatedAlerts": 0, "alerts": [{{"status": "{status}",
            "labels": {{"alertname": "{name}", "severity": "critical"}}, "annotations": {{}},
            "startsAt": "2026-12-02T15:40:01.5Z"{ends}, "fingerprint": "fp-{name}",
            "generatorURL": "http://127.0.0.1:9090/graph"}}]}}"#
    )
}

async fn post(daemon: &Daemon, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
    let mut request = daemon.http.post(daemon.url(path)).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_alertmanager_webhook_records_transitions_and_refuses_bad_bodies() {
    // One mutation a minute: the webhook must not be throttled by it.
    let daemon = Daemon::start(&format!(
        "{DEAD_UPSTREAMS}\n[http]\nmutations_per_minute = 1\n"
    ));
    let firing = notification("KafkaUnavailable", "firing", None);
    for _ in 0..5 {
        // Alertmanager repeats a firing group every group_interval.
        let (status, body) = post(&daemon, "/alerts/webhook", firing.clone().into(), None).await;
        assert_eq!(status, 200, "{body}");
    }
    let firing_now: serde_json::Value = daemon.get("/alerts").await.json().await.unwrap();
    assert_eq!(firing_now.as_array().unwrap().len(), 1, "{firing_now}");
    assert_eq!(firing_now[0]["name"], "KafkaUnavailable");
    assert_eq!(firing_now[0]["starts_at_ms"], 1_796_226_001_500_i64);
    let s = daemon.scrape().await;
    assert_eq!(
        s.metric("firedrill_alerts_firing")
            .label("alertname", "KafkaUnavailable")
            .label("severity", "critical")
            .value(),
        Some(1.0)
    );
    assert_eq!(
        s.metric("firedrill_alert_notifications_total")
            .label("status", "firing")
            .value(),
        Some(1.0),
        "repeats are not new transitions"
    );

    let resolved = notification("KafkaUnavailable", "resolved", Some("2026-12-02T15:40:31Z"));
    let (status, body) = post(&daemon, "/alerts/webhook", resolved.into(), None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"new":1,"repeated":0}"#));
    let s = daemon.scrape().await;
    assert!(s.metric("firedrill_alerts_firing").values().is_empty());

    // Bad bodies: 4xx naming the problem, nothing recorded, the daemon still serving.
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"not json".to_vec(),
            400,
            "not an Alertmanager webhook payload",
        ),
        (
            br#"{"version": "3", "alerts": []}"#.to_vec(),
            400,
            "version: \"3\" is not supported",
        ),
        (
            notification("A", "firing", None)
                .replace("2026-12-02T15:40:01.5Z", "soon")
                .into_bytes(),
            400,
            "alerts[0].startsAt: \"soon\" is not an RFC 3339 time",
        ),
        // Just over the 4 MiB limit, so the client has sent it all when the 413 comes.
        (vec![b' '; 4 * 1024 * 1024 + 16], 413, "body larger than"),
        (
            vec![0xff, 0xfe, 0x00],
            400,
            "not an Alertmanager webhook payload",
        ),
    ];
    for (body, expected_status, expected) in cases {
        let (status, text) = post(&daemon, "/alerts/webhook", body, None).await;
        assert_eq!(status, expected_status, "{text}");
        let error: serde_json::Value = serde_json::from_str(&text).unwrap();
        let error = error["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{error:?} should contain {expected:?}"
        );
    }
    let firing_now: serde_json::Value = daemon.get("/alerts").await.json().await.unwrap();
    assert_eq!(firing_now, serde_json::json!([]));
    let s = daemon.scrape().await;
    assert_eq!(
        s.metric("firedrill_alert_webhook_requests_total")
            .label("result", "rejected")
            .value(),
        Some(5.0)
    );
    assert_eq!(daemon.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn with_a_token_the_webhook_needs_it() {
    let token = "webhook-token-0123456789";
    let daemon = Daemon::start_with_env(DEAD_UPSTREAMS, &[("FIREDRILL_HTTP__TOKEN", token)]);
    let firing = notification("FiredrillDown", "firing", None);
    let (status, _) = post(&daemon, "/alerts/webhook", firing.clone().into(), None).await;
    assert_eq!(status, 401);
    let (status, _) = post(
        &daemon,
        "/alerts/webhook",
        firing.clone().into(),
        Some("wrong-token-000000000"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = post(&daemon, "/alerts/webhook", firing.into(), Some(token)).await;
    assert_eq!(status, 200, "{body}");
}
