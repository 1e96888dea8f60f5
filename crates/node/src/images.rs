//! The image prestart hook: pulls through the node's image store (registry,
//! content-addressed cache) and makes each instance's root filesystem from it, in a
//! directory of the instance's own (`<dir>/<id>/rootfs`, an overlay over the cached
//! layers), for runtimes that run OCI images from a prepared root filesystem. Wasm modules
//! named by OCI references come through the same store (`wasm_modules.rs`).

use async_trait::async_trait;
use canopy_image::{Credentials, ImageStore, PullProgress};
use canopy_runtime::{
    Capabilities, ImageConfig, InstanceSpec, Prepared, PreparedImage, Prestart, Progress,
    RuntimeError, validate_id,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Registry credentials the node holds, by registry host (`host[:port]`), for services that
/// bring none of their own.
pub type NodeCredentials = BTreeMap<String, Credentials>;

pub struct RegistryImages {
    pub(crate) store: ImageStore,
    credentials: NodeCredentials,
    /// Each instance's root filesystem is made in `<dir>/<id>`.
    dir: PathBuf,
    /// The image behind each instance's root filesystem made and not yet released.
    in_use: Mutex<BTreeMap<String, String>>,
    /// Where pulls are counted (the node's metrics), once given.
    pulls: Option<crate::metrics::PullMetrics>,
}

impl RegistryImages {
    /// Root filesystems go under `dir` (made absolute: runtimes name it from elsewhere).
    pub fn new(
        store: ImageStore,
        credentials: NodeCredentials,
        dir: &Path,
    ) -> Result<RegistryImages, RuntimeError> {
        let dir = std::path::absolute(dir).map_err(|e| RuntimeError::Io {
            what: "resolve",
            path: dir.to_path_buf(),
            source: e,
        })?;
        Ok(RegistryImages {
            store,
            credentials,
            dir,
            in_use: Mutex::new(BTreeMap::new()),
            pulls: None,
        })
    }

    /// Counts each pull's time, bytes and result in `pulls` (`NodeMetrics::pulls`).
    pub fn observed_by(mut self, pulls: crate::metrics::PullMetrics) -> RegistryImages {
        self.pulls = Some(pulls);
        self
    }

    pub(crate) fn in_use(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.in_use.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops cached images no instance uses, and the layers only they held (like
    /// `docker image prune -a`); the node calls it now and then, so restarts stay cached.
    /// The store keeps every image under an existing root filesystem besides `keep`.
    pub async fn collect_garbage(&self) {
        let keep: Vec<String> = self.in_use().values().cloned().collect();
        match self.store.gc(&keep).await {
            Ok(report) => tracing::info!(?report, "image garbage collected"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }

    /// The service's own credentials (its `imagePullSecret`, resolved by the root) win over
    /// the node's for the image's registry.
    pub(crate) fn credentials_for(&self, spec: &InstanceSpec, image: &str) -> Option<Credentials> {
        if let Some((username, password)) = spec.service.pull_credentials(&spec.secrets) {
            return Some(Credentials::new(&username, &password));
        }
        let registry = image.split('/').next().unwrap_or_default();
        self.credentials.get(registry).cloned()
    }

    /// Pulls `image` for `spec` (its credentials, else the node's), counted in the node's
    /// metrics and reported as progress.
    pub(crate) async fn pull_counted(
        &self,
        spec: &InstanceSpec,
        image: &str,
        progress: Progress<'_>,
    ) -> Result<canopy_image::Image, RuntimeError> {
        let credentials = self.credentials_for(spec, image);
        // Downloaded bytes: each layer fetched reports its size once when complete.
        let downloaded = AtomicU64::new(0);
        let cached_image = AtomicBool::new(false);
        let report = |event: PullProgress| match event {
            PullProgress::Resolving { reference } => progress(&format!("resolving {reference}")),
            PullProgress::Layer {
                bytes,
                total,
                cached: false,
                ..
            } if bytes == total => {
                downloaded.fetch_add(bytes, Ordering::Relaxed);
            }
            PullProgress::Done { digest, cached } => {
                cached_image.store(cached, Ordering::Relaxed);
                progress(&format!(
                    "image {digest} {}",
                    if cached { "cached" } else { "pulled" }
                ))
            }
            _ => {}
        };
        let pulling = std::time::Instant::now();
        let pulled = self.store.pull(image, credentials.as_ref(), &report).await;
        if let Some(pulls) = &self.pulls {
            pulls.pulled(
                pulling.elapsed(),
                downloaded.load(Ordering::Relaxed),
                pulled.is_ok(),
                cached_image.load(Ordering::Relaxed),
            );
        }
        pulled.map_err(|e| failed(image, e))
    }

    /// Where instance `id`'s root filesystem is made.
    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }
}

pub(crate) fn failed(image: &str, error: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Image {
        image: image.to_string(),
        reason: error.to_string(),
    }
}

#[async_trait]
impl Prestart for RegistryImages {
    fn name(&self) -> &str {
        "image"
    }

    fn wanted_by(&self, caps: &Capabilities) -> bool {
        caps.image_rootfs || caps.oci_modules
    }

    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        progress: Progress<'_>,
    ) -> Result<(), RuntimeError> {
        validate_id(&spec.id)?;
        let svc = &spec.service;
        if svc.runtime == canopy_model::RuntimeKind::Wasm {
            return self.prepare_module(spec, prepared, progress).await;
        }
        let image = svc.image.as_deref().unwrap_or_default();
        if image.is_empty() {
            return Err(RuntimeError::InvalidSpec {
                service: svc.name.clone(),
                reason: "image is required for a container".to_string(),
            });
        }
        // Each start gets a fresh root filesystem, as a restarted pod does.
        self.release(&spec.id).await?;
        let pulled = self.pull_counted(spec, image, progress).await?;
        let made = self
            .store
            .create_rootfs(&pulled, &self.instance_dir(&spec.id))
            .await
            .map_err(|e| failed(image, e))?;
        self.in_use().insert(spec.id.clone(), pulled.digest.clone());
        let config = pulled.config;
        prepared.image = Some(PreparedImage {
            rootfs: made.path,
            config: ImageConfig {
                entrypoint: config.entrypoint,
                cmd: config.cmd,
                env: config.env,
                working_dir: config.working_dir,
                user: config.user,
            },
            digest: pulled.digest,
        });
        Ok(())
    }

    /// Unmounts and deletes `<dir>/<id>` (the store never deletes through a mount).
    async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        self.in_use().remove(id);
        self.release_module(id)?;
        let dest = self.instance_dir(id);
        self.store
            .remove_rootfs(&dest)
            .await
            .map_err(|e| failed(&dest.display().to_string(), e))
    }
}
