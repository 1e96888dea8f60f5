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
