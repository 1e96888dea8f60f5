//! The shell around [`ClusterState`]: it opens the cluster over its store, feeds the core its
//! events with the time, and executes their [`Effects`]: the writes are committed first, and
//! only a committed decision is sent down to nodes or reported up to the root.

use crate::effects::{Effects, ToNode};
use crate::links::{NodeSide, RootSide};
use crate::placed::Placed;
use crate::state::{ClusterState, Now, Settings};
use crate::summary::{Reported, Site};
use crate::{ClusterConfig, ClusterError};
use canopy_store::{Durability, Op, Precondition, Store, StoreExt};
use canopy_tier::child::{self, Uplink};
use canopy_tier::parent::{Downlink, TierService};
use canopy_tier::pb;
use canopy_tier::probe::Prober;
use canopy_tier::sealing::SealingKey;
use canopy_tier::unix_ms;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, watch};

const INSTANCES: &str = "/instances/";
/// The operator's node settings, as the root last sent them (kept while the root is away).
const NODE_SETTINGS: &str = "/config/nodes";

/// How often the summary is compared with what the root last heard (only changes are sent):
/// a lower rate than node heartbeats, since the root plans coarsely.
const MEMBERSHIP_PERIOD: Duration = Duration::from_secs(2);
/// Least time between two membership reports triggered by joins and losses.
const MEMBERSHIP_DEBOUNCE: Duration = Duration::from_millis(250);
/// How often nodes get a fresh sample of peers to probe.
const PEERS_PERIOD: Duration = Duration::from_secs(30);
/// How often soft-constraint violations are checked against their convergence time.
const CONVERGENCE_PERIOD: Duration = Duration::from_secs(1);

pub struct Cluster {
    pub(crate) config: ClusterConfig,
    store: Arc<dyn Store>,
    /// Seals the instances' secret values at rest.
    sealing: SealingKey,
    /// Held across a step's commit, so effects are committed in the order they were decided.
    state: Mutex<ClusterState>,
    downlinks: std::sync::Mutex<BTreeMap<String, Downlink>>,
    uplink: Uplink,
    outbox: std::sync::Mutex<Option<child::Outbox>>,
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
    /// Its nodes' tokens, certificates and revocations, under its intermediate CA (none in
    /// a cluster whose nodes link in cleartext, as in tests and simulations).
    pub(crate) enrolment: OnceLock<Arc<canopy_tier::trust::Enrolment>>,
    pub(crate) metrics: crate::metrics::ClusterMetrics,
}

fn now() -> Now {
    Now {
        at: std::time::Instant::now(),
        unix_ms: unix_ms(OffsetDateTime::now_utc()),
    }
}

impl Cluster {
    /// Opens the cluster over its own store, recovering the instances it had placed; secrets
    /// are sealed under a key that lives as long as the process (tests).
    pub async fn open(
        config: ClusterConfig,
        store: Arc<dyn Store>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        Cluster::open_sealed(config, store, SealingKey::ephemeral()).await
    }

    /// [`Cluster::open`] with the data dir's sealing key.
    pub async fn open_sealed(
        config: ClusterConfig,
        store: Arc<dyn Store>,
        sealing: SealingKey,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let (records, _) = store.list_json::<Placed>(INSTANCES).await?;
        let settings = Settings {
            name: config.name.clone(),
            node_deadline: config.node_timing.deadline,
            carbon_g_per_kwh: config.carbon_g_per_kwh,
            probe_port: None,
        };
        let mut placed: Vec<Placed> = records.into_iter().map(|(_, placed, _)| placed).collect();
        crate::sealed::recover(&*store, &sealing, &mut placed).await?;
        let mut state = ClusterState::recover(settings, placed, now());
        if let Some((node_settings, _)) = store.get_json(NODE_SETTINGS).await? {
            state.node_settings = node_settings;
        }
        let (uplink, outbox) = child::uplink();
        let metrics = crate::metrics::ClusterMetrics::new(&config.name);
        Ok(Arc::new(Cluster {
            config,
            store,
            sealing,
            state: Mutex::new(state),
            downlinks: std::sync::Mutex::new(BTreeMap::new()),
            uplink,
            outbox: std::sync::Mutex::new(Some(outbox)),
            reported: Mutex::new(Reported::default()),
            membership_changed: Notify::new(),
            lan: OnceLock::new(),
            wan: OnceLock::new(),
            remote_peers: std::sync::Mutex::new(Vec::new()),
            enrolment: OnceLock::new(),
            metrics,
        }))
    }

