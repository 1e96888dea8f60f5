//! How the client words an autoscaled service: its range and targets, and the autoscaler's
//! last change with the numbers that drove it (`canopy describe`, `canopy events -w`).

use crate::output::age;
use canopy_model::AutoscaleSpec;
use canopy_root::desired::ScalingEvent;
use canopy_root::desired::autoscale::Resource;

/// `1-5 replicas, target CPU 50%; last 1 -> 3 (...) 12s ago`.
pub fn describe(spec: &AutoscaleSpec, last: Option<&ScalingEvent>) -> String {
    let mut targets = Vec::new();
    if let Some(cpu) = spec.target_cpu {
        targets.push(format!("CPU {cpu}%"));
    }
    if let Some(memory) = spec.target_memory {
        targets.push(format!("memory {memory}%"));
    }
    let mut line = format!(
        "{}-{} replicas, target {}",
        spec.min,
        spec.max,
        targets.join(", ")
    );
    if let Some(event) = last {
        line.push_str(&format!("; last {} ago: {}", age(event.at), change(event)));
    }
    line
}

/// `1 -> 3: cpu at 900% of its 50% target ...` (and why it was refused, if it was).
pub fn change(event: &ScalingEvent) -> String {
    let mut text = format!("{} -> {}: {}", event.current, event.desired, event.reason);
    if let Some(error) = &event.error {
        text.push_str(&format!(" (refused: {error})"));
    }
    text
}

/// `cpu 900%/50%, memory 20%/80%`: each target's use against it.
pub fn readings(event: &ScalingEvent) -> String {
    event
        .readings
        .iter()
        .map(|r| {
            let name = match r.resource {
                Resource::Cpu => "cpu",
                Resource::Memory => "memory",
            };
            format!("{name} {}%/{}%", r.usage, r.target)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_root::desired::autoscale::Reading;

    fn event(error: Option<&str>) -> ScalingEvent {
        ScalingEvent {
            namespace: "default".into(),
            application: "shop".into(),
            service: "web".into(),
            at: time::OffsetDateTime::now_utc(),
            current: 1,
            desired: 3,
            readings: vec![Reading {
                resource: Resource::Cpu,
                usage: 900,
                target: 50,
                measured: 1,
                missing: 0,
                unready: 0,
                proposal: 18,
            }],
            reason: "cpu at 900% of its 50% target".into(),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn a_change_says_its_numbers_and_a_refusal_why() {
        let spec: AutoscaleSpec =
            serde_json::from_value(serde_json::json!({"max": 3, "targetCPU": 50})).unwrap();
        let line = describe(&spec, Some(&event(None)));
        assert!(
            line.starts_with("1-3 replicas, target CPU 50%; last "),
            "{line}"
        );
        assert!(
            line.ends_with("1 -> 3: cpu at 900% of its 50% target"),
            "{line}"
        );
        assert_eq!(describe(&spec, None), "1-3 replicas, target CPU 50%");
        assert_eq!(readings(&event(None)), "cpu 900%/50%");
        assert!(change(&event(Some("quota"))).ends_with("(refused: quota)"));
    }
}
