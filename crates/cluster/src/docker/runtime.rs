//! The Docker Engine as the runtime of its member's agent: each start creates (or starts
//! again) the instance's one container with Canopy's limits, ports and labels; how a run
//! ends comes from the engine's event stream (`events.rs`); a restarted cluster re-adopts
//! the containers it finds by their labels, with the same container IDs.

use super::events::{self, Table, Tracked};
use super::spec::{self, GENERATION, Owner};
use async_trait::async_trait;
use bollard::Docker;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use canopy_model::RuntimeKind;
use canopy_runtime::{
    Capabilities, EngineExec, Events, Exit, InstanceSpec, LogOutput, LogRequest, Recovered,
    Runtime, RuntimeError, Started, Stats,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

pub struct DockerRuntime {
    pub(crate) docker: Docker,
    pub(crate) owner: Owner,
    pub(crate) table: Table,
    progress: OnceLock<Events>,
}

/// The engine's answer to a request, as the runtime's error.
pub(crate) fn engine_error(op: &'static str, id: &str, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Oci {
        runtime: "docker".to_string(),
        op,
        id: id.to_string(),
        message: e.to_string(),
    }
}

/// The HTTP status the engine answered with, when it answered.
pub(crate) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The user `image` runs as, pulled first unless the engine has it (telling `tell` how
/// the pull goes).
pub(crate) async fn image_user(
    docker: &Docker,
    id: &str,
    image: &str,
    tell: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<String>, RuntimeError> {
    match docker.inspect_image(image).await {
        Ok(inspected) => return Ok(inspected.config.and_then(|c| c.user)),
        Err(e) if status_of(&e) == Some(404) => {}
        Err(e) => return Err(engine_error("inspect image", id, e)),
    }
    tell(&format!("pulling {image} through the engine"));
    let options = CreateImageOptionsBuilder::new().from_image(image).build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(step) = pull.next().await {
        let step = step.map_err(|e| RuntimeError::Image {
            image: image.to_string(),
            reason: e.to_string(),
        })?;
        if let Some(error) = step.error_detail.and_then(|d| d.message) {
            return Err(RuntimeError::Image {
                image: image.to_string(),
                reason: error,
            });
        }
    }
    tell(&format!("pulled {image}"));
    match docker.inspect_image(image).await {
        Ok(inspected) => Ok(inspected.config.and_then(|c| c.user)),
        Err(e) => Err(engine_error("inspect image", id, e)),
    }
}

pub(crate) fn now_nanos() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
}

/// A container's `StartedAt` (RFC 3339) in ns since the epoch.
fn started_nanos(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
    i64::try_from(at.ok()?.unix_timestamp_nanos()).ok()
}

impl DockerRuntime {
    /// The runtime over `docker` for the containers of `owner`; its event watcher runs
    /// until the runtime is dropped.
    pub fn new(docker: Docker, owner: Owner) -> Arc<DockerRuntime> {
        let runtime = Arc::new(DockerRuntime {
            docker,
            owner,
            table: Table::default(),
            progress: OnceLock::new(),
        });
        tokio::spawn(events::watch(Arc::downgrade(&runtime)));
        runtime
    }

    pub(crate) fn container_of(&self, id: &str) -> Result<String, RuntimeError> {
        events::lock(&self.table)
            .get(id)
            .map(|t| t.container.clone())
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }

    fn tell(&self, id: &str, text: &str) {
        if let Some(events) = self.progress.get() {
            events(id, text);
        }
    }

    /// The container an earlier start of `id` left, if any: (container id, generation,
    /// running).
    async fn existing(&self, name: &str) -> Result<Option<(String, u64, bool)>, RuntimeError> {
        match super::compat::inspect(&self.docker, name).await {
            Ok(found) => {
                let generation = found
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(GENERATION))
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(0);
                let running = found
                    .state
                    .as_ref()
                    .and_then(|s| s.running)
                    .unwrap_or(false);
                Ok(found.id.map(|id| (id, generation, running)))
            }
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(engine_error("inspect", name, e)),
        }
    }

    async fn create(&self, spec: &InstanceSpec, name: &str) -> Result<String, RuntimeError> {
        let image = spec.service.image.as_deref().unwrap_or_default();
        let tell = |text: &str| self.tell(&spec.id, text);
        let image_user = image_user(&self.docker, &spec.id, image, &tell).await?;
        let user = spec::user_of(spec, image_user.as_deref());
        let body = spec::create_body(spec, &self.owner, user, spec::names_of(spec))?;
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| engine_error("create", &spec.id, e))?;
        Ok(created.id)
    }

    async fn pid_of(&self, container: &str) -> Option<u32> {
        let inspected = super::compat::inspect(&self.docker, container).await.ok()?;
        let pid = inspected.state?.pid?;
        u32::try_from(pid).ok().filter(|p| *p > 0)
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ports: true,
            networking: true,
            netns: false,
            stats: true,
            exec: true,
            logs: true,
            limits: true,
            // The engine pulls and unpacks images itself: no image hook around it.
            image_rootfs: false,
            oci_modules: false,
        }
    }

    fn set_events(&self, events: Events) {
        let _ = self.progress.set(events);
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        canopy_runtime::validate_id(id)?;
        let name = spec::container_name(&self.owner, id);
        let container = match self.existing(&name).await? {
            // The same generation ran before (a restart by policy): the same container again.
            Some((container, generation, false)) if generation == spec.generation => container,
            Some((container, generation, true)) if generation == spec.generation => {
                let pid = self.pid_of(&container).await.unwrap_or(0);
                return Err(RuntimeError::AlreadyRunning {
                    id: id.to_string(),
                    pid,
                });
            }
            Some((older, _, _)) => {
                let options = RemoveContainerOptionsBuilder::new().force(true).build();
                if let Err(e) = self.docker.remove_container(&older, Some(options)).await
                    && status_of(&e) != Some(404)
                {
                    return Err(engine_error("remove", id, e));
                }
                self.create(spec, &name).await?
            }
            None => self.create(spec, &name).await?,
        };
        // Tracked before it starts: a run that ends at once still has its `die` heard.
        let (exit, _) = watch::channel(None);
        events::lock(&self.table).insert(
            id.to_string(),
            Tracked {
                container: container.clone(),
                since_nanos: now_nanos(),
                exit,
                oom: false,
                started: false,
            },
        );
        self.docker
            .start_container(&container, None)
            .await
            .map_err(|e| engine_error("start", id, e))?;
        if let Some(tracked) = events::lock(&self.table)
            .get_mut(id)
            .filter(|t| t.container == container)
        {
            tracked.started = true;
        }
        Ok(Started {
            pid: self.pid_of(&container).await,
        })
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut exit = events::lock(&self.table)
            .get(id)
            .map(|t| t.exit.subscribe())
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let shutdown = || RuntimeError::Shutdown { id: id.to_string() };
        let ended = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| shutdown())?;
        ended.clone().ok_or_else(shutdown)
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let Ok(container) = self.container_of(id) else {
            return Ok(());
        };
        let seconds = i32::try_from(grace.as_secs().max(1)).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        match self.docker.stop_container(&container, Some(options)).await {
            Ok(()) => Ok(()),
            // Not running (304) or gone (404): stopped either way.
            Err(e) if matches!(status_of(&e), Some(304 | 404)) => Ok(()),
            Err(e) => Err(engine_error("stop", id, e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let name = match self.container_of(id) {
            Ok(container) => container,
            Err(_) => spec::container_name(&self.owner, id),
        };
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&name, Some(options)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(engine_error("remove", id, e)),
        }
        events::lock(&self.table).remove(id);
        Ok(())
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let container = self.container_of(id)?;
        super::sessions::stats(&self.docker, id, &container).await
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        let container = self.container_of(id)?;
        super::sessions::tail(&self.docker, id, &container, tail).await
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={}", spec::CLUSTER, self.owner.cluster)],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let found = super::compat::list(&self.docker, options)
            .await
            .map_err(|e| engine_error("list", "*", e))?;
        let mut recovered = Vec::new();
        for summary in found {
            let (Some(container), Some(labels)) = (summary.id, summary.labels) else {
                continue;
            };
            let Some((id, generation)) = spec::instance_of(&labels) else {
                continue;
            };
            let inspected = match super::compat::inspect(&self.docker, &container).await {
                Ok(inspected) => inspected,
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot inspect a container to re-adopt");
                    continue;
                }
            };
            let state = inspected.state.unwrap_or_default();
            let running = state.running.unwrap_or(false);
            let ended = (!running).then(|| events::exit_of(&state, false));
            let (exit, _) = watch::channel(ended);
            // Events of its earlier runs (replayed from the second the watch starts at) are
            // not this run's: a replayed `die` of the run before would end this one.
            let since_nanos = state
                .started_at
                .as_deref()
                .and_then(started_nanos)
                .unwrap_or(0);
            events::lock(&self.table).insert(
                id.clone(),
                Tracked {
                    container,
                    since_nanos,
                    exit,
                    oom: false,
                    started: true,
                },
            );
            recovered.push(Recovered {
                id,
                generation,
                pid: state
                    .pid
                    .and_then(|p| u32::try_from(p).ok())
                    .filter(|p| *p > 0),
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
        let container = self.container_of(id)?;
        super::sessions::logs(&self.docker, id, &container, request, to).await
    }

    async fn engine_exec(
        &self,
        id: &str,
        command: &[String],
        tty: Option<(u16, u16)>,
    ) -> Result<EngineExec, RuntimeError> {
        let container = self.container_of(id)?;
        super::sessions::exec(&self.docker, id, &container, command, tty).await
    }
}

#[cfg(test)]
mod tests {
    use super::started_nanos;

    #[test]
    fn a_start_time_reads_to_the_nanosecond_and_garbage_to_none() {
        assert_eq!(
            started_nanos("2026-12-02T07:51:52.717943123Z"),
            Some(1_796_197_912_717_943_123)
        );
        assert_eq!(started_nanos("not a time"), None);
    }
}
