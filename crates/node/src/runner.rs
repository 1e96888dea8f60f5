//! The thin shell around one instance: start it through its runtime, wait for it to end,
//! ask the restart tracker what next, and tell the lifecycle (which reports). Stopping is
//! here too, since it is the other thing done to a running instance.

use crate::Agent;
use crate::restart::{Decision, Tracker};
use canopy_model::Termination;
use canopy_runtime::{Exit, Fault, InstanceSpec, Runtime};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;
use tokio::time::Instant;

impl Agent {
    /// Runs instance `id` at `generation` until its restart policy gives up or it is stopped
    /// or replaced. `adopted`: it already runs (or ran) from before an agent restart.
    pub(crate) async fn supervise(self: Arc<Self>, id: String, generation: u64, adopted: bool) {
        let found = {
            let instances = self.instances.lock().await;
            instances
                .get(&id)
                .filter(|l| l.generation() == generation && !l.is_stopping())
                .and_then(|local| {
                    let spec = &local.record.workload.spec;
                    let runtime = self.runtimes.get(&spec.runtime).cloned()?;
                    let tracker = Tracker::new(spec.run_restart_policy(), local.record.restarts);
                    let w = &local.record.workload;
                    let names = (
                        w.namespace.clone(),
                        w.application.clone(),
                        w.service.clone(),
                    );
                    let spec = self.spec_of(&id, local);
                    Some((runtime, spec, names, tracker, local.op.clone()))
                })
        };
        let Some((runtime, mut spec, (namespace, application, service), mut tracker, op)) = found
        else {
            return;
        };
        let mut start = !adopted;
        let mut service_env = false;
        loop {
            // Before the first start (an adopted instance has its environment already):
            // outside the lock, as the cluster is asked, which takes a round trip.
            if start && !service_env {
                service_env = true;
                for (var, value) in self
                    .overlay_service_env(&namespace, &application, &service)
                    .await
                {
                    spec.env.entry(var).or_insert(value);
                }
            }
            let began = Instant::now();
            let exit = if start {
                match self.start_once(runtime.as_ref(), &spec, &op).await {
                    Start::Running => self.run_to_end(runtime.as_ref(), &spec).await,
                    Start::Failed(exit) => exit,
                    Start::Gone => return,
                }
            } else {
                self.run_to_end(runtime.as_ref(), &spec).await
            };
            let ended = termination(exit, OffsetDateTime::now_utc());
            match tracker.on_end(&ended, began.elapsed()) {
                Decision::GiveUp(state) => {
                    self.update(&id, generation, false, |l, at| l.ended(state, ended, at))
                        .await;
                    return;
                }
                Decision::Restart { after } => {
                    let restarts = tracker.restarts();
                    // The restart count survives an agent restart: persisted with the state.
                    let waiting = self
                        .update(&id, generation, true, |l, at| {
                            l.backing_off(ended, after, restarts, at)
                        })
                        .await;
                    if !waiting {
                        return;
                    }
                    tokio::time::sleep(after).await;
                    if !self
                        .update(&id, generation, false, |l, at| l.starting("restarting", at))
                        .await
                    {
                        return;
                    }
                    start = true;
                }
            }
        }
    }

    /// Waits for this run to end; with probes, a failed liveness (or startup) probe ends
    /// it first: it is stopped, and its restart policy decides what follows.
    async fn run_to_end(&self, runtime: &dyn Runtime, spec: &InstanceSpec) -> Exit {
        let id = spec.id.as_str();
        let Some(health) = crate::health::Health::of(&spec.service) else {
            return wait(runtime, id).await;
        };
        tokio::select! {
            exit = wait(runtime, id) => exit,
            why = self.watch_health(runtime, id, spec.generation, health) => {
                tracing::info!(instance = id, reason = %why, "unhealthy: stopping it");
                if let Err(e) = runtime.stop(id, self.config.stop_grace).await {
                    tracing::warn!(instance = id, error = %e, "stopping an unhealthy instance failed");
                }
                let mut exit = wait(runtime, id).await;
                exit.reason = format!("{why} ({})", exit.reason);
                exit
            }
        }
    }

