//! The secret values an assignment carries: the references of the service resolved against
//! its namespace's secrets when the root sends it. A reference to a missing secret (or key)
//! holds the instance back as `Pending` with the reason, until the secret exists.

use super::{Federation, transition};
use crate::desired::{InstanceChange, RootError};
use canopy_model::{Instance, InstanceState, SecretValues, ServiceSpec, UnresolvedSecret};
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use time::OffsetDateTime;

impl Federation {
    /// The values `spec`'s references need in `namespace`, or why they cannot be had.
    pub(super) async fn secrets_for(
        &self,
        namespace: &str,
        spec: &ServiceSpec,
    ) -> Result<Result<SecretValues, UnresolvedSecret>, RootError> {
        let mut found = BTreeMap::new();
        for reference in spec.secret_references() {
            if let Entry::Vacant(slot) = found.entry(reference.secret) {
                let data = self.desired.secret_data(namespace, slot.key()).await?;
                slot.insert(data);
            }
        }
        Ok(spec.resolve_secrets(namespace, |name| found.get(name).cloned().flatten()))
    }

    /// Keeps `instance` pending, saying why (written once per new reason).
    pub(super) async fn hold_back(
        &self,
        instance: &Instance,
        reason: String,
    ) -> Result<(), RootError> {
        self.desired
            .update_instance(&instance.id, |i| {
                if i.state != InstanceState::Pending || i.reason.as_deref() == Some(reason.as_str())
                {
                    return InstanceChange::None;
                }
                transition(
                    i,
                    InstanceState::Pending,
                    reason.clone(),
                    OffsetDateTime::now_utc(),
                )
            })
            .await?;
        Ok(())
    }
}
