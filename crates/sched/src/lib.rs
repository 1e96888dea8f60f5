//! Placement, pure and deterministic: the same views in give the same choice out.
//!
//! Two levels, one shape (Nomad's feasibility-then-rank-then-select, kube-scheduler's
//! explanations):
//! - [`place_on_node`]: a cluster picks a node from its exact per-node view.
//! - [`place_on_cluster`]: the root picks a cluster from cluster summaries ([`summarise`]).
//!
//! Every candidate first passes the filters ([`filters`]; a failing hard constraint rules it
//! out with a reason), then the feasible ones are ranked by the weighted scorers ([`scorers`],
//! weights from the [`Objective`]). A soft constraint (`rigidness` < 1) never filters: each
//! violation costs `rigidness × PENALTY`, and since `PENALTY` exceeds the whole score range, a
//! candidate that satisfies the soft constraints wins whenever one is feasible.
//! When nothing fits, [`Explanation`] says why, in the form
//! "0/5 nodes are available: 3 insufficient memory, 2 runtime wasm not supported"; when
//! something fits, [`Placement`] says what was chosen and why.
//!
//! GPU model: a node's model is [`NodeView::gpu_model`], or else its label `gpu.model`
//! ([`GPU_MODEL_LABEL`]); a cluster lists the models of its nodes in [`ClusterView::gpu_models`].

mod explain;
pub mod filters;
pub mod geo;
mod objective;
mod prepare;
pub mod scorers;
mod select;
mod summary;
pub mod vivaldi;
mod volumes;

pub use explain::{Explanation, Placement, Violation};
pub use objective::{Objective, Weights};
pub use prepare::Prepared;
pub use select::{
    place_on_cluster, place_on_cluster_explained, place_on_node, place_on_node_explained,
};
pub use summary::summarise;
pub use vivaldi::{Coordinate, Vivaldi};
pub use volumes::VOLUME_PENALTY;

use canopy_model::{GeoPoint, ResourceAmounts, RuntimeKind, Sandbox, ServiceSpec};
use std::collections::{BTreeMap, BTreeSet};

/// Label holding a node's GPU model when [`NodeView::gpu_model`] is not set.
pub const GPU_MODEL_LABEL: &str = "gpu.model";

/// What is being placed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub spec: &'a ServiceSpec,
    /// Candidates that already refused this instance (they are skipped, with that reason).
    pub refused: &'a [String],
    /// Where this service and the others already run (spread, latency to a service).
    pub context: Option<&'a PlacementContext>,
    /// Overrides the service's own `objective` (e.g. for what-if queries).
    pub objective: Option<Objective>,
}

impl<'a> Request<'a> {
    /// A request without context, with the default objective.
    pub fn new(spec: &'a ServiceSpec, refused: &'a [String]) -> Self {
        Request {
            spec,
            refused,
            context: None,
            objective: None,
        }
    }

    /// The override, else the service's objective, else [`Objective::BinPack`].
    pub fn objective(&self) -> Objective {
        self.objective.or(self.spec.objective).unwrap_or_default()
    }
}

/// What the caller knows about running instances, for the constraints that depend on them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacementContext {
    /// Instances of the service being placed, per node name (spread `maxPerNode`).
    pub instances_per_node: BTreeMap<String, u32>,
    /// Instances of the service being placed, per cluster name (spread `maxPerCluster`).
    pub instances_per_cluster: BTreeMap<String, u32>,
    /// Network coordinates of `latency.toPoint` targets, when something near them probes.
    pub point_coordinates: Vec<(GeoPoint, Coordinate)>,
    /// Instances of other services by service name (`latency.toService`).
    pub services: BTreeMap<String, Vec<Endpoint>>,
    /// The named node-local volumes the instance uses (`namespace/application/volume`): the
    /// nodes holding them are preferred.
    pub volumes: Vec<String>,
}

/// Where one instance of another service runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Endpoint {
    pub location: Option<GeoPoint>,
    pub coordinate: Option<Coordinate>,
}

