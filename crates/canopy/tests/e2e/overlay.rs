//! The overlay within one cluster: service names answered by each node's DNS and reached
//! through its L4 proxy. Three server nodes run one replica each (busybox httpd saying its
//! replica), a fourth runs a client that resolves the plain name and fetches through the
//! proxy; the test dials the virtual addresses too, from the client's node.

use crate::support;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, kill_group, strings};

const SETTLE: Duration = Duration::from_secs(30);
const PORT: u16 = 18080;
/// The client node's DNS (its overlay range is 127.201.0.0/24).
const CLIENT_DNS: &str = "127.201.0.1:53";

struct Testbed {
    dir: tempfile::TempDir,
    marker: String,
    root: Daemon,
    _cluster: Daemon,
    _nodes: Vec<Daemon>,
    _cleanup: KillOnDrop,
}

impl Testbed {
    /// Root, cluster, node `client` (127.0.0.10) and nodes `s1`..`s3` (127.0.0.11-13).
    fn start() -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!(
            "canopy-overlay-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let root = support::start_root(dir.path());
        let cluster = support::start_cluster(dir.path(), &root, "c", &[]);
        let mut nodes = Vec::new();
        for (n, name) in ["client", "s1", "s2", "s3"].iter().enumerate() {
            let role = if n == 0 { "client" } else { "server" };
            let extra = strings(&[
                "--labels",
                &format!("role={role}"),
                "--overlay-network",
                &format!("127.201.{n}.0"),
                "--overlay-address",
                &format!("127.0.0.{}", 10 + n),
            ]);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            nodes.push(support::start_node(
                &dir.path().join(name),
                &cluster,
                name,
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
        eventually(SETTLE, "4 ready nodes", || {
            let nodes = canopy_json(&testbed.root.url, &["get", "nodes", "-A"]);
            (nodes.iter().filter(|n| n["state"] == "Ready").count() == 4).then_some(())
        });
        testbed
    }

    fn apply(&self, yaml: &str) {
        let file = self.dir.path().join("app.yaml");
        std::fs::write(&file, yaml).unwrap();
        canopy_ok(&self.root.url, &["apply", "-f", file.to_str().unwrap()]);
    }

    /// Pids of the running server replicas, by replica ordinal.
    fn servers(&self) -> BTreeMap<u64, u32> {
        canopy_json(&self.root.url, &["get", "instances", "-A"])
            .iter()
            .filter(|i| i["service"] == "server" && i["state"] == "Running")
            .filter_map(|i| Some((i["replica"].as_u64()?, i["pid"].as_u64()? as u32)))
            .collect()
    }
}

fn app_yaml(www: &Path, marker: &str) -> String {
    let www = www.display();
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: app}}\nspec:\n  services:\n\
         \x20 - name: server\n    runtime: process\n    replicas: 3\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 100m, memory: 16Mi}}\n    ports: [{{port: {PORT}}}]\n\
         \x20   constraints:\n    - nodeSelector: [{{key: role, operator: In, values: [server]}}]\n\
         \x20   - spread: {{maxPerNode: 1}}\n\
         \x20   command: [/bin/sh, -c, 'd={www}/$CANOPY_INSTANCE; mkdir -p $d; echo replica-$CANOPY_REPLICA > $d/index.html; busybox httpd -f -p $CANOPY_NODE_ADDRESS:{PORT} -h $d; true', {marker}]\n\
         \x20 - name: client\n    runtime: process\n    resources: {{cpu: 100m, memory: 16Mi}}\n\
         \x20   constraints:\n    - nodeSelector: [{{key: role, operator: In, values: [client]}}]\n\
         \x20   command: [/bin/sh, -c, 'while true; do ip=$(busybox nslookup -type=A server.app.default.canopy $CANOPY_DNS | awk \"/^Address/ {{a=\\$2}} END {{print a}}\"); busybox wget -q -O - http://$ip:{PORT}/ >> {www}/client.out; sleep 0.2; done', {marker}]\n"
    )
}

