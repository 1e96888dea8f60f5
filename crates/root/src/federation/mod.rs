//! The root's side of the hierarchy: accepts cluster links, places pending instances on
//! clusters (coarse placement from cluster summaries), takes their status reports, and
//! replaces the instances of a cluster that went silent. One file per concern: `schedule`
//! (the scheduling pass), `intake` (status reports), `hello` (a cluster's hello diffed
//! against the desired state), `failure` (lost clusters), `membership` (clusters and nodes
//! as reported), `links` (the tier protocol's parent end), `peers`, `autoscaler` (the
//! autoscaling pass).

mod autoscaler;
mod failure;
mod hello;
mod intake;
mod links;
mod membership;
mod operator;
mod peers;
mod schedule;
mod secrets;
mod streams;
mod traffic;
mod usage;

use crate::desired::Desired;
use crate::instances::InstanceCache;
use canopy_model::{Instance, InstanceState, ServiceSpec};
use canopy_tier::parent::{Downlink, TierService};
use canopy_tier::pb;
use canopy_tier::trust::Enrolment;
use canopy_tier::{Timing, Workload};
pub use links::ClusterSide;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, watch};
use tokio::time::Instant;

struct ClusterEntry {
    summary: pb::Member,
    ready: bool,
    last_seen: Instant,
    joined_at: OffsetDateTime,
    downlink: Option<Downlink>,
}

#[derive(Default)]
struct Links {
    clusters: BTreeMap<String, ClusterEntry>,
    /// Clusters that refused an instance, and why; skipped until the refusals are older than
    /// REFUSAL_COOLDOWN (capacity may have changed by then).
    refused: BTreeMap<String, Refusals>,
    /// When a revocation was last sent, so it is repeated now and then but not every pass.
    revoked_at: BTreeMap<String, Instant>,
}

impl Links {
    fn downlink(&self, cluster: &str) -> Option<&Downlink> {
        self.clusters.get(cluster)?.downlink.as_ref()
    }
}

#[derive(Default)]
struct Refusals {
    since: Option<Instant>,
    clusters: Vec<String>,
    reasons: Vec<String>,
}

pub struct Federation {
    desired: Arc<Desired>,
    /// Who may link: the root's CA, join tokens, members' certificates.
    enrolment: Arc<Enrolment>,
    instances: Arc<InstanceCache>,
    timing: Timing,
    links: Mutex<Links>,
    wake: Notify,
    /// The operator's cluster settings (labels), merged into summaries when placing.
    cluster_settings: std::sync::RwLock<BTreeMap<String, canopy_model::OperatorSettings>>,
    usage: std::sync::RwLock<usage::UsageByNode>,
    traffic: std::sync::RwLock<traffic::TrafficByCluster>,
    /// Applications whose instances changed in a way their rollouts wait for.
    to_reconcile: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
    metrics: Arc<crate::metrics::RootMetrics>,
}

/// How often pending instances are retried even when nothing announced a change.
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// How often clusters get a fresh sample of other clusters to probe.
const PEERS_PERIOD: Duration = Duration::from_secs(30);

impl Federation {
    pub fn new(
        desired: Arc<Desired>,
        enrolment: Arc<Enrolment>,
        instances: Arc<InstanceCache>,
        timing: Timing,
    ) -> Arc<Federation> {
        Arc::new(Federation {
            desired,
            enrolment,
            instances,
            timing,
            links: Mutex::new(Links::default()),
            wake: Notify::new(),
            cluster_settings: Default::default(),
            usage: Default::default(),
            traffic: Default::default(),
            to_reconcile: Default::default(),
            metrics: Default::default(),
        })
    }

    /// Reconciles `application` (namespace, name) in the next pass: a rollout step follows
    /// an instance's readiness or end.
    fn reconcile_soon(&self, application: (String, String)) {
        if let Ok(mut set) = self.to_reconcile.lock() {
            set.insert(application);
        }
        self.wake();
    }

    /// The root's series, over the instance cache (`/metrics`).
    pub fn exposition(&self) -> crate::metrics::RootExposition {
        crate::metrics::RootExposition {
            metrics: self.metrics.clone(),
            instances: self.instances.clone(),
        }
    }

    pub fn tier_service(self: &Arc<Self>) -> pb::tier_server::TierServer<TierService<ClusterSide>> {
        TierService::new(Arc::new(ClusterSide(self.clone())), self.timing).into_server()
    }

    pub fn enrolment(&self) -> &Arc<Enrolment> {
        &self.enrolment
    }

    /// Asks the scheduler to look at pending work now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Schedules and watches clusters until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let deadline = self.timing.deadline;
        let mut detector = tokio::time::interval(Duration::from_millis(200).min(deadline / 4));
        let mut retry = tokio::time::interval(RETRY_PERIOD);
        let mut peers = tokio::time::interval(PEERS_PERIOD);
        let mut autoscaling = tokio::time::interval(autoscaler::period(self.timing));
        let mut histories = autoscaler::Histories::new();
        loop {
            tokio::select! {
                _ = self.wake.notified() => self.pass().await,
                _ = retry.tick() => {
                    // Jobs on a schedule, a deadline, a time to live or a back-off move with the clock.
                    if let Err(e) = self.desired.reconcile_timed_jobs().await {
                        tracing::warn!(error = %e, "reconciling timed jobs failed");
                    }
                    self.pass().await
                }
                _ = peers.tick() => peers::send_to_all(&*self.links.lock().await),
                _ = detector.tick() => self.detect_failures().await,
                _ = autoscaling.tick() => self.autoscale(&mut histories).await,
                _ = canopy_tier::stopped(&mut stop) => return,
            }
        }
    }

    /// One scheduling pass now (the loop runs them on wake-ups and every second).
    pub async fn schedule_once(&self) -> Result<(), crate::desired::RootError> {
        self.schedule().await
    }

    async fn pass(&self) {
        let applications = match self.to_reconcile.lock() {
            Ok(mut set) => std::mem::take(&mut *set),
            Err(_) => Default::default(),
        };
        for (namespace, name) in applications {
            if let Err(e) = self.desired.reconcile_application(&namespace, &name).await {
                tracing::warn!(application = %name, error = %e, "reconciling after a change failed");
            }
        }
        if let Err(e) = self.schedule().await {
            tracing::error!(error = %e, "scheduling pass failed");
        }
    }
}

/// Moves `instance` to `state` where the lifecycle allows it: a write, else nothing.
fn transition(
    instance: &mut Instance,
    state: InstanceState,
    reason: impl Into<String>,
    at: OffsetDateTime,
) -> crate::desired::InstanceChange {
    match instance.transition(state, reason, at) {
        Ok(()) => crate::desired::InstanceChange::Write,
        Err(e) => {
            tracing::debug!(instance = %instance.id, error = %e, "transition refused");
            crate::desired::InstanceChange::None
        }
    }
}

fn workload(instance: &Instance, spec: &ServiceSpec) -> Workload {
    let mut spec = spec.clone();
    // A run started on demand runs with its own arguments.
    if let Some(args) = &instance.args {
        spec.args.clone_from(args);
    }
    Workload {
        namespace: instance.namespace.clone(),
        application: instance.application.clone(),
        service: instance.service.clone(),
        replica: instance.replica,
        spec,
    }
}

fn assignment(
    instance: &Instance,
    spec: &ServiceSpec,
    secrets: canopy_model::SecretValues,
) -> canopy_tier::Assignment {
    canopy_tier::Assignment {
        id: instance.id.clone(),
        generation: instance.generation,
        workload: workload(instance, spec),
        secrets,
    }
}
