//! Deleting instances as `kubectl delete pod` deletes a Deployment's pod: the instance is
//! stopped and, since its service still wants that many replicas, reconciliation creates a
//! replacement at once (beside the stopping one, not after it).

use super::{Desired, InstanceChange, RootError, not_found};
use canopy_model::{Instance, InstanceState};
use std::collections::BTreeSet;
use time::OffsetDateTime;

impl Desired {
    /// Stops each of `ids` (a `reason` for its events) and creates their replacements; the
    /// instances as they were marked (an unknown id is an error before anything changes,
    /// one already stopping is left as it is).
    pub async fn replace_instances(
        &self,
        ids: &[String],
        reason: &str,
    ) -> Result<Vec<Instance>, RootError> {
        for id in ids {
            self.get_instance(id).await?;
        }
        let now = OffsetDateTime::now_utc();
        let mut marked = Vec::new();
        let mut applications = BTreeSet::new();
        for id in ids {
            let mut before = None;
            let after = self
                .update_instance(id, |instance| {
                    before = Some(instance.clone());
                    retire(instance, reason, now)
                })
                .await?;
            let Some(instance) = after.or(before) else {
                return Err(not_found("instance", id.clone()));
            };
            applications.insert((instance.namespace.clone(), instance.application.clone()));
            marked.push(instance);
        }
        for (namespace, application) in applications {
            self.reconcile_application(&namespace, &application).await?;
        }
        Ok(marked)
    }
}

/// What deleting does to one instance: one that never reached a cluster is forgotten, one
/// that did is stopping until its node confirms.
fn retire(instance: &mut Instance, reason: &str, now: OffsetDateTime) -> InstanceChange {
    match instance.state {
        InstanceState::Terminating | InstanceState::Terminated => InstanceChange::None,
        _ if instance.cluster.is_none() && instance.node.is_none() => InstanceChange::Delete,
        _ => match instance.transition(InstanceState::Terminating, reason, now) {
            Ok(()) => InstanceChange::Write,
            Err(_) => InstanceChange::Delete,
        },
    }
}
