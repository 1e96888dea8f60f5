//! The node's own admission check, pure: what it runs, what it was asked, what it has. Its
//! view of its own capacity is the exact one, so it re-checks what its cluster placed.
//! Resources go through the scheduler's own node filter (cpu, memory, gpus, gpu model,
//! storage), so the node and its cluster never disagree on what fits.

use canopy_model::{Protocol, ResourceAmounts, RuntimeKind, Sandbox, ServiceSpec};
use canopy_runtime::Capabilities;
use canopy_sched::{NodeView, Prepared, Request, demand, filters, free};
use std::collections::{BTreeMap, HashSet};

/// What admission needs to know about the node itself.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub runtimes: Vec<RuntimeKind>,
    /// What each runtime can do with the node's hooks around it (a runtime left out is
    /// not checked for them).
    pub capabilities: BTreeMap<RuntimeKind, Capabilities>,
    /// Sandboxes its containers can run in (a probe sandbox started).
    pub sandboxes: Vec<Sandbox>,
    /// Its VMs run under KVM.
    pub kvm: bool,
    pub capacity: ResourceAmounts,
    /// Read for the GPU model (`gpu.model`), as the scheduler reads it.
    pub labels: BTreeMap<String, String>,
    /// Prefixes `hostPath` volumes may be under (`--allow-host-path`); none by default.
    pub allowed_host_paths: Vec<String>,
}

