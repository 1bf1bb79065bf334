//! `[faults]`: the ledger path, duration limits and the targets faults may be injected into,
//! plus the pure part of resolving a name to a target or a group member.
//!
//! Owns what a target is (backend settings, default action, group) and which actions each
//! supports. It does not check that a target exists or runs (the backends do, at inject time).

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    time::Duration,
};

use serde::Deserialize;

use super::{Action, BackendKind};
use crate::config_value::Invalid;

/// `[faults]`: limits, the ledger and the targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The persisted fault ledger (JSON). Its parent directory is created at start.
    pub ledger: PathBuf,
    /// No fault may last longer than this.
    #[serde(deserialize_with = "crate::config_value::duration::deserialize")]
    pub max_duration: Duration,
    /// The duration of a fault whose request names none; at most `max_duration`.
    #[serde(deserialize_with = "crate::config_value::duration::deserialize")]
    pub default_duration: Duration,
    /// The network `disconnect` cuts for every docker target that names no `network` of its
    /// own (compose sets it once for whichever engine runs).
    pub docker_network: Option<String>,
    /// Targets by name (the `/faults/{name}` path segment). Setting any target replaces the
    /// default set (the local stack's kafka, jobmanager, taskmanager-1 and taskmanager-2).
    pub targets: BTreeMap<String, Target>,
}

/// One thing faults can be injected into, by backend (`backend = "process" | "docker"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Target {
    /// A local process found through its pid file.
    Process(ProcessTarget),
    /// A Docker container, by name or compose service.
    Docker(DockerTarget),
}

/// `backend = "process"`: a process named by a pid file, restarted by running an argv.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessTarget {
    /// File holding the target's pid (relative paths are relative to the working directory).
    pub pid_file: PathBuf,
    /// Argv run to start the target again after stop/kill; must exit 0 within 180 s and leave
    /// `pid_file` naming a live process.
    pub start: Vec<String>,
    /// The action when a request names none.
    pub default_action: Action,
    /// A group this target belongs to; the group's name then means "any one free member".
    #[serde(default)]
    pub group: Option<String>,
}

