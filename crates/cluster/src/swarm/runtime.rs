//! A Swarm node as the runtime of its member's agent: each instance is a service of one
//! replica pinned to the node (`spec.rs`); a start creates it (or forces a new task of the
//! same generation: a restart by Canopy's policy), a stop scales it to none, a remove
//! deletes it; how a run goes comes from its tasks (`tasks.rs`, polled); logs are the
//! service's. A restarted cluster re-adopts the services it finds by their labels.

use super::spec::{replicas, service_name, service_spec};
use super::tasks::{self, Phase, Run, Runs};
use crate::docker::runtime::{engine_error, image_user, status_of};
use crate::docker::sessions;
use crate::docker::spec::{self, CLUSTER, GENERATION, MEMBER, Owner};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{Service, ServiceSpec, Task};
use bollard::query_parameters::{
    ListServicesOptionsBuilder, ListTasksOptionsBuilder, UpdateServiceOptionsBuilder,
};
use canopy_model::RuntimeKind;
use canopy_runtime::{
    Capabilities, Events, Exit, InstanceSpec, LogOutput, LogRequest, Recovered, Runtime,
    RuntimeError, Started, Stats,
};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How long a start waits for its task to run (the node pulls the image meanwhile).
const START_WITHIN: Duration = Duration::from_secs(120);
/// The stop grace a service is created with; a stop sets its own.
const CREATE_GRACE: Duration = Duration::from_secs(10);

pub struct SwarmRuntime {
    pub(super) docker: Docker,
    owner: Owner,
    /// Swarm's id of the node this member is.
    node: String,
    pub(super) runs: Runs,
    progress: OnceLock<Events>,
}

fn swarm_error(op: &'static str, id: &str, e: bollard::errors::Error) -> RuntimeError {
    match engine_error(op, id, e) {
        RuntimeError::Oci {
            op, id, message, ..
        } => RuntimeError::Oci {
            runtime: "swarm".to_string(),
            op,
            id,
            message,
        },
        other => other,
    }
}

impl SwarmRuntime {
    /// The runtime of node `node` for the services of `owner`; its poller runs until the
    /// runtime is dropped.
    pub fn new(docker: Docker, owner: Owner, node: String) -> Arc<SwarmRuntime> {
        let runtime = Arc::new(SwarmRuntime {
            docker,
            owner,
            node,
            runs: Runs::default(),
            progress: OnceLock::new(),
        });
        tokio::spawn(super::poll::poll(Arc::downgrade(&runtime)));
        runtime
    }

    fn tell(&self, id: &str, text: &str) {
        if let Some(events) = self.progress.get() {
            events(id, text);
        }
    }

