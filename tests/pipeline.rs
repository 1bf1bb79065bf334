//! The local pipeline itself, without firedrill in the loop: orders produced with plain
//! rdkafka go through the real Flink SQL job (`sql/orders.sql`) and come out right.
//! Needs the local stack (`compose/local/stack up`).

mod support;

use std::time::Duration;

use support::{eventually, pipeline, require_stack, FLINK_REST};

async fn wait_for_running_job() {
    let http = reqwest::Client::new();
    eventually(
        "flink job firedrill-orders RUNNING",
        Duration::from_secs(90),
        || async {
            let jobs = support::json(http.get(format!("{FLINK_REST}/jobs/overview"))).await?;
            jobs["jobs"]
                .as_array()?
                .iter()
                .any(|j| j["name"] == "firedrill-orders" && j["state"] == "RUNNING")
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_order_arrives_computed_and_windows_add_up() {
    require_stack();
    wait_for_running_job().await;
    pipeline::orders_come_out_computed_and_windows_add_up().await;
}
