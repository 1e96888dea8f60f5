//! Node membership: a node's hello (who it is and everything it runs, diffed against what
//! this cluster placed there), its heartbeats and the end of its link.

use crate::effects::{Effects, ToNode};
use crate::placement::assignment_of;
use crate::state::{ClusterState, NodeEntry, Now};
use canopy_model::InstanceState;
use canopy_tier::session::{Known, diff_hello};
use canopy_tier::{Hello, Reported, pb};
use std::collections::BTreeMap;

impl ClusterState {
    /// A node linked (over link `link`) and said hello.
    pub fn node_hello(&mut self, hello: Hello, link: u64, now: Now, fx: &mut Effects) {
        let name = hello.member.name.clone();
        let (joined_at_ms, usage, traffic) = self
            .nodes
            .get(&name)
            .map_or((now.unix_ms, BTreeMap::new(), Vec::new()), |n| {
                (n.joined_at_ms, n.usage.clone(), n.traffic.clone())
            });
        self.views_stale = true;
        self.nodes.insert(
            name.clone(),
            NodeEntry {
                member: hello.member,
                ready: true,
                last_seen: now.at,
                joined_at_ms,
                link: Some(link),
                usage,
                traffic,
            },
        );
        tracing::info!(node = %name, "node linked");

        let diff = diff_hello(hello.instances, &self.known_on(&name));
        for report in diff.current {
            self.node_status(&name, report, now, fx);
        }
        for revocation in diff.stale {
            fx.send(&name, ToNode::Revoke(revocation));
        }
        for id in diff.missing {
            if let Some(placed) = self.instances.get(&id) {
                fx.send(&name, ToNode::Assign(Box::new(assignment_of(placed))));
            }
        }
        for id in diff.stopped {
            let state = Reported::State(InstanceState::Terminated);
            self.finish(&id, state, "stopped", now, fx);
        }
        let sample = self.peer_sample(&name);
        self.send_peers(&name, sample, fx);
        fx.membership_changed = true;
    }

    /// What this cluster placed on `node`: the serving copies, and the copies moving there.
    fn known_on(&self, node: &str) -> BTreeMap<String, Known> {
        self.instances
            .values()
            .filter_map(|p| {
                let state = if p.node.as_deref() == Some(node) {
                    p.state
                } else {
                    p.moving.as_ref().filter(|m| m.to == node)?.state
                };
                let known = Known {
                    generation: p.generation,
                    desired: p.desired,
                    state,
                };
                Some((p.id.clone(), known))
            })
            .collect()
    }

    /// Any message from `node` shows it alive; a heartbeat may carry its new coordinate and
    /// the named volumes it now holds.
    pub fn node_heard(&mut self, node: &str, beat: Option<&pb::Heartbeat>, now: Now) {
        let Some(entry) = self.nodes.get_mut(node) else {
            return;
        };
        entry.last_seen = now.at;
        if let Some(beat) = beat.filter(|b| b.has_usage) {
            entry.usage = canopy_tier::instance_usage_from_pb(&beat.usage);
        }
        if let Some(beat) = beat.filter(|b| b.has_traffic) {
            entry.traffic = beat.traffic.clone();
        }
        if let Some(beat) = beat.filter(|b| b.has_volumes) {
            entry.member.volumes = beat.volumes.clone();
            let held = beat.volumes.iter().cloned().collect();
            if let Some(view) = self.view_mut(node) {
                view.volumes = held;
            }
        }
        let Some(entry) = self.nodes.get_mut(node) else {
            return;
        };
        if let Some(coordinate) = beat.and_then(|b| b.coordinate) {
            entry.member.coordinate = Some(coordinate);
            // Only the coordinate changed: no need to rebuild every view.
            let moved = canopy_tier::coordinate_from_pb(Some(&coordinate));
            if let Some(view) = self.view_mut(node) {
                view.coordinate = moved;
            }
        }
    }

    /// Link `link` of `node` ended; a newer link of the same node may already be up.
    pub fn node_goodbye(&mut self, node: &str, link: u64) -> bool {
        match self.nodes.get_mut(node) {
            Some(entry) if entry.link == Some(link) => {
                entry.link = None;
                tracing::info!(node, "node link closed");
                true
            }
            _ => false,
        }
    }
}
