//! `config.json` of an OCI bundle, from the service, the image's config and the node's
//! choices (cgroup, network namespace). Docker's semantics for command, args, env and user.

use super::ImageConfig;
use super::privilege;
use crate::RuntimeError;
use canopy_model::ServiceSpec;
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder,
    Spec, UserBuilder, get_default_maskedpaths, get_default_mounts, get_default_readonly_paths,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// CFS period; the quota is `millicores * 100` µs per period (as for processes).
const CFS_PERIOD_US: u64 = 100_000;
const CFS_MIN_QUOTA_US: i64 = 1_000;
/// The kernel's limit on a UTS host name.
const MAX_HOSTNAME: usize = 64;
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Everything a bundle is made of besides the root filesystem itself.
pub(crate) struct BundleInput<'a> {
    pub id: &'a str,
    pub service: &'a ServiceSpec,
    /// Added by the agent; wins over the service's env.
    pub instance_env: &'a BTreeMap<String, String>,
    pub image: &'a ImageConfig,
    /// The prepared root filesystem, absolute: `root.path` (it is not in the bundle), and
    /// read for /etc/passwd and /etc/group.
    pub rootfs: &'a Path,
    /// Absolute, e.g. `/canopy/node-1/<id>`.
    pub cgroups_path: String,
    /// Join this network namespace; a fresh one (loopback only) when None.
    pub netns: Option<&'a Path>,
    /// Host files bind-mounted over paths in the container (`/etc/hosts`, ...).
    pub files: Vec<(PathBuf, &'static str)>,
    /// The service's own files (its `files`), bind-mounted read-only: (host, container path).
    pub service_files: &'a [(PathBuf, String)],
    /// The service's volumes, bind-mounted read-write (or read-only) at their paths.
    pub volumes: &'a [crate::PreparedVolume],
    /// Also limit memory+swap (the node has a swap controller).
    pub limit_swap: bool,
    /// Put the CPU quota in the config. False when the caller sets it on the container's
    /// group itself between `create` and `start`, so that the OCI runtime's own setup in
    /// the group (`runc init` compiling the seccomp filter) runs without it.
    pub cpu_quota: bool,
}

fn invalid(svc: &ServiceSpec, reason: impl Into<String>) -> RuntimeError {
    RuntimeError::InvalidSpec {
        service: svc.name.clone(),
        reason: reason.into(),
    }
}

fn oci_err(svc: &ServiceSpec) -> impl Fn(oci_spec::OciSpecError) -> RuntimeError + '_ {
    move |e| invalid(svc, format!("cannot build the OCI config: {e}"))
}

/// Docker: `command` replaces the entrypoint (and drops the image's cmd), `args` replaces cmd.
pub(crate) fn process_args(svc: &ServiceSpec, image: &ImageConfig) -> Result<Vec<String>, String> {
    let (entrypoint, cmd) = if svc.command.is_empty() {
        let cmd = if svc.args.is_empty() {
            &image.cmd
        } else {
            &svc.args
        };
        (&image.entrypoint, cmd)
    } else {
        (&svc.command, &svc.args)
    };
    let args: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    if args.is_empty() {
        return Err(
            "nothing to run: the image has no entrypoint or cmd and the service sets no command"
                .to_string(),
        );
    }
    Ok(args)
}

/// Image env, then the service's, then the agent's: later ones win, order is kept.
pub(crate) fn merge_env(
    image: &[String],
    service: &BTreeMap<String, String>,
    instance: &BTreeMap<String, String>,
    hostname: &str,
) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    for e in image {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        set(k, v);
    }
    for (k, v) in service.iter().chain(instance) {
        set(k, v);
    }
    let mut env: Vec<String> = out.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH_ENV.to_string());
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env
}

