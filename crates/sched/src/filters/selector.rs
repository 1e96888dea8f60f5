//! Label selectors (In, NotIn, Exists, DoesNotExist), on node labels or cluster labels.
//! At cluster level a node selector reads the union of node labels and refuses only when
//! no node can carry a required label (NotIn and DoesNotExist always may hold somewhere).

use super::Reason;
use crate::{ClusterView, NodeView};
use canopy_model::{LabelOperator, LabelRequirement};
use std::collections::BTreeMap;

const NODE: Reason = "node(s) didn't match node selector";
const CLUSTER: Reason = "cluster(s) didn't match cluster selector";

/// Whether `labels` satisfy every requirement.
pub fn matches(requirements: &[LabelRequirement], labels: &BTreeMap<String, String>) -> bool {
    requirements.iter().all(|r| {
        let value = labels.get(&r.key);
        match r.operator {
            LabelOperator::In => value.is_some_and(|v| r.values.contains(v)),
            LabelOperator::NotIn => !value.is_some_and(|v| r.values.contains(v)),
            LabelOperator::Exists => value.is_some(),
            LabelOperator::DoesNotExist => value.is_none(),
        }
    })
}

pub fn node(requirements: &[LabelRequirement], node: &NodeView) -> Result<(), Reason> {
    if matches(requirements, &node.labels) {
        Ok(())
    } else {
        Err(NODE)
    }
}

pub fn cluster(requirements: &[LabelRequirement], cluster: &ClusterView) -> Result<(), Reason> {
    if matches(requirements, &cluster.labels) {
        Ok(())
    } else {
        Err(CLUSTER)
    }
}

pub fn cluster_nodes(
    requirements: &[LabelRequirement],
    cluster: &ClusterView,
) -> Result<(), Reason> {
    let Some(union) = &cluster.node_labels else {
        return Ok(());
    };
    let possible = requirements.iter().all(|r| {
        let values = union.get(&r.key);
        match r.operator {
            LabelOperator::In => values.is_some_and(|vs| r.values.iter().any(|v| vs.contains(v))),
            LabelOperator::Exists => values.is_some(),
            LabelOperator::NotIn | LabelOperator::DoesNotExist => true,
        }
    });
    if possible { Ok(()) } else { Err(NODE) }
}
