//! The clusters and nodes of the federation, as the store holds them, with the operator's
//! settings merged over what they reported.

use super::operator::{with_cluster_settings, with_node_settings};
use super::{Desired, RootError, not_found};
use crate::keys;
use canopy_model::{ClusterInfo, NodeInfo};
use canopy_store::StoreExt;

impl Desired {
    pub async fn list_clusters(&self) -> Result<Vec<ClusterInfo>, RootError> {
        let (clusters, _) = self.store.list_json::<ClusterInfo>(keys::CLUSTERS).await?;
        let settings = self.cluster_settings().await?;
        Ok(clusters
            .into_iter()
            .map(|(_, c, _)| {
                let settings = settings.get(&c.name);
                with_cluster_settings(c, settings)
            })
            .collect())
    }

    pub async fn get_cluster(&self, name: &str) -> Result<ClusterInfo, RootError> {
        let (cluster, _) = self
            .store
            .get_json::<ClusterInfo>(&keys::cluster(name))
            .await?
            .ok_or_else(|| not_found("cluster", name.to_string()))?;
        let settings = self.cluster_settings().await?;
        Ok(with_cluster_settings(cluster, settings.get(name)))
    }

    pub async fn list_nodes(&self, cluster: Option<&str>) -> Result<Vec<NodeInfo>, RootError> {
        let (nodes, _) = self.store.list_json::<NodeInfo>(keys::NODES).await?;
        let settings = self.all_node_settings().await?;
        Ok(nodes
            .into_iter()
            .map(|(_, n, _)| n)
            .filter(|n| cluster.is_none_or(|c| c == n.cluster))
            .map(|n| {
                let settings = settings.get(&(n.cluster.clone(), n.name.clone()));
                with_node_settings(n, settings)
            })
            .collect())
    }

    pub async fn get_node(&self, cluster: &str, name: &str) -> Result<NodeInfo, RootError> {
        let (node, _) = self
            .store
            .get_json::<NodeInfo>(&keys::node(cluster, name))
            .await?
            .ok_or_else(|| not_found("node", format!("{cluster}/{name}")))?;
        let settings = self.node_settings_of(cluster).await?;
        Ok(with_node_settings(node, settings.get(name)))
    }
}
