//! Instances: listing and reading them, changing them with compare-and-swap, and the spec of
//! the service each belongs to.

use super::{CAS_ATTEMPTS, Desired, RootError, not_found, to_json};
use crate::keys;
use canopy_model::{Instance, InstanceState, ServiceSpec};
use canopy_store::{Durability, Op, Precondition, Revision, StoreError, StoreExt};

/// Which instances to list.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub namespace: Option<String>,
    pub application: Option<String>,
    pub service: Option<String>,
    pub state: Option<InstanceState>,
}

impl InstanceFilter {
    fn matches(&self, instance: &Instance) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.namespace, &instance.namespace)
            && eq(&self.application, &instance.application)
            && eq(&self.service, &instance.service)
            && self.state.is_none_or(|s| s == instance.shown_state())
    }
}

impl Desired {
    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, RootError> {
        let (instances, _) = self.store.list_json::<Instance>(keys::INSTANCES).await?;
        Ok(instances
            .into_iter()
            .map(|(_, instance, _)| instance)
            .filter(|i| filter.matches(i))
            .collect())
    }

    pub async fn get_instance(&self, id: &str) -> Result<Instance, RootError> {
        self.store
            .get_json::<Instance>(&keys::instance(id))
            .await?
            .map(|(instance, _)| instance)
            .ok_or_else(|| not_found("instance", id.to_string()))
    }

    /// Changes one instance with compare-and-swap, retrying on concurrent changes. `change`
    /// returns whether it changed anything; the instance as stored afterwards is returned.
    pub async fn update_instance(
        &self,
        id: &str,
        change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        self.update_instance_with(id, Durability::Immediate, change)
            .await
    }

    /// [`Desired::update_instance`] for what a cluster observed (state, node, pid): deferred
    /// durability, since a restarted root learns it again from every cluster's hello.
    pub async fn observe_instance(
        &self,
        id: &str,
        change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        self.update_instance_with(id, Durability::Deferred, change)
            .await
    }

    /// [`Desired::update_instance`] over many instances in one transaction (one commit): a
    /// scheduling pass places hundreds at once. Returns the instances found, changed or not
    /// (those deleted left out). If another write changed one of them meanwhile, each is
    /// updated on its own instead, so `change` may see an instance twice.
    pub async fn update_instances(
        &self,
        ids: &[&str],
        mut change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Vec<Instance>, RootError> {
        let mut ops = Vec::with_capacity(ids.len());
        let mut after = Vec::with_capacity(ids.len());
        for id in ids {
            let key = keys::instance(id);
            let Some((mut instance, revision)) = self.store.get_json::<Instance>(&key).await?
            else {
                continue;
            };
            let change = change(&mut instance);
            ops.extend(instance_op(key, &instance, revision, change)?);
            if change != InstanceChange::Delete {
                after.push(instance);
            }
        }
        match self.store.txn_with(ops, Durability::Immediate).await {
            Ok(_) => Ok(after),
            Err(StoreError::Conflict { .. }) => {
                let mut after = Vec::with_capacity(ids.len());
                for id in ids {
                    after.extend(self.update_instance(id, &mut change).await?);
                }
                Ok(after)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn update_instance_with(
        &self,
        id: &str,
        durability: Durability,
        mut change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        let key = keys::instance(id);
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut instance, revision)) = self.store.get_json::<Instance>(&key).await?
            else {
                return Ok(None);
            };
            let change = change(&mut instance);
            let Some(op) = instance_op(key.clone(), &instance, revision, change)? else {
                return Ok(Some(instance));
            };
            let after = (change != InstanceChange::Delete).then_some(instance);
            match self.store.txn_with(vec![op], durability).await {
                Ok(_) => return Ok(after),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RootError::Conflict(format!(
            "instance {id} is being changed concurrently"
        )))
    }

    /// The spec of the service an instance belongs to, if it still exists.
    pub async fn service_spec(
        &self,
        instance: &Instance,
    ) -> Result<Option<ServiceSpec>, RootError> {
        self.spec_of(
            &instance.namespace,
            &instance.application,
            &instance.service,
        )
        .await
    }

    /// The spec of service `service` of an application, if both still exist.
    pub async fn spec_of(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<Option<ServiceSpec>, RootError> {
        match self.record(namespace, application).await {
            Ok((record, _)) => Ok(record
                .application
                .spec
                .services
                .into_iter()
                .find(|s| s.name == service)),
            Err(RootError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The write an [`InstanceChange`] of `instance` (read at `revision`) makes, if any.
fn instance_op(
    key: String,
    instance: &Instance,
    revision: Revision,
    change: InstanceChange,
) -> Result<Option<Op>, RootError> {
    let precondition = Precondition::ModRevision(revision);
    Ok(match change {
        InstanceChange::None => None,
        InstanceChange::Write => Some(Op::Put {
            key,
            value: to_json(instance)?,
            precondition,
        }),
        InstanceChange::Delete => Some(Op::Delete { key, precondition }),
    })
}

/// What an [`Desired::update_instance`] closure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceChange {
    None,
    Write,
    Delete,
}
