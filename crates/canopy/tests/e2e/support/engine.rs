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
        assert!(
            rustix::process::geteuid().is_root(),
            "docker driver: dockerd needs root (run the suite as root, as CI does)"
        );
        for tool in ["dockerd", "docker", "containerd", "docker-proxy", "ip"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(
                found,
                "docker driver: {tool} is not installed (scripts/test installs docker.io)"
            );
        }
        // Short paths: the engine's and containerd's sockets live under them.
        let dir = tempfile::Builder::new()
            .prefix("dk")
            .tempdir_in("/tmp")
            .expect("a temp dir for the engine");
        let bridge = format!("cnpdk{}", std::process::id() % 100_000);
        let subnet = free_subnet();
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
        self.child = Some(child);
        let deadline = Instant::now() + START_WITHIN;
        loop {
            if self.socket().exists() && self.docker(&["info"]).status.success() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "docker driver: dockerd exited ({status}) before answering: {}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "docker driver: dockerd did not answer within {START_WITHIN:?}: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The docker CLI against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("--host")
            .arg(self.endpoint())
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// `docker ARGS` that must succeed: its trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
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

/// A /24 in 10.93.0.0/16 that no route uses yet.
fn free_subnet() -> String {
    let routes = String::from_utf8_lossy(&run("ip", &["-4", "route"]).stdout).into_owned();
    (0..250)
        .map(|i| (std::process::id() + i) % 250 + 1)
        .map(|x| format!("10.93.{x}.0/24"))
        .find(|s| !routes.contains(&s[..s.len() - 3]))
        .expect("a free /24 in 10.93.0.0/16")
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.child.is_some() {
            let all = self.docker(&["ps", "-aq"]);
            for id in String::from_utf8_lossy(&all.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.stop();
        // What a killed engine may leave mounted under its roots.
        let root = self.dir.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for mount in mounts {
            let _ = run("umount", &["-l", &mount]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}
