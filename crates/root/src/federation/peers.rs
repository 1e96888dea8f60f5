//! Clusters probe each other for the cluster-to-cluster coordinates that estimates across
//! clusters are made of; the root hands each a few others to probe.

use super::Links;
use canopy_tier::pb;
use rand::seq::IteratorRandom;

/// How many other clusters each cluster probes.
const PEERS_PER_CLUSTER: usize = 3;

/// Sends `cluster` a few other clusters' WAN probe endpoints.
pub(super) fn send(links: &Links, cluster: &str) {
    let Some(link) = links.downlink(cluster) else {
        return;
    };
    let peers: Vec<pb::Peer> = links
        .clusters
        .iter()
        .filter(|(name, c)| {
            name.as_str() != cluster && c.ready && !c.summary.probe_address.is_empty()
        })
        .choose_multiple(&mut rand::rng(), PEERS_PER_CLUSTER)
        .into_iter()
        .map(|(name, c)| pb::Peer {
            name: name.clone(),
            address: c.summary.probe_address.clone(),
        })
        .collect();
    if !peers.is_empty() {
        link.peers(peers);
    }
}

pub(super) fn send_to_all(links: &Links) {
    for cluster in links.clusters.keys() {
        send(links, cluster);
    }
}
