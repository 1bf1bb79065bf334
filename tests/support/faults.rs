//! Shared by the fault-injection tests: real local processes as targets (a start script in a
//! tempdir that launches `sleep 600` in its own session and writes its pid file), the
//! `Faults` actor spawned the way the app does, and readers of `/proc` and the ledger file
//! that do not go through firedrill's own code.
//!
//! Included with `#[path = "support/faults.rs"] mod faults_support;` (the shared
//! `support/mod.rs` is not changed for it).

#![allow(dead_code)] // each test binary uses its own part of this module

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Mutex,
    time::Duration,
};

use firedrill::faults::{config::ProcessTarget, Action, Config, Faults, Handle, Target};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Starts `sleep 600` in a new session, writes its pid to `$1` (atomically, via rename) and
/// exits 0; exits 1 while a file named `fail` exists beside the script (to make reverts
/// fail on purpose).
const START_SCRIPT: &str = r#"#!/bin/sh
set -eu
dir=$(dirname "$0")
if [ -e "$dir/fail" ]; then
  echo "start refused: $dir/fail exists" >&2
  exit 1
fi
pid_file=$1
rm -f "$pid_file.new"
setsid sh -c 'echo $$ > "$0.new"; exec sleep 600' "$pid_file" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -s "$pid_file.new" ]; do
  i=$((i + 1))
  if [ "$i" -gt 400 ]; then echo "no pid written" >&2; exit 1; fi
  sleep 0.05
done
mv "$pid_file.new" "$pid_file"
"#;

/// A directory of process targets. Every process it or firedrill started for it is killed
/// when it is dropped (also when a test fails).
pub struct ProcessStack {
    pub dir: tempfile::TempDir,
    started: Mutex<Vec<i32>>,
}

impl Default for ProcessStack {
    fn default() -> Self {
        ProcessStack::new()
    }
}

impl ProcessStack {
    pub fn new() -> ProcessStack {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("start.sh");
        std::fs::write(&script, START_SCRIPT).unwrap();
        let status = Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        assert!(status.success());
        ProcessStack {
            dir,
            started: Mutex::new(Vec::new()),
        }
    }

    pub fn script(&self) -> PathBuf {
        self.dir.path().join("start.sh")
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pid"))
    }

    pub fn ledger(&self) -> PathBuf {
        self.dir.path().join("state/faults.json")
    }

    /// Runs the start script for `name`, returns the pid it wrote.
    pub fn start(&self, name: &str) -> i32 {
        let out = Command::new(self.script())
            .arg(self.pid_file(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start.sh {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pid = self.pid(name);
        self.started.lock().unwrap().push(pid);
        assert_eq!(state(pid), Some('S'), "sleep {pid} runs");
        pid
    }

    /// The pid in `name`'s pid file.
    pub fn pid(&self, name: &str) -> i32 {
        std::fs::read_to_string(self.pid_file(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The pid in `name`'s pid file if that process runs (state other than T/Z).
    pub fn running_pid(&self, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.pid_file(name))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        state(pid)
            .filter(|s| !matches!(s, 'T' | 't' | 'Z' | 'X'))
            .map(|_| pid)
    }

    /// Makes the start script fail until [`ProcessStack::heal`].
    pub fn break_start(&self) {
        std::fs::write(self.dir.path().join("fail"), b"").unwrap();
    }

    pub fn heal(&self) {
        std::fs::remove_file(self.dir.path().join("fail")).unwrap();
    }

    /// A process target of this stack.
    pub fn target(&self, name: &str, default_action: Action, group: Option<&str>) -> Target {
        Target::Process(ProcessTarget {
            pid_file: self.pid_file(name),
            start: vec![
                self.script().display().to_string(),
                self.pid_file(name).display().to_string(),
            ],
            default_action,
            group: group.map(String::from),
        })
    }

    /// A `[faults]` config with these targets (name, default action, group) and the ledger
    /// in this stack's directory.
    pub fn config(&self, targets: &[(&str, Action, Option<&str>)]) -> Config {
        Config {
            ledger: self.ledger(),
            targets: targets
                .iter()
                .map(|(name, action, group)| (name.to_string(), self.target(name, *action, *group)))
                .collect::<BTreeMap<_, _>>(),
            ..Config::default()
        }
    }
}

impl Drop for ProcessStack {
    fn drop(&mut self) {
        let mut pids = self.started.lock().unwrap().clone();
        if let Ok(dir) = std::fs::read_dir(self.dir.path()) {
            for entry in dir.flatten() {
                if entry.path().extension().is_some_and(|e| e == "pid") {
                    if let Ok(pid) = std::fs::read_to_string(entry.path()) {
                        pids.extend(pid.trim().parse::<i32>());
                    }
                }
            }
        }
        for pid in pids {
            // Only our own sleeps: a pid may have been reused by now.
            let is_ours = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\x00600"));
            if is_ours {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// The one-letter state of `pid` (`S`, `T`, `Z`, ...), `None` when it does not exist.
pub fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Gone for good: no such process, or a zombie.
pub fn gone(pid: i32) -> bool {
    matches!(state(pid), None | Some('Z' | 'X'))
}

/// Ids of the faults the ledger file lists (read as plain JSON; a missing file is empty).
pub fn ledger_ids(path: &Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_slice(&bytes).expect("ledger is JSON");
    json["faults"]
        .as_array()
        .expect("ledger has a faults array")
        .iter()
        .map(|f| f["id"].as_str().expect("fault id").to_string())
        .collect()
}

/// A `Faults` actor running in a task, as the app runs it.
pub struct Running {
    pub handle: Handle,
    pub registry: prometheus::Registry,
    pub cancel: CancellationToken,
    pub task: JoinHandle<()>,
}

impl Running {
    pub fn spawn(config: &Config) -> Running {
        let registry = prometheus::Registry::new();
        let (faults, handle) = Faults::build(config, &registry).expect("faults build");
        let cancel = CancellationToken::new();
        let task = tokio::spawn(faults.run(cancel.clone()));
        Running {
            handle,
            registry,
            cancel,
            task,
        }
    }

    /// Cancels the actor and waits for `run` to return (it reverts everything first).
    pub async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("run returns after cancel")
            .expect("run does not panic");
    }

    /// Aborts the actor without any revert: what SIGKILL of firedrill does.
    pub async fn crash(self) {
        self.task.abort();
        let result = self.task.await;
        assert!(result.unwrap_err().is_cancelled());
    }

    /// The scraped text of this actor's registry.
    pub fn metrics(&self) -> String {
        String::from_utf8(firedrill::metrics::encode(&self.registry)).unwrap()
    }
}
