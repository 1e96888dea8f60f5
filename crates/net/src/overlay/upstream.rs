//! The host's upstream resolvers, from `resolv.conf`: where names outside `.canopy` go.

use std::net::{IpAddr, SocketAddr};

/// The `nameserver` lines of a `resolv.conf`, at port 53, leaving out `ours` (the node's
/// own DNS, which must never forward to itself).
pub fn nameservers(resolv_conf: &str, ours: IpAddr) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|word| word.split('%').next()?.parse::<IpAddr>().ok())
        .filter(|ip| *ip != ours)
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_the_upstreams() {
        let conf = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\n\
                    nameserver 127.77.0.1\noptions ndots:2\nnameserver bogus\n";
        assert_eq!(
            nameservers(conf, "127.77.0.1".parse().unwrap()),
            vec![
                "10.0.0.2:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
