//! The operator's verbs end to end, against real tiers on loopback (process runtime):
//! `get cluster|node NAME`, `cordon`, `uncordon`, `drain`, `delete instance`, `label` and
//! `top`.

use crate::support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, start_cluster, start_root,
};

const SETTLE: Duration = Duration::from_secs(30);

fn node(dir: &Path, cluster: &Daemon, name: &str) -> Daemon {
    let extra = ["--cpu", "2000", "--memory", "1024", "--probe-interval", "0"];
    support::start_node(&dir.join(name), cluster, name, &extra)
}

fn apply(server: &str, dir: &Path, yaml: &str) {
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

/// A process service of `replicas` that sleeps, its command line carrying `marker`.
fn sleeper(marker: &str, replicas: u32, constraints: &str) -> String {
    format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: ops}}
spec:
  services:
    - name: sleeper
      runtime: process
      command: [/bin/sh, -c, "while :; do sleep 0.2; done", {marker}]
      replicas: {replicas}
      resources: {{cpu: 100m, memory: 16Mi}}
      restartPolicy: always
{constraints}"#
    )
}

fn instances(server: &str) -> Vec<Value> {
    canopy_json(server, &["get", "instances"])
}

/// The running instances, when there are exactly `count` of them and nothing else.
fn running(server: &str, count: usize) -> Option<Vec<Value>> {
    let all = instances(server);
    (all.len() == count && all.iter().all(|i| i["state"] == "Running")).then_some(all)
}

fn nodes_ready(server: &str, count: usize) {
    eventually(SETTLE, "the nodes at the root", || {
        let nodes = canopy_json(server, &["get", "nodes"]);
        (nodes.len() == count && nodes.iter().all(|n| n["state"] == "Ready")).then_some(())
    });
}

fn on_nodes(instances: &[Value]) -> Vec<String> {
    let mut nodes: Vec<String> = instances
        .iter()
        .map(|i| i["node"].as_str().unwrap_or_default().to_string())
        .collect();
    nodes.sort();
    nodes
}

