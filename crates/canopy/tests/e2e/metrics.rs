//! Metrics on every tier (issue 16), scraped by a real Prometheus (Debian's `prometheus`):
//! a root, a cluster and a node on loopback, each a target (the root's `/metrics` with a
//! viewer's API token, the cluster's and node's on `--metrics-listen`). Prometheus' query
//! API shows all three up, then a deployment moves the `canopy_*` series: instances
//! Running from 0 to the replicas, placement latencies and start latencies counted,
//! scheduling attempts made, heartbeats and bytes over the links.

use crate::support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{canopy_ok, eventually, start_cluster, start_node, start_root};

const SETTLE: Duration = Duration::from_secs(60);
const REPLICAS: usize = 2;

/// `GET path` on `address` over HTTP/1.0 (no chunked answers): the status and the body.
fn get(address: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n{auth}\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// `host:port` of an `http://host:port/...` URL.
fn authority(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Prometheus started on a free loopback port with its own storage; killed when dropped.
struct Prometheus {
    child: Child,
    address: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(config: &Path, storage: &Path) -> Prometheus {
        let binary = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("prometheus is installed (Debian package `prometheus`, in scripts/test)");
        // Prometheus cannot report a port it picked: take a free one, and try again should
        // another process grab it first.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let address = format!("127.0.0.1:{port}");
            let mut child = Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", storage.display()))
                .arg(format!("--web.listen-address={address}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("prometheus starts");
            let ready = eventually(SETTLE, "prometheus to answer or exit", || {
                if child.try_wait().expect("waitable").is_some() {
                    return Some(false);
                }
                get(&address, "/-/ready", None)
                    .map(|(status, _)| status == 200)
                    .filter(|ready| *ready)
            });
            if ready {
                return Prometheus { child, address };
            }
        }
        panic!("prometheus did not start on a free port in three tries");
    }

    /// The instant vector of `query`: each series' labels and value.
    fn query(&self, query: &str) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}", percent_encoded(query));
        let Some((200, body)) = get(&self.address, &path, None) else {
            return Vec::new();
        };
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        answer["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| {
                        let value = s["value"][1].as_str()?.parse().ok()?;
                        Some((s["metric"].clone(), value))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The sum of `query`'s series (None when there are none).
    fn sum(&self, query: &str) -> Option<f64> {
        let series = self.query(query);
        (!series.is_empty()).then(|| series.iter().map(|(_, v)| v).sum())
    }
}

#[test]
fn prometheus_scrapes_every_tier_and_sees_a_deployment_move_the_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = start_root(dir.path());
    let cluster = start_cluster(
        dir.path(),
        &root,
        "c0",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let node = start_node(
        &dir.path().join("n0"),
        &cluster,
        "n0",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    assert!(!cluster.metrics_url.is_empty() && !node.metrics_url.is_empty());

    // The root's /metrics wants a token; a viewer's (of one namespace) is enough.
    let root_address = authority(&root.url);
    let (status, _) = get(&root_address, "/metrics", None).expect("the root answers");
    assert_eq!(status, 401, "the root's /metrics without a token");
    let created = canopy_ok(
        &root.url,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--namespace",
            "default",
            "--ttl",
            "1h",
            "-o",
            "json",
        ],
    );
    let created: Value = serde_json::from_str(&created).expect("a token as JSON");
    let token = created["token"].as_str().expect("a token").to_string();
    let (status, text) = get(&root_address, "/metrics", Some(&token)).expect("answers");
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("# TYPE canopy_root_instances gauge"),
        "{text}"
    );

    let config = dir.path().join("prometheus.yml");
    let target = |job: &str, address: &str, auth: &str| {
        format!(
            "  - job_name: {job}\n    metrics_path: /metrics\n{auth}    static_configs:\n      - targets: ['{address}']\n"
        )
    };
    let root_auth = format!("    authorization:\n      credentials: {token}\n");
    let yaml = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{}{}{}",
        target("root", &root_address, &root_auth),
        target("cluster", &authority(&cluster.metrics_url), ""),
        target("node", &authority(&node.metrics_url), ""),
    );
    std::fs::write(&config, yaml).expect("prometheus.yml");
    let prometheus = Prometheus::start(&config, &dir.path().join("tsdb"));

    eventually(SETTLE, "prometheus to scrape all three tiers", || {
        let up = prometheus.query("up");
        let jobs_up: Vec<String> = up
            .iter()
            .filter(|(_, value)| *value == 1.0)
            .filter_map(|(labels, _)| labels["job"].as_str().map(str::to_string))
            .collect();
        ["root", "cluster", "node"]
            .iter()
            .all(|job| jobs_up.iter().any(|j| j == job))
            .then_some(())
    });
    // Before the deployment nothing runs.
    let running =
        |tier: &str| prometheus.sum(&format!("canopy_{tier}_instances{{state=\"Running\"}}"));
    eventually(SETTLE, "the Running gauges scraped at 0", || {
        (running("root") == Some(0.0)
            && running("cluster") == Some(0.0)
            && running("node") == Some(0.0))
        .then_some(())
    });
    let placed_before = prometheus
        .sum("canopy_root_placement_latency_seconds_count")
        .unwrap_or(0.0);
    assert_eq!(placed_before, 0.0, "nothing was placed yet");

    let descriptor = dir.path().join("app.yaml");
    std::fs::write(
        &descriptor,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: metered, namespace: default}}\nspec:\n  services:\n  - name: loop\n    runtime: process\n    command: ['/bin/sh', '-c', 'exec sleep 600']\n    replicas: {REPLICAS}\n    resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .expect("descriptor");
    canopy_ok(
        &root.url,
        &["apply", "-f", &descriptor.display().to_string()],
    );

    let replicas = REPLICAS as f64;
    eventually(
        SETTLE,
        "Running instances on every tier in Prometheus",
        || {
            (running("root") == Some(replicas)
                && running("cluster") == Some(replicas)
                && running("node") == Some(replicas))
            .then_some(())
        },
    );
    let at_least = |query: &str, least: f64| {
        eventually(SETTLE, query, || {
            prometheus.sum(query).filter(|v| *v >= least).map(|_| ())
        })
    };
    at_least(
        "canopy_root_placement_latency_seconds_count{runtime=\"process\"}",
        replicas,
    );
    at_least(
        "canopy_node_runtime_start_latency_seconds_count{runtime=\"process\"}",
        replicas,
    );
    at_least("canopy_root_scheduling_attempts_total", replicas);
    at_least("canopy_cluster_scheduling_attempts_total", replicas);
    // The links: heartbeats both ways, bytes both ways, up on every end.
    at_least(
        "canopy_cluster_link_heartbeats_total{peer_tier=\"root\"}",
        1.0,
    );
    at_least("canopy_root_link_heartbeats_total{peer=\"c0\"}", 1.0);
    at_least(
        "canopy_node_link_heartbeats_total{peer_tier=\"cluster\"}",
        1.0,
    );
    at_least("canopy_cluster_link_heartbeats_total{peer=\"n0\"}", 1.0);
    at_least(
        "canopy_root_link_bytes_total{peer=\"c0\",direction=\"sent\"}",
        1.0,
    );
    at_least("canopy_node_link_bytes_total{direction=\"received\"}", 1.0);
    at_least("canopy_node_link_up", 1.0);
    at_least("canopy_cluster_nodes{state=\"Ready\"}", 1.0);
    // The placement latency is a real duration: positive, and under the test's wait.
    let sum = prometheus
        .sum("canopy_root_placement_latency_seconds_sum")
        .expect("a placement latency sum");
    assert!(sum > 0.0 && sum < SETTLE.as_secs_f64() * replicas, "{sum}");

    // What Prometheus scraped and what the Grafana dashboard queries is what the docs list.
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let listed = std::fs::read_to_string(docs.join("metrics.md")).expect("docs/metrics.md");
    let documented = |name: &str| {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        listed.contains(&format!("`{family}`"))
            || listed.contains(&format!("{family}`,"))
            || family.find("_link_").is_some_and(|at| {
                listed.contains(&format!("`{}*`", &family[..at + "_link_".len()]))
            })
    };
    let (_, names) = get(&prometheus.address, "/api/v1/label/__name__/values", None)
        .expect("the names Prometheus knows");
    let names: Value = serde_json::from_str(&names).expect("JSON");
    let scraped: Vec<&str> = names["data"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .filter(|n| n.starts_with("canopy_"))
        .collect();
    assert!(scraped.len() > 20, "{scraped:?}");
    let undocumented: Vec<&&str> = scraped.iter().filter(|n| !documented(n)).collect();
    assert!(
        undocumented.is_empty(),
        "scraped, not in docs/metrics.md: {undocumented:?}"
    );
    let dashboard = std::fs::read_to_string(docs.join("grafana-dashboard.json"))
        .expect("docs/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            queried.extend(
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|word| word.starts_with("canopy_"))
                    .map(str::to_string),
            );
        }
    }
    assert!(!queried.is_empty());
    let unknown: Vec<&String> = queried.iter().filter(|n| !documented(n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries undocumented series: {unknown:?}"
    );
    drop(prometheus);
    drop(node);
}
