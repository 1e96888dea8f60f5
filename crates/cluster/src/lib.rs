//! The cluster orchestrator: one per site or operator. Holds a link up to the root (which it
//! dials, so it may sit behind NAT) and accepts links from its nodes. It places instances the
//! root assigns onto nodes, watches the nodes, replaces what a lost node ran, and keeps doing
//! all of that while the root is away.

mod placed;

use canopy_model::{GeoPoint, InstanceState, ResourceAmounts};
use canopy_sched::{NodeView, PlacementContext, Request, demand, free, place_on_node};
use canopy_store::{Precondition, Store, StoreExt};
use canopy_tier::child::{self, Child, Uplink};
use canopy_tier::parent::{Downlink, Parent, TierService};
use canopy_tier::pb::{self, down, up};
use canopy_tier::{
    Timing, Workload, location_to_pb, resources, runtimes_from_pb, state_from_pb, unix_ms,
};
use placed::{Placed, terminal_status};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

const INSTANCES: &str = "/instances/";

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    /// The root's tier endpoint (`http://host:port`); none to run detached.
    pub root: Option<String>,
    pub token: String,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    /// Heartbeat and deadline asked of nodes.
    pub node_timing: Timing,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("store: {0}")]
    Store(#[from] canopy_store::StoreError),
    #[error("link to the root: {0}")]
    Tier(#[from] canopy_tier::TierError),
}

struct NodeEntry {
    member: pb::Member,
    ready: bool,
    last_seen: Instant,
    joined_at: OffsetDateTime,
    downlink: Option<Downlink>,
}

#[derive(Default)]
struct State {
    nodes: BTreeMap<String, NodeEntry>,
    instances: BTreeMap<String, Placed>,
}

pub struct Cluster {
    config: ClusterConfig,
    store: Arc<dyn Store>,
    state: Mutex<State>,
    uplink: Uplink,
    outbox: std::sync::Mutex<Option<child::Outbox>>,
    /// The membership last sent up, to send only changes.
    reported: Mutex<Option<pb::Membership>>,
}

/// How often the summary is compared with what the root last heard (only changes are sent).
const MEMBERSHIP_PERIOD: Duration = Duration::from_secs(2);

impl Cluster {
    /// Opens the cluster over its own store, recovering the instances it had placed.
    pub async fn open(
        config: ClusterConfig,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let (records, _) = store.list_json::<Placed>(INSTANCES).await?;
        let mut state = State::default();
        let now = Instant::now();
        for (_, placed, _) in records {
            // Nodes that ran these get one deadline from now to reconnect before their
            // instances count as lost.
            if let Some(node) = &placed.node {
                state
                    .nodes
                    .entry(node.clone())
                    .or_insert_with(|| NodeEntry {
                        member: pb::Member {
                            name: node.clone(),
                            ..pb::Member::default()
                        },
                        ready: true,
                        last_seen: now,
                        joined_at: OffsetDateTime::now_utc(),
                        downlink: None,
                    });
            }
            state.instances.insert(placed.id.clone(), placed);
        }
        let (uplink, outbox) = child::uplink();
        Ok(Arc::new(Cluster {
            config,
            store,
            state: Mutex::new(state),
            uplink,
            outbox: std::sync::Mutex::new(Some(outbox)),
            reported: Mutex::new(None),
        }))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The gRPC service nodes link to.
    pub fn tier_service(self: &Arc<Self>) -> pb::tier_server::TierServer<TierService<NodeSide>> {
        TierService::new(Arc::new(NodeSide(self.clone())), self.config.node_timing).into_server()
    }

    /// The HTTP surface: the tier endpoint nodes link to, and `/healthz`.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        axum::Router::new()
            .route_service(canopy_tier::ROUTE, self.tier_service())
            .route("/healthz", axum::routing::get(|| async { "ok" }))
    }

    /// Runs the link to the root and the failure detector until `stop` turns true.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), ClusterError> {
        let detector = tokio::spawn(self.clone().detect_failures(stop.clone()));
        let outbox = self.outbox.lock().ok().and_then(|mut o| o.take());
        let result = match (&self.config.root, outbox) {
            (Some(root), Some(outbox)) => child::run(
                root.clone(),
                self.config.token.clone(),
                Arc::new(RootSide(self.clone())),
                outbox,
                stop,
            )
            .await
            .map_err(ClusterError::from),
            _ => {
                let mut stop = stop;
                canopy_tier::stopped(&mut stop).await;
                Ok(())
            }
        };
        detector.abort();
        result
    }

    async fn persist(&self, placed: &Placed) {
        let key = format!("{INSTANCES}{}", placed.id);
        if let Err(e) = self.store.put_json(&key, placed, Precondition::None).await {
            tracing::error!(instance = %placed.id, error = %e, "cannot persist instance");
        }
    }

    async fn forget(&self, id: &str) {
        let key = format!("{INSTANCES}{id}");
        if let Err(e) = self.store.delete(&key, Precondition::None).await {
            tracing::error!(instance = %id, error = %e, "cannot delete instance");
        }
    }

    /// Forgets an instance this cluster is done with and tells the root how it ended.
    async fn finish(&self, state: &mut State, id: &str, end: pb::State, reason: &str) {
        if let Some(placed) = state.instances.remove(id) {
            self.forget(id).await;
            self.report(terminal_status(
                id,
                placed.generation,
                end,
                reason,
                &self.config.name,
            ));
        }
    }

    fn report(&self, status: pb::InstanceStatus) {
        self.uplink.send(up::Body::Status(status));
    }

    /// Per-node views for the scheduler; allocation counts every live instance placed there,
    /// including those assigned but not yet running (reservations).
    fn node_views(state: &State) -> Vec<NodeView> {
        let mut allocated: BTreeMap<&str, ResourceAmounts> = BTreeMap::new();
        for placed in state.instances.values().filter(|p| p.is_live()) {
            if let Some(node) = &placed.node {
                allocated
                    .entry(node.as_str())
                    .or_default()
                    .add(&demand(&placed.workload.spec));
            }
        }
        state
            .nodes
            .iter()
            .map(|(name, entry)| NodeView {
                name: name.clone(),
                ready: entry.ready && entry.downlink.is_some(),
                arch: entry.member.arch.clone(),
                runtimes: runtimes_from_pb(&entry.member.runtimes),
                labels: entry.member.labels.clone().into_iter().collect(),
                location: canopy_tier::location_from_pb(&entry.member),
                capacity: resources(entry.member.capacity.as_ref()),
                allocated: allocated.get(name.as_str()).copied().unwrap_or_default(),
                ..NodeView::default()
            })
            .collect()
    }

    /// Places one instance on a node and sends it there; if no node fits, tells the root,
    /// which tries another cluster.
    async fn place(&self, state: &mut State, id: &str) {
        let views = Self::node_views(state);
        let Some(placed) = state.instances.get(id) else {
            return;
        };
        // How many instances of the same service each node already runs (spread constraints).
        let service = (
            &placed.workload.namespace,
            &placed.workload.application,
            &placed.workload.service,
        );
        let mut context = PlacementContext::default();
        for other in state
            .instances
            .values()
            .filter(|p| p.is_live() && p.id != id)
        {
            let same = (
                &other.workload.namespace,
                &other.workload.application,
                &other.workload.service,
            ) == service;
            if let (true, Some(node)) = (same, &other.node) {
                *context.instances_per_node.entry(node.clone()).or_default() += 1;
            }
        }
        let Some(placed) = state.instances.get_mut(id) else {
            return;
        };
        let mut request = Request::new(&placed.workload.spec, &placed.refused);
        request.context = Some(&context);
        match place_on_node(&request, &views) {
            Ok(index) => {
                let node = views[index].name.clone();
                placed.node = Some(node.clone());
                placed.pid = None;
                placed.set(
                    InstanceState::NodeScheduled,
                    format!("placed on node {node}"),
                );
                let assign = placed.workload.to_assign(&placed.id, placed.generation);
                let status = placed.status(&self.config.name);
                let placed = placed.clone();
                if let Some(link) = state.nodes.get(&node).and_then(|n| n.downlink.as_ref()) {
                    link.send(down::Body::Assign(assign));
                }
                self.persist(&placed).await;
                self.report(status);
            }
            Err(explanation) => {
                let reason = format!("cluster {}: {explanation}", self.config.name);
                self.finish(state, id, pb::State::Rejected, &reason).await;
            }
        }
    }

    async fn on_assign(&self, assign: pb::Assign) {
        let workload = match Workload::from_assign(&assign) {
            Ok(workload) => workload,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed assignment");
                return;
            }
        };
        let mut state = self.state.lock().await;
        if let Some(existing) = state.instances.get(&assign.instance_id) {
            if existing.generation >= assign.generation {
                // A repeat (reconnect) or an outdated assignment: say where it stands.
                self.report(existing.status(&self.config.name));
                return;
            }
            self.revoke_on_node(&state, existing);
        }
        let placed = Placed::new(assign.instance_id.clone(), assign.generation, workload);
        state.instances.insert(placed.id.clone(), placed);
        self.place(&mut state, &assign.instance_id).await;
    }

    fn revoke_on_node(&self, state: &State, placed: &Placed) {
        if let Some(link) = placed
            .node
            .as_ref()
            .and_then(|n| state.nodes.get(n))
            .and_then(|n| n.downlink.as_ref())
        {
            link.send(down::Body::Revoke(pb::Revoke {
                instance_id: placed.id.clone(),
                generation: placed.generation,
                reason: "revoked by the root".into(),
            }));
        }
    }

    async fn on_revoke(&self, revoke: pb::Revoke) {
        let mut state = self.state.lock().await;
        let Some(placed) = state.instances.get(&revoke.instance_id).cloned() else {
            self.report(terminal_status(
                &revoke.instance_id,
                revoke.generation,
                pb::State::Terminated,
                "not on this cluster",
                &self.config.name,
            ));
            return;
        };
        if placed.generation > revoke.generation {
            return;
        }
        let node_connected = placed
            .node
            .as_ref()
            .and_then(|n| state.nodes.get(n))
            .is_some_and(|n| n.downlink.is_some() && n.ready);
        if node_connected {
            self.revoke_on_node(&state, &placed);
            if let Some(p) = state.instances.get_mut(&placed.id) {
                p.set(InstanceState::Terminating, revoke.reason.clone());
                let p = p.clone();
                self.persist(&p).await;
                self.report(p.status(&self.config.name));
            }
        } else {
            // Never reached a node, or its node is gone: nothing left to stop here. Should the
            // node come back, its hello is diffed and the stale copy revoked then.
            self.finish(&mut state, &placed.id, pb::State::Terminated, "stopped")
                .await;
        }
    }

    async fn on_node_hello(&self, hello: pb::Hello, downlink: Downlink) {
        let Some(member) = hello.member else { return };
        let name = member.name.clone();
        let mut state = self.state.lock().await;
        let joined_at = state
            .nodes
            .get(&name)
            .map_or_else(OffsetDateTime::now_utc, |n| n.joined_at);
        state.nodes.insert(
            name.clone(),
            NodeEntry {
                member,
                ready: true,
                last_seen: Instant::now(),
                joined_at,
                downlink: Some(downlink.clone()),
            },
        );
        tracing::info!(node = %name, "node linked");

        // Diff what the node runs against what this cluster placed there.
        let mut reported = std::collections::BTreeSet::new();
        for status in hello.instances {
            reported.insert(status.id.clone());
            let ours = state.instances.get(&status.id).is_some_and(|p| {
                p.node.as_deref() == Some(&name) && p.generation == status.generation
            });
            if ours {
                self.apply_node_status(&mut state, &name, status).await;
            } else {
                downlink.send(down::Body::Revoke(pb::Revoke {
                    instance_id: status.id,
                    generation: status.generation,
                    reason: "no longer assigned to this node".into(),
                }));
            }
        }
        let missing: Vec<Placed> = state
            .instances
            .values()
            .filter(|p| {
                p.node.as_deref() == Some(&name) && p.is_live() && !reported.contains(&p.id)
            })
            .cloned()
            .collect();
        for placed in missing {
            if placed.state == InstanceState::Terminating {
                self.finish(&mut state, &placed.id, pb::State::Terminated, "stopped")
                    .await;
            } else {
                downlink.send(down::Body::Assign(
                    placed.workload.to_assign(&placed.id, placed.generation),
                ));
            }
        }
        drop(state);
        self.report_membership().await;
    }

    async fn apply_node_status(&self, state: &mut State, node: &str, status: pb::InstanceStatus) {
        let Some(placed) = state.instances.get_mut(&status.id) else {
            return;
        };
        if placed.node.as_deref() != Some(node) || placed.generation != status.generation {
            return;
        }
        let wire_state = pb::State::try_from(status.state).unwrap_or(pb::State::Unspecified);
        if wire_state == pb::State::Rejected {
            placed.refused.push(node.to_string());
            placed.node = None;
            placed.set(
                InstanceState::ClusterScheduled,
                format!("node {node} refused: {}", status.reason),
            );
            let id = placed.id.clone();
            self.place(state, &id).await;
            return;
        }
        let Some(new_state) = state_from_pb(wire_state) else {
            return;
        };
        if new_state == InstanceState::Terminated {
            let id = placed.id.clone();
            self.finish(state, &id, pb::State::Terminated, &status.reason)
                .await;
            return;
        }
        if placed.state == InstanceState::Terminating {
            // Still stopping; only the final word matters.
            return;
        }
        let changed = placed.state != new_state
            || placed.pid != (status.pid != 0).then_some(status.pid)
            || placed.restarts != status.restarts;
        placed.state = new_state;
        placed.reason = status.reason;
        placed.pid = (status.pid != 0).then_some(status.pid);
        placed.exit_code = status.has_exit_code.then_some(status.exit_code);
        placed.restarts = status.restarts;
        placed.at_ms = status.at_ms;
        let placed = placed.clone();
        if changed {
            self.persist(&placed).await;
        }
        self.report(placed.status(&self.config.name));
    }

    async fn on_node_message(&self, node: &str, body: up::Body) {
        let mut state = self.state.lock().await;
        if let Some(entry) = state.nodes.get_mut(node) {
            entry.last_seen = Instant::now();
        }
        if let up::Body::Status(status) = body {
            self.apply_node_status(&mut state, node, status).await;
        }
    }

    async fn on_node_goodbye(&self, node: &str, link: u64) {
        let mut state = self.state.lock().await;
        if let Some(entry) = state.nodes.get_mut(node)
            && entry.downlink.as_ref().is_some_and(|d| d.link() == link)
        {
            entry.downlink = None;
            tracing::info!(node, "node link closed");
        }
    }

    /// Marks nodes silent past the deadline unreachable and places their instances elsewhere.
    async fn detect_failures(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let deadline = self.config.node_timing.deadline;
        let mut tick = tokio::time::interval(Duration::from_millis(200).min(deadline / 4));
        let mut membership = tokio::time::interval(MEMBERSHIP_PERIOD);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = membership.tick() => {
                    self.report_membership_if_changed().await;
                    continue;
                }
                _ = canopy_tier::stopped(&mut stop) => return,
            }
            let mut state = self.state.lock().await;
            let lost: Vec<String> = state
                .nodes
                .iter()
                .filter(|(_, n)| n.ready && n.last_seen.elapsed() > deadline)
                .map(|(name, _)| name.clone())
                .collect();
            for node in &lost {
                tracing::warn!(node, ?deadline, "node unreachable; replacing its instances");
                if let Some(entry) = state.nodes.get_mut(node) {
                    entry.ready = false;
                }
                let stranded: Vec<String> = state
                    .instances
                    .values()
                    .filter(|p| p.node.as_deref() == Some(node) && p.is_live())
                    .map(|p| p.id.clone())
                    .collect();
                for id in stranded {
                    self.replace_lost(&mut state, &id, node).await;
                }
            }
            drop(state);
            if !lost.is_empty() {
                self.report_membership().await;
            }
        }
    }

    async fn replace_lost(&self, state: &mut State, id: &str, node: &str) {
        let Some(placed) = state.instances.get_mut(id) else {
            return;
        };
        if placed.state == InstanceState::Terminating {
            self.finish(state, id, pb::State::Terminated, "its node is unreachable")
                .await;
            return;
        }
        placed.set(InstanceState::Lost, format!("node {node} unreachable"));
        self.report(placed.status(&self.config.name));
        placed.node = None;
        placed.pid = None;
        self.place(state, id).await;
    }

    async fn summary(&self) -> (pb::Member, Vec<pb::Member>) {
        let state = self.state.lock().await;
        let views = Self::node_views(&state);
        let mut capacity = ResourceAmounts::default();
        let mut allocated = ResourceAmounts::default();
        let mut max_free = ResourceAmounts::default();
        let mut runtimes: Vec<String> = Vec::new();
        let mut arches: Vec<String> = Vec::new();
        let mut nodes = Vec::new();
        for view in &views {
            let entry = &state.nodes[&view.name];
            let instance_count = state
                .instances
                .values()
                .filter(|p| p.node.as_deref() == Some(view.name.as_str()) && p.is_live())
                .count() as u32;
            nodes.push(pb::Member {
                allocated: Some(view.allocated.into()),
                ready: view.ready,
                instance_count,
                joined_at_ms: unix_ms(entry.joined_at),
                last_seen_ms: unix_ms(
                    OffsetDateTime::now_utc()
                        - time::Duration::try_from(entry.last_seen.elapsed()).unwrap_or_default(),
                ),
                cluster: self.config.name.clone(),
                ..entry.member.clone()
            });
            if !view.ready {
                continue;
            }
            capacity.add(&view.capacity);
            allocated.add(&view.allocated);
            let node_free = free(&view.capacity, &view.allocated);
            max_free.cpu_millis = max_free.cpu_millis.max(node_free.cpu_millis);
            max_free.memory_mib = max_free.memory_mib.max(node_free.memory_mib);
            max_free.gpus = max_free.gpus.max(node_free.gpus);
            max_free.storage_mib = max_free.storage_mib.max(node_free.storage_mib);
            for runtime in &entry.member.runtimes {
                if !runtimes.contains(runtime) {
                    runtimes.push(runtime.clone());
                }
            }
            if !arches.contains(&entry.member.arch) {
                arches.push(entry.member.arch.clone());
            }
        }
        let (location, has_location) = location_to_pb(self.config.location);
        let summary = pb::Member {
            name: self.config.name.clone(),
            // A cluster spans architectures; they travel comma-separated.
            arch: arches.join(","),
            runtimes,
            capacity: Some(capacity.into()),
            allocated: Some(allocated.into()),
            labels: self.config.labels.clone().into_iter().collect(),
            location,
            has_location,
            max_node_free: Some(max_free.into()),
            node_count: nodes.len() as u32,
            ready: true,
            ..pb::Member::default()
        };
        (summary, nodes)
    }

    async fn report_membership(&self) {
        let (summary, nodes) = self.summary().await;
        let membership = pb::Membership {
            summary: Some(summary),
            nodes,
        };
        *self.reported.lock().await = Some(comparable(&membership));
        self.uplink.send(up::Body::Membership(membership));
    }

    async fn report_membership_if_changed(&self) {
        let (summary, nodes) = self.summary().await;
        let membership = pb::Membership {
            summary: Some(summary),
            nodes,
        };
        let mut reported = self.reported.lock().await;
        let now = comparable(&membership);
        if reported.as_ref() != Some(&now) {
            *reported = Some(now);
            self.uplink.send(up::Body::Membership(membership));
        }
    }
}

