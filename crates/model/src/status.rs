//! Observed state: instances and their lifecycle, clusters and nodes as the root sees them.

use crate::{Desired, IllegalTransition, InstanceState, Termination, WhenGone, shown_state};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// One lifecycle transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceEvent {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    pub state: InstanceState,
    pub reason: String,
}

/// One running copy of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub id: String,
    pub namespace: String,
    pub application: String,
    pub service: String,
    /// Replica ordinal within the service, from 0; addressable as `<n>.` in service names.
    pub replica: u32,
    /// Bumped whenever the instance's desired spec or placement changes; lower generations are stale.
    pub generation: u64,
    /// Fingerprint of the service spec it runs ([`crate::ServiceSpec::template_hash`]); an
    /// instance whose spec changed since is replaced.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template_hash: String,
    /// For a run of a job service: which of its jobs it belongs to (1 for a job without a
    /// schedule, counting up with each scheduled start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
    /// A run started on demand: its arguments, in place of its service's `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// What its owner wants: set by the root alone (a stop is asked here, never by
    /// changing `state`).
    #[serde(default)]
    pub desired: Desired,
    /// What its tiers last observed.
    pub state: InstanceState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub restarts: u32,
    /// How its last run ended, when it has ended at least once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_termination: Option<Termination>,
    /// Whether it serves: running and, once probes exist, passing its readiness probe.
    #[serde(default)]
    pub ready: bool,
    /// Addresses, ports, image digest and runtime, as its node reports them.
    #[serde(default, skip_serializing_if = "crate::InstanceDetails::is_empty")]
    pub details: crate::InstanceDetails,
    /// Measured CPU and memory use, while it runs (filled when read, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::Usage>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    /// Most recent transitions, oldest first (bounded).
    #[serde(default)]
    pub events: Vec<InstanceEvent>,
}

/// How a node words a start that failed for its image (the runner's "could not start: " and
/// the image error's "image "): what makes a back-off an `ImagePullBackOff`.
pub const IMAGE_START_FAILURE: &str = "could not start: image ";

/// How many transitions an instance keeps.
pub const MAX_INSTANCE_EVENTS: usize = 32;

impl Instance {
    /// The state as users of `kubectl get pods` know it: an instance waiting to restart is
    /// `ImagePullBackOff` when its image could not be pulled, else `CrashLoopBackOff`.
    pub fn display_state(&self) -> &'static str {
        match self.shown_state() {
            InstanceState::BackOff => {
                let pull_failed = self
                    .last_termination
                    .as_ref()
                    .is_some_and(|t| t.reason.starts_with(IMAGE_START_FAILURE));
                if pull_failed {
                    "ImagePullBackOff"
                } else {
                    "CrashLoopBackOff"
                }
            }
            state => state.as_str(),
        }
    }

    /// The observed state, or `Terminating` once a stop is asked ([`shown_state`]).
    pub fn shown_state(&self) -> InstanceState {
        shown_state(self.desired, self.state)
    }

    /// Whether the root may place it on a cluster.
    pub fn can_place(&self) -> bool {
        self.desired.is_run() && self.state.can_place()
    }

    /// Whether a stop has been asked (or its node reports stopping it) and is not confirmed.
    pub fn is_stopping(&self) -> bool {
        self.shown_state() == InstanceState::Terminating
    }

    /// What becomes of it when its copy goes away (refused, lost, stopped unasked).
    pub fn when_gone(&self) -> WhenGone {
        crate::when_gone(self.desired, self.state)
    }

    /// Asks it to stop. Observed state stays as it is while a cluster holds it (its node
    /// stops it, or removes what an ended run left, and confirms through the cluster); one
    /// that no cluster holds ends at once. False when a stop was asked already or it has
    /// been stopped.
    pub fn stop(&mut self, reason: impl Into<String>, at: OffsetDateTime) -> bool {
        if self.desired == Desired::Stop || self.state == InstanceState::Terminated {
            return false;
        }
        self.desired = Desired::Stop;
        let reason = reason.into();
        if self.cluster.is_some() && self.state != InstanceState::Lost {
            self.updated_at = at;
            self.record(InstanceState::Terminating, reason);
        } else {
            let _ = self.transition(InstanceState::Terminated, reason, at);
        }
        true
    }

    fn record(&mut self, state: InstanceState, reason: String) {
        self.events.push(InstanceEvent {
            at: self.updated_at,
            state,
            reason,
        });
        if self.events.len() > MAX_INSTANCE_EVENTS {
            let excess = self.events.len() - MAX_INSTANCE_EVENTS;
            self.events.drain(..excess);
        }
    }

    /// Moves to `state`, recording the transition, if the lifecycle has that edge; staying
    /// in the same state with a new reason is recorded too.
    pub fn transition(
        &mut self,
        state: InstanceState,
        reason: impl Into<String>,
        at: OffsetDateTime,
    ) -> Result<(), IllegalTransition> {
        self.move_to(state, reason, at, InstanceState::can_become)
    }

    /// Takes a state a child observed: it may skip states on the way
    /// ([`InstanceState::can_reach`]), never go back from a stop or an end.
    pub fn observe(
        &mut self,
        state: InstanceState,
        reason: impl Into<String>,
        at: OffsetDateTime,
    ) -> Result<(), IllegalTransition> {
        self.move_to(state, reason, at, InstanceState::can_reach)
    }

    fn move_to(
        &mut self,
        state: InstanceState,
        reason: impl Into<String>,
        at: OffsetDateTime,
        legal: fn(InstanceState, InstanceState) -> bool,
    ) -> Result<(), IllegalTransition> {
        if !legal(self.state, state) {
            return Err(IllegalTransition {
                from: self.state,
                to: state,
            });
        }
        let reason = reason.into();
        self.state = state;
        self.reason = (!reason.is_empty()).then(|| reason.clone());
        self.updated_at = at;
        self.record(state, reason);
        Ok(())
    }
}

