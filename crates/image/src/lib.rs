//! Canopy's image store: pulls OCI images from registries (any OCI / Docker v2 registry, basic
//! auth and bearer tokens, multi-arch indexes resolved to this node's platform), keeps them in
//! a content-addressed cache with verified digests, and prepares container root filesystems.
//!
//! - **Pull**: [`ImageStore::pull`] resolves the reference, then fetches the config and the
//!   layers it does not have yet, each to a temp file renamed under its digest only once its
//!   sha256 and size match. Concurrent pulls of one image share one fetch; progress goes to
//!   the caller's callback. A reference by digest that is cached needs no network at all; a
//!   tag costs one manifest request when its image is cached.
//! - **Root filesystems**: [`ImageStore::create_rootfs`] mounts overlayfs over layers unpacked
//!   once per digest (whiteouts converted to overlayfs' format) when the kernel allows it
//!   (probed once), and otherwise applies the layers in order into a per-instance copy (OCI
//!   whiteouts applied as deletions). [`RootfsMode`] forces either.
//! - **GC**: [`ImageStore::gc`] drops images not named in its keep list and not under a live
//!   overlay root filesystem, and every blob and unpacked layer nothing left refers to.
//!
//! - **WebAssembly**: wasm OCI artifacts pull like images; [`ImageStore::wasm_module`] finds
//!   the module of an artifact or of a plain image holding a `.wasm` file (which file is taken is documented there).
//!
//! Plain HTTP is used only for registries listed in `insecure_registries`.

mod error;
mod platform;
mod registry;
mod rootfs;
mod store;
mod unpack;
mod wasm;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::{StreamExt, TryStreamExt};
use oci_client::Reference;
use oci_client::manifest::OciDescriptor;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::{Mutex, OnceCell, RwLock, broadcast};

pub use error::{ImageError, Result};
pub use platform::Platform;
pub use wasm::{WASM_CONFIG_MEDIA_TYPES, WASM_LAYER_MEDIA_TYPES, WasmModule};

use registry::Registry;
use store::{LayerRecord, ManifestRecord, RefRecord, RootfsRecord, Store, sha256_hex};

/// How root filesystems are made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    /// Overlayfs when the kernel allows it, else a copy.
    #[default]
    Auto,
    /// Overlayfs or an error.
    Overlay,
    /// Always a per-instance copy of the layers.
    Copy,
}

/// Configuration of an [`ImageStore`].
#[derive(Debug, Clone)]
pub struct ImageStoreConfig {
    /// The cache's directory.
    pub root: PathBuf,
    /// Registries (`host[:port]`, as written in references) reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The platform picked from multi-arch indexes.
    pub platform: Platform,
    /// Connect and read timeout, and the base of every request's deadline (blob downloads get
    /// one more second per 256 KiB).
    pub timeout: Duration,
    pub rootfs_mode: RootfsMode,
    /// Layers downloaded at once within one pull.
    pub max_concurrent_downloads: usize,
    /// Extra trusted CA certificates (PEM), for registries with a private CA.
    pub ca_certificates: Vec<Vec<u8>>,
}

impl ImageStoreConfig {
    /// Defaults: this host's platform, 30 s timeout, overlay when possible, 3 downloads.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ImageStoreConfig {
            root: root.into(),
            insecure_registries: Vec::new(),
            platform: Platform::host(),
            timeout: Duration::from_secs(30),
            rootfs_mode: RootfsMode::Auto,
            max_concurrent_downloads: 3,
            ca_certificates: Vec::new(),
        }
    }
}

/// Registry credentials. Basic auth, or exchanged for a bearer token when the registry asks.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// What a runtime needs from an image's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    /// `8080/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub os: String,
    pub architecture: String,
}

/// A pulled image, all of it in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The reference as normalised (`registry/repository:tag` or `@digest`).
    pub reference: String,
    /// The (platform) manifest's digest.
    pub digest: String,
    /// The index's digest when the reference named a multi-arch index.
    pub index_digest: Option<String>,
    pub config: ImageConfig,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    /// Sum of the (compressed) layer sizes.
    pub size: u64,
}

/// Progress of a pull, for instance events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    /// Asking the registry what the reference names.
    Resolving { reference: String },
    /// The manifest is known.
    Resolved { digest: String, layers: usize },
    /// A layer's download advanced (or, with `cached`, it was already here).
    Layer {
        digest: String,
        bytes: u64,
        total: u64,
        cached: bool,
    },
    /// The image is complete in the cache.
    Done { digest: String, cached: bool },
}

