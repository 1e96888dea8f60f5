//! Network coordinates over a real, delayed network: two nodes in their own network
//! namespaces, joined to the host (where root and cluster run) by point-to-point links with
//! round trips of 1 ms and 40 ms. The nodes' probes place them far apart in latency space,
//! and a latency constraint to another service places by what was measured.
//!
//! The links are TUN pairs joined by `bench/wire.py`, a userspace netem (this project's CI
//! kernels have no `sch_netem`): it works on every kernel with /dev/net/tun. Needs root,
//! iproute2 and python3; without them the test fails and says what is missing (CI has them).

use crate::support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, start_cluster, start_root, strings,
};

const SETTLE: Duration = Duration::from_secs(60);

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

fn must(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

/// Two namespaces, each linked to the host by a TUN pair that `bench/wire.py` delays by
/// half the round trip each way. Dropping it ends wire.py (the links vanish with it) and
/// deletes the namespaces, also when the test fails.
struct Network {
    namespaces: Vec<String>,
    /// The host's address on each link (where the cluster is reached from that namespace).
    host_ips: Vec<String>,
    wire: Option<Child>,
}

impl Network {
    fn create(tag: u32, rtts_ms: &[f64]) -> Network {
        let mut network = Network {
            namespaces: Vec::new(),
            host_ips: Vec::new(),
            wire: None,
        };
        // The test process's namespace by path: wire.py moves between namespaces.
        let host_ns = format!("/proc/{}/ns/net", std::process::id());
        let mut specs = Vec::new();
        let mut links = Vec::new();
        for (i, rtt) in rtts_ms.iter().enumerate() {
            let ns = format!("cnpy-t{tag}-{i}");
            let host_if = format!("cth{tag}{i}");
            let ns_if = format!("ctn{tag}{i}");
            let _ = ip(&["netns", "del", &ns]);
            must(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            let half = rtt / 2.0;
            specs.push(format!("{host_ns}:{host_if}:{ns}:{ns_if}:{half}:0:0"));
            links.push((ns, host_if, ns_if));
        }
        let wire = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/wire.py");
        let mut command = Command::new("python3");
        command
            .arg(&wire)
            .args(&specs)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: only an async-signal-safe prctl between fork and exec. Should this test
        // process die without dropping the network, wire.py (and with it the links) goes too.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(Into::into)
            });
        }
        let mut child = command.spawn().expect("python3 runs bench/wire.py");
        let stdout = child.stdout.take().unwrap();
        network.wire = Some(child);
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "bench/wire.py did not start");
        for (i, (ns, host_if, ns_if)) in links.iter().enumerate() {
            let subnet = format!("10.{}.{}", 200 + tag % 50, i + 1);
            let (host_ip, ns_ip) = (format!("{subnet}.1"), format!("{subnet}.2"));
            must(&["addr", "add", &host_ip, "peer", &ns_ip, "dev", host_if]);
            must(&["link", "set", host_if, "up"]);
            must(&[
                "-n", ns, "addr", "add", &ns_ip, "peer", &host_ip, "dev", ns_if,
            ]);
            must(&["-n", ns, "link", "set", ns_if, "up"]);
            must(&["-n", ns, "link", "set", "lo", "up"]);
            network.host_ips.push(host_ip);
        }
        network
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The TUN devices (and their addresses) exist only while wire.py runs.
        if let Some(mut wire) = self.wire.take() {
            let _ = wire.kill();
            let _ = wire.wait();
        }
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// What this test needs; CI runs as root with all of it, so a lack fails the test.
fn require() {
    assert!(
        rustix::process::geteuid().is_root(),
        "netns: network namespaces and TUN devices need root (run the suite as root, as CI does)"
    );
    for tool in ["ip", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "netns: {tool} is not installed (scripts/test installs it)"
        );
    }
    assert!(
        Path::new("/dev/net/tun").exists(),
        "netns: no /dev/net/tun for bench/wire.py's links"
    );
}

