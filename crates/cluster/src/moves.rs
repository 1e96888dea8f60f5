//! Soft-constraint moves: a running instance whose node has violated one of its preferences
//! for longer than the constraint's convergence time moves to a node that violates less,
//! one instance per service at a time. The old copy runs until the new one does, so a
//! service never has fewer copies running; a refused or lost new copy cancels the move.

use crate::effects::{Effects, ToNode};
use crate::placed::Move;
use crate::placement::assignment_of;
use crate::state::{ClusterState, Now};
use crate::views::reserve;
use canopy_model::InstanceState;
use canopy_sched::{Request, demand, free, place_on_node_explained, should_replace};
use canopy_tier::Revocation;

impl ClusterState {
    /// Starts the moves that are due at `now`.
    pub fn converge(&mut self, now: Now, fx: &mut Effects) {
        let due: Vec<String> = self
            .instances
            .values()
            .filter(|p| {
                p.state == InstanceState::Running && p.desired.is_run() && p.moving.is_none()
            })
            .filter(|p| {
                p.soft_violation_since.is_some_and(|since| {
                    let elapsed_secs = u64::try_from(now.unix_ms - since).unwrap_or(0) / 1000;
                    should_replace(elapsed_secs, p.convergence_time(), true)
                })
            })
            .map(|p| p.id.clone())
            .collect();
        for id in due {
            let Some(placed) = self.instances.get(&id) else {
                continue;
            };
            let service_moving = self
                .instances
                .values()
                .any(|other| other.moving.is_some() && other.same_service(placed));
            if service_moving {
                continue;
            }
            if let Some(target) = self.better_node(&id) {
                self.start_move(&id, target, now, fx);
            }
        }
    }

    /// A node with a lower penalty than the instance's own, if there is one.
    fn better_node(&mut self, id: &str) -> Option<String> {
        self.refresh_views();
        let context = self.context(id)?;
        let placed = self.instances.get(id)?;
        let current = self.view(placed.node.as_deref()?)?;
        let mut request = Request::new(&placed.workload.spec, &[]);
        request.context = Some(&context);
        // Judged as if it were not there yet: its own reservation must not make its node
        // look too full for it.
        let mut current = current.clone();
        current.allocated = free(&current.allocated, &demand(&placed.workload.spec));
        let here = place_on_node_explained(&request, std::slice::from_ref(&current)).ok()?;
        let best = place_on_node_explained(&request, &self.views).ok()?;
        (best.penalty < here.penalty && best.name != here.name).then_some(best.name)
    }

    fn start_move(&mut self, id: &str, to: String, now: Now, fx: &mut Effects) {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(id) else {
            return;
        };
        tracing::info!(instance = %id, from = ?placed.node, %to, "moving to a node that meets its preferences");
        placed.moving = Some(Move {
            to: to.clone(),
            state: InstanceState::NodeScheduled,
            since_ms: now.unix_ms,
        });
        placed.reason = format!("moving to node {to}, which meets its preferences");
        let assignment = assignment_of(placed);
        let spec = placed.workload.spec.clone();
        fx.decide(placed);
        fx.report(placed.status(&cluster));
        reserve(&mut self.views, &to, &spec);
        fx.send(&to, ToNode::Assign(Box::new(assignment)));
    }

    /// Gives up a move: the old copy never stopped, so it simply stays, and the violation's
    /// clock starts again. False when no move was under way.
    pub(crate) fn cancel_move(&mut self, id: &str, why: &str, now: Now, fx: &mut Effects) -> bool {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(id) else {
            return false;
        };
        let Some(moving) = placed.moving.take() else {
            return false;
        };
        placed.soft_violation_since = Some(now.unix_ms);
        let here = placed.node.clone().unwrap_or_default();
        placed.reason = format!("stays on node {here}: {why}");
        fx.decide(placed);
        fx.report(placed.status(&cluster));
        // Whatever the target still holds of it goes.
        let revocation = Revocation::new(id, placed.generation, "move cancelled");
        fx.send(&moving.to, ToNode::Revoke(revocation));
        true
    }
}
