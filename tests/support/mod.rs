//! Shared by the integration tests: the local stack check, the real daemon started on
//! `127.0.0.1:0`, a scraped-metrics matcher, and polling with a deadline (no sleeps to wait
//! for something: every wait polls a condition until it holds or the deadline passes).

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod dashboards;
pub mod drill;
pub mod kafka;
pub mod pipeline;
pub mod spark;

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const BROKER: &str = "127.0.0.1:9092";
pub const FLINK_REST: &str = "http://127.0.0.1:8081";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Panics with a clear message unless the local stack's broker and Flink answer.
pub fn require_stack() {
    let missing: Vec<&str> = [
        ("kafka broker 127.0.0.1:9092", BROKER),
        ("flink rest 127.0.0.1:8081", "127.0.0.1:8081"),
    ]
    .into_iter()
    .filter(|(_, addr)| {
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(1)).is_err()
    })
    .map(|(name, _)| name)
    .collect();
    assert!(
        missing.is_empty(),
        "the local stack is not running ({} not reachable): start it with `compose/local/stack up`, or run `make test`, which does",
        missing.join(", ")
    );
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` at the deadline.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON answer of `request`; `None` when it cannot be sent or is not JSON (an upstream
/// down or restarting, which the caller's `eventually` waits out).
pub async fn json(request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
    request.send().await.ok()?.json().await.ok()
}

/// A firedrill daemon process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Daemon {
    pub addr: SocketAddr,
    pub child: Child,
    pub config: tempfile::NamedTempFile,
    pub http: reqwest::Client,
    /// Where the fault ledger and reports go unless the config names its own: never the
    /// stack daemon's `.stack/firedrill/` (that daemon may be running beside the tests, and a
    /// daemon reverts at start whatever its ledger holds).
    pub state: tempfile::TempDir,
}

impl Daemon {
    /// Starts `firedrill serve` with `config` (TOML; `[http] listen` is forced to port 0).
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{config}").unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut own_state = Vec::new();
        if !config.contains("ledger =") {
            own_state.push(("FIREDRILL_FAULTS__LEDGER", state.path().join("faults.json")));
        }
        if !config.contains("state_dir =") {
            own_state.push(("FIREDRILL_DRILLS__STATE_DIR", state.path().join("reports")));
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_firedrill"))
            .args(["serve", "--config"])
            .arg(file.path())
            .env("FIREDRILL_HTTP__LISTEN", "127.0.0.1:0")
            .envs(own_state)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start firedrill");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("firedrill listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line from firedrill: {line:?}"))
            .parse()
            .unwrap();
        Daemon {
            addr,
            child,
            config: file,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            state,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn scrape(&self) -> Scrape {
        Scrape(self.get("/metrics").await.text().await.unwrap())
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        self.child.wait().unwrap()
    }

    /// The daemon's RSS in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal(self.child.id(), "TERM");
            let until = Instant::now() + Duration::from_secs(25);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A `/metrics` body with a small matcher: `scrape.metric("x").label("k", "v").value()`.
pub struct Scrape(pub String);

impl Scrape {
    pub fn metric<'a>(&'a self, name: &'a str) -> MetricMatch<'a> {
        MetricMatch {
            scrape: self,
            name,
            labels: Vec::new(),
        }
    }
}

pub struct MetricMatch<'a> {
    scrape: &'a Scrape,
    name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
}

impl<'a> MetricMatch<'a> {
    pub fn label(mut self, key: &'a str, value: &'a str) -> Self {
        self.labels.push((key, value));
        self
    }

    /// Values of every series of this name whose labels include the requested ones.
    pub fn values(&self) -> Vec<f64> {
        self.scrape
            .0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                if name != self.name {
                    return None;
                }
                let all = self
                    .labels
                    .iter()
                    .all(|(k, v)| labels.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
                all.then(|| value.parse().ok()).flatten()
            })
            .collect()
    }

    /// The value of the single matching series; `None` when absent.
    pub fn value(&self) -> Option<f64> {
        let values = self.values();
        assert!(
            values.len() <= 1,
            "{} with {:?} matches {} series",
            self.name,
            self.labels,
            values.len()
        );
        values.first().copied()
    }

    /// Sum over matching series (0 when none).
    pub fn sum(&self) -> f64 {
        self.values().iter().sum()
    }
}
