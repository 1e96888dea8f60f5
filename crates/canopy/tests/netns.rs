//! Network coordinates over a real, delayed network: two nodes in their own network
//! namespaces, joined to the host (where root and cluster run) by veth links with `tc netem`
//! delays of 1 ms and 40 ms. The nodes' probes place them far apart in latency space, and a
//! latency constraint to another service places by what was measured. Needs root and
//! iproute2; says SKIP and passes otherwise.

mod support;

use std::process::Command;
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

/// Two namespaces, each with a veth to the host and netem delay on its side; removed on drop.
struct Network {
    namespaces: Vec<String>,
    /// The host's address on each link (where the cluster is reached from that namespace).
    host_ips: Vec<String>,
}

impl Network {
    fn create(tag: u32, delays_ms: &[u32]) -> Network {
        let mut network = Network {
            namespaces: Vec::new(),
            host_ips: Vec::new(),
        };
        for (i, delay) in delays_ms.iter().enumerate() {
            let ns = format!("cnpy-t{tag}-{i}");
            let host_if = format!("cth{tag}{i}");
            let ns_if = format!("ctn{tag}{i}");
            let subnet = format!("10.{}.{}", 200 + tag % 50, i + 1);
            let _ = ip(&["netns", "del", &ns]);
            must(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            must(&[
                "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if, "netns", &ns,
            ]);
            must(&["addr", "add", &format!("{subnet}.1/24"), "dev", &host_if]);
            must(&["link", "set", &host_if, "up"]);
            let ns_address = format!("{subnet}.2/24");
            for args in [
                ["addr", "add", ns_address.as_str(), "dev", ns_if.as_str()].as_slice(),
                &["link", "set", &ns_if, "up"],
                &["link", "set", "lo", "up"],
            ] {
                let mut full = vec!["netns", "exec", ns.as_str(), "ip"];
                full.extend_from_slice(args);
                must(&full);
            }
            let delay = format!("{delay}ms");
            let netem = Command::new("ip")
                .args(["netns", "exec", &ns, "tc", "qdisc", "add", "dev", &ns_if])
                .args(["root", "netem", "delay", &delay])
                .status()
                .is_ok_and(|s| s.success());
            assert!(netem, "tc netem in {ns}");
            network.host_ips.push(format!("{subnet}.1"));
        }
        network
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the host's end.
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

fn skip_reason() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("network namespaces need root");
    }
    let tools = Command::new("sh")
        .args(["-c", "command -v ip && command -v tc"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !tools {
        return Some("iproute2 (ip, tc) is not installed");
    }
    // Some kernels (this project's CI VMs among them) have no sch_netem and no modules.
    let probe = format!("cnpyq{}", std::process::id() % 100_000);
    let peer = format!("{probe}p");
    let netem = ip(&["link", "add", &probe, "type", "veth", "peer", "name", &peer])
        && Command::new("tc")
            .args([
                "qdisc", "add", "dev", &probe, "root", "netem", "delay", "1ms",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
    let _ = ip(&["link", "del", &probe]);
    (!netem).then_some("this kernel has no tc netem (sch_netem) to delay links with")
}

#[test]
fn probes_over_delayed_links_place_by_measured_latency() {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP: {reason}");
        return;
    }
    let tag = std::process::id() % 1000;
    let network = Network::create(tag, &[1, 40]);
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
            &format!("http://{}:{port}", network.host_ips[i]),
            "--data",
            &dir.path().join(&name).display().to_string(),
            "--name",
            &name,
            "--probe-interval",
            "0.2",
        ]);
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
