//! A guest's kernel and initramfs: a file on the node (checked against its sha256 when one
//! is given) or an http(s) URL, downloaded once into `<dir>/<sha256>` and checked against the
//! sha256 the service gives (validation requires one for a URL).

use crate::RuntimeError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest kernel or initramfs accepted.
const MAX_ARTIFACT_BYTES: u64 = 512 << 20;
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

fn sha256_file(path: &Path) -> Result<String, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|e| RuntimeError::io("read", path, e))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Downloads and files artifacts under `dir`, by digest.
pub(crate) struct Artifacts {
    dir: PathBuf,
}

impl Artifacts {
    pub(crate) fn new(dir: PathBuf) -> Result<Artifacts, RuntimeError> {
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        Ok(Artifacts { dir })
    }

    /// The local file of `location` (vm field `what`, for messages), its digest checked.
    pub(crate) async fn resolve(
        &self,
        service: &str,
        what: &str,
        location: &str,
        sha256: Option<&str>,
    ) -> Result<PathBuf, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: service.to_string(),
            reason,
        };
        let want = sha256.map(str::to_ascii_lowercase);
        if !canopy_model::is_url_module(location) {
            let path = PathBuf::from(location);
            if !path.is_file() {
                return Err(invalid(format!(
                    "vm.{what} {location} is not a file on this node"
                )));
            }
            if let Some(want) = &want {
                let got = sha256_file(&path)?;
                if got != *want {
                    return Err(invalid(format!(
                        "vm.{what} {location} has sha256 {got}, expected {want}"
                    )));
                }
            }
            return Ok(path);
        }
        let Some(want) = want else {
            return Err(invalid(format!(
                "vm.{what} {location} is an http(s) URL: vm.{what}Sha256 is required"
            )));
        };
        let kept = self.dir.join(&want);
        if kept.is_file() && sha256_file(&kept)? == want {
            return Ok(kept);
        }
        let bytes = crate::download::download(
            location,
            &format!("vm.{what}"),
            MAX_ARTIFACT_BYTES,
            DOWNLOAD_TIMEOUT,
        )
        .await
        .map_err(invalid)?;
        let got = hex::encode(Sha256::digest(&bytes));
        if got != want {
            return Err(invalid(format!(
                "vm.{what} {location} has sha256 {got}, expected {want}"
            )));
        }
        let tmp = self.dir.join(format!("{want}.tmp"));
        std::fs::write(&tmp, &bytes).map_err(|e| RuntimeError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &kept).map_err(|e| RuntimeError::io("rename into", &kept, e))?;
        Ok(kept)
    }
}
