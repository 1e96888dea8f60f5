//! Rolling updates over real tiers (root, cluster, five nodes as processes): four replicas
//! of a busybox httpd with an HTTP readiness probe, rolled from one revision to the next
//! with the default 25 % / 25 %, never fall below three ready (sampled from the API every
//! 100 ms); a paused rollout stands still until resumed; undo goes back a revision.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, holds_for, strings};

const SETTLE: Duration = Duration::from_secs(60);
const PORT: u16 = 18380;
const NODES: usize = 5;

struct Testbed {
    dir: tempfile::TempDir,
    marker: String,
    root: Daemon,
    _cluster: Daemon,
    _nodes: Vec<Daemon>,
    _cleanup: KillOnDrop,
}

impl Testbed {
    /// Root, cluster and nodes `n0`..`n4`, each with its own workload address
    /// (127.0.0.40-44), so each node's replica listens on the same port.
    fn start() -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!(
            "canopy-rollout-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let root = support::start_root(dir.path());
        let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
        let mut nodes = Vec::new();
        for n in 0..NODES {
            let name = format!("n{n}");
            let extra = strings(&[
                "--overlay-network",
                &format!("127.211.{n}.0"),
                "--overlay-address",
                &format!("127.0.0.{}", 40 + n),
            ]);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            nodes.push(support::start_node(
                &dir.path().join(&name),
                &cluster,
                &name,
                &extra,
            ));
        }
        let testbed = Testbed {
            _cleanup: KillOnDrop(marker.clone()),
            dir,
            marker,
            root,
            _cluster: cluster,
            _nodes: nodes,
        };
        eventually(SETTLE, "5 ready nodes", || {
            let nodes = canopy_json(&testbed.root.url, &["get", "nodes", "-A"]);
            (nodes.iter().filter(|n| n["state"] == "Ready").count() == NODES).then_some(())
        });
        testbed
    }

