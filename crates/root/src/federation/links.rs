//! The root's end of the tier protocol: the parent of its clusters.

use super::Federation;
use crate::desired::RootError;
use canopy_tier::parent::{Downlink, Parent};
use canopy_tier::{Hello, Message};
use std::sync::Arc;

/// The root seen from its clusters (it is their parent).
pub struct ClusterSide(pub(super) Arc<Federation>);

impl Parent for ClusterSide {
    async fn on_hello(&self, hello: Hello, downlink: Downlink) -> Result<(), tonic::Status> {
        self.0
            .on_hello(hello, downlink)
            .await
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    async fn on_message(&self, cluster: &str, message: Message) {
        if let Err(e) = self.0.on_message(cluster, message).await {
            tracing::error!(cluster, error = %e, "cannot apply a cluster report");
        }
    }

    async fn on_goodbye(&self, cluster: &str, link: u64) {
        let mut links = self.0.links.lock().await;
        if let Some(entry) = links.clusters.get_mut(cluster)
            && entry.downlink.as_ref().is_some_and(|d| d.link() == link)
        {
            entry.downlink = None;
            tracing::info!(cluster, "cluster link closed");
        }
    }

    fn link_counters(&self, cluster: &str) -> canopy_tier::metrics::LinkCounters {
        (self.0.metrics.links).counters(cluster, canopy_tier::metrics::PeerTier::cluster)
    }
}

impl Federation {
    /// The link to `cluster`, while it is up.
    pub async fn cluster_downlink(&self, cluster: &str) -> Option<Downlink> {
        self.links.lock().await.downlink(cluster).cloned()
    }

    /// Ends a cluster's link (its certificate was revoked, so it cannot link again); it is
    /// then lost like any cluster gone silent, and its instances are placed elsewhere.
    pub async fn end_link(&self, cluster: &str) {
        let links = self.links.lock().await;
        if let Some(downlink) = links.downlink(cluster) {
            downlink.end(tonic::Status::permission_denied(
                "this cluster's certificate was revoked",
            ));
        }
    }

    async fn on_message(&self, cluster: &str, message: Message) -> Result<(), RootError> {
        let downlink = {
            let mut links = self.links.lock().await;
            let Some(entry) = links.clusters.get_mut(cluster) else {
                return Ok(());
            };
            entry.last_seen = tokio::time::Instant::now();
            if !entry.ready {
                entry.ready = true;
                tracing::info!(cluster, "cluster reachable again");
            }
            if let Message::Membership(membership) = &message
                && let Some(summary) = &membership.summary
            {
                entry.summary = summary.clone();
            }
            entry.downlink.clone()
        };
        match message {
            Message::Status(report) => {
                if let Some(downlink) = downlink {
                    self.apply_status(cluster, report, &downlink).await?;
                }
            }
            Message::Membership(membership) => {
                if let Some(summary) = membership.summary {
                    self.record_membership(
                        cluster,
                        &summary,
                        &membership.nodes,
                        &membership.removed,
                        membership.complete,
                    )
                    .await?;
                    self.wake();
                }
            }
            // Clusters do not ask the root for routes (yet: cross-cluster routes are planned).
            Message::Heartbeat(_) | Message::Interest(_) => {}
        }
        Ok(())
    }
}
