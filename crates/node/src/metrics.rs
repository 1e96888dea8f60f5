//! The node's series (`canopy_node_*`, labelled `node`): instances by state, runtime start
//! latency per runtime, image pulls, the node's and each instance's CPU and memory use
//! (from the usage sampler), service proxy traffic, and the link to its cluster. Served on
//! `--metrics-listen`, or with the root's under `canopy up`.

use crate::proxy_metrics::ProxyMetrics;
use canopy_model::{INSTANCE_STATES, InstanceState, ResourceAmounts, RuntimeKind, Usage};
use canopy_tier::metrics::{self, BoxFuture, Exposition, LinkMetrics};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum RuntimeLabel {
    process,
    container,
    wasm,
    vm,
}

impl From<RuntimeKind> for RuntimeLabel {
    fn from(kind: RuntimeKind) -> RuntimeLabel {
        match kind {
            RuntimeKind::Process => RuntimeLabel::process,
            RuntimeKind::Container => RuntimeLabel::container,
            RuntimeKind::Wasm => RuntimeLabel::wasm,
            RuntimeKind::Vm => RuntimeLabel::vm,
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuntimeLabels {
    runtime: RuntimeLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InstanceLabels {
    instance: String,
    /// `namespace/application/service`.
    service: String,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum PullResult {
    pulled,
    cached,
    failed,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PullLabels {
    result: PullResult,
}

/// Image pulls through the node's image store: handles the image hook keeps.
#[derive(Debug, Clone)]
pub struct PullMetrics {
    seconds: Histogram,
    bytes: Counter,
    pulls: Family<PullLabels, Counter>,
}

impl PullMetrics {
    /// A pull that took `took`: downloaded `bytes` (0 when every layer was cached), or
    /// failed.
    pub fn pulled(&self, took: Duration, bytes: u64, ok: bool, cached: bool) {
        let result = match (ok, cached) {
            (false, _) => PullResult::failed,
            (true, true) => PullResult::cached,
            (true, false) => PullResult::pulled,
        };
        self.pulls.get_or_create(&PullLabels { result }).inc();
        if ok {
            self.seconds.observe(took.as_secs_f64());
            self.bytes.inc_by(bytes);
        }
    }
}

/// An instance's use as the node last sampled it, with its service.
pub(crate) struct Sampled<'a> {
    pub id: &'a str,
    pub service: String,
    pub usage: Usage,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct NodeMetrics {
    registry: Registry,
    instances: Family<StateLabel, Gauge>,
    start: Histograms<RuntimeLabels>,
    pulls: PullMetrics,
    cpu: Gauge,
    memory: Gauge,
    instance_cpu: Family<InstanceLabels, Gauge>,
    instance_memory: Family<InstanceLabels, Gauge>,
    pub links: Arc<LinkMetrics>,
    /// What the overlay proxy carries, per service (the overlay's meter).
    pub proxy: Arc<ProxyMetrics>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl NodeMetrics {
    pub fn new(node: &str, capacity: ResourceAmounts) -> NodeMetrics {
        let mut registry = metrics::registry("canopy_node", &[("node", node)]);
        let instances = Family::<StateLabel, Gauge>::default();
        registry.register(
            "instances",
            "Instances on this node by state",
            instances.clone(),
        );
        let start: Histograms<RuntimeLabels> =
            Family::new_with_constructor(metrics::seconds_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "runtime_start_latency",
            "Time to start an instance, its prestart hooks (image, network) included, per runtime",
            Unit::Seconds,
            start.clone(),
        );
        let pulls = PullMetrics {
            seconds: metrics::seconds_histogram(),
            bytes: Counter::default(),
            pulls: Family::default(),
        };
        registry.register_with_unit(
            "image_pull",
            "Time an image pull took (resolving, downloading and verifying its layers)",
            Unit::Seconds,
            pulls.seconds.clone(),
        );
        registry.register_with_unit(
            "image_pull",
            "Layer bytes downloaded by image pulls",
            Unit::Bytes,
            pulls.bytes.clone(),
        );
        registry.register(
            "image_pulls",
            "Image pulls by result (pulled, cached, failed)",
            pulls.pulls.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str, value: u64| {
            let gauge = Gauge::default();
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
            registry.register(name, help, gauge.clone());
            gauge
        };
        gauge(
            &mut registry,
            "capacity_cpu_millicores",
            "CPU this node offers",
            capacity.cpu_millis,
        );
        gauge(
            &mut registry,
            "capacity_memory_bytes",
            "Memory this node offers",
            capacity.memory_mib << 20,
        );
        let cpu = gauge(
            &mut registry,
            "cpu_millicores",
            "CPU its instances use, summed, at the last sample",
            0,
        );
        let memory = gauge(
            &mut registry,
            "memory_bytes",
            "Memory its instances use, summed, at the last sample",
            0,
        );
        let instance_cpu = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_cpu_millicores",
            "CPU a running instance used between the last two samples",
            instance_cpu.clone(),
        );
        let instance_memory = Family::<InstanceLabels, Gauge>::default();
        registry.register(
            "instance_memory_bytes",
            "Memory a running instance used at the last sample",
            instance_memory.clone(),
        );
        let links = LinkMetrics::register(&mut registry);
        let proxy = ProxyMetrics::register(&mut registry);
        NodeMetrics {
            registry,
            instances,
            start,
            pulls,
            cpu,
            memory,
            instance_cpu,
            instance_memory,
            links,
            proxy,
        }
    }

    /// The image hook's handles (`images::RegistryImages::observed_by`).
    pub fn pulls(&self) -> PullMetrics {
        self.pulls.clone()
    }

    /// An instance of `kind` started after `took`.
    pub(crate) fn started(&self, kind: RuntimeKind, took: Duration) {
        let labels = RuntimeLabels {
            runtime: kind.into(),
        };
        self.start
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// A usage sample: each running instance's use (instances gone since drop out).
    pub(crate) fn sampled(&self, instances: &[Sampled<'_>]) {
        self.instance_cpu.clear();
        self.instance_memory.clear();
        let (mut cpu, mut memory) = (0u64, 0u64);
        for sampled in instances {
            let labels = InstanceLabels {
                instance: sampled.id.to_string(),
                service: sampled.service.clone(),
            };
            let as_gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            self.instance_cpu
                .get_or_create(&labels)
                .set(as_gauge(sampled.usage.cpu_millis));
            self.instance_memory
                .get_or_create(&labels)
                .set(as_gauge(sampled.usage.memory_bytes));
            cpu = cpu.saturating_add(sampled.usage.cpu_millis);
            memory = memory.saturating_add(sampled.usage.memory_bytes);
        }
        self.cpu.set(i64::try_from(cpu).unwrap_or(i64::MAX));
        self.memory.set(i64::try_from(memory).unwrap_or(i64::MAX));
    }

    /// Sets the state gauges from `states` and appends the registry.
    pub(crate) fn encode(
        &self,
        states: impl Iterator<Item = InstanceState>,
        out: &mut String,
    ) -> std::fmt::Result {
        let mut counts: BTreeMap<InstanceState, i64> = BTreeMap::new();
        for state in states {
            *counts.entry(state).or_default() += 1;
        }
        for state in INSTANCE_STATES {
            self.instances
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(counts.get(&state).copied().unwrap_or(0));
        }
        metrics::encode(&self.registry, out)
    }
}

/// The node's exposition (reads its instances under their lock at scrape time).
pub struct NodeExposition(pub(crate) Arc<crate::Agent>);

impl Exposition for NodeExposition {
    fn encode<'a>(&'a self, out: &'a mut String) -> BoxFuture<'a, std::fmt::Result> {
        Box::pin(async move {
            let agent = &self.0;
            let instances = agent.instances.lock().await;
            agent
                .metrics
                .encode(instances.values().map(|l| l.state()), out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_tier::metrics::sample_value;

    #[test]
    fn starts_pulls_and_usage_render_and_parse() {
        let capacity = ResourceAmounts {
            cpu_millis: 2000,
            memory_mib: 1024,
            ..ResourceAmounts::default()
        };
        let metrics = NodeMetrics::new("n1", capacity);
        metrics.started(RuntimeKind::Process, Duration::from_millis(20));
        let pulls = metrics.pulls();
        pulls.pulled(Duration::from_secs(2), 4096, true, false);
        pulls.pulled(Duration::from_millis(1), 0, true, true);
        pulls.pulled(Duration::from_secs(1), 0, false, false);
        let use_of = |cpu_millis, memory_bytes| Usage {
            cpu_millis,
            memory_bytes,
        };
        metrics.sampled(&[
            Sampled {
                id: "a",
                service: "default/shop/web".to_string(),
                usage: use_of(250, 1 << 20),
            },
            Sampled {
                id: "b",
                service: "default/shop/db".to_string(),
                usage: use_of(50, 3 << 20),
            },
        ]);
        metrics.sampled(&[Sampled {
            id: "b",
            service: "default/shop/db".to_string(),
            usage: use_of(60, 3 << 20),
        }]);
        let mut text = String::new();
        metrics
            .encode(
                [InstanceState::Running, InstanceState::Running].into_iter(),
                &mut text,
            )
            .unwrap();
        let value = |name, labels: &[(&str, &str)]| sample_value(&text, name, labels);
        assert_eq!(
            value(
                "canopy_node_instances",
                &[("state", "Running"), ("node", "n1")]
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_node_runtime_start_latency_seconds_count",
                &[("runtime", "process")]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value("canopy_node_image_pull_seconds_count", &[]),
            Some(2.0)
        );
        assert_eq!(
            value("canopy_node_image_pull_bytes_total", &[]),
            Some(4096.0)
        );
        assert_eq!(
            value("canopy_node_image_pulls_total", &[("result", "failed")]),
            Some(1.0)
        );
        assert_eq!(
            value("canopy_node_capacity_cpu_millicores", &[]),
            Some(2000.0)
        );
        assert_eq!(value("canopy_node_cpu_millicores", &[]), Some(60.0));
        assert_eq!(
            value("canopy_node_instance_memory_bytes", &[("instance", "b")]),
            Some(3145728.0)
        );
        assert_eq!(
            value("canopy_node_instance_cpu_millicores", &[("instance", "a")]),
            None,
            "an instance gone from the sample is gone from the series"
        );
    }
}
