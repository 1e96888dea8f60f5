//! The root's side of the hierarchy: accepts cluster links, places pending instances on
//! clusters (coarse placement from cluster summaries), takes their status reports, and
//! replaces the instances of a cluster that went silent.

use crate::desired::{Desired, InstanceChange, InstanceFilter, RootError};
use crate::keys;
use canopy_model::{
    ClusterInfo, Instance, InstanceState, MemberState, NetworkCoordinate, NodeInfo, ResourceAmounts,
};
use canopy_sched::{ClusterView, Endpoint, PlacementContext, Request, demand, place_on_cluster};
use canopy_store::{Op, Precondition, StoreExt};
use canopy_tier::parent::{Downlink, Parent, TierService};
use canopy_tier::pb::{self, down, up};
use canopy_tier::{
    Timing, Workload, from_unix_ms, location_from_pb, resources, runtimes_from_pb, state_from_pb,
    summary_from_pb,
};
use rand::seq::IteratorRandom;
use std::collections::{BTreeMap, BTreeSet};
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

pub struct Federation {
    desired: Arc<Desired>,
    timing: Timing,
    links: Mutex<Links>,
    wake: Notify,
}

#[derive(Default)]
struct Refusals {
    since: Option<Instant>,
    clusters: Vec<String>,
    reasons: Vec<String>,
}

/// How long clusters that refused an instance are skipped before they are asked again.
const REFUSAL_COOLDOWN: Duration = Duration::from_secs(5);

/// How often pending instances are retried even when nothing announced a change.
const RETRY_PERIOD: Duration = Duration::from_secs(1);
const REVOKE_REPEAT: Duration = Duration::from_secs(2);
/// How often clusters get a fresh sample of other clusters to probe, and how many.
const PEERS_PERIOD: Duration = Duration::from_secs(30);
const PEERS_PER_CLUSTER: usize = 3;

/// Sends `cluster` a few other clusters' WAN probe endpoints: clusters probing each other give
/// the cluster-to-cluster coordinates that estimates across clusters are made of.
fn send_peers(links: &Links, cluster: &str) {
    let Some(link) = links
        .clusters
        .get(cluster)
        .and_then(|c| c.downlink.as_ref())
    else {
        return;
    };
    let peers: Vec<pb::Peer> = links
        .clusters
        .iter()
        .filter(|(name, c)| {
            name.as_str() != cluster && c.ready && !c.summary.probe_address.is_empty()
        })
        .choose_multiple(&mut rand::rng(), PEERS_PER_CLUSTER)
        .into_iter()
        .map(|(name, c)| pb::Peer {
            name: name.clone(),
            address: c.summary.probe_address.clone(),
        })
        .collect();
    if !peers.is_empty() {
        link.send(down::Body::Peers(pb::Peers { peers }));
    }
}

impl Federation {
    pub fn new(desired: Arc<Desired>, timing: Timing) -> Arc<Federation> {
        Arc::new(Federation {
            desired,
            timing,
            links: Mutex::new(Links::default()),
            wake: Notify::new(),
        })
    }

    pub fn tier_service(self: &Arc<Self>) -> pb::tier_server::TierServer<TierService<ClusterSide>> {
        TierService::new(Arc::new(ClusterSide(self.clone())), self.timing).into_server()
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
        loop {
            tokio::select! {
                _ = self.wake.notified() => self.pass().await,
                _ = retry.tick() => self.pass().await,
                _ = peers.tick() => {
                    let links = self.links.lock().await;
                    for cluster in links.clusters.keys() {
                        send_peers(&links, cluster);
                    }
                }
                _ = detector.tick() => self.detect_failures().await,
                _ = canopy_tier::stopped(&mut stop) => return,
            }
        }
    }

    async fn pass(&self) {
        if let Err(e) = self.schedule().await {
            tracing::error!(error = %e, "scheduling pass failed");
        }
    }