/// `(uid, gid)` for an image's `User` (`uid`, `uid:gid`, `name`, `name:group`); names are
/// looked up in the root filesystem's /etc/passwd and /etc/group.
pub(crate) fn resolve_user(user: Option<&str>, rootfs: &Path) -> Result<(u32, u32), String> {
    let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok((0, 0));
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).ok();
    // name:x:uid:gid:...
    let entry = |pred: &dyn Fn(&[&str]) -> bool| -> Option<(u32, u32)> {
        passwd.as_deref()?.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || !pred(&f) {
                return None;
            }
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        })
    };
    let (uid, primary_gid) = match u.parse::<u32>() {
        // A numeric uid needs no passwd entry (gid 0 then, as Docker does).
        Ok(uid) => (uid, entry(&|f| f[2] == u).map_or(0, |(_, g)| g)),
        Err(_) => entry(&|f| f[0] == u).ok_or_else(|| {
            if passwd.is_none() {
                format!("user {u:?} cannot be resolved: the image has no /etc/passwd (use a numeric uid)")
            } else {
                format!("user {u:?} not found in the image's /etc/passwd")
            }
        })?,
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = fs::read_to_string(rootfs.join("etc/group")).map_err(|_| {
                    format!("group {g:?} cannot be resolved: the image has no /etc/group (use a numeric gid)")
                })?;
                group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g)
                            .then(|| f[2].parse().ok())
                            .flatten()
                    })
                    .ok_or_else(|| format!("group {g:?} not found in the image's /etc/group"))?
            }
        },
    };
    Ok((uid, gid))
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> LinuxNamespace {
    let mut ns = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        ns = ns.path(p.to_path_buf());
    }
    ns.build().unwrap_or_default()
}