/// One node as its cluster sees it. `allocated` includes reservations of instances assigned
/// but not yet running, so two placements in a row never count the same free space twice.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub ready: bool,
    pub arch: String,
    pub runtimes: Vec<RuntimeKind>,
    /// Sandboxes its containers can run in (a probe sandbox started there).
    pub sandboxes: Vec<Sandbox>,
    /// Its VMs run under KVM (else emulated, or no VMs).
    pub kvm: bool,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
    /// GPU model; falls back to the label [`GPU_MODEL_LABEL`].
    pub gpu_model: Option<String>,
    /// Vivaldi network coordinate.
    pub coordinate: Option<Coordinate>,
    /// Trust score in [0, 1] (1 by default).
    pub trust: f64,
    /// Power draw per core, watts (energy scorer; a typical 10 W when absent).
    pub watts_per_core: Option<f64>,
    /// Grid carbon intensity, gCO2/kWh (energy scorer; 400 when absent).
    pub carbon_g_per_kwh: Option<f64>,
    /// Host ports its instances publish (placed or reserved).
    pub host_ports: BTreeSet<HostPort>,
    /// Cordoned by the operator: what runs there stays, nothing new is placed there.
    pub unschedulable: bool,
    /// The named node-local volumes it holds (`namespace/application/volume`).
    pub volumes: BTreeSet<String>,
}

/// A host port and its protocol: a node publishes each once.
pub type HostPort = (u16, canopy_model::Protocol);

impl Default for NodeView {
    fn default() -> Self {
        NodeView {
            name: String::new(),
            ready: false,
            arch: String::new(),
            runtimes: Vec::new(),
            sandboxes: Vec::new(),
            kvm: false,
            labels: BTreeMap::new(),
            location: None,
            capacity: ResourceAmounts::default(),
            allocated: ResourceAmounts::default(),
            gpu_model: None,
            coordinate: None,
            trust: 1.0,
            watts_per_core: None,
            carbon_g_per_kwh: None,
            host_ports: BTreeSet::new(),
            unschedulable: false,
            volumes: BTreeSet::new(),
        }
    }
}

/// One cluster as the root sees it: aggregates, plus the largest free amount of any single
/// node per dimension, so the root can refuse a cluster where no node could fit the instance.
/// Summary fields left `None` are unknown, and the root then does not filter on them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub name: String,
    pub ready: bool,
    pub arches: Vec<String>,
    pub runtimes: Vec<RuntimeKind>,
    /// Sandboxes some ready node of it offers.
    pub sandboxes: Vec<Sandbox>,
    /// Some ready node of it runs VMs under KVM.
    pub kvm: bool,
    /// The cluster's own labels (cluster selectors).
    pub labels: BTreeMap<String, String>,
    /// Centre of the cluster's nodes (or the cluster's declared location).
    pub location: Option<GeoPoint>,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
    pub max_node_free: ResourceAmounts,
    /// Every node lies within this distance of `location`, km (0: a point).
    pub location_radius_km: f64,
    /// Union of node labels, key → values (node selectors, decided conservatively).
    pub node_labels: Option<BTreeMap<String, BTreeSet<String>>>,
    /// GPU models present on the cluster's nodes.
    pub gpu_models: Option<BTreeSet<String>>,
    /// Number of ready nodes (spread `maxPerNode` at cluster level).
    pub node_count: Option<u32>,
    /// Centroid of node coordinates, with the smallest node height, so that
    /// `estimate_rtt(target) - coordinate_radius_ms` never exceeds any node's estimate.
    pub coordinate: Option<Coordinate>,
    /// Largest planar distance from `coordinate` to a node's coordinate, ms.
    pub coordinate_radius_ms: f64,
    /// Highest trust of a node (some node may meet a trust floor).
    pub trust: f64,
    /// Mean power per core of the nodes, watts.
    pub watts_per_core: Option<f64>,
    /// Mean grid carbon intensity of the nodes, gCO2/kWh.
    pub carbon_g_per_kwh: Option<f64>,
    /// Host ports taken on every ready node (none of them could publish one again).
    pub host_ports_taken_everywhere: Option<BTreeSet<HostPort>>,
}

impl Default for ClusterView {
    fn default() -> Self {
        ClusterView {
            name: String::new(),
            ready: false,
            arches: Vec::new(),
            runtimes: Vec::new(),
            sandboxes: Vec::new(),
            kvm: false,
            labels: BTreeMap::new(),
            location: None,
            capacity: ResourceAmounts::default(),
            allocated: ResourceAmounts::default(),
            max_node_free: ResourceAmounts::default(),
            location_radius_km: 0.0,
            node_labels: None,
            gpu_models: None,
            node_count: None,
            coordinate: None,
            coordinate_radius_ms: 0.0,
            trust: 1.0,
            watts_per_core: None,
            carbon_g_per_kwh: None,
            host_ports_taken_everywhere: None,
        }
    }
}

