//! The [`Backend`] trait every way of breaking a target implements, and the [`Subject`] a
//! backend records so that a fault can be reverted from the ledger alone.
//!
//! A backend is stateless with respect to faults: the actor owns which faults exist, the
//! backend only resolves targets, injects and reverts. Reverts must be idempotent (reverting
//! something already healthy succeeds without touching it), because the ledger may hold a
//! fault that never took effect (firedrill died between writing the ledger and injecting) or
//! was already reverted (it died between reverting and removing the entry).

use std::path::PathBuf;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::{Action, Target};

/// Which backend a target uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Signals to a local process (`process.rs`).
    Process,
    /// The Docker engine (`docker.rs`).
    Docker,
}

impl BackendKind {
    /// The lowercase name, as in the config and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Process => "process",
            BackendKind::Docker => "docker",
        }
    }
}

/// The concrete thing a fault was injected into, resolved when the fault was requested and
/// persisted in the ledger; with it a revert needs no config lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Subject {
    /// A local process.
    Process(ProcessSubject),
    /// A Docker container.
    Docker(DockerSubject),
}

impl Subject {
    /// The backend that handles this subject.
    pub fn backend(&self) -> BackendKind {
        match self {
            Subject::Process(_) => BackendKind::Process,
            Subject::Docker(_) => BackendKind::Docker,
        }
    }
}

/// A process as it was when the fault was injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSubject {
    /// Its pid.
    pub pid: i32,
    /// Its start time (clock ticks after boot, `/proc/PID/stat` field 22), so that a reused
    /// pid is never signalled.
    pub start_ticks: u64,
    /// The target's pid file, checked after a restart.
    pub pid_file: PathBuf,
    /// The target's start argv, run to revert stop and kill.
    pub start: Vec<String>,
}

/// A container as it was when the fault was injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerSubject {
    /// Full container id.
    pub container_id: String,
    /// Container name (for messages).
    pub container_name: String,
    /// The compose service it was found by, if any: if the container is gone at revert time
    /// (compose recreated it), a running container of the same service counts as reverted.
    #[serde(default)]
    pub service: Option<String>,
    /// For `disconnect`: the network it was disconnected from.
    #[serde(default)]
    pub network: Option<String>,
    /// For `disconnect`: its aliases on that network, restored on reconnect.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Breaks targets of one kind and puts them back. Methods return boxed futures so that the
/// actor can hold backends as `Arc<dyn Backend>` and run them in spawned tasks.
pub trait Backend: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Finds what `target` is right now for `action` (pid, container id, network aliases)
    /// and checks that it is running. No side effects.
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
        action: Action,
    ) -> BoxFuture<'a, Result<Subject, Error>>;

    /// Applies `action` to `subject`; returns once the fault is in effect.
    fn inject<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>>;

    /// Undoes `action` on `subject`; returns once the target is healthy again. Idempotent.
    fn revert<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// What a backend could not do; `kind()` is a bounded label value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pid file could not be read or does not hold a pid.
    #[error("pid file {path}: {message}")]
    PidFile { path: PathBuf, message: String },
    /// The target is not running (or not in the state the action needs).
    #[error("{0}")]
    NotRunning(String),
    /// A signal could not be sent.
    #[error("{signal} to pid {pid}: {errno}")]
    Signal {
        pid: i32,
        signal: &'static str,
        errno: nix::errno::Errno,
    },
    /// Something did not happen in time.
    #[error("{what} did not happen within {}", humantime::format_duration(*.within))]
    Timeout {
        what: String,
        within: std::time::Duration,
    },
    /// The start argv failed.
    #[error("start command {argv:?}: {message}")]
    Start { argv: Vec<String>, message: String },
    /// The Docker engine refused or could not be reached.
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// The subject or action does not belong to this backend (a programming error or a
    /// hand-edited ledger).
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    /// A bounded label value naming the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::PidFile { .. } => "pid_file",
            Error::NotRunning(_) => "not_running",
            Error::Signal { .. } => "signal",
            Error::Timeout { .. } => "timeout",
            Error::Start { .. } => "start_failed",
            Error::Docker(_) => "docker",
            Error::Unsupported(_) => "unsupported",
        }
    }
}
