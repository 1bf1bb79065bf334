//! Fault injection that reverts by construction: stop, kill, pause or disconnect one part of
//! the pipeline for a bounded time, and always put it back.
//!
//! - `config`: `[faults]`, its targets (by backend), groups and the pure choice of a group
//!   member;
//! - `ledger`: the persisted list of faults in effect (atomic JSON file);
//! - `backend`: the [`Backend`] trait and what a backend records to revert without config;
//! - `process`: signals to a pid from a pid file, restart by running an argv;
//! - `docker`: stop/kill/pause/disconnect of a container through the Docker engine (bollard);
//! - `actor`: the [`Faults`] actor that owns the ledger and every fault's lifecycle, the
//!   [`Backends`] it breaks targets with (real, or scripted fakes in its tests), and the
//!   [`Handle`] the HTTP API and drills use.
//!
//! The guarantees (see `actor` for how they are kept): a fault is in the ledger before it
//! touches anything and leaves it only after its revert succeeded; every fault has a
//! duration of at most `max_duration` and reverts itself when it runs out; startup reverts
//! whatever the ledger still holds; cancellation reverts everything before `run` returns; a
//! failed revert is retried with backoff until it succeeds.
//!
//! This module does not own HTTP routes, auth or the CLI (`http`), nor the drill scenarios
//! that decide when to inject (`drills`).

mod actor;
pub mod backend;
pub mod config;
pub mod docker;
pub mod ledger;
pub mod process;

use std::{fmt, time::Duration};

use serde::{Deserialize, Deserializer, Serialize};

pub use self::{
    actor::{Backends, Faults, Handle, SHUTDOWN_GRACE},
    backend::{Backend, BackendKind, Subject},
    config::{Config, Target},
};

/// What a fault does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Graceful stop (SIGTERM / `docker stop`); reverted by starting it again.
    Stop,
    /// Hard kill (SIGKILL / `docker kill`); reverted by starting it again.
    Kill,
    /// Freeze (SIGSTOP / `docker pause`); reverted by SIGCONT / `docker unpause`.
    Pause,
    /// Disconnect from a Docker network; reverted by connecting it again.
    Disconnect,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 4] = [
        Action::Stop,
        Action::Kill,
        Action::Pause,
        Action::Disconnect,
    ];

    /// The lowercase name (also the metric label value).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Stop => "stop",
            Action::Kill => "kill",
            Action::Pause => "pause",
            Action::Disconnect => "disconnect",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a fault stands, as reported to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultState {
    /// In effect (or being injected or reverted right now).
    Active,
    /// Reverted; it is no longer in the ledger.
    Reverted,
    /// Its last revert failed; it stays in the ledger and is retried with backoff.
    RevertFailing,
}

/// One fault as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultView {
    /// Unique id, e.g. `f-19a6b2c3d4e-1`.
    pub id: String,
    /// The target it was injected into (a group alias is resolved to a member).
    pub target: String,
    /// What it does.
    pub action: Action,
    /// `process` or `docker`.
    pub backend: &'static str,
    /// When it was written to the ledger, unix ms.
    pub injected_at_ms: i64,
    /// When it reverts itself at the latest, unix ms.
    pub revert_by_ms: i64,
    /// When its revert succeeded, unix ms.
    pub reverted_at_ms: Option<i64>,
    /// Where it stands.
    pub state: FaultState,
    /// The last revert error, while reverts fail.
    pub last_error: Option<String>,
}

/// A configured target or group, as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetView {
    /// Target or group name (the `/faults/{name}` path segment).
    pub name: String,
    /// `process` or `docker` (a group's members share one backend).
    pub backend: &'static str,
    /// The action when a request names none; `None` for a group whose members differ.
    pub default_action: Option<Action>,
    /// Actions this target (every member, for a group) supports.
    pub actions: Vec<Action>,
    /// The group this target belongs to, if any.
    pub group: Option<String>,
    /// For a group: its members, in the order they are tried. Empty for a target.
    pub members: Vec<String>,
}

/// A request to inject a fault (the JSON body of `POST /faults/{target}`, all fields
/// optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest {
    /// Target or group name; taken from the URL path, not the body.
    #[serde(skip)]
    pub target: String,
    /// The action; the target's `default_action` when absent.
    #[serde(default)]
    pub action: Option<Action>,
    /// How long the fault lasts (`"30s"`, `"2m"`); `default_duration` when absent. Must be
    /// greater than zero and at most `max_duration`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub duration: Option<Duration>,
}

