//! Container images for the OCI runtime: pulls through the node's image store (registry,
//! content-addressed cache) and makes each instance's root filesystem from it.

use async_trait::async_trait;
use canopy_image::{Credentials, ImageStore, PullProgress};
use canopy_model::ServiceSpec;
use canopy_runtime::{ImageConfig, ImageProvider, RuntimeError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Registry credentials the node holds, by registry host (`host[:port]`), for services that
/// bring none of their own.
pub type NodeCredentials = BTreeMap<String, Credentials>;

pub struct RegistryImages {
    store: ImageStore,
    credentials: NodeCredentials,
    /// The image behind each root filesystem made and not yet released.
    in_use: Mutex<BTreeMap<PathBuf, String>>,
}

impl RegistryImages {
    pub fn new(store: ImageStore, credentials: NodeCredentials) -> RegistryImages {
        RegistryImages {
            store,
            credentials,
            in_use: Mutex::new(BTreeMap::new()),
        }
    }

    fn in_use(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, String>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops cached images no instance uses, and the layers only they held (like
    /// `docker image prune -a`); the node calls it now and then, so restarts stay cached.
    pub async fn collect_garbage(&self) {
        let keep: Vec<String> = self.in_use().values().cloned().collect();
        match self.store.gc(&keep).await {
            Ok(report) => tracing::info!(?report, "image garbage collected"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }

    /// The service's own credentials win over the node's for the image's registry.
    fn credentials_for(&self, spec: &ServiceSpec, image: &str) -> Option<Credentials> {
        if let Some(secret) = &spec.image_pull_secret {
            return Some(Credentials::new(&secret.username, &secret.password));
        }
        let registry = image.split('/').next().unwrap_or_default();
        self.credentials.get(registry).cloned()
    }
}

fn failed(image: &str, error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Image {
        image: image.to_string(),
        reason: error.to_string(),
    }
}

#[async_trait]
impl ImageProvider for RegistryImages {
    async fn prepare(
        &self,
        spec: &ServiceSpec,
        rootfs: &Path,
        progress: &(dyn Fn(String) + Send + Sync),
    ) -> Result<ImageConfig, RuntimeError> {
        let image = spec.image.as_deref().unwrap_or_default();
        let credentials = self.credentials_for(spec, image);
        let report = |event: PullProgress| match event {
            PullProgress::Resolving { reference } => progress(format!("resolving {reference}")),
            PullProgress::Done { digest, cached } => progress(format!(
                "image {digest} {}",
                if cached { "cached" } else { "pulled" }
            )),
            _ => {}
        };
        let pulled = self
            .store
            .pull(image, credentials.as_ref(), &report)
            .await
            .map_err(|e| failed(image, e))?;
        // The store makes `dest/rootfs`: the runtime's bundle keeps its files beside it.
        let bundle = rootfs
            .parent()
            .ok_or_else(|| failed(image, "the root filesystem has no bundle directory"))?;
        // The runtime hands over an empty directory; the store makes its own (a mount point
        // or a copy). `remove_dir` never removes anything with content in it.
        match std::fs::remove_dir(rootfs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(image, format!("{}: {e}", rootfs.display()))),
        }
        self.store
            .create_rootfs(&pulled, bundle)
            .await
            .map_err(|e| failed(image, e))?;
        self.in_use()
            .insert(rootfs.to_path_buf(), pulled.digest.clone());
        let config = pulled.config;
        Ok(ImageConfig {
            entrypoint: config.entrypoint,
            cmd: config.cmd,
            env: config.env,
            working_dir: config.working_dir,
            user: config.user,
        })
    }

    async fn release(&self, rootfs: &Path) -> Result<(), RuntimeError> {
        self.in_use().remove(rootfs);
        let Some(bundle) = rootfs.parent() else {
            return Ok(());
        };
        self.store
            .remove_rootfs(bundle)
            .await
            .map_err(|e| failed(&rootfs.display().to_string(), e))
    }
}
