//! A service's `files` as a prestart step: written under `<dir>/<instance>/` at their paths
//! (inline content, or the key of a Secret the assignment carried), anew for every start.
//! A container bind-mounts each read-only at its path; a process finds the tree under
//! `$CANOPY_FILES`. The files are the workload's, readable by whatever user it runs as
//! (0444 in 0755 directories); the tree sits in the node's private data directory, so no
//! other user of the machine reaches it.

use crate::prestart::{Prepared, Prestart, Progress};
use crate::supervise::validate_id;
use crate::{Capabilities, InstanceSpec, RuntimeError};
use async_trait::async_trait;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The files made for one start: the tree's root, and each file's host path and its path
/// inside the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedFiles {
    pub root: PathBuf,
    pub mounts: Vec<(PathBuf, String)>,
}

/// Writes services' files under `dir` (one directory per instance).
pub struct FilesPrestart {
    dir: PathBuf,
}

impl FilesPrestart {
    pub fn new(dir: impl Into<PathBuf>) -> FilesPrestart {
        FilesPrestart { dir: dir.into() }
    }

    fn instance_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }
}

#[async_trait]
impl Prestart for FilesPrestart {
    fn name(&self) -> &str {
        "files"
    }

    /// Every runtime with a file system of its own or a process's: what the descriptor
    /// allows is validation's business (wasm is refused there).
    fn wanted_by(&self, _caps: &Capabilities) -> bool {
        true
    }

    async fn prepare(
        &self,
        spec: &InstanceSpec,
        prepared: &mut Prepared,
        _progress: Progress<'_>,
    ) -> Result<(), RuntimeError> {
        validate_id(&spec.id)?;
        let root = self.instance_dir(&spec.id);
        remove_tree(&root)?;
        if spec.service.files.is_empty() {
            prepared.files = None;
            return Ok(());
        }
        let files = spec.service.files.clone();
        let secrets = spec.secrets.clone();
        let service = spec.service.name.clone();
        let tree = root.clone();
        let mounts = tokio::task::spawn_blocking(move || -> Result<_, RuntimeError> {
            make_dir(&tree)?;
            let mut mounts = Vec::with_capacity(files.len());
            for file in &files {
                let content: &[u8] = match (&file.content, &file.secret) {
                    (Some(content), _) => content.as_bytes(),
                    (None, Some(r)) => secrets.get(&r.name, &r.key).ok_or_else(|| {
                        RuntimeError::InvalidSpec {
                            service: service.clone(),
                            reason: format!(
                                "file {}: the value of secret {:?} key {:?} did not come with the assignment",
                                file.path, r.name, r.key
                            ),
                        }
                    })?,
                    (None, None) => b"",
                };
                let host = tree.join(file.relative_path());
                if let Some(parent) = host.parent() {
                    make_dir(parent)?;
                }
                write_read_only(&host, content)?;
                mounts.push((host, file.path.clone()));
            }
            Ok(mounts)
        })
        .await
        .map_err(|e| RuntimeError::io("write files in", &root, std::io::Error::other(e)))??;
        prepared.files = Some(PreparedFiles { root, mounts });
        Ok(())
    }

    async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        remove_tree(&self.instance_dir(id))
    }
}

fn make_dir(path: &Path) -> Result<(), RuntimeError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| RuntimeError::io("create", path, e))?;
    // The agent's umask (077) applies to `mode`: set it as meant.
    set_mode(path, 0o755)
}

fn write_read_only(path: &Path, content: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(path)
        .map_err(|e| RuntimeError::io("create", path, e))?;
    file.write_all(content)
        .map_err(|e| RuntimeError::io("write", path, e))?;
    set_mode(path, 0o444)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| RuntimeError::io("chmod", path, e))
}

fn remove_tree(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path, e)),
    }
}
