//! Instance status as the tiers report it to each other: the one type every tier builds and
//! reads, converted to and from the wire only here.

use crate::pb;
use crate::{from_unix_ms, unix_ms};
use canopy_model::{InstanceDetails, InstanceState, Termination};

/// What a child says about one of its parent's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// It is in this lifecycle state.
    State(InstanceState),
    /// The child could not place or admit it: the parent tries elsewhere.
    Refused,
}

/// One instance's status at one generation, as it travels up.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub id: String,
    pub generation: u64,
    pub state: Reported,
    pub reason: String,
    /// The node that runs it (filled by the node, kept by its cluster).
    pub node: Option<String>,
    /// The cluster it is on (filled by the cluster).
    pub cluster: Option<String>,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub ready: bool,
    pub last_termination: Option<Termination>,
    /// Addresses, ports, image digest, runtime (filled by the node).
    pub details: InstanceDetails,
    /// When the state was reached, unix ms.
    pub at_ms: i64,
}

impl StatusReport {
    /// A bare report: the instance is in `state` (at `at_ms`), nothing else known.
    pub fn new(id: &str, generation: u64, state: Reported, reason: impl Into<String>) -> Self {
        StatusReport {
            id: id.to_string(),
            generation,
            state,
            reason: reason.into(),
            node: None,
            cluster: None,
            pid: None,
            restarts: 0,
            ready: false,
            last_termination: None,
            details: InstanceDetails::default(),
            at_ms: 0,
        }
    }

    pub fn at(mut self, at_ms: i64) -> Self {
        self.at_ms = at_ms;
        self
    }

    pub fn on_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
    }

    pub fn on_cluster(mut self, cluster: &str) -> Self {
        self.cluster = Some(cluster.to_string());
        self
    }

    /// The lifecycle state, unless the report is a refusal.
    pub fn instance_state(&self) -> Option<InstanceState> {
        match self.state {
            Reported::State(state) => Some(state),
            Reported::Refused => None,
        }
    }

    /// Whether it says the instance is gone from the child (stopped or never accepted).
    pub fn is_gone(&self) -> bool {
        matches!(
            self.state,
            Reported::Refused | Reported::State(InstanceState::Terminated)
        )
    }
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

pub fn state_to_pb(state: InstanceState) -> pb::State {
    match state {
        InstanceState::Pending => pb::State::Pending,
        InstanceState::ClusterScheduled => pb::State::ClusterScheduled,
        InstanceState::NodeScheduled => pb::State::NodeScheduled,
        InstanceState::Starting => pb::State::Starting,
        InstanceState::Running => pb::State::Running,
        InstanceState::BackOff => pb::State::BackOff,
        InstanceState::Succeeded => pb::State::Succeeded,
        InstanceState::Failed => pb::State::Failed,
        InstanceState::Lost => pb::State::Lost,
        InstanceState::Terminating => pb::State::Terminating,
        InstanceState::Terminated => pb::State::Terminated,
    }
}

/// `None` for the wire's unspecified state.
pub fn reported_from_pb(state: pb::State) -> Option<Reported> {
    Some(Reported::State(match state {
        pb::State::Pending => InstanceState::Pending,
        pb::State::ClusterScheduled => InstanceState::ClusterScheduled,
        pb::State::NodeScheduled => InstanceState::NodeScheduled,
        pb::State::Starting => InstanceState::Starting,
        pb::State::Running => InstanceState::Running,
        pb::State::BackOff => InstanceState::BackOff,
        pb::State::Succeeded => InstanceState::Succeeded,
        pb::State::Failed => InstanceState::Failed,
        pb::State::Lost => InstanceState::Lost,
        pb::State::Terminating => InstanceState::Terminating,
        pb::State::Terminated => InstanceState::Terminated,
        pb::State::Rejected => return Some(Reported::Refused),
        pb::State::Unspecified => return None,
    }))
}

