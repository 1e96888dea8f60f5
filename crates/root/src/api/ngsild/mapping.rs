//! Canopy's objects as NGSI-LD entities, named as the aerOS data model names them (the
//! Smart Data Model `dataModel.IT`): a cluster is a `Domain`, a node an
//! `InfrastructureElement`, a service a `Service`, an instance a `ServiceComponent`.
//! Pure functions; docs/ngsi-ld.md lists every attribute with its unit.

use super::entity::{Entity, urn};
use crate::records::ServiceView;
use canopy_model::{ClusterInfo, Instance, MemberState, NodeInfo};
use serde_json::json;

pub const DOMAIN: &str = "Domain";
pub const INFRASTRUCTURE_ELEMENT: &str = "InfrastructureElement";
pub const SERVICE: &str = "Service";
pub const SERVICE_COMPONENT: &str = "ServiceComponent";

/// Every type this view serves, for `GET /types`.
pub const TYPES: [&str; 4] = [DOMAIN, INFRASTRUCTURE_ELEMENT, SERVICE, SERVICE_COMPONENT];

/// A node that reports no trust score counts as fully trusted, as the scheduler counts it.
const DEFAULT_TRUST: f64 = 1.0;

/// An entity and the namespace it belongs to (`None`: infrastructure, every role reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct Scoped {
    pub entity: Entity,
    pub namespace: Option<String>,
}

pub fn domain_id(cluster: &str) -> String {
    urn(DOMAIN, &[cluster])
}

pub fn element_id(cluster: &str, node: &str) -> String {
    urn(INFRASTRUCTURE_ELEMENT, &[cluster, node])
}

pub fn service_id(namespace: &str, application: &str, service: &str) -> String {
    urn(SERVICE, &[namespace, application, service])
}

pub fn component_id(instance: &str) -> String {
    urn(SERVICE_COMPONENT, &[instance])
}

fn status(state: MemberState) -> &'static str {
    match state {
        MemberState::Ready => "Ready",
        MemberState::Unreachable => "Unreachable",
    }
}

/// Cores as a number (the model counts cores; Canopy millicores).
fn cores(millis: u64) -> f64 {
    millis as f64 / 1000.0
}

/// The data model's architecture names (`AMD64`, `ARM64`, ...) for Go/Rust/uname spellings.
pub fn architecture(arch: &str) -> String {
    match arch {
        "amd64" | "x86_64" => "AMD64".into(),
        "arm64" | "aarch64" => "ARM64".into(),
        "arm" | "armv7" | "arm32" => "ARM32".into(),
        "riscv64" => "RISC-V".into(),
        "ppc64le" | "powerpc64le" => "PPC64LE".into(),
        "s390x" => "S390X".into(),
        "mips64le" | "mips64el" => "MIPS64LE".into(),
        other => other.to_uppercase(),
    }
}

pub fn cluster(cluster: &ClusterInfo) -> Scoped {
    let mut e = Entity::new(DOMAIN, domain_id(&cluster.name));
    e.property("name", cluster.name.as_str())
        .property("domainStatus", status(cluster.state))
        .property("nodeCount", cluster.nodes)
        .property("cpuCores", cores(cluster.capacity.cpu_millis))
        .property("ramCapacity", cluster.capacity.memory_mib)
        .property(
            "availableRam",
            cluster
                .capacity
                .memory_mib
                .saturating_sub(cluster.allocated.memory_mib),
        )
        .property("allocatedCpuCores", cores(cluster.allocated.cpu_millis));
    if let Some(location) = &cluster.location {
        e.point("location", location.lat, location.lon);
    }
    if !cluster.labels.is_empty() {
        e.property("labels", json!(cluster.labels));
    }
    Scoped {
        entity: e,
        namespace: None,
    }
}

pub fn node(node: &NodeInfo) -> Scoped {
    let mut e = Entity::new(
        INFRASTRUCTURE_ELEMENT,
        element_id(&node.cluster, &node.name),
    );
    // The model's status words: an unreachable node is `Disabled`, a cordoned one `Maintenance`.
    let state = match (node.state, node.unschedulable) {
        (MemberState::Unreachable, _) => "Disabled",
        (MemberState::Ready, true) => "Maintenance",
        (MemberState::Ready, false) => "Ready",
    };
    let runtimes: Vec<&str> = node.runtimes.iter().map(|r| r.as_str()).collect();
    e.property("hostname", node.name.as_str())
        .relationship("domain", domain_id(&node.cluster))
        .property("infrastructureElementStatus", state)
        .property("cpuArchitecture", architecture(&node.arch))
        .property("cpuCores", cores(node.capacity.cpu_millis))
        .property("ramCapacity", node.capacity.memory_mib)
        .property(
            "availableRam",
            node.capacity
                .memory_mib
                .saturating_sub(node.allocated.memory_mib),
        )
        .property("allocatedCpuCores", cores(node.allocated.cpu_millis))
        .property("gpu", node.capacity.gpus > 0)
        .property("containerTechnology", json!(runtimes))
        .property("trustScore", DEFAULT_TRUST)
        .property("unschedulable", node.unschedulable)
        .property("instanceCount", node.instances);
    if let Some(usage) = &node.usage {
        let percent = if node.capacity.cpu_millis == 0 {
            0.0
        } else {
            usage.cpu_millis as f64 * 100.0 / node.capacity.cpu_millis as f64
        };
        e.property("currentCpuUsage", percent)
            .property("currentRamUsage", usage.memory_bytes / (1024 * 1024));
    }
    if let Some(location) = &node.location {
        e.point("location", location.lat, location.lon);
    }
    if !node.labels.is_empty() {
        e.property("labels", json!(node.labels));
    }
    Scoped {
        entity: e,
        namespace: None,
    }
}

pub fn service(view: &ServiceView) -> Scoped {
    let mut e = Entity::new(
        SERVICE,
        service_id(&view.namespace, &view.application, &view.name),
    );
    e.property("name", view.name.as_str())
        .property("namespace", view.namespace.as_str())
        .property("application", view.application.as_str())
        .property("runtime", view.runtime.as_str())
        .property("artifact", view.artifact.as_str())
        .property("replicas", view.status.desired)
        .property("runningReplicas", view.status.running)
        .property("readyReplicas", view.status.ready);
    Scoped {
        entity: e,
        namespace: Some(view.namespace.clone()),
    }
}

pub fn instance(instance: &Instance) -> Scoped {
    let mut e = Entity::new(SERVICE_COMPONENT, component_id(&instance.id));
    e.relationship(
        "service",
        service_id(
            &instance.namespace,
            &instance.application,
            &instance.service,
        ),
    )
    .property("serviceComponentStatus", instance.display_state())
    .property("namespace", instance.namespace.as_str())
    .property("replica", instance.replica)
    .property("ready", instance.ready)
    .property("restarts", instance.restarts);
    if let Some(cluster) = &instance.cluster {
        e.relationship("domain", domain_id(cluster));
        if let Some(node) = &instance.node {
            e.relationship("infrastructureElement", element_id(cluster, node));
        }
    }
    if let Some(reason) = &instance.reason {
        e.property("reason", reason.as_str());
    }
    Scoped {
        entity: e,
        namespace: Some(instance.namespace.clone()),
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
