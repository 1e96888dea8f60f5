//! The prestart hooks the agent runs around a runtime (the image and the network today):
//! which hooks a runtime gets follows from its capabilities ([`Hooks::wanted_by`]); the
//! chain itself is [`Hooks`]. The agent's view of what a runtime can do is the runtime's
//! own capabilities plus what its hooks add, kept here, in one place.

use crate::Agent;
use canopy_model::RuntimeKind;
use canopy_runtime::{
    Capabilities, Hooks, InstanceSpec, Prepared, Prestart, Runtime, RuntimeError, Started,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Each runtime's hooks (by the runtime's own capabilities) and the capabilities it has
/// with them around it.
pub(crate) struct RuntimeHooks {
    pub hooks: Hooks,
    pub capabilities: Capabilities,
}

/// For each runtime, the hooks it wants, in the order given, and what it can do with them.
pub(crate) fn hooks_for(
    runtimes: &BTreeMap<RuntimeKind, Arc<dyn Runtime>>,
    hooks: &[Arc<dyn Prestart>],
) -> BTreeMap<RuntimeKind, RuntimeHooks> {
    runtimes
        .iter()
        .map(|(kind, runtime)| {
            let own = runtime.capabilities();
            let hooks = Hooks::wanted_by(hooks, &own);
            let capabilities = hooks.capabilities(own);
            (
                *kind,
                RuntimeHooks {
                    hooks,
                    capabilities,
                },
            )
        })
        .collect()
}

impl Agent {
    pub(crate) fn hooks(&self, kind: RuntimeKind) -> Hooks {
        self.prestart
            .get(&kind)
            .map(|h| h.hooks.clone())
            .unwrap_or_default()
    }

    /// Runs the runtime's hooks, then starts the instance with what they prepared; their
    /// progress becomes the instance's events.
    pub(crate) async fn start_prepared(
        &self,
        runtime: &dyn Runtime,
        spec: &InstanceSpec,
    ) -> Result<(Started, Prepared), RuntimeError> {
        let events = self.events.clone();
        let id = spec.id.clone();
        let progress = move |text: &str| {
            tracing::info!(instance = %id, "{text}");
            events(&id, text);
        };
        let started = self
            .hooks(runtime.kind())
            .start(runtime, spec, &progress)
            .await;
        if !spec.service.volumes.is_empty() {
            // Its hook may have made a named volume (once made, not before, or a heartbeat
            // in between would list the directory without it): the next one lists them again.
            self.volumes_dirty
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        started
    }

    /// Frees what the hooks of `kind` hold for `id` (after the runtime removed it).
    pub(crate) async fn release_prepared(&self, kind: RuntimeKind, id: &str) {
        // Each failure is logged by the chain; there is nobody to hand it to here.
        let _ = self.hooks(kind).release(id).await;
    }
}
