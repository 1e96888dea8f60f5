//! A container's `/etc/resolv.conf`.

use std::net::IpAddr;

/// The container's resolver config: the node's DNS (`CANOPY_DNS`) when the container can
/// reach it (it has a network and the DNS is off loopback), which answers service names
/// and forwards the rest to the host's resolvers; otherwise the host's own nameservers
/// minus loopback ones (unreachable from the container). The host's other lines stay.
pub(super) fn resolv_conf(host: &str, node_dns: Option<IpAddr>) -> String {
    let node_dns = node_dns.filter(|a| !a.is_loopback());
    let mut out: String = node_dns
        .map(|dns| format!("nameserver {dns}\n"))
        .unwrap_or_default();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        if w.next() == Some("nameserver") {
            let address = w.next().and_then(|a| a.parse::<IpAddr>().ok());
            if node_dns.is_some() || address.is_some_and(|a| a.is_loopback()) {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str =
        "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions ndots:2\n";

    #[test]
    fn the_node_s_dns_replaces_the_host_s_nameservers() {
        let dns = "100.64.7.1".parse().ok();
        assert_eq!(
            resolv_conf(HOST, dns),
            "nameserver 100.64.7.1\nsearch example.com\noptions ndots:2\n"
        );
    }

    #[test]
    fn without_a_reachable_node_dns_the_host_s_outside_nameservers_stay() {
        let expected = "search example.com\nnameserver 10.0.0.2\noptions ndots:2\n";
        assert_eq!(resolv_conf(HOST, None), expected);
        assert_eq!(resolv_conf(HOST, "127.201.0.1".parse().ok()), expected);
    }
}
