//! What firedrill reads of Spark: the standalone master's `/json/`, the driver's REST API
//! (`/api/v1/applications/{id}/allexecutors`), and the query progress events the job appends
//! to a file (Spark's own `StreamingQueryProgress` JSON, one a line).
//!
//! Owns the typed answers, a small HTTP client, and [`ProgressLog`], which reads the events
//! appended since its last read. Does not own what they mean for a drill (`monitor`).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::PathBuf,
};

use serde::Deserialize;

use super::Config;
use crate::config_value::HttpUrl;

/// The master's `/json/`: its workers and applications.
#[derive(Debug, Clone, Deserialize)]
pub struct Master {
    #[serde(default)]
    pub workers: Vec<Worker>,
    #[serde(default)]
    pub activeapps: Vec<App>,
}

/// One worker registered with the master.
#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    pub id: String,
    /// `ALIVE`, `DEAD`, `DECOMMISSIONED`, ...
    pub state: String,
    pub cores: u32,
    pub coresused: u32,
}

impl Worker {
    /// Registered and heartbeating.
    pub fn is_alive(&self) -> bool {
        self.state == "ALIVE"
    }
}

/// One application the master runs.
#[derive(Debug, Clone, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    /// Unix ms.
    pub starttime: i64,
    /// `WAITING`, `RUNNING`, ...
    pub state: String,
}

impl Master {
    /// The newest active application named `name`.
    pub fn app(&self, name: &str) -> Option<&App> {
        self.activeapps
            .iter()
            .filter(|a| a.name == name)
            .max_by_key(|a| a.starttime)
    }
}

/// One executor of the application, as the driver lists it (`allexecutors` includes the
/// ones that were lost).
#[derive(Debug, Clone, Deserialize)]
pub struct Executor {
    /// `driver` or a number.
    pub id: String,
    #[serde(rename = "isActive")]
    pub is_active: bool,
}

/// The executors that run tasks (not the driver's entry): (active, lost).
pub fn executor_counts(executors: &[Executor]) -> (u32, u32) {
    let workers = executors.iter().filter(|e| e.id != "driver");
    workers.fold((0, 0), |(active, lost), e| {
        if e.is_active {
            (active + 1, lost)
        } else {
            (active, lost + 1)
        }
    })
}

/// One progress event of a streaming query: one micro-batch, committed to the checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The query's name (`processed_orders`, `order_stats`).
    pub name: String,
    /// Changes each time the query starts, from its checkpoint or anew.
    pub run_id: String,
    pub batch_id: u64,
    /// When the batch was triggered, unix ms.
    pub started_ms: i64,
    /// Trigger to commit, ms.
    pub duration_ms: u64,
    pub input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    /// Spark's description of the query's (first) source, e.g. `KafkaV2[Subscribe[orders]]`
    /// for the official Kafka connector; empty when the event names none.
    pub source: String,
}

impl Progress {
    /// When the batch was committed, unix ms.
    pub fn committed_ms(&self) -> i64 {
        self.started_ms + i64::try_from(self.duration_ms).unwrap_or(i64::MAX)
    }

    /// Parses one line of the progress file.
    pub fn parse(line: &str) -> Result<Progress, String> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            #[serde(default)]
            name: Option<String>,
            run_id: String,
            batch_id: u64,
            timestamp: String,
            #[serde(default)]
            duration_ms: Durations,
            #[serde(default)]
            num_input_rows: u64,
            #[serde(default)]
            input_rows_per_second: Option<f64>,
            #[serde(default)]
            processed_rows_per_second: Option<f64>,
            #[serde(default)]
            sources: Vec<Source>,
        }
        #[derive(Deserialize)]
        struct Source {
            #[serde(default)]
            description: String,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Durations {
            #[serde(default)]
            trigger_execution: u64,
        }
        let raw: Raw = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let started = chrono::DateTime::parse_from_rfc3339(&raw.timestamp)
            .map_err(|e| format!("timestamp {:?}: {e}", raw.timestamp))?;
        Ok(Progress {
            name: raw.name.unwrap_or_default(),
            run_id: raw.run_id,
            batch_id: raw.batch_id,
            started_ms: started.timestamp_millis(),
            duration_ms: raw.duration_ms.trigger_execution,
            input_rows: raw.num_input_rows,
            // Spark writes NaN as a string, which lands here as absent: no rate yet.
            input_rows_per_second: raw.input_rows_per_second.unwrap_or(0.0),
            processed_rows_per_second: raw.processed_rows_per_second.unwrap_or(0.0),
            source: raw
                .sources
                .into_iter()
                .next()
                .map(|s| s.description)
                .unwrap_or_default(),
        })
    }
}

/// Reads the progress events appended to the file since the last read. Starts near the end
/// of an existing file (the last [`TAIL_BYTES`]), so a long history is not read again at
/// every start; a file that shrank (replaced) is read from its start.
#[derive(Debug)]
pub struct ProgressLog {
    path: PathBuf,
    offset: Option<u64>,
    /// An incomplete last line, kept until its newline arrives.
    partial: String,
    /// Lines that were not progress events, since start.
    pub skipped: u64,
}

/// How much of an existing file's end is read at start.
pub const TAIL_BYTES: u64 = 256 * 1024;

impl ProgressLog {
    pub fn new(path: PathBuf) -> ProgressLog {
        ProgressLog {
            path,
            offset: None,
            partial: String::new(),
            skipped: 0,
        }
    }

