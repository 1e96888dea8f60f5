//! The wasm runtime through every tier: root, cluster and a node run three replicas of the
//! example filter (a checked-in `.wat` the node assembles); `canopy logs` shows each one's
//! output; a trapping module ends `Failed` with the trap's message under `never` and is
//! restarted under `on-failure`; a restarted node agent starts its modules again at once,
//! counted as restarts (in-process instances cannot outlive their agent). A wasm service
//! whose module is an OCI reference runs the artifact pushed to a real registry.

use crate::support;
use crate::support::registry;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use support::{canopy_json, canopy_ok, eventually};

const SETTLE: Duration = Duration::from_secs(60);

fn app_yaml(filter: &str, trap: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: wasm}}\nspec:\n  services:\n\
         \x20 - name: filter\n    runtime: wasm\n    module: {filter}\n    replicas: 3\n\
         \x20   args: [--threshold, '0.75']\n    resources: {{cpu: 100m, memory: 32Mi}}\n\
         \x20 - name: trap-never\n    runtime: wasm\n    module: {trap}\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 100m, memory: 16Mi}}\n\
         \x20 - name: trap-retry\n    runtime: wasm\n    module: {trap}\n    restartPolicy: on-failure\n\
         \x20   resources: {{cpu: 100m, memory: 16Mi}}\n"
    )
}

fn instances(url: &str) -> Vec<Value> {
    canopy_json(url, &["get", "instances"])
}

/// The filter's running replicas: id -> restarts.
fn running_filters(url: &str) -> BTreeMap<String, u64> {
    instances(url)
        .into_iter()
        .filter(|i| i["service"] == "filter" && i["state"] == "Running")
        .filter_map(|i| Some((i["id"].as_str()?.to_string(), i["restarts"].as_u64()?)))
        .collect()
}

#[test]
fn wasm_services_run_through_every_tier() {
    let dir = tempfile::tempdir().unwrap();
    let root = support::start_root(dir.path());
    let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
    let mut node = support::start_node(&dir.path().join("n1"), &cluster, "n1", &[]);
    eventually(SETTLE, "a ready node", || {
        let nodes = canopy_json(&root.url, &["get", "nodes", "-A"]);
        (nodes.iter().filter(|n| n["state"] == "Ready").count() == 1).then_some(())
    });

    let filter = support::examples().join("wasm/filter.wat");
    let trap = dir.path().join("trap.wat");
    std::fs::write(&trap, "(module (func (export \"_start\") unreachable))").unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        app_yaml(&filter.display().to_string(), &trap.display().to_string()),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);

    let filters = eventually(SETTLE, "three filter replicas running", || {
        let running = running_filters(&root.url);
        (running.len() == 3).then_some(running)
    });
    for id in filters.keys() {
        eventually(SETTLE, "the replica's output in its logs", || {
            let logs = canopy_ok(&root.url, &["logs", id]);
            logs.contains("sensor-filter started:").then_some(())
        });
        let logs = canopy_ok(&root.url, &["logs", id]);
        assert!(logs.contains("--threshold 0.75"), "{id}: {logs}");
    }

    let failed = eventually(SETTLE, "the trap under never Failed", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["service"] == "trap-never" && i["state"] == "Failed")
    });
    let reason = failed["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("trapped") && reason.contains("unreachable"),
        "{failed}"
    );
    assert_eq!(failed["restarts"], 0, "{failed}");
    eventually(SETTLE, "the trap under on-failure restarted", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["service"] == "trap-retry" && i["restarts"].as_u64() >= Some(2))
    });

    // The agent goes down and up: its modules died with it and run again, one restart each.
    node.restart();
    eventually(SETTLE, "the filters back, each restarted once more", || {
        let running = running_filters(&root.url);
        let again = running.len() == 3
            && filters
                .iter()
                .all(|(id, restarts)| running.get(id) == Some(&(restarts + 1)));
        again.then_some(())
    });
}

/// Pushes `module` as a wasm OCI artifact (config `application/vnd.wasm.config.v0+json`,
/// layer `application/wasm`) to the registry on loopback.
fn push_artifact(reference: &str, module: Vec<u8>) {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let reference: oci_client::Reference = reference.parse().expect("reference");
    let config = Config::new(
        br#"{"architecture":"wasm","os":"wasip1"}"#.to_vec(),
        "application/vnd.wasm.config.v0+json".to_string(),
        None,
    );
    let layer = ImageLayer::new(module, "application/wasm".to_string(), None);
    let auth = oci_client::secrets::RegistryAuth::Anonymous;
    tokio::runtime::Runtime::new()
        .expect("a runtime for the push")
        .block_on(client.push(&reference, &[layer], config, &auth, None))
        .expect("push the artifact");
}

#[test]
fn a_wasm_service_runs_its_module_from_an_oci_artifact() {
    let registry = registry::Registry::start();
    let address = format!("127.0.0.1:{}", registry.port);
    let module = wat::parse_file(support::examples().join("wasm/filter.wat")).expect("assemble");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&module))
    };
    let reference = format!("{address}/filter-wasm:1");
    push_artifact(&reference, module);

    let dir = tempfile::tempdir().unwrap();
    let root = support::start_root(dir.path());
    let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
    let _node = support::start_node(
        &dir.path().join("n1"),
        &cluster,
        "n1",
        &["--insecure-registry", &address],
    );
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: oci}}\nspec:\n  services:\n\
             \x20 - name: filter\n    runtime: wasm\n    module: {reference}\n    wasm: {{sha256: {digest}}}\n\
             \x20   args: [--threshold, '0.5']\n    resources: {{cpu: 100m, memory: 32Mi}}\n"
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let id = eventually(SETTLE, "the filter running from the artifact", || {
        instances(&root.url)
            .into_iter()
            .find(|i| i["service"] == "filter" && i["state"] == "Running")
            .and_then(|i| Some(i["id"].as_str()?.to_string()))
    });
    eventually(SETTLE, "the artifact's output in its logs", || {
        let logs = canopy_ok(&root.url, &["logs", &id]);
        (logs.contains("sensor-filter started:") && logs.contains("--threshold 0.5")).then_some(())
    });
}
