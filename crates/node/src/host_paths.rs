//! The node's own word on `hostPath` volumes: each must be under a prefix its administrator
//! allowed (`canopy node --allow-host-path PREFIX`); a node allows none by default. Pure, on
//! the descriptor's paths (the volumes hook checks the resolved directory again at start).

use crate::admission::{NodeFacts, Refusal};
use canopy_model::{ServiceSpec, VolumeKind, volume::allowed_host_path};

/// Refuses the first `hostPath` volume of `candidate` outside the node's prefixes.
pub(crate) fn check(facts: &NodeFacts, candidate: &ServiceSpec) -> Result<(), Refusal> {
    let host_paths = candidate
        .volumes
        .iter()
        .filter(|v| v.kind == VolumeKind::HostPath)
        .filter_map(|v| v.host_path.as_deref());
    for path in host_paths {
        if !allowed_host_path(path, &facts.allowed_host_paths) {
            let allowed = match facts.allowed_host_paths.is_empty() {
                true => "it allows none: start it with --allow-host-path PREFIX".to_string(),
                false => format!("allowed: {}", facts.allowed_host_paths.join(", ")),
            };
            return Err(Refusal::HostPath {
                node: facts.name.clone(),
                path: path.to_string(),
                allowed,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn facts(allowed: &[&str]) -> NodeFacts {
        NodeFacts {
            name: "edge-1".into(),
            runtimes: Vec::new(),
            capabilities: BTreeMap::new(),
            sandboxes: Vec::new(),
            kvm: false,
            capacity: Default::default(),
            labels: BTreeMap::new(),
            allowed_host_paths: allowed.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn with_host_path(path: &str) -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "name": "s", "runtime": "process", "command": ["/bin/true"],
            "volumes": [
                {"name": "data", "path": "/data"},
                {"name": "logs", "kind": "hostPath", "hostPath": path, "path": "/logs"}
            ]
        }))
        .unwrap()
    }

    fn text(result: Result<(), Refusal>) -> String {
        result.err().map_or("admitted".into(), |r| r.to_string())
    }

    #[test]
    fn a_node_allows_no_host_path_by_default_and_says_how_to() {
        assert_eq!(
            text(check(&facts(&[]), &with_host_path("/srv/logs"))),
            "host path /srv/logs is not under a prefix node edge-1 allows \
             (it allows none: start it with --allow-host-path PREFIX)"
        );
    }

    #[test]
    fn a_host_path_under_an_allowed_prefix_is_admitted_and_others_are_not() {
        let node = facts(&["/srv", "/mnt/usb"]);
        assert_eq!(text(check(&node, &with_host_path("/srv/logs"))), "admitted");
        assert_eq!(
            text(check(&node, &with_host_path("/etc"))),
            "host path /etc is not under a prefix node edge-1 allows (allowed: /srv, /mnt/usb)"
        );
        // Volumes of the node's own kinds need no prefix.
        let plain: ServiceSpec = serde_json::from_value(serde_json::json!({
            "name": "s", "runtime": "process", "command": ["/bin/true"],
            "volumes": [{"name": "data", "path": "/data"}]
        }))
        .unwrap();
        assert_eq!(text(check(&facts(&[]), &plain)), "admitted");
    }
}
