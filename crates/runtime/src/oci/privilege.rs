//! Who a container runs as and what it may do: its uid/gid, capabilities and seccomp
//! filter, from the service's `securityContext` and the image. Unprivileged unless asked:
//! the image's user when it is not root, else 65534; Docker's capability set; Docker's
//! seccomp profile. Privileged means every capability and no filter, as `docker run
//! --privileged`. Whether the namespace allows what is asked was decided at apply time.

use super::bundle::resolve_user;
use super::seccomp::{Target, default_filter, kernel_version, native_arch};
use canopy_model::SecurityContext;
use canopy_model::security::{DEFAULT_CAPABILITIES, LINUX_CAPABILITIES, UNPRIVILEGED_ID};
use oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp};
use std::path::Path;

/// `(uid, gid)` of the container's process.
pub(crate) fn identity(
    security: &SecurityContext,
    image_user: Option<&str>,
    rootfs: &Path,
) -> Result<(u32, u32), String> {
    let (image_uid, image_gid) = resolve_user(image_user, rootfs)?;
    let (uid, primary_gid) = match security.run_as_user {
        Some(uid) => {
            // The group of that uid in the image's /etc/passwd, as Docker does for `--user N`.
            let (_, gid) = resolve_user(Some(&uid.to_string()), rootfs)?;
            let gid = if gid == 0 && uid != 0 && !has_passwd_entry(uid, rootfs) {
                UNPRIVILEGED_ID
            } else {
                gid
            };
            (uid, gid)
        }
        None if image_uid != 0 => (image_uid, image_gid),
        None => (UNPRIVILEGED_ID, UNPRIVILEGED_ID),
    };
    Ok((uid, security.run_as_group.unwrap_or(primary_gid)))
}

fn has_passwd_entry(uid: u32, rootfs: &Path) -> bool {
    std::fs::read_to_string(rootfs.join("etc/passwd")).is_ok_and(|passwd| {
        passwd
            .lines()
            .any(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
    })
}

/// The capability names (`CAP_...`) of the container's bounding set.
pub(crate) fn capability_names(security: &SecurityContext) -> Vec<String> {
    let names: Vec<&str> = if security.privileged {
        held(agent_bounding_set())
    } else {
        let mut names = DEFAULT_CAPABILITIES.to_vec();
        for cap in &security.capabilities.add {
            let cap = canopy_model::security::capability_name(cap);
            if !names.contains(&cap) {
                names.push(cap);
            }
        }
        names
    };
    names.iter().map(|n| format!("CAP_{n}")).collect()
}

/// The capabilities in a bounding-set mask (bit N is capability N): privileged means every
/// capability the agent itself may pass on, as Docker's (a node inside a container has fewer).
fn held(bounding: u64) -> Vec<&'static str> {
    LINUX_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, name)| *name)
        .collect()
}

fn agent_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("CapBnd:"))?;
            u64::from_str_radix(line.trim_start_matches("CapBnd:").trim(), 16).ok()
        })
        .unwrap_or(0)
}

/// The set oci-spec knows of `names`; names it does not know (newer than it) are left to
/// the runtime's default, which is narrower, never wider.
pub(crate) fn capabilities(names: &[String]) -> Result<Capabilities, String> {
    names
        .iter()
        .filter_map(|name| {
            let bare = canopy_model::security::capability_name(name);
            match bare.parse::<Capability>() {
                Ok(cap) => Some(Ok(cap)),
                Err(_) if LINUX_CAPABILITIES.contains(&bare) => None,
                Err(_) => Some(Err(format!("unknown capability {name:?}"))),
            }
        })
        .collect()
}

