//! Scheduling end to end, with real `canopy` processes: soft constraints converging when a
//! better node appears, and placement over hollow nodes (`canopy sim`) by network coordinates.

use crate::support;

use serde_json::Value;
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings,
};

const SETTLE: Duration = Duration::from_secs(30);
const MUNICH: &str = "48.14,11.58";
const BERLIN: &str = "52.52,13.40";

fn node(dir: &std::path::Path, cluster: &Daemon, name: &str, location: &str) -> Daemon {
    let extra = ["--cpu", "1000", "--memory", "1024", "--location", location];
    support::start_node(&dir.join(name), cluster, name, &extra)
}

fn apply(server: &str, dir: &std::path::Path, yaml: &str) {
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

fn instances(server: &str) -> Vec<Value> {
    canopy_json(server, &["get", "instances", "-A"])
}

/// Seconds since boot written by a workload (`/proc/uptime`, 10 ms resolution).
fn read_uptime(path: std::path::PathBuf) -> Option<f64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// When process `pid` was forked, in seconds since boot (the kernel's record: the moment its
/// node started it, not when its shell got around to running anything).
fn forked_at(pid: u64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a live process");
    let after_comm = stat.rsplit(')').next().unwrap();
    // Field 22 (starttime); after the comm, field 3 (state) is the first.
    let ticks: f64 = after_comm
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let per_second: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0);
    ticks / per_second
}

/// A preference for Berlin (rigidness 0.5, convergence 1 s) is first not met: only a Munich
/// node exists, and the instance runs there. When a Berlin node joins, the instance moves
/// to it, and the Munich copy is stopped only after the Berlin copy started.
#[test]
fn a_soft_preference_converges_when_a_better_node_appears() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-converge-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _munich = node(dir.path(), &cluster, "munich", MUNICH);
    eventually(SETTLE, "the Munich node at the root", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        (nodes.len() == 1 && nodes[0]["state"] == "Ready").then_some(())
    });
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    // Each copy notes when it was asked to stop (on the boot clock, with the shell's builtin
    // `read`: no process to fork first), by its node's name.
    let script = format!(
        "trap 'read up idle < /proc/uptime; echo $up > {s}/$CANOPY_NODE.stop; exit 0' TERM; while :; do sleep 0.05; done",
        s = stamps.display()
    );
    apply(
        &root.url,
        dir.path(),
        &format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: prefers}}
spec:
  services:
    - name: berliner
      runtime: process
      command: [/bin/sh, -c, "{script}", {marker}]
      # All of a node: its own reservation must not keep it from being judged where it is.
      resources: {{cpu: 1000m, memory: 16Mi}}
      constraints:
        - geo: {{location: {{lat: 52.52, lon: 13.40}}, radiusKm: 50}}
          rigidness: 0.5
          convergenceTime: 1
"#
        ),
    );
    let first = eventually(SETTLE, "the instance running in Munich", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["state"] == "Running" && i["node"] == "munich")
    });
    // Its placement says the preference was not met (the Running reason is the node's
    // "started", which every instance has): the transitions keep the placement's reason.
    let unmet = "placed on node munich; preference not met: geo";
    assert!(
        first["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["reason"] == unmet)),
        "no transition says {unmet:?}: {first}"
    );
    let _berlin = node(dir.path(), &cluster, "berlin", BERLIN);
    let moved = eventually(SETTLE, "the instance moved to Berlin", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["state"] == "Running" && i["node"] == "berlin")
    });
    assert_eq!(moved["id"], first["id"], "the same instance moved");
    let started = forked_at(moved["pid"].as_u64().unwrap());
    let stopped = eventually(SETTLE, "the Munich copy stopped", || {
        read_uptime(stamps.join("munich.stop"))
    });
    assert!(
        stopped >= started,
        "the old copy was asked to stop at {stopped} s, before the new one started at {started} s: never fewer replicas running"
    );
    assert_eq!(instances(&root.url).len(), 1, "one instance, not two");
}

