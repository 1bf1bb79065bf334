//! Shared by the benches that run against the local stack: the reachability check, the
//! bench topics, and what each table reports about the machine (load, other daemons, CPU).
//! Owns no measurement.

#![allow(dead_code)] // each bench uses its own part of this module

pub mod daemon;
pub mod stack;

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    ClientConfig,
};

pub const BROKER: &str = "127.0.0.1:9092";
pub const FLINK: &str = "127.0.0.1:8081";

/// Exits with a clear message unless every `(name, address)` of the local stack answers.
pub fn require(components: &[(&str, &str)]) {
    let missing: Vec<String> = components
        .iter()
        .filter(|(_, addr)| {
            let addr = addr.parse().expect("valid address");
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
        })
        .map(|(name, addr)| format!("{name} {addr}"))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "error: the local stack is not running ({} not reachable): start it with \
             `compose/local/stack up` (or `make up`), then rerun",
            missing.join(", ")
        );
        std::process::exit(1);
    }
}

/// A metadata/watermark client of the local broker.
pub fn probe() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", BROKER)
        .set("group.id", "firedrill-bench")
        .create()
        .expect("kafka client")
}

/// Creates `topic` with `partitions` unless it exists, then checks its partition count. Never
/// deletes a topic: `tansu topic delete NAME` (tansu 0.6) drops every topic of the broker.
pub fn ensure_topic(topic: &str, partitions: i32) {
    let tansu = std::env::var_os("LOCAL_STACK_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/firedrill")))
        .expect("HOME or LOCAL_STACK_CACHE")
        .join("tansu/bin/tansu");
    let out = Command::new(&tansu)
        .args(["topic", "create", "--broker", &format!("tcp://{BROKER}")])
        .args(["--partitions", &partitions.to_string(), topic])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): is the local stack installed?",
                tansu.display()
            )
        });
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    let exists = text
        .to_ascii_lowercase()
        .replace(['_', ' '], "")
        .contains("alreadyexists");
    assert!(
        out.status.success() || exists,
        "could not create topic {topic}: {text}"
    );

    let metadata = probe()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("metadata of topic {topic}: {e}"));
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len());
    assert_eq!(
        found, partitions as usize,
        "topic {topic} has {found} partitions, the bench needs {partitions}. Do not delete it \
         with `tansu topic delete`: tansu 0.6 drops every topic of the broker (and the \
         pipeline with them); reset the stack's data instead (`compose/local/stack down \
         --purge && compose/local/stack up`)"
    );
}

/// utime + stime of `/proc/<pid>` (`"self"` for this process), in clock ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name (which may hold spaces): state is field 3, utime and stime 14, 15.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux this runs on).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A bench's table: (measure, value) rows.
pub type Rows = Vec<(String, String)>;

/// Whether this is a smoke run: `cargo bench --bench NAME -- --quick`, or
/// `FIREDRILL_BENCH_QUICK` set to anything but 0.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var_os("FIREDRILL_BENCH_QUICK").is_some_and(|v| v != "0")
}

/// One row of a bench's table.
pub fn row(name: &str, value: impl ToString) -> (String, String) {
    (name.to_string(), value.to_string())
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or("n/a".into(), |l| {
        l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    })
}

/// Processes named `firedrill` (daemons of tests or of `make up`): they share the stack.
pub fn other_daemons() -> usize {
    std::fs::read_dir("/proc").map_or(0, |dir| {
        dir.flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "firedrill")
            })
            .count()
    })
}

/// Prints `rows` as a two-column table.
pub fn print_table(rows: Vec<(String, String)>) {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    println!("{:width$}  value", "measure");
    println!("{:-<width$}  {:-<40}", "", "");
    for (name, value) in rows {
        println!("{name:width$}  {value}");
    }
}
