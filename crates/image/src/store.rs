//! The cache on disk, under the store's root:
//!
//! ```text
//! blobs/sha256/<hex>         verified blobs (layers and configs), named by their digest
//! layers/<hex>/              a layer unpacked once for overlayfs (whiteouts converted), shared
//! manifests/<hex>.json       an image: manifest digest, config, layers (written last)
//! refs/<sha256(ref)>.json    an image reference → its manifest digest
//! rootfs/<sha256(dest)>.json an overlay root filesystem → the layers it mounts (for gc)
//! tmp/                       downloads and unpacks in progress
//! ```
//!
//! Blobs and unpacked layers appear by rename only once complete, so a crash leaves at most
//! garbage in `tmp/` (cleaned by gc) and never a half-written blob under its digest.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, IoContext, Result};
use crate::{GcReport, Image, ImageConfig};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManifestRecord {
    pub digest: String,
    pub config_digest: String,
    pub config: ImageConfig,
    pub layers: Vec<LayerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RefRecord {
    pub reference: String,
    pub digest: String,
    #[serde(default)]
    pub index_digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RootfsRecord {
    pub dest: PathBuf,
    pub image: String,
    pub layers: Vec<String>,
}

/// `sha256:<64 hex>` → the hex part; anything else is refused (it would become a file name).
pub(crate) fn sha256_hex(digest: &str) -> Result<String> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        ImageError::Unsupported(format!("digest {digest:?}: only sha256 is supported"))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ImageError::Unsupported(format!(
            "malformed digest {digest:?}"
        )));
    }
    Ok(hex.to_string())
}

fn hash_name(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> Result<Self> {
        // Absolute: these paths end up in overlay mount options and rootfs records.
        let root = &std::path::absolute(root).ctx("resolve", root)?;
        for dir in [
            "blobs/sha256",
            "layers",
            "manifests",
            "refs",
            "rootfs",
            "tmp",
        ] {
            let path = root.join(dir);
            fs::create_dir_all(&path).ctx("create cache directory", &path)?;
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn blob(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    pub fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers").join(hex)
    }

    fn manifest_path(&self, hex: &str) -> PathBuf {
        self.root.join("manifests").join(format!("{hex}.json"))
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(format!("{}.json", hash_name(reference)))
    }

    fn rootfs_path(&self, dest: &Path) -> PathBuf {
        self.root
            .join("rootfs")
            .join(format!("{}.json", hash_name(&dest.display().to_string())))
    }

    /// Whether the blob is in the cache with the expected size.
    pub fn has_blob(&self, digest: &str, size: u64) -> Result<bool> {
        let path = self.blob(&sha256_hex(digest)?);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len() == size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ImageError::io("stat", &path, e)),
        }
    }

    /// Whether every blob of the image is present.
    pub fn complete(&self, record: &ManifestRecord) -> Result<bool> {
        for layer in &record.layers {
            if !self.has_blob(&layer.digest, layer.size)? {
                return Ok(false);
            }
        }
        let config = self.blob(&sha256_hex(&record.config_digest)?);
        Ok(config.exists())
    }

    pub fn read_manifest(&self, digest: &str) -> Result<Option<ManifestRecord>> {
        read_json(&self.manifest_path(&sha256_hex(digest)?))
    }

    pub fn write_manifest(&self, record: &ManifestRecord) -> Result<()> {
        write_json(
            &self.manifest_path(&sha256_hex(&record.digest)?),
            record,
            &self.tmp(),
        )
    }

    pub fn read_ref(&self, reference: &str) -> Result<Option<RefRecord>> {
        read_json(&self.ref_path(reference))
    }

    pub fn write_ref(&self, record: &RefRecord) -> Result<()> {
        write_json(&self.ref_path(&record.reference), record, &self.tmp())
    }

    pub fn write_rootfs(&self, record: &RootfsRecord) -> Result<()> {
        write_json(&self.rootfs_path(&record.dest), record, &self.tmp())
    }

    pub fn remove_rootfs_record(&self, dest: &Path) -> Result<()> {
        let path = self.rootfs_path(dest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(ImageError::io("remove", &path, e))
            }
            _ => Ok(()),
        }
    }

    /// The image a reference names, if the cache has all of it.
    pub fn cached_image(&self, reference: &str) -> Result<Option<Image>> {
        let Some(r) = self.read_ref(reference)? else {
            return Ok(None);
        };
        let Some(m) = self.read_manifest(&r.digest)? else {
            return Ok(None);
        };
        if !self.complete(&m)? {
            return Ok(None);
        }
        Ok(Some(image_of(reference, r.index_digest, &m)))
    }

    /// Removes what `keep` (references or manifest digests) and live root filesystems do not
    /// need. Callers hold the store's exclusive lock: nothing else runs meanwhile.
    pub fn gc(
        &self,
        keep_refs: &HashSet<String>,
        keep_digests: &HashSet<String>,
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut kept_manifests: HashSet<String> = keep_digests.clone();
        let mut kept_layers: HashSet<String> = HashSet::new();

        // Root filesystems still on disk pin their image and layers; stale records go.
        for (path, record) in list_json::<RootfsRecord>(&self.root.join("rootfs"))? {
            if record.dest.join("rootfs").exists() {
                kept_manifests.insert(record.image.clone());
                kept_layers.extend(record.layers.iter().cloned());
            } else {
                remove_file(&path)?;
            }
        }
        for (_, record) in list_json::<RefRecord>(&self.root.join("refs"))? {
            if keep_refs.contains(&record.reference) {
                kept_manifests.insert(record.digest.clone());
            }
        }
        let mut kept_blobs: HashSet<String> = HashSet::new();
        for (path, record) in list_json::<ManifestRecord>(&self.root.join("manifests"))? {
            if kept_manifests.contains(&record.digest) {
                kept_blobs.insert(sha256_hex(&record.config_digest)?);
                for layer in &record.layers {
                    let hex = sha256_hex(&layer.digest)?;
                    kept_blobs.insert(hex.clone());
                    kept_layers.insert(hex);
                }
            } else {
                remove_file(&path)?;
                report.images_removed += 1;
            }
        }
        // A reference stays exactly when its image does.
        for (path, record) in list_json::<RefRecord>(&self.root.join("refs"))? {
            if !kept_manifests.contains(&record.digest) {
                remove_file(&path)?;
            }
        }
        let blobs = self.root.join("blobs/sha256");
        for entry in fs::read_dir(&blobs).ctx("read directory", &blobs)? {
            let entry = entry.ctx("read directory", &blobs)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !kept_blobs.contains(&name) {
                report.bytes_freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                remove_file(&entry.path())?;
                report.blobs_removed += 1;
            }
        }
        let layers = self.root.join("layers");
        for entry in fs::read_dir(&layers).ctx("read directory", &layers)? {
            let entry = entry.ctx("read directory", &layers)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !kept_layers.contains(&name) {
                report.bytes_freed += dir_size(&entry.path());
                fs::remove_dir_all(entry.path()).ctx("remove", entry.path())?;
                report.layers_removed += 1;
            }
        }
        let tmp = self.tmp();
        for entry in fs::read_dir(&tmp).ctx("read directory", &tmp)? {
            let entry = entry.ctx("read directory", &tmp)?;
            let path = entry.path();
            report.bytes_freed += dir_size(&path);
            let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.ctx("remove", &path)?;
        }
        Ok(report)
    }
}

