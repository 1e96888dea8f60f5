//! Feasibility: each check rules a candidate out with a short reason, or lets it pass.
//! The full constraint set (selectors, geo, latency, spread, trust) comes with the scheduler
//! work; resources, runtime, architecture and pinning are enforced here now.

use crate::{ClusterView, NodeView, Request, demand, free};
use canopy_model::{ConstraintKind, ResourceAmounts};

pub fn node(request: &Request, node: &NodeView) -> Result<(), String> {
    if request.refused.contains(&node.name) {
        return Err("refused this instance already".into());
    }
    if !node.ready {
        return Err("not ready".into());
    }
    if !node.runtimes.contains(&request.spec.runtime) {
        return Err(format!(
            "runtime {} not supported",
            request.spec.runtime.as_str()
        ));
    }
    for constraint in request.spec.constraints.iter().filter(|c| c.is_hard()) {
        match constraint.kind() {
            Some(ConstraintKind::Arch(arches)) if !arches.contains(&node.arch) => {
                return Err("architecture mismatch".into());
            }
            Some(ConstraintKind::Direct(direct))
                if !direct.nodes.is_empty() && !direct.nodes.contains(&node.name) =>
            {
                return Err("not the pinned node".into());
            }
            _ => {}
        }
    }
    fits(
        &free(&node.capacity, &node.allocated),
        &demand(request.spec),
    )
}

pub fn cluster(request: &Request, cluster: &ClusterView) -> Result<(), String> {
    if request.refused.contains(&cluster.name) {
        return Err("refused this instance already".into());
    }
    if !cluster.ready {
        return Err("not ready".into());
    }
    if !cluster.runtimes.contains(&request.spec.runtime) {
        return Err(format!(
            "runtime {} not supported",
            request.spec.runtime.as_str()
        ));
    }
    for constraint in request.spec.constraints.iter().filter(|c| c.is_hard()) {
        match constraint.kind() {
            Some(ConstraintKind::Arch(arches))
                if !cluster.arches.iter().any(|a| arches.contains(a)) =>
            {
                return Err("architecture mismatch".into());
            }
            Some(ConstraintKind::Direct(direct))
                if direct.cluster.as_ref().is_some_and(|c| *c != cluster.name) =>
            {
                return Err("not the pinned cluster".into());
            }
            Some(ConstraintKind::Clusters(allowed)) if !allowed.contains(&cluster.name) => {
                return Err("not in the allowed clusters".into());
            }
            _ => {}
        }
    }
    // The whole cluster must have room, and so must at least one of its nodes.
    let need = demand(request.spec);
    fits(&free(&cluster.capacity, &cluster.allocated), &need)?;
    fits(&cluster.max_node_free, &need).map_err(|reason| format!("{reason} on any single node"))
}

fn fits(free: &ResourceAmounts, need: &ResourceAmounts) -> Result<(), String> {
    if free.cpu_millis < need.cpu_millis {
        return Err("insufficient cpu".into());
    }
    if free.memory_mib < need.memory_mib {
        return Err("insufficient memory".into());
    }
    if free.gpus < need.gpus {
        return Err("insufficient gpu".into());
    }
    if free.storage_mib < need.storage_mib {
        return Err("insufficient storage".into());
    }
    Ok(())
}
