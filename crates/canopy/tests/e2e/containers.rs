//! Containers through every tier: a real registry (`tests/registry/start.sh`, Debian's
//! docker-registry on loopback), `canopy root`, `canopy cluster` and `canopy node` processes,
//! runc and the CNI plugins. Needs root and those tools: without them the test fails and says
//! what is missing (CI runs as root, and scripts/test installs the tools).

use crate::support;
use crate::support::registry;
use support::http_get;
use support::ports::published_port;

use registry::{Registry, Residue, free_subnet, mounts_under, require};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{Daemon, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings};

const SETTLE: Duration = Duration::from_secs(60);

/// A node agent that runs containers from the test's registry on a subnet of its own, and what
/// it leaves behind, removed after the agent stops (fields drop in order).
struct ContainerNode {
    agent: Daemon,
    _residue: Residue,
    dir: std::path::PathBuf,
    name: String,
}

impl ContainerNode {
    fn start(data: &Path, cluster: &Daemon, registry: &Registry, prefix: &str) -> ContainerNode {
        let dir = data.join("node");
        let subnet = free_subnet();
        let name = format!("{prefix}-{}", std::process::id());
        let residue = Residue::new(&dir, &name, &subnet);
        let registry_address = format!("127.0.0.1:{}", registry.port);
        let extra = [
            "--insecure-registry",
            &registry_address,
            "--container-subnet",
            &subnet,
        ];
        ContainerNode {
            agent: support::start_node(&dir, cluster, &name, &extra),
            _residue: residue,
            dir,
            name,
        }
    }
}

/// A registry, a root, cluster `c0` and one container node named after `prefix`, the node
/// offering containers (fields drop in order: the node and its residue before the rest).
struct Hierarchy {
    node: ContainerNode,
    _cluster: Daemon,
    root: Daemon,
    registry: Registry,
}

impl Hierarchy {
    fn start(dir: &Path, prefix: &str) -> Hierarchy {
        let registry = Registry::start();
        let root = start_root(dir);
        let cluster = start_cluster(dir, &root, "c0", &[]);
        let node = ContainerNode::start(dir, &cluster, &registry, prefix);
        wait_for_containers(&root.url);
        Hierarchy {
            node,
            _cluster: cluster,
            root,
            registry,
        }
    }
}

#[test]
fn a_container_from_a_registry_serves_http_is_limited_and_leaves_nothing_behind() {
    require();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let node = ContainerNode::start(dir.path(), &cluster, &registry, "ctr");
    let node_dir = node.dir.clone();
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

    let host_port = published_port();
    let image = format!("127.0.0.1:{}/busybox:latest", registry.port);
    // The container runs as the unprivileged default user (65534), which may write only to
    // /dev/shm (a tmpfs open to all) in the test's minimal image.
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: web}}
spec:
  services:
    - name: httpd
      runtime: container
      image: {image}
      command: [sh, -c, "mkdir -p /dev/shm/www && echo hello from canopy > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"]
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

/// busybox httpd as service `web/httpd`, published on `host_port`, restarted when it dies.
fn apply_httpd(server: &str, dir: &Path, registry: &Registry, host_port: u16) {
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: web}}
spec:
  services:
    - name: httpd
      runtime: container
      image: 127.0.0.1:{registry}/busybox:latest
      command: [sh, -c, "mkdir -p /dev/shm/www && echo hello from canopy > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"]
      ports: [{{port: 8080, hostPort: {host_port}}}]
      restartPolicy: always
      resources: {{cpu: 100m, memory: 64Mi}}
"#,
        registry = registry.port
    );
    let file = dir.join("web.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

/// Waits until a Ready node at `server` offers the container runtime.
fn wait_for_containers(server: &str) {
    eventually(SETTLE, "a node offering containers", || {
        canopy_json(server, &["get", "nodes"])
            .iter()
            .any(|n| {
                n["state"] == "Ready"
                    && n["runtimes"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r == "container"))
            })
            .then_some(())
    });
}