    /// Places every pending instance, and repeats revocations of retired ones.
    async fn schedule(&self) -> Result<(), RootError> {
        let instances = self
            .desired
            .list_instances(&InstanceFilter::default())
            .await?;
        let mut specs = BTreeMap::new();
        let mut allocated: BTreeMap<String, ResourceAmounts> = BTreeMap::new();
        for instance in instances.iter().filter(|i| !i.state.is_final()) {
            let Some(cluster) = &instance.cluster else {
                continue;
            };
            if let Some(spec) = self.spec_for(&mut specs, instance).await? {
                allocated
                    .entry(cluster.clone())
                    .or_default()
                    .add(&demand(&spec));
            }
        }
        // Instances of each service per cluster, for spread constraints; kept current below.
        let mut per_cluster: BTreeMap<(String, String, String), BTreeMap<String, u32>> =
            BTreeMap::new();
        for instance in instances.iter().filter(|i| !i.state.is_final()) {
            if let Some(cluster) = &instance.cluster {
                *per_cluster
                    .entry(service_key(instance))
                    .or_default()
                    .entry(cluster.clone())
                    .or_default() += 1;
            }
        }
        let mut links = self.links.lock().await;
        let mut views = cluster_views(&links.clusters, &allocated);
        // Where each application's services run, at cluster grain (latency to a service).
        let mut endpoints: BTreeMap<(&str, &str), BTreeMap<String, Vec<Endpoint>>> =
            BTreeMap::new();
        for instance in instances.iter().filter(|i| !i.state.is_final()) {
            let Some(view) = instance
                .cluster
                .as_ref()
                .and_then(|c| views.iter().find(|v| &v.name == c))
            else {
                continue;
            };
            endpoints
                .entry((&instance.namespace, &instance.application))
                .or_default()
                .entry(instance.service.clone())
                .or_default()
                .push(Endpoint {
                    location: view.location,
                    coordinate: view.coordinate,
                });
        }
        // Where this pass places each instance: written in one commit after the loop.
        let mut chosen: BTreeMap<String, (String, canopy_model::ServiceSpec)> = BTreeMap::new();
        for instance in &instances {
            match instance.state {
                InstanceState::Pending => {}
                InstanceState::Terminating => {
                    self.repeat_revoke(&mut links, instance);
                    continue;
                }
                _ => continue,
            }
            let Some(spec) = self.spec_for(&mut specs, instance).await? else {
                continue;
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
                    .get(&(instance.namespace.as_str(), instance.application.as_str()))
                    .cloned()
                    .unwrap_or_default(),
                ..PlacementContext::default()
            };
            let mut request = Request::new(&spec, &refused);
            request.context = Some(&context);
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
                    chosen.insert(instance.id.clone(), (cluster, spec));
                }
                Err(explanation) => {
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
                            i.transition(
                                InstanceState::Pending,
                                reason.clone(),
                                OffsetDateTime::now_utc(),
                            );
                            InstanceChange::Write
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
        chosen: BTreeMap<String, (String, canopy_model::ServiceSpec)>,
    ) -> Result<(), RootError> {
        if chosen.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = chosen.keys().map(String::as_str).collect();
        let now = OffsetDateTime::now_utc();
        let assigned = self
            .desired
            .update_instances(&ids, |i| {
                let Some((cluster, _)) = chosen.get(&i.id) else {
                    return InstanceChange::None;
                };
                if i.state != InstanceState::Pending {
                    return InstanceChange::None;
                }
                i.generation += 1;
                i.cluster = Some(cluster.clone());
                i.node = None;
                i.pid = None;
                i.transition(
                    InstanceState::ClusterScheduled,
                    format!("assigned to cluster {cluster}"),
                    now,
                );
                InstanceChange::Write
            })
            .await?;
        for instance in assigned {
            let Some((cluster, spec)) = chosen.get(&instance.id) else {
                continue;
            };
            if instance.state != InstanceState::ClusterScheduled
                || instance.cluster.as_ref() != Some(cluster)
            {
                continue;
            }
            if let Some(link) = links
                .clusters
                .get(cluster)
                .and_then(|c| c.downlink.as_ref())
            {
                link.send(down::Body::Assign(
                    workload(&instance, spec).to_assign(&instance.id, instance.generation),
                ));
            }
        }
        Ok(())
    }

    async fn spec_for(
        &self,
        cache: &mut BTreeMap<(String, String, String), Option<canopy_model::ServiceSpec>>,
        instance: &Instance,
    ) -> Result<Option<canopy_model::ServiceSpec>, RootError> {
        let key = (
            instance.namespace.clone(),
            instance.application.clone(),
            instance.service.clone(),
        );
        if let Some(spec) = cache.get(&key) {
            return Ok(spec.clone());
        }
        let spec = self.desired.service_spec(instance).await?;
        cache.insert(key, spec.clone());
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
        if let Some(link) = links
            .clusters
            .get(cluster)
            .and_then(|c| c.downlink.as_ref())
        {
            link.send(down::Body::Revoke(pb::Revoke {
                instance_id: instance.id.clone(),
                generation: instance.generation,
                reason: "no longer desired".into(),
            }));
            links.revoked_at.insert(instance.id.clone(), Instant::now());
        }
    }

    async fn on_hello(&self, hello: pb::Hello, downlink: Downlink) -> Result<(), RootError> {
        let Some(summary) = hello.member else {
            return Ok(());
        };
        let name = summary.name.clone();
        {
            let mut links = self.links.lock().await;
            let joined_at = links
                .clusters
                .get(&name)
                .map_or_else(OffsetDateTime::now_utc, |c| c.joined_at);
            links.clusters.insert(
                name.clone(),
                ClusterEntry {
                    summary: summary.clone(),
                    ready: true,
                    last_seen: Instant::now(),
                    joined_at,
                    downlink: Some(downlink.clone()),
                },
            );
            // Everyone hears of the newcomer now, not at the next refresh.
            for cluster in links.clusters.keys() {
                send_peers(&links, cluster);
            }
        }
        tracing::info!(cluster = %name, nodes = hello.nodes.len(), "cluster linked");
        self.record_membership(&name, &summary, &hello.nodes, &[], true)
            .await?;

        // Diff the cluster's instances against the desired state.
        let mut reported = BTreeSet::new();
        for status in hello.instances {
            reported.insert(status.id.clone());
            self.apply_status(&name, status, &downlink).await?;
        }
        let assigned = self
            .desired
            .list_instances(&InstanceFilter::default())
            .await?;
        for instance in assigned {
            if instance.cluster.as_deref() != Some(&name) || reported.contains(&instance.id) {
                continue;
            }
            match instance.state {
                InstanceState::Terminating => {
                    self.desired
                        .update_instance(&instance.id, |_| InstanceChange::Delete)
                        .await?;
                }
                state if !state.is_final() => {
                    if let Some(spec) = self.desired.service_spec(&instance).await? {
                        downlink.send(down::Body::Assign(
                            workload(&instance, &spec).to_assign(&instance.id, instance.generation),
                        ));
                    }
                }
                _ => {}
            }
        }
        self.wake();
        Ok(())
    }

    /// Takes one status report from `cluster`. A report about an instance that is not (or no
    /// longer) that cluster's at that generation is a stale copy: it is revoked.
    async fn apply_status(
        &self,
        cluster: &str,
        status: pb::InstanceStatus,
        downlink: &Downlink,
    ) -> Result<(), RootError> {
        let wire = pb::State::try_from(status.state).unwrap_or(pb::State::Unspecified);
        let mut stale = false;
        let mut known = false;
        let mut rejected = false;
        let now = OffsetDateTime::now_utc();
        self.desired
            .observe_instance(&status.id, |instance| {
                known = true;
                if instance.cluster.as_deref() != Some(cluster)
                    || instance.generation != status.generation
                {
                    stale = true;
                    return InstanceChange::None;
                }
                match wire {
                    pb::State::Rejected => {
                        rejected = true;
                        instance.cluster = None;
                        instance.node = None;
                        instance.transition(InstanceState::Pending, status.reason.clone(), now);
                        InstanceChange::Write
                    }
                    pb::State::Terminated if instance.state == InstanceState::Terminating => {
                        InstanceChange::Delete
                    }
                    pb::State::Terminated => {
                        // Stopped without being asked to: place it again.
                        instance.cluster = None;
                        instance.node = None;
                        instance.pid = None;
                        instance.transition(
                            InstanceState::Pending,
                            format!("stopped on cluster {cluster}: {}", status.reason),
                            now,
                        );
                        InstanceChange::Write
                    }
                    _ => match state_from_pb(wire) {
                        Some(_) if instance.state == InstanceState::Terminating => {
                            InstanceChange::None
                        }
                        Some(state) => observe(instance, state, &status),
                        None => InstanceChange::None,
                    },
                }
            })
            .await?;
        let terminal = matches!(wire, pb::State::Terminated | pb::State::Rejected);
        if (stale || !known) && !terminal {
            downlink.send(down::Body::Revoke(pb::Revoke {
                instance_id: status.id.clone(),
                generation: status.generation,
                reason: "not assigned to this cluster".into(),
            }));
        }
        if rejected {
            let mut links = self.links.lock().await;
            let refusals = links.refused.entry(status.id.clone()).or_default();
            refusals.since = Some(Instant::now());
            refusals.clusters.push(cluster.to_string());
            refusals.reasons.push(status.reason.clone());
            drop(links);
            self.wake();
        }
        if wire == pb::State::Terminated {
            self.links.lock().await.revoked_at.remove(&status.id);
            self.wake();
        }
        Ok(())
    }

    async fn on_message(&self, cluster: &str, body: up::Body) -> Result<(), RootError> {
        let downlink = {
            let mut links = self.links.lock().await;
            let Some(entry) = links.clusters.get_mut(cluster) else {
                return Ok(());
            };
            entry.last_seen = Instant::now();
            if !entry.ready {
                entry.ready = true;
                tracing::info!(cluster, "cluster reachable again");
            }
            if let up::Body::Membership(membership) = &body
                && let Some(summary) = &membership.summary
            {
                entry.summary = summary.clone();
            }
            entry.downlink.clone()
        };
        match body {
            up::Body::Status(status) => {
                if let Some(downlink) = downlink {
                    self.apply_status(cluster, status, &downlink).await?;
                }
            }
            up::Body::Membership(membership) => {
                if let Some(summary) = membership.summary {
                    self.record_membership(
                        cluster,
                        &summary,
                        &membership.nodes,
                        &membership.removed,
                        membership.complete,
                    )
                    .await?;
                    self.wake();
                }
            }
            up::Body::Heartbeat(_) | up::Body::Hello(_) => {}
        }
        Ok(())
    }

    async fn on_goodbye(&self, cluster: &str, link: u64) {
        let mut links = self.links.lock().await;
        if let Some(entry) = links.clusters.get_mut(cluster)
            && entry.downlink.as_ref().is_some_and(|d| d.link() == link)
        {
            entry.downlink = None;
            tracing::info!(cluster, "cluster link closed");
        }
    }

    /// Clusters silent past the deadline: their instances are lost and placed elsewhere.
    async fn detect_failures(&self) {
        let lost: Vec<String> = {
            let mut links = self.links.lock().await;
            let deadline = self.timing.deadline;
            let lost: Vec<String> = links
                .clusters
                .iter()
                .filter(|(_, c)| c.ready && c.last_seen.elapsed() > deadline)
                .map(|(name, _)| name.clone())
                .collect();
            for name in &lost {
                if let Some(entry) = links.clusters.get_mut(name) {
                    entry.ready = false;
                }
            }
            lost
        };
        for cluster in lost {
            tracing::warn!(%cluster, "cluster unreachable; replacing its instances elsewhere");
            if let Err(e) = self.replace_instances_of(&cluster).await {
                tracing::error!(%cluster, error = %e, "cannot replace the instances of a lost cluster");
            }
        }
    }

    async fn replace_instances_of(&self, cluster: &str) -> Result<(), RootError> {
        self.set_cluster_state(cluster, MemberState::Unreachable)
            .await?;
        let now = OffsetDateTime::now_utc();
        for instance in self
            .desired
            .list_instances(&InstanceFilter::default())
            .await?
        {
            if instance.cluster.as_deref() != Some(cluster) || instance.state.is_final() {
                continue;
            }
            self.desired
                .update_instance(&instance.id, |i| {
                    if i.cluster.as_deref() != Some(cluster) {
                        return InstanceChange::None;
                    }
                    if i.state == InstanceState::Terminating {
                        // Nothing left to stop from here; a returning cluster is diffed.
                        return InstanceChange::Delete;
                    }
                    i.transition(
                        InstanceState::Lost,
                        format!("cluster {cluster} unreachable"),
                        now,
                    );
                    i.cluster = None;
                    i.node = None;
                    i.pid = None;
                    i.transition(
                        InstanceState::Pending,
                        "replacing an instance lost with its cluster",
                        now,
                    );
                    InstanceChange::Write
                })
                .await?;
        }
        self.wake();
        Ok(())
    }

    async fn set_cluster_state(&self, cluster: &str, state: MemberState) -> Result<(), RootError> {
        let key = format!("{}{cluster}", keys::CLUSTERS);
        let store = self.desired.store();
        if let Some((mut info, revision)) = store.get_json::<ClusterInfo>(&key).await? {
            info.state = state;
            store
                .put_json(&key, &info, Precondition::ModRevision(revision))
                .await?;
        }
        Ok(())
    }

    /// Keeps `/clusters/{name}` and `/nodes/{name}/...` in step with what the cluster reports:
    /// every node when `complete` (others are gone), else the changed ones and the `removed`.
    async fn record_membership(
        &self,
        cluster: &str,
        summary: &pb::Member,
        nodes: &[pb::Member],
        removed: &[String],
        complete: bool,
    ) -> Result<(), RootError> {
        let store = self.desired.store();
        let now = OffsetDateTime::now_utc();
        let key = format!("{}{cluster}", keys::CLUSTERS);
        let existing = store.get_json::<ClusterInfo>(&key).await?;
        let info = ClusterInfo {
            name: cluster.to_string(),
            state: MemberState::Ready,
            location: location_from_pb(summary),
            labels: summary.labels.clone().into_iter().collect(),
            nodes: summary.node_count,
            capacity: resources(summary.capacity.as_ref()),
            allocated: resources(summary.allocated.as_ref()),
            coordinate: network_coordinate(summary.coordinate.as_ref()),
            joined_at: existing.as_ref().map_or(now, |(c, _)| c.joined_at),
            last_seen: now,
        };
        // One transaction (one commit) for the cluster and all its nodes.
        let mut ops = vec![put(key, &info)?];

        let prefix = format!("{}{cluster}/", keys::NODES);
        // A delta names what changed; only a complete report needs what is stored.
        let known = if complete {
            store.list_json::<NodeInfo>(&prefix).await?.0
        } else {
            Vec::new()
        };
        let reported: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        for (key, node, _) in &known {
            if !reported.contains(node.name.as_str()) {
                ops.push(Op::Delete {
                    key: key.clone(),
                    precondition: Precondition::None,
                });
            }
        }
        for name in removed {
            ops.push(Op::Delete {
                key: format!("{prefix}{name}"),
                precondition: Precondition::None,
            });
        }
        for node in nodes {
            let info = NodeInfo {
                name: node.name.clone(),
                cluster: cluster.to_string(),
                state: if node.ready {
                    MemberState::Ready
                } else {
                    MemberState::Unreachable
                },
                arch: node.arch.clone(),
                runtimes: runtimes_from_pb(&node.runtimes),
                location: location_from_pb(node),
                labels: node.labels.clone().into_iter().collect(),
                capacity: resources(node.capacity.as_ref()),
                allocated: resources(node.allocated.as_ref()),
                instances: node.instance_count,
                coordinate: network_coordinate(node.coordinate.as_ref()),
                rtt_to_cluster_ms: (node.cluster_rtt_ms > 0.0).then_some(node.cluster_rtt_ms),
                joined_at: from_unix_ms(node.joined_at_ms),
                last_seen: from_unix_ms(node.last_seen_ms),
            };
            let key = format!("{prefix}{}", node.name);
            let unchanged = known
                .iter()
                .any(|(k, old, _)| *k == key && same_node(old, &info));
            if !unchanged {
                ops.push(put(key, &info)?);
            }
        }
        store.txn(ops).await?;
        Ok(())
    }
}

fn network_coordinate(c: Option<&pb::Coordinate>) -> Option<NetworkCoordinate> {
    c.map(|c| NetworkCoordinate {
        x: c.x,
        y: c.y,
        height: c.height,
        error: c.error,
    })
}

fn put<T: serde::Serialize>(key: String, value: &T) -> Result<Op, RootError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| RootError::Store(canopy_store::StoreError::Backend(e.to_string())))?;
    Ok(Op::Put {
        key,
        value,
        precondition: Precondition::None,
    })
}

