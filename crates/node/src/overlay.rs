//! The node's part of the overlay network, wired to its link: names its workloads resolve
//! become interest sent up, routes coming down feed the DNS and the proxy.

use crate::Agent;
use canopy_net::overlay::{self, Endpoint, Overlay, Policy, PortRoute, ServiceName};
use canopy_tier::pb;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Where the overlay lives on this node.
#[derive(Debug, Clone)]
pub struct OverlaySettings {
    /// The /24 its virtual addresses come from (its first address is the DNS).
    pub network: Ipv4Addr,
    pub dns_port: u16,
    /// Where this node's process workloads are reached from other nodes.
    pub address: String,
    /// The host's resolver configuration, whose name servers get other names.
    pub resolv_conf: std::path::PathBuf,
}

impl Agent {
    /// Starts the node's DNS and proxy; returns where the DNS listens. Workloads started
    /// from now on get its address (`CANOPY_DNS`) and this node's (`CANOPY_NODE_ADDRESS`).
    pub async fn attach_overlay(
        self: &Arc<Self>,
        settings: OverlaySettings,
    ) -> std::io::Result<SocketAddr> {
        let uplink = self.uplink.clone();
        let address = settings.address.clone();
        let ask: overlay::Ask = Arc::new(move |names: Vec<ServiceName>, renewal| {
            // A name without its service asks for the whole application.
            let (applications, services): (Vec<_>, Vec<_>) =
                names.iter().partition(|n| n.service.is_empty());
            uplink.interest(pb::Interest {
                services: services.into_iter().map(name_to_pb).collect(),
                address: address.clone(),
                renewal,
                applications: applications.into_iter().map(name_to_pb).collect(),
            });
        });
        let node_overlay = Overlay::new(settings.network, ask);
        node_overlay.set_listen(overlay::listener());
        node_overlay.set_meter(Arc::new(crate::traffic::TrafficMeter {
            metrics: self.metrics.proxy.clone(),
            edges: self.traffic.clone(),
            agent: Arc::downgrade(self),
        }));
        let dns = SocketAddr::from((node_overlay.dns_address(), settings.dns_port));
        let resolv_conf = std::fs::read_to_string(&settings.resolv_conf).unwrap_or_default();
        let upstream = overlay::nameservers(&resolv_conf, dns.ip());
        overlay::serve_dns(dns, node_overlay.clone(), upstream).await?;
        node_overlay.spawn_renewal();
        // The cluster learns this node's address even before anything is resolved here.
        node_overlay.resync();
        let _ = self.overlay.set(Attached {
            overlay: node_overlay,
            dns,
            address: settings.address,
            claimed: Default::default(),
        });
        Ok(dns)
    }

    /// Routes the cluster sent.
    pub(crate) fn on_overlay_routes(&self, routes: pb::Routes) {
        let Some(attached) = self.overlay.get() else {
            return;
        };
        for service in routes.services {
            let Some(name) = service.name.as_ref().map(name_from_pb) else {
                continue;
            };
            let endpoints = service.known.then(|| {
                service
                    .endpoints
                    .iter()
                    .filter_map(endpoint_from_pb)
                    .collect()
            });
            attached.overlay.set_ports(
                name.clone(),
                service.ports.iter().filter_map(port_from_pb).collect(),
            );
            let fixed: Vec<(Ipv4Addr, Policy)> =
                service.addresses.iter().filter_map(fixed_from_pb).collect();
            attached.overlay.set_routes(name.clone(), endpoints);
            if !fixed.is_empty() {
                self.fix_addresses(attached, name, fixed);
            }
        }
    }

