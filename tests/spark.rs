//! The Spark engine on the local stack (`compose/local/stack up --engine spark`): the pipeline
//! check Flink passes (`tests/pipeline.rs`), run on Spark's job (`sql/orders_spark.py`), and
//! firedrill monitoring Spark, held to what Spark itself says: the master's `/json/` and the
//! query progress events the job appends (read here by the test's own parser).
//!
//! Ignored by a plain `cargo test`, which runs against the Flink stack: `scripts/test` switches
//! the stack to Spark and runs these with `--ignored`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::{
    drill::{assert_common, assert_output_evidence, config, drill, phase, run_id},
    eventually, kafka, pipeline, repo, Daemon, BROKER,
};

const MASTER: &str = "http://127.0.0.1:8080";
const NEEDS_SPARK: &str = "needs the Spark engine: compose/local/stack up --engine spark";

async fn master() -> Option<Value> {
    support::json(reqwest::Client::new().get(format!("{MASTER}/json/"))).await
}

/// The id of the pipeline's application once it runs with both workers alive.
async fn running_app() -> String {
    eventually(
        "spark application firedrill-orders RUNNING on 2 alive workers",
        Duration::from_secs(120),
        || async { support::spark::running_app(&master().await?) },
    )
    .await
}

/// One progress event, as Spark wrote it.
struct Batch {
    query: String,
    run_id: String,
    batch_id: u64,
    rows: u64,
    started_ms: i64,
    committed_ms: i64,
}

