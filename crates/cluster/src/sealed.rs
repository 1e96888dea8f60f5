//! The secret values of the cluster's instances at rest: each instance's values sealed
//! under the cluster's key in a record of its own (`/secrets/instances/<id>`), beside the
//! instance's record, which never holds them. The seal is bound to the instance and its
//! generation, so a record left from an older assignment never opens for a newer one.

use crate::placed::Placed;
use canopy_store::{Op, Precondition, Store, StoreExt};
use canopy_tier::sealing::{Sealed, SealingKey};
use serde::{Deserialize, Serialize};

pub(crate) const SECRETS: &str = "/secrets/instances/";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealedRecord {
    generation: u64,
    sealed: Sealed,
}

fn context(id: &str, generation: u64) -> String {
    format!("{SECRETS}{id}@{generation}")
}

/// The write that keeps `placed`'s values (none when it has none), or forgets them with it.
pub(crate) fn op(key: &SealingKey, id: &str, placed: Option<&Placed>) -> Option<Op> {
    let store_key = format!("{SECRETS}{id}");
    let Some(placed) = placed else {
        return Some(Op::Delete {
            key: store_key,
            precondition: Precondition::None,
        });
    };
    if placed.secrets.is_empty() {
        return None;
    }
    let sealed = match key.seal_values(&context(id, placed.generation), &placed.secrets) {
        Ok(sealed) => sealed,
        Err(e) => {
            tracing::error!(instance = %id, error = %e, "cannot seal the instance's secrets");
            return None;
        }
    };
    let record = SealedRecord {
        generation: placed.generation,
        sealed,
    };
    let value = serde_json::to_vec(&record).ok()?;
    Some(Op::Put {
        key: store_key,
        value,
        precondition: Precondition::None,
    })
}

/// Gives each recovered instance the values kept for its generation.
pub(crate) async fn recover(
    store: &dyn Store,
    key: &SealingKey,
    placed: &mut [Placed],
) -> Result<(), canopy_store::StoreError> {
    let (records, _) = store.list_json::<SealedRecord>(SECRETS).await?;
    for (store_key, record, _) in records {
        let id = store_key.strip_prefix(SECRETS).unwrap_or_default();
        let Some(instance) = placed
            .iter_mut()
            .find(|p| p.id == id && p.generation == record.generation)
        else {
            continue;
        };
        match key.open_values(&context(id, record.generation), &record.sealed) {
            Ok(values) => instance.secrets = values,
            Err(e) => tracing::warn!(instance = %id, error = %e, "the instance's secrets are lost"),
        }
    }
    Ok(())
}
