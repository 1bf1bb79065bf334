//! Flink: the REST API client and the job/checkpoint monitor.
//!
//! - `rest`: typed responses of the endpoints firedrill reads, and a small reqwest client;
//! - `monitor`: polls in the background, exports job health and checkpoint age, and publishes
//!   a [`monitor::FlinkStatus`] for the drill runner.
//!
//! Submitting the job again after a JobManager loss belongs to `drills`, not here.

pub mod monitor;
pub mod rest;

use std::time::Duration;

use serde::Deserialize;

use crate::config_value::HttpUrl;

/// `[flink]`: where the JobManager's REST API is and which job to watch.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Base URL of the JobManager REST API.
    pub rest_url: HttpUrl,
    /// Name of the pipeline's job (`pipeline.name` in `sql/orders.sql`). Among jobs of this
    /// name the newest non-terminal one is watched.
    pub job_name: String,
    /// How often the monitor polls.
    #[serde(with = "crate::config_value::duration")]
    pub poll_interval: Duration,
    /// Deadline of one REST request.
    #[serde(with = "crate::config_value::duration")]
    pub request_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rest_url: HttpUrl::parse("http://127.0.0.1:8081").expect("valid default"),
            job_name: "firedrill-orders".to_string(),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
        }
    }
}