/// When live process `pid` started (clock ticks since boot): with the pid, it names one
/// process, never a later one that reused the pid.
fn start_time(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let state = after_name.split_whitespace().next()?;
    if state == "Z" {
        return None;
    }
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The httpd container as the API reports it, once it runs and answers on `host_port`:
/// (id, pid of the container's init, restarts, when that process started).
fn serving(server: &str, host_port: u16) -> (String, u64, u64, u64) {
    eventually(SETTLE, "httpd running and answering", || {
        let instance = canopy_json(server, &["get", "instances"])
            .into_iter()
            .find(|i| i["service"] == "httpd" && i["state"] == "Running")?;
        let id = instance["id"].as_str()?.to_string();
        let pid = instance["pid"]
            .as_u64()
            .filter(|pid| support::runs_instance(*pid, &id))?;
        http_get(host_port).filter(|a| a.contains("hello from canopy"))?;
        Some((id, pid, instance["restarts"].as_u64()?, start_time(pid)?))
    })
}

fn is_lost(instance: &Value) -> bool {
    instance["state"] == "Lost"
        || instance["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["state"] == "Lost"))
}

/// SIGTERM stops `canopy up` and leaves its container running (still serving on its host
/// port); the next `canopy up` on the same data directory re-adopts it: the same process,
/// no restart counted, and supervised (killed, it is restarted by its policy).
#[test]
fn a_gracefully_stopped_up_leaves_its_container_and_the_next_readopts_it() {
    require();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let subnet = free_subnet();
    // `canopy up` names its node after the host: a UTS namespace of its own gives it a name
    // (and so a bridge, network and cgroup) no other test on this machine shares.
    let name = format!("up-{}", std::process::id());
    let _residue = Residue::new(&data.join("node"), &name, &subnet);
    let up = || {
        let mut args = strings(&[
            "--uts",
            "sh",
            "-c",
            r#"echo "$0" > /proc/sys/kernel/hostname && exec "$@""#,
            &name,
            support::CANOPY,
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data",
            &data.display().to_string(),
            "--insecure-registry",
            &format!("127.0.0.1:{}", registry.port),
            "--container-subnet",
            &subnet,
        ]);
        args.extend(support::fast_timing());
        Daemon::start_program("unshare", &args, true)
    };
    let mut daemon = up();
    wait_for_containers(&daemon.url);
    let host_port = published_port();
    apply_httpd(&daemon.url, dir.path(), &registry, host_port);
    let before = serving(&daemon.url, host_port);
    let (id, pid, restarts, started) = before.clone();

    let status = daemon.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "canopy up exited with {status} on SIGTERM"
    );
    support::holds_for(
        Duration::from_secs(1),
        "the container running and serving without canopy up",
        || start_time(pid) == Some(started) && http_get(host_port).is_some(),
    );

    let daemon = up();
    wait_for_containers(&daemon.url);
    // A few heartbeats of the new agent: had it restarted the container, it would show.
    support::holds_for(
        Duration::from_secs(2),
        "the same container, never restarted, serving",
        || {
            start_time(pid) == Some(started)
                && http_get(host_port).is_some_and(|a| a.contains("hello from canopy"))
        },
    );
    assert_eq!(
        serving(&daemon.url, host_port),
        before,
        "the same container process, no restart counted"
    );

    // Adopted for real: the new agent supervises it (killed, it is restarted by policy).
    let victim = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(victim, rustix::process::Signal::KILL).unwrap();
    eventually(SETTLE, "the adopted container restarted", || {
        let (new_id, new_pid, new_restarts, _) = serving(&daemon.url, host_port);
        (new_id == id && new_pid != pid && new_restarts == restarts + 1).then_some(())
    });
    assert_ne!(start_time(pid), Some(started), "the killed process is gone");
}

/// SIGKILL of a `canopy node` agent leaves its container running; an agent restarted well
/// within the cluster's deadline re-adopts it (same process, never Lost, no restart), and
/// scaling the service to 0 then stops it and leaves no container, process, mount, network
/// namespace, address lease, iptables rule or cgroup behind.
#[test]
fn a_container_outlives_its_killed_agent_and_once_readopted_its_revoke_leaves_nothing() {
    require();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let mut node = ContainerNode::start(dir.path(), &cluster, &registry, "adopt");
    let (node_dir, node_name) = (node.dir.clone(), node.name.clone());
    wait_for_containers(&root.url);
    let host_port = published_port();
    apply_httpd(&root.url, dir.path(), &registry, host_port);
    let before = serving(&root.url, host_port);
    let (id, pid, _, started) = before.clone();

    // What the container has while it runs, each checked gone after the revoke.
    let network = format!("canopy-{node_name}");
    let netns = node_dir.join("containers/@cni/netns").join(&id);
    let network_state = node_dir.join("containers/@cni/instances").join(&id);
    let leases = node_dir.join("containers/@cni/ipam").join(&network);
    // The container's own cgroup, where the kernel says it runs (v2, or v1's memory).
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| match l.splitn(3, ':').collect::<Vec<_>>()[..] {
            ["0", "", path] => Some(Path::new("/sys/fs/cgroup").join(&path[1..])),
            [_, "memory", path] => Some(Path::new("/sys/fs/cgroup/memory").join(&path[1..])),
            _ => None,
        })
        .find(|p| p.ends_with(&id))
        .unwrap_or_default();
    let iptables = || {
        let out = Command::new("iptables-save").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&id) || l.contains(&format!("dport {host_port}")))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let leased = || {
        std::fs::read_dir(&leases)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .parse::<std::net::IpAddr>()
                    .is_ok()
            })
            .count()
    };
    let had = (
        mounts_under(&netns).len(),
        network_state.exists(),
        leased(),
        cgroup.is_dir(),
        !iptables().is_empty(),
    );
    assert_eq!(
        had,
        (1, true, 1, true, true),
        "the running container's netns mount, network state, lease, cgroup and iptables rules"
    );

    let killed = std::time::Instant::now();
    node.agent.restart();
    let restarted_in = killed.elapsed();
    assert!(
        restarted_in < support::DEADLINE / 2,
        "the agent took {restarted_in:?} to restart: the test needs it well within the deadline"
    );
    support::holds_for(
        (support::DEADLINE * 2).saturating_sub(killed.elapsed()),
        "the node Ready and the same container running, never Lost",
        || {
            let ready = canopy_json(&root.url, &["get", "nodes"])
                .iter()
                .any(|n| n["name"] == node_name.as_str() && n["state"] == "Ready");
            let instances = canopy_json(&root.url, &["get", "instances"]);
            ready
                && instances.len() == 1
                && instances
                    .iter()
                    .all(|i| i["id"] == id.as_str() && i["state"] == "Running" && !is_lost(i))
                && start_time(pid) == Some(started)
        },
    );
    assert_eq!(
        serving(&root.url, host_port),
        before,
        "the same container process after the agent restarted, no restart counted"
    );

    // The re-adopted agent revokes it: it stops and its every trace goes.
    canopy_ok(&root.url, &["scale", "web/httpd", "--replicas", "0"]);
    eventually(SETTLE, "the instance gone", || {
        canopy_json(&root.url, &["get", "instances"])
            .is_empty()
            .then_some(())
    });
    let runc_root = node_dir.join("containers/@runc");
    // (container process alive, runc's containers, mounts under the node's directory, its
    // netns or network state, address leases, its cgroup, iptables rules, the host port)
    let nothing = (
        false,
        String::new(),
        Vec::new(),
        false,
        0,
        false,
        Vec::new(),
        false,
    );
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let runc = Command::new("runc")
            .arg("--root")
            .arg(&runc_root)
            .args(["list", "-q"])
            .output()
            .expect("runc runs");
        let left = (
            start_time(pid).is_some(),
            String::from_utf8_lossy(&runc.stdout).trim().to_string(),
            mounts_under(&node_dir),
            netns.exists() || network_state.exists(),
            leased(),
            cgroup.is_dir(),
            iptables(),
            http_get(host_port).is_some(),
        );
        if left == nothing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "left behind {SETTLE:?} after the revoke: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Still nothing once the node has had a few heartbeats to change its mind.
    support::holds_for(Duration::from_secs(1), "no container again", || {
        canopy_json(&root.url, &["get", "instances"]).is_empty() && http_get(host_port).is_none()
    });
}

