//! The cluster orchestrator: one per site or operator. Holds a link up to the root (which it
//! dials, so it may sit behind NAT) and accepts links from its nodes. It places instances the
//! root assigns onto nodes, watches the nodes, replaces what a lost node ran, and keeps doing
//! all of that while the root is away.

mod placed;

use canopy_model::{GeoPoint, InstanceState, ResourceAmounts};
use canopy_sched::{
    Endpoint, NodeView, Placement, PlacementContext, Request, demand, free,
    place_on_node_explained, should_replace, summarise,
};
use canopy_store::{Durability, Precondition, Store, StoreExt};
use canopy_tier::child::{self, Child, Uplink};
use canopy_tier::parent::{Downlink, Parent, TierService};
use canopy_tier::pb::{self, down, up};
use canopy_tier::probe::Prober;
use canopy_tier::{
    Timing, Workload, coordinate_to_pb, node_view, state_from_pb, summary_to_pb, unix_ms,
};
use placed::{Placed, terminal_status};
use rand::seq::{IndexedRandom, IteratorRandom};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, watch};
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
    /// Grid carbon intensity at this site (gCO2/kWh), for nodes that do not report their own.
    pub carbon_g_per_kwh: Option<f64>,
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
    /// The scheduler's view of every node, in `nodes`' order. Rebuilt only when a node's
    /// description changes (`views_stale`); readiness and allocation are refreshed in place
    /// before each use, so placing over thousands of nodes allocates nothing per node.
    views: Vec<NodeView>,
    views_stale: bool,
}

pub struct Cluster {
    config: ClusterConfig,
    store: Arc<dyn Store>,
    state: Mutex<State>,
    uplink: Uplink,
    outbox: std::sync::Mutex<Option<child::Outbox>>,
    /// The membership last sent up, to send only changes.
    reported: Mutex<Reported>,
    /// Membership changed (a node joined or was lost): report soon, not at once, so that a
    /// thousand nodes joining together make a few reports rather than a thousand.
    membership_changed: Notify,
    /// Latency probing in two spaces, as Serf does: the LAN prober takes part with this
    /// cluster's nodes; the WAN prober (with the address other clusters reach it at) with the
    /// other clusters the root names. Mixing both in one space lets the long cross-cluster
    /// round trips swamp the short ones within a site.
    lan: OnceLock<Arc<Prober>>,
    wan: OnceLock<(Arc<Prober>, String)>,
    /// Other clusters' WAN probe endpoints, from the root.
    remote_peers: std::sync::Mutex<Vec<pb::Peer>>,
    /// Set while a batch of assignments is placed: writes and reports wait in it and go out
    /// in one commit (see [`Cluster::on_assigns`]).
    batch: std::sync::Mutex<Option<Batch>>,
}

/// Writes (last one per key wins; `None` deletes) and status reports held back for one commit.
#[derive(Default)]
struct Batch {
    writes: BTreeMap<String, Option<Vec<u8>>>,
    reports: Vec<pb::InstanceStatus>,
}

/// What the root last heard, in comparable form (see [`comparable`]).
#[derive(Default)]
struct Reported {
    summary: Option<pb::Member>,
    nodes: BTreeMap<String, pb::Member>,
}

