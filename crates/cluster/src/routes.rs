//! The overlay routes of one service as one node should see them: its ready instances, each
//! at the address that node can reach it on, with the estimated round trip from that node.

use crate::state::ClusterState;
use canopy_model::oakestra::{AddressPolicy, fixed_addresses};
use canopy_model::{InstanceState, RuntimeKind};
use canopy_tier::{coordinate_from_pb, pb};
use std::collections::BTreeMap;

/// `(namespace, application, service)`.
pub type ServiceKey = (String, String, String);

pub fn key_of(name: &pb::ServiceName) -> ServiceKey {
    (
        name.namespace.clone(),
        name.application.clone(),
        name.service.clone(),
    )
}

fn name_of(key: &ServiceKey) -> pb::ServiceName {
    pb::ServiceName {
        namespace: key.0.clone(),
        application: key.1.clone(),
        service: key.2.clone(),
    }
}

impl ClusterState {
    /// `service`'s routes for node `to`. A process shares its node's network: it is reached
    /// at its node's address and its own port. A container is reached at its own address
    /// from its node, and elsewhere at its node's address and published host port when it
    /// has one (its own address otherwise, for networks that route container subnets).
    pub fn routes_for(
        &self,
        service: &ServiceKey,
        to: &str,
        node_addresses: &BTreeMap<String, String>,
    ) -> pb::ServiceRoutes {
        let mut known = false;
        let mut declared = Vec::new();
        let mut fixed = Vec::new();
        let mut endpoints = Vec::new();
        let from = self
            .nodes
            .get(to)
            .and_then(|n| coordinate_from_pb(n.member.coordinate.as_ref()));
        for placed in self.instances.values() {
            let w = &placed.workload;
            if (&w.namespace, &w.application, &w.service) != (&service.0, &service.1, &service.2) {
                continue;
            }
            if !known {
                declared = w
                    .spec
                    .ports
                    .iter()
                    .map(|p| port(p.port, p.port, p))
                    .collect();
                fixed = fixed_addresses(&w.spec.annotations)
                    .into_iter()
                    .map(|(address, policy)| pb::FixedAddress {
                        address: address.to_string(),
                        policy: match policy {
                            AddressPolicy::RoundRobin => "rr".to_string(),
                            AddressPolicy::Closest => "closest".to_string(),
                            AddressPolicy::Replica(n) => n.to_string(),
                        },
                    })
                    .collect();
            }
            known = true;
            if !routable(placed) {
                continue;
            }
            let Some(node) = placed.node.as_deref() else {
                continue;
            };
            let node_address = node_addresses.get(node).filter(|a| !a.is_empty());
            let own = placed.details.addresses.first();
            let process = w.spec.runtime == RuntimeKind::Process;
            let mut ports = Vec::new();
            let address = if process || own.is_none() {
                let Some(address) = node_address else {
                    continue;
                };
                for p in &w.spec.ports {
                    ports.push(port(
                        p.port,
                        p.host_port.filter(|_| !process).unwrap_or(p.port),
                        p,
                    ));
                }
                address.clone()
            } else if node == to || node_address.is_none() {
                for p in &w.spec.ports {
                    ports.push(port(p.port, p.port, p));
                }
                own.cloned().unwrap_or_default()
            } else {
                let published: Vec<_> = w
                    .spec
                    .ports
                    .iter()
                    .filter(|p| p.host_port.is_some())
                    .collect();
                if published.is_empty() {
                    for p in &w.spec.ports {
                        ports.push(port(p.port, p.port, p));
                    }
                    own.cloned().unwrap_or_default()
                } else {
                    for p in published {
                        ports.push(port(p.port, p.host_port.unwrap_or(p.port), p));
                    }
                    node_address.cloned().unwrap_or_default()
                }
            };
            let rtt_ms = if node == to {
                0.0
            } else {
                let there = self
                    .nodes
                    .get(node)
                    .and_then(|n| coordinate_from_pb(n.member.coordinate.as_ref()));
                match (from, there) {
                    // Whole milliseconds: coordinates drift a little every heartbeat, and
                    // sub-millisecond moves are not worth a route update.
                    (Some(a), Some(b)) => a.estimate_rtt(&b).round(),
                    _ => -1.0,
                }
            };
            endpoints.push(pb::Endpoint {
                instance_id: placed.id.clone(),
                replica: w.replica,
                node: node.to_string(),
                address,
                ports,
                rtt_ms,
            });
        }
        pb::ServiceRoutes {
            name: Some(name_of(service)),
            known,
            endpoints,
            ports: declared,
            addresses: fixed,
        }
    }

    /// The services of one application placed in this cluster.
    pub fn services_of(&self, namespace: &str, application: &str) -> Vec<ServiceKey> {
        let mut keys: Vec<ServiceKey> = self
            .instances
            .values()
            .map(|p| &p.workload)
            .filter(|w| w.namespace == namespace && w.application == application)
            .map(|w| {
                (
                    w.namespace.clone(),
                    w.application.clone(),
                    w.service.clone(),
                )
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// The one place that decides which instances get traffic: running and ready ones.
fn routable(placed: &crate::placed::Placed) -> bool {
    placed.node.is_some() && placed.state == InstanceState::Running && placed.ready
}

fn port(port: u16, target: u16, spec: &canopy_model::PortSpec) -> pb::PortRoute {
    pb::PortRoute {
        port: port.into(),
        target: target.into(),
        protocol: match spec.protocol {
            canopy_model::Protocol::Tcp => "tcp",
            canopy_model::Protocol::Udp => "udp",
        }
        .to_string(),
    }
}