#[test]
fn logs_and_exec_reach_a_container_through_the_tiers() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let bed = Hierarchy::start(dir.path(), "streams");
    let (root, registry) = (&bed.root, &bed.registry);
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: box}}
spec:
  services:
    - name: shell
      runtime: container
      image: 127.0.0.1:{registry}/busybox:latest
      command: [sh, -c, "echo container says hi; mkdir -p /dev/shm/www && echo from the container > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"]
      env: {{GREETING: hej}}
      resources: {{cpu: 100m, memory: 32Mi}}
"#,
        registry = registry.port
    );
    let file = dir.path().join("box.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let id = eventually(SETTLE, "the container to run", || {
        canopy_json(&root.url, &["get", "instances"])
            .iter()
            .find(|i| i["state"] == "Running")
            .map(|i| i["id"].as_str().unwrap().to_string())
    });
    let logs = eventually(SETTLE, "the container's first line", || {
        let logs = canopy_ok(&root.url, &["logs", &id]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs, "container says hi\n");

    let echo = support::canopy(
        &root.url,
        &["exec", &id, "--", "echo", "hello", "$GREETING"],
    );
    assert!(echo.status.success(), "{echo:?}");
    assert_eq!(echo.stdout, b"hello $GREETING\n");
    let env = canopy_ok(
        &root.url,
        &["exec", &id, "--", "sh", "-c", "echo $GREETING"],
    );
    assert_eq!(env, "hej\n", "the container's own environment");
    let failing = support::canopy(&root.url, &["exec", &id, "--", "sh", "-c", "exit 7"]);
    assert_eq!(failing.status.code(), Some(7), "{failing:?}");

    // port-forward reaches the container's own address (no hostPort is published).
    let mut forward = Command::new(support::CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(["port-forward", &id, "0:8080"])
        .env("CANOPY_SERVER", &root.url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut announced = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(forward.stdout.take().unwrap()),
        &mut announced,
    )
    .unwrap();
    let local: u16 = announced
        .trim()
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {announced:?}"));
    let page = eventually(SETTLE, "the container's page through the forward", || {
        http_get(local).filter(|page| page.contains("from the container"))
    });
    assert!(page.ends_with("from the container\n"), "{page}");
    let _ = forward.kill();
    let _ = forward.wait();
}

/// `key:` of a /proc status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// The workload privilege of issue 13 through the tiers: in an untrusted namespace a
/// developer's descriptor cannot run as root, run privileged or use the process runtime (each
/// refused with its field path); a default container there runs as 65534 with Docker's
/// capabilities and seccomp on; once an admin trusts the namespace the same descriptor runs.
#[test]
fn an_untrusted_namespace_refuses_privilege_and_a_trusted_one_runs_it() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let bed = Hierarchy::start(dir.path(), "privilege");
    let (root, registry) = (&bed.root, &bed.registry);
    canopy_ok(&root.url, &["create", "namespace", "dev"]);
    let image = format!("127.0.0.1:{}/busybox:latest", registry.port);
    let write = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        file.display().to_string()
    };
    let escaping = write(
        "escaping.yaml",
        format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: tools, namespace: dev}}
