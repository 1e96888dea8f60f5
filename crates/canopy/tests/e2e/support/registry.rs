//! The container tests' registry (open, or with htpasswd auth) and the cleanup of a
//! container node; included with `#[path]` by the tests that run containers, so no other
//! test binary compiles it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the container tests need; CI has all of it, so a lack fails the test.
pub fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers: runc, CNI and overlay mounts need root (run the suite as root, as CI does)"
    );
    for tool in [
        "runc",
        "docker-registry",
        "skopeo",
        "umoci",
        "jq",
        "curl",
        "iptables-save",
        "unshare",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "containers: {tool} is not installed (scripts/test installs it)"
        );
    }
}

/// Fails the test, as `context`, unless this process is root and every one of `tools` is
/// installed (`installs`: what installs them).
pub fn require_root_and(context: &str, tools: &[&str], installs: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{context}: needs root (run the suite as root, as CI does)"
    );
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "{context}: {tool} is not installed ({installs})");
    }
}

/// Debian's docker-registry on loopback with htpasswd auth (bcrypt), the busybox image
/// pushed as `repository:latest` with the credentials; killed on drop.
pub struct Registry {
    pub port: u16,
    pid: i32,
    _dir: tempfile::TempDir,
}

#[allow(dead_code)] // each including test uses one of the two
impl Registry {
    /// Without auth, the busybox image pushed as the script's default.
    pub fn start() -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        Registry::launch(dir, &[])
    }

    pub fn start_with_auth(user: &str, password: &str, repository: &str) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = bcrypt::hash(password, 4).expect("bcrypt");
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("htpasswd");
        let htpasswd = htpasswd.display().to_string();
        let creds = format!("{user}:{password}");
        Registry::launch(
            dir,
            &[
                ("REGISTRY_HTPASSWD", htpasswd.as_str()),
                ("REGISTRY_CREDS", creds.as_str()),
                ("REGISTRY_PUSH", repository),
            ],
        )
    }

    fn launch(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Registry {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let output = Command::new("bash")
            .arg(root.join("tests/registry/start.sh"))
            .arg(dir.path().join("registry"))
            .env(
                "REGISTRY_IMAGES",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-images-e2e"),
            )
            .env("REGISTRY_OWNER", std::process::id().to_string())
            .envs(env.iter().copied())
            .output()
            .expect("start.sh runs");
        assert!(
            output.status.success(),
            "registry: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let mut words = text.split_whitespace();
        let port = words.next().and_then(|p| p.parse().ok()).expect("port");
        let pid = words.next().and_then(|p| p.parse().ok()).expect("pid");
        Registry {
            port,
            pid,
            _dir: dir,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid).filter(|_| self.pid > 1) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// What a container node leaves (containers, CNI rules and bridge, mounts, cgroups),
/// removed on drop, pass or fail.
pub struct Residue {
    runc_root: PathBuf,
    node_dir: PathBuf,
    network: String,
    bridge: String,
    cgroup: PathBuf,
}

impl Residue {
    pub fn new(node_dir: &Path, name: &str, subnet: &str) -> Residue {
        let config = canopy_runtime::CniConfig::new(format!("canopy-{name}"), subnet);
        Residue {
            runc_root: node_dir.join("containers/@runc"),
            node_dir: node_dir.to_path_buf(),
            bridge: config.bridge_name(),
            network: config.name,
            cgroup: Path::new("canopy").join(name),
        }
    }
}

impl Drop for Residue {
    fn drop(&mut self) {
        let runc = |args: &[&str]| {
            Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(args)
                .output()
        };
        if let Ok(list) = runc(&["list", "-q"]) {
            for id in String::from_utf8_lossy(&list.stdout).split_whitespace() {
                let _ = runc(&["delete", "--force", id]);
            }
        }
        // Each deleted container's holder (runc's supervisor) is left sleeping otherwise.
        canopy_runtime::end_holders_under(&self.node_dir);
        let _ = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/remove-cni-rules"
        ))
        .arg(&self.network)
        .output();
        let mut mounts = mounts_under(&self.node_dir);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = Command::new("umount").args(["-l", &mount]).output();
        }
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path())
            .chain([Path::new("/sys/fs/cgroup").to_path_buf()]);
        for hierarchy in hierarchies {
            let parent = hierarchy.join(&self.cgroup);
            if let Ok(groups) = std::fs::read_dir(&parent) {
                for group in groups.flatten().filter(|g| g.path().is_dir()) {
                    let _ = std::fs::remove_dir(group.path());
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// A /24 in 10.91.0.0/16 no route uses yet.
pub fn free_subnet() -> String {
    free_subnet_in(91)
}

/// A /24 in 10.`second`.0.0/16 no route uses yet (each kind of test its own /16).
pub fn free_subnet_in(second: u8) -> String {
    let routes = Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    (0..250)
        .map(|i| (std::process::id() + i) % 250 + 1)
        .map(|x| format!("10.{second}.{x}.0/24"))
        .find(|s| !routes.contains(&s[..s.len() - 3]))
        .unwrap_or_else(|| panic!("a free /24 in 10.{second}.0.0/16"))
}

/// Mount points under `dir` (overlay root filesystems, network namespaces).
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}
