//! Health probes run by a real node on real processes (`canopy up`): a failing liveness
//! probe restarts its instance by its restart policy, a startup probe holds liveness off
//! until it passes, and an instance is ready only while its readiness probe passes.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{KillOnDrop, canopy_json, canopy_ok, eventually};

const SETTLE: Duration = Duration::from_secs(40);

fn by_service(server: &str) -> BTreeMap<String, Value> {
    canopy_json(server, &["get", "instances"])
        .into_iter()
        .map(|i| (i["service"].as_str().unwrap().to_string(), i))
        .collect()
}

fn restarts(instance: &Value) -> u64 {
    instance["restarts"].as_u64().unwrap_or(0)
}

fn termination(instance: &Value) -> String {
    instance["lastTermination"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A process service `name` running `script` (`$F` is its own flag file) with `probes`
/// (YAML lines at the service's indentation).
fn service(name: &str, flags: &Path, marker: &str, script: &str, probes: &str) -> String {
    let script = script.replace("$F", &format!("{}/$CANOPY_INSTANCE", flags.display()));
    format!(
        "  - name: {name}\n    runtime: process\n    restartPolicy: always\n\
         \x20   resources: {{cpu: 10m, memory: 8Mi}}\n\
         \x20   command: [/bin/sh, -c, '{script}', {marker}]\n{probes}"
    )
}

/// An exec probe that passes while the instance's flag file exists.
fn flag_probe(kind: &str, flags: &Path, extra: &str) -> String {
    format!(
        "    {kind}:\n      exec: {{command: [/bin/sh, -c, 'test -f {}/$CANOPY_INSTANCE']}}\n\
         \x20     periodSeconds: 1\n{extra}",
        flags.display()
    )
}

#[test]
fn a_failing_liveness_or_startup_probe_restarts_and_a_passing_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let flags = dir.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let marker = format!("canopy-liveness-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let mut yaml = String::from(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: probes}\nspec:\n  services:\n",
    );
    // Healthy for a second after each start, then its flag goes: liveness fails.
    yaml.push_str(&service(
        "flaky",
        &flags,
        &marker,
        "touch $F; sleep 1; rm -f $F; exec sleep 600",
        &flag_probe("livenessProbe", &flags, "      failureThreshold: 2\n"),
    ));
    // Its flag stays: liveness keeps passing.
    yaml.push_str(&service(
        "steady",
        &flags,
        &marker,
        "touch $F; exec sleep 600",
        // A second for its first touch, then one failure would restart it.
        &flag_probe(
            "livenessProbe",
            &flags,
            "      failureThreshold: 1\n      initialDelaySeconds: 1\n",
        ),
    ));
    // Never starts up: its startup probe gives up.
    yaml.push_str(&service(
        "stuck",
        &flags,
        &marker,
        "exec sleep 600",
        &flag_probe("startupProbe", &flags, "      failureThreshold: 2\n"),
    ));
    support::apply(&daemon.url, dir.path(), &yaml);

    let restarted = eventually(SETTLE, "flaky and stuck restarted by their probes", || {
        let instances = by_service(&daemon.url);
        let done = ["flaky", "stuck"]
            .iter()
            .all(|s| instances.get(*s).is_some_and(|i| restarts(i) >= 2));
        done.then_some(instances)
    });
    let flaky = &restarted["flaky"];
    assert!(
        termination(flaky).contains("liveness probe failed 2 times"),
        "{flaky}"
    );
    let stuck = &restarted["stuck"];
    assert!(
        termination(stuck).contains("startup probe failed 2 times"),
        "{stuck}"
    );
    assert!(!stuck["ready"].as_bool().unwrap_or(true), "{stuck}");
    // Meanwhile (two restarts take well over the steady probe's period) steady was probed
    // and passed every time.
    let steady = &restarted["steady"];
    assert_eq!(steady["state"], "Running", "{steady}");
    assert_eq!(restarts(steady), 0, "{steady}");
    assert_eq!(steady["ready"], true, "{steady}");
}

#[test]
fn a_startup_probe_holds_liveness_off_and_readiness_decides_ready() {
    let dir = tempfile::tempdir().unwrap();
    let flags = dir.path().join("flags");
    std::fs::create_dir_all(&flags).unwrap();
    let marker = format!("canopy-startup-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let mut yaml = String::from(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: probes}\nspec:\n  services:\n",
    );
    // Slow to start: its flag comes after 4 s. Liveness alone (failing at once) would
    // restart it within a second; the startup probe holds it off.
    let mut probes = flag_probe("startupProbe", &flags, "      failureThreshold: 20\n");
    probes.push_str(&flag_probe(
        "livenessProbe",
        &flags,
        "      failureThreshold: 1\n",
    ));
    yaml.push_str(&service(
        "slow",
        &flags,
        &marker,
        "sleep 4; touch $F; exec sleep 600",
        &probes,
    ));
    // Ready only while its readiness probe passes: the test sets and clears its flag.
    yaml.push_str(&service(
        "gated",
        &flags,
        &marker,
        "exec sleep 600",
        &flag_probe(
            "readinessProbe",
            &flags,
            "      failureThreshold: 1\n      successThreshold: 1\n",
        ),
    ));
    support::apply(&daemon.url, dir.path(), &yaml);

    // Running but not started yet: not ready, and not restarted.
    let mut seen_unready = false;
    let slow = eventually(SETTLE, "slow ready", || {
        let instances = by_service(&daemon.url);
        let slow = instances.get("slow")?.clone();
        let flag = slow["id"]
            .as_str()
            .is_some_and(|id| flags.join(id).exists());
        if slow["state"] == "Running" && !flag {
            assert_eq!(
                slow["ready"], false,
                "ready before its startup probe passed"
            );
            seen_unready = true;
        }
        assert_eq!(restarts(&slow), 0, "restarted while starting up: {slow}");
        (slow["ready"] == true).then_some(slow)
    });
    assert!(seen_unready, "slow was never seen running before its flag");
    // Started: liveness runs now and passes (its period, twice over, without a restart).
    let id = slow["id"].as_str().unwrap().to_string();
    support::holds_for(Duration::from_secs(3), "slow keeps running", || {
        let slow = &by_service(&daemon.url)["slow"];
        slow["id"] == id.as_str() && restarts(slow) == 0 && slow["ready"] == true
    });

    // gated: running, not ready until its flag exists; ready; not ready again when it goes.
    let gated = eventually(SETTLE, "gated running", || {
        let gated = by_service(&daemon.url).get("gated")?.clone();
        (gated["state"] == "Running").then_some(gated)
    });
    assert_eq!(gated["ready"], false, "{gated}");
    let table = canopy_ok(&daemon.url, &["get", "instances"]);
    let header = table.lines().next().unwrap();
    assert!(header.contains("READY"), "{table}");
    let flag = flags.join(gated["id"].as_str().unwrap());
    std::fs::write(&flag, "").unwrap();
    eventually(SETTLE, "gated ready", || {
        (by_service(&daemon.url)["gated"]["ready"] == true).then_some(())
    });
    let table = canopy_ok(&daemon.url, &["get", "instances"]);
    let row = table.lines().find(|l| l.contains("probes/gated")).unwrap();
    assert!(row.split_whitespace().any(|cell| cell == "true"), "{table}");
    std::fs::remove_file(&flag).unwrap();
    eventually(SETTLE, "gated unready again", || {
        (by_service(&daemon.url)["gated"]["ready"] == false).then_some(())
    });
    let gated = &by_service(&daemon.url)["gated"];
    assert_eq!(restarts(gated), 0, "readiness never restarts: {gated}");
    assert_eq!(gated["state"], "Running", "{gated}");
}
