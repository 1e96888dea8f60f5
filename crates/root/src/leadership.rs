//! Several roots on one etcd: only the elected leader runs the scheduling loop (placement,
//! retries, failure detection of clusters). A term's loop is aborted the moment leadership
//! ends, not at its next pass.

use std::sync::Arc;

use tokio::sync::watch;

use crate::federation::Federation;

/// Runs `federation`'s loop during each term in which `leader` is true, until `stopping`.
pub(crate) async fn schedule_while_leader(
    federation: Arc<Federation>,
    mut leader: watch::Receiver<bool>,
    mut stopping: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            won = leader.wait_for(|leading| *leading) => if won.is_err() { return },
            _ = canopy_tier::stopped(&mut stopping) => return,
        }
        tracing::info!("leader: scheduling");
        let (end_term, term) = watch::channel(false);
        let mut scheduler = tokio::spawn(federation.clone().run(term));
        let stop = tokio::select! {
            _ = leader.wait_for(|leading| !*leading) => false,
            _ = canopy_tier::stopped(&mut stopping) => true,
            _ = &mut scheduler => false,
        };
        if stop {
            end_term.send_replace(true);
            let _ = scheduler.await;
            return;
        }
        // Lost the term: no further pass may start, and none in progress may finish.
        scheduler.abort();
        let _ = scheduler.await;
        tracing::warn!("no longer the leader: stopped scheduling");
    }
}
