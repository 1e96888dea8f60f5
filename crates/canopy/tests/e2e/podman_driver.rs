//! The podman cluster driver against a real Podman service (Debian's podman 4.3, `podman
//! system service` started by the test with its own roots, network and registries.conf,
//! runc and cgroupfs): `canopy cluster --driver podman` takes an application from the root
//! through Podman's Docker-compatible API, which runs it with Canopy's limits and labels,
//! serves its logs and exec, and starts it again when it is killed behind Canopy's back.
//! Needs root, podman and the registry's tools: without them the test fails and says what is
//! missing.

use crate::support;
use crate::support::foreign::{
    SETTLE, container_of, kill_and_see_healed, serve_web, start_driven_cluster,
};
use crate::support::podman::Podman;
use crate::support::registry::{Registry, require};
use support::{Daemon, canopy_json, canopy_ok, eventually, start_root};

/// A registry, a Podman service pulling from it, a root, and a podman-driven cluster `pm`.
struct Continuum {
    // Dropped in this order: the tiers, then the engine, the registry, their files.
    _cluster: Daemon,
    root: Daemon,
    podman: Podman,
    registry: Registry,
    dir: tempfile::TempDir,
}

fn start() -> Continuum {
    require();
    let registry = Registry::start();
    let podman = Podman::start(registry.port);
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_driven_cluster(dir.path(), &root, "pm", "podman", &podman.endpoint());
    Continuum {
        dir,
        root,
        podman,
        registry,
        _cluster: cluster,
    }
}

impl Continuum {
    fn serve_web(&self) -> (String, u16) {
        serve_web(&self.root, self.dir.path(), &self.registry, "pm", "podman")
    }
}

#[test]
fn a_podman_cluster_serves_logs_execs_and_heals_an_application() {
    let continuum = start();
    let root = &continuum.root.url;
    let node = canopy_json(root, &["get", "nodes"])
        .into_iter()
        .find(|n| n["cluster"] == "pm")
        .unwrap();
    let info = continuum
        .podman
        .docker_ok(&["info", "--format", "{{.NCPU}} {{.MemTotal}}"]);
    let (cpus, memory) = info.split_once(' ').expect("NCPU and MemTotal");
    assert_eq!(
        node["capacity"]["cpuMillis"].as_u64(),
        Some(cpus.parse::<u64>().unwrap() * 1000),
        "capacity from podman's info: {node}"
    );
    assert_eq!(
        node["capacity"]["memoryMib"].as_u64(),
        Some(memory.parse::<u64>().unwrap() / (1024 * 1024)),
        "{node}"
    );
    assert!(
        node["name"].as_str().unwrap().starts_with("podman-"),
        "{node}"
    );
    assert_eq!(node["labels"]["canopy.driver"], "podman", "{node}");

    let (id, _) = continuum.serve_web();
    let container = container_of(&continuum.podman.endpoint(), &id);
    let host = &container["HostConfig"];
    assert_eq!(host["NanoCpus"], 250_000_000, "{host}");
    assert_eq!(host["Memory"], 64 << 20, "{host}");
    let labels = &container["Config"]["Labels"];
    assert_eq!(labels["canopy.instance"], id.as_str(), "{labels}");
    assert_eq!(labels["canopy.cluster"], "pm", "{labels}");
    assert_eq!(container["Config"]["User"], "65534:65534");

    let logs = eventually(SETTLE, "the container's first line", || {
        let logs = canopy_ok(root, &["logs", &id]);
        (!logs.is_empty()).then_some(logs)
    });
    assert_eq!(logs, "serving\n");
    let greeting = canopy_ok(root, &["exec", &id, "--", "sh", "-c", "echo $GREETING"]);
    assert_eq!(
        greeting, "hej\n",
        "exec runs in the container, through podman"
    );
    let failing = support::canopy(root, &["exec", &id, "--", "sh", "-c", "exit 7"]);
    assert_eq!(failing.status.code(), Some(7), "{failing:?}");

    // Killed behind Canopy's back: its restart policy (always) starts the same container.
    kill_and_see_healed(&continuum.podman.endpoint(), root, "pm", &id);

    canopy_ok(root, &["delete", "application", "web"]);
    eventually(SETTLE, "the container removed with its instance", || {
        let left =
            continuum
                .podman
                .docker_ok(&["ps", "-aq", "--filter", "label=canopy.cluster=pm"]);
        (left.is_empty() && canopy_json(root, &["get", "instances"]).is_empty()).then_some(())
    });
}