    pub(super) async fn inspect(&self, name: &str) -> Result<Option<Service>, RuntimeError> {
        match self.docker.inspect_service(name, None).await {
            Ok(service) => Ok(Some(service)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(swarm_error("inspect service", name, e)),
        }
    }

    pub(super) async fn tasks_of(
        &self,
        service: &str,
    ) -> Result<Vec<Task>, bollard::errors::Error> {
        let filters = HashMap::from([("service".to_string(), vec![service.to_string()])]);
        let options = ListTasksOptionsBuilder::new().filters(&filters).build();
        self.docker.list_tasks(Some(options)).await
    }

    /// Changes `service`'s spec with `change`, at the version it was read at.
    async fn update(
        &self,
        id: &str,
        service: Service,
        change: impl FnOnce(&mut ServiceSpec),
    ) -> Result<(), RuntimeError> {
        let name = service.id.unwrap_or_default();
        let version = service.version.and_then(|v| v.index).unwrap_or(0);
        let mut spec = service.spec.unwrap_or_default();
        change(&mut spec);
        let options = UpdateServiceOptionsBuilder::new()
            .version(i32::try_from(version).unwrap_or(i32::MAX))
            .build();
        match self.docker.update_service(&name, spec, options, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(swarm_error("update service", id, e)),
        }
    }

    /// A new service for `spec`: its first run.
    async fn create(&self, spec: &InstanceSpec, user: String) -> Result<(), RuntimeError> {
        let body = service_spec(spec, &self.owner, &self.node, user, CREATE_GRACE)?;
        self.docker
            .create_service(body, None)
            .await
            .map_err(|e| swarm_error("create service", &spec.id, e))?;
        Ok(())
    }

    fn track(&self, id: &str, service: String, force: u64) -> watch::Receiver<Phase> {
        let (phase, watching) = watch::channel(Phase::Starting);
        let run = Run {
            service,
            force,
            gone_ends: false,
            phase,
        };
        tasks::lock(&self.runs).insert(id.to_string(), run);
        watching
    }
}

#[async_trait]
impl Runtime for SwarmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ports: true,
            networking: true,
            // Swarm serves neither a task's usage nor exec into it: its node's engine does.
            stats: false,
            exec: false,
            logs: true,
            limits: true,
            ..Capabilities::default()
        }
    }

    fn set_events(&self, events: Events) {
        let _ = self.progress.set(events);
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        canopy_runtime::validate_id(id)?;
        let image = spec::image_of(spec, "swarm")?;
        let name = service_name(&self.owner, id);
        // The manager's engine pulls the image to learn its user (as the docker driver does).
        let tell = |text: &str| self.tell(id, text);
        let user = spec::user_of(
            spec,
            image_user(&self.docker, id, &image, &tell)
                .await?
                .as_deref(),
        );
        let force = match self.inspect(&name).await? {
            Some(service) => {
                let current = service.spec.as_ref();
                let generation = current
                    .and_then(|s| s.labels.as_ref())
                    .and_then(|l| l.get(GENERATION))
                    .and_then(|g| g.parse::<u64>().ok());
                let force = current
                    .and_then(|s| s.task_template.as_ref())
                    .and_then(|t| t.force_update)
                    .unwrap_or(0);
                if generation == Some(spec.generation) {
                    let found = self.tasks_of(&name).await.unwrap_or_default();
                    if let Phase::Running(pid) = tasks::phase_of(&found, force, true) {
                        return Err(RuntimeError::AlreadyRunning {
                            id: id.to_string(),
                            pid: pid.unwrap_or(0),
                        });
                    }
                    // A restart: a new task of the same service.
                    self.update(id, service, |spec| {
                        spec.mode = Some(replicas(1));
                        if let Some(task) = spec.task_template.as_mut() {
                            task.force_update = Some(force + 1);
                        }
                    })
                    .await?;
                    force + 1
                } else {
                    match self.docker.delete_service(&name).await {
                        Err(e) if status_of(&e) != Some(404) => {
                            return Err(swarm_error("remove service", id, e));
                        }
                        _ => {}
                    }
                    self.create(spec, user).await?;
                    0
                }
            }
            None => {
                self.create(spec, user).await?;
                0
            }
        };
        let mut phase = self.track(id, name, force);
        let started = tokio::time::timeout(
            START_WITHIN,
            phase.wait_for(|p| !matches!(p, Phase::Starting)),
        )
        .await;
        let pid = match started {
            Ok(Ok(now)) => match &*now {
                Phase::Running(pid) => *pid,
                _ => None,
            },
            _ => {
                self.tell(id, "the Swarm task is not running yet");
                None
            }
        };
        Ok(Started { pid })
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut phase = tasks::lock(&self.runs)
            .get(id)
            .map(|run| run.phase.subscribe())
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let shutdown = || RuntimeError::Shutdown { id: id.to_string() };
        let ended = phase
            .wait_for(|p| matches!(p, Phase::Ended(_)))
            .await
            .map_err(|_| shutdown())?;
        match &*ended {
            Phase::Ended(exit) => Ok(exit.clone()),
            _ => Err(shutdown()),
        }
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let service = {
            let mut runs = tasks::lock(&self.runs);
            let Some(run) = runs.get_mut(id) else {
                return Ok(());
            };
            run.gone_ends = true;
            run.service.clone()
        };
        let Some(found) = self.inspect(&service).await? else {
            return Ok(());
        };
        let grace = i64::try_from(grace.as_nanos()).ok();
        self.update(id, found, |spec| {
            spec.mode = Some(replicas(0));
            if let Some(container) = spec
                .task_template
                .as_mut()
                .and_then(|t| t.container_spec.as_mut())
            {
                container.stop_grace_period = grace;
            }
        })
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let service = tasks::lock(&self.runs)
            .get(id)
            .map(|run| run.service.clone())
            .unwrap_or_else(|| service_name(&self.owner, id));
        match self.docker.delete_service(&service).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(swarm_error("remove service", id, e)),
        }
        tasks::lock(&self.runs).remove(id);
        Ok(())
    }

    async fn stats(&self, _id: &str) -> Result<Stats, RuntimeError> {
        Err(RuntimeError::Unsupported {
            what: "usage of a Swarm task",
        })
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        let service = self.service_of(id)?;
        sessions::tail_of(id, tail, |options| {
            self.docker.service_logs(&service, Some(options))
        })
        .await
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![
                format!("{CLUSTER}={}", self.owner.cluster),
                format!("{MEMBER}={}", self.owner.member),
            ],
        )]);
        let options = ListServicesOptionsBuilder::new().filters(&filters).build();
        let found = self
            .docker
            .list_services(Some(options))
            .await
            .map_err(|e| swarm_error("list services", "*", e))?;
        let mut recovered = Vec::new();
        for service in found {
            let spec = service.spec.unwrap_or_default();
            let (Some(name), Some(labels)) = (spec.name, spec.labels) else {
                continue;
            };
            let Some((id, generation)) = spec::instance_of(&labels) else {
                continue;
            };
            let force = spec.task_template.and_then(|t| t.force_update).unwrap_or(0);
            let found = match self.tasks_of(&name).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot list a service's tasks to re-adopt");
                    continue;
                }
            };
            let phase = tasks::phase_of(&found, force, true);
            let (running, pid) = match &phase {
                Phase::Running(pid) => (true, *pid),
                _ => (false, None),
            };
            let (sender, _) = watch::channel(phase);
            let run = Run {
                service: name,
                force,
                gone_ends: true,
                phase: sender,
            };
            tasks::lock(&self.runs).insert(id.clone(), run);
            recovered.push(Recovered {
                id,
                generation,
                pid,
                running,
            });
        }
        recovered.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(recovered)
    }

    fn engine_sessions(&self) -> bool {
        true
    }

    async fn engine_logs(
        &self,
        id: &str,
        request: LogRequest,
        to: mpsc::Sender<(LogOutput, Vec<u8>)>,
    ) -> Result<(), RuntimeError> {
        let service = self.service_of(id)?;
        let stream = self
            .docker
            .service_logs(&service, Some(sessions::log_options(&request)));
        sessions::forward(id, stream, to).await
    }
}

impl SwarmRuntime {
    fn service_of(&self, id: &str) -> Result<String, RuntimeError> {
        tasks::lock(&self.runs)
            .get(id)
            .map(|run| run.service.clone())
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }
}
