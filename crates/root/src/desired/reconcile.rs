//! Reconciliation: bringing an application's instances in line with its spec, creating the
//! missing replicas and retiring the surplus ones.

use super::rollout::{self, Bounds, Seen};
use super::{CAS_ATTEMPTS, Desired, InstanceFilter, RootError, replicas, rollouts, to_json};
use crate::keys;
use crate::records::ApplicationRecord;
use canopy_model::{Instance, InstanceState, ServiceSpec, StrategyKind};
use canopy_store::{Op, Precondition, Revision, StoreError, StoreExt};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

impl Desired {
    /// Brings every application's instances in line with its spec; run at start so that a
    /// crash between accepting a change and reconciling it loses nothing.
    pub async fn reconcile_all(&self) -> Result<(), RootError> {
        let mut names: BTreeSet<(String, String)> = self
            .records(None)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.application.metadata.namespace,
                    r.application.metadata.name,
                )
            })
            .collect();
        // Instances of applications deleted before a crash.
        for instance in self.list_instances(&InstanceFilter::default()).await? {
            names.insert((instance.namespace, instance.application));
        }
        for (namespace, name) in names {
            self.reconcile_application(&namespace, &name).await?;
        }
        Ok(())
    }

    /// Creates the missing replicas of each service and retires the surplus ones.
    pub async fn reconcile_application(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), RootError> {
        let _guard = self.reconcile_lock.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.reconcile_once(namespace, name).await {
                // The federation updated an instance meanwhile: read again.
                Err(RootError::Store(StoreError::Conflict { .. })) if attempt < CAS_ATTEMPTS => {}
                result => return result,
            }
        }
    }

    async fn reconcile_once(&self, namespace: &str, name: &str) -> Result<(), RootError> {
        let record = match self.record(namespace, name).await {
            Ok((record, _)) => Some(record),
            Err(RootError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let instances: Vec<(Instance, Revision)> = match self.instances.get() {
            Some(cache) => {
                // Every write committed before this pass, ours included, is in the view.
                cache.synced().await?;
                cache.of_application(namespace, name)
            }
            None => {
                let (entries, _) = self.store.list_json::<Instance>(keys::INSTANCES).await?;
                entries
                    .into_iter()
                    .filter(|(_, i, _)| i.namespace == namespace && i.application == name)
                    .map(|(_, i, revision)| (i, revision))
                    .collect()
            }
        };
        let now = OffsetDateTime::now_utc();
        let desired: BTreeMap<&str, (&ServiceSpec, String)> = record
            .iter()
            .flat_map(|r| r.application.spec.services.iter())
            .map(|s| (s.name.as_str(), (s, s.template_hash())))
            .collect();

        let mut services: BTreeMap<&str, Vec<&(Instance, Revision)>> = BTreeMap::new();
        for entry in &instances {
            services
                .entry(entry.0.service.as_str())
                .or_default()
                .push(entry);
        }
        for name in desired.keys() {
            services.entry(name).or_default();
        }
        let mut ops = Vec::new();
        for (service, entries) in services {
            let wanted = desired.get(service);
            // A job's runs follow its job core, not the replica planner.
            if let (Some(record), Some((spec, _))) = (&record, wanted)
                && let Some(job) = &spec.job
            {
                ops.extend(self.job_ops(record, spec, job, &entries, now).await?);
                continue;
            }
            let refs: Vec<&Instance> = entries.iter().map(|(i, _)| i).collect();
            let mut plan = replicas::plan(
                &refs,
                wanted.map_or(0, |(spec, _)| spec.replicas),
                wanted.map(|(_, hash)| hash.as_str()),
            );
            match wanted {
                Some((spec, hash)) if record.is_some() => {
                    let (mut rollout, at) = self.rollout_record(namespace, name, service).await?;
                    let mut changed = rollout.observe(spec, hash, now);
                    if changed && rollout.pause_reason.as_deref() != Some(rollouts::USER_PAUSE) {
                        // A new spec is a new attempt: a pause the rollout took itself ends.
                        rollout.paused = false;
                        rollout.pause_reason = None;
                    }
                    let rolling = refs.iter().any(|i| &i.template_hash != hash);
                    if let Some(why) = rollouts::failing(&refs, hash).filter(|_| rolling)
                        && !rollout.paused
                    {
                        rollout.paused = true;
                        rollout.pause_reason = Some(format!("paused: {why}"));
                        changed = true;
                    }
                    if changed {
                        ops.push(Self::rollout_put(namespace, name, service, &rollout, at)?);
                    }
                    pace(&mut plan, &refs, spec, hash, rollout.paused);
                }
                _ => {
                    for key in [
                        keys::rollout(namespace, name, service),
                        keys::job(namespace, name, service),
                        keys::autoscale(namespace, name, service),
                    ] {
                        if let Some((_, at)) =
                            self.store.get_json::<serde_json::Value>(&key).await?
                        {
                            ops.push(Op::Delete {
                                key,
                                precondition: Precondition::ModRevision(at),
                            });
                        }
                    }
                }
            }
            for index in plan.delete {
                let (instance, revision) = entries[index];
                ops.push(delete_instance(instance, *revision));
            }
            // Its node removes a deleted application's volumes: the reason says so.
            let reason = match record {
                Some(_) => NO_LONGER_DESIRED,
                None => canopy_model::APPLICATION_DELETED,
            };
            for index in plan.retire {
                let (instance, revision) = entries[index];
                ops.push(retire_for(instance.clone(), *revision, now, reason)?);
            }
            for (index, ordinal) in plan.keep {
                let (instance, revision) = entries[index];
                if instance.replica != ordinal {
                    // A kept instance takes the place of a retired one.
                    let mut instance = instance.clone();
                    instance.replica = ordinal;
                    ops.push(Op::Put {
                        key: keys::instance(&instance.id),
                        value: to_json(&instance)?,
                        precondition: Precondition::ModRevision(*revision),
                    });
                }
            }
            if let (Some(record), Some((spec, _))) = (&record, wanted) {
                for replica in plan.create {
                    let instance = new_instance(record, spec, replica, now);
                    ops.push(Op::Put {
                        key: keys::instance(&instance.id),
                        value: to_json(&instance)?,
                        precondition: Precondition::Absent,
                    });
                }
            }
        }
        if !ops.is_empty() {
            self.store.txn(ops).await?;
        }
        Ok(())
    }
}

/// Paces the replacement of old instances by the service's strategy: of the old ones the
/// plan retires, only those the rollout step allows go now, and only as many new ones are
/// made as it allows (ended and surplus instances go as planned).
fn pace(
    plan: &mut replicas::Plan,
    instances: &[&Instance],
    spec: &ServiceSpec,
    hash: &str,
    paused: bool,
) {
    let strategy = spec.strategy.clone().unwrap_or_default();
    let (mut surge, mut unavailable) = strategy.bounds(spec.replicas);
    // A host port is held by one instance per node: stop the old one, then start the new.
    let host_port = spec.ports.iter().any(|p| p.host_port.is_some());
    if host_port {
        surge = 0;
        unavailable = unavailable.max(1);
    }
    // While old instances remain (or still stop), stopping ones count too: a new instance
    // then starts where an old one has gone, not beside it on a node it still holds.
    let rolling = instances
        .iter()
        .any(|i| i.template_hash != hash && !i.shown_state().is_final());
    let bounds = Bounds {
        replicas: spec.replicas,
        surge,
        unavailable,
        hold_stopping: host_port || rolling || strategy.kind == StrategyKind::Recreate,
        paused,
    };
    let retired: BTreeSet<usize> = plan.retire.iter().copied().collect();
    let mut seen = Vec::new();
    let mut index_of = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        if instance.shown_state().is_final() {
            continue;
        }
        let current = instance.template_hash == hash;
        let stopping = instance.is_stopping() || (current && retired.contains(&index));
        seen.push(Seen {
            current,
            ready: instance.ready && instance.shown_state() == InstanceState::Running,
            stopping,
            placed: instance.cluster.is_some(),
        });
        index_of.push(index);
    }
    let step = rollout::step(&seen, bounds, plan.create.len());
    let paced: BTreeSet<usize> = seen
        .iter()
        .zip(&index_of)
        .filter(|(s, _)| !s.current && !s.stopping)
        .map(|(_, index)| *index)
        .collect();
    let allowed: BTreeSet<usize> = step.retire.iter().map(|&i| index_of[i]).collect();
    plan.retire
        .retain(|index| !paced.contains(index) || allowed.contains(index));
    plan.create.truncate(step.create);
}