/// How often the summary is compared with what the root last heard (only changes are sent):
/// a lower rate than node heartbeats, since the root plans coarsely.
const MEMBERSHIP_PERIOD: Duration = Duration::from_secs(2);
/// Least time between two membership reports triggered by joins and losses.
const MEMBERSHIP_DEBOUNCE: Duration = Duration::from_millis(250);
/// How often nodes get a fresh sample of peers to probe, and how many.
const PEERS_PERIOD: Duration = Duration::from_secs(30);
const PEERS_PER_NODE: usize = 4;
/// How often soft-constraint violations are checked against their convergence time.
const CONVERGENCE_PERIOD: Duration = Duration::from_secs(1);

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
            reported: Mutex::new(Reported::default()),
            membership_changed: Notify::new(),
            lan: OnceLock::new(),
            wan: OnceLock::new(),
            remote_peers: std::sync::Mutex::new(Vec::new()),
            batch: std::sync::Mutex::new(None),
        }))
    }

    /// Takes part in latency probing (the callers run the probers' loops): nodes get the
    /// `lan` prober's port among their peers and it probes them in turn; the `wan` prober,
    /// reached by other clusters at `advertised`, probes the clusters the root names.
    pub fn attach_probers(&self, lan: Arc<Prober>, wan: Arc<Prober>, advertised: String) {
        let _ = self.lan.set(lan);
        let _ = self.wan.set((wan, advertised));
    }

    fn remote_peers(&self) -> std::sync::MutexGuard<'_, Vec<pb::Peer>> {
        self.remote_peers.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Placement decisions are written at once.
    async fn persist(&self, placed: &Placed) {
        self.persist_with(placed, Durability::Immediate).await;
    }

    /// What a node observed (state, pid) is written lazily: a restarted cluster hears it
    /// again in each node's hello.
    async fn persist_observed(&self, placed: &Placed) {
        self.persist_with(placed, Durability::Deferred).await;
    }

    async fn persist_with(&self, placed: &Placed, durability: Durability) {
        let key = format!("{INSTANCES}{}", placed.id);
        let value = match serde_json::to_vec(placed) {
            Ok(value) => value,
            Err(e) => {
                tracing::error!(instance = %placed.id, error = %e, "cannot encode instance");
                return;
            }
        };
        if let Some(batch) = self
            .batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            batch.writes.insert(key, Some(value));
            return;
        }
        let op = canopy_store::Op::Put {
            key,
            value,
            precondition: Precondition::None,
        };
        if let Err(e) = self.store.txn_with(vec![op], durability).await {
            tracing::error!(instance = %placed.id, error = %e, "cannot persist instance");
        }
    }

    async fn forget(&self, id: &str) {
        let key = format!("{INSTANCES}{id}");
        if let Some(batch) = self
            .batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            batch.writes.insert(key, None);
            return;
        }
        if let Err(e) = self.store.delete(&key, Precondition::None).await {
            tracing::error!(instance = %id, error = %e, "cannot delete instance");
        }
    }

    fn batching(&self) -> bool {
        self.batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Commits what a batch held back in one transaction, then sends its reports: the root
    /// hears of a placement only once it is durable, as without a batch.
    async fn commit(&self, batch: Batch) {
        let ops: Vec<canopy_store::Op> = batch
            .writes
            .into_iter()
            .map(|(key, value)| match value {
                Some(value) => canopy_store::Op::Put {
                    key,
                    value,
                    precondition: Precondition::None,
                },
                None => canopy_store::Op::Delete {
                    key,
                    precondition: Precondition::None,
                },
            })
            .collect();
        let count = ops.len();
        if let Err(e) = self.store.txn_with(ops, Durability::Immediate).await {
            tracing::error!(instances = count, error = %e, "cannot persist a batch of instances");
        }
        for status in batch.reports {
            self.uplink.send(up::Body::Status(status));
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
        if let Some(batch) = self
            .batch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            batch.reports.push(status);
            return;
        }
        self.uplink.send(up::Body::Status(status));
    }

    /// Brings `state.views` up to date: rebuilt when a node joined or changed, else only
    /// readiness and allocation refreshed. Allocation counts every live instance placed on a
    /// node, including those assigned but not yet running (reservations).
    fn refresh_views(&self, state: &mut State) {
        if state.views_stale || state.views.len() != state.nodes.len() {
            state.views = state
                .nodes
                .values()
                .map(|entry| {
                    let mut view = node_view(&entry.member, false, ResourceAmounts::default());
                    view.carbon_g_per_kwh = view.carbon_g_per_kwh.or(self.config.carbon_g_per_kwh);
                    view
                })
                .collect();
            state.views_stale = false;
        }
        for (view, entry) in state.views.iter_mut().zip(state.nodes.values()) {
            view.ready = entry.ready && entry.downlink.is_some();
            view.allocated = ResourceAmounts::default();
        }
        for placed in state.instances.values().filter(|p| p.is_live()) {
            // A copy being replaced holds its node until it stops.
            for node in placed.node.iter().chain(placed.draining.iter()) {
                reserve(&mut state.views, node, &placed.workload.spec);
            }
        }
    }

    /// Places one instance on a node and sends it there; if no node fits, tells the root,
    /// which tries another cluster.
    async fn place(&self, state: &mut State, id: &str) {
        // A batch refreshes the views once; its placements then keep them current.
        if !self.batching() {
            self.refresh_views(state);
        }
        let Some(context) = Self::context(state, id) else {
            return;
        };
        let Some(placed) = state.instances.get(id) else {
            return;
        };
        let mut request = Request::new(&placed.workload.spec, &placed.refused);
        request.context = Some(&context);
        match place_on_node_explained(&request, &state.views) {
            Ok(placement) => self.assign_to(state, id, &placement).await,
            Err(explanation) => {
                let reason = format!("cluster {}: {explanation}", self.config.name);
                self.finish(state, id, pb::State::Rejected, &reason).await;
            }
        }
    }

    /// What placing instance `id` depends on besides the nodes: how many instances of its
    /// service each node runs (spread), and where the application's other services run
    /// (latency to a service).
    fn context(state: &State, id: &str) -> Option<PlacementContext> {
        let placed = state.instances.get(id)?;
        let mut context = PlacementContext::default();
        for other in state
            .instances
            .values()
            .filter(|p| p.is_live() && p.id != id)
        {
            let Some(node) = &other.node else { continue };
            if other.same_service(placed) {
                *context.instances_per_node.entry(node.clone()).or_default() += 1;
            } else if (&other.workload.namespace, &other.workload.application)
                == (&placed.workload.namespace, &placed.workload.application)
            {
                let member = state.nodes.get(node).map(|n| &n.member);
                context
                    .services
                    .entry(other.workload.service.clone())
                    .or_default()
                    .push(Endpoint {
                        location: member.and_then(canopy_tier::location_from_pb),
                        coordinate: member
                            .and_then(|m| canopy_tier::coordinate_from_pb(m.coordinate.as_ref())),
                    });
            }
        }
        Some(context)
    }

    /// Sends instance `id` to the node `placement` chose, noting a soft violation's start.
    async fn assign_to(&self, state: &mut State, id: &str, placement: &Placement) {
        let Some(placed) = state.instances.get_mut(id) else {
            return;
        };
        let node = placement.name.clone();
        placed.node = Some(node.clone());
        placed.pid = None;
        let reason = if placement.violated.is_empty() {
            placed.soft_violation_since = None;
            format!("placed on node {node}")
        } else {
            placed.soft_violation_since = Some(unix_ms(OffsetDateTime::now_utc()));
            let kinds: Vec<&str> = placement.violated.iter().map(|v| v.kind).collect();
            format!(
                "placed on node {node}; preference not met: {}",
                kinds.join(", ")
            )
        };
        placed.set(InstanceState::NodeScheduled, reason);
        let assign = placed.workload.to_assign(&placed.id, placed.generation);
        let status = placed.status(&self.config.name);
        let placed = placed.clone();
        reserve(&mut state.views, &node, &placed.workload.spec);
        if let Some(link) = state.nodes.get(&node).and_then(|n| n.downlink.as_ref()) {
            link.send(down::Body::Assign(assign));
        }
        self.persist(&placed).await;
        self.report(status);
    }

    /// Moves running instances whose soft constraints have been violated for longer than
    /// their convergence time to a node that violates less, one instance per service at a
    /// time. The old copy runs until the new one does: never fewer replicas running.
    async fn converge(&self) {
        let mut state = self.state.lock().await;
        let now = unix_ms(OffsetDateTime::now_utc());
        let due: Vec<String> = state
            .instances
            .values()
            .filter(|p| p.state == InstanceState::Running && p.draining.is_none())
            .filter(|p| {
                p.soft_violation_since.is_some_and(|since| {
                    let elapsed_secs = u64::try_from(now - since).unwrap_or(0) / 1000;
                    should_replace(elapsed_secs, p.convergence_time(), true)
                })
            })
            .map(|p| p.id.clone())
            .collect();
        for id in due {
            let moving = state.instances.get(&id).is_some_and(|p| {
                state
                    .instances
                    .values()
                    .any(|other| other.draining.is_some() && other.same_service(p))
            });
            if moving {
                continue;
            }
            self.refresh_views(&mut state);
            let views = &state.views;
            let Some(context) = Self::context(&state, &id) else {
                continue;
            };
            let Some(placed) = state.instances.get(&id) else {
                continue;
            };
            let Some(current) = views.iter().find(|v| Some(&v.name) == placed.node.as_ref()) else {
                continue;
            };
            let mut request = Request::new(&placed.workload.spec, &[]);
            request.context = Some(&context);
            // Judged as if it were not there yet: its own reservation must not make its node
            // look too full for it.
            let mut current = current.clone();
            current.allocated = free(&current.allocated, &demand(&placed.workload.spec));
            let here = place_on_node_explained(&request, std::slice::from_ref(&current));
            let Ok(best) = place_on_node_explained(&request, views) else {
                continue;
            };
            let better = match &here {
                Ok(here) => best.penalty < here.penalty && best.name != here.name,
                Err(_) => false,
            };
            if !better {
                continue;
            }
            tracing::info!(instance = %id, from = %current.name, to = %best.name, "moving to a node that meets its preferences");
            if let Some(placed) = state.instances.get_mut(&id) {
                placed.draining = placed.node.take();
            }
            self.assign_to(&mut state, &id, &best).await;
        }
    }

    /// Places a batch of assignments under one lock and commits them together: one fsync for
    /// a thousand placements instead of a thousand. The state lock is held until the commit,
    /// so no other write can overtake the batch's.
    async fn on_assigns(&self, assigns: Vec<pb::Assign>) {
        let mut state = self.state.lock().await;
        self.refresh_views(&mut state);
        *self.batch.lock().unwrap_or_else(|e| e.into_inner()) = Some(Batch::default());
        for assign in assigns {
            self.admit(&mut state, assign).await;
        }
        let batch = self.batch.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(batch) = batch {
            self.commit(batch).await;
        }
    }

    async fn admit(&self, state: &mut State, assign: pb::Assign) {
        let workload = match Workload::from_assign(&assign) {
            Ok(workload) => workload,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a malformed assignment");
                return;
            }
        };
        if let Some(existing) = state.instances.get(&assign.instance_id) {
            if existing.generation >= assign.generation {
                // A repeat (reconnect) or an outdated assignment: say where it stands.
                self.report(existing.status(&self.config.name));
                return;
            }
            self.revoke_on_node(state, existing);
        }
        let placed = Placed::new(assign.instance_id.clone(), assign.generation, workload);
        state.instances.insert(placed.id.clone(), placed);
        self.place(state, &assign.instance_id).await;
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
        state.views_stale = true;
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
        // A sample straight from the map: building every candidate for each of thousands of
        // joining nodes would be quadratic.
        let sample: Vec<pb::Peer> = state
            .nodes
            .iter()
            .filter(|(other, n)| **other != name && n.ready && !n.member.probe_address.is_empty())
            .choose_multiple(&mut rand::rng(), PEERS_PER_NODE)
            .into_iter()
            .map(|(other, n)| peer(other, &n.member))
            .collect();
        self.send_peers(&state, &name, sample);
        drop(state);
        self.membership_changed.notify_one();
    }

    /// The ready nodes that answer probes, as peers: sampled for each node and for the
    /// cluster's own LAN prober.
    fn probe_candidates(state: &State) -> Vec<pb::Peer> {
        state
            .nodes
            .iter()
            .filter(|(_, n)| n.ready && !n.member.probe_address.is_empty())
            .map(|(name, n)| peer(name, &n.member))
            .collect()
    }

    /// Sends `node` the `sample` of other nodes to probe, and this cluster.
    fn send_peers(&self, state: &State, node: &str, mut peers: Vec<pb::Peer>) {
        let Some(link) = state.nodes.get(node).and_then(|n| n.downlink.as_ref()) else {
            return;
        };
        if let Some(Ok(own)) = self.lan.get().map(|p| p.local_addr()) {
            // The port alone: the node reaches this cluster at the host it dialled.
            peers.push(pb::Peer {
                name: self.config.name.clone(),
                address: format!(":{}", own.port()),
            });
        }
        if !peers.is_empty() {
            link.send(down::Body::Peers(pb::Peers { peers }));
        }
    }

    /// Refreshes every node's peers, and this cluster's own.
    async fn refresh_peers(&self) {
        let state = self.state.lock().await;
        let candidates = Self::probe_candidates(&state);
        for name in state.nodes.keys() {
            // One spare, in case the node itself is drawn.
            let sample = candidates
                .choose_multiple(&mut rand::rng(), PEERS_PER_NODE + 1)
                .filter(|p| p.name != *name)
                .take(PEERS_PER_NODE)
                .cloned()
                .collect();
            self.send_peers(&state, name, sample);
        }
        if let Some(lan) = self.lan.get() {
            lan.set_peers(
                candidates
                    .choose_multiple(&mut rand::rng(), PEERS_PER_NODE)
                    .filter_map(|p| p.address.parse().ok())
                    .collect(),
            );
        }
        if let Some((wan, _)) = self.wan.get() {
            wan.set_peers(
                self.remote_peers()
                    .iter()
                    .filter_map(|p| p.address.parse().ok())
                    .collect(),
            );
        }
    }

    async fn apply_node_status(&self, state: &mut State, node: &str, status: pb::InstanceStatus) {
        let Some(placed) = state.instances.get_mut(&status.id) else {
            return;
        };
        if placed.node.as_deref() != Some(node) || placed.generation != status.generation {
            return;
        }
        let wire_state = pb::State::try_from(status.state).unwrap_or(pb::State::Unspecified);
        if wire_state == pb::State::Rejected
            && placed.cancel_move(&format!("node {node} refused the move: {}", status.reason))
        {
            let placed = placed.clone();
            self.persist(&placed).await;
            self.report(placed.status(&self.config.name));
            return;
        }
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
        let moved_from = match new_state {
            InstanceState::Running => placed.draining.take(),
            _ => None,
        };
        let placed = placed.clone();
        if let Some(old) = moved_from {
            // The new copy runs: now the old one may stop.
            if let Some(link) = state.nodes.get(&old).and_then(|n| n.downlink.as_ref()) {
                link.send(down::Body::Revoke(pb::Revoke {
                    instance_id: placed.id.clone(),
                    generation: placed.generation,
                    reason: format!("moved to node {node}, which meets its preferences"),
                }));
            }
        }
        if changed {
            self.persist_observed(&placed).await;
        }
        self.report(placed.status(&self.config.name));
    }

    async fn on_node_message(&self, node: &str, body: up::Body) {
        let mut state = self.state.lock().await;
        if let Some(entry) = state.nodes.get_mut(node) {
            entry.last_seen = Instant::now();
            if let up::Body::Heartbeat(pb::Heartbeat {
                coordinate: Some(coordinate),
                ..
            }) = &body
            {
                entry.member.coordinate = Some(*coordinate);
                // Only the coordinate changed: no need to rebuild every view.
                let moved = canopy_tier::coordinate_from_pb(Some(coordinate));
                if let Ok(index) = state.views.binary_search_by(|v| v.name.as_str().cmp(node)) {
                    state.views[index].coordinate = moved;
                }
            }
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
        let mut peers = tokio::time::interval(PEERS_PERIOD);
        let mut convergence = tokio::time::interval(CONVERGENCE_PERIOD);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = membership.tick() => {
                    self.report_membership_changes().await;
                    continue;
                }
                _ = self.membership_changed.notified() => {
                    tokio::time::sleep(MEMBERSHIP_DEBOUNCE).await;
                    self.report_membership_changes().await;
                    membership.reset();
                    continue;
                }
                _ = peers.tick() => {
                    self.refresh_peers().await;
                    continue;
                }
                _ = convergence.tick() => {
                    self.converge().await;
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
                self.membership_changed.notify_one();
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
        if placed.cancel_move(&format!("node {node} became unreachable mid-move")) {
            let placed = placed.clone();
            self.persist(&placed).await;
            self.report(placed.status(&self.config.name));
            return;
        }
        placed.set(InstanceState::Lost, format!("node {node} unreachable"));
        self.report(placed.status(&self.config.name));
        placed.node = None;
        placed.pid = None;
        self.place(state, id).await;
    }

    /// The cluster's summary for the root (from [`summarise`]) and every node as reported up.
    async fn summary(&self) -> (pb::Member, Vec<pb::Member>) {
        let mut state = self.state.lock().await;
        self.refresh_views(&mut state);
        let views = &state.views;
        let mut instance_counts: BTreeMap<&str, u32> = BTreeMap::new();
        for placed in state.instances.values().filter(|p| p.is_live()) {
            if let Some(node) = &placed.node {
                *instance_counts.entry(node.as_str()).or_default() += 1;
            }
        }
        let now = OffsetDateTime::now_utc();
        let lan = self.lan.get().map(|p| p.position().coordinate);
        let nodes = views
            .iter()
            .map(|view| {
                let entry = &state.nodes[&view.name];
                pb::Member {
                    allocated: Some(view.allocated.into()),
                    ready: view.ready,
                    instance_count: instance_counts
                        .get(view.name.as_str())
                        .copied()
                        .unwrap_or(0),
                    joined_at_ms: unix_ms(entry.joined_at),
                    last_seen_ms: unix_ms(
                        now - time::Duration::try_from(entry.last_seen.elapsed())
                            .unwrap_or_default(),
                    ),
                    cluster: self.config.name.clone(),
                    cluster_rtt_ms: match (lan, view.coordinate) {
                        (Some(centre), Some(node)) => centre.estimate_rtt(&node),
                        _ => 0.0,
                    },
                    ..entry.member.clone()
                }
            })
            .collect();
        let mut view = summarise(&self.config.name, views);
        view.ready = true;
        view.labels = self.config.labels.clone();
        if view.location.is_none() {
            view.location = self.config.location;
        }
        // Down nodes count as members, not as capacity.
        view.node_count = Some(state.nodes.len() as u32);
        // The cluster's coordinate is its WAN one (the nodes' LAN coordinates live in another
        // space); the radius is how far its farthest ready node is, in its LAN space.
        view.coordinate = self.wan.get().map(|(p, _)| p.position().coordinate);
        view.coordinate_radius_ms = match lan {
            Some(centre) => views
                .iter()
                .filter(|v| v.ready)
                .filter_map(|v| v.coordinate.map(|c| centre.estimate_rtt(&c)))
                .fold(0.0, f64::max),
            None => 0.0,
        };
        let mut summary = summary_to_pb(&view);
        if let Some((wan, advertised)) = self.wan.get() {
            summary.probe_address = advertised.clone();
            summary.coordinate =
                coordinate_to_pb(Some((wan.position().coordinate, wan.position().error)));
        }
        (summary, nodes)
    }

    /// What changed since the root last heard; everything when `complete` (a new link).
    async fn membership_delta(&self, complete: bool) -> Option<pb::Membership> {
        let (summary, nodes) = self.summary().await;
        let mut reported = self.reported.lock().await;
        if complete {
            *reported = Reported::default();
        }
        let mut current = BTreeSet::new();
        let mut changed = Vec::new();
        for node in nodes {
            current.insert(node.name.clone());
            let seen = comparable(&node);
            if reported.nodes.get(&node.name) != Some(&seen) {
                reported.nodes.insert(node.name.clone(), seen);
                changed.push(node);
            }
        }
        let removed: Vec<String> = reported
            .nodes
            .keys()
            .filter(|name| !current.contains(*name))
            .cloned()
            .collect();
        for name in &removed {
            reported.nodes.remove(name);
        }
        let seen = comparable(&summary);
        if !complete
            && changed.is_empty()
            && removed.is_empty()
            && reported.summary == Some(seen.clone())
        {
            return None;
        }
        reported.summary = Some(seen);
        Some(pb::Membership {
            summary: Some(summary),
            nodes: changed,
            removed,
            complete,
        })
    }

    async fn report_membership_changes(&self) {
        if let Some(membership) = self.membership_delta(false).await {
            self.uplink.send(up::Body::Membership(membership));
        }
    }
}

/// A member without what changes all the time and is not worth a report: last-seen times,
/// and latency jitter below a millisecond (or a tenth of relative error): coordinates, the
/// round trip to the cluster and the cluster's radius move a little with every probe.
/// Counts `spec`'s demand against `node` in `views` (which are in the nodes' sorted order).
fn reserve(views: &mut [NodeView], node: &str, spec: &canopy_model::ServiceSpec) {
    if let Ok(index) = views.binary_search_by(|v| v.name.as_str().cmp(node)) {
        views[index].allocated.add(&demand(spec));
    }
}

fn comparable(member: &pb::Member) -> pb::Member {
    let round = |value: f64, step: f64| (value / step).round() * step;
    pb::Member {
        last_seen_ms: 0,
        coordinate: member.coordinate.map(|c| pb::Coordinate {
            x: round(c.x, 1.0),
            y: round(c.y, 1.0),
            height: round(c.height, 1.0),
            error: round(c.error, 0.1),
        }),
        cluster_rtt_ms: round(member.cluster_rtt_ms, 1.0),
        coordinate_radius_ms: round(member.coordinate_radius_ms, 1.0),
        ..member.clone()
    }
}

fn peer(name: &str, member: &pb::Member) -> pb::Peer {
    pb::Peer {
        name: name.to_string(),
        address: member.probe_address.clone(),
    }
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
        let (member, nodes) = match self.0.membership_delta(true).await {
            Some(membership) => (membership.summary.unwrap_or_default(), membership.nodes),
            None => self.0.summary().await,
        };
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
        self.0.on_assigns(vec![assign]).await;
    }

    async fn on_assigns(&self, assigns: Vec<pb::Assign>) {
        self.0.on_assigns(assigns).await;
    }

    async fn on_revoke(&self, revoke: pb::Revoke) {
        self.0.on_revoke(revoke).await;
    }

    async fn on_peers(&self, peers: pb::Peers) {
        *self.0.remote_peers() = peers.peers;
        self.0.refresh_peers().await;
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
