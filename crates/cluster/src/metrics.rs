//! The cluster's series (`canopy_cluster_*`, labelled `cluster`): instances and nodes by
//! state, scheduling attempts and failures over its nodes, and its links (up to the root,
//! down to each node). Served on `--metrics-listen`, or with the root's under `canopy up`.

use crate::cluster::Cluster;
use crate::state::ClusterState;
use canopy_model::INSTANCE_STATES;
use canopy_tier::metrics::{self, BoxFuture, Exposition, LinkMetrics, SchedulingMetrics};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

/// What one step of the core tried: placement attempts and why the failed ones failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Placements {
    pub attempts: u64,
    pub failures: Vec<String>,
}

pub struct ClusterMetrics {
    registry: Registry,
    instances: Family<StateLabel, Gauge>,
    nodes: Family<StateLabel, Gauge>,
    pub scheduling: Arc<SchedulingMetrics>,
    pub links: Arc<LinkMetrics>,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics").finish_non_exhaustive()
    }
}

impl ClusterMetrics {
    pub fn new(cluster: &str) -> ClusterMetrics {
        let mut registry = metrics::registry("canopy_cluster", &[("cluster", cluster)]);
        let instances = Family::<StateLabel, Gauge>::default();
        registry.register(
            "instances",
            "Instances this cluster placed, by the state its nodes report",
            instances.clone(),
        );
        let nodes = Family::<StateLabel, Gauge>::default();
        registry.register(
            "nodes",
            "Nodes by readiness (Ready: heard within the deadline and linked)",
            nodes.clone(),
        );
        let scheduling = SchedulingMetrics::register(&mut registry);
        let links = LinkMetrics::register(&mut registry);
        ClusterMetrics {
            registry,
            instances,
            nodes,
            scheduling,
            links,
        }
    }

    /// Counts what one step tried.
    pub fn placed(&self, placements: &Placements) {
        if placements.attempts > 0 {
            self.scheduling.attempted(placements.attempts);
        }
        for reason in &placements.failures {
            self.scheduling.failed(reason);
        }
    }

    /// Sets the gauges from the core and appends the registry.
    pub fn encode(&self, state: &ClusterState, out: &mut String) -> std::fmt::Result {
        let mut counts = [0i64; INSTANCE_STATES.len()];
        for placed in state.instances.values() {
            if let Some(i) = INSTANCE_STATES.iter().position(|s| *s == placed.state) {
                counts[i] += 1;
            }
        }
        for (instance_state, count) in INSTANCE_STATES.iter().zip(counts) {
            self.instances
                .get_or_create(&StateLabel {
                    state: instance_state.as_str(),
                })
                .set(count);
        }
        let ready = state.nodes.values().filter(|n| n.usable()).count();
        let total = state.nodes.len();
        self.nodes
            .get_or_create(&StateLabel { state: "Ready" })
            .set(ready as i64);
        self.nodes
            .get_or_create(&StateLabel { state: "NotReady" })
            .set((total - ready) as i64);
        metrics::encode(&self.registry, out)
    }
}

/// The cluster's exposition (reads the core under its lock at scrape time).
pub struct ClusterExposition(pub Arc<Cluster>);

impl Exposition for ClusterExposition {
    fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result> {
        Box::pin(async move {
            let cluster = &self.0;
            cluster
                .read(|state, _| cluster.metrics.encode(state, out))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_tier::metrics::sample_value;

    #[test]
    fn placements_and_states_render_and_parse() {
        let metrics = ClusterMetrics::new("c0");
        metrics.placed(&Placements {
            attempts: 3,
            failures: vec!["not ready".to_string()],
        });
        let state = ClusterState::recover(
            crate::state::Settings {
                name: "c0".to_string(),
                node_deadline: std::time::Duration::from_secs(3),
                carbon_g_per_kwh: None,
                probe_port: None,
            },
            Vec::new(),
            crate::state::Now {
                at: std::time::Instant::now(),
                unix_ms: 0,
            },
        );
        let mut text = String::new();
        metrics.encode(&state, &mut text).unwrap();
        let value = |name, labels: &[(&str, &str)]| sample_value(&text, name, labels);
        assert_eq!(
            value(
                "canopy_cluster_scheduling_attempts_total",
                &[("cluster", "c0")]
            ),
            Some(3.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_cluster_scheduling_failures_total",
                &[("reason", "not ready")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value("canopy_cluster_instances", &[("state", "Running")]),
            Some(0.0)
        );
        assert_eq!(
            value("canopy_cluster_nodes", &[("state", "Ready")]),
            Some(0.0)
        );
    }
}