/// A root filesystem made by [`ImageStore::create_rootfs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rootfs {
    /// The directory a container uses as its root (`dest/rootfs`).
    pub path: PathBuf,
    /// Whether it is an overlay mount (else a copy).
    pub overlay: bool,
}

/// What [`ImageStore::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub images_removed: usize,
    pub blobs_removed: usize,
    pub layers_removed: usize,
    pub bytes_freed: u64,
}

type PullFuture = Shared<BoxFuture<'static, Result<Image>>>;

struct Inner {
    config: ImageStoreConfig,
    store: Store,
    /// Pulls in flight by (reference, credentials): later callers await the first one's fetch.
    inflight: StdMutex<HashMap<String, (PullFuture, broadcast::Sender<PullProgress>)>>,
    /// Pulls and rootfs creation share it; gc takes it alone.
    gc_lock: RwLock<()>,
    overlay: OnceCell<bool>,
    /// One unpack per layer at a time.
    unpacking: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// The image store. Cheap to clone; clones share the cache and in-flight pulls.
#[derive(Clone)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.config.root)
            .finish_non_exhaustive()
    }
}

fn parse_reference(reference: &str) -> Result<Reference> {
    reference
        .parse::<Reference>()
        .map_err(|e| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: e.to_string(),
        })
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::Internal(format!("blocking task failed: {e}")))?
}

