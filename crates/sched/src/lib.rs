//! Placement, pure and deterministic: the same views in give the same choice out.
//!
//! Two levels, one shape (Nomad's feasibility-then-rank, kube-scheduler's explanations):
//! - [`place_on_node`]: a cluster picks a node from its exact per-node view.
//! - [`place_on_cluster`]: the root picks a cluster from cluster summaries.
//!
//! Every candidate first passes the filters (any failure rules it out with a reason), then the
//! feasible ones are ranked by the scorer. When nothing fits, [`Explanation`] says why, in the
//! form "0/5 nodes are available: 3 insufficient memory, 2 runtime wasm not supported".

mod explain;
mod filters;
mod score;

pub use explain::Explanation;

use canopy_model::{GeoPoint, ResourceAmounts, RuntimeKind, ServiceSpec};
use std::collections::BTreeMap;

/// What is being placed.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub spec: &'a ServiceSpec,
    /// Candidates that already refused this instance (they are skipped, with that reason).
    pub refused: &'a [String],
}

/// One node as its cluster sees it. `allocated` includes reservations of instances assigned
/// but not yet running, so two placements in a row never count the same free space twice.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub name: String,
    pub ready: bool,
    pub arch: String,
    pub runtimes: Vec<RuntimeKind>,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
}

/// One cluster as the root sees it: aggregates, plus the largest free amount of any single
/// node per dimension, so the root can refuse a cluster where no node could fit the instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterView {
    pub name: String,
    pub ready: bool,
    pub arches: Vec<String>,
    pub runtimes: Vec<RuntimeKind>,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
    pub max_node_free: ResourceAmounts,
}

/// Picks the node for `request`, or says why none fits.
pub fn place_on_node(request: &Request, nodes: &[NodeView]) -> Result<usize, Explanation> {
    select(
        nodes,
        "nodes",
        |node| filters::node(request, node),
        |node| score::best_fit(&node.capacity, &node.allocated, &request.spec.resources),
    )
}

/// Picks the cluster for `request`, or says why none fits.
pub fn place_on_cluster(request: &Request, clusters: &[ClusterView]) -> Result<usize, Explanation> {
    select(
        clusters,
        "clusters",
        |cluster| filters::cluster(request, cluster),
        |cluster| {
            score::best_fit(
                &cluster.capacity,
                &cluster.allocated,
                &request.spec.resources,
            )
        },
    )
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

fn select<T>(
    candidates: &[T],
    noun: &'static str,
    feasible: impl Fn(&T) -> Result<(), String>,
    score: impl Fn(&T) -> f64,
) -> Result<usize, Explanation> {
    let mut explanation = Explanation::new(noun, candidates.len());
    let mut best: Option<(usize, f64)> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        match feasible(candidate) {
            Err(reason) => explanation.add(reason),
            Ok(()) => {
                let value = score(candidate);
                // Ties go to the earlier candidate, so the choice is deterministic.
                if best.is_none_or(|(_, top)| value > top) {
                    best = Some((index, value));
                }
            }
        }
    }
    best.map(|(index, _)| index).ok_or(explanation)
}
