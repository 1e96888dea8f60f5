//! The `swarm` driver: a Docker Swarm, over a manager's API on a unix socket (the docker
//! driver's client, version negotiation and reachability), whose nodes are the cluster's
//! members: each with the node's resources, architecture and labels, and a runtime that
//! runs each instance as a Swarm service of one replica pinned to the node
//! ([`SwarmRuntime`]). Canopy places; Swarm runs. Reachable while the manager answers.

mod poll;
mod runtime;
pub mod spec;
mod tasks;

use crate::docker::{self, spec::Owner};
use crate::driver::{ClusterDriver, DriverError, DriverKind, ForeignMember};
use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{LocalNodeState, Node};
use canopy_model::ResourceAmounts;
pub use runtime::SwarmRuntime;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

pub struct SwarmDriver {
    endpoint: String,
    docker: Docker,
    cluster: String,
    labels: BTreeMap<String, String>,
}

/// A node's facts as a member's: (name, capacity, arch, labels) (pure).
fn describe(node: &Node) -> (String, ResourceAmounts, String, BTreeMap<String, String>) {
    let description = node.description.clone().unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    let hostname = description.hostname.unwrap_or_default();
    let id = node.id.clone().unwrap_or_default();
    let nano_cpus = resources
        .nano_cpus
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0);
    let memory = resources
        .memory_bytes
        .and_then(|m| u64::try_from(m).ok())
        .unwrap_or(0);
    let capacity = ResourceAmounts {
        cpu_millis: nano_cpus / 1_000_000,
        memory_mib: memory / (1024 * 1024),
        gpus: 0,
        storage_mib: 0,
    };
    let arch = docker::oci_arch(
        description
            .platform
            .and_then(|p| p.architecture)
            .as_deref()
            .unwrap_or_default(),
    );
    // The node's own labels (`docker node update --label-add`), as Canopy's constraints
    // see them.
    let mut labels: BTreeMap<String, String> = node
        .spec
        .as_ref()
        .and_then(|s| s.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    labels.insert("swarm.node.id".to_string(), id);
    if let Some(role) = node.spec.as_ref().and_then(|s| s.role) {
        labels.insert("swarm.role".to_string(), role.to_string());
    }
    if let Some(version) = description.engine.and_then(|e| e.engine_version) {
        labels.insert("docker.version".to_string(), version);
    }
    (
        docker::member_name("swarm", &hostname),
        capacity,
        arch,
        labels,
    )
}

impl SwarmDriver {
    /// Connects to the swarm manager at `endpoint`: an engine in swarm mode that is a
    /// manager, or the reason it is not. The services it makes belong to `cluster`.
    pub async fn connect(
        endpoint: &str,
        cluster: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<SwarmDriver, DriverError> {
        let docker = docker::connect_engine(DriverKind::Swarm, endpoint).await?;
        let info = docker.info().await.map_err(|e| DriverError::Unreachable {
            driver: docker::engine_name(DriverKind::Swarm),
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        if !active || swarm.control_available != Some(true) {
            return Err(DriverError::Endpoint {
                endpoint: endpoint.to_string(),
                reason:
                    "this engine is not a swarm manager (docker swarm init, or join as a manager)"
                        .to_string(),
            });
        }
        Ok(SwarmDriver {
            endpoint: endpoint.to_string(),
            docker,
            cluster: cluster.to_string(),
            labels,
        })
    }
}

#[async_trait]
impl ClusterDriver for SwarmDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Swarm
    }

    async fn members(&self) -> Result<Vec<ForeignMember>, DriverError> {
        let nodes = self
            .docker
            .list_nodes(None)
            .await
            .map_err(|e| DriverError::Unreachable {
                driver: docker::engine_name(DriverKind::Swarm),
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let mut members = Vec::new();
        for node in nodes {
            let Some(node_id) = node.id.clone() else {
                continue;
            };
            let (name, capacity, arch, node_labels) = describe(&node);
            let mut labels = self.labels.clone();
            labels.extend(node_labels);
            labels.insert("canopy.driver".to_string(), "swarm".to_string());
            let owner = Owner {
                cluster: self.cluster.clone(),
                member: name.clone(),
            };
            members.push(ForeignMember {
                name,
                capacity,
                arch,
                labels,
                runtime: SwarmRuntime::new(self.docker.clone(), owner, node_id),
            });
        }
        Ok(members)
    }

    fn reachability(&self, every: Duration) -> watch::Receiver<bool> {
        docker::reachability(
            self.docker.clone(),
            self.endpoint.clone(),
            DriverKind::Swarm,
            every,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{NodeDescription, NodeSpec, Platform, ResourceObject};
    use std::collections::HashMap;

    #[test]
    fn a_node_is_a_member_with_its_resources_and_labels() {
        let node = Node {
            id: Some("n1".into()),
            spec: Some(NodeSpec {
                labels: Some(HashMap::from([("zone".to_string(), "a".to_string())])),
                ..NodeSpec::default()
            }),
            description: Some(NodeDescription {
                hostname: Some("Edge_1".into()),
                platform: Some(Platform {
                    architecture: Some("x86_64".into()),
                    os: Some("linux".into()),
                }),
                resources: Some(ResourceObject {
                    nano_cpus: Some(2_000_000_000),
                    memory_bytes: Some(4 << 30),
                    generic_resources: None,
                }),
                ..NodeDescription::default()
            }),
            ..Node::default()
        };
        let (name, capacity, arch, labels) = describe(&node);
        assert_eq!(name, "swarm-edge-1");
        assert_eq!((capacity.cpu_millis, capacity.memory_mib), (2000, 4096));
        assert_eq!(arch, "amd64");
        assert_eq!(labels["zone"], "a");
        assert_eq!(labels["swarm.node.id"], "n1");
    }
}
