//! An instance's life on one machine, with a real `canopy up` and real processes: restart
//! policies with their backoff, and a gracefully stopped `canopy up` whose successor
//! re-adopts what runs.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::{KillOnDrop, canopy_json, eventually, holds_for, runs_instance};

const SETTLE: Duration = Duration::from_secs(30);

/// The instances by service name (one replica each).
fn by_service(server: &str) -> BTreeMap<String, Value> {
    canopy_json(server, &["get", "instances"])
        .into_iter()
        .map(|i| (i["service"].as_str().unwrap().to_string(), i))
        .collect()
}

/// When each start of instance `id` ran (ns since the epoch), from its stamp file.
fn starts(stamps: &Path, id: &str) -> Vec<u128> {
    std::fs::read_to_string(stamps.join(id))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn reasons(instance: &Value) -> Vec<String> {
    instance["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect()
}

/// `always` restarts a process that exits 0 and `on-failure` one that exits 3, each time
/// after a longer backoff (200 ms, doubling), counting the restarts; `on-failure` leaves a
/// successful exit Succeeded, `never` leaves exits Succeeded or Failed with their code.
#[test]
fn restart_policies_restart_with_growing_backoff_or_leave_the_exit_be() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let marker = format!("canopy-policies-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let service = |name: &str, policy: &str, code: u32| {
        format!(
            "    - name: {name}\n      runtime: process\n      command: [/bin/sh, -c, 'date +%s%N >> {s}/$CANOPY_INSTANCE; exit {code}', {marker}]\n      resources: {{cpu: 10m, memory: 8Mi}}\n      restartPolicy: {policy}\n",
            s = stamps.display()
        )
    };
    let mut yaml = String::from(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: policies}\nspec:\n  services:\n",
    );
    for (name, policy, code) in [
        ("always-ok", "always", 0),
        ("onfailure-bad", "on-failure", 3),
        ("onfailure-ok", "on-failure", 0),
        ("never-bad", "never", 3),
        ("never-ok", "never", 0),
    ] {
        yaml.push_str(&service(name, policy, code));
    }
    support::apply(&daemon.url, dir.path(), &yaml);

    // Backoffs 200, 400, 800 and 1600 ms: five starts within about 3 s.
    let restarted = eventually(SETTLE, "5 starts of each restarting service", || {
        let instances = by_service(&daemon.url);
        ["always-ok", "onfailure-bad"]
            .iter()
            .all(|s| {
                instances.get(*s).is_some_and(|i| {
                    i["restarts"].as_u64().is_some_and(|r| r >= 4)
                        && starts(&stamps, i["id"].as_str().unwrap()).len() >= 5
                })
            })
            .then_some(instances)
    });
    for (name, code) in [("always-ok", 0), ("onfailure-bad", 3)] {
        let instance = &restarted[name];
        let id = instance["id"].as_str().unwrap();
        let starts = starts(&stamps, id);
        // The count climbs with each exit (before the restart it announces).
        let restarts = instance["restarts"].as_u64().unwrap() as usize;
        assert!(
            (starts.len() - 1..=starts.len()).contains(&restarts),
            "{name}: {} starts for {restarts} restarts",
            starts.len()
        );
        // Each restart waited at least its backoff, and the backoff doubled each time.
        let reasons = reasons(instance);
        for (k, backoff_ms) in [200u128, 400, 800, 1600].into_iter().enumerate() {
            let announced = format!("restarting in {backoff_ms} ms: exited with code {code}");
            assert!(
                reasons.contains(&announced),
                "{name}: no {announced:?} in {reasons:?}"
            );
            let gap_ms = (starts[k + 1] - starts[k]) / 1_000_000;
            assert!(
                gap_ms >= backoff_ms,
                "{name}: restart {} came {gap_ms} ms after the start before, under its {backoff_ms} ms backoff",
                k + 1
            );
        }
    }

    // The ones not restarted end with their exit, once (and stay so, past a backoff).
    let done = eventually(SETTLE, "the other services finished", || {
        let instances = by_service(&daemon.url);
        let ended = ["onfailure-ok", "never-bad", "never-ok"].iter().all(|s| {
            instances
                .get(*s)
                .is_some_and(|i| i["state"] == "Succeeded" || i["state"] == "Failed")
        });
        ended.then_some(instances)
    });
    for (name, state, code) in [
        ("onfailure-ok", "Succeeded", 0),
        ("never-bad", "Failed", 3),
        ("never-ok", "Succeeded", 0),
    ] {
        let instance = &done[name];
        assert_eq!(instance["state"], state, "{name}: {instance}");
        assert_eq!(
            instance["lastTermination"]["exitCode"], code,
            "{name}: {instance}"
        );
        assert_eq!(instance["restarts"], 0, "{name}: {instance}");
    }
    holds_for(
        Duration::from_secs(2),
        "finished services stay finished",
        || {
            let instances = by_service(&daemon.url);
            [
                ("onfailure-ok", "Succeeded"),
                ("never-bad", "Failed"),
                ("never-ok", "Succeeded"),
            ]
            .iter()
            .all(|(name, state)| {
                let instance = &instances[*name];
                instance["state"] == *state
                    && instance["restarts"] == 0
                    && starts(&stamps, instance["id"].as_str().unwrap()).len() == 1
            })
        },
    );
}

/// SIGTERM stops `canopy up` cleanly and leaves its processes running; the next `canopy up`
/// on the same data directory re-adopts them: the same pids, no restart.
#[test]
fn a_gracefully_stopped_up_leaves_its_processes_and_the_next_readopts_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marker = format!("canopy-readopt-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let mut daemon = support::up(&data);
    support::apply(
        &daemon.url,
        dir.path(),
        &format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: lasting}}\nspec:\n  services:\n    - name: web\n      runtime: process\n      command: [/bin/sh, -c, 'sleep 3600; true', {marker}]\n      replicas: 3\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    );
    let running = |server: &str| {
        eventually(SETTLE, "3 running instances", || {
            let instances = canopy_json(server, &["get", "instances"]);
            let running: BTreeMap<String, (u64, u64)> = instances
                .iter()
                .filter(|i| i["state"] == "Running")
                .filter_map(|i| {
                    let id = i["id"].as_str()?;
                    let pid = i["pid"].as_u64().filter(|pid| runs_instance(*pid, id))?;
                    Some((id.to_string(), (pid, i["restarts"].as_u64()?)))
                })
                .collect();
            (instances.len() == 3 && running.len() == 3).then_some((running, instances))
        })
    };
    let (before, _) = running(&daemon.url);

    let status = daemon.terminate(Duration::from_secs(10));
    assert!(
        status.success(),
        "canopy up exited with {status} on SIGTERM"
    );
    holds_for(
        Duration::from_secs(1),
        "every process running without canopy up",
        || before.iter().all(|(id, (pid, _))| runs_instance(*pid, id)),
    );

    let daemon = support::up(&data);
    let (after, _) = running(&daemon.url);
    assert_eq!(before, after, "the same processes, never restarted");
    // Adopted for real: the new agent supervises them (one that dies is restarted by it).
    let (id, (pid, restarts)) = after.iter().next().unwrap();
    support::kill_group(*pid as u32);
    eventually(SETTLE, "the adopted instance restarted", || {
        canopy_json(&daemon.url, &["get", "instances"])
            .into_iter()
            .find(|i| {
                i["id"] == id.as_str()
                    && i["state"] == "Running"
                    && i["restarts"].as_u64() == Some(restarts + 1)
                    && i["pid"]
                        .as_u64()
                        .is_some_and(|new| new != *pid && runs_instance(new, id))
            })
    });
}
