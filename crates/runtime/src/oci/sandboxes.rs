//! The node's container runtime with its sandboxes: each container goes to the OCI runtime
//! its service's `sandbox` names (runc or crun without one, runsc for `gvisor`). Each OCI
//! runtime keeps its own state dir (gVisor's under `@gvisor/` beside the hooks' state), so
//! an instance belongs to the one whose dir holds it, also after an agent restart.

use super::OciRuntime;
use crate::supervise::LogPaths;
use crate::{
    Capabilities, Events, Exit, InstanceSpec, Recovered, Runtime, RuntimeError, Started, Stats,
};
use async_trait::async_trait;
use canopy_model::{RuntimeKind, Sandbox};
use std::time::Duration;

/// runc (or crun) for plain containers, and the sandboxes the node offers.
pub struct SandboxedContainers {
    shared: OciRuntime,
    gvisor: Option<OciRuntime>,
}

impl SandboxedContainers {
    /// Plain containers only, until a sandbox is added.
    pub fn new(shared: OciRuntime) -> Self {
        SandboxedContainers {
            shared,
            gvisor: None,
        }
    }

    /// Offers `gvisor` through `runtime` (an [`OciRuntime`] of runsc whose probe started).
    pub fn with_gvisor(mut self, runtime: OciRuntime) -> Self {
        self.gvisor = Some(runtime);
        self
    }

    /// The OCI runtime of `sandbox` (None: the shared-kernel one), when offered.
    pub fn runtime(&self, sandbox: Option<Sandbox>) -> Option<&OciRuntime> {
        match sandbox {
            None => Some(&self.shared),
            Some(Sandbox::Gvisor) => self.gvisor.as_ref(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &OciRuntime> {
        std::iter::once(&self.shared).chain(self.gvisor.as_ref())
    }

    /// The runtime holding instance `id`: the sandbox whose state dir has it, else runc's.
    fn holding(&self, id: &str) -> &OciRuntime {
        self.gvisor
            .as_ref()
            .filter(|g| crate::validate_id(id).is_ok() && g.state_dir().join(id).exists())
            .unwrap_or(&self.shared)
    }
}

#[async_trait]
impl Runtime for SandboxedContainers {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.capabilities()
    }

    fn sandboxes(&self) -> Vec<Sandbox> {
        self.gvisor.iter().map(|_| Sandbox::Gvisor).collect()
    }

    fn set_events(&self, events: Events) {
        for runtime in self.all() {
            runtime.set_events(events.clone());
        }
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let sandbox = spec.service.sandbox;
        let Some(runtime) = self.runtime(sandbox) else {
            return Err(RuntimeError::InvalidSpec {
                service: spec.service.name.clone(),
                reason: format!(
                    "it asks for the {} sandbox, which this node does not offer",
                    sandbox.map_or("-", Sandbox::as_str)
                ),
            });
        };
        // A previous generation in another sandbox: its remains (kept logs) must not make
        // this one's instance look like that runtime's.
        for other in self.all().filter(|r| !std::ptr::eq(*r, runtime)) {
            if crate::validate_id(&spec.id).is_ok() && other.state_dir().join(&spec.id).exists() {
                other.remove(&spec.id).await?;
            }
        }
        runtime.start(spec).await
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        self.holding(id).wait(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        self.holding(id).stop(id, grace).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.holding(id).remove(id).await
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        self.holding(id).stats(id).await
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        self.holding(id).logs(id, tail).await
    }

    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        Runtime::log_paths(self.holding(id), id)
    }

    async fn exec_command(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
    ) -> Result<tokio::process::Command, RuntimeError> {
        self.holding(id).exec_command(id, command, tty).await
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let mut recovered = Vec::new();
        for runtime in self.all() {
            recovered.extend(runtime.recover().await?);
        }
        Ok(recovered)
    }
}
