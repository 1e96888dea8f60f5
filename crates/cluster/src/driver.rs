//! Cluster drivers: where a cluster's instances run. The `canopy` driver is today's cluster:
//! node agents join it and link over its node listener. A foreign driver hands instances to
//! another orchestrator instead, by presenting that orchestrator's nodes as the cluster's
//! members: each member is a node agent inside the cluster process, linked to the cluster
//! like any node (hello, heartbeats, statuses), whose one runtime is the orchestrator. So the
//! cluster's placement, summary, failure detection, autonomy and root link stay what they
//! are, and the agent's admission, restart policy and re-adoption are reused as they are.
//! See docs/drivers.md for the mapping of each driver (and of a Kubernetes one to come).

use async_trait::async_trait;
use canopy_model::ResourceAmounts;
use canopy_runtime::Runtime;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// `--driver`: which orchestrator runs the cluster's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DriverKind {
    /// Canopy node agents that join the cluster.
    #[default]
    Canopy,
    /// One Docker Engine, over its API.
    Docker,
    /// One Podman service, over its Docker-compatible API (the docker driver's code).
    Podman,
    /// A Docker Swarm, over a manager's API: its nodes are the members.
    Swarm,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Canopy => "canopy",
            DriverKind::Docker => "docker",
            DriverKind::Podman => "podman",
            DriverKind::Swarm => "swarm",
        }
    }
}

impl std::str::FromStr for DriverKind {
    type Err = DriverError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "canopy" => Ok(DriverKind::Canopy),
            "docker" => Ok(DriverKind::Docker),
            "podman" => Ok(DriverKind::Podman),
            "swarm" => Ok(DriverKind::Swarm),
            other => Err(DriverError::Unknown(other.to_string())),
        }
    }
}

/// One node of the foreign orchestrator, as the cluster sees it: a member with these facts,
/// whose instances `runtime` hands to the orchestrator.
pub struct ForeignMember {
    /// Unique in the cluster and the same across restarts (re-adoption goes by it).
    pub name: String,
    pub capacity: ResourceAmounts,
    /// `amd64`, `arm64`, ... as OCI names architectures.
    pub arch: String,
    pub labels: BTreeMap<String, String>,
    pub runtime: Arc<dyn Runtime>,
}

/// A foreign orchestrator behind a cluster.
#[async_trait]
pub trait ClusterDriver: Send + Sync + 'static {
    fn kind(&self) -> DriverKind;
    /// The orchestrator's nodes as the cluster's members; an error when it cannot be reached.
    async fn members(&self) -> Result<Vec<ForeignMember>, DriverError>;
    /// True while the orchestrator answers (checked every `every`), false while it does
    /// not: a member links to its cluster only while it is true, so an orchestrator that
    /// stops answering is a member lost, whose instances the root replaces elsewhere.
    fn reachability(&self, every: Duration) -> watch::Receiver<bool>;
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("unknown driver {0:?}: expected canopy, docker, podman or swarm")]
    Unknown(String),
    #[error("{endpoint}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("cannot reach the {driver} at {endpoint}: {reason}")]
    Unreachable {
        driver: &'static str,
        endpoint: String,
        reason: String,
    },
}
