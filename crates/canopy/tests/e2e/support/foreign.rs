//! What the foreign-driver tests share (docker, podman, swarm): the web application they
//! give the root, the cluster that drives the orchestrator, and the engine's view of an
//! instance's container.

use super::engine::docker_ok_at;
use super::registry::Registry;
use super::{Daemon, canopy_json, canopy_ok, eventually, start_cluster};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub const SETTLE: Duration = Duration::from_secs(60);

/// busybox httpd as `web/httpd`, answering `hello from GREETING` on `host_port`,
/// restarted whenever it ends.
pub fn apply_web(server: &str, dir: &Path, registry: &Registry, host_port: u16, greeting: &str) {
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: web}}
spec:
  services:
    - name: httpd
      runtime: container
      image: 127.0.0.1:{registry}/busybox:latest
      command: [sh, -c, "echo serving; mkdir -p /dev/shm/www && echo hello from {greeting} > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"]
      env: {{GREETING: hej}}
      ports: [{{port: 8080, hostPort: {host_port}}}]
      restartPolicy: always
      resources: {{cpu: 250m, memory: 64Mi}}
"#,
        registry = registry.port
    );
    let file = dir.join("web.yaml");
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

/// The one instance, once it runs in `cluster`.
pub fn running_in(server: &str, cluster: &str) -> Value {
    eventually(
        SETTLE,
        &format!("the instance running in {cluster}"),
        || {
            canopy_json(server, &["get", "instances"])
                .into_iter()
                .find(|i| i["state"] == "Running" && i["cluster"] == cluster)
        },
    )
}

/// A cluster `name` driving the orchestrator at `endpoint` with `--driver driver`, once the
/// root sees one of its members Ready.
pub fn start_driven_cluster(
    dir: &Path,
    root: &Daemon,
    name: &str,
    driver: &str,
    endpoint: &str,
) -> Daemon {
    let cluster = start_cluster(
        dir,
        root,
        name,
        &["--driver", driver, "--endpoint", endpoint],
    );
    eventually(SETTLE, &format!("a Ready member of {name}"), || {
        canopy_json(&root.url, &["get", "nodes"])
            .into_iter()
            .find(|n| n["cluster"] == name && n["state"] == "Ready")
    });
    cluster
}

/// The container for instance `id` on the engine at `endpoint`: its inspect document.
pub fn container_of(endpoint: &str, id: &str) -> Value {
    let listed = docker_ok_at(
        endpoint,
        &[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=canopy.instance={id}"),
        ],
    );
    let ids: Vec<&str> = listed.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "one container for instance {id}: {ids:?}");
    let inspected: Vec<Value> =
        serde_json::from_str(&docker_ok_at(endpoint, &["inspect", ids[0]])).expect("inspect JSON");
    inspected.into_iter().next().expect("one container")
}

/// The web application placed in `cluster` by `root`, answering `hello from GREETING` on
/// its host port: (instance id, port).
pub fn serve_web(
    root: &Daemon,
    dir: &Path,
    registry: &Registry,
    cluster: &str,
    greeting: &str,
) -> (String, u16) {
    let host_port = super::ports::published_port();
    apply_web(&root.url, dir, registry, host_port, greeting);
    let instance = running_in(&root.url, cluster);
    let hello = format!("hello from {greeting}");
    eventually(SETTLE, "httpd answering on its host port", || {
        super::http_get(host_port).filter(|a| a.contains(&hello))
    });
    (instance["id"].as_str().unwrap().to_string(), host_port)
}

/// Kills instance `id`'s container on the engine at `endpoint` behind Canopy's back and
/// waits for its restart policy to start the same container again: its inspect document.
pub fn kill_and_see_healed(endpoint: &str, server: &str, cluster: &str, id: &str) -> Value {
    let container = container_of(endpoint, id);
    let container_id = container["Id"].as_str().unwrap().to_string();
    let started = container["State"]["StartedAt"]
        .as_str()
        .unwrap()
        .to_string();
    docker_ok_at(endpoint, &["kill", &container_id]);
    let healed = eventually(SETTLE, "the killed container started again", || {
        let instance = running_in(server, cluster);
        let again = container_of(endpoint, id);
        (instance["restarts"].as_u64() >= Some(1)
            && again["State"]["Running"] == true
            && again["State"]["StartedAt"] != started.as_str())
        .then_some(again)
    });
    assert_eq!(
        healed["Id"],
        container_id.as_str(),
        "the same container again"
    );
    healed
}
