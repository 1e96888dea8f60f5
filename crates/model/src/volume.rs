//! Directories a service's instances read and write, each mounted at its `path` (as
//! Kubernetes' volumes with their mounts, one mount per volume): `node` volumes, named and
//! kept on the node under the agent's data directory by namespace, application and name, so
//! a replacement instance on the same node finds what the last one wrote (placement prefers
//! the node that holds them); `emptyDir`, one per instance, removed with it; `hostPath`, a
//! directory of the node, only in a trusted namespace and under a prefix the node's
//! administrator allowed (`canopy node --allow-host-path`). Containers get bind mounts, wasm
//! modules preopened directories, and a process (no filesystem of its own) the directory in
//! `CANOPY_VOLUME_<NAME>`.

use crate::descriptor::{RuntimeKind, ServiceSpec};
use crate::error::FieldError;
use crate::validate::validate_dns_label;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// At most this many volumes per service.
pub const MAX_VOLUMES: usize = 32;
/// The reason a revocation carries when the instance's application was deleted: its node
/// then removes the application's `node` volumes once none of its instances is left there.
pub const APPLICATION_DELETED: &str = "application deleted";

/// One volume and where the instances see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    /// DNS label, unique in the service; a `node` volume of this name is shared by the
    /// application's services on the same node.
    pub name: String,
    #[serde(default)]
    pub kind: VolumeKind,
    /// Where the instance sees it: absolute and normal (`/var/lib/app`). Containers and
    /// wasm modules; a process finds the directory in `CANOPY_VOLUME_<NAME>` instead.
    pub path: String,
    /// The node's directory, for kind `hostPath` only: absolute and normal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Where a volume's directory comes from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum VolumeKind {
    /// Named, kept on the node across instance replacements; removed with the application.
    #[default]
    Node,
    /// Empty at the instance's first start, removed with the instance.
    EmptyDir,
    /// A directory of the node (`hostPath`), under a prefix the node allows.
    HostPath,
}

impl VolumeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeKind::Node => "node",
            VolumeKind::EmptyDir => "emptyDir",
            VolumeKind::HostPath => "hostPath",
        }
    }
}