#[test]
fn probes_over_delayed_links_place_by_measured_latency() {
    require();
    let tag = std::process::id() % 1000;
    let network = Network::create(tag, &[1.0, 40.0]);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-netns-{tag}");
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(
        dir.path(),
        &root,
        "c0",
        &["--listen", "0.0.0.0:0", "--probe-interval", "0.2"],
    );
    let port = cluster.port();
    let mut nodes = Vec::new();
    for (i, ns) in network.namespaces.iter().enumerate() {
        let name = format!("n{i}");
        let canopy = support::CANOPY;
        let args = strings(&[
            "netns",
            "exec",
            ns,
            canopy,
            "node",
            "--cluster",
            &format!("https://{}:{port}", network.host_ips[i]),
            "--data",
            &dir.path().join(&name).display().to_string(),
            "--name",
            &name,
            "--probe-interval",
            "0.2",
        ]);
        let mut args = args;
        args.extend(support::node_join_args(&cluster, &name));
        nodes.push(Daemon::start_program("ip", &args, false));
    }
    // n0 is ~1 ms from the cluster and n1 ~40 ms: their coordinates end up ~40 ms apart.
    let estimate = eventually(SETTLE, "coordinates that tell the nodes apart", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        let coordinate = |name: &str| {
            let c = &nodes.iter().find(|n| n["name"] == name)?["coordinate"];
            Some((c["x"].as_f64()?, c["y"].as_f64()?, c["height"].as_f64()?))
        };
        let (a, b) = (coordinate("n0")?, coordinate("n1")?);
        let rtt = (a.0 - b.0).hypot(a.1 - b.1) + a.2 + b.2;
        (rtt > 25.0).then_some(rtt)
    });
    assert!(
        estimate < 80.0,
        "estimate {estimate:.1} ms for a ~41 ms path"
    );
    let wide = canopy_ok(&root.url, &["get", "nodes", "-o", "wide"]);
    assert!(wide.contains("COORDINATE(ms)"), "{wide}");

    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: near}}
spec:
  services:
    - name: db
      runtime: process
      command: [/bin/sh, -c, 'sleep 3600; true', {marker}]
      resources: {{cpu: 10m, memory: 8Mi}}
      constraints:
        - direct: {{nodes: [n1]}}
"#
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    eventually(SETTLE, "the db on n1", || {
        canopy_json(&root.url, &["get", "instances"])
            .iter()
            .any(|i| i["state"] == "Running" && i["node"] == "n1")
            .then_some(())
    });
    let mut descriptor = std::fs::read_to_string(&file).unwrap();
    descriptor.push_str(&format!(
        r#"    - name: cache
      runtime: process
      command: [/bin/sh, -c, 'sleep 3600; true', {marker}]
      replicas: 2
      resources: {{cpu: 10m, memory: 8Mi}}
      constraints:
        - latency: {{maxMs: 15, toService: db}}
"#
    ));
    std::fs::write(&file, descriptor).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    let caches = eventually(SETTLE, "both caches running", || {
        let caches: Vec<_> = canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .filter(|i| i["service"] == "cache" && i["state"] == "Running")
            .collect();
        (caches.len() == 2).then_some(caches)
    });
    for cache in caches {
        assert_eq!(
            cache["node"], "n1",
            "within 15 ms of the db only on its node: {cache}"
        );
    }
    drop(nodes);
}

const PORT: u16 = 18090;

/// `canopy node NAME` inside network namespace `ns`, linked to the cluster through the
/// host's address on its link.
fn start_netns_node(ns: &str, host_ip: &str, cluster: &Daemon, dir: &Path, name: &str) -> Daemon {
    let mut args = strings(&[
        "netns",
        "exec",
        ns,
        support::CANOPY,
        "node",
        "--cluster",
        &format!("https://{host_ip}:{}", cluster.port()),
        "--data",
        &dir.join(name).display().to_string(),
        "--name",
        name,
        "--probe-interval",
        "0.2",
        "--labels",
        "role=server",
    ]);
    args.extend(support::node_join_args(cluster, name));
    Daemon::start_program("ip", &args, false)
}

