//! The docker backend: faults on containers through the Docker engine API (bollard).
//!
//! A target is a container name or a compose service (the first running container labelled
//! `com.docker.compose.service=<service>`), resolved to a container id that the ledger
//! records. stop/kill are reverted by `start`, pause by `unpause`, disconnect by connecting
//! the container to the network again with the aliases it had. Reverts inspect first and
//! leave a container that is already healthy alone.
//!
//! The client connects lazily (first use) and negotiates the API version with the engine,
//! so building firedrill does not need Docker. Each engine call sets
//! `firedrill_upstream_up{upstream="docker"}` when an [`Upstreams`] is given. This module does
//! not decide when to inject or revert (the actor does).

use std::{collections::HashMap, time::Duration};

use bollard::{
    errors::Error as DockerError,
    models::{
        ContainerInspectResponse, EndpointSettings, NetworkConnectRequest, NetworkDisconnectRequest,
    },
    query_parameters::{KillContainerOptions, ListContainersOptions, StopContainerOptions},
    Docker,
};
use futures_util::future::BoxFuture;
use tokio::{sync::OnceCell, time::Instant};
use tracing::{info, warn};

use super::{
    backend::{Backend, BackendKind, DockerSubject, Error, Subject},
    config::DockerTarget,
    Action, Target,
};
use crate::metrics::{Upstream, Upstreams};

/// The compose label that names a container's service.
pub const SERVICE_LABEL: &str = "com.docker.compose.service";
/// How long a container may take to reach the state an action or revert asks for.
const STATE_WAIT: Duration = Duration::from_secs(60);
/// How often the container is inspected while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Talks to the local Docker engine.
#[derive(Default)]
pub struct DockerBackend {
    client: OnceCell<Docker>,
    upstreams: Option<Upstreams>,
}

impl DockerBackend {
    /// A backend that connects on first use; `upstreams` receives the engine's health.
    pub fn new(upstreams: Option<Upstreams>) -> Self {
        DockerBackend {
            client: OnceCell::new(),
            upstreams,
        }
    }

    async fn client(&self) -> Result<&Docker, Error> {
        let client = self
            .client
            .get_or_try_init(|| async {
                Docker::connect_with_local_defaults()?
                    .negotiate_version()
                    .await
            })
            .await;
        self.observe(client.as_ref().err());
        Ok(client?)
    }

