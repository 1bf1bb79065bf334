//! The process backend: faults on local processes named by pid files (the local stack's
//! JVMs, tansu, ...).
//!
//! - stop: SIGTERM, wait for the exit (SIGKILL after 20 s); kill: SIGKILL, wait for the exit.
//!   Both are reverted by running the target's `start` argv (180 s, must exit 0) and checking
//!   that the pid file then names a running process. A target already running is left alone.
//! - pause: SIGSTOP to the pid; reverted by SIGCONT to that same process if it still exists.
//! - disconnect is not supported.
//!
//! Liveness and state come from `/proc/PID/stat`; a pid is only signalled while its start
//! time matches the one recorded at resolve time, so a reused pid is never touched. This
//! module does not decide when to inject or revert (the actor does).

use std::{path::Path, process::Stdio, time::Duration};

use futures_util::future::BoxFuture;
use nix::{
    errno::Errno,
    sys::signal::{kill, Signal},
    unistd::Pid,
};
use tokio::{io::AsyncReadExt, time::Instant};
use tracing::{debug, info};

use super::{
    backend::{Backend, BackendKind, Error, ProcessSubject, Subject},
    config::ProcessTarget,
    Action, Target,
};

/// How long a SIGTERM'd process gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long a SIGKILL'd process may take to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long SIGSTOP/SIGCONT may take to show in the process state.
const STATE_WAIT: Duration = Duration::from_secs(5);
/// How long the start argv may run.
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long after the start argv exits the pid file may take to name a running process.
const PID_FILE_WAIT: Duration = Duration::from_secs(10);
/// How often `/proc` is polled while waiting.
const POLL: Duration = Duration::from_millis(50);
/// Bytes of the start argv's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Signals local processes; stateless.
#[derive(Debug, Default)]
pub struct ProcessBackend;

/// The parts of `/proc/PID/stat` this backend needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// One-letter state: `R`, `S`, `D`, `T` (stopped), `Z` (zombie), ...
    pub state: char,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Parses the contents of `/proc/PID/stat`. The command name (field 2) may contain
    /// spaces and parentheses, so fields are counted after the last `)`.
    pub fn parse(text: &str) -> Option<ProcStat> {
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        // Fields 4..=21 come between the state (3) and the start time (22).
        let start_ticks = fields.nth(18)?.parse().ok()?;
        Some(ProcStat { state, start_ticks })
    }

    /// Reads the stat of `pid`; `None` when there is no such process.
    pub fn read(pid: i32) -> Option<ProcStat> {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| ProcStat::parse(&t))
    }

    /// Exists and is not a zombie.
    pub fn alive(self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// Alive and not stopped.
    pub fn running(self) -> bool {
        self.alive() && !matches!(self.state, 'T' | 't')
    }
}

impl Backend for ProcessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Process
    }

    fn resolve<'a>(
        &'a self,
        target: &'a Target,
        action: Action,
    ) -> BoxFuture<'a, Result<Subject, Error>> {
        Box::pin(async move {
            let Target::Process(target) = target else {
                return Err(Error::Unsupported("not a process target".into()));
            };
            if action == Action::Disconnect {
                return Err(Error::Unsupported(
                    "the process backend cannot disconnect".into(),
                ));
            }
            resolve(target)
        })
    }

    fn inject<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let subject = process_subject(subject)?;
            match action {
                Action::Stop => stop(subject).await,
                Action::Kill => {
                    if same_process(subject).is_some() {
                        signal(subject.pid, Signal::SIGKILL)?;
                    }
                    wait_gone(subject, KILL_WAIT).await
                }
                Action::Pause => {
                    if same_process(subject).is_none_or(|s| !s.alive()) {
                        return Err(Error::NotRunning(format!(
                            "pid {} exited before it could be paused",
                            subject.pid
                        )));
                    }
                    signal(subject.pid, Signal::SIGSTOP)?;
                    wait_state(subject, "SIGSTOP to take effect", |s| !s.running()).await
                }
                Action::Disconnect => Err(Error::Unsupported(
                    "the process backend cannot disconnect".into(),
                )),
            }
        })
    }

    fn revert<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let subject = process_subject(subject)?;
            match action {
                Action::Stop | Action::Kill => restart(subject).await,
                Action::Pause => match same_process(subject) {
                    Some(stat) if stat.alive() => {
                        signal(subject.pid, Signal::SIGCONT)?;
                        wait_state(subject, "SIGCONT to take effect", ProcStat::running).await
                    }
                    _ => {
                        info!(
                            pid = subject.pid,
                            "paused process is gone; nothing to continue"
                        );
                        Ok(())
                    }
                },
                Action::Disconnect => Err(Error::Unsupported(
                    "the process backend cannot disconnect".into(),
                )),
            }
        })
    }
}