    /// The events appended since the last call. A missing file is no events (the job has
    /// not written any yet).
    pub fn read_new(&mut self) -> std::io::Result<Vec<Progress>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let (from, skip_first) = match self.offset {
            Some(offset) if offset <= len => (offset, false),
            Some(_) => (0, false),
            None => (len.saturating_sub(TAIL_BYTES), len > TAIL_BYTES),
        };
        if self.offset.is_some_and(|o| o > len) {
            self.partial.clear();
        }
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.take(len - from).read_to_end(&mut bytes)?;
        self.offset = Some(len);
        let text = std::mem::take(&mut self.partial) + &String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.split('\n').collect();
        // The last piece has no newline yet (or is empty).
        self.partial = lines.pop().unwrap_or_default().to_string();
        if skip_first && !lines.is_empty() {
            lines.remove(0);
        }
        let mut events = Vec::new();
        for line in lines.into_iter().filter(|l| !l.trim().is_empty()) {
            match Progress::parse(line) {
                Ok(p) => events.push(p),
                Err(_) => self.skipped += 1,
            }
        }
        Ok(events)
    }
}

/// Why a request to Spark failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
}

/// The master's and the driver's HTTP APIs.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    master: HttpUrl,
    driver: HttpUrl,
}

impl Client {
    pub fn new(config: &Config) -> Result<Client, reqwest::Error> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(config.request_timeout)
                .build()?,
            master: config.master_url.clone(),
            driver: config.driver_url.clone(),
        })
    }

    pub async fn master(&self) -> Result<Master, Error> {
        self.get(self.master.join("json/")).await
    }

    pub async fn executors(&self, app_id: &str) -> Result<Vec<Executor>, Error> {
        let path = format!("api/v1/applications/{app_id}/allexecutors");
        self.get(self.driver.join(&path)).await
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: url::Url) -> Result<T, Error> {
        let failed = |source| Error::Http {
            url: url.to_string(),
            source,
        };
        self.http
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed)?
            .json()
            .await
            .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A progress event as Spark 4.0 writes it (`StreamingQueryProgress.json`), trimmed.
    const EVENT: &str = r#"{"id":"6b1c","runId":"a2f0","name":"processed_orders","timestamp":"2026-12-03T10:00:01.250Z","batchId":41,"batchDuration":180,"numInputRows":10,"inputRowsPerSecond":9.9,"processedRowsPerSecond":55.5,"durationMs":{"addBatch":150,"getBatch":0,"latestOffset":5,"triggerExecution":180,"walCommit":12},"eventTime":{"watermark":"2026-12-03T09:59:55.000Z"},"stateOperators":[],"sources":[],"sink":{"description":"x"}}"#;

    #[test]
    fn a_progress_event_parses_with_its_commit_time() {
        let p = Progress::parse(EVENT).unwrap();
        assert_eq!(
            (p.name.as_str(), p.run_id.as_str(), p.batch_id, p.input_rows),
            ("processed_orders", "a2f0", 41, 10)
        );
        assert_eq!(p.started_ms, 1_796_292_001_250);
        assert_eq!(p.committed_ms(), 1_796_292_001_430);
        assert!(Progress::parse(r#"{"runId":"x"}"#).is_err());
        assert!(Progress::parse("not json").is_err());
    }

    #[test]
    fn the_log_reads_what_was_appended_and_keeps_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let mut log = ProgressLog::new(path.clone());
        assert_eq!(log.read_new().unwrap(), vec![], "no file yet");
        let append = |text: &str| {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append(&format!("{EVENT}\ngarbage\n{}", &EVENT[..40]));
        let first = log.read_new().unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(log.skipped, 1);
        append(&format!("{}\n", &EVENT[40..]));
        assert_eq!(
            log.read_new().unwrap(),
            first,
            "the partial line, completed"
        );
        assert_eq!(log.read_new().unwrap(), vec![]);
        // Replaced by a shorter file: read from its start.
        std::fs::write(&path, format!("{EVENT}\n")).unwrap();
        assert_eq!(log.read_new().unwrap().len(), 1);
    }

    #[test]
    fn a_long_history_is_not_read_again_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let lines = (TAIL_BYTES as usize / EVENT.len()) * 3;
        std::fs::write(&path, format!("{EVENT}\n").repeat(lines)).unwrap();
        let read = ProgressLog::new(path).read_new().unwrap();
        assert!(read.len() < lines / 2 && read.len() > 10, "{}", read.len());
    }

    #[test]
    fn master_and_executors_parse() {
        let master: Master = serde_json::from_str(
            r#"{"url":"spark://127.0.0.1:7077","workers":[
              {"id":"worker-1","host":"127.0.0.1","port":1,"webuiaddress":"http://127.0.0.1:8082",
               "cores":1,"coresused":1,"coresfree":0,"memory":512,"state":"ALIVE"},
              {"id":"worker-2","host":"127.0.0.1","port":2,"cores":1,"coresused":0,"state":"DEAD"}],
             "aliveworkers":1,"activeapps":[
              {"id":"app-1","starttime":1000,"name":"firedrill-orders","state":"RUNNING"},
              {"id":"app-2","starttime":2000,"name":"firedrill-orders","state":"WAITING"},
              {"id":"app-3","starttime":3000,"name":"other","state":"RUNNING"}],
             "completedapps":[],"status":"ALIVE"}"#,
        )
        .unwrap();
        assert_eq!(master.workers.iter().filter(|w| w.is_alive()).count(), 1);
        assert_eq!(master.app("firedrill-orders").unwrap().id, "app-2");
        let executors: Vec<Executor> = serde_json::from_str(
            r#"[{"id":"driver","isActive":true},{"id":"0","isActive":false},
                {"id":"1","isActive":true},{"id":"2","isActive":true}]"#,
        )
        .unwrap();
        assert_eq!(executor_counts(&executors), (2, 1));
    }
}
