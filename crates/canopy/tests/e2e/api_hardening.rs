//! The API's hardening against a real `canopy up`.
//!
//! The security review's outage, replayed: hostile descriptors posted at once by many clients
//! must not delay the tier links' heartbeats. Before the fix, two `a: [[[…` requests stalled
//! the process for 15 s, its node and cluster were declared unreachable and every workload was
//! restarted. And `--tls-cert/--tls-key`: the API over TLS while the local cluster still links.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

const SETTLE: Duration = Duration::from_secs(30);
/// How long the hostile load lasts: several heartbeat deadlines.
const LOAD: Duration = Duration::from_secs(12);
const CLIENTS: usize = 6;

/// The descriptors that cost the most: quadratic nesting, nesting right at the limit (what the
/// pre-scan lets the parser see), and an alias bomb, each close to the 1 MiB size limit.
fn hostile_bodies() -> Vec<String> {
    let size = 1000 * 1024;
    let deep = format!("a: {}", "[".repeat(size));
    let unit = format!("{}{},", "[".repeat(63), "]".repeat(63));
    let at_limit = format!("a: [{}]", unit.repeat(size / unit.len()));
    let mut bomb = format!("big: &b {}\nl:\n", "x".repeat(500 * 1024));
    for _ in 0..10_000 {
        bomb.push_str("- *b\n");
    }
    vec![deep, at_limit, bomb]
}

/// One POST over a fresh connection with `token`; the status code (0 if the connection failed).
fn post(port: u16, token: &str, body: &str) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let head = format!(
        "POST /api/v1/apply HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() || stream.write_all(body.as_bytes()).is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

fn up(data: &Path) -> Daemon {
    let mut args = strings(&["up", "--listen", "127.0.0.1:0", "--data"]);
    args.push(data.display().to_string());
    // The rate limit is not what protects heartbeats: lift it so every request is parsed.
    args.extend(strings(&["--write-rate-limit", "100000"]));
    args.extend(fast_timing());
    Daemon::start(&args, true)
}

#[test]
fn hostile_descriptors_under_load_never_make_the_node_unreachable_nor_restart_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let marker = format!("canopy-api-load-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = up(&dir.path().join("data"));
    let yaml = format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: steady}}\nspec:\n  services:\n    - name: sleeper\n      runtime: process\n      command: [/bin/sh, -c, 'date +%s%N >> {s}/$CANOPY_INSTANCE; exec sleep 600', {marker}]\n      resources: {{cpu: 10m, memory: 8Mi}}\n",
        s = stamps.display()
    );
    let file = dir.path().join("steady.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(&daemon.url, &["apply", "-f", file.to_str().unwrap()]);
    let id = eventually(SETTLE, "the workload running", || {
        let instances = canopy_json(&daemon.url, &["get", "instances"]);
        match instances.as_slice() {
            [one] if one["state"] == "Running" => one["id"].as_str().map(str::to_string),
            _ => None,
        }
    });

    let bodies = Arc::new(hostile_bodies());
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let port = daemon.port();
    // Authenticated, so that each body reaches the parser (`canopy up` logged the CLI in).
    let token = Arc::new(support::token_for(&daemon.url));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let (bodies, stop, answered) = (bodies.clone(), stop.clone(), answered.clone());
            let token = token.clone();
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                let mut n = k;
                while !stop.load(Ordering::Relaxed) {
                    let status = post(port, &token, &bodies[n % bodies.len()]);
                    answered.fetch_add(1, Ordering::Relaxed);
                    statuses.push(status);
                    n += 1;
                }
                statuses
            })
        })
        .collect();

    // Throughout the load, the node and its cluster stay Ready (the deadline is 2.5 s of
    // silence, at 200 ms heartbeats).
    holds_for(LOAD, "node and cluster Ready under API load", || {
        let ready = |kind: &str| {
            let all = canopy_json(&daemon.url, &["get", kind]);
            !all.is_empty() && all.iter().all(|x| x["state"] == "Ready")
        };
        ready("nodes") && ready("clusters")
    });
    stop.store(true, Ordering::Relaxed);
    let statuses: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();

    // The load was real and each hostile descriptor got a 4xx (or a 503 "busy" when the
    // parsing slots stayed taken), never a success or a dropped connection.
    assert!(
        statuses.len() >= CLIENTS * 2,
        "only {} requests answered",
        statuses.len()
    );
    assert!(
        statuses.iter().all(|s| (400..500).contains(s) || *s == 503),
        "statuses: {statuses:?}"
    );
    assert!(
        statuses.contains(&400),
        "no descriptor was judged: {statuses:?}"
    );

    // The workload is the same instance, started once.
    let instances = canopy_json(&daemon.url, &["get", "instances"]);
    assert_eq!(instances.len(), 1, "{instances:#?}");
    assert_eq!(instances[0]["id"].as_str(), Some(id.as_str()));
    assert_eq!(instances[0]["state"], "Running");
    let starts = std::fs::read_to_string(stamps.join(&id)).unwrap();
    assert_eq!(
        starts.lines().count(),
        1,
        "started more than once: {starts}"
    );
}

/// `canopy up --tls-cert --tls-key`: the API answers over TLS (checked by curl trusting only
/// this certificate), its local cluster and node still link, and plain HTTP gets no answer.
#[test]
fn up_serves_its_api_over_tls_and_its_node_still_links() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut args = strings(&["up", "--listen", "127.0.0.1:0", "--data"]);
    args.push(dir.path().join("data").display().to_string());
    args.extend(strings(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]));
    args.extend(fast_timing());
    let daemon = Daemon::start(&args, true);
    assert!(
        daemon.url.starts_with("https://127.0.0.1:"),
        "{}",
        daemon.url
    );

    let bearer = format!("Authorization: Bearer {}", support::token_for(&daemon.url));
    let curl = |url: &str| {
        std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                cert.to_str().unwrap(),
                "-H",
                &bearer,
                url,
            ])
            .output()
            .expect("curl runs")
    };
    let nodes_url = format!("{}/api/v1/nodes", daemon.url);
    eventually(SETTLE, "the node Ready, read over TLS", || {
        let output = curl(&nodes_url);
        let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let nodes = nodes.as_array()?;
        (nodes.len() == 1 && nodes[0]["state"] == "Ready").then_some(())
    });
    let plain = curl(&format!("http://127.0.0.1:{}/healthz", daemon.port()));
    assert!(
        !String::from_utf8_lossy(&plain.stdout).contains("ok"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&plain.stdout)
    );
}
