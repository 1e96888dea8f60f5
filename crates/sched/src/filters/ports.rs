//! Host ports: a node publishes each host port (per protocol) once, so an instance that
//! publishes one can only go where it is free. A cluster is refused only when the port is
//! taken on every one of its ready nodes.

use super::Reason;
use crate::prepare::Prepared;
use crate::{ClusterView, HostPort, NodeView};

/// The host ports the request publishes.
fn wanted<'a>(p: &'a Prepared) -> impl Iterator<Item = HostPort> + 'a {
    p.request
        .spec
        .ports
        .iter()
        .filter_map(|port| Some((port.host_port?, port.protocol)))
}

pub fn node(p: &Prepared, node: &NodeView) -> Result<(), Reason> {
    match wanted(p).any(|port| node.host_ports.contains(&port)) {
        true => Err("host port taken"),
        false => Ok(()),
    }
}

pub fn cluster(p: &Prepared, cluster: &ClusterView) -> Result<(), Reason> {
    let Some(everywhere) = &cluster.host_ports_taken_everywhere else {
        return Ok(());
    };
    match wanted(p).any(|port| everywhere.contains(&port)) {
        true => Err("host port taken on every node"),
        false => Ok(()),
    }
}