/// `canopy sim` joins hollow nodes with varied shapes and network coordinates; the root
/// shows them, deploys across them, and a latency constraint to another service's instances
/// places by coordinates: every instance lands within the bound, and an impossible bound
/// stays Pending with the reason.
#[test]
fn hollow_nodes_take_a_deployment_and_latency_places_by_coordinates() {
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "sim", &[]);
    let (token, ca_hash) = support::node_token_for(&cluster, None, Some(40));
    let _sim = Daemon::start(
        &strings(&[
            "sim",
            "--cluster",
            &cluster.url,
            "--nodes",
            "40",
            "--seed",
            "7",
            "--data",
            &dir.path().join("hollow").display().to_string(),
            "--token",
            &token,
            "--ca-hash",
            &ca_hash,
        ]),
        false,
    );
    let nodes = eventually(SETTLE, "40 ready hollow nodes at the root", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        (nodes.iter().filter(|n| n["state"] == "Ready").count() == 40).then_some(nodes)
    });
    assert!(
        nodes.iter().all(|n| n["coordinate"]["x"].is_f64()),
        "every node reports a coordinate"
    );
    let wide = canopy_ok(&root.url, &["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("COORDINATE(ms)"), "{wide}");
    let coordinate = |name: &str| {
        let n = nodes.iter().find(|n| n["name"] == name).unwrap();
        let c = &n["coordinate"];
        (
            c["x"].as_f64().unwrap(),
            c["y"].as_f64().unwrap(),
            c["height"].as_f64().unwrap(),
        )
    };
    let anchor = coordinate("hollow-00000");
    // The anchor first: a latency bound to a service with no instance yet holds vacuously.
    let db = r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {name: load}
spec:
  services:
    - name: db
      runtime: container
      image: registry.invalid/db:1
      resources: {cpu: 100m, memory: 64Mi}
      constraints:
        - direct: {nodes: [hollow-00000]}
"#;
    apply(&root.url, dir.path(), db);
    eventually(SETTLE, "the db running on its node", || {
        instances(&root.url)
            .iter()
            .any(|i| i["state"] == "Running" && i["node"] == "hollow-00000")
            .then_some(())
    });
    apply(
        &root.url,
        dir.path(),
        &format!(
            r#"{db}    - name: api
      runtime: container
      image: registry.invalid/api:1
      replicas: 60
      objective: spread
      resources: {{cpu: 100m, memory: 64Mi}}
    - name: cache
      runtime: container
      image: registry.invalid/cache:1
      replicas: 3
      resources: {{cpu: 100m, memory: 64Mi}}
      constraints:
        - latency: {{maxMs: 25, toService: db}}
    - name: impossible
      runtime: container
      image: registry.invalid/x:1
      resources: {{cpu: 100m, memory: 64Mi}}
      constraints:
        - latency: {{maxMs: 0.01, toService: db}}
"#
        ),
    );
    let all = eventually(SETTLE, "64 running and 1 pending", || {
        let all = instances(&root.url);
        let running = all.iter().filter(|i| i["state"] == "Running").count();
        let pending = all.iter().filter(|i| i["state"] == "Pending").count();
        (running == 64 && pending == 1).then_some(all)
    });
    let api_nodes: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|i| i["service"] == "api")
        .filter_map(|i| i["node"].as_str())
        .collect();
    assert!(
        api_nodes.len() >= 20,
        "spread over many nodes: {api_nodes:?}"
    );
    for cache in all.iter().filter(|i| i["service"] == "cache") {
        let (x, y, h) = coordinate(cache["node"].as_str().unwrap());
        let rtt = (x - anchor.0).hypot(y - anchor.1) + h + anchor.2;
        assert!(rtt <= 25.0, "{cache} is {rtt:.1} ms from the db");
    }
    let impossible = all.iter().find(|i| i["state"] == "Pending").unwrap();
    let reason = impossible["reason"].as_str().unwrap();
    assert!(reason.contains("latency"), "{reason}");
}
