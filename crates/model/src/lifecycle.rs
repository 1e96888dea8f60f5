//! The instance lifecycle, on two axes as Nomad's allocations keep them: what the instance's
//! owner wants ([`Desired`]: run or stop) and what its tiers observe ([`InstanceState`]).
//!
//! ```text
//!   Pending ─▶ ClusterScheduled ─▶ NodeScheduled ─▶ Starting ─▶ Running ─▶ Succeeded
//!      ▲             │    ▲              │             ▲   │        │   │
//!      └── refused ──┘    └── refused ───┘             │   ▼        │   └─▶ Failed
//!                                                 BackOff ◀─────────┘         ▲
//!                                                        └─ policy gives up ──┘
//!   every live state ─▶ Lost ─▶ Pending (the root replaces) | ClusterScheduled (the cluster)
//!   a state on a node (live or ended) ─▶ Terminating (its node stops and removes it) ─▶ Terminated
//!   every state but Terminated ─▶ Terminated (forgotten before it ran, or confirmed gone)
//! ```
//!
//! The two axes are stored apart. The owner (the root for its instances, a cluster for what
//! the root assigned it) only ever sets [`Desired`]: asking for a stop changes no observed
//! state, and the instance stays `Running` until its node says it is stopping
//! (`Terminating`) or gone (`Terminated`); users see `Terminating` from the moment the stop
//! is asked ([`shown_state`]). What becomes of an instance whose copy disappears (refused,
//! lost, missing from a hello) follows from what is desired ([`when_gone`]), not
//! from a state check at each site.
//!
//! A child reports observed states up; a parent applies a report only where
//! [`InstanceState::can_reach`] allows it, so a late `Starting` never undoes a `Terminating`
//! the node already reported. Restarts, the last termination and readiness are kept beside
//! the state, not folded into it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What the instance's owner wants of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum Desired {
    #[default]
    Run,
    Stop,
}

/// What becomes of an instance whose copy went away under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenGone {
    /// It was to stop anyway: it has ended (`Terminated`).
    Ends,
    /// It is to run: it is placed again (elsewhere, when a node or cluster refused or lost it).
    PlaceAgain,
}

impl Desired {
    pub fn is_run(self) -> bool {
        self == Desired::Run
    }
}

/// What becomes of an instance whose copy was refused, lost, or is missing from its child's
/// hello: one asked to stop (or that its node was stopping) has ended; any other is placed
/// again.
pub fn when_gone(desired: Desired, state: InstanceState) -> WhenGone {
    if desired == Desired::Stop || state == InstanceState::Terminating {
        WhenGone::Ends
    } else {
        WhenGone::PlaceAgain
    }
}

/// The state shown to users: `Terminating` once a stop is asked of an instance a node may
/// still hold (running or ended), before the node confirms it, as `kubectl get pods` shows a
/// pod being deleted.
pub fn shown_state(desired: Desired, state: InstanceState) -> InstanceState {
    if desired == Desired::Stop && !matches!(state, InstanceState::Terminated | InstanceState::Lost)
    {
        InstanceState::Terminating
    } else {
        state
    }
}

/// Observed lifecycle state; see the module diagram.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum InstanceState {
    /// Waiting for a placement; `reason` says why it has none yet.
    Pending,
    ClusterScheduled,
    NodeScheduled,
    Starting,
    Running,
    /// Exited (or could not start) and waits out its restart delay; `reason` says why it
    /// ended, the last termination what it returned.
    BackOff,
    Succeeded,
    /// Ended and its restart policy gives up.
    Failed,
    /// Its node or cluster stopped reporting; a replacement is placed elsewhere.
    Lost,
    /// Asked to stop; waiting for its node to confirm.
    Terminating,
    Terminated,
}

