//! What a decision of the cluster's core asks the world to do. The core only records effects;
//! the executor ([`crate::Cluster`]) commits the writes and only then sends, so nothing is
//! sent for a decision that is not durable. Batching is the shape of the loop: a batch of
//! assignments is one round of decisions and one `Effects`.

use crate::placed::Placed;
use canopy_tier::pb;
use canopy_tier::{Assignment, Revocation, StatusReport};
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Effects {
    /// Instance records to write (`None` deletes); the last word per instance wins.
    pub writes: BTreeMap<String, Option<Placed>>,
    /// Whether the writes hold a decision (a placement, a stop) that must be on disk before
    /// anything is sent; without one they are observations, written lazily.
    pub decided: bool,
    pub to_nodes: Vec<(String, ToNode)>,
    /// Statuses for the root, in order.
    pub up: Vec<StatusReport>,
    /// Nodes joined or were lost: the root should hear of the membership soon.
    pub membership_changed: bool,
    /// Placements tried and why the failed ones failed (counted, never sent).
    pub placements: crate::metrics::Placements,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToNode {
    Assign(Box<Assignment>),
    Revoke(Revocation),
    Peers(Vec<pb::Peer>),
    Routes(pb::Routes),
}

impl Effects {
    /// Writes a placement decision: durable before anything goes out.
    pub fn decide(&mut self, placed: &Placed) {
        self.writes.insert(placed.id.clone(), Some(placed.clone()));
        self.decided = true;
    }

    /// Writes what a node observed (state, pid): a restarted cluster hears it again in the
    /// node's hello, so it may reach the disk a little later.
    pub fn observe(&mut self, placed: &Placed) {
        self.writes.insert(placed.id.clone(), Some(placed.clone()));
    }

    pub fn forget(&mut self, id: &str) {
        self.writes.insert(id.to_string(), None);
        self.decided = true;
    }

    pub fn send(&mut self, node: &str, message: ToNode) {
        self.to_nodes.push((node.to_string(), message));
    }

    pub fn report(&mut self, status: StatusReport) {
        self.up.push(status);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.to_nodes.is_empty()
            && self.up.is_empty()
            && !self.membership_changed
    }
}
