//! Latency probing (Vivaldi) as the node takes part in it: its coordinate goes up when it
//! moved enough, and the peers its cluster names are resolved and probed.

use canopy_model::NetworkCoordinate;
use canopy_tier::coordinate_to_pb;
use canopy_tier::pb;
use canopy_tier::probe::{Position, Prober};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// A coordinate is worth reporting once it moved this far (ms) or its error this much.
const COORDINATE_MOVE_MS: f64 = 0.5;
const COORDINATE_ERROR_STEP: f64 = 0.1;

pub(crate) struct Probing {
    /// The cluster's endpoint, whose host stands in for peers named by port only.
    cluster: String,
    /// A fixed coordinate, for nodes that do not probe (hollow nodes).
    fixed: Option<NetworkCoordinate>,
    prober: OnceLock<Arc<Prober>>,
    /// The coordinate the cluster last heard, so heartbeats carry it only when it moved.
    sent: std::sync::Mutex<Option<Position>>,
}

impl Probing {
    pub fn new(cluster: &str, fixed: Option<NetworkCoordinate>) -> Probing {
        Probing {
            cluster: cluster.to_string(),
            fixed,
            prober: OnceLock::new(),
            sent: std::sync::Mutex::new(None),
        }
    }

    pub fn attach(&self, prober: Arc<Prober>) {
        let _ = self.prober.set(prober);
    }

    fn position(&self) -> Option<Position> {
        match (self.prober.get(), self.fixed) {
            (Some(prober), _) => Some(prober.position()),
            (None, Some(c)) => Some(Position {
                coordinate: canopy_sched::Coordinate {
                    x: c.x,
                    y: c.y,
                    height: c.height,
                },
                error: c.error,
            }),
            (None, None) => None,
        }
    }

    /// The current coordinate, for the hello.
    pub fn coordinate(&self) -> Option<pb::Coordinate> {
        self.position()
            .and_then(|p| coordinate_to_pb(Some((p.coordinate, p.error))))
    }

    /// Where it answers probes ("" when it does not probe).
    pub fn address(&self) -> String {
        self.prober
            .get()
            .and_then(|p| p.local_addr().ok())
            .map(|a| a.to_string())
            .unwrap_or_default()
    }

    /// The coordinate, if it moved enough since the cluster last heard it.
    pub fn coordinate_update(&self) -> Option<pb::Coordinate> {
        let now = self.position()?;
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if !sent.is_none_or(|before| moved(&before, &now)) {
            return None;
        }
        *sent = Some(now);
        coordinate_to_pb(Some((now.coordinate, now.error)))
    }

    /// Peers named by the cluster: `host:port`, or `:port` for the cluster's own host.
    pub async fn on_peers(&self, peers: pb::Peers) {
        let Some(prober) = self.prober.get() else {
            return;
        };
        let cluster_host = self
            .cluster
            .parse::<tonic::codegen::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_string()));
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for peer in peers.peers {
            let Some(address) = peer_address(&peer.address, cluster_host.as_deref()) else {
                continue;
            };
            match tokio::net::lookup_host(address.as_str()).await {
                Ok(mut found) => addresses.extend(found.next()),
                Err(e) => {
                    tracing::debug!(peer = %peer.name, %address, error = %e, "cannot resolve a probe peer")
                }
            }
        }
        prober.set_peers(addresses);
    }
}

fn moved(before: &Position, now: &Position) -> bool {
    before.coordinate.planar_distance(&now.coordinate) > COORDINATE_MOVE_MS
        || (before.coordinate.height - now.coordinate.height).abs() > COORDINATE_MOVE_MS
        || (before.error - now.error).abs() > COORDINATE_ERROR_STEP
}

/// `:port` names the cluster's host; without one known it cannot be probed.
fn peer_address(address: &str, cluster_host: Option<&str>) -> Option<String> {
    match (address.strip_prefix(':'), cluster_host) {
        (Some(port), Some(host)) => Some(format!("{host}:{port}")),
        (Some(_), None) => None,
        (None, _) => Some(address.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(x: f64, error: f64) -> Position {
        Position {
            coordinate: canopy_sched::Coordinate {
                x,
                y: 0.0,
                height: 0.1,
            },
            error,
        }
    }

    #[test]
    fn a_coordinate_is_reported_again_only_once_it_moved() {
        assert!(!moved(&at(1.0, 0.5), &at(1.4, 0.55)));
        assert!(moved(&at(1.0, 0.5), &at(1.6, 0.5)));
        assert!(moved(&at(1.0, 0.5), &at(1.0, 0.3)));
    }

    #[test]
    fn a_fixed_coordinate_goes_up_once() {
        let fixed = NetworkCoordinate {
            x: 1.0,
            y: 2.0,
            height: 0.5,
            error: 0.2,
        };
        let probing = Probing::new("http://cluster:7000", Some(fixed));
        assert!(probing.coordinate_update().is_some());
        assert!(probing.coordinate_update().is_none());
        assert!(
            Probing::new("http://c:1", None)
                .coordinate_update()
                .is_none()
        );
    }

    #[test]
    fn a_peer_named_by_port_is_on_the_cluster_host() {
        assert_eq!(
            peer_address(":7001", Some("10.0.0.1")).as_deref(),
            Some("10.0.0.1:7001")
        );
        assert_eq!(peer_address(":7001", None), None);
        assert_eq!(
            peer_address("n2:7001", Some("c")).as_deref(),
            Some("n2:7001")
        );
    }
}
