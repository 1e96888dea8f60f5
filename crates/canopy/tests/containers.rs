//! Containers through every tier: a real registry (`tests/registry/start.sh`, Debian's
//! docker-registry on loopback), `canopy root`, `canopy cluster` and `canopy node` processes,
//! runc and the CNI plugins. Needs root and those tools: without them the test fails and says
//! what is missing (CI runs as root, and scripts/test installs the tools).

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{Daemon, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings};

const SETTLE: Duration = Duration::from_secs(60);

/// What this test needs; CI has all of it, so a lack fails the test instead of passing it.
fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "containers: runc, CNI and overlay mounts need root (run the suite as root, as CI does)"
    );
    for tool in ["runc", "docker-registry", "skopeo", "umoci", "jq"] {
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

/// The registry process, killed on drop (the script also stops it once this test is gone).
struct Registry {
    port: u16,
    pid: i32,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let output = Command::new("bash")
            .arg(root.join("tests/registry/start.sh"))
            .arg(dir.path())
            .env(
                "REGISTRY_IMAGES",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("registry-images-e2e"),
            )
            .env("REGISTRY_OWNER", std::process::id().to_string())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "registry: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).unwrap();
        let mut words = text.split_whitespace();
        let port = words.next().unwrap().parse().unwrap();
        let pid = words.next().unwrap().parse().unwrap();
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

/// Whatever a failed run would leave: containers outlive their killed agent by design, and
/// CNI never deletes its bridge. Removed on drop, pass or fail.
struct Residue {
    runc_root: std::path::PathBuf,
    bridge: String,
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
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Mount points under `dir` (overlay root filesystems, network namespaces).
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect()
}

#[test]
fn a_container_from_a_registry_serves_http_is_limited_and_leaves_nothing_behind() {
    require();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let node_dir = dir.path().join("node");
    // A subnet no route uses yet: a bridge left by an earlier, failed run must not shadow it.
    let routes = Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let subnet = (0..250)
        .map(|i| (std::process::id() + i) % 250 + 1)
        .map(|x| format!("10.90.{x}.0/24"))
        .find(|s| !routes.contains(&s[..s.len() - 3]))
        .expect("a free /24 in 10.90.0.0/16");
    let node_name = format!("ctr-{}", std::process::id());
    let _residue = Residue {
        runc_root: dir.path().join("node/containers/@runc"),
        bridge: canopy_runtime::CniConfig::new(format!("canopy-{node_name}"), subnet.clone())
            .bridge_name(),
    };
    let _node = Daemon::start(
        &strings(&[
            "node",
            "--cluster",
            &cluster.url,
            "--data",
            &node_dir.display().to_string(),
            "--name",
            &node_name,
            "--insecure-registry",
            &format!("127.0.0.1:{}", registry.port),
            "--container-subnet",
            &subnet,
        ]),
        false,
    );
    eventually(SETTLE, "the node offers containers", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        nodes
            .iter()
            .any(|n| {
                n["state"] == "Ready"
                    && n["runtimes"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r == "container"))
            })
            .then_some(())
    });

    let host_port = free_port();
    let image = format!("127.0.0.1:{}/busybox:latest", registry.port);
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: web}}
spec:
  services:
    - name: httpd
      runtime: container
      image: {image}
      command: [sh, -c, "mkdir -p /www && echo hello from canopy > /www/index.html && exec httpd -f -p 8080 -h /www"]
      ports: [{{port: 8080, hostPort: {host_port}}}]
      resources: {{cpu: 100m, memory: 64Mi}}
    - name: hog
      runtime: container
      image: {image}
      command: [sh, -c, "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
      restartPolicy: never
      resources: {{cpu: 100m, memory: 32Mi}}
"#
    );
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);

    let deadline = std::time::Instant::now() + SETTLE;
    let answer = loop {
        if let Some(answer) = http_get(host_port).filter(|a| a.contains("hello from canopy")) {
            break answer;
        }
        if std::time::Instant::now() >= deadline {
            let sh = |script: String| {
                let out = Command::new("sh").args(["-c", &script]).output().unwrap();
                String::from_utf8_lossy(&out.stdout).to_string()
            };
            panic!(
                "httpd never answered on port {host_port}; nat: {}; listeners: {}; curl: {}; instances: {:#}",
                sh(format!(
                    "iptables-save -t nat | grep -e {host_port} -e CNI-HOSTPORT"
                )),
                sh(format!("ss -ltnp | grep {host_port}")),
                sh(format!("curl -sS -m 2 http://127.0.0.1:{host_port}/ 2>&1")),
                Value::Array(canopy_json(&root.url, &["get", "instances"]))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    let httpd = canopy_json(&root.url, &["get", "instances"])
        .into_iter()
        .find(|i| i["service"] == "httpd")
        .unwrap();
    let events: Vec<&str> = httpd["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert!(
        // Two services pull the same image at once: one fetch, shared, so this one may hear
        // only its end.
        events
            .iter()
            .any(|r| r.starts_with("resolving 127.0.0.1:") || r.starts_with("image sha256:")),
        "image pull progress is an instance event: {events:?}"
    );
    let hog: Value = eventually(SETTLE, "the memory hog ended", || {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["service"] == "hog" && i["state"] == "Failed")
    });
    let reason = hog["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("out of memory"), "{hog}");

    canopy_ok(&root.url, &["delete", "application", "web"]);
    eventually(SETTLE, "every instance gone", || {
        canopy_json(&root.url, &["get", "instances"])
            .is_empty()
            .then_some(())
    });
    eventually(SETTLE, "no container, mount or lease left", || {
        let runc = Command::new("runc")
            .arg("--root")
            .arg(node_dir.join("containers/@runc"))
            .args(["list", "-q"])
            .output()
            .ok()?;
        let containers = String::from_utf8_lossy(&runc.stdout).trim().to_string();
        let mounts = mounts_under(&node_dir);
        let published = http_get(host_port).is_some();
        (containers.is_empty() && mounts.is_empty() && !published).then_some(())
    });
}
