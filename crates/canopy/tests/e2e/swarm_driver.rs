//! The swarm cluster driver against a real Docker Swarm (the test's own `dockerd`, made a
//! one-node swarm's manager with `docker swarm init` on loopback): `canopy cluster --driver
//! swarm` presents the swarm's node as its member, runs an application's instance as a
//! Swarm service of one replica pinned to that node (`dnsrr`, host-mode port), reports it
//! Running at the root, heals a killed task with a new one, and deletes the service with
//! the application. Needs root, dockerd and the registry's tools: without them the test
//! fails and says what is missing.

use crate::support;
use crate::support::engine::Engine;
use crate::support::foreign::{SETTLE, container_of, running_in, serve_web, start_driven_cluster};
use crate::support::registry::{Registry, require};
use serde_json::Value;
use support::{Daemon, canopy_json, canopy_ok, eventually, http_get, start_root};

/// A registry, a one-node swarm, a root, and a swarm-driven cluster `sw`.
struct Continuum {
    // Dropped in this order: the tiers, then the engine, the registry, their files.
    _cluster: Daemon,
    root: Daemon,
    engine: Engine,
    node_id: String,
    registry: Registry,
    dir: tempfile::TempDir,
}

fn start() -> Continuum {
    require();
    let registry = Registry::start();
    let engine = Engine::start();
    let node_id = engine.swarm_init();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_driven_cluster(dir.path(), &root, "sw", "swarm", &engine.endpoint());
    Continuum {
        dir,
        root,
        engine,
        node_id,
        registry,
        _cluster: cluster,
    }
}

impl Continuum {
    fn serve_web(&self) -> (String, u16) {
        serve_web(&self.root, self.dir.path(), &self.registry, "sw", "swarm")
    }

    /// The swarm's services of cluster `sw`.
    fn services(&self) -> Vec<String> {
        let listed =
            self.engine
                .docker_ok(&["service", "ls", "-q", "--filter", "label=canopy.cluster=sw"]);
        listed.split_whitespace().map(str::to_string).collect()
    }

    fn inspect_service(&self, service: &str) -> Value {
        let inspected: Vec<Value> =
            serde_json::from_str(&self.engine.docker_ok(&["service", "inspect", service]))
                .expect("inspect JSON");
        inspected.into_iter().next().expect("one service")
    }
}

#[test]
fn a_swarm_cluster_runs_an_application_as_a_service_pinned_to_its_node() {
    let continuum = start();
    let root = &continuum.root.url;
    let node = canopy_json(root, &["get", "nodes"])
        .into_iter()
        .find(|n| n["cluster"] == "sw")
        .unwrap();
    assert_eq!(
        node["labels"]["swarm.node.id"],
        continuum.node_id.as_str(),
        "the swarm's node is the member: {node}"
    );
    let resources = continuum.engine.docker_ok(&[
        "node",
        "inspect",
        "self",
        "--format",
        "{{.Description.Resources.NanoCPUs}} {{.Description.Resources.MemoryBytes}}",
    ]);
    let (cpus, memory) = resources.split_once(' ').expect("NanoCPUs and MemoryBytes");
    assert_eq!(
        node["capacity"]["cpuMillis"].as_u64(),
        Some(cpus.parse::<u64>().unwrap() / 1_000_000),
        "capacity from the swarm's node: {node}"
    );
    assert_eq!(
        node["capacity"]["memoryMib"].as_u64(),
        Some(memory.parse::<u64>().unwrap() / (1024 * 1024)),
        "{node}"
    );

    let (id, host_port) = continuum.serve_web();
    let services = continuum.services();
    assert_eq!(services.len(), 1, "one service per instance: {services:?}");
    let service = continuum.inspect_service(&services[0]);
    let spec = &service["Spec"];
    assert_eq!(spec["Labels"]["canopy.instance"], id.as_str(), "{spec}");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 1, "{spec}");
    assert_eq!(spec["EndpointSpec"]["Mode"], "dnsrr", "{spec}");
    let port = &spec["EndpointSpec"]["Ports"][0];
    assert_eq!(port["PublishMode"], "host", "{spec}");
    assert_eq!(port["PublishedPort"], host_port, "{spec}");
    let task = &spec["TaskTemplate"];
    assert_eq!(
        task["Placement"]["Constraints"],
        serde_json::json!([format!("node.id=={}", continuum.node_id)]),
        "pinned to the member's node: {task}"
    );
    assert_eq!(
        task["Resources"]["Limits"]["NanoCPUs"], 250_000_000,
        "{task}"
    );
    assert_eq!(
        task["Resources"]["Limits"]["MemoryBytes"],
        64 << 20,
        "{task}"
    );
    let logs = eventually(SETTLE, "the task's first line", || {
        let logs = canopy_ok(root, &["logs", &id]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs, "serving\n");

    canopy_ok(root, &["delete", "application", "web"]);
    eventually(SETTLE, "no swarm service left with the application", || {
        (continuum.services().is_empty() && canopy_json(root, &["get", "instances"]).is_empty())
            .then_some(())
    });
}

#[test]
fn a_killed_swarm_task_is_replaced_by_its_restart_policy() {
    let continuum = start();
    let root = &continuum.root.url;
    let (id, host_port) = continuum.serve_web();
    let endpoint = continuum.engine.endpoint();
    let container = container_of(&endpoint, &id);
    let first = container["Id"].as_str().unwrap().to_string();
    continuum.engine.docker_ok(&["kill", &first]);
    eventually(SETTLE, "a new task running the instance again", || {
        let instance = running_in(root, "sw");
        let running = continuum.engine.docker_ok(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=canopy.instance={id}"),
        ]);
        (instance["restarts"].as_u64() >= Some(1) && !running.is_empty() && running != first)
            .then_some(())
    });
    eventually(SETTLE, "httpd answering again", || {
        http_get(host_port).filter(|a| a.contains("hello from swarm"))
    });
    assert_eq!(continuum.services().len(), 1, "the same one service");
}
