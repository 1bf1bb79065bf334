//! compose/docker-compose.yml end to end, with the registry-free stand-in images of
//! compose/standin: the stack comes up under a project name and host ports of its own (never
//! the local stack's), firedrill runs drills with the docker backend through its HTTP API
//! (a TaskManager kill, a broker stop, a TaskManager cut off the network, the broker cut off
//! the network), and every report is held to evidence the test gathers itself: Flink's REST
//! API (restarts, the job's RESTARTING timestamp) and its own reading of `processed_orders`
//! (output gaps on Flink's clock, duplicates per order id). Containers, networks and volumes
//! of the project are removed at the end, also when the test fails (a Drop guard).
//!
//! The same file with compose/spark.yml runs the pipeline on Spark (stand-in image over the
//! local stack's pyspark, the local Kafka adapter for Maven's connector, the group offsets
//! committed by the job's listener as for the connector): a worker kill, a driver kill and a
//! worker cut off the network, each report held to the master's and the driver's own lists
//! and to the test's reading of the output. That test needs Spark installed, so `make test`
//! runs it in its Spark step (`--ignored`, the local stack down).
//!
//! Without a Docker engine each test says so in one line and returns.

mod support;

use std::{
    collections::HashMap,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig, Message, Offset, TopicPartitionList,
};
use support::{
    drill::{evidence, phase},
    eventually,
    kafka::OutputTime,
};

const TOKEN: &str = "firedrill-compose-test";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The compose files of the pipeline on Flink, with the stand-in images.
const FLINK: &[&str] = &[
    "compose/docker-compose.yml",
    "compose/standin/docker-compose.yml",
];
/// On Spark, with the stand-in images.
const SPARK: &[&str] = &[
    "compose/docker-compose.yml",
    "compose/spark.yml",
    "compose/standin/docker-compose.yml",
    "compose/standin/spark.yml",
];

/// The project's stack, torn down (containers, networks, volumes) when dropped.
struct Stack {
    project: String,
    network: String,
    files: &'static [&'static str],
    env: Vec<(String, String)>,
    ports: HashMap<&'static str, u16>,
}

impl Stack {
    /// Builds the stand-in images (a no-op when nothing changed), brings `files` up under a
    /// project, a network and host ports (`ports`, by variable) of its own, and waits for
    /// firedrill to be ready. Returns the stack and how long `up` took, seconds.
    async fn up(
        files: &'static [&'static str],
        ports: &[&'static str],
        env: &[(&str, String)],
        http: &reqwest::Client,
    ) -> (Stack, f64) {
        run(
            Command::new(repo().join("compose/standin/build")).stdout(Stdio::null()),
            "compose/standin/build",
        );
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let project = format!("fdtest{}x{:x}", std::process::id(), nanos & 0xffff_ffff);
        let network = format!("{project}-net");
        let ports: HashMap<&'static str, u16> =
            ports.iter().map(|name| (*name, free_port())).collect();
        let mut all_env: Vec<(String, String)> = ports
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all_env.push(("FIREDRILL_NETWORK".into(), network.clone()));
        all_env.push(("FIREDRILL_TOKEN".into(), TOKEN.into()));
        all_env.push(("FIREDRILL_BIND".into(), "127.0.0.1".into()));
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let stack = Stack {
            project,
            network,
            files,
            env: all_env,
            ports,
        };
        let up = Instant::now();
        run(
            stack.compose().args(["up", "-d", "--no-build"]),
            "docker-compose up",
        );
        eventually("firedrill ready", Duration::from_secs(180), || async {
            let ready = http
                .get(stack.url("FIREDRILL_PORT", "/readyz"))
                .send()
                .await
                .ok()?;
            ready.status().is_success().then_some(())
        })
        .await;
        let up_s = up.elapsed().as_secs_f64();
        eprintln!("compose test: containers up and firedrill ready in {up_s:.0} s");
        (stack, up_s)
    }

    fn compose(&self) -> Command {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(repo()).args(["-p", &self.project]);
        for file in self.files {
            cmd.args(["-f", file]);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        cmd
    }

    fn url(&self, port: &str, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[port])
    }

    fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.ports["KAFKA_PORT"])
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the containers said, for the failure's diagnosis.
            let _ = self
                .compose()
                .args(["logs", "--no-color", "--tail", "30"])
                .status();
        }
        let status = self
            .compose()
            .args(["down", "--volumes", "--remove-orphans", "--timeout", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Whatever `down` missed (say, a container a failed `up` left half created).
        let label = format!("label=com.docker.compose.project={}", self.project);
        for (list, rm) in [
            (
                vec!["ps", "-aq", "--filter", &label],
                vec!["rm", "-f", "-v"],
            ),
            (
                vec!["network", "ls", "-q", "--filter", &label],
                vec!["network", "rm"],
            ),
            (
                vec!["volume", "ls", "-q", "--filter", &label],
                vec!["volume", "rm", "-f"],
            ),
        ] {
            let ids = docker_out(&list).unwrap_or_default();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let _ = Command::new("docker")
                    .args(&rm)
                    .args(&ids)
                    .stdout(Stdio::null())
                    .status();
            }
        }
        let _ = Command::new("docker")
            .args(["network", "rm", &self.network])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        eprintln!(
            "compose test: project {} torn down (down: {status:?})",
            self.project
        );
    }
}

fn docker_out(args: &[&str]) -> Option<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A port free on the host now (the local stack's ports are taken, so never one of them).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    support::json(http.get(url)).await
}

