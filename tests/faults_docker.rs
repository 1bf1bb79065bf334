//! The docker backend and the fault actor against the running Docker engine: a container of
//! a locally built image (`docker import` of an empty tar, the host's /usr and /lib bind
//! mounted read-only, `sleep infinity`) on a network of its own. Nothing is pulled. The test
//! fails with a clear message when the engine cannot be reached; containers and networks
//! carry a unique name per test run and are removed at the end (also on failure).
//!
//! State is checked with the `docker` CLI, not through firedrill's own bollard code.

#[path = "support/faults.rs"]
mod faults_support;
mod support;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use faults_support::{ledger_ids, Running};
use firedrill::faults::{config::DockerTarget, Action, Config, FaultState, InjectRequest, Target};
use support::eventually;

const IMAGE: &str = "firedrill-test-base:latest";
const ALIAS: &str = "broker-alias";
const DEADLINE: Duration = Duration::from_secs(60);

/// Runs `docker args...`, returns stdout; panics with stderr on failure.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the docker CLI: {e}"));
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Panics with a clear message unless the engine answers; builds the base image once.
fn require_docker() {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "the Docker engine is not reachable (`docker version` failed: {}); these tests need a running engine",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("the docker CLI cannot be run ({e}); these tests need a running Docker engine"),
    }
    let exists = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        // An image from nothing: an empty tar. The binaries come from read-only bind mounts.
        let status = Command::new("sh")
            .args([
                "-c",
                &format!("tar cf - --files-from /dev/null | docker import - {IMAGE}"),
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "docker import of an empty tar as {IMAGE}");
    }
}

/// A container (and its network) of this test run, removed when dropped.
struct Sandbox {
    name: String,
    network: String,
    id: String,
}

