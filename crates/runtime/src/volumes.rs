//! A service's `volumes` as a prestart step: each becomes a directory of the node, which
//! the runtime mounts at the volume's `path` (a container's bind mount, a wasm module's
//! preopen) or names in `CANOPY_VOLUME_<NAME>` (a process). `node` volumes live under
//! `<data>/volumes/<namespace>/<application>/<name>` and outlive the instance; `emptyDir`
//! ones under `<data>/@emptydir/<instance>/<name>`, kept across restarts of the instance and
//! removed with it; a `hostPath` is the node's own directory, checked again here (resolved,
//! so a symbolic link cannot lead out) against the prefixes the node allows.

use crate::prestart::{Prepared, Prestart, Progress};
use crate::supervise::validate_id;
use crate::{Capabilities, InstanceSpec, RuntimeError};
use async_trait::async_trait;
use canopy_model::{VolumeKind, VolumeSpec, validate_dns_label};
use std::fs;
use std::path::{Path, PathBuf};

/// Where a node keeps its `node` volumes, under its data directory.
pub const NODE_VOLUMES_DIR: &str = "volumes";
/// Where a node keeps its instances' `emptyDir` volumes, under its data directory.
const EMPTY_DIRS: &str = "@emptydir";

/// One volume made ready for a start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedVolume {
    /// The node's directory.
    pub host: PathBuf,
    /// Where the instance sees it (containers, wasm).
    pub path: String,
    pub read_only: bool,
    /// `CANOPY_VOLUME_<NAME>`.
    pub env: String,
}

/// The volumes of one start, in the service's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreparedVolumes {
    pub volumes: Vec<PreparedVolume>,
}

impl PreparedVolumes {
    /// `CANOPY_VOLUME_<NAME>` → where the workload finds it: the node's directory for a
    /// process (`on_node`), else the mount path.
    pub fn env(&self, on_node: bool) -> impl Iterator<Item = (String, String)> + '_ {
        self.volumes.iter().map(move |v| {
            let value = match on_node {
                true => v.host.display().to_string(),
                false => v.path.clone(),
            };
            (v.env.clone(), value)
        })
    }
}

/// Makes the directories of services' volumes under a node's data directory.
pub struct VolumesPrestart {
    named: PathBuf,
    empty: PathBuf,
    /// Prefixes `hostPath` volumes may be under (`--allow-host-path`); none by default.
    allowed_host_paths: Vec<String>,
}

impl VolumesPrestart {
    pub fn new(data: &Path, allowed_host_paths: Vec<String>) -> VolumesPrestart {
        // Resolved volumes are compared with resolved prefixes (`/var/run` is `/run`).
        let allowed_host_paths = allowed_host_paths
            .into_iter()
            .map(|p| fs::canonicalize(&p).map_or(p, |r| r.display().to_string()))
            .collect();
        VolumesPrestart {
            named: data.join(NODE_VOLUMES_DIR),
            empty: data.join(EMPTY_DIRS),
            allowed_host_paths,
        }
    }

    fn prepare_one(
        &self,
        spec: &InstanceSpec,
        volume: &VolumeSpec,
    ) -> Result<PreparedVolume, RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: spec.service.name.clone(),
            reason: format!("volume {}: {reason}", volume.name),
        };
        validate_dns_label(&volume.name).map_err(&invalid)?;
        let host = match volume.kind {
            VolumeKind::Node => {
                let owner = |var: &str| {
                    let name = spec.env.get(var).map(String::as_str).unwrap_or_default();
                    validate_dns_label(name)
                        .map(|()| name.to_string())
                        .map_err(|e| invalid(format!("{var} {name:?}: {e}")))
                };
                let dir = self
                    .named
                    .join(owner("CANOPY_NAMESPACE")?)
                    .join(owner("CANOPY_APPLICATION")?)
                    .join(&volume.name);
                make_shared_dir(&dir)?;
                dir
            }
            VolumeKind::EmptyDir => {
                let dir = self.empty.join(&spec.id).join(&volume.name);
                make_shared_dir(&dir)?;
                dir
            }
            VolumeKind::HostPath => {
                let given = volume.host_path.as_deref().unwrap_or_default();
                let resolved = fs::canonicalize(given)
                    .map_err(|e| invalid(format!("host path {given}: {e}")))?;
                if !resolved.is_dir() {
                    return Err(invalid(format!("host path {given} is not a directory")));
                }
                let text = resolved.display().to_string();
                if !canopy_model::volume::allowed_host_path(&text, &self.allowed_host_paths) {
                    return Err(invalid(format!(
                        "host path {given} (resolved {text}) is not under a prefix this node allows"
                    )));
                }
                resolved
            }
        };
        Ok(PreparedVolume {
            host,
            path: volume.path.clone(),
            read_only: volume.read_only,
            env: volume.env_name(),
        })
    }
}

#[async_trait]
impl Prestart for VolumesPrestart {
    fn name(&self) -> &str {
        "volumes"
    }

    /// Every runtime: validation refuses volumes where none can be had (vm).
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
        if spec.service.volumes.is_empty() {
            prepared.volumes = None;
            return Ok(());
        }
        let volumes = spec
            .service
            .volumes
            .iter()
            .map(|v| self.prepare_one(spec, v))
            .collect::<Result<Vec<_>, _>>()?;
        prepared.volumes = Some(PreparedVolumes { volumes });
        Ok(())
    }

    /// The instance's `emptyDir` volumes go; `node` volumes stay for the next instance.
    async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        remove_tree(&self.empty.join(id))
    }
}

