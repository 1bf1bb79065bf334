//! Typed responses of the Flink REST endpoints firedrill reads, and the client that fetches
//! them. Field names follow Flink 2.0's JSON; everything firedrill does not need is ignored,
//! and everything that older or newer versions may omit is optional.

use std::{collections::HashMap, time::Duration};

use serde::{de::DeserializeOwned, Deserialize};

use super::Config;
use crate::config_value::HttpUrl;

/// `GET /overview`.
#[derive(Debug, Clone, Deserialize)]
pub struct Overview {
    /// Registered TaskManagers.
    pub taskmanagers: u32,
    /// Slots over all TaskManagers.
    #[serde(rename = "slots-total")]
    pub slots_total: u32,
    /// Free slots.
    #[serde(rename = "slots-available")]
    pub slots_available: u32,
    /// Flink version.
    #[serde(rename = "flink-version", default)]
    pub flink_version: String,
}

/// `GET /taskmanagers`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskManagers {
    /// Registered TaskManagers.
    pub taskmanagers: Vec<TaskManager>,
}

/// One TaskManager of `/taskmanagers`.
#[derive(Debug, Clone, Deserialize)]
pub struct TaskManager {
    /// Resource id (`taskmanager.resource-id`, e.g. `taskmanager-1` on the local stack).
    pub id: String,
    /// Task slots.
    #[serde(rename = "slotsNumber")]
    pub slots: u32,
    /// Slots not in use.
    #[serde(rename = "freeSlots")]
    pub free_slots: u32,
}

/// `GET /jobs/overview`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobsOverview {
    /// All jobs the JobManager knows (running and archived).
    pub jobs: Vec<JobSummary>,
}

/// One job of `/jobs/overview`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSummary {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Job status, e.g. `RUNNING`.
    pub state: String,
    /// Submission time, unix ms.
    #[serde(rename = "start-time")]
    pub start_time: i64,
}

/// `GET /jobs/{id}`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobDetails {
    /// Job id.
    pub jid: String,
    /// Job name.
    pub name: String,
    /// Job status.
    pub state: String,
    /// Submission time, unix ms.
    #[serde(rename = "start-time")]
    pub start_time: i64,
    /// Status -> when the job last entered it, unix ms (0 = never).
    #[serde(default)]
    pub timestamps: HashMap<String, i64>,
}

/// `GET /jobs/{id}/checkpoints`.
#[derive(Debug, Clone, Deserialize)]
pub struct Checkpoints {
    /// Counters.
    pub counts: CheckpointCounts,
    /// The latest checkpoint of each kind.
    pub latest: LatestCheckpoints,
}

/// Checkpoint counters of a job.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct CheckpointCounts {
    /// Restores from a checkpoint.
    #[serde(default)]
    pub restored: u64,
    /// Completed checkpoints.
    #[serde(default)]
    pub completed: u64,
    /// Failed checkpoints.
    #[serde(default)]
    pub failed: u64,
    /// In progress now.
    #[serde(default)]
    pub in_progress: u64,
}

/// `latest` of the checkpoints response.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LatestCheckpoints {
    /// The latest completed checkpoint.
    pub completed: Option<CompletedCheckpoint>,
    /// The latest restore.
    pub restored: Option<RestoredCheckpoint>,
}

/// A completed checkpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct CompletedCheckpoint {
    /// Checkpoint id.
    pub id: u64,
    /// When the last task acknowledged it, unix ms.
    pub latest_ack_timestamp: i64,
    /// Trigger to completion, ms.
    #[serde(default)]
    pub end_to_end_duration: u64,
    /// Bytes checkpointed (incremental size where applicable).
    #[serde(default)]
    pub checkpointed_size: Option<u64>,
    /// Full state size.
    #[serde(default)]
    pub state_size: Option<u64>,
    /// Where it was written (a retained checkpoint can be restored from here).
    #[serde(default)]
    pub external_path: Option<String>,
}

/// A restore.
#[derive(Debug, Clone, Deserialize)]
pub struct RestoredCheckpoint {
    /// The checkpoint restored.
    pub id: u64,
    /// When, unix ms.
    pub restore_timestamp: i64,
    /// Where from.
    #[serde(default)]
    pub external_path: Option<String>,
}

/// One metric of `GET /jobs/{id}/metrics?get=...`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricValue {
    /// Metric name.
    pub id: String,
    /// Its value, as Flink sends it: a string.
    pub value: String,
}

/// A failed REST call; `kind()` is a bounded label value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Connection refused, timeout, or a non-2xx status.
    #[error("flink rest {path}: {source}")]
    Http {
        path: String,
        source: reqwest::Error,
    },
}

impl Error {
    /// Bounded label value.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Http { source, .. } if source.is_timeout() => "timeout",
            Error::Http { source, .. } if source.is_connect() => "connect",
            Error::Http { source, .. } if source.is_status() => "status",
            Error::Http { source, .. } if source.is_decode() => "decode",
            Error::Http { .. } => "http",
        }
    }
}

