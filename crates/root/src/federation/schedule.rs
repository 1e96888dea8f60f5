//! The scheduling pass: every pending instance placed on a cluster from the clusters'
//! summaries, decided in memory, committed in one transaction, and only then sent.

use super::{Federation, Links, assignment, transition};
use crate::desired::{InstanceChange, RootError};
use crate::instances::{ServiceKey, service_key};
use canopy_model::{Instance, InstanceState, ResourceAmounts, SecretValues, ServiceSpec};
use canopy_sched::{ClusterView, Endpoint, PlacementContext, Request, demand, place_on_cluster};
use canopy_tier::{Revocation, summary_from_pb};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

/// How long clusters that refused an instance are skipped before they are asked again.
pub(super) const REFUSAL_COOLDOWN: Duration = Duration::from_secs(5);
/// How often a revocation nobody confirmed is sent again.
const REVOKE_REPEAT: Duration = Duration::from_secs(2);

impl Federation {
    /// Places every pending instance, and repeats revocations of retired ones.
    pub(super) async fn schedule(&self) -> Result<(), RootError> {
        self.instances.synced().await?;
        let pending = self.instances.in_state(InstanceState::Pending);
        let terminating = self.instances.in_state(InstanceState::Terminating);
        // Instances of each service per cluster: what they reserve, and for spread
        // constraints; kept current below.
        let mut per_cluster = self.instances.live_per_cluster();
        let mut specs = BTreeMap::new();
        let mut allocated: BTreeMap<String, ResourceAmounts> = BTreeMap::new();
        for (service, clusters) in &per_cluster {
            let Some(spec) = self.spec_for(&mut specs, service).await? else {
                continue;
            };
            let one = demand(&spec);
            for (cluster, count) in clusters {
                let total = allocated.entry(cluster.clone()).or_default();
                for _ in 0..*count {
                    total.add(&one);
                }
            }
        }
        let mut links = self.links.lock().await;
        for instance in &terminating {
            self.repeat_revoke(&mut links, instance);
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut views = cluster_views(&links.clusters, &allocated, &self.cluster_settings());
        // Where each application's services run, at cluster grain (latency to a service).
        let mut endpoints: BTreeMap<(String, String), BTreeMap<String, Vec<Endpoint>>> =
            BTreeMap::new();
        for ((namespace, application, service), clusters) in &per_cluster {
            for (cluster, count) in clusters {
                let Some(view) = views.iter().find(|v| &v.name == cluster) else {
                    continue;
                };
                let endpoint = Endpoint {
                    location: view.location,
                    coordinate: view.coordinate,
                };
                endpoints
                    .entry((namespace.clone(), application.clone()))
                    .or_default()
                    .entry(service.clone())
                    .or_default()
                    .extend(std::iter::repeat_n(endpoint, *count as usize));
            }
        }
        // Where this pass places each instance: written in one commit after the loop.
        let mut chosen: BTreeMap<String, (String, ServiceSpec, SecretValues)> = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for instance in &pending {
            let Some(spec) = self.spec_for(&mut specs, &service_key(instance)).await? else {
                continue;
            };
            // Read once per service and pass; a missing secret holds the instance back.
            let values = match secrets.get(&service_key(instance)) {
                Some(values) => values,
                None => {
                    let values = self.secrets_for(&instance.namespace, &spec).await?;
                    secrets.entry(service_key(instance)).or_insert(values)
                }
            };
            let values = match values {
                Ok(values) => values.clone(),
                Err(unresolved) => {
                    self.hold_back(instance, unresolved.to_string()).await?;
                    continue;
                }
            };
            if links
                .refused
                .get(&instance.id)
                .and_then(|r| r.since)
                .is_some_and(|since| since.elapsed() > REFUSAL_COOLDOWN)
            {
                links.refused.remove(&instance.id);
            }
            let refusals = links.refused.get(&instance.id);
            let refused = refusals.map(|r| r.clusters.clone()).unwrap_or_default();
            let refusal_reasons = refusals.map(|r| r.reasons.join("; "));
            let context = PlacementContext {
                instances_per_cluster: per_cluster
                    .get(&service_key(instance))
                    .cloned()
                    .unwrap_or_default(),
                services: endpoints
                    .get(&(instance.namespace.clone(), instance.application.clone()))
                    .cloned()
                    .unwrap_or_default(),
                ..PlacementContext::default()
            };
            let mut request = Request::new(&spec, &refused);
            request.context = Some(&context);
            self.metrics.scheduling.attempted(1);
            match place_on_cluster(&request, &views) {
                Ok(index) => {
                    // Later decisions of this pass see this one's reservation and spread.
                    views[index].allocated.add(&demand(&spec));
                    let cluster = views[index].name.clone();
                    *per_cluster
                        .entry(service_key(instance))
                        .or_default()
                        .entry(cluster.clone())
                        .or_default() += 1;
                    chosen.insert(instance.id.clone(), (cluster, spec, values));
                }
                Err(explanation) => {
                    self.metrics
                        .scheduling
                        .failed(canopy_tier::metrics::failure_reason(&explanation));
                    // Say why the clusters that were asked refused, not only that they did.
                    let reason = match refusal_reasons {
                        Some(reasons) if !reasons.is_empty() => {
                            format!("{explanation} ({reasons})")
                        }
                        _ => explanation.to_string(),
                    };
                    self.desired
                        .update_instance(&instance.id, |i| {
                            if i.state != InstanceState::Pending
                                || i.reason.as_deref() == Some(reason.as_str())
                            {
                                return InstanceChange::None;
                            }
                            transition(
                                i,
                                InstanceState::Pending,
                                reason.clone(),
                                OffsetDateTime::now_utc(),
                            )
                        })
                        .await?;
                }
            }
        }
        self.assign_chosen(&links, chosen).await
    }

    /// Commits a pass's placements in one transaction, then sends the assignments: a
    /// cluster never hears of a placement the root could forget in a crash.
    async fn assign_chosen(
        &self,
        links: &Links,
        chosen: BTreeMap<String, (String, ServiceSpec, SecretValues)>,
    ) -> Result<(), RootError> {
        if chosen.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = chosen.keys().map(String::as_str).collect();
        let now = OffsetDateTime::now_utc();
        let assigned = self
            .desired
            .update_instances(&ids, |i| {
                let Some((cluster, _, _)) = chosen.get(&i.id) else {
                    return InstanceChange::None;
                };
                if i.state != InstanceState::Pending {
                    return InstanceChange::None;
                }
                // A new generation per placement: a returning cluster's copy is stale.
                i.generation += 1;
                i.cluster = Some(cluster.clone());
                i.node = None;
                i.pid = None;
                i.ready = false;
                transition(
                    i,
                    InstanceState::ClusterScheduled,
                    format!("assigned to cluster {cluster}"),
                    now,
                )
            })
            .await?;
        for instance in assigned {
            let Some((cluster, spec, values)) = chosen.get(&instance.id) else {
                continue;
            };
            if instance.state != InstanceState::ClusterScheduled
                || instance.cluster.as_ref() != Some(cluster)
            {
                continue;
            }
            if let Some(link) = links.downlink(cluster) {
                link.assign(&assignment(&instance, spec, values.clone()));
            }
        }
        Ok(())
    }

    /// The spec of a service, read once per pass.
    async fn spec_for(
        &self,
        cache: &mut BTreeMap<ServiceKey, Option<ServiceSpec>>,
        service: &ServiceKey,
    ) -> Result<Option<ServiceSpec>, RootError> {
        if let Some(spec) = cache.get(service) {
            return Ok(spec.clone());
        }
        let (namespace, application, name) = service;
        let spec = self.desired.spec_of(namespace, application, name).await?;
        cache.insert(service.clone(), spec.clone());
        Ok(spec)
    }

    fn repeat_revoke(&self, links: &mut Links, instance: &Instance) {
        let Some(cluster) = &instance.cluster else {
            return;
        };
        let due = links
            .revoked_at
            .get(&instance.id)
            .is_none_or(|at| at.elapsed() > REVOKE_REPEAT);
        if !due {
            return;
        }
        if let Some(link) = links.downlink(cluster) {
            link.revoke(&Revocation::new(
                &instance.id,
                instance.generation,
                revoke_reason(instance),
            ));
            links.revoked_at.insert(instance.id.clone(), Instant::now());
        }
    }
}

/// What its cluster and node hear: that its application was deleted, when it was stopped
/// for that (the node then removes the application's volumes), else that it is no longer
/// desired.
fn revoke_reason(instance: &Instance) -> &'static str {
    let deleted = instance.events.iter().any(|e| {
        e.state == InstanceState::Terminating && e.reason == canopy_model::APPLICATION_DELETED
    });
    match deleted {
        true => canopy_model::APPLICATION_DELETED,
        false => "no longer desired",
    }
}

fn cluster_views(
    clusters: &BTreeMap<String, super::ClusterEntry>,
    allocated: &BTreeMap<String, ResourceAmounts>,
    settings: &BTreeMap<String, canopy_model::OperatorSettings>,
) -> Vec<ClusterView> {
    clusters
        .iter()
        .map(|(name, entry)| {
            let mut view = summary_from_pb(&entry.summary);
            view.name = name.clone();
            view.ready = entry.ready && entry.downlink.is_some();
            // Cluster selectors read the operator's labels over the cluster's own.
            if let Some(settings) = settings.get(name) {
                view.labels = settings.merged_labels(&view.labels);
            }
            // Reservations the cluster may not have reported yet are in `allocated`.
            let ours = allocated.get(name).copied().unwrap_or_default();
            view.allocated = max_amounts(&view.allocated, &ours);
            view
        })
        .collect()
}

fn max_amounts(a: &ResourceAmounts, b: &ResourceAmounts) -> ResourceAmounts {
    ResourceAmounts {
        cpu_millis: a.cpu_millis.max(b.cpu_millis),
        memory_mib: a.memory_mib.max(b.memory_mib),
        gpus: a.gpus.max(b.gpus),
        storage_mib: a.storage_mib.max(b.storage_mib),
    }
}
