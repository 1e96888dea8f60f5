//! The hierarchy end to end: a real `canopy root`, two `canopy cluster` and four `canopy node`
//! processes on loopback, running real processes; tiers are SIGKILLed and restarted.

use crate::support;

use rustix::process::Signal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::{
    DEADLINE, Daemon, KillOnDrop, canopy_json, canopy_ok, cmdline, environ_var, eventually,
    holds_for, pids_with, runs_instance, strings,
};

/// How soon after its node or cluster dies an instance must run elsewhere: the deadline
/// (detection), then placement, the start of a process and the status reaching the root,
/// which take well under a second, plus a one-second stall of a loaded 2-core machine. A
/// detection that took twice the deadline would miss it.
const REPLACED_WITHIN: Duration = Duration::from_millis(DEADLINE.as_millis() as u64 + 2500);
/// How long placement, start-up and status propagation may take on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(20);

/// Cluster c0 and its nodes are in Munich, c1 and its nodes in Berlin.
const SITES: [&str; 2] = ["48.14,11.58", "52.52,13.40"];

struct Testbed {
    dir: tempfile::TempDir,
    marker: String,
    root: Daemon,
    clusters: Vec<Daemon>,
    nodes: Vec<Daemon>,
    _cleanup: KillOnDrop,
}

impl Testbed {
    /// Root, clusters `c0` and `c1`, and nodes `c0-n0`, `c0-n1`, `c1-n0`, `c1-n1`, each
    /// offering `cpu` millicores.
    fn start(cpu: u64) -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        // Unique per testbed, also when tests share a process.
        let marker = format!(
            "canopy-e2e-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let data = |name: &str| dir.path().join(name).display().to_string();
        let root = support::start_root(dir.path());
        let mut clusters = Vec::new();
        let mut nodes = Vec::new();
        for (c, site) in SITES.iter().enumerate() {
            let name = format!("c{c}");
            let cluster = support::start_cluster(dir.path(), &root, &name, &["--location", site]);
            for n in 0..2 {
                let node = format!("{name}-n{n}");
                let args = strings(&[
                    "node",
                    "--cluster",
                    &cluster.url,
                    "--data",
                    &data(&node),
                    "--name",
                    &node,
                    "--cpu",
                    &cpu.to_string(),
                    "--memory",
                    "2048",
                    "--location",
                    site,
                ]);
                let mut args = args;
                args.extend(support::node_join_args(&cluster, &node));
                nodes.push(Daemon::start(&args, false));
            }
            clusters.push(cluster);
        }
        let testbed = Testbed {
            _cleanup: KillOnDrop(marker.clone()),
            dir,
            marker,
            root,
            clusters,
            nodes,
        };
        eventually(SETTLE, "4 ready nodes at the root", || {
            let nodes = testbed.get("nodes");
            (nodes.iter().filter(|n| n["state"] == "Ready").count() == 4).then_some(())
        });
        testbed
    }

    fn server(&self) -> &str {
        &self.root.url
    }

    fn get(&self, kind: &str) -> Vec<Value> {
        canopy_json(self.server(), &["get", kind, "-A"])
    }

    /// An application whose services run a shell (marked by its `$0`) that sleeps.
    fn apply(&self, app: &str, services: &[(&str, u32, &str)]) {
        self.apply_constrained(app, services, "");
    }

    /// Like `apply`, with `constraints` (YAML list items at service indentation) on every service.
    fn apply_constrained(&self, app: &str, services: &[(&str, u32, &str)], constraints: &str) {
        self.apply_script(app, services, constraints, "sleep 3600; true");
    }