/// `name`'s A record from the DNS at `server`.
fn resolve(server: std::net::SocketAddr, name: &str) -> Option<std::net::Ipv4Addr> {
    use hickory_proto::op::{Message, Query, ResponseCode};
    use hickory_proto::rr::{Name, RData, RecordType};
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    let mut query = Message::new();
    query
        .set_id(77)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::A));
    socket.send_to(&query.to_vec().ok()?, server).ok()?;
    let mut buffer = [0u8; 1500];
    let read = socket.recv(&mut buffer).ok()?;
    let answer = Message::from_vec(&buffer[..read]).ok()?;
    if answer.response_code() != ResponseCode::NoError {
        return None;
    }
    answer.answers().iter().find_map(|r| match r.data() {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

/// The replica that answers one HTTP GET through `address`.
fn fetch(address: std::net::Ipv4Addr) -> Option<String> {
    use std::io::{Read, Write};
    let target = std::net::SocketAddr::from((address, PORT));
    let mut stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    reply
        .lines()
        .find(|l| l.starts_with("replica-"))
        .map(str::to_string)
}

fn server_app(www: &Path, replicas: u32, marker: &str) -> String {
    let www = www.display();
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  services:\n\
         \x20 - name: server\n    runtime: process\n    replicas: {replicas}\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 10m, memory: 8Mi}}\n    ports: [{{port: {PORT}}}]\n\
         \x20   constraints:\n    - nodeSelector: [{{key: role, operator: In, values: [server]}}]\n\
         \x20   - spread: {{maxPerNode: 1}}\n\
         \x20   command: [/bin/sh, -c, 'd={www}/$CANOPY_INSTANCE; mkdir -p $d; echo replica-$CANOPY_REPLICA > $d/index.html; busybox httpd -f -p $CANOPY_NODE_ADDRESS:{PORT} -h $d; true', {marker}]\n"
    )
}

/// `closest.` across namespaces: replica 0 of a service runs behind an 80 ms link, replica
/// 1 behind a 10 ms one; a client node on the host resolves `closest.` and its connections
/// go to replica 1 (ordering by replica would give 0), while `rr.` reaches both.
#[test]
fn closest_picks_the_instance_behind_the_faster_link() {
    require();
    let tag = std::process::id() % 1000;
    let network = Network::create(tag, &[10.0, 80.0]);
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-closest-{tag}");
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(
        dir.path(),
        &root,
        "c0",
        &["--listen", "0.0.0.0:0", "--probe-interval", "0.2"],
    );
    let near = start_netns_node(
        &network.namespaces[0],
        &network.host_ips[0],
        &cluster,
        dir.path(),
        "near",
    );
    let far = start_netns_node(
        &network.namespaces[1],
        &network.host_ips[1],
        &cluster,
        dir.path(),
        "far",
    );
    let client_range = format!("127.203.{}.0", tag % 250);
    let mut args = strings(&[
        "node",
        "--cluster",
        &format!("https://127.0.0.1:{}", cluster.port()),
        "--data",
        &dir.path().join("client").display().to_string(),
        "--name",
        "client",
        "--probe-interval",
        "0.2",
        "--overlay-network",
        &client_range,
    ]);
    args.extend(support::node_join_args(&cluster, "client"));
    let client = Daemon::start(&args, false);
    eventually(SETTLE, "3 ready nodes", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        (nodes.iter().filter(|n| n["state"] == "Ready").count() == 3).then_some(())
    });
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let file = dir.path().join("app.yaml");
    let placed = |replica: u64| {
        canopy_json(&root.url, &["get", "instances"])
            .into_iter()
            .find(|i| i["replica"] == replica && i["state"] == "Running")
            .and_then(|i| Some(i["node"].as_str()?.to_string()))
    };
    // Replica 0 on the far node (the near one cordoned), then replica 1 on the near one.
    canopy_ok(&root.url, &["cordon", "near"]);
    std::fs::write(&file, server_app(&www, 1, &marker)).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(eventually(SETTLE, "replica 0 running", || placed(0)), "far");
    canopy_ok(&root.url, &["uncordon", "near"]);
    std::fs::write(&file, server_app(&www, 2, &marker)).unwrap();
    canopy_ok(&root.url, &["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(
        eventually(SETTLE, "replica 1 running", || placed(1)),
        "near"
    );

    let dns: std::net::SocketAddr = format!("127.203.{}.1:53", tag % 250).parse().unwrap();
    let closest = eventually(SETTLE, "closest. resolved", || {
        resolve(dns, "closest.server.app.default.canopy")
    });
    // Once the coordinates tell the links apart (they start unknown), every connection.
    eventually(SETTLE, "closest. reaching the near replica", || {
        (fetch(closest).as_deref() == Some("replica-1")).then_some(())
    });
    for n in 0..20 {
        assert_eq!(
            fetch(closest).as_deref(),
            Some("replica-1"),
            "connection {n} through closest."
        );
    }
    let rr = resolve(dns, "rr.server.app.default.canopy").expect("rr. resolves");
    let seen: std::collections::BTreeSet<String> = (0..10).filter_map(|_| fetch(rr)).collect();
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["replica-0", "replica-1"],
        "rr. reaches both replicas"
    );
    drop((client, near, far));
}
