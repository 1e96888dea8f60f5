//! The shell of admission: what a batch of assignments and a revocation do to the node's
//! instances. Deciding what fits is [`crate::admission`]'s; this applies its answers, reports
//! them, writes the state file once per batch and starts (or stops) the supervisors.

use crate::admission::Ledger;
use crate::lifecycle::Local;
use crate::statefile::Record;
use crate::{Agent, now_ms, report};
use canopy_tier::{Assignment, Revocation};
use std::collections::HashSet;
use std::sync::Arc;

impl Agent {
    /// Assignments that arrived together, admitted in order (each sees what the earlier ones
    /// reserved) and saved with one state-file write. A newer generation of an instance
    /// here replaces it: the old copies are stopped together, then their successors are
    /// admitted as the next batch.
    pub(crate) async fn on_assigns(self: &Arc<Self>, assigns: Vec<Assignment>) {
        let mut pending = assigns;
        while !pending.is_empty() {
            let replacing = self.admit_batch(pending).await;
            let mut stops = tokio::task::JoinSet::new();
            let mut seen = HashSet::new();
            for (assign, old) in &replacing {
                if seen.insert(assign.id.clone()) {
                    let (agent, id, old) = (self.clone(), assign.id.clone(), *old);
                    stops.spawn(async move {
                        agent
                            .stop_instance(&id, old, "replaced by a newer assignment")
                            .await
                    });
                }
            }
            while stops.join_next().await.is_some() {}
            // Each pass admits or refuses at least the first copy of every id: it ends.
            pending = replacing.into_iter().map(|(assign, _)| assign).collect();
        }
    }

    /// One pass of [`Agent::on_assigns`]: answers repeats, admits or refuses new instances,
    /// and returns the replacements (with the generation they replace) for later.
    async fn admit_batch(self: &Arc<Self>, assigns: Vec<Assignment>) -> Vec<(Assignment, u64)> {
        let node = &self.config.name;
        let now = now_ms();
        let mut replacing = Vec::new();
        let mut admitted = Vec::new();
        let mut instances = self.instances.lock().await;
        // Built on the first new instance: a batch of repeats scans nothing.
        let mut ledger: Option<Ledger> = None;
        for assign in assigns {
            match instances.get(&assign.id) {
                Some(local) if local.generation() >= assign.generation => {
                    // A repeat: say where it stands.
                    self.uplink.report(&report::of(node, &assign.id, local));
                    continue;
                }
                Some(local) => {
                    let old = local.generation();
                    replacing.push((assign, old));
                    continue;
                }
                None => {}
            }
            let ledger = ledger.get_or_insert_with(|| {
                let holding = instances.values().filter(|l| l.holds_resources());
                Ledger::new(&self.facts, holding.map(|l| &l.record.workload.spec))
            });
            if let Err(refusal) = ledger.admit(&assign.workload.spec) {
                let reason = refusal.to_string();
                let refused = report::refused(node, &assign.id, assign.generation, &reason, now);
                self.uplink.report(&refused);
                continue;
            }
            let record = Record {
                generation: assign.generation,
                workload: assign.workload,
                restarts: 0,
                image_digest: None,
                secrets: assign.secrets,
            };
            let local = Local::admitted(record, now);
            self.uplink.report(&report::of(node, &assign.id, &local));
            admitted.push((assign.id.clone(), assign.generation));
            instances.insert(assign.id, local);
        }
        if !admitted.is_empty() {
            // On disk before anything runs, so a crash right after start is recoverable.
            self.save(&instances);
        }
        drop(instances);
        for (id, generation) in admitted {
            tokio::spawn(self.clone().supervise(id, generation, false));
        }
        replacing
    }

    pub(crate) async fn on_revoke(self: &Arc<Self>, revoke: Revocation) {
        let known = {
            let instances = self.instances.lock().await;
            instances.get(&revoke.id).map(Local::generation)
        };
        match known {
            Some(generation) if generation <= revoke.generation => {
                let agent = self.clone();
                // Stopping takes up to the grace period: do not hold up the link meanwhile.
                tokio::spawn(async move {
                    agent
                        .stop_instance(&revoke.id, generation, &revoke.reason)
                        .await;
                });
            }
            // A newer copy than the one revoked: it stays.
            Some(_) => {}
            None => self.uplink.report(&report::terminated(
                &self.config.name,
                &revoke.id,
                revoke.generation,
                "not on this node",
                None,
                now_ms(),
            )),
        }
    }
}

