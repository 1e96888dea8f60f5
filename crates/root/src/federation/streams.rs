//! Session streams down to a cluster (which relays them to the node running the instance).

use super::Federation;
use canopy_tier::pb;
use canopy_tier::streams::{Pipe, StreamError};

impl Federation {
    /// Asks `cluster` over its link to open a stream for `open`; see
    /// [`canopy_tier::parent::Downlink::open_stream`].
    pub async fn open_stream(
        &self,
        cluster: &str,
        open: pb::OpenStream,
    ) -> Result<Pipe, StreamError> {
        let downlink = self.links.lock().await.downlink(cluster).cloned();
        match downlink {
            Some(downlink) => downlink.open_stream(open).await,
            None => Err(StreamError::LinkDown(cluster.to_string())),
        }
    }
}
