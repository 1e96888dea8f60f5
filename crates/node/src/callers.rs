//! Who called a service through the node's proxy: the instance behind a connection's
//! source. A container has an address of its own (its CNI address), so its address says.
//! Processes share the host's network (they reach the proxy from loopback, or from the
//! host's address), so there the client socket's owner is looked up: the socket's inode in
//! `/proc/net/tcp`, then the process holding it, first among the process trees of
//! the node's instances (quick: only their processes are looked at), then among all
//! processes by their cgroup, which the runtime names after the instance (one that left its
//! tree). What neither finds is `unknown`: wasm instances (they run inside the agent, which
//! holds the sockets of all of them), anything on the host that is no instance, and a client
//! that closed its socket before it was looked up (the lookup starts as the proxy accepts).
//! UDP flows are not attributed (the proxy counts them for caller `unknown`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// The caller of a connection nothing identifies.
pub use canopy_net::overlay::UNKNOWN_CALLER as UNKNOWN;

/// What the node runs, as attribution needs it: services as `namespace/application/service`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Running {
    pub by_address: HashMap<IpAddr, String>,
    pub by_instance: HashMap<String, String>,
    /// The first process of each instance that has one, with its service.
    pub by_pid: Vec<(u32, String)>,
}

/// The caller's service of a TCP connection from `peer` to the proxy's `local` address.
pub(crate) fn caller(
    running: &Running,
    peer: SocketAddr,
    local: SocketAddr,
    proc: &Path,
) -> String {
    if let Some(service) = running.by_address.get(&peer.ip()) {
        return service.clone();
    }
    owner(running, peer, local, proc).unwrap_or_else(|| UNKNOWN.to_string())
}

/// The service of the instance whose process holds the client's socket, by /proc.
fn owner(running: &Running, peer: SocketAddr, local: SocketAddr, proc: &Path) -> Option<String> {
    if running.by_instance.is_empty() && running.by_pid.is_empty() {
        return None;
    }
    let table = std::fs::read_to_string(proc.join("net").join("tcp")).ok()?;
    // The client's socket is the one whose own end is `peer`, connected to `local`.
    let inode = socket_inode(&table, peer, local)?;
    let link = format!("socket:[{inode}]");
    let holds = |pid: &str| {
        std::fs::read_dir(proc.join(pid).join("fd")).is_ok_and(|descriptors| {
            descriptors.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == link.as_str())
            })
        })
    };
    for (first, service) in &running.by_pid {
        let mut tree = vec![*first];
        let mut seen = 0;
        while let Some(pid) = tree.get(seen).copied() {
            seen += 1;
            if holds(&pid.to_string()) {
                return Some(service.clone());
            }
            tree.extend(children(proc, pid));
        }
    }
    let mut pids: Vec<u32> = std::fs::read_dir(proc)
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    // The newest first: a caller that just started is the likeliest, and the quickest to go.
    pids.sort_unstable_by(|a, b| b.cmp(a));
    pids.into_iter().find_map(|pid| {
        let pid = pid.to_string();
        let cgroups = std::fs::read_to_string(proc.join(&pid).join("cgroup")).ok()?;
        let service = instance_of(&cgroups, &running.by_instance)?;
        holds(&pid).then(|| service.clone())
    })
}

/// The children of every thread of `pid` (empty where the kernel does not list them).
fn children(proc: &Path, pid: u32) -> Vec<u32> {
    let Ok(threads) = std::fs::read_dir(proc.join(pid.to_string()).join("task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| std::fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// The inode of the socket in a `/proc/net/tcp` table whose local end is `own` and whose
/// remote end is `remote`. IPv4 only (the proxy listens on IPv4).
fn socket_inode(table: &str, own: SocketAddr, remote: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local_end, remote_end, inode) = (fields.get(1)?, fields.get(2)?, fields.get(9)?);
        let matches = address(local_end)? == own && address(remote_end)? == remote;
        matches
            .then(|| inode.parse().ok())
            .flatten()
            .filter(|i| *i != 0)
    })
}

/// `0100007F:0035`: the kernel prints the address as the native-endian u32 it stores in
/// network order, and the port as a number.
fn address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if ip.len() != 8 {
        return None;
    }
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::from((Ipv4Addr::from(ip.to_ne_bytes()), port)))
}

