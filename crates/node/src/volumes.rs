//! The node's named volumes as its cluster sees them: the ones it holds go up in its hello
//! and, when they changed, with the next heartbeat (placement prefers a node holding the
//! volumes an instance uses); and their end: when the last instance of a deleted application
//! leaves the node, the application's volumes go with it.

use crate::Agent;
use crate::lifecycle::Local;
use canopy_model::APPLICATION_DELETED;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

impl Agent {
    fn held_volumes(&self) -> BTreeSet<String> {
        canopy_runtime::held_node_volumes(&self.config.data)
    }

    /// All the volumes it holds, for a hello: its cluster starts from these.
    pub(crate) fn volumes_for_hello(&self) -> Vec<String> {
        let held = self.held_volumes();
        let listed = held.iter().cloned().collect();
        *self.volumes_sent.lock().unwrap_or_else(|p| p.into_inner()) = Some(held);
        listed
    }

    /// All the volumes it holds when they differ from what it last said; `None` otherwise.
    pub(crate) fn volumes_changed(&self) -> Option<Vec<String>> {
        if !self.volumes_dirty.swap(false, Ordering::Relaxed) {
            return None;
        }
        let held = self.held_volumes();
        let mut sent = self.volumes_sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.as_ref() == Some(&held) {
            return None;
        }
        let listed = held.iter().cloned().collect();
        *sent = Some(held);
        Some(listed)
    }

    /// After `removed` left the node, stopped for `reason`: the last instance of a deleted
    /// application takes the application's volumes with it. `others`: those still here.
    pub(crate) async fn after_removal(
        &self,
        removed: &Local,
        reason: &str,
        others: &BTreeMap<String, Local>,
    ) {
        let workload = &removed.record.workload;
        let owner = (&workload.namespace, &workload.application);
        let still_here = others
            .values()
            .any(|l| (&l.record.workload.namespace, &l.record.workload.application) == owner);
        if reason != APPLICATION_DELETED || still_here {
            return;
        }
        let (data, namespace, application) = (
            self.config.data.clone(),
            workload.namespace.clone(),
            workload.application.clone(),
        );
        let removal = tokio::task::spawn_blocking(move || {
            canopy_runtime::remove_node_volumes(&data, &namespace, &application)
        })
        .await;
        self.volumes_dirty.store(true, Ordering::Relaxed);
        match removal {
            Ok(Ok(())) => tracing::info!(
                namespace = %workload.namespace,
                application = %workload.application,
                "removed the volumes of a deleted application"
            ),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot remove a deleted application's volumes")
            }
            Err(e) => tracing::warn!(error = %e, "removing a deleted application's volumes"),
        }
    }
}
