//! MicroVMs through every tier: a guest built for the test (Debian's cloud kernel, unpacked
//! from its package, and a busybox initramfs: `tests/vm/build.sh`) served over HTTP with its
//! sha256s, booted by a node's qemu (`-M microvm`, KVM where the node's probe found it
//! working, TCG here): its console is the instance's log, the agent killed and restarted
//! re-adopts the same qemu, and a stop presses the ACPI power button, after which nothing of
//! it is left. Needs root, qemu-system-x86 and busybox-static, and apt-get for the kernel
//! (scripts/test installs them): without them it fails and says what is missing.

use crate::support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{canopy_json, canopy_ok, eventually, start_cluster, start_root};

/// TCG boots the guest in 2.5–6 s, longer on a loaded host.
const SETTLE: Duration = Duration::from_secs(90);

fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "vms: cgroups and qemu's accelerator probe need root (run the suite as root, as CI does)"
    );
    for tool in ["qemu-system-x86_64", "apt-get", "dpkg-deb", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "vms: {tool} is not installed (scripts/test installs it)"
        );
    }
}

/// The guest's directory (built once per target dir) and the kernel's and initramfs's sha256.
fn guest() -> (PathBuf, String, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vm-guest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vm/build.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg(&dir)
        .output()
        .expect("build.sh runs");
    assert!(
        out.status.success(),
        "building the guest: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut digests = text.lines().map(str::to_string);
    let kernel = digests.next().expect("the kernel's sha256");
    let initramfs = digests.next().expect("the initramfs's sha256");
    (dir, kernel, initramfs)
}

/// Serves the files of `dir` over HTTP/1.0 on loopback, for as long as the test runs.
fn serve(dir: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut reader = BufReader::new(&stream);
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let name = line.split_whitespace().nth(1).unwrap_or("/");
                let file = dir.join(name.trim_start_matches('/'));
                let mut stream = &stream;
                let _ = match std::fs::read(&file).ok().filter(|_| !name.contains("..")) {
                    Some(body) => stream
                        .write_all(
                            format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", body.len())
                                .as_bytes(),
                        )
                        .and_then(|()| stream.write_all(&body)),
                    None => {
                        stream.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    }
                };
            });
        }
    });
    port
}

/// When live process `pid` started (clock ticks since boot), so a reused pid never passes.
fn start_time(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    if after_name.split_whitespace().next()? == "Z" {
        return None;
    }
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the node's cgroups (`canopy/<name>` in every hierarchy) on drop, pass or fail.
struct CgroupResidue(PathBuf);

impl Drop for CgroupResidue {
    fn drop(&mut self) {
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let parent = hierarchy.path().join(&self.0);
            for group in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(group.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

fn instance_cgroup_exists(node: &str, id: &str) -> bool {
    let group = Path::new("canopy").join(node).join(id);
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path())
        .chain([PathBuf::from("/sys/fs/cgroup")])
        .any(|h| h.join(&group).is_dir())
}

#[test]
fn a_microvm_boots_logs_its_console_is_readopted_and_powers_off_cleanly() {
    require();
    let (guest_dir, kernel_sha, initramfs_sha) = guest();
    let port = serve(guest_dir);
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let node_dir = dir.path().join("node");
    let name = format!("vm-{}", std::process::id());
    let _cgroups = CgroupResidue(Path::new("canopy").join(&name));
    let mut node = support::start_node(&node_dir, &cluster, &name, &["--gvisor-runtime", "none"]);
    eventually(SETTLE, "the node offers microVMs", || {
        canopy_json(&root.url, &["get", "nodes"])
            .iter()
            .any(|n| {
                n["state"] == "Ready"
                    && n["runtimes"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r == "vm"))
            })
            .then_some(())
    });
    let wide = canopy_ok(&root.url, &["get", "nodes", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(
        row.contains("vm:tcg") || row.contains("vm:kvm"),
        "the node's row names its VMs' acceleration: {wide}"
    );

    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: guests}}
spec:
  services:
    - name: micro
      runtime: vm
      vm:
        kernel: http://127.0.0.1:{port}/vmlinuz
        kernelSha256: {kernel_sha}
        initramfs: http://127.0.0.1:{port}/initrd.gz
        initramfsSha256: {initramfs_sha}
      resources: {{cpu: 1000m, memory: 128Mi}}
"#
    );
    let file = dir.path().join("guests.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);

    let instance = eventually(SETTLE, "the microVM running", || {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["service"] == "micro" && i["state"] == "Running" && i["pid"].is_u64())
    });
    let id = instance["id"].as_str().unwrap().to_string();
    let pid = instance["pid"].as_u64().unwrap();
    let cmdline = support::cmdline(pid).unwrap_or_default();
    assert!(
        cmdline.contains("qemu-system-x86_64") && cmdline.contains("microvm"),
        "the instance's process is its qemu: {cmdline}"
    );
    let started = start_time(pid).expect("qemu runs");
    let logs = eventually(SETTLE, "the guest's console in the instance's log", || {
        let logs = canopy_ok(&root.url, &["logs", &id]);
        logs.contains("canopy microvm up: ").then_some(logs)
    });
    assert!(
        logs.contains("Linux version"),
        "the kernel's boot messages: {logs}"
    );
    assert!(
        instance_cgroup_exists(&name, &id),
        "qemu runs in the instance's cgroup"
    );

    // The agent dies and comes back: the same qemu is re-adopted, not restarted.
    node.restart();
    support::holds_for(
        Duration::from_secs(3),
        "the same qemu running while the agent restarts",
        || start_time(pid) == Some(started),
    );
    let readopted = eventually(
        SETTLE,
        "the restarted node Ready with the VM running",
        || {
            let ready = canopy_json(&root.url, &["get", "nodes"])
                .iter()
                .any(|n| n["name"] == name.as_str() && n["state"] == "Ready");
            canopy_json(&root.url, &["get", "instances"])
                .into_iter()
                .find(|i| ready && i["id"] == id.as_str() && i["state"] == "Running")
        },
    );
    assert_eq!(readopted["pid"].as_u64(), Some(pid), "{readopted}");
    assert_eq!(readopted["restarts"].as_u64(), Some(0), "{readopted}");
    assert_eq!(start_time(pid), Some(started), "the same qemu process");

    canopy_ok(&root.url, &["delete", "application", "guests"]);
    eventually(SETTLE, "the instance gone", || {
        canopy_json(&root.url, &["get", "instances"])
            .is_empty()
            .then_some(())
    });
    eventually(SETTLE, "no qemu, socket, state or cgroup left", || {
        let sockets = std::fs::read_dir(node_dir.join("vm/@qmp"))
            .map(|d| d.count())
            .unwrap_or(0);
        let state = node_dir.join("vm").join(&id).join("state.json").exists();
        (start_time(pid).is_none() && sockets == 0 && !state && !instance_cgroup_exists(&name, &id))
            .then_some(())
    });
    // The guest powered off on the ACPI button (its console, kept on the node, says so),
    // not by a signal.
    let kept = std::fs::read_to_string(node_dir.join("vm").join(&id).join("stdout.log"))
        .unwrap_or_default();
    assert!(
        kept.contains("reboot: Power down"),
        "the guest powered off on the power button: {kept}"
    );
}