/// `backend = "docker"`: a container, by name or by compose service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerTarget {
    /// Container name or id. Exactly one of `container` and `service` is set.
    #[serde(default)]
    pub container: Option<String>,
    /// Compose service: the first running container labelled
    /// `com.docker.compose.service=<service>`.
    #[serde(default)]
    pub service: Option<String>,
    /// Network the `disconnect` action disconnects the container from.
    #[serde(default)]
    pub network: Option<String>,
    /// The action when a request names none.
    pub default_action: Action,
    /// A group this target belongs to; the group's name then means "any one free member".
    #[serde(default)]
    pub group: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let local = |name: &str, default_action, group: Option<&str>| {
            let target = Target::Process(ProcessTarget {
                pid_file: PathBuf::from(format!(".stack/pids/{name}.pid")),
                start: ["compose/local/stack", "start", name]
                    .map(String::from)
                    .to_vec(),
                default_action,
                group: group.map(String::from),
            });
            (name.to_string(), target)
        };
        Config {
            ledger: PathBuf::from(".stack/firedrill/faults.json"),
            max_duration: Duration::from_secs(600),
            default_duration: Duration::from_secs(30),
            docker_network: None,
            targets: [
                local("kafka", Action::Stop, None),
                local("jobmanager", Action::Kill, None),
                local("taskmanager-1", Action::Kill, Some("taskmanager")),
                local("taskmanager-2", Action::Kill, Some("taskmanager")),
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl Target {
    /// The backend that handles this target.
    pub fn backend(&self) -> BackendKind {
        match self {
            Target::Process(_) => BackendKind::Process,
            Target::Docker(_) => BackendKind::Docker,
        }
    }

    /// The action when a request names none.
    pub fn default_action(&self) -> Action {
        match self {
            Target::Process(t) => t.default_action,
            Target::Docker(t) => t.default_action,
        }
    }

    /// The group this target belongs to.
    pub fn group(&self) -> Option<&str> {
        match self {
            Target::Process(t) => t.group.as_deref(),
            Target::Docker(t) => t.group.as_deref(),
        }
    }

    /// Whether this target can take `action`; `Err` says why not.
    pub fn supports(&self, action: Action) -> Result<(), String> {
        match (self, action) {
            (Target::Process(_), Action::Disconnect) => {
                Err("the process backend cannot disconnect".into())
            }
            (Target::Docker(t), Action::Disconnect) if t.network.is_none() => {
                Err("disconnect needs `network` in the target's config".into())
            }
            _ => Ok(()),
        }
    }

    /// Every action this target supports.
    pub fn actions(&self) -> Vec<Action> {
        Action::ALL
            .into_iter()
            .filter(|a| self.supports(*a).is_ok())
            .collect()
    }
}

/// What a name in a request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named<'a> {
    /// A configured target.
    Target(&'a Target),
    /// A group of targets (see [`Config::members`]).
    Group,
}

impl Config {
    /// Gives `docker_network` to every docker target without a `network` of its own.
    pub fn with_docker_network(mut self) -> Config {
        if let Some(network) = &self.docker_network {
            for target in self.targets.values_mut() {
                if let Target::Docker(t) = target {
                    t.network.get_or_insert_with(|| network.clone());
                }
            }
        }
        self
    }

    /// Checks values serde cannot: limits, backend settings, actions and group names. Keys in
    /// messages are full paths, e.g. `faults.targets.kafka.start: must not be empty`.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.ledger.as_os_str().is_empty() {
            return Err(Invalid::new("faults.ledger", "must not be empty"));
        }
        if self.default_duration > self.max_duration {
            return Err(Invalid::new(
                "faults.default_duration",
                format!(
                    "above faults.max_duration ({})",
                    humantime::format_duration(self.max_duration)
                ),
            ));
        }
        if self.docker_network.as_deref() == Some("") {
            return Err(Invalid::new("faults.docker_network", "must not be empty"));
        }
        let mut group_backends: HashMap<&str, (BackendKind, &str)> = HashMap::new();
        for (name, target) in &self.targets {
            let key = format!("faults.targets.{name}");
            check_name(name).map_err(|m| Invalid::new(&key, m))?;
            match target {
                Target::Process(t) => {
                    if t.pid_file.as_os_str().is_empty() {
                        return Err(Invalid::new(format!("{key}.pid_file"), "must not be empty"));
                    }
                    if t.start.first().is_none_or(|program| program.is_empty()) {
                        return Err(Invalid::new(format!("{key}.start"), "must not be empty"));
                    }
                }
                Target::Docker(t) => {
                    match (&t.container, &t.service) {
                        (Some(_), Some(_)) | (None, None) => {
                            return Err(Invalid::new(
                                &key,
                                "set exactly one of `container` and `service`",
                            ))
                        }
                        _ => {}
                    }
                    for (field, value) in [
                        ("container", &t.container),
                        ("service", &t.service),
                        ("network", &t.network),
                    ] {
                        if value.as_deref() == Some("") {
                            return Err(Invalid::new(
                                format!("{key}.{field}"),
                                "must not be empty",
                            ));
                        }
                    }
                }
            }
            let action = target.default_action();
            if let Err(why) = target.supports(action) {
                return Err(Invalid::new(
                    format!("{key}.default_action"),
                    format!("{action} is not supported: {why}"),
                ));
            }
            if let Some(group) = target.group() {
                let key = format!("{key}.group");
                check_name(group).map_err(|m| Invalid::new(&key, m))?;
                if self.targets.contains_key(group) {
                    return Err(Invalid::new(
                        key,
                        format!("{group:?} is also a target's name"),
                    ));
                }
                match group_backends.get(group) {
                    Some((backend, first)) if *backend != target.backend() => {
                        return Err(Invalid::new(
                            key,
                            format!(
                                "members of group {group:?} must share one backend ({first} is {})",
                                backend.as_str()
                            ),
                        ))
                    }
                    Some(_) => {}
                    None => {
                        group_backends.insert(group, (target.backend(), name));
                    }
                }
            }
        }
        Ok(())
    }

    /// Groups and their members, members in name order.
    pub fn groups(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, target) in &self.targets {
            if let Some(group) = target.group() {
                groups.entry(group).or_default().push(name);
            }
        }
        groups
    }

    /// What `name` means, if anything.
    pub fn named(&self, name: &str) -> Option<Named<'_>> {
        if let Some(target) = self.targets.get(name) {
            return Some(Named::Target(target));
        }
        self.targets
            .values()
            .any(|t| t.group() == Some(name))
            .then_some(Named::Group)
    }

    /// The members of group `group`, in name order.
    pub fn members(&self, group: &str) -> Vec<&str> {
        self.targets
            .iter()
            .filter(|(_, t)| t.group() == Some(group))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// The members of a group that may take a new fault, in the order to try them: those
/// without a fault in effect (`busy` maps a target to its fault's id). `Err` says why none.
pub fn free_members<'a>(
    members: &[&'a str],
    busy: &HashMap<String, String>,
) -> Result<Vec<&'a str>, String> {
    let free: Vec<&str> = members
        .iter()
        .copied()
        .filter(|m| !busy.contains_key(*m))
        .collect();
    if free.is_empty() {
        let taken: Vec<String> = members
            .iter()
            .map(|m| format!("{m} has {}", busy[*m]))
            .collect();
        return Err(format!(
            "every member has a fault in effect ({})",
            taken.join(", ")
        ));
    }
    Ok(free)
}