/// The membership without the ever-changing last-seen times.
fn comparable(membership: &pb::Membership) -> pb::Membership {
    let mut membership = membership.clone();
    for node in &mut membership.nodes {
        node.last_seen_ms = 0;
    }
    membership
}

/// The cluster seen from its nodes (it is their parent).
pub struct NodeSide(Arc<Cluster>);

impl Parent for NodeSide {
    async fn on_hello(&self, hello: pb::Hello, downlink: Downlink) -> Result<(), tonic::Status> {
        self.0.on_node_hello(hello, downlink).await;
        Ok(())
    }

    async fn on_message(&self, child: &str, body: up::Body) {
        self.0.on_node_message(child, body).await;
    }

    async fn on_goodbye(&self, child: &str, link: u64) {
        self.0.on_node_goodbye(child, link).await;
    }
}

/// The cluster seen from the root (it is the root's child).
struct RootSide(Arc<Cluster>);

impl Child for RootSide {
    async fn hello(&self) -> pb::Hello {
        let (member, nodes) = self.0.summary().await;
        let state = self.0.state.lock().await;
        let instances = state
            .instances
            .values()
            .map(|p| p.status(&self.0.config.name))
            .collect();
        pb::Hello {
            member: Some(member),
            token: String::new(),
            instances,
            nodes,
        }
    }

    async fn on_assign(&self, assign: pb::Assign) {
        self.0.on_assign(assign).await;
    }

    async fn on_revoke(&self, revoke: pb::Revoke) {
        self.0.on_revoke(revoke).await;
    }

    async fn on_link(&self, up: Option<Timing>) {
        match up {
            Some(_) => tracing::info!(cluster = %self.0.config.name, "linked to the root"),
            None => {
                tracing::warn!(cluster = %self.0.config.name, "link to the root down; running autonomously")
            }
        }
    }
}
