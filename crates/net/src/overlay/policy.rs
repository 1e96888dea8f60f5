//! Which ready instance a new connection goes to: a pure choice over the endpoints the
//! cluster sent, the policy of the name dialled and that name's turn counter.

use super::name::Policy;
use std::net::{IpAddr, SocketAddr};

/// One ready instance of a service, as its cluster described it to this node.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub instance: String,
    pub replica: u32,
    pub node: String,
    /// Its own address (a container's) or its node's.
    pub address: IpAddr,
    pub ports: Vec<PortRoute>,
    /// Estimated round trip from this node; none when unknown.
    pub rtt_ms: Option<f64>,
}

/// A service port (dialled on the virtual address) and where the instance serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRoute {
    pub port: u16,
    pub target: u16,
    pub udp: bool,
}

impl Endpoint {
    /// Where this instance serves the service's `port` (UDP or TCP).
    pub fn target(&self, port: u16, udp: bool) -> Option<SocketAddr> {
        self.ports
            .iter()
            .find(|p| p.port == port && p.udp == udp)
            .map(|p| SocketAddr::new(self.address, p.target))
    }
}

/// The endpoints to try for one new connection, best first: round-robin starts at the
/// `turn`-th instance (in replica order) and goes on from there; closest goes by estimated
/// round trip (unknown last, ties by replica); a replica ordinal gives only that instance.
/// Empty when no instance is ready (or the ordinal has none).
pub fn candidates(policy: Policy, endpoints: &[Endpoint], turn: u64) -> Vec<&Endpoint> {
    let mut ordered: Vec<&Endpoint> = endpoints.iter().collect();
    ordered.sort_by(|a, b| a.replica.cmp(&b.replica).then(a.instance.cmp(&b.instance)));
    match policy {
        Policy::Replica(n) => ordered.retain(|e| e.replica == n),
        Policy::RoundRobin => {
            if !ordered.is_empty() {
                let start = (turn % ordered.len() as u64) as usize;
                ordered.rotate_left(start);
            }
        }
        Policy::Closest => {
            // Stable: equal estimates keep replica order.
            ordered.sort_by(|a, b| {
                let rtt = |e: &Endpoint| e.rtt_ms.filter(|r| r.is_finite()).unwrap_or(f64::MAX);
                rtt(a).total_cmp(&rtt(b))
            });
        }
    }
    ordered
}

/// The instance a new connection goes to: the first of [`candidates`].
pub fn choose(policy: Policy, endpoints: &[Endpoint], turn: u64) -> Option<&Endpoint> {
    candidates(policy, endpoints, turn).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn endpoint(replica: u32, rtt_ms: Option<f64>) -> Endpoint {
        Endpoint {
            instance: format!("i{replica}"),
            replica,
            node: format!("n{replica}"),
            address: IpAddr::from([10, 0, 0, replica as u8 + 1]),
            ports: vec![PortRoute {
                port: 80,
                target: 8080,
                udp: false,
            }],
            rtt_ms,
        }
    }

    #[test]
    fn round_robin_spreads_evenly_over_the_ready_instances() {
        let endpoints = [endpoint(2, None), endpoint(0, None), endpoint(1, None)];
        let mut hits: BTreeMap<u32, u32> = BTreeMap::new();
        for turn in 0..300 {
            let chosen = choose(Policy::RoundRobin, &endpoints, turn).expect("one is ready");
            *hits.entry(chosen.replica).or_default() += 1;
        }
        assert_eq!(hits, BTreeMap::from([(0, 100), (1, 100), (2, 100)]));
    }

    #[test]
    fn round_robin_falls_back_to_the_next_instances_in_turn() {
        let endpoints = [endpoint(0, None), endpoint(1, None), endpoint(2, None)];
        let order: Vec<u32> = candidates(Policy::RoundRobin, &endpoints, 4)
            .iter()
            .map(|e| e.replica)
            .collect();
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn closest_picks_the_lowest_estimated_round_trip() {
        let endpoints = [
            endpoint(0, Some(80.0)),
            endpoint(1, None),
            endpoint(2, Some(10.0)),
            endpoint(3, Some(f64::NAN)),
        ];
        for turn in 0..5 {
            assert_eq!(
                choose(Policy::Closest, &endpoints, turn).map(|e| e.replica),
                Some(2)
            );
        }
        let order: Vec<u32> = candidates(Policy::Closest, &endpoints, 0)
            .iter()
            .map(|e| e.replica)
            .collect();
        assert_eq!(order, [2, 0, 1, 3]);
    }

    #[test]
    fn an_ordinal_picks_exactly_that_replica() {
        let endpoints = [endpoint(0, None), endpoint(1, None), endpoint(2, None)];
        for turn in 0..10 {
            assert_eq!(
                choose(Policy::Replica(2), &endpoints, turn).map(|e| e.replica),
                Some(2)
            );
        }
        assert_eq!(candidates(Policy::Replica(2), &endpoints, 0).len(), 1);
        assert!(choose(Policy::Replica(7), &endpoints, 0).is_none());
    }

    #[test]
    fn no_ready_instance_gives_none() {
        for policy in [Policy::RoundRobin, Policy::Closest, Policy::Replica(0)] {
            assert!(choose(policy, &[], 3).is_none());
        }
    }

    #[test]
    fn the_target_is_the_instance_address_at_its_port_for_the_service_port() {
        let e = endpoint(0, None);
        assert_eq!(e.target(80, false), Some("10.0.0.1:8080".parse().unwrap()));
        assert_eq!(e.target(80, true), None);
        assert_eq!(e.target(81, false), None);
    }
}
