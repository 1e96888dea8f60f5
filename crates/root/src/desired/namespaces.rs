//! Namespaces: the tenants applications live in, each trusted or not. Only a trusted
//! namespace may run what escapes a container's isolation (root, privileged mode, extra
//! capabilities, the `process` runtime); `canopy_model::privilege_errors` decides what that
//! is. An application names an existing namespace, as in Kubernetes and Nomad, which refuse
//! a namespace nobody created: a typo then fails loudly instead of founding a new tenant
//! nobody granted.

use super::{Desired, RootError, not_found, to_json};
use crate::keys;
use canopy_model::quota::{Requests, over_quota};
use canopy_model::{Application, DEFAULT_NAMESPACE, DescriptorError, Quota, privilege_errors};
use canopy_store::{Precondition, StoreError, StoreExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What the root keeps of a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NamespaceRecord {
    trusted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    quota: Option<Quota>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
}

/// A namespace as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Namespace {
    pub name: String,
    /// Whether its applications may run as root, privileged, with extra capabilities or
    /// with the `process` runtime.
    pub trusted: bool,
    /// What its applications may request in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// The body of `PUT /api/v1/namespaces/{name}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Allow what escapes a container's isolation; false when absent.
    #[serde(default)]
    pub trusted: bool,
    /// CPU, memory and instances its applications may request in total; unbounded when
    /// absent. Checked when an application is applied or scaled.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "quota_object"
    )]
    pub quota: Option<Quota>,
}

/// A quota only as a JSON object (or null): serde alone would also read a struct from an
/// array.
fn quota_object<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Quota>, D::Error> {
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(object) => serde_json::from_value(serde_json::Value::Object(object))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

fn view(name: &str, record: NamespaceRecord) -> Namespace {
    Namespace {
        name: name.to_string(),
        trusted: record.trusted,
        quota: record.quota,
        created_at: record.created_at,
    }
}

impl Desired {
    /// Creates the namespace or sets its trust; says whether it was created.
    pub async fn put_namespace(
        &self,
        name: &str,
        spec: NamespaceSpec,
    ) -> Result<(Namespace, bool), RootError> {
        let key = keys::namespace(name);
        let existing = self.store.get_json::<NamespaceRecord>(&key).await?;
        let created = existing.is_none();
        let errors = spec
            .quota
            .map(|quota| canopy_model::quota::quota_errors("quota", &quota))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(RootError::Invalid(DescriptorError { errors }));
        }
        let record = NamespaceRecord {
            trusted: spec.trusted,
            quota: spec.quota,
            created_at: existing.map_or_else(OffsetDateTime::now_utc, |(r, _)| r.created_at),
        };
        self.store
            .put(&key, to_json(&record)?, Precondition::None)
            .await?;
        Ok((view(name, record), created))
    }

    /// Creates `name` untrusted unless it exists; an existing one keeps its trust.
    pub async fn ensure_namespace(&self, name: &str) -> Result<(), RootError> {
        let record = NamespaceRecord {
            trusted: false,
            quota: None,
            created_at: OffsetDateTime::now_utc(),
        };
        match self
            .store
            .put(
                &keys::namespace(name),
                to_json(&record)?,
                Precondition::Absent,
            )
            .await
        {
            Ok(_) | Err(StoreError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_namespace(&self, name: &str) -> Result<Namespace, RootError> {
        let (record, _) = self
            .store
            .get_json::<NamespaceRecord>(&keys::namespace(name))
            .await?
            .ok_or_else(|| not_found("namespace", name.to_string()))?;
        Ok(view(name, record))
    }

    pub async fn list_namespaces(&self) -> Result<Vec<Namespace>, RootError> {
        let (records, _) = self
            .store
            .list_json::<NamespaceRecord>(keys::NAMESPACES)
            .await?;
        Ok(records
            .into_iter()
            .map(|(key, record, _)| view(key.trim_start_matches(keys::NAMESPACES), record))
            .collect())
    }

    /// Deletes an empty namespace; `default` stays, as in Kubernetes.
    pub async fn delete_namespace(&self, name: &str) -> Result<Namespace, RootError> {
        let namespace = self.get_namespace(name).await?;
        if name == DEFAULT_NAMESPACE {
            return Err(RootError::Conflict(format!(
                "namespace {DEFAULT_NAMESPACE} cannot be deleted"
            )));
        }
        let applications = self.records(Some(name)).await?;
        if !applications.is_empty() {
            return Err(RootError::Conflict(format!(
                "namespace {name} still holds {} application(s): delete them first",
                applications.len()
            )));
        }
        self.store
            .delete(&keys::namespace(name), Precondition::None)
            .await?;
        Ok(namespace)
    }

    /// Whether `app` may live in its namespace: the namespace exists (else not found) and
    /// allows every privilege the application asks for (else forbidden, naming each field).
    /// Within its namespace's quota too (else forbidden, with the numbers).
    pub(super) async fn admit(&self, app: &Application) -> Result<(), RootError> {
        let namespace = self.get_namespace(&app.metadata.namespace).await?;
        let mut errors = privilege_errors(app, namespace.trusted);
        if let Some(quota) = &namespace.quota {
            errors.extend(self.quota_errors(quota, app).await?);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RootError::Forbidden(DescriptorError { errors }))
        }
    }

    /// Whether `app` fits its namespace's quota beside the namespace's other applications.
    pub(super) async fn admit_quota(&self, app: &Application) -> Result<(), RootError> {
        let namespace = self.get_namespace(&app.metadata.namespace).await?;
        let errors = match &namespace.quota {
            Some(quota) => self.quota_errors(quota, app).await?,
            None => Vec::new(),
        };
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RootError::Forbidden(DescriptorError { errors }))
        }
    }

    async fn quota_errors(
        &self,
        quota: &Quota,
        app: &Application,
    ) -> Result<Vec<canopy_model::FieldError>, RootError> {
        let others = self
            .records(Some(&app.metadata.namespace))
            .await?
            .iter()
            .filter(|r| r.application.metadata.name != app.metadata.name)
            .fold(Requests::default(), |sum, r| {
                sum.plus(Requests::of(&r.application))
            });
        Ok(over_quota(quota, others, app))
    }
}
