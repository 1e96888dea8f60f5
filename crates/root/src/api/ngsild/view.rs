//! The whole continuum as entities, read from the store, and which of them a caller sees:
//! infrastructure (domains, elements) everyone, services and components the namespaces the
//! caller may read, as `/api/v1` shows them.

use super::mapping::{self, Scoped};
use crate::auth::Namespaces;
use crate::desired::{Desired, InstanceFilter, RootError};

/// Every entity, sorted by id (stable pages).
pub async fn continuum(desired: &Desired) -> Result<Vec<Scoped>, RootError> {
    let mut all = Vec::new();
    all.extend(desired.list_clusters().await?.iter().map(mapping::cluster));
    all.extend(desired.list_nodes(None).await?.iter().map(mapping::node));
    all.extend(
        desired
            .list_services(None, None)
            .await?
            .iter()
            .map(mapping::service),
    );
    all.extend(
        desired
            .list_instances(&InstanceFilter::default())
            .await?
            .iter()
            .map(mapping::instance),
    );
    all.sort_by(|a, b| a.entity.id.cmp(&b.entity.id));
    Ok(all)
}

pub fn visible(scoped: &Scoped, readable: &Namespaces) -> bool {
    scoped
        .namespace
        .as_deref()
        .is_none_or(|namespace| readable.contains(namespace))
}
