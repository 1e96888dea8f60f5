//! Fine placement: the root's assignments placed on nodes, refusals passed up, revocations
//! passed down.

use crate::effects::{Effects, ToNode};
use crate::placed::{Placed, gone};
use crate::state::{ClusterState, Now};
use crate::views::reserve;
use canopy_model::{Desired, InstanceState};
use canopy_sched::{Placement, Request, place_on_node_explained};
use canopy_tier::{Assignment, Reported, Revocation};

impl ClusterState {
    /// Places a batch of assignments in order, each seeing the reservations of those before
    /// it; the executor commits the batch once.
    pub fn assign(&mut self, assignments: Vec<Assignment>, now: Now, fx: &mut Effects) {
        self.refresh_views();
        for assignment in assignments {
            self.admit(assignment, now, fx);
        }
    }

    fn admit(&mut self, assignment: Assignment, now: Now, fx: &mut Effects) {
        if let Some(existing) = self.instances.get(&assignment.id) {
            if existing.generation >= assignment.generation {
                // A repeat (reconnect) or an outdated assignment: say where it stands.
                fx.report(existing.status(self.name()));
                return;
            }
            let existing = existing.clone();
            self.revoke_copies(&existing, "replaced by a newer assignment", fx);
        }
        let mut placed = Placed::new(
            assignment.id.clone(),
            assignment.generation,
            assignment.workload,
            now.unix_ms,
        );
        placed.secrets = assignment.secrets;
        self.instances.insert(placed.id.clone(), placed);
        self.place(&assignment.id, now, fx);
    }

    /// Places instance `id` on a node (its views must be current) and sends it there; if no
    /// node fits, the root hears why and tries another cluster.
    pub(crate) fn place(&mut self, id: &str, now: Now, fx: &mut Effects) {
        let Some(context) = self.context(id) else {
            return;
        };
        let Some(placed) = self.instances.get(id) else {
            return;
        };
        let mut request = Request::new(&placed.workload.spec, &placed.refused);
        request.context = Some(&context);
        fx.placements.attempts += 1;
        match place_on_node_explained(&request, &self.views) {
            Ok(placement) => self.bind(id, &placement, now, fx),
            Err(explanation) => {
                let why = canopy_tier::metrics::failure_reason(&explanation);
                fx.placements.failures.push(why.to_string());
                // Nodes that refused it said why: the root (and the user) hear it verbatim.
                let reason = match placed.refused.is_empty() {
                    true => format!("cluster {}: {explanation}", self.name()),
                    false => format!("cluster {}: {explanation}; {}", self.name(), placed.reason),
                };
                self.finish(id, Reported::Refused, &reason, now, fx);
            }
        }
    }

    /// Sends instance `id` to the node `placement` chose, noting a soft violation's start.
    fn bind(&mut self, id: &str, placement: &Placement, now: Now, fx: &mut Effects) {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(id) else {
            return;
        };
        let node = placement.name.clone();
        let reason = if placement.violated.is_empty() {
            placed.soft_violation_since = None;
            format!("placed on node {node}")
        } else {
            placed.soft_violation_since = Some(now.unix_ms);
            let kinds: Vec<&str> = placement.violated.iter().map(|v| v.kind).collect();
            format!(
                "placed on node {node}; preference not met: {}",
                kinds.join(", ")
            )
        };
        if placed.state != InstanceState::ClusterScheduled {
            // Lost with its node, or refused by it: placed afresh.
            placed.set(InstanceState::ClusterScheduled, reason.clone(), now.unix_ms);
        }
        placed.node = Some(node.clone());
        placed.pid = None;
        placed.set(InstanceState::NodeScheduled, reason, now.unix_ms);
        let assignment = assignment_of(placed);
        let status = placed.status(&cluster);
        let spec = placed.workload.spec.clone();
        fx.decide(placed);
        reserve(&mut self.views, &node, &spec);
        fx.send(&node, ToNode::Assign(Box::new(assignment)));
        fx.report(status);
    }

    /// The root no longer wants instance `id` (at `revocation.generation` or older).
    pub fn revoke(&mut self, revocation: Revocation, now: Now, fx: &mut Effects) {
        let Some(placed) = self.instances.get(&revocation.id).cloned() else {
            fx.report(gone(
                &revocation.id,
                revocation.generation,
                Reported::State(InstanceState::Terminated),
                "not on this cluster",
                self.name(),
                now.unix_ms,
            ));
            return;
        };
        if placed.generation > revocation.generation {
            return;
        }
        let on_a_linked_node = placed.node.as_deref().is_some_and(|n| self.linked(n));
        self.revoke_copies(&placed, &revocation.reason, fx);
        if !on_a_linked_node {
            // Never reached a node, or its node is gone: nothing left to stop here. Should the
            // node come back, its hello is diffed and the stale copy revoked then.
            let state = Reported::State(InstanceState::Terminated);
            self.finish(&placed.id, state, "stopped", now, fx);
            return;
        }
        // Asked, not yet observed: the node says when it stops (Terminating) and when it
        // is gone (Terminated).
        if let Some(p) = self.instances.get_mut(&placed.id) {
            p.moving = None;
            p.desired = Desired::Stop;
            fx.decide(p);
        }
    }

    /// Asks every node holding a copy of `placed` to stop it.
    pub(crate) fn revoke_copies(&self, placed: &Placed, reason: &str, fx: &mut Effects) {
        for node in placed.nodes() {
            fx.send(
                node,
                ToNode::Revoke(Revocation::new(&placed.id, placed.generation, reason)),
            );
        }
    }

    /// Forgets an instance this cluster is done with and tells the root how it ended.
    pub(crate) fn finish(
        &mut self,
        id: &str,
        end: Reported,
        reason: &str,
        now: Now,
        fx: &mut Effects,
    ) {
        if let Some(placed) = self.instances.remove(id) {
            fx.forget(id);
            fx.report(gone(
                id,
                placed.generation,
                end,
                reason,
                self.name(),
                now.unix_ms,
            ));
        }
    }
}

pub(crate) fn assignment_of(placed: &Placed) -> Assignment {
    Assignment {
        id: placed.id.clone(),
        generation: placed.generation,
        workload: placed.workload.clone(),
        secrets: placed.secrets.clone(),
    }
}