/// What filters and scorers read from a candidate, node or cluster alike.
pub trait Candidate {
    /// "node" or "cluster".
    const NOUN: &'static str;
    fn name(&self) -> &str;
    fn capacity(&self) -> &ResourceAmounts;
    fn allocated(&self) -> &ResourceAmounts;
    fn location(&self) -> Option<GeoPoint>;
    /// How far from `location` the candidate's machines may be, km.
    fn location_radius_km(&self) -> f64;
    fn coordinate(&self) -> Option<&Coordinate>;
    /// How far from `coordinate` the candidate's machines may be, ms.
    fn coordinate_radius_ms(&self) -> f64;
    fn trust(&self) -> f64;
    fn watts_per_core(&self) -> Option<f64>;
    fn carbon_g_per_kwh(&self) -> Option<f64>;
    /// Instances of the service being placed already on this candidate.
    fn instances(&self, context: &PlacementContext) -> u32;
}

impl Candidate for NodeView {
    const NOUN: &'static str = "node";
    fn name(&self) -> &str {
        &self.name
    }
    fn capacity(&self) -> &ResourceAmounts {
        &self.capacity
    }
    fn allocated(&self) -> &ResourceAmounts {
        &self.allocated
    }
    fn location(&self) -> Option<GeoPoint> {
        self.location
    }
    fn location_radius_km(&self) -> f64 {
        0.0
    }
    fn coordinate(&self) -> Option<&Coordinate> {
        self.coordinate.as_ref()
    }
    fn coordinate_radius_ms(&self) -> f64 {
        0.0
    }
    fn trust(&self) -> f64 {
        self.trust
    }
    fn watts_per_core(&self) -> Option<f64> {
        self.watts_per_core
    }
    fn carbon_g_per_kwh(&self) -> Option<f64> {
        self.carbon_g_per_kwh
    }
    fn instances(&self, context: &PlacementContext) -> u32 {
        context
            .instances_per_node
            .get(&self.name)
            .copied()
            .unwrap_or(0)
    }
}

impl Candidate for ClusterView {
    const NOUN: &'static str = "cluster";
    fn name(&self) -> &str {
        &self.name
    }
    fn capacity(&self) -> &ResourceAmounts {
        &self.capacity
    }
    fn allocated(&self) -> &ResourceAmounts {
        &self.allocated
    }
    fn location(&self) -> Option<GeoPoint> {
        self.location
    }
    fn location_radius_km(&self) -> f64 {
        self.location_radius_km.max(0.0)
    }
    fn coordinate(&self) -> Option<&Coordinate> {
        self.coordinate.as_ref()
    }
    fn coordinate_radius_ms(&self) -> f64 {
        self.coordinate_radius_ms.max(0.0)
    }
    fn trust(&self) -> f64 {
        self.trust
    }
    fn watts_per_core(&self) -> Option<f64> {
        self.watts_per_core
    }
    fn carbon_g_per_kwh(&self) -> Option<f64> {
        self.carbon_g_per_kwh
    }
    fn instances(&self, context: &PlacementContext) -> u32 {
        context
            .instances_per_cluster
            .get(&self.name)
            .copied()
            .unwrap_or(0)
    }
}

/// Free amounts, never negative.
pub fn free(capacity: &ResourceAmounts, allocated: &ResourceAmounts) -> ResourceAmounts {
    ResourceAmounts {
        cpu_millis: capacity.cpu_millis.saturating_sub(allocated.cpu_millis),
        memory_mib: capacity.memory_mib.saturating_sub(allocated.memory_mib),
        gpus: capacity.gpus.saturating_sub(allocated.gpus),
        storage_mib: capacity.storage_mib.saturating_sub(allocated.storage_mib),
    }
}

/// What one instance of `spec` takes from its node.
pub fn demand(spec: &ServiceSpec) -> ResourceAmounts {
    ResourceAmounts {
        cpu_millis: spec.resources.cpu.0,
        memory_mib: spec.resources.memory.0,
        gpus: spec.resources.gpus,
        storage_mib: spec.resources.storage.0,
    }
}

/// Whether an instance that has violated a soft constraint for `violated_since_secs` should be
/// re-placed: only when a candidate satisfying it exists and the violation has lasted at least
/// `convergence_time` seconds. Without a convergence time a soft violation may last forever.
pub fn should_replace(
    violated_since_secs: u64,
    convergence_time: Option<u64>,
    better_candidate_exists: bool,
) -> bool {
    better_candidate_exists && convergence_time.is_some_and(|limit| violated_since_secs >= limit)
}
