//! Prestart hooks: what the node prepares for an instance before its runtime starts it
//! (the image's root filesystem and a network namespace today; identity and volumes next)
//! and frees after the runtime removed it. Any runtime that can use what a hook made
//! (containers now, wasm or microVMs later) gets the same image and network from the same
//! hooks; [`crate::Hooks`] runs them as a chain.

use crate::oci::ImageConfig;
use crate::supervise::validate_id;
use crate::{Capabilities, InstanceSpec, RuntimeError};
use async_trait::async_trait;
use canopy_net::{NetworkHook, PortMapping};
use std::net::IpAddr;
use std::path::PathBuf;

/// What the hooks prepared for one start of an instance; the runtime takes it from
/// [`InstanceSpec::prepared`] instead of making it itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prepared {
    /// The network namespace to join, from the network hook.
    pub network: Option<PreparedNetwork>,
    /// The image's root filesystem, from the image hook.
    pub image: Option<PreparedImage>,
    /// The service's files, from the files hook.
    pub files: Option<crate::files::PreparedFiles>,
    /// The service's volumes, from the volumes hook.
    pub volumes: Option<crate::volumes::PreparedVolumes>,
    /// A wasm module pulled from a registry (`module` an OCI reference), from the image hook.
    pub module: Option<PreparedModule>,
}

/// A wasm module the image hook pulled: an artifact's layer, or a file of a plain image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedModule {
    /// The module's bytes on the node.
    pub path: PathBuf,
    /// The digest (`sha256:…`) of the layer holding it, verified by the store.
    pub layer: String,
    /// Its path in a plain image (`/app/filter.wasm`); `None` when the layer is the module
    /// (an artifact), which then must hash to `layer`.
    pub file: Option<String>,
}

/// A network namespace made for the instance, with its address and published ports.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedNetwork {
    /// A bind-mounted namespace file (`setns`-able by any runtime).
    pub netns: PathBuf,
    pub ip: Option<IpAddr>,
    /// The service's `hostPort`s, as published on the node.
    pub ports: Vec<PortMapping>,
}

/// A pulled image and the root filesystem made from it for this start.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedImage {
    /// An absolute path, in a directory of the instance's own (not in the runtime's bundle).
    pub rootfs: PathBuf,
    /// What the image says about running it.
    pub config: ImageConfig,
    /// The image manifest's digest (`sha256:…`): exactly what runs.
    pub digest: String,
}

/// Where a hook reports progress worth showing the instance's owner (pull steps).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// One step the node runs around a runtime: `prepare` before `start` (it may be run again
/// for a restart, so it replaces what an earlier start left), `release` after `remove`.
#[async_trait]
pub trait Prestart: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Whether a runtime with these (its own) capabilities needs this step.
    fn wanted_by(&self, caps: &Capabilities) -> bool;
    /// What a runtime can do once this step runs around it (the network hook publishes
    /// ports); added to the runtime's own in the node's view.
    fn provides(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        progress: Progress<'_>,
    ) -> Result<(), RuntimeError>;
    /// Frees what `prepare` made for `id`; idempotent, and works from on-disk state
    /// after an agent restart.
    async fn release(&self, id: &str) -> Result<(), RuntimeError>;
    /// The address the instance is reached at, when this hook gave it one.
    fn address(&self, _id: &str) -> Option<std::net::IpAddr> {
        None
    }
}

/// The CNI network as a prestart step, for runtimes that join a namespace but do not
/// network themselves.
pub struct NetworkPrestart {
    hook: NetworkHook,
}

impl NetworkPrestart {
    pub fn new(hook: NetworkHook) -> NetworkPrestart {
        NetworkPrestart { hook }
    }

    pub fn hook(&self) -> &NetworkHook {
        &self.hook
    }
}

#[async_trait]
impl Prestart for NetworkPrestart {
    fn name(&self) -> &str {
        "network"
    }

    fn wanted_by(&self, caps: &Capabilities) -> bool {
        caps.netns && !caps.networking
    }

    fn provides(&self) -> Capabilities {
        Capabilities {
            ports: true,
            networking: true,
            ..Capabilities::default()
        }
    }

    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        _progress: Progress<'_>,
    ) -> Result<(), RuntimeError> {
        validate_id(&spec.id)?;
        let st = self.hook.prepare(&spec.id, &spec.service.ports).await?;
        prepared.network = Some(PreparedNetwork {
            netns: st.netns,
            ip: st.ip,
            ports: st.ports,
        });
        Ok(())
    }

    async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        Ok(self.hook.release(id).await?)
    }

    fn address(&self, id: &str) -> Option<std::net::IpAddr> {
        validate_id(id).ok()?;
        self.hook.state(id)?.ip
    }
}