/// Every state, in lifecycle order.
pub const INSTANCE_STATES: [InstanceState; 11] = [
    InstanceState::Pending,
    InstanceState::ClusterScheduled,
    InstanceState::NodeScheduled,
    InstanceState::Starting,
    InstanceState::Running,
    InstanceState::BackOff,
    InstanceState::Succeeded,
    InstanceState::Failed,
    InstanceState::Lost,
    InstanceState::Terminating,
    InstanceState::Terminated,
];

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "Pending",
            InstanceState::ClusterScheduled => "ClusterScheduled",
            InstanceState::NodeScheduled => "NodeScheduled",
            InstanceState::Starting => "Starting",
            InstanceState::Running => "Running",
            InstanceState::BackOff => "BackOff",
            InstanceState::Succeeded => "Succeeded",
            InstanceState::Failed => "Failed",
            InstanceState::Lost => "Lost",
            InstanceState::Terminating => "Terminating",
            InstanceState::Terminated => "Terminated",
        }
    }

    /// States from which the instance will not run again by itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            InstanceState::Succeeded
                | InstanceState::Failed
                | InstanceState::Lost
                | InstanceState::Terminated
        )
    }

    /// Whether it holds (or is about to hold) resources on a node or cluster.
    pub fn is_live(self) -> bool {
        !self.is_final()
    }

    /// Whether the edge `self → next` exists in the lifecycle. Staying put is always legal
    /// (a new reason, pid or restart count on the same state).
    pub fn can_become(self, next: InstanceState) -> bool {
        use InstanceState::*;
        if self == next {
            return true;
        }
        match (self, next) {
            // Its node stops it; then only confirmation.
            (Terminated, _) => false,
            (Terminating, Terminated) => true,
            (Terminating, _) => false,
            // Its node stops it, or removes what an ended one left there.
            (NodeScheduled | Starting | Running | BackOff | Succeeded | Failed, Terminating) => {
                true
            }
            // Forgotten before it ran anywhere, or confirmed gone.
            (_, Terminated) => true,
            (Pending, ClusterScheduled) => true,
            // A cluster refused it, or gave it back (stopped unasked, lost).
            (ClusterScheduled | NodeScheduled | Starting | Running | BackOff | Lost, Pending) => {
                true
            }
            (ClusterScheduled, NodeScheduled) => true,
            // A node refused it, or its node was lost and the cluster places it again.
            (NodeScheduled | Starting | Running | BackOff | Lost, ClusterScheduled) => true,
            // Admitted; or re-adopted running after an agent restart.
            (NodeScheduled, Starting | Running) => true,
            (Starting, Running) => true,
            // Started again without a delay (its agent restarted, or a liveness restart).
            (Running, Starting) => true,
            (BackOff, Starting) => true,
            (Starting | Running, BackOff) => true,
            // Ended for good: by exit (Succeeded/Failed), or the policy gave up in back-off.
            (NodeScheduled | Starting | Running, Succeeded | Failed) => true,
            (BackOff, Failed) => true,
            (ClusterScheduled | NodeScheduled | Starting | Running | BackOff, Lost) => true,
            _ => false,
        }
    }

    /// Whether `next` lies ahead of `self` on some path of the lifecycle. A child's report
    /// may skip states its parent never heard of (a hello after the link was down, a
    /// lazily written state lost in a crash), but never leads back out of a stop or an end.
    pub fn can_reach(self, next: InstanceState) -> bool {
        let mut seen = [false; INSTANCE_STATES.len()];
        let mut frontier = vec![self];
        seen[self as usize] = true;
        while let Some(state) = frontier.pop() {
            if state == next {
                return true;
            }
            for candidate in INSTANCE_STATES {
                if !seen[candidate as usize] && state.can_become(candidate) {
                    seen[candidate as usize] = true;
                    frontier.push(candidate);
                }
            }
        }
        false
    }

    /// Whether it may be placed (on a cluster by the root, on a node by its cluster) when it
    /// is to run.
    pub fn can_place(self) -> bool {
        matches!(
            self,
            InstanceState::Pending | InstanceState::ClusterScheduled | InstanceState::Lost
        )
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An edge that is not in the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal instance transition {from} -> {to}")]
pub struct IllegalTransition {
    pub from: InstanceState,
    pub to: InstanceState,
}

/// How a run of the workload ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Termination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

impl Termination {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && self.signal.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::InstanceState::{self, *};
    use super::*;

    /// Every edge of the diagram; any pair not listed must be refused.
    const EDGES: &[(InstanceState, InstanceState)] = &[
        (Pending, ClusterScheduled),
        (ClusterScheduled, NodeScheduled),
        (ClusterScheduled, Pending),
        (NodeScheduled, ClusterScheduled),
        (NodeScheduled, Pending),
        (NodeScheduled, Starting),
        (NodeScheduled, Running),
        (NodeScheduled, Succeeded),
        (NodeScheduled, Failed),
        (Starting, Running),
        (Running, Starting),
        (Starting, BackOff),
        (Starting, Succeeded),
        (Starting, Failed),
        (Starting, ClusterScheduled),
        (Starting, Pending),
        (Running, BackOff),
        (Running, Succeeded),
        (Running, Failed),
        (Running, ClusterScheduled),
        (Running, Pending),
        (BackOff, Starting),
        (BackOff, Failed),
        (BackOff, ClusterScheduled),
        (BackOff, Pending),
        (ClusterScheduled, Lost),
        (NodeScheduled, Lost),
        (Starting, Lost),
        (Running, Lost),
        (BackOff, Lost),
        (Lost, Pending),
        (Lost, ClusterScheduled),
        (NodeScheduled, Terminating),
        (Starting, Terminating),
        (Running, Terminating),
        (BackOff, Terminating),
        (Succeeded, Terminating),
        (Failed, Terminating),
        (Terminating, Terminated),
    ];

    fn expected(from: InstanceState, to: InstanceState) -> bool {
        from == to
            || EDGES.contains(&(from, to))
            // Forgetting is open to every state that is not stopped already.
            || (to == Terminated && from != Terminating && from != Terminated)
    }

    #[test]
    fn every_pair_of_states_is_legal_exactly_when_the_diagram_has_its_edge() {
        for from in INSTANCE_STATES {
            for to in INSTANCE_STATES {
                assert_eq!(from.can_become(to), expected(from, to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_stopping_instance_is_never_revived_by_a_late_report() {
        for report in [Starting, Running, BackOff, NodeScheduled, Pending, Lost] {
            assert!(!Terminating.can_become(report), "Terminating -> {report}");
        }
        for state in INSTANCE_STATES {
            assert!(!Terminated.can_become(state) || state == Terminated);
        }
    }

    #[test]
    fn finished_instances_are_not_restarted_in_place() {
        for from in [Succeeded, Failed] {
            for to in [Starting, Running, BackOff, NodeScheduled] {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_report_may_skip_states_but_never_leave_a_stop_or_an_end() {
        assert!(ClusterScheduled.can_reach(Running), "a hello after a gap");
        assert!(Pending.can_reach(BackOff));
        assert!(Lost.can_reach(Running), "placed again and running");
        for from in [Succeeded, Failed] {
            for to in [Pending, Starting, Running, BackOff, NodeScheduled] {
                assert!(!from.can_reach(to), "{from} -> {to}");
            }
            assert!(from.can_reach(Terminated));
        }
        for to in INSTANCE_STATES {
            assert_eq!(
                Terminating.can_reach(to),
                matches!(to, Terminating | Terminated)
            );
            assert_eq!(Terminated.can_reach(to), to == Terminated);
        }
        // Every edge is a path.
        for (from, to) in EDGES {
            assert!(from.can_reach(*to), "{from} -> {to}");
        }
    }

    #[test]
    fn guards() {
        let placeable: Vec<_> = INSTANCE_STATES
            .into_iter()
            .filter(|s| s.can_place())
            .collect();
        assert_eq!(placeable, [Pending, ClusterScheduled, Lost]);
        let live: Vec<_> = INSTANCE_STATES
            .into_iter()
            .filter(|s| s.is_live())
            .collect();
        assert_eq!(
            live,
            [
                Pending,
                ClusterScheduled,
                NodeScheduled,
                Starting,
                Running,
                BackOff,
                Terminating
            ]
        );
    }

    #[test]
    fn what_is_desired_decides_the_fate_of_a_vanished_copy_and_what_users_see() {
        for state in INSTANCE_STATES {
            let stopping = state == Terminating;
            let run = if stopping {
                WhenGone::Ends
            } else {
                WhenGone::PlaceAgain
            };
            assert_eq!(when_gone(Desired::Run, state), run, "{state}");
            assert_eq!(when_gone(Desired::Stop, state), WhenGone::Ends, "{state}");
            assert_eq!(shown_state(Desired::Run, state), state);
            let stopping = shown_state(Desired::Stop, state);
            if !matches!(state, Terminated | Lost) {
                assert_eq!(stopping, Terminating, "{state}");
            } else {
                assert_eq!(stopping, state, "{state}");
            }
        }
        assert_eq!(Desired::default(), Desired::Run);
    }

    #[test]
    fn termination_success_needs_exit_zero_and_no_signal() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let ended = |exit_code, signal| Termination {
            exit_code,
            signal,
            reason: String::new(),
            at,
        };
        assert!(ended(Some(0), None).success());
        assert!(!ended(Some(1), None).success());
        assert!(!ended(None, Some(9)).success());
        assert!(!ended(None, None).success());
    }

    #[test]
    fn every_state_has_its_own_name() {
        let names: std::collections::BTreeSet<_> =
            INSTANCE_STATES.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), INSTANCE_STATES.len());
        for state in INSTANCE_STATES {
            let json = serde_json::to_string(&state).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }
}
