//! Traffic edges (caller service → callee service, as the nodes' proxies count them) added
//! up: a cluster sums its nodes' for the root, the root sums its clusters'.

use crate::pb;
use std::collections::BTreeMap;

/// One entry per (caller, callee) with the connections and bytes of all of `edges`.
pub fn sum_traffic<'a>(
    edges: impl IntoIterator<Item = &'a pb::TrafficEdge>,
) -> Vec<pb::TrafficEdge> {
    let mut sums: BTreeMap<(&str, &str), pb::TrafficEdge> = BTreeMap::new();
    for edge in edges {
        let sum = sums
            .entry((edge.caller.as_str(), edge.callee.as_str()))
            .or_insert_with(|| pb::TrafficEdge {
                caller: edge.caller.clone(),
                callee: edge.callee.clone(),
                ..pb::TrafficEdge::default()
            });
        sum.connections = sum.connections.saturating_add(edge.connections);
        sum.bytes_to_callee = sum.bytes_to_callee.saturating_add(edge.bytes_to_callee);
        sum.bytes_from_callee = sum.bytes_from_callee.saturating_add(edge.bytes_from_callee);
    }
    sums.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(caller: &str, callee: &str, connections: u64, up: u64, down: u64) -> pb::TrafficEdge {
        pb::TrafficEdge {
            caller: caller.into(),
            callee: callee.into(),
            connections,
            bytes_to_callee: up,
            bytes_from_callee: down,
        }
    }

    #[test]
    fn the_same_pair_from_several_reporters_adds_up_and_others_stay_apart() {
        let node_a = [
            edge("d/s/web", "d/s/db", 2, 10, 100),
            edge("unknown", "d/s/db", 1, 1, 1),
        ];
        let node_b = [edge("d/s/web", "d/s/db", 3, 5, 50)];
        let summed = sum_traffic(node_a.iter().chain(&node_b));
        assert_eq!(
            summed,
            vec![
                edge("d/s/web", "d/s/db", 5, 15, 150),
                edge("unknown", "d/s/db", 1, 1, 1)
            ]
        );
    }
}
