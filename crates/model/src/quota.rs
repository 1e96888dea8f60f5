//! A namespace's quota: the CPU, memory and instances its applications may request in total,
//! as a Kubernetes ResourceQuota bounds `requests.cpu`, `requests.memory` and `pods`.
//! Checked when an application is admitted, against what the namespace's other applications
//! request: pure functions over descriptors.

use crate::quantity::{Mebibytes, Millicores};
use crate::{Application, FieldError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most instances a quota may allow.
pub const MAX_QUOTA_INSTANCES: u32 = 1_000_000;

/// Totals a namespace's applications may request; each absent one is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    /// CPU of every instance together (`8`, `2500m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Millicores>,
    /// Memory of every instance together (`16Gi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Mebibytes>,
    /// Instances (replicas, and a job's parallel runs) together.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub instances: Option<u32>,
}

/// What applications request, summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requests {
    pub cpu: u64,
    pub memory: u64,
    pub instances: u64,
}

impl Requests {
    /// What `app` requests: each service's resources times its replicas (a job's at once:
    /// `parallelism`, at most `completions`).
    pub fn of(app: &Application) -> Requests {
        let mut total = Requests::default();
        for service in &app.spec.services {
            let count = match &service.job {
                Some(job) => job.parallelism.min(job.completions),
                None => service.replicas,
            };
            let count = u64::from(count);
            total.cpu += service.resources.cpu.0 * count;
            total.memory += service.resources.memory.0 * count;
            total.instances += count;
        }
        total
    }

    pub fn plus(self, more: Requests) -> Requests {
        Requests {
            cpu: self.cpu + more.cpu,
            memory: self.memory + more.memory,
            instances: self.instances + more.instances,
        }
    }
}

/// The problems of a quota itself (`path` is where it sits), by the bounds one instance's
/// request has.
pub fn quota_errors(path: &str, quota: &Quota) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(cpu) = quota.cpu
        && (cpu.0 == 0 || cpu.0 > crate::limits::MAX_CPU_MILLICORES)
    {
        errors.push(FieldError::new(
            format!("{path}.cpu"),
            format!(
                "must be more than 0 and at most {}m, got {cpu}",
                crate::limits::MAX_CPU_MILLICORES
            ),
        ));
    }
    if let Some(memory) = quota.memory
        && (memory.0 == 0 || memory.0 > crate::limits::MAX_MEMORY_MIB)
    {
        errors.push(FieldError::new(
            format!("{path}.memory"),
            format!(
                "must be more than 0 and at most {}Mi, got {memory}",
                crate::limits::MAX_MEMORY_MIB
            ),
        ));
    }
    if let Some(instances) = quota.instances
        && instances > MAX_QUOTA_INSTANCES
    {
        errors.push(FieldError::new(
            format!("{path}.instances"),
            format!("must be at most {MAX_QUOTA_INSTANCES}, got {instances}"),
        ));
    }
    errors
}

/// Why admitting `app` beside what the namespace's other applications request (`others`)
/// would exceed `quota`: one problem per resource, each with the numbers.
pub fn over_quota(quota: &Quota, others: Requests, app: &Application) -> Vec<FieldError> {
    let asked = Requests::of(app);
    let mut errors = Vec::new();
    let mut check = |resource: &str, limit: Option<u64>, asked: u64, used: u64, unit: &str| {
        if let Some(limit) = limit
            && used + asked > limit
        {
            errors.push(FieldError::new(
                "spec.services",
                format!(
                    "exceeds the namespace's {resource} quota: requests {asked}{unit}, \
                     {used}{unit} in use by its other applications, quota {limit}{unit}"
                ),
            ));
        }
    };
    check("cpu", quota.cpu.map(|c| c.0), asked.cpu, others.cpu, "m");
    check(
        "memory",
        quota.memory.map(|m| m.0),
        asked.memory,
        others.memory,
        "Mi",
    );
    check(
        "instances",
        quota.instances.map(u64::from),
        asked.instances,
        others.instances,
        "",
    );
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(services: serde_json::Value) -> Application {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a"},
            "spec": {"services": services}
        }))
        .unwrap()
    }

    #[test]
    fn requests_count_replicas_and_a_jobs_parallel_runs() {
        let app = app(serde_json::json!([
            {"name": "web", "runtime": "process", "command": ["x"], "replicas": 3,
             "resources": {"cpu": "500m", "memory": "128Mi"}},
            {"name": "batch", "runtime": "process", "command": ["x"],
             "resources": {"cpu": "1", "memory": "1Gi"},
             "job": {"completions": 10, "parallelism": 2}},
            {"name": "one", "runtime": "process", "command": ["x"],
             "job": {"completions": 1, "parallelism": 4}},
        ]));
        let requests = Requests::of(&app);
        assert_eq!(requests.cpu, 1500 + 2000 + 100);
        assert_eq!(requests.memory, 3 * 128 + 2 * 1024 + 64);
        assert_eq!(requests.instances, 3 + 2 + 1);
    }

    #[test]
    fn an_application_that_fits_beside_the_others_passes_and_one_over_says_by_how_much() {
        let app = app(serde_json::json!([
            {"name": "web", "runtime": "process", "command": ["x"], "replicas": 2,
             "resources": {"cpu": "1", "memory": "1Gi"}},
        ]));
        let quota = Quota {
            cpu: Some(Millicores(4000)),
            memory: Some(Mebibytes(4096)),
            instances: Some(4),
        };
        let others = Requests {
            cpu: 2000,
            memory: 2048,
            instances: 2,
        };
        assert_eq!(over_quota(&quota, others, &app), vec![]);
        let more = Requests {
            cpu: 2001,
            memory: 2048,
            instances: 3,
        };
        let errors = over_quota(&quota, more, &app);
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(errors.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].contains("cpu quota: requests 2000m, 2001m in use"),
            "{reasons:?}"
        );
        assert!(reasons[0].contains("quota 4000m"));
        assert!(reasons[1].contains("instances quota: requests 2, 3 in use"));
        assert!(errors.iter().all(|e| e.path == "spec.services"));
        // Unbounded where absent.
        assert_eq!(over_quota(&Quota::default(), more, &app), vec![]);
    }

    #[test]
    fn a_quota_out_of_bounds_names_its_field() {
        let quota = Quota {
            cpu: Some(Millicores(0)),
            memory: Some(Mebibytes(crate::limits::MAX_MEMORY_MIB + 1)),
            instances: Some(MAX_QUOTA_INSTANCES + 1),
        };
        let paths: Vec<String> = quota_errors("quota", &quota)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(paths, ["quota.cpu", "quota.memory", "quota.instances"]);
        assert_eq!(quota_errors("quota", &Quota::default()), vec![]);
    }
}