/// The watched job's id, by Flink.
async fn flink_job(stack: &Stack, http: &reqwest::Client) -> String {
    let jobs = get_json(http, &stack.url("FLINK_UI_PORT", "/jobs/overview"))
        .await
        .expect("Flink REST answers");
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "firedrill-orders" && j["state"] == "RUNNING")
        .unwrap_or_else(|| panic!("firedrill-orders is not RUNNING: {jobs}"))["jid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (unix ms, numRestarts) readings, shared with the task that takes them.
type Samples = std::sync::Arc<std::sync::Mutex<Vec<(i64, u64)>>>;

/// Flink's numRestarts of `job`, sampled every 500 ms with the time of each reading (unix
/// ms) until the returned handle is aborted.
fn sample_restarts(
    stack: &Stack,
    http: &reqwest::Client,
    job: &str,
) -> (Samples, tokio::task::JoinHandle<()>) {
    let samples = Samples::default();
    let url = stack.url(
        "FLINK_UI_PORT",
        &format!("/jobs/{job}/metrics?get=numRestarts"),
    );
    let (http, out) = (http.clone(), samples.clone());
    let task = tokio::spawn(async move {
        loop {
            let at = now_ms();
            if let Some(value) = get_json(&http, &url)
                .await
                .and_then(|v| v[0]["value"].as_str().and_then(|s| s.parse::<u64>().ok()))
            {
                // Short lock, no await inside: the test reads it after aborting this task.
                out.lock().unwrap().push((at, value));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    (samples, task)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Restarts Flink counted between `from` and `to` (unix ms) by the samples, and the times
/// (unix ms) at which the count rose.
fn restarts_between(samples: &[(i64, u64)], from: i64, to: i64) -> (u64, Vec<i64>) {
    let at = |t: i64| {
        samples
            .iter()
            .take_while(|(when, _)| *when <= t)
            .last()
            .or(samples.first())
            .map_or(0, |(_, v)| *v)
    };
    let rises = samples
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| w[1].0)
        .collect();
    (at(to).saturating_sub(at(from)), rises)
}

/// Starts a drill through the API and waits for its report.
async fn drill(
    stack: &Stack,
    http: &reqwest::Client,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = http
        .post(stack.url("FIREDRILL_PORT", "/drills"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let started: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    let view = eventually(
        &format!("drill {id} ({body}) finished"),
        Duration::from_secs(900),
        || async {
            let view =
                get_json(http, &stack.url("FIREDRILL_PORT", &format!("/drills/{id}"))).await?;
            matches!(
                view["state"].as_str(),
                Some("done" | "refused" | "aborted" | "failed")
            )
            .then_some(view)
        },
    )
    .await;
    assert_eq!(view["state"], "done", "{view}");
    let report = get_json(
        http,
        &stack.url(
            "FIREDRILL_PORT",
            &format!("/drills/{id}/report?format=json"),
        ),
    )
    .await
    .expect("the report");
    // Kept past the project's teardown: a failed check can be read in the report afterwards.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("compose-{id}.json"));
    std::fs::write(&kept, report.to_string()).unwrap();
    eprintln!("report kept at {}", kept.display());
    report
}

/// One output record as this test reads it: order id, Flink's processed_at and event_time.
struct Output {
    order_id: String,
    processed_at_ms: i64,
    event_time_ms: i64,
}

/// Reads `processed_orders` from the host (the broker's EXTERNAL listener) with its own
/// consumer (read_committed) and its own parsing, independently of firedrill.
struct Reader {
    consumer: BaseConsumer,
    broker: String,
    records: Vec<Output>,
}

impl Reader {
    /// From the beginning of every partition.
    fn new(broker: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", broker)
            .set("group.id", "firedrill-compose-test")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()
            .expect("test consumer");
        let metadata = consumer
            .fetch_metadata(Some("processed_orders"), Duration::from_secs(20))
            .expect("processed_orders metadata through the EXTERNAL listener");
        let mut tpl = TopicPartitionList::new();
        for p in metadata.topics()[0].partitions() {
            tpl.add_partition_offset("processed_orders", p.id(), Offset::Beginning)
                .unwrap();
        }
        assert!(tpl.count() > 0, "processed_orders has no partitions");
        consumer.assign(&tpl).unwrap();
        Reader {
            consumer,
            broker: broker.to_string(),
            records: Vec::new(),
        }
    }

    /// Reads up to the high watermarks the broker has now (retrying while it reconnects).
    fn catch_up(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        let ends = loop {
            match self.high_watermarks() {
                Some(ends) => break ends,
                None => {
                    assert!(Instant::now() < until, "no watermarks from {}", self.broker);
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        };
        let parse = |v: &serde_json::Value| {
            chrono::NaiveDateTime::parse_from_str(v.as_str()?, "%Y-%m-%d %H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        };
        loop {
            let position: HashMap<i32, i64> = self
                .consumer
                .position()
                .unwrap()
                .elements()
                .iter()
                .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(0)))
                .collect();
            if ends
                .iter()
                .all(|(p, end)| position.get(p).copied().unwrap_or(0) >= *end)
            {
                return;
            }
            assert!(
                Instant::now() < until,
                "processed_orders not read up to {ends:?} within {deadline:?} (at {position:?})"
            );
            // Errors (a broker just stopped or cut off) and empty polls: the client reconnects.
            if let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(200)) {
                let Some(v) = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
                else {
                    continue;
                };
                if let (Some(id), Some(processed_at_ms), Some(event_time_ms)) = (
                    v["order_id"].as_str(),
                    parse(&v["processed_at"]),
                    parse(&v["event_time"]),
                ) {
                    self.records.push(Output {
                        order_id: id.to_string(),
                        processed_at_ms,
                        event_time_ms,
                    });
                }
            }
        }
    }

    fn high_watermarks(&self) -> Option<Vec<(i32, i64)>> {
        let timeout = Duration::from_secs(5);
        let metadata = self
            .consumer
            .fetch_metadata(Some("processed_orders"), timeout)
            .ok()?;
        metadata.topics()[0]
            .partitions()
            .iter()
            .map(|p| {
                self.consumer
                    .fetch_watermarks("processed_orders", p.id(), timeout)
                    .ok()
                    .map(|(_, high)| (p.id(), high))
            })
            .collect()
    }

    /// The times of every record read, for [`evidence`].
    fn times(&self) -> Vec<OutputTime> {
        self.records
            .iter()
            .map(|r| OutputTime {
                order_id: r.order_id.clone(),
                processed_at_ms: r.processed_at_ms,
                event_time_ms: r.event_time_ms,
            })
            .collect()
    }

    /// An independent count over processed_orders, read up to its end now: every order of
    /// generator run `run_id` that the reports counted twice (`reported` in all) is there
    /// twice.
    fn assert_duplicates(&mut self, run_id: &str, reported: u64) {
        self.catch_up(Duration::from_secs(60));
        let counts = self.counts(run_id);
        let seen_twice: u64 = counts.values().map(|n| n - 1).sum();
        eprintln!(
            "compose test: processed_orders holds {} orders of run {run_id}, {seen_twice} \
             duplicate records; the reports counted {reported}",
            counts.len()
        );
        assert_eq!(
            seen_twice, reported,
            "duplicate records of run {run_id} in processed_orders vs the reports' sum"
        );
    }

    /// Records per order id of generator run `run_id`.
    fn counts(&self, run_id: &str) -> HashMap<&str, u64> {
        let prefix = format!("{run_id}-");
        let mut counts = HashMap::new();
        for r in self
            .records
            .iter()
            .filter(|r| r.order_id.starts_with(&prefix))
        {
            *counts.entry(r.order_id.as_str()).or_default() += 1;
        }
        counts
    }
}

/// What every drill must show on either engine: its phases, recovered, nothing lost, integrity,
/// one consistent set of orders, and downtime and time to recover within 1 s of the test's
/// own reading of the output. Returns those two figures as the output says them.
fn check_output(
    name: &str,
    report: &serde_json::Value,
    reader: &Reader,
    acks_may_be_lost: bool,
) -> (f64, f64) {
    for p in [
        "injected",
        "revert_started",
        "reverted",
        "recovered",
        "drained",
    ] {
        assert!(
            phase(report, p).is_some(),
            "{name}: phase {p} missing: {}",
            report["phases"]
        );
    }
    assert_eq!(report["recovered"], true, "{name}");
    assert_eq!(report["orders"]["lost"], 0, "{name}: {}", report["orders"]);
    assert_eq!(
        report["integrity"]["verdict"], "PASS",
        "{name}: {}",
        report["integrity"]
    );
    // One consistent set of orders: processed may exceed acked by the orders in flight at the
    // start; and, when the broker is cut off, by orders whose ack was lost in the partition:
    // the broker appended them, the generator timed out and counted them failed at the door.
    let o = &report["orders"];
    let count = |k: &str| o[k].as_u64().unwrap();
    let mut bound = count("acked") + count("in_flight_at_start");
    if acks_may_be_lost {
        bound += count("failed_at_door");
    }
    assert!(count("processed") <= bound, "{name}: {o}");
    let ev = evidence(&reader.times(), report);
    let (downtime, gaps) = (ev.downtime_s, &ev.gaps);
    let recovered = ev
        .recovered_at
        .unwrap_or_else(|| panic!("{name}: the output never caught up in the report's window"));
    let to_recover = (recovered - phase(report, "injected").unwrap()) as f64 / 1000.0;
    let r_downtime = report["downtime_s"].as_f64().unwrap();
    let r_recover = report["recovery_time_s"].as_f64().unwrap();
    assert!(
        (r_downtime - downtime).abs() <= 1.0,
        "{name}: downtime {r_downtime} s vs {downtime} s in processed_orders (gaps {gaps:?}; {})",
        report["output"]
    );
    assert!(
        (r_recover - to_recover).abs() <= 1.0,
        "{name}: time to recover {r_recover} s vs {to_recover} s in processed_orders ({})",
        report["output"]
    );
    (downtime, to_recover)
}

/// A Flink drill: [`check_output`], and its restarts and RESTARTING time as Flink's REST API
/// says them.
fn check(
    name: &str,
    report: &serde_json::Value,
    reader: &Reader,
    restarts: &[(i64, u64)],
    restarting_at: Option<i64>,
    acks_may_be_lost: bool,
) -> String {
    let (downtime, to_recover) = check_output(name, report, reader, acks_may_be_lost);
    let (r_downtime, r_recover) = (
        report["downtime_s"].as_f64().unwrap(),
        report["recovery_time_s"].as_f64().unwrap(),
    );
    let o = &report["orders"];
    let count = |k: &str| o[k].as_u64().unwrap();
    let acked_elsewhere =
        count("processed").saturating_sub(count("acked") + count("in_flight_at_start"));
    // The report counts Flink's restarts from its baseline to its drain; so does this, from
    // Flink's own counter sampled every 500 ms (the report's reading may be 1 s older).
    let (flink_restarts, rises) = restarts_between(
        restarts,
        phase(report, "baseline_started").unwrap(),
        phase(report, "drained").unwrap(),
    );
    let injected = phase(report, "injected").unwrap();
    let rises: Vec<String> = rises
        .iter()
        .map(|t| format!("{:+.1} s", (t - injected) as f64 / 1000.0))
        .collect();
    assert_eq!(
        report["flink"]["restarts"].as_u64(),
        Some(flink_restarts),
        "{name}: restarts in the report vs Flink's numRestarts over the baseline..drained \
         window (numRestarts rose at {rises:?} from the injection; phases {})",
        report["phases"]
    );
    if let Some(at) = restarting_at {
        let (injected, recovered) = (
            phase(report, "injected").unwrap(),
            phase(report, "recovered").unwrap(),
        );
        assert!(
            (injected..=recovered).contains(&at),
            "{name}: Flink's RESTARTING at {at} not within [{injected}, {recovered}]"
        );
    }
    format!(
        "{name}: downtime {r_downtime} s (processed_orders {downtime:.1} s), time to recover \
         {r_recover} s (processed_orders {to_recover:.1} s), restarts {} (Flink {flink_restarts}, rising at {rises:?} from the injection), \
         RESTARTING at {}, acked {} processed {} duplicates {} failed at the door {} (of which processed: \
         {acked_elsewhere}), alerting {}",
        report["flink"]["restarts"],
        restarting_at.map_or("-".to_string(), |at| format!(
            "+{:.1} s",
            (at - phase(report, "injected").unwrap()) as f64 / 1000.0
        )),
        o["acked"],
        o["processed"],
        o["duplicates"],
        o["failed_at_door"],
        report["alerting"]["verdict"],
    )
}

/// Flink's RESTARTING timestamp of `job`, when it has one after `since`.
async fn restarting_since(
    stack: &Stack,
    http: &reqwest::Client,
    job: &str,
    since: i64,
) -> Option<i64> {
    let view = get_json(http, &stack.url("FLINK_UI_PORT", &format!("/jobs/{job}"))).await?;
    view["timestamps"]["RESTARTING"]
        .as_i64()
        .filter(|at| *at >= since)
}

fn docker_engine() -> Result<(), String> {
    match Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run the docker CLI: {e}")),
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what} failed ({status})");
}

#[tokio::test(flavor = "multi_thread")]
async fn compose_stack_drills_agree_with_flink_and_the_output() {
    if let Err(why) = docker_engine() {
        eprintln!("compose test skipped: no Docker engine runs here ({why})");
        return;
    }
    let started = Instant::now();
    let http = http();
    let (stack, up_s) = Stack::up(
        FLINK,
        &[
            "KAFKA_PORT",
            "FLINK_UI_PORT",
            "PROMETHEUS_PORT",
            "ALERTMANAGER_PORT",
            "FIREDRILL_PORT",
        ],
        &[],
        &http,
    )
    .await;

    let generator = get_json(&http, &stack.url("FIREDRILL_PORT", "/generator"))
        .await
        .unwrap();
    let run_id = generator["run_id"].as_str().unwrap().to_string();
    let mut reader = Reader::new(&stack.broker());
    let mut lines = Vec::new();
    let mut duplicates = 0;

    let drills = [
        (
            "taskmanager kill",
            serde_json::json!({"scenario": "taskmanager", "baseline": "10s", "fault_duration": "15s"}),
        ),
        (
            "kafka stop",
            serde_json::json!({"scenario": "kafka", "baseline": "10s", "fault_duration": "15s"}),
        ),
        // Network partitions: the same scenarios with the docker backend's disconnect. A
        // TaskManager is found lost after Flink's heartbeat timeout (20 s), so its fault lasts
        // longer than that.
        (
            "taskmanager partition",
            serde_json::json!({"scenario": "taskmanager", "action": "disconnect", "baseline": "10s", "fault_duration": "30s"}),
        ),
        (
            "kafka partition",
            serde_json::json!({"scenario": "kafka", "action": "disconnect", "baseline": "10s", "fault_duration": "15s"}),
        ),
    ];
    for (name, body) in drills {
        let job = flink_job(&stack, &http).await;
        let t0 = now_ms();
        let (samples, sampler) = sample_restarts(&stack, &http, &job);
        let report = drill(&stack, &http, body).await;
        sampler.abort();
        let samples = samples.lock().unwrap().clone();
        if let Some(action) = report["fault"]["action"].as_str() {
            eprintln!("{name}: fault {} on {}", action, report["fault"]["target"]);
        }
        let job_after = flink_job(&stack, &http).await;
        assert_eq!(job, job_after, "{name}: the same job runs after the drill");
        let restarting = restarting_since(&stack, &http, &job, t0).await;
        reader.catch_up(Duration::from_secs(60));
        let acks_may_be_lost = name == "kafka partition";
        let line = check(
            name,
            &report,
            &reader,
            &samples,
            restarting,
            acks_may_be_lost,
        );
        eprintln!("{line}");
        lines.push(line);
        duplicates += report["orders"]["duplicates"].as_u64().unwrap();
    }

    reader.assert_duplicates(&run_id, duplicates);
    eprintln!(
        "compose test: up in {up_s:.0} s, whole test {:.0} s\n{}",
        started.elapsed().as_secs_f64(),
        lines.join("\n")
    );
    drop(stack);
}

/// The local stack's pyspark, which the stand-in Spark image runs (compose/standin/spark.yml).
fn spark_venv() -> PathBuf {
    let cache = std::env::var_os("LOCAL_STACK_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/firedrill"),
        PathBuf::from,
    );
    cache.join("spark-venv")
}

/// The id of the pipeline's application once the master lists it RUNNING on two alive
/// workers.
async fn spark_app(stack: &Stack, http: &reqwest::Client) -> String {
    eventually(
        "firedrill-orders RUNNING on 2 alive workers",
        Duration::from_secs(180),
        || async {
            support::spark::running_app(
                &get_json(http, &stack.url("SPARK_UI_PORT", "/json/")).await?,
            )
        },
    )
    .await
}

/// Executors of `app` that its driver lists as no longer active.
async fn lost_executors(stack: &Stack, http: &reqwest::Client, app: &str) -> u64 {
    let url = stack.url(
        "SPARK_DRIVER_UI_PORT",
        &format!("/api/v1/applications/{app}/allexecutors"),
    );
    let executors = eventually(
        "the driver's executor list",
        Duration::from_secs(60),
        || get_json(http, &url),
    )
    .await;
    executors
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["id"] != "driver" && e["isActive"] == false)
        .count() as u64
}

/// The offsets `group` has committed on `orders`, summed over partitions, as the broker says.
fn committed(broker: &str, group: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .expect("orders metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition("orders", p.id());
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| e.offset().to_raw().filter(|o| *o >= 0))
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Spark installed (compose/local/stack install --engine spark): make test runs it in its Spark step"]
async fn compose_spark_stack_drills_agree_with_spark_and_the_output() {
    if let Err(why) = docker_engine() {
        eprintln!("compose test skipped: no Docker engine runs here ({why})");
        return;
    }
    let venv = spark_venv();
    assert!(
        venv.join(".installed").exists(),
        "no Spark at {}: compose/local/stack install --engine spark",
        venv.display()
    );
    let started = Instant::now();
    let http = http();
    let (stack, up_s) = Stack::up(
        SPARK,
        &[
            "KAFKA_PORT",
            "SPARK_UI_PORT",
            "SPARK_DRIVER_UI_PORT",
            "PROMETHEUS_PORT",
            "ALERTMANAGER_PORT",
            "FIREDRILL_PORT",
        ],
        &[("FIREDRILL_SPARK_VENV", venv.to_str().unwrap().to_string())],
        &http,
    )
    .await;
    let generator = get_json(&http, &stack.url("FIREDRILL_PORT", "/generator"))
        .await
        .unwrap();
    let run_id = generator["run_id"].as_str().unwrap().to_string();
    let mut reader = Reader::new(&stack.broker());

    // The job's listener commits each batch's offsets to the group (as it does for the
    // official connector, which commits none): the broker has them, and firedrill sees the lag.
    let broker = stack.broker();
    let first = eventually(
        "spark-order-processor commits offsets",
        Duration::from_secs(120),
        || async { Some(committed(&broker, "spark-order-processor")).filter(|c| *c > 0) },
    )
    .await;
    eventually(
        "the group's commits follow the batches",
        Duration::from_secs(60),
        || async { (committed(&broker, "spark-order-processor") > first).then_some(()) },
    )
    .await;
    let metrics = http
        .get(stack.url("FIREDRILL_PORT", "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("firedrill_kafka_consumer_lag_messages{")
                && l.contains("group=\"spark-order-processor\"")),
        "firedrill exports the Spark group's lag"
    );

    let drills = [
        (
            "worker kill",
            serde_json::json!({"scenario": "worker", "baseline": "10s", "fault_duration": "15s"}),
        ),
        (
            "driver kill",
            serde_json::json!({"scenario": "driver", "baseline": "10s", "fault_duration": "10s"}),
        ),
        // A worker cut off the network: its executor can reach neither the driver nor the
        // broker, for less than Spark's timeouts, so it is not lost; its tasks wait.
        (
            "worker partition",
            serde_json::json!({"scenario": "worker", "action": "disconnect", "baseline": "10s", "fault_duration": "20s"}),
        ),
    ];
    let mut lines = Vec::new();
    let mut duplicates = 0;
    for (name, body) in drills {
        let app = spark_app(&stack, &http).await;
        let lost_before = lost_executors(&stack, &http, &app).await;
        let report = drill(&stack, &http, body).await;
        eprintln!(
            "{name}: fault {} on {}",
            report["fault"]["action"], report["fault"]["target"]
        );
        assert_eq!(report["engine"], "spark", "{name}");
        assert_eq!(report["kafka_io"], "local Kafka adapter", "{name}");
        reader.catch_up(Duration::from_secs(60));
        let (downtime, to_recover) = check_output(name, &report, &reader, false);
        let app_after = spark_app(&stack, &http).await;
        let restarts = report["flink"]["restarts"].as_u64();
        if name == "driver kill" {
            // A new driver is a new application, as the master lists it and the report names.
            assert_ne!(app, app_after, "{name}: a new application");
            assert_eq!(report["flink"]["job_id_before"], app.as_str(), "{name}");
            assert_eq!(
                report["flink"]["job_id_after"],
                app_after.as_str(),
                "{name}"
            );
        } else {
            // The same application: the report's restarts are the executors its driver lost.
            assert_eq!(app, app_after, "{name}: the same application");
            let lost = lost_executors(&stack, &http, &app).await - lost_before;
            assert_eq!(
                restarts,
                Some(lost),
                "{name}: restarts vs the driver's lost executors"
            );
        }
        let line = format!(
            "{name}: downtime {} s (processed_orders {downtime:.1} s), time to recover {} s \
             (processed_orders {to_recover:.1} s), restarts {restarts:?}, application {app} -> \
             {app_after}, acked {} processed {} duplicates {}, alerting {}",
            report["downtime_s"],
            report["recovery_time_s"],
            report["orders"]["acked"],
            report["orders"]["processed"],
            report["orders"]["duplicates"],
            report["alerting"]["verdict"],
        );
        eprintln!("{line}");
        lines.push(line);
        duplicates += report["orders"]["duplicates"].as_u64().unwrap();
    }

    // Spark's sink is at-least-once: a rerun batch writes its records again.
    reader.assert_duplicates(&run_id, duplicates);
    eprintln!(
        "compose spark test: up in {up_s:.0} s, whole test {:.0} s\n{}",
        started.elapsed().as_secs_f64(),
        lines.join("\n")
    );
    drop(stack);
}