    /// Makes a service's fixed addresses local to the host (once each), then listens on
    /// them.
    fn fix_addresses(
        &self,
        attached: &Attached,
        name: ServiceName,
        fixed: Vec<(Ipv4Addr, Policy)>,
    ) {
        let overlay = attached.overlay.clone();
        let claimed = attached.claimed.clone();
        tokio::spawn(async move {
            for (address, _) in &fixed {
                let new = !claimed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(address);
                if new {
                    match overlay::claim_address(*address).await {
                        Ok(()) => {
                            claimed
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(*address);
                        }
                        Err(e) => tracing::warn!(%address, error = %e, "fixed address not local"),
                    }
                }
            }
            let taken = overlay.set_fixed(&name, &fixed);
            if taken.len() < fixed.len() {
                tracing::warn!(%name, "a fixed address is another service's; left out");
            }
        });
    }

    /// Releases the fixed addresses made local (when the node stops).
    pub async fn detach_overlay(&self) {
        let Some(attached) = self.overlay.get() else {
            return;
        };
        let claimed: Vec<Ipv4Addr> =
            std::mem::take(&mut *attached.claimed.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .collect();
        for address in claimed {
            if let Err(e) = overlay::release_address(address).await {
                tracing::warn!(%address, error = %e, "a fixed address's route stays");
            }
        }
    }

    /// The link came back: say again what is used (a restarted cluster knows nothing).
    pub(crate) fn on_overlay_link(&self) {
        if let Some(attached) = self.overlay.get() {
            attached.overlay.resync();
        }
    }

    /// `CANOPY_SVC_<SERVICE>_ADDR` for each service of the workload's application (its plain
    /// name's address here and its first port), asked from the cluster as it starts.
    pub(crate) async fn overlay_service_env(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Vec<(String, String)> {
        let Some(attached) = self.overlay.get() else {
            return Vec::new();
        };
        attached
            .overlay
            .application_addresses(namespace, application, service)
            .await
            .iter()
            .map(|a| a.env())
            .collect()
    }

    /// What workloads are told of the overlay.
    pub(crate) fn overlay_env(&self) -> Vec<(String, String)> {
        self.overlay
            .get()
            .map(|a| {
                vec![
                    ("CANOPY_DNS".to_string(), a.dns.ip().to_string()),
                    ("CANOPY_NODE_ADDRESS".to_string(), a.address.clone()),
                ]
            })
            .unwrap_or_default()
    }
}

pub(crate) struct Attached {
    overlay: Overlay,
    dns: SocketAddr,
    address: String,
    /// Fixed addresses made local to the host, released when the node stops.
    claimed: Arc<std::sync::Mutex<std::collections::BTreeSet<Ipv4Addr>>>,
}

fn name_to_pb(name: &ServiceName) -> pb::ServiceName {
    pb::ServiceName {
        namespace: name.namespace.clone(),
        application: name.application.clone(),
        service: name.service.clone(),
    }
}

fn name_from_pb(name: &pb::ServiceName) -> ServiceName {
    ServiceName {
        namespace: name.namespace.clone(),
        application: name.application.clone(),
        service: name.service.clone(),
    }
}

/// None for an endpoint whose address does not parse (nothing could be sent there).
fn endpoint_from_pb(endpoint: &pb::Endpoint) -> Option<Endpoint> {
    let address: IpAddr = endpoint.address.parse().ok()?;
    let ports = endpoint.ports.iter().filter_map(port_from_pb).collect();
    Some(Endpoint {
        instance: endpoint.instance_id.clone(),
        replica: endpoint.replica,
        node: endpoint.node.clone(),
        address,
        ports,
        rtt_ms: (endpoint.rtt_ms >= 0.0).then_some(endpoint.rtt_ms),
    })
}

fn port_from_pb(p: &pb::PortRoute) -> Option<PortRoute> {
    Some(PortRoute {
        port: u16::try_from(p.port).ok()?,
        target: u16::try_from(p.target).ok()?,
        udp: p.protocol == "udp",
    })
}

fn fixed_from_pb(fixed: &pb::FixedAddress) -> Option<(Ipv4Addr, Policy)> {
    let policy = match fixed.policy.as_str() {
        "rr" => Policy::RoundRobin,
        "closest" => Policy::Closest,
        n => Policy::Replica(n.parse().ok()?),
    };
    Some((fixed.address.parse().ok()?, policy))
}