impl InjectRequest {
    /// A request for `target` with its default action and duration.
    pub fn new(target: impl Into<String>) -> Self {
        InjectRequest {
            target: target.into(),
            ..InjectRequest::default()
        }
    }

    /// The same request with `action`.
    pub fn action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// The same request with `duration`.
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = Some(duration);
        self
    }
}

/// A humantime duration string, or null; zero is rejected here (the upper bound is the
/// actor's, which knows `max_duration`).
fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let parsed = humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("not a duration ({e}): {s:?}")))?;
    if parsed.is_zero() {
        return Err(serde::de::Error::custom(
            "duration must be greater than zero",
        ));
    }
    Ok(Some(parsed))
}

/// A fault request or operation that failed; `kind()` is a bounded label value. (The status
/// the HTTP API answers with is `http::faults`'.)
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No target or group of that name is configured.
    #[error("unknown fault target {0:?}")]
    UnknownTarget(String),
    /// The target's backend (or its config) cannot do that action.
    #[error("target {target} ({backend}) does not support action {action}{}", reason_suffix(.reason))]
    UnsupportedAction {
        target: String,
        action: Action,
        backend: &'static str,
        reason: Option<String>,
    },
    /// The requested duration exceeds `max_duration`.
    #[error("duration {} exceeds max_duration {}", humantime::format_duration(*.requested), humantime::format_duration(*.max))]
    DurationTooLong { requested: Duration, max: Duration },
    /// The requested duration is zero.
    #[error("duration must be greater than zero")]
    ZeroDuration,
    /// The target already has a fault in effect.
    #[error("target {target} already has fault {fault_id} in effect")]
    Conflict { target: String, fault_id: String },
    /// Every member of a group has a fault in effect or is not running.
    #[error("no member of group {group} can take a fault: {reason}")]
    NoEligibleMember { group: String, reason: String },
    /// No fault of that id is in effect.
    #[error("no fault {0:?} is in effect")]
    NotFound(String),
    /// The backend failed to resolve, inject or revert.
    #[error("{action} {target}: {source}")]
    Backend {
        target: String,
        action: Action,
        #[source]
        source: std::sync::Arc<backend::Error>,
    },
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config_value::Invalid),
    /// The actor is not running (shutting down or never started).
    #[error("fault injection is stopped")]
    Stopped,
}

fn reason_suffix(reason: &Option<String>) -> String {
    reason
        .as_ref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

impl Error {
    /// A bounded label value naming the variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::UnknownTarget(_) => "unknown_target",
            Error::UnsupportedAction { .. } => "unsupported_action",
            Error::DurationTooLong { .. } => "duration_too_long",
            Error::ZeroDuration => "zero_duration",
            Error::Conflict { .. } => "conflict",
            Error::NoEligibleMember { .. } => "no_eligible_member",
            Error::NotFound(_) => "not_found",
            Error::Backend { .. } => "backend",
            Error::Ledger(_) => "ledger",
            Error::Config(_) => "config",
            Error::Stopped => "stopped",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_durations_and_reject_zero_and_unknown_fields() {
        let req: InjectRequest =
            serde_json::from_str(r#"{"action":"pause","duration":"1m 30s"}"#).unwrap();
        assert_eq!(req.action, Some(Action::Pause));
        assert_eq!(req.duration, Some(Duration::from_secs(90)));
        let req: InjectRequest = serde_json::from_str("{}").unwrap();
        assert_eq!((req.action, req.duration), (None, None));
        let err = serde_json::from_str::<InjectRequest>(r#"{"duration":"0s"}"#).unwrap_err();
        assert!(err.to_string().contains("greater than zero"), "{err}");
        let err = serde_json::from_str::<InjectRequest>(r#"{"duration":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
        assert!(serde_json::from_str::<InjectRequest>(r#"{"target":"x"}"#).is_err());
        assert!(serde_json::from_str::<InjectRequest>(r#"{"action":"explode"}"#).is_err());
    }

    #[test]
    fn errors_say_what_went_wrong_and_name_their_kind() {
        let too_long = Error::DurationTooLong {
            requested: Duration::from_secs(3600),
            max: Duration::from_secs(600),
        };
        assert_eq!(too_long.to_string(), "duration 1h exceeds max_duration 10m");
        let conflict = Error::Conflict {
            target: "kafka".into(),
            fault_id: "f-1".into(),
        };
        assert_eq!(conflict.kind(), "conflict");
        let unsupported = Error::UnsupportedAction {
            target: "kafka".into(),
            action: Action::Disconnect,
            backend: "process",
            reason: None,
        };
        assert_eq!(
            unsupported.to_string(),
            "target kafka (process) does not support action disconnect"
        );
    }
}
