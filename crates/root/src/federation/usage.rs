//! Measured usage as clusters report it with their nodes: kept in memory (it changes often
//! and a restarted root hears it again), per node, and read into the instance objects.

use super::Federation;
use canopy_model::{Instance, InstanceState, Usage};
use canopy_tier::{instance_usage_from_pb, pb};
use std::collections::BTreeMap;

/// (cluster, node) → instance id → usage.
pub(super) type UsageByNode = BTreeMap<(String, String), BTreeMap<String, Usage>>;

impl Federation {
    /// Keeps the usage of the nodes a cluster reported (`complete`: the others are gone).
    pub(super) fn record_usage(
        &self,
        cluster: &str,
        nodes: &[pb::Member],
        removed: &[String],
        complete: bool,
    ) {
        let mut usage = self.usage.write().unwrap_or_else(|p| p.into_inner());
        if complete {
            usage.retain(|(c, _), _| c != cluster);
        }
        for name in removed {
            usage.remove(&(cluster.to_string(), name.clone()));
        }
        for node in nodes {
            usage.insert(
                (cluster.to_string(), node.name.clone()),
                instance_usage_from_pb(&node.instance_usage),
            );
        }
    }

    /// What `instance` uses, while it runs.
    pub fn usage_of(&self, instance: &Instance) -> Option<Usage> {
        if instance.state != InstanceState::Running {
            return None;
        }
        let key = (instance.cluster.clone()?, instance.node.clone()?);
        let usage = self.usage.read().unwrap_or_else(|p| p.into_inner());
        usage.get(&key)?.get(&instance.id).copied()
    }

    /// `instances` with their usage filled in.
    pub fn with_usage(&self, mut instances: Vec<Instance>) -> Vec<Instance> {
        for instance in &mut instances {
            instance.usage = self.usage_of(instance);
        }
        instances
    }
}