    /// Like `apply_constrained`, the shell running `script`.
    fn apply_script(
        &self,
        app: &str,
        services: &[(&str, u32, &str)],
        constraints: &str,
        script: &str,
    ) {
        let mut yaml = format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: {app}}}\nspec:\n  services:\n"
        );
        for (name, replicas, cpu) in services {
            yaml.push_str(&format!(
                "  - name: {name}\n    runtime: process\n    command: [/bin/sh, -c, '{script}', {marker}]\n    replicas: {replicas}\n    resources: {{cpu: {cpu}, memory: 16Mi}}\n",
                marker = self.marker
            ));
            if !constraints.is_empty() {
                yaml.push_str(&format!("    constraints:\n{constraints}"));
            }
        }
        let file = self.dir.path().join(format!("{app}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        canopy_ok(self.server(), &["apply", "-f", file.to_str().unwrap()]);
    }

    /// Waits until `count` instances run, each as a live process that really is that
    /// instance, and returns them by id.
    fn running(&self, count: usize) -> BTreeMap<String, Value> {
        eventually(SETTLE, &format!("{count} running instances"), || {
            let instances = self.get("instances");
            let running: BTreeMap<String, Value> = instances
                .iter()
                .filter(|i| i["state"] == "Running")
                .filter(|i| {
                    i["pid"]
                        .as_u64()
                        .is_some_and(|pid| runs_instance(pid, i["id"].as_str().unwrap()))
                })
                .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
                .collect();
            (instances.len() == count && running.len() == count).then_some(running)
        })
    }

    /// Live workload processes of this testbed.
    fn workload_pids(&self) -> BTreeSet<u32> {
        pids_with(&self.marker).into_iter().collect()
    }

    fn node(&self, name: &str) -> usize {
        ["c0-n0", "c0-n1", "c1-n0", "c1-n1"]
            .iter()
            .position(|n| *n == name)
            .unwrap()
    }

    /// SIGKILLs a node's agent and every workload it ran: the machine is gone.
    fn kill_machine(&mut self, node: &str, instances: &BTreeMap<String, Value>) {
        let index = self.node(node);
        self.nodes[index].kill();
        for instance in instances.values().filter(|i| i["node"] == node) {
            support::kill_group(instance["pid"].as_u64().unwrap() as u32);
        }
    }
}

fn pids(instances: &BTreeMap<String, Value>) -> BTreeMap<String, u64> {
    instances
        .iter()
        .map(|(id, i)| (id.clone(), i["pid"].as_u64().unwrap()))
        .collect()
}

/// One live instance per (service, replica), and one live process per instance.
fn assert_no_duplicates(testbed: &Testbed, expected: usize) {
    let instances = testbed.get("instances");
    let replicas: BTreeSet<(String, u64)> = instances
        .iter()
        .map(|i| {
            (
                i["service"].as_str().unwrap().to_string(),
                i["replica"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        replicas.len(),
        instances.len(),
        "two instances of one replica: {instances:#?}"
    );
    assert_eq!(instances.len(), expected);
    eventually(
        DEADLINE + Duration::from_secs(5),
        "exactly one process per instance",
        || (testbed.workload_pids().len() == expected).then_some(()),
    );
    // A doubled copy would come from a late assignment or a missed stop: give it the time.
    holds_for(DEADLINE, "exactly one process per instance", || {
        testbed.workload_pids().len() == expected
    });
}

#[test]
fn two_services_of_three_replicas_run_as_real_processes_across_the_hierarchy() {
    let testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 3, "100m"), ("api", 3, "100m")]);
    let running = testbed.running(6);
    let services: BTreeSet<&str> = running
        .values()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, BTreeSet::from(["api", "web"]));
    assert!(
        running
            .values()
            .all(|i| i["cluster"].is_string() && i["node"].is_string())
    );
    assert_eq!(testbed.workload_pids().len(), 6);
    let clusters = testbed.get("clusters");
    assert_eq!(clusters.len(), 2);
    assert!(
        clusters
            .iter()
            .all(|c| c["state"] == "Ready" && c["nodes"] == 2)
    );

    canopy_ok(testbed.server(), &["delete", "application", "shop"]);
    eventually(SETTLE, "every instance stopped", || {
        (testbed.get("instances").is_empty() && testbed.workload_pids().is_empty()).then_some(())
    });
}

