//! A service's `autoscale:` section, as Kubernetes' HorizontalPodAutoscaler (autoscaling/v2)
//! spells it for resource metrics: the replica count moves between `min` and `max` so that
//! the instances' average use stays near `targetCPU` / `targetMemory`, each a percentage of
//! what one instance requests (`resources`). `replicas` is the starting point. The decision
//! is the root's (its autoscale core); this is the descriptor side and its validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest target: ten times the request (an instance may use more than it asks for).
pub const MAX_TARGET_PERCENT: u32 = 1000;
/// Longest stabilisation window, as Kubernetes bounds it: an hour.
pub const MAX_STABILIZATION_SECONDS: u32 = 3600;
/// HPA's default scale-down window: the highest recommendation of the last five minutes.
pub const DEFAULT_SCALE_DOWN_SECONDS: u32 = 300;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscaleSpec {
    /// Fewest replicas (at least 1).
    #[serde(default = "default_min", deserialize_with = "crate::integer::integral")]
    pub min: u32,
    /// Most replicas.
    #[serde(deserialize_with = "crate::integer::integral")]
    pub max: u32,
    /// Average CPU use to keep, in percent of `resources.cpu`.
    #[serde(
        default,
        rename = "targetCPU",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub target_cpu: Option<u32>,
    /// Average memory use to keep, in percent of `resources.memory`.
    #[serde(
        default,
        rename = "targetMemory",
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub target_memory: Option<u32>,
    /// Seconds a higher recommendation must hold before scaling up (the lowest of the
    /// window is taken); 0, scale up at once, when absent.
    #[serde(default, deserialize_with = "crate::integer::integral")]
    pub scale_up_stabilization_seconds: u32,
    /// Seconds of recommendations a scale-down takes the highest of; 300 when absent.
    #[serde(
        default = "default_scale_down",
        deserialize_with = "crate::integer::integral"
    )]
    pub scale_down_stabilization_seconds: u32,
}

fn default_min() -> u32 {
    1
}

fn default_scale_down() -> u32 {
    DEFAULT_SCALE_DOWN_SECONDS
}

impl AutoscaleSpec {
    /// `replicas` within `min..=max`.
    pub fn clamp(&self, replicas: u32) -> u32 {
        replicas.clamp(self.min, self.max.max(self.min))
    }
}

