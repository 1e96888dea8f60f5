//! The default seccomp filter of one container, in the OCI form: the rules of
//! [`seccomp_profile`](super::seccomp_profile) that hold for the node's architecture, the
//! container's capabilities and the kernel, chosen as Docker chooses them (moby's
//! `profiles/seccomp` `setupSeccomp`). Pure: the architecture, capabilities and kernel
//! version are passed in.

use super::seccomp_profile::{ARCH_MAP, Action, Compare, Condition, DEFAULT_ERRNO, RULES, Rule};
use serde_json::{Value, json};

/// Where a filter is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// Go's name of the architecture (`amd64`, `arm64`, ...), as the profile's rules say.
    pub arch: &'a str,
    /// The container's bounding set, with the `CAP_` prefix.
    pub caps: &'a [String],
    /// `(major, minor)` of the running kernel.
    pub kernel: (u32, u32),
}

/// Go's name of the architecture this binary runs on.
pub(crate) fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-18-amd64`; `(0, 0)` when unreadable,
/// so that rules needing a newer kernel stay out.
pub(crate) fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor),
        _ => (0, 0),
    }
}

fn seccomp_arch(go_arch: &str) -> Option<&'static str> {
    Some(match go_arch {
        "amd64" => "SCMP_ARCH_X86_64",
        "arm64" => "SCMP_ARCH_AARCH64",
        "s390x" => "SCMP_ARCH_S390X",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "mips64" => "SCMP_ARCH_MIPS64",
        "mips64le" => "SCMP_ARCH_MIPSEL64",
        _ => return None,
    })
}

fn has_all(condition: &Condition, target: &Target<'_>) -> bool {
    (condition.arches.is_empty() || condition.arches.contains(&target.arch))
        && condition
            .caps
            .iter()
            .all(|cap| target.caps.iter().any(|c| c == cap))
        && condition.min_kernel.is_none_or(|min| target.kernel >= min)
}

fn has_any(condition: &Condition, target: &Target<'_>) -> bool {
    condition.arches.contains(&target.arch)
        || condition
            .caps
            .iter()
            .any(|cap| target.caps.iter().any(|c| c == cap))
        || condition.min_kernel.is_some_and(|min| target.kernel >= min)
}

fn applies(rule: &Rule, target: &Target<'_>) -> bool {
    has_all(&rule.includes, target) && !has_any(&rule.excludes, target)
}

fn operator(op: Compare) -> &'static str {
    match op {
        Compare::Equal => "SCMP_CMP_EQ",
        Compare::LessThan => "SCMP_CMP_LT",
        Compare::GreaterThan => "SCMP_CMP_GT",
        Compare::MaskedEqual => "SCMP_CMP_MASKED_EQ",
    }
}

fn syscall(rule: &Rule) -> Value {
    let mut out = json!({ "names": rule.names });
    match rule.action {
        Action::Allow => out["action"] = json!("SCMP_ACT_ALLOW"),
        Action::Errno(errno) => {
            out["action"] = json!("SCMP_ACT_ERRNO");
            out["errnoRet"] = json!(errno);
        }
    }
    if let Some(a) = &rule.arg {
        out["args"] = json!([{"index": a.index, "value": a.value, "valueTwo": a.value_two,
            "op": operator(a.op)}]);
    }
    out
}

/// The filter as `linux.seccomp` of a config.json.
pub(crate) fn default_filter(target: &Target<'_>) -> Value {
    let architectures: Vec<&str> = seccomp_arch(target.arch)
        .and_then(|native| ARCH_MAP.iter().find(|(arch, _)| *arch == native))
        .map(|(arch, subs)| std::iter::once(*arch).chain(subs.iter().copied()).collect())
        .unwrap_or_default();
    let syscalls: Vec<Value> = RULES
        .iter()
        .filter(|rule| applies(rule, target))
        .map(syscall)
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": DEFAULT_ERRNO,
        "architectures": architectures,
        "syscalls": syscalls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_caps() -> Vec<String> {
        canopy_model::security::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| format!("CAP_{c}"))
            .collect()
    }

    fn rules_for<'a>(filter: &'a Value, name: &str) -> Vec<&'a Value> {
        filter["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["names"].as_array().unwrap().iter().any(|n| n == name))
            .collect()
    }

    fn amd64(caps: &[String]) -> Value {
        default_filter(&Target {
            arch: "amd64",
            caps,
            kernel: (6, 1),
        })
    }

    #[test]
    fn everything_not_allowed_fails_with_eperm_on_the_native_architectures() {
        let filter = amd64(&docker_caps());
        assert_eq!(filter["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(filter["defaultErrnoRet"], 1);
        assert_eq!(
            filter["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        for allowed in ["read", "execve", "arch_prctl", "ptrace", "chroot"] {
            assert!(!rules_for(&filter, allowed).is_empty(), "{allowed}");
        }
        // Other architectures' calls, and what needs a capability outside Docker's set.
        for refused in [
            "set_tls",
            "s390_runtime_instr",
            "mount",
            "unshare",
            "reboot",
            "bpf",
        ] {
            assert!(rules_for(&filter, refused).is_empty(), "{refused}");
        }
    }

    #[test]
    fn without_sys_admin_clone_may_not_make_namespaces_and_clone3_is_enosys() {
        let filter = amd64(&docker_caps());
        let clone = rules_for(&filter, "clone");
        assert_eq!(clone.len(), 1, "{clone:?}");
        assert_eq!(
            clone[0]["args"],
            json!([{"index": 0, "value": 2_114_060_288_u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let clone3 = rules_for(&filter, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], 38);
    }

    #[test]
    fn an_added_capability_allows_its_calls() {
        let mut caps = docker_caps();
        caps.push("CAP_SYS_ADMIN".to_string());
        let filter = amd64(&caps);
        assert!(!rules_for(&filter, "mount").is_empty());
        // clone unrestricted (in the SYS_ADMIN rule), no ENOSYS for clone3.
        let clone = rules_for(&filter, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].get("args").is_none());
        assert!(
            rules_for(&filter, "clone3")
                .iter()
                .all(|r| r["action"] == "SCMP_ACT_ALLOW")
        );
    }

    #[test]
    fn sockets_of_every_family_but_alg_and_vsock() {
        let filter = amd64(&docker_caps());
        let ops: Vec<(u64, &str)> = rules_for(&filter, "socket")
            .iter()
            .map(|r| {
                (
                    r["args"][0]["value"].as_u64().unwrap(),
                    r["args"][0]["op"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                (38, "SCMP_CMP_LT"),
                (39, "SCMP_CMP_EQ"),
                (40, "SCMP_CMP_GT")
            ]
        );
    }

    #[test]
    fn old_kernels_and_other_architectures_get_their_rules() {
        let caps = docker_caps();
        let old = default_filter(&Target {
            arch: "amd64",
            caps: &caps,
            kernel: (4, 4),
        });
        assert!(rules_for(&old, "ptrace").is_empty());
        let arm = default_filter(&Target {
            arch: "arm64",
            caps: &caps,
            kernel: (6, 1),
        });
        assert_eq!(
            arm["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        assert!(!rules_for(&arm, "set_tls").is_empty());
        assert!(rules_for(&arm, "arch_prctl").is_empty());
    }

    #[test]
    fn kernel_releases_parse() {
        assert_eq!(kernel_version("6.1.0-18-amd64"), (6, 1));
        assert_eq!(kernel_version("4.8"), (4, 8));
        assert_eq!(kernel_version("garbage"), (0, 0));
    }

    #[test]
    fn the_filter_is_an_oci_seccomp_object() {
        let filter = amd64(&docker_caps());
        let parsed: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(filter).expect("oci-spec reads it");
        assert!(parsed.syscalls().as_ref().is_some_and(|s| s.len() > 10));
    }
}