/// The bundle's config.json as runc's `runc spec` default (mounts, masked and read-only
/// paths, no_new_privileges) plus Docker's capabilities, the service's process and limits.
pub(crate) fn build_spec(input: &BundleInput<'_>) -> Result<Spec, RuntimeError> {
    let svc = input.service;
    let err = oci_err(svc);
    let hostname: String = input.id.chars().take(MAX_HOSTNAME - 1).collect();
    let args = process_args(svc, input.image).map_err(|r| invalid(svc, r))?;
    let env = merge_env(&input.image.env, &svc.env, input.instance_env, &hostname);
    let cwd = svc
        .working_dir
        .clone()
        .or_else(|| input.image.working_dir.clone())
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".to_string());
    if !cwd.starts_with('/') {
        return Err(invalid(
            svc,
            format!("working directory {cwd:?} must be absolute"),
        ));
    }
    let security = &svc.security_context;
    let (uid, gid) = privilege::identity(security, input.image.user.as_deref(), input.rootfs)
        .map_err(|r| invalid(svc, r))?;
    let cap_names = privilege::capability_names(security);
    let caps = privilege::capabilities(&cap_names).map_err(|r| invalid(svc, r))?;
    let seccomp = privilege::seccomp(security, &cap_names).map_err(|r| invalid(svc, r))?;
    // No inheritable or ambient capabilities (oci-spec's default has some): a non-root
    // user then holds none effective, as under Docker.
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(&err)?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .build()
                .map_err(&err)?,
        )
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capabilities)
        // A privileged container may gain privileges (setuid binaries), as Docker's.
        .no_new_privileges(!security.privileged)
        .build()
        .map_err(&err)?;

    let mut mounts: Vec<Mount> = get_default_mounts();
    for (source, dest) in &input.files {
        mounts.push(
            MountBuilder::default()
                .destination(*dest)
                .typ("bind")
                .source(source.clone())
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()
                .map_err(&err)?,
        );
    }
    for (source, dest) in input.service_files {
        mounts.push(
            MountBuilder::default()
                .destination(dest)
                .typ("bind")
                .source(source.clone())
                .options(["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"].map(String::from))
                .build()
                .map_err(&err)?,
        );
    }

    for volume in input.volumes {
        let mut options = vec!["rbind", "rprivate", "nosuid", "nodev"];
        if volume.read_only {
            options.push("ro");
        }
        mounts.push(
            MountBuilder::default()
                .destination(&volume.path)
                .typ("bind")
                .source(volume.host.clone())
                .options(options.into_iter().map(String::from).collect::<Vec<_>>())
                .build()
                .map_err(&err)?,
        );
    }

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        // Deny every device; runc and crun then allow the standard ones (null, zero, ...).
        // Privileged: every device (as `docker run --privileged`).
        LinuxDeviceCgroupBuilder::default()
            .allow(security.privileged)
            .access("rwm")
            .build()
            .map_err(&err)?,
    ]);
    let millis = svc.resources.cpu.0;
    if millis > 0 && input.cpu_quota {
        let quota = i64::try_from(millis.saturating_mul(100))
            .unwrap_or(i64::MAX)
            .max(CFS_MIN_QUOTA_US);
        resources = resources.cpu(
            LinuxCpuBuilder::default()
                .quota(quota)
                .period(CFS_PERIOD_US)
                .build()
                .map_err(&err)?,
        );
    }
    let mib = svc.resources.memory.0;
    if mib > 0 {
        let bytes = i64::try_from(mib.saturating_mul(1 << 20)).unwrap_or(i64::MAX);
        let mut mem = LinuxMemoryBuilder::default().limit(bytes);
        if input.limit_swap {
            mem = mem.swap(bytes);
        }
        resources = resources.memory(mem.build().map_err(&err)?);
    }

    let namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None),
        namespace(LinuxNamespaceType::Ipc, None),
        namespace(LinuxNamespaceType::Uts, None),
        namespace(LinuxNamespaceType::Mount, None),
        namespace(LinuxNamespaceType::Network, input.netns),
    ];
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(&input.cgroups_path))
        .resources(resources.build().map_err(&err)?);
    // runc's defaults hide host details under /proc and /sys; privileged sees them all.
    linux = if security.privileged {
        linux.masked_paths(Vec::new()).readonly_paths(Vec::new())
    } else {
        linux
            .masked_paths(get_default_maskedpaths())
            .readonly_paths(get_default_readonly_paths())
    };
    if let Some(seccomp) = seccomp {
        linux = linux.seccomp(seccomp);
    }
    let linux = linux.build().map_err(&err)?;

    let spec = oci_spec::runtime::SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(false)
                .build()
                .map_err(&err)?,
        )
        .hostname(hostname)
        .process(process)
        .mounts(mounts)
        .linux(linux)
        .build()
        .map_err(&err)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(json: serde_json::Value) -> ServiceSpec {
        let mut v = serde_json::json!({"name": "web", "runtime": "container", "image": "x"});
        if let (Some(base), Some(extra)) = (v.as_object_mut(), json.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(v).expect("service")
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn args_follow_docker() {
        let img = image(&["/entry"], &["default"]);
        let s = svc(serde_json::json!({}));
        assert_eq!(process_args(&s, &img).expect("args"), ["/entry", "default"]);
        let s = svc(serde_json::json!({"args": ["a"]}));
        assert_eq!(process_args(&s, &img).expect("args"), ["/entry", "a"]);
        // A command replaces the entrypoint and drops the image's cmd.
        let s = svc(serde_json::json!({"command": ["echo"]}));
        assert_eq!(process_args(&s, &img).expect("args"), ["echo"]);
        let s = svc(serde_json::json!({"command": ["echo"], "args": ["hi"]}));
        assert_eq!(process_args(&s, &img).expect("args"), ["echo", "hi"]);
        let e = process_args(&svc(serde_json::json!({})), &image(&[], &[])).expect_err("empty");
        assert!(e.contains("nothing to run"), "{e}");
    }

    #[test]
    fn env_layers_override_in_order() {
        let image = vec!["PATH=/img".to_string(), "A=1".to_string(), "B".to_string()];
        let service = BTreeMap::from([("A".to_string(), "2".to_string())]);
        let inst = BTreeMap::from([
            ("A".to_string(), "3".to_string()),
            ("C".to_string(), "x=y".to_string()),
        ]);
        assert_eq!(
            merge_env(&image, &service, &inst, "h"),
            ["PATH=/img", "A=3", "B=", "C=x=y", "HOSTNAME=h"]
        );
        let env = merge_env(&[], &BTreeMap::new(), &BTreeMap::new(), "h");
        assert_eq!(env[0], DEFAULT_PATH_ENV);
    }

    #[test]
    fn users_resolve_from_the_rootfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        assert_eq!(resolve_user(None, root), Ok((0, 0)));
        assert_eq!(resolve_user(Some("1000"), root), Ok((1000, 0)));
        assert_eq!(resolve_user(Some("1000:5"), root), Ok((1000, 5)));
        let e = resolve_user(Some("www"), root).expect_err("no passwd");
        assert!(e.contains("no /etc/passwd"), "{e}");
        fs::create_dir_all(root.join("etc")).expect("etc");
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:34::/var/www:/bin/false\n",
        )
        .expect("passwd");
        fs::write(root.join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        assert_eq!(resolve_user(Some("www"), root), Ok((33, 34)));
        assert_eq!(resolve_user(Some("33"), root), Ok((33, 34)));
        assert_eq!(resolve_user(Some("www:staff"), root), Ok((33, 50)));
        let e = resolve_user(Some("nobody"), root).expect_err("unknown");
        assert!(e.contains("not found"), "{e}");
        let e = resolve_user(Some("www:nogroup"), root).expect_err("unknown group");
        assert!(e.contains("not found in the image's /etc/group"), "{e}");
    }

    #[test]
    fn spec_carries_limits_namespaces_and_mounts() {
        let s = svc(serde_json::json!({
            "command": ["httpd"],
            "resources": {"cpu": "500m", "memory": "64Mi"},
            "workingDir": "/www",
        }));
        let dir = tempfile::tempdir().expect("tempdir");
        let netns = dir.path().join("ns");
        let input = BundleInput {
            id: "web-0",
            service: &s,
            instance_env: &BTreeMap::new(),
            image: &image(&[], &["sh"]),
            rootfs: dir.path(),
            cgroups_path: "/canopy/n1/web-0".to_string(),
            netns: Some(&netns),
            files: vec![(dir.path().join("hosts"), "/etc/hosts")],
            service_files: &[(dir.path().join("app.yaml"), "/etc/app/app.yaml".to_string())],
            volumes: &[],
            limit_swap: true,
            cpu_quota: true,
        };
        let spec = build_spec(&input).expect("spec");
        let json = serde_json::to_value(&spec).expect("json");
        assert_eq!(json["process"]["args"], serde_json::json!(["httpd"]));
        assert_eq!(json["process"]["cwd"], "/www");
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["hostname"], "web-0");
        assert_eq!(json["root"]["path"], dir.path().display().to_string());
        assert_eq!(json["linux"]["cgroupsPath"], "/canopy/n1/web-0");
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        // The quota left to the caller: no CPU section, the memory limit still in force.
        let deferred = serde_json::to_value(
            build_spec(&BundleInput {
                cpu_quota: false,
                files: Vec::new(),
                ..input
            })
            .expect("spec"),
        )
        .expect("json");
        assert!(
            deferred["linux"]["resources"]["cpu"].is_null(),
            "{deferred}"
        );
        assert_eq!(deferred["linux"]["resources"]["memory"]["limit"], 64 << 20);
        let nets: Vec<&serde_json::Value> = json["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter(|n| n["type"] == "network")
            .collect();
        assert_eq!(nets.len(), 1);
        assert_eq!(nets[0]["path"], netns.display().to_string());
        let mounts = json["mounts"].as_array().expect("mounts");
        assert!(mounts.iter().any(|m| m["destination"] == "/etc/hosts"));
        assert!(mounts.iter().any(|m| m["destination"] == "/proc"));
        let file = mounts
            .iter()
            .find(|m| m["destination"] == "/etc/app/app.yaml")
            .expect("the service's file is mounted");
        assert!(
            file["options"]
                .as_array()
                .expect("options")
                .contains(&"ro".into())
        );
        let caps = json["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps");
        assert_eq!(caps.len(), 14);
        assert!(caps.iter().any(|c| c == "CAP_NET_BIND_SERVICE"));
        // Unprivileged by default: no root, Docker's seccomp profile, hidden /proc paths.
        assert_eq!(json["process"]["user"]["uid"], 65_534);
        assert_eq!(json["process"]["user"]["gid"], 65_534);
        assert_eq!(json["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p == "/proc/kcore"))
        );
    }
}
