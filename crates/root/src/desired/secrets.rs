//! Secrets of each namespace in the desired state: values sealed under the root's key (the
//! record's key is the associated data), so the store file never holds one in the clear.
//! Reads answer names, keys and metadata; only the scheduler opens values, for assignments.

use super::{Desired, RootError, not_found, to_json};
use crate::keys;
use canopy_model::{API_VERSION, FieldError, KIND_SECRET, SecretInfo, SecretInput, SecretValues};
use canopy_store::{Precondition, StoreExt};
use canopy_tier::sealing::Sealed;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// A secret as the store keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretRecord {
    info: SecretInfo,
    /// Key → value of this one secret, sealed.
    sealed: Sealed,
}

impl Desired {
    /// Creates or replaces secret `name` of `namespace`; whether it was created.
    pub async fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        input: SecretInput,
    ) -> Result<(SecretInfo, bool), RootError> {
        let mut errors = input.validate(name);
        if let Err(reason) = canopy_model::validate_dns_label(namespace) {
            errors.push(FieldError::new("metadata.namespace", reason));
        }
        if !errors.is_empty() {
            return Err(canopy_model::DescriptorError { errors }.into());
        }
        let key = keys::secret(namespace, name);
        let existing = self.store.get_json::<SecretRecord>(&key).await?;
        let now = OffsetDateTime::now_utc();
        let mut values = SecretValues::default();
        for (k, v) in &input.data {
            values.insert(name, k, v.as_bytes().to_vec());
        }
        let info = SecretInfo {
            api_version: API_VERSION.to_string(),
            kind: KIND_SECRET.to_string(),
            name: name.to_string(),
            namespace: namespace.to_string(),
            keys: input.data.keys().cloned().collect(),
            labels: input.labels,
            created_at: existing.as_ref().map_or(now, |(r, _)| r.info.created_at),
            updated_at: now,
        };
        let sealed = self.sealing.seal_values(&key, &values)?;
        let record = SecretRecord {
            info: info.clone(),
            sealed,
        };
        let precondition = match &existing {
            Some((_, revision)) => Precondition::ModRevision(*revision),
            None => Precondition::Absent,
        };
        match self.store.put(&key, to_json(&record)?, precondition).await {
            Ok(_) => Ok((info, existing.is_none())),
            Err(e) if e.is_conflict() => Err(RootError::Conflict(format!(
                "secret {namespace}/{name} changed meanwhile; try again"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_secret(&self, namespace: &str, name: &str) -> Result<SecretInfo, RootError> {
        self.store
            .get_json::<SecretRecord>(&keys::secret(namespace, name))
            .await?
            .map(|(record, _)| record.info)
            .ok_or_else(|| not_found("secret", format!("{namespace}/{name}")))
    }

    /// The secrets of `namespace`, or of every namespace.
    pub async fn list_secrets(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<SecretInfo>, RootError> {
        let prefix = namespace.map_or_else(|| keys::SECRETS.to_string(), keys::secrets_in);
        let (records, _) = self.store.list_json::<SecretRecord>(&prefix).await?;
        Ok(records.into_iter().map(|(_, r, _)| r.info).collect())
    }

    pub async fn delete_secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<SecretInfo, RootError> {
        let info = self.get_secret(namespace, name).await?;
        self.store
            .delete(&keys::secret(namespace, name), Precondition::None)
            .await?;
        Ok(info)
    }

    /// The values of secret `name` (none if it does not exist). Not for the API.
    pub async fn secret_data(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, RootError> {
        let key = keys::secret(namespace, name);
        let Some((record, _)) = self.store.get_json::<SecretRecord>(&key).await? else {
            return Ok(None);
        };
        let values = self.sealing.open_values(&key, &record.sealed)?;
        Ok(values.secret(name).cloned())
    }
}
