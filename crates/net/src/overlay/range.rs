//! An overlay range off loopback, made local to the host: one `local` route over the whole
//! /24 on `lo` (AnyIP), so every address of it can be listened on without being added one
//! by one. Containers need this: their own loopback hides the host's 127/8, but a range like
//! `100.64.7.0/24` reaches the host through their gateway, where the node's DNS and proxy
//! listen on it. A loopback range needs nothing (127/8 is local already).

use crate::{DEFAULT_PATH, NetError, output};
use std::net::Ipv4Addr;
use std::time::Duration;

const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// `ip` arguments that add (`replace`) or remove (`del`) the range's local route.
fn route_args(network: Ipv4Addr, verb: &str) -> Vec<String> {
    let [a, b, c, _] = network.octets();
    local_route(&format!("{a}.{b}.{c}.0/24"), verb)
}

fn local_route(prefix: &str, verb: &str) -> Vec<String> {
    [
        "route", verb, "local", prefix, "dev", "lo", "table", "local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Whether `network`/24 needs a route to be local (it is not on loopback).
pub fn needs_route(network: Ipv4Addr) -> bool {
    !network.is_loopback()
}

/// Makes `network`/24 local to this host (idempotent); nothing for a loopback range.
pub async fn claim_range(network: Ipv4Addr) -> Result<(), NetError> {
    if needs_route(network) {
        ip(route_args(network, "replace")).await?;
    }
    Ok(())
}

/// Undoes [`claim_range`]; a route already gone is fine.
pub async fn release_range(network: Ipv4Addr) -> Result<(), NetError> {
    if !needs_route(network) {
        return Ok(());
    }
    match ip(route_args(network, "del")).await {
        Err(NetError::Config(message)) if message.contains("No such process") => Ok(()),
        other => other,
    }
}

/// Makes one fixed address (an Oakestra SLA's) local to this host; nothing on loopback.
pub async fn claim_address(address: Ipv4Addr) -> Result<(), NetError> {
    if needs_route(address) {
        ip(local_route(&format!("{address}/32"), "replace")).await?;
    }
    Ok(())
}

/// Undoes [`claim_address`]; a route already gone is fine.
pub async fn release_address(address: Ipv4Addr) -> Result<(), NetError> {
    if !needs_route(address) {
        return Ok(());
    }
    match ip(local_route(&format!("{address}/32"), "del")).await {
        Err(NetError::Config(message)) if message.contains("No such process") => Ok(()),
        other => other,
    }
}

async fn ip(args: Vec<String>) -> Result<(), NetError> {
    let mut command = tokio::process::Command::new("ip");
    command.env("PATH", DEFAULT_PATH).args(&args);
    let what = format!("ip {}", args.join(" "));
    let out = output(command, None, IP_TIMEOUT, &what).await?;
    if out.status.success() {
        return Ok(());
    }
    Err(NetError::Config(format!(
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_covers_the_whole_range_on_lo() {
        assert_eq!(
            route_args(Ipv4Addr::new(100, 64, 7, 9), "replace").join(" "),
            "route replace local 100.64.7.0/24 dev lo table local"
        );
        assert_eq!(
            local_route("10.30.0.1/32", "del").join(" "),
            "route del local 10.30.0.1/32 dev lo table local"
        );
        assert!(needs_route(Ipv4Addr::new(100, 64, 7, 0)));
        assert!(!needs_route(Ipv4Addr::new(127, 201, 0, 0)));
    }
}
