//! The operator's settings reach the tiers: node settings (cordon, labels) go down each
//! cluster's link as one whole `NodeConfig` on every change and on every hello, so a cluster
//! that was away converges; cluster labels stay at the root, where clusters are chosen.
//! Draining is cordoning, then replacing what runs on the node.

use super::Federation;
use crate::desired::{RootError, with_cluster_settings};
use crate::keys;
use canopy_model::{ClusterInfo, Instance, LabelEdit, NodeInfo, OperatorSettings};
use canopy_tier::parent::Downlink;
use std::collections::BTreeMap;

impl Federation {
    /// Reads the cluster settings the scheduler merges into cluster summaries.
    pub async fn load_settings(&self) -> Result<(), RootError> {
        let settings = self.desired.cluster_settings().await?;
        *self
            .cluster_settings
            .write()
            .unwrap_or_else(|p| p.into_inner()) = settings;
        Ok(())
    }

    /// The settings of every cluster, for placement.
    pub(super) fn cluster_settings(&self) -> BTreeMap<String, OperatorSettings> {
        self.cluster_settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Applies label edits to cluster `name` (which must be known).
    pub async fn label_cluster(
        &self,
        name: &str,
        edits: &[LabelEdit],
    ) -> Result<ClusterInfo, RootError> {
        let cluster = self.desired.get_cluster(name).await?;
        let settings = self
            .desired
            .change_settings(&keys::cluster_settings(name), |s| s.edit_labels(edits))
            .await?;
        self.cluster_settings
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), settings.clone());
        self.wake();
        Ok(with_cluster_settings(cluster, Some(&settings)))
    }

    /// Changes the settings of node `cluster/name` (which must be known) and tells its
    /// cluster; the node afterwards.
    pub async fn configure_node(
        &self,
        cluster: &str,
        name: &str,
        change: impl FnMut(&mut OperatorSettings) -> bool,
    ) -> Result<NodeInfo, RootError> {
        self.desired.get_node(cluster, name).await?;
        self.desired
            .change_settings(&keys::node_settings(cluster, name), change)
            .await?;
        let downlink = self.links.lock().await.downlink(cluster).cloned();
        if let Some(downlink) = downlink {
            self.send_node_config(cluster, &downlink).await?;
        }
        self.wake();
        self.desired.get_node(cluster, name).await
    }

    /// Cordons node `cluster/name`, then stops everything it runs, each instance replaced
    /// at once (the replacement is placed while the old copy stops; the cordon went down the
    /// cluster's link first, so the replacement never lands on this node). The node and the
    /// instances stopped.
    pub async fn drain(
        &self,
        cluster: &str,
        name: &str,
    ) -> Result<(NodeInfo, Vec<Instance>), RootError> {
        let node = self
            .configure_node(cluster, name, |s| {
                let changed = !s.unschedulable;
                s.unschedulable = true;
                changed
            })
            .await?;
        self.instances.synced().await?;
        let ids: Vec<String> = self
            .instances
            .on_cluster(cluster)
            .into_iter()
            .filter(|i| i.node.as_deref() == Some(name) && i.state.is_live())
            .filter(|i| i.state != canopy_model::InstanceState::Terminating)
            .map(|i| i.id)
            .collect();
        let reason = format!("node {cluster}/{name} drained");
        let stopped = self.desired.replace_instances(&ids, &reason).await?;
        self.wake();
        Ok((node, stopped))
    }

    /// Sends `cluster` the settings of all its nodes.
    pub(super) async fn send_node_config(
        &self,
        cluster: &str,
        downlink: &Downlink,
    ) -> Result<(), RootError> {
        let settings = self.desired.node_settings_of(cluster).await?;
        downlink.configure(canopy_tier::node_config_to_pb(&settings));
        Ok(())
    }
}
