//! Spread / anti-affinity: at most `maxPerNode` instances of the service per node and
//! `maxPerCluster` per cluster, counted from the request's context (no context: none yet).

use super::Reason;
use crate::prepare::Prepared;
use crate::{Candidate, ClusterView, NodeView};
use canopy_model::SpreadConstraint;

fn count<C: Candidate>(p: &Prepared, candidate: &C) -> u32 {
    p.request.context.map_or(0, |c| candidate.instances(c))
}

pub fn node(p: &Prepared, spread: &SpreadConstraint, node: &NodeView) -> Result<(), Reason> {
    match spread.max_per_node {
        Some(max) if count(p, node) >= max => Err("max instances per node reached"),
        _ => Ok(()),
    }
}

pub fn cluster(
    p: &Prepared,
    spread: &SpreadConstraint,
    cluster: &ClusterView,
) -> Result<(), Reason> {
    let here = count(p, cluster);
    if spread.max_per_cluster.is_some_and(|max| here >= max) {
        return Err("max instances per cluster reached");
    }
    // Every node full of this service: only decidable when the node count is known.
    if let (Some(max), Some(nodes)) = (spread.max_per_node, cluster.node_count)
        && u64::from(here) >= u64::from(max) * u64::from(nodes)
    {
        return Err("max instances per node reached on every node");
    }
    Ok(())
}
