//! What only the `vm` runtime reads from a service: the guest's kernel (with an optional
//! initramfs and command line) booted as a microVM under qemu, and whether it needs KVM.
//! CPU and memory come from `resources`; the serial console is the instance's log.
//!
//! Not yet: a network device in the guest (so `ports` are refused for now), disk images and
//! OCI artifacts as sources; every rule here is also in the schema (`schema.rs`).

use crate::{FieldError, RuntimeKind, ServiceSpec};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Settings of a `vm` service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmOptions {
    /// The guest kernel (bzImage or PVH ELF): an absolute path on the node or an http(s)
    /// URL (then `kernelSha256` is required).
    pub kernel: String,
    /// Hex SHA-256 of the kernel; checked for every source when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_sha256: Option<String>,
    /// An initial RAM disk (cpio archive), a path or an http(s) URL like `kernel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initramfs_sha256: Option<String>,
    /// The kernel's command line; the node's default (a serial console) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Place only on nodes whose KVM runs guests (else the node may emulate with TCG).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_kvm: bool,
}

/// The longest kernel command line accepted (x86's `COMMAND_LINE_SIZE` is 2048).
pub const MAX_VM_CMDLINE: usize = 2048;

fn is_url(location: &str) -> bool {
    crate::is_url_module(location)
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Errors of a service's `vm` and of what a microVM cannot do (for now), with field paths.
pub(crate) fn vm_errors(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |path: String, reason: &str| errors.push(FieldError::new(path, reason));
    if svc.runtime != RuntimeKind::Vm {
        if svc.vm.is_some() {
            err(
                format!("{p}.vm"),
                &format!("only applies to runtime vm, not {}", svc.runtime.as_str()),
            );
        }
        return errors;
    }
    let Some(vm) = &svc.vm else {
        err(
            format!("{p}.vm"),
            "is required for runtime vm (vm.kernel at least)",
        );
        return errors;
    };
    let artifacts = [
        ("kernel", Some(&vm.kernel), &vm.kernel_sha256),
        ("initramfs", vm.initramfs.as_ref(), &vm.initramfs_sha256),
    ];
    for (field, location, digest) in artifacts {
        let Some(location) = location else {
            if digest.is_some() {
                err(
                    format!("{p}.vm.{field}Sha256"),
                    &format!("is given without vm.{field}"),
                );
            }
            continue;
        };
        if !location.starts_with('/') && !is_url(location) {
            err(
                format!("{p}.vm.{field}"),
                "must be an absolute path on the node or an http(s) URL",
            );
        } else if location.chars().count() > crate::MAX_STRING_LEN {
            err(
                format!("{p}.vm.{field}"),
                &format!("must be at most {} characters", crate::MAX_STRING_LEN),
            );
        }
        match digest {
            Some(d) if !is_sha256(d) => err(
                format!("{p}.vm.{field}Sha256"),
                "must be 64 hexadecimal digits",
            ),
            None if is_url(location) => err(
                format!("{p}.vm.{field}Sha256"),
                &format!("is required when vm.{field} is an http(s) URL"),
            ),
            _ => {}
        }
    }
    if let Some(cmdline) = &vm.cmdline
        && (cmdline.chars().count() > MAX_VM_CMDLINE || cmdline.chars().any(char::is_control))
    {
        err(
            format!("{p}.vm.cmdline"),
            "must be one line of at most 2048 characters",
        );
    }
    // What the guest cannot be given yet, or has no place for.
    let refused = [
        (
            !svc.command.is_empty(),
            "command",
            "the guest's command line is vm.cmdline",
        ),
        (
            !svc.args.is_empty(),
            "args",
            "the guest's command line is vm.cmdline",
        ),
        (
            svc.working_dir.is_some(),
            "workingDir",
            "a guest has no host working directory",
        ),
        (
            !svc.env.is_empty(),
            "env",
            "a guest has no host environment",
        ),
        (
            !svc.secret_env.is_empty(),
            "secretEnv",
            "a guest has no host environment",
        ),
        (
            !svc.files.is_empty(),
            "files",
            "files for guests are planned",
        ),
        (
            !svc.ports.is_empty(),
            "ports",
            "a guest's network device (a tap on the node's bridge) is planned; ports cannot reach it yet",
        ),
        (
            svc.image_pull_secret.is_some(),
            "imagePullSecret",
            "a vm pulls no image",
        ),
        (
            svc.security_context.run_as_user.is_some(),
            "securityContext.runAsUser",
            "a guest's users are its own",
        ),
        (
            svc.security_context.run_as_group.is_some(),
            "securityContext.runAsGroup",
            "a guest's users are its own",
        ),
        (
            svc.liveness_probe.is_some(),
            "livenessProbe",
            "probes into guests need their network (planned)",
        ),
        (
            svc.readiness_probe.is_some(),
            "readinessProbe",
            "probes into guests need their network (planned)",
        ),
        (
            svc.startup_probe.is_some(),
            "startupProbe",
            "probes into guests need their network (planned)",
        ),
    ];
    for (present, field, why) in refused {
        if present {
            err(
                format!("{p}.{field}"),
                &format!("does not apply to runtime vm: {why}"),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: serde_json::Value) -> ServiceSpec {
        serde_json::from_value(json).expect("service")
    }

    fn paths(svc: &ServiceSpec) -> Vec<String> {
        vm_errors("s", svc).into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn a_kernel_from_a_path_or_a_url_with_its_digest() {
        let ok = service(serde_json::json!({
            "name": "guest", "runtime": "vm",
            "vm": {"kernel": "/boot/vmlinuz", "initramfs": "https://x.org/initrd.gz",
                   "initramfsSha256": "a".repeat(64), "cmdline": "console=ttyS0", "requireKvm": true},
            "resources": {"cpu": "1", "memory": "128Mi"}
        }));
        assert_eq!(paths(&ok), Vec::<String>::new());
        assert!(ok.vm.as_ref().is_some_and(|v| v.require_kvm));
        let bad = service(serde_json::json!({
            "name": "guest", "runtime": "vm",
            "vm": {"kernel": "https://x.org/vmlinuz", "initramfs": "relative/initrd",
                   "initramfsSha256": "nothex"}
        }));
        assert_eq!(
            paths(&bad),
            [
                "s.vm.kernelSha256",
                "s.vm.initramfs",
                "s.vm.initramfsSha256"
            ]
        );
        let none = service(serde_json::json!({"name": "guest", "runtime": "vm"}));
        assert_eq!(paths(&none), ["s.vm"]);
    }

    #[test]
    fn what_a_guest_cannot_have_is_named_by_its_field() {
        let svc = service(serde_json::json!({
            "name": "guest", "runtime": "vm", "vm": {"kernel": "/k"},
            "command": ["x"], "env": {"A": "1"}, "ports": [{"port": 80}],
            "readinessProbe": {"exec": {"command": ["true"]}}
        }));
        assert_eq!(
            paths(&svc),
            ["s.command", "s.env", "s.ports", "s.readinessProbe"]
        );
        let container = service(serde_json::json!({
            "name": "web", "runtime": "container", "image": "busybox", "vm": {"kernel": "/k"}
        }));
        assert_eq!(paths(&container), ["s.vm"]);
    }
}