/// Why the node refuses an instance; the text travels up to the cluster verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("runtime {runtime} is not available on node {node}")]
    Runtime { node: String, runtime: &'static str },
    #[error("sandbox {sandbox} is not available on node {node}")]
    Sandbox { node: String, sandbox: &'static str },
    #[error("node {node} runs VMs without KVM (emulated), and the service requires KVM")]
    NoKvm { node: String },
    #[error("runtime {runtime} on node {node} cannot publish host ports (no container network)")]
    NoHostPorts { node: String, runtime: &'static str },
    #[error("host port {port}/{protocol} is already published on node {node}")]
    HostPort {
        node: String,
        port: u16,
        protocol: &'static str,
    },
    #[error("insufficient {resource} on node {node}: {asked} asked, {free} free")]
    Insufficient {
        node: String,
        resource: &'static str,
        asked: String,
        free: String,
    },
    #[error("gpu model mismatch on node {node}: {asked} asked, {have} here")]
    GpuModel {
        node: String,
        asked: String,
        have: String,
    },
    #[error("host path {path} is not under a prefix node {node} allows ({allowed})")]
    HostPath {
        node: String,
        path: String,
        /// "allowed: /srv/data, /mnt" or how to allow some.
        allowed: String,
    },
    /// A reason of the scheduler's filter this module does not know (yet).
    #[error("{reason} on node {node}")]
    Other { node: String, reason: &'static str },
}

/// What the instances admitted so far hold: resources and published host ports. Built once
/// per batch, then each admission reserves into it, so that later candidates of the same
/// batch see the earlier ones and the cost per candidate does not grow with the node.
#[derive(Debug, Clone)]
pub struct Ledger<'a> {
    facts: &'a NodeFacts,
    /// The node as the scheduler's filter reads it; `allocated` is kept current.
    view: NodeView,
    ports: HashSet<(u16, &'static str)>,
}

impl<'a> Ledger<'a> {
    /// `running`: the services of every instance that holds resources on the node.
    pub fn new<'s>(facts: &'a NodeFacts, running: impl Iterator<Item = &'s ServiceSpec>) -> Self {
        let mut ledger = Ledger {
            facts,
            view: NodeView {
                name: facts.name.clone(),
                ready: true,
                runtimes: facts.runtimes.clone(),
                sandboxes: facts.sandboxes.clone(),
                kvm: facts.kvm,
                labels: facts.labels.clone(),
                capacity: facts.capacity,
                ..NodeView::default()
            },
            ports: HashSet::new(),
        };
        for spec in running {
            ledger.reserve(spec);
        }
        ledger
    }

    /// What the admitted instances hold in total.
    pub fn allocated(&self) -> ResourceAmounts {
        self.view.allocated
    }

    /// Admits `candidate` and reserves what it takes, or says why not (reserving nothing).
    pub fn admit(&mut self, candidate: &ServiceSpec) -> Result<(), Refusal> {
        self.check(candidate)?;
        self.reserve(candidate);
        Ok(())
    }

    fn check(&self, candidate: &ServiceSpec) -> Result<(), Refusal> {
        let node = &self.facts.name;
        if !self.facts.runtimes.contains(&candidate.runtime) {
            return Err(Refusal::Runtime {
                node: node.clone(),
                runtime: candidate.runtime.as_str(),
            });
        }
        if candidate.vm.as_ref().is_some_and(|vm| vm.require_kvm) && !self.facts.kvm {
            return Err(Refusal::NoKvm { node: node.clone() });
        }
        if let Some(sandbox) = candidate.sandbox
            && !self.facts.sandboxes.contains(&sandbox)
        {
            return Err(Refusal::Sandbox {
                node: node.clone(),
                sandbox: sandbox.as_str(),
            });
        }
        // A runtime with a network of its own publishes ports only when the node can.
        let isolated = self
            .facts
            .capabilities
            .get(&candidate.runtime)
            .is_some_and(|c| c.netns && !c.ports);
        if isolated && host_ports(candidate).next().is_some() {
            return Err(Refusal::NoHostPorts {
                node: node.clone(),
                runtime: candidate.runtime.as_str(),
            });
        }
        crate::host_paths::check(self.facts, candidate)?;
        for (port, protocol) in host_ports(candidate) {
            if self.ports.contains(&(port, protocol)) {
                return Err(Refusal::HostPort {
                    node: node.clone(),
                    port,
                    protocol,
                });
            }
        }
        let prepared = Prepared::new(&Request::new(candidate, &[]));
        filters::node_resources(&prepared, &self.view)
            .map_err(|reason| self.explain(reason, candidate))
    }

    fn reserve(&mut self, spec: &ServiceSpec) {
        self.view.allocated.add(&demand(spec));
        self.ports.extend(host_ports(spec));
    }

    /// The scheduler's short reason, with the node and the amounts.
    fn explain(&self, reason: &'static str, candidate: &ServiceSpec) -> Refusal {
        let node = self.facts.name.clone();
        let asked = demand(candidate);
        let free = free(&self.view.capacity, &self.view.allocated);
        let insufficient = |resource, asked: String, free: String| Refusal::Insufficient {
            node: node.clone(),
            resource,
            asked,
            free,
        };
        match reason {
            "insufficient cpu" => insufficient(
                "cpu",
                format!("{}m", asked.cpu_millis),
                format!("{}m", free.cpu_millis),
            ),
            "insufficient memory" => insufficient(
                "memory",
                format!("{} MiB", asked.memory_mib),
                format!("{} MiB", free.memory_mib),
            ),
            "insufficient gpu" => {
                insufficient("gpu", asked.gpus.to_string(), free.gpus.to_string())
            }
            "insufficient storage" => insufficient(
                "storage",
                format!("{} MiB", asked.storage_mib),
                format!("{} MiB", free.storage_mib),
            ),
            "gpu model mismatch" => Refusal::GpuModel {
                node: node.clone(),
                asked: candidate.resources.gpu_model.clone().unwrap_or_default(),
                have: self
                    .view
                    .labels
                    .get(canopy_sched::GPU_MODEL_LABEL)
                    .cloned()
                    .unwrap_or_else(|| "none".into()),
            },
            reason => Refusal::Other { node, reason },
        }
    }
}

fn host_ports(spec: &ServiceSpec) -> impl Iterator<Item = (u16, &'static str)> + '_ {
    spec.ports.iter().filter_map(|p| {
        let protocol = match p.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        p.host_port.map(|port| (port, protocol))
    })
}

/// Admits one candidate against what `running` holds.
pub fn admit<'s>(
    node: &NodeFacts,
    running: impl Iterator<Item = &'s ServiceSpec>,
    candidate: &ServiceSpec,
) -> Result<(), Refusal> {
    Ledger::new(node, running).check(candidate)
}

/// Admits a batch in order: each candidate sees what the ones before it reserved.
pub fn admit_batch<'s, 'c>(
    node: &NodeFacts,
    running: impl Iterator<Item = &'s ServiceSpec>,
    candidates: impl IntoIterator<Item = &'c ServiceSpec>,
) -> Vec<Result<(), Refusal>> {
    let mut ledger = Ledger::new(node, running);
    candidates.into_iter().map(|c| ledger.admit(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cpu_millis: u64, memory_mib: u64, storage_mib: u64) -> NodeFacts {
        NodeFacts {
            name: "edge-1".into(),
            runtimes: vec![RuntimeKind::Process, RuntimeKind::Container],
            capabilities: BTreeMap::new(),
            sandboxes: Vec::new(),
            kvm: false,
            capacity: ResourceAmounts {
                cpu_millis,
                memory_mib,
                gpus: 0,
                storage_mib,
            },
            labels: BTreeMap::new(),
            allowed_host_paths: Vec::new(),
        }
    }

    fn spec(json: serde_json::Value) -> ServiceSpec {
        let mut base = serde_json::json!({
            "name": "s", "runtime": "process", "command": ["/bin/true"],
            "resources": {"cpu": "100m", "memory": "64Mi"}
        });
        if let (Some(base), Some(more)) = (base.as_object_mut(), json.as_object()) {
            base.extend(more.clone());
        }
        match serde_json::from_value(base) {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    fn sized(cpu: &str, memory: &str, storage: &str) -> ServiceSpec {
        spec(serde_json::json!({
            "resources": {"cpu": cpu, "memory": memory, "storage": storage}
        }))
    }

    fn publishing(port: u16, protocol: &str) -> ServiceSpec {
        spec(serde_json::json!({
            "ports": [{"port": 80, "protocol": protocol, "hostPort": port}]
        }))
    }

    fn text(result: &Result<(), Refusal>) -> String {
        match result {
            Ok(()) => "admitted".into(),
            Err(refusal) => refusal.to_string(),
        }
    }

    #[test]
    fn a_sandbox_the_node_does_not_offer_is_refused() {
        let gvisor = spec(serde_json::json!({
            "runtime": "container", "image": "busybox", "command": [], "sandbox": "gvisor"
        }));
        let plain = node(1_000, 1_000, 0);
        let results = admit_batch(&plain, std::iter::empty(), [&gvisor]);
        assert_eq!(
            text(&results[0]),
            "sandbox gvisor is not available on node edge-1"
        );
        let offering = NodeFacts {
            sandboxes: vec![Sandbox::Gvisor],
            ..node(1_000, 1_000, 0)
        };
        let results = admit_batch(&offering, std::iter::empty(), [&gvisor]);
        assert_eq!(text(&results[0]), "admitted");
    }

    #[test]
    fn a_batch_is_admitted_in_order_each_seeing_the_earlier_reservations() {
        let facts = node(1_000, 1_000, 0);
        let a = sized("400m", "300Mi", "0");
        let results = admit_batch(
            &facts,
            std::iter::empty(),
            [&a, &a, &a, &sized("200m", "100Mi", "0")],
        );
        let texts: Vec<String> = results.iter().map(text).collect();
        assert_eq!(
            texts,
            [
                "admitted",
                "admitted",
                "insufficient cpu on node edge-1: 400m asked, 200m free",
                // The refused one reserved nothing: its room is still there.
                "admitted",
            ]
        );
    }

    #[test]
    fn what_already_runs_counts() {
        let facts = node(1_000, 1_000, 0);
        let running = [sized("100m", "900Mi", "0")];
        let result = admit(&facts, running.iter(), &sized("100m", "512Mi", "0"));
        assert_eq!(
            text(&result),
            "insufficient memory on node edge-1: 512 MiB asked, 100 MiB free"
        );
        assert_eq!(
            text(&admit(&facts, running.iter(), &sized("100m", "100Mi", "0"))),
            "admitted"
        );
    }

    #[test]
    fn storage_is_counted_within_a_batch_and_against_what_runs() {
        let facts = node(10_000, 10_000, 1_024);
        let disk = sized("100m", "64Mi", "600Mi");
        let results = admit_batch(&facts, std::iter::empty(), [&disk, &disk]);
        assert_eq!(
            text(&results[1]),
            "insufficient storage on node edge-1: 600 MiB asked, 424 MiB free"
        );
        let running = [sized("100m", "64Mi", "1Gi")];
        let result = admit(&facts, running.iter(), &sized("100m", "64Mi", "1Mi"));
        assert_eq!(
            text(&result),
            "insufficient storage on node edge-1: 1 MiB asked, 0 MiB free"
        );
    }

    #[test]
    fn a_host_port_is_published_once_per_protocol_also_within_a_batch() {
        let facts = node(10_000, 10_000, 0);
        let results = admit_batch(
            &facts,
            std::iter::empty(),
            [
                &publishing(8080, "tcp"),
                &publishing(8080, "udp"),
                &publishing(8080, "tcp"),
                &publishing(8081, "tcp"),
            ],
        );
        let texts: Vec<String> = results.iter().map(text).collect();
        assert_eq!(
            texts,
            [
                "admitted",
                "admitted",
                "host port 8080/tcp is already published on node edge-1",
                "admitted",
            ]
        );
        let running = [publishing(53, "udp")];
        assert_eq!(
            text(&admit(&facts, running.iter(), &publishing(53, "udp"))),
            "host port 53/udp is already published on node edge-1"
        );
    }

    #[test]
    fn host_ports_need_a_runtime_that_can_publish_them() {
        let mut facts = node(10_000, 10_000, 0);
        let netns = Capabilities {
            netns: true,
            ..Capabilities::default()
        };
        facts.capabilities.insert(RuntimeKind::Container, netns);
        let web = spec(serde_json::json!({
            "runtime": "container", "image": "web",
            "ports": [{"port": 80, "hostPort": 8080}]
        }));
        assert_eq!(
            text(&admit(&facts, std::iter::empty(), &web)),
            "runtime container on node edge-1 cannot publish host ports (no container network)"
        );
        // With the network hook around it, it can.
        let networked = netns.union(Capabilities {
            ports: true,
            networking: true,
            ..Capabilities::default()
        });
        facts.capabilities.insert(RuntimeKind::Container, networked);
        assert_eq!(text(&admit(&facts, std::iter::empty(), &web)), "admitted");
        // Processes listen on the node's ports themselves.
        facts
            .capabilities
            .insert(RuntimeKind::Process, Capabilities::default());
        assert_eq!(
            text(&admit(&facts, std::iter::empty(), &publishing(8080, "tcp"))),
            "admitted"
        );
    }

    #[test]
    fn a_runtime_the_node_lacks_is_refused_first() {
        let facts = node(0, 0, 0);
        let wasm = spec(serde_json::json!({"runtime": "wasm", "module": "m.wasm"}));
        assert_eq!(
            text(&admit(&facts, std::iter::empty(), &wasm)),
            "runtime wasm is not available on node edge-1"
        );
    }

    #[test]
    fn gpus_and_their_model_are_checked() {
        let mut facts = node(10_000, 10_000, 0);
        facts.capacity.gpus = 1;
        let two = spec(serde_json::json!({"resources": {"gpus": 2}}));
        assert_eq!(
            text(&admit(&facts, std::iter::empty(), &two)),
            "insufficient gpu on node edge-1: 2 asked, 1 free"
        );
        let a100 = spec(serde_json::json!({"resources": {"gpus": 1, "gpuModel": "nvidia-a100"}}));
        assert_eq!(
            text(&admit(&facts, std::iter::empty(), &a100)),
            "gpu model mismatch on node edge-1: nvidia-a100 asked, none here"
        );
        facts
            .labels
            .insert("gpu.model".into(), "nvidia-a100".into());
        assert_eq!(text(&admit(&facts, std::iter::empty(), &a100)), "admitted");
    }

    #[test]
    fn the_ledger_adds_up_what_it_admitted() {
        let facts = node(10_000, 10_000, 10_000);
        let running = [sized("100m", "10Mi", "1Mi")];
        let mut ledger = Ledger::new(&facts, running.iter());
        assert!(ledger.admit(&sized("200m", "20Mi", "2Mi")).is_ok());
        assert!(ledger.admit(&sized("20000m", "20Mi", "2Mi")).is_err());
        let total = ledger.allocated();
        assert_eq!(
            (total.cpu_millis, total.memory_mib, total.storage_mib),
            (300, 30, 3)
        );
    }
}