    /// Takes part in latency probing (the callers run the probers' loops): nodes get the
    /// `lan` prober's port among their peers and it probes them in turn; the `wan` prober,
    /// reached by other clusters at `advertised`, probes the clusters the root names.
    pub fn attach_probers(&self, lan: Arc<Prober>, wan: Arc<Prober>, advertised: String) {
        let _ = self.lan.set(lan);
        let _ = self.wan.set((wan, advertised));
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// This cluster's series (`--metrics-listen`, or the root's `/metrics` under `canopy up`).
    pub fn exposition(self: &Arc<Self>) -> crate::metrics::ClusterExposition {
        crate::metrics::ClusterExposition(self.clone())
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

    /// Runs the link to the root and the cluster's clocks until `stop` turns true.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), ClusterError> {
        let clocks = tokio::spawn(self.clone().tick(stop.clone()));
        let outbox = self.outbox.lock().ok().and_then(|mut o| o.take());
        let result = match (&self.config.root, outbox) {
            (Some(root), Some(outbox)) => child::run(
                root.clone(),
                self.config.credentials.clone(),
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
        clocks.abort();
        result
    }

    /// One step of the core at the current time, its effects executed before the next step.
    pub(crate) async fn step<R>(
        &self,
        decide: impl FnOnce(&mut ClusterState, Now, &mut Effects) -> R,
    ) -> R {
        let mut state = self.state.lock().await;
        if state.settings.probe_port.is_none() {
            state.settings.probe_port = self.lan_port();
        }
        let mut effects = Effects::default();
        let result = decide(&mut state, now(), &mut effects);
        self.metrics.placed(&effects.placements);
        self.execute(effects).await;
        result
    }

    /// Reads the core without deciding anything.
    pub(crate) async fn read<R>(&self, look: impl FnOnce(&mut ClusterState, Now) -> R) -> R {
        look(&mut *self.state.lock().await, now())
    }

    /// Commits the writes, then sends. A failed commit sends nothing: the root never hears
    /// of a placement this cluster could forget, and nodes are never asked to run one.
    async fn execute(&self, effects: Effects) {
        if effects.is_empty() {
            return;
        }
        if !effects.writes.is_empty() {
            let durability = if effects.decided {
                Durability::Immediate
            } else {
                Durability::Deferred
            };
            let mut ops = Vec::with_capacity(effects.writes.len());
            for (id, placed) in &effects.writes {
                ops.extend(crate::sealed::op(&self.sealing, id, placed.as_ref()));
                let key = format!("{INSTANCES}{id}");
                ops.push(match placed {
                    Some(placed) => match serde_json::to_vec(placed) {
                        Ok(value) => Op::Put {
                            key,
                            value,
                            precondition: Precondition::None,
                        },
                        Err(e) => {
                            tracing::error!(instance = %id, error = %e, "cannot encode instance");
                            continue;
                        }
                    },
                    None => Op::Delete {
                        key,
                        precondition: Precondition::None,
                    },
                });
            }
            let count = ops.len();
            if let Err(e) = self.store.txn_with(ops, durability).await {
                tracing::error!(instances = count, error = %e, "cannot persist instances; nothing sent");
                return;
            }
        }
        if !effects.to_nodes.is_empty() {
            let downlinks = self.downlinks.lock().unwrap_or_else(|p| p.into_inner());
            for (node, message) in effects.to_nodes {
                let Some(link) = downlinks.get(&node) else {
                    continue;
                };
                match message {
                    ToNode::Assign(assignment) => link.assign(&assignment),
                    ToNode::Revoke(revocation) => link.revoke(&revocation),
                    ToNode::Peers(peers) => link.peers(peers),
                    ToNode::Routes(routes) => link.routes(routes),
                };
            }
        }
        for status in &effects.up {
            self.uplink.report(status);
        }
        if effects.membership_changed {
            self.membership_changed.notify_one();
        }
    }

    /// Takes the root's node settings: persisted (a restarted cluster keeps them while the
    /// root is away), then applied.
    pub(crate) async fn configure(
        &self,
        settings: BTreeMap<String, canopy_model::OperatorSettings>,
    ) {
        match serde_json::to_vec(&settings) {
            Ok(value) => {
                let op = Op::Put {
                    key: NODE_SETTINGS.to_string(),
                    value,
                    precondition: Precondition::None,
                };
                if let Err(e) = self.store.txn(vec![op]).await {
                    tracing::error!(error = %e, "cannot persist the node settings");
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the node settings"),
        }
        self.step(|state, _, fx| state.configure(settings, fx))
            .await;
    }

    pub(crate) fn link_node(&self, node: &str, downlink: Downlink) {
        self.downlinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(node.to_string(), downlink);
    }

    pub(crate) fn forget_downlink(&self, node: &str) -> Option<Downlink> {
        let mut downlinks = self.downlinks.lock().unwrap_or_else(|p| p.into_inner());
        downlinks.remove(node)
    }

    pub(crate) fn downlink(&self, node: &str) -> Option<Downlink> {
        let downlinks = self.downlinks.lock().unwrap_or_else(|p| p.into_inner());
        downlinks.get(node).cloned()
    }

    pub(crate) async fn unlink_node(&self, node: &str, link: u64) {
        if self.state.lock().await.node_goodbye(node, link) {
            let mut downlinks = self.downlinks.lock().unwrap_or_else(|p| p.into_inner());
            if downlinks.get(node).is_some_and(|d| d.link() == link) {
                downlinks.remove(node);
            }
        }
    }

    fn lan_port(&self) -> Option<u16> {
        self.lan.get()?.local_addr().ok().map(|a| a.port())
    }

    fn site(&self) -> Site {
        Site {
            labels: self.config.labels.clone(),
            location: self.config.location,
            lan: self.lan.get().map(|p| p.position().coordinate),
            wan: self.wan.get().map(|(p, advertised)| {
                let position = p.position();
                (position.coordinate, position.error, advertised.clone())
            }),
        }
    }

    /// The summary and every node, as the root should see them.
    pub(crate) async fn summary(&self) -> (pb::Member, Vec<pb::Member>) {
        let site = self.site();
        self.read(|state, now| state.summary(&site, now)).await
    }

    /// What changed since the root last heard; everything when `complete` (a new link).
    pub(crate) async fn membership_delta(&self, complete: bool) -> Option<pb::Membership> {
        let (summary, nodes) = self.summary().await;
        self.reported.lock().await.delta(summary, nodes, complete)
    }

    async fn report_membership_changes(&self) {
        if let Some(membership) = self.membership_delta(false).await {
            self.uplink.membership(membership);
        }
    }

    pub(crate) fn set_remote_peers(&self, peers: Vec<pb::Peer>) {
        *self.remote_peers.lock().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// Refreshes every node's peers, and this cluster's own probers'.
    pub(crate) async fn refresh_peers(&self) {
        let candidates = self
            .step(|state, _, fx| {
                let candidates = state.probe_candidates();
                state.refresh_peers(&candidates, fx);
                candidates
            })
            .await;
        if let Some(lan) = self.lan.get() {
            use rand::seq::IndexedRandom;
            lan.set_peers(
                candidates
                    .choose_multiple(&mut rand::rng(), crate::peers::PEERS_PER_NODE)
                    .filter_map(|p| p.address.parse().ok())
                    .collect(),
            );
        }
        if let Some((wan, _)) = self.wan.get() {
            let remote = self.remote_peers.lock().unwrap_or_else(|p| p.into_inner());
            wan.set_peers(
                remote
                    .iter()
                    .filter_map(|p| p.address.parse().ok())
                    .collect(),
            );
        }
    }

    /// The cluster's clocks: failure detection, membership reports, peers, moves.
    async fn tick(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let deadline = self.config.node_timing.deadline;
        let mut detector = tokio::time::interval(Duration::from_millis(200).min(deadline / 4));
        let mut membership = tokio::time::interval(MEMBERSHIP_PERIOD);
        let mut peers = tokio::time::interval(PEERS_PERIOD);
        let mut convergence = tokio::time::interval(CONVERGENCE_PERIOD);
        loop {
            tokio::select! {
                _ = detector.tick() => {
                    self.step(|state, now, fx| {
                        state.detect_lost_nodes(now, fx);
                        state.refresh_routes(now, fx);
                    })
                    .await;
                }
                _ = membership.tick() => self.report_membership_changes().await,
                _ = self.membership_changed.notified() => {
                    tokio::time::sleep(MEMBERSHIP_DEBOUNCE).await;
                    self.report_membership_changes().await;
                    membership.reset();
                }
                _ = peers.tick() => self.refresh_peers().await,
                _ = convergence.tick() => {
                    self.step(|state, now, fx| state.converge(now, fx)).await;
                }
                _ = canopy_tier::stopped(&mut stop) => return,
            }
        }
    }

    /// Every instance's status, for the root's hello.
    pub(crate) async fn statuses(&self) -> Vec<canopy_tier::StatusReport> {
        self.read(|state, _| {
            let name = state.name().to_string();
            state.instances.values().map(|p| p.status(&name)).collect()
        })
        .await
    }
}
