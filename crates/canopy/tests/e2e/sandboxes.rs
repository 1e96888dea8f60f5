//! Sandboxed containers through every tier: a node that starts gVisor's probe sandbox offers
//! `gvisor`, and a service with `sandbox: gvisor` runs from the test registry under runsc:
//! it serves HTTP on its host port, sees gVisor's kernel rather than the host's (through its
//! own output and through `canopy exec`), is limited by its cgroup, and leaves nothing.
//! Needs root, runc's tools and runsc (scripts/test installs them): without them it fails
//! and says what is missing.

use crate::support;
use crate::support::registry;
use support::http_get;
use support::ports::published_port;

use registry::{Registry, Residue, free_subnet, mounts_under, require};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{canopy_json, canopy_ok, eventually, start_cluster, start_root};

const SETTLE: Duration = Duration::from_secs(60);

/// The gVisor containers of the node's runsc root, removed on drop, pass or fail (runc's
/// are [`Residue`]'s).
struct GvisorResidue(PathBuf);

impl GvisorResidue {
    fn containers(&self) -> Vec<String> {
        let out = Command::new("runsc")
            .arg("--root")
            .arg(&self.0)
            .args(["list", "-quiet"])
            .output()
            .expect("runsc list runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for GvisorResidue {
    fn drop(&mut self) {
        if self.0.exists() {
            for id in self.containers() {
                let _ = Command::new("runsc")
                    .arg("--root")
                    .arg(&self.0)
                    .args(["delete", "-force", &id])
                    .output();
            }
        }
    }
}

fn require_runsc() {
    let found = Command::new("sh")
        .args(["-c", "command -v runsc"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "sandboxes: runsc is not installed (scripts/test installs it)"
    );
}

#[test]
fn a_gvisor_container_serves_http_sees_gvisors_kernel_and_leaves_nothing() {
    require();
    require_runsc();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let node_dir = dir.path().join("node");
    let subnet = free_subnet();
    let name = format!("gvisor-{}", std::process::id());
    let _residue = Residue::new(&node_dir, &name, &subnet);
    let gvisor = GvisorResidue(node_dir.join("containers/@gvisor/@runsc"));
    let registry_address = format!("127.0.0.1:{}", registry.port);
    let _node = support::start_node(
        &node_dir,
        &cluster,
        &name,
        &[
            "--insecure-registry",
            &registry_address,
            "--container-subnet",
            &subnet,
        ],
    );
    eventually(SETTLE, "the node offers the gvisor sandbox", || {
        canopy_json(&root.url, &["get", "nodes"])
            .iter()
            .any(|n| {
                n["state"] == "Ready"
                    && n["sandboxes"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s == "gvisor"))
            })
            .then_some(())
    });
    let wide = canopy_ok(&root.url, &["get", "nodes", "-o", "wide"]);
    assert!(
        wide.lines().next().is_some_and(|h| h.contains("SANDBOXES")),
        "{wide}"
    );
    let row = wide
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(
        row.split_whitespace()
            .any(|column| column.split(',').any(|s| s == "gvisor")),
        "the node's row lists its gvisor sandbox: {wide}"
    );

    let host_port = published_port();
    let image = format!("127.0.0.1:{}/busybox:latest", registry.port);
    // The page is what the workload sees of its kernel: release and boot messages.
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: sandboxed}}
spec:
  services:
    - name: httpd
      runtime: container
      sandbox: gvisor
      image: {image}
      command: [sh, -c, "mkdir -p /dev/shm/www && {{ uname -r; dmesg; }} > /dev/shm/www/index.html && echo sandboxed httpd up && exec httpd -f -p 8080 -h /dev/shm/www"]
      ports: [{{port: 8080, hostPort: {host_port}}}]
      resources: {{cpu: 200m, memory: 96Mi}}
"#
    );
    let file = dir.path().join("sandboxed.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);

    let page = eventually(
        SETTLE,
        "the sandboxed httpd answers on its host port",
        || http_get(host_port).filter(|a| a.starts_with("HTTP/1.") && a.contains(" 200 ")),
    );
    let host_release = String::from_utf8(Command::new("uname").arg("-r").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        page.contains("Starting gVisor"),
        "dmesg inside shows gVisor's banner: {page}"
    );
    assert!(
        !page.contains(&host_release),
        "the container sees the host's kernel {host_release}: {page}"
    );

    let instance = eventually(SETTLE, "the instance running", || {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["service"] == "httpd" && i["state"] == "Running")
    });
    let id = instance["id"].as_str().unwrap().to_string();
    assert_eq!(
        instance["details"]["runtime"], "container (gvisor)",
        "{instance}"
    );
    let logs = eventually(SETTLE, "the container's first line in its log", || {
        let logs = canopy_ok(&root.url, &["logs", &id]);
        logs.contains("sandboxed httpd up").then_some(logs)
    });
    assert_eq!(logs, "sandboxed httpd up\n");
    let inside = canopy_ok(&root.url, &["exec", &id, "--", "sh", "-c", "uname -r"]);
    assert_ne!(inside.trim(), host_release, "exec runs inside the sandbox");
    let body = page.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    assert_eq!(
        body.lines().next(),
        Some(inside.trim()),
        "exec sees the release the workload saw: {page}"
    );
    assert_eq!(
        gvisor.containers(),
        std::slice::from_ref(&id),
        "the container is runsc's"
    );

    // Limits: the sandbox lives in the instance's cgroup, with its memory limit.
    let limit = memory_limit(&name, &id);
    assert_eq!(limit, Some(96 << 20), "the instance's memory limit");

    canopy_ok(&root.url, &["delete", "application", "sandboxed"]);
    eventually(SETTLE, "every instance gone", || {
        canopy_json(&root.url, &["get", "instances"])
            .is_empty()
            .then_some(())
    });
    eventually(
        SETTLE,
        "no sandbox, process, mount or published port left",
        || {
            let containers = gvisor.containers();
            // runsc's sandbox, gofer and our shim name the container id on their command lines.
            let processes = support::pids_with(&id);
            let mounts = mounts_under(&node_dir);
            let published = http_get(host_port).is_some();
            let group = memory_limit(&name, &id).is_some();
            (containers.is_empty()
                && processes.is_empty()
                && mounts.is_empty()
                && !published
                && !group)
                .then_some(())
        },
    );
}

/// The memory limit of instance `id`'s cgroup on node `node` (v1 or v2), while it exists.
fn memory_limit(node: &str, id: &str) -> Option<u64> {
    let group = Path::new("canopy").join(node).join(id);
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(&group)
        .join("memory.limit_in_bytes");
    let v2 = Path::new("/sys/fs/cgroup").join(&group).join("memory.max");
    [v1, v2]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| text.trim().parse().ok())
}