pub(crate) fn image_of(reference: &str, index_digest: Option<String>, m: &ManifestRecord) -> Image {
    Image {
        reference: reference.to_string(),
        digest: m.digest.clone(),
        index_digest,
        config: m.config.clone(),
        layers: m.layers.iter().map(|l| l.digest.clone()).collect(),
        size: m.layers.iter().map(|l| l.size).sum(),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::io("remove", path, e)),
        _ => Ok(()),
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    let Ok(entries) = fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| dir_size(&e.path()))
        .sum()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                // A damaged index entry is a cache miss, not an outage.
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable cache record");
                Ok(None)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ImageError::io("read", path, e)),
    }
}

fn write_json<T: Serialize>(path: &Path, value: &T, tmp_dir: &Path) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| ImageError::Internal(format!("serialising {}: {e}", path.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(tmp_dir).ctx("create temp file in", tmp_dir)?;
    io::Write::write_all(&mut tmp, &bytes).ctx("write", tmp.path().to_path_buf())?;
    tmp.as_file()
        .sync_all()
        .ctx("sync", tmp.path().to_path_buf())?;
    tmp.persist(path)
        .map_err(|e| ImageError::io("rename into", path, e.error))?;
    Ok(())
}

fn list_json<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<(PathBuf, T)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).ctx("read directory", dir)? {
        let path = entry.ctx("read directory", dir)?.path();
        if path.extension().is_some_and(|e| e == "json") {
            if let Some(v) = read_json(&path)? {
                out.push((path, v));
            } else {
                remove_file(&path)?;
            }
        }
    }
    Ok(out)
}

/// The image configuration blob (OCI or Docker), reduced to what a runtime needs.
pub(crate) fn parse_config(bytes: &[u8], digest: &str) -> Result<ImageConfig> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        os: String,
        #[serde(default)]
        config: Option<Inner>,
    }
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase")]
    struct Inner {
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: Option<Vec<String>>,
        working_dir: Option<String>,
        user: Option<String>,
        exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
        labels: Option<BTreeMap<String, String>>,
        stop_signal: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Unsupported(format!("image config {digest}: {e}")))?;
    let inner = raw.config.unwrap_or_default();
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    Ok(ImageConfig {
        entrypoint: inner.entrypoint.unwrap_or_default(),
        cmd: inner.cmd.unwrap_or_default(),
        env: inner.env.unwrap_or_default(),
        working_dir: non_empty(inner.working_dir),
        user: non_empty(inner.user),
        exposed_ports: inner
            .exposed_ports
            .map(|m| m.into_keys().collect())
            .unwrap_or_default(),
        labels: inner.labels.unwrap_or_default(),
        stop_signal: non_empty(inner.stop_signal),
        os: raw.os,
        architecture: raw.architecture,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_sha256_hex() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&good).unwrap(), "a".repeat(64));
        assert!(sha256_hex("sha512:abc").is_err());
        assert!(sha256_hex(&format!("sha256:{}", "../".repeat(22))).is_err());
        assert!(sha256_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
    }

    #[test]
    fn docker_config_is_parsed() {
        let json = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/sh"],
            "Cmd":["-c","echo hi"],"Env":["PATH=/bin","A=b"],"WorkingDir":"/srv","User":"1000:1000",
            "ExposedPorts":{"8080/tcp":{}},"Labels":{"k":"v"}},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = parse_config(json, "sha256:x").unwrap();
        assert_eq!(c.entrypoint, vec!["/bin/sh"]);
        assert_eq!(c.cmd, vec!["-c", "echo hi"]);
        assert_eq!(c.env, vec!["PATH=/bin", "A=b"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(c.exposed_ports, vec!["8080/tcp"]);
        assert_eq!(c.labels.get("k").map(String::as_str), Some("v"));
        let minimal = parse_config(br#"{"os":"linux"}"#, "sha256:x").unwrap();
        assert!(minimal.cmd.is_empty() && minimal.working_dir.is_none());
    }
}
