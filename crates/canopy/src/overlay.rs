//! The node's overlay flags and how they become its DNS and proxy.

use canopy_node::{Agent, OverlaySettings};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;

#[derive(Debug, Args, Clone)]
pub struct OverlayArgs {
    /// The /24 this node's service addresses come from (its first address answers DNS):
    /// on loopback (`127.A.B.0`, reached by processes only), off loopback (e.g. `100.64.7.0`,
    /// made local to the host with one route, reached by containers through their gateway
    /// too), `auto` (on loopback, derived from the node's name) or `off`.
    #[arg(long, default_value = "auto")]
    pub overlay_network: String,
    /// Port of the node's DNS for service names.
    #[arg(long, default_value_t = 53)]
    pub overlay_dns_port: u16,
    /// Address this node's process workloads are reached at from other nodes (default: the
    /// address this machine reaches its cluster from).
    #[arg(long)]
    pub overlay_address: Option<IpAddr>,
}

impl Default for OverlayArgs {
    fn default() -> Self {
        OverlayArgs {
            overlay_network: "auto".into(),
            overlay_dns_port: 53,
            overlay_address: None,
        }
    }
}

/// Starts the node's DNS and proxy as `args` say. A node whose overlay cannot start (its
/// DNS port taken) still runs its workloads: it says so and goes on without names. Returns
/// the range made local to the host, which [`detach`] releases when the node stops.
pub async fn attach(
    agent: &Arc<Agent>,
    args: &OverlayArgs,
    name: &str,
    cluster: &str,
) -> Option<Ipv4Addr> {
    let network = match args.overlay_network.as_str() {
        "off" => return None,
        "auto" => derived_network(name),
        given => match given.parse::<Ipv4Addr>() {
            Ok(ip) => ip,
            Err(e) => {
                eprintln!("canopy node {name}: --overlay-network {given}: {e}; overlay off");
                return None;
            }
        },
    };
    let address = args
        .overlay_address
        .or_else(|| local_address_towards(cluster))
        .unwrap_or(Ipv4Addr::LOCALHOST.into());
    let settings = OverlaySettings {
        network,
        dns_port: args.overlay_dns_port,
        address: address.to_string(),
        resolv_conf: "/etc/resolv.conf".into(),
    };
    if let Err(e) = canopy_node::claim_range(network).await {
        tracing::warn!(error = %e, "the overlay range cannot be made local; no service names");
        eprintln!("canopy node {name}: service names off: {e}");
        return None;
    }
    match agent.attach_overlay(settings).await {
        Ok(dns) => tracing::info!(%dns, %address, "service names answered"),
        Err(e) => {
            tracing::warn!(error = %e, "the node's DNS cannot start; no service names here");
            eprintln!("canopy node {name}: service names off: DNS: {e}");
        }
    }
    Some(network)
}

/// Releases the range [`attach`] made local and the fixed addresses the node took, once
/// the node has stopped.
pub async fn detach(agent: &Agent, range: Option<Ipv4Addr>) {
    agent.detach_overlay().await;
    if let Some(network) = range
        && let Err(e) = canopy_node::release_range(network).await
    {
        tracing::warn!(error = %e, "the overlay range's route stays");
    }
}

/// `127.A.B.0` from a hash of the node's name, so nodes sharing a machine get different
/// ranges (A in 100..=199 keeps clear of 127.0.0.0/16).
fn derived_network(name: &str) -> Ipv4Addr {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Ipv4Addr::new(127, 100 + (hash % 100) as u8, (hash >> 8) as u8, 0)
}

/// The local address the route to the cluster's host leaves from (no packet is sent).
fn local_address_towards(cluster: &str) -> Option<IpAddr> {
    let authority = cluster.split("://").nth(1).unwrap_or(cluster);
    let host_port = authority.split('/').next()?;
    let target: SocketAddr = host_port.to_socket_addrs().ok()?.next()?;
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ranges_are_on_loopback_and_differ_by_name() {
        let a = derived_network("node-a");
        let b = derived_network("node-b");
        assert!(a.is_loopback() && b.is_loopback());
        assert_ne!(a, b);
        assert!((100..=199).contains(&a.octets()[1]));
        assert_eq!(derived_network("node-a"), a);
    }

    #[test]
    fn the_local_address_towards_a_loopback_cluster_is_loopback() {
        assert_eq!(
            local_address_towards("http://127.0.0.1:7000"),
            Some(Ipv4Addr::LOCALHOST.into())
        );
    }
}