/// Spark's own progress events, oldest first.
fn progress() -> Vec<Batch> {
    let path = repo().join(".stack/data/spark/progress.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|p| {
            let started = chrono::DateTime::parse_from_rfc3339(p["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            let took = p["durationMs"]["triggerExecution"].as_i64().unwrap_or(0);
            Batch {
                query: p["name"].as_str().unwrap_or_default().to_owned(),
                run_id: p["runId"].as_str().unwrap().to_owned(),
                batch_id: p["batchId"].as_u64().unwrap(),
                rows: p["numInputRows"].as_u64().unwrap_or(0),
                started_ms: started,
                committed_ms: started + took,
            }
        })
        .collect()
}

/// Whether `age_s`, a batch age that firedrill's monitor (polling once a second) exported and
/// a scrape at `scraped_at` read, is the age of one of Spark's `commits` at a poll in the
/// 1.5 s before the scrape: poll = commit + age, with no later commit known by that poll (an
/// event reaches the progress file up to a second after its commit).
fn age_matches(age_s: f64, commits: &[i64], scraped_at: i64) -> bool {
    let age = (age_s * 1000.0).round() as i64;
    commits.iter().any(|&c| {
        let poll = c + age;
        (scraped_at - 1_500..=scraped_at + 100).contains(&poll)
            && !commits
                .iter()
                .any(|&later| later > c && later + 1_000 <= poll)
    })
}

/// A daemon drilling Spark: config/spark.toml's engine, group, fault targets and output
/// thresholds, with the short drill phases of the Flink drill tests.
fn spark_daemon(state: &std::path::Path) -> Daemon {
    let spark = std::fs::read_to_string(repo().join("config/spark.toml")).unwrap();
    let targets = &spark[spark.find("[faults.targets.").unwrap()..spark.find("[drills]").unwrap()];
    let table: toml::Table = spark.parse().unwrap();
    let drills = |key: &str| table["drills"][key].as_str().unwrap().to_owned();
    let (gap, late, window) = (
        drills("output_gap"),
        drills("caught_up_latency"),
        drills("rate_window"),
    );
    Daemon::start_with_env(
        &config(state, targets),
        &[
            ("FIREDRILL_ENGINE__KIND", "spark"),
            (
                "FIREDRILL_KAFKA__CONSUMER_GROUPS",
                r#"["spark-order-processor"]"#,
            ),
            ("FIREDRILL_DRILLS__RESUBMIT", "[]"),
            ("FIREDRILL_DRILLS__OUTPUT_GAP", &gap),
            ("FIREDRILL_DRILLS__CAUGHT_UP_LATENCY", &late),
            ("FIREDRILL_DRILLS__RATE_WINDOW", &window),
        ],
    )
}

async fn processing(daemon: &Daemon) {
    eventually(
        "spark application running, orders processed",
        Duration::from_secs(120),
        || async {
            let s = daemon.scrape().await;
            let running = s.metric("firedrill_spark_app_running").value() == Some(1.0);
            let processed = s
                .metric("firedrill_audit_records_total")
                .label("verdict", "processed")
                .value()
                .unwrap_or(0.0);
            (running && processed > 50.0).then_some(())
        },
    )
    .await;
}

/// The report's duplicates against an independent count of this run's ids in the output.
fn assert_duplicates(reader: &rdkafka::consumer::BaseConsumer, run: &str, report: &Value) {
    let (duplicates, processed) = (
        report["orders"]["duplicates"].as_u64().unwrap(),
        report["orders"]["processed"].as_u64().unwrap(),
    );
    let counts = kafka::count_ids(reader, &format!("{run}-"), Duration::from_secs(20), |c| {
        kafka::duplicates(c) >= duplicates && c.len() as u64 >= processed
    });
    assert_eq!(
        duplicates,
        kafka::duplicates(&counts),
        "report duplicates vs independent count"
    );
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
    // On the stack's port, so that Prometheus scrapes it and the dashboards can be checked.
    let daemon = Daemon::start_with_env(
        "",
        &[
            ("FIREDRILL_HTTP__LISTEN", "127.0.0.1:9400"),
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
    // The order_stats query starts once processed_orders has run a batch.
    let (m, scraped_at) = eventually(
        "more batches, of both queries",
        Duration::from_secs(120),
        || async {
            let m = daemon.scrape().await;
            let scraped_at = chrono::Utc::now().timestamp_millis();
            let both = ["processed_orders", "order_stats"].iter().all(|q| {
                m.metric("firedrill_spark_last_batch_age_seconds")
                    .label("query", q)
                    .value()
                    .is_some()
            });
            (both && m.metric("firedrill_spark_batches").value()? > first)
                .then_some((m, scraped_at))
        },
    )
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
    // The engine-neutral gauges, in Spark's terms: the application RUNNING on both workers,
    // as the master says (`running_app`), and the progress it committed.
    let engine = |name| m.metric(name).label("engine", "spark").value();
    assert_eq!(engine("firedrill_engine_job_running"), Some(1.0));
    assert_eq!(engine("firedrill_engine_workers"), Some(2.0));
    assert_eq!(
        engine("firedrill_engine_checkpoints_completed"),
        m.metric("firedrill_spark_batches").value()
    );
    assert_eq!(
        m.metric("firedrill_spark_executors")
            .label("state", "active")
            .value(),
        Some(2.0)
    );
    // The batch ages are of Spark's own commits, as a poll in the second before the scrape saw
    // them (a batch committed after the scrape is no reason to disagree).
    let commits = |queries: &[&str]| -> Vec<i64> {
        progress()
            .iter()
            .filter(|b| queries.contains(&b.query.as_str()))
            .map(|b| b.committed_ms)
            .collect()
    };
    for query in ["processed_orders", "order_stats"] {
        let age = m
            .metric("firedrill_spark_last_batch_age_seconds")
            .label("query", query)
            .value()
            .unwrap_or_else(|| panic!("no batch age of {query}"));
        let commits = commits(&[query]);
        assert!(
            age_matches(age, &commits, scraped_at),
            "{query}: firedrill says {age} s since the last batch at {scraped_at}; Spark's last \
             commits {:?}",
            &commits[commits.len().saturating_sub(3)..]
        );
    }
    // The job's checkpoint age is its newest batch's, of either query.
    let age = engine("firedrill_engine_checkpoint_age_seconds").unwrap();
    let both = commits(&["processed_orders", "order_stats"]);
    assert!(
        age_matches(age, &both, scraped_at),
        "checkpoint age {age} s at {scraped_at}; Spark's last commits {:?}",
        &both[both.len().saturating_sub(3)..]
    );
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

    // Every dashboard expression of the Spark engine, and of either engine, has data, as
    // Prometheus scraped it.
    let spark: Vec<(String, String)> = support::dashboards::expressions(&repo())
        .into_iter()
        // An alerting rule returns data only while it fires.
        .filter(|(place, expr)| {
            (expr.contains("firedrill_spark_") || expr.contains("firedrill_engine_"))
                && !place.contains(": alert ")
        })
        .collect();
    assert!(spark.len() >= 9, "only {} Spark expressions", spark.len());
    for (place, expr) in &spark {
        eventually(
            &format!("data for {place}: {expr}"),
            Duration::from_secs(30),
            || async {
                let answer = support::json(
                    reqwest::Client::new()
                        .get("http://127.0.0.1:9090/api/v1/query")
                        .query(&[("query", expr.as_str())]),
                )
                .await?;
                (!answer["data"]["result"].as_array()?.is_empty()).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Spark engine: compose/local/stack up --engine spark"]
async fn a_driver_drill_resumes_from_the_checkpoint_as_spark_and_the_output_say() {
    let app_before = running_app().await;
    let state = tempfile::tempdir().unwrap();
    let reader = kafka::reader_at_end("processed_orders");
    let mut tail = kafka::tail("processed_orders");
    let daemon = spark_daemon(state.path());
    processing(&daemon).await;
    let run = run_id(&daemon).await;
    let report = drill(&daemon, json!({"scenario": "driver"})).await;
    assert_common(&report);
    assert_eq!(
        (report["scenario"].as_str(), report["engine"].as_str()),
        (Some("driver"), Some("spark"))
    );
    let times = kafka::output_times(&mut tail, Duration::from_secs(30));
    let ev = assert_output_evidence(&report, &times);

    // A new application, as the master lists it, and the one the report names.
    let app_after = running_app().await;
    assert_ne!(app_before, app_after);
    assert_eq!(
        report["flink"]["job_id_before"].as_str(),
        Some(app_before.as_str())
    );
    assert_eq!(
        report["flink"]["job_id_after"].as_str(),
        Some(app_after.as_str())
    );
    // Spark's own account of the restart, from its progress events.
    let injected = phase(&report, "injected").unwrap();
    let batches: Vec<Batch> = progress()
        .into_iter()
        .filter(|b| b.query == "processed_orders")
        .collect();
    let last_before = batches
        .iter()
        .rev()
        .find(|b| b.committed_ms < injected)
        .expect("a batch before the kill");
    let restarted: Vec<&Batch> = batches
        .iter()
        .filter(|b| b.run_id != last_before.run_id && b.started_ms > injected)
        .collect();
    let first = restarted.first().expect("batches of the restarted query");
    // From the checkpoint: the restarted query goes on with the next batch id (the one the
    // kill interrupted is run again), not from 0.
    assert_eq!(
        first.batch_id,
        last_before.batch_id + 1,
        "resumed from the checkpoint"
    );
    // Output resumed with a batch of the restarted query: a batch stamps its records with its
    // own trigger time (current_timestamp()), so the gap ends at a batch's start. (The rerun
    // batch keeps the time it was first planned at, before the kill.)
    let (_, resumed) = *ev
        .gaps
        .last()
        .expect("output stalled while the driver was down");
    assert!(
        restarted
            .iter()
            .any(|b| b.rows > 0 && (resumed - b.started_ms).abs() <= 1_000),
        "output resumed at {resumed}, and no batch of the restarted query started then: {:?}",
        restarted
            .iter()
            .map(|b| (b.batch_id, b.started_ms, b.rows))
            .collect::<Vec<_>>()
    );
    assert_duplicates(&reader, &run, &report);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Spark engine: compose/local/stack up --engine spark"]
async fn an_executor_drill_agrees_with_the_output_and_the_driver() {
    let app = running_app().await;
    let state = tempfile::tempdir().unwrap();
    let reader = kafka::reader_at_end("processed_orders");
    let mut tail = kafka::tail("processed_orders");
    let daemon = spark_daemon(state.path());
    processing(&daemon).await;
    let run = run_id(&daemon).await;
    let lost_before = lost_executors(&app).await;
    let report = drill(&daemon, json!({"scenario": "executor"})).await;
    assert_common(&report);
    assert_eq!(report["engine"], "spark");
    // The stack runs the job with KAFKA_IO=adapter, and Spark's progress names its source.
    assert_eq!(report["kafka_io"], "local Kafka adapter");
    let times = kafka::output_times(&mut tail, Duration::from_secs(30));
    assert_output_evidence(&report, &times);
    // The same application carried on; the driver counts the executor it lost, and so does
    // the report.
    assert_eq!(running_app().await, app);
    let lost = lost_executors(&app).await - lost_before;
    assert_eq!(lost, 1, "the driver lists one more lost executor");
    assert_eq!(report["flink"]["restarts"].as_u64(), Some(lost));
    assert_duplicates(&reader, &run, &report);
}

/// Executors the driver lists as no longer active.
async fn lost_executors(app: &str) -> u64 {
    let executors: Vec<Value> = reqwest::get(format!(
        "http://127.0.0.1:4040/api/v1/applications/{app}/allexecutors"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    executors
        .iter()
        .filter(|e| e["id"] != "driver" && e["isActive"] == false)
        .count() as u64
}
