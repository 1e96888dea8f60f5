//! The autoscaler's decision, without I/O (the clock is passed in): how many replicas a
//! service with `autoscale:` should have, as Kubernetes' HorizontalPodAutoscaler decides it
//! for resource metrics. Per target, `ceil(sum of use / (request × target))` replicas, which
//! is HPA's `ceil(current × usage / target)` over the measured instances; nothing moves
//! while the ratio is within 10 % of the target. The highest of the targets' proposals wins.
//! Missing data is conservative: a scale-down needs every instance ready and measured, and a
//! scale-up counts the instances without data as idle. Stabilisation as HPA's: a scale-up
//! takes the lowest recommendation of its window (none by default), a scale-down the highest
//! of its window (300 s by default); the result is clamped to `min..=max`. A service scaled
//! to 0 by hand is left alone (HPA's "autoscaling disabled").

use canopy_model::{AutoscaleSpec, Usage};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

/// One instance of the service (not stopping) as the autoscaler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Running and passing its readiness probe.
    pub ready: bool,
    /// What its node last measured; `None` until a measurement arrived.
    pub usage: Option<Usage>,
}

/// What one instance requests: the 100 % of each target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requests {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    Cpu,
    Memory,
}

/// What one target says, with the numbers that drove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reading {
    pub resource: Resource,
    /// Average use of the measured instances, in percent of the request.
    pub usage: u64,
    /// The target, in percent of the request.
    pub target: u32,
    /// Ready instances with a measurement, ready ones without, and not ready ones.
    pub measured: u32,
    pub missing: u32,
    pub unready: u32,
    /// The replicas this target alone asks for (before `min`/`max`).
    pub proposal: u32,
}

/// The recommendations of the last windows (oldest first), kept by the shell per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History(VecDeque<(OffsetDateTime, u32)>);

impl History {
    /// A history that starts with `replicas` recommended `now`: the first decisions of a new
    /// leader cannot scale down before a whole window passed (it knows no older ones).
    pub fn starting(now: OffsetDateTime, replicas: u32) -> History {
        History(VecDeque::from([(now, replicas)]))
    }
}

/// The decision for one service now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Its replicas now.
    pub current: u32,
    /// What they should be.
    pub desired: u32,
    /// Each target's numbers (a target without measurements has none).
    pub readings: Vec<Reading>,
    /// Why, in words.
    pub reason: String,
}

/// Decides `spec`'s replicas (now `replicas`) from its instances' `samples`, each requesting
/// `requests`, recording the recommendation in `history`.
pub fn decide(
    spec: &AutoscaleSpec,
    replicas: u32,
    requests: Requests,
    samples: &[Sample],
    history: &mut History,
    now: OffsetDateTime,
) -> Decision {
    if replicas == 0 {
        return Decision {
            current: 0,
            desired: 0,
            readings: Vec::new(),
            reason: "scaled to 0: autoscaling is off until it is scaled up".into(),
        };
    }
    let targets = [
        (Resource::Cpu, spec.target_cpu, requests.cpu_millis),
        (Resource::Memory, spec.target_memory, requests.memory_bytes),
    ];
    let readings: Vec<Reading> = targets
        .into_iter()
        .filter_map(|(resource, target, request)| {
            propose(resource, target?, request, replicas, samples)
        })
        .collect();
    // The target that asks for the most wins; without any measurement, nothing changes.
    let leading = readings.iter().max_by_key(|r| r.proposal);
    let recommended = spec.clamp(leading.map_or(replicas, |r| r.proposal));
    let stabilised = stabilise(spec, replicas, recommended, history, now);
    let desired = spec.clamp(stabilised);
    let mut reason = match leading {
        Some(r) => format!(
            "{} at {}% of its {}% target over {} measured instance(s): {} recommended",
            resource_name(r.resource),
            r.usage,
            r.target,
            r.measured,
            r.proposal
        ),
        None => "no measurements yet: holding".to_string(),
    };
    if recommended != leading.map_or(replicas, |r| r.proposal) {
        reason.push_str(&format!(
            ", {recommended} within min {} and max {}",
            spec.min, spec.max
        ));
    }
    if desired != recommended {
        let window = if desired > recommended {
            spec.scale_down_stabilization_seconds
        } else {
            spec.scale_up_stabilization_seconds
        };
        reason.push_str(&format!(
            "; held at {desired} by the {window} s stabilisation window"
        ));
    }
    Decision {
        current: replicas,
        desired,
        readings,
        reason,
    }
}

