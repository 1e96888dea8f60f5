//! The client verbs kubectl users reach for, end to end against real tiers on loopback (a
//! root, a cluster and a node as separate processes, running process workloads): `get -l`,
//! `get -w`, `events -w`, `wait`, `diff`, `apply --dry-run`, `version` and `config`.

use crate::support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{
    CANOPY, Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, start_cluster,
    start_node, start_root,
};

/// A root, a cluster labelled `zone=eu` and a node labelled `disk=ssd`, the node linked.
struct Tiers {
    root: Daemon,
    _cluster: Daemon,
    _node: Daemon,
    dir: tempfile::TempDir,
}

impl Tiers {
    fn start() -> Tiers {
        let dir = tempfile::tempdir().unwrap();
        let root = start_root(dir.path());
        let cluster = start_cluster(dir.path(), &root, "edge", &["--labels", "zone=eu"]);
        let node = start_node(
            &dir.path().join("n1"),
            &cluster,
            "n1",
            &["--labels", "disk=ssd"],
        );
        eventually(Duration::from_secs(20), "the node to join", || {
            (canopy_json(&root.url, &["get", "nodes"]).len() == 1).then_some(())
        });
        Tiers {
            root,
            _cluster: cluster,
            _node: node,
            dir,
        }
    }

    fn server(&self) -> &str {
        &self.root.url
    }

    /// Writes a descriptor of application `name`: one process service `web`.
    fn descriptor(&self, file: &str, name: &str, replicas: i64, labels: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        std::fs::write(&path, descriptor(name, replicas, labels)).unwrap();
        path
    }
}

/// The marker in every workload's command line, so a failed test leaves none behind.
const MARKER: &str = "canopy-verbs-test";