fn process_subject(subject: &Subject) -> Result<&ProcessSubject, Error> {
    match subject {
        Subject::Process(p) => Ok(p),
        Subject::Docker(_) => Err(Error::Unsupported(
            "a docker subject given to the process backend".into(),
        )),
    }
}

/// Reads a pid file.
pub fn read_pid(path: &Path) -> Result<i32, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::PidFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| Error::PidFile {
            path: path.to_path_buf(),
            message: format!("{:?} is not a pid", text.trim()),
        })
}

/// The running process the pid file names.
fn resolve(target: &ProcessTarget) -> Result<Subject, Error> {
    let pid = read_pid(&target.pid_file)?;
    match ProcStat::read(pid) {
        Some(stat) if stat.running() => Ok(Subject::Process(ProcessSubject {
            pid,
            start_ticks: stat.start_ticks,
            pid_file: target.pid_file.clone(),
            start: target.start.clone(),
        })),
        Some(stat) => Err(Error::NotRunning(format!(
            "pid {pid} (from {}) is in state {}",
            target.pid_file.display(),
            stat.state
        ))),
        None => Err(Error::NotRunning(format!(
            "pid {pid} (from {}) does not exist",
            target.pid_file.display()
        ))),
    }
}

/// The stat of the recorded process, if that very process still exists.
fn same_process(subject: &ProcessSubject) -> Option<ProcStat> {
    ProcStat::read(subject.pid).filter(|s| s.start_ticks == subject.start_ticks)
}

fn signal(pid: i32, signal: Signal) -> Result<(), Error> {
    match kill(Pid::from_raw(pid), signal) {
        // Exited in the meantime: for the callers that is the state they wait for anyway.
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(errno) => Err(Error::Signal {
            pid,
            signal: signal.as_str(),
            errno,
        }),
    }
}

async fn stop(subject: &ProcessSubject) -> Result<(), Error> {
    if same_process(subject).is_none_or(|s| !s.alive()) {
        return Ok(());
    }
    signal(subject.pid, Signal::SIGTERM)?;
    if wait_gone(subject, STOP_GRACE).await.is_ok() {
        return Ok(());
    }
    info!(
        pid = subject.pid,
        "no exit within the stop grace; sending SIGKILL"
    );
    signal(subject.pid, Signal::SIGKILL)?;
    wait_gone(subject, KILL_WAIT).await
}

/// Waits until the recorded process no longer exists (or is a zombie).
async fn wait_gone(subject: &ProcessSubject, within: Duration) -> Result<(), Error> {
    wait_until(
        within,
        || same_process(subject).is_none_or(|s| !s.alive()),
        || format!("exit of pid {}", subject.pid),
    )
    .await
}

/// Waits until the recorded process is gone or its state satisfies `ok`.
async fn wait_state(
    subject: &ProcessSubject,
    what: &str,
    ok: impl Fn(ProcStat) -> bool,
) -> Result<(), Error> {
    wait_until(
        STATE_WAIT,
        || same_process(subject).is_none_or(&ok),
        || format!("{what} on pid {}", subject.pid),
    )
    .await
}

async fn wait_until(
    within: Duration,
    mut done: impl FnMut() -> bool,
    what: impl FnOnce() -> String,
) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what(),
                within,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The running pid the pid file names, if any.
fn running_pid(pid_file: &Path) -> Option<i32> {
    let pid = read_pid(pid_file).ok()?;
    ProcStat::read(pid).filter(|s| s.running()).map(|_| pid)
}

