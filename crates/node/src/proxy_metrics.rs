//! The overlay proxy's traffic as the node's series: connections (or UDP flows) per service
//! by outcome, and bytes per service each way. The proxy calls these as it carries traffic
//! (through `traffic::TrafficMeter`); a service appears once something dialled it here.

use crate::traffic::label;
use canopy_net::overlay::{Outcome, ServiceName};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum OutcomeLabel {
    forwarded,
    refused,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum Direction {
    /// From clients to the service's instances.
    to_service,
    from_service,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    /// `namespace/application/service`, as the instance series spell it.
    service: String,
    outcome: OutcomeLabel,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    service: String,
    direction: Direction,
}

#[derive(Debug, Default)]
pub struct ProxyMetrics {
    connections: Family<ConnectionLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
}

impl ProxyMetrics {
    /// Registers the `proxy_*` families in `registry`.
    pub fn register(registry: &mut Registry) -> Arc<ProxyMetrics> {
        let metrics = Arc::new(ProxyMetrics::default());
        registry.register(
            "proxy_connections",
            "Connections (UDP: flows) workloads on this node opened to a service's name, by \
             outcome: forwarded to an instance, or refused (no ready instance took it)",
            metrics.connections.clone(),
        );
        registry.register_with_unit(
            "proxy",
            "Bytes the node's proxy carried for a service, to its instances and back",
            Unit::Bytes,
            metrics.bytes.clone(),
        );
        metrics
    }
}

impl ProxyMetrics {
    pub fn opened(&self, service: &ServiceName, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Forwarded => OutcomeLabel::forwarded,
            Outcome::Refused => OutcomeLabel::refused,
        };
        self.connections
            .get_or_create(&ConnectionLabels {
                service: label(service),
                outcome,
            })
            .inc();
    }

    pub fn carried(&self, service: &ServiceName, to_service: u64, from_service: u64) {
        for (direction, bytes) in [
            (Direction::to_service, to_service),
            (Direction::from_service, from_service),
        ] {
            if bytes > 0 {
                self.bytes
                    .get_or_create(&BytesLabels {
                        service: label(service),
                        direction,
                    })
                    .inc_by(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_tier::metrics::{self, sample_value};

    #[test]
    fn connections_and_bytes_render_per_service() {
        let mut registry = metrics::registry("canopy_node", &[("node", "n1")]);
        let proxy = ProxyMetrics::register(&mut registry);
        let web = ServiceName {
            namespace: "default".into(),
            application: "shop".into(),
            service: "web".into(),
        };
        proxy.opened(&web, Outcome::Forwarded);
        proxy.opened(&web, Outcome::Forwarded);
        proxy.opened(&web, Outcome::Refused);
        proxy.carried(&web, 100, 2000);
        proxy.carried(&web, 5, 0);
        let mut text = String::new();
        metrics::encode(&registry, &mut text).unwrap();
        let value = |name, labels: &[(&str, &str)]| sample_value(&text, name, labels);
        let service = ("service", "default/shop/web");
        assert_eq!(
            value(
                "canopy_node_proxy_connections_total",
                &[service, ("outcome", "forwarded"), ("node", "n1")]
            ),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            value(
                "canopy_node_proxy_connections_total",
                &[service, ("outcome", "refused")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                "canopy_node_proxy_bytes_total",
                &[service, ("direction", "to_service")]
            ),
            Some(105.0)
        );
        assert_eq!(
            value(
                "canopy_node_proxy_bytes_total",
                &[service, ("direction", "from_service")]
            ),
            Some(2000.0)
        );
    }
}
