//! A rolling update on real tiers: four nodes run one replica each of busybox httpd with a
//! readiness probe on its HTTP port (`/ready`, which appears two seconds after each start).
//! Changing the spec rolls the four replicas over with the default 25 % / 25 %: sampled
//! every 100 ms through the API, never fewer than 3 are ready, and the overlay (each node's
//! DNS and L4 proxy) never sends a connection to a replica that is not ready yet: such a
//! replica answers `unready-...`, a ready one `ready-VERSION-ID`.

use crate::support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{KillOnDrop, api_get, canopy_json, eventually, strings};

const SETTLE: Duration = Duration::from_secs(60);
const PORT: u16 = 18081;
const NODES: usize = 4;
/// The first node's DNS (its overlay range is 127.201.0.0/24).
const DNS: &str = "127.201.0.1:53";

fn app_yaml(www: &Path, marker: &str, version: u32) -> String {
    let www = www.display();
    // The page says `unready` until the readiness file exists; both change together, the
    // page first, so whatever passes the probe already answers `ready`. Three failures in a
    // row make a replica unready: one slow answer on a loaded machine does not.
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  services:\n\
         \x20 - name: web\n    runtime: process\n    replicas: 4\n\
         \x20   resources: {{cpu: 10m, memory: 16Mi}}\n    ports: [{{port: {PORT}}}]\n\
         \x20   env: {{VERSION: \"{version}\"}}\n\
         \x20   constraints:\n    - spread: {{maxPerNode: 1}}\n\
         \x20   readinessProbe:\n      httpGet: {{path: /ready, port: {PORT}}}\n\
         \x20     periodSeconds: 1\n      failureThreshold: 3\n\
         \x20   command: [/bin/sh, -c, 'd={www}/$CANOPY_INSTANCE; mkdir -p $d; echo unready-$VERSION-$CANOPY_INSTANCE > $d/index.html; (sleep 2; echo ready-$VERSION-$CANOPY_INSTANCE > $d/index.html; touch $d/ready) & busybox httpd -f -p $CANOPY_NODE_ADDRESS:{PORT} -h $d; true', {marker}]\n"
    )
}

/// One HTTP GET of `/` through `address`: the page's first line, or why there is none.
fn fetch(address: Ipv4Addr) -> Result<String, String> {
    let target = SocketAddr::from((address, PORT));
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| format!("timeout: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    reply
        .lines()
        .find(|l| l.starts_with("ready-") || l.starts_with("unready-"))
        .map(str::to_string)
        .ok_or_else(|| format!("no page in {reply:?}"))
}

/// Instances counted as available: running, ready, and not asked to stop.
fn ready(instances: &Value) -> usize {
    instances
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["state"] == "Running" && i["ready"] == true && i["desired"] == "Run")
        .count()
}

fn rollout(server: &str) -> Value {
    api_get(server, "/api/v1/services/default/app/web/rollout")
}

#[test]
fn a_rolling_update_keeps_three_of_four_ready_and_routes_only_to_ready_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-rollout-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = support::start_root(dir.path());
    let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
    let _nodes: Vec<_> = (0..NODES)
        .map(|n| {
            let extra = strings(&[
                "--overlay-network",
                &format!("127.201.{n}.0"),
                "--overlay-address",
                &format!("127.0.0.{}", 10 + n),
            ]);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let name = format!("s{n}");
            support::start_node(&dir.path().join(&name), &cluster, &name, &extra)
        })
        .collect();
    eventually(SETTLE, "4 ready nodes", || {
        let nodes = canopy_json(&root.url, &["get", "nodes", "-A"]);
        (nodes.iter().filter(|n| n["state"] == "Ready").count() == NODES).then_some(())
    });
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    support::apply(&root.url, dir.path(), &app_yaml(&www, &marker, 1));
    eventually(SETTLE, "4 ready replicas of version 1", || {
        let status = rollout(&root.url);
        (status["phase"] == "Complete" && status["updatedReady"] == 4).then_some(())
    });
    let address = eventually(SETTLE, "the service's name", || {
        support::dns::resolve(DNS, "web.app.default.canopy").ok()
    });
    eventually(SETTLE, "version 1 through the proxy", || {
        fetch(address)
            .ok()
            .filter(|page| page.starts_with("ready-1-"))
    });

    // Sample readiness every 100 ms and fetch through the proxy without pause, meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, url) = (stop.clone(), root.url.clone());
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                let at = Instant::now();
                samples.push(ready(&api_get(&url, "/api/v1/instances?namespace=default")));
                std::thread::sleep(Duration::from_millis(100).saturating_sub(at.elapsed()));
            }
            samples
        })
    };
    let pages = Arc::new(Mutex::new(Vec::new()));
    let fetcher = {
        let (stop, pages) = (stop.clone(), pages.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let page = fetch(address);
                pages.lock().unwrap().push(page);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    support::apply(&root.url, dir.path(), &app_yaml(&www, &marker, 2));
    let done = eventually(SETTLE, "the rollout to version 2 complete", || {
        let status = rollout(&root.url);
        let complete = status["phase"] == "Complete"
            && status["updatedReady"] == 4
            && status["old"] == 0
            && status["revision"] == 2;
        complete.then_some(status)
    });
    // A little longer on version 2 alone, then stop sampling.
    eventually(SETTLE, "version 2 through the proxy", || {
        let pages = pages.lock().unwrap();
        let tail = pages.iter().rev().take(10).collect::<Vec<_>>();
        (tail.len() == 10
            && tail
                .iter()
                .all(|p| p.as_deref().is_ok_and(|p| p.starts_with("ready-2-"))))
        .then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    let samples = sampler.join().unwrap();
    fetcher.join().unwrap();
    let pages = pages.lock().unwrap();

    assert!(samples.len() >= 20, "{} samples", samples.len());
    let fewest = samples.iter().min().copied().unwrap_or(0);
    assert!(
        fewest >= 3,
        "{fewest} ready at one sample (of {}): {samples:?}; rollout {done}",
        samples.len()
    );
    let unready: Vec<&String> = pages
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .filter(|p| p.starts_with("unready-"))
        .collect();
    assert!(
        unready.is_empty(),
        "routed to unready replicas: {unready:?}"
    );
    let served = |version: &str| {
        pages
            .iter()
            .filter(|p| p.as_deref().is_ok_and(|p| p.starts_with(version)))
            .count()
    };
    assert!(
        served("ready-1-") > 0 && served("ready-2-") > 0,
        "the proxy served both versions during the rollout"
    );
    // A connection may fail while an old replica stops under it (its route goes with its
    // stop report); most go through.
    let failed: Vec<&String> = pages.iter().filter_map(|p| p.as_ref().err()).collect();
    assert!(
        failed.len() * 2 <= pages.len(),
        "{} of {} connections failed during the rollout: {failed:?}",
        failed.len(),
        pages.len()
    );
    println!(
        "rollout: {} samples, fewest ready {fewest}; {} connections, {} failed",
        samples.len(),
        pages.len(),
        failed.len()
    );
}
