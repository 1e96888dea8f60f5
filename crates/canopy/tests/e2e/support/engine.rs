//! A Docker Engine of the test's own (Debian's docker.io `dockerd`): its own data root,
//! exec root, socket, pidfile and bridge, no iptables rules (published ports go through
//! docker-proxy); stopped and cleaned up on drop. Included with `#[path]` by the tests that
//! drive it, so no other test binary compiles it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a starting engine has to answer.
const START_WITHIN: Duration = Duration::from_secs(60);

pub struct Engine {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bridge: String,
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

impl Engine {
    /// Starts the engine, or fails the test saying why it cannot start here.
    pub fn start() -> Engine {
        super::registry::require_root_and(
            "docker driver",
            &["dockerd", "docker", "containerd", "docker-proxy", "ip"],
            "scripts/test installs docker.io",
        );
        // Short paths: the engine's and containerd's sockets live under them.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("a temp dir for the engine");
        let bridge = format!("cnpdk{}", std::process::id() % 100_000);
        let subnet = super::registry::free_subnet_in(93);
        let gateway = subnet.replace(".0/24", ".1/24");
        let _ = run("ip", &["link", "del", &bridge]);
        for args in [
            vec!["link", "add", &bridge, "type", "bridge"],
            vec!["addr", "add", &gateway, "dev", &bridge],
            vec!["link", "set", &bridge, "up"],
        ] {
            let out = run("ip", &args);
            assert!(
                out.status.success(),
                "docker driver: ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut engine = Engine {
            child: None,
            dir,
            bridge,
        };
        engine.launch();
        engine
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("docker.sock")
    }

    /// `unix:///.../docker.sock`, for `--endpoint`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.path("dockerd.log")).expect("the engine's log");
        let host = self.endpoint();
        let data = self.path("data").display().to_string();
        let exec = self.path("exec").display().to_string();
        let pidfile = self.path("docker.pid").display().to_string();
        let child = Command::new("dockerd")
            .args([
                "--host",
                &host,
                "--data-root",
                &data,
                "--exec-root",
                &exec,
                "--pidfile",
                &pidfile,
                "--bridge",
                &self.bridge,
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
                "--shutdown-timeout",
                "2",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log again"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        let endpoint = self.endpoint();
        let socket = self.socket();
        let log = self.path("dockerd.log");
        self.child = Some(child);
        let child = self.child.as_mut().expect("just started");
        wait_until_answering(child, "docker driver: dockerd", &log, || {
            socket.exists() && docker_at(&endpoint, &["info"]).status.success()
        });
    }

    /// The docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        docker_at(&self.endpoint(), args)
    }

    /// `docker ARGS` that must succeed: its trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        docker_ok_at(&self.endpoint(), args)
    }

    /// Makes the engine a one-node swarm's manager, on loopback (no IPVS here: the tests'
    /// services use `dnsrr` endpoints and host-mode ports). Returns the node's id.
    pub fn swarm_init(&self) -> String {
        let listen = format!("127.0.0.1:{}", super::free_port());
        self.docker_ok(&[
            "swarm",
            "init",
            "--advertise-addr",
            "127.0.0.1",
            "--listen-addr",
            &listen,
        ]);
        self.docker_ok(&["info", "--format", "{{.Swarm.NodeID}}"])
    }

    /// Stops the engine as its operator would (SIGTERM: it stops its containers and exits).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        // What an engine that did not stop cleanly may leave: its containerd and shims,
        // known by this engine's own directory in their command lines.
        let dir = self.dir.path().display().to_string();
        let left = run("pgrep", &["-f", &format!("containerd.*{dir}")]);
        for pid in String::from_utf8_lossy(&left.stdout).split_whitespace() {
            if let Some(pid) = pid
                .parse::<i32>()
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Waits for a starting `child` (`what`, logging to `log`) until `answers`, or fails the
/// test with the log's tail when it exits first or does not answer within a minute.
pub fn wait_until_answering(child: &mut Child, what: &str, log: &Path, answers: impl Fn() -> bool) {
    let tail = || {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let deadline = Instant::now() + START_WITHIN;
    loop {
        if answers() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before answering: {}", tail());
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not answer within {START_WITHIN:?}: {}",
            tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The docker CLI against the engine (or Docker-compatible service) at `endpoint`.
pub fn docker_at(endpoint: &str, args: &[&str]) -> Output {
    Command::new("docker")
        .arg("--host")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("docker runs")
}

/// `docker ARGS` against `endpoint` that must succeed: its trimmed stdout.
pub fn docker_ok_at(endpoint: &str, args: &[&str]) -> String {
    let out = docker_at(endpoint, args);
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes every container the engine at `endpoint` has, whoever made it.
pub fn remove_all_containers(endpoint: &str) {
    let all = docker_at(endpoint, &["ps", "-aq"]);
    for id in String::from_utf8_lossy(&all.stdout).split_whitespace() {
        let _ = docker_at(endpoint, &["rm", "-f", id]);
    }
}

/// Unmounts what an engine left mounted under `root` (deepest first).
pub fn unmount_under(root: &Path) {
    let mut mounts = super::registry::mounts_under(root);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for mount in mounts {
        let _ = run("umount", &["-l", &mount]);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.is_some() {
            remove_all_containers(&self.endpoint());
        }
        self.stop();
        // What a killed engine may leave mounted under its roots.
        unmount_under(self.dir.path());
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}
