//! Failure detection: a node silent past the deadline is unreachable, and what it ran is
//! placed on other nodes (same instance id, new node).

use crate::effects::Effects;
use crate::state::{ClusterState, Now};
use canopy_model::{InstanceState, WhenGone};
use canopy_tier::Reported;

impl ClusterState {
    /// Marks the nodes silent past the deadline at `now` unreachable and replaces their
    /// instances; the names of the nodes it marked.
    pub fn detect_lost_nodes(&mut self, now: Now, fx: &mut Effects) -> Vec<String> {
        let deadline = self.settings.node_deadline;
        let lost: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.ready && now.at.saturating_duration_since(n.last_seen) > deadline)
            .map(|(name, _)| name.clone())
            .collect();
        for node in &lost {
            tracing::warn!(node, ?deadline, "node unreachable; replacing its instances");
            self.strand(node, now, fx);
        }
        if !lost.is_empty() {
            fx.membership_changed = true;
        }
        lost
    }

    /// `node` is no longer usable: what ran there is replaced elsewhere.
    pub(crate) fn strand(&mut self, node: &str, now: Now, fx: &mut Effects) {
        if let Some(entry) = self.nodes.get_mut(node) {
            entry.ready = false;
        }
        let stranded: Vec<String> = self
            .instances
            .values()
            .filter(|p| p.is_live() && p.nodes().any(|n| n == node))
            .map(|p| p.id.clone())
            .collect();
        self.refresh_views();
        for id in stranded {
            self.replace_lost(&id, node, now, fx);
        }
    }

    /// The operator removed `node` (its certificates are revoked): its instances are
    /// replaced as if it were lost, and the cluster forgets it. False if it was unknown.
    pub fn remove_node(&mut self, node: &str, now: Now, fx: &mut Effects) -> bool {
        if !self.nodes.contains_key(node) {
            return false;
        }
        tracing::warn!(node, "node removed; replacing its instances");
        self.strand(node, now, fx);
        self.nodes.remove(node);
        self.views_stale = true;
        fx.membership_changed = true;
        true
    }

    fn replace_lost(&mut self, id: &str, node: &str, now: Now, fx: &mut Effects) {
        let cluster = self.settings.name.clone();
        let Some(placed) = self.instances.get_mut(id) else {
            return;
        };
        if placed.when_gone() == WhenGone::Ends {
            let state = Reported::State(InstanceState::Terminated);
            self.finish(id, state, "its node is unreachable", now, fx);
            return;
        }
        if placed.moving.as_ref().is_some_and(|m| m.to == node) {
            self.cancel_move(
                id,
                &format!("node {node} became unreachable mid-move"),
                now,
                fx,
            );
            return;
        }
        if let Some(moving) = placed.moving.take() {
            // The serving copy is gone, the move's copy is on its way: it serves now.
            placed.node = Some(moving.to.clone());
            placed.state = moving.state;
            placed.pid = None;
            placed.reason = format!(
                "node {node} unreachable; the copy on node {} serves",
                moving.to
            );
            placed.at_ms = now.unix_ms;
            fx.decide(placed);
            fx.report(placed.status(&cluster));
            return;
        }
        placed.set(
            InstanceState::Lost,
            format!("node {node} unreachable"),
            now.unix_ms,
        );
        fx.report(placed.status(&cluster));
        placed.node = None;
        placed.pid = None;
        placed.ready = false;
        self.place(id, now, fx);
    }
}