fn resource_name(resource: Resource) -> &'static str {
    match resource {
        Resource::Cpu => "cpu",
        Resource::Memory => "memory",
    }
}

/// What one target asks for: HPA's replica calculator with integer ratios (no rounding
/// drift at exact multiples). `None` when no ready instance was measured.
fn propose(
    resource: Resource,
    target: u32,
    request: u64,
    current: u32,
    samples: &[Sample],
) -> Option<Reading> {
    let used_by = |usage: &Usage| match resource {
        Resource::Cpu => usage.cpu_millis,
        Resource::Memory => usage.memory_bytes,
    };
    let measured: Vec<u64> = samples
        .iter()
        .filter(|s| s.ready)
        .filter_map(|s| s.usage.as_ref().map(used_by))
        .collect();
    let missing = count(samples.iter().filter(|s| s.ready && s.usage.is_none()));
    let unready = count(samples.iter().filter(|s| !s.ready));
    if measured.is_empty() || request == 0 || target == 0 {
        return None;
    }
    let n = count(measured.iter());
    // In units of percent × request: `used` against the use at target of `k` instances.
    let used = u128::from(measured.iter().sum::<u64>()) * 100;
    let per_instance = u128::from(request) * u128::from(target);
    let at_target = |k: u32| per_instance * u128::from(k);
    let within_tolerance = |k: u32| used.abs_diff(at_target(k)) * 10 <= at_target(k);
    let wanted = u32::try_from(used.div_ceil(per_instance)).unwrap_or(u32::MAX);
    let proposal = if used < at_target(n) {
        // Down: only on complete data, and not for a dip within the tolerance.
        if missing > 0 || unready > 0 || within_tolerance(n) {
            current
        } else {
            wanted.min(current)
        }
    } else {
        // Up: the instances without data count as idle; a ratio that then falls within
        // the tolerance (or below the target) changes nothing.
        let all = n + missing + unready;
        if used <= at_target(all) || within_tolerance(all) {
            current
        } else {
            wanted.max(current)
        }
    };
    let average = used / (u128::from(request) * u128::from(n));
    Some(Reading {
        resource,
        usage: u64::try_from(average).unwrap_or(u64::MAX),
        target,
        measured: n,
        missing,
        unready,
        proposal,
    })
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

/// HPA's stabilisation: records `recommended`, then goes up no further than the lowest
/// recommendation of the scale-up window and down no further than the highest of the
/// scale-down window.
fn stabilise(
    spec: &AutoscaleSpec,
    current: u32,
    recommended: u32,
    history: &mut History,
    now: OffsetDateTime,
) -> u32 {
    let up_window = Duration::seconds(i64::from(spec.scale_up_stabilization_seconds));
    let down_window = Duration::seconds(i64::from(spec.scale_down_stabilization_seconds));
    let kept = up_window.max(down_window);
    history.0.retain(|(at, _)| now - *at <= kept);
    history.0.push_back((now, recommended));
    let within = |window: Duration| {
        history
            .0
            .iter()
            .filter(move |(at, _)| now - *at <= window)
            .map(|(_, replicas)| *replicas)
    };
    let up_to = within(up_window).min().unwrap_or(recommended);
    let down_to = within(down_window).max().unwrap_or(recommended);
    current.max(up_to).min(down_to)
}

#[cfg(test)]
#[path = "autoscale_tests.rs"]
mod tests;
