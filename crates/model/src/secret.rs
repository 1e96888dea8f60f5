//! Secrets: named, namespaced key → value sets whose values are write-only. The API takes
//! values in and shows only names, keys and metadata; descriptors reference secrets by name
//! (`imagePullSecret`, `secretEnv`), so a descriptor never holds a value.

use crate::error::FieldError;
use crate::validate::validate_dns_label;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

pub const KIND_SECRET: &str = "Secret";
/// Keys per secret.
pub const MAX_SECRET_KEYS: usize = 64;
/// Bytes of all values of one secret together.
pub const MAX_SECRET_BYTES: usize = 256 * 1024;
/// Characters of one key (Kubernetes' limit for a secret's keys).
pub const MAX_SECRET_KEY_LEN: usize = 253;

/// What `PUT /api/v1/namespaces/{ns}/secrets/{name}` takes: the whole set of keys (a key
/// left out is removed). `Debug` shows the keys only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretInput {
    /// Key → value (UTF-8 text). Write-only: never shown again.
    pub data: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretInput")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("labels", &self.labels)
            .finish()
    }
}

impl SecretInput {
    /// Every problem with the name and the data, each naming its field.
    pub fn validate(&self, name: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Err(reason) = validate_dns_label(name) {
            errors.push(FieldError::new("metadata.name", reason));
        }
        if self.data.is_empty() {
            errors.push(FieldError::new("data", "must hold at least one key"));
        }
        if self.data.len() > MAX_SECRET_KEYS {
            errors.push(FieldError::new(
                "data",
                format!(
                    "must hold at most {MAX_SECRET_KEYS} keys, got {}",
                    self.data.len()
                ),
            ));
        }
        let bytes: usize = self.data.values().map(String::len).sum();
        if bytes > MAX_SECRET_BYTES {
            errors.push(FieldError::new(
                "data",
                format!("values must total at most {MAX_SECRET_BYTES} bytes, got {bytes}"),
            ));
        }
        for key in self.data.keys() {
            if let Err(reason) = validate_secret_key(key) {
                errors.push(FieldError::new(format!("data[{key:?}]"), reason));
            }
        }
        for (key, value) in &self.labels {
            if validate_dns_label(key).is_err() || value.len() > crate::MAX_LABEL_VALUE_LEN {
                errors.push(FieldError::new(
                    format!("labels[{key:?}]"),
                    "keys must be DNS labels and values at most 63 characters",
                ));
            }
        }
        errors
    }
}

/// Why `key` cannot name a value of a secret (letters, digits, `-`, `_`, `.`; also a file
/// name), or `Ok`.
pub fn validate_secret_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_SECRET_KEY_LEN {
        return Err(format!(
            "key must be at most {MAX_SECRET_KEY_LEN} characters"
        ));
    }
    if key == "." || key == ".." {
        return Err("key must not be '.' or '..'".into());
    }
    match key
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(bad) => Err(format!(
            "key may hold letters, digits, '-', '_' and '.' only, found {bad:?}"
        )),
        None => Ok(()),
    }
}

/// A secret as the API shows it: names, keys and metadata, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretInfo {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// The keys it holds, sorted.
    pub keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

/// Secret values in memory: secret name → key → value. It has no `Serialize` (nothing can
/// write it out by accident) and its `Debug` shows names and keys only; it leaves a
/// process only sealed ([`SecretValues::to_plaintext`] is for the sealing) or over a tier link.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretValues(BTreeMap<String, BTreeMap<String, Vec<u8>>>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: BTreeMap<&String, Vec<&String>> = self
            .0
            .iter()
            .map(|(name, data)| (name, data.keys().collect()))
            .collect();
        f.debug_tuple("SecretValues").field(&keys).finish()
    }
}

impl SecretValues {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, secret: &str, key: &str, value: Vec<u8>) {
        self.0
            .entry(secret.to_string())
            .or_default()
            .insert(key.to_string(), value);
    }

    pub fn get(&self, secret: &str, key: &str) -> Option<&[u8]> {
        self.0.get(secret)?.get(key).map(Vec::as_slice)
    }

    /// Every key → value of one secret.
    pub fn secret(&self, secret: &str) -> Option<&BTreeMap<String, Vec<u8>>> {
        self.0.get(secret)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &BTreeMap<String, Vec<u8>>)> {
        self.0.iter()
    }

    /// The values as bytes to seal; [`SecretValues::from_plaintext`] reads them back.
    pub fn to_plaintext(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).unwrap_or_default()
    }

    pub fn from_plaintext(bytes: &[u8]) -> Result<SecretValues, String> {
        serde_json::from_slice(bytes)
            .map(SecretValues)
            .map_err(|e| format!("unreadable secret values: {e}"))
    }
}

impl FromIterator<(String, BTreeMap<String, Vec<u8>>)> for SecretValues {
    fn from_iter<I: IntoIterator<Item = (String, BTreeMap<String, Vec<u8>>)>>(iter: I) -> Self {
        SecretValues(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_value() {
        let mut values = SecretValues::default();
        values.insert("regcred", "password", b"hunter2".to_vec());
        let input = SecretInput {
            data: [("password".to_string(), "hunter2".to_string())].into(),
            labels: BTreeMap::new(),
        };
        for shown in [format!("{values:?}"), format!("{input:?}")] {
            assert!(shown.contains("password"), "{shown}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
    }

    #[test]
    fn plaintext_round_trips() {
        let mut values = SecretValues::default();
        values.insert("a", "k", vec![0, 255, 10]);
        let back = SecretValues::from_plaintext(&values.to_plaintext());
        assert_eq!(back, Ok(values));
        assert!(SecretValues::from_plaintext(b"[").is_err());
    }

    #[test]
    fn input_errors_name_the_field() {
        let input = SecretInput {
            data: [("../x".to_string(), "v".to_string())].into(),
            labels: BTreeMap::new(),
        };
        let errors = input.validate("Bad_Name");
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["metadata.name", "data[\"../x\"]"]);
        let empty = SecretInput {
            data: BTreeMap::new(),
            labels: BTreeMap::new(),
        };
        assert_eq!(empty.validate("ok")[0].path, "data");
    }
}
