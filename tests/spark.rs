//! The Spark engine on the local stack (`compose/local/stack up --engine spark`): the pipeline
//! check Flink passes (`tests/pipeline.rs`), run on Spark's job (`sql/orders_spark.py`), and
//! firedrill monitoring Spark, held to what Spark itself says: the master's `/json/` and the
//! query progress events the job appends (read here by the test's own parser).
//!
//! Ignored by a plain `cargo test`, which runs against the Flink stack: `scripts/test` switches
//! the stack to Spark and runs these with `--ignored`.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{eventually, pipeline, repo, Daemon, BROKER};

const MASTER: &str = "http://127.0.0.1:8080";
const NEEDS_SPARK: &str = "needs the Spark engine: compose/local/stack up --engine spark";

async fn master() -> Option<Value> {
    reqwest::get(format!("{MASTER}/json/"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

/// The id of the pipeline's application once it runs with both workers alive.
async fn running_app() -> String {
    eventually(
        "spark application firedrill-orders RUNNING on 2 alive workers",
        Duration::from_secs(120),
        || async {
            let m = master().await?;
            let alive = m["workers"]
                .as_array()?
                .iter()
                .filter(|w| w["state"] == "ALIVE")
                .count();
            let app = m["activeapps"]
                .as_array()?
                .iter()
                .find(|a| a["name"] == "firedrill-orders" && a["state"] == "RUNNING")?;
            (alive == 2).then(|| app["id"].as_str().map(str::to_owned))?
        },
    )
    .await
}

/// Spark's own last progress event of `query`: (batch id, commit time in unix ms).
fn last_progress(query: &str) -> Option<(u64, i64)> {
    let text = std::fs::read_to_string(repo().join(".stack/data/spark/progress.jsonl")).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|p| p["name"] == query)
        .map(|p| {
            let started = chrono::DateTime::parse_from_rfc3339(p["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let took = p["durationMs"]["triggerExecution"].as_i64().unwrap_or(0);
            (p["batchId"].as_u64().unwrap(), started + took)
        })
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Spark engine: compose/local/stack up --engine spark"]
async fn spark_computes_every_order_and_its_windows_add_up() {
    assert!(
        std::net::TcpStream::connect(BROKER).is_ok(),
        "no broker on {BROKER}: {NEEDS_SPARK}"
    );
    running_app().await;
    pipeline::orders_come_out_computed_and_windows_add_up().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Spark engine: compose/local/stack up --engine spark"]
async fn firedrill_monitors_spark_as_spark_reports_itself() {
    let app = running_app().await;
    let daemon = Daemon::start_with_env(
        "",
        &[
            ("FIREDRILL_ENGINE__KIND", "spark"),
            (
                "FIREDRILL_SPARK__PROGRESS_FILE",
                repo()
                    .join(".stack/data/spark/progress.jsonl")
                    .to_str()
                    .unwrap(),
            ),
            (
                "FIREDRILL_KAFKA__CONSUMER_GROUPS",
                r#"["spark-order-processor"]"#,
            ),
        ],
    );
    eventually(
        "/readyz with Kafka and Spark",
        Duration::from_secs(60),
        || async { (daemon.get("/readyz").await.status() == 200).then_some(()) },
    )
    .await;

    // Batches committed since the application started, and the latest one: as Spark's own
    // progress events say (the generator's orders keep the queries busy).
    let first = eventually(
        "two scrapes with Spark batches",
        Duration::from_secs(60),
        || async {
            let m = daemon.scrape().await;
            let batches = m.metric("firedrill_spark_batches").value()?;
            (batches > 0.0).then_some(batches)
        },
    )
    .await;
    let m = eventually("more batches", Duration::from_secs(30), || async {
        let m = daemon.scrape().await;
        (m.metric("firedrill_spark_batches").value()? > first).then_some(m)
    })
    .await;
    assert_eq!(
        m.metric("firedrill_upstream_up")
            .label("upstream", "spark")
            .value(),
        Some(1.0)
    );
    assert_eq!(
        m.metric("firedrill_spark_workers")
            .label("state", "alive")
            .value(),
        Some(2.0)
    );
    assert_eq!(
        m.metric("firedrill_spark_app_info")
            .label("app_id", &app)
            .value(),
        Some(1.0)
    );
    assert_eq!(m.metric("firedrill_spark_app_running").value(), Some(1.0));
    assert_eq!(
        m.metric("firedrill_spark_executors")
            .label("state", "active")
            .value(),
        Some(2.0)
    );
    for query in ["processed_orders", "order_stats"] {
        let age = m
            .metric("firedrill_spark_last_batch_age_seconds")
            .label("query", query)
            .value()
            .unwrap_or_else(|| panic!("no batch age of {query}"));
        let (_, committed) = last_progress(query).expect("Spark's progress events");
        let spark_age = (chrono::Utc::now().timestamp_millis() - committed) as f64 / 1000.0;
        // The scrape came first and the monitor polls every second.
        assert!(
            age <= spark_age + 0.5 && age >= spark_age - 3.0,
            "{query}: firedrill says {age} s since the last batch, Spark's events {spark_age} s"
        );
    }
    // Spark's lag, seen the way Flink's is: the adapter commits each batch to the group.
    eventually("the spark group's lag", Duration::from_secs(30), || async {
        let m = daemon.scrape().await;
        let lag = m
            .metric("firedrill_kafka_consumer_lag_messages")
            .label("group", "spark-order-processor")
            .values();
        (!lag.is_empty() && lag.iter().all(|l| *l < 1_000.0)).then_some(())
    })
    .await;
}
