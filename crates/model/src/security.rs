//! What a workload may do on its node: the user it runs as, privileged mode and added
//! Linux capabilities. Named as Kubernetes' `securityContext` (Nomad's `user`,
//! `privileged` and `cap_add` say the same).

use crate::error::FieldError;
use crate::{RuntimeKind, ServiceSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The unprivileged user and group (`nobody`/`nogroup`) a container runs as when neither the
/// descriptor nor the image names a non-root user.
pub const UNPRIVILEGED_ID: u32 = 65_534;

/// How a service's instances run. Everything absent is the unprivileged default: a non-root
/// user, Docker's capability set, the default seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// The uid the workload runs as. A container's default is the image's user when it is not
    /// root, else 65534; a process's is the node agent's own user (as Nomad's `raw_exec`).
    /// 0 (root) needs a trusted namespace.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub run_as_user: Option<u32>,
    /// The gid the workload runs as; the user's primary group (65534 for the default user)
    /// when absent. 0 needs a trusted namespace.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub run_as_group: Option<u32>,
    /// Every capability, no seccomp filter, all devices: the container is the node's root.
    /// Containers only; needs a trusted namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    /// Capabilities beyond Docker's default set. Containers only.
    #[serde(default, skip_serializing_if = "Capabilities::is_empty")]
    pub capabilities: Capabilities,
}

impl SecurityContext {
    pub fn is_empty(&self) -> bool {
        *self == SecurityContext::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Linux capability names without the `CAP_` prefix (`NET_ADMIN`), as Kubernetes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
}

impl Capabilities {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
    }
}

/// Docker's default capability set (moby's `oci/caps/defaults.go`), which every container
/// gets.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every Linux capability (capabilities(7), up to Linux 6.x), each at its kernel number.
pub const LINUX_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Shape checks of `svc.securityContext` at path `p` (the service's path); whether the
/// namespace allows it is [`crate::privilege_errors`]'s question.
pub(crate) fn validate_security(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    let sc = &svc.security_context;
    let path = format!("{p}.securityContext");
    let mut errors = Vec::new();
    let containers_only = |field: &str| {
        FieldError::new(
            format!("{path}.{field}"),
            format!(
                "applies to the container runtime only, not {}",
                svc.runtime.as_str()
            ),
        )
    };
    if svc.runtime != RuntimeKind::Container {
        if sc.privileged {
            errors.push(containers_only("privileged"));
        }
        if !sc.capabilities.is_empty() {
            errors.push(containers_only("capabilities"));
        }
    }
    if svc.runtime == RuntimeKind::Wasm {
        // A module runs inside the node agent: it has no user of its own.
        for (set, field) in [
            (sc.run_as_user.is_some(), "runAsUser"),
            (sc.run_as_group.is_some(), "runAsGroup"),
        ] {
            if set {
                errors.push(FieldError::new(
                    format!("{path}.{field}"),
                    "does not apply to the wasm runtime (modules run inside the node agent)",
                ));
            }
        }
    }
    for (i, cap) in sc.capabilities.add.iter().enumerate() {
        if !LINUX_CAPABILITIES.contains(&capability_name(cap)) {
            errors.push(FieldError::new(
                format!("{path}.capabilities.add[{i}]"),
                format!("unknown capability {cap:?}: a Linux capability name such as NET_ADMIN"),
            ));
        }
    }
    errors
}

/// The capability name without its `CAP_` prefix.
pub fn capability_name(cap: &str) -> &str {
    cap.strip_prefix("CAP_").unwrap_or(cap)
}
