//! Session streams end to end: a real root, cluster and node on loopback; `canopy logs`
//! (and `exec`) reach the workload through the tiers, never directly.

use crate::support;
use support::free_port;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{CANOPY, Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually};

/// How long placement, start-up and status propagation may take on a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(20);

struct Testbed {
    dir: tempfile::TempDir,
    marker: String,
    root: Daemon,
    _cluster: Daemon,
    node: Daemon,
    _cleanup: KillOnDrop,
}

impl Testbed {
    /// Root, cluster `c0` and node `n0`.
    fn start() -> Testbed {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!(
            "canopy-streams-{}",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
        );
        let root = support::start_root(dir.path());
        let cluster = support::start_cluster(dir.path(), &root, "c0", &[]);
        let node = support::start_node(&dir.path().join("n0"), &cluster, "n0", &[]);
        let testbed = Testbed {
            _cleanup: KillOnDrop(marker.clone()),
            dir,
            marker,
            root,
            _cluster: cluster,
            node,
        };
        eventually(SETTLE, "a ready node at the root", || {
            let nodes = canopy_json(testbed.server(), &["get", "nodes", "-A"]);
            nodes.iter().any(|n| n["state"] == "Ready").then_some(())
        });
        testbed
    }

    fn server(&self) -> &str {
        &self.root.url
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Application `app` with one process service `svc` running `script` in a shell (marked
    /// by its `$0`), in the testbed's directory.
    fn apply(&self, app: &str, replicas: u32, script: &str) {
        let yaml = format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: {app}}}\nspec:\n  services:\n  - name: svc\n    runtime: process\n    command: [/bin/sh, -c, '{script}', {marker}]\n    workingDir: {dir}\n    env: {{GREETING: bonjour}}\n    replicas: {replicas}\n    resources: {{cpu: 10m, memory: 16Mi}}\n    restartPolicy: always\n",
            marker = self.marker,
            dir = self.dir.path().display()
        );
        let file = self.dir.path().join(format!("{app}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        canopy_ok(self.server(), &["apply", "-f", file.to_str().unwrap()]);
    }

    /// Waits until `count` instances of `app` run and returns them.
    fn running(&self, app: &str, count: usize) -> Vec<Value> {
        eventually(
            SETTLE,
            &format!("{count} running instances of {app}"),
            || {
                let instances: Vec<Value> = canopy_json(self.server(), &["get", "instances", "-A"])
                    .into_iter()
                    .filter(|i| i["application"] == app && i["state"] == "Running")
                    .collect();
                (instances.len() == count).then_some(instances)
            },
        )
    }

    fn canopy_exec(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["exec"];
        all.extend(args);
        canopy(self.server(), &all)
    }

    fn logs(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["logs"];
        all.extend(args);
        canopy(self.server(), &all)
    }
}

/// Lines a `canopy` client prints, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[test]
fn logs_follow_delivers_a_new_line_within_a_second_and_ctrl_c_ends_it() {
    let bed = Testbed::start();
    let trigger = bed.path("trigger");
    // Prints a numbered line each time the trigger file appears (checked every 50 ms).
    bed.apply(
        "talker",
        1,
        &format!(
            "echo started; i=0; while true; do if [ -e {trigger} ]; then rm -f {trigger}; echo said-$i; i=$((i+1)); fi; sleep 0.05; done"
        ),
    );
    let id = bed.running("talker", 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut follower = Command::new(CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(["logs", "-f", &id])
        .env("CANOPY_SERVER", bed.server())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    assert_eq!(
        lines.recv_timeout(SETTLE).expect("the first line"),
        "started"
    );
    for i in 0..3 {
        std::fs::write(&trigger, "").unwrap();
        let written = Instant::now();
        let line = lines
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_else(|_| panic!("line {i} did not arrive within 1 s"));
        assert_eq!(line, format!("said-{i}"));
        assert!(written.elapsed() < Duration::from_secs(1));
    }
    // Ctrl-C ends the follow cleanly.
    let pid = rustix::process::Pid::from_raw(follower.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = eventually(Duration::from_secs(5), "the follower to exit", || {
        follower.try_wait().unwrap()
    });
    assert!(status.success(), "{status:?}");
}

/// `--since` drops what was written before the window (once time has passed it) and never
/// a line written inside it.
#[test]
fn logs_since_keep_only_the_lines_of_the_window() {
    let bed = Testbed::start();
    let trigger = bed.path("trigger");
    bed.apply(
        "marked",
        1,
        &format!(
            "echo early; i=0; while true; do if [ -e {trigger} ]; then rm -f {trigger}; echo late-$i; i=$((i+1)); fi; sleep 0.05; done"
        ),
    );
    let id = bed.running("marked", 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut said = 0;
    let mut say = || {
        std::fs::write(&trigger, "").unwrap();
        let line = format!("late-{said}");
        said += 1;
        eventually(SETTLE, "the line in the logs", || {
            canopy_ok(bed.server(), &["logs", &id])
                .contains(&line)
                .then_some(())
        });
        line
    };
    let first = say();
    let hour = canopy_ok(bed.server(), &["logs", &id, "--since", "1h"]);
    assert_eq!(hour, format!("early\n{first}\n"));
    // Until `early` is older than the window, then for good: each time, the line written
    // just now is in it.
    eventually(
        Duration::from_secs(15),
        "early to fall out of a 2 s window",
        || {
            let line = say();
            let window = canopy_ok(bed.server(), &["logs", &id, "--since", "2s"]);
            assert!(window.contains(&line), "{line:?} missing from {window:?}");
            (!window.contains("early")).then_some(())
        },
    );
    let err = canopy(bed.server(), &["logs", &id, "--since", "5 minutes"]);
    assert!(!err.status.success());
    assert!(
        String::from_utf8_lossy(&err.stderr).contains("invalid value '5 minutes' for '--since"),
        "{err:?}"
    );
}

#[test]
fn a_follow_whose_node_dies_ends_with_an_error_instead_of_hanging() {
    let mut bed = Testbed::start();
    bed.apply("doomed", 1, "echo alive; sleep 3600; true");
    let id = bed.running("doomed", 1)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut follower = Command::new(CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(["logs", "-f", &id])
        .env("CANOPY_SERVER", bed.server())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut follower);
    assert_eq!(lines.recv_timeout(SETTLE).expect("the first line"), "alive");
    bed.node.kill();
    // The node's connection drops with it: the stream breaks at once, well before any
    // keepalive would notice.
    let status = eventually(Duration::from_secs(10), "the follower to give up", || {
        follower.try_wait().unwrap()
    });
    assert!(!status.success(), "{status:?}");
    let mut error = String::new();
    std::io::Read::read_to_string(&mut follower.stderr.take().unwrap(), &mut error).unwrap();
    assert!(error.contains("broke off"), "{error}");
}

#[test]
fn logs_of_a_service_interleave_replicas_and_keep_the_previous_run() {
    let bed = Testbed::start();
    bed.apply(
        "greeter",
        2,
        "echo hello from $CANOPY_INSTANCE; sleep 3600; true",
    );
    let instances = bed.running("greeter", 2);
    let output = eventually(SETTLE, "both replicas' lines", || {
        let output = bed.logs(&["greeter/svc"]);
        let text = String::from_utf8(output.stdout).unwrap();
        instances
            .iter()
            .all(|i| {
                let id = i["id"].as_str().unwrap();
                text.lines().any(|l| l == format!("[{id}] hello from {id}"))
            })
            .then_some(text)
    });
    assert_eq!(output.lines().count(), 2, "{output}");

    // Each run counts itself; the first one fails and is restarted.
    let count = bed.path("runs");
    bed.apply(
        "phoenix",
        1,
        &format!(
            "n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; echo run $n; echo end of run $n >&2; if [ $n -lt 2 ]; then exit 1; fi; sleep 3600; true"
        ),
    );
    let id = eventually(SETTLE, "the second run", || {
        let instances = bed.running("phoenix", 1);
        (instances[0]["restarts"].as_u64() >= Some(1))
            .then(|| instances[0]["id"].as_str().unwrap().to_string())
    });
    let current = eventually(SETTLE, "the second run's lines", || {
        let output = bed.logs(&[&id]);
        let text = String::from_utf8(output.stdout).unwrap();
        text.contains("end of run 2").then_some(text)
    });
    assert_eq!(current, "run 2\nend of run 2\n");
    let tail = canopy_ok(bed.server(), &["logs", &id, "--tail", "1"]);
    assert_eq!(tail, "run 2\nend of run 2\n", "one line of each output");
    let previous = canopy_ok(bed.server(), &["logs", &id, "--previous"]);
    assert_eq!(previous, "run 1\nend of run 1\n");

    let unknown = bed.logs(&["no-such-instance"]);
    assert!(!unknown.status.success());
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert!(error.contains("404"), "{error}");
}

#[test]
fn exec_runs_in_the_instance_with_its_environment_and_returns_its_exit_code() {
    let bed = Testbed::start();
    bed.apply("host", 1, "sleep 3600; true");
    let instance = bed.running("host", 1).remove(0);
    let id = instance["id"].as_str().unwrap().to_string();
    let pid = instance["pid"].as_u64().unwrap();

    let output = bed.canopy_exec(&[
        &id,
        "--",
        "sh",
        "-c",
        "echo $GREETING $CANOPY_INSTANCE; pwd; echo oops >&2; exit 3",
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let cwd = std::fs::canonicalize(bed.dir.path()).unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        format!("bonjour {id}\n{}\n", cwd.display())
    );
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "oops\n");

    // In the instance's cgroups.
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let cgroup = canopy_ok(
        bed.server(),
        &["exec", &id, "--", "cat", "/proc/self/cgroup"],
    );
    assert_eq!(cgroup, own);

    // -i passes standard input through, and its end.
    let mut cat = Command::new(CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(["exec", "-i", &id, "--", "cat"])
        .env("CANOPY_SERVER", bed.server())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"through the tiers\n")
        .unwrap();
    let output = cat.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"through the tiers\n");

    // -t gives the command a terminal of its own.
    let tty = bed.canopy_exec(&[
        "-t",
        &id,
        "--",
        "sh",
        "-c",
        "tty; test -t 0 && echo on a terminal",
    ]);
    assert!(tty.status.success(), "{tty:?}");
    let text = String::from_utf8(tty.stdout).unwrap();
    assert!(text.starts_with("/dev/pts/"), "{text:?}");
    assert!(text.contains("on a terminal\r\n"), "{text:?}");

    let unknown = bed.canopy_exec(&["no-such-instance", "--", "true"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("404"));
    let missing = bed.canopy_exec(&[&id, "--", "/no/such/program"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/no/such/program"),
        "{missing:?}"
    );
}

/// A free loopback port (bound once, then released for the workload to take).
/// `GET /` over a fresh connection to `port`; the whole answer (empty when it failed).
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let mut answer = String::new();
    if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        if stream.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok() {
            let _ = stream.read_to_string(&mut answer);
        }
    }
    answer
}

#[test]
fn port_forward_relays_connections_to_a_port_of_the_instance() {
    let bed = Testbed::start();
    let www = bed.dir.path().join("www");
    std::fs::create_dir(&www).unwrap();
    std::fs::write(www.join("index.html"), "served through the tiers\n").unwrap();
    let port = free_port();
    bed.apply(
        "web",
        1,
        &format!(
            "/bin/busybox httpd -f -p 127.0.0.1:{port} -h {}; true",
            www.display()
        ),
    );
    let id = bed.running("web", 1)[0]["id"].as_str().unwrap().to_string();
    let mut forward = Command::new(CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(["port-forward", &id, &format!("0:{port}")])
        .env("CANOPY_SERVER", bed.server())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut forward);
    let announced = lines.recv_timeout(SETTLE).expect("the forwarding line");
    let local: u16 = announced
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {announced:?}"));
    // The server may still be binding its port: retry until it answers.
    let answer = eventually(SETTLE, "an answer through the forward", || {
        let answer = http_get(local);
        answer.contains("200 OK").then_some(answer)
    });
    assert!(answer.ends_with("served through the tiers\n"), "{answer}");
    // Each connection is its own stream.
    for _ in 0..3 {
        assert!(http_get(local).ends_with("served through the tiers\n"));
    }
    let _ = forward.kill();
    let _ = forward.wait();
}