impl Sandbox {
    /// Starts `sleep infinity` on a fresh network, with `labels`.
    fn start(test: &str, labels: &[String]) -> Sandbox {
        require_docker();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("firedrill-test-{test}-{}-{nanos:x}", std::process::id());
        let network = format!("{name}-net");
        docker(&["network", "create", &network]);
        let mut sandbox = Sandbox {
            name: name.clone(),
            network: network.clone(),
            id: String::new(),
        };
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            &network,
            "--network-alias",
            ALIAS,
            // `sleep` as PID 1 ignores SIGTERM: don't wait 10 s for every `docker stop`.
            "--stop-timeout",
            "1",
            "-v",
            "/usr:/usr:ro",
            "-v",
            "/lib:/lib:ro",
            "-v",
            "/lib64:/lib64:ro",
        ]
        .map(String::from)
        .to_vec();
        for label in labels {
            args.extend(["--label".to_string(), label.clone()]);
        }
        args.extend([IMAGE, "/usr/bin/sleep", "infinity"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sandbox.id = docker(&args);
        assert_eq!(sandbox.status(), "running");
        sandbox
    }

    /// `running`, `paused`, `exited`, ...
    fn status(&self) -> String {
        docker(&["inspect", "-f", "{{.State.Status}}", &self.name])
    }

    /// The aliases of the container on the sandbox network, `None` when not connected.
    fn aliases(&self) -> Option<Vec<String>> {
        let json = docker(&[
            "inspect",
            "-f",
            "{{json .NetworkSettings.Networks}}",
            &self.name,
        ]);
        let networks: serde_json::Value = serde_json::from_str(&json).unwrap();
        let endpoint = networks.get(&self.network)?;
        Some(
            endpoint["Aliases"]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
        )
    }

    fn target(&self, by_service: Option<&str>) -> Target {
        Target::Docker(DockerTarget {
            container: by_service.is_none().then(|| self.name.clone()),
            service: by_service.map(String::from),
            network: Some(self.network.clone()),
            default_action: Action::Pause,
            group: None,
        })
    }

    fn config(&self, dir: &tempfile::TempDir, by_service: Option<&str>) -> Config {
        Config {
            ledger: dir.path().join("faults.json"),
            targets: BTreeMap::from([("broker".to_string(), self.target(by_service))]),
            ..Config::default()
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new("docker")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["rm", "-f", &self.name]);
        quiet(&["network", "rm", &self.network]);
    }
}

fn assert_in_effect(sandbox: &Sandbox, action: Action) {
    match action {
        Action::Stop | Action::Kill => assert_eq!(sandbox.status(), "exited", "{action}"),
        Action::Pause => assert_eq!(sandbox.status(), "paused"),
        Action::Disconnect => {
            assert_eq!(sandbox.status(), "running");
            assert_eq!(
                sandbox.aliases(),
                None,
                "disconnected from {}",
                sandbox.network
            );
        }
    }
}

fn assert_reverted(sandbox: &Sandbox) {
    assert_eq!(sandbox.status(), "running");
    let aliases = sandbox.aliases().expect("connected to the sandbox network");
    assert!(
        aliases.iter().any(|a| a == ALIAS),
        "alias restored: {aliases:?}"
    );
    let id = docker(&["inspect", "-f", "{{.Id}}", &sandbox.name]);
    assert_eq!(id, sandbox.id, "the same container");
}

/// The container id the ledger file recorded for its single fault.
fn ledger_container_id(config: &Config) -> String {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config.ledger).unwrap()).unwrap();
    assert_eq!(json["faults"][0]["backend"], "docker");
    json["faults"][0]["container_id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn inject_and_revert(action: Action) {
    let sandbox = Sandbox::start(action.as_str(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox.config(&dir, None);
    let running = Running::spawn(&config);

    let fault = running
        .handle
        .inject(InjectRequest::new("broker").action(action))
        .await
        .unwrap();
    assert_eq!((fault.backend, fault.state), ("docker", FaultState::Active));
    assert_in_effect(&sandbox, action);
    assert_eq!(ledger_container_id(&config), sandbox.id);

    let reverted = running.handle.revert(&fault.id).await.unwrap();
    assert_eq!(reverted.state, FaultState::Reverted);
    assert_reverted(&sandbox);
    assert!(ledger_ids(&config.ledger).is_empty());
    running.stop().await;
}

#[tokio::test]
async fn docker_stop_is_injected_and_reverted() {
    inject_and_revert(Action::Stop).await;
}

#[tokio::test]
async fn docker_kill_is_injected_and_reverted() {
    inject_and_revert(Action::Kill).await;
}

#[tokio::test]
async fn docker_pause_is_injected_and_reverted() {
    inject_and_revert(Action::Pause).await;
}

#[tokio::test]
async fn docker_disconnect_is_injected_and_reverted() {
    inject_and_revert(Action::Disconnect).await;
}

/// firedrill dies (no revert) with every kind of fault in effect in turn; the next start
/// reverts it from the ledger alone.
#[tokio::test]
async fn docker_faults_left_by_a_crash_are_reverted_at_start() {
    let sandbox = Sandbox::start("crash", &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox.config(&dir, None);
    for action in Action::ALL {
        let running = Running::spawn(&config);
        let fault = running
            .handle
            .inject(InjectRequest::new("broker").action(action))
            .await
            .unwrap();
        running.crash().await;
        assert_in_effect(&sandbox, action);
        assert_eq!(
            ledger_ids(&config.ledger),
            [fault.id.as_str()],
            "{action}: the ledger keeps it"
        );

        let restarted = Running::spawn(&config);
        eventually(
            &format!("{action}: the ledger empties after recovery"),
            DEADLINE,
            || async { ledger_ids(&config.ledger).is_empty().then_some(()) },
        )
        .await;
        assert_reverted(&sandbox);
        restarted.stop().await;
    }
}

/// A target named by compose service resolves to the running container with that label; the
/// dead-man's switch reverts it.
#[tokio::test]
async fn a_compose_service_resolves_to_its_container_and_reverts_by_itself() {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let service = format!("fdtest-{}-{nanos:x}", std::process::id());
    let sandbox = Sandbox::start(
        "service",
        &[format!("com.docker.compose.service={service}")],
    );
    let dir = tempfile::tempdir().unwrap();
    let config = sandbox.config(&dir, Some(&service));
    let running = Running::spawn(&config);

    let fault = running
        .handle
        .inject(InjectRequest::new("broker").duration(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(fault.action, Action::Pause, "the default action");
    assert_in_effect(&sandbox, Action::Pause);
    assert_eq!(ledger_container_id(&config), sandbox.id);
    eventually("the 1 s pause reverts by itself", DEADLINE, || async {
        ledger_ids(&config.ledger).is_empty().then_some(())
    })
    .await;
    assert_reverted(&sandbox);

    // A stopped container is not a candidate: nothing of that service runs.
    docker(&["stop", &sandbox.name]);
    let err = running
        .handle
        .inject(InjectRequest::new("broker"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "backend", "{err}");
    assert!(err.to_string().contains(&service), "{err}");
    assert!(ledger_ids(&config.ledger).is_empty());
    running.stop().await;
}