    /// One start of the instance, serialised with its stop by `op`: an instance stopped
    /// while it waited is not started, and one stopped while it starts is stopped after.
    async fn start_once(
        &self,
        runtime: &dyn Runtime,
        spec: &InstanceSpec,
        op: &tokio::sync::Mutex<()>,
    ) -> Start {
        let (id, generation) = (spec.id.as_str(), spec.generation);
        let _op = op.lock().await;
        if !self.is_current(id, generation).await {
            return Start::Gone;
        }
        let starting = std::time::Instant::now();
        let error = match self.start_prepared(runtime, spec).await {
            Ok((started, prepared)) => {
                self.metrics.started(runtime.kind(), starting.elapsed());
                let digest = prepared.image.as_ref().map(|i| i.digest.clone());
                // The digest is kept with the assignment: a re-adopting agent knows it.
                let persist = digest.is_some();
                self.update(id, generation, persist, |l, at| {
                    l.details.network(prepared.network.as_ref());
                    l.details.image(digest.as_deref());
                    l.running(started.pid, at)?;
                    l.record.image_digest = digest;
                    Ok(())
                })
                .await;
                return Start::Running;
            }
            Err(e) => e,
        };
        match error.fault() {
            // Any instance would fail here: its cluster places it on another node.
            Fault::Node(why) => {
                self.refuse_started(runtime, id, generation, &why).await;
                Start::Gone
            }
            Fault::Workload => Start::Failed(Exit {
                code: None,
                signal: None,
                oom_killed: false,
                reason: format!("could not start: {error}"),
            }),
        }
    }

    async fn is_current(&self, id: &str, generation: u64) -> bool {
        let instances = self.instances.lock().await;
        instances
            .get(id)
            .is_some_and(|l| l.generation() == generation && !l.is_stopping())
    }

    /// The node failed to start `id` for a reason of its own: it frees what the start left,
    /// forgets the instance and refuses it upward with the reason.
    async fn refuse_started(&self, runtime: &dyn Runtime, id: &str, generation: u64, why: &str) {
        tracing::warn!(
            instance = id,
            reason = why,
            "cannot start instances here: refusing"
        );
        // The hooks released theirs when the start failed; the runtime's is left.
        if let Err(e) = runtime.remove(id).await {
            tracing::warn!(instance = id, error = %e, "cleanup after a refused start failed");
        }
        let mut instances = self.instances.lock().await;
        let ours = instances
            .get(id)
            .is_some_and(|l| l.generation() == generation && !l.is_stopping());
        if !ours {
            return;
        }
        instances.remove(id);
        self.save(&instances);
        drop(instances);
        let node = &self.config.name;
        let reason = format!("node {node} cannot start instances: {why}");
        let refused = crate::report::refused(node, id, generation, &reason, crate::now_ms());
        self.uplink.report(&refused);
    }

    /// Stops instance `id` at `generation` (grace, then kill), frees what it holds, forgets
    /// it and reports it `Terminated`.
    pub(crate) async fn stop_instance(&self, id: &str, generation: u64, reason: &str) {
        let runtime = {
            let mut instances = self.instances.lock().await;
            let Some(local) = instances.get_mut(id) else {
                return;
            };
            if local.generation() != generation {
                return;
            }
            // Already stopping (a repeated revoke) is fine: stop and remove are idempotent.
            if let Err(e) = local.terminating(reason, crate::now_ms()) {
                tracing::debug!(instance = id, error = %e, "already stopped");
            }
            let runtime = self
                .runtimes
                .get(&local.record.workload.spec.runtime)
                .cloned();
            (runtime, local.op.clone())
        };
        let (runtime, op) = runtime;
        // A start under way finishes first, so what it made is stopped and removed here.
        let _op = op.lock().await;
        if let Some(runtime) = runtime {
            if let Err(e) = runtime.stop(id, self.config.stop_grace).await {
                tracing::warn!(instance = id, error = %e, "stop failed");
            }
            if let Err(e) = runtime.remove(id).await {
                tracing::warn!(instance = id, error = %e, "cleanup failed");
            }
            // Even after a failed remove: a namespace or lease left behind outlives the instance.
            self.release_prepared(runtime.kind(), id).await;
        }
        let mut instances = self.instances.lock().await;
        // Only this copy: a newer one admitted meanwhile under the same id stays.
        let removed = match instances.get(id) {
            Some(local) if local.generation() == generation => instances.remove(id),
            _ => None,
        };
        self.save(&instances);
        if let Some(removed) = &removed {
            // Under the lock: an instance of the application admitted meanwhile keeps them.
            self.after_removal(removed, reason, &instances).await;
        }
        drop(instances);
        self.uplink.report(&crate::report::terminated(
            &self.config.name,
            id,
            generation,
            &format!("stopped: {reason}"),
            removed.as_ref(),
            crate::now_ms(),
        ));
    }