/// The service of the instance a process's `/proc/<pid>/cgroup` puts it in: the runtime
/// names each instance's group after its id (`<parent>/<id>`).
fn instance_of<'a>(cgroups: &str, services: &'a HashMap<String, String>) -> Option<&'a String> {
    cgroups.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        services.get(path.rsplit('/').next()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
        \x20  0: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n\
        \x20  1: 0100007F:A1B2 0561617F:0050 01 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 20 4 30 10 -1\n";

    fn native(ip: [u8; 4], port: u16) -> String {
        format!("{:08X}:{port:04X}", u32::from_ne_bytes(ip))
    }

    #[test]
    fn the_client_socket_is_the_one_from_the_peer_to_the_proxy() {
        // The table above is written for a little-endian machine, as the kernel prints it.
        if cfg!(target_endian = "little") {
            let peer = SocketAddr::from(([127, 0, 0, 1], 0xA1B2));
            let proxy = SocketAddr::from(([127, 97, 97, 5], 80));
            assert_eq!(socket_inode(TABLE, peer, proxy), Some(2002));
            let elsewhere = SocketAddr::from(([127, 97, 97, 6], 80));
            assert_eq!(socket_inode(TABLE, peer, elsewhere), None);
            let dns = SocketAddr::from(([127, 0, 0, 1], 53));
            let unconnected = SocketAddr::from(([0, 0, 0, 0], 0));
            assert_eq!(socket_inode(TABLE, dns, unconnected), Some(1001));
        }
        assert_eq!(
            address(&native([10, 88, 0, 7], 8080)),
            Some(SocketAddr::from(([10, 88, 0, 7], 8080)))
        );
        assert_eq!(address("zz:1"), None);
    }

    #[test]
    fn a_process_belongs_to_the_instance_its_cgroup_is_named_after() {
        let services = HashMap::from([("i-42".to_string(), "default/shop/web".to_string())]);
        let v2 = "0::/canopy/i-42\n";
        assert_eq!(
            instance_of(v2, &services).map(String::as_str),
            Some("default/shop/web")
        );
        let v1 = "12:memory:/canopy/n1/i-42\n11:cpu,cpuacct:/canopy/n1/i-42\n";
        assert_eq!(
            instance_of(v1, &services).map(String::as_str),
            Some("default/shop/web")
        );
        assert_eq!(
            instance_of("0::/user.slice/session-1.scope\n", &services),
            None
        );
    }

    #[test]
    fn containers_go_by_address_and_strangers_are_unknown() {
        let running = Running {
            by_address: HashMap::from([(IpAddr::from([10, 88, 0, 7]), "default/shop/web".into())]),
            ..Running::default()
        };
        let proxy = SocketAddr::from(([100, 64, 7, 5], 80));
        let proc = Path::new("/proc");
        let from = |ip: [u8; 4]| SocketAddr::from((ip, 40000));
        assert_eq!(
            caller(&running, from([10, 88, 0, 7]), proxy, proc),
            "default/shop/web"
        );
        assert_eq!(caller(&running, from([10, 88, 0, 8]), proxy, proc), UNKNOWN);
    }

    /// The real /proc: this test's own connection is traced to this process, once as an
    /// instance's first process and once by the cgroup it runs in (taken for an instance's).
    #[test]
    fn a_real_connection_is_traced_to_the_process_holding_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        let proc = Path::new("/proc");
        let by_tree = Running {
            by_pid: vec![(std::process::id(), "default/shop/client".to_string())],
            ..Running::default()
        };
        assert_eq!(caller(&by_tree, peer, local, proc), "default/shop/client");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let group = own
            .lines()
            .next()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let by_cgroup = Running {
            by_instance: HashMap::from([(group, "default/shop/other".to_string())]),
            ..Running::default()
        };
        assert_eq!(caller(&by_cgroup, peer, local, proc), "default/shop/other");
        let mut sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let stranger = Running {
            by_pid: vec![(sleeper.id(), "default/shop/sleeper".to_string())],
            ..Running::default()
        };
        let answer = caller(&stranger, peer, local, proc);
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        assert_eq!(answer, UNKNOWN, "another process's socket is not its own");
        drop(client);
    }
}