pub(super) fn delete_instance(instance: &Instance, revision: Revision) -> Op {
    Op::Delete {
        key: keys::instance(&instance.id),
        precondition: Precondition::ModRevision(revision),
    }
}

/// An instance no longer wanted (scaled away, or made from an older spec, whose replacement is
/// created at once): one that no cluster holds is simply forgotten; one a cluster holds is
/// to stop, and stays until its cluster confirms it stopped.
pub(super) fn retire(
    instance: Instance,
    revision: Revision,
    now: OffsetDateTime,
) -> Result<Op, RootError> {
    retire_for(instance, revision, now, NO_LONGER_DESIRED)
}

/// Why an instance is stopped when nothing more particular is known.
const NO_LONGER_DESIRED: &str = "no longer desired";

/// [`retire`], stopping it for `reason`.
fn retire_for(
    mut instance: Instance,
    revision: Revision,
    now: OffsetDateTime,
    reason: &str,
) -> Result<Op, RootError> {
    if instance.cluster.is_none() || !instance.stop(reason, now) {
        // Nothing holds it, or it has ended: nothing more to say about it.
        return Ok(delete_instance(&instance, revision));
    }
    Ok(Op::Put {
        key: keys::instance(&instance.id),
        value: to_json(&instance)?,
        precondition: Precondition::ModRevision(revision),
    })
}

pub(super) fn new_instance(
    record: &ApplicationRecord,
    spec: &ServiceSpec,
    replica: u32,
    now: OffsetDateTime,
) -> Instance {
    let metadata = &record.application.metadata;
    let mut instance = Instance {
        id: format!("{}-{}-{}", spec.name, metadata.name, random_suffix(6)),
        namespace: metadata.namespace.clone(),
        application: metadata.name.clone(),
        service: spec.name.clone(),
        replica,
        generation: record.generation,
        template_hash: spec.template_hash(),
        job: None,
        args: None,
        desired: canopy_model::Desired::Run,
        state: InstanceState::Pending,
        reason: None,
        cluster: None,
        node: None,
        pid: None,
        restarts: 0,
        last_termination: None,
        ready: false,
        details: Default::default(),
        usage: None,
        created_at: now,
        updated_at: now,
        events: Vec::new(),
    };
    let _ = instance.transition(InstanceState::Pending, "waiting for placement", now);
    instance
}

/// Lowercase letters and digits, so ids stay valid DNS labels.
pub(super) fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
