//! The calls between services as clusters report them (each cluster's sum over its nodes'
//! proxies): kept in memory per cluster, like usage (a restarted root hears them again).

use super::Federation;
use canopy_tier::pb;
use std::collections::BTreeMap;

/// cluster → its edges, totals.
pub(super) type TrafficByCluster = BTreeMap<String, Vec<pb::TrafficEdge>>;

impl Federation {
    /// Keeps what `cluster` last said its nodes carried.
    pub(super) fn record_traffic(&self, cluster: &str, edges: &[pb::TrafficEdge]) {
        let mut traffic = self.traffic.write().unwrap_or_else(|p| p.into_inner());
        if edges.is_empty() {
            traffic.remove(cluster);
        } else {
            traffic.insert(cluster.to_string(), edges.to_vec());
        }
    }

    /// Every (caller, callee) pair with its totals over all clusters.
    pub fn traffic(&self) -> Vec<pb::TrafficEdge> {
        let traffic = self.traffic.read().unwrap_or_else(|p| p.into_inner());
        canopy_tier::sum_traffic(traffic.values().flatten())
    }
}