/// Asks `server` for `name`'s A record: the address, or the response code.
fn resolve(server: &str, name: &str) -> Result<Ipv4Addr, ResponseCode> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut query = Message::new();
    query
        .set_id(4242)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    socket
        .send_to(
            &query.to_vec().unwrap(),
            server.parse::<SocketAddr>().unwrap(),
        )
        .unwrap();
    let mut buffer = [0u8; 1500];
    let read = socket.recv(&mut buffer).expect("the node's DNS answers");
    let answer = Message::from_vec(&buffer[..read]).unwrap();
    assert_eq!(answer.id(), 4242);
    if answer.response_code() != ResponseCode::NoError {
        return Err(answer.response_code());
    }
    answer
        .answers()
        .iter()
        .find_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .ok_or(ResponseCode::NoError)
}

/// One HTTP GET through `address`: the replica that answered, or why not.
fn fetch(address: Ipv4Addr) -> Result<String, String> {
    let target = SocketAddr::from((address, PORT));
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("read: {e}"))?;
    reply
        .lines()
        .find(|l| l.starts_with("replica-"))
        .map(str::to_string)
        .ok_or_else(|| format!("no replica in {reply:?}"))
}

#[test]
fn services_are_reached_by_name_through_the_proxy_with_their_policies() {
    let bed = Testbed::start();
    let www = bed.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    bed.apply(&app_yaml(&www, &bed.marker));
    eventually(SETTLE, "3 server replicas running", || {
        (bed.servers().len() == 3).then_some(())
    });

    // The client workload resolves the plain name on its node and fetches through the proxy.
    let out = www.join("client.out");
    eventually(SETTLE, "the client's fetches by name", || {
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        (text.lines().filter(|l| l.starts_with("replica-")).count() >= 3).then_some(())
    });

    // Unknown names under .canopy: NXDOMAIN, at once.
    let started = Instant::now();
    assert_eq!(
        resolve(CLIENT_DNS, "nosuch.app.default.canopy"),
        Err(ResponseCode::NXDomain)
    );
    assert_eq!(
        resolve(CLIENT_DNS, "fastest.server.app.default.canopy"),
        Err(ResponseCode::NXDomain)
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "NXDOMAIN took {:?}",
        started.elapsed()
    );

    // rr. spreads 300 connections over the 3 replicas within ±10 %.
    let rr = resolve(CLIENT_DNS, "rr.server.app.default.canopy").expect("rr. resolves");
    assert_eq!(
        resolve(CLIENT_DNS, "server.app.default.canopy"),
        Ok(resolve(CLIENT_DNS, "server.app.default.canopy").unwrap()),
        "a name keeps its address"
    );
    let mut hits: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..300 {
        *hits
            .entry(fetch(rr).expect("a replica answers"))
            .or_default() += 1;
    }
    assert_eq!(hits.len(), 3, "{hits:?}");
    for (replica, count) in &hits {
        assert!(
            (90..=110).contains(count),
            "{replica}: {count} of 300 ({hits:?})"
        );
    }

    // 2. hits exactly replica 2.
    let two = resolve(CLIENT_DNS, "2.server.app.default.canopy").expect("2. resolves");
    assert_ne!(two, rr);
    for _ in 0..30 {
        assert_eq!(fetch(two).as_deref(), Ok("replica-2"));
    }

    // Replica 1 killed: within 1 s every new connection goes to the survivors, and its own
    // name fails fast instead of hanging.
    let one = resolve(CLIENT_DNS, "1.server.app.default.canopy").expect("1. resolves");
    assert_eq!(fetch(one).as_deref(), Ok("replica-1"));
    let pid = bed.servers()[&1];
    kill_group(pid);
    let killed = Instant::now();
    let mut survivors_only_since = None;
    while killed.elapsed() < Duration::from_secs(3) {
        let answer = fetch(rr);
        match answer.as_deref() {
            Ok("replica-0") | Ok("replica-2") => {
                survivors_only_since.get_or_insert(killed.elapsed());
            }
            _ => survivors_only_since = None,
        }
    }
    let since = survivors_only_since.expect("connections reach the survivors");
    assert!(
        since <= Duration::from_secs(1),
        "survivors only after {since:?}"
    );
    let failing = Instant::now();
    assert!(
        fetch(one).is_err(),
        "the killed replica's name still answers"
    );
    assert!(
        failing.elapsed() < Duration::from_millis(1500),
        "a connection to the dead replica took {:?} to fail",
        failing.elapsed()
    );
}