/// Equal but for `last_seen`, which changes on every report and is not worth a write.
fn same_node(a: &NodeInfo, b: &NodeInfo) -> bool {
    NodeInfo {
        last_seen: b.last_seen,
        ..a.clone()
    } == *b
}

fn observe(
    instance: &mut Instance,
    state: InstanceState,
    status: &pb::InstanceStatus,
) -> InstanceChange {
    let node = (!status.node.is_empty()).then(|| status.node.clone());
    let pid = (status.pid != 0).then_some(status.pid);
    let exit_code = status.has_exit_code.then_some(status.exit_code);
    // While starting, a new reason is progress (pulling the image, ...): an event of its own.
    let progress = state == InstanceState::Starting
        && instance.state == state
        && instance.reason.as_deref().unwrap_or("") != status.reason;
    if instance.state == state
        && !progress
        && instance.node == node
        && instance.pid == pid
        && instance.restarts == status.restarts
        && instance.exit_code == exit_code
    {
        return InstanceChange::None;
    }
    instance.node = node;
    instance.pid = pid;
    instance.restarts = status.restarts;
    instance.exit_code = exit_code;
    let at = from_unix_ms(status.at_ms);
    if instance.state == state && !progress {
        instance.updated_at = at;
        instance.reason = (!status.reason.is_empty()).then(|| status.reason.clone());
    } else {
        instance.transition(state, status.reason.clone(), at);
    }
    InstanceChange::Write
}

