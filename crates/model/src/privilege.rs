//! Whether a namespace allows what an application asks: the decision the root makes at
//! apply time. A trusted namespace (an admin marked it) may run anything; an untrusted one
//! gets what Kubernetes' `restricted` Pod Security level and Nomad's default drivers allow:
//! no root user, no privileged mode, no capability beyond Docker's default set and no
//! `process` runtime (a native command has no isolation at all, like Nomad's
//! disabled-by-default `raw_exec`), no VM booting a file of the node, and no directory of the
//! node (a wasm preopen, a `hostPath` volume). Pure: the namespace's trust is passed in.

use crate::descriptor::{Application, RuntimeKind};
use crate::error::FieldError;
use crate::security::{DEFAULT_CAPABILITIES, capability_name};

/// Every field of `app` its namespace does not allow, each with its path and the reason
/// "... namespace N is not trusted"; empty when `trusted`.
pub fn privilege_errors(app: &Application, trusted: bool) -> Vec<FieldError> {
    if trusted {
        return Vec::new();
    }
    let namespace = &app.metadata.namespace;
    let refuse = |path: String, what: &str| {
        FieldError::new(
            path,
            format!("{what} needs a trusted namespace: namespace {namespace} is not trusted"),
        )
    };
    let mut errors = Vec::new();
    for (i, svc) in app.spec.services.iter().enumerate() {
        let p = format!("spec.services[{i}]");
        if svc.runtime == RuntimeKind::Process {
            errors.push(refuse(
                format!("{p}.runtime"),
                "the process runtime (no isolation)",
            ));
        }
        // A guest reads the file it boots: a node path would hand it any file of the node.
        if let Some(vm) = &svc.vm {
            let files = [
                ("kernel", Some(&vm.kernel)),
                ("initramfs", vm.initramfs.as_ref()),
            ];
            for (field, location) in files {
                if let Some(path) = location.filter(|l| !crate::is_url_module(l)) {
                    errors.push(refuse(
                        format!("{p}.vm.{field}"),
                        &format!("booting node file {path} (give an http(s) URL with its sha256)"),
                    ));
                }
            }
        }
        let preopens = svc.wasm.iter().flat_map(|w| w.preopens.iter());
        for (d, dir) in preopens.enumerate() {
            errors.push(refuse(
                format!("{p}.wasm.preopens[{d}].hostPath"),
                &format!("host directory {} for a wasm module", dir.host_path),
            ));
        }
        let host_volumes = svc.volumes.iter().enumerate();
        for (v, volume) in host_volumes.filter(|(_, v)| v.kind == crate::VolumeKind::HostPath) {
            errors.push(refuse(
                format!("{p}.volumes[{v}].hostPath"),
                &format!(
                    "host directory {} as a volume",
                    volume.host_path.as_deref().unwrap_or_default()
                ),
            ));
        }
        let sc = &svc.security_context;
        if sc.run_as_user == Some(0) {
            errors.push(refuse(
                format!("{p}.securityContext.runAsUser"),
                "running as root",
            ));
        }
        if sc.run_as_group == Some(0) {
            errors.push(refuse(
                format!("{p}.securityContext.runAsGroup"),
                "running as group root",
            ));
        }
        if sc.privileged {
            errors.push(refuse(
                format!("{p}.securityContext.privileged"),
                "a privileged container",
            ));
        }
        for (c, cap) in sc.capabilities.add.iter().enumerate() {
            if !DEFAULT_CAPABILITIES.contains(&capability_name(cap)) {
                errors.push(refuse(
                    format!("{p}.securityContext.capabilities.add[{c}]"),
                    &format!("capability {cap} (beyond Docker's default set)"),
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(services: serde_json::Value) -> Application {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "team-a"},
            "spec": {"services": services},
        }))
        .expect("a valid application")
    }

    fn container(security: serde_json::Value) -> serde_json::Value {
        json!({"name": "web", "runtime": "container", "image": "busybox", "securityContext": security})
    }

    fn paths(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.path.as_str()).collect()
    }

    const REASON: &str = "namespace team-a is not trusted";

    #[test]
    fn a_default_container_is_allowed_anywhere() {
        let a = app(json!([{"name": "web", "runtime": "container", "image": "busybox"}]));
        assert!(privilege_errors(&a, false).is_empty());
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn a_wasm_module_is_allowed_anywhere() {
        let a = app(json!([{"name": "f", "runtime": "wasm", "module": "f.wasm"}]));
        assert!(privilege_errors(&a, false).is_empty());
    }

    #[test]
    fn a_wasm_module_s_host_directories_need_trust() {
        let a = app(json!([{"name": "f", "runtime": "wasm", "module": "f.wasm",
            "wasm": {"preopens": [{"hostPath": "/etc", "guestPath": "/etc"}]}}]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            ["spec.services[0].wasm.preopens[0].hostPath"]
        );
        assert!(errors[0].reason.contains(REASON), "{errors:?}");
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn a_host_path_volume_needs_trust_but_node_and_empty_dir_volumes_do_not() {
        let a = app(
            json!([{"name": "web", "runtime": "container", "image": "busybox",
            "volumes": [
                {"name": "data", "path": "/data"},
                {"name": "tmp", "kind": "emptyDir", "path": "/scratch"},
                {"name": "logs", "kind": "hostPath", "hostPath": "/var/log", "path": "/logs"},
            ]}]),
        );
        let errors = privilege_errors(&a, false);
        assert_eq!(paths(&errors), ["spec.services[0].volumes[2].hostPath"]);
        assert!(errors[0].reason.contains("/var/log"), "{errors:?}");
        assert!(errors[0].reason.contains(REASON), "{errors:?}");
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn a_vm_booting_node_files_needs_trust_but_urls_do_not() {
        let digest = "a".repeat(64);
        let a = app(json!([
            {"name": "local", "runtime": "vm", "vm": {"kernel": "/boot/vmlinuz", "initramfs": "/etc/shadow"}},
            {"name": "remote", "runtime": "vm", "vm": {"kernel": "https://x.org/k", "kernelSha256": digest}},
        ]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            [
                "spec.services[0].vm.kernel",
                "spec.services[0].vm.initramfs"
            ]
        );
        assert!(errors[1].reason.contains("/etc/shadow"), "{errors:?}");
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn a_non_root_user_and_default_capabilities_are_allowed() {
        let a = app(json!([container(json!({
            "runAsUser": 1000, "runAsGroup": 1000,
            "capabilities": {"add": ["NET_BIND_SERVICE", "CAP_CHOWN"]},
        }))]));
        assert!(privilege_errors(&a, false).is_empty());
    }

    #[test]
    fn the_process_runtime_needs_trust() {
        let a = app(json!([{"name": "job", "runtime": "process", "command": ["/bin/true"]}]));
        let errors = privilege_errors(&a, false);
        assert_eq!(paths(&errors), ["spec.services[0].runtime"]);
        assert!(errors[0].reason.contains(REASON), "{}", errors[0].reason);
        assert!(errors[0].reason.contains("process runtime"));
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn root_user_and_group_need_trust() {
        let a = app(json!([container(json!({"runAsUser": 0, "runAsGroup": 0}))]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            [
                "spec.services[0].securityContext.runAsUser",
                "spec.services[0].securityContext.runAsGroup"
            ]
        );
        assert!(errors.iter().all(|e| e.reason.contains(REASON)));
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn privileged_needs_trust() {
        let a = app(json!([container(json!({"privileged": true}))]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            ["spec.services[0].securityContext.privileged"]
        );
        assert!(errors[0].reason.contains(REASON));
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn extra_capabilities_need_trust_each_with_its_index() {
        let a = app(json!([container(json!({
            "capabilities": {"add": ["KILL", "NET_ADMIN", "CAP_SYS_ADMIN"]},
        }))]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            [
                "spec.services[0].securityContext.capabilities.add[1]",
                "spec.services[0].securityContext.capabilities.add[2]"
            ]
        );
        assert!(errors[0].reason.contains("NET_ADMIN"));
        assert!(errors[1].reason.contains("CAP_SYS_ADMIN"));
        assert!(privilege_errors(&a, true).is_empty());
    }

    #[test]
    fn every_service_and_every_field_is_reported() {
        let a = app(json!([
            {"name": "ok", "runtime": "container", "image": "busybox"},
            {"name": "job", "runtime": "process", "command": ["/bin/sh"],
                "securityContext": {"runAsUser": 0}},
            container(json!({"privileged": true, "runAsUser": 0})),
        ]));
        let errors = privilege_errors(&a, false);
        assert_eq!(
            paths(&errors),
            [
                "spec.services[1].runtime",
                "spec.services[1].securityContext.runAsUser",
                "spec.services[2].securityContext.runAsUser",
                "spec.services[2].securityContext.privileged",
            ]
        );
        assert!(privilege_errors(&a, true).is_empty());
    }
}
