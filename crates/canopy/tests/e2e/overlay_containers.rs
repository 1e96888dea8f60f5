//! Service names from inside containers: a node whose overlay range is off loopback (made
//! local to the host by one route) gives its containers its DNS in `resolv.conf`; a busybox
//! client container fetches from a busybox httpd server container by name, through the
//! node's proxy. Needs root, runc, the CNI plugins and the registry tools, as the other
//! container tests (CI has them); a lack fails the test.

use crate::support;
use crate::support::registry;
use support::ports::published_port;

use registry::{Registry, Residue, free_subnet, require};
use std::process::Command;
use std::time::Duration;
use support::{canopy, canopy_json, canopy_ok, eventually, start_cluster, start_root};

const SETTLE: Duration = Duration::from_secs(60);

/// The overlay range's local route, removed on drop (pass or fail; a node killed before it
/// could remove it leaves it).
struct RangeRoute(String);

impl RangeRoute {
    /// A /24 in 100.64.0.0/16 that no local route covers yet.
    fn free() -> RangeRoute {
        let local = Command::new("ip")
            .args(["route", "show", "table", "local"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let network = (0..250)
            .map(|i| (std::process::id() + i) % 250 + 1)
            .map(|x| format!("100.64.{x}.0"))
            .find(|n| !local.contains(&n[..n.len() - 1]))
            .expect("a free /24 in 100.64.0.0/16");
        RangeRoute(network)
    }

    fn dns(&self) -> String {
        format!("{}1", &self.0[..self.0.len() - 1])
    }
}

impl Drop for RangeRoute {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", "local", &format!("{}/24", self.0)])
            .args(["dev", "lo", "table", "local"])
            .output();
    }
}

fn local_routes() -> String {
    let out = Command::new("ip")
        .args(["route", "show", "table", "local"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_container_reaches_a_service_by_name_through_its_node_s_dns_and_proxy() {
    require();
    let registry = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let range = RangeRoute::free();
    let node_dir = dir.path().join("node");
    let subnet = free_subnet();
    let name = format!("names-{}", std::process::id());
    // Dropped after the node (declared before it): containers, CNI rules, bridge, route.
    let _residue = Residue::new(&node_dir, &name, &subnet);
    let registry_address = format!("127.0.0.1:{}", registry.port);
    let mut node = support::start_node(
        &node_dir,
        &cluster,
        &name,
        &[
            "--insecure-registry",
            &registry_address,
            "--container-subnet",
            &subnet,
            "--overlay-network",
            &range.0,
        ],
    );
    let descriptor = format!(
        r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: web}}
spec:
  services:
    - name: server
      runtime: container
      image: 127.0.0.1:{registry}/busybox:latest
      command: [sh, -c, "mkdir -p /dev/shm/www && echo served by $CANOPY_INSTANCE > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"]
      ports: [{{port: 8080}}]
      resources: {{cpu: 100m, memory: 32Mi}}
    - name: client
      runtime: container
      image: 127.0.0.1:{registry}/busybox:latest
      command: [sh, -c, "exec sleep 3600"]
      resources: {{cpu: 100m, memory: 32Mi}}
"#,
        registry = registry.port
    );
    let running = |service: &str| {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["service"] == service && i["state"] == "Running")
            .and_then(|i| Some(i["id"].as_str()?.to_string()))
    };
    // The server first: `CANOPY_SVC_*` holds the services the node's cluster knows when an
    // instance first starts (as Kubernetes' service variables, those made before the pod).
    let file = dir.path().join("web.yaml");
    let server_only = descriptor
        .split("    - name: client")
        .next()
        .unwrap_or_default()
        .to_string();
    std::fs::write(&file, server_only).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    eventually(SETTLE, "the server running", || running("server"));
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let (server, client) = eventually(SETTLE, "server and client running", || {
        Some((running("server")?, running("client")?))
    });
    assert!(
        local_routes().contains(&format!("local {}/24 dev lo", range.0)),
        "the overlay range is local to the host:\n{}",
        local_routes()
    );

    // The container's resolver is its node's DNS, reached through its gateway.
    let resolv = canopy_ok(
        &root.url,
        &["exec", &client, "--", "cat", "/etc/resolv.conf"],
    );
    assert_eq!(
        resolv.lines().find(|l| l.starts_with("nameserver")),
        Some(format!("nameserver {}", range.dns()).as_str()),
        "{resolv}"
    );

    // By name, from inside the client's network namespace, through the proxy.
    // busybox-static's own wget cannot resolve (its static glibc crashes in getaddrinfo),
    // so the name is resolved by busybox nslookup, through the same resolv.conf.
    let page = exec_until(
        &root.url,
        &client,
        "ip=$(nslookup server.web.default.canopy | awk '/^Address/ {a=$2} END {print a}') \
         && wget -qO- http://$ip:8080/",
    );
    assert_eq!(page, format!("served by {server}\n"));

    // The wide listing names the service and where its instance is.
    let server_ip = canopy_json(&root.url, &["get", "instances"])
        .into_iter()
        .find(|i| i["id"] == server.as_str())
        .and_then(|i| Some(i["details"]["addresses"][0].as_str()?.to_string()))
        .expect("the server container's address");
    let wide = canopy_ok(&root.url, &["get", "services", "-o", "wide"]);
    let row = wide
        .lines()
        .find(|l| l.contains("web/server"))
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(row.contains("server.web.default.canopy"), "{wide}");
    assert!(row.contains(&format!("0={server_ip}:8080")), "{wide}");

    // An unknown service is NXDOMAIN for the container too.
    let unknown = canopy(
        &root.url,
        &[
            "exec",
            &client,
            "--",
            "nslookup",
            "nosuch.web.default.canopy",
        ],
    );
    assert!(!unknown.status.success(), "{unknown:?}");

    // Every service of the application is in the environment with its name's address.
    let env = canopy_ok(
        &root.url,
        &[
            "exec",
            &client,
            "--",
            "sh",
            "-c",
            "echo $CANOPY_SVC_SERVER_ADDR",
        ],
    );
    let server_addr = env.trim().to_string();
    assert!(
        server_addr.starts_with(&range.0[..range.0.len() - 1]) && server_addr.ends_with(":8080"),
        "CANOPY_SVC_SERVER_ADDR={server_addr:?}"
    );
    let page = exec_until(
        &root.url,
        &client,
        &format!("wget -qO- http://{server_addr}/"),
    );
    assert_eq!(page, format!("served by {server}\n"));

    // An Oakestra SLA's rr_ip is a virtual address of its service on the client's node.
    let rr_ip = format!("10.30.{}.{}", std::process::id() % 200 + 20, 7);
    let _rr_route = FixedRoute(rr_ip.clone());
    let sla = serde_json::json!({
        "sla_version": "v2.0",
        "customerID": "Admin",
        "applications": [{
            "applicationID": "",
            "application_name": "sla",
            "application_namespace": "default",
            "application_desc": "an SLA with a fixed round-robin address",
            "microservices": [
                {
                    "microserviceID": "",
                    "microservice_name": "backend",
                    "microservice_namespace": "default",
                    "virtualization": "container",
                    "cmd": ["sh", "-c", "mkdir -p /dev/shm/www && echo backend at the rr_ip > /dev/shm/www/index.html && exec httpd -f -p 8080 -h /dev/shm/www"],
                    "memory": 32,
                    "vcpus": 0.1,
                    "code": format!("127.0.0.1:{}/busybox:latest", registry.port),
                    "port": format!("{}:8080", published_port()),
                    "addresses": {"rr_ip": rr_ip}
                },
                {
                    "microserviceID": "",
                    "microservice_name": "caller",
                    "microservice_namespace": "default",
                    "virtualization": "container",
                    "cmd": ["sh", "-c", "exec sleep 3600"],
                    "memory": 32,
                    "vcpus": 0.1,
                    "code": format!("127.0.0.1:{}/busybox:latest", registry.port)
                }
            ]
        }]
    });
    let sla_file = dir.path().join("sla.json");
    std::fs::write(&sla_file, sla.to_string()).unwrap();
    canopy_ok(&root.url, &["apply", "-f", sla_file.to_str().unwrap()]);
    let caller = eventually(SETTLE, "the SLA's caller running", || running("caller"));
    let page = exec_until(
        &root.url,
        &caller,
        &format!("wget -qO- http://{rr_ip}:8080/"),
    );
    assert_eq!(page, "backend at the rr_ip\n");
    assert!(
        local_routes().contains(&format!("local {rr_ip} dev lo")),
        "{}",
        local_routes()
    );

    // A node that stops releases the range's route and the fixed address's.
    node.terminate(Duration::from_secs(20));
    assert!(
        !local_routes().contains(&format!("local {}/24", range.0)),
        "the range's route outlived the node:\n{}",
        local_routes()
    );
    assert!(
        !local_routes().contains(&format!("local {rr_ip} ")),
        "the rr_ip's route outlived the node:\n{}",
        local_routes()
    );
}

/// A fixed address's local route, removed on drop.
struct FixedRoute(String);

impl Drop for FixedRoute {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args([
                "route", "del", "local", &self.0, "dev", "lo", "table", "local",
            ])
            .output();
    }
}

/// Runs `command` in container `id` until it succeeds (its output) or [`SETTLE`] passes
/// (then fails with what it and the container's resolver said last).
fn exec_until(server: &str, id: &str, command: &str) -> String {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let out = canopy(server, &["exec", id, "--", "sh", "-c", command]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if std::time::Instant::now() > deadline {
            let resolver = canopy(
                server,
                &[
                    "exec",
                    id,
                    "--",
                    "sh",
                    "-c",
                    "cat /etc/resolv.conf; nslookup server.web.default.canopy; ip route",
                ],
            );
            panic!(
                "{command} kept failing: {}{}\nthe container's resolver: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&resolver.stdout),
                String::from_utf8_lossy(&resolver.stderr),
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
