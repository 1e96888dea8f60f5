//! The image hook's part for wasm services: a module named by an OCI reference is pulled
//! through the node's image store (the same cache, credentials, pull metrics and gc as
//! container images) and found in what was pulled (`ImageStore::wasm_module`: an artifact's
//! layer as it is cached, or the `.wasm` file of a plain image copied to
//! `<dir>/<id>/module.wasm`). Files and URLs are the wasm runtime's own to load.

use crate::images::{RegistryImages, failed};
use canopy_runtime::{InstanceSpec, Prepared, PreparedModule, Progress, RuntimeError};

/// Where a plain image's module is copied, in the instance's directory of the hook.
const MODULE_FILE: &str = "module.wasm";

impl RegistryImages {
    /// Pulls the service's module when it is an OCI reference; nothing otherwise.
    pub(crate) async fn prepare_module(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        progress: Progress<'_>,
    ) -> Result<(), RuntimeError> {
        let Some(module) = spec
            .service
            .module
            .as_deref()
            .filter(|m| canopy_model::is_oci_module(m))
        else {
            return Ok(());
        };
        self.in_use().remove(&spec.id);
        self.release_module(&spec.id)?;
        let pulled = self.pull_counted(spec, module, progress).await?;
        let dir = self.instance_dir(&spec.id);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Io {
            what: "create",
            path: dir.clone(),
            source: e,
        })?;
        let found = self
            .store
            .wasm_module(&pulled, &dir.join(MODULE_FILE))
            .await
            .map_err(|e| failed(module, e))?;
        self.in_use().insert(spec.id.clone(), pulled.digest.clone());
        progress(&match &found.file {
            Some(file) => format!("module {file} of layer {}", found.layer),
            None => format!("module {} (a wasm artifact)", found.layer),
        });
        prepared.module = Some(PreparedModule {
            path: found.path,
            layer: found.layer,
            file: found.file,
        });
        Ok(())
    }

    /// Deletes a plain image's module copied for `id`, if any.
    pub(crate) fn release_module(&self, id: &str) -> Result<(), RuntimeError> {
        let file = self.instance_dir(id).join(MODULE_FILE);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
                what: "remove",
                path: file,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}