fn ids(instances: &[Value]) -> Vec<String> {
    instances
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

/// A cordoned node takes nothing new and says so in `get nodes`; deleting an instance
/// replaces it; draining a node moves what it ran to the other one, and `uncordon` lets
/// instances back.
#[test]
fn cordon_delete_and_drain_move_instances_as_kubectl_would() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-ops-drain-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _n1 = node(dir.path(), &cluster, "n1");
    let _n2 = node(dir.path(), &cluster, "n2");
    nodes_ready(&root.url, 2);

    // Objects by name: a cluster, a node as CLUSTER/NODE or by its unique name.
    let cluster_object = canopy_json(&root.url, &["get", "cluster", "c0"]);
    assert_eq!(cluster_object[0]["name"], "c0");
    assert_eq!(
        canopy_json(&root.url, &["get", "node", "c0/n1"])[0]["name"],
        "n1"
    );
    assert_eq!(
        canopy_json(&root.url, &["get", "node", "n2"])[0]["cluster"],
        "c0"
    );
    let missing = canopy(&root.url, &["get", "node", "c0/nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    let said = canopy_ok(&root.url, &["cordon", "n2"]);
    assert!(said.contains("node/c0/n2 cordoned"), "{said}");
    let table = canopy_ok(&root.url, &["get", "nodes"]);
    let n2_row = table
        .lines()
        .find(|l| l.starts_with("n2 "))
        .unwrap_or_default();
    assert!(n2_row.contains("Ready,SchedulingDisabled"), "{table}");
    let n1_row = table
        .lines()
        .find(|l| l.starts_with("n1 "))
        .unwrap_or_default();
    assert!(!n1_row.contains("SchedulingDisabled"), "{table}");

    apply(&root.url, dir.path(), &sleeper(&marker, 2, ""));
    let first = eventually(SETTLE, "two instances running", || running(&root.url, 2));
    assert_eq!(
        on_nodes(&first),
        ["n1", "n1"],
        "nothing on the cordoned node"
    );

    // Deleting an instance stops it; its service replaces it.
    let deleted = first[0]["id"].as_str().unwrap().to_string();
    let said = canopy_ok(&root.url, &["delete", "instance", &deleted]);
    assert!(
        said.contains(&format!("instance/{deleted} deleted")),
        "{said}"
    );
    let replaced = eventually(SETTLE, "the deleted instance replaced", || {
        running(&root.url, 2).filter(|all| !ids(all).contains(&deleted))
    });
    assert!(
        ids(&replaced).contains(&ids(&first)[1]),
        "the other one stays"
    );
    let unknown = canopy(&root.url, &["delete", "instance", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));

    // Drain n1 (with n2 schedulable again): both move to n2.
    canopy_ok(&root.url, &["uncordon", "c0/n2"]);
    let said = canopy_ok(&root.url, &["drain", "n1"]);
    assert!(said.contains("node/c0/n1 drained"), "{said}");
    assert_eq!(said.matches(" evicted").count(), 2, "{said}");
    let drained = eventually(SETTLE, "both instances running on n2", || {
        running(&root.url, 2).filter(|all| on_nodes(all) == ["n2", "n2"])
    });
    for id in ids(&replaced) {
        assert!(!ids(&drained).contains(&id), "{id} was replaced, not kept");
    }
    let n1 = canopy_json(&root.url, &["get", "node", "n1"]);
    assert_eq!(
        n1[0]["unschedulable"], true,
        "a drained node stays cordoned"
    );

    let described = canopy_ok(&root.url, &["describe", "instance", &ids(&drained)[0]]);
    assert!(described.contains("Runtime:     process"), "{described}");
}

/// Operator labels reach the selectors (cluster labels at the root's placement, node labels
/// at the cluster's), can be removed, and a cluster that was away when a node was cordoned
/// hears of it when its link comes back.
#[test]
fn labels_reach_the_selectors_and_settings_survive_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-ops-labels-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let mut cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _n1 = node(dir.path(), &cluster, "n1");
    nodes_ready(&root.url, 1);
    let selectors = r#"      constraints:
        - clusterSelector:
            - {key: region, operator: In, values: [eu]}
        - nodeSelector:
            - {key: tier, operator: In, values: [gold]}
"#;
    apply(&root.url, dir.path(), &sleeper(&marker, 1, selectors));
    eventually(
        SETTLE,
        "the instance pending for the cluster selector",
        || {
            let all = instances(&root.url);
            all.iter()
                .any(|i| {
                    i["state"] == "Pending"
                        && i["reason"]
                            .as_str()
                            .unwrap_or("")
                            .contains("cluster selector")
                })
                .then_some(())
        },
    );
    let said = canopy_ok(&root.url, &["label", "cluster", "c0", "region=eu"]);
    assert!(said.contains("cluster/c0 labeled"), "{said}");
    let c0 = canopy_json(&root.url, &["get", "cluster", "c0"]);
    assert_eq!(c0[0]["labels"]["region"], "eu");
    // The root now picks c0, whose only node lacks the label: the cluster refuses it.
    eventually(SETTLE, "the instance refused for the node selector", || {
        instances(&root.url)
            .iter()
            .any(|i| i["reason"].as_str().unwrap_or("").contains("node selector"))
            .then_some(())
    });
    canopy_ok(&root.url, &["label", "node", "n1", "tier=gold", "zone=a"]);
    let placed = eventually(SETTLE, "the instance running on n1", || {
        running(&root.url, 1)
    });
    assert_eq!(on_nodes(&placed), ["n1"]);
    let n1 = canopy_json(&root.url, &["get", "node", "c0/n1"]);
    assert_eq!(n1[0]["labels"]["tier"], "gold");
    canopy_ok(&root.url, &["label", "node", "n1", "zone-"]);
    let n1 = canopy_json(&root.url, &["get", "node", "c0/n1"]);
    assert!(n1[0]["labels"].get("zone").is_none(), "{}", n1[0]);
    let bad = canopy(&root.url, &["label", "node", "n1", "no spaces=x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("label key"));

    // Cordon n1 while its cluster is away: once it is back, a new replica is not placed there.
    cluster.kill();
    canopy_ok(&root.url, &["cordon", "c0/n1"]);
    cluster.restart();
    nodes_ready(&root.url, 1);
    canopy_ok(&root.url, &["scale", "ops/sleeper", "--replicas", "2"]);
    eventually(SETTLE, "the new replica", || {
        (instances(&root.url).len() == 2).then_some(())
    });
    // n1 has room for it, but is cordoned: it waits (the cluster heard of the cordon on
    // its new link, having missed it while it was away).
    support::holds_for(
        Duration::from_secs(6),
        "only the old replica running",
        || {
            let all = instances(&root.url);
            all.iter().filter(|i| i["state"] == "Running").count() == 1
                && all.iter().filter(|i| i["node"] == "n1").count() == 1
        },
    );
}

/// `canopy top` shows what nodes and instances use, from the nodes' samples.
#[test]
fn top_shows_the_use_of_nodes_and_instances() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-ops-top-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _n1 = node(dir.path(), &cluster, "n1");
    nodes_ready(&root.url, 1);
    // A busy loop uses a measurable share of a core.
    let busy = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: busy}}
spec:
  services:
    - name: spin
      runtime: process
      command: [/bin/sh, -c, "while :; do :; done", {marker}]
      resources: {{cpu: 1000m, memory: 16Mi}}
"#
    );
    apply(&root.url, dir.path(), &busy);
    let id = eventually(SETTLE, "the busy instance running", || {
        running(&root.url, 1)
    })[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Two samples, 10 s apart, make a rate; then the cluster reports it.
    let usage = eventually(
        Duration::from_secs(60),
        "the instance's CPU measured",
        || {
            let instance = instances(&root.url).pop()?;
            let usage = instance.get("usage")?.clone();
            (usage["cpuMillis"].as_u64()? > 100).then_some(usage)
        },
    );
    assert!(usage["memoryBytes"].as_u64().unwrap() > 0, "{usage}");
    let node = canopy_json(&root.url, &["get", "node", "n1"]);
    assert!(
        node[0]["usage"]["cpuMillis"].as_u64().unwrap() > 100,
        "{}",
        node[0]
    );
    let nodes = canopy_ok(&root.url, &["top", "nodes"]);
    let row = nodes
        .lines()
        .find(|l| l.starts_with("n1 "))
        .unwrap_or_default();
    assert!(row.contains('m') && row.contains('%'), "{nodes}");
    let table = canopy_ok(&root.url, &["top", "instances"]);
    assert!(table.lines().any(|l| l.starts_with(&id)), "{table}");
}
