//! Where the parts of a mapped application came from, so that native validation errors are
//! addressed back to the Oakestra fields they stem from.

use crate::error::FieldError;
use std::collections::BTreeMap;

/// Where the parts of one mapped application came from, to point native errors back.
pub(super) struct AppOrigin {
    pub(super) path: String,
    pub(super) services: Vec<ServiceOrigin>,
}

pub(super) struct ServiceOrigin {
    pub(super) path: String,
    /// Native env key → index in `environment`.
    pub(super) env: BTreeMap<String, usize>,
    /// Per native port: the Oakestra `port` entry it came from.
    pub(super) ports: Vec<String>,
    /// Per native constraint: the Oakestra path it came from.
    pub(super) constraints: Vec<String>,
}

impl AppOrigin {
    /// A native validation error, re-addressed to the Oakestra field it stems from.
    pub(super) fn translate(&self, e: FieldError) -> FieldError {
        let native = e.path.as_str();
        let app = &self.path;
        match native {
            "metadata.name" => return FieldError::new(format!("{app}.application_name"), e.reason),
            "metadata.namespace" => {
                return FieldError::new(format!("{app}.application_namespace"), e.reason);
            }
            "spec.services" => return FieldError::new(format!("{app}.microservices"), e.reason),
            _ => {}
        }
        let Some((index, rest)) = native
            .strip_prefix("spec.services[")
            .and_then(|s| s.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
        else {
            return FieldError::new(app.clone(), format!("{native}: {}", e.reason));
        };
        let Some(svc) = self.services.get(index) else {
            return FieldError::new(app.clone(), format!("{native}: {}", e.reason));
        };
        svc.translate(rest, e.reason)
    }
}

impl ServiceOrigin {
    fn translate(&self, rest: &str, reason: String) -> FieldError {
        let p = &self.path;
        let direct = |field: &str| FieldError::new(format!("{p}.{field}"), reason.clone());
        match rest {
            ".name" => return direct("microservice_name"),
            ".image" | ".module" => return direct("code"),
            ".resources.cpu" => return direct("vcpus"),
            ".resources.memory" => return direct("memory"),
            ".resources.gpus" => return direct("vgpus"),
            ".resources.storage" => return direct("storage"),
            _ => {}
        }
        if let Some(tail) = rest.strip_prefix(".command") {
            return FieldError::new(format!("{p}.cmd{tail}"), reason);
        }
        if let Some(tail) = rest.strip_prefix(".args") {
            return FieldError::new(format!("{p}.args{tail}"), reason);
        }
        if rest.starts_with(".env") {
            // Validation renders env keys with key_path; render ours the same way to match.
            let index = self
                .env
                .iter()
                .find(|(key, _)| crate::validate::key_path(".env", key) == rest)
                .map(|(_, i)| *i);
            return match index {
                Some(i) => FieldError::new(format!("{p}.environment[{i}]"), reason),
                None => FieldError::new(format!("{p}.environment"), reason),
            };
        }
        if let Some((k, _)) = bracket_index(rest, ".ports") {
            let entry = self.ports.get(k).map(String::as_str).unwrap_or("?");
            return FieldError::new(format!("{p}.port"), format!("entry {entry:?}: {reason}"));
        }
        if let Some((k, tail)) = bracket_index(rest, ".constraints")
            && let Some(origin) = self.constraints.get(k)
        {
            let field = match tail {
                ".rigidness" => Some("rigidness"),
                ".convergenceTime" => Some("convergence_time"),
                ".geo.radiusKm" | ".latency.maxMs" => Some("threshold"),
                ".latency.toService" => Some("target_microservice_id"),
                ".direct.cluster" => Some("cluster"),
                ".clusters" => Some("allowed"),
                t if t.starts_with(".direct.nodes") || t == ".direct" => Some("node"),
                t if t.starts_with(".geo.location") || t.starts_with(".latency.toPoint") => {
                    Some("location")
                }
                t if t.starts_with(".clusters[") => Some("allowed"),
                _ => None,
            };
            return match field {
                // A connectivity latency's target lives beside con_constraints, not in it.
                Some("target_microservice_id") => {
                    let target = origin
                        .split_once(".con_constraints")
                        .map(|(c, _)| format!("{c}.target_microservice_id"))
                        .unwrap_or_else(|| origin.clone());
                    FieldError::new(target, reason)
                }
                Some(f) => FieldError::new(format!("{origin}.{f}"), reason),
                None if tail.is_empty() => FieldError::new(origin.clone(), reason),
                None => FieldError::new(origin.clone(), format!("{}: {reason}", &tail[1..])),
            };
        }
        let native = rest.strip_prefix('.').unwrap_or(rest);
        FieldError::new(p.clone(), format!("{native}: {reason}"))
    }
}

/// `(k, tail)` for `rest` = `{field}[k]{tail}`.
fn bracket_index<'a>(rest: &'a str, field: &str) -> Option<(usize, &'a str)> {
    let (index, tail) = rest
        .strip_prefix(field)?
        .strip_prefix('[')?
        .split_once(']')?;
    Some((index.parse().ok()?, tail))
}
