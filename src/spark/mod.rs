//! Spark Structured Streaming, the second engine: its monitoring API client and the monitor.
//!
//! - `api`: typed answers of the standalone master's JSON, the driver's REST API, and the
//!   job's query progress events (Spark has no REST endpoint for Structured Streaming
//!   progress, so `sql/orders_spark.py` appends each event, in Spark's own JSON, to a file);
//! - `monitor`: polls them, exports the query's health, and publishes the same status the
//!   Flink monitor does, so drills run unchanged on either engine.

pub mod api;
pub mod monitor;

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::config_value::HttpUrl;

/// [`kafka_io`] of Spark's official connector (`spark-sql-kafka-0-10`).
pub const KAFKA_CONNECTOR: &str = "Kafka connector";
/// [`kafka_io`] of `sql/spark_kafka_adapter.py`, the local stack's Python data source.
pub const LOCAL_ADAPTER: &str = "local Kafka adapter";

/// How the job reads Kafka, as Spark's progress describes the query's source: the official
/// connector's source is `KafkaV2[Subscribe[orders]]` (`KafkaSource[...]` in its v1 form),
/// a Python data source's is its Python stream. `None` for any other source.
pub fn kafka_io(source: &str) -> Option<&'static str> {
    if source.starts_with("Kafka") {
        Some(KAFKA_CONNECTOR)
    } else if source.contains("Python") {
        Some(LOCAL_ADAPTER)
    } else {
        None
    }
}

/// `[spark]`: where the master, the driver and the query's progress events are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The standalone master's web UI (its `/json/` lists workers and applications).
    pub master_url: HttpUrl,
    /// The driver's web UI (its `/api/v1` REST API lists the application's executors).
    pub driver_url: HttpUrl,
    /// `spark.app.name` of the pipeline's application.
    pub app_name: String,
    /// The file the job appends each query progress event to, one JSON object a line.
    pub progress_file: PathBuf,
    /// How often the monitor polls.
    #[serde(with = "crate::config_value::duration")]
    pub poll_interval: Duration,
    /// Deadline of one HTTP request.
    #[serde(with = "crate::config_value::duration")]
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            master_url: HttpUrl::parse("http://127.0.0.1:8080").expect("valid default"),
            driver_url: HttpUrl::parse("http://127.0.0.1:4040").expect("valid default"),
            app_name: "firedrill-orders".to_string(),
            progress_file: PathBuf::from(".stack/data/spark/progress.jsonl"),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kafka_io_is_told_by_the_source_spark_describes() {
        assert_eq!(
            kafka_io("KafkaV2[Subscribe[orders]]"),
            Some(KAFKA_CONNECTOR)
        );
        assert_eq!(
            kafka_io("KafkaSource[Subscribe[orders]]"),
            Some(KAFKA_CONNECTOR)
        );
        assert_eq!(
            kafka_io(
                "org.apache.spark.sql.execution.datasources.v2.python.PythonMicroBatchStream@651e7f28"
            ),
            Some(LOCAL_ADAPTER)
        );
        assert_eq!(kafka_io("RateStreamV2[rowsPerSecond=1]"), None);
        assert_eq!(kafka_io(""), None);
    }
}
