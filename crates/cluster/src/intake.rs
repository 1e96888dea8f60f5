//! Status intake: what nodes report about the cluster's instances, applied where the
//! lifecycle allows it and passed up to the root.

use crate::effects::{Effects, ToNode};
use crate::state::{ClusterState, Now};
use canopy_model::{InstanceState, WhenGone};
use canopy_tier::session::accepts;
use canopy_tier::{Reported, Revocation, StatusReport};

impl ClusterState {
    /// Takes one status from `node`. Reports about another node's copy, or another
    /// generation, are ignored: the hello diff stops stale copies.
    pub fn node_status(&mut self, node: &str, report: StatusReport, now: Now, fx: &mut Effects) {
        let Some(placed) = self.instances.get(&report.id) else {
            return;
        };
        if placed.generation != report.generation {
            return;
        }
        if placed.moving.as_ref().is_some_and(|m| m.to == node) {
            self.move_status(node, report, now, fx);
            return;
        }
        if placed.node.as_deref() != Some(node) {
            return;
        }
        match report.state {
            Reported::Refused if placed.when_gone() == WhenGone::Ends => {
                let state = Reported::State(InstanceState::Terminated);
                self.finish(&report.id, state, &report.reason, now, fx);
            }
            Reported::Refused => self.refused(node, &report, now, fx),
            Reported::State(InstanceState::Terminated) => {
                self.finish(&report.id, report.state, &report.reason, now, fx);
            }
            Reported::State(state) => self.observed(state, report, now, fx),
        }
    }

    /// `node` refused the instance: it is placed on another node (or refused upward).
    fn refused(&mut self, node: &str, report: &StatusReport, now: Now, fx: &mut Effects) {
        let Some(placed) = self.instances.get_mut(&report.id) else {
            return;
        };
        placed.refused.push(node.to_string());
        placed.node = None;
        placed.set(
            InstanceState::ClusterScheduled,
            format!("node {node} refused: {}", report.reason),
            now.unix_ms,
        );
        self.refresh_views();
        self.place(&report.id, now, fx);
    }

    fn observed(&mut self, state: InstanceState, report: StatusReport, now: Now, fx: &mut Effects) {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(&report.id) else {
            return;
        };
        if !accepts(placed.state, &report) {
            // A late word about an instance already stopping, or one that has ended.
            return;
        }
        let changed = placed.state != state
            || placed.pid != report.pid
            || placed.restarts != report.restarts
            || placed.ready != report.ready
            || placed.details != report.details;
        placed.observe(state, report.reason, now.unix_ms);
        placed.pid = report.pid;
        placed.restarts = report.restarts;
        placed.ready = report.ready && state == InstanceState::Running;
        placed.last_termination = report.last_termination;
        placed.details = report.details;
        if report.at_ms != 0 {
            placed.at_ms = report.at_ms;
        }
        if changed {
            fx.observe(placed);
        }
        fx.report(placed.status(&cluster));
    }

    /// A report from the target of a move about its new copy.
    fn move_status(&mut self, node: &str, report: StatusReport, now: Now, fx: &mut Effects) {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(&report.id) else {
            return;
        };
        let Some(moving) = placed.moving.as_mut() else {
            return;
        };
        match report.state {
            Reported::State(InstanceState::Running) => {
                // The new copy runs: it serves now, and the old one may stop.
                let old = placed.node.replace(node.to_string());
                placed.moving = None;
                placed.soft_violation_since = None;
                placed.pid = report.pid;
                placed.restarts = report.restarts;
                placed.ready = report.ready;
                placed.details = report.details;
                // Another copy serves now: not an edge of the old copy's lifecycle.
                placed.state = InstanceState::Running;
                placed.reason = format!("moved to node {node}, which meets its preferences");
                placed.at_ms = now.unix_ms;
                fx.decide(placed);
                fx.report(placed.status(&cluster));
                if let Some(old) = old {
                    let reason = format!("moved to node {node}, which meets its preferences");
                    let revocation = Revocation::new(&placed.id, placed.generation, reason);
                    fx.send(&old, ToNode::Revoke(revocation));
                }
            }
            Reported::State(state) if state.is_live() => moving.state = state,
            // Refused, failed or stopped before it ran: the old copy simply stays.
            _ => {
                let why = format!("node {node} did not take the move: {}", report.reason);
                self.cancel_move(&report.id, &why, now, fx);
            }
        }
    }
}