fn descriptor(name: &str, replicas: i64, app_labels: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1
kind: Application
metadata:
  name: {name}
  labels: {{{app_labels}}}
spec:
  services:
    - name: web
      runtime: process
      command: [\"/bin/sh\", \"-c\", \"while true; do sleep 5; done; echo {MARKER}\"]
      replicas: {replicas}
      labels: {{tier: web}}
      resources: {{cpu: 50m, memory: 16Mi}}
"
    )
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A client verb that keeps running (`-w`): its output lines, as they come.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(server: &str, args: &[&str]) -> Follower {
        let mut child = Command::new(CANOPY)
            .env("CANOPY_CONFIG", support::client_config())
            .args(args)
            .env("CANOPY_SERVER", server)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("canopy starts");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Follower {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line that `matches`; panics with every line seen when none comes in time.
    fn expect(&mut self, within: Duration, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {what} within {within:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(items: &[Value], field: &str) -> Vec<String> {
    let mut names: Vec<String> = items
        .iter()
        .map(|item| {
            field
                .split('.')
                .fold(item, |v, f| &v[f])
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn label_selectors_pick_what_get_lists() {
    let _cleanup = KillOnDrop(MARKER.into());
    let tiers = Tiers::start();
    let server = tiers.server();
    let shop = tiers.descriptor("shop.yaml", "shop", 1, "team: a");
    let blog = tiers.descriptor("blog.yaml", "blog", 1, "team: b, legacy: \"yes\"");
    canopy_ok(
        server,
        &["apply", "-f", path_arg(&shop), "-f", path_arg(&blog)],
    );

    let get = |args: &[&str]| canopy_json(server, args);
    assert_eq!(
        names(&get(&["get", "apps", "-l", "team=a"]), "metadata.name"),
        ["shop"]
    );
    assert_eq!(
        names(&get(&["get", "apps", "-l", "team!=a"]), "metadata.name"),
        ["blog"]
    );
    assert_eq!(
        names(&get(&["get", "apps", "-l", "!legacy"]), "metadata.name"),
        ["shop"]
    );
    assert_eq!(
        names(&get(&["get", "apps", "-l", "team,legacy"]), "metadata.name"),
        ["blog"]
    );
    // Services and instances carry their application's labels under their service's own.
    assert_eq!(
        names(
            &get(&["get", "services", "-l", "tier=web,team=b"]),
            "application"
        ),
        ["blog"]
    );
    let instances = eventually(Duration::from_secs(20), "shop's instance", || {
        let instances = get(&["get", "instances", "-l", "team=a"]);
        (!instances.is_empty()).then_some(instances)
    });
    assert_eq!(names(&instances, "application"), ["shop"]);
    assert_eq!(
        names(&get(&["get", "clusters", "-l", "zone=eu"]), "name"),
        ["edge"]
    );
    assert!(get(&["get", "clusters", "-l", "zone=us"]).is_empty());
    assert_eq!(
        names(&get(&["get", "nodes", "-l", "disk=ssd"]), "name"),
        ["n1"]
    );
    assert!(get(&["get", "nodes", "-l", "disk!=ssd"]).is_empty());
    // The table says so when nothing matches.
    let none = canopy(server, &["get", "apps", "-l", "team=z"]);
    assert!(none.status.success());
    assert!(
        stderr(&none).contains("No resources found."),
        "{}",
        stderr(&none)
    );

    let bad = canopy(server, &["get", "apps", "-l", "team=a,,x"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("invalid label selector")
            && stderr(&bad).contains("empty requirement"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn wait_and_watches_follow_a_rollout() {
    let _cleanup = KillOnDrop(MARKER.into());
    let tiers = Tiers::start();
    let server = tiers.server();
    let shop = tiers.descriptor("shop.yaml", "shop", 1, "team: a");
    canopy_ok(server, &["apply", "-f", path_arg(&shop)]);

    let met = canopy_ok(
        server,
        &[
            "wait",
            "--for=state=Running",
            "services",
            "shop/web",
            "--timeout",
            "60s",
        ],
    );
    assert_eq!(met.trim(), "service/shop/web condition met (state=Running)");
    let first = canopy_json(server, &["get", "instances"]);
    assert_eq!(first.len(), 1);
    let first = first[0]["id"].as_str().unwrap().to_string();
    canopy_ok(
        server,
        &[
            "wait",
            "--for=state=Running",
            "instances",
            &first,
            "--timeout",
            "10s",
        ],
    );
    canopy_ok(
        server,
        &[
            "wait",
            "--for=state=Running",
            "application",
            "shop",
            "--timeout",
            "10s",
        ],
    );
    let started = Instant::now();
    let timed_out = canopy(
        server,
        &[
            "wait",
            "--for=state=Succeeded",
            "instances",
            &first,
            "--timeout",
            "1s",
        ],
    );
    assert!(!timed_out.status.success());
    assert!(
        stderr(&timed_out).contains(&format!(
            "timed out after 1s waiting for instance/{first} to be Succeeded: it is Running"
        )),
        "{}",
        stderr(&timed_out)
    );
    assert!(started.elapsed() >= Duration::from_secs(1));

    let mut watch = Follower::start(server, &["get", "instances", "-w"]);
    watch.expect(Duration::from_secs(10), "the header", |l| {
        l.starts_with("ID")
    });
    watch.expect(Duration::from_secs(10), "the running instance", |l| {
        l.starts_with(&first) && l.contains("Running")
    });
    let mut events = Follower::start(server, &["events", "-w"]);
    events.expect(Duration::from_secs(10), "the header", |l| {
        l.starts_with("AGE")
    });
    events.expect(Duration::from_secs(10), "the first instance running", |l| {
        l.contains(&format!("instance/{first}")) && l.contains("Running")
    });

    canopy_ok(server, &["scale", "shop/web", "--replicas", "2"]);
    let second = watch.expect(Duration::from_secs(30), "a second instance running", |l| {
        !l.starts_with(&first) && l.contains("shop/web") && l.contains("Running")
    });
    let second = second.split_whitespace().next().unwrap().to_string();
    events.expect(Duration::from_secs(10), "the application's change", |l| {
        l.contains("application/shop") && l.contains("Applied") && l.contains("generation 2")
    });
    events.expect(
        Duration::from_secs(10),
        "the second instance running",
        |l| l.contains(&format!("instance/{second}")) && l.contains("Running"),
    );

    canopy_ok(server, &["delete", "application", "shop"]);
    watch.expect(
        Duration::from_secs(10),
        "the first instance terminating",
        |l| l.starts_with(&first) && l.contains("Terminat"),
    );
    let gone = canopy_ok(
        server,
        &[
            "wait",
            "--for=delete",
            "application",
            "shop",
            "--timeout",
            "10s",
        ],
    );
    assert_eq!(gone.trim(), "application/shop deleted");
    canopy_ok(
        server,
        &[
            "wait",
            "--for=delete",
            "instances",
            &first,
            "--timeout",
            "30s",
        ],
    );
    events.expect(Duration::from_secs(10), "the application's deletion", |l| {
        l.contains("application/shop") && l.contains("Deleted")
    });
    let missing = canopy(
        server,
        &[
            "wait",
            "--for=delete",
            "services",
            "nope",
            "--timeout",
            "1s",
        ],
    );
    assert!(
        stderr(&missing).contains("APPLICATION/SERVICE"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn diff_and_dry_run_change_nothing_and_say_what_apply_would() {
    let _cleanup = KillOnDrop(MARKER.into());
    let tiers = Tiers::start();
    let server = tiers.server();
    let v1 = tiers.descriptor("v1.yaml", "shop", 1, "team: a");
    let v2 = tiers.descriptor("v2.yaml", "shop", 3, "team: a");

    let new = canopy(server, &["diff", "-f", path_arg(&v1)]);
    assert_eq!(new.status.code(), Some(1), "{}", stderr(&new));
    let text = stdout(&new);
    assert!(
        text.starts_with("--- /dev/null\n+++ applied/application/default/shop\n"),
        "{text}"
    );
    assert!(text.lines().any(|l| l == "+  name: shop"), "{text}");

    let dry = canopy_ok(server, &["apply", "--dry-run", "-f", path_arg(&v1)]);
    assert_eq!(dry.trim(), "application/shop created (dry run)");
    assert!(
        canopy_json(server, &["get", "apps"]).is_empty(),
        "nothing was created"
    );

    canopy_ok(server, &["apply", "-f", path_arg(&v1)]);
    let same = canopy(server, &["diff", "-f", path_arg(&v1)]);
    assert_eq!(same.status.code(), Some(0), "{}", stderr(&same));
    assert_eq!(stdout(&same), "");

    let changed = canopy(server, &["diff", "-f", path_arg(&v2)]);
    assert_eq!(changed.status.code(), Some(1), "{}", stderr(&changed));
    let text = stdout(&changed);
    assert!(
        text.starts_with("--- live/application/default/shop\n"),
        "{text}"
    );
    let removed: Vec<&str> = text.lines().filter(|l| l.starts_with("- ")).collect();
    let added: Vec<&str> = text.lines().filter(|l| l.starts_with("+ ")).collect();
    assert!(
        removed.len() == 1 && removed[0].ends_with("replicas: 1"),
        "{text}"
    );
    assert!(
        added.len() == 1 && added[0].ends_with("replicas: 3"),
        "{text}"
    );
    let dry = canopy_ok(server, &["apply", "--dry-run", "-f", path_arg(&v2)]);
    assert_eq!(dry.trim(), "application/shop configured (dry run)");
    let services = canopy_json(server, &["get", "services"]);
    assert_eq!(
        services[0]["status"]["desired"], 1,
        "the dry run changed nothing"
    );

    let invalid = tiers.dir.path().join("invalid.yaml");
    std::fs::write(&invalid, descriptor("Bad_Name", 1, "")).unwrap();
    let failed = canopy(server, &["diff", "-f", path_arg(&invalid)]);
    assert_eq!(failed.status.code(), Some(2));
    assert!(
        stderr(&failed).contains("metadata.name"),
        "{}",
        stderr(&failed)
    );
    let failed = canopy(server, &["apply", "--dry-run", "-f", path_arg(&invalid)]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        stderr(&failed).contains("metadata.name"),
        "{}",
        stderr(&failed)
    );
    let missing = canopy(server, &["diff", "-f", "/nonexistent/app.yaml"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// The client with its config at `config` and no server from the environment.
fn with_config(config: &Path, args: &[&str]) -> Output {
    Command::new(CANOPY)
        .args(args)
        .env_remove("CANOPY_SERVER")
        .env_remove("CANOPY_CONTEXT")
        .env("CANOPY_CONFIG", config)
        .output()
        .expect("canopy client runs")
}

/// `canopy login --context lab` into `config` as the admin of the root whose data is `data`.
fn log_in_with_config(config: &Path, data: &Path) {
    use std::io::Write;
    let mut child = Command::new(CANOPY)
        .args([
            "login",
            "--context",
            "lab",
            "--user",
            "admin",
            "--password-stdin",
        ])
        .env_remove("CANOPY_SERVER")
        .env_remove("CANOPY_CONTEXT")
        .env("CANOPY_CONFIG", config)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let password = std::fs::read(data.join("admin-password")).unwrap();
    child.stdin.take().unwrap().write_all(&password).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "login: {}", stderr(&output));
}

fn with_config_ok(config: &Path, args: &[&str]) -> String {
    let output = with_config(config, args);
    assert!(
        output.status.success(),
        "canopy {args:?}: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn version_and_contexts() {
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let server = root.url.as_str();
    let closed = "http://127.0.0.1:1";

    let both = canopy_ok(server, &["version"]);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        both.starts_with(&format!("Client Version: {version}")),
        "{both}"
    );
    assert!(
        both.contains(&format!("\nServer Version: {version} (commit ")),
        "{both}"
    );
    let client_only = canopy_ok(closed, &["version", "--client"]);
    assert_eq!(client_only.lines().count(), 1, "{client_only}");
    let unreachable = canopy(closed, &["version"]);
    assert!(!unreachable.status.success());
    assert!(stdout(&unreachable).starts_with("Client Version: "));
    assert!(
        stderr(&unreachable).contains("cannot reach"),
        "{}",
        stderr(&unreachable)
    );
    let json: Value = serde_json::from_str(&canopy_ok(server, &["version", "-o", "json"])).unwrap();
    assert_eq!(json["clientVersion"], json["serverVersion"], "{json}");

    let config = dir.path().join("conf/config.yaml");
    let none = with_config(&config, &["config", "get-contexts"]);
    assert!(none.status.success() && stderr(&none).contains("No contexts found."));
    assert!(
        !with_config(&config, &["config", "current-context"])
            .status
            .success()
    );
    with_config_ok(
        &config,
        &["config", "set-context", "lab", "--server", server],
    );
    log_in_with_config(&config, &dir.path().join("root"));
    with_config_ok(
        &config,
        &["config", "set-context", "dead", "--server", closed],
    );
    let no_server = with_config(&config, &["config", "set-context", "fresh"]);
    assert!(
        stderr(&no_server).contains("--server"),
        "{}",
        stderr(&no_server)
    );
    let unknown = with_config(&config, &["config", "use-context", "nope"]);
    assert!(
        stderr(&unknown).contains("lab, dead"),
        "{}",
        stderr(&unknown)
    );
    with_config_ok(&config, &["config", "use-context", "lab"]);
    assert_eq!(
        with_config_ok(&config, &["config", "current-context"]).trim(),
        "lab"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the config holds credentials");
    }

    // Through the current context: the application lands on the lab root.
    let shop = dir.path().join("shop.yaml");
    std::fs::write(&shop, descriptor("shop", 0, "")).unwrap();
    with_config_ok(&config, &["apply", "-f", path_arg(&shop)]);
    assert_eq!(canopy_json(server, &["get", "apps"]).len(), 1);
    let dead = with_config(&config, &["get", "apps", "--context", "dead"]);
    assert!(
        stderr(&dead).contains(&format!("cannot reach the Canopy API at {closed}")),
        "{}",
        stderr(&dead)
    );
    // `--server` (or CANOPY_SERVER) beats every context; `--context` the current one.
    with_config_ok(&config, &["config", "use-context", "dead"]);
    assert!(!with_config(&config, &["get", "apps"]).status.success());
    with_config_ok(&config, &["get", "apps", "--server", server]);
    with_config_ok(&config, &["get", "apps", "--context", "lab"]);
    let output = Command::new(CANOPY)
        .args(["get", "apps"])
        .env("CANOPY_SERVER", server)
        .env("CANOPY_CONFIG", &config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    // The login's token is kept by edits and never printed.
    let token = || {
        let text = std::fs::read_to_string(&config).unwrap();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token: ").map(str::to_string))
    };
    let before = token().expect("the login stored a token");
    with_config_ok(
        &config,
        &["config", "set-context", "lab", "--server", server],
    );
    assert_eq!(token(), Some(before.clone()));
    let listed = with_config_ok(&config, &["config", "get-contexts"]);
    assert!(!listed.contains(&before), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with('*') && l.contains("dead")),
        "{listed}"
    );
    with_config_ok(&config, &["get", "apps", "--context", "lab"]);

    with_config_ok(&config, &["config", "delete-context", "dead"]);
    let listed = with_config_ok(&config, &["config", "get-contexts"]);
    assert!(
        !listed.contains("dead") && listed.contains("lab"),
        "{listed}"
    );
    assert!(
        !with_config(&config, &["config", "current-context"])
            .status
            .success()
    );

    // Each daemon's help shows its own flags only.
    let help = canopy_ok(server, &["root", "--help"]);
    assert!(
        help.contains("--listen") && !help.contains("--oci-runtime"),
        "{help}"
    );
    let help = canopy_ok(server, &["get", "--help"]);
    assert!(
        help.contains("--selector") && help.contains("--watch"),
        "{help}"
    );
}
