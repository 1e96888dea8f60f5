//! Calls between services from the overlay's traffic: a client process fetches from a
//! server process by its service name, through its node's proxy, and the root's
//! `GET /api/v1/applications/default/talk/traffic` shows the edge client → server with the
//! bytes each way (the caller found by its socket: the process of its instance holding it).

use crate::support;

use std::path::Path;
use std::time::Duration;
use support::{KillOnDrop, api_get, canopy_json, eventually};

const SETTLE: Duration = Duration::from_secs(30);
const PORT: u16 = 18091;

#[test]
fn a_call_by_name_becomes_an_edge_from_caller_to_callee_with_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-traffic-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = support::start_root(dir.path());
    let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
    let _node = support::start_node(
        &dir.path().join("n"),
        &cluster,
        "n",
        &[
            "--overlay-network",
            "127.204.0.0",
            "--overlay-address",
            "127.0.0.1",
        ],
    );
    eventually(SETTLE, "a ready node", || {
        let nodes = canopy_json(&root.url, &["get", "nodes", "-A"]);
        nodes.iter().any(|n| n["state"] == "Ready").then_some(())
    });
    support::apply(
        &root.url,
        dir.path(),
        &talking_application(dir.path(), &marker),
    );

    let edge = eventually(SETTLE, "the client → server edge at the root", || {
        let answer = api_get(&root.url, "/api/v1/applications/default/talk/traffic");
        answer["edges"]
            .as_array()?
            .iter()
            .find(|e| {
                e["from"] == "default/talk/client"
                    && e["to"] == "default/talk/server"
                    && e["bytesFromCallee"].as_u64().unwrap_or(0) > 1000
            })
            .cloned()
    });
    assert!(edge["connections"].as_u64().unwrap() >= 1, "{edge}");
    assert!(
        edge["bytesToCallee"].as_u64().unwrap() > 0,
        "the requests went up too: {edge}"
    );
}

/// Application `talk`: `client` fetches a page from `server` by its service name every
/// 200 ms, through the node's DNS and proxy. `marker` is in both command lines.
pub fn talking_application(dir: &Path, marker: &str) -> String {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(
        www.join("index.html"),
        "a page the client fetches\n".repeat(40),
    )
    .unwrap();
    let www = www.display();
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: talk}}\nspec:\n  services:\n\
         \x20 - name: server\n    runtime: process\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 100m, memory: 16Mi}}\n    ports: [{{port: {PORT}}}]\n\
         \x20   command: [/bin/sh, -c, 'busybox httpd -f -p 127.0.0.1:{PORT} -h {www}; true', {marker}]\n\
         \x20 - name: client\n    runtime: process\n    resources: {{cpu: 100m, memory: 16Mi}}\n\
         \x20   command: [/bin/sh, -c, 'while true; do ip=$(busybox nslookup -type=A server.talk.default.canopy $CANOPY_DNS | awk \"/^Address/ {{a=\\$2}} END {{print a}}\"); busybox wget -q -O /dev/null http://$ip:{PORT}/; sleep 0.2; done', {marker}]\n"
    )
}
