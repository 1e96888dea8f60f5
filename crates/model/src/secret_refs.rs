//! How a service references secrets, and the pure resolution of those references against
//! the secrets of its namespace: what the root sends with an assignment, what the node reads.

use crate::descriptor::ServiceSpec;
use crate::error::FieldError;
use crate::secret::{SecretValues, validate_secret_key};
use crate::validate::{key_path, validate_dns_label};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The keys registry credentials are read from in an `imagePullSecret`.
pub const PULL_USERNAME: &str = "username";
pub const PULL_PASSWORD: &str = "password";

/// One key of a secret of the service's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The secret's name.
    pub name: String,
    pub key: String,
}

/// One place a service needs a secret's value: which field, which secret, which keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretReference {
    /// The field's path below the service (`imagePullSecret`, `secretEnv.DB_PASSWORD`).
    pub field: String,
    pub secret: String,
    pub keys: Vec<String>,
}

/// Why a service's references cannot be resolved; the text is the instance's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnresolvedSecret {
    #[error("{field}: secret {secret:?} not found in namespace {namespace:?}")]
    Missing {
        field: String,
        secret: String,
        namespace: String,
    },
    #[error("{field}: secret {secret:?} has no key {key:?}")]
    MissingKey {
        field: String,
        secret: String,
        key: String,
    },
}

impl ServiceSpec {
    /// Every secret the service uses, in field order.
    pub fn secret_references(&self) -> Vec<SecretReference> {
        let mut refs = Vec::new();
        if let Some(name) = &self.image_pull_secret {
            refs.push(SecretReference {
                field: "imagePullSecret".into(),
                secret: name.clone(),
                keys: vec![PULL_USERNAME.into(), PULL_PASSWORD.into()],
            });
        }
        for (var, reference) in &self.secret_env {
            refs.push(SecretReference {
                field: key_path("secretEnv", var),
                secret: reference.name.clone(),
                keys: vec![reference.key.clone()],
            });
        }
        for (i, file) in self.files.iter().enumerate() {
            if let Some(reference) = &file.secret {
                refs.push(SecretReference {
                    field: format!("files[{i}].secret"),
                    secret: reference.name.clone(),
                    keys: vec![reference.key.clone()],
                });
            }
        }
        refs
    }

    /// The values the service's references need, from `lookup` (a secret's key → value by
    /// name, in `namespace`); only the keys referenced are taken.
    pub fn resolve_secrets(
        &self,
        namespace: &str,
        lookup: impl Fn(&str) -> Option<BTreeMap<String, Vec<u8>>>,
    ) -> Result<SecretValues, UnresolvedSecret> {
        let mut values = SecretValues::default();
        for reference in self.secret_references() {
            let Some(data) = lookup(&reference.secret) else {
                return Err(UnresolvedSecret::Missing {
                    field: reference.field,
                    secret: reference.secret,
                    namespace: namespace.to_string(),
                });
            };
            for key in &reference.keys {
                let Some(value) = data.get(key) else {
                    return Err(UnresolvedSecret::MissingKey {
                        field: reference.field,
                        secret: reference.secret,
                        key: key.clone(),
                    });
                };
                values.insert(&reference.secret, key, value.clone());
            }
        }
        Ok(values)
    }

    /// The environment its `secretEnv` asks for, from resolved `values`; a variable whose
    /// value is missing or not UTF-8 is left out.
    pub fn secret_environment(&self, values: &SecretValues) -> BTreeMap<String, String> {
        self.secret_env
            .iter()
            .filter_map(|(var, r)| {
                let value = values.get(&r.name, &r.key)?;
                Some((var.clone(), String::from_utf8(value.to_vec()).ok()?))
            })
            .collect()
    }

    /// Username and password of its `imagePullSecret`, from resolved `values`.
    pub fn pull_credentials(&self, values: &SecretValues) -> Option<(String, String)> {
        let name = self.image_pull_secret.as_deref()?;
        let text = |key| String::from_utf8(values.get(name, key)?.to_vec()).ok();
        Some((text(PULL_USERNAME)?, text(PULL_PASSWORD)?))
    }
}