#[test]
fn a_changed_command_rolls_out_new_processes_and_stops_the_old() {
    let testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 2, "100m")]);
    let before = pids(&testbed.running(2));
    for pid in before.values() {
        let old = cmdline(*pid).unwrap_or_default();
        assert!(old.contains("sleep 3600; true"), "{old}");
    }
    // Same service and resources, another command: a new template, so new instances and
    // processes, which run the new command.
    testbed.apply_script("shop", &[("web", 2, "100m")], "", "sleep 3599; true");
    let after = eventually(SETTLE, "2 new instances running, the old ones gone", || {
        let instances = testbed.get("instances");
        let fresh = instances.len() == 2
            && instances
                .iter()
                .all(|i| !before.contains_key(i["id"].as_str().unwrap()));
        fresh.then(|| testbed.running(2))
    });
    assert!(
        pids(&after)
            .values()
            .all(|pid| !before.values().any(|old| old == pid))
    );
    for pid in pids(&after).values() {
        let new = cmdline(*pid).unwrap_or_default();
        assert!(
            new.contains("sleep 3599; true"),
            "a new instance runs {new:?}"
        );
    }
    for (id, pid) in &before {
        assert!(!runs_instance(*pid, id), "old process of {id} still runs");
    }
    assert_no_duplicates(&testbed, 2);
}

#[test]
fn a_lost_node_is_replaced_within_the_deadline_and_its_return_doubles_nothing() {
    let mut testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 4, "100m")]);
    let before = testbed.running(4);
    let victim = before.values().next().unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    let stranded: BTreeSet<String> = before
        .iter()
        .filter(|(_, i)| i["node"] == victim.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    testbed.kill_machine(&victim, &before);

    let after = eventually(REPLACED_WITHIN, "replacements running elsewhere", || {
        let instances = testbed.get("instances");
        let moved = stranded.iter().all(|id| {
            instances.iter().any(|i| {
                i["id"] == id.as_str()
                    && i["state"] == "Running"
                    && i["node"] != victim.as_str()
                    && i["pid"].as_u64().is_some_and(|pid| runs_instance(pid, id))
            })
        });
        moved.then_some(instances)
    });
    assert_eq!(after.len(), 4);
    let lost = canopy_ok(
        testbed.server(),
        &["describe", "instance", stranded.iter().next().unwrap()],
    );
    assert!(
        lost.contains("Lost") && lost.contains(&format!("node {victim} unreachable")),
        "{lost}"
    );

    // The machine comes back (empty, as after a reboot): nothing is doubled.
    let index = testbed.node(&victim);
    testbed.nodes[index].restart();
    eventually(SETTLE, "the node ready again", || {
        testbed
            .get("nodes")
            .iter()
            .any(|n| n["name"] == victim.as_str() && n["state"] == "Ready")
            .then_some(())
    });
    testbed.running(4);
    assert_no_duplicates(&testbed, 4);
}

#[test]
fn a_lost_cluster_is_replaced_in_the_other_and_its_stale_copies_are_stopped_on_return() {
    let mut testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 4, "100m")]);
    let before = testbed.running(4);
    let victim = before.values().next().unwrap()["cluster"]
        .as_str()
        .unwrap()
        .to_string();
    let index: usize = victim.trim_start_matches('c').parse().unwrap();
    let on_victim = before
        .values()
        .filter(|i| i["cluster"] == victim.as_str())
        .count();
    testbed.clusters[index].kill();

    eventually(
        REPLACED_WITHIN,
        "all instances running in the other cluster",
        || {
            let instances = testbed.get("instances");
            let elsewhere = instances
                .iter()
                .filter(|i| i["state"] == "Running" && i["cluster"] != victim.as_str())
                .count();
            (elsewhere == 4).then_some(())
        },
    );
    // The nodes of the lost cluster kept their copies running meanwhile (autonomy).
    assert_eq!(testbed.workload_pids().len(), 4 + on_victim);
    // Without its cluster a node still restarts what dies, by its restartPolicy (always).
    let (orphan, orphan_pid) = before
        .iter()
        .find(|(_, i)| i["cluster"] == victim.as_str())
        .map(|(id, i)| (id.clone(), i["pid"].as_u64().unwrap()))
        .unwrap();
    let orphan_node = before[&orphan]["node"].as_str().unwrap().to_string();
    support::kill_group(orphan_pid as u32);
    eventually(SETTLE, "the orphaned copy restarted by its node", || {
        live_copies(&testbed)
            .get(&orphan)?
            .iter()
            .any(|(pid, node)| *pid != orphan_pid && *node == orphan_node)
            .then_some(())
    });
    assert_eq!(testbed.workload_pids().len(), 4 + on_victim);

    testbed.clusters[index].restart();
    eventually(SETTLE, "the stale copies stopped", || {
        (testbed.workload_pids().len() == 4).then_some(())
    });
    assert_no_duplicates(&testbed, 4);
}