/// A Flink REST client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: HttpUrl,
}

impl Client {
    /// A client for `config.rest_url`.
    pub fn new(config: &Config) -> Result<Client, reqwest::Error> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(config.request_timeout)
                .connect_timeout(config.request_timeout.min(Duration::from_secs(1)))
                .build()?,
            base: config.rest_url.clone(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let wrap = |source| Error::Http {
            path: path.to_string(),
            source,
        };
        self.http
            .get(self.base.join(path))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(wrap)?
            .json()
            .await
            .map_err(wrap)
    }

    /// `GET /overview`.
    pub async fn overview(&self) -> Result<Overview, Error> {
        self.get("overview").await
    }

    /// `GET /taskmanagers`.
    pub async fn taskmanagers(&self) -> Result<TaskManagers, Error> {
        self.get("taskmanagers").await
    }

    /// `GET /jobs/overview`.
    pub async fn jobs(&self) -> Result<JobsOverview, Error> {
        self.get("jobs/overview").await
    }

    /// `GET /jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<JobDetails, Error> {
        self.get(&format!("jobs/{id}")).await
    }

    /// `GET /jobs/{id}/checkpoints`.
    pub async fn checkpoints(&self, id: &str) -> Result<Checkpoints, Error> {
        self.get(&format!("jobs/{id}/checkpoints")).await
    }

    /// The job's `numRestarts` metric, if Flink reports it.
    pub async fn restarts(&self, id: &str) -> Result<Option<u64>, Error> {
        let metrics: Vec<MetricValue> = self
            .get(&format!("jobs/{id}/metrics?get=numRestarts"))
            .await?;
        Ok(metrics
            .iter()
            .find(|m| m.id == "numRestarts")
            .and_then(|m| m.value.parse().ok()))
    }
}

/// One entry of `GET /jobmanager/config`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConfigEntry {
    /// Option key, e.g. `restart-strategy.type`.
    pub key: String,
    /// Its value as Flink prints it, e.g. `1 min`.
    pub value: String,
}

impl Client {
    /// `GET /jobmanager/config`: the cluster's effective configuration.
    pub async fn jobmanager_config(&self) -> Result<Vec<ConfigEntry>, Error> {
        self.get("jobmanager/config").await
    }
}

/// The restart strategy in force, as the cluster's configuration says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct RestartStrategy {
    /// `restart-strategy.type`, e.g. `exponential-delay`; `none` when unset (Flink then
    /// picks one from checkpointing: exponential-delay with its defaults).
    pub kind: String,
    /// `restart-strategy.exponential-delay.reset-backoff-threshold`, seconds: how long the
    /// job must run without failing before its backoff starts from the initial delay again.
    /// Flink's default (1 h) when the strategy is exponential-delay and the key is unset.
    pub reset_backoff_threshold_s: Option<f64>,
    /// `restart-strategy.exponential-delay.initial-backoff`, seconds.
    pub initial_backoff_s: Option<f64>,
    /// `restart-strategy.exponential-delay.max-backoff`, seconds.
    pub max_backoff_s: Option<f64>,
}

impl RestartStrategy {
    /// From `GET /jobmanager/config`.
    pub fn from_config(entries: &[ConfigEntry]) -> RestartStrategy {
        let get = |key: &str| {
            entries
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.value.trim())
        };
        let kind = get("restart-strategy.type")
            .or_else(|| get("restart-strategy"))
            .unwrap_or("none")
            .to_string();
        let exponential = matches!(
            kind.as_str(),
            "exponential-delay" | "exponentialdelay" | "none"
        );
        let seconds = |key: &str, default: f64| {
            if !exponential {
                return None;
            }
            Some(get(key).and_then(flink_duration_s).unwrap_or(default))
        };
        RestartStrategy {
            reset_backoff_threshold_s: seconds(
                "restart-strategy.exponential-delay.reset-backoff-threshold",
                3600.0,
            ),
            initial_backoff_s: seconds("restart-strategy.exponential-delay.initial-backoff", 1.0),
            max_backoff_s: seconds("restart-strategy.exponential-delay.max-backoff", 60.0),
            kind,
        }
    }
}

/// A Flink duration (`1 min`, `10 s`, `500 ms`, `2h`, a bare number of ms) in seconds.
fn flink_duration_s(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "min" | "m" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return None,
    };
    Some(number * scale)
}

/// Job statuses after which a job never runs again.
pub fn is_terminal(state: &str) -> bool {
    matches!(state, "FINISHED" | "CANCELED" | "FAILED")
}

