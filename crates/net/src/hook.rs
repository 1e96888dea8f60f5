//! The node's network prestart step: a CNI network namespace per instance, made before
//! the runtime starts it and torn down after the runtime removed it. Its state lives in
//! its own directory (not the runtime's instance directory, which `remove` deletes first),
//! so a restarted agent can still tear down what an earlier one set up.

use crate::{Cni, CniConfig, NetError, NetworkState, port_mappings, read_state};
use canopy_model::PortSpec;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// CNI setup and teardown of instances' namespaces, keyed by instance id.
#[derive(Debug, Clone)]
pub struct NetworkHook {
    cni: Cni,
    /// `<base>/instances/<id>/network.json`.
    instances: PathBuf,
}

impl NetworkHook {
    /// Networking under `base` (host-local's leases, the namespaces, per-instance state);
    /// fails when a CNI plugin is missing, saying what to install.
    pub fn new(cfg: CniConfig, base: &Path) -> Result<NetworkHook, NetError> {
        let cni = Cni::new(cfg, base)?;
        let instances = base.join("instances");
        fs::create_dir_all(&instances).map_err(|e| NetError::io("create", &instances, e))?;
        Ok(NetworkHook { cni, instances })
    }

    pub fn config(&self) -> &CniConfig {
        self.cni.config()
    }

    /// host-local's lease directory (one file per leased address).
    pub fn lease_dir(&self) -> PathBuf {
        self.cni.lease_dir()
    }

    fn dir(&self, id: &str) -> Result<PathBuf, NetError> {
        // The id names a directory: nothing that could leave `instances/`.
        if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
            return Err(NetError::Config(format!(
                "instance id {id:?} cannot name a directory"
            )));
        }
        Ok(self.instances.join(id))
    }

    /// The recorded network of `id`, if it has one (also after an agent restart).
    pub fn state(&self, id: &str) -> Option<NetworkState> {
        read_state(&self.dir(id).ok()?)
    }

    /// Gives `id` a fresh namespace with `ports` published; whatever an earlier start left
    /// is torn down first, and a failed setup is torn down again, so it can be retried.
    pub async fn prepare(&self, id: &str, ports: &[PortSpec]) -> Result<NetworkState, NetError> {
        let dir = self.dir(id)?;
        fs::create_dir_all(&dir).map_err(|e| NetError::io("create", &dir, e))?;
        self.cni.teardown(id, &dir).await?;
        match self.cni.setup(id, &dir, port_mappings(ports)).await {
            Ok(st) => Ok(st),
            Err(e) => {
                if let Err(e2) = self.cni.teardown(id, &dir).await {
                    tracing::warn!(id, error = %e2, "network clean-up after a failed setup");
                }
                Err(e)
            }
        }
    }

    /// Tears down the namespace of `id` and forgets it; idempotent.
    pub async fn release(&self, id: &str) -> Result<(), NetError> {
        let dir = self.dir(id)?;
        self.cni.teardown(id, &dir).await?;
        match fs::remove_dir(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(NetError::io("remove", &dir, e)),
            _ => Ok(()),
        }
    }
}
