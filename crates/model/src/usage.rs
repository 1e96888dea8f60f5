//! What a node measures of what it runs: CPU and memory in use, and how an instance is
//! reachable (addresses, ports) and what it runs (image digest, runtime).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Measured use, as `kubectl top` shows it (not the reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
}

impl Usage {
    pub fn add(&mut self, more: &Usage) {
        self.cpu_millis += more.cpu_millis;
        self.memory_bytes += more.memory_bytes;
    }
}

/// What the node that runs an instance says about it once it started.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceDetails {
    /// Its own IP addresses (a container's, from its network); none when it shares the node's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Published ports as `HOST:CONTAINER/PROTOCOL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// The digest of the image it runs (containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// The runtime that runs it: `process`, or `container (runc)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
}

impl InstanceDetails {
    pub fn is_empty(&self) -> bool {
        *self == InstanceDetails::default()
    }
}
