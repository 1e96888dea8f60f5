//! The clusters and nodes of the federation, as the store holds them.

use super::{Desired, RootError};
use crate::keys;
use canopy_model::{ClusterInfo, NodeInfo};
use canopy_store::StoreExt;

impl Desired {
    pub async fn list_clusters(&self) -> Result<Vec<ClusterInfo>, RootError> {
        let (clusters, _) = self.store.list_json::<ClusterInfo>(keys::CLUSTERS).await?;
        Ok(clusters.into_iter().map(|(_, c, _)| c).collect())
    }

    pub async fn list_nodes(&self, cluster: Option<&str>) -> Result<Vec<NodeInfo>, RootError> {
        let (nodes, _) = self.store.list_json::<NodeInfo>(keys::NODES).await?;
        Ok(nodes
            .into_iter()
            .map(|(_, n, _)| n)
            .filter(|n| cluster.is_none_or(|c| c == n.cluster))
            .collect())
    }
}
