//! One instance as its cluster tracks it, persisted so a restarted cluster loses nothing.

use canopy_model::InstanceState;
use canopy_tier::{Workload, pb, state_to_pb, unix_ms};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub id: String,
    /// The root's generation of the assignment.
    pub generation: u64,
    pub workload: Workload,
    pub node: Option<String>,
    pub state: InstanceState,
    pub reason: String,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub restarts: u32,
    /// Nodes that refused this instance; skipped when placing it again.
    pub refused: Vec<String>,
    pub at_ms: i64,
}

impl Placed {
    pub fn new(id: String, generation: u64, workload: Workload) -> Placed {
        Placed {
            id,
            generation,
            workload,
            node: None,
            state: InstanceState::ClusterScheduled,
            reason: "accepted by the cluster".into(),
            pid: None,
            exit_code: None,
            restarts: 0,
            refused: Vec::new(),
            at_ms: unix_ms(OffsetDateTime::now_utc()),
        }
    }

    pub fn set(&mut self, state: InstanceState, reason: impl Into<String>) {
        self.state = state;
        self.reason = reason.into();
        self.at_ms = unix_ms(OffsetDateTime::now_utc());
    }

    /// Whether it occupies resources on its node.
    pub fn is_live(&self) -> bool {
        !self.state.is_final()
    }

    pub fn status(&self, cluster: &str) -> pb::InstanceStatus {
        pb::InstanceStatus {
            id: self.id.clone(),
            generation: self.generation,
            state: state_to_pb(self.state) as i32,
            reason: self.reason.clone(),
            node: self.node.clone().unwrap_or_default(),
            pid: self.pid.unwrap_or(0),
            has_exit_code: self.exit_code.is_some(),
            exit_code: self.exit_code.unwrap_or(0),
            restarts: self.restarts,
            at_ms: self.at_ms,
            cluster: cluster.to_string(),
        }
    }
}

/// A status saying the parent's instance is gone from here (or was never accepted).
pub fn terminal_status(
    id: &str,
    generation: u64,
    state: pb::State,
    reason: &str,
    cluster: &str,
) -> pb::InstanceStatus {
    pb::InstanceStatus {
        id: id.to_string(),
        generation,
        state: state as i32,
        reason: reason.to_string(),
        at_ms: unix_ms(OffsetDateTime::now_utc()),
        cluster: cluster.to_string(),
        ..pb::InstanceStatus::default()
    }
}