/// Reverts stop/kill: runs the start argv unless the target already runs again.
async fn restart(subject: &ProcessSubject) -> Result<(), Error> {
    if let Some(pid) = running_pid(&subject.pid_file) {
        if pid != subject.pid || same_process(subject).is_some() {
            debug!(pid, "target already running; nothing to start");
            return Ok(());
        }
    }
    run_start(&subject.start).await?;
    let pid_file = &subject.pid_file;
    wait_until(
        PID_FILE_WAIT,
        || running_pid(pid_file).is_some(),
        || format!("{} naming a running process", pid_file.display()),
    )
    .await?;
    info!(pid = running_pid(pid_file), "target started again");
    Ok(())
}

/// Runs `argv` (stdin and stdout null), requires exit 0 within [`START_TIMEOUT`], and keeps
/// the tail of its stderr for the error. Only the child's exit is awaited, not the end of
/// its stderr: a daemon it launches may keep that pipe open.
async fn run_start(argv: &[String]) -> Result<(), Error> {
    let start_err = |message: String| Error::Start {
        argv: argv.to_vec(),
        message,
    };
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| start_err("empty argv".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| start_err(format!("cannot run: {e}")))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let mut tail = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut stderr_open = true;
    let deadline = tokio::time::sleep(START_TIMEOUT);
    tokio::pin!(deadline);
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| start_err(format!("wait: {e}")))?,
            read = stderr.read(&mut chunk), if stderr_open => match read {
                Ok(0) | Err(_) => stderr_open = false,
                Ok(n) => keep_tail(&mut tail, &chunk[..n]),
            },
            _ = &mut deadline => {
                let _ = child.kill().await;
                return Err(start_err(format!(
                    "still running after {}{}",
                    humantime::format_duration(START_TIMEOUT),
                    stderr_suffix(&tail)
                )));
            }
        }
    };
    // Whatever the child wrote just before exiting is in the pipe already; take what is
    // there without waiting for a daemon that inherited the pipe to close it.
    while stderr_open {
        match tokio::time::timeout(Duration::from_millis(100), stderr.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => keep_tail(&mut tail, &chunk[..n]),
            _ => stderr_open = false,
        }
    }
    if status.success() {
        Ok(())
    } else {
        Err(start_err(format!("{status}{}", stderr_suffix(&tail))))
    }
}

fn keep_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    tail.extend_from_slice(bytes);
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
    }
}

fn stderr_suffix(tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    let text = text.trim();
    if text.is_empty() {
        String::new()
    } else {
        format!("; stderr: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_the_command_name() {
        let text = "4242 (java (main) x) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let stat = ProcStat::parse(text).unwrap();
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.start_ticks, 987654);
        assert!(stat.running());
        let stopped = ProcStat::parse(&text.replace(") S ", ") T ")).unwrap();
        assert!(stopped.alive() && !stopped.running());
        let zombie = ProcStat::parse(&text.replace(") S ", ") Z ")).unwrap();
        assert!(!zombie.alive());
        assert_eq!(ProcStat::parse("garbage"), None);
    }

    #[test]
    fn our_own_process_is_running() {
        let stat = ProcStat::read(std::process::id() as i32).unwrap();
        assert!(stat.running());
    }

    #[tokio::test]
    async fn a_failing_start_reports_its_stderr_tail() {
        let argv = [
            "sh",
            "-c",
            "echo starting >&2; echo broken config >&2; exit 3",
        ]
        .map(String::from);
        let err = run_start(&argv).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.contains("starting\nbroken config"), "{msg}");
        run_start(&["true".to_string()]).await.unwrap();
    }

    #[tokio::test]
    async fn a_start_that_leaves_a_daemon_holding_stderr_returns_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("daemon.pid");
        // The background sleep inherits stderr and keeps it open after sh exits.
        let script = format!(
            "sleep 30 & echo $! > {}; echo started >&2",
            pid_file.display()
        );
        let started = Instant::now();
        run_start(&["sh".to_string(), "-c".to_string(), script])
            .await
            .unwrap();
        let pid = read_pid(&pid_file).unwrap();
        signal(pid, Signal::SIGKILL).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