    /// Start progress from the hooks and runtimes (image pulls) becomes the reason of a
    /// Starting instance, so `canopy describe` shows it as an event.
    pub(crate) fn forward_runtime_events(self: &Arc<Self>, mut rx: Progress) {
        for runtime in self.runtimes.values() {
            runtime.set_events(self.events.clone());
        }
        let agent = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some((id, text)) = rx.recv().await {
                let Some(agent) = agent.upgrade() else { return };
                let generation = match agent.instances.lock().await.get(&id) {
                    Some(local) => local.generation(),
                    None => continue,
                };
                // Refused (and not reported) unless it is still Starting.
                agent
                    .update(&id, generation, false, |l, at| l.progress(&text, at))
                    .await;
            }
        });
    }

    fn spec_of(&self, id: &str, local: &crate::lifecycle::Local) -> InstanceSpec {
        let workload = &local.record.workload;
        let mut env = BTreeMap::from([
            ("CANOPY_INSTANCE".to_string(), id.to_string()),
            ("CANOPY_NAMESPACE".to_string(), workload.namespace.clone()),
            (
                "CANOPY_APPLICATION".to_string(),
                workload.application.clone(),
            ),
            ("CANOPY_SERVICE".to_string(), workload.service.clone()),
            ("CANOPY_REPLICA".to_string(), workload.replica.to_string()),
            ("CANOPY_NODE".to_string(), self.config.name.clone()),
        ]);
        env.extend(self.overlay_env());
        // Validation keeps `secretEnv` apart from `env`; Canopy's own variables win.
        for (var, value) in workload.spec.secret_environment(&local.record.secrets) {
            env.entry(var).or_insert(value);
        }
        InstanceSpec {
            secrets: local.record.secrets.clone(),
            id: id.to_string(),
            generation: local.generation(),
            service: workload.spec.clone(),
            env,
            prepared: Default::default(),
        }
    }
}

/// How one start went.
enum Start {
    Running,
    /// It could not start, for a reason of the workload's: the restart policy decides.
    Failed(Exit),
    /// Stopped meanwhile, or refused upward: nothing more for its supervisor to do.
    Gone,
}

/// The receiving end of the agent's [`canopy_runtime::Events`].
pub(crate) type Progress = tokio::sync::mpsc::UnboundedReceiver<(String, String)>;

/// The events sink hooks and runtimes report start progress to, and its receiver.
pub(crate) fn event_channel() -> (canopy_runtime::Events, Progress) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let events: canopy_runtime::Events = Arc::new(move |id: &str, text: &str| {
        let _ = tx.send((id.to_string(), text.to_string()));
    });
    (events, rx)
}

async fn wait(runtime: &dyn Runtime, id: &str) -> Exit {
    match runtime.wait(id).await {
        Ok(exit) => exit,
        Err(e) => Exit {
            code: None,
            signal: None,
            oom_killed: false,
            reason: format!("lost track of the instance: {e}"),
        },
    }
}

/// How a run ended, as the lifecycle keeps it.
fn termination(exit: Exit, at: OffsetDateTime) -> Termination {
    // The OOM killer sends SIGKILL; saying so keeps an OOM kill from counting as a success.
    let signal = if exit.oom_killed {
        exit.signal.or(Some(9))
    } else {
        exit.signal
    };
    Termination {
        exit_code: exit.code,
        signal,
        reason: exit.reason,
        at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: Option<i32>, signal: Option<i32>, oom_killed: bool) -> Exit {
        Exit {
            code,
            signal,
            oom_killed,
            reason: "r".into(),
        }
    }

    #[test]
    fn a_termination_succeeds_exactly_when_the_exit_did() {
        let at = OffsetDateTime::UNIX_EPOCH;
        for exit in [
            exit(Some(0), None, false),
            exit(Some(1), None, false),
            exit(None, Some(15), false),
            exit(None, None, false),
            exit(Some(0), None, true),
            exit(None, Some(9), true),
        ] {
            let success = exit.success();
            assert_eq!(termination(exit.clone(), at).success(), success, "{exit:?}");
        }
    }
}
