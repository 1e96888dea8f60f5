//! A member of a foreign orchestrator (the Docker Engine a `--driver docker` cluster drives)
//! links to its cluster only while the orchestrator answers: when it stops answering the
//! member goes silent, so the cluster's failure detector marks it lost after its deadline
//! and the root replaces what it ran, as for any node that is gone; when the orchestrator
//! answers again the member links again and its hello tells the cluster what still runs.

use crate::{Agent, ClusterSide, NodeError};
use canopy_tier::child;
use std::sync::Arc;
use tokio::sync::watch;

impl Agent {
    /// [`Agent::run`], with the link up only while `reachable` is true.
    pub async fn run_while(
        self: Arc<Self>,
        mut reachable: watch::Receiver<bool>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let Some(outbox) = self.outbox.lock().ok().and_then(|mut o| o.take()) else {
            return Ok(());
        };
        let side = Arc::new(ClusterSide(self.clone()));
        loop {
            // The guard `wait_for` returns is not held: it is not `Send`.
            let answers = async { reachable.wait_for(|up| *up).await.is_ok() };
            tokio::select! {
                answered = answers => if !answered {
                    return Ok(());
                },
                _ = canopy_tier::stopped(&mut stop) => return Ok(()),
            }
            tracing::info!(node = %self.config.name, "orchestrator reachable: linking to the cluster");
            let (unlink, unlinked) = watch::channel(false);
            let link = child::run(
                self.config.cluster.clone(),
                self.config.credentials.clone(),
                side.clone(),
                outbox.clone(),
                unlinked,
            );
            tokio::pin!(link);
            let silent = async {
                let _ = reachable.wait_for(|up| !*up).await;
            };
            let stopping = tokio::select! {
                ended = &mut link => return ended.map_err(NodeError::from),
                _ = silent => false,
                _ = canopy_tier::stopped(&mut stop) => true,
            };
            let _ = unlink.send(true);
            let _ = link.await;
            if stopping {
                return Ok(());
            }
            tracing::warn!(node = %self.config.name, "orchestrator unreachable: silent until it answers");
        }
    }
}
