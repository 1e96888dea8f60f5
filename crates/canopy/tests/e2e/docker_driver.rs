//! The docker cluster driver against a real Docker Engine (Debian's docker.io `dockerd`,
//! started by the test with its own roots, socket and bridge): `canopy cluster --driver
//! docker` takes an application from the root, the engine runs it with Canopy's limits and
//! labels, a killed container is healed by its restart policy, a restarted cluster
//! orchestrator re-adopts the same containers, and an engine that stops has its instances
//! replaced by the root in a Canopy-native cluster. Needs root, dockerd and the registry's
//! tools: without them the test fails and says what is missing.

use crate::support;
use crate::support::engine;
use crate::support::foreign::{
    SETTLE, apply_web, kill_and_see_healed, running_in, start_driven_cluster,
};
use crate::support::registry;
use support::http_get;
use support::ports::published_port;

use engine::Engine;
use registry::{Registry, Residue, free_subnet, require};
use serde_json::Value;
use std::path::Path;
use support::{Daemon, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings};

/// A Docker-driven cluster `dk` whose member the root sees Ready.
fn start_docker_cluster(dir: &Path, root: &Daemon, engine: &Engine) -> Daemon {
    start_driven_cluster(dir, root, "dk", "docker", &engine.endpoint())
}

/// The engine's container for instance `id`: its inspect document.
fn container_of(engine: &Engine, id: &str) -> Value {
    support::foreign::container_of(&engine.endpoint(), id)
}

/// A root that waits 10 s for a silent cluster: the docker cluster's orchestrator restarts
/// within that, so its instances are its own again rather than replaced.
fn start_patient_root(dir: &Path) -> Daemon {
    let data = dir.join("root").display().to_string();
    let args = strings(&[
        "root",
        "--listen",
        "127.0.0.1:0",
        "--tier-listen",
        "127.0.0.1:0",
        "--data",
        &data,
        "--trusted-namespace",
        "default",
        "--heartbeat-ms",
        "200",
        "--deadline-ms",
        "10000",
    ]);
    Daemon::start(&args, true)
}

