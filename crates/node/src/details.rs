//! What the node tells about a running instance beyond its state: the runtime that runs it,
//! the address and ports its network got, and the digest of its image (from the prestart
//! hooks' [`canopy_runtime::Prepared`]).

use canopy_model::{InstanceDetails, ServiceSpec};
use canopy_runtime::PreparedNetwork;

pub(crate) struct Details(InstanceDetails);

impl Details {
    /// Before it starts: only its runtime (and sandbox: `container (gvisor)`) is known.
    pub fn of(spec: &ServiceSpec) -> Details {
        let runtime = spec.runtime.as_str();
        Details(InstanceDetails {
            runtime: Some(match spec.sandbox {
                Some(sandbox) => format!("{runtime} ({})", sandbox.as_str()),
                None => runtime.to_string(),
            }),
            ..InstanceDetails::default()
        })
    }

    pub fn current(&self) -> &InstanceDetails {
        &self.0
    }

    /// What its network hook made for this start (nothing: it shares the node's network).
    pub fn network(&mut self, network: Option<&PreparedNetwork>) {
        self.0.addresses = network
            .and_then(|n| n.ip)
            .map(|ip| vec![ip.to_string()])
            .unwrap_or_default();
        self.0.ports = network
            .map(|n| {
                n.ports
                    .iter()
                    .map(|p| format!("{}:{}/{}", p.host_port, p.container_port, p.protocol))
                    .collect()
            })
            .unwrap_or_default();
    }

    /// The digest of the image this start runs (from the image hook), if any.
    pub fn image(&mut self, digest: Option<&str>) {
        self.0.image_digest = digest.map(str::to_string);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_network_gives_addresses_and_ports() {
        let spec = serde_json::json!({"name": "s", "runtime": "container", "image": "x"});
        let mut details = Details::of(&serde_json::from_value(spec).unwrap());
        assert_eq!(details.current().runtime.as_deref(), Some("container"));
        let gvisor = serde_json::json!({"name": "s", "runtime": "container", "image": "x", "sandbox": "gvisor"});
        let sandboxed = Details::of(&serde_json::from_value(gvisor).unwrap());
        assert_eq!(
            sandboxed.current().runtime.as_deref(),
            Some("container (gvisor)")
        );
        let network = PreparedNetwork {
            netns: "/run/netns/x".into(),
            ip: Some("10.88.0.7".parse().unwrap()),
            ports: vec![canopy_runtime::PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
            }],
        };
        details.network(Some(&network));
        assert_eq!(details.current().addresses, ["10.88.0.7"]);
        assert_eq!(details.current().ports, ["8080:80/tcp"]);
        details.network(None);
        assert!(details.current().addresses.is_empty());
        details.image(Some("sha256:ab12"));
        assert_eq!(
            details.current().image_digest.as_deref(),
            Some("sha256:ab12")
        );
    }
}
