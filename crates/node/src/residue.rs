//! Nothing an instance had outlives it: instances revoked while they are being started, on
//! the real process runtime with real cgroups (root, as the suite runs).

use crate::{Agent, NodeConfig};
use canopy_model::{ResourceAmounts, RuntimeKind};
use canopy_runtime::{ProcessOptions, ProcessRuntime, Runtime};
use canopy_tier::{Assignment, Revocation, Workload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// Processes (pid, command line) whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<(String, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let pid = e.file_name().to_str()?.to_string();
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .filter(|(_, c)| c.contains(marker))
        .collect()
}

fn assignment(id: &str, marker: &str) -> Assignment {
    let spec = serde_json::from_value(serde_json::json!({
        "name": "s", "runtime": "process",
        "command": ["/bin/sh", "-c", format!("sleep 1000; : {marker}")],
        "resources": {"cpu": "10m", "memory": "16Mi"},
    }))
    .expect("spec");
    Assignment {
        secrets: Default::default(),
        id: id.into(),
        generation: 1,
        workload: Workload {
            namespace: "ns".into(),
            application: "app".into(),
            service: "s".into(),
            replica: 0,
            spec,
        },
    }
}

/// Kills what a failed run leaves and removes its groups.
struct Cleanup {
    marker: String,
    parent: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // This test's own workloads, by pid.
        for (pid, _) in processes_with(&self.marker) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .output();
        }
        for h in hierarchies() {
            let parent = h.join(&self.parent);
            for group in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let _ = std::fs::remove_dir(group.path());
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_revoked_while_they_start_leave_no_process_cgroup_or_directory() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "needs root for cgroups (the suite runs as root)"
    );
    let data = tempfile::tempdir().expect("tempdir");
    let tag = format!("residue-{}", std::process::id());
    let parent = format!("canopy-test/{tag}");
    let _cleanup = Cleanup {
        marker: format!("canopy-{tag}"),
        parent: parent.clone(),
    };
    let marker = format!("canopy-{tag}");
    let options = ProcessOptions {
        cgroup_parent: parent.clone(),
        ..ProcessOptions::default()
    };
    let state = data.path().join("process");
    let process = ProcessRuntime::new(state.clone(), options).expect("process runtime");
    assert!(process.limits_enforced(), "no usable cgroup controllers");
    let runtimes: Vec<Arc<dyn Runtime>> = vec![Arc::new(process)];
    let config = NodeConfig {
        name: "edge-1".into(),
        cluster: "http://127.0.0.1:9".into(),
        credentials: canopy_tier::child::Credentials::Cleartext,
        data: data.path().join("node"),
        labels: Default::default(),
        location: None,
        capacity: ResourceAmounts {
            cpu_millis: 10_000,
            memory_mib: 10_000,
            gpus: 0,
            storage_mib: 0,
        },
        arch: "amd64".into(),
        stop_grace: Duration::ZERO,
        watts_per_core: None,
        carbon_g_per_kwh: None,
        coordinate: None,
        allowed_host_paths: Vec::new(),
    };
    let agent = Agent::open(config, runtimes).await.expect("agent");
    assert_eq!(agent.runtimes.keys().next(), Some(&RuntimeKind::Process));
    let ids: Vec<String> = (0..8).map(|i| format!("{tag}-{i}")).collect();
    for round in 0..3 {
        agent
            .on_assigns(ids.iter().map(|id| assignment(id, &marker)).collect())
            .await;
        // Revoked at once: the supervisors are starting them (or about to).
        for id in &ids {
            agent.on_revoke(Revocation::new(id, 1, "deleted")).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !agent.instances.lock().await.is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: instances not all removed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // A start that lost the race must not come back after the stop either: none
        // appears for a while after.
        let quiet_until = tokio::time::Instant::now() + Duration::from_millis(300);
        loop {
            let left = processes_with(&marker);
            assert!(left.is_empty(), "round {round}: processes left: {left:?}");
            if tokio::time::Instant::now() >= quiet_until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for id in &ids {
            for h in hierarchies() {
                let group = h.join(&parent).join(id);
                assert!(
                    !group.exists(),
                    "round {round}: cgroup {} left",
                    group.display()
                );
            }
            assert!(
                !state.join(id).exists(),
                "round {round}: directory of {id} left"
            );
        }
    }
}
