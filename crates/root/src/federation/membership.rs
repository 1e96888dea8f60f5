//! Clusters and their nodes as the clusters report them, kept in the store for the API.

use super::Federation;
use crate::desired::RootError;
use crate::keys;
use canopy_model::{ClusterInfo, MemberState, NetworkCoordinate, NodeInfo};
use canopy_store::{Op, Precondition, StoreExt};
use canopy_tier::{from_unix_ms, location_from_pb, pb, resources, runtimes_from_pb};
use std::collections::BTreeSet;
use time::OffsetDateTime;

impl Federation {
    /// Keeps `/clusters/{name}` and `/nodes/{name}/...` in step with what the cluster reports:
    /// every node when `complete` (others are gone), else the changed ones and the `removed`.
    pub(super) async fn record_membership(
        &self,
        cluster: &str,
        summary: &pb::Member,
        nodes: &[pb::Member],
        removed: &[String],
        complete: bool,
    ) -> Result<(), RootError> {
        self.record_usage(cluster, nodes, removed, complete);
        self.record_traffic(cluster, &summary.traffic);
        let store = self.desired.store();
        let now = OffsetDateTime::now_utc();
        let key = format!("{}{cluster}", keys::CLUSTERS);
        let existing = store.get_json::<ClusterInfo>(&key).await?;
        let info = ClusterInfo {
            name: cluster.to_string(),
            state: MemberState::Ready,
            location: location_from_pb(summary),
            labels: summary.labels.clone().into_iter().collect(),
            nodes: summary.node_count,
            capacity: resources(summary.capacity.as_ref()),
            allocated: resources(summary.allocated.as_ref()),
            operator: Default::default(),
            coordinate: network_coordinate(summary.coordinate.as_ref()),
            joined_at: existing.as_ref().map_or(now, |(c, _)| c.joined_at),
            last_seen: now,
        };
        // One transaction (one commit) for the cluster and all its nodes.
        let mut ops = vec![put(key, &info)?];

        let prefix = format!("{}{cluster}/", keys::NODES);
        // A delta names what changed; only a complete report needs what is stored.
        let known = if complete {
            store.list_json::<NodeInfo>(&prefix).await?.0
        } else {
            Vec::new()
        };
        let reported: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
        for (key, node, _) in &known {
            if !reported.contains(node.name.as_str()) {
                ops.push(Op::Delete {
                    key: key.clone(),
                    precondition: Precondition::None,
                });
            }
        }
        for name in removed {
            ops.push(Op::Delete {
                key: format!("{prefix}{name}"),
                precondition: Precondition::None,
            });
        }
        for node in nodes {
            let info = NodeInfo {
                name: node.name.clone(),
                cluster: cluster.to_string(),
                state: if node.ready {
                    MemberState::Ready
                } else {
                    MemberState::Unreachable
                },
                arch: node.arch.clone(),
                runtimes: runtimes_from_pb(&node.runtimes),
                sandboxes: canopy_tier::sandboxes_from_pb(&node.sandboxes),
                kvm: node.kvm,
                location: location_from_pb(node),
                labels: node.labels.clone().into_iter().collect(),
                capacity: resources(node.capacity.as_ref()),
                allocated: resources(node.allocated.as_ref()),
                instances: node.instance_count,
                unschedulable: false,
                operator: Default::default(),
                usage: node
                    .usage
                    .as_ref()
                    .map(|u| canopy_tier::usage_from_pb(Some(u))),
                coordinate: network_coordinate(node.coordinate.as_ref()),
                rtt_to_cluster_ms: (node.cluster_rtt_ms > 0.0).then_some(node.cluster_rtt_ms),
                joined_at: from_unix_ms(node.joined_at_ms),
                last_seen: from_unix_ms(node.last_seen_ms),
            };
            let key = format!("{prefix}{}", node.name);
            let unchanged = known
                .iter()
                .any(|(k, old, _)| *k == key && same_node(old, &info));
            if !unchanged {
                ops.push(put(key, &info)?);
            }
        }
        store.txn(ops).await?;
        Ok(())
    }
}

fn network_coordinate(c: Option<&pb::Coordinate>) -> Option<NetworkCoordinate> {
    c.map(|c| NetworkCoordinate {
        x: c.x,
        y: c.y,
        height: c.height,
        error: c.error,
    })
}

fn put<T: serde::Serialize>(key: String, value: &T) -> Result<Op, RootError> {
    let value = serde_json::to_vec(value)
        .map_err(|e| RootError::Store(canopy_store::StoreError::Backend(e.to_string())))?;
    Ok(Op::Put {
        key,
        value,
        precondition: Precondition::None,
    })
}

/// Equal but for `last_seen`, which changes on every report and is not worth a write.
fn same_node(a: &NodeInfo, b: &NodeInfo) -> bool {
    NodeInfo {
        last_seen: b.last_seen,
        ..a.clone()
    } == *b
}