#[test]
fn a_docker_cluster_runs_limits_heals_and_readopts_an_application() {
    require();
    let engine = Engine::start();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_patient_root(dir.path());
    let mut cluster = start_docker_cluster(dir.path(), &root, &engine);
    let node = canopy_json(&root.url, &["get", "nodes"])
        .into_iter()
        .find(|n| n["cluster"] == "dk")
        .unwrap();
    let info = engine.docker_ok(&["info", "--format", "{{.NCPU}} {{.MemTotal}}"]);
    let (cpus, memory) = info.split_once(' ').expect("NCPU and MemTotal");
    assert_eq!(
        node["capacity"]["cpuMillis"].as_u64(),
        Some(cpus.parse::<u64>().unwrap() * 1000),
        "capacity from the engine's info: {node}"
    );
    assert_eq!(
        node["capacity"]["memoryMib"].as_u64(),
        Some(memory.parse::<u64>().unwrap() / (1024 * 1024)),
        "{node}"
    );
    assert_eq!(node["runtimes"], serde_json::json!(["container"]), "{node}");

    let host_port = published_port();
    apply_web(&root.url, dir.path(), &registry, host_port, "docker");
    let instance = running_in(&root.url, "dk");
    let id = instance["id"].as_str().unwrap().to_string();
    let container = container_of(&engine, &id);
    let container_id = container["Id"].as_str().unwrap().to_string();
    let host = &container["HostConfig"];
    assert_eq!(host["NanoCpus"], 250_000_000, "{host}");
    assert_eq!(host["Memory"], 64 << 20, "{host}");
    assert_eq!(
        host["PortBindings"]["8080/tcp"][0]["HostPort"],
        host_port.to_string(),
        "{host}"
    );
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["canopy.instance"], id.as_str(), "{labels}");
    assert_eq!(labels["canopy.cluster"], "dk", "{labels}");
    assert_eq!(labels["canopy.service"], "httpd", "{labels}");
    assert_eq!(container["Config"]["User"], "65534:65534");
    let answer = eventually(SETTLE, "httpd answering through the engine's port", || {
        http_get(host_port).filter(|a| a.contains("hello from docker"))
    });
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    let logs = eventually(SETTLE, "the container's first line", || {
        let logs = canopy_ok(&root.url, &["logs", &id]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs, "serving\n");
    let greeting = canopy_ok(
        &root.url,
        &["exec", &id, "--", "sh", "-c", "echo $GREETING"],
    );
    assert_eq!(
        greeting, "hej\n",
        "exec runs in the container, through the engine"
    );
    let failing = support::canopy(&root.url, &["exec", &id, "--", "sh", "-c", "exit 7"]);
    assert_eq!(failing.status.code(), Some(7), "{failing:?}");

    // Killed behind Canopy's back: its restart policy (always) starts it again.
    let healed = kill_and_see_healed(&engine.endpoint(), &root.url, "dk", &id);
    eventually(SETTLE, "httpd answering again", || {
        http_get(host_port).filter(|a| a.contains("hello from docker"))
    });

    // The cluster orchestrator restarts: it re-adopts the running container, untouched.
    let started = healed["State"]["StartedAt"].as_str().unwrap().to_string();
    let restarts = running_in(&root.url, "dk")["restarts"].clone();
    cluster.restart();
    eventually(SETTLE, "the member linked again", || {
        canopy_json(&root.url, &["get", "nodes"])
            .into_iter()
            .find(|n| n["cluster"] == "dk" && n["state"] == "Ready")
    });
    let readopted = running_in(&root.url, "dk");
    assert_eq!(readopted["id"], id.as_str());
    assert_eq!(
        readopted["restarts"], restarts,
        "not restarted: {readopted}"
    );
    let after = container_of(&engine, &id);
    assert_eq!(after["Id"], container_id.as_str(), "the same container ID");
    assert_eq!(
        after["State"]["StartedAt"],
        started.as_str(),
        "never restarted"
    );
    assert!(http_get(host_port).is_some_and(|a| a.contains("hello from docker")));

    canopy_ok(&root.url, &["delete", "application", "web"]);
    eventually(SETTLE, "the container removed with its instance", || {
        let left = engine.docker_ok(&["ps", "-aq", "--filter", "label=canopy.cluster=dk"]);
        (left.is_empty() && canopy_json(&root.url, &["get", "instances"]).is_empty()).then_some(())
    });
}

/// A Canopy node running containers from the registry, with what it leaves removed on drop.
struct ContainerNode {
    _agent: Daemon,
    _residue: Residue,
}

impl ContainerNode {
    fn start(data: &Path, cluster: &Daemon, registry: &Registry) -> ContainerNode {
        let dir = data.join("node");
        let subnet = free_subnet();
        let name = format!("native-{}", std::process::id());
        let residue = Residue::new(&dir, &name, &subnet);
        let registry_address = format!("127.0.0.1:{}", registry.port);
        let extra = [
            "--insecure-registry",
            &registry_address,
            "--container-subnet",
            &subnet,
        ];
        ContainerNode {
            _agent: support::start_node(&dir, cluster, &name, &extra),
            _residue: residue,
        }
    }
}

#[test]
fn an_engine_that_stops_has_its_instances_replaced_in_a_canopy_cluster() {
    require();
    let mut engine = Engine::start();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let _docker_cluster = start_docker_cluster(dir.path(), &root, &engine);
    // Placed while the docker cluster is the only one.
    apply_web(&root.url, dir.path(), &registry, published_port(), "docker");
    let first = running_in(&root.url, "dk");
    container_of(&engine, first["id"].as_str().unwrap());

    let native = start_cluster(dir.path(), &root, "c0", &[]);
    let _node = ContainerNode::start(dir.path(), &native, &registry);
    eventually(SETTLE, "the native node Ready", || {
        canopy_json(&root.url, &["get", "nodes"])
            .into_iter()
            .find(|n| n["cluster"] == "c0" && n["state"] == "Ready")
    });

    engine.stop();
    let replaced = running_in(&root.url, "c0");
    assert_eq!(replaced["service"], "httpd", "{replaced}");
    let member = eventually(SETTLE, "the engine's member unreachable", || {
        canopy_json(&root.url, &["get", "nodes"])
            .into_iter()
            .find(|n| n["cluster"] == "dk" && n["state"] != "Ready")
    });
    assert_eq!(member["state"], "Unreachable", "{member}");
    let instances = canopy_json(&root.url, &["get", "instances"]);
    assert!(
        instances.iter().all(|i| i["cluster"] != "dk"),
        "nothing left on the stopped engine: {instances:?}"
    );
}
