//! A node that cannot start instances for a reason of its own refuses them upward, so its
//! cluster places them elsewhere; the workload's own failures stay the restart policy's.
//! Real `canopy` processes; the node's fault is real too: its agent runs out of file
//! descriptors (its RLIMIT_NOFILE lowered with `prlimit` to what it already holds).

use crate::support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{
    KillOnDrop, canopy_json, canopy_ok, environ_var, eventually, pids_with, start_cluster,
    start_node, start_root,
};

const SETTLE: Duration = Duration::from_secs(30);

fn ready(server: &str, node: &str) -> bool {
    canopy_json(server, &["get", "nodes"])
        .iter()
        .any(|n| n["name"] == node && n["state"] == "Ready")
}

fn reasons(instance: &Value) -> Vec<String> {
    instance["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .chain(instance["reason"].as_str().map(str::to_string))
        .collect()
}

/// The lowest descriptor number `pid` does not hold: with the limit there, every new
/// descriptor it asks for fails with EMFILE, while those it holds keep working.
fn lowest_free_fd(pid: u32) -> u64 {
    let held: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the agent's descriptors")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|n| !held.contains(n)).expect("a free number")
}

fn open_files_limit(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_string()
}

fn apply(server: &str, dir: &Path, marker: &str) {
    let yaml = format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: moving}}\nspec:\n  services:\n    - name: sleeper\n      runtime: process\n      command: [/bin/sh, -c, 'sleep 1000; : {marker}']\n      resources: {{cpu: 10m, memory: 8Mi}}\n      restartPolicy: always\n"
    );
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

/// The only node at first is out of file descriptors: it refuses the instance with EMFILE
/// instead of restarting it for ever, and stays Ready. A second node joins, and the
/// instance runs there; nothing of it runs on the first.
#[test]
fn a_node_out_of_file_descriptors_refuses_its_instance_and_another_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-faults-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let starved = start_node(&dir.path().join("starved"), &cluster, "starved", &[]);
    eventually(SETTLE, "node starved Ready", || {
        ready(&root.url, "starved").then_some(())
    });

    let pid = starved.pid();
    let limit = lowest_free_fd(pid);
    let out = Command::new("prlimit")
        .arg("--pid")
        .arg(pid.to_string())
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("prlimit (util-linux) runs");
    assert!(
        out.status.success(),
        "prlimit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let limits = open_files_limit(pid);
    assert!(
        limits.split_whitespace().nth(3) == Some(limit.to_string().as_str()),
        "the agent's limit was not lowered: {limits}"
    );

    apply(&root.url, dir.path(), &marker);
    let refused = eventually(SETTLE, "the starved node refusing with EMFILE", || {
        let instances = canopy_json(&root.url, &["get", "instances"]);
        let instance = instances.into_iter().next()?;
        reasons(&instance)
            .into_iter()
            .find(|r| r.contains("node starved cannot start instances: EMFILE"))
    });
    assert!(refused.contains("node starved"), "{refused}");
    assert!(
        pids_with(&marker).is_empty(),
        "the starved node ran the workload"
    );
    // It refused rather than looping on its instance: still Ready, not running it.
    assert!(ready(&root.url, "starved"), "the starved node is not Ready");

    let _healthy = start_node(&dir.path().join("healthy"), &cluster, "healthy", &[]);
    let running = eventually(SETTLE, "the instance running on the healthy node", || {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["state"] == "Running" && i["node"] == "healthy")
    });
    let pid = running["pid"].as_u64().expect("a pid");
    assert_eq!(
        environ_var(pid, "CANOPY_NODE").as_deref(),
        Some("healthy"),
        "{running}"
    );
    let workloads = pids_with(&marker);
    assert!(
        workloads
            .iter()
            .all(|p| environ_var(u64::from(*p), "CANOPY_NODE").as_deref() == Some("healthy")),
        "a workload of the starved node runs: {workloads:?}"
    );
    canopy_ok(&root.url, &["delete", "application", "moving"]);
    eventually(SETTLE, "the workload gone", || {
        pids_with(&marker).is_empty().then_some(())
    });
}