#[test]
fn a_killed_root_stops_nothing_and_comes_back_with_its_state() {
    let mut testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 3, "100m")]);
    let before = pids(&testbed.running(3));
    testbed.root.kill();
    // Without the root, the clusters and nodes go on: every process is still the same one,
    // also after the clusters' deadline for hearing from the root has passed twice.
    holds_for(
        2 * DEADLINE,
        "every instance running without the root",
        || before.iter().all(|(id, pid)| runs_instance(*pid, id)),
    );
    testbed.root.restart();
    let after = pids(&testbed.running(3));
    assert_eq!(
        before, after,
        "same instances, same processes: nothing was restarted"
    );
    assert_eq!(testbed.get("applications").len(), 1);
}

#[test]
fn a_killed_node_agent_readopts_its_running_instances() {
    let mut testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 4, "100m")]);
    let before = testbed.running(4);
    let node = before.values().next().unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    let index = testbed.node(&node);
    let restarts: BTreeMap<String, u64> = before
        .iter()
        .map(|(id, i)| (id.clone(), i["restarts"].as_u64().unwrap()))
        .collect();
    let on_node: BTreeSet<String> = before
        .iter()
        .filter(|(_, i)| i["node"] == node.as_str())
        .map(|(id, _)| id.clone())
        .collect();
    // Killed and restarted well within the deadline: the cluster never sees it as lost.
    let killed = std::time::Instant::now();
    testbed.nodes[index].restart();
    let restarted_in = killed.elapsed();
    assert!(
        restarted_in < DEADLINE / 2,
        "the agent took {restarted_in:?} to restart: the test needs it well within the deadline"
    );
    // Until well past the deadline counted from the kill, its cluster never declared it
    // lost, and every instance ran on as the same process.
    let never_lost = |instances: &[Value]| {
        instances.iter().all(|i| {
            i["state"] == "Running"
                && i["events"]
                    .as_array()
                    .is_some_and(|events| events.iter().all(|e| e["state"] != "Lost"))
        })
    };
    holds_for(
        (DEADLINE * 2).saturating_sub(killed.elapsed()),
        "the node Ready, its instances never lost and the same processes",
        || {
            let ready = testbed
                .get("nodes")
                .iter()
                .any(|n| n["name"] == node.as_str() && n["state"] == "Ready");
            ready
                && never_lost(&testbed.get("instances"))
                && before
                    .iter()
                    .all(|(id, i)| runs_instance(i["pid"].as_u64().unwrap(), id))
        },
    );
    let after = testbed.running(4);
    assert_eq!(
        pids(&before),
        pids(&after),
        "same processes after the agent restarted"
    );
    let restarts_after: BTreeMap<String, u64> = after
        .iter()
        .map(|(id, i)| (id.clone(), i["restarts"].as_u64().unwrap()))
        .collect();
    assert_eq!(restarts, restarts_after);
    assert_no_duplicates(&testbed, 4);

    // The restarted agent adopted them for real: it supervises them (one that dies is
    // restarted by it, on its node).
    let (id, pid) = pids(&before)
        .into_iter()
        .find(|(id, _)| on_node.contains(id))
        .unwrap();
    support::kill_group(pid as u32);
    eventually(
        SETTLE,
        "the re-adopted instance restarted by its agent",
        || {
            testbed.get("instances").into_iter().find(|i| {
                i["id"] == id.as_str()
                    && i["state"] == "Running"
                    && i["node"] == node.as_str()
                    && i["restarts"].as_u64() == Some(restarts[&id] + 1)
                    && i["pid"]
                        .as_u64()
                        .is_some_and(|new| new != pid && runs_instance(new, &id))
            })
        },
    );
}