/// The problems of a service's `autoscale` section, each with its field path under `p`.
pub(crate) fn autoscale_errors(p: &str, svc: &crate::ServiceSpec) -> Vec<crate::FieldError> {
    let mut errors = Vec::new();
    let Some(autoscale) = &svc.autoscale else {
        return errors;
    };
    let mut err = |field: &str, reason: String| {
        let path = if field.is_empty() {
            format!("{p}.autoscale")
        } else {
            format!("{p}.autoscale.{field}")
        };
        errors.push(crate::FieldError::new(path, reason));
    };
    if svc.job.is_some() {
        err(
            "",
            "does not apply to a job (its runs are set by completions and parallelism)".into(),
        );
    }
    let most = crate::limits::MAX_REPLICAS;
    if !(1..=most).contains(&autoscale.min) {
        err(
            "min",
            format!("must be from 1 to {most}, got {}", autoscale.min),
        );
    }
    if !(1..=most).contains(&autoscale.max) {
        err(
            "max",
            format!("must be from 1 to {most}, got {}", autoscale.max),
        );
    } else if autoscale.min > autoscale.max {
        err(
            "min",
            format!(
                "must be at most max ({}), got {}",
                autoscale.max, autoscale.min
            ),
        );
    }
    if autoscale.target_cpu.is_none() && autoscale.target_memory.is_none() {
        err(
            "",
            "needs a target: targetCPU, targetMemory or both (percent of the request)".into(),
        );
    }
    for (field, target, request) in [
        ("targetCPU", autoscale.target_cpu, "resources.cpu"),
        ("targetMemory", autoscale.target_memory, "resources.memory"),
    ] {
        if let Some(percent) = target
            && !(1..=MAX_TARGET_PERCENT).contains(&percent)
        {
            err(
                field,
                format!(
                    "must be from 1 to {MAX_TARGET_PERCENT} (percent of {request}), got {percent}"
                ),
            );
        }
    }
    for (field, seconds) in [
        (
            "scaleUpStabilizationSeconds",
            autoscale.scale_up_stabilization_seconds,
        ),
        (
            "scaleDownStabilizationSeconds",
            autoscale.scale_down_stabilization_seconds,
        ),
    ] {
        if seconds > MAX_STABILIZATION_SECONDS {
            err(
                field,
                format!("must be at most {MAX_STABILIZATION_SECONDS}, got {seconds}"),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(autoscale: serde_json::Value) -> crate::ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "name": "web", "runtime": "process", "command": ["/srv/web"], "autoscale": autoscale,
        }))
        .expect("a service")
    }

    fn errors(autoscale: serde_json::Value) -> Vec<(String, String)> {
        autoscale_errors("s", &service(autoscale))
            .into_iter()
            .map(|e| (e.path, e.reason))
            .collect()
    }

    #[test]
    fn defaults_are_hpas_and_the_fields_are_spelled_as_kubernetes_users_expect() {
        let spec = service(serde_json::json!({"max": 5, "targetCPU": 50}));
        let autoscale = spec.autoscale.expect("autoscale");
        assert_eq!(
            autoscale,
            AutoscaleSpec {
                min: 1,
                max: 5,
                target_cpu: Some(50),
                target_memory: None,
                scale_up_stabilization_seconds: 0,
                scale_down_stabilization_seconds: 300,
            }
        );
        let json = serde_json::to_value(&autoscale).unwrap();
        assert_eq!(json["targetCPU"], 50);
        assert!(json.get("targetMemory").is_none());
        assert_eq!(json["scaleDownStabilizationSeconds"], 300);
        assert!(errors(serde_json::json!({"max": 5, "targetCPU": 50})).is_empty());
    }

    #[test]
    fn each_problem_names_its_field_and_why() {
        let found = errors(serde_json::json!({"min": 0, "max": 1001}));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["s.autoscale.min", "s.autoscale.max", "s.autoscale"]);
        assert!(found[2].1.contains("needs a target"), "{found:?}");

        let found = errors(serde_json::json!({"min": 4, "max": 3, "targetMemory": 80}));
        assert_eq!(
            found,
            [(
                "s.autoscale.min".to_string(),
                "must be at most max (3), got 4".to_string()
            )]
        );

        let found = errors(serde_json::json!({
            "max": 3, "targetCPU": 0, "targetMemory": 1001,
            "scaleUpStabilizationSeconds": 3601, "scaleDownStabilizationSeconds": 4000,
        }));
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "s.autoscale.targetCPU",
                "s.autoscale.targetMemory",
                "s.autoscale.scaleUpStabilizationSeconds",
                "s.autoscale.scaleDownStabilizationSeconds",
            ]
        );
        assert!(found[0].1.contains("percent of resources.cpu"), "{found:?}");
    }

    #[test]
    fn a_job_cannot_autoscale_and_unknown_fields_are_refused() {
        let mut spec = service(serde_json::json!({"max": 2, "targetCPU": 50}));
        spec.job = Some(crate::JobSpec::default());
        let found = autoscale_errors("s", &spec);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "s.autoscale");
        assert!(found[0].reason.contains("does not apply to a job"));
        let unknown =
            serde_json::from_value::<AutoscaleSpec>(serde_json::json!({"max": 2, "targetCpu": 50}));
        assert!(unknown.is_err(), "targetCpu is not targetCPU");
        let missing_max =
            serde_json::from_value::<AutoscaleSpec>(serde_json::json!({"targetCPU": 50}));
        assert!(missing_max.is_err(), "max is required");
    }

    #[test]
    fn clamp_keeps_replicas_in_range() {
        let spec = service(serde_json::json!({"min": 2, "max": 4, "targetCPU": 50}))
            .autoscale
            .unwrap();
        assert_eq!(
            [0, 2, 3, 9].map(|r| spec.clamp(r)),
            [2, 2, 3, 4],
            "below min, in range, above max"
        );
    }
}
