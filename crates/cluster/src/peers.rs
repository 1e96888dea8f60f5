//! Latency probing peers: each node gets a few other nodes of its cluster to probe (and the
//! cluster's own LAN prober), so its Vivaldi coordinate lives in the cluster's space.

use crate::effects::{Effects, ToNode};
use crate::state::ClusterState;
use canopy_tier::pb;
use rand::seq::{IndexedRandom, IteratorRandom};

/// How many peers each node probes.
pub const PEERS_PER_NODE: usize = 4;

impl ClusterState {
    /// A sample straight from the map for a joining node: building every candidate for each
    /// of thousands of joining nodes would be quadratic.
    pub(crate) fn peer_sample(&self, node: &str) -> Vec<pb::Peer> {
        self.nodes
            .iter()
            .filter(|(other, n)| other.as_str() != node && n.ready && probes(&n.member))
            .choose_multiple(&mut rand::rng(), PEERS_PER_NODE)
            .into_iter()
            .map(|(other, n)| peer(other, &n.member))
            .collect()
    }

    /// The ready nodes that answer probes, as peers.
    pub fn probe_candidates(&self) -> Vec<pb::Peer> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.ready && probes(&n.member))
            .map(|(name, n)| peer(name, &n.member))
            .collect()
    }

    /// Gives every node a fresh sample of peers.
    pub fn refresh_peers(&self, candidates: &[pb::Peer], fx: &mut Effects) {
        for name in self.nodes.keys() {
            // One spare, in case the node itself is drawn.
            let sample = candidates
                .choose_multiple(&mut rand::rng(), PEERS_PER_NODE + 1)
                .filter(|p| p.name != *name)
                .take(PEERS_PER_NODE)
                .cloned()
                .collect();
            self.send_peers(name, sample, fx);
        }
    }

    /// Sends `node` the `sample` of other nodes to probe, and this cluster.
    pub(crate) fn send_peers(&self, node: &str, mut peers: Vec<pb::Peer>, fx: &mut Effects) {
        if let Some(port) = self.settings.probe_port {
            // The port alone: the node reaches this cluster at the host it dialled.
            peers.push(pb::Peer {
                name: self.settings.name.clone(),
                address: format!(":{port}"),
            });
        }
        if !peers.is_empty() {
            fx.send(node, ToNode::Peers(peers));
        }
    }
}

fn probes(member: &pb::Member) -> bool {
    !member.probe_address.is_empty()
}

fn peer(name: &str, member: &pb::Member) -> pb::Peer {
    pb::Peer {
        name: name.to_string(),
        address: member.probe_address.clone(),
    }
}