spec:
  services:
    - name: shell
      runtime: container
      image: {image}
      command: [sleep, "600"]
      securityContext: {{runAsUser: 0, privileged: true}}
    - name: job
      runtime: process
      command: [/bin/sleep, "600"]
"#
        ),
    );
    let refused = support::canopy(&root.url, &["apply", "-f", &escaping]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    for path in [
        "spec.services[0].securityContext.runAsUser",
        "spec.services[0].securityContext.privileged",
        "spec.services[1].runtime",
    ] {
        assert!(stderr.contains(path), "{path} in {stderr}");
    }
    assert!(stderr.contains("namespace dev is not trusted"), "{stderr}");
    assert!(canopy_json(&root.url, &["get", "applications", "-n", "dev"]).is_empty());

    // A default container in the same namespace runs, unprivileged.
    let plain = write(
        "plain.yaml",
        format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: plain, namespace: dev}}
spec:
  services:
    - name: box
      runtime: container
      image: {image}
      command: [sleep, "600"]
"#
        ),
    );
    canopy_ok(&root.url, &["apply", "-f", &plain]);
    let running = |application: &str, service: &str| {
        eventually(SETTLE, "the container to run", || {
            canopy_json(&root.url, &["get", "instances", "-n", "dev"])
                .iter()
                .find(|i| {
                    i["application"] == application
                        && i["service"] == service
                        && i["state"] == "Running"
                })
                .map(|i| i["id"].as_str().unwrap().to_string())
        })
    };
    let id = running("plain", "box");
    let status = canopy_ok(&root.url, &["exec", &id, "--", "cat", "/proc/1/status"]);
    assert_eq!(status_field(&status, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(status_field(&status, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");

    // An admin trusts the namespace: the same descriptor is accepted and runs as asked.
    canopy_ok(&root.url, &["create", "namespace", "dev", "--trusted"]);
    canopy_ok(&root.url, &["apply", "-f", &escaping]);
    let id = running("tools", "shell");
    let status = canopy_ok(&root.url, &["exec", &id, "--", "cat", "/proc/1/status"]);
    assert_eq!(status_field(&status, "Uid"), "0\t0\t0\t0");
    assert_eq!(status_field(&status, "Seccomp"), "0");
    let caps = u64::from_str_radix(status_field(&status, "CapEff"), 16).unwrap();
    assert_ne!(caps & (1 << 21), 0, "CAP_SYS_ADMIN in {caps:x}");
    let refused = support::canopy(&root.url, &["delete", "namespace", "dev"]);
    assert!(
        !refused.status.success(),
        "applications live in it: {refused:?}"
    );
    canopy_ok(&root.url, &["delete", "application", "tools", "-n", "dev"]);
    canopy_ok(&root.url, &["delete", "application", "plain", "-n", "dev"]);
}

/// A service's `files` (issues 13 and 18): inline content and a Secret's key are mounted
/// read-only at their paths in a container (as the unprivileged user it runs as), and a
/// process of a trusted namespace finds the same tree under `$CANOPY_FILES`; deleting the
/// application leaves no file behind.
#[test]
fn files_reach_a_container_read_only_and_a_process_under_canopy_files() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let bed = Hierarchy::start(dir.path(), "files");
    let (root, registry) = (&bed.root, &bed.registry);
    canopy_ok(&root.url, &["create", "namespace", "ops", "--trusted"]);
    canopy_ok(
        &root.url,
        &[
            "create",
            "secret",
            "api",
            "-n",
            "ops",
            "--from-literal",
            "token=tok-1",
        ],
    );
    let image = format!("127.0.0.1:{}/busybox:latest", registry.port);
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: conf, namespace: ops}}
spec:
  services:
    - name: box
      runtime: container
      image: {image}
      command: [sleep, "600"]
      files:
        - path: /etc/app/app.conf
          content: "greeting = hej\n"
        - path: /run/secrets/token
          secret: {{name: api, key: token}}
    - name: job
      runtime: process
      command: [/bin/sh, -c, 'cat "$CANOPY_FILES/etc/app/app.conf" "$CANOPY_FILES/run/secrets/token"; echo; exec sleep 600']
      files:
        - path: /etc/app/app.conf
          content: "greeting = hej\n"
        - path: /run/secrets/token
          secret: {{name: api, key: token}}
"#
    );
    let file = dir.path().join("conf.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let running = |service: &str| {
        eventually(SETTLE, "the instance to run", || {
            canopy_json(&root.url, &["get", "instances", "-n", "ops"])
                .iter()
                .find(|i| i["service"] == service && i["state"] == "Running")
                .map(|i| i["id"].as_str().unwrap().to_string())
        })
    };
    let boxed = running("box");
    let shown = canopy_ok(
        &root.url,
        &[
            "exec",
            &boxed,
            "--",
            "cat",
            "/etc/app/app.conf",
            "/run/secrets/token",
        ],
    );
    assert_eq!(shown, "greeting = hej\ntok-1");
    let id = canopy_ok(&root.url, &["exec", &boxed, "--", "id", "-u"]);
    assert_eq!(
        id, "65534\n",
        "read by the unprivileged user the container runs as"
    );
    let write = support::canopy(
        &root.url,
        &[
            "exec",
            &boxed,
            "--",
            "sh",
            "-c",
            "echo x > /etc/app/app.conf",
        ],
    );
    assert!(!write.status.success(), "the file is read-only: {write:?}");
    let mounts = canopy_ok(&root.url, &["exec", &boxed, "--", "cat", "/proc/mounts"]);
    let line = mounts
        .lines()
        .find(|l| l.contains(" /run/secrets/token "))
        .unwrap_or_else(|| panic!("the secret is a mount of its own: {mounts}"));
    assert!(line.contains(" ro,"), "{line}");

    let job = running("job");
    let logs = eventually(SETTLE, "the process printed its files", || {
        let logs = canopy_ok(&root.url, &["logs", &job]);
        logs.contains("tok-1").then_some(logs)
    });
    assert_eq!(logs, "greeting = hej\ntok-1\n");

    // The files live in the node's data dir (the workload's, not listed by private_files).
    let files_dir = bed.node.dir.join("@files");
    assert!(files_dir.join(&boxed).join("run/secrets/token").is_file());
    canopy_ok(&root.url, &["delete", "application", "conf", "-n", "ops"]);
    eventually(SETTLE, "no file left behind", || {
        std::fs::read_dir(&files_dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
            .then_some(())
    });
}
