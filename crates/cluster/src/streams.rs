//! Session streams through the cluster: the root asks for a stream to an instance on one of
//! this cluster's nodes; the cluster asks that node for one over its link and relays the two
//! into each other.

use crate::cluster::Cluster;
use canopy_tier::pb;
use canopy_tier::streams::{End, Pipe, splice};

impl Cluster {
    pub(crate) async fn relay_stream(&self, open: pb::OpenStream, up: Pipe) {
        let Some(downlink) = self.downlink(&open.node) else {
            let message = format!(
                "node {:?} is not linked to cluster {}",
                open.node,
                self.name()
            );
            up.end(End::error("unavailable", message)).await;
            return;
        };
        match downlink.open_stream(open).await {
            Ok(down) => splice(up, down).await,
            Err(e) => up.end(End::error("unavailable", e.to_string())).await,
        }
    }
}