impl ImageStore {
    /// Opens (creating) the cache at `config.root`.
    pub fn open(config: ImageStoreConfig) -> Result<Self> {
        // Registries over HTTPS need a rustls provider; install ring unless the process has one.
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let store = Store::open(&config.root)?;
        Ok(ImageStore {
            inner: Arc::new(Inner {
                config,
                store,
                inflight: StdMutex::new(HashMap::new()),
                gc_lock: RwLock::new(()),
                overlay: OnceCell::new(),
                unpacking: StdMutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.inner.store.root()
    }

    /// The cached image a reference names, without any network access.
    pub async fn cached(&self, reference: &str) -> Result<Option<Image>> {
        let whole = parse_reference(reference)?.whole();
        let store = self.inner.store.clone();
        blocking(move || store.cached_image(&whole)).await
    }

    /// Pulls `reference` into the cache (or finds it there) and returns it.
    pub async fn pull(
        &self,
        reference: &str,
        credentials: Option<&Credentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> Result<Image> {
        let parsed = parse_reference(reference)?;
        let mut key = parsed.whole();
        if let Some(c) = credentials {
            key.push('\0');
            key.push_str(&c.username);
            key.push('\0');
            key.push_str(&hex::encode(Sha256::digest(c.password.as_bytes())));
        }
        let (mut fut, mut events) = {
            let mut inflight = self
                .inner
                .inflight
                .lock()
                .map_err(|_| ImageError::Internal("in-flight map poisoned".to_string()))?;
            if let Some((fut, tx)) = inflight.get(&key) {
                tracing::debug!(reference = %parsed, "joining a pull in flight");
                (fut.clone(), tx.subscribe())
            } else {
                let (tx, rx) = broadcast::channel(1024);
                let inner = self.inner.clone();
                let credentials = credentials.cloned();
                let task_key = key.clone();
                let task_tx = tx.clone();
                // A task of its own: a caller that gives up does not cancel the others' pull.
                let handle = tokio::spawn(async move {
                    let emit = move |p: PullProgress| {
                        let _ = task_tx.send(p);
                    };
                    let result = pull_image(&inner, parsed, credentials.as_ref(), &emit).await;
                    if let Ok(mut map) = inner.inflight.lock() {
                        map.remove(&task_key);
                    }
                    result
                });
                let fut: PullFuture = async move {
                    handle
                        .await
                        .map_err(|e| ImageError::Internal(format!("pull task failed: {e}")))?
                }
                .boxed()
                .shared();
                inflight.insert(key, (fut.clone(), tx));
                (fut, rx)
            }
        };
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => progress(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return fut.await,
                },
                result = &mut fut => {
                    while let Ok(event) = events.try_recv() {
                        progress(event);
                    }
                    return result;
                }
            }
        }
    }

    /// Prepares a root filesystem for `image` at `dest/rootfs` (`dest` is created if needed and
    /// may hold the caller's files, e.g. an OCI bundle's `config.json`; it must not hold a
    /// rootfs already). With overlayfs, the instance's writes go to `dest/upper`.
    pub async fn create_rootfs(&self, image: &Image, dest: &Path) -> Result<Rootfs> {
        let _shared = self.inner.gc_lock.read().await;
        let store = &self.inner.store;
        let record = {
            let (store, digest) = (store.clone(), image.digest.clone());
            blocking(move || {
                let record = store.read_manifest(&digest)?;
                match record {
                    Some(r) if store.complete(&r)? => Ok(r),
                    _ => Err(ImageError::NotCached(digest)),
                }
            })
            .await?
        };
        if let Some(layer) = record
            .layers
            .iter()
            .find(|l| wasm::is_wasm_layer(&l.media_type))
        {
            return Err(ImageError::Unsupported(format!(
                "{} is a WebAssembly artifact (layer media type {}): run it with runtime wasm",
                image.reference, layer.media_type
            )));
        }
        let dest = std::path::absolute(dest).map_err(|e| ImageError::io("resolve", dest, e))?;
        if dest.join("rootfs").exists() {
            return Err(ImageError::io(
                "create rootfs",
                dest.join("rootfs"),
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "already exists"),
            ));
        }
        tokio::fs::create_dir_all(&dest)
            .await
            .map_err(|e| ImageError::io("create directory", &dest, e))?;
        let mode = self.inner.config.rootfs_mode;
        if mode != RootfsMode::Copy && self.overlay_supported().await {
            match self.overlay_rootfs(&record, &dest).await {
                Ok(path) => {
                    return Ok(Rootfs {
                        path,
                        overlay: true,
                    });
                }
                Err(e) if mode == RootfsMode::Auto && matches!(e, ImageError::Mount { .. }) => {
                    tracing::warn!(error = %e, "overlay mount failed; copying the layers instead");
                    let d = dest.clone();
                    blocking(move || rootfs::remove(&d)).await?;
                    let s = store.clone();
                    let d = dest.clone();
                    blocking(move || s.remove_rootfs_record(&d)).await?;
                    tokio::fs::create_dir_all(&dest)
                        .await
                        .map_err(|e| ImageError::io("create directory", &dest, e))?;
                }
                Err(e) => return Err(e),
            }
        } else if mode == RootfsMode::Overlay {
            return Err(ImageError::Unsupported(
                "overlayfs is not usable on this machine".to_string(),
            ));
        }
        let blobs: Vec<(PathBuf, String)> = record
            .layers
            .iter()
            .map(|l| Ok((store.blob(&sha256_hex(&l.digest)?), l.digest.clone())))
            .collect::<Result<_>>()?;
        let d = dest.clone();
        let made = blocking(move || rootfs::copy_layers(&d, &blobs)).await;
        match made {
            Ok(path) => Ok(Rootfs {
                path,
                overlay: false,
            }),
            Err(e) => {
                let d = dest.clone();
                if let Err(cleanup) = blocking(move || rootfs::remove(&d)).await {
                    tracing::warn!(error = %cleanup, "cannot clean up a failed rootfs");
                }
                Err(e)
            }
        }
    }

    async fn overlay_rootfs(&self, record: &ManifestRecord, dest: &Path) -> Result<PathBuf> {
        let store = &self.inner.store;
        let mut lowers = Vec::new();
        let mut hexes = Vec::new();
        for layer in &record.layers {
            let hex = sha256_hex(&layer.digest)?;
            lowers.push(self.unpacked_layer(&hex, &layer.digest).await?);
            hexes.push(hex);
        }
        // Recorded before mounting, so gc never takes layers a rootfs is about to use.
        let rec = RootfsRecord {
            dest: dest.to_path_buf(),
            image: record.digest.clone(),
            layers: hexes,
        };
        let s = store.clone();
        blocking(move || s.write_rootfs(&rec)).await?;
        let d = dest.to_path_buf();
        blocking(move || rootfs::mount_overlay(&d, &lowers)).await
    }

    /// `layers/<hex>`, unpacking the blob there first if needed (once, whoever asks).
    async fn unpacked_layer(&self, hex: &str, digest: &str) -> Result<PathBuf> {
        let store = self.inner.store.clone();
        let dir = store.layer_dir(hex);
        let lock = {
            let mut map = self
                .inner
                .unpacking
                .lock()
                .map_err(|_| ImageError::Internal("unpack map poisoned".to_string()))?;
            map.entry(hex.to_string()).or_default().clone()
        };
        let _held = lock.lock().await;
        if tokio::fs::try_exists(&dir).await.unwrap_or(false) {
            return Ok(dir);
        }
        let (hex, digest, final_dir) = (hex.to_string(), digest.to_string(), dir.clone());
        blocking(move || {
            let tmp = tempfile::Builder::new()
                .prefix(&format!("unpack-{hex}-"))
                .tempdir_in(store.tmp())
                .map_err(|e| ImageError::io("create temp directory in", store.tmp(), e))?;
            unpack::apply_layer(
                &store.blob(&hex),
                tmp.path(),
                unpack::Mode::Overlay,
                &digest,
            )?;
            std::fs::set_permissions(
                tmp.path(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .map_err(|e| ImageError::io("chmod", tmp.path(), e))?;
            let tmp = tmp.keep();
            std::fs::rename(&tmp, &final_dir)
                .map_err(|e| ImageError::io("rename into", &final_dir, e))
        })
        .await?;
        Ok(dir)
    }

    /// Whether overlay root filesystems work here; probed once.
    pub async fn overlay_supported(&self) -> bool {
        *self
            .inner
            .overlay
            .get_or_init(|| async {
                // Not in tmp/, which gc empties.
                let scratch = self.inner.store.root().to_path_buf();
                tokio::task::spawn_blocking(move || rootfs::probe_overlay(&scratch))
                    .await
                    .unwrap_or(false)
            })
            .await
    }

    /// Unmounts and deletes a root filesystem made by [`create_rootfs`](Self::create_rootfs)
    /// (`dest` as given there): `rootfs/`, `upper/`, `work/`, then `dest` if that emptied it.
    /// Idempotent.
    pub async fn remove_rootfs(&self, dest: &Path) -> Result<()> {
        let dest = std::path::absolute(dest).map_err(|e| ImageError::io("resolve", dest, e))?;
        let d = dest.clone();
        blocking(move || rootfs::remove(&d)).await?;
        let store = self.inner.store.clone();
        blocking(move || store.remove_rootfs_record(&dest)).await
    }

    /// Removes every image not named in `keep` (references or manifest digests) and not under
    /// an existing overlay rootfs, and every blob and unpacked layer no remaining image uses.
    pub async fn gc(&self, keep: &[String]) -> Result<GcReport> {
        let mut refs = HashSet::new();
        let mut digests = HashSet::new();
        for k in keep {
            if k.starts_with("sha256:") {
                digests.insert(k.clone());
            } else if let Ok(r) = k.parse::<Reference>() {
                refs.insert(r.whole());
            }
        }
        let _exclusive = self.inner.gc_lock.write().await;
        let store = self.inner.store.clone();
        let report = blocking(move || store.gc(&refs, &digests)).await?;
        tracing::info!(?report, "image gc");
        Ok(report)
    }
}

/// One pull, done by the task that owns it.
async fn pull_image(
    inner: &Inner,
    reference: Reference,
    credentials: Option<&Credentials>,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<Image> {
    let _shared = inner.gc_lock.read().await;
    let store = &inner.store;
    let whole = reference.whole();
    progress(PullProgress::Resolving {
        reference: whole.clone(),
    });
    let started = std::time::Instant::now();

    // By digest and cached: nothing to ask the registry.
    if reference.digest().is_some() {
        let (s, w) = (store.clone(), whole.clone());
        if let Some(image) = blocking(move || s.cached_image(&w)).await? {
            report_cached(&image, store, progress);
            return Ok(image);
        }
    }

    let registry = Registry::new(&reference, credentials, &inner.config)?;
    let resolved = registry.resolve(&reference, &inner.config.platform).await?;
    progress(PullProgress::Resolved {
        digest: resolved.digest.clone(),
        layers: resolved.manifest.layers.len(),
    });
    let ref_record = RefRecord {
        reference: whole.clone(),
        digest: resolved.digest.clone(),
        index_digest: resolved.index_digest.clone(),
    };

    // The manifest is one we have: no config or layer to fetch.
    let existing = {
        let (s, d) = (store.clone(), resolved.digest.clone());
        blocking(move || match s.read_manifest(&d)? {
            Some(m) if s.complete(&m)? => Ok(Some(m)),
            _ => Ok(None),
        })
        .await?
    };
    if let Some(record) = existing {
        let (s, r) = (store.clone(), ref_record.clone());
        blocking(move || s.write_ref(&r)).await?;
        let image = store::image_of(&whole, resolved.index_digest, &record);
        report_cached(&image, store, progress);
        return Ok(image);
    }

    for layer in &resolved.manifest.layers {
        check_layer_media_type(&layer.media_type, &layer.digest)?;
    }

    // Config first (small, and it must parse), then the layers.
    let config_desc = &resolved.manifest.config;
    fetch_blob(&registry, store, &reference, config_desc, &no_progress).await?;
    let config_path = store.blob(&sha256_hex(&config_desc.digest)?);
    let config_bytes = tokio::fs::read(&config_path)
        .await
        .map_err(|e| ImageError::io("read", &config_path, e))?;
    // A wasm artifact's config says little a runtime needs (and the older kind may be empty).
    let wasm_config = wasm::is_wasm_config(&config_desc.media_type);
    let config = match store::parse_config(&config_bytes, &config_desc.digest) {
        Err(_) if wasm_config => ImageConfig::default(),
        parsed => parsed?,
    };
    let platform = &inner.config.platform;
    if !wasm_config
        && !config.architecture.is_empty()
        && config.architecture != platform.architecture
    {
        tracing::warn!(
            reference = %whole,
            image = %config.architecture,
            node = %platform,
            "image architecture differs from this node's"
        );
    }

    let downloads: Vec<_> = resolved
        .manifest
        .layers
        .iter()
        .map(|layer| fetch_blob(&registry, store, &reference, layer, progress))
        .collect();
    futures::stream::iter(downloads)
        .buffer_unordered(inner.config.max_concurrent_downloads.max(1))
        .try_collect::<Vec<()>>()
        .await?;

    let record = ManifestRecord {
        digest: resolved.digest.clone(),
        config_digest: config_desc.digest.clone(),
        config,
        layers: resolved
            .manifest
            .layers
            .iter()
            .map(|l| LayerRecord {
                digest: l.digest.clone(),
                size: u64::try_from(l.size).unwrap_or(0),
                media_type: l.media_type.clone(),
            })
            .collect(),
    };
    let (s, m, r) = (store.clone(), record.clone(), ref_record);
    blocking(move || {
        s.write_manifest(&m)?;
        s.write_ref(&r)
    })
    .await?;
    let image = store::image_of(&whole, resolved.index_digest, &record);
    tracing::info!(
        reference = %whole,
        digest = %image.digest,
        bytes = image.size,
        ms = started.elapsed().as_millis() as u64,
        "image pulled"
    );
    progress(PullProgress::Done {
        digest: image.digest.clone(),
        cached: false,
    });
    Ok(image)
}

fn no_progress(_: PullProgress) {}

fn report_cached(image: &Image, store: &Store, progress: &(dyn Fn(PullProgress) + Send + Sync)) {
    for digest in &image.layers {
        let total = sha256_hex(digest)
            .ok()
            .and_then(|hex| std::fs::metadata(store.blob(&hex)).ok())
            .map(|m| m.len())
            .unwrap_or(0);
        progress(PullProgress::Layer {
            digest: digest.clone(),
            bytes: total,
            total,
            cached: true,
        });
    }
    progress(PullProgress::Done {
        digest: image.digest.clone(),
        cached: true,
    });
}

fn check_layer_media_type(media_type: &str, digest: &str) -> Result<()> {
    const OK: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
    ];
    // Wasm layers are kept as they are: only `wasm_module` reads them, `create_rootfs` refuses.
    if OK.contains(&media_type) || wasm::is_wasm_layer(media_type) {
        Ok(())
    } else {
        Err(ImageError::Unsupported(format!(
            "layer {digest} has media type {media_type}"
        )))
    }
}

/// Downloads a blob into the cache unless it is there; verified before it gets its name.
async fn fetch_blob(
    registry: &Registry,
    store: &Store,
    reference: &Reference,
    desc: &OciDescriptor,
    progress: &(dyn Fn(PullProgress) + Send + Sync),
) -> Result<()> {
    let hex = sha256_hex(&desc.digest)?;
    let size = u64::try_from(desc.size).map_err(|_| {
        ImageError::Unsupported(format!("blob {} has a negative size", desc.digest))
    })?;
    if store.has_blob(&desc.digest, size)? {
        progress(PullProgress::Layer {
            digest: desc.digest.clone(),
            bytes: size,
            total: size,
            cached: true,
        });
        return Ok(());
    }
    progress(PullProgress::Layer {
        digest: desc.digest.clone(),
        bytes: 0,
        total: size,
        cached: false,
    });
    let tmp = tempfile::Builder::new()
        .prefix(&format!("blob-{hex}-"))
        .tempfile_in(store.tmp())
        .map_err(|e| ImageError::io("create temp file in", store.tmp(), e))?;
    registry
        .download(reference, desc, tmp.path(), progress)
        .await?;
    let dest = store.blob(&hex);
    tmp.persist(&dest)
        .map_err(|e| ImageError::io("rename into", &dest, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_password() {
        let c = Credentials::new("alice", "hunter2");
        let text = format!("{c:?}");
        assert!(
            text.contains("alice") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn references_are_normalised() {
        assert_eq!(
            parse_reference("busybox").unwrap().whole(),
            "docker.io/library/busybox:latest"
        );
        assert!(matches!(
            parse_reference("Bad Reference"),
            Err(ImageError::InvalidReference { .. })
        ));
    }
}
