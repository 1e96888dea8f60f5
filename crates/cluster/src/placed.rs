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
    /// Since when (unix ms) its node has violated a soft constraint: after the constraint's
    /// convergence time, the instance moves if a better node exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_violation_since: Option<i64>,
    /// While moving: the node still running the old copy, stopped once the new one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draining: Option<String>,
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
            soft_violation_since: None,
            draining: None,
        }
    }

    /// The shortest convergence time of the service's soft constraints, seconds.
    pub fn convergence_time(&self) -> Option<u64> {
        self.workload
            .spec
            .constraints
            .iter()
            .filter(|c| c.rigidness.is_some_and(|r| r < 1.0))
            .filter_map(|c| c.convergence_time)
            .min()
    }

    /// Gives up a move (see `draining`): the old copy never stopped, so it simply stays, and
    /// the violation's clock starts again. False when no move was under way.
    pub fn cancel_move(&mut self, why: &str) -> bool {
        let Some(old) = self.draining.take() else {
            return false;
        };
        self.node = Some(old.clone());
        self.soft_violation_since = Some(unix_ms(OffsetDateTime::now_utc()));
        self.set(
            InstanceState::Running,
            format!("stays on node {old}: {why}"),
        );
        true
    }

    /// Same namespace, application and service.
    pub fn same_service(&self, other: &Placed) -> bool {
        let (a, b) = (&self.workload, &other.workload);
        (&a.namespace, &a.application, &a.service) == (&b.namespace, &b.application, &b.service)
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
