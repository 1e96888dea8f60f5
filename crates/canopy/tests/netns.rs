//! Network coordinates over a real, delayed network: two nodes in their own network
//! namespaces, joined to the host (where root and cluster run) by point-to-point links with
//! round trips of 1 ms and 40 ms. The nodes' probes place them far apart in latency space,
//! and a latency constraint to another service places by what was measured.
//!
//! The links are TUN pairs joined by `bench/wire.py`, a userspace netem (this project's CI
//! kernels have no `sch_netem`): it works on every kernel with /dev/net/tun. Needs root,
//! iproute2 and python3; without them the test fails and says what is missing (CI has them).

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings,
};

const SETTLE: Duration = Duration::from_secs(60);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

/// Two namespaces, each linked to the host by a TUN pair that `bench/wire.py` delays by
/// half the round trip each way. Dropping it ends wire.py (the links vanish with it) and
/// deletes the namespaces, also when the test fails.
struct Network {
    namespaces: Vec<String>,
    /// The host's address on each link (where the cluster is reached from that namespace).
    host_ips: Vec<String>,
    wire: Option<Child>,
}

impl Network {
    fn create(tag: u32, rtts_ms: &[f64]) -> Network {
        let mut network = Network {
            namespaces: Vec::new(),
            host_ips: Vec::new(),
            wire: None,
        };
        // The test process's namespace by path: wire.py moves between namespaces.
        let host_ns = format!("/proc/{}/ns/net", std::process::id());
        let mut specs = Vec::new();
        let mut links = Vec::new();
        for (i, rtt) in rtts_ms.iter().enumerate() {
            let ns = format!("cnpy-t{tag}-{i}");
            let host_if = format!("cth{tag}{i}");
            let ns_if = format!("ctn{tag}{i}");
            let _ = ip(&["netns", "del", &ns]);
            must(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            let half = rtt / 2.0;
            specs.push(format!("{host_ns}:{host_if}:{ns}:{ns_if}:{half}:0:0"));
            links.push((ns, host_if, ns_if));
        }
        let wire = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/wire.py");
        let mut command = Command::new("python3");
        command
            .arg(&wire)
            .args(&specs)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: only an async-signal-safe prctl between fork and exec. Should this test
        // process die without dropping the network, wire.py (and with it the links) goes too.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(Into::into)
            });
        }
        let mut child = command.spawn().expect("python3 runs bench/wire.py");
        let stdout = child.stdout.take().unwrap();
        network.wire = Some(child);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "bench/wire.py did not start");
        for (i, (ns, host_if, ns_if)) in links.iter().enumerate() {
            let subnet = format!("10.{}.{}", 200 + tag % 50, i + 1);
            let (host_ip, ns_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
            must(&["addr", "add", &host_ip, "peer", &ns_ip, "dev", host_if]);
            must(&["link", "set", host_if, "up"]);
            must(&[
                "-n", ns, "addr", "add", &ns_ip, "peer", &host_ip, "dev", ns_if,
            ]);
            must(&["-n", ns, "link", "set", ns_if, "up"]);
            must(&["-n", ns, "link", "set", "lo", "up"]);
            network.host_ips.push(host_ip);
        }
        network
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The TUN devices (and their addresses) exist only while wire.py runs.
        if let Some(mut wire) = self.wire.take() {
            let _ = wire.kill();
            let _ = wire.wait();
        }
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// What this test needs; CI runs as root with all of it, so a lack fails the test.
fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "netns: network namespaces and TUN devices need root (run the suite as root, as CI does)"
    );
    for tool in ["ip", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "netns: {tool} is not installed (scripts/test installs it)"
        );
    }
    assert!(
        Path::new("/dev/net/tun").exists(),
        "netns: no /dev/net/tun for bench/wire.py's links"
    );
}

#[test]
fn probes_over_delayed_links_place_by_measured_latency() {
    require();
    let tag = std::process::id() % 1000;
    let network = Network::create(tag, &[1.0, 40.0]);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-netns-{tag}");
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(
        dir.path(),
        &root,
        "c0",
        &["--listen", "0.0.0.0:0", "--probe-interval", "0.2"],
    );
    let port = cluster.port();
    let mut nodes = Vec::new();
    for (i, ns) in network.namespaces.iter().enumerate() {
        let name = format!("n{i}");
        let canopy = support::CANOPY;
        let args = strings(&[
            "netns",
            "exec",
            ns,
            canopy,
            "node",
            "--cluster",
            &format!("https://{}:{port}", network.host_ips[i]),
            "--data",
            &dir.path().join(&name).display().to_string(),
            "--name",
            &name,
            "--probe-interval",
            "0.2",
        ]);
        let mut args = args;
        args.extend(support::node_join_args(&cluster, &name));
        nodes.push(Daemon::start_program("ip", &args, false));
    }
    // n0 is ~1 ms from the cluster and n1 ~40 ms: their coordinates end up ~40 ms apart.
    let estimate = eventually(SETTLE, "coordinates that tell the nodes apart", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        let coordinate = |name: &str| {
            let c = &nodes.iter().find(|n| n["name"] == name)?["coordinate"];
            Some((c["x"].as_f64()?, c["y"].as_f64()?, c["height"].as_f64()?))
        };
        let (a, b) = (coordinate("n0")?, coordinate("n1")?);
        let rtt = (a.0 - b.0).hypot(a.1 - b.1) + a.2 + b.2;
        (rtt > 25.0).then_some(rtt)
    });
    assert!(
        estimate < 80.0,
        "estimate {estimate:.1} ms for a ~41 ms path"
    );
    let wide = canopy_ok(&root.url, &["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("COORDINATE(ms)"), "{wide}");

    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: near}}
spec:
  services:
    - name: db
      runtime: process
      command: [/bin/sh, -c, 'sleep 3600; true', {marker}]
      resources: {{cpu: 10m, memory: 8Mi}}
      constraints:
        - direct: {{nodes: [n1]}}
"#
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    eventually(SETTLE, "the db on n1", || {
        canopy_json(&root.url, &["get", "instances"])
            .iter()
            .any(|i| i["state"] == "Running" && i["node"] == "n1")
            .then_some(())
    });
    let mut descriptor = std::fs::read_to_string(&file).unwrap();
    descriptor.push_str(&format!(
        r#"    - name: cache
      runtime: process
      command: [/bin/sh, -c, 'sleep 3600; true', {marker}]
      replicas: 2
      resources: {{cpu: 10m, memory: 8Mi}}
      constraints:
        - latency: {{maxMs: 15, toService: db}}
"#
    ));
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let caches = eventually(SETTLE, "both caches running", || {
        let caches: Vec<_> = canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .filter(|i| i["service"] == "cache" && i["state"] == "Running")
            .collect();
        (caches.len() == 2).then_some(caches)
    });
    for cache in caches {
        assert_eq!(
            cache["node"], "n1",
            "within 15 ms of the db only on its node: {cache}"
        );
    }
    drop(nodes);
}
