//! A cluster that refused an instance is asked again only after the root's refusal cooldown
//! (5 s): end to end, with real `canopy` processes.

use crate::support;

use serde_json::Value;
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, holds_for, start_cluster, start_root,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SETTLE: Duration = Duration::from_secs(30);
/// `REFUSAL_COOLDOWN` in crates/root/src/federation/schedule.rs.
const COOLDOWN: Duration = Duration::from_secs(5);

fn node(dir: &std::path::Path, cluster: &Daemon, name: &str, cpu: &str, memory: &str) -> Daemon {
    support::start_node(
        &dir.join(name),
        cluster,
        name,
        &["--cpu", cpu, "--memory", memory],
    )
}

fn instances(server: &str) -> Vec<Value> {
    canopy_json(server, &["get", "instances", "-A"])
}

fn at(event: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(event["at"].as_str().expect("an event time"), &Rfc3339)
        .expect("an RFC 3339 time")
}

/// A transition back to Pending because cluster c0 refused the instance.
fn is_refusal(event: &Value) -> bool {
    event["state"] == "Pending"
        && event["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("cluster c0:"))
}

/// The cluster's two nodes are each too small in one dimension (one has the CPU, the other
/// the memory), so its summary (the largest free amount of each resource over its nodes)
/// says an instance of 1 CPU and 1 GiB fits, but no node takes it: the cluster refuses. A
/// node that fits then joins at once; the root asks the cluster again only once the refusal
/// is 5 s old, and then the instance is placed there.
#[test]
fn a_refusing_cluster_is_asked_again_only_after_the_cooldown() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-refusal-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _cpu = node(dir.path(), &cluster, "cpu", "2000", "256");
    let _memory = node(dir.path(), &cluster, "memory", "200", "4096");
    eventually(SETTLE, "both nodes ready at the root", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        (nodes.len() == 2 && nodes.iter().all(|n| n["state"] == "Ready")).then_some(())
    });
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: big}}
spec:
  services:
    - name: big
      runtime: process
      command: [/bin/sh, -c, "exec sleep 600", {marker}]
      resources: {{cpu: 1000m, memory: 1024Mi}}
"#
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);

    let refused = eventually(SETTLE, "the cluster's refusal at the root", || {
        // The next pass replaces the reason with the root's own ("no cluster fits ... (the
        // refusal)"): the refusal is found in the transitions.
        instances(&root.url).into_iter().find(|i| {
            i["state"] == "Pending"
                && i["events"]
                    .as_array()
                    .is_some_and(|events| events.iter().any(is_refusal))
        })
    });
    let id = refused["id"].clone();
    // A node that fits joins right away, well within the cooldown.
    let _fits = node(dir.path(), &cluster, "fits", "4000", "8192");
    eventually(SETTLE, "the fitting node ready at the root", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        nodes
            .iter()
            .any(|n| n["name"] == "fits" && n["state"] == "Ready")
            .then_some(())
    });
    let refused_at = {
        let events = refused["events"].as_array().expect("events");
        at(events
            .iter()
            .rev()
            .find(|e| is_refusal(e))
            .expect("the refusal's event"))
    };
    // Not asked again while the refusal is fresh, though the cluster could take it now.
    let fresh = COOLDOWN - Duration::from_millis(1500);
    let until = refused_at + fresh;
    if OffsetDateTime::now_utc() < until {
        let remaining = (until - OffsetDateTime::now_utc()).unsigned_abs();
        holds_for(
            remaining,
            "the instance pending during the cooldown",
            || {
                instances(&root.url)
                    .iter()
                    .find(|i| i["id"] == id)
                    .is_some_and(|i| i["state"] == "Pending" && i["cluster"].is_null())
            },
        );
    }

    let placed = eventually(SETTLE, "the instance placed on node fits", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["id"] == id && i["node"] == "fits")
    });
    let events = placed["events"].as_array().expect("events");
    let scheduled = events
        .iter()
        .position(|e| e["state"] == "ClusterScheduled" && at(e) > refused_at)
        .expect("a ClusterScheduled event after the refusal");
    // The latest refusal before it: the cluster may have refused again had the node been slow.
    let last_refusal = events[..scheduled]
        .iter()
        .rev()
        .find(|e| is_refusal(e))
        .expect("a refusal before the placement");
    let waited = (at(&events[scheduled]) - at(last_refusal)).unsigned_abs();
    println!("asked again {waited:?} after the refusal");
    assert!(
        waited >= COOLDOWN,
        "asked again {waited:?} after the refusal, before the {COOLDOWN:?} cooldown: {placed:#}"
    );
    assert!(
        waited <= COOLDOWN + Duration::from_secs(5),
        "asked again only {waited:?} after the refusal: {placed:#}"
    );
    assert_eq!(placed["cluster"], "c0");
}
