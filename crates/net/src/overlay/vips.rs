//! Virtual addresses local to one node: one per (service, policy) its workloads resolved,
//! from the node's own /24. The first address of the range is the node's DNS.

use super::name::{Policy, ServiceName};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Hands out the addresses of one /24 (`a.b.c.2` to `a.b.c.254`), each to one (service,
/// policy) for the agent's lifetime.
#[derive(Debug)]
pub struct VirtualAddresses {
    network: [u8; 3],
    by_name: BTreeMap<(ServiceName, Policy), Ipv4Addr>,
    by_address: BTreeMap<Ipv4Addr, (ServiceName, Policy)>,
    /// Addresses fixed by the service's descriptor (Oakestra's), outside the range.
    fixed: BTreeMap<Ipv4Addr, (ServiceName, Policy)>,
}

/// The host part of the node's DNS address.
const DNS_HOST: u8 = 1;
const FIRST: u8 = 2;
const LAST: u8 = 254;

impl VirtualAddresses {
    /// The range `network`/24 (its last octet is ignored).
    pub fn new(network: Ipv4Addr) -> VirtualAddresses {
        let [a, b, c, _] = network.octets();
        VirtualAddresses {
            network: [a, b, c],
            by_name: BTreeMap::new(),
            by_address: BTreeMap::new(),
            fixed: BTreeMap::new(),
        }
    }

    /// Where the node answers DNS.
    pub fn dns(&self) -> Ipv4Addr {
        self.at(DNS_HOST)
    }

    fn at(&self, host: u8) -> Ipv4Addr {
        let [a, b, c] = self.network;
        Ipv4Addr::new(a, b, c, host)
    }

    /// The address of (`name`, `policy`): the one it had, or the next free one; none when
    /// the range is full.
    pub fn assign(&mut self, name: &ServiceName, policy: Policy) -> Option<Ipv4Addr> {
        let key = (name.clone(), policy);
        if let Some(address) = self.by_name.get(&key) {
            return Some(*address);
        }
        let host = FIRST + self.by_name.len() as u8;
        if self.by_name.len() >= usize::from(LAST - FIRST + 1) {
            return None;
        }
        let address = self.at(host);
        self.by_name.insert(key.clone(), address);
        self.by_address.insert(address, key);
        Some(address)
    }

    pub fn lookup(&self, address: Ipv4Addr) -> Option<&(ServiceName, Policy)> {
        self.by_address
            .get(&address)
            .or_else(|| self.fixed.get(&address))
    }

    /// Fixes `address` to (`name`, `policy`); false when another service has it.
    pub fn fix(&mut self, address: Ipv4Addr, name: &ServiceName, policy: Policy) -> bool {
        if self.by_address.contains_key(&address)
            || self.fixed.get(&address).is_some_and(|(n, _)| n != name)
        {
            return false;
        }
        self.fixed.insert(address, (name.clone(), policy));
        true
    }

    /// The addresses given to any policy of `name`, fixed ones too.
    pub fn of_service<'a>(&'a self, name: &'a ServiceName) -> impl Iterator<Item = Ipv4Addr> + 'a {
        let fixed = self
            .fixed
            .iter()
            .filter(move |(_, (n, _))| n == name)
            .map(|(address, _)| *address);
        self.by_name
            .iter()
            .filter(move |((n, _), _)| n == name)
            .map(|(_, address)| *address)
            .chain(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServiceName {
        ServiceName {
            namespace: "default".into(),
            application: "app".into(),
            service: s.into(),
        }
    }

    #[test]
    fn each_service_and_policy_gets_its_own_stable_address() {
        let mut vips = VirtualAddresses::new(Ipv4Addr::new(127, 77, 3, 0));
        assert_eq!(vips.dns(), Ipv4Addr::new(127, 77, 3, 1));
        let rr = vips.assign(&name("a"), Policy::RoundRobin);
        let two = vips.assign(&name("a"), Policy::Replica(2));
        let other = vips.assign(&name("b"), Policy::RoundRobin);
        assert_eq!(rr, Some(Ipv4Addr::new(127, 77, 3, 2)));
        assert_eq!(two, Some(Ipv4Addr::new(127, 77, 3, 3)));
        assert_eq!(other, Some(Ipv4Addr::new(127, 77, 3, 4)));
        assert_eq!(vips.assign(&name("a"), Policy::RoundRobin), rr);
        assert_eq!(
            vips.lookup(Ipv4Addr::new(127, 77, 3, 3)),
            Some(&(name("a"), Policy::Replica(2)))
        );
        assert_eq!(vips.of_service(&name("a")).count(), 2);
    }

    #[test]
    fn a_fixed_address_belongs_to_one_service() {
        let mut vips = VirtualAddresses::new(Ipv4Addr::new(127, 77, 3, 0));
        let fixed = Ipv4Addr::new(10, 30, 0, 1);
        assert!(vips.fix(fixed, &name("a"), Policy::RoundRobin));
        assert!(vips.fix(fixed, &name("a"), Policy::RoundRobin));
        assert!(!vips.fix(fixed, &name("b"), Policy::RoundRobin));
        assert_eq!(vips.lookup(fixed), Some(&(name("a"), Policy::RoundRobin)));
        assert_eq!(vips.of_service(&name("a")).collect::<Vec<_>>(), [fixed]);
    }

    #[test]
    fn a_full_range_gives_no_more_addresses() {
        let mut vips = VirtualAddresses::new(Ipv4Addr::new(127, 77, 3, 0));
        for n in 0..253 {
            assert!(vips.assign(&name("a"), Policy::Replica(n)).is_some());
        }
        assert_eq!(vips.assign(&name("a"), Policy::Replica(999)), None);
        assert_eq!(
            vips.assign(&name("a"), Policy::Replica(252)),
            Some(Ipv4Addr::new(127, 77, 3, 254))
        );
    }
}
