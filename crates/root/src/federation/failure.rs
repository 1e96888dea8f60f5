//! Cluster failure: a cluster silent past the deadline has its instances replaced in other
//! clusters; a returning cluster's stale copies are stopped when its hello is diffed.

use super::{Federation, transition};
use crate::desired::{InstanceChange, RootError};
use crate::keys;
use canopy_model::{ClusterInfo, InstanceState, MemberState, WhenGone};
use canopy_store::{Precondition, StoreExt};
use time::OffsetDateTime;

impl Federation {
    /// Clusters silent past the deadline: their instances are lost and placed elsewhere.
    pub(super) async fn detect_failures(&self) {
        let lost: Vec<String> = {
            let mut links = self.links.lock().await;
            let deadline = self.timing.deadline;
            let lost: Vec<String> = links
                .clusters
                .iter()
                .filter(|(_, c)| c.ready && c.last_seen.elapsed() > deadline)
                .map(|(name, _)| name.clone())
                .collect();
            for name in &lost {
                if let Some(entry) = links.clusters.get_mut(name) {
                    entry.ready = false;
                }
            }
            lost
        };
        for cluster in lost {
            tracing::warn!(%cluster, "cluster unreachable; replacing its instances elsewhere");
            if let Err(e) = self.replace_instances_of(&cluster).await {
                tracing::error!(%cluster, error = %e, "cannot replace the instances of a lost cluster");
            }
        }
    }

    async fn replace_instances_of(&self, cluster: &str) -> Result<(), RootError> {
        self.set_cluster_state(cluster, MemberState::Unreachable)
            .await?;
        let now = OffsetDateTime::now_utc();
        self.instances.synced().await?;
        for instance in self.instances.on_cluster(cluster) {
            if instance.cluster.as_deref() != Some(cluster)
                || (instance.state.is_final() && !instance.is_stopping())
            {
                continue;
            }
            self.desired
                .update_instance(&instance.id, |i| {
                    if i.cluster.as_deref() != Some(cluster) {
                        return InstanceChange::None;
                    }
                    if i.when_gone() == WhenGone::Ends {
                        // Nothing left to stop from here; a returning cluster is diffed.
                        return InstanceChange::Delete;
                    }
                    if transition(
                        i,
                        InstanceState::Lost,
                        format!("cluster {cluster} unreachable"),
                        now,
                    ) == InstanceChange::None
                    {
                        return InstanceChange::None;
                    }
                    i.cluster = None;
                    i.node = None;
                    i.pid = None;
                    i.ready = false;
                    transition(
                        i,
                        InstanceState::Pending,
                        "replacing an instance lost with its cluster",
                        now,
                    );
                    InstanceChange::Write
                })
                .await?;
        }
        self.wake();
        Ok(())
    }

    async fn set_cluster_state(&self, cluster: &str, state: MemberState) -> Result<(), RootError> {
        let key = format!("{}{cluster}", keys::CLUSTERS);
        let store = self.desired.store();
        if let Some((mut info, revision)) = store.get_json::<ClusterInfo>(&key).await? {
            info.state = state;
            store
                .put_json(&key, &info, Precondition::ModRevision(revision))
                .await?;
        }
        Ok(())
    }
}