    /// Revision `revision` of the web service (its page says which), with `strategy`
    /// (YAML at the service's indentation, or nothing for the defaults).
    fn apply(&self, revision: u32, strategy: &str) {
        let www = self.dir.path().join("www");
        std::fs::create_dir_all(&www).unwrap();
        let www = www.display();
        let marker = &self.marker;
        let yaml = format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  services:\n\
             \x20 - name: web\n    runtime: process\n    replicas: 4\n    restartPolicy: always\n\
             \x20   resources: {{cpu: 50m, memory: 16Mi}}\n    ports: [{{port: {PORT}}}]\n\
             \x20   env: {{REVISION: \"{revision}\"}}\n\
             \x20   constraints:\n    - spread: {{maxPerNode: 1}}\n\
             \x20   readinessProbe: {{httpGet: {{path: /index.html, port: {PORT}}}, periodSeconds: 1}}\n\
             {strategy}\
             \x20   command: [/bin/sh, -c, 'd={www}/$CANOPY_INSTANCE; mkdir -p $d; echo revision-$REVISION > $d/index.html; exec busybox httpd -f -p $CANOPY_NODE_ADDRESS:{PORT} -h $d', {marker}]\n"
        );
        let file = self.dir.path().join("app.yaml");
        std::fs::write(&file, yaml).unwrap();
        canopy_ok(&self.root.url, &["apply", "-f", file.to_str().unwrap()]);
    }

    fn instances(&self) -> Vec<Value> {
        canopy_json(&self.root.url, &["get", "instances"])
    }

    fn rollout(&self, verb: &str) -> String {
        canopy_ok(&self.root.url, &["rollout", verb, "app/web"])
    }
}

/// Serving: running, not being stopped, passing its readiness probe.
fn ready(instance: &Value) -> bool {
    instance["state"] == "Running" && instance["desired"] == "Run" && instance["ready"] == true
}

fn hashes(instances: &[Value]) -> BTreeSet<String> {
    instances
        .iter()
        .filter_map(|i| i["templateHash"].as_str().map(str::to_string))
        .collect()
}

/// Samples the API every 100 ms until every live instance runs a template not in `old`
/// and four of them are ready: the fewest ready instances seen, and the new template.
fn sample_until_rolled(bed: &Testbed, old: &BTreeSet<String>) -> (usize, String) {
    let deadline = Instant::now() + SETTLE;
    let mut fewest = usize::MAX;
    loop {
        let tick = Instant::now();
        let instances = bed.instances();
        let serving = instances.iter().filter(|i| ready(i)).count();
        fewest = fewest.min(serving);
        let live: Vec<&Value> = instances.iter().filter(|i| i["desired"] == "Run").collect();
        let new: BTreeSet<&str> = live
            .iter()
            .filter_map(|i| i["templateHash"].as_str())
            .filter(|h| !old.contains(*h))
            .collect();
        if live.len() == 4 && serving == 4 && new.len() == 1 && live.iter().all(|i| ready(i)) {
            let hash = live[0]["templateHash"].as_str().unwrap().to_string();
            if !old.contains(&hash) {
                return (fewest, hash);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not finish within {SETTLE:?}: {instances:#?}"
        );
        // Paces the sampling (not a wait for anything): one look every 100 ms.
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }
}

fn four_ready(bed: &Testbed) -> BTreeSet<String> {
    eventually(SETTLE, "4 ready replicas", || {
        let instances = bed.instances();
        (instances.iter().filter(|i| ready(i)).count() == 4).then(|| hashes(&instances))
    })
}

#[test]
fn a_rolling_update_of_four_replicas_never_has_fewer_than_three_ready() {
    let bed = Testbed::start();
    bed.apply(1, "");
    let first = four_ready(&bed);
    assert_eq!(first.len(), 1, "{first:?}");

    bed.apply(2, "");
    let (fewest, second) = sample_until_rolled(&bed, &first);
    assert!(fewest >= 3, "only {fewest} ready during the rollout");
    // Every replica serves the new page.
    for instance in bed.instances().iter().filter(|i| i["desired"] == "Run") {
        let address = instance["node"].as_str().unwrap().trim_start_matches('n');
        let address = format!("127.0.0.{}", 40 + address.parse::<u16>().unwrap());
        let page = fetch(&address);
        assert_eq!(page.trim(), "revision-2", "{instance}");
    }
    let status = bed.rollout("status");
    assert!(status.contains("revision 2: Complete"), "{status}");
    assert!(status.contains(&second), "{status}");
    assert!(status.contains("4 of 4 updated"), "{status}");
}

#[test]
fn a_paused_rollout_stands_still_until_resumed_and_undo_goes_back() {
    let bed = Testbed::start();
    bed.apply(1, "");
    let first = four_ready(&bed);

    // Paused before the change: nothing of the new revision starts, the old ones stay.
    let paused = bed.rollout("pause");
    assert!(paused.contains("Paused"), "{paused}");
    bed.apply(
        2,
        "    strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}\n",
    );
    holds_for(
        Duration::from_secs(3),
        "the paused rollout stands still",
        || {
            let instances = bed.instances();
            hashes(&instances) == first && instances.iter().filter(|i| ready(i)).count() == 4
        },
    );
    let resumed = bed.rollout("resume");
    assert!(!resumed.contains("Paused"), "{resumed}");
    // No unavailability allowed: all four stay ready throughout.
    let (fewest, second) = sample_until_rolled(&bed, &first);
    assert_eq!(
        fewest, 4,
        "maxUnavailable 0 let an instance go before its successor was ready"
    );

    // Undo: back to the first revision's spec, as a new revision.
    let undone = bed.rollout("undo");
    assert!(undone.contains("revision 3"), "{undone}");
    let old: BTreeSet<String> = [second].into();
    let (fewest, back) = sample_until_rolled(&bed, &old);
    assert!(first.contains(&back), "undo ran {back}, not {first:?}");
    assert_eq!(fewest, 4);
    let status = bed.rollout("status");
    assert!(status.contains("revision 3: Complete"), "{status}");
}

/// One HTTP GET of `/index.html` from `address`: the body.
fn fetch(address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((address, PORT)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
        .expect("request");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("response");
    reply
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}