/// The shell over the hollow runtime (in-process, nothing runs): no processes, no sockets.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeConfig;
    use crate::hollow::HollowRuntime;
    use canopy_model::{InstanceState, ResourceAmounts, RuntimeKind};
    use canopy_tier::Workload;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    /// A test's data directory, removed when the test ends.
    struct Scratch(std::path::PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn config(test: &str) -> (NodeConfig, Scratch) {
        let data = std::env::temp_dir().join(format!("canopy-node-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let scratch = Scratch(data.clone());
        let config = NodeConfig {
            name: "edge-1".into(),
            // Never dialled: these tests do not run the link.
            cluster: "http://127.0.0.1:9".into(),
            credentials: canopy_tier::child::Credentials::Cleartext,
            data,
            labels: Default::default(),
            location: None,
            capacity: ResourceAmounts {
                cpu_millis: 1_000,
                memory_mib: 1_000,
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
        (config, scratch)
    }

    async fn open(config: NodeConfig) -> Arc<Agent> {
        let hollow = Arc::new(HollowRuntime::new(RuntimeKind::Process));
        match Agent::open(config, vec![hollow]).await {
            Ok(agent) => agent,
            Err(e) => panic!("open: {e}"),
        }
    }

    fn assignment(id: &str, generation: u64, cpu: &str, host_port: Option<u16>) -> Assignment {
        let ports: Vec<_> = host_port
            .map(|p| serde_json::json!({"port": 80, "hostPort": p}))
            .into_iter()
            .collect();
        let spec = serde_json::from_value(serde_json::json!({
            "name": "s", "runtime": "process", "command": ["/bin/true"],
            "resources": {"cpu": cpu, "memory": "10Mi"}, "ports": ports
        }));
        match spec {
            Ok(spec) => Assignment {
                secrets: Default::default(),
                id: id.into(),
                generation,
                workload: Workload {
                    namespace: "ns".into(),
                    application: "app".into(),
                    service: "s".into(),
                    replica: 0,
                    spec,
                },
            },
            Err(e) => panic!("test spec: {e}"),
        }
    }

    async fn states(agent: &Agent) -> Vec<(String, u64, InstanceState)> {
        let instances = agent.instances.lock().await;
        instances
            .iter()
            .map(|(id, l)| (id.clone(), l.generation(), l.state()))
            .collect()
    }

    /// Waits (briefly) until `done` holds of the instances.
    async fn until(agent: &Agent, done: impl Fn(&[(String, u64, InstanceState)]) -> bool) {
        for _ in 0..200 {
            if done(&states(agent).await) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("not reached: {:?}", states(agent).await);
    }

    #[tokio::test]
    async fn a_batch_is_admitted_in_order_with_one_state_file_write() {
        let (config, _scratch) = config("batch");
        let agent = open(config).await;
        agent
            .on_assigns(vec![
                assignment("a", 1, "400m", None),
                assignment("b", 1, "400m", Some(8080)),
                assignment("c", 1, "400m", None),
                assignment("d", 1, "100m", Some(8080)),
                assignment("e", 1, "100m", None),
            ])
            .await;
        let ids: Vec<String> = states(&agent).await.into_iter().map(|s| s.0).collect();
        assert_eq!(ids, ["a", "b", "e"]);
        assert_eq!(agent.statefile.writes.load(Ordering::Relaxed), 1);
        let saved = agent
            .statefile
            .load()
            .map(|r| r.into_keys().collect::<Vec<_>>());
        assert_eq!(saved.ok(), Some(vec!["a".into(), "b".into(), "e".into()]));
        until(&agent, |s| s.iter().all(|i| i.2 == InstanceState::Running)).await;
    }

    #[tokio::test]
    async fn a_thousand_instances_are_admitted_with_one_write() {
        let (mut config, _scratch) = config("thousand");
        config.capacity.cpu_millis = 100_000;
        config.capacity.memory_mib = 100_000;
        let agent = open(config).await;
        let batch = (0..1_000)
            .map(|i| assignment(&format!("i{i:04}"), 1, "100m", None))
            .collect();
        let began = std::time::Instant::now();
        agent.on_assigns(batch).await;
        let took = began.elapsed();
        assert_eq!(states(&agent).await.len(), 1_000);
        assert_eq!(agent.statefile.writes.load(Ordering::Relaxed), 1);
        // Generous for a debug build on a busy machine; a scan per instance would be far slower.
        assert!(took < Duration::from_secs(5), "took {took:?}");
        println!("1000 admitted in {took:?}");
    }

    #[tokio::test]
    async fn a_repeat_changes_nothing_and_a_newer_generation_replaces() {
        let (config, _scratch) = config("replace");
        let agent = open(config).await;
        agent
            .on_assigns(vec![assignment("a", 2, "100m", None)])
            .await;
        until(&agent, |s| s == [("a".into(), 2, InstanceState::Running)]).await;
        agent
            .on_assigns(vec![
                assignment("a", 1, "100m", None),
                assignment("a", 2, "100m", None),
            ])
            .await;
        assert_eq!(
            states(&agent).await,
            [("a".into(), 2, InstanceState::Running)]
        );
        // The replacement's room is the old copy's: it is stopped before the new one is admitted.
        agent
            .on_assigns(vec![assignment("a", 3, "950m", None)])
            .await;
        until(&agent, |s| s == [("a".into(), 3, InstanceState::Running)]).await;
    }

    #[tokio::test]
    async fn a_revoked_instance_is_stopped_and_forgotten() {
        let (config, _scratch) = config("revoke");
        let agent = open(config).await;
        agent
            .on_assigns(vec![assignment("a", 1, "100m", None)])
            .await;
        until(&agent, |s| s.len() == 1 && s[0].2 == InstanceState::Running).await;
        agent
            .on_revoke(Revocation::new("a", 1, "scaled down"))
            .await;
        until(&agent, |s| s.is_empty()).await;
        assert_eq!(agent.statefile.load().map(|r| r.len()).ok(), Some(0));
    }

    #[tokio::test]
    async fn a_restarted_agent_takes_back_what_it_was_assigned() {
        let (config, _scratch) = config("reopen");
        let first = open(config.clone()).await;
        first
            .on_assigns(vec![
                assignment("a", 1, "100m", None),
                assignment("b", 4, "100m", None),
            ])
            .await;
        // The hollow runtime of the new agent recovers nothing: both are started again.
        let second = open(config).await;
        until(&second, |s| {
            s == [
                ("a".into(), 1, InstanceState::Running),
                ("b".into(), 4, InstanceState::Running),
            ]
        })
        .await;
    }
}