impl VolumeSpec {
    /// The environment variable naming where the workload finds it: `CANOPY_VOLUME_` and
    /// the name in capitals, `-` as `_` (DNS labels make that one-to-one).
    pub fn env_name(&self) -> String {
        format!(
            "CANOPY_VOLUME_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl ServiceSpec {
    /// The `node` volumes an instance of this service in `namespace`/`application` uses, as
    /// the keys its node reports holding them by (`namespace/application/volume`).
    pub fn node_volume_keys(&self, namespace: &str, application: &str) -> Vec<String> {
        self.volumes
            .iter()
            .filter(|v| v.kind == VolumeKind::Node)
            .map(|v| volume_key(namespace, application, &v.name))
            .collect()
    }
}

/// How a node names a `node` volume it holds: `namespace/application/volume`.
pub fn volume_key(namespace: &str, application: &str, volume: &str) -> String {
    format!("{namespace}/{application}/{volume}")
}

/// Whether `path` (absolute and normal) is one of `prefixes` or under one, by whole parts:
/// `/srv/data` allows `/srv/data/x` but not `/srv/database`; `/` allows any path.
pub fn allowed_host_path(path: &str, prefixes: &[String]) -> bool {
    prefixes.iter().any(|prefix| {
        let prefix = prefix.trim_end_matches('/');
        prefix.is_empty()
            || path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Every problem with the service's `volumes`, each naming its field under `p`.
pub(crate) fn check_volumes(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if svc.volumes.is_empty() {
        return errors;
    }
    let at_all = format!("{p}.volumes");
    if svc.volumes.len() > MAX_VOLUMES {
        errors.push(FieldError::new(
            &at_all,
            format!("must have at most {MAX_VOLUMES} volumes"),
        ));
    }
    if svc.runtime == RuntimeKind::Vm {
        errors.push(FieldError::new(
            &at_all,
            "does not apply to runtime vm (a guest sees no directory of the node)",
        ));
    }
    if svc.runtime == RuntimeKind::Process && svc.security_context.run_as_user.is_some() {
        errors.push(FieldError::new(
            &at_all,
            "cannot be combined with securityContext.runAsUser for runtime process \
             (its volumes are under the node's private data directory)",
        ));
    }
    for (i, volume) in svc.volumes.iter().enumerate() {
        let at = format!("{p}.volumes[{i}]");
        if let Err(reason) = validate_dns_label(&volume.name) {
            errors.push(FieldError::new(format!("{at}.name"), reason));
        }
        if let Some(first) = svc.volumes[..i].iter().position(|v| v.name == volume.name) {
            errors.push(FieldError::new(
                format!("{at}.name"),
                format!("is also the name of volumes[{first}]"),
            ));
        }
        if let Err(reason) = crate::files::check_path(&volume.path) {
            errors.push(FieldError::new(format!("{at}.path"), reason));
        }
        if let Some(first) = svc.volumes[..i].iter().position(|v| v.path == volume.path) {
            errors.push(FieldError::new(
                format!("{at}.path"),
                format!("is also the path of volumes[{first}]"),
            ));
        }
        if let Some(file) = svc.files.iter().position(|f| f.path == volume.path) {
            errors.push(FieldError::new(
                format!("{at}.path"),
                format!("is also the path of files[{file}]"),
            ));
        }
        match (volume.kind, &volume.host_path) {
            (VolumeKind::HostPath, None) => errors.push(FieldError::new(
                format!("{at}.hostPath"),
                "is required for kind hostPath (the node's directory)",
            )),
            (VolumeKind::HostPath, Some(host)) => {
                if let Err(reason) = crate::files::check_normal(host) {
                    errors.push(FieldError::new(format!("{at}.hostPath"), reason));
                }
            }
            (kind, Some(_)) => errors.push(FieldError::new(
                format!("{at}.hostPath"),
                format!("only applies to kind hostPath, not {}", kind.as_str()),
            )),
            (_, None) => {}
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(runtime: &str, volumes: serde_json::Value) -> ServiceSpec {
        let mut spec = serde_json::json!({"name": "web", "runtime": runtime, "volumes": volumes});
        match runtime {
            "container" => spec["image"] = "reg/x:1".into(),
            "wasm" => spec["module"] = "m.wasm".into(),
            "vm" => spec["vm"] = serde_json::json!({"kernel": "/boot/k"}),
            _ => spec["command"] = serde_json::json!(["/bin/true"]),
        }
        match serde_json::from_value(spec) {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    fn errors(svc: &ServiceSpec) -> Vec<String> {
        check_volumes("s", svc)
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.reason))
            .collect()
    }

    fn assert_starts(errors: &[String], expected: &[&str]) {
        assert_eq!(errors.len(), expected.len(), "{errors:?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error} vs {expected}");
        }
    }

    #[test]
    fn each_kind_is_valid_and_node_is_the_default() {
        let svc = service(
            "container",
            serde_json::json!([
                {"name": "data", "path": "/var/lib/app"},
                {"name": "scratch", "kind": "emptyDir", "path": "/tmp/scratch"},
                {"name": "logs", "kind": "hostPath", "hostPath": "/srv/logs", "path": "/logs", "readOnly": true}
            ]),
        );
        assert!(errors(&svc).is_empty(), "{:?}", errors(&svc));
        assert_eq!(svc.volumes[0].kind, VolumeKind::Node);
        assert_eq!(svc.volumes[1].env_name(), "CANOPY_VOLUME_SCRATCH");
        assert_eq!(svc.node_volume_keys("team", "shop"), ["team/shop/data"]);
    }

    #[test]
    fn names_are_unique_labels_and_paths_absolute_normal_and_unique() {
        let mut svc = service(
            "container",
            serde_json::json!([
                {"name": "Data", "path": "data"},
                {"name": "a", "path": "/a/../etc"},
                {"name": "a", "path": "/b"},
                {"name": "c", "path": "/b"},
                {"name": "d", "path": "/proc/x"},
                {"name": "e", "path": "/etc/app.yaml"}
            ]),
        );
        svc.files =
            serde_json::from_value(serde_json::json!([{"path": "/etc/app.yaml", "content": "x"}]))
                .unwrap();
        assert_starts(
            &errors(&svc),
            &[
                "s.volumes[0].name:",
                "s.volumes[0].path: must be absolute",
                "s.volumes[1].path: must be normal",
                "s.volumes[2].name: is also the name of volumes[1]",
                "s.volumes[3].path: is also the path of volumes[2]",
                "s.volumes[4].path: must not be under /proc",
                "s.volumes[5].path: is also the path of files[0]",
            ],
        );
    }

    #[test]
    fn host_path_is_required_for_its_kind_only_and_normal() {
        let svc = service(
            "process",
            serde_json::json!([
                {"name": "a", "kind": "hostPath", "path": "/a"},
                {"name": "b", "kind": "hostPath", "hostPath": "/srv/../etc", "path": "/b"},
                {"name": "c", "kind": "emptyDir", "hostPath": "/srv", "path": "/c"},
                {"name": "d", "kind": "hostPath", "hostPath": "/dev/shm", "path": "/d"}
            ]),
        );
        assert_starts(
            &errors(&svc),
            &[
                "s.volumes[0].hostPath: is required for kind hostPath",
                "s.volumes[1].hostPath: must be normal",
                "s.volumes[2].hostPath: only applies to kind hostPath, not emptyDir",
            ],
        );
    }

    #[test]
    fn vms_and_processes_of_another_user_get_no_volumes_and_the_count_is_bounded() {
        let one = serde_json::json!([{"name": "a", "path": "/a"}]);
        assert_starts(
            &errors(&service("vm", one.clone())),
            &["s.volumes: does not apply to runtime vm"],
        );
        assert!(errors(&service("wasm", one.clone())).is_empty());
        let mut svc = service("process", one);
        assert!(errors(&svc).is_empty());
        svc.security_context.run_as_user = Some(1000);
        assert_starts(&errors(&svc), &["s.volumes: cannot be combined"]);
        let many: Vec<_> = (0..=MAX_VOLUMES)
            .map(|i| serde_json::json!({"name": format!("v{i}"), "path": format!("/v{i}")}))
            .collect();
        let svc = service("container", serde_json::Value::Array(many));
        assert_eq!(errors(&svc), ["s.volumes: must have at most 32 volumes"]);
    }

    #[test]
    fn host_paths_are_allowed_under_whole_prefix_parts() {
        let prefixes = vec!["/srv/data".to_string(), "/mnt/".to_string()];
        for allowed in ["/srv/data", "/srv/data/x", "/mnt/usb", "/mnt"] {
            assert!(allowed_host_path(allowed, &prefixes), "{allowed}");
        }
        for refused in ["/srv/database", "/srv", "/etc", "/"] {
            assert!(!allowed_host_path(refused, &prefixes), "{refused}");
        }
        assert!(!allowed_host_path("/srv/data", &[]));
        assert!(allowed_host_path("/etc", &["/".to_string()]));
    }

    #[test]
    fn an_unknown_kind_or_field_is_a_parse_error() {
        let bad = serde_json::json!({"name": "a", "kind": "nfs", "path": "/a"});
        assert!(serde_json::from_value::<VolumeSpec>(bad).is_err());
        let bad = serde_json::json!({"name": "a", "path": "/a", "mountPath": "/b"});
        assert!(serde_json::from_value::<VolumeSpec>(bad).is_err());
    }
}