/// The job to watch: among jobs named `name`, the newest non-terminal one, else the newest.
pub fn select_job<'a>(jobs: &'a [JobSummary], name: &str) -> Option<&'a JobSummary> {
    let named = || jobs.iter().filter(|j| j.name == name);
    named()
        .filter(|j| !is_terminal(&j.state))
        .max_by_key(|j| j.start_time)
        .or_else(|| named().max_by_key(|j| j.start_time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_restart_strategy_is_read_from_the_cluster_config() {
        let entry = |key: &str, value: &str| ConfigEntry {
            key: key.into(),
            value: value.into(),
        };
        let ours = RestartStrategy::from_config(&[
            entry("restart-strategy.type", "exponential-delay"),
            entry(
                "restart-strategy.exponential-delay.reset-backoff-threshold",
                "1 min",
            ),
            entry("restart-strategy.exponential-delay.initial-backoff", "1 s"),
            entry("restart-strategy.exponential-delay.max-backoff", "10 s"),
            entry("jobmanager.memory.process.size", "1024m"),
        ]);
        assert_eq!(ours.kind, "exponential-delay");
        assert_eq!(ours.reset_backoff_threshold_s, Some(60.0));
        assert_eq!(
            (ours.initial_backoff_s, ours.max_backoff_s),
            (Some(1.0), Some(10.0))
        );
        // Unset: Flink's defaults for checkpointed jobs.
        let unset = RestartStrategy::from_config(&[]);
        assert_eq!(
            (unset.kind.as_str(), unset.reset_backoff_threshold_s),
            ("none", Some(3600.0))
        );
        let fixed = RestartStrategy::from_config(&[entry("restart-strategy.type", "fixed-delay")]);
        assert_eq!(fixed.reset_backoff_threshold_s, None);
        assert_eq!(flink_duration_s("500 ms"), Some(0.5));
        assert_eq!(flink_duration_s("2h"), Some(7200.0));
        assert_eq!(flink_duration_s("soon"), None);
    }

    fn job(jid: &str, name: &str, state: &str, start_time: i64) -> JobSummary {
        JobSummary {
            jid: jid.into(),
            name: name.into(),
            state: state.into(),
            start_time,
        }
    }

    #[test]
    fn a_resubmitted_job_wins_over_the_archived_one() {
        let jobs = [
            job("old", "firedrill-orders", "FAILED", 1),
            job("new", "firedrill-orders", "RUNNING", 2),
            job("other", "something-else", "RUNNING", 3),
        ];
        assert_eq!(select_job(&jobs, "firedrill-orders").unwrap().jid, "new");
        let archived = [
            job("a", "firedrill-orders", "CANCELED", 1),
            job("b", "firedrill-orders", "FAILED", 5),
        ];
        assert_eq!(select_job(&archived, "firedrill-orders").unwrap().jid, "b");
        assert!(select_job(&jobs, "missing").is_none());
    }

    #[test]
    fn taskmanagers_of_flink_2_parse() {
        let body = r#"{"taskmanagers":[{"id":"taskmanager-2","path":"pekko.tcp://flink@localhost:40001/user/rpc/taskmanager_0",
            "dataPort":37671,"jmxPort":-1,"timeSinceLastHeartbeat":1796027194663,"slotsNumber":2,"freeSlots":0,
            "totalResource":{"cpuCores":2.0}},{"id":"taskmanager-1","slotsNumber":2,"freeSlots":2}]}"#;
        let t: TaskManagers = serde_json::from_str(body).unwrap();
        assert_eq!(t.taskmanagers[0].id, "taskmanager-2");
        assert_eq!(
            (t.taskmanagers[0].slots, t.taskmanagers[0].free_slots),
            (2, 0)
        );
        assert_eq!(t.taskmanagers[1].free_slots, 2);
    }

    #[test]
    fn checkpoint_responses_of_flink_2_parse() {
        let body = r#"{"counts":{"restored":1,"total":7,"in_progress":0,"completed":6,"failed":1},
            "summary":{},"latest":{"completed":{"className":"completed","id":6,"status":"COMPLETED",
            "is_savepoint":false,"trigger_timestamp":1000,"latest_ack_timestamp":1200,
            "checkpointed_size":512,"state_size":2048,"end_to_end_duration":200,
            "external_path":"file:/tmp/chk-6"},"savepoint":null,"failed":null,
            "restored":{"id":4,"restore_timestamp":900,"is_savepoint":false,"external_path":"file:/tmp/chk-4"}},
            "history":[]}"#;
        let c: Checkpoints = serde_json::from_str(body).unwrap();
        assert_eq!(c.counts.completed, 6);
        let latest = c.latest.completed.unwrap();
        assert_eq!(
            (latest.id, latest.latest_ack_timestamp, latest.state_size),
            (6, 1200, Some(2048))
        );
        assert_eq!(c.latest.restored.unwrap().restore_timestamp, 900);
        let none: Checkpoints = serde_json::from_str(
            r#"{"counts":{"completed":0},"latest":{"completed":null,"restored":null}}"#,
        )
        .unwrap();
        assert!(none.latest.completed.is_none());
    }
}