#[test]
fn an_instance_that_fits_nowhere_waits_with_a_reason_until_capacity_frees() {
    // Four nodes of one core each.
    let testbed = Testbed::start(1000);
    testbed.apply("big", &[("batch", 4, "800m")]);
    testbed.running(4);
    testbed.apply("extra", &[("job", 1, "500m")]);
    let pending = eventually(SETTLE, "a pending instance with its reason", || {
        testbed.get("instances").into_iter().find(|i| {
            i["application"] == "extra"
                && i["state"] == "Pending"
                && i["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("0/2 clusters are available"))
        })
    });
    let reason = pending["reason"].as_str().unwrap();
    assert!(reason.contains("insufficient cpu"), "{reason}");
    let described = canopy_ok(
        testbed.server(),
        &["describe", "instance", pending["id"].as_str().unwrap()],
    );
    assert!(described.contains("insufficient cpu"), "{described}");

    canopy_ok(testbed.server(), &["scale", "big/batch", "--replicas", "3"]);
    testbed.running(4);
    let extra = testbed
        .get("instances")
        .into_iter()
        .find(|i| i["application"] == "extra")
        .unwrap();
    assert_eq!(extra["state"], "Running");
}

#[test]
fn spread_puts_replicas_on_distinct_nodes_and_explains_the_one_too_many() {
    let testbed = Testbed::start(4000);
    testbed.apply_constrained(
        "spread",
        &[("web", 5, "100m")],
        "    - spread: {maxPerNode: 1}\n",
    );
    let pending = eventually(SETTLE, "4 running and 1 pending with its reason", || {
        let instances = testbed.get("instances");
        let running = instances.iter().filter(|i| i["state"] == "Running").count();
        let pending = instances.iter().find(|i| {
            i["state"] == "Pending"
                && i["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("0/2 clusters are available"))
        });
        (running == 4).then_some(()).and(pending.cloned())
    });
    let nodes: BTreeSet<String> = testbed
        .get("instances")
        .iter()
        .filter(|i| i["state"] == "Running")
        .map(|i| i["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 4, "one replica per node");
    let reason = pending["reason"].as_str().unwrap();
    assert!(
        reason.contains("max instances per node"),
        "the clusters' reasons are kept: {reason}"
    );
}

#[test]
fn geo_constraints_place_near_the_point_and_an_impossible_one_explains_itself() {
    let testbed = Testbed::start(4000);
    // Within 50 km of Berlin: only cluster c1's nodes qualify.
    testbed.apply_constrained(
        "berlin",
        &[("web", 3, "100m")],
        "    - geo: {location: {lat: 52.52, lon: 13.40}, radiusKm: 50}\n",
    );
    let running = testbed.running(3);
    assert!(
        running.values().all(|i| i["cluster"] == "c1"),
        "{running:#?}"
    );
    // Within 10 km of (0, 0), in the Gulf of Guinea: nowhere.
    testbed.apply_constrained(
        "ocean",
        &[("buoy", 1, "100m")],
        "    - geo: {location: {lat: 0, lon: 0}, radiusKm: 10}\n",
    );
    let pending = eventually(
        SETTLE,
        "the impossible instance pending with its reason",
        || {
            testbed.get("instances").into_iter().find(|i| {
                i["application"] == "ocean"
                    && i["state"] == "Pending"
                    && i["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("0/2 clusters are available"))
            })
        },
    );
    let reason = pending["reason"].as_str().unwrap();
    assert!(reason.contains("outside the geo area"), "{reason}");
    let described = canopy_ok(
        testbed.server(),
        &["describe", "instance", pending["id"].as_str().unwrap()],
    );
    assert!(described.contains("outside the geo area"), "{described}");
}

/// Live workload processes of `testbed`, by instance id: (pid, node it runs on).
fn live_copies(testbed: &Testbed) -> BTreeMap<String, Vec<(u64, String)>> {
    let mut copies: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    for pid in testbed.workload_pids() {
        let pid = u64::from(pid);
        if let (Some(id), Some(node)) = (
            environ_var(pid, "CANOPY_INSTANCE"),
            environ_var(pid, "CANOPY_NODE"),
        ) {
            copies.entry(id).or_default().push((pid, node));
        }
    }
    copies
}

#[test]
fn without_its_root_a_cluster_keeps_healing_and_the_root_sees_the_result() {
    let mut testbed = Testbed::start(4000);
    // Only c0's nodes qualify (within 50 km of Munich), so healing stays in one cluster.
    testbed.apply_constrained(
        "shop",
        &[("web", 4, "100m")],
        "    - geo: {location: {lat: 48.14, lon: 11.58}, radiusKm: 50}\n",
    );
    let before = testbed.running(4);
    assert!(before.values().all(|i| i["cluster"] == "c0"), "{before:#?}");
    testbed.root.kill();

    // A workload dies: its node restarts it (restartPolicy always), no root needed.
    let (victim_id, victim) = before.iter().next().unwrap();
    let victim_pid = victim["pid"].as_u64().unwrap();
    support::kill_group(victim_pid as u32);
    eventually(REPLACED_WITHIN, "the killed workload restarted", || {
        live_copies(&testbed)
            .get(victim_id)
            .is_some_and(|copies| copies.len() == 1 && copies[0].0 != victim_pid)
            .then_some(())
    });

    // A whole machine dies: its cluster places its instances on the other node.
    let lost_node = if before.values().any(|i| i["node"] == "c0-n0") {
        "c0-n0"
    } else {
        "c0-n1"
    };
    let survivor = if lost_node == "c0-n0" {
        "c0-n1"
    } else {
        "c0-n0"
    };
    let stranded: BTreeSet<String> = before
        .iter()
        .filter(|(_, i)| i["node"] == lost_node)
        .map(|(id, _)| id.clone())
        .collect();
    let index = testbed.node(lost_node);
    testbed.nodes[index].kill();
    for (pid, node) in live_copies(&testbed).values().flatten() {
        if node == lost_node {
            support::kill_group(*pid as u32);
        }
    }
    let healed = eventually(
        REPLACED_WITHIN,
        "every instance running on the surviving node, without the root",
        || {
            let copies = live_copies(&testbed);
            let healed = before.keys().all(|id| {
                copies
                    .get(id)
                    .is_some_and(|c| c.len() == 1 && c[0].1 == survivor)
            });
            healed.then_some(copies)
        },
    );
    assert!(!stranded.is_empty());

    // The root, back, learns what its cluster did meanwhile: the same processes.
    testbed.root.restart();
    let after = testbed.running(4);
    for (id, instance) in &after {
        assert_eq!(instance["node"], survivor, "{instance}");
        assert_eq!(
            instance["pid"].as_u64(),
            Some(healed[id][0].0),
            "the root shows the process its cluster started: {instance}"
        );
    }
    assert_no_duplicates(&testbed, 4);
}

#[test]
fn a_frozen_node_that_returns_has_exactly_its_stale_copies_stopped() {
    let testbed = Testbed::start(4000);
    testbed.apply("shop", &[("web", 4, "100m")]);
    let before = testbed.running(4);
    let victim = before.values().next().unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    let stranded: BTreeMap<String, u64> = pids(&before)
        .into_iter()
        .filter(|(id, _)| before[id]["node"] == victim.as_str())
        .collect();
    // The agent freezes (its workloads run on): past the deadline its cluster declares it
    // lost and places its instances elsewhere.
    let agent = &testbed.nodes[testbed.node(&victim)];
    agent.signal(Signal::STOP);
    let replaced = eventually(REPLACED_WITHIN, "replacements running elsewhere", || {
        let instances = testbed.get("instances");
        let replaced: Option<BTreeMap<String, u64>> = stranded
            .keys()
            .map(|id| {
                let i = instances.iter().find(|i| i["id"] == id.as_str())?;
                let pid = i["pid"].as_u64()?;
                (i["state"] == "Running" && i["node"] != victim.as_str() && runs_instance(pid, id))
                    .then(|| (id.clone(), pid))
            })
            .collect();
        replaced
    });
    // The stale copies still run while the agent is frozen: there is something to stop.
    for (id, pid) in &stranded {
        assert!(runs_instance(*pid, id), "stale copy of {id} already gone");
    }
    let mut expected = pids(&before);
    expected.extend(replaced.clone());

    agent.signal(Signal::CONT);
    eventually(SETTLE, "the stale copies stopped", || {
        stranded
            .iter()
            .all(|(id, pid)| !runs_instance(*pid, id))
            .then_some(())
    });
    // Exactly those: the replacements and the instances elsewhere run on, the same processes.
    holds_for(
        DEADLINE,
        "the replacements and the others untouched",
        || expected.iter().all(|(id, pid)| runs_instance(*pid, id)),
    );
    let after = pids(&testbed.running(4));
    assert_eq!(after, expected, "no instance was restarted or moved again");
    assert_no_duplicates(&testbed, 4);
}
