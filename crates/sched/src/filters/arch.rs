//! Architecture: the node's architecture, or one of the cluster's, must be allowed.

use super::Reason;
use crate::{ClusterView, NodeView};

const REASON: Reason = "architecture mismatch";

pub fn node(allowed: &[String], node: &NodeView) -> Result<(), Reason> {
    if allowed.contains(&node.arch) {
        Ok(())
    } else {
        Err(REASON)
    }
}

pub fn cluster(allowed: &[String], cluster: &ClusterView) -> Result<(), Reason> {
    if cluster.arches.iter().any(|a| allowed.contains(a)) {
        Ok(())
    } else {
        Err(REASON)
    }
}