/// Target and group names appear in URL paths and metric labels: keep them plain.
/// Path segments of fixed routes under `/faults/`: a target of that name would be unreachable.
const RESERVED_NAMES: [&str; 2] = ["reset", "targets"];

fn check_name(name: &str) -> Result<(), String> {
    if RESERVED_NAMES.contains(&name) {
        return Err(format!(
            "name {name:?} is taken by the route /faults/{name}; choose another"
        ));
    }
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config = toml::from_str::<Config>(text)
            .map_err(|e| e.to_string())?
            .with_docker_network();
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn a_target_cannot_take_the_name_of_a_route() {
        let err = parse(
            "[targets.reset]\nbackend = \"process\"\npid_file = \"p\"\nstart = [\"s\"]\ndefault_action = \"kill\"\n",
        )
        .unwrap_err();
        assert!(err.contains("taken by the route /faults/reset"), "{err}");
    }

    #[test]
    fn the_default_is_the_local_stack() {
        let config = parse("").unwrap();
        assert_eq!(config.ledger, PathBuf::from(".stack/firedrill/faults.json"));
        assert_eq!(config.max_duration, Duration::from_secs(600));
        assert_eq!(config.default_duration, Duration::from_secs(30));
        let names: Vec<&str> = config.targets.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["jobmanager", "kafka", "taskmanager-1", "taskmanager-2"]
        );
        let Target::Process(kafka) = &config.targets["kafka"] else {
            panic!("kafka is a process target");
        };
        assert_eq!(kafka.pid_file, PathBuf::from(".stack/pids/kafka.pid"));
        assert_eq!(kafka.start, ["compose/local/stack", "start", "kafka"]);
        assert_eq!(kafka.default_action, Action::Stop);
        assert_eq!(config.targets["jobmanager"].default_action(), Action::Kill);
        assert_eq!(
            config.groups()["taskmanager"],
            ["taskmanager-1", "taskmanager-2"]
        );
        assert_eq!(config.named("taskmanager"), Some(Named::Group));
        assert_eq!(config.named("nope"), None);
    }

    #[test]
    fn the_documented_example_parses() {
        let config = parse(
            r#"
            ledger = "x/faults.json"
            max_duration = "10m"
            default_duration = "30s"
            [targets.kafka]
            backend = "process"
            pid_file = ".stack/pids/kafka.pid"
            start = ["compose/local/stack", "start", "kafka"]
            default_action = "stop"
            [targets.taskmanager-1]
            backend = "process"
            pid_file = ".stack/pids/taskmanager-1.pid"
            start = ["compose/local/stack", "start", "taskmanager-1"]
            default_action = "kill"
            group = "taskmanager"
            [targets.broker]
            backend = "docker"
            container = "firedrill-kafka"
            network = "firedrill"
            default_action = "pause"
            "#,
        )
        .unwrap();
        assert_eq!(config.targets.len(), 3);
        let broker = &config.targets["broker"];
        assert_eq!(broker.backend(), BackendKind::Docker);
        assert_eq!(broker.actions(), Action::ALL);
        assert_eq!(
            config.targets["kafka"].actions(),
            [Action::Stop, Action::Kill, Action::Pause]
        );
    }

    #[test]
    fn invalid_configs_name_their_key() {
        let process = |extra: &str| {
            format!("[targets.kafka]\nbackend = \"process\"\npid_file = \"k.pid\"\n{extra}\n")
        };
        let cases = [
            (
                "default_duration = \"11m\"".to_string(),
                "faults.default_duration: above faults.max_duration (10m)",
            ),
            (
                process("start = []\ndefault_action = \"stop\""),
                "faults.targets.kafka.start: must not be empty",
            ),
            (
                process("start = [\"s\"]\ndefault_action = \"disconnect\""),
                "faults.targets.kafka.default_action: disconnect is not supported: the process backend cannot disconnect",
            ),
            (
                "[targets.b]\nbackend = \"docker\"\ndefault_action = \"pause\"".to_string(),
                "faults.targets.b: set exactly one of `container` and `service`",
            ),
            (
                "[targets.b]\nbackend = \"docker\"\ncontainer = \"c\"\nservice = \"s\"\ndefault_action = \"pause\"".to_string(),
                "faults.targets.b: set exactly one of `container` and `service`",
            ),
            (
                "[targets.b]\nbackend = \"docker\"\ncontainer = \"c\"\ndefault_action = \"disconnect\"".to_string(),
                "faults.targets.b.default_action: disconnect is not supported: disconnect needs `network` in the target's config",
            ),
            (
                "[targets.tm]\nbackend = \"docker\"\ncontainer = \"c\"\ndefault_action = \"kill\"\ngroup = \"b\"\n[targets.b]\nbackend = \"docker\"\ncontainer = \"d\"\ndefault_action = \"kill\"".to_string(),
                "faults.targets.tm.group: \"b\" is also a target's name",
            ),
            (
                "[targets.a]\nbackend = \"docker\"\ncontainer = \"c\"\ndefault_action = \"kill\"\ngroup = \"g\"\n[targets.b]\nbackend = \"process\"\npid_file = \"p\"\nstart = [\"s\"]\ndefault_action = \"kill\"\ngroup = \"g\"".to_string(),
                "faults.targets.b.group: members of group \"g\" must share one backend (a is docker)",
            ),
            (
                "[targets.\"a b\"]\nbackend = \"docker\"\ncontainer = \"c\"\ndefault_action = \"kill\"".to_string(),
                "faults.targets.a b: name \"a b\" must be 1 to 64 letters, digits, '-', '_' or '.'",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(&text).unwrap_err(), expected, "for {text}");
        }
        // Type errors are serde's, before validation.
        assert!(parse("max_duration = \"0s\"").is_err());
        assert!(parse(&process(
            "start = [\"s\"]\ndefault_action = \"stop\"\nnetwork = \"n\""
        ))
        .is_err());
        assert!(parse("[targets.x]\nbackend = \"ssh\"").is_err());
    }

    #[test]
    fn the_root_loader_reports_faults_keys() {
        let load = |text: &str| {
            crate::config::Config::from_toml(text, "t.toml", std::iter::empty())
                .map(|c| c.faults)
                .map_err(|e| e.to_string())
        };
        assert_eq!(load("").unwrap().targets.len(), 4);
        let err = load(
            "[faults.targets.kafka]\nbackend = \"process\"\npid_file = \"k\"\nstart = []\ndefault_action = \"stop\"\n",
        )
        .unwrap_err();
        assert_eq!(err, "faults.targets.kafka.start: must not be empty");
        let err = load("[faults]\nmax_duration = \"0s\"\n").unwrap_err();
        assert_eq!(err, "faults.max_duration: must be greater than zero");
        let err = load(
            "[faults.targets.b]\nbackend = \"docker\"\ncontainer = \"c\"\ndefault_action = \"pause\"\nnetwrok = \"n\"\n",
        )
        .unwrap_err();
        assert!(err.starts_with("faults.targets.b"), "{err}");
        assert!(err.contains("unknown field `netwrok`"), "{err}");
    }

    #[test]
    fn free_members_skip_busy_ones_and_say_why_none() {
        let members = ["tm-1", "tm-2", "tm-3"];
        let mut busy = HashMap::new();
        assert_eq!(free_members(&members, &busy).unwrap(), members);
        busy.insert("tm-1".to_string(), "f-1".to_string());
        busy.insert("tm-3".to_string(), "f-3".to_string());
        assert_eq!(free_members(&members, &busy).unwrap(), ["tm-2"]);
        busy.insert("tm-2".to_string(), "f-2".to_string());
        assert_eq!(
            free_members(&members, &busy).unwrap_err(),
            "every member has a fault in effect (tm-1 has f-1, tm-2 has f-2, tm-3 has f-3)"
        );
    }

    #[test]
    fn docker_targets_without_a_network_take_docker_network() {
        let text = |default: &str| {
            format!(
                r#"
                {default}
                [targets.kafka]
                backend = "docker"
                service = "kafka"
                default_action = "disconnect"
                [targets.driver]
                backend = "docker"
                service = "spark-driver"
                network = "own"
                default_action = "kill"
                "#
            )
        };
        let config = parse(&text("docker_network = \"pipeline\"")).unwrap();
        let network = |name: &str| match &config.targets[name] {
            Target::Docker(t) => t.network.clone(),
            Target::Process(_) => None,
        };
        assert_eq!(network("kafka").as_deref(), Some("pipeline"));
        assert_eq!(network("driver").as_deref(), Some("own"), "its own wins");
        let err = parse(&text("")).unwrap_err();
        assert!(err.contains("disconnect needs `network`"), "{err}");
        let err = parse(&text("docker_network = \"\"")).unwrap_err();
        assert!(
            err.contains("faults.docker_network: must not be empty"),
            "{err}"
        );
    }
}
