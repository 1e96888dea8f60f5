//! `direct` pinning: to a cluster (root level) and/or to a list of nodes (cluster level).

use super::Reason;
use crate::{ClusterView, NodeView};
use canopy_model::DirectPlacement;

pub fn node(direct: &DirectPlacement, node: &NodeView) -> Result<(), Reason> {
    if direct.nodes.is_empty() || direct.nodes.contains(&node.name) {
        Ok(())
    } else {
        Err("not the pinned node")
    }
}

pub fn cluster(direct: &DirectPlacement, cluster: &ClusterView) -> Result<(), Reason> {
    match &direct.cluster {
        Some(pinned) if *pinned != cluster.name => Err("not the pinned cluster"),
        _ => Ok(()),
    }
}
