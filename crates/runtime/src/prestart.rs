//! Prestart hooks: what the node prepares for an instance before its runtime starts it
//! (a network namespace today; the image, identity and volumes next) and frees after the
//! runtime removed it. Any runtime that can join what a hook made (containers now, wasm
//! or microVMs later) gets the same network from the same hook.

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

/// One step the node runs around a runtime: `prepare` before `start` (it may be run again
/// for a restart, so it replaces what an earlier start left), `release` after `remove`.
#[async_trait]
pub trait Prestart: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Whether a runtime with these capabilities needs this step.
    fn wanted_by(&self, caps: &Capabilities) -> bool;
    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
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

    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
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