/// Every problem with the service's secret references, each naming its field under `p`.
pub(crate) fn check_references(p: &str, svc: &ServiceSpec) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(name) = &svc.image_pull_secret {
        if let Err(reason) = validate_dns_label(name) {
            errors.push(FieldError::new(format!("{p}.imagePullSecret"), reason));
        }
        if svc.runtime == crate::RuntimeKind::Process {
            errors.push(FieldError::new(
                format!("{p}.imagePullSecret"),
                "only applies to runtimes that pull images (container, wasm)",
            ));
        }
    }
    if svc.secret_env.len() > crate::MAX_ENV_VARS {
        errors.push(FieldError::new(
            format!("{p}.secretEnv"),
            format!("must have at most {} variables", crate::MAX_ENV_VARS),
        ));
    }
    for (var, reference) in &svc.secret_env {
        let path = key_path(&format!("{p}.secretEnv"), var);
        if var.is_empty() || var.contains(['=', '\0']) {
            errors.push(FieldError::new(
                path.clone(),
                "variable names must be non-empty and hold no '=' or NUL",
            ));
        }
        if svc.env.contains_key(var) {
            errors.push(FieldError::new(
                path.clone(),
                format!("is also set in env.{var}: one source per variable"),
            ));
        }
        if let Err(reason) = validate_dns_label(&reference.name) {
            errors.push(FieldError::new(format!("{path}.name"), reason));
        }
        if let Err(reason) = validate_secret_key(&reference.key) {
            errors.push(FieldError::new(format!("{path}.key"), reason));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> ServiceSpec {
        let spec = serde_json::from_value(serde_json::json!({
            "name": "web", "runtime": "container", "image": "reg/x:1",
            "imagePullSecret": "regcred",
            "secretEnv": {"TOKEN": {"name": "api", "key": "token"}}
        }));
        match spec {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    fn secrets(name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let data: &[(&str, &str)] = match name {
            "regcred" => &[("username", "robot"), ("password", "pw"), ("unused", "x")],
            "api" => &[("token", "t-1")],
            _ => return None,
        };
        Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn references_resolve_to_the_keys_they_name_only() {
        let svc = service();
        let values = svc.resolve_secrets("default", secrets).expect("resolved");
        assert_eq!(values.get("regcred", "password"), Some(&b"pw"[..]));
        assert_eq!(
            values.get("regcred", "unused"),
            None,
            "only referenced keys travel"
        );
        assert_eq!(
            svc.pull_credentials(&values),
            Some(("robot".to_string(), "pw".to_string()))
        );
        assert_eq!(svc.secret_environment(&values)["TOKEN"], "t-1");
    }

    #[test]
    fn a_missing_secret_or_key_is_named_with_its_field() {
        let svc = service();
        let missing = svc.resolve_secrets("ns", |name| match name {
            "regcred" => secrets(name),
            _ => None,
        });
        assert_eq!(
            missing.map_err(|e| e.to_string()),
            Err("secretEnv.TOKEN: secret \"api\" not found in namespace \"ns\"".to_string())
        );
        let no_key = svc.resolve_secrets("ns", |name| match name {
            "regcred" => Some([("username".to_string(), b"robot".to_vec())].into()),
            _ => secrets(name),
        });
        assert_eq!(
            no_key.map_err(|e| e.to_string()),
            Err("imagePullSecret: secret \"regcred\" has no key \"password\"".to_string())
        );
    }

    #[test]
    fn a_service_without_references_needs_nothing() {
        let mut svc = service();
        svc.image_pull_secret = None;
        svc.secret_env.clear();
        let values = svc
            .resolve_secrets("ns", |_| None)
            .expect("nothing to resolve");
        assert!(values.is_empty());
        assert_eq!(svc.pull_credentials(&values), None);
    }
}
