//! The continuum as NGSI-LD entities, read by a client nobody here wrote: ngsildclient
//! (PyPI, pinned in `ngsild/requirements.txt`, installed in `.venv/ngsildclient` by
//! `scripts/ngsildclient-venv`, which `scripts/test` runs) against a root, a cluster and a
//! node on loopback. It lists the domains, infrastructure elements and service components,
//! gets one by id, and subscribes to components' states with an HTTP endpoint of its own;
//! scaling the service up makes a new component Running, and the notification reaches it.
//! The root is restarted: the subscription is still there and notifies again.

use crate::support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;
use support::{
    KillOnDrop, canopy_json, canopy_ok, eventually, start_cluster, start_node, start_root,
    token_for,
};

const SETTLE: Duration = Duration::from_secs(60);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pinned_version() -> String {
    let requirements = workspace().join("crates/canopy/tests/ngsild/requirements.txt");
    std::fs::read_to_string(&requirements)
        .expect("the pinned requirements")
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("ngsildclient==")
                .map(str::to_string)
        })
        .expect("requirements.txt pins ngsildclient==X.Y.Z")
}

/// The venv's Python, with the pinned ngsildclient. Missing is a failure: `scripts/test`
/// creates it.
fn python() -> PathBuf {
    let python = workspace().join(".venv/ngsildclient/bin/python");
    let pinned = pinned_version();
    let output = Command::new(&python)
        .args(["-c", "import importlib.metadata as m; print(m.version('ngsildclient'))"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}): run scripts/ngsildclient-venv (scripts/test does) to install ngsildclient {pinned}",
                python.display()
            )
        });
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        printed.trim(),
        pinned,
        "{} has ngsildclient {printed:?}, not the pinned {pinned}: run scripts/ngsildclient-venv",
        python.display()
    );
    python
}

/// The script, its stdout read line by line (one JSON object a step); killed when dropped.
struct Script {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    fn start(args: &[&str]) -> Script {
        let mut child = Command::new(python())
            .arg(workspace().join("crates/canopy/tests/ngsild/client.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ngsildclient script starts");
        let stdout = child.stdout.take().expect("piped stdout");
        Script {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next step the script reports; it has its own deadline (and exits past it).
    fn step(&mut self, expected: &str) -> Value {
        let line = self
            .lines
            .next()
            .unwrap_or_else(|| panic!("the script ended before step {expected:?}"))
            .expect("readable stdout");
        let step: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(step["step"], expected, "{step}");
        step
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Its command line carries [`MARKER`], so the test leaves no process behind.
const MARKER: &str = "canopy-ngsild-test-reader";
const APP: &str = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: sensors, namespace: default}\n\
spec:\n  services:\n    - name: reader\n      runtime: process\n      replicas: 1\n\
\x20     resources: {cpu: 10m, memory: 8Mi}\n\
\x20     command: [/bin/sh, -c, 'sleep 600', canopy-ngsild-test-reader]\n";

fn running(root: &str, wanted: usize) {
    eventually(SETTLE, &format!("{wanted} instances Running"), || {
        let instances = canopy_json(root, &["get", "instances"]);
        (instances.iter().filter(|i| i["state"] == "Running").count() == wanted).then_some(())
    });
}

fn value<'a>(entity: &'a Value, attribute: &str) -> &'a Value {
    &entity[attribute]["value"]
}

#[test]
fn ngsildclient_lists_gets_and_is_notified_across_a_root_restart() {
    let _cleanup = KillOnDrop(MARKER.to_string());
    let dir = tempfile::tempdir().unwrap();
    let mut root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "edge", &[]);
    let _node = start_node(&dir.path().join("n1"), &cluster, "n1", &[]);
    let app = dir.path().join("sensors.yaml");
    std::fs::write(&app, APP).unwrap();
    canopy_ok(&root.url, &["apply", "-f", app.to_str().unwrap()]);
    running(&root.url, 1);
    let token = token_for(&root.url);

    let mut script = Script::start(&[&root.url, &token, "subscribe"]);
    let subscribed = script.step("subscribed");
    let domains = subscribed["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 1, "{subscribed}");
    assert_eq!(domains[0]["id"], "urn:ngsi-ld:Domain:edge");
    assert_eq!(value(&domains[0], "domainStatus"), "Ready");
    let nodes = subscribed["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{subscribed}");
    assert_eq!(nodes[0]["id"], "urn:ngsi-ld:InfrastructureElement:edge:n1");
    assert_eq!(nodes[0]["domain"]["object"], "urn:ngsi-ld:Domain:edge");
    assert!(
        value(&nodes[0], "cpuCores").as_f64().unwrap() > 0.0,
        "{}",
        nodes[0]
    );
    let components = subscribed["components"].as_array().unwrap();
    assert_eq!(components.len(), 1, "{subscribed}");
    assert_eq!(value(&components[0], "serviceComponentStatus"), "Running");
    assert_eq!(
        components[0]["infrastructureElement"]["object"],
        "urn:ngsi-ld:InfrastructureElement:edge:n1"
    );
    assert_eq!(subscribed["one"]["id"], components[0]["id"]);
    assert_eq!(
        subscribed["one"]["service"]["object"],
        "urn:ngsi-ld:Service:default:sensors:reader"
    );
    let subscription = subscribed["subscription"].as_str().unwrap().to_string();
    assert!(
        subscription.starts_with("urn:ngsi-ld:Subscription:"),
        "{subscription}"
    );

    canopy_ok(&root.url, &["scale", "sensors/reader", "--replicas", "2"]);
    let notified = script.step("notified");
    assert_eq!(notified["content_type"], "application/ld+json");
    assert_eq!(notified["notification"]["type"], "Notification");
    assert_eq!(
        notified["notification"]["subscriptionId"],
        subscription.as_str()
    );
    drop(script);
    running(&root.url, 2);

    // A restarted root keeps its subscriptions (in its store) and notifies again.
    root.restart();
    let port = subscribed["port"].as_u64().unwrap().to_string();
    let mut script = Script::start(&[&root.url, &token, "resume", &subscription, &port]);
    let listening = script.step("listening");
    assert_eq!(listening["subscription"]["id"], subscription.as_str());
    assert_eq!(
        listening["subscription"]["watchedAttributes"][0],
        "serviceComponentStatus"
    );
    running(&root.url, 2);
    canopy_ok(&root.url, &["scale", "sensors/reader", "--replicas", "3"]);
    let notified = script.step("notified");
    assert_eq!(
        notified["notification"]["subscriptionId"],
        subscription.as_str()
    );
}
