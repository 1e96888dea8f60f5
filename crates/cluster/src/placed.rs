//! One instance as its cluster tracks it, persisted so a restarted cluster loses nothing.

use canopy_model::{Desired, InstanceDetails, InstanceState, Termination, WhenGone, when_gone};
use canopy_tier::{Reported, StatusReport, Workload};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placed {
    pub id: String,
    /// The root's generation of the assignment.
    pub generation: u64,
    pub workload: Workload,
    /// The values of the secrets the workload references: never in this record's JSON
    /// (the executor seals them into a record of their own, see `sealed`).
    #[serde(skip)]
    pub secrets: canopy_model::SecretValues,
    /// The node running (or about to run) the serving copy.
    pub node: Option<String>,
    /// Stop once the root revoked it; the observed `state` stays its node's word.
    #[serde(default)]
    pub desired: Desired,
    pub state: InstanceState,
    pub reason: String,
    pub pid: Option<u32>,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<Termination>,
    #[serde(default)]
    pub ready: bool,
    /// Address, ports, image, runtime, as its node reported them.
    #[serde(default, skip_serializing_if = "InstanceDetails::is_empty")]
    pub details: InstanceDetails,
    /// Nodes that refused this instance; skipped when placing it again.
    pub refused: Vec<String>,
    /// When `state` was reached, unix ms.
    pub at_ms: i64,
    /// Since when (unix ms) its node has violated a soft constraint: after the constraint's
    /// convergence time, the instance moves if a better node exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_violation_since: Option<i64>,
    /// A move under way: a second copy starting on a better node while this one serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving: Option<Move>,
}

/// A move to a node that meets the instance's preferences better. The old copy serves (and
/// keeps its reservation) until the new one runs; a refused or lost new copy cancels it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub to: String,
    /// The new copy's state as its node reports it.
    pub state: InstanceState,
    pub since_ms: i64,
}

impl Placed {
    pub fn new(id: String, generation: u64, workload: Workload, now_ms: i64) -> Placed {
        Placed {
            id,
            generation,
            workload,
            secrets: Default::default(),
            node: None,
            desired: Desired::Run,
            state: InstanceState::ClusterScheduled,
            reason: "accepted by the cluster".into(),
            pid: None,
            restarts: 0,
            last_termination: None,
            ready: false,
            details: InstanceDetails::default(),
            refused: Vec::new(),
            at_ms: now_ms,
            soft_violation_since: None,
            moving: None,
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

    /// Same namespace, application and service.
    pub fn same_service(&self, other: &Placed) -> bool {
        let (a, b) = (&self.workload, &other.workload);
        (&a.namespace, &a.application, &a.service) == (&b.namespace, &b.application, &b.service)
    }

    /// Moves to `state` if the lifecycle has that edge; false (and unchanged) otherwise.
    pub fn set(&mut self, state: InstanceState, reason: impl Into<String>, now_ms: i64) -> bool {
        if !self.state.can_become(state) {
            tracing::debug!(instance = %self.id, from = %self.state, to = %state, "transition refused");
            return false;
        }
        if state != self.state {
            self.at_ms = now_ms;
        }
        self.state = state;
        self.reason = reason.into();
        self.ready = state == InstanceState::Running && self.ready;
        true
    }

    /// Takes a state its node observed, which may skip states on the way (see
    /// [`InstanceState::can_reach`]); false (and unchanged) when it cannot lie ahead.
    pub fn observe(&mut self, state: InstanceState, reason: String, now_ms: i64) -> bool {
        if !self.state.can_reach(state) {
            return false;
        }
        if state != self.state {
            self.at_ms = now_ms;
        }
        self.state = state;
        self.reason = reason;
        true
    }

    /// What becomes of it when its node's copy goes away.
    pub fn when_gone(&self) -> WhenGone {
        when_gone(self.desired, self.state)
    }

    /// Whether it occupies resources on its node.
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// The nodes it holds resources on: its own, and a move's target.
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        self.node
            .as_deref()
            .into_iter()
            .chain(self.moving.as_ref().map(|m| m.to.as_str()))
    }

    /// The one status builder of the cluster: this instance as the root hears of it.
    pub fn status(&self, cluster: &str) -> StatusReport {
        StatusReport {
            node: self.node.clone(),
            pid: self.pid,
            restarts: self.restarts,
            ready: self.ready,
            last_termination: self.last_termination.clone(),
            details: self.details.clone(),
            ..StatusReport::new(
                &self.id,
                self.generation,
                Reported::State(self.state),
                &self.reason,
            )
            .on_cluster(cluster)
            .at(self.at_ms)
        }
    }
}

/// A status saying the root's instance is gone from here (or was never accepted).
pub fn gone(
    id: &str,
    generation: u64,
    state: Reported,
    reason: &str,
    cluster: &str,
    now_ms: i64,
) -> StatusReport {
    StatusReport::new(id, generation, state, reason)
        .on_cluster(cluster)
        .at(now_ms)
}