/// Docker's filter for this container; none when privileged.
pub(crate) fn seccomp(
    security: &SecurityContext,
    caps: &[String],
) -> Result<Option<LinuxSeccomp>, String> {
    if security.privileged {
        return Ok(None);
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let filter = default_filter(&Target {
        arch: native_arch(),
        caps,
        kernel: kernel_version(release.trim()),
    });
    serde_json::from_value(filter)
        .map(Some)
        .map_err(|e| format!("the default seccomp profile does not fit the OCI schema: {e}"))
}

#[cfg(test)]
mod tests {
    use super::super::ImageConfig;
    use super::super::bundle::{BundleInput, build_spec};
    use super::*;
    use std::collections::BTreeMap;
    use std::fs;

    fn security(json: serde_json::Value) -> SecurityContext {
        serde_json::from_value(json).expect("security context")
    }

    #[test]
    fn the_default_user_is_the_images_unless_it_is_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("etc")).expect("etc");
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n",
        )
        .expect("passwd");
        let none = SecurityContext::default();
        assert_eq!(identity(&none, None, root), Ok((65_534, 65_534)));
        assert_eq!(identity(&none, Some("root"), root), Ok((65_534, 65_534)));
        assert_eq!(identity(&none, Some("0:0"), root), Ok((65_534, 65_534)));
        assert_eq!(identity(&none, Some("www"), root), Ok((33, 34)));
        // The descriptor wins over the image; its group over the user's.
        let asked = security(serde_json::json!({"runAsUser": 33}));
        assert_eq!(identity(&asked, None, root), Ok((33, 34)));
        let asked = security(serde_json::json!({"runAsUser": 1000}));
        assert_eq!(identity(&asked, None, root), Ok((1000, 65_534)));
        let asked = security(serde_json::json!({"runAsUser": 1000, "runAsGroup": 7}));
        assert_eq!(identity(&asked, Some("www"), root), Ok((1000, 7)));
        let root_asked = security(serde_json::json!({"runAsUser": 0}));
        assert_eq!(identity(&root_asked, None, root), Ok((0, 0)));
    }

    #[test]
    fn capabilities_are_dockers_plus_the_added_or_all_when_privileged() {
        let none = capability_names(&SecurityContext::default());
        assert_eq!(none.len(), 14);
        assert!(none.contains(&"CAP_NET_BIND_SERVICE".to_string()));
        assert!(!none.contains(&"CAP_SYS_ADMIN".to_string()));
        let added = capability_names(&security(
            serde_json::json!({"capabilities": {"add": ["NET_ADMIN", "CAP_KILL"]}}),
        ));
        assert_eq!(added.len(), 15);
        assert!(added.contains(&"CAP_NET_ADMIN".to_string()));
        let all = capability_names(&security(serde_json::json!({"privileged": true})));
        // Every known capability the agent holds (bits past the last known one are not named).
        let known = (1u64 << LINUX_CAPABILITIES.len()) - 1;
        assert_eq!(
            all.len() as u32,
            (agent_bounding_set() & known).count_ones()
        );
        assert_eq!(held(0b100_0000_0001), ["CHOWN", "NET_BIND_SERVICE"]);
        assert_eq!(held(u64::MAX).len(), LINUX_CAPABILITIES.len());
        assert!(
            capabilities(&all)
                .expect("known")
                .contains(&Capability::SysAdmin)
        );
    }

    #[test]
    fn privileged_has_no_filter_and_the_rest_dockers() {
        let caps = capability_names(&SecurityContext::default());
        let filter = seccomp(&SecurityContext::default(), &caps)
            .expect("filter")
            .expect("on");
        assert!(filter.syscalls().as_ref().is_some_and(|s| !s.is_empty()));
        let privileged = security(serde_json::json!({"privileged": true}));
        assert_eq!(seccomp(&privileged, &caps), Ok(None));
    }

    #[test]
    fn a_privileged_spec_has_every_capability_and_no_filter() {
        let s: canopy_model::ServiceSpec = serde_json::from_value(serde_json::json!({
            "name": "web", "runtime": "container", "image": "x",
            "securityContext": {"privileged": true, "runAsUser": 0},
        }))
        .expect("service");
        let dir = tempfile::tempdir().expect("tempdir");
        let input = BundleInput {
            id: "web-0",
            service: &s,
            instance_env: &BTreeMap::new(),
            image: &ImageConfig {
                cmd: vec!["sh".to_string()],
                ..ImageConfig::default()
            },
            rootfs: dir.path(),
            cgroups_path: "/canopy/n1/web-0".to_string(),
            netns: None,
            files: Vec::new(),
            service_files: &[],
            volumes: &[],
            limit_swap: false,
            cpu_quota: true,
        };
        let json = serde_json::to_value(build_spec(&input).expect("spec")).expect("json");
        assert_eq!(json["process"]["user"]["uid"], 0);
        assert!(json["linux"].get("seccomp").is_none());
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .is_none_or(|p| p.is_empty())
        );
        assert_eq!(json["process"]["noNewPrivileges"], false);
        let caps = json["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps");
        assert!(caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], true);
    }
}