fn service_key(instance: &Instance) -> (String, String, String) {
    (
        instance.namespace.clone(),
        instance.application.clone(),
        instance.service.clone(),
    )
}

fn workload(instance: &Instance, spec: &canopy_model::ServiceSpec) -> Workload {
    Workload {
        namespace: instance.namespace.clone(),
        application: instance.application.clone(),
        service: instance.service.clone(),
        replica: instance.replica,
        spec: spec.clone(),
    }
}

fn cluster_views(
    clusters: &BTreeMap<String, ClusterEntry>,
    allocated: &BTreeMap<String, ResourceAmounts>,
) -> Vec<ClusterView> {
    clusters
        .iter()
        .map(|(name, entry)| {
            let mut view = summary_from_pb(&entry.summary);
            view.name = name.clone();
            view.ready = entry.ready && entry.downlink.is_some();
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

/// The root seen from its clusters (it is their parent).
pub struct ClusterSide(Arc<Federation>);

impl Parent for ClusterSide {
    async fn on_hello(&self, hello: pb::Hello, downlink: Downlink) -> Result<(), tonic::Status> {
        self.0
            .on_hello(hello, downlink)
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    async fn on_message(&self, child: &str, body: up::Body) {
        if let Err(e) = self.0.on_message(child, body).await {
            tracing::error!(cluster = child, error = %e, "cannot apply a cluster report");
        }
    }

    async fn on_goodbye(&self, child: &str, link: u64) {
        self.0.on_goodbye(child, link).await;
    }
}