/// Liveness of a cluster or node as seen by its parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MemberState {
    Ready,
    Unreachable,
}

/// Capacity or usage in the scheduler's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    pub cpu_millis: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    pub storage_mib: u64,
}

impl ResourceAmounts {
    pub fn add(&mut self, more: &ResourceAmounts) {
        self.cpu_millis += more.cpu_millis;
        self.memory_mib += more.memory_mib;
        self.gpus += more.gpus;
        self.storage_mib += more.storage_mib;
    }
}

/// A cluster as the root knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub name: String,
    pub state: MemberState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::GeoPoint>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub nodes: u32,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
    /// What the operator set (`canopy label cluster`); `labels` already include it.
    #[serde(default, skip_serializing_if = "crate::OperatorSettings::is_empty")]
    pub operator: crate::OperatorSettings,
    /// Vivaldi network coordinate among clusters, once it has probed others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinate: Option<NetworkCoordinate>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: OffsetDateTime,
}

/// A node as its cluster (and through it the root) knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    pub name: String,
    pub cluster: String,
    pub state: MemberState,
    pub arch: String,
    pub runtimes: Vec<crate::RuntimeKind>,
    /// Sandboxes its containers can run in (`gvisor`), once a probe sandbox started there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sandboxes: Vec<crate::Sandbox>,
    /// Its VMs (runtime `vm`) run under KVM; false: emulated (TCG), or no VMs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kvm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<crate::GeoPoint>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub capacity: ResourceAmounts,
    pub allocated: ResourceAmounts,
    pub instances: u32,
    /// Cordoned (`canopy cordon`): nothing new is placed there.
    #[serde(default)]
    pub unschedulable: bool,
    /// What the operator set (cordon, labels); `labels` and `unschedulable` already include it.
    #[serde(default, skip_serializing_if = "crate::OperatorSettings::is_empty")]
    pub operator: crate::OperatorSettings,
    /// Measured CPU and memory use of its instances, once it has sampled them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<crate::Usage>,
    /// Vivaldi network coordinate in its cluster's space, once the node has probed its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinate: Option<NetworkCoordinate>,
    /// Estimated round trip to its cluster orchestrator, ms (from the coordinates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_to_cluster_ms: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: OffsetDateTime,
}

/// A point in latency space (milliseconds): RTT between two nodes ≈ planar distance plus
/// both heights. `error` is the node's relative confidence (0 exact, 1.5 unknown).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NetworkCoordinate {
    pub x: f64,
    pub y: f64,
    pub height: f64,
    pub error: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backing_off(reason: &str) -> Instance {
        let at = OffsetDateTime::UNIX_EPOCH;
        Instance {
            id: "i".into(),
            namespace: "ns".into(),
            application: "app".into(),
            service: "web".into(),
            replica: 0,
            generation: 1,
            template_hash: String::new(),
            job: None,
            args: None,
            desired: Desired::Run,
            state: InstanceState::BackOff,
            reason: None,
            cluster: None,
            node: None,
            pid: None,
            restarts: 3,
            last_termination: Some(Termination {
                exit_code: None,
                signal: None,
                reason: reason.into(),
                at,
            }),
            ready: false,
            details: Default::default(),
            usage: None,
            created_at: at,
            updated_at: at,
            events: Vec::new(),
        }
    }

    #[test]
    fn a_back_off_is_shown_as_kubectl_users_know_it() {
        let pull = backing_off("could not start: image reg/x:1: registry reg unreachable");
        assert_eq!(pull.display_state(), "ImagePullBackOff");
        assert_eq!(
            backing_off("exited with code 1").display_state(),
            "CrashLoopBackOff"
        );
        let mut running = backing_off("exited with code 1");
        running.state = InstanceState::Running;
        assert_eq!(running.display_state(), "Running");
    }

    #[test]
    fn a_stop_changes_what_is_desired_not_what_was_observed() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let mut running = backing_off("");
        running.state = InstanceState::Running;
        running.cluster = Some("edge".into());
        assert!(running.stop("scaled down", at));
        assert_eq!(running.state, InstanceState::Running);
        assert_eq!(running.desired, Desired::Stop);
        assert_eq!(running.display_state(), "Terminating");
        assert!(running.is_stopping() && !running.can_place());
        assert!(!running.stop("again", at), "asked once");
        let last = running.events.last().expect("an event");
        assert_eq!(
            (last.state, last.reason.as_str()),
            (InstanceState::Terminating, "scaled down")
        );

        let mut pending = backing_off("");
        pending.state = InstanceState::Pending;
        assert!(pending.can_place());
        assert!(pending.stop("deleted", at));
        assert_eq!(
            pending.state,
            InstanceState::Terminated,
            "no cluster has it: it ends at once"
        );
        assert!(!pending.is_stopping());

        // An ended run still holds its node's files: its node is asked to remove them.
        let mut failed = backing_off("exited with code 1");
        failed.state = InstanceState::Failed;
        failed.cluster = Some("edge".into());
        assert!(failed.stop("deleted", at));
        assert_eq!(failed.display_state(), "Terminating");
        assert!(failed.is_stopping());
    }
}