/// A volume directory any user of the workload may write (as Kubernetes' `emptyDir`,
/// 0777): it is reached only through the mount, its parents being the agent's own.
/// Made once; a mode its workload set later is kept.
fn make_shared_dir(dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| RuntimeError::io("create", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o777))
        .map_err(|e| RuntimeError::io("chmod", dir, e))
}

fn remove_tree(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RuntimeError::io("remove", path, e)),
    }
}

/// The `node` volumes a node holds (by their keys, `namespace/application/volume`), read
/// from its data directory.
pub fn held_node_volumes(data: &Path) -> std::collections::BTreeSet<String> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect()
    };
    let root = data.join(NODE_VOLUMES_DIR);
    let mut held = std::collections::BTreeSet::new();
    for namespace in names(&root) {
        for application in names(&root.join(&namespace)) {
            for volume in names(&root.join(&namespace).join(&application)) {
                held.insert(canopy_model::volume_key(&namespace, &application, &volume));
            }
        }
    }
    held
}

/// Removes every `node` volume of `namespace`/`application` on the node.
pub fn remove_node_volumes(
    data: &Path,
    namespace: &str,
    application: &str,
) -> Result<(), RuntimeError> {
    for name in [namespace, application] {
        validate_dns_label(name).map_err(|reason| RuntimeError::InvalidSpec {
            service: application.to_string(),
            reason: format!("volumes of {name:?}: {reason}"),
        })?;
    }
    let namespace_dir = data.join(NODE_VOLUMES_DIR).join(namespace);
    remove_tree(&namespace_dir.join(application))?;
    // An empty namespace directory says nothing: tidy it (another application's may be there).
    let _ = fs::remove_dir(&namespace_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec(id: &str, volumes: serde_json::Value) -> InstanceSpec {
        let service = serde_json::from_value(serde_json::json!({
            "name": "web", "runtime": "process", "command": ["/bin/true"], "volumes": volumes
        }))
        .unwrap();
        InstanceSpec {
            id: id.into(),
            generation: 1,
            service,
            env: BTreeMap::from([
                ("CANOPY_NAMESPACE".to_string(), "team".to_string()),
                ("CANOPY_APPLICATION".to_string(), "shop".to_string()),
            ]),
            prepared: Prepared::default(),
            secrets: Default::default(),
        }
    }

    async fn prepare(
        hook: &VolumesPrestart,
        spec: &InstanceSpec,
    ) -> Result<Prepared, RuntimeError> {
        let mut prepared = Prepared::default();
        hook.prepare(spec, &mut prepared, &|_: &str| {}).await?;
        Ok(prepared)
    }

    #[tokio::test]
    async fn a_node_volume_outlives_its_instance_and_an_empty_dir_does_not() {
        let data = tempfile::tempdir().unwrap();
        let hook = VolumesPrestart::new(data.path(), Vec::new());
        let volumes = serde_json::json!([
            {"name": "data", "path": "/data"},
            {"name": "scratch", "kind": "emptyDir", "path": "/tmp/s", "readOnly": true}
        ]);
        let first = prepare(&hook, &spec("web-1", volumes.clone()))
            .await
            .unwrap();
        let made = first.volumes.unwrap().volumes;
        assert_eq!(made[0].host, data.path().join("volumes/team/shop/data"));
        assert_eq!(made[1].host, data.path().join("@emptydir/web-1/scratch"));
        assert!(made[1].read_only);
        fs::write(made[0].host.join("kept"), "1").unwrap();
        fs::write(made[1].host.join("gone"), "1").unwrap();
        let env: Vec<_> = PreparedVolumes {
            volumes: made.clone(),
        }
        .env(false)
        .collect();
        assert_eq!(
            env[0],
            ("CANOPY_VOLUME_DATA".to_string(), "/data".to_string())
        );
        hook.release("web-1").await.unwrap();
        assert!(!made[1].host.exists());
        let second = prepare(&hook, &spec("web-2", volumes)).await.unwrap();
        let again = second.volumes.unwrap().volumes;
        assert_eq!(fs::read_to_string(again[0].host.join("kept")).unwrap(), "1");
        assert!(!again[1].host.join("gone").exists());
        let held: Vec<String> = held_node_volumes(data.path()).into_iter().collect();
        assert_eq!(held, ["team/shop/data"]);
        remove_node_volumes(data.path(), "team", "shop").unwrap();
        assert!(held_node_volumes(data.path()).is_empty());
        assert!(!data.path().join("volumes/team").exists());
    }

    #[tokio::test]
    async fn a_host_path_must_resolve_under_an_allowed_prefix() {
        let data = tempfile::tempdir().unwrap();
        let allowed = data.path().join("allowed");
        fs::create_dir_all(allowed.join("logs")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("out")).unwrap();
        let hook = VolumesPrestart::new(data.path(), vec![allowed.display().to_string()]);
        let volume = |host: &Path| {
            serde_json::json!([{"name": "h", "kind": "hostPath",
                "hostPath": host.display().to_string(), "path": "/h"}])
        };
        let ok = prepare(&hook, &spec("a", volume(&allowed.join("logs"))))
            .await
            .unwrap();
        assert_eq!(ok.volumes.unwrap().volumes[0].host, allowed.join("logs"));
        let escape = prepare(&hook, &spec("a", volume(&allowed.join("out")))).await;
        let text = escape.unwrap_err().to_string();
        assert!(
            text.contains("not under a prefix this node allows"),
            "{text}"
        );
        let missing = prepare(&hook, &spec("a", volume(&allowed.join("none")))).await;
        assert!(missing.is_err());
    }
}