    /// Records whether the engine answered (an error response is an answer).
    fn observe(&self, error: Option<&DockerError>) {
        let Some(upstreams) = &self.upstreams else {
            return;
        };
        let up = !matches!(
            error,
            Some(e) if !matches!(e, DockerError::DockerResponseServerError { .. })
        );
        if upstreams.observe(Upstream::Docker, up) && !up {
            warn!(error = %error.expect("down means an error"), "docker engine unreachable");
        }
    }

    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, DockerError>>,
    ) -> Result<T, DockerError> {
        let result = call.await;
        self.observe(result.as_ref().err());
        result
    }

    /// Inspects `container`; `None` when it does not exist.
    async fn inspect(&self, container: &str) -> Result<Option<ContainerInspectResponse>, Error> {
        let docker = self.client().await?;
        match self.call(docker.inspect_container(container, None)).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn resolve(&self, target: &DockerTarget, action: Action) -> Result<Subject, Error> {
        let docker = self.client().await?;
        let reference = match (&target.container, &target.service) {
            (Some(name), _) => name.clone(),
            (None, Some(service)) => self
                .running_with_service(docker, service)
                .await?
                .ok_or_else(|| {
                    Error::NotRunning(format!(
                        "no running container has label {SERVICE_LABEL}={service}"
                    ))
                })?,
            (None, None) => return Err(Error::Unsupported("no container or service".into())),
        };
        let inspect = self
            .inspect(&reference)
            .await?
            .ok_or_else(|| Error::NotRunning(format!("container {reference} does not exist")))?;
        let (running, paused) = run_state(&inspect);
        if !running || paused {
            return Err(Error::NotRunning(format!(
                "container {reference} is {}",
                if paused { "paused" } else { "not running" }
            )));
        }
        let container_id = inspect.id.clone().unwrap_or(reference.clone());
        let mut subject = DockerSubject {
            container_name: inspect
                .name
                .as_deref()
                .map(|n| n.trim_start_matches('/').to_string())
                .unwrap_or(reference.clone()),
            container_id,
            service: target.service.clone(),
            network: None,
            aliases: Vec::new(),
        };
        if action == Action::Disconnect {
            let network = target
                .network
                .clone()
                .ok_or_else(|| Error::Unsupported("disconnect needs `network`".into()))?;
            let endpoint = networks(&inspect).remove(&network).ok_or_else(|| {
                Error::NotRunning(format!(
                    "container {reference} is not connected to network {network}"
                ))
            })?;
            // Docker adds the short id as an alias by itself; restoring it would duplicate.
            let short_id: String = subject.container_id.chars().take(12).collect();
            subject.aliases = endpoint
                .aliases
                .unwrap_or_default()
                .into_iter()
                .filter(|a| *a != short_id)
                .collect();
            subject.network = Some(network);
        }
        Ok(Subject::Docker(subject))
    }

    /// The id of the first running container of compose service `service`.
    async fn running_with_service(
        &self,
        docker: &Docker,
        service: &str,
    ) -> Result<Option<String>, Error> {
        let filters = HashMap::from([
            (
                "label".to_string(),
                vec![format!("{SERVICE_LABEL}={service}")],
            ),
            ("status".to_string(), vec!["running".to_string()]),
        ]);
        let options = ListContainersOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self.call(docker.list_containers(Some(options))).await?;
        Ok(containers.into_iter().find_map(|c| c.id))
    }

    async fn inject(&self, action: Action, subject: &DockerSubject) -> Result<(), Error> {
        let docker = self.client().await?;
        let id = subject.container_id.as_str();
        match action {
            Action::Stop => {
                // `t: None`: the container's own stop timeout (10 s unless configured).
                let options = StopContainerOptions {
                    signal: None,
                    t: None,
                };
                self.call(docker.stop_container(id, Some(options))).await?;
                self.wait(subject, "container to stop", |r, _| !r).await
            }
            Action::Kill => {
                let options = KillContainerOptions {
                    signal: "SIGKILL".into(),
                };
                self.call(docker.kill_container(id, Some(options))).await?;
                self.wait(subject, "container to die", |r, _| !r).await
            }
            Action::Pause => {
                self.call(docker.pause_container(id)).await?;
                self.wait(subject, "container to pause", |_, p| p).await
            }
            Action::Disconnect => {
                let network = network_of(subject)?;
                let request = NetworkDisconnectRequest {
                    container: id.to_string(),
                    force: Some(false),
                };
                self.call(docker.disconnect_network(network, request))
                    .await?;
                Ok(())
            }
        }
    }

    async fn revert(&self, action: Action, subject: &DockerSubject) -> Result<(), Error> {
        let docker = self.client().await?;
        let id = subject.container_id.as_str();
        let name = subject.container_name.as_str();
        let Some(inspect) = self.inspect(id).await? else {
            return self.gone(action, subject).await;
        };
        let (running, paused) = run_state(&inspect);
        match action {
            Action::Stop | Action::Kill => {
                if running {
                    return Ok(());
                }
                self.call(docker.start_container(id, None)).await?;
                self.wait(subject, "container to run", |r, _| r).await?;
                info!(container = name, "container started again");
                Ok(())
            }
            Action::Pause => {
                if !paused {
                    return Ok(());
                }
                self.call(docker.unpause_container(id)).await?;
                self.wait(subject, "container to unpause", |_, p| !p).await
            }
            Action::Disconnect => {
                let network = network_of(subject)?;
                if networks(&inspect).contains_key(network) {
                    return Ok(());
                }
                let request = NetworkConnectRequest {
                    container: id.to_string(),
                    endpoint_config: Some(EndpointSettings {
                        aliases: (!subject.aliases.is_empty()).then(|| subject.aliases.clone()),
                        ..Default::default()
                    }),
                };
                self.call(docker.connect_network(network, request)).await?;
                info!(container = name, network, "container connected again");
                Ok(())
            }
        }
    }

    /// The container no longer exists. A paused or disconnected container that is gone has
    /// nothing left to revert; a stopped one must come back, which only a new container of
    /// the same compose service can do.
    async fn gone(&self, action: Action, subject: &DockerSubject) -> Result<(), Error> {
        let name = &subject.container_name;
        if matches!(action, Action::Pause | Action::Disconnect) {
            warn!(container = %name, %action, "container is gone; nothing to revert");
            return Ok(());
        }
        if let Some(service) = &subject.service {
            let docker = self.client().await?;
            if let Some(id) = self.running_with_service(docker, service).await? {
                warn!(container = %name, replacement = %id, "container is gone; its service runs again");
                return Ok(());
            }
        }
        Err(Error::NotRunning(format!(
            "container {name} ({}) is gone and cannot be started",
            subject.container_id
        )))
    }

    /// Polls the container until `ok(running, paused)` holds.
    async fn wait(
        &self,
        subject: &DockerSubject,
        what: &str,
        ok: impl Fn(bool, bool) -> bool,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + STATE_WAIT;
        loop {
            let state = self
                .inspect(&subject.container_id)
                .await?
                .map(|i| run_state(&i))
                .unwrap_or((false, false));
            if ok(state.0, state.1) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{what} ({})", subject.container_name),
                    within: STATE_WAIT,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn resolve<'a>(
        &'a self,
        target: &'a Target,
        action: Action,
    ) -> BoxFuture<'a, Result<Subject, Error>> {
        Box::pin(async move {
            match target {
                Target::Docker(target) => self.resolve(target, action).await,
                Target::Process(_) => Err(Error::Unsupported("not a docker target".into())),
            }
        })
    }

    fn inject<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.inject(action, docker_subject(subject)?).await })
    }

    fn revert<'a>(
        &'a self,
        action: Action,
        subject: &'a Subject,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move { self.revert(action, docker_subject(subject)?).await })
    }
}

fn docker_subject(subject: &Subject) -> Result<&DockerSubject, Error> {
    match subject {
        Subject::Docker(d) => Ok(d),
        Subject::Process(_) => Err(Error::Unsupported(
            "a process subject given to the docker backend".into(),
        )),
    }
}

fn network_of(subject: &DockerSubject) -> Result<&str, Error> {
    subject
        .network
        .as_deref()
        .ok_or_else(|| Error::Unsupported("a disconnect fault without a network".into()))
}

fn is_not_found(error: &DockerError) -> bool {
    matches!(
        error,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// (running, paused) of an inspected container.
fn run_state(inspect: &ContainerInspectResponse) -> (bool, bool) {
    let state = inspect.state.as_ref();
    (
        state.and_then(|s| s.running).unwrap_or(false),
        state.and_then(|s| s.paused).unwrap_or(false),
    )
}

fn networks(inspect: &ContainerInspectResponse) -> HashMap<String, EndpointSettings> {
    inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.clone())
        .unwrap_or_default()
}