impl From<&Termination> for pb::Termination {
    fn from(t: &Termination) -> Self {
        pb::Termination {
            has_exit_code: t.exit_code.is_some(),
            exit_code: t.exit_code.unwrap_or(0),
            signal: t.signal.unwrap_or(0),
            reason: t.reason.clone(),
            at_ms: unix_ms(t.at),
        }
    }
}

impl From<&pb::Termination> for Termination {
    fn from(t: &pb::Termination) -> Self {
        Termination {
            exit_code: t.has_exit_code.then_some(t.exit_code),
            signal: (t.signal != 0).then_some(t.signal),
            reason: t.reason.clone(),
            at: from_unix_ms(t.at_ms),
        }
    }
}

impl From<&StatusReport> for pb::InstanceStatus {
    fn from(s: &StatusReport) -> Self {
        pb::InstanceStatus {
            id: s.id.clone(),
            generation: s.generation,
            state: match s.state {
                Reported::State(state) => state_to_pb(state),
                Reported::Refused => pb::State::Rejected,
            } as i32,
            reason: s.reason.clone(),
            node: s.node.clone().unwrap_or_default(),
            pid: s.pid.unwrap_or(0),
            restarts: s.restarts,
            at_ms: s.at_ms,
            cluster: s.cluster.clone().unwrap_or_default(),
            ready: s.ready,
            last_termination: s.last_termination.as_ref().map(pb::Termination::from),
            addresses: s.details.addresses.clone(),
            ports: s.details.ports.clone(),
            image_digest: s.details.image_digest.clone().unwrap_or_default(),
            runtime: s.details.runtime.clone().unwrap_or_default(),
        }
    }
}

impl TryFrom<&pb::InstanceStatus> for StatusReport {
    type Error = crate::TierError;

    fn try_from(s: &pb::InstanceStatus) -> Result<Self, Self::Error> {
        let state = pb::State::try_from(s.state)
            .ok()
            .and_then(reported_from_pb)
            .ok_or_else(|| {
                crate::TierError::Malformed(format!("status of {} without a state", s.id))
            })?;
        Ok(StatusReport {
            id: s.id.clone(),
            generation: s.generation,
            state,
            reason: s.reason.clone(),
            node: non_empty(&s.node),
            cluster: non_empty(&s.cluster),
            pid: (s.pid != 0).then_some(s.pid),
            restarts: s.restarts,
            ready: s.ready,
            last_termination: s.last_termination.as_ref().map(Termination::from),
            details: InstanceDetails {
                addresses: s.addresses.clone(),
                ports: s.ports.clone(),
                image_digest: non_empty(&s.image_digest),
                runtime: non_empty(&s.runtime),
            },
            at_ms: s.at_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::INSTANCE_STATES;

    #[test]
    fn every_state_and_a_refusal_survive_the_wire() {
        let states = INSTANCE_STATES.into_iter().map(Reported::State);
        for state in states.chain([Reported::Refused]) {
            let report = StatusReport::new("i", 3, state, "why");
            let back = StatusReport::try_from(&pb::InstanceStatus::from(&report));
            assert_eq!(back.ok(), Some(report));
        }
        let unspecified = pb::InstanceStatus::default();
        assert!(StatusReport::try_from(&unspecified).is_err());
    }

    #[test]
    fn a_full_report_survives_the_wire() {
        let report = StatusReport {
            pid: Some(42),
            restarts: 3,
            ready: true,
            last_termination: Some(Termination {
                exit_code: Some(2),
                signal: None,
                reason: "exited with 2".into(),
                at: from_unix_ms(1_700_000_000_123),
            }),
            details: InstanceDetails {
                addresses: vec!["10.88.0.7".into()],
                ports: vec!["8080:80/tcp".into()],
                image_digest: Some("sha256:abc".into()),
                runtime: Some("container (runc)".into()),
            },
            ..StatusReport::new("i", 7, Reported::State(InstanceState::BackOff), "x")
                .on_node("n")
                .on_cluster("c")
                .at(1_700_000_000_456)
        };
        let back = StatusReport::try_from(&pb::InstanceStatus::from(&report));
        assert_eq!(back.ok(), Some(report));
    }
}
