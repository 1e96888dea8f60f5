//! The poller of a Swarm node's runs: every half second, the tasks of each run not yet
//! ended are asked for and its phase updated (Swarm keeps no event stream of task states).

use super::runtime::SwarmRuntime;
use super::tasks::{self, Phase};
use crate::docker::runtime::status_of;
use std::sync::Weak;
use std::time::Duration;

/// How often the tasks of runs not yet ended are asked for.
const POLL: Duration = Duration::from_millis(500);

/// Polls until the runtime is gone.
pub(super) async fn poll(runtime: Weak<SwarmRuntime>) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(runtime) = runtime.upgrade() else {
            return;
        };
        runtime.refresh().await;
    }
}

impl SwarmRuntime {
    /// Asks the tasks of every run not yet ended where it is.
    async fn refresh(&self) {
        let open: Vec<(String, String, u64, bool)> = tasks::lock(&self.runs)
            .iter()
            .filter(|(_, run)| !matches!(*run.phase.borrow(), Phase::Ended(_)))
            .map(|(id, run)| (id.clone(), run.service.clone(), run.force, run.gone_ends))
            .collect();
        for (id, service, force, gone_ends) in open {
            let (found, gone) = match self.tasks_of(&service).await {
                Ok(found) if !found.is_empty() => (found, false),
                Ok(_) => (Vec::new(), matches!(self.inspect(&service).await, Ok(None))),
                Err(e) if status_of(&e) == Some(404) => (Vec::new(), true),
                Err(e) => {
                    tracing::debug!(instance = %id, error = %e, "cannot list a service's tasks");
                    continue;
                }
            };
            let phase = tasks::phase_of(&found, force, gone_ends || gone);
            let mut runs = tasks::lock(&self.runs);
            let Some(run) = runs.get_mut(&id).filter(|r| r.force == force) else {
                continue;
            };
            if matches!(phase, Phase::Running(_)) {
                run.gone_ends = true;
            }
            run.phase.send_if_modified(|current| {
                if *current == phase || matches!(current, Phase::Ended(_)) {
                    return false;
                }
                *current = phase;
                true
            });
        }
    }
}
