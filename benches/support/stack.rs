//! The local stack as the soak and latency benches drive it: `compose/local/stack` commands,
//! the CPU of its processes (by their pid files), Flink's job, and the stack's own daemon kept
//! out of the way while a bench runs its own.

use std::{
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use super::{clock_ticks, cpu_ticks};

/// Processes of the stack whose CPU the benches report.
pub const ENGINE: [&str; 4] = ["kafka", "jobmanager", "taskmanager-1", "taskmanager-2"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn stack_dir() -> PathBuf {
    std::env::var_os("LOCAL_STACK_DIR").map_or_else(|| repo().join(".stack"), PathBuf::from)
}

/// Runs `compose/local/stack ARGS` with `env`; panics with its output when it fails.
pub fn stack(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::new(repo().join("compose/local/stack"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run compose/local/stack");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "compose/local/stack {}: {}\n{text}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The pid in the stack's pid file of `component`, if it is running.
pub fn pid(component: &str) -> Option<String> {
    let pid = std::fs::read_to_string(stack_dir().join(format!("pids/{component}.pid"))).ok()?;
    let pid = pid.trim().to_string();
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// CPU ticks of some processes at one instant.
pub struct Cpu {
    at: Instant,
    /// (name, pid, ticks).
    ticks: Vec<(String, String, Option<u64>)>,
}

impl Cpu {
    /// Reads `(name, pid)` pairs now.
    pub fn now(processes: &[(String, String)]) -> Cpu {
        Cpu {
            at: Instant::now(),
            ticks: processes
                .iter()
                .map(|(name, pid)| (name.clone(), pid.clone(), cpu_ticks(pid)))
                .collect(),
        }
    }

    /// `name: N %` of one core for each process of `earlier` since then, matched by name:
    /// "not running" when it is not now, "restarted" when its pid changed.
    pub fn since(&self, earlier: &Cpu) -> String {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        let tick = clock_ticks();
        earlier
            .ticks
            .iter()
            .map(
                |(name, pid, then)| match self.ticks.iter().find(|(n, _, _)| n == name) {
                    None => format!("{name} not running"),
                    Some((_, now_pid, _)) if now_pid != pid => format!("{name} restarted"),
                    Some((_, _, now)) => match (now, then) {
                        (Some(now), Some(then)) if now >= then => {
                            format!("{name} {:.1} %", (now - then) as f64 / tick / wall * 100.0)
                        }
                        _ => format!("{name} not running"),
                    },
                },
            )
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `(name, pid)` of every running process of [`ENGINE`].
pub fn engine_processes() -> Vec<(String, String)> {
    ENGINE
        .iter()
        .filter_map(|c| Some((c.to_string(), pid(c)?)))
        .collect()
}

/// The stack's own daemon (`make up`) stopped for as long as this lives, so that the bench's
/// daemon is the only one writing orders; started again when dropped if it was running.
pub struct StackDaemonPaused {
    was_running: bool,
}

impl StackDaemonPaused {
    pub fn new() -> Self {
        let was_running = pid("firedrill").is_some();
        if was_running {
            stack(&["stop", "firedrill"], &[]);
            println!("the stack's own daemon is stopped for the bench (started again at the end)");
        }
        StackDaemonPaused { was_running }
    }
}

impl Drop for StackDaemonPaused {
    fn drop(&mut self) {
        if self.was_running {
            stack(&["start", "firedrill"], &[]);
        }
    }
}

/// Id and state of the Flink job that is not in a terminal state, if any.
pub fn active_job() -> Option<(String, String)> {
    let body = curl::get(&format!("http://{}/jobs/overview", super::FLINK))?;
    let jobs: serde_json::Value = serde_json::from_str(&body).ok()?;
    jobs["jobs"].as_array()?.iter().find_map(|job| {
        let state = job["state"].as_str()?;
        let id = job["jid"].as_str()?;
        (!matches!(state, "FINISHED" | "CANCELED" | "FAILED"))
            .then(|| (id.to_string(), state.to_string()))
    })
}

/// Cancels the active job and submits `sql/orders.sql` again with `env` (from the group's
/// committed offsets, as `stack submit` does); returns once it runs.
pub fn resubmit(env: &[(&str, &str)]) {
    if let Some((job, _)) = active_job() {
        curl::patch(&format!("http://{}/jobs/{job}?mode=cancel", super::FLINK));
        let until = Instant::now() + Duration::from_secs(60);
        while active_job().is_some() {
            assert!(Instant::now() < until, "job {job} not cancelled after 60 s");
            thread::sleep(Duration::from_millis(250));
        }
    }
    stack(&["submit"], env);
}

/// Blocking HTTP for a few Flink REST calls, over `curl` (no blocking client in the deps).
mod curl {
    use std::process::Command;

    pub fn get(url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-fsS", "-m", "5", url])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn patch(url: &str) {
        let out = Command::new("curl")
            .args(["-fsS", "-m", "10", "-X", "PATCH", url])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "PATCH {url}: {out:?}");
    }
}
