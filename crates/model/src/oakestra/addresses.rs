//! Oakestra's fixed service addresses (`addresses`: `rr_ip`, `closest_ip` and
//! `instances[].instance_ip`), kept in annotation `oakestra.io/addresses` and honoured by the
//! overlay as virtual addresses with the same policies as the service's names.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// The annotation the SLA's `addresses` object is kept in (as JSON).
pub const ADDRESSES_ANNOTATION: &str = "oakestra.io/addresses";

/// How a fixed address picks an instance: as `rr.`, `closest.` or `<n>.` would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressPolicy {
    RoundRobin,
    Closest,
    Replica(u32),
}

/// The fixed addresses of a service from its annotations; none when it has no (readable)
/// `addresses`. An instance entry without `instance_number` is numbered by its position.
pub fn fixed_addresses(annotations: &BTreeMap<String, String>) -> Vec<(Ipv4Addr, AddressPolicy)> {
    let Some(value) = annotations
        .get(ADDRESSES_ANNOTATION)
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return Vec::new();
    };
    let ip = |v: &Value| v.as_str()?.parse::<Ipv4Addr>().ok();
    let mut out = Vec::new();
    if let Some(address) = value.get("rr_ip").and_then(ip) {
        out.push((address, AddressPolicy::RoundRobin));
    }
    if let Some(address) = value.get("closest_ip").and_then(ip) {
        out.push((address, AddressPolicy::Closest));
    }
    for (n, instance) in value
        .get("instances")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(address) = instance.get("instance_ip").and_then(ip) else {
            continue;
        };
        let number = instance
            .get("instance_number")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(n as u32);
        out.push((address, AddressPolicy::Replica(number)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(json: &str) -> BTreeMap<String, String> {
        BTreeMap::from([(ADDRESSES_ANNOTATION.to_string(), json.to_string())])
    }

    #[test]
    fn each_address_gets_its_policy() {
        let found = fixed_addresses(&annotated(
            r#"{"rr_ip":"10.30.0.1","closest_ip":"10.30.0.2","instances":[
                {"instance_number":2,"instance_ip":"10.30.0.12"},{"instance_ip":"10.30.0.11"}]}"#,
        ));
        assert_eq!(
            found,
            [
                (Ipv4Addr::new(10, 30, 0, 1), AddressPolicy::RoundRobin),
                (Ipv4Addr::new(10, 30, 0, 2), AddressPolicy::Closest),
                (Ipv4Addr::new(10, 30, 0, 12), AddressPolicy::Replica(2)),
                (Ipv4Addr::new(10, 30, 0, 11), AddressPolicy::Replica(1)),
            ]
        );
    }

    #[test]
    fn unreadable_or_absent_addresses_give_none() {
        assert!(fixed_addresses(&BTreeMap::new()).is_empty());
        assert!(fixed_addresses(&annotated("not json")).is_empty());
        assert!(fixed_addresses(&annotated(r#"{"rr_ip":"fd00::1"}"#)).is_empty());
    }
}
