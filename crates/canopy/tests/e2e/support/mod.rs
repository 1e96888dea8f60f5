//! Real `canopy` processes for end-to-end tests: started on random loopback ports with temp
//! data dirs, killed (SIGKILL) when dropped, along with every workload they started.
//!
//! Credentials: every process these helpers start gets `CANOPY_CONFIG` pointing at this test
//! process's own client config ([`client_config`]). A `canopy up` logs itself in there; a
//! `canopy root` is logged in once started, as its first admin (`<data>/admin-password`),
//! in a context for its URL, which the client verbs (`CANOPY_SERVER`) then find.

#![allow(dead_code)]

pub mod dns;
pub mod engine;
pub mod foreign;
pub mod joins;
pub mod podman;
pub mod ports;
pub mod registry;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const CANOPY: &str = env!("CARGO_BIN_EXE_canopy");

/// This test process's client config file (nextest runs each test in a process of its own).
pub fn client_config() -> PathBuf {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir for the client config"))
        .path()
        .join("config.yaml")
}

/// Logs the client config in to the root at `url` as the admin whose password the root
/// wrote to `<data>/admin-password` on its first start.
pub fn log_in(url: &str, data: &Path) {
    use std::io::Write;
    let password = std::fs::read_to_string(data.join("admin-password"))
        .expect("the root wrote its admin's password on its first start");
    let mut child = Command::new(CANOPY)
        .args([
            "login",
            "--server",
            url,
            "--user",
            "admin",
            "--password-stdin",
        ])
        .env("CANOPY_CONFIG", client_config())
        .env_remove("CANOPY_SERVER")
        .env_remove("CANOPY_CONTEXT")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canopy login runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(password.as_bytes())
        .expect("the password is written");
    let output = child.wait_with_output().expect("canopy login ends");
    assert!(
        output.status.success(),
        "canopy login to {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The token [`client_config`] holds for the server `url` (from `canopy up` or a login).
pub fn token_for(url: &str) -> String {
    let text = std::fs::read_to_string(client_config()).expect("the client config exists");
    let mut lines = text
        .lines()
        .skip_while(|l| l.trim() != format!("server: {url}"));
    lines.next().expect("a context for the server");
    lines
        .take_while(|l| !l.trim_start().starts_with("- "))
        .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
        .expect("a token in the server's context")
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A failed job run's first back-off in the roots these tests start (10 s by default).
pub const JOB_BACKOFF_MS: u64 = 200;

/// One daemon process.
pub struct Daemon {
    child: Child,
    program: String,
    /// `http://127.0.0.1:PORT` for daemons that listen.
    pub url: String,
    /// A root's tier listener (`https://127.0.0.1:PORT`), where clusters join and link.
    pub tier_url: String,
    pub args: Vec<String>,
    /// A cluster's name and its root's API, where its nodes' tokens are made.
    pub name: String,
    pub root_api: String,
    /// `http://127.0.0.1:PORT/metrics` of a daemon started with `--metrics-listen`.
    pub metrics_url: String,
}

impl Daemon {
    /// Starts `canopy ARGS...`; for listening daemons, waits for the address they print.
    pub fn start(args: &[String], listens: bool) -> Daemon {
        Daemon::start_program(CANOPY, args, listens)
    }

    /// Like [`Daemon::start`] through another program that runs canopy (e.g. `ip netns exec`).
    pub fn start_program(program: &str, args: &[String], listens: bool) -> Daemon {
        let mut child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .env("CANOPY_CONFIG", client_config())
            .env("CANOPY_JOB_BACKOFF_MS", JOB_BACKOFF_MS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("canopy starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut url = String::new();
        let mut tier_url = String::new();
        // A root prints its tier listener's address after the API's.
        let is_root = args.iter().any(|a| a == "root");
        let mut metrics_url = String::new();
        let wants_metrics = args.iter().any(|a| a == "--metrics-listen");
        if listens || wants_metrics {
            // Printed once serving; no polling or sleeping needed.
            while (listens && (url.is_empty() || (is_root && tier_url.is_empty())))
                || (wants_metrics && metrics_url.is_empty())
            {
                let line = lines
                    .next()
                    .expect("daemon printed its address before exiting")
                    .expect("readable stdout");
                if let Some(address) = line.strip_prefix("canopy metrics served at ") {
                    metrics_url = address.trim().to_string();
                } else if let Some(address) = line.strip_prefix("canopy tier listening on ") {
                    tier_url = address.trim().to_string();
                } else if let Some((_, address)) = line.split_once(" listening on ") {
                    url = address.trim().to_string();
                }
            }
        }
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        if is_root && listens {
            let data = args
                .iter()
                .position(|a| a == "--data")
                .and_then(|i| args.get(i + 1))
                .expect("a root started with --data");
            log_in(&url, Path::new(data));
        }
        Daemon {
            child,
            program: program.to_string(),
            url,
            tier_url,
            args: args.to_vec(),
            name: String::new(),
            root_api: String::new(),
            metrics_url,
        }
    }

    pub fn port(&self) -> u16 {
        port_of(&self.url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the daemon process (e.g. SIGSTOP to freeze it, SIGCONT to thaw it).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("a daemon's pid");
        rustix::process::kill_process(pid, signal).expect("the daemon is signalled");
    }

    /// SIGTERM, then waits up to `within` for the daemon to exit; its exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal(rustix::process::Signal::TERM);
        eventually(within, "the daemon to exit after SIGTERM", || {
            self.child.try_wait().expect("waitable daemon")
        })
    }

    /// SIGKILL: no chance to clean up or flush anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the same daemon again, on the same ports (a cluster needs no token again: its
    /// certificate is in its data directory).
    pub fn restart(&mut self) {
        self.kill();
        let mut args = self.args.clone();
        for i in 0..args.len() {
            if !args[i].ends_with(":0") || self.url.is_empty() {
                continue;
            }
            let tier = i > 0 && args[i - 1] == "--tier-listen";
            let port = if tier {
                port_of(&self.tier_url)
            } else {
                self.port()
            };
            args[i] = format!("127.0.0.1:{port}");
        }
        let listens = !self.url.is_empty();
        let (name, root_api) = (self.name.clone(), self.root_api.clone());
        *self = Daemon::start_program(&self.program, &args, listens);
        self.name = name;
        self.root_api = root_api;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("url has a port")
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// How long a silent child has before it is unreachable, in the daemons these tests start.
/// Short enough that tests of failure detection are quick, long enough that a loaded 2-core
/// machine stalling a daemon (or its child) for a second never makes a healthy child look
/// lost: at a 200 ms heartbeat, that is 12 heartbeats in a row missed.
pub const DEADLINE: Duration = Duration::from_millis(2500);

/// Short timings so failures are detected fast: children report every 200 ms and are
/// unreachable after [`DEADLINE`] of silence.
pub fn fast_timing() -> Vec<String> {
    strings(&[
        "--heartbeat-ms",
        "200",
        "--deadline-ms",
        &DEADLINE.as_millis().to_string(),
    ])
}

/// `canopy up` (root, cluster and node in one process, `default` trusted) on a random
/// loopback port with its state in `data`.
pub fn up(data: &Path) -> Daemon {
    let mut args = strings(&["up", "--listen", "127.0.0.1:0", "--data"]);
    args.push(data.display().to_string());
    args.extend(fast_timing());
    Daemon::start(&args, true)
}

/// `canopy apply` of `yaml` (written to `dir/app.yaml`) against `server`.
pub fn apply(server: &str, dir: &Path, yaml: &str) {
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(server, &["apply", "-f", file.to_str().unwrap()]);
}

/// `GET path` of the API at `url` (`http://127.0.0.1:PORT`) with this test's token, its
/// JSON body; without a client process, for sampling often.
pub fn api_get(url: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("the API listens");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    // HTTP/1.0: the answer ends with the connection, never chunked.
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\r\n",
        token_for(url)
    );
    stream
        .write_all(request.as_bytes())
        .expect("the request is sent");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("the API answers");
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}\n{body}"
    );
    serde_json::from_str(body).expect("a JSON body")
}

/// `canopy root` on a random loopback port, its state in `dir/root`.
pub fn start_root(dir: &Path) -> Daemon {
    let mut args = strings(&[
        "root",
        "--listen",
        "127.0.0.1:0",
        "--tier-listen",
        "127.0.0.1:0",
        "--data",
        &dir.join("root").display().to_string(),
        // The tests run `process` workloads in `default`, which only a trusted namespace may.
        "--trusted-namespace",
        "default",
    ]);
    args.extend(fast_timing());
    Daemon::start(&args, true)
}

/// A one-time token for a cluster named `name` from `root`'s API, as `canopy token create`
/// gives it to a user: `(token, ca_hash)`.
pub fn join_token(root: &Daemon, name: &str) -> (String, String) {
    let out = canopy_ok(
        &root.url,
        &[
            "token", "create", "--join", "cluster", "--name", name, "-o", "json",
        ],
    );
    let created: Value = serde_json::from_str(&out).expect("a token as JSON");
    let field = |key: &str| created[key].as_str().expect("token fields").to_string();
    (field("token"), field("ca_hash"))
}

/// `canopy cluster NAME` joined to `root` with a fresh token and linked with its
/// certificate, its state in `dir/NAME`, plus `extra` flags (listening on a random loopback
/// port unless they say `--listen`).
pub fn start_cluster(dir: &Path, root: &Daemon, name: &str, extra: &[&str]) -> Daemon {
    let (token, ca_hash) = join_token(root, name);
    let mut args = strings(&[
        "cluster",
        "--root",
        &root.tier_url,
        "--data",
        &dir.join(name).display().to_string(),
        "--name",
        name,
        "--token",
        &token,
        "--ca-hash",
        &ca_hash,
    ]);
    if !extra.contains(&"--listen") {
        args.extend(strings(&["--listen", "127.0.0.1:0"]));
    }
    args.extend(strings(extra));
    args.extend(fast_timing());
    let mut cluster = Daemon::start(&args, true);
    cluster.name = name.to_string();
    cluster.root_api = root.url.clone();
    cluster
}

/// A node token for `cluster` (started by [`start_cluster`]) from its root's API, as
/// `canopy token create --join node` gives it: `(token, ca_hash)`. The root hands it to the
/// cluster over its link, so this waits for the cluster to be linked. `name`: the one name
/// it admits; `uses`: how many nodes may join with it.
pub fn node_token_for(
    cluster: &Daemon,
    name: Option<&str>,
    uses: Option<usize>,
) -> (String, String) {
    assert!(
        !cluster.root_api.is_empty(),
        "a cluster started by start_cluster"
    );
    let mut args = strings(&[
        "token",
        "create",
        "--join",
        "node",
        "--cluster",
        &cluster.name,
        "-o",
        "json",
    ]);
    if let Some(name) = name {
        args.extend(strings(&["--name", name]));
    }
    if let Some(uses) = uses {
        args.extend(strings(&["--uses", &uses.to_string()]));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = eventually(
        Duration::from_secs(30),
        "a node token (the cluster linked to its root)",
        || {
            let output = canopy(&cluster.root_api, &args);
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).to_string())
        },
    );
    let created: Value = serde_json::from_str(&out).expect("a token as JSON");
    let field = |key: &str| created[key].as_str().expect("token fields").to_string();
    (field("token"), field("ca_hash"))
}

/// `--token T --ca-hash H` for a node `name` joining `cluster`.
pub fn node_join_args(cluster: &Daemon, name: &str) -> Vec<String> {
    let (token, ca_hash) = node_token_for(cluster, Some(name), None);
    strings(&["--token", &token, "--ca-hash", &ca_hash])
}

/// `canopy node NAME` joined to `cluster` with a fresh node token and linked with its
/// certificate, its state in `data`, plus `extra` flags.
#[allow(dead_code)]
pub fn start_node(data: &Path, cluster: &Daemon, name: &str, extra: &[&str]) -> Daemon {
    let mut args = strings(&[
        "node",
        "--cluster",
        &cluster.url,
        "--data",
        &data.display().to_string(),
        "--name",
        name,
    ]);
    if !data.join("tier-cert.pem").exists() {
        args.extend(node_join_args(cluster, name));
    }
    args.extend(strings(extra));
    Daemon::start(&args, false)
}

/// The `canopy` client against `server`.
pub fn canopy(server: &str, args: &[&str]) -> Output {
    Command::new(CANOPY)
        .args(args)
        .env("CANOPY_SERVER", server)
        .env("CANOPY_CONFIG", client_config())
        .output()
        .expect("canopy client runs")
}

pub fn canopy_ok(server: &str, args: &[&str]) -> String {
    let output = canopy(server, args);
    assert!(
        output.status.success(),
        "canopy {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

pub fn canopy_json(server: &str, args: &[&str]) -> Vec<Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    serde_json::from_str(&canopy_ok(server, &args)).expect("JSON array")
}

/// A loopback port free at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /` on `127.0.0.1:port` over a fresh connection (2 s read timeout): the whole answer,
/// or `None` when it could not be had.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Polls `check` until it returns Some or `within` passes; panics with `what` on timeout.
pub fn eventually<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Checks that `check` holds throughout `period` (polled every 50 ms): for "X does not
/// happen", which only means something once the time X would take has passed.
pub fn holds_for(period: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + period;
    loop {
        assert!(check(), "{what} stopped holding");
        if Instant::now() >= end {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The command line of live process `pid`, its arguments joined by spaces.
pub fn cmdline(pid: u64) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Whether `pid` is alive and is the workload of instance `id` (its environment says so).
pub fn runs_instance(pid: u64, id: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| {
            env.split(|b| *b == 0)
                .any(|var| var == format!("CANOPY_INSTANCE={id}").as_bytes())
        })
        .unwrap_or(false)
}

/// The value of environment variable `name` of live process `pid`.
pub fn environ_var(pid: u64, name: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    env.split(|b| *b == 0).find_map(|var| {
        var.strip_prefix(prefix.as_bytes())
            .map(|value| String::from_utf8_lossy(value).into_owned())
    })
}

/// Pids of live processes whose command line contains `marker`.
pub fn pids_with(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(marker) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGKILLs the process group led by `leader` (workloads lead their own group).
pub fn kill_group(leader: u32) {
    let group = i32::try_from(leader)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    // Pid 1 (or 0) would name init's group or our own: never a workload.
    if let Some(group) = group.filter(|g| g.as_raw_nonzero().get() > 1) {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
}

/// Kills the process group of every process whose command line contains `marker` (workloads
/// lead their own group), so a failed test leaves no workload behind.
pub struct KillOnDrop(pub String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in pids_with(&self.0) {
            kill_group(pid);
        }
    }
}

/// A tier link opened by hand with `config` to `tier_url` (a root's tier listener or a
/// cluster's node listener), saying hello as `name`: the parent's answer.
pub fn link_as(
    tier_url: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(), tonic::Status> {
    link_as_version(tier_url, config, name, canopy_tier::version::VERSION)
}

/// [`link_as`], the hello claiming canopy `version`.
pub fn link_as_version(
    tier_url: &str,
    config: std::sync::Arc<rustls::ClientConfig>,
    name: &str,
    version: &str,
) -> Result<(), tonic::Status> {
    use canopy_tier::pb;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = tonic::transport::Endpoint::from_shared(tier_url.to_string()).unwrap();
        let channel = canopy_tier::trust::connect(&endpoint, config)
            .await
            .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
        let hello = pb::Up {
            seq: 1,
            body: Some(pb::up::Body::Hello(pb::Hello {
                member: Some(pb::Member {
                    name: name.to_string(),
                    ..Default::default()
                }),
                version: version.to_string(),
                ..Default::default()
            })),
        };
        let mut client = pb::tier_client::TierClient::new(channel);
        let mut down = client
            .link(futures::stream::iter(vec![hello]))
            .await?
            .into_inner();
        // A welcome means the hello was taken.
        down.message().await.map(|_| ())
    })
}
