//! The root's series (`canopy_root_*`), served at `/metrics` on the API (any role's token;
//! see `api::rules::TOP_LEVEL_RULES`): instances by state, the placement latency from
//! submit to Running per runtime, scheduling attempts and failures, and the links of its
//! clusters.

use crate::instances::InstanceCache;
use canopy_model::{INSTANCE_STATES, Instance, InstanceState};
use canopy_tier::metrics::{self, BoxFuture, Exposition, LinkMetrics, SchedulingMetrics};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// The runtime an instance runs in, as its node reported it.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RuntimeLabel {
    process,
    container,
    wasm,
    unknown,
}

impl RuntimeLabel {
    /// From the node's `details.runtime` (`process`, `container (runc)`, `wasm`).
    pub fn of(instance: &Instance) -> RuntimeLabel {
        match instance.details.runtime.as_deref().unwrap_or_default() {
            r if r.starts_with("process") => RuntimeLabel::process,
            r if r.starts_with("container") => RuntimeLabel::container,
            r if r.starts_with("wasm") => RuntimeLabel::wasm,
            _ => RuntimeLabel::unknown,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: RuntimeLabel,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct RootMetrics {
    registry: Registry,
    instances: Family<StateLabel, Gauge>,
    placement: Histograms<RuntimeLabels>,
    pub scheduling: Arc<SchedulingMetrics>,
    pub links: Arc<LinkMetrics>,
}

impl std::fmt::Debug for RootMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootMetrics").finish_non_exhaustive()
    }
}

impl Default for RootMetrics {
    fn default() -> Self {
        let mut registry = metrics::registry("canopy_root", &[]);
        let instances = Family::<StateLabel, Gauge>::default();
        registry.register(
            "instances",
            "Instances by the state users see",
            instances.clone(),
        );
        let placement: Histograms<RuntimeLabels> =
            Family::new_with_constructor(metrics::seconds_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "placement_latency",
            "Time from an instance's creation (submit) to its first Running, per runtime",
            prometheus_client::registry::Unit::Seconds,
            placement.clone(),
        );
        let scheduling = SchedulingMetrics::register(&mut registry);
        let links = LinkMetrics::register(&mut registry);
        RootMetrics {
            registry,
            instances,
            placement,
            scheduling,
            links,
        }
    }
}

impl RootMetrics {
    /// An instance reached Running for the first time at `at`.
    pub fn placed(&self, instance: &Instance, at: OffsetDateTime) {
        let seconds = (at - instance.created_at).as_seconds_f64().max(0.0);
        let labels = RuntimeLabels {
            runtime: RuntimeLabel::of(instance),
        };
        self.placement.get_or_create(&labels).observe(seconds);
    }

    /// Sets the state gauges from `counts` (every state, zeros included, so a series does
    /// not vanish when its last instance leaves) and appends the registry.
    pub fn encode(&self, counts: &[(InstanceState, usize)], out: &mut String) -> std::fmt::Result {
        for state in INSTANCE_STATES {
            let count = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            let label = StateLabel {
                state: state.as_str(),
            };
            self.instances
                .get_or_create(&label)
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        metrics::encode(&self.registry, out)
    }
}

/// The root's exposition: its metrics over the instance cache's counts.
pub struct RootExposition {
    pub metrics: Arc<RootMetrics>,
    pub instances: Arc<InstanceCache>,
}

impl Exposition for RootExposition {
    fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result> {
        let counts = self.instances.count_by_state();
        Box::pin(async move { self.metrics.encode(&counts, out) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_tier::metrics::sample_value;

    fn instance(runtime: &str, created: OffsetDateTime) -> Instance {
        let mut instance: Instance = serde_json::from_value(serde_json::json!({
            "id": "i1", "namespace": "default", "application": "a", "service": "s",
            "replica": 0, "generation": 1, "state": "Running",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
        }))
        .expect("an instance");
        instance.created_at = created;
        instance.details.runtime = Some(runtime.to_string());
        instance
    }

    #[test]
    fn states_and_placement_latency_render_and_parse() {
        let metrics = RootMetrics::default();
        let created = OffsetDateTime::UNIX_EPOCH;
        metrics.placed(
            &instance("process", created),
            created + time::Duration::milliseconds(300),
        );
        metrics.placed(
            &instance("container (runc)", created),
            created + time::Duration::seconds(4),
        );
        metrics.scheduling.attempted(2);
        let mut text = String::new();
        metrics
            .encode(&[(InstanceState::Running, 2)], &mut text)
            .unwrap();
        let value = |name, labels: &[(&str, &str)]| sample_value(&text, name, labels);
        assert_eq!(
            value("canopy_root_instances", &[("state", "Running")]),
            Some(2.0)
        );
        assert_eq!(
            value("canopy_root_instances", &[("state", "Pending")]),
            Some(0.0),
            "{text}"
        );
        let process = [("runtime", "process")];
        assert_eq!(
            value("canopy_root_placement_latency_seconds_count", &process),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value("canopy_root_placement_latency_seconds_sum", &process),
            Some(0.3)
        );
        assert_eq!(
            value(
                "canopy_root_placement_latency_seconds_bucket",
                &[("runtime", "process"), ("le", "+Inf")]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_root_placement_latency_seconds_count",
                &[("runtime", "container")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value("canopy_root_scheduling_attempts_total", &[]),
            Some(2.0)
        );
    }
}
