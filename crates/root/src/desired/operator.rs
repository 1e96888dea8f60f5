//! What the operator set on nodes and clusters (cordon, labels), persisted apart from what
//! the clusters report, and merged over it whenever a node or cluster is read.

use super::{CAS_ATTEMPTS, Desired, RootError, to_json};
use crate::keys;
use canopy_model::{ClusterInfo, NodeInfo, OperatorSettings};
use canopy_store::{Op, Precondition, StoreError, StoreExt};
use std::collections::BTreeMap;

impl Desired {
    /// The settings of every node of `cluster` that has any, by node name.
    pub async fn node_settings_of(
        &self,
        cluster: &str,
    ) -> Result<BTreeMap<String, OperatorSettings>, RootError> {
        let prefix = format!("{}{cluster}/", keys::OPERATOR_NODES);
        let (entries, _) = self.store.list_json::<OperatorSettings>(&prefix).await?;
        Ok(entries
            .into_iter()
            .filter_map(|(key, settings, _)| {
                Some((key.strip_prefix(&prefix)?.to_string(), settings))
            })
            .collect())
    }

    /// The settings of every node that has any, by (cluster, node).
    pub async fn all_node_settings(
        &self,
    ) -> Result<BTreeMap<(String, String), OperatorSettings>, RootError> {
        let (entries, _) = self
            .store
            .list_json::<OperatorSettings>(keys::OPERATOR_NODES)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(key, settings, _)| {
                let rest = key.strip_prefix(keys::OPERATOR_NODES)?;
                let (cluster, node) = rest.split_once('/')?;
                Some(((cluster.to_string(), node.to_string()), settings))
            })
            .collect())
    }

    /// The settings of every cluster that has any, by name.
    pub async fn cluster_settings(&self) -> Result<BTreeMap<String, OperatorSettings>, RootError> {
        let (entries, _) = self
            .store
            .list_json::<OperatorSettings>(keys::OPERATOR_CLUSTERS)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(key, settings, _)| {
                Some((
                    key.strip_prefix(keys::OPERATOR_CLUSTERS)?.to_string(),
                    settings,
                ))
            })
            .collect())
    }

    /// Changes the settings at `key` with compare-and-swap (`change` says whether it changed
    /// anything); settings left empty are deleted. The settings afterwards.
    pub(crate) async fn change_settings(
        &self,
        key: &str,
        mut change: impl FnMut(&mut OperatorSettings) -> bool,
    ) -> Result<OperatorSettings, RootError> {
        for _ in 0..CAS_ATTEMPTS {
            let found = self.store.get_json::<OperatorSettings>(key).await?;
            let (mut settings, precondition) = match found {
                Some((settings, revision)) => (settings, Precondition::ModRevision(revision)),
                None => (OperatorSettings::default(), Precondition::Absent),
            };
            if !change(&mut settings) {
                return Ok(settings);
            }
            let op = if settings.is_empty() {
                Op::Delete {
                    key: key.to_string(),
                    precondition,
                }
            } else {
                Op::Put {
                    key: key.to_string(),
                    value: to_json(&settings)?,
                    precondition,
                }
            };
            match self.store.txn(vec![op]).await {
                Ok(_) => return Ok(settings),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RootError::Conflict(format!(
            "{key} is being changed concurrently"
        )))
    }
}

/// A node as the API shows it: the operator's settings over what its cluster reported.
pub fn with_node_settings(mut node: NodeInfo, settings: Option<&OperatorSettings>) -> NodeInfo {
    if let Some(settings) = settings {
        node.labels = settings.merged_labels(&node.labels);
        node.unschedulable = settings.unschedulable;
        node.operator = settings.clone();
    }
    node
}

/// A cluster as the API shows it: the operator's labels over its own.
pub fn with_cluster_settings(
    mut cluster: ClusterInfo,
    settings: Option<&OperatorSettings>,
) -> ClusterInfo {
    if let Some(settings) = settings {
        cluster.labels = settings.merged_labels(&cluster.labels);
        cluster.operator = settings.clone();
    }
    cluster
}
