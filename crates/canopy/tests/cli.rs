//! The `canopy` binary end to end: a real `canopy up` daemon and the client verbs against it.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::{CANOPY, eventually, examples};

/// `canopy up` (or `root`) on a random port, with the client verbs bound to it.
struct Daemon {
    daemon: support::Daemon,
    server: String,
}

impl Daemon {
    fn start(command: &str, data: &Path) -> Daemon {
        let args: Vec<String> = [command, "--listen", "127.0.0.1:0", "--data"]
            .iter()
            .map(|s| s.to_string())
            .chain([data.display().to_string()])
            .collect();
        let daemon = support::Daemon::start(&args, true);
        let server = daemon.url.clone();
        Daemon { daemon, server }
    }

    fn canopy(&self, args: &[&str]) -> Output {
        support::canopy(&self.server, args)
    }

    fn canopy_ok(&self, args: &[&str]) -> String {
        support::canopy_ok(&self.server, args)
    }

    fn json(&self, args: &[&str]) -> Vec<Value> {
        support::canopy_json(&self.server, args)
    }

    fn kill(mut self) {
        self.daemon.kill();
    }
}

#[test]
fn tour_apply_get_describe_scale_delete() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start("up", data.path());
    let hello = examples().join("hello-process.yaml");
    let hello = hello.to_str().unwrap();

    let applied = daemon.canopy_ok(&["apply", "-f", hello]);
    assert!(applied.contains("created"), "{applied}");
    assert!(
        daemon
            .canopy_ok(&["apply", "-f", hello])
            .contains("unchanged")
    );

    let apps = daemon.json(&["get", "applications"]);
    assert_eq!(apps.len(), 1);
    let app_name = apps[0]["metadata"]["name"].as_str().unwrap().to_string();
    let instances = daemon.json(&["get", "instances"]);
    assert_eq!(instances.len(), 3, "hello-process has 3 replicas");
    for instance in &instances {
        for field in ["id", "application", "service", "state"] {
            assert!(
                instance[field].is_string(),
                "instance lacks {field}: {instance}"
            );
        }
    }

    let table = daemon.canopy_ok(&["get", "instances"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("ID"));
    assert_eq!(lines.count(), 3);
    let yaml = daemon.canopy_ok(&["get", "apps", "-o", "yaml"]);
    assert!(yaml.contains(&format!("name: {app_name}")));
    let wide = daemon.canopy_ok(&["get", "instances", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("REASON"));

    let described = daemon.canopy_ok(&["describe", "application", &app_name]);
    assert!(
        described.contains("Services:") && described.contains("Instances:"),
        "{described}"
    );
    let id = instances[0]["id"].as_str().unwrap();
    let described = daemon.canopy_ok(&["describe", "instance", id]);
    assert!(
        described.contains("Pending") && described.contains("Events:"),
        "{described}"
    );

    let service = format!("{app_name}/{}", instances[0]["service"].as_str().unwrap());
    daemon.canopy_ok(&["scale", &service, "--replicas", "1"]);
    // Surplus instances stop asynchronously: Terminating until their node confirms.
    eventually(Duration::from_secs(20), "scaled down to 1", || {
        (daemon.json(&["get", "instances"]).len() == 1).then_some(())
    });
    assert_eq!(
        daemon.json(&["get", "services", &service])[0]["status"]["desired"],
        1
    );

    let deleted = daemon.canopy_ok(&["delete", "-f", hello]);
    assert!(deleted.contains("deleted"), "{deleted}");
    assert!(daemon.json(&["get", "applications"]).is_empty());
    eventually(Duration::from_secs(20), "every instance stopped", || {
        daemon.json(&["get", "instances"]).is_empty().then_some(())
    });
}

#[test]
fn every_example_applies_and_oakestra_warnings_are_shown() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start("up", data.path());
    let mut applied = 0;
    for entry in std::fs::read_dir(examples()).unwrap() {
        let path = entry.unwrap().path();
        let output = daemon.canopy(&["apply", "-f", path.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{} did not apply: {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        if path.extension().is_some_and(|e| e == "json") {
            assert!(String::from_utf8_lossy(&output.stderr).contains("warning"));
        }
        applied += 1;
    }
    assert!(applied >= 4);
    assert!(daemon.json(&["get", "applications", "-A"]).len() >= 4);
    // Stop what really runs (the process example) rather than leave it to outlive the test.
    for entry in std::fs::read_dir(examples()).unwrap() {
        daemon.canopy_ok(&["delete", "-f", entry.unwrap().path().to_str().unwrap()]);
    }
    eventually(Duration::from_secs(20), "every instance stopped", || {
        daemon
            .json(&["get", "instances", "-A"])
            .is_empty()
            .then_some(())
    });
}

#[test]
fn failures_exit_non_zero_with_the_servers_reason() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start("up", data.path());
    let bad = data.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "metadata: {name: broken}\nspec:\n  services:\n  - name: web\n    runtime: process\n    replicas: 2\n    resources: {memory: 0}\n",
    )
    .unwrap();
    let output = daemon.canopy(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spec.services[0].resources.memory"),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.services[0].command"),
        "every error is listed: {stderr}"
    );

    let output = daemon.canopy(&["describe", "application", "nothing"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not found"));

    let output = Command::new(CANOPY)
        .args(["get", "apps", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach"));
}

#[test]
fn a_killed_root_loses_no_acknowledged_state() {
    let data = tempfile::tempdir().unwrap();
    let daemon = Daemon::start("root", data.path());
    let hello = examples().join("hello-process.yaml");
    daemon.canopy_ok(&["apply", "-f", hello.to_str().unwrap()]);
    let mut before: Vec<String> = daemon
        .json(&["get", "instances"])
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    daemon.kill();

    let daemon = Daemon::start("root", data.path());
    let mut after: Vec<String> = daemon
        .json(&["get", "instances"])
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    before.sort();
    after.sort();
    assert_eq!(before, after);
    assert_eq!(daemon.json(&["get", "applications"]).len(), 1);
}
